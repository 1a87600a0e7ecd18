package io.peft4j.bench;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * sgemm M×N×K through the Java API: c[M, N] = a[M, K]·b[K, N] (no transposes), the same call
 * native/bench/sgemm_bench.c makes from C, so the ratio of the two is the FFM overhead.
 */
@State(Scope.Benchmark)
public class SgemmBench {
    public static final long M = 512, N = 4096, K = 4096;

    Backend be;
    Tensor a, b, c;

    @Setup(Level.Trial)
    public void setup() {
        be = Backend.cpu();
        a = Fill.random(be, M, K);
        b = Fill.random(be, K, N);
        c = Fill.random(be, M, N);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        Fill.close(a, b, c);
    }

    /** 2·M·N·K floating-point operations per call. */
    @Benchmark
    @BenchmarkMode(Mode.SampleTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    public void sgemm() {
        be.gemm(false, false, 1f, a, b, 0f, c);
    }
}
