package io.peft4j.kernels;

import io.peft4j.backend.NativeLoader;
import io.peft4j.bindings.Peft4j;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Which kernel variant (ISA) a test run exercises. tests/pom.xml runs the kernel tests once per
 * variant with PEFT4J_CPU_ISA = avx512, avx2 or baseline, and registers this class there (JUnit
 * extension autodetection): a run whose ISA this CPU lacks would silently test a narrower variant
 * under the wrong name, so every test of it is skipped instead, with the reason printed and put in
 * the report. {@link IsaTest} asserts the effective ISA in every run.
 */
public final class IsaRun implements ExecutionCondition {
    static final Set<String> NAMES = Set.of("avx512", "avx2", "baseline");
    private static ConditionEvaluationResult verdict;

    /** PEFT4J_CPU_ISA, or null when unset. */
    static String requested() {
        String v = System.getenv("PEFT4J_CPU_ISA");
        return v == null || v.isBlank() ? null : v.trim();
    }

    /** The kernel variant the native library runs, from the "kernels X" end of p4j_build_info(). */
    static String effective() {
        NativeLoader.loadCpu();
        String info = Peft4j.p4j_build_info().reinterpret(4096).getString(0);
        Matcher m = Pattern.compile("kernels (\\w+)$").matcher(info);
        if (!m.find()) throw new IllegalStateException("p4j_build_info() '" + info + "' does not name the kernel ISA");
        return m.group(1);
    }

    /** The widest variant this CPU can run, from /proc/cpuinfo's flags (what native/cpu/abi.cpp requires). */
    static String widestOfCpu() {
        Set<String> f = cpuFlags();
        boolean avx2 = f.contains("avx2") && f.contains("fma");
        if (avx2 && f.containsAll(Set.of("avx512f", "avx512vl", "avx512bw", "avx512dq"))) return "avx512";
        return avx2 ? "avx2" : "baseline";
    }

    static Set<String> cpuFlags() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("flags")) return Set.of(line.substring(line.indexOf(':') + 1).trim().split("\\s+"));
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot read /proc/cpuinfo: " + e.getMessage(), e);
        }
        throw new IllegalStateException("/proc/cpuinfo has no flags line");
    }

    static int rank(String isa) {
        return switch (isa) {
            case "baseline" -> 0;
            case "avx2" -> 1;
            case "avx512" -> 2;
            default -> throw new IllegalArgumentException("unknown ISA '" + isa + "' (expected avx512, avx2 or baseline)");
        };
    }

    @Override
    public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
        synchronized (IsaRun.class) {
            if (verdict == null) verdict = decide();
            return verdict;
        }
    }

    private static ConditionEvaluationResult decide() {
        String req = requested();
        if (req == null) return ConditionEvaluationResult.enabled("PEFT4J_CPU_ISA unset: the widest variant runs");
        ConditionEvaluationResult r = decide(req, effective(), widestOfCpu());
        System.out.println(r.getReason().orElseThrow());
        return r;
    }

    /** The verdict for a run asking for req where the library runs eff and the CPU's widest is widest. */
    static ConditionEvaluationResult decide(String req, String eff, String widest) {
        if (!NAMES.contains(req)) {
            throw new IllegalStateException("PEFT4J_CPU_ISA=" + req + " is not one of avx512, avx2, baseline");
        }
        if (eff.equals(req)) {
            return ConditionEvaluationResult.enabled("peft4j kernel tests: this run exercises the " + eff
                    + " kernels (PEFT4J_CPU_ISA=" + req + "; the CPU's widest is " + widest + ")");
        }
        return ConditionEvaluationResult.disabled("peft4j kernel tests: SKIPPING the " + req + " run: this CPU lacks "
                + req + " (its widest kernel ISA is " + widest + "; the library would run " + eff + ")");
    }
}
