package io.peft4j.variants.krona;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.ConfigValues;
import io.peft4j.peft.TargetModules;
import io.peft4j.variants.lokr.Factorization;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * KronA (Edalati et al. 2022, algorithms.md §2): W = W0 + s·(A⊗B), or with {@code residual}
 * W = W0 + s·(A⊗B) + c·I (KronA^B_res, square layers only). PEFT has no KronA: peft4j writes
 * {@code peft_type} "KRONA" and these adapter_config.json fields:
 * <ul>
 *   <li>{@code a_rows}, {@code a_cols}: A's shape [a1, a2] (a1 divides d_out, a2 divides d_in, B is
 *       [d_out/a1, d_in/a2]); 0 = automatic: LoKr's {@code factorization(d, decompose_factor)}, the
 *       divisor pair closest to √d, its first member for A;</li>
 *   <li>{@code decompose_factor}: the factor of the automatic split (−1: no limit);</li>
 *   <li>{@code scale}: s;</li>
 *   <li>{@code residual}, {@code residual_scale} (c, fixed, default 1: exactly the survey's "+ I"),
 *       {@code train_residual_scale} (c becomes a trainable scalar that starts at 0, so the model
 *       starts unchanged; {@code residual_scale} is then unused);</li>
 *   <li>{@code init_weights}: true (A ~ kaiming-uniform a=√5, B = 0) or "zero_a" (B kaiming, A = 0).</li>
 * </ul>
 * Tensors: {@code krona_A} [a1, a2], {@code krona_B} [b1, b2] and, when trainable,
 * {@code krona_residual_scale} [1].
 */
public record KronaConfig(int aRows, int aCols, int decomposeFactor, float scale, boolean residual, float residualScale,
                          boolean trainResidualScale, String init, TargetModules targetModules) implements AdapterConfig {

    public static final String PEFT_TYPE = "KRONA";

    public KronaConfig {
        if (aRows < 0 || aCols < 0) throw new IllegalArgumentException("KronA a_rows and a_cols must be >= 0 (0 = automatic), got " + aRows + ", " + aCols);
        if (decomposeFactor != -1 && decomposeFactor < 1) {
            throw new IllegalArgumentException("KronA decompose_factor must be -1 or >= 1, got " + decomposeFactor);
        }
        if (!Float.isFinite(scale) || scale == 0) throw new IllegalArgumentException("KronA scale must be finite and nonzero, got " + scale);
        if (!Float.isFinite(residualScale)) throw new IllegalArgumentException("KronA residual_scale must be finite, got " + residualScale);
        if (!init.equals("kaiming") && !init.equals("zero_a")) {
            throw new IllegalArgumentException("KronA init must be 'kaiming' or 'zero_a', got '" + init + "'");
        }
        if (targetModules == null) throw new IllegalArgumentException("KronA needs target_modules");
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A's shape [a1, a2] on a d_out×d_in layer (checked: each divides its dimension). */
    public int[] aShape(String layer, long dOut, long dIn) {
        int a1 = aRows > 0 ? aRows : Factorization.of(Math.toIntExact(dOut), decomposeFactor)[0];
        int a2 = aCols > 0 ? aCols : Factorization.of(Math.toIntExact(dIn), decomposeFactor)[0];
        if (dOut % a1 != 0 || dIn % a2 != 0) {
            throw new IllegalArgumentException("KronA: A [" + a1 + ", " + a2 + "] does not divide layer '" + layer + "' [" + dOut + ", " + dIn
                    + "] (a_rows must divide d_out, a_cols d_in)");
        }
        return new int[] {a1, a2};
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        return new KronaAdapter(this, layer, adapterName, backend, seed);
    }

    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("a_rows", aRows);
        m.put("a_cols", aCols);
        m.put("decompose_factor", decomposeFactor);
        m.put("scale", scale);
        m.put("residual", residual);
        m.put("residual_scale", residualScale);
        m.put("train_residual_scale", trainResidualScale);
        m.put("init_weights", init.equals("kaiming") ? (Object) true : init);
        m.put("target_modules", targetModules.toJson());
        return m;
    }

    static KronaConfig fromJson(Map<String, Object> json) {
        ConfigValues v = ConfigValues.read(KronaMethod.NAME, KronaMethod.FIELDS, json);
        return new KronaConfig(v.getInt("a_rows"), v.getInt("a_cols"), v.getInt("decompose_factor"), v.getFloat("scale"),
                v.getBool("residual"), v.getFloat("residual_scale"), v.getBool("train_residual_scale"),
                Boolean.TRUE.equals(v.get("init_weights")) ? "kaiming" : "zero_a", v.getTargets("target_modules"));
    }

    public static final class Builder {
        private int aRows, aCols, decomposeFactor = -1;
        private float scale = 1, residualScale = 1;
        private boolean residual, trainResidualScale;
        private String init = "kaiming";
        private TargetModules targetModules;

        public Builder aShape(int rows, int cols) { aRows = rows; aCols = cols; return this; }
        public Builder decomposeFactor(int v) { decomposeFactor = v; return this; }
        public Builder scale(float v) { scale = v; return this; }
        public Builder residual(boolean v) { residual = v; return this; }
        public Builder residualScale(float v) { residualScale = v; return this; }
        public Builder trainResidualScale(boolean v) { trainResidualScale = v; return this; }
        public Builder init(String v) { init = v; return this; }
        public Builder targetModules(TargetModules v) { targetModules = v; return this; }
        public Builder targetModules(String... names) { targetModules = TargetModules.names(names); return this; }

        public KronaConfig build() {
            return new KronaConfig(aRows, aCols, decomposeFactor, scale, residual, residualScale, trainResidualScale, init, targetModules);
        }
    }
}
