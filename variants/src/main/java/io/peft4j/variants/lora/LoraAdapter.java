package io.peft4j.variants.lora;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.List;

/** LoRA on one Linear layer: y += s·(D(x)·Aᵀ)·Bᵀ, through the fused low-rank kernels. */
public final class LoraAdapter implements Adapter {
    private final LoraConfig config;
    private final String name;
    private final long seed;
    private final Parameter a;   // lora_A.weight [r, d_in]
    private final Parameter b;   // lora_B.weight [d_out, r]
    private final int r;     // this layer's rank (rank_pattern or r)
    private final float s;
    // Kept from forward for backward, in the step arena.
    private Tensor xUsed, h, mask;

    /** Public for DoRA, whose adapter is this one plus a magnitude. */
    public LoraAdapter(LoraConfig config, Linear layer, String name, Backend backend, long seed) {
        this.config = config;
        this.name = name;
        this.seed = seed;
        this.r = config.rankOf(layer.path());
        this.s = config.scalingOf(layer.path());
        Tensor aw = Tensor.zeros(DType.F32, r, layer.inFeatures());
        if (config.init().equals("kaiming")) backend.rngKaimingUniform(seed, 0, layer.inFeatures(), (float) Math.sqrt(5), aw);
        else backend.rngNormal(seed, 0, 0f, 1f / r, aw);
        this.a = new Parameter("lora_A.weight", aw, true, true);
        this.b = new Parameter("lora_B.weight", Tensor.zeros(DType.F32, layer.outFeatures(), r), true, true);
    }

    @Override public String adapterName() { return name; }
    @Override public LoraConfig config() { return config; }
    @Override public List<Parameter> parameters() { return List.of(a, b); }
    public Parameter loraA() { return a; }
    public Parameter loraB() { return b; }

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
        h = ctx.allocate(x.dim(0), r);
        be.lowrankForward(s, xUsed, a.value(), b.value(), h, y);
    }

    @Override
    public void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx) {
        Backend be = ctx.backend();
        Tensor gb = ctx.allocate(x.dim(0), r);
        // A frozen adapter still passes the input gradient through; its own gradients go to scratch.
        Tensor da = a.requiresGrad() ? a.grad() : ctx.allocate(a.value().shape());
        Tensor db = b.requiresGrad() ? b.grad() : ctx.allocate(b.value().shape());
        boolean accumulate = true;   // a frozen factor accumulates into scratch nobody reads
        if (mask == null || dx == null) {
            be.lowrankBackward(s, xUsed, a.value(), b.value(), h, g, gb, da, db, dx, accumulate);
            return;
        }
        // Dropout: the input gradient of the adapter path goes through the same mask.
        Tensor dxa = ctx.allocate(dx.shape());
        be.fill(0f, dxa);
        be.lowrankBackward(s, xUsed, a.value(), b.value(), h, g, gb, da, db, dxa, accumulate);
        be.dropoutBackward(config.dropout(), mask, dxa, dxa);
        be.axpy(1f, dxa, dx);
    }

    @Override
    public Tensor deltaWeight(Backend backend) {
        Tensor d = Tensor.zeros(DType.F32, b.value().dim(0), a.value().dim(1));
        backend.gemm(false, false, s, b.value(), a.value(), 0f, d);
        return d;
    }
}
