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

    /** The shared backend lives as long as the process; others free their context. */
    @Override
    public void close() {
        if (isShared || closed) return;
        closed = true;
        check("p4j_ctx_destroy", Peft4j.p4j_ctx_destroy(ctx));
        arena.close();
    }
}
