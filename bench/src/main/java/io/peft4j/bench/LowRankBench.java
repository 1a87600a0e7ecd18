package io.peft4j.bench;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * One linear layer's forward + backward at T = 512 tokens, d_in = d_out = 4096, with and without
 * a rank-r LoRA adapter: the adapter's cost relative to the base matmuls it rides on.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class LowRankBench {
    public static final long T = 512, D_IN = 4096, D_OUT = 4096;

    /** The base layer: frozen (or trainable) W0 [d_out, d_in], activations and gradients. */
    @State(Scope.Benchmark)
    public static class Base {
        Backend be;
        Tensor x, w0, g, y, dx, dw;

        @Setup(Level.Trial)
        public void setup() {
            be = Backend.cpu();
            x = Fill.random(be, T, D_IN);
            w0 = Fill.uniform(be, -0.02f, 0.02f, D_OUT, D_IN);
            g = Fill.random(be, T, D_OUT);
            y = Fill.random(be, T, D_OUT);
            dx = Fill.random(be, T, D_IN);
            dw = Fill.random(be, D_OUT, D_IN);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            Fill.close(x, w0, g, y, dx, dw);
        }
    }

    /** The adapter: a [r, d_in], b [d_out, r], saved h and workspace gb [t, r], grads. */
    @State(Scope.Benchmark)
    public static class Lora {
        @Param({"8", "16", "64"})
        public int r;

        float s;
        Tensor a, b, h, gb, da, db;

        @Setup(Level.Trial)
        public void setup() {
            Backend be = Backend.cpu();
            s = 16f / r;
            a = Fill.uniform(be, -0.02f, 0.02f, r, D_IN);
            b = Fill.uniform(be, -0.02f, 0.02f, D_OUT, r);
            h = Fill.random(be, T, r);
            gb = Fill.random(be, T, r);
            da = Fill.random(be, r, D_IN);
            db = Fill.random(be, D_OUT, r);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            Fill.close(a, b, h, gb, da, db);
        }
    }

    /** Frozen base: y = x·W0ᵀ; dX = g·W0 (no dW). 4·T·d_in·d_out flops. */
    @Benchmark
    public void baseFwdBwd(Base p) {
        p.be.gemm(false, true, 1f, p.x, p.w0, 0f, p.y);
        p.be.gemm(false, false, 1f, p.g, p.w0, 0f, p.dx);
    }

    /** Trainable base: as {@link #baseFwdBwd} plus dW = gᵀ·x. 6·T·d_in·d_out flops. */
    @Benchmark
    public void baseTrainableFwdBwd(Base p) {
        p.be.gemm(false, true, 1f, p.x, p.w0, 0f, p.y);
        p.be.gemm(false, false, 1f, p.g, p.w0, 0f, p.dx);
        p.be.gemm(true, false, 1f, p.g, p.x, 0f, p.dw);
    }

    /**
     * The adapter alone: lowrankForward (y +=) and lowrankBackward (dX +=), a few ms. Its ratio
     * (base + adapter) / base does not depend on the drift between two forks of ~200 ms gemms.
     */
    @Benchmark
    public void adapterFwdBwd(Base p, Lora l) {
        p.be.lowrankForward(l.s, p.x, l.a, l.b, l.h, p.y);
        p.be.lowrankBackward(l.s, p.x, l.a, l.b, l.h, p.g, l.gb, l.da, l.db, p.dx, false);
    }

    /** Frozen base + LoRA: y = x·W0ᵀ + s·(x·aᵀ)·bᵀ; dX = g·W0 + s·(g·b)·a; da, db. */
    @Benchmark
    public void loraFwdBwd(Base p, Lora l) {
        Backend be = p.be;
        be.gemm(false, true, 1f, p.x, p.w0, 0f, p.y);
        be.lowrankForward(l.s, p.x, l.a, l.b, l.h, p.y);
        be.gemm(false, false, 1f, p.g, p.w0, 0f, p.dx);
        be.lowrankBackward(l.s, p.x, l.a, l.b, l.h, p.g, l.gb, l.da, l.db, p.dx, false);
    }
}
