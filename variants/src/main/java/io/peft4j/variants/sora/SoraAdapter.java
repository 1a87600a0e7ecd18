package io.peft4j.variants.sora;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.List;

/**
 * SoRA on one Linear layer: y += s·((D(x)·Aᵀ) ⊙ g)·Bᵀ, s = α/r, through the gated low-rank kernels.
 * Init as the reference code: A kaiming-uniform (a = √5), B = 0, g ~ N(0, 1).
 */
public final class SoraAdapter implements Adapter {
    private final SoraConfig config;
    private final String name;
    private final long seed;
    private final float s;
    private final Parameter a;      // lora_A.weight [r, d_in]
    private final Parameter gate;   // lora_gate [r]
    private final Parameter b;      // lora_B.weight [d_out, r]
    // Kept from forward for backward, in the step arena.
    private Tensor xUsed, h, mask;

    SoraAdapter(SoraConfig config, Linear layer, String name, Backend backend, long seed) {
        this.config = config;
        this.name = name;
        this.seed = seed;
        this.s = config.scaling();
        int r = config.r();
        Tensor aw = Tensor.zeros(DType.F32, r, layer.inFeatures());
        backend.rngKaimingUniform(seed, 0, layer.inFeatures(), (float) Math.sqrt(5), aw);
        Tensor g = Tensor.zeros(DType.F32, r);
        backend.rngNormal(seed, (aw.numel() + 3) & ~3L, 0f, 1f, g);   // past A's draws
        this.a = new Parameter("lora_A.weight", aw, true, true);
        this.gate = new Parameter("lora_gate", g, true, false);   // no weight decay on gates (reference: SparseAdamW, wd 0)
        this.b = new Parameter("lora_B.weight", Tensor.zeros(DType.F32, layer.outFeatures(), r), true, true);
    }

    @Override public String adapterName() { return name; }
    @Override public SoraConfig config() { return config; }
    @Override public List<Parameter> parameters() { return List.of(a, gate, b); }
    public Parameter loraA() { return a; }
    public Parameter gate() { return gate; }
    public Parameter loraB() { return b; }

    /** Ranks whose gate is not exactly zero. */
    public int survivingRanks() {
        int n = 0;
        for (float v : gate.value().toFloatArray()) if (v != 0f) n++;
        return n;
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
        h = ctx.allocate(x.dim(0), config.r());
        be.rankGatedForward(s, xUsed, a.value(), gate.value(), b.value(), h, ctx.allocate(x.dim(0), config.r()), y);
    }

    @Override
    public void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx) {
        Backend be = ctx.backend();
        long t = x.dim(0);
        Tensor gb = ctx.allocate(t, config.r()), ws = ctx.allocate(t, config.r());
        Tensor da = a.requiresGrad() ? a.grad() : ctx.allocate(a.value().shape());
        Tensor dg = gate.requiresGrad() ? gate.grad() : ctx.allocate(gate.value().shape());
        Tensor db = b.requiresGrad() ? b.grad() : ctx.allocate(b.value().shape());
        if (mask == null || dx == null) {
            be.rankGatedBackward(s, xUsed, a.value(), gate.value(), b.value(), h, g, gb, ws, da, db, dg, dx, true);
            return;
        }
        Tensor dxa = ctx.allocate(dx.shape());
        be.fill(0f, dxa);
        be.rankGatedBackward(s, xUsed, a.value(), gate.value(), b.value(), h, g, gb, ws, da, db, dg, dxa, true);
        be.dropoutBackward(config.dropout(), mask, dxa, dxa);
        be.axpy(1f, dxa, dx);
    }

    /** s·B·diag(g)·A. */
    @Override
    public Tensor deltaWeight(Backend backend) {
        int r = config.r();
        long dIn = a.value().dim(1);
        float[] ga = a.value().toFloatArray(), gv = gate.value().toFloatArray();
        for (int i = 0; i < r; i++) for (long j = 0; j < dIn; j++) ga[(int) (i * dIn + j)] *= gv[i];
        Tensor d = Tensor.zeros(DType.F32, b.value().dim(0), dIn);
        try (Tensor t = Tensor.of(ga, r, dIn)) {
            backend.gemm(false, false, s, b.value(), t, 0f, d);
        }
        return d;
    }
}
