package io.peft4j.variants.ssf;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.Arrays;
import java.util.List;

/**
 * SSF on one Linear layer: y = γ ⊙ (x·W0ᵀ + b0) + β; merged by re-parametrisation
 * W' = diag(γ)·W0, b' = γ ⊙ b0 + β.
 */
public final class SsfAdapter implements Adapter {
    private final SsfConfig config;
    private final String name;
    private final String layerPath;
    private final Parameter weight;   // the layer's W, for deltaWeight
    private final Parameter scale;    // ssf_scale [d_out]
    private final Parameter shift;    // ssf_shift [d_out]
    private Tensor z;                 // the base output, from forward

    SsfAdapter(SsfConfig config, Linear layer, String name, Backend backend, long seed) {
        this.config = config;
        this.name = name;
        this.layerPath = layer.path();
        this.weight = layer.weight();
        long d = layer.outFeatures();
        Tensor g = Tensor.zeros(DType.F32, d), b = Tensor.zeros(DType.F32, d);
        if (config.init().equals("normal")) {
            backend.rngNormal(seed, 0, 1f, 0.02f, g);
            backend.rngNormal(seed, (d + 3) & ~3L, 0f, 0.02f, b);   // past the scale's draws
        } else {
            float[] ones = new float[Math.toIntExact(d)];
            Arrays.fill(ones, 1f);
            g.copyFrom(ones);
        }
        this.scale = new Parameter("ssf_scale", g, true, false);
        this.shift = new Parameter("ssf_shift", b, true, false);
    }

    @Override public String adapterName() { return name; }
    @Override public SsfConfig config() { return config; }
    @Override public List<Parameter> parameters() { return List.of(scale, shift); }

    @Override
    public void forward(StepContext ctx, Tensor x, Tensor y) {
        z = ctx.allocate(y.shape());
        ctx.backend().copy(y, z);
        ctx.backend().scaleShiftForward(z, scale.value(), shift.value(), y);
    }

    /** ∂γ += Σ g ⊙ z, ∂β += Σ g; the base output's gradient is g ⊙ γ. */
    @Override
    public Tensor outputGradient(StepContext ctx, Tensor g) {
        Tensor gz = ctx.allocate(g.shape());
        ctx.backend().scaleShiftBackward(z, scale.value(), g, scale.requiresGrad() ? scale.grad() : null,
                shift.requiresGrad() ? shift.grad() : null, gz, true);
        return gz;
    }

    /** Nothing acts on the input: the base layer's backward already used outputGradient. */
    @Override
    public void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx) {
    }

    /** The change merge makes to W: (diag(γ) − I)·W. */
    @Override
    public Tensor deltaWeight(Backend backend) {
        Tensor d = weight.value().copy();
        backend.rowScale(scale.value(), d);
        backend.axpy(-1f, weight.value(), d);
        return d;
    }

    @Override
    public void merge(Backend backend, Tensor weight, Tensor bias) {
        if (bias == null) throw new UnsupportedOperationException("SSF on '" + layerPath + "' cannot be merged: the layer has no bias to take the shift");
        backend.rowScale(scale.value(), weight);
        backend.scaleShiftForward(bias.view(1, bias.numel()), scale.value(), shift.value(), bias.view(1, bias.numel()));
    }

    /** W = diag(1/γ)·W', b = (b' − β)/γ. */
    @Override
    public void unmerge(Backend backend, Tensor weight, Tensor bias) {
        float[] g = scale.value().toFloatArray(), b = shift.value().toFloatArray(), inv = new float[g.length], sh = new float[g.length];
        for (int i = 0; i < g.length; i++) {
            inv[i] = 1f / g[i];
            sh[i] = -b[i] / g[i];
        }
        try (Tensor s = Tensor.of(inv, inv.length); Tensor t = Tensor.of(sh, sh.length)) {
            backend.rowScale(s, weight);
            backend.scaleShiftForward(bias.view(1, bias.numel()), s, t, bias.view(1, bias.numel()));
        }
    }
}
