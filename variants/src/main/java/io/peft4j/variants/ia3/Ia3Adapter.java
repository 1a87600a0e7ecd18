package io.peft4j.variants.ia3;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.List;

/**
 * (IA)³ on one Linear layer. Output mode: y = l ⊙ (x·W0ᵀ + b0), l: ia3_l [d_out, 1].
 * Input mode (feedforward_modules): y = (x ⊙ l)·W0ᵀ + b0, l: ia3_l [1, d_in]. The shapes are PEFT's.
 */
public final class Ia3Adapter implements Adapter {
    /** PEFT adds this to l before dividing by it on unmerge. */
    static final float UNMERGE_EPS = 1e-8f;

    private final Ia3Config config;
    private final String name;
    private final boolean feedforward;
    private final Parameter l;
    private final Parameter weight;   // the layer's W, for deltaWeight
    private final long n;
    private Tensor z;   // output mode: the base output, from forward

    Ia3Adapter(Ia3Config config, Linear layer, String name, boolean feedforward) {
        this.config = config;
        this.name = name;
        this.feedforward = feedforward;
        this.weight = layer.weight();
        this.n = feedforward ? layer.inFeatures() : layer.outFeatures();
        Tensor v = feedforward ? Tensor.zeros(DType.F32, 1, n) : Tensor.zeros(DType.F32, n, 1);
        v.copyFrom(ones(n));
        this.l = new Parameter("ia3_l", v, true, false);
    }

    private static float[] ones(long n) {
        float[] o = new float[Math.toIntExact(n)];
        java.util.Arrays.fill(o, 1f);
        return o;
    }

    @Override public String adapterName() { return name; }
    @Override public Ia3Config config() { return config; }
    @Override public List<Parameter> parameters() { return List.of(l); }
    public boolean feedforward() { return feedforward; }

    private Tensor scale() {
        return l.value().view(n);
    }

    private Tensor scaleGrad() {
        return l.requiresGrad() ? l.grad().view(n) : null;
    }

    @Override
    public Tensor transformInput(StepContext ctx, Tensor x) {
        if (!feedforward) return x;
        Tensor xs = ctx.allocate(x.shape());
        ctx.backend().scaleShiftForward(x, scale(), null, xs);
        return xs;
    }

    @Override
    public void forward(StepContext ctx, Tensor x, Tensor y) {
        if (feedforward) return;
        z = ctx.allocate(y.shape());
        ctx.backend().copy(y, z);
        ctx.backend().scaleShiftForward(z, scale(), null, y);
    }

    @Override
    public Tensor outputGradient(StepContext ctx, Tensor g) {
        if (feedforward) return g;
        Tensor gz = ctx.allocate(g.shape());
        ctx.backend().scaleShiftBackward(z, scale(), g, scaleGrad(), null, gz, true);   // ∂l = Σ g ⊙ z; gz = g ⊙ l
        return gz;
    }

    /** Input mode: dx holds ∂L/∂(x ⊙ l) on entry; ∂l = Σ dx ⊙ x, then dx ← dx ⊙ l. */
    @Override
    public void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx) {
        if (!feedforward) return;
        ctx.backend().scaleShiftBackward(x, scale(), dx, scaleGrad(), null, dx, true);
    }

    /** The change merge makes to W: diag(l)·W − W or W·diag(l) − W. */
    @Override
    public Tensor deltaWeight(Backend backend) {
        Tensor d = weight.value().copy();
        merge(backend, d, null);
        backend.axpy(-1f, weight.value(), d);
        return d;
    }

    /** Output mode: W ← diag(l)·W, b ← l ⊙ b; input mode: W ← W·diag(l), b unchanged. */
    @Override
    public void merge(Backend backend, Tensor weight, Tensor bias) {
        if (feedforward) {
            backend.scaleShiftForward(weight, scale(), null, weight);
        } else {
            backend.rowScale(scale(), weight);
            if (bias != null) backend.mul(bias, scale(), bias);
        }
    }

    /** As PEFT: divides by l + 1e-8 (so l = 0 does not divide by zero; W0 comes back only approximately). */
    @Override
    public void unmerge(Backend backend, Tensor weight, Tensor bias) {
        float[] inv = scale().toFloatArray();
        for (int i = 0; i < inv.length; i++) inv[i] = 1f / (inv[i] + UNMERGE_EPS);
        try (Tensor s = Tensor.of(inv, inv.length)) {
            if (feedforward) {
                backend.scaleShiftForward(weight, s, null, weight);
            } else {
                backend.rowScale(s, weight);
                if (bias != null) backend.mul(bias, s, bias);
            }
        }
    }
}
