package io.peft4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.backend.NativeLoader;
import io.peft4j.bindings.Peft4j;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;

/**
 * The run-time ISA choice (native/cpu/abi.cpp detect_isa, p4j_cpu_features, p4j_fma_peak): the
 * library runs min(PEFT4J_CPU_ISA, the CPU's widest), says so in p4j_build_info() and
 * p4j_cpu_features(), and the FMA ceiling counts the flops of that variant's loop. tests/pom.xml
 * runs this class with each cap, so both sides of every ISA switch run; the effective ISA is printed.
 */
class IsaTest {
    @Test
    void effectiveIsaIsTheRequestedCapOfTheCpusWidest() {
        String req = IsaRun.requested(), widest = IsaRun.widestOfCpu(), eff = IsaRun.effective();
        String expected = req == null || IsaRun.rank(req) > IsaRun.rank(widest) ? widest : req;
        System.out.println("peft4j kernels ISA: " + eff + " (PEFT4J_CPU_ISA=" + (req == null ? "unset" : req)
                + ", CPU widest " + widest + ")");
        assertEquals(expected, eff, "kernel ISA for PEFT4J_CPU_ISA=" + req + " on a CPU whose widest is " + widest);
        NativeLoader.loadCpu();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment feat = a.allocate(ValueLayout.JAVA_INT);
            assertEquals(0, Peft4j.p4j_cpu_features(feat));
            int bits = feat.get(ValueLayout.JAVA_INT, 0);
            int want = switch (eff) {
                case "avx512" -> 1 | 2 | 4 | (IsaRun.cpuFlags().contains("avx512_bf16") ? 8 : 0)
                        | (IsaRun.cpuFlags().contains("avx512vbmi") ? 16 : 0) | (IsaRun.cpuFlags().contains("avx512_vnni") ? 32 : 0);
                case "avx2" -> 1 | 2;
                default -> 0;
            };
            assertEquals(want, bits, "p4j_cpu_features bits for the " + eff + " kernels");
        }
    }

    /** A run whose ISA the CPU lacks is skipped with the reason; a matching one runs; a misspelt one fails. */
    @Test
    void runsOfAnIsaTheCpuLacksAreSkippedVisibly() {
        ConditionEvaluationResult lacking = IsaRun.decide("avx512", "avx2", "avx2");
        assertTrue(lacking.isDisabled());
        assertEquals("peft4j kernel tests: SKIPPING the avx512 run: this CPU lacks avx512 (its widest kernel ISA is avx2;"
                + " the library would run avx2)", lacking.getReason().orElseThrow());
        ConditionEvaluationResult capped = IsaRun.decide("baseline", "baseline", "avx512");
        assertFalse(capped.isDisabled());
        assertTrue(capped.getReason().orElseThrow().contains("exercises the baseline kernels"), capped.getReason().orElseThrow());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> IsaRun.decide("avx-512", "avx512", "avx512"));
        assertTrue(e.getMessage().contains("PEFT4J_CPU_ISA=avx-512"), e.getMessage());
    }

    /** Flops per loop iteration and thread: 16 zmm, 12 ymm or 12 xmm chains of one multiply-add per lane. */
    @Test
    void fmaPeakCountsTheFlopsOfTheActiveVariant() {
        long perIter = switch (IsaRun.effective()) {
            case "avx512" -> 16 * 16 * 2;
            case "avx2" -> 12 * 8 * 2;
            default -> 12 * 4 * 2;
        };
        try (Backend b = Backend.cpu(2)) {
            long iters = 1001;
            long flops = b.fmaPeak(iters);
            // OMP_THREAD_LIMIT may grant one thread; the count follows what ran.
            assertTrue(flops == iters * perIter * 2 || flops == iters * perIter, "fmaPeak(" + iters + ") = " + flops
                    + " flops, expected " + iters * perIter + " per thread");
            assertEquals(0, b.fmaPeak(0));
        }
    }
}
