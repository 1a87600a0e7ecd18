package io.peft4j.variants.dylora;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.List;

/**
 * DyLoRA on one Linear layer: y += (α/b)·(D(x)·A[:b]ᵀ)·B[:, :b]ᵀ at the active rank b, as the gated
 * low-rank kernel with the gate 1 on ranks below b and 0 above. Training uses the rank the
 * {@link RankSampler} set; evaluation and merge use the eval rank (r unless set). In frozen mode the
 * parameter gradients come from a second gate that is 1 on rank b−1 only, while the input gradient
 * still flows through all b ranks.
 */
public final class DyLoraAdapter implements Adapter {
    private final DyLoraConfig config;
    private final String name;
    private final long seed;
    private final int r;
    private final Parameter a;   // lora_A.weight [r, d_in]
    private final Parameter b;   // lora_B.weight [d_out, r]
    private final Tensor prefix;   // [r]: 1 on ranks < the active one, 0 after
    private final Tensor last;     // [r]: 1 on the active rank's last component only
    private int gatedRank;         // the rank prefix and last describe
    private int trainRank;
    private int evalRank;
    // Kept from forward for backward (the tensors in the step arena).
    private Tensor xUsed, h, mask;
    private int forwardRank;

    DyLoraAdapter(DyLoraConfig config, Linear layer, String name, Backend backend, long seed) {
        this.config = config;
        this.name = name;
        this.seed = seed;
        this.r = config.r();
        Tensor aw = Tensor.zeros(DType.F32, r, layer.inFeatures());
        backend.rngKaimingUniform(seed, 0, layer.inFeatures(), (float) Math.sqrt(5), aw);
        this.a = new Parameter("lora_A.weight", aw, true, true);
        this.b = new Parameter("lora_B.weight", Tensor.zeros(DType.F32, layer.outFeatures(), r), true, true);
        this.prefix = Tensor.zeros(DType.F32, r);
        this.last = Tensor.zeros(DType.F32, r);
        this.trainRank = r;
        this.evalRank = config.evalRank() == 0 ? r : config.evalRank();
    }

    @Override public String adapterName() { return name; }
    @Override public DyLoraConfig config() { return config; }
    @Override public List<Parameter> parameters() { return List.of(a, b); }
    public Parameter loraA() { return a; }
    public Parameter loraB() { return b; }
    public int maxRank() { return r; }
    public int trainRank() { return trainRank; }
    public int evalRank() { return evalRank; }

    /** The rank the next training steps use (the sampler's b). */
    public void setTrainRank(int rank) {
        trainRank = checkRank(rank);
    }

    /** The rank evaluation (forward outside training), deltaWeight and merge use: any b in 1..r, no retraining. */
    public void setEvalRank(int rank) {
        evalRank = checkRank(rank);
    }

    private int checkRank(int rank) {
        if (rank < 1 || rank > r) throw new IllegalArgumentException("DyLoRA rank must be in [1, r=" + r + "], got " + rank);
        return rank;
    }

    /** Points the gates at rank {@code rank}: r floats written only when the rank changes. */
    private void gateFor(int rank) {
        if (rank == gatedRank) return;
        for (int i = 0; i < r; i++) {
            prefix.setFloat(i, i < rank ? 1f : 0f);
            last.setFloat(i, i == rank - 1 ? 1f : 0f);
        }
        gatedRank = rank;
    }

    private float scale(int rank) {
        return config.alpha() / rank;
    }

    @Override
    public void forward(StepContext ctx, Tensor x, Tensor y) {
        Backend be = ctx.backend();
        xUsed = x;
        mask = null;
        if (ctx.training() && config.dropout() > 0) {
            xUsed = ctx.allocate(x.shape());
            mask = ctx.allocate(DType.U8, x.shape());
            be.dropoutForward(config.dropout(), seed ^ ctx.stepSeed(), 0, x, mask, xUsed);
        }
        int rank = ctx.training() ? trainRank : evalRank;
        gateFor(rank);
        forwardRank = rank;
        h = ctx.allocate(x.dim(0), r);
        be.rankGatedForward(scale(rank), xUsed, a.value(), prefix, b.value(), h, ctx.allocate(x.dim(0), r), y);
    }

    @Override
    public void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx) {
        Backend be = ctx.backend();
        long t = x.dim(0);
        int rank = forwardRank;
        gateFor(rank);
        float s = scale(rank);
        Tensor gb = ctx.allocate(t, r), ws = ctx.allocate(t, r);
        Tensor da = a.requiresGrad() ? a.grad() : ctx.allocate(a.value().shape());
        Tensor db = b.requiresGrad() ? b.grad() : ctx.allocate(b.value().shape());
        Tensor dxa = null;
        if (dx != null) {
            dxa = mask == null ? dx : ctx.allocate(dx.shape());
            if (mask != null) be.fill(0f, dxa);
        }
        if (config.frozen()) {
            // Rows A[:b−1] and columns B[:, :b−1] are detached in the reference: gradient for rank b−1 only.
            be.rankGatedBackward(s, xUsed, a.value(), last, b.value(), h, g, gb, ws, da, db, null, null, true);
            if (dxa != null) be.rankGatedBackward(s, xUsed, a.value(), prefix, b.value(), h, g, gb, ws, null, null, null, dxa, true);
        } else {
            be.rankGatedBackward(s, xUsed, a.value(), prefix, b.value(), h, g, gb, ws, da, db, null, dxa, true);
        }
        if (mask != null && dx != null) {
            be.dropoutBackward(config.dropout(), mask, dxa, dxa);
            be.axpy(1f, dxa, dx);
        }
    }

    /** (α/b)·B[:, :b]·A[:b] at the eval rank b. */
    @Override
    public Tensor deltaWeight(Backend backend) {
        long dIn = a.value().dim(1), dOut = b.value().dim(0);
        Tensor d = Tensor.zeros(DType.F32, dOut, dIn);
        try (Tensor aRows = a.value().rows(0, evalRank).copy(); Tensor bCols = leadingColumns(evalRank)) {
            backend.gemm(false, false, scale(evalRank), bCols, aRows, 0f, d);
        }
        return d;
    }

    /** B[:, :k] as a new [d_out, k] tensor. */
    private Tensor leadingColumns(int k) {
        long dOut = b.value().dim(0);
        float[] bv = b.value().toFloatArray(), out = new float[(int) (dOut * k)];
        for (int o = 0; o < dOut; o++) System.arraycopy(bv, o * r, out, o * k, k);
        return Tensor.of(out, dOut, k);
    }

    @Override
    public void close() {
        Adapter.super.close();
        prefix.close();
        last.close();
    }
}
