package io.peft4j.variants.adalora;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.List;

/**
 * AdaLoRA on one Linear layer: y += c·((D(x)·Qᵀ) ⊙ Λ)·Pᵀ through the gated low-rank kernels.
 * Names as PEFT saves them (no ".weight"): lora_A = Q [r, d_in], lora_E = Λ [r, 1], lora_B = P [d_out, r].
 * Init as PEFT: Λ = 0, P and Q ~ N(0, 0.02²). The rank r is init_r, or the kept triplets of a
 * saved rank_pattern; c always divides by init_r.
 */
public final class AdaLoraAdapter implements Adapter {
    private final AdaLoraConfig config;
    private final String name;
    private final long seed;
    private final float c;
    private Parameter a;   // lora_A [r, d_in]
    private Parameter e;   // lora_E [r, 1]
    private Parameter b;   // lora_B [d_out, r]
    // Kept from forward for backward, in the step arena.
    private Tensor xUsed, h, mask;

    AdaLoraAdapter(AdaLoraConfig config, Linear layer, String name, Backend backend, long seed, int r) {
        this.config = config;
        this.name = name;
        this.seed = seed;
        this.c = config.scaling();
        Tensor aw = Tensor.zeros(DType.F32, r, layer.inFeatures());
        Tensor bw = Tensor.zeros(DType.F32, layer.outFeatures(), r);
        backend.rngNormal(seed, 0, 0f, 0.02f, aw);
        backend.rngNormal(seed, (aw.numel() + 3) & ~3L, 0f, 0.02f, bw);   // past A's draws
        this.a = new Parameter("lora_A", aw, true, true);
        this.e = new Parameter("lora_E", Tensor.zeros(DType.F32, r, 1), true, true);
        this.b = new Parameter("lora_B", bw, true, true);
    }

    @Override public String adapterName() { return name; }
    @Override public AdaLoraConfig config() { return config; }
    @Override public List<Parameter> parameters() { return List.of(a, e, b); }
    public Parameter loraA() { return a; }
    public Parameter loraE() { return e; }
    public Parameter loraB() { return b; }

    /** Triplets stored (init_r until {@link #keepOnly} drops the masked ones). */
    public int rank() {
        return (int) e.value().dim(0);
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
        h = ctx.allocate(x.dim(0), rank());
        be.rankGatedForward(c, xUsed, a.value(), e.value(), b.value(), h, ctx.allocate(x.dim(0), rank()), y);
    }

    @Override
    public void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx) {
        Backend be = ctx.backend();
        long t = x.dim(0);
        Tensor gb = ctx.allocate(t, rank()), ws = ctx.allocate(t, rank());
        // A frozen adapter still passes the input gradient through; its own gradients go to scratch.
        Tensor da = a.requiresGrad() ? a.grad() : ctx.allocate(a.value().shape());
        Tensor de = e.requiresGrad() ? e.grad() : ctx.allocate(e.value().shape());
        Tensor db = b.requiresGrad() ? b.grad() : ctx.allocate(b.value().shape());
        if (mask == null || dx == null) {
            be.rankGatedBackward(c, xUsed, a.value(), e.value(), b.value(), h, g, gb, ws, da, db, de, dx, true);
            return;
        }
        // Dropout: the input gradient of the adapter path goes through the same mask.
        Tensor dxa = ctx.allocate(dx.shape());
        be.fill(0f, dxa);
        be.rankGatedBackward(c, xUsed, a.value(), e.value(), b.value(), h, g, gb, ws, da, db, de, dxa, true);
        be.dropoutBackward(config.dropout(), mask, dxa, dxa);
        be.axpy(1f, dxa, dx);
    }

    /** c·P·diag(Λ)·Q. */
    @Override
    public Tensor deltaWeight(Backend backend) {
        int r = rank();
        long dIn = a.value().dim(1);
        float[] q = a.value().toFloatArray(), lambda = e.value().toFloatArray();
        for (int i = 0; i < r; i++) for (long j = 0; j < dIn; j++) q[(int) (i * dIn + j)] *= lambda[i];
        Tensor d = Tensor.zeros(DType.F32, b.value().dim(0), dIn);
        try (Tensor qe = Tensor.of(q, r, dIn)) {
            backend.gemm(false, false, c, b.value(), qe, 0f, d);
        }
        return d;
    }

    /** Sets Λ_i = 0 where {@code keep[i]} is false (P and Q stay: a masked triplet can come back). */
    void mask(boolean[] keep) {
        for (int i = 0; i < keep.length; i++) if (!keep[i]) e.value().setFloat(i, 0f);
    }

    /**
     * Drops the triplets {@code keep} marks false, as PEFT's resize_modules_by_rank_pattern: new,
     * smaller parameters (gradients only while trainable), the old ones freed. Only between training runs.
     */
    void keepOnly(boolean[] keep) {
        int r = rank();
        if (keep.length != r) throw new IllegalArgumentException("AdaLoRA: a keep pattern of " + keep.length + " flags for rank " + r);
        long dIn = a.value().dim(1), dOut = b.value().dim(0);
        float[] na = select(a.value().toFloatArray(), keep, r, dIn, 0);
        float[] ne = select(e.value().toFloatArray(), keep, r, 1, 0);
        float[] nb = select(b.value().toFloatArray(), keep, dOut, r, 1);
        int kept = ne.length;
        boolean trainable = a.requiresGrad();
        Parameter oa = a, oe = e, ob = b;
        a = new Parameter("lora_A", Tensor.of(na, kept, dIn), trainable, true);
        e = new Parameter("lora_E", Tensor.of(ne, kept, 1), trainable, true);
        b = new Parameter("lora_B", Tensor.of(nb, dOut, kept), trainable, true);
        oa.close();
        oe.close();
        ob.close();
    }

    /** The rows (axis 0) or columns (axis 1) of a row-major [rows, cols] matrix that {@code keep} marks. */
    static float[] select(float[] v, boolean[] keep, long rows, long cols, int axis) {
        int kept = 0;
        for (boolean k : keep) if (k) kept++;
        float[] out = new float[(int) (axis == 0 ? kept * cols : rows * kept)];
        int j = 0;
        for (int i = 0; i < keep.length; i++) {
            if (!keep[i]) continue;
            if (axis == 0) {
                System.arraycopy(v, (int) (i * cols), out, (int) (j * cols), (int) cols);
            } else {
                for (long o = 0; o < rows; o++) out[(int) (o * kept + j)] = v[(int) (o * cols + i)];
            }
            j++;
        }
        return out;
    }
}
