package io.peft4j.variants.selora;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * SeLoRA on one Linear layer: LoRA at the layer's current rank r, y += s·(D(x)·Aᵀ)·Bᵀ. In trial mode
 * (set by {@link RankExpander} around a re-run of the step) the layer computes with r + 1 ranks (A
 * plus a trial row K, B plus a zero column), all in the step arena, leaves its parameters and their
 * gradients alone and records F_exp = Σ (∂L/∂A')² + Σ (∂L/∂B')². Init: A ~ kaiming-uniform with a = 0
 * (U(±√(6/d_in)), PyTorch's kaiming_uniform_ default, as the authors' code), B = 0.
 */
public final class SeLoraAdapter implements Adapter {
    private static final long TRIAL_STREAM = 0x5E10A7A1L, GROW_STREAM = 0x5E10A6B0L;
    private final SeLoraConfig config;
    private final String name;
    private final String path;
    private final long seed;
    private final long dIn, dOut;
    private Parameter a;   // lora_A.weight [r, d_in]
    private Parameter b;   // lora_B.weight [d_out, r]
    private boolean trial;
    private double trialScore;
    private long trials, growths;
    // Kept from forward for backward, in the step arena.
    private Tensor xUsed, h, mask, trialA, trialB;

    SeLoraAdapter(SeLoraConfig config, Linear layer, String name, Backend backend, long seed, int r) {
        this.config = config;
        this.name = name;
        this.path = layer.path();
        this.seed = seed;
        this.dIn = layer.inFeatures();
        this.dOut = layer.outFeatures();
        Tensor aw = Tensor.zeros(DType.F32, r, dIn);
        backend.rngKaimingUniform(seed, 0, dIn, 0f, aw);
        this.a = new Parameter("lora_A.weight", aw, true, true);
        this.b = new Parameter("lora_B.weight", Tensor.zeros(DType.F32, dOut, r), true, true);
    }

    @Override public String adapterName() { return name; }
    @Override public SeLoraConfig config() { return config; }
    @Override public List<Parameter> parameters() { return List.of(a, b); }
    public Parameter loraA() { return a; }
    public Parameter loraB() { return b; }
    public int rank() { return (int) a.value().dim(0); }

    private float scale(int r) {
        return config.scale().equals("initial") ? config.alpha() / config.initR() : config.alpha() / r;
    }

    /** Trial mode on (the score restarts) or off (the score stays readable). */
    void setTrial(boolean on) {
        trial = on;
        if (on) trialScore = 0;
    }

    double trialScore() {
        return trialScore;
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
        int r = rank();
        if (!trial) {
            h = ctx.allocate(x.dim(0), r);
            be.lowrankForward(scale(r), xUsed, a.value(), b.value(), h, y);
            return;
        }
        // A' = [A; K], B' = [B, 0]: the step arena holds them until the step ends.
        trialA = ctx.allocate(r + 1, dIn);
        trialB = ctx.allocate(dOut, r + 1);
        be.copy(a.value(), trialA.rows(0, r));
        Tensor k = trialA.rows(r, 1);
        if (config.trialRowInit().equals("zero") && growths == 0) be.fill(0f, k);
        else be.rngKaimingUniform(seed ^ TRIAL_STREAM, trials * ((dIn + 3) & ~3L), dIn, 0f, k);
        trials++;
        be.fill(0f, trialB);
        MemorySegment src = b.value().segment(), dst = trialB.segment();
        for (long o = 0; o < dOut; o++) MemorySegment.copy(src, o * r * 4, dst, o * (r + 1) * 4, r * 4L);
        h = ctx.allocate(x.dim(0), r + 1);
        be.lowrankForward(scale(r + 1), xUsed, trialA, trialB, h, y);
    }

    @Override
    public void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx) {
        Backend be = ctx.backend();
        boolean t = trial;
        Tensor av = t ? trialA : a.value(), bv = t ? trialB : b.value();
        int r = (int) av.dim(0);
        Tensor gb = ctx.allocate(x.dim(0), r);
        // The trial's gradients go to the arena: the parameters' own gradients stay the step's.
        Tensor da = t || !a.requiresGrad() ? ctx.allocate(av.shape()) : a.grad();
        Tensor db = t || !b.requiresGrad() ? ctx.allocate(bv.shape()) : b.grad();
        Tensor dxa = dx;
        if (mask != null && dx != null) {
            dxa = ctx.allocate(dx.shape());
            be.fill(0f, dxa);
        }
        be.lowrankBackward(scale(r), xUsed, av, bv, h, g, gb, da, db, dxa, !t);
        if (mask != null && dx != null) {
            be.dropoutBackward(config.dropout(), mask, dxa, dxa);
            be.axpy(1f, dxa, dx);
        }
        if (t) trialScore = (double) be.sumsq(da) + be.sumsq(db);
    }

    /** F = Σ (∂L/∂A)² + Σ (∂L/∂B)² of this step's gradients. */
    double score(Backend be) {
        return (double) be.sumsq(a.grad()) + be.sumsq(b.grad());
    }

    /**
     * One more rank: A gains a freshly drawn row (A's init), B a zero column, so ΔW (and the output)
     * is unchanged; with scale "current" B is also multiplied by r/(r+1)'s inverse ratio to keep
     * s·B·A. New parameters replace the old, which are freed.
     */
    void grow(Backend be) {
        int r = rank();
        Tensor na = Tensor.zeros(DType.F32, r + 1, dIn), nb = Tensor.zeros(DType.F32, dOut, r + 1);
        be.copy(a.value(), na.rows(0, r));
        be.rngKaimingUniform(seed ^ GROW_STREAM, growths * ((dIn + 3) & ~3L), dIn, 0f, na.rows(r, 1));
        MemorySegment src = b.value().segment(), dst = nb.segment();
        for (long o = 0; o < dOut; o++) MemorySegment.copy(src, o * r * 4, dst, o * (r + 1) * 4, r * 4L);
        if (config.scale().equals("current")) be.scale((float) (r + 1) / r, nb);
        growths++;
        boolean trainable = a.requiresGrad();
        Parameter oa = a, ob = b;
        a = new Parameter("lora_A.weight", na, trainable, true);
        b = new Parameter("lora_B.weight", nb, trainable, true);
        oa.close();
        ob.close();
        config.recordRank(path, r + 1);
    }

    @Override
    public Tensor deltaWeight(Backend backend) {
        Tensor d = Tensor.zeros(DType.F32, dOut, dIn);
        backend.gemm(false, false, scale(rank()), b.value(), a.value(), 0f, d);
        return d;
    }
}
