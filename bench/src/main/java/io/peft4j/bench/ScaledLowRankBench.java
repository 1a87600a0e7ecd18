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
 * VeRA at its default r = 256 on one layer at T = 512, d_in = d_out = 4096 (the base matmuls are
 * {@link LowRankBench}'s): the fused scaled low-rank op (trained u, v; frozen A, B), alone and on the
 * base, and the same math composed from unfused ops (GEMMs into a t×d_out intermediate, elementwise
 * products with pre-broadcast scalings, column sums).
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class ScaledLowRankBench {
    public static final long T = LowRankBench.T, D_IN = LowRankBench.D_IN, D_OUT = LowRankBench.D_OUT, R = 256;

    @State(Scope.Benchmark)
    public static class Vera {
        Backend be;
        Tensor a, b, u, v, h, zKept, work, du, dv;
        // For the unfused composition: u, v broadcast to [t, r] and [t, d_out], and its intermediates.
        Tensor uRows, vRows, hu, z, gz, gv, gb;

        @Setup(Level.Trial)
        public void setup() {
            be = Backend.cpu();
            a = Fill.uniform(be, -0.04f, 0.04f, R, D_IN);
            b = Fill.uniform(be, -0.15f, 0.15f, D_OUT, R);
            u = Fill.uniform(be, 0.05f, 0.15f, R);
            v = Fill.uniform(be, -0.1f, 0.1f, D_OUT);
            h = Fill.random(be, T, R);
            zKept = Fill.random(be, T, D_OUT);
            work = Fill.random(be, 2 * (T + D_OUT) * R);
            du = Fill.random(be, R);
            dv = Fill.random(be, D_OUT);
            uRows = Fill.random(be, T, R);
            vRows = Fill.random(be, T, D_OUT);
            float[] uf = u.toFloatArray(), vf = v.toFloatArray(), ur = new float[(int) (T * R)], vr = new float[(int) (T * D_OUT)];
            for (int i = 0; i < T; i++) {
                System.arraycopy(uf, 0, ur, (int) (i * R), (int) R);
                System.arraycopy(vf, 0, vr, (int) (i * D_OUT), (int) D_OUT);
            }
            uRows.copyFrom(ur);
            vRows.copyFrom(vr);
            hu = Fill.random(be, T, R);
            z = Fill.random(be, T, D_OUT);
            gz = Fill.random(be, T, D_OUT);
            gv = Fill.random(be, T, D_OUT);
            gb = Fill.random(be, T, R);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            Fill.close(a, b, u, v, h, zKept, work, du, dv, uRows, vRows, hu, z, gz, gv, gb);
        }
    }

    /** The VeRA adapter alone: forward (y +=) and backward (du, dv, dX +=; A, B frozen). */
    @Benchmark
    public void veraAdapterFwdBwd(LowRankBench.Base p, Vera s) {
        p.be.scaledLowrankForward(1f, p.x, s.a, s.b, s.u, s.v, s.h, s.zKept, s.work, p.y);
        p.be.scaledLowrankBackward(1f, p.x, s.a, s.b, s.u, s.v, s.h, s.zKept, p.g, s.work, s.du, s.dv, null, null, p.dx, false);
    }

    /** Frozen base + VeRA r = 256, forward and backward. */
    @Benchmark
    public void veraFwdBwd(LowRankBench.Base p, Vera s) {
        Backend be = p.be;
        be.gemm(false, true, 1f, p.x, p.w0, 0f, p.y);
        be.scaledLowrankForward(1f, p.x, s.a, s.b, s.u, s.v, s.h, s.zKept, s.work, p.y);
        be.gemm(false, false, 1f, p.g, p.w0, 0f, p.dx);
        be.scaledLowrankBackward(1f, p.x, s.a, s.b, s.u, s.v, s.h, s.zKept, p.g, s.work, s.du, s.dv, null, null, p.dx, false);
    }

    /** The adapter's math from unfused ops: z = ((x·Aᵀ) ⊙ U)·Bᵀ, y += z ⊙ V; dv = Σ g ⊙ z, gb = (g ⊙ V)·B, du = Σ gb ⊙ h, dX += (gb ⊙ U)·A. */
    @Benchmark
    public void unfusedAdapterFwdBwd(LowRankBench.Base p, Vera s) {
        Backend be = p.be;
        be.gemm(false, true, 1f, p.x, s.a, 0f, s.h);
        be.mul(s.h, s.uRows, s.hu);
        be.gemm(false, true, 1f, s.hu, s.b, 0f, s.z);
        be.mul(s.z, s.vRows, s.gz);
        be.axpy(1f, s.gz, p.y);
        be.mul(p.g, s.z, s.gz);
        be.colsum(s.gz, s.dv, false);
        be.mul(p.g, s.vRows, s.gv);
        be.gemm(false, false, 1f, s.gv, s.b, 0f, s.gb);
        be.mul(s.gb, s.h, s.hu);
        be.colsum(s.hu, s.du, false);
        be.mul(s.gb, s.uRows, s.gb);
        be.gemm(false, false, 1f, s.gb, s.a, 1f, p.dx);
    }
}
