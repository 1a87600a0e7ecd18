package io.peft4j.backend;

import static io.peft4j.backend.Checks.*;

import io.peft4j.bindings.Peft4j;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Device;
import io.peft4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** The CPU backend: validated tensors in, libpeft4j.so calls out. */
public final class CpuBackend implements Backend {
    private static volatile CpuBackend shared;

    private final Arena arena = Arena.ofShared();
    private final MemorySegment ctx;
    private final int threads;
    private final boolean isShared;
    // Scalar outputs (loss, flops) go through a small per-thread native buffer.
    private final ThreadLocal<MemorySegment> scratch = ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(64, 64));
    private volatile boolean closed;

    CpuBackend(int threads) {
        this(threads, false);
    }

    private CpuBackend(int threads, boolean isShared) {
        if (threads < 0) throw new IllegalArgumentException("threads must be >= 0 (0 = all cores), got " + threads);
        NativeLoader.loadCpu();
        MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
        check("p4j_ctx_create", Peft4j.p4j_ctx_create(threads, out));
        this.ctx = out.get(ValueLayout.ADDRESS, 0);
        MemorySegment n = arena.allocate(ValueLayout.JAVA_INT);
        check("p4j_ctx_threads", Peft4j.p4j_ctx_threads(ctx, n));
        this.threads = n.get(ValueLayout.JAVA_INT, 0);
        this.isShared = isShared;
    }

    static CpuBackend shared() {
        CpuBackend b = shared;
        if (b == null) {
            synchronized (CpuBackend.class) {
                b = shared;
                if (b == null) shared = b = new CpuBackend(sharedThreads(), true);
            }
        }
        return b;
    }

    private static int sharedThreads() {
        String v = System.getProperty("peft4j.threads", System.getenv().getOrDefault("PEFT4J_THREADS", "0"));
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("peft4j.threads / PEFT4J_THREADS must be an integer, got '" + v + "'");
        }
    }

    @Override public String name() { return "cpu"; }
    @Override public Device device() { return Device.CPU; }
    @Override public int threads() { return threads; }

    static void check(String op, int status) {
        if (status != 0) {
            String msg = Peft4j.p4j_last_error().reinterpret(4096).getString(0);
            throw new NativeException(op, status, msg);
        }
    }

    private MemorySegment ctx() {
        if (closed) throw new IllegalStateException("backend " + name() + " is closed");
        return ctx;
    }

    // ---- GEMM and low-rank ----

    @Override
    public void gemm(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        matrix("a", a);
        matrix("b", b);
        matrix("c", c);
        long m = transA ? a.dim(1) : a.dim(0), k = transA ? a.dim(0) : a.dim(1);
        long kb = transB ? b.dim(1) : b.dim(0), n = transB ? b.dim(0) : b.dim(1);
        if (k != kb || c.dim(0) != m || c.dim(1) != n) {
            throw new IllegalArgumentException("gemm shapes do not agree: op(a) " + m + "x" + k + " (a " + a.describe()
                    + (transA ? "ᵀ" : "") + "), op(b) " + kb + "x" + n + " (b " + b.describe() + (transB ? "ᵀ" : "")
                    + "), c " + c.describe());
        }
        check("p4j_gemm", Peft4j.p4j_gemm(ctx(), transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha,
                a.segment(), a.dim(1), b.segment(), b.dim(1), beta, c.segment(), c.dim(1)));
    }

    @Override
    public void lowrankForward(float s, Tensor x, Tensor a, Tensor b, Tensor h, Tensor y) {
        LowRankDims d = LowRankDims.of(x, a, b);
        shape("h", h, d.t(), d.r());
        shape("y", y, d.t(), d.dOut());
        check("p4j_lowrank_forward", Peft4j.p4j_lowrank_forward(ctx(), d.t(), d.dIn(), d.dOut(), d.r(), s,
                x.segment(), a.segment(), b.segment(), h.segment(), y.segment()));
    }

    @Override
    public void lowrankBackward(float s, Tensor x, Tensor a, Tensor b, Tensor h, Tensor g, Tensor gb,
                                Tensor da, Tensor db, Tensor dx, boolean accumulate) {
        LowRankDims d = LowRankDims.of(x, a, b);
        shape("h", h, d.t(), d.r());
        shape("g", g, d.t(), d.dOut());
        shape("gb", gb, d.t(), d.r());
        shape("da", da, d.r(), d.dIn());
        shape("db", db, d.dOut(), d.r());
        if (dx != null) shape("dx", dx, d.t(), d.dIn());
        check("p4j_lowrank_backward", Peft4j.p4j_lowrank_backward(ctx(), d.t(), d.dIn(), d.dOut(), d.r(), s,
                x.segment(), a.segment(), b.segment(), h.segment(), g.segment(), gb.segment(), da.segment(),
                db.segment(), dx == null ? MemorySegment.NULL : dx.segment(), accumulate ? 1 : 0));
    }

    /** The sizes of a low-rank product, checked once: x [t, d_in], a [r, d_in], b [d_out, r]. */
    private record LowRankDims(long t, long dIn, long dOut, long r) {
        static LowRankDims of(Tensor x, Tensor a, Tensor b) {
            matrix("x", x);
            matrix("a", a);
            matrix("b", b);
            long t = x.dim(0), dIn = x.dim(1), r = a.dim(0);
            if (a.dim(1) != dIn || b.dim(1) != r) {
                throw new IllegalArgumentException("low-rank shapes do not agree: x " + x.describe() + " needs a [r, "
                        + dIn + "], got a " + a.describe() + "; b must be [d_out, " + r + "], got b " + b.describe());
            }
            return new LowRankDims(t, dIn, b.dim(0), r);
        }
    }

    // ---- elementwise ----

    @Override
    public void biasAdd(Tensor bias, Tensor y) {
        matrix("y", y);
        shape("bias", bias, y.dim(1));
        check("p4j_bias_add", Peft4j.p4j_bias_add(ctx(), y.dim(0), y.dim(1), bias.segment(), y.segment()));
    }

    @Override
    public void colsum(Tensor x, Tensor out, boolean accumulate) {
        matrix("x", x);
        shape("out", out, x.dim(1));
        check("p4j_colsum", Peft4j.p4j_colsum(ctx(), x.dim(0), x.dim(1), x.segment(), out.segment(), accumulate ? 1 : 0));
    }

    @Override
    public void reluForward(Tensor x, Tensor y) {
        sameShape("x", x, "y", y);
        check("p4j_relu_forward", Peft4j.p4j_relu_forward(ctx(), x.numel(), x.segment(), y.segment()));
    }

    @Override
    public void reluBackward(Tensor x, Tensor g, Tensor dx) {
        sameShape("x", x, "g", g);
        sameShape("x", x, "dx", dx);
        check("p4j_relu_backward", Peft4j.p4j_relu_backward(ctx(), x.numel(), x.segment(), g.segment(), dx.segment()));
    }

    @Override
    public void geluForward(Tensor x, Tensor y) {
        sameShape("x", x, "y", y);
        check("p4j_gelu_forward", Peft4j.p4j_gelu_forward(ctx(), x.numel(), x.segment(), y.segment()));
    }

    @Override
    public void geluBackward(Tensor x, Tensor g, Tensor dx) {
        sameShape("x", x, "g", g);
        sameShape("x", x, "dx", dx);
        check("p4j_gelu_backward", Peft4j.p4j_gelu_backward(ctx(), x.numel(), x.segment(), g.segment(), dx.segment()));
    }

    @Override
    public void scale(float alpha, Tensor x) {
        f32("x", x);
        check("p4j_scale", Peft4j.p4j_scale(ctx(), x.numel(), alpha, x.segment()));
    }

    @Override
    public void axpy(float alpha, Tensor x, Tensor y) {
        sameShape("x", x, "y", y);
        check("p4j_axpy", Peft4j.p4j_axpy(ctx(), x.numel(), alpha, x.segment(), y.segment()));
    }

    @Override
    public void mul(Tensor x, Tensor y, Tensor out) {
        sameShape("x", x, "y", y);
        sameShape("x", x, "out", out);
        check("p4j_mul", Peft4j.p4j_mul(ctx(), x.numel(), x.segment(), y.segment(), out.segment()));
    }

    @Override
    public void fill(float value, Tensor x) {
        f32("x", x);
        check("p4j_fill", Peft4j.p4j_fill(ctx(), x.numel(), value, x.segment()));
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        sameShape("src", src, "dst", dst);
        if (src.segment().asOverlappingSlice(dst.segment()).isPresent()) {
            throw new IllegalArgumentException("copy: src " + src.describe() + " and dst " + dst.describe() + " overlap");
        }
        check("p4j_copy", Peft4j.p4j_copy(ctx(), src.numel(), src.segment(), dst.segment()));
    }

    @Override
    public void argmaxRows(Tensor x, Tensor out) {
        matrix("x", x);
        if (x.dim(1) == 0 && x.dim(0) > 0) throw new IllegalArgumentException("argmaxRows: x " + x.describe() + " has no columns");
        labels("out", out, x.dim(0));
        check("p4j_argmax_rows", Peft4j.p4j_argmax_rows(ctx(), x.dim(0), x.dim(1), x.segment(), out.segment()));
    }

    // ---- losses ----

    @Override
    public float softmaxXentForward(Tensor logits, Tensor labels, Tensor probs) {
        matrix("logits", logits);
        labels("labels", labels, logits.dim(0));
        sameShape("logits", logits, "probs", probs);
        MemorySegment loss = scratch.get();
        check("p4j_softmax_xent_forward", Peft4j.p4j_softmax_xent_forward(ctx(), logits.dim(0), logits.dim(1),
                logits.segment(), labels.segment(), probs.segment(), loss));
        return loss.get(ValueLayout.JAVA_FLOAT, 0);
    }

    @Override
    public void softmaxXentBackward(Tensor probs, Tensor labels, float scale, Tensor dlogits) {
        matrix("probs", probs);
        labels("labels", labels, probs.dim(0));
        sameShape("probs", probs, "dlogits", dlogits);
        check("p4j_softmax_xent_backward", Peft4j.p4j_softmax_xent_backward(ctx(), probs.dim(0), probs.dim(1),
                probs.segment(), labels.segment(), scale, dlogits.segment()));
    }

    @Override
    public float mse(Tensor pred, Tensor target, Tensor grad) {
        sameShape("pred", pred, "target", target);
        if (grad != null) sameShape("pred", pred, "grad", grad);
        MemorySegment loss = scratch.get();
        check("p4j_mse", Peft4j.p4j_mse(ctx(), pred.numel(), pred.segment(), target.segment(), loss,
                grad == null ? MemorySegment.NULL : grad.segment()));
        return loss.get(ValueLayout.JAVA_FLOAT, 0);
    }

    // ---- optimizers ----

    @Override
    public void adamwStep(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2,
                          float eps, float weightDecay, long step) {
        sameShape("param", param, "grad", grad);
        sameShape("param", param, "m", m);
        sameShape("param", param, "v", v);
        if (step < 1) throw new IllegalArgumentException("adamwStep: step must be >= 1, got " + step);
        check("p4j_adamw_step", Peft4j.p4j_adamw_step(ctx(), param.numel(), param.segment(), grad.segment(),
                m.segment(), v.segment(), lr, beta1, beta2, eps, weightDecay, step));
    }

    @Override
    public void sgdStep(Tensor param, Tensor grad, Tensor buf, float lr, float momentum, float weightDecay,
                        boolean nesterov, boolean first) {
        sameShape("param", param, "grad", grad);
        if (momentum != 0f || buf != null) sameShape("param", param, "buf", buf);
        check("p4j_sgd_step", Peft4j.p4j_sgd_step(ctx(), param.numel(), param.segment(), grad.segment(),
                buf == null ? MemorySegment.NULL : buf.segment(), lr, momentum, weightDecay, nesterov ? 1 : 0, first ? 1 : 0));
    }

    @Override
    public float sumsq(Tensor x) {
        f32("x", x);
        MemorySegment out = scratch.get();
        check("p4j_sumsq", Peft4j.p4j_sumsq(ctx(), x.numel(), x.segment(), out));
        return out.get(ValueLayout.JAVA_FLOAT, 0);
    }

    // ---- random numbers ----

    @Override
    public void rngUniform(long seed, long offset, float lo, float hi, Tensor out) {
        f32("out", out);
        check("p4j_rng_uniform", Peft4j.p4j_rng_uniform(ctx(), out.numel(), seed, offset, lo, hi, out.segment()));
    }

    @Override
    public void rngNormal(long seed, long offset, float mean, float std, Tensor out) {
        f32("out", out);
        check("p4j_rng_normal", Peft4j.p4j_rng_normal(ctx(), out.numel(), seed, offset, mean, std, out.segment()));
    }

    @Override
    public void rngKaimingUniform(long seed, long offset, long fanIn, float a, Tensor out) {
        f32("out", out);
        if (fanIn <= 0) throw new IllegalArgumentException("rngKaimingUniform: fanIn must be > 0, got " + fanIn);
        check("p4j_rng_kaiming_uniform", Peft4j.p4j_rng_kaiming_uniform(ctx(), out.numel(), seed, offset, fanIn, a, out.segment()));
    }

    @Override
    public void dropoutForward(float p, long seed, long offset, Tensor x, Tensor mask, Tensor y) {
        sameShape("x", x, "y", y);
        mask("mask", mask, x.numel());
        probability(p);
        check("p4j_dropout_forward", Peft4j.p4j_dropout_forward(ctx(), x.numel(), p, seed, offset, x.segment(),
                mask.segment(), y.segment()));
    }

    @Override
    public void dropoutBackward(float p, Tensor mask, Tensor g, Tensor dx) {
        sameShape("g", g, "dx", dx);
        mask("mask", mask, g.numel());
        probability(p);
        check("p4j_dropout_backward", Peft4j.p4j_dropout_backward(ctx(), g.numel(), p, mask.segment(), g.segment(), dx.segment()));
    }

    // ---- ceilings ----

    @Override
    public long fmaPeak(long iters) {
        if (iters < 0) throw new IllegalArgumentException("fmaPeak: iters must be >= 0, got " + iters);
        MemorySegment out = scratch.get();
        check("p4j_fma_peak", Peft4j.p4j_fma_peak(ctx(), iters, out, out.asSlice(8)));
        return out.get(ValueLayout.JAVA_LONG, 0);
    }

    // ---- diagonally scaled low-rank (VeRA, Tied-LoRA) ----

    @Override
    public void scaledLowrankForward(float s, Tensor x, Tensor a, Tensor b, Tensor u, Tensor v, Tensor h, Tensor z, Tensor work,
                                     Tensor y) {
        matrix("y", y);
        ScaledDims d = ScaledDims.of(x, a, b, u, v, y.dim(1));
        shape("y", y, d.t(), d.dOut());
        shape("h", h, d.t(), d.r());
        shape("z", z, d.t(), d.dOut());
        workspace(work, d.t() * d.r());
        check("p4j_scaled_lowrank_forward", Peft4j.p4j_scaled_lowrank_forward(ctx(), d.t(), d.dIn(), d.dOut(), d.r(),
                a.dim(1), s, x.segment(), a.segment(), b.segment(), orNull(u), orNull(v), h.segment(), z.segment(),
                work.segment(), y.segment()));
    }

    @Override
    public void scaledLowrankBackward(float s, Tensor x, Tensor a, Tensor b, Tensor u, Tensor v, Tensor h, Tensor z, Tensor g,
                                      Tensor work, Tensor du, Tensor dv, Tensor da, Tensor db, Tensor dx, boolean accumulate) {
        matrix("g", g);
        ScaledDims d = ScaledDims.of(x, a, b, u, v, g.dim(1));
        shape("g", g, d.t(), d.dOut());
        shape("h", h, d.t(), d.r());
        shape("z", z, d.t(), d.dOut());
        workspace(work, 2 * (d.t() + d.dOut()) * d.r());
        if (du != null) shape("du", du, d.r());
        if (dv != null) shape("dv", dv, d.dOut());
        if (da != null) shape("da", da, a.shape());
        if (db != null) shape("db", db, b.shape());
        if (dx != null) shape("dx", dx, d.t(), d.dIn());
        check("p4j_scaled_lowrank_backward", Peft4j.p4j_scaled_lowrank_backward(ctx(), d.t(), d.dIn(), d.dOut(), d.r(),
                a.dim(1), s, x.segment(), a.segment(), b.segment(), orNull(u), orNull(v), h.segment(), z.segment(), g.segment(),
                work.segment(), orNull(du), orNull(dv), orNull(da), orNull(db), orNull(dx), accumulate ? 1 : 0));
    }

    private static MemorySegment orNull(Tensor t) {
        return t == null ? MemorySegment.NULL : t.segment();
    }

    private static void workspace(Tensor work, long needed) {
        f32("work", work);
        if (work.numel() < needed) {
            throw new IllegalArgumentException("work " + work.describe() + " must hold at least " + needed + " floats");
        }
    }

    /** Sizes of a scaled low-rank product: x [t, d_in], a [r, D_in ≥ d_in], b [D_out ≥ d_out, r], u [r], v [d_out]. */
    private record ScaledDims(long t, long dIn, long dOut, long r) {
        static ScaledDims of(Tensor x, Tensor a, Tensor b, Tensor u, Tensor v, long dOut) {
            matrix("x", x);
            matrix("a", a);
            matrix("b", b);
            long t = x.dim(0), dIn = x.dim(1), r = a.dim(0);
            if (a.dim(1) < dIn || b.dim(1) != r || b.dim(0) < dOut) {
                throw new IllegalArgumentException("scaled low-rank shapes do not agree: x " + x.describe() + " needs a [r, >= "
                        + dIn + "], got a " + a.describe() + "; b must be [>= " + dOut + ", " + r + "], got b " + b.describe());
            }
            if (u != null) shape("u", u, r);
            if (v != null) shape("v", v, dOut);
            return new ScaledDims(t, dIn, dOut, r);
        }
    }

    // ---- rank-adaptive methods ----

    @Override
    public void rankGatedForward(float c, Tensor x, Tensor a, Tensor g, Tensor b, Tensor h, Tensor hg, Tensor y) {
        LowRankDims d = LowRankDims.of(x, a, b);
        gate(g, d.r());
        shape("h", h, d.t(), d.r());
        shape("hg", hg, d.t(), d.r());
        shape("y", y, d.t(), d.dOut());
        if (!Float.isFinite(c)) throw new IllegalArgumentException("rankGatedForward: c must be finite, got " + c);
        check("p4j_rank_gated_forward", Peft4j.p4j_rank_gated_forward(ctx(), d.t(), d.dIn(), d.dOut(), d.r(), c,
                x.segment(), a.segment(), g.segment(), b.segment(), h.segment(), hg.segment(), y.segment()));
    }

    @Override
    public void rankGatedBackward(float c, Tensor x, Tensor a, Tensor g, Tensor b, Tensor h, Tensor gy, Tensor gb, Tensor ws,
                                  Tensor da, Tensor db, Tensor dg, Tensor dx, boolean accumulate) {
        LowRankDims d = LowRankDims.of(x, a, b);
        gate(g, d.r());
        shape("h", h, d.t(), d.r());
        shape("gy", gy, d.t(), d.dOut());
        shape("gb", gb, d.t(), d.r());
        shape("ws", ws, d.t(), d.r());
        if (da != null) shape("da", da, d.r(), d.dIn());
        if (db != null) shape("db", db, d.dOut(), d.r());
        if (dg != null) {
            f32("dg", dg);
            if (dg.numel() != d.r()) throw new IllegalArgumentException("dg " + dg.describe() + " must have " + d.r() + " elements (like g)");
        }
        if (dx != null) shape("dx", dx, d.t(), d.dIn());
        if (!Float.isFinite(c)) throw new IllegalArgumentException("rankGatedBackward: c must be finite, got " + c);
        check("p4j_rank_gated_backward", Peft4j.p4j_rank_gated_backward(ctx(), d.t(), d.dIn(), d.dOut(), d.r(), c,
                x.segment(), a.segment(), g.segment(), b.segment(), h.segment(), gy.segment(), gb.segment(), ws.segment(),
                orNull(da), orNull(db), orNull(dg), orNull(dx), accumulate ? 1 : 0));
    }

    private static void gate(Tensor g, long r) {
        f32("g", g);
        if (g.numel() != r) throw new IllegalArgumentException("g " + g.describe() + " must have r = " + r + " elements");
    }

    @Override
    public void rankImportanceUpdate(Tensor w, Tensor grad, Tensor ibar, Tensor ubar, float beta1, float beta2) {
        sameShape("w", w, "grad", grad);
        sameShape("w", w, "ibar", ibar);
        sameShape("w", w, "ubar", ubar);
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
            throw new IllegalArgumentException("rankImportanceUpdate: betas must be in [0, 1), got beta1=" + beta1 + ", beta2=" + beta2);
        }
        check("p4j_rank_importance_update", Peft4j.p4j_rank_importance_update(ctx(), w.numel(), w.segment(), grad.segment(),
                ibar.segment(), ubar.segment(), beta1, beta2));
    }

    @Override
    public void rankThreshold(float xi, boolean soft, Tensor x) {
        f32("x", x);
        if (!(xi >= 0) || !Float.isFinite(xi)) throw new IllegalArgumentException("rankThreshold: xi must be finite and >= 0, got xi=" + xi);
        check("p4j_rank_threshold", Peft4j.p4j_rank_threshold(ctx(), x.numel(), xi, soft ? 1 : 0, x.segment()));
    }

    // ---- NF4 4-bit quantisation ----

    @Override
    public void nf4Tables(Tensor code, Tensor dynamicMap) {
        shape("code", code, 16);
        shape("dynamicMap", dynamicMap, 256);
        check("p4j_nf4_tables", Peft4j.p4j_nf4_tables(code.segment(), dynamicMap.segment()));
    }

    @Override
    public void nf4Quantize(int blockSize, Tensor x, Tensor packed, Tensor absmax) {
        f32("x", x);
        nf4Storage(blockSize, x.numel(), packed, absmax);
        check("p4j_nf4_quantize", Peft4j.p4j_nf4_quantize(ctx(), x.numel(), blockSize, x.segment(), packed.segment(),
                absmax.segment()));
    }

    @Override
    public void nf4Dequantize(int blockSize, Tensor packed, Tensor absmax, Tensor out) {
        present("out", out);
        nf4Storage(blockSize, out.numel(), packed, absmax);
        if (out.dtype() == DType.F32) {
            check("p4j_nf4_dequantize", Peft4j.p4j_nf4_dequantize(ctx(), out.numel(), blockSize, packed.segment(),
                    absmax.segment(), out.segment()));
        } else if (out.dtype() == DType.BF16) {
            check("p4j_nf4_dequantize_bf16", Peft4j.p4j_nf4_dequantize_bf16(ctx(), out.numel(), blockSize,
                    packed.segment(), absmax.segment(), out.segment()));
        } else {
            throw new IllegalArgumentException("nf4Dequantize: out " + out.describe() + " must be F32 or BF16");
        }
    }

    @Override
    public float nf4DoubleQuantize(Tensor absmax, Tensor qabsmax, Tensor absmax2) {
        f32("absmax", absmax);
        long nb = absmax.numel();
        if (nb == 0) throw new IllegalArgumentException("nf4DoubleQuantize: absmax " + absmax.describe() + " is empty");
        bytes("qabsmax", qabsmax, nb);
        shape("absmax2", absmax2, (nb + 255) / 256);
        MemorySegment out = scratch.get();
        check("p4j_nf4_double_quantize", Peft4j.p4j_nf4_double_quantize(ctx(), nb, absmax.segment(), qabsmax.segment(),
                absmax2.segment(), out));
        return out.get(ValueLayout.JAVA_FLOAT, 0);
    }

    @Override
    public void nf4DequantizeAbsmax(Tensor qabsmax, Tensor absmax2, float offset, Tensor absmax) {
        f32("absmax", absmax);
        long nb = absmax.numel();
        bytes("qabsmax", qabsmax, nb);
        shape("absmax2", absmax2, (nb + 255) / 256);
        if (!Float.isFinite(offset)) throw new IllegalArgumentException("nf4DequantizeAbsmax: offset " + offset + " is not finite");
        check("p4j_nf4_dequantize_absmax", Peft4j.p4j_nf4_dequantize_absmax(ctx(), nb, qabsmax.segment(),
                absmax2.segment(), offset, absmax.segment()));
    }

    @Override
    public long nf4Workspace(long t, long dIn, long dOut) {
        MemorySegment out = scratch.get();
        check("p4j_nf4_workspace", Peft4j.p4j_nf4_workspace(t, dIn, dOut, out));
        return out.get(ValueLayout.JAVA_LONG, 0);
    }

    @Override
    public void nf4Matmul(int blockSize, Tensor x, Tensor packed, Tensor absmax, Tensor workspace, Tensor y) {
        matrix("x", x);
        matrix("y", y);
        if (y.dim(0) != x.dim(0)) throw new IllegalArgumentException("nf4Matmul: y " + y.describe() + " must have the rows of x " + x.describe());
        long t = x.dim(0), dIn = x.dim(1), dOut = y.dim(1);
        nf4Storage(blockSize, dIn * dOut, packed, absmax);
        MemorySegment ws = nf4WorkspaceSegment(workspace, t, dIn, dOut);
        check("p4j_nf4_matmul", Peft4j.p4j_nf4_matmul(ctx(), t, dIn, dOut, blockSize, x.segment(), packed.segment(),
                absmax.segment(), ws, y.segment()));
    }

    @Override
    public void nf4MatmulDx(int blockSize, Tensor g, Tensor packed, Tensor absmax, Tensor workspace, Tensor dx) {
        matrix("g", g);
        matrix("dx", dx);
        if (dx.dim(0) != g.dim(0)) throw new IllegalArgumentException("nf4MatmulDx: dx " + dx.describe() + " must have the rows of g " + g.describe());
        long t = g.dim(0), dIn = dx.dim(1), dOut = g.dim(1);
        nf4Storage(blockSize, dIn * dOut, packed, absmax);
        MemorySegment ws = nf4WorkspaceSegment(workspace, t, dIn, dOut);
        check("p4j_nf4_matmul_dx", Peft4j.p4j_nf4_matmul_dx(ctx(), t, dIn, dOut, blockSize, g.segment(), packed.segment(),
                absmax.segment(), ws, dx.segment()));
    }

    @Override
    public long[] nf4RpSize(int blockSize, long dIn, long dOut) {
        nf4BlockSize(blockSize);
        nf4RpDIn(dIn);
        if (dOut < 0) throw new IllegalArgumentException("NF4 kernel layout: d_out (" + dOut + ") must be >= 0");
        MemorySegment out = scratch.get();
        check("p4j_nf4_rp_size", Peft4j.p4j_nf4_rp_size(dIn, dOut, blockSize, out, out.asSlice(8)));
        return new long[] {out.get(ValueLayout.JAVA_LONG, 0), out.get(ValueLayout.JAVA_LONG, 8)};
    }

    @Override
    public void nf4Repack(int blockSize, long dIn, long dOut, Tensor packed, Tensor absmax, Tensor codes, Tensor scales) {
        nf4Storage(blockSize, Math.multiplyExact(dIn, dOut), packed, absmax);
        nf4RpStorage(blockSize, dIn, dOut, codes, scales);
        check("p4j_nf4_repack", Peft4j.p4j_nf4_repack(ctx(), dIn, dOut, blockSize, packed.segment(), absmax.segment(),
                codes.segment(), scales.segment()));
    }

    @Override
    public void nf4RpDequantize(int blockSize, Tensor codes, Tensor scales, Tensor out) {
        matrix("out", out);
        long dIn = out.dim(1), dOut = out.dim(0);
        nf4RpStorage(blockSize, dIn, dOut, codes, scales);
        check("p4j_nf4_rp_dequantize", Peft4j.p4j_nf4_rp_dequantize(ctx(), dIn, dOut, blockSize, codes.segment(),
                scales.segment(), out.segment()));
    }

    @Override
    public long nf4RpWorkspace(long t, long dIn) {
        if (t < 0) throw new IllegalArgumentException("NF4 kernel layout workspace: t (" + t + ") must be >= 0");
        nf4RpDIn(dIn);
        MemorySegment out = scratch.get();
        check("p4j_nf4_rp_workspace", Peft4j.p4j_nf4_rp_workspace(t, dIn, out));
        return out.get(ValueLayout.JAVA_LONG, 0);
    }

    @Override
    public void nf4MatmulRp(int blockSize, Tensor x, Tensor codes, Tensor scales, Tensor workspace, Tensor y) {
        matrix("x", x);
        matrix("y", y);
        if (y.dim(0) != x.dim(0)) throw new IllegalArgumentException("nf4MatmulRp: y " + y.describe() + " must have the rows of x " + x.describe());
        long t = x.dim(0), dIn = x.dim(1), dOut = y.dim(1);
        nf4RpStorage(blockSize, dIn, dOut, codes, scales);
        MemorySegment ws = workspaceSegment(workspace, nf4RpWorkspace(t, dIn), DType.U8, "nf4RpWorkspace(" + t + ", " + dIn + ")");
        check("p4j_nf4_matmul_rp", Peft4j.p4j_nf4_matmul_rp(ctx(), t, dIn, dOut, blockSize, x.segment(), codes.segment(),
                scales.segment(), ws, y.segment()));
    }

    /** codes U8 and scales F32 of the sizes nf4RpSize gives for W [dOut, dIn]. */
    private void nf4RpStorage(int blockSize, long dIn, long dOut, Tensor codes, Tensor scales) {
        long[] size = nf4RpSize(blockSize, dIn, dOut);
        bytes("codes", codes, size[0]);
        f32("scales", scales);
        if (scales.numel() != size[1]) {
            throw new IllegalArgumentException("scales " + scales.describe() + " must have " + size[1] + " elements (W ["
                    + dOut + ", " + dIn + "] in blocks of " + blockSize + ")");
        }
    }

    private static void nf4BlockSize(int blockSize) {
        if (blockSize < 32 || blockSize > 4096 || Integer.bitCount(blockSize) != 1) {
            throw new IllegalArgumentException("NF4 block size must be a power of two in [32, 4096], got " + blockSize);
        }
    }

    /** packed U8[(n + 1) / 2] and absmax F32[ceil(n / blockSize)] for n weights. */
    private static void nf4Storage(int blockSize, long n, Tensor packed, Tensor absmax) {
        nf4BlockSize(blockSize);
        bytes("packed", packed, (n + 1) / 2);
        f32("absmax", absmax);
        long nb = (n + blockSize - 1) / blockSize;
        if (absmax.numel() != nb) {
            throw new IllegalArgumentException("absmax " + absmax.describe() + " must have " + nb + " elements (" + n
                    + " weights in blocks of " + blockSize + ")");
        }
    }

    private MemorySegment nf4WorkspaceSegment(Tensor workspace, long t, long dIn, long dOut) {
        return workspaceSegment(workspace, nf4Workspace(t, dIn, dOut), DType.F32, "nf4Workspace(" + t + ", " + dIn + ", " + dOut + ")");
    }

    /** A workspace of at least need elements of dtype (may be null when need is 0), as sizedBy gives. */
    private static MemorySegment workspaceSegment(Tensor workspace, long need, DType dtype, String sizedBy) {
        if (need == 0) return workspace == null ? MemorySegment.NULL : workspace.segment();
        present("workspace", workspace);
        if (workspace.dtype() != dtype || workspace.numel() < need) {
            throw new IllegalArgumentException("workspace " + workspace.describe() + " must be " + dtype + " with at least " + need
                    + " elements (" + sizedBy + ")");
        }
        return workspace.segment();
    }

    private static void nf4RpDIn(long dIn) {
        if (dIn <= 0 || dIn % 8 != 0) throw new IllegalArgumentException("NF4 kernel layout: d_in (" + dIn + ") must be a positive multiple of 8");
    }

    // ---- scaling (SSF, (IA)³, DoRA) ----

    @Override
    public void rowNorms(Tensor x, Tensor out) {
        matrix("x", x);
        shape("out", out, x.dim(0));
        check("p4j_row_norms", Peft4j.p4j_row_norms(ctx(), x.dim(0), x.dim(1), x.segment(), out.segment()));
    }

    @Override
    public void scaleShiftForward(Tensor x, Tensor gamma, Tensor beta, Tensor y) {
        matrix("x", x);
        sameShape("x", x, "y", y);
        shape("gamma", gamma, x.dim(1));
        if (beta != null) shape("beta", beta, x.dim(1));
        check("p4j_scale_shift_forward", Peft4j.p4j_scale_shift_forward(ctx(), x.dim(0), x.dim(1), x.segment(), gamma.segment(),
                beta == null ? MemorySegment.NULL : beta.segment(), y.segment()));
    }

    @Override
    public void scaleShiftBackward(Tensor x, Tensor gamma, Tensor g, Tensor dgamma, Tensor dbeta, Tensor dx, boolean accumulate) {
        matrix("g", g);
        long t = g.dim(0), d = g.dim(1);
        if (dgamma != null) {
            if (x == null) throw new IllegalArgumentException("scaleShiftBackward: dgamma needs x");
            sameShape("g", g, "x", x);
            shape("dgamma", dgamma, d);
        }
        if (dbeta != null) shape("dbeta", dbeta, d);
        if (dx != null) {
            if (gamma == null) throw new IllegalArgumentException("scaleShiftBackward: dx needs gamma");
            shape("gamma", gamma, d);
            sameShape("g", g, "dx", dx);
        }
        check("p4j_scale_shift_backward", Peft4j.p4j_scale_shift_backward(ctx(), t, d,
                x == null ? MemorySegment.NULL : x.segment(), gamma == null ? MemorySegment.NULL : gamma.segment(), g.segment(),
                dgamma == null ? MemorySegment.NULL : dgamma.segment(), dbeta == null ? MemorySegment.NULL : dbeta.segment(),
                dx == null ? MemorySegment.NULL : dx.segment(), accumulate ? 1 : 0));
    }

    @Override
    public void rowScale(Tensor s, Tensor x) {
        matrix("x", x);
        shape("s", s, x.dim(0));
        check("p4j_row_scale", Peft4j.p4j_row_scale(ctx(), x.dim(0), x.dim(1), s.segment(), x.segment()));
    }

    // ---- transformer: attention, LayerNorm, token rows ----

    /** t per sequence of an activation [batch·t, features]. */
    private static long perSequence(String name, Tensor x, long batch) {
        matrix(name, x);
        if (batch <= 0 || x.dim(0) % batch != 0) {
            throw new IllegalArgumentException(name + " " + x.describe() + " does not hold " + batch + " sequences of equal length");
        }
        return x.dim(0) / batch;
    }

    private static void attentionShapes(long batch, int heads, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
        long t = perSequence("q", q, batch);
        if (heads <= 0 || q.dim(1) % heads != 0) {
            throw new IllegalArgumentException("q " + q.describe() + ": " + q.dim(1) + " features do not split into " + heads + " heads");
        }
        if (q.dim(1) / heads > 256) throw new IllegalArgumentException("head dim " + q.dim(1) / heads + " > 256 is not supported");
        shape("k", k, q.shape());
        shape("v", v, q.shape());
        shape("out", out, q.shape());
        shape("lse", lse, batch * heads, t);
    }

    private static void finiteScale(float scale) {
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("attention scale must be finite, got " + scale);
    }

    /** keyLengths (may be null): one entry per sequence, each in [1, t]. */
    private static void keyLengths(int[] keyLengths, long batch, long t) {
        if (keyLengths == null) return;
        if (keyLengths.length != batch) {
            throw new IllegalArgumentException("keyLengths has " + keyLengths.length + " entries for " + batch + " sequences");
        }
        for (int s = 0; s < keyLengths.length; s++) {
            if (keyLengths[s] < 1 || keyLengths[s] > t) {
                throw new IllegalArgumentException("keyLengths[" + s + "] = " + keyLengths[s] + " is outside [1, t = " + t + "]");
            }
        }
    }

    @Override
    public void attentionForward(long batch, int heads, float scale, boolean causal, int[] keyLengths, Tensor q, Tensor k,
                                 Tensor v, Tensor out, Tensor lse) {
        attentionShapes(batch, heads, q, k, v, out, lse);
        finiteScale(scale);
        keyLengths(keyLengths, batch, q.dim(0) / batch);
        try (Arena call = Arena.ofConfined()) {
            MemorySegment lengths = keyLengths == null ? MemorySegment.NULL : call.allocateFrom(ValueLayout.JAVA_INT, keyLengths);
            check("p4j_attention_forward", Peft4j.p4j_attention_forward(ctx(), batch, q.dim(0) / batch, heads, q.dim(1) / heads,
                    scale, causal ? 1 : 0, lengths, q.segment(), k.segment(), v.segment(), out.segment(), lse.segment()));
        }
    }

    @Override
    public void attentionBackward(long batch, int heads, float scale, boolean causal, int[] keyLengths, Tensor q, Tensor k,
                                  Tensor v, Tensor out, Tensor lse, Tensor dout, Tensor dq, Tensor dk, Tensor dv) {
        attentionShapes(batch, heads, q, k, v, out, lse);
        finiteScale(scale);
        keyLengths(keyLengths, batch, q.dim(0) / batch);
        shape("dout", dout, q.shape());
        shape("dq", dq, q.shape());
        shape("dk", dk, q.shape());
        shape("dv", dv, q.shape());
        try (Arena call = Arena.ofConfined()) {
            MemorySegment lengths = keyLengths == null ? MemorySegment.NULL : call.allocateFrom(ValueLayout.JAVA_INT, keyLengths);
            check("p4j_attention_backward", Peft4j.p4j_attention_backward(ctx(), batch, q.dim(0) / batch, heads, q.dim(1) / heads,
                    scale, causal ? 1 : 0, lengths, q.segment(), k.segment(), v.segment(), out.segment(), lse.segment(),
                    dout.segment(), dq.segment(), dk.segment(), dv.segment()));
        }
    }

    @Override
    public void layerNormForward(float eps, Tensor x, Tensor w, Tensor b, Tensor y, Tensor mean, Tensor rstd) {
        matrix("x", x);
        if (!(eps > 0f && Float.isFinite(eps))) throw new IllegalArgumentException("LayerNorm eps must be finite and > 0, got " + eps);
        shape("w", w, x.dim(1));
        if (b != null) shape("b", b, x.dim(1));
        shape("y", y, x.shape());
        shape("mean", mean, x.dim(0));
        shape("rstd", rstd, x.dim(0));
        check("p4j_layernorm_forward", Peft4j.p4j_layernorm_forward(ctx(), x.dim(0), x.dim(1), eps, x.segment(), w.segment(),
                b == null ? MemorySegment.NULL : b.segment(), y.segment(), mean.segment(), rstd.segment()));
    }

    @Override
    public void layerNormBackward(Tensor x, Tensor w, Tensor mean, Tensor rstd, Tensor g, Tensor dx, Tensor dw, Tensor db) {
        matrix("x", x);
        shape("w", w, x.dim(1));
        shape("mean", mean, x.dim(0));
        shape("rstd", rstd, x.dim(0));
        shape("g", g, x.shape());
        if (dx != null) shape("dx", dx, x.shape());
        if (dw != null) shape("dw", dw, x.dim(1));
        if (db != null) shape("db", db, x.dim(1));
        check("p4j_layernorm_backward", Peft4j.p4j_layernorm_backward(ctx(), x.dim(0), x.dim(1), x.segment(), w.segment(),
                mean.segment(), rstd.segment(), g.segment(), dx == null ? MemorySegment.NULL : dx.segment(),
                dw == null ? MemorySegment.NULL : dw.segment(), db == null ? MemorySegment.NULL : db.segment()));
    }

    @Override
    public void patchify(int h, int w, int p, Tensor x, Tensor out) {
        matrix("x", x);
        if (h <= 0 || w <= 0 || p <= 0 || h % p != 0 || w % p != 0) {
            throw new IllegalArgumentException("patchify: image " + h + "x" + w + " does not split into " + p + "x" + p + " patches");
        }
        if (x.dim(1) != (long) h * w) throw new IllegalArgumentException("x " + x.describe() + " must hold " + h + "x" + w + " images");
        shape("out", out, x.dim(0) * (h / p) * (w / p), (long) p * p);
        check("p4j_patchify", Peft4j.p4j_patchify(ctx(), x.dim(0), h, w, p, x.segment(), out.segment()));
    }

    @Override
    public void tokensInsert(long batch, long at, Tensor x, Tensor rows, Tensor out) {
        long t = perSequence("x", x, batch);
        matrix("rows", rows);
        if (rows.dim(1) != x.dim(1)) throw new IllegalArgumentException("rows " + rows.describe() + " must have x's " + x.dim(1) + " features");
        if (at < 0 || at > t) throw new IllegalArgumentException("insert position " + at + " is outside [0, " + t + "]");
        shape("out", out, batch * (t + rows.dim(0)), x.dim(1));
        check("p4j_tokens_insert", Peft4j.p4j_tokens_insert(ctx(), batch, t, rows.dim(0), at, x.dim(1), x.segment(), rows.segment(),
                out.segment()));
    }

    @Override
    public void tokensInsertBackward(long batch, long t, long n, long at, Tensor g, Tensor dx, Tensor drows) {
        long total = perSequence("g", g, batch);
        if (t < 0 || n < 0 || t + n != total) throw new IllegalArgumentException("g " + g.describe() + " does not hold " + batch + " sequences of " + t + " + " + n + " rows");
        if (at < 0 || at > t) throw new IllegalArgumentException("insert position " + at + " is outside [0, " + t + "]");
        if (dx != null) shape("dx", dx, batch * t, g.dim(1));
        if (drows != null) shape("drows", drows, n, g.dim(1));
        check("p4j_tokens_insert_backward", Peft4j.p4j_tokens_insert_backward(ctx(), batch, t, n, at, g.dim(1), g.segment(),
                dx == null ? MemorySegment.NULL : dx.segment(), drows == null ? MemorySegment.NULL : drows.segment()));
    }

    @Override
    public void tokensGather(long batch, long index, Tensor x, Tensor out) {
        long t = perSequence("x", x, batch);
        if (index < 0 || index >= t) throw new IllegalArgumentException("token index " + index + " is outside [0, " + t + ")");
        shape("out", out, batch, x.dim(1));
        check("p4j_tokens_gather", Peft4j.p4j_tokens_gather(ctx(), batch, t, index, x.dim(1), x.segment(), out.segment()));
    }

    @Override
    public void tokensGatherBackward(long batch, long index, Tensor g, Tensor dx) {
        long t = perSequence("dx", dx, batch);
        if (index < 0 || index >= t) throw new IllegalArgumentException("token index " + index + " is outside [0, " + t + ")");
        shape("g", g, batch, dx.dim(1));
        check("p4j_tokens_gather_backward", Peft4j.p4j_tokens_gather_backward(ctx(), batch, t, index, dx.dim(1), g.segment(),
                dx.segment()));
    }

    // ---- Kronecker and Hadamard adapters (kron.cpp) ----

    @Override
    public void kronForward(float s, Tensor x, Tensor a, Tensor b, Tensor p, Tensor y) {
        KronDims d = KronDims.of(x, a, b);
        shape("p", p, d.t(), d.a1() * d.b2());
        shape("y", y, d.t(), d.a1() * d.b1());
        check("p4j_kron_forward", Peft4j.p4j_kron_forward(ctx(), d.t(), d.a1(), d.a2(), d.b1(), d.b2(), s,
                x.segment(), a.segment(), b.segment(), p.segment(), y.segment()));
    }

    @Override
    public void kronBackward(float s, Tensor x, Tensor a, Tensor b, Tensor p, Tensor g, Tensor q, Tensor da, Tensor db,
                             Tensor dx, boolean accumulate) {
        KronDims d = KronDims.of(x, a, b);
        shape("p", p, d.t(), d.a1() * d.b2());
        shape("g", g, d.t(), d.a1() * d.b1());
        shape("q", q, d.t(), d.a1() * d.b2());
        shape("da", da, d.a1(), d.a2());
        shape("db", db, d.b1(), d.b2());
        if (dx != null) shape("dx", dx, d.t(), d.a2() * d.b2());
        check("p4j_kron_backward", Peft4j.p4j_kron_backward(ctx(), d.t(), d.a1(), d.a2(), d.b1(), d.b2(), s,
                x.segment(), a.segment(), b.segment(), p.segment(), g.segment(), q.segment(), da.segment(), db.segment(),
                dx == null ? MemorySegment.NULL : dx.segment(), accumulate ? 1 : 0));
    }

    @Override
    public void kron(float s, Tensor a, Tensor b, Tensor out, boolean accumulate) {
        matrix("a", a);
        matrix("b", b);
        shape("out", out, Math.multiplyExact(a.dim(0), b.dim(0)), Math.multiplyExact(a.dim(1), b.dim(1)));
        check("p4j_kron", Peft4j.p4j_kron(ctx(), a.dim(0), a.dim(1), b.dim(0), b.dim(1), s, a.segment(), b.segment(),
                out.segment(), accumulate ? 1 : 0));
    }

    /** The sizes of a Kronecker apply, checked once: x [t, a2·b2], a [a1, a2], b [b1, b2]. */
    private record KronDims(long t, long a1, long a2, long b1, long b2) {
        static KronDims of(Tensor x, Tensor a, Tensor b) {
            matrix("x", x);
            matrix("a", a);
            matrix("b", b);
            if (x.dim(1) != Math.multiplyExact(a.dim(1), b.dim(1))) {
                throw new IllegalArgumentException("Kronecker shapes do not agree: x " + x.describe() + " needs d_in = a2·b2 = "
                        + a.dim(1) + "·" + b.dim(1) + " from a " + a.describe() + " and b " + b.describe());
            }
            return new KronDims(x.dim(0), a.dim(0), a.dim(1), b.dim(0), b.dim(1));
        }
    }

    @Override
    public void hadamardRebuild(float s, Tensor w1a, Tensor w1b, Tensor w2a, Tensor w2b, Tensor dw) {
        HadamardDims d = HadamardDims.of(w1a, w1b, w2a, w2b);
        shape("dw", dw, d.dOut(), d.dIn());
        check("p4j_hadamard_rebuild", Peft4j.p4j_hadamard_rebuild(ctx(), d.dOut(), d.dIn(), d.r(), s, w1a.segment(),
                w1b.segment(), w2a.segment(), w2b.segment(), dw.segment()));
    }

    @Override
    public void hadamardBackward(float s, Tensor w1a, Tensor w1b, Tensor w2a, Tensor w2b, Tensor gw, Tensor ws,
                                 Tensor dw1a, Tensor dw1b, Tensor dw2a, Tensor dw2b, boolean accumulate) {
        HadamardDims d = HadamardDims.of(w1a, w1b, w2a, w2b);
        shape("gw", gw, d.dOut(), d.dIn());
        matrix("ws", ws);
        if (ws.dim(0) < 1 || ws.dim(1) != d.dIn()) {
            throw new IllegalArgumentException("ws " + ws.describe() + " must be [rows >= 1, " + d.dIn() + "]");
        }
        shape("dw1a", dw1a, d.dOut(), d.r());
        shape("dw1b", dw1b, d.r(), d.dIn());
        shape("dw2a", dw2a, d.dOut(), d.r());
        shape("dw2b", dw2b, d.r(), d.dIn());
        check("p4j_hadamard_backward", Peft4j.p4j_hadamard_backward(ctx(), d.dOut(), d.dIn(), d.r(), s, w1a.segment(),
                w1b.segment(), w2a.segment(), w2b.segment(), gw.segment(), ws.dim(0), ws.segment(), dw1a.segment(),
                dw1b.segment(), dw2a.segment(), dw2b.segment(), accumulate ? 1 : 0));
    }

    /** LoHa's factor shapes, checked once: w1a, w2a [d_out, r]; w1b, w2b [r, d_in]. */
    private record HadamardDims(long dOut, long dIn, long r) {
        static HadamardDims of(Tensor w1a, Tensor w1b, Tensor w2a, Tensor w2b) {
            matrix("w1a", w1a);
            long dOut = w1a.dim(0), r = w1a.dim(1);
            matrix("w1b", w1b);
            long dIn = w1b.dim(1);
            shape("w1b", w1b, r, dIn);
            shape("w2a", w2a, dOut, r);
            shape("w2b", w2b, r, dIn);
            return new HadamardDims(dOut, dIn, r);
        }
    }

    // ---- token embeddings (embedding.cpp) ----

    /** Checks ids (I32, one per row of rows, each in [0, table rows)) and the F32 shapes. */
    private static void embeddingShapes(Tensor ids, Tensor table, String tableName, Tensor rows, String rowsName) {
        present("ids", ids);
        if (ids.dtype() != DType.I32) throw new IllegalArgumentException("ids " + ids.describe() + " must be I32");
        matrix(tableName, table);
        shape(rowsName, rows, ids.numel(), table.dim(1));
        MemorySegment seg = ids.segment();
        long vocab = table.dim(0);
        for (long i = 0; i < ids.numel(); i++) {
            int id = seg.getAtIndex(ValueLayout.JAVA_INT, i);
            if (id < 0 || id >= vocab) {
                throw new IllegalArgumentException("ids[" + i + "] = " + id + " is outside the embedding table's [0, " + vocab + ")");
            }
        }
    }

    @Override
    public void embeddingForward(Tensor ids, Tensor table, Tensor out) {
        embeddingShapes(ids, table, "table", out, "out");
        check("p4j_embedding_forward", Peft4j.p4j_embedding_forward(ctx(), ids.numel(), table.dim(0), table.dim(1), ids.segment(),
                table.segment(), out.segment()));
    }

    @Override
    public void embeddingBackward(Tensor ids, Tensor g, Tensor dtable) {
        embeddingShapes(ids, dtable, "dtable", g, "g");
        check("p4j_embedding_backward", Peft4j.p4j_embedding_backward(ctx(), ids.numel(), dtable.dim(0), dtable.dim(1), ids.segment(),
                g.segment(), dtable.segment()));
    }

    /** The shared backend lives as long as the process; others free their context. */
    @Override
    public void close() {
        if (isShared || closed) return;
        closed = true;
        check("p4j_ctx_destroy", Peft4j.p4j_ctx_destroy(ctx));
        arena.close();
    }
}
