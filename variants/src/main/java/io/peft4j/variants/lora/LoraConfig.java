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

/**
 * LoRA (Hu et al. 2021): W = W0 + s·B·A, A: [r, d_in], B: [d_out, r], s = alpha/r (alpha/√r with
 * rsLoRA). Defaults as PEFT's LoraConfig: r 8, alpha 8, dropout 0, kaiming init.
 *
 * @param init    "kaiming" (A ~ kaiming-uniform a=√5, B = 0) or "gaussian" (A ~ N(0, 1/r²), B = 0)
 * @param useDora DoRA (PEFT's use_dora): LoRA plus a per-row magnitude, see {@link DoraAdapter}
 */
public record LoraConfig(int r, float alpha, float dropout, boolean useRsLora, String init, TargetModules targetModules,
                         boolean useDora) implements AdapterConfig {

    public static final String PEFT_TYPE = "LORA";

    public LoraConfig {
        if (r <= 0) throw new IllegalArgumentException("LoRA r must be > 0, got " + r);
        if (!(alpha > 0) || Float.isInfinite(alpha)) throw new IllegalArgumentException("LoRA alpha must be > 0, got " + alpha);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("LoRA dropout must be in [0, 1), got " + dropout);
        if (!init.equals("kaiming") && !init.equals("gaussian")) {
            throw new IllegalArgumentException("LoRA init must be 'kaiming' or 'gaussian', got '" + init + "'");
        }
        if (targetModules == null) throw new IllegalArgumentException("LoRA needs target_modules");
    }

    /** Plain LoRA (use_dora false). */
    public LoraConfig(int r, float alpha, float dropout, boolean useRsLora, String init, TargetModules targetModules) {
        this(r, alpha, dropout, useRsLora, init, targetModules, false);
    }

    public static Builder builder() {
        return new Builder();
    }

    /** The factor on B·A. */
    public float scaling() {
        return (float) (useRsLora ? alpha / Math.sqrt(r) : alpha / r);
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
        m.put("rank_pattern", Map.of());
        m.put("alpha_pattern", Map.of());
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
                v.getBool("use_dora"));
    }

    public static final class Builder {
        private int r = 8;
        private float alpha = 8;
        private float dropout;
        private boolean useRsLora;
        private String init = "kaiming";
        private TargetModules targetModules;
        private boolean useDora;

        public Builder r(int v) { r = v; return this; }
        public Builder alpha(float v) { alpha = v; return this; }
        public Builder dropout(float v) { dropout = v; return this; }
        public Builder useRsLora(boolean v) { useRsLora = v; return this; }
        public Builder init(String v) { init = v; return this; }
        public Builder useDora(boolean v) { useDora = v; return this; }
        public Builder targetModules(TargetModules v) { targetModules = v; return this; }
        public Builder targetModules(String... names) { targetModules = TargetModules.names(names); return this; }

        public LoraConfig build() {
            return new LoraConfig(r, alpha, dropout, useRsLora, init, targetModules, useDora);
        }
    }
}
