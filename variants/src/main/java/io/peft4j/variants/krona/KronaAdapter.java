package io.peft4j.variants.krona;

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
 * KronA on one Linear layer: y += s·x·(A⊗B)ᵀ through the Kronecker kernels (A⊗B is never formed),
 * plus c·x for the residual form.
 */
public final class KronaAdapter implements Adapter {
    private final KronaConfig config;
    private final String name;
    private final Parameter a;          // krona_A [a1, a2]
    private final Parameter b;          // krona_B [b1, b2]
    private final Parameter residual;   // krona_residual_scale [1], only when trained
    private final float s;
    private Tensor p;                   // A·Xm per row, from forward, in the step arena

    KronaAdapter(KronaConfig config, Linear layer, String name, Backend backend, long seed) {
        this.config = config;
        this.name = name;
        this.s = config.scale();
        long dOut = layer.outFeatures(), dIn = layer.inFeatures();
        if (config.residual() && dOut != dIn) {
            throw new IllegalArgumentException("KronA residual adds the identity, which needs a square layer: '" + layer.path() + "' is ["
                    + dOut + ", " + dIn + "]");
        }
        int[] as = config.aShape(layer.path(), dOut, dIn);
        long b1 = dOut / as[0], b2 = dIn / as[1];
        Tensor aw = Tensor.zeros(DType.F32, as[0], as[1]);
        Tensor bw = Tensor.zeros(DType.F32, b1, b2);
        float a5 = (float) Math.sqrt(5);
        if (config.init().equals("kaiming")) backend.rngKaimingUniform(seed, 0, as[1], a5, aw);
        else backend.rngKaimingUniform(seed, 0, b2, a5, bw);
        this.a = new Parameter("krona_A", aw, true, true);
        this.b = new Parameter("krona_B", bw, true, true);
        this.residual = config.residual() && config.trainResidualScale()
                ? new Parameter("krona_residual_scale", Tensor.zeros(DType.F32, 1), true, false) : null;
    }

    @Override public String adapterName() { return name; }
    @Override public KronaConfig config() { return config; }
    public Parameter kronaA() { return a; }
    public Parameter kronaB() { return b; }

    @Override
    public List<Parameter> parameters() {
        List<Parameter> out = new ArrayList<>(List.of(a, b));
        if (residual != null) out.add(residual);
        return out;
    }

    /** c, the residual's scale (0 without residual). */
    private float residualScale() {
        if (!config.residual()) return 0f;
        return residual != null ? residual.value().getFloat(0) : config.residualScale();
    }

    @Override
    public void forward(StepContext ctx, Tensor x, Tensor y) {
        Backend be = ctx.backend();
        p = ctx.allocate(x.dim(0), a.value().dim(0) * b.value().dim(1));
        be.kronForward(s, x, a.value(), b.value(), p, y);
        if (config.residual()) be.axpy(residualScale(), x, y);
    }

    @Override
    public void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx) {
        Backend be = ctx.backend();
        Tensor q = ctx.allocate(p.shape());
        // A frozen factor accumulates into scratch nobody reads.
        Tensor da = a.requiresGrad() ? a.grad() : ctx.allocate(a.value().shape());
        Tensor db = b.requiresGrad() ? b.grad() : ctx.allocate(b.value().shape());
        be.kronBackward(s, x, a.value(), b.value(), p, g, q, da, db, dx, true);
        if (!config.residual()) return;
        if (dx != null) be.axpy(residualScale(), g, dx);
        if (residual != null && residual.requiresGrad()) {
            // ∂L/∂c = Σ g ⊙ x, as a 1×n by n×1 product.
            long n = g.numel();
            be.gemm(false, true, 1f, g.view(1, n), x.view(1, n), 1f, residual.grad().view(1, 1));
        }
    }

    @Override
    public Tensor deltaWeight(Backend backend) {
        Tensor d = Tensor.zeros(DType.F32, a.value().dim(0) * b.value().dim(0), a.value().dim(1) * b.value().dim(1));
        backend.kron(s, a.value(), b.value(), d, false);
        addIdentity(d, residualScale());
        return d;
    }

    @Override
    public void merge(Backend backend, Tensor weight) {
        backend.kron(s, a.value(), b.value(), weight, true);
        addIdentity(weight, residualScale());
    }

    @Override
    public void unmerge(Backend backend, Tensor weight) {
        backend.kron(-s, a.value(), b.value(), weight, true);
        addIdentity(weight, -residualScale());
    }

    /** w[i, i] += c for a square w (the residual's identity); nothing when c is 0. */
    private static void addIdentity(Tensor w, float c) {
        if (c == 0f) return;
        long d = w.dim(0);
        for (long i = 0; i < d; i++) w.setFloat(i * d + i, w.getFloat(i * d + i) + c);
    }
}
