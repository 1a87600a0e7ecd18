package io.peft4j.variants.houlsby;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.List;

/**
 * A Houlsby bottleneck after one Linear layer: u = z·W_dᵀ + b_d, a = GELU(u), y = z + a·W_uᵀ + b_u,
 * z the layer's output. All of its backward runs in {@link #outputGradient}; the input gradient is
 * the base layer's, from ∂L/∂z = g + (GELU'(u) ⊙ g·W_u)·W_d.
 */
public final class HoulsbyAdapter implements Adapter {
    private final HoulsbyConfig config;
    private final String name;
    private final String layerPath;
    private final Parameter down, downBias, up, upBias;
    private Tensor z, u, a;   // from forward, in the step arena

    HoulsbyAdapter(HoulsbyConfig config, Linear layer, String name, Backend backend, long seed) {
        this.config = config;
        this.name = name;
        this.layerPath = layer.path();
        long d = layer.outFeatures(), m = config.bottleneckSize();
        this.down = new Parameter("adapter_down.weight", truncatedNormal(backend, seed, 0, config.initScale(), m, d), true, true);
        this.downBias = new Parameter("adapter_down.bias", Tensor.zeros(DType.F32, m), true, false);
        this.up = new Parameter("adapter_up.weight", truncatedNormal(backend, seed, 1, config.initScale(), d, m), true, true);
        this.upBias = new Parameter("adapter_up.bias", Tensor.zeros(DType.F32, d), true, false);
    }

    /** N(0, std²) truncated at ±2 std, as TF's truncated_normal: values outside are redrawn. */
    static Tensor truncatedNormal(Backend backend, long seed, long stream, float std, long... shape) {
        Tensor t = Tensor.zeros(DType.F32, shape);
        long n = t.numel(), offset = stream << 40;   // a separate Philox range per tensor
        float[] v = new float[Math.toIntExact(n)];
        try (Tensor draw = Tensor.zeros(DType.F32, n)) {
            boolean[] done = new boolean[v.length];
            int left = v.length;
            while (left > 0) {
                backend.rngNormal(seed, offset, 0f, std, draw);
                offset += (n + 3) & ~3L;
                float[] w = draw.toFloatArray();
                for (int i = 0; i < v.length; i++) {
                    if (!done[i] && Math.abs(w[i]) <= 2 * std) {
                        v[i] = w[i];
                        done[i] = true;
                        left--;
                    }
                }
            }
        }
        return t.copyFrom(v);
    }

    @Override public String adapterName() { return name; }
    @Override public HoulsbyConfig config() { return config; }
    @Override public List<Parameter> parameters() { return List.of(down, downBias, up, upBias); }

    @Override
    public void forward(StepContext ctx, Tensor x, Tensor y) {
        Backend be = ctx.backend();
        long t = y.dim(0), m = config.bottleneckSize();
        z = ctx.allocate(y.shape());
        be.copy(y, z);
        u = ctx.allocate(t, m);
        be.gemm(false, true, 1f, z, down.value(), 0f, u);
        be.biasAdd(downBias.value(), u);
        a = ctx.allocate(t, m);
        be.geluForward(u, a);
        be.gemm(false, true, 1f, a, up.value(), 1f, y);
        be.biasAdd(upBias.value(), y);
    }

    @Override
    public Tensor outputGradient(StepContext ctx, Tensor g) {
        Backend be = ctx.backend();
        long t = g.dim(0), m = config.bottleneckSize();
        if (up.requiresGrad()) be.gemm(true, false, 1f, g, a, 1f, up.grad());
        if (upBias.requiresGrad()) be.colsum(g, upBias.grad(), true);
        Tensor gu = ctx.allocate(t, m);
        be.gemm(false, false, 1f, g, up.value(), 0f, gu);   // ∂L/∂a
        be.geluBackward(u, gu, gu);                          // ∂L/∂u
        if (down.requiresGrad()) be.gemm(true, false, 1f, gu, z, 1f, down.grad());
        if (downBias.requiresGrad()) be.colsum(gu, downBias.grad(), true);
        Tensor gz = ctx.allocate(g.shape());
        be.copy(g, gz);                                      // the residual
        be.gemm(false, false, 1f, gu, down.value(), 1f, gz);
        return gz;
    }

    /** Nothing acts on the input: the base layer's backward already used outputGradient. */
    @Override
    public void backward(StepContext ctx, Tensor x, Tensor g, Tensor dx) {
    }

    @Override
    public Tensor deltaWeight(Backend backend) {
        throw notMergeable();
    }

    @Override
    public void merge(Backend backend, Tensor weight, Tensor bias) {
        throw notMergeable();
    }

    @Override
    public void unmerge(Backend backend, Tensor weight, Tensor bias) {
        throw notMergeable();
    }

    private UnsupportedOperationException notMergeable() {
        return new UnsupportedOperationException("Houlsby adapter '" + name + "' on '" + layerPath
                + "' cannot be merged into the base weights: its GELU bottleneck is not linear");
    }
}
