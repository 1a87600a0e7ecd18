package io.peft4j.variants.loha;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.ConfigValues;
import io.peft4j.peft.TargetModules;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * LoHa (LyCORIS; FedPara's Hadamard parametrisation, algorithms.md §3):
 * ΔW = s·(W1a·W1b) ⊙ (W2a·W2b), W1a, W2a: [d_out, r], W1b, W2b: [r, d_in], s = alpha/r. Fields and
 * defaults as PEFT's LoHaConfig (r 8, alpha 8, dropouts 0).
 *
 * @param rankDropout   while training, each output row of ΔW is dropped with this probability and
 *                      the kept rows are scaled by 1/mean(mask), as PEFT does (a step that drops
 *                      every row adds nothing, where PEFT would divide by zero)
 * @param moduleDropout while training, the whole adapter is skipped for a step with this probability
 * @param init          "peft" (init_weights true: W1a, W1b, W2a kaiming-uniform a=√5, W2b = 0),
 *                      "random" (false: all four kaiming-uniform) or "lycoris" (peft4j's extension,
 *                      LyCORIS's init: W1a ~ N(0, 0.1²), W1b ~ N(0, 1), W2a = 0, W2b ~ N(0, 1))
 */
public record LohaConfig(int r, float alpha, float rankDropout, float moduleDropout, String init, TargetModules targetModules)
        implements AdapterConfig {

    public static final String PEFT_TYPE = "LOHA";

    public LohaConfig {
        if (r <= 0) throw new IllegalArgumentException("LoHa r must be > 0, got " + r);
        if (!Float.isFinite(alpha)) throw new IllegalArgumentException("LoHa alpha must be finite, got " + alpha);
        if (!(rankDropout >= 0 && rankDropout < 1)) throw new IllegalArgumentException("LoHa rank_dropout must be in [0, 1), got " + rankDropout);
        if (!(moduleDropout >= 0 && moduleDropout < 1)) {
            throw new IllegalArgumentException("LoHa module_dropout must be in [0, 1), got " + moduleDropout);
        }
        if (!init.equals("peft") && !init.equals("random") && !init.equals("lycoris")) {
            throw new IllegalArgumentException("LoHa init must be 'peft', 'random' or 'lycoris', got '" + init + "'");
        }
        if (targetModules == null) throw new IllegalArgumentException("LoHa needs target_modules");
    }

    public static Builder builder() {
        return new Builder();
    }

    /** PEFT's scale: alpha/r. */
    public float scaling() {
        return alpha / r;
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        return new LohaAdapter(this, layer, adapterName, backend, seed);
    }

    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("r", r);
        m.put("alpha", alpha == Math.rint(alpha) ? (Object) (int) alpha : (Object) alpha);
        m.put("rank_dropout", rankDropout);
        m.put("module_dropout", moduleDropout);
        m.put("init_weights", switch (init) {
            case "peft" -> true;
            case "random" -> false;
            default -> init;
        });
        m.put("target_modules", targetModules.toJson());
        m.put("use_effective_conv2d", false);
        m.put("rank_pattern", Map.of());
        m.put("alpha_pattern", Map.of());
        m.put("modules_to_save", null);
        m.put("task_type", null);
        m.put("inference_mode", true);
        return m;
    }

    static LohaConfig fromJson(Map<String, Object> json) {
        ConfigValues v = ConfigValues.read(LohaMethod.NAME, LohaMethod.FIELDS, json);
        Object init = v.get("init_weights");
        return new LohaConfig(v.getInt("r"), v.getFloat("alpha"), v.getFloat("rank_dropout"), v.getFloat("module_dropout"),
                Boolean.TRUE.equals(init) ? "peft" : Boolean.FALSE.equals(init) ? "random" : "lycoris", v.getTargets("target_modules"));
    }

    public static final class Builder {
        private int r = 8;
        private float alpha = 8, rankDropout, moduleDropout;
        private String init = "peft";
        private TargetModules targetModules;

        public Builder r(int v) { r = v; return this; }
        public Builder alpha(float v) { alpha = v; return this; }
        public Builder rankDropout(float v) { rankDropout = v; return this; }
        public Builder moduleDropout(float v) { moduleDropout = v; return this; }
        public Builder init(String v) { init = v; return this; }
        public Builder targetModules(TargetModules v) { targetModules = v; return this; }
        public Builder targetModules(String... names) { targetModules = TargetModules.names(names); return this; }

        public LohaConfig build() {
            return new LohaConfig(r, alpha, rankDropout, moduleDropout, init, targetModules);
        }
    }
}
