package io.peft4j.variants.adalora;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.ConfigValues;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.train.TrainerCallback;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdaLoRA (Zhang et al. 2023): ΔW = c·P·diag(Λ)·Q with P = lora_B [d_out, r], Λ = lora_E [r, 1],
 * Q = lora_A [r, d_in], c = lora_alpha / (init_r + 1e-5). Defaults as PEFT's AdaLoraConfig.
 *
 * @param totalStep    the step count the budget schedule ends at; 0 (PEFT: null) = the trainer's own
 * @param orthRegForm  "peft" (γ·mean of ‖M − I‖_F, PEFT's and the official code's) or "squared"
 *                     (the paper's γ·Σ ‖M − I‖_F²); a peft4j field, written only when not "peft"
 * @param rankPattern  the triplets kept per layer ("&lt;layer path&gt;" → init_r flags), as PEFT saves it
 *                     under "&lt;layer path&gt;.lora_E"; set by training (see {@link RankPattern}), read on load
 */
public record AdaLoraConfig(int initR, int targetR, float alpha, float dropout, long tinit, long tfinal, long deltaT,
                            float beta1, float beta2, float orthRegWeight, String orthRegForm, long totalStep,
                            RankPattern rankPattern, TargetModules targetModules) implements AdapterConfig {

    public static final String PEFT_TYPE = "ADALORA";

    public AdaLoraConfig {
        if (initR <= 0) throw new IllegalArgumentException("AdaLoRA init_r must be > 0, got " + initR);
        if (targetR < 0 || targetR > initR) throw new IllegalArgumentException("AdaLoRA target_r must be in [0, init_r=" + initR + "], got " + targetR);
        if (!(alpha > 0) || Float.isInfinite(alpha)) throw new IllegalArgumentException("AdaLoRA lora_alpha must be > 0, got " + alpha);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("AdaLoRA lora_dropout must be in [0, 1), got " + dropout);
        if (tinit < 0 || tfinal < 0) throw new IllegalArgumentException("AdaLoRA tinit and tfinal must be >= 0, got " + tinit + ", " + tfinal);
        if (deltaT <= 0) throw new IllegalArgumentException("AdaLoRA deltaT must be > 0, got " + deltaT);
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
            throw new IllegalArgumentException("AdaLoRA beta1 and beta2 must be in [0, 1), got " + beta1 + ", " + beta2);
        }
        if (!(orthRegWeight >= 0) || Float.isInfinite(orthRegWeight)) {
            throw new IllegalArgumentException("AdaLoRA orth_reg_weight must be finite and >= 0, got " + orthRegWeight);
        }
        if (!orthRegForm.equals("peft") && !orthRegForm.equals("squared")) {
            throw new IllegalArgumentException("AdaLoRA orth_reg_form must be 'peft' or 'squared', got '" + orthRegForm + "'");
        }
        if (totalStep < 0) throw new IllegalArgumentException("AdaLoRA total_step must be > 0 (or null), got " + totalStep);
        if (totalStep > 0) checkSchedule(tinit, tfinal, totalStep);
        if (targetModules == null) throw new IllegalArgumentException("AdaLoRA needs target_modules");
        if (rankPattern == null) rankPattern = new RankPattern();
        rankPattern.requireLength(initR);
    }

    /** PEFT's check: the schedule must leave steps for the budget to fall from init_r to target_r. */
    void checkSchedule(long total) {
        checkSchedule(tinit, tfinal, total);
    }

    private static void checkSchedule(long tinit, long tfinal, long total) {
        if (tinit >= total - tfinal) {
            throw new IllegalArgumentException("AdaLoRA: tinit=" + tinit + " must be < total_step - tfinal = " + total + " - " + tfinal
                    + ": the schedule leaves no steps to reduce the budget");
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /** c: the factor on P·diag(Λ)·Q; the rank it divides by stays init_r when ranks are pruned. */
    public float scaling() {
        return (float) (alpha / (initR + 1e-5));
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        return new AdaLoraAdapter(this, layer, adapterName, backend, seed, rankPattern.rankOf(layer.path(), initR));
    }

    @Override
    public List<TrainerCallback> trainerCallbacks(PeftModel model, String adapterName) {
        return List.of(new RankAllocator(model, adapterName, this));
    }

    /** PEFT's adapter_config.json fields for AdaLoRA. */
    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("init_r", initR);
        m.put("target_r", targetR);
        m.put("r", initR);
        m.put("lora_alpha", alpha == Math.rint(alpha) ? (Object) (int) alpha : (Object) alpha);
        m.put("lora_dropout", dropout);
        m.put("tinit", tinit);
        m.put("tfinal", tfinal);
        m.put("deltaT", deltaT);
        m.put("beta1", beta1);
        m.put("beta2", beta2);
        m.put("orth_reg_weight", orthRegWeight);
        if (!orthRegForm.equals("peft")) m.put("orth_reg_form", orthRegForm);
        m.put("total_step", totalStep == 0 ? null : (Object) totalStep);
        m.put("rank_pattern", rankPattern.toJson());
        m.put("target_modules", targetModules.toJson());
        m.put("init_lora_weights", true);
        m.put("bias", "none");
        m.put("fan_in_fan_out", false);
        m.put("use_rslora", false);
        m.put("use_dora", false);
        m.put("modules_to_save", null);
        m.put("task_type", null);
        m.put("inference_mode", true);
        m.put("base_model_name_or_path", null);
        return m;
    }

    /** Reads adapter_config.json as PEFT writes it; settings peft4j does not implement are refused by name. */
    static AdaLoraConfig fromJson(Map<String, Object> json) {
        Map<String, Object> j = new LinkedHashMap<>(json);
        if (j.get("total_step") == null) j.remove("total_step");   // PEFT's null: not set
        ConfigValues v = ConfigValues.read(AdaLoraMethod.NAME, AdaLoraMethod.FIELDS, j);
        return new AdaLoraConfig(v.getInt("init_r"), v.getInt("target_r"), v.getFloat("lora_alpha"), v.getFloat("lora_dropout"),
                v.getLong("tinit"), v.getLong("tfinal"), v.getLong("deltaT"), v.getFloat("beta1"), v.getFloat("beta2"),
                v.getFloat("orth_reg_weight"), (String) v.get("orth_reg_form"), v.getLong("total_step"),
                RankPattern.fromJson(v.get("rank_pattern")), v.getTargets("target_modules"));
    }

    public static final class Builder {
        private int initR = 12, targetR = 8;
        private float alpha = 8, dropout;
        private long tinit, tfinal, deltaT = 1, totalStep;
        private float beta1 = 0.85f, beta2 = 0.85f, orthRegWeight = 0.5f;
        private String orthRegForm = "peft";
        private TargetModules targetModules;

        public Builder initR(int v) { initR = v; return this; }
        public Builder targetR(int v) { targetR = v; return this; }
        public Builder alpha(float v) { alpha = v; return this; }
        public Builder dropout(float v) { dropout = v; return this; }
        public Builder tinit(long v) { tinit = v; return this; }
        public Builder tfinal(long v) { tfinal = v; return this; }
        public Builder deltaT(long v) { deltaT = v; return this; }
        public Builder totalStep(long v) { totalStep = v; return this; }
        public Builder beta1(float v) { beta1 = v; return this; }
        public Builder beta2(float v) { beta2 = v; return this; }
        public Builder orthRegWeight(float v) { orthRegWeight = v; return this; }
        public Builder orthRegForm(String v) { orthRegForm = v; return this; }
        public Builder targetModules(TargetModules v) { targetModules = v; return this; }
        public Builder targetModules(String... names) { targetModules = TargetModules.names(names); return this; }

        public AdaLoraConfig build() {
            return new AdaLoraConfig(initR, targetR, alpha, dropout, tinit, tfinal, deltaT, beta1, beta2, orthRegWeight, orthRegForm,
                    totalStep, new RankPattern(), targetModules);
        }
    }

    /**
     * The triplets each layer keeps, by layer path: empty until the rank allocator fixes a pattern
     * during training (the config then saves it as PEFT's rank_pattern), or as read from a saved
     * adapter_config.json. The one mutable part of the config, shared by its adapters.
     */
    public static final class RankPattern {
        private final Map<String, boolean[]> keep = new LinkedHashMap<>();

        /** The layer's rank: its kept triplets, or {@code initR} when the pattern does not name it. */
        int rankOf(String layerPath, int initR) {
            boolean[] k = keep.get(layerPath);
            if (k == null) return initR;
            int n = 0;
            for (boolean b : k) if (b) n++;
            return n;
        }

        public boolean isEmpty() {
            return keep.isEmpty();
        }

        /** A copy of the layer's flags (length init_r), or null. */
        public boolean[] get(String layerPath) {
            boolean[] k = keep.get(layerPath);
            return k == null ? null : k.clone();
        }

        void put(String layerPath, boolean[] flags) {
            keep.put(layerPath, flags.clone());
        }

        /** Kept triplets per layer, in layer order. */
        public Map<String, Integer> ranks() {
            Map<String, Integer> out = new LinkedHashMap<>();
            keep.keySet().forEach(p -> out.put(p, rankOf(p, 0)));
            return out;
        }

        void requireLength(int initR) {
            keep.forEach((p, k) -> {
                if (k.length != initR) {
                    throw new IllegalArgumentException("AdaLoRA rank_pattern['" + p + ".lora_E'] has " + k.length + " flags, init_r is " + initR);
                }
            });
        }

        /** PEFT's form: {"&lt;layer&gt;.lora_E": [true, false, ...]}, or null when empty. */
        Object toJson() {
            if (keep.isEmpty()) return null;
            Map<String, Object> m = new LinkedHashMap<>();
            keep.forEach((p, k) -> {
                List<Boolean> l = new ArrayList<>();
                for (boolean b : k) l.add(b);
                m.put(p + ".lora_E", l);
            });
            return m;
        }

        /** Accepts PEFT's keys "&lt;layer&gt;.lora_E" (and "&lt;layer&gt;.lora_E.&lt;adapter&gt;", its in-memory form). */
        static RankPattern fromJson(Object json) {
            RankPattern rp = new RankPattern();
            if (json == null) return rp;
            if (!(json instanceof Map<?, ?> m)) throw new IllegalArgumentException("AdaLoRA rank_pattern must be an object or null, got " + json);
            m.forEach((key, value) -> {
                String k = String.valueOf(key);
                int at = k.lastIndexOf(".lora_E");
                if (at <= 0 || !(k.endsWith(".lora_E") || k.indexOf('.', at + 7) == at + 7)) {
                    throw new IllegalArgumentException("AdaLoRA rank_pattern key '" + k + "' must be '<layer>.lora_E'");
                }
                if (!(value instanceof List<?> l) || l.stream().anyMatch(b -> !(b instanceof Boolean))) {
                    throw new IllegalArgumentException("AdaLoRA rank_pattern['" + k + "'] must be a list of true/false, got " + value);
                }
                boolean[] flags = new boolean[l.size()];
                for (int i = 0; i < flags.length; i++) flags[i] = (Boolean) l.get(i);
                rp.keep.put(k.substring(0, at), flags);
            });
            return rp;
        }
    }
}
