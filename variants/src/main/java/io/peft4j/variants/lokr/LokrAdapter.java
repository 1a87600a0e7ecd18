package io.peft4j.variants.lokr;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * LoKr on one Linear layer: y += s·x·kron(W1, W2)ᵀ through the Kronecker kernels (the d_out×d_in
 * ΔW is never formed in training); a decomposed factor is rebuilt from its two small matrices each
 * step and its gradient chained to them: ∂W2a = ∂W2·W2bᵀ, ∂W2b = W2aᵀ·∂W2 (same for W1).
 */
public final class LokrAdapter implements Adapter {
    private final LokrConfig config;
    private final String name;
    private final LokrConfig.Shapes shapes;
    private final float s;
    private final Factor w1, w2;
    private Tensor p, w1Used, w2Used;   // per step, in the step arena

    /** One Kronecker factor: a full matrix, or the product of two rank-r ones. */
    private record Factor(Parameter full, Parameter a, Parameter b) {
        List<Parameter> parameters() {
            return full != null ? List.of(full) : List.of(a, b);
        }

        /** The factor's value: the parameter itself, or a·b in {@code into}. */
        Tensor value(Backend be, Tensor into) {
            if (full != null) return full.value();
            be.gemm(false, false, 1f, a.value(), b.value(), 0f, into);
            return into;
        }

        long rows() { return full != null ? full.value().dim(0) : a.value().dim(0); }
        long cols() { return full != null ? full.value().dim(1) : b.value().dim(1); }
    }

    LokrAdapter(LokrConfig config, Linear layer, String name, Backend backend, long seed) {
        this.config = config;
        this.name = name;
        this.shapes = config.shapes(layer.outFeatures(), layer.inFeatures());
        this.s = config.scaling(shapes);
        int r = config.r();
        boolean peft = config.init().equals("peft"), lycoris = config.init().equals("lycoris");
        float a5 = (float) Math.sqrt(5);
        LokrConfig.Shapes sh = shapes;
        // Kaiming-uniform on [rows, cols] uses fan_in = cols; a tensor left out stays zero.
        if (sh.fullW1()) {
            Tensor t = Tensor.zeros(DType.F32, sh.a(), sh.c());
            if (!peft) backend.rngKaimingUniform(seed, 0, sh.c(), a5, t);
            w1 = new Factor(new Parameter("lokr_w1", t, true, true), null, null);
        } else {
            Tensor ta = Tensor.zeros(DType.F32, sh.a(), r), tb = Tensor.zeros(DType.F32, r, sh.c());
            if (!peft) backend.rngKaimingUniform(seed, 0, r, a5, ta);
            backend.rngKaimingUniform(seed + 1, 0, sh.c(), a5, tb);
            w1 = new Factor(null, new Parameter("lokr_w1_a", ta, true, true), new Parameter("lokr_w1_b", tb, true, true));
        }
        if (sh.fullW2()) {
            Tensor t = Tensor.zeros(DType.F32, sh.b(), sh.d());
            if (!lycoris) backend.rngKaimingUniform(seed + 2, 0, sh.d(), a5, t);
            w2 = new Factor(new Parameter("lokr_w2", t, true, true), null, null);
        } else {
            Tensor ta = Tensor.zeros(DType.F32, sh.b(), r), tb = Tensor.zeros(DType.F32, r, sh.d());
            backend.rngKaimingUniform(seed + 2, 0, r, a5, ta);
            if (!lycoris) backend.rngKaimingUniform(seed + 3, 0, sh.d(), a5, tb);
            w2 = new Factor(null, new Parameter("lokr_w2_a", ta, true, true), new Parameter("lokr_w2_b", tb, true, true));
        }
    }

    @Override public String adapterName() { return name; }
    @Override public LokrConfig config() { return config; }
    public LokrConfig.Shapes shapes() { return shapes; }
    /** The scale this layer applies. */
    public float scaling() { return s; }

    @Override
    public List<Parameter> parameters() {
        List<Parameter> out = new ArrayList<>(w1.parameters());
        out.addAll(w2.parameters());
        return out;
    }

    @Override
    public void forward(StepContext ctx, Tensor x, Tensor y) {
        Backend be = ctx.backend();
        w1Used = w1.value(be, w1.full() != null ? null : ctx.allocate(w1.rows(), w1.cols()));
        w2Used = w2.value(be, w2.full() != null ? null : ctx.allocate(w2.rows(), w2.cols()));
        p = ctx.allocate(x.dim(0), w1.rows() * w2.cols());
        be.kronForward(s, x, w1Used, w2Used, p, y);
    }

    @Override
    public void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx) {
        Backend be = ctx.backend();
        Tensor q = ctx.allocate(p.shape());
        Tensor d1 = gradTarget(ctx, be, w1), d2 = gradTarget(ctx, be, w2);
        be.kronBackward(s, x, w1Used, w2Used, p, g, q, d1, d2, dx, true);
        chain(be, w1, d1);
        chain(be, w2, d2);
    }

    /** Where kronBackward accumulates a factor's gradient: the full parameter's, or zeroed scratch to chain from. */
    private static Tensor gradTarget(StepContext ctx, Backend be, Factor f) {
        if (f.full() != null && f.full().requiresGrad()) return f.full().grad();
        Tensor t = ctx.allocate(f.rows(), f.cols());
        be.fill(0f, t);
        return t;
    }

    /** A decomposed factor: ∂a += ∂W·bᵀ, ∂b += aᵀ·∂W. */
    private static void chain(Backend be, Factor f, Tensor dW) {
        if (f.full() != null) return;
        if (f.a().requiresGrad()) be.gemm(false, true, 1f, dW, f.b().value(), 1f, f.a().grad());
        if (f.b().requiresGrad()) be.gemm(true, false, 1f, f.a().value(), dW, 1f, f.b().grad());
    }

    @Override
    public Tensor deltaWeight(Backend backend) {
        Tensor d = Tensor.zeros(DType.F32, (long) shapes.a() * shapes.b(), (long) shapes.c() * shapes.d());
        addDelta(backend, s, d, false);
        return d;
    }

    @Override
    public void merge(Backend backend, Tensor weight) {
        addDelta(backend, s, weight, true);
    }

    @Override
    public void unmerge(Backend backend, Tensor weight) {
        addDelta(backend, -s, weight, true);
    }

    private void addDelta(Backend backend, float scale, Tensor out, boolean accumulate) {
        try (Tensor t1 = w1.full() != null ? null : Tensor.zeros(DType.F32, w1.rows(), w1.cols());
             Tensor t2 = w2.full() != null ? null : Tensor.zeros(DType.F32, w2.rows(), w2.cols())) {
            backend.kron(scale, w1.value(backend, t1), w2.value(backend, t2), out, accumulate);
        }
    }
}
