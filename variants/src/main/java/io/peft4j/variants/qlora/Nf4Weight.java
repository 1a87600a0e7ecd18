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
 * Forward at few rows (a decode step) uses the kernel layout (Backend#nf4RpSize) when in is a
 * multiple of 8: built once, on the first such call (training at more rows never pays for it), it
 * holds the codes again (about as many bytes as packed) and fp32 absmax per 16 rows and segment;
 * the bitsandbytes bytes stay for saving, merging, the input gradient and products at many rows.
 */
public final class Nf4Weight implements FrozenWeight {
    /** Rows of x at or below which forward uses the kernel layout (the GEMV regime). */
    static final long FEW_ROWS = 16;

    private final Nf4Tensor w;
    private Tensor codes, scales;  // the kernel layout; null until the first forward at few rows

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
        if (x.dim(0) <= FEW_ROWS && kernelLayout(ctx.backend())) {
            long ws = ctx.backend().nf4RpWorkspace(x.dim(0), w.shape()[1]);
            ctx.backend().nf4MatmulRp(w.blockSize(), x, codes, scales, ws == 0 ? null : ctx.allocate(DType.U8, ws), y);
            return;
        }
        ctx.backend().nf4Matmul(w.blockSize(), x, w.packed(), absmax(ctx), workspace(ctx, x.dim(0)), y);
    }

    /** Builds the kernel layout once; false when in is not a multiple of 8 (it has none). */
    private synchronized boolean kernelLayout(Backend backend) {
        long dIn = w.shape()[1], dOut = w.shape()[0];
        if (dIn % 8 != 0) return false;
        if (codes == null) {
            long[] size = backend.nf4RpSize(w.blockSize(), dIn, dOut);
            Tensor c = Tensor.zeros(DType.U8, size[0]), s = Tensor.zeros(DType.F32, size[1]);
            try (Tensor am = Tensor.zeros(DType.F32, w.blocks())) {
                w.blockAbsmax(backend, am);
                backend.nf4Repack(w.blockSize(), dIn, dOut, w.packed(), am, c, s);
            } catch (RuntimeException e) {
                c.close();
                s.close();
                throw e;
            }
            codes = c;
            scales = s;
        }
        return true;
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
    public synchronized long residentBytes() {
        return w.residentBytes() + (codes == null ? 0 : codes.byteSize() + scales.byteSize());
    }

    @Override
    public synchronized void close() {
        w.close();
        if (codes != null) {
            codes.close();
            scales.close();
            codes = scales = null;
        }
    }
}
