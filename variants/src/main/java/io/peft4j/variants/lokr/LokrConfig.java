package io.peft4j.variants.lokr;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.ConfigValues;
import io.peft4j.peft.TargetModules;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * LoKr (LyCORIS Kronecker adapter, algorithms.md §4): ΔW = s·kron(W1, W2) with
 * (a, b) = factorization(d_out, f), (c, d) = factorization(d_in, f), W1: [a, c] (or W1a·W1b with
 * {@code decompose_both} when r < max(a, c)/2), W2: [b, d] (or W2a·W2b when r < max(b, d)/2),
 * s = alpha/r. Fields and defaults as PEFT's LoKrConfig (r 8, alpha 8, factor −1).
 *
 * @param init             "peft" (init_weights true: W1 = 0 (or W1a = 0, W1b kaiming), W2 kaiming),
 *                         "random" (false: all kaiming) or "lycoris" (W1 kaiming, W2 = 0 or W2b = 0)
 * @param lycorisFullScale LyCORIS's rule, a peft4j field written only when true: a layer whose W1
 *                         and W2 are both full matrices uses s = 1 (LyCORIS forces alpha = r there;
 *                         PEFT keeps alpha/r)
 */
public record LokrConfig(int r, float alpha, boolean decomposeBoth, int decomposeFactor, String init, boolean lycorisFullScale,
                         TargetModules targetModules) implements AdapterConfig {

    public static final String PEFT_TYPE = "LOKR";

    public LokrConfig {
        if (r <= 0) throw new IllegalArgumentException("LoKr r must be > 0, got " + r);
        if (!Float.isFinite(alpha)) throw new IllegalArgumentException("LoKr alpha must be finite, got " + alpha);
        if (decomposeFactor != -1 && decomposeFactor < 1) {
            throw new IllegalArgumentException("LoKr decompose_factor must be -1 or >= 1, got " + decomposeFactor);
        }
        if (!init.equals("peft") && !init.equals("random") && !init.equals("lycoris")) {
            throw new IllegalArgumentException("LoKr init must be 'peft', 'random' or 'lycoris', got '" + init + "'");
        }
        if (targetModules == null) throw new IllegalArgumentException("LoKr needs target_modules");
    }

    public static Builder builder() {
        return new Builder();
    }

    /** The factor shapes PEFT gives a d_out×d_in layer. */
    public Shapes shapes(long dOut, long dIn) {
        int[] out = Factorization.of(Math.toIntExact(dOut), decomposeFactor), in = Factorization.of(Math.toIntExact(dIn), decomposeFactor);
        int a = out[0], b = out[1], c = in[0], d = in[1];
        boolean fullW1 = !(decomposeBoth && 2L * r < Math.max(a, c));
        boolean fullW2 = 2L * r >= Math.max(b, d);
        return new Shapes(a, b, c, d, fullW1, fullW2);
    }

    /**
     * W1: [a, c], W2: [b, d]; each full or a rank-r product.
     */
    public record Shapes(int a, int b, int c, int d, boolean fullW1, boolean fullW2) {}

    /** s on a layer with these shapes: alpha/r, or 1 under LyCORIS's rule when both factors are full. */
    public float scaling(Shapes sh) {
        return lycorisFullScale && sh.fullW1() && sh.fullW2() ? 1f : alpha / r;
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        return new LokrAdapter(this, layer, adapterName, backend, seed);
    }

    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("r", r);
        m.put("alpha", alpha == Math.rint(alpha) ? (Object) (int) alpha : (Object) alpha);
        m.put("rank_dropout", 0.0);
        m.put("module_dropout", 0.0);
        m.put("decompose_both", decomposeBoth);
        m.put("decompose_factor", decomposeFactor);
        m.put("rank_dropout_scale", false);
        m.put("init_weights", switch (init) {
            case "peft" -> true;
            case "random" -> false;
            default -> init;
        });
        if (lycorisFullScale) m.put("lycoris_full_scale", true);
        m.put("target_modules", targetModules.toJson());
        m.put("use_effective_conv2d", false);
        m.put("rank_pattern", Map.of());
        m.put("alpha_pattern", Map.of());
        m.put("modules_to_save", null);
        m.put("task_type", null);
        m.put("inference_mode", true);
        return m;
    }

    static LokrConfig fromJson(Map<String, Object> json) {
        ConfigValues v = ConfigValues.read(LokrMethod.NAME, LokrMethod.FIELDS, json);
        Object init = v.get("init_weights");
        return new LokrConfig(v.getInt("r"), v.getFloat("alpha"), v.getBool("decompose_both"), v.getInt("decompose_factor"),
                Boolean.TRUE.equals(init) ? "peft" : Boolean.FALSE.equals(init) ? "random" : "lycoris", v.getBool("lycoris_full_scale"),
                v.getTargets("target_modules"));
    }

    public static final class Builder {
        private int r = 8, decomposeFactor = -1;
        private float alpha = 8;
        private boolean decomposeBoth, lycorisFullScale;
        private String init = "peft";
        private TargetModules targetModules;

        public Builder r(int v) { r = v; return this; }
        public Builder alpha(float v) { alpha = v; return this; }
        public Builder decomposeBoth(boolean v) { decomposeBoth = v; return this; }
        public Builder decomposeFactor(int v) { decomposeFactor = v; return this; }
        public Builder init(String v) { init = v; return this; }
        public Builder lycorisFullScale(boolean v) { lycorisFullScale = v; return this; }
        public Builder targetModules(TargetModules v) { targetModules = v; return this; }
        public Builder targetModules(String... names) { targetModules = TargetModules.names(names); return this; }

        public LokrConfig build() {
            return new LokrConfig(r, alpha, decomposeBoth, decomposeFactor, init, lycorisFullScale, targetModules);
        }
    }
}
