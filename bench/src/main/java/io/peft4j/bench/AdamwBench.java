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

/** AdamW over 16M floats: memory-bound, compared with the copy bandwidth. */
@State(Scope.Benchmark)
public class AdamwBench {
    /** Bytes moved per step: 7·4·N (read param, grad, m, v; write param, m, v). */
    public static final long N = 16L << 20;

    Backend be;
    Tensor param, grad, m, v;
    long step;

    @Setup(Level.Trial)
    public void setup() {
        be = Backend.cpu();
        param = Fill.random(be, N);
        grad = Fill.uniform(be, -1e-2f, 1e-2f, N);
        m = Fill.uniform(be, -1e-3f, 1e-3f, N);
        v = Fill.uniform(be, 1e-6f, 1e-4f, N);
        step = 0;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        Fill.close(param, grad, m, v);
    }

    @Benchmark
    @BenchmarkMode(Mode.SampleTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    public void adamw() {
        be.adamwStep(param, grad, m, v, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f, ++step);
    }
}
