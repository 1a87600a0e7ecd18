package io.peft4j.variants.tiedlora;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.List;
import java.util.Set;

/**
 * The adapter of Tied-LoRA and VeRA on one Linear layer: y += s·v ⊙ ((u ⊙ (D(x)·A_sᵀ))·B_sᵀ), i.e.
 * ΔW = s·diag(v)·B_s·diag(u)·A_s, through the native scaled low-rank op. A_s = A[:, :d_in] and
 * B_s = B[:d_out, :] are slices of A and B, which may be one pair shared by every adapted layer
 * (then they are {@link #sharedParameters()}, and every layer's backward adds its part to their
 * one gradient). u and v may be absent (fixed at 1). Which tensors train is fixed by the method.
 */
public final class ScaledLowRankAdapter implements Adapter {
    private final AdapterConfig config;
    private final String name;
    private final long seed;
    private final float s;
    private final float dropout;
    private final long dIn, dOut;
    private final Parameter a, b, u, v;   // u, v null: ones
    private final List<Parameter> perLayer, shared;
    private final Set<Parameter> frozen, unsaved;
    // Kept from forward for backward, in the step arena.
    private Tensor xUsed, h, z, mask;

    /**
     * @param perLayer this layer's own tensors, in file order; shared: the tensors shared with other
     *                 layers; frozen: those that never train; unsaved: those rebuilt rather than saved
     */
    public ScaledLowRankAdapter(AdapterConfig config, String name, long seed, float s, float dropout, long dIn, long dOut,
                                Parameter a, Parameter b, Parameter u, Parameter v, List<Parameter> perLayer,
                                List<Parameter> shared, Set<Parameter> frozen, Set<Parameter> unsaved) {
        this.config = config;
        this.name = name;
        this.seed = seed;
        this.s = s;
        this.dropout = dropout;
        this.dIn = dIn;
        this.dOut = dOut;
        this.a = a;
        this.b = b;
        this.u = u;
        this.v = v;
        this.perLayer = List.copyOf(perLayer);
        this.shared = List.copyOf(shared);
        this.frozen = Set.copyOf(frozen);
        this.unsaved = Set.copyOf(unsaved);
    }

    @Override public String adapterName() { return name; }
    @Override public AdapterConfig config() { return config; }
    @Override public List<Parameter> parameters() { return perLayer; }
    @Override public List<Parameter> sharedParameters() { return shared; }
    @Override public boolean trainable(Parameter p) { return !frozen.contains(p); }
    @Override public boolean saved(Parameter p) { return !unsaved.contains(p); }

    /** A: [r, D_in ≥ d_in], B: [D_out ≥ d_out, r], u: [r] or null, v: [d_out] or null. */
    public Parameter a() { return a; }
    public Parameter b() { return b; }
    public Parameter u() { return u; }
    public Parameter v() { return v; }

    private long rank() {
        return a.value().dim(0);
    }

    @Override
    public void forward(StepContext ctx, Tensor x, Tensor y) {
        Backend be = ctx.backend();
        xUsed = x;
        mask = null;
        if (ctx.training() && dropout > 0) {
            xUsed = ctx.allocate(x.shape());
            mask = ctx.allocate(DType.U8, x.shape());
            be.dropoutForward(dropout, seed ^ ctx.stepSeed(), 0, x, mask, xUsed);
        }
        long t = x.dim(0), r = rank();
        h = ctx.allocate(t, r);
        z = ctx.allocate(t, dOut);
        Tensor work = ctx.allocate(Math.max(1, t * r));
        be.scaledLowrankForward(s, xUsed, a.value(), b.value(), value(u), value(v), h, z, work, y);
    }

    @Override
    public void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx) {
        Backend be = ctx.backend();
        long t = x.dim(0), r = rank();
        Tensor work = ctx.allocate(Math.max(1, 2 * (t + dOut) * r));
        // Gradients accumulate: a tied tensor's gradient is the sum over the layers that use it.
        if (mask == null || dx == null) {
            be.scaledLowrankBackward(s, xUsed, a.value(), b.value(), value(u), value(v), h, z, g, work,
                    grad(u), grad(v), grad(a), grad(b), dx, true);
            return;
        }
        // Dropout: the input gradient of the adapter path goes through the same mask.
        Tensor dxa = ctx.allocate(dx.shape());
        be.fill(0f, dxa);
        be.scaledLowrankBackward(s, xUsed, a.value(), b.value(), value(u), value(v), h, z, g, work,
                grad(u), grad(v), grad(a), grad(b), dxa, true);
        be.dropoutBackward(dropout, mask, dxa, dxa);
        be.axpy(1f, dxa, dx);
    }

    private static Tensor value(Parameter p) {
        return p == null ? null : p.value();
    }

    /** The gradient to accumulate into, or null when p is absent or not training (not computed). */
    private static Tensor grad(Parameter p) {
        return p == null || !p.requiresGrad() ? null : p.grad();
    }

    /** s·diag(v)·B_s·diag(u)·A_s, the scalings folded into copies of the slices. */
    @Override
    public Tensor deltaWeight(Backend backend) {
        int r = (int) rank(), in = (int) dIn, out = (int) dOut, lda = (int) a.value().dim(1);
        float[] af = a.value().toFloatArray(), bf = b.value().toFloatArray();
        float[] uf = u == null ? null : u.value().toFloatArray(), vf = v == null ? null : v.value().toFloatArray();
        float[] au = new float[r * in], bv = new float[out * r];
        for (int k = 0; k < r; k++) {
            for (int i = 0; i < in; i++) au[k * in + i] = uf == null ? af[k * lda + i] : uf[k] * af[k * lda + i];
        }
        for (int j = 0; j < out; j++) {
            for (int k = 0; k < r; k++) bv[j * r + k] = vf == null ? bf[j * r + k] : vf[j] * bf[j * r + k];
        }
        Tensor d = Tensor.zeros(DType.F32, out, in);
        try (Tensor ta = Tensor.of(au, r, in); Tensor tb = Tensor.of(bv, out, r)) {
            backend.gemm(false, false, s, tb, ta, 0f, d);
        }
        return d;
    }
}
