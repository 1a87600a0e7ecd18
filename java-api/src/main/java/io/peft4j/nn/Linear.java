package io.peft4j.nn;

import io.peft4j.backend.Backend;
import io.peft4j.peft.Adapter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * y = x·Wᵀ + b with W: [out, in] (PyTorch's layout, so checkpoints load without transposes).
 * Adapters attach here by name; the active one adds its delta to the output unless it has been
 * merged into W or adapters are disabled.
 */
public final class Linear extends Module {
    private final long in;
    private final long out;
    private final Parameter weight;
    private final Parameter bias;
    private final Map<String, Adapter> adapters = new LinkedHashMap<>();
    private final Set<String> merged = new HashSet<>();
    private Tensor unmergedWeight;   // W as it was before the first merge, while any adapter is merged
    private Tensor unmergedBias;     // b likewise (adapters that scale or shift fold into it)
    private String activeAdapter;
    private boolean adaptersEnabled = true;
    private Tensor input;
    private Tensor baseInput;   // what the base GEMM multiplied: input, or the adapter's transform of it
    // Wᵀ [in, out] while a caller promises frozen weights stay put (Trainer.fit): the forward GEMM
    // is then x·Wᵀ without a transposed operand, which oneDNN runs 1.1-1.6x faster at small batches.
    private boolean cacheFrozenTranspose;
    private Tensor frozenTranspose;
    // W kept elsewhere (NF4 for QLoRA): while no adapter is merged, weight's fp32 value is freed
    // (closed) and forward/backward use this; a merge dequantizes it into a new fp32 value.
    private FrozenWeight frozenWeight;

    /** Initialised as torch.nn.Linear: W, b ~ U(±1/sqrt(in)), drawn from Philox with {@code seed}. */
    public Linear(Backend backend, long in, long out, boolean bias, long seed) {
        if (in <= 0 || out <= 0) throw new IllegalArgumentException("Linear needs positive sizes, got in=" + in + " out=" + out);
        this.in = in;
        this.out = out;
        Tensor w;
        try {
            w = Tensor.zeros(DType.F32, out, in);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("Linear(in=" + in + ", out=" + out + "): " + e.getMessage(), e);
        }
        backend.rngKaimingUniform(seed, 0, in, (float) Math.sqrt(5), w);
        this.weight = addParameter(new Parameter("weight", w, true, true));
        if (bias) {
            Tensor b = Tensor.zeros(DType.F32, out);
            float bound = (float) (1 / Math.sqrt(in));
            // Offset past the weight's draws so the two never share random numbers.
            backend.rngUniform(seed, roundUp4(out * in), -bound, bound, b);
            this.bias = addParameter(new Parameter("bias", b, true, false));
        } else {
            this.bias = null;
        }
    }

    private static long roundUp4(long n) {
        return (n + 3) & ~3L;
    }

    public long inFeatures() { return in; }
    public long outFeatures() { return out; }
    public Parameter weight() { return weight; }
    /** The bias, or null when the layer has none. */
    public Parameter bias() { return bias; }

    @Override
    public Tensor forward(StepContext ctx, Tensor x) {
        if (x.rank() != 2 || x.dim(1) != in) {
            throw new IllegalArgumentException("Linear '" + path() + "' expects input [t, " + in + "], got " + x.describe());
        }
        Backend b = ctx.backend();
        if (ctx.training() && adaptersEnabled && activeAdapter != null && merged.contains(activeAdapter)) {
            throw new IllegalStateException("adapter '" + activeAdapter + "' on '" + path() + "' is merged: unmerge before training");
        }
        Adapter a = applied();
        Tensor xb = a == null ? x : a.transformInput(ctx, x);
        Tensor y = ctx.allocate(x.dim(0), out);
        if (frozenWeightInUse()) {
            frozenWeight.forward(ctx, xb, y);
        } else {
            Tensor wt = frozenTranspose();
            if (wt != null) b.gemm(false, false, 1f, xb, wt, 0f, y);
            else b.gemm(false, true, 1f, xb, weight.value(), 0f, y);
        }
        if (bias != null) b.biasAdd(bias.value(), y);
        if (a != null) a.forward(ctx, x, y);
        input = x;
        baseInput = xb;
        return y;
    }

    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        if (input == null || !input.isAlive()) throw new IllegalStateException("Linear '" + path() + "': backward without forward in this step");
        Backend b = ctx.backend();
        Adapter a = applied();
        // For additive adapters gz is g and baseInput is input: the plain path, nothing extra.
        Tensor gz = a == null ? g : a.outputGradient(ctx, g);
        boolean inputTransformed = baseInput != input;
        Tensor dx = needInputGrad || inputTransformed ? ctx.allocate(input.dim(0), in) : null;
        if (dx != null && frozenWeightInUse()) frozenWeight.inputGrad(ctx, gz, dx);
        else if (dx != null) b.gemm(false, false, 1f, gz, weight.value(), 0f, dx);
        if (weight.requiresGrad()) b.gemm(true, false, 1f, gz, baseInput, 1f, weight.grad());
        if (bias != null && bias.requiresGrad()) b.colsum(gz, bias.grad(), true);
        if (a != null) a.backward(ctx, input, g, dx);
        return needInputGrad ? dx : null;
    }

    /**
     * While on, a frozen weight is transposed once and reused by forward. Only for spans in which
     * nothing writes a frozen weight except merge/unmerge (which drop the copy), as a training run.
     */
    public void setCacheFrozenTranspose(boolean on) {
        cacheFrozenTranspose = on;
        if (!on) dropFrozenTranspose();
    }

    private Tensor frozenTranspose() {
        if (!cacheFrozenTranspose || weight.requiresGrad()) {
            dropFrozenTranspose();
            return null;
        }
        if (frozenTranspose == null) {
            float[] w = weight.value().toFloatArray();
            float[] t = new float[w.length];
            for (int o = 0; o < out; o++) {
                for (int i = 0; i < in; i++) t[(int) (i * out + o)] = w[(int) (o * in + i)];
            }
            frozenTranspose = Tensor.of(t, in, out);
        }
        return frozenTranspose;
    }

    private void dropFrozenTranspose() {
        if (frozenTranspose != null) frozenTranspose.close();
        frozenTranspose = null;
    }

    /**
     * Moves W into {@code frozen} (e.g. NF4) and frees the fp32 W: forward and the input gradient use
     * {@code frozen} from now on. W must be frozen and no adapter merged.
     */
    public void setFrozenWeight(FrozenWeight frozen) {
        if (frozenWeight != null) throw new IllegalStateException("layer '" + path() + "' already has a frozen weight");
        if (weight.requiresGrad()) throw new IllegalStateException("layer '" + path() + "': freeze its weight before replacing it");
        if (!merged.isEmpty()) throw new IllegalStateException("layer '" + path() + "': unmerge " + merged + " before replacing its weight");
        if (!Arrays.equals(frozen.shape(), new long[] {out, in})) {
            throw new IllegalArgumentException("layer '" + path() + "' needs a frozen weight of shape [" + out + ", " + in + "], got "
                    + Arrays.toString(frozen.shape()));
        }
        dropFrozenTranspose();
        frozenWeight = frozen;
        weight.value().close();
    }

    /** The weight set by {@link #setFrozenWeight}, or null. */
    public FrozenWeight frozenWeight() { return frozenWeight; }

    private boolean frozenWeightInUse() {
        return frozenWeight != null && merged.isEmpty();
    }

    /** The adapter whose delta forward adds: active, enabled and not merged. */
    private Adapter applied() {
        if (!adaptersEnabled || activeAdapter == null || merged.contains(activeAdapter)) return null;
        return adapters.get(activeAdapter);
    }

    // ---- adapters ----

    public void addAdapter(Adapter adapter) {
        String name = adapter.adapterName();
        if (adapters.containsKey(name)) throw new IllegalArgumentException("layer '" + path() + "' already has adapter '" + name + "'");
        adapters.put(name, adapter);
        if (activeAdapter == null) activeAdapter = name;
    }

    public Map<String, Adapter> adapters() {
        return Collections.unmodifiableMap(adapters);
    }

    public Adapter adapter(String name) {
        Adapter a = adapters.get(name);
        if (a == null) throw new IllegalArgumentException("layer '" + path() + "' has no adapter '" + name + "' (has " + adapters.keySet() + ")");
        return a;
    }

    public String activeAdapter() { return activeAdapter; }

    public void setActiveAdapter(String name) {
        if (name != null) adapter(name);
        activeAdapter = name;
    }

    public void setAdaptersEnabled(boolean enabled) { adaptersEnabled = enabled; }

    public boolean adaptersEnabled() { return adaptersEnabled; }

    public boolean isMerged(String name) { return merged.contains(name); }

    /** Folds the named adapter into W (and b): W ← W + ΔW for additive ones; forward then skips it. */
    public void merge(Backend backend, String name) {
        Adapter a = adapter(name);
        if (merged.contains(name)) throw new IllegalStateException("adapter '" + name + "' on '" + path() + "' is already merged");
        boolean first = merged.isEmpty();
        if (first && frozenWeight != null) {
            weight.replaceValue(frozenWeight.dequantize(backend));   // unmerge frees it again
            System.getLogger(Linear.class.getName()).log(System.Logger.Level.WARNING, "layer '" + path()
                    + "': merging into a dequantized fp32 copy of its frozen weight; quantizing the result again is lossy");
        } else if (first) {
            unmergedWeight = weight.value().copy();
        }
        if (first && bias != null) unmergedBias = bias.value().copy();
        dropFrozenTranspose();
        try {
            a.merge(backend, weight.value(), bias == null ? null : bias.value());
        } catch (RuntimeException e) {   // an adapter that cannot be merged refuses before changing W
            if (first && frozenWeight != null) weight.value().close();   // back to the frozen weight alone
            if (first) dropUnmergedWeight();
            throw e;
        }
        merged.add(name);
    }

    /** W ← W − ΔW: undoes {@link #merge}. */
    public void unmerge(Backend backend, String name) {
        Adapter a = adapter(name);
        if (!merged.remove(name)) throw new IllegalStateException("adapter '" + name + "' on '" + path() + "' is not merged");
        dropFrozenTranspose();
        if (merged.isEmpty() && frozenWeight != null) {
            weight.value().close();   // back to the frozen weight, exactly as before the merge
            if (unmergedBias != null) bias.value().copyFrom(unmergedBias);
            dropUnmergedWeight();
        } else if (merged.isEmpty() && unmergedWeight != null) {
            weight.value().copyFrom(unmergedWeight);   // bit-exact W0, not W0 + ΔW − ΔW
            if (unmergedBias != null) bias.value().copyFrom(unmergedBias);
            dropUnmergedWeight();
        } else {
            a.unmerge(backend, weight.value(), bias == null ? null : bias.value());
        }
    }

    private void dropUnmergedWeight() {
        if (unmergedWeight != null) unmergedWeight.close();
        if (unmergedBias != null) unmergedBias.close();
        unmergedWeight = null;
        unmergedBias = null;
    }

    /** Drops an adapter (and its parameters); a merged adapter stays folded into W. */
    public void removeAdapter(String name) {
        Adapter a = adapter(name);
        adapters.remove(name);
        // A removed merged adapter stays folded into W, so the saved copy is no longer the base.
        if (merged.remove(name)) {
            dropUnmergedWeight();
            // The fp32 copy with the delta folded in is now the layer's weight for good.
            if (frozenWeight != null) {
                frozenWeight.close();
                frozenWeight = null;
            }
        }
        a.close();
        if (name.equals(activeAdapter)) activeAdapter = adapters.isEmpty() ? null : adapters.keySet().iterator().next();
    }

    /** Own parameters, then each adapter's with the adapter name before the last part, as PEFT names them
     *  in a live model ("lora_A.default.weight"). */
    @Override
    protected Map<String, Parameter> parametersForNaming() {
        Map<String, Parameter> out = new LinkedHashMap<>(localParameters());
        adapters.forEach((adapterName, a) -> {
            for (Parameter p : a.parameters()) out.put(withAdapterName(p.name(), adapterName), p);
        });
        return out;
    }

    static String withAdapterName(String key, String adapterName) {
        int dot = key.lastIndexOf('.');
        return dot < 0 ? key + "." + adapterName : key.substring(0, dot) + "." + adapterName + key.substring(dot);
    }

    @Override
    public void close() {
        dropUnmergedWeight();
        if (frozenWeight != null) frozenWeight.close();
        dropFrozenTranspose();
        adapters.values().forEach(Adapter::close);
        super.close();
    }

    @Override
    public String toString() {
        return "Linear(" + in + " -> " + out + (bias == null ? ", no bias" : "") + ", adapters " + adapters.keySet()
                + ", shape " + Arrays.toString(weight.value().shape()) + ")";
    }
}
