package io.peft4j.variants.loha;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.List;

/**
 * LoHa on one Linear layer. ΔW is rebuilt each step (as PEFT does; the Hadamard product of two
 * rank-r products has no cheaper apply) and y += x·ΔWᵀ. Backward: dx += g·ΔW, then ΔW's buffer
 * becomes GW = gᵀ·x, from which the fused kernel gives the four factor gradients: one
 * temporary of W's size per step.
 */
public final class LohaAdapter implements Adapter {
    /** Rows of GW the backward kernel turns into T2 at a time (its workspace is this many rows of d_in). */
    private static final long WS_ROWS = 256;

    private final LohaConfig config;
    private final String name;
    private final long seed;
    private final Parameter w1a, w1b, w2a, w2b;
    private final float s;
    // Per step, in the step arena: the rebuilt ΔW, the W1a actually used (rank dropout), the row factors.
    private Tensor dw, w1aUsed, rowScale;
    private boolean skipped;

    LohaAdapter(LohaConfig config, Linear layer, String name, Backend backend, long seed) {
        this.config = config;
        this.name = name;
        this.seed = seed;
        this.s = config.scaling();
        long dOut = layer.outFeatures(), dIn = layer.inFeatures();
        int r = config.r();
        Tensor a1 = Tensor.zeros(DType.F32, dOut, r), b1 = Tensor.zeros(DType.F32, r, dIn);
        Tensor a2 = Tensor.zeros(DType.F32, dOut, r), b2 = Tensor.zeros(DType.F32, r, dIn);
        float a5 = (float) Math.sqrt(5);
        switch (config.init()) {
            case "peft", "random" -> {
                backend.rngKaimingUniform(seed, 0, r, a5, a1);
                backend.rngKaimingUniform(seed + 1, 0, dIn, a5, b1);
                backend.rngKaimingUniform(seed + 2, 0, r, a5, a2);
                if (config.init().equals("random")) backend.rngKaimingUniform(seed + 3, 0, dIn, a5, b2);
            }
            default -> {   // lycoris
                backend.rngNormal(seed, 0, 0f, 0.1f, a1);
                backend.rngNormal(seed + 1, 0, 0f, 1f, b1);
                backend.rngNormal(seed + 3, 0, 0f, 1f, b2);
            }
        }
        this.w1a = new Parameter("hada_w1_a", a1, true, true);
        this.w1b = new Parameter("hada_w1_b", b1, true, true);
        this.w2a = new Parameter("hada_w2_a", a2, true, true);
        this.w2b = new Parameter("hada_w2_b", b2, true, true);
    }

    @Override public String adapterName() { return name; }
    @Override public LohaConfig config() { return config; }
    @Override public List<Parameter> parameters() { return List.of(w1a, w1b, w2a, w2b); }

    @Override
    public void forward(StepContext ctx, Tensor x, Tensor y) {
        Backend be = ctx.backend();
        w1aUsed = w1a.value();
        rowScale = null;
        skipped = false;
        if (ctx.training() && (config.moduleDropout() > 0 || config.rankDropout() > 0)) {
            long dOut = w1a.value().dim(0);
            Tensor u = ctx.allocate(dOut + 1);
            be.rngUniform(seed ^ ctx.stepSeed(), 0, 0f, 1f, u);
            float[] draws = u.toFloatArray();
            if (draws[0] < config.moduleDropout()) {
                skipped = true;
                return;
            }
            if (config.rankDropout() > 0 && !rankDropout(ctx, be, draws)) {
                skipped = true;
                return;
            }
        }
        dw = ctx.allocate(w1a.value().dim(0), w1b.value().dim(1));
        be.hadamardRebuild(s, w1aUsed, w1b.value(), w2a.value(), w2b.value(), dw);
        be.gemm(false, true, 1f, x, dw, 1f, y);
    }

    /**
     * Rank dropout as PEFT: row o of ΔW is kept when its draw exceeds p, kept rows are scaled by
     * 1/(kept fraction). Scaling row o of ΔW is scaling row o of W1a, so W1a·diag-mask is used in
     * W1a's place. Returns false when every row is dropped (the step then adds nothing).
     */
    private boolean rankDropout(StepContext ctx, Backend be, float[] draws) {
        int dOut = draws.length - 1, r = config.r();
        int kept = 0;
        for (int o = 0; o < dOut; o++) if (draws[o + 1] > config.rankDropout()) kept++;
        if (kept == 0) return false;
        float scale = (float) dOut / kept;
        float[] rows = new float[dOut * r];
        for (int o = 0; o < dOut; o++) {
            float m = draws[o + 1] > config.rankDropout() ? scale : 0f;
            for (int k = 0; k < r; k++) rows[o * r + k] = m;
        }
        rowScale = ctx.allocate(dOut, r).copyFrom(rows);
        w1aUsed = ctx.allocate(dOut, r);
        be.mul(w1a.value(), rowScale, w1aUsed);
        return true;
    }

    @Override
    public void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx) {
        if (skipped) return;
        Backend be = ctx.backend();
        if (dx != null) be.gemm(false, false, 1f, g, dw, 1f, dx);
        Tensor gw = dw;   // ΔW is no longer needed: its buffer holds GW = gᵀ·x
        be.gemm(true, false, 1f, g, x, 0f, gw);
        Tensor ws = ctx.allocate(Math.min(WS_ROWS, Math.max(1, gw.dim(0))), gw.dim(1));
        // A frozen factor accumulates into scratch nobody reads; with rank dropout W1a's gradient goes
        // through zeroed scratch first (it is the gradient of W1a·mask).
        Tensor g1a = rowScale != null || !w1a.requiresGrad() ? ctx.allocate(w1a.value().shape()) : w1a.grad();
        if (rowScale != null) be.fill(0f, g1a);
        Tensor g1b = w1b.requiresGrad() ? w1b.grad() : ctx.allocate(w1b.value().shape());
        Tensor g2a = w2a.requiresGrad() ? w2a.grad() : ctx.allocate(w2a.value().shape());
        Tensor g2b = w2b.requiresGrad() ? w2b.grad() : ctx.allocate(w2b.value().shape());
        be.hadamardBackward(s, w1aUsed, w1b.value(), w2a.value(), w2b.value(), gw, ws, g1a, g1b, g2a, g2b, true);
        if (rowScale != null && w1a.requiresGrad()) {
            // ∂L/∂W1a = mask ⊙ ∂L/∂(W1a·mask).
            be.mul(g1a, rowScale, g1a);
            be.axpy(1f, g1a, w1a.grad());
        }
    }

    @Override
    public Tensor deltaWeight(Backend backend) {
        Tensor d = Tensor.zeros(DType.F32, w1a.value().dim(0), w1b.value().dim(1));
        backend.hadamardRebuild(s, w1a.value(), w1b.value(), w2a.value(), w2b.value(), d);
        return d;
    }
}
