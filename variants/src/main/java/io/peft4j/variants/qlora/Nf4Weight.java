package io.peft4j.variants.qlora;

import io.peft4j.backend.Backend;
import io.peft4j.nn.FrozenWeight;
import io.peft4j.nn.StepContext;
import io.peft4j.quant.Nf4Tensor;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;

/**
 * A Linear's frozen W [out, in] in NF4: products go through the fused NF4 kernels (GEMV for few
 * rows, dequantized tiles and GEMM for many). With double quantization the fp32 block constants
 * are rebuilt into the step arena on each call (1/64 of the weights' work at block size 64).
 */
public final class Nf4Weight implements FrozenWeight {
    private final Nf4Tensor w;

    public Nf4Weight(Nf4Tensor w) {
        if (w.shape().length != 2) throw new IllegalArgumentException("an NF4 Linear weight must be 2-D, got " + w);
        this.w = w;
    }

    public Nf4Tensor nf4() { return w; }

    @Override public long[] shape() { return w.shape(); }

    private Tensor absmax(StepContext ctx) {
        Tensor am = ctx.allocate(w.blocks());
        w.blockAbsmax(ctx.backend(), am);
        return am;
    }

    private Tensor workspace(StepContext ctx, long t) {
        long n = ctx.backend().nf4Workspace(t, w.shape()[1], w.shape()[0]);
        return n == 0 ? null : ctx.allocate(n);
    }

    @Override
    public void forward(StepContext ctx, Tensor x, Tensor y) {
        ctx.backend().nf4Matmul(w.blockSize(), x, w.packed(), absmax(ctx), workspace(ctx, x.dim(0)), y);
    }

    @Override
    public void inputGrad(StepContext ctx, Tensor g, Tensor dx) {
        ctx.backend().nf4MatmulDx(w.blockSize(), g, w.packed(), absmax(ctx), workspace(ctx, g.dim(0)), dx);
    }

    @Override
    public Tensor dequantize(Backend backend) {
        return w.dequantize(backend, DType.F32);
    }

    @Override
    public long residentBytes() {
        return w.residentBytes();
    }

    @Override
    public void close() {
        w.close();
    }
}
