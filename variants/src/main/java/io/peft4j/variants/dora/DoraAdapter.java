package io.peft4j.variants.dora;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import io.peft4j.variants.lora.LoraAdapter;
import io.peft4j.variants.lora.LoraConfig;
import java.util.ArrayList;
import java.util.List;

/**
 * DoRA on one Linear layer: W' = m ⊙ (W0 + s·B·A) / n, n = ‖W0 + s·B·A‖_row, one magnitude per
 * output row. The norm is a constant in backward (as the paper's §4.3 and PEFT detach it), so
 * y = b0 + c ⊙ (x·W0ᵀ + s·(D(x)·Aᵀ)·Bᵀ) with c = m/n; the LoRA part runs through
 * {@link LoraAdapter}'s fused kernels with the gradient c ⊙ g.
 *
 * <p>n is computed without forming W0 + s·B·A: n² = ‖W0‖²_row + 2s·rowdot(B, W0·Aᵀ) + s²·rowdot(B, B·(A·Aᵀ)),
 * one row-norm pass and one [d_out, r] GEMM over W0. With dropout, the base term is not dropped
 * (PEFT feeds the dropped-out x to it while training); in eval both agree. The layer's bias stays
 * frozen under DoRA (PEFT's bias "none"): the gradient this adapter hands the layer is c ⊙ g, right
 * for W0's input but not what a trained b0 would need (g).
 */
public final class DoraAdapter implements Adapter {
    private final LoraConfig config;
    private final LoraAdapter lora;
    private final Parameter weight;      // the layer's W, read for the norm
    private final Parameter bias;        // the layer's b or null
    private final Parameter magnitude;   // lora_magnitude_vector [d_out]
    private final float s;
    private float[] mergedNorm;          // n at merge time, for an exact unmerge
    // Kept from forward for backward, in the step arena.
    private Tensor z, c, gc;
    private float[] norm;

    public DoraAdapter(LoraConfig config, LoraAdapter lora, Linear layer, Backend backend) {
        this.config = config;
        this.lora = lora;
        this.weight = layer.weight();
        this.bias = layer.bias();
        this.s = config.scalingOf(layer.path());   // alpha_pattern / rank_pattern apply per layer
        // m = ‖W0 + s·B·A‖_row = ‖W0‖_row at init (B = 0): W' = W0.
        Tensor m = Tensor.zeros(DType.F32, layer.outFeatures());
        backend.rowNorms(weight.value(), m);
        this.magnitude = new Parameter("lora_magnitude_vector", m, true, false);
    }

    @Override public String adapterName() { return lora.adapterName(); }
    @Override public LoraConfig config() { return config; }
    public Parameter magnitude() { return magnitude; }

    @Override
    public List<Parameter> parameters() {
        List<Parameter> out = new ArrayList<>(lora.parameters());
        out.add(magnitude);
        return out;
    }

    /** n = ‖W + s·B·A‖_row in float64 from the low-rank identity (no [d_out, d_in] temporary). */
    private float[] rowNorms(StepContext ctx) {
        Backend be = ctx.backend();
        Tensor a = lora.loraA().value(), b = lora.loraB().value();
        int dOut = (int) b.dim(0), r = (int) b.dim(1);
        Tensor w0 = ctx.allocate(dOut), wa = ctx.allocate(dOut, r), aat = ctx.allocate(r, r), baat = ctx.allocate(dOut, r);
        be.rowNorms(weight.value(), w0);
        be.gemm(false, true, 1f, weight.value(), a, 0f, wa);
        be.gemm(false, true, 1f, a, a, 0f, aat);
        be.gemm(false, false, 1f, b, aat, 0f, baat);
        float[] w = w0.toFloatArray(), p = wa.toFloatArray(), q = baat.toFloatArray(), bv = b.toFloatArray();
        float[] n = new float[dOut];
        for (int i = 0; i < dOut; i++) {
            double sq = (double) w[i] * w[i];
            for (int j = 0; j < r; j++) sq += bv[i * r + j] * (2.0 * s * p[i * r + j] + (double) s * s * q[i * r + j]);
            n[i] = (float) Math.sqrt(Math.max(sq, 0));
        }
        return n;
    }

    @Override
    public void forward(StepContext ctx, Tensor x, Tensor y) {
        Backend be = ctx.backend();
        lora.forward(ctx, x, y);   // y = x·W0ᵀ + b0 + s·LoRA(x)
        norm = rowNorms(ctx);
        float[] m = magnitude.value().toFloatArray(), cv = new float[m.length], shift = new float[m.length];
        float[] b0 = bias == null ? null : bias.value().toFloatArray();
        for (int i = 0; i < m.length; i++) {
            cv[i] = m[i] / norm[i];
            if (b0 != null) shift[i] = (1 - cv[i]) * b0[i];   // c ⊙ (z − b0) + b0 = c ⊙ z + (1 − c) ⊙ b0
        }
        c = ctx.allocate(m.length);
        c.copyFrom(cv);
        Tensor beta = null;
        if (b0 != null) {
            beta = ctx.allocate(m.length);
            beta.copyFrom(shift);
        }
        z = ctx.allocate(y.shape());
        be.copy(y, z);
        be.scaleShiftForward(z, c, beta, y);
    }

    @Override
    public Tensor outputGradient(StepContext ctx, Tensor g) {
        Backend be = ctx.backend();
        int dOut = (int) g.dim(1);
        gc = ctx.allocate(g.shape());
        Tensor gz = ctx.allocate(dOut), gsum = bias == null ? null : ctx.allocate(dOut);
        be.scaleShiftBackward(z, c, g, gz, gsum, gc, false);
        if (magnitude.requiresGrad()) {
            // ∂L/∂m = Σ_rows g ⊙ (z − b0) / n
            float[] a = gz.toFloatArray(), gs = gsum == null ? null : gsum.toFloatArray(), b0 = bias == null ? null : bias.value().toFloatArray();
            float[] dm = magnitude.grad().toFloatArray();
            for (int i = 0; i < dOut; i++) dm[i] += (float) ((a[i] - (gs == null ? 0.0 : (double) b0[i] * gs[i])) / norm[i]);
            magnitude.grad().copyFrom(dm);
        }
        return gc;
    }

    @Override
    public void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx) {
        lora.backward(ctx, x, gc, dx);   // the LoRA part of c ⊙ (...) sees c ⊙ g
    }

    @Override
    public Tensor deltaWeight(Backend backend) {
        Tensor w = weight.value().copy();
        mergeInto(backend, w);
        backend.axpy(-1f, weight.value(), w);
        return w;
    }

    /** W ← (m/n) ⊙ (W + s·B·A), n = ‖W + s·B·A‖_row; returns n. */
    private float[] mergeInto(Backend backend, Tensor w) {
        try (Tensor d = lora.deltaWeight(backend); Tensor n = Tensor.zeros(DType.F32, w.dim(0))) {
            backend.axpy(1f, d, w);
            backend.rowNorms(w, n);
            float[] nv = n.toFloatArray(), m = magnitude.value().toFloatArray(), scale = new float[nv.length];
            for (int i = 0; i < nv.length; i++) scale[i] = m[i] / nv[i];
            try (Tensor sc = Tensor.of(scale, scale.length)) {
                backend.rowScale(sc, w);
            }
            return nv;
        }
    }

    @Override
    public void merge(Backend backend, Tensor weight, Tensor bias) {
        mergedNorm = mergeInto(backend, weight);
    }

    /** W ← W ⊙ (n/m) − s·B·A with the n cached at merge, so W0 comes back up to rounding. */
    @Override
    public void unmerge(Backend backend, Tensor weight, Tensor bias) {
        if (mergedNorm == null) throw new IllegalStateException("DoRA adapter '" + adapterName() + "' was not merged");
        float[] m = magnitude.value().toFloatArray(), inv = new float[m.length];
        for (int i = 0; i < m.length; i++) inv[i] = mergedNorm[i] / m[i];
        try (Tensor sc = Tensor.of(inv, inv.length); Tensor d = lora.deltaWeight(backend)) {
            backend.rowScale(sc, weight);
            backend.axpy(-1f, d, weight);
        }
        mergedNorm = null;
    }
}
