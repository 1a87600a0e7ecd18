package io.peft4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Parameter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.PagedTensors;
import io.peft4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The paged AdamW (QLoRA's paged optimizer on the CPU): moments in unlinked file mappings, and
 * step for step bit-identical to the plain AdamW, across a save and resume too.
 */
class PagedAdamWTest {
    @TempDir Path dir;

    static float[] normal(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    static Map<String, Parameter> params(long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        Map<String, Parameter> m = new LinkedHashMap<>();
        m.put("w", new Parameter("weight", Tensor.of(normal(r, 33 * 17), 33, 17), true, true));
        m.put("b", new Parameter("bias", Tensor.of(normal(r, 257), 257), true, false));
        return m;
    }

    static void randomGrads(Map<String, Parameter> ps, SplittableRandom r) {
        ps.values().forEach(p -> p.grad().copyFrom(normal(r, (int) p.numel())));
    }

    static long pagedMappings() throws IOException {
        return Files.readAllLines(Path.of("/proc/self/maps")).stream().filter(l -> l.contains(PagedTensors.FILE_PREFIX)).count();
    }

    static void assertSame(Map<String, Parameter> a, Map<String, Parameter> b, String what) {
        a.forEach((k, p) -> assertArrayEquals(p.value().toFloatArray(), b.get(k).value().toFloatArray(), what + " '" + k + "'"));
    }

    @Test
    void pagedStepsAreBitIdenticalToPlainAndLiveInFileMappings() throws IOException {
        Backend be = Backend.cpu();
        Map<String, Parameter> plain = params(1), paged = params(1);
        SplittableRandom g1 = new SplittableRandom(9), g2 = new SplittableRandom(9);
        long before = pagedMappings();
        try (AdamW a = AdamW.defaults(); AdamW p = AdamW.defaults().pagedOptimizer(dir)) {
            assertTrue(p.paged());
            assertFalse(a.paged());
            for (int step = 1; step <= 6; step++) {
                randomGrads(plain, g1);
                randomGrads(paged, g2);
                float lr = 1e-2f * step;
                a.step(be, plain, lr);
                p.step(be, paged, lr);
                assertSame(plain, paged, "parameters after step " + step);
                Map<String, Tensor> sa = a.state(), sp = p.state();
                assertEquals(sa.keySet(), sp.keySet());
                for (String k : sa.keySet()) {
                    assertArrayEquals(sa.get(k).toFloatArray(), sp.get(k).toFloatArray(), "state '" + k + "' after step " + step);
                }
            }
            assertEquals(before + 4, pagedMappings(), "four moment buffers are file mappings");
            try (var files = Files.list(dir)) {
                assertEquals(0, files.count(), "the backing files are unlinked once mapped");
            }
        }
        assertEquals(before, pagedMappings(), "closing the optimizer unmaps its moments");
        plain.values().forEach(Parameter::close);
        paged.values().forEach(Parameter::close);
    }

    @Test
    void resumeFromSavedStateContinuesExactly() {
        Backend be = Backend.cpu();
        Map<String, Parameter> plain = params(2), paged = params(2);
        SplittableRandom g1 = new SplittableRandom(5), g2 = new SplittableRandom(5);
        try (AdamW a = AdamW.defaults(); AdamW p = AdamW.defaults().pagedOptimizer(dir)) {
            for (int step = 0; step < 3; step++) {
                randomGrads(plain, g1);
                randomGrads(paged, g2);
                a.step(be, plain, 1e-2f);
                p.step(be, paged, 1e-2f);
            }
            Map<String, float[]> saved = new LinkedHashMap<>();
            p.state().forEach((k, t) -> saved.put(k, t.toFloatArray()));
            try (AdamW resumed = AdamW.defaults().pagedOptimizer(dir)) {
                resumed.loadState(saved, p.steps());
                for (int step = 0; step < 3; step++) {
                    randomGrads(plain, g1);
                    randomGrads(paged, g2);
                    a.step(be, plain, 1e-2f);
                    resumed.step(be, paged, 1e-2f);
                    assertSame(plain, paged, "after resumed step " + step);
                }
            }
        }
    }

    @Test
    void pagedTensorsStartAtZeroAndAMissingDirectoryIsNamed() {
        try (Tensor t = PagedTensors.zeros(dir, DType.F32, 1001)) {
            for (float v : t.toFloatArray()) assertEquals(0f, v);
            t.copyFrom(new float[1001]);
        }
        Path missing = dir.resolve("no-such-dir");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> PagedTensors.zeros(missing, DType.F32, 4));
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
    }
}
