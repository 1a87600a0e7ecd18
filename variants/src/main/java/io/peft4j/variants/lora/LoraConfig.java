package io.peft4j.variants.lora;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.ConfigField;
import io.peft4j.peft.ConfigValues;
import io.peft4j.peft.TargetModules;
import io.peft4j.variants.dora.DoraAdapter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * LoRA (Hu et al. 2021): W = W0 + s·B·A, A: [r, d_in], B: [d_out, r], s = alpha/r (alpha/√r with
 * rsLoRA). Defaults as PEFT's LoraConfig: r 8, alpha 8, dropout 0, kaiming init.
 *
 * @param init    "kaiming" (A ~ kaiming-uniform a=√5, B = 0) or "gaussian" (A ~ N(0, 1/r²), B = 0)
 * @param useDora DoRA (PEFT's use_dora): LoRA plus a per-row magnitude, see {@link DoraAdapter}
 * @param rankPattern  PEFT's rank_pattern: a layer whose path matches a key (see {@link #patternKey}) gets that r
 * @param alphaPattern PEFT's alpha_pattern: likewise for lora_alpha
 */
public record LoraConfig(int r, float alpha, float dropout, boolean useRsLora, String init, TargetModules targetModules,
                         boolean useDora, Map<String, Integer> rankPattern, Map<String, Float> alphaPattern) implements AdapterConfig {

    public static final String PEFT_TYPE = "LORA";

    public LoraConfig {
        if (r <= 0) throw new IllegalArgumentException("LoRA r must be > 0, got " + r);
        if (!(alpha > 0) || Float.isInfinite(alpha)) throw new IllegalArgumentException("LoRA alpha must be > 0, got " + alpha);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("LoRA dropout must be in [0, 1), got " + dropout);
        if (!init.equals("kaiming") && !init.equals("gaussian")) {
            throw new IllegalArgumentException("LoRA init must be 'kaiming' or 'gaussian', got '" + init + "'");
        }
        if (targetModules == null) throw new IllegalArgumentException("LoRA needs target_modules");
        alphaPattern = alphaPattern == null ? Map.of() : alphaPattern;
        rankPattern = checkPattern("rank_pattern", rankPattern == null ? Map.of() : rankPattern);
        rankPattern.forEach((k, v) -> {
            if (v == null || v <= 0) throw new IllegalArgumentException("LoRA rank_pattern['" + k + "'] must be > 0, got " + v);
        });
        alphaPattern = checkPattern("alpha_pattern", alphaPattern);
        alphaPattern.forEach((k, v) -> {
            if (v == null || !(v > 0) || Float.isInfinite(v)) {
                throw new IllegalArgumentException("LoRA alpha_pattern['" + k + "'] must be > 0, got " + v);
            }
        });
    }

    /** Copies a pattern map keeping its order (PEFT takes the first matching key) and checks each key compiles as a regex. */
    private static <V> Map<String, V> checkPattern(String field, Map<String, V> pattern) {
        Map<String, V> out = new LinkedHashMap<>();
        pattern.forEach((k, v) -> {
            try {
                Pattern.compile(k);
            } catch (PatternSyntaxException e) {
                throw new IllegalArgumentException("LoRA " + field + " key '" + k + "' is not a valid regex: " + e.getDescription());
            }
            out.put(k, v);
        });
        return java.util.Collections.unmodifiableMap(out);
    }

    /** Without per-layer patterns. */
    public LoraConfig(int r, float alpha, float dropout, boolean useRsLora, String init, TargetModules targetModules, boolean useDora) {
        this(r, alpha, dropout, useRsLora, init, targetModules, useDora, Map.of(), Map.of());
    }

    /** Plain LoRA (use_dora false). */
    public LoraConfig(int r, float alpha, float dropout, boolean useRsLora, String init, TargetModules targetModules) {
        this(r, alpha, dropout, useRsLora, init, targetModules, false);
    }

    public static Builder builder() {
        return new Builder();
    }

    /** The factor on B·A for layers no pattern names. */
    public float scaling() {
        return scaling(r, alpha);
    }

    private float scaling(int rank, float a) {
        return (float) (useRsLora ? a / Math.sqrt(rank) : a / rank);
    }

    /**
     * PEFT's get_pattern_key: the first key k (in the pattern's order) such that the layer path
     * matches {@code (.*\.)?(k)$} in full, so "q" names "blocks.0.q" but not "blocks.0.qk"; null if none.
     */
    public static String patternKey(Iterable<String> keys, String layerPath) {
        for (String k : keys) {
            if (Pattern.matches("(.*\\.)?(" + k + ")", layerPath)) return k;
        }
        return null;
    }

    /** The layer's rank: rank_pattern's entry for its path, else r. */
    public int rankOf(String layerPath) {
        String k = patternKey(rankPattern.keySet(), layerPath);
        return k == null ? r : rankPattern.get(k);
    }

    /** The layer's lora_alpha: alpha_pattern's entry for its path, else lora_alpha. */
    public float alphaOf(String layerPath) {
        String k = patternKey(alphaPattern.keySet(), layerPath);
        return k == null ? alpha : alphaPattern.get(k);
    }

    /** The factor on B·A of the layer at {@code layerPath}. */
    public float scalingOf(String layerPath) {
        return scaling(rankOf(layerPath), alphaOf(layerPath));
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        LoraAdapter lora = new LoraAdapter(this, layer, adapterName, backend, seed);
        return useDora ? new DoraAdapter(this, lora, layer, backend) : lora;
    }

    /** PEFT's adapter_config.json fields for LoRA. */
    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("r", r);
        m.put("lora_alpha", alpha == Math.rint(alpha) ? (Object) (int) alpha : (Object) alpha);
        m.put("lora_dropout", dropout);
        m.put("use_rslora", useRsLora);
        m.put("init_lora_weights", init.equals("kaiming") ? (Object) true : init);
        m.put("target_modules", targetModules.toJson());
        m.put("bias", "none");
        m.put("fan_in_fan_out", false);
        m.put("use_dora", useDora);
        m.put("modules_to_save", null);
        m.put("task_type", null);
        m.put("inference_mode", true);
        m.put("base_model_name_or_path", null);
        m.put("rank_pattern", new LinkedHashMap<>(rankPattern));
        Map<String, Object> alphas = new LinkedHashMap<>();
        alphaPattern.forEach((k, a) -> alphas.put(k, a == Math.rint(a) ? (Object) a.intValue() : (Object) a));
        m.put("alpha_pattern", alphas);
        return m;
    }

    /** Reads adapter_config.json as PEFT writes it; settings peft4j does not implement are refused by name. */
    static LoraConfig fromJson(Map<String, Object> json) {
        return fromJson(LoraMethod.NAME, LoraMethod.FIELDS, json);
    }

    /** As {@link #fromJson(Map)} against the given method's fields (DoRA's fix use_dora at true). */
    public static LoraConfig fromJson(String method, List<ConfigField> fields, Map<String, Object> json) {
        ConfigValues v = ConfigValues.read(method, fields, json);
        return new LoraConfig(v.getInt("r"), v.getFloat("lora_alpha"), v.getFloat("lora_dropout"), v.getBool("use_rslora"),
                Boolean.TRUE.equals(v.get("init_lora_weights")) ? "kaiming" : "gaussian", v.getTargets("target_modules"),
                v.getBool("use_dora"), ints(v.getMap("rank_pattern")), floats(v.getMap("alpha_pattern")));
    }

    /** Checked against [1, 65536] by the field, so each fits an int. */
    private static Map<String, Integer> ints(Map<String, Object> m) {
        Map<String, Integer> out = new LinkedHashMap<>();
        m.forEach((k, x) -> out.put(k, Math.toIntExact((Long) x)));
        return out;
    }

    private static Map<String, Float> floats(Map<String, Object> m) {
        Map<String, Float> out = new LinkedHashMap<>();
        m.forEach((k, x) -> out.put(k, ((Number) x).floatValue()));
        return out;
    }

    public static final class Builder {
        private int r = 8;
        private float alpha = 8;
        private float dropout;
        private boolean useRsLora;
        private String init = "kaiming";
        private TargetModules targetModules;
        private boolean useDora;
        private Map<String, Integer> rankPattern = Map.of();
        private Map<String, Float> alphaPattern = Map.of();

        public Builder r(int v) { r = v; return this; }
        public Builder alpha(float v) { alpha = v; return this; }
        public Builder dropout(float v) { dropout = v; return this; }
        public Builder useRsLora(boolean v) { useRsLora = v; return this; }
        public Builder init(String v) { init = v; return this; }
        public Builder useDora(boolean v) { useDora = v; return this; }
        public Builder targetModules(TargetModules v) { targetModules = v; return this; }
        /** Per-layer ranks (PEFT's rank_pattern); keys are tried in the map's iteration order. */
        public Builder rankPattern(Map<String, Integer> v) { rankPattern = v; return this; }
        /** Per-layer alphas (PEFT's alpha_pattern); keys are tried in the map's iteration order. */
        public Builder alphaPattern(Map<String, Float> v) { alphaPattern = v; return this; }
        public Builder targetModules(String... names) { targetModules = TargetModules.names(names); return this; }

        public LoraConfig build() {
            return new LoraConfig(r, alpha, dropout, useRsLora, init, targetModules, useDora, rankPattern, alphaPattern);
        }
    }
}
