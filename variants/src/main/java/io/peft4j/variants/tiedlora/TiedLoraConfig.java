package io.peft4j.variants.tiedlora;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.ConfigValues;
import io.peft4j.peft.TargetModules;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Tied-LoRA (Renduchintala, Konuk, Kuchaiev, NAACL 2024): ΔW_l = s·diag(v_l)·B·diag(u_l)·A with
 * s = alpha/r, A: [r, d_in], B: [d_out, r], u_l: [r], v_l: [d_out]. A and B are each tied (one
 * tensor for every adapted layer, allocated at the largest d_in / d_out and sliced, as VeRA does)
 * or per layer, and trainable or frozen (random); u and v are trainable or frozen at 1.
 *
 * <p>PEFT lacks the method; peft4j stores it in PEFT's layout with {@code peft_type} "TIEDLORA" and
 * the fields {@code r}, {@code lora_alpha}, {@code lora_dropout}, {@code preset}, {@code tie_a},
 * {@code tie_b}, {@code train_a}, {@code train_b}, {@code train_u}, {@code train_v},
 * {@code target_modules}. Keys: per layer {@code base_model.model.<layer>.tiedlora_A} [r, d_in] and
 * {@code tiedlora_B} [d_out, r] when not tied, {@code tiedlora_u} [r] and {@code tiedlora_v} [d_out]
 * when trained; tied A and B once as {@code base_model.tiedlora_A} [r, max d_in] and
 * {@code base_model.tiedlora_B} [max d_out, r]. Frozen u, v (= 1) are not stored.
 *
 * <p>Init, so that ΔW = 0 at the start: a trained A ~ kaiming-uniform(a=√5), a frozen A or B ~
 * kaiming-uniform(a=0) (VeRA's), u = v = 1, and one trained factor set to zero: B if it trains,
 * else v, else A, else u.
 */
public record TiedLoraConfig(int r, float alpha, float dropout, String preset, boolean tieA, boolean tieB, boolean trainA,
                             boolean trainB, boolean trainU, boolean trainV, TargetModules targetModules) implements AdapterConfig {

    public static final String PEFT_TYPE = "TIEDLORA";
    public static final String A = "tiedlora_A", B = "tiedlora_B", U = "tiedlora_u", V = "tiedlora_v";

    /** A named configuration: which of A, B are tied and which of A, B, u, v train. */
    public record Preset(String name, boolean tieA, boolean tieB, boolean trainA, boolean trainB, boolean trainU, boolean trainV,
                         String doc) {}

    /** The presets, by what they tie and train (the combinations the paper's table explores). */
    public static final List<Preset> PRESETS = List.of(
            new Preset("lora", false, false, true, true, false, false, "plain LoRA: A, B per layer and trained; u = v = 1"),
            new Preset("tied-ab", true, true, true, true, false, false, "A, B tied and trained; u = v = 1"),
            new Preset("tied-ab-uv", true, true, true, true, true, true, "A, B tied and trained, u, v trained (the paper's recommended)"),
            new Preset("tied-ab-u", true, true, true, true, true, false, "A, B tied and trained, u trained, v = 1"),
            new Preset("tied-ab-v", true, true, true, true, false, true, "A, B tied and trained, v trained, u = 1"),
            new Preset("tied-frozen-a", true, true, false, true, true, true, "A tied frozen random, B tied trained, u, v trained"),
            new Preset("tied-frozen-b", true, true, true, false, true, true, "A tied trained, B tied frozen random, u, v trained"),
            new Preset("vera-like", true, true, false, false, true, true, "A, B tied frozen random, u, v trained (VeRA)"),
            // The spec's (docs/algorithms.md §6) names for the two tied-and-trained presets.
            new Preset("tied", true, true, true, true, false, false, "same as tied-ab"),
            new Preset("tied-uv", true, true, true, true, true, true, "same as tied-ab-uv"));

    public static final String DEFAULT_PRESET = "tied-ab-uv";
    /** B's draws start here under the same key as A's (2^40 elements in, past any A): the two never share random numbers. */
    private static final long B_OFFSET = 1L << 40;

    public TiedLoraConfig {
        if (r <= 0) throw new IllegalArgumentException("Tied-LoRA r must be > 0, got " + r);
        if (!(alpha > 0) || Float.isInfinite(alpha)) throw new IllegalArgumentException("Tied-LoRA lora_alpha must be > 0, got " + alpha);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("Tied-LoRA lora_dropout must be in [0, 1), got " + dropout);
        preset(preset);
        if (!trainA && !trainB && !trainU && !trainV) {
            throw new IllegalArgumentException("Tied-LoRA: train_a, train_b, train_u and train_v are all false: nothing would train");
        }
        if (targetModules == null) throw new IllegalArgumentException("Tied-LoRA needs target_modules");
    }

    /** The preset named {@code name}. */
    public static Preset preset(String name) {
        for (Preset p : PRESETS) if (p.name().equals(name)) return p;
        throw new IllegalArgumentException("Tied-LoRA preset '" + name + "' is unknown; presets: "
                + String.join(", ", PRESETS.stream().map(Preset::name).toList()));
    }

    public static Builder builder() {
        return new Builder();
    }

    public float scaling() {
        return alpha / r;
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        return createAll(List.of(layer), adapterName, backend, seed).get(0);
    }

    /** Tied A and B are sized from every layer's shape (the largest d_in, d_out) and drawn once with {@code seed}. */
    @Override
    public List<Adapter> createAll(List<Linear> layers, String adapterName, Backend backend, long seed) {
        long maxIn = layers.stream().mapToLong(Linear::inFeatures).max().orElseThrow();
        long maxOut = layers.stream().mapToLong(Linear::outFeatures).max().orElseThrow();
        // The factor that starts at zero, so that ΔW = 0: B if it trains, else v, else A, else u.
        boolean zeroB = trainB, zeroV = !zeroB && trainV, zeroA = !zeroB && !zeroV && trainA, zeroU = !zeroB && !zeroV && !zeroA;
        Parameter tiedA = tieA ? factorA(backend, seed, maxIn, zeroA) : null;
        Parameter tiedB = tieB ? factorB(backend, seed, maxOut, zeroB) : null;
        List<Parameter> shared = new ArrayList<>();
        if (tiedA != null) shared.add(tiedA);
        if (tiedB != null) shared.add(tiedB);
        List<Adapter> out = new ArrayList<>();
        long layerSeed = seed;
        for (Linear l : layers) {
            layerSeed += 0x9E3779B97F4A7C15L;   // a distinct Philox key per layer, none equal to the tied tensors' key
            Parameter a = tieA ? tiedA : factorA(backend, layerSeed, l.inFeatures(), zeroA);
            Parameter b = tieB ? tiedB : factorB(backend, layerSeed, l.outFeatures(), zeroB);
            Parameter u = trainU ? vector(U, r, zeroU ? 0f : 1f) : null;
            Parameter v = trainV ? vector(V, l.outFeatures(), zeroV ? 0f : 1f) : null;
            List<Parameter> perLayer = new ArrayList<>();
            Set<Parameter> frozen = new HashSet<>();
            if (!tieA) perLayer.add(a);
            if (!tieB) perLayer.add(b);
            if (u != null) perLayer.add(u);
            if (v != null) perLayer.add(v);
            if (!trainA) frozen.add(a);
            if (!trainB) frozen.add(b);
            out.add(new ScaledLowRankAdapter(this, adapterName, layerSeed, scaling(), dropout, l.inFeatures(), l.outFeatures(),
                    a, b, u, v, perLayer, shared, frozen, Set.of()));
        }
        return out;
    }

    /** A [r, in]: trained → kaiming-uniform(a=√5) (or 0 when it carries the zero), frozen → kaiming-uniform(a=0). */
    private Parameter factorA(Backend backend, long seed, long in, boolean zero) {
        Tensor t = Tensor.zeros(DType.F32, r, in);
        if (!zero) backend.rngKaimingUniform(seed, 0, in, trainA ? (float) Math.sqrt(5) : 0f, t);
        return new Parameter(A, t, true, true);
    }

    /** B [out, r]: trained → 0 (it carries the zero), frozen → kaiming-uniform(a=0) over fan-in r. */
    private Parameter factorB(Backend backend, long seed, long out, boolean zero) {
        Tensor t = Tensor.zeros(DType.F32, out, r);
        if (!zero) backend.rngKaimingUniform(seed, B_OFFSET, r, 0f, t);
        return new Parameter(B, t, true, true);
    }

    private static Parameter vector(String name, long n, float value) {
        Tensor t = Tensor.zeros(DType.F32, n);
        if (value != 0f) {
            float[] f = new float[Math.toIntExact(n)];
            java.util.Arrays.fill(f, value);
            t.copyFrom(f);
        }
        return new Parameter(name, t, true, false);
    }

    /** The trainable parameters the adapter adds to one layer of d_in → d_out, tied tensors not counted. */
    public long perLayerTrainable(long dIn, long dOut) {
        return (!tieA && trainA ? r * dIn : 0) + (!tieB && trainB ? dOut * r : 0) + (trainU ? r : 0) + (trainV ? dOut : 0);
    }

    /** The trainable parameters of the tied tensors, counted once, for layers of at most maxIn → maxOut. */
    public long tiedTrainable(long maxIn, long maxOut) {
        return (tieA && trainA ? r * maxIn : 0) + (tieB && trainB ? maxOut * r : 0);
    }

    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("r", r);
        m.put("lora_alpha", alpha == Math.rint(alpha) ? (Object) (int) alpha : (Object) alpha);
        m.put("lora_dropout", dropout);
        m.put("preset", preset);
        m.put("tie_a", tieA);
        m.put("tie_b", tieB);
        m.put("train_a", trainA);
        m.put("train_b", trainB);
        m.put("train_u", trainU);
        m.put("train_v", trainV);
        m.put("target_modules", targetModules.toJson());
        return m;
    }

    /** Each of tie_a … train_v is the preset's value unless set to true or false. */
    static TiedLoraConfig fromJson(Map<String, Object> json) {
        ConfigValues v = ConfigValues.read(TiedLoraMethod.NAME, TiedLoraMethod.FIELDS, json);
        Preset p = preset((String) v.get("preset"));
        return new TiedLoraConfig(v.getInt("r"), v.getFloat("lora_alpha"), v.getFloat("lora_dropout"), p.name(),
                flag(v, "tie_a", p.tieA()), flag(v, "tie_b", p.tieB()), flag(v, "train_a", p.trainA()), flag(v, "train_b", p.trainB()),
                flag(v, "train_u", p.trainU()), flag(v, "train_v", p.trainV()), v.getTargets("target_modules"));
    }

    private static boolean flag(ConfigValues v, String name, boolean presetValue) {
        Object o = v.get(name);
        return o instanceof Boolean b ? b : presetValue;
    }

    public static final class Builder {
        private int r = 8;
        private float alpha = 8;
        private float dropout;
        private Preset preset = TiedLoraConfig.preset(DEFAULT_PRESET);
        private Boolean tieA, tieB, trainA, trainB, trainU, trainV;
        private TargetModules targetModules;

        public Builder r(int x) { r = x; return this; }
        public Builder alpha(float x) { alpha = x; return this; }
        public Builder dropout(float x) { dropout = x; return this; }
        public Builder preset(String name) { preset = TiedLoraConfig.preset(name); return this; }
        public Builder tieA(boolean x) { tieA = x; return this; }
        public Builder tieB(boolean x) { tieB = x; return this; }
        public Builder trainA(boolean x) { trainA = x; return this; }
        public Builder trainB(boolean x) { trainB = x; return this; }
        public Builder trainU(boolean x) { trainU = x; return this; }
        public Builder trainV(boolean x) { trainV = x; return this; }
        public Builder targetModules(TargetModules x) { targetModules = x; return this; }
        public Builder targetModules(String... names) { targetModules = TargetModules.names(names); return this; }

        public TiedLoraConfig build() {
            return new TiedLoraConfig(r, alpha, dropout, preset.name(), or(tieA, preset.tieA()), or(tieB, preset.tieB()),
                    or(trainA, preset.trainA()), or(trainB, preset.trainB()), or(trainU, preset.trainU()), or(trainV, preset.trainV()),
                    targetModules);
        }

        private static boolean or(Boolean set, boolean dflt) {
            return set != null ? set : dflt;
        }
    }
}
