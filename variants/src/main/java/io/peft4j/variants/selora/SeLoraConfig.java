package io.peft4j.variants.selora;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.ConfigValues;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.train.TrainerCallback;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * SeLoRA (Mao et al. 2024): LoRA whose every layer starts at rank init_r (1) and grows during
 * training: every expand_step optimizer steps each layer tries one more rank on the same batch and
 * keeps it when the Fisher ratio F_exp / F_orig ≥ expand_threshold (1.3), F = Σ (∂L/∂θ)² over the
 * layer's A and B. Rule and defaults from the authors' code (algorithms.md §11). PEFT has no SeLoRA:
 * peft_type "SELORA", keys as LoRA's ({@code lora_A.weight} [r, d_in], {@code lora_B.weight} [d_out, r]),
 * fields: {@code init_r}, {@code lora_alpha} (8), {@code lora_dropout}, {@code target_modules};
 * {@code expand_step} (40; the code's class default is 20), {@code expand_threshold} (λ, 1.3),
 * {@code window} (F_orig averaged over this many steps; 1 = the step's own, the code's),
 * {@code scale} ("initial": α/init_r fixed, the code's; "current": α/r, with B rescaled when a rank is
 * added so the output is unchanged), {@code trial_row_init} ("init": the trial row drawn with A's init;
 * "zero": zero until the layer first grows, the code's quirk), {@code r_max} (0 = no limit, the code's),
 * {@code keep_optimizer_state} (false: a grown layer's Adam state restarts at zero, as the code's
 * re-registration does; true: existing rows keep theirs) and {@code rank_pattern} (the rank each layer
 * reached, written by training, read on load).
 */
public record SeLoraConfig(int initR, float alpha, float dropout, int expandStep, float expandThreshold, int window, String scale,
                           String trialRowInit, int rMax, boolean keepOptimizerState, Map<String, Integer> rankPattern,
                           TargetModules targetModules) implements AdapterConfig {

    public static final String PEFT_TYPE = "SELORA";

    public SeLoraConfig {
        if (initR <= 0) throw new IllegalArgumentException("SeLoRA init_r must be > 0, got " + initR);
        if (!(alpha > 0) || Float.isInfinite(alpha)) throw new IllegalArgumentException("SeLoRA lora_alpha must be > 0, got " + alpha);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("SeLoRA lora_dropout must be in [0, 1), got " + dropout);
        if (expandStep <= 0) throw new IllegalArgumentException("SeLoRA expand_step must be > 0, got " + expandStep);
        if (!(expandThreshold >= 0) || Float.isInfinite(expandThreshold)) {
            throw new IllegalArgumentException("SeLoRA expand_threshold must be finite and >= 0, got " + expandThreshold);
        }
        if (window <= 0) throw new IllegalArgumentException("SeLoRA window must be > 0, got " + window);
        if (!scale.equals("initial") && !scale.equals("current")) throw new IllegalArgumentException("SeLoRA scale must be 'initial' or 'current', got '" + scale + "'");
        if (!trialRowInit.equals("init") && !trialRowInit.equals("zero")) {
            throw new IllegalArgumentException("SeLoRA trial_row_init must be 'init' or 'zero', got '" + trialRowInit + "'");
        }
        if (rMax < 0 || (rMax > 0 && rMax < initR)) throw new IllegalArgumentException("SeLoRA r_max must be 0 (no limit) or >= init_r, got " + rMax);
        if (targetModules == null) throw new IllegalArgumentException("SeLoRA needs target_modules");
        rankPattern = rankPattern == null ? new LinkedHashMap<>() : new LinkedHashMap<>(rankPattern);
        rankPattern.forEach((k, v) -> {
            if (v == null || v < 1) throw new IllegalArgumentException("SeLoRA rank_pattern['" + k + "'] must be a rank >= 1, got " + v);
        });
    }

    public static Builder builder() {
        return new Builder();
    }

    /** The layer's rank: as the pattern records it, else init_r. */
    int rankOf(String layerPath) {
        return rankPattern.getOrDefault(layerPath, initR);
    }

    /** Training grew a layer: the saved config records its new rank (the one mutable part of the config). */
    void recordRank(String layerPath, int r) {
        rankPattern.put(layerPath, r);
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        return new SeLoraAdapter(this, layer, adapterName, backend, seed, rankOf(layer.path()));
    }

    @Override
    public List<TrainerCallback> trainerCallbacks(PeftModel model, String adapterName) {
        return List.of(new RankExpander(model, adapterName, this));
    }

    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("init_r", initR);
        m.put("lora_alpha", alpha == Math.rint(alpha) ? (Object) (int) alpha : (Object) alpha);
        m.put("lora_dropout", dropout);
        m.put("expand_step", expandStep);
        m.put("expand_threshold", expandThreshold);
        m.put("window", window);
        m.put("scale", scale);
        m.put("trial_row_init", trialRowInit);
        m.put("r_max", rMax);
        m.put("keep_optimizer_state", keepOptimizerState);
        m.put("rank_pattern", new LinkedHashMap<>(rankPattern));
        m.put("target_modules", targetModules.toJson());
        return m;
    }

    static SeLoraConfig fromJson(Map<String, Object> json) {
        ConfigValues v = ConfigValues.read(SeLoraMethod.NAME, SeLoraMethod.FIELDS, json);
        Object rp = v.get("rank_pattern");
        Map<String, Integer> ranks = new LinkedHashMap<>();
        if (rp != null) {
            if (!(rp instanceof Map<?, ?> m)) throw new IllegalArgumentException("SeLoRA rank_pattern must be an object {layer: rank}, got " + rp);
            m.forEach((k, r) -> {
                if (!(r instanceof Number n) || n.doubleValue() != Math.rint(n.doubleValue())) {
                    throw new IllegalArgumentException("SeLoRA rank_pattern['" + k + "'] must be an integer rank, got " + r);
                }
                ranks.put(String.valueOf(k), n.intValue());
            });
        }
        return new SeLoraConfig(v.getInt("init_r"), v.getFloat("lora_alpha"), v.getFloat("lora_dropout"), v.getInt("expand_step"),
                v.getFloat("expand_threshold"), v.getInt("window"), (String) v.get("scale"), (String) v.get("trial_row_init"),
                v.getInt("r_max"), v.getBool("keep_optimizer_state"), ranks, v.getTargets("target_modules"));
    }

    public static final class Builder {
        private int initR = 1, expandStep = 40, window = 1, rMax;
        private float alpha = 8, dropout, expandThreshold = 1.3f;
        private String scale = "initial", trialRowInit = "init";
        private boolean keepOptimizerState;
        private TargetModules targetModules;

        public Builder initR(int v) { initR = v; return this; }
        public Builder alpha(float v) { alpha = v; return this; }
        public Builder dropout(float v) { dropout = v; return this; }
        public Builder expandStep(int v) { expandStep = v; return this; }
        public Builder expandThreshold(float v) { expandThreshold = v; return this; }
        public Builder window(int v) { window = v; return this; }
        public Builder scale(String v) { scale = v; return this; }
        public Builder trialRowInit(String v) { trialRowInit = v; return this; }
        public Builder rMax(int v) { rMax = v; return this; }
        public Builder keepOptimizerState(boolean v) { keepOptimizerState = v; return this; }
        public Builder targetModules(TargetModules v) { targetModules = v; return this; }
        public Builder targetModules(String... names) { targetModules = TargetModules.names(names); return this; }

        public SeLoraConfig build() {
            return new SeLoraConfig(initR, alpha, dropout, expandStep, expandThreshold, window, scale, trialRowInit, rMax,
                    keepOptimizerState, null, targetModules);
        }
    }
}
