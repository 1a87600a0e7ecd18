package io.peft4j.bench;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.DType;
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
 * NF4 on a 4096x4096 weight (block size 64): dequantize (against copy bandwidth), the fused matmul
 * at T = 1 against the fp32 GEMV and at T = 512 against the fp32 GEMM, and a QLoRA layer's
 * forward + backward (r = 16) at T = 512 against the fp32 base layer's (LowRankBench.baseFwdBwd).
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class Nf4Bench {
    public static final long D = 4096, T = 512, R = 16;
    public static final int BLOCK = 64;

    @State(Scope.Benchmark)
    public static class W {
        Backend be;
        Tensor w, packed, absmax, codes, scales, ws1, deq, x1, y1, x, y, g, dx, ws, a, b, h, gb, da, db;

        @Setup(Level.Trial)
        public void setup() {
            be = Backend.cpu();
            w = Fill.uniform(be, -0.02f, 0.02f, D, D);
            packed = Tensor.zeros(DType.U8, D * D / 2);
            absmax = Tensor.zeros(DType.F32, D * D / BLOCK);
            be.nf4Quantize(BLOCK, w, packed, absmax);
            long[] rp = be.nf4RpSize(BLOCK, D, D);
            codes = Tensor.zeros(DType.U8, rp[0]);
            scales = Tensor.zeros(DType.F32, rp[1]);
            be.nf4Repack(BLOCK, D, D, packed, absmax, codes, scales);
            ws1 = Tensor.zeros(DType.U8, be.nf4RpWorkspace(1, D));
            deq = Fill.random(be, D, D);
            x1 = Fill.random(be, 1, D);
            y1 = Fill.random(be, 1, D);
            x = Fill.random(be, T, D);
            y = Fill.random(be, T, D);
            g = Fill.random(be, T, D);
            dx = Fill.random(be, T, D);
            ws = Fill.random(be, be.nf4Workspace(T, D, D));
            a = Fill.uniform(be, -0.02f, 0.02f, R, D);
            b = Fill.uniform(be, -0.02f, 0.02f, D, R);
            h = Fill.random(be, T, R);
            gb = Fill.random(be, T, R);
            da = Fill.random(be, R, D);
            db = Fill.random(be, D, R);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            Fill.close(w, packed, absmax, codes, scales, ws1, deq, x1, y1, x, y, g, dx, ws, a, b, h, gb, da, db);
        }
    }

    /** 4096² NF4 weights to fp32: 64 MiB written, 8.5 MiB read. */
    @Benchmark
    public void dequantize(W s) {
        s.be.nf4Dequantize(BLOCK, s.packed, s.absmax, s.deq);
    }

    /** y = x·Wᵀ, one row, fp32 W (reads 64 MiB). */
    @Benchmark
    public void gemvFp32(W s) {
        s.be.gemm(false, true, 1f, s.x1, s.w, 0f, s.y1);
    }

    /**
     * y = x·dequant(W)ᵀ, one row, NF4 W in the kernel layout that Nf4Weight builds once for
     * products at few rows (reads 8 MiB of codes and 1 MiB of scales).
     */
    @Benchmark
    public void gemvNf4(W s) {
        s.be.nf4MatmulRp(BLOCK, s.x1, s.codes, s.scales, s.ws1, s.y1);
    }

    /** The same product straight from bitsandbytes' layout (reads 8.5 MiB). */
    @Benchmark
    public void gemvNf4Bnb(W s) {
        s.be.nf4Matmul(BLOCK, s.x1, s.packed, s.absmax, null, s.y1);
    }

    @Benchmark
    public void gemmFp32(W s) {
        s.be.gemm(false, true, 1f, s.x, s.w, 0f, s.y);
    }

    @Benchmark
    public void gemmNf4(W s) {
        s.be.nf4Matmul(BLOCK, s.x, s.packed, s.absmax, s.ws, s.y);
    }

    /** QLoRA layer: y = x·dequant(W)ᵀ + LoRA; dX = g·dequant(W) + LoRA's; da, db. */
    @Benchmark
    public void qloraFwdBwd(W s) {
        Backend be = s.be;
        be.nf4Matmul(BLOCK, s.x, s.packed, s.absmax, s.ws, s.y);
        be.lowrankForward(1f, s.x, s.a, s.b, s.h, s.y);
        be.nf4MatmulDx(BLOCK, s.g, s.packed, s.absmax, s.ws, s.dx);
        be.lowrankBackward(1f, s.x, s.a, s.b, s.h, s.g, s.gb, s.da, s.db, s.dx, false);
    }
}
