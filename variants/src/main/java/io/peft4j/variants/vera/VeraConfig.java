package io.peft4j.variants.vera;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.ConfigValues;
import io.peft4j.peft.TargetModules;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import io.peft4j.variants.tiedlora.ScaledLowRankAdapter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * VeRA (Kopiczko et al. ICLR 2024): one frozen random pair A [r, max d_in], B [max d_out, r] for the
 * whole model, each layer using A[:, :d_in] and B[:d_out, :], and per layer the trained scalings
 * λ_b [d_out] (init 0) and λ_d [r] (init d_initial): ΔW = diag(λ_b)·B_s·diag(λ_d)·A_s, no α.
 * Defaults and file keys as PEFT's VeraConfig: r 256, projection_prng_key 0, save_projection true,
 * vera_dropout 0, d_initial 0.1; per layer vera_lambda_b, vera_lambda_d, and base_model.vera_A,
 * base_model.vera_B once.
 *
 * <p>A ~ U(±√(6/max d_in)) and then B ~ U(±√(6/r)) (kaiming-uniform with a = 0, as PEFT) come from
 * peft4j's Philox generator keyed by projection_prng_key, not from PyTorch's generator, so PEFT's
 * projections are read from its file (save_projection true, PEFT's default); an adapter peft4j saved
 * without them rebuilds them bit for bit from the key.
 */
public record VeraConfig(int r, long projectionPrngKey, boolean saveProjection, float dropout, float dInitial,
                         TargetModules targetModules) implements AdapterConfig {

    public static final String PEFT_TYPE = "VERA";
    public static final String A = "vera_A", B = "vera_B", LAMBDA_B = "vera_lambda_b", LAMBDA_D = "vera_lambda_d";

    public VeraConfig {
        if (r <= 0) throw new IllegalArgumentException("VeRA r must be > 0, got " + r);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("VeRA vera_dropout must be in [0, 1), got " + dropout);
        if (!Float.isFinite(dInitial)) throw new IllegalArgumentException("VeRA d_initial must be finite, got " + dInitial);
        if (targetModules == null) throw new IllegalArgumentException("VeRA needs target_modules");
    }

    public static Builder builder() {
        return new Builder();
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        return createAll(List.of(layer), adapterName, backend, seed).get(0);
    }

    /**
     * Draws the pair once at the largest d_in and d_out of {@code layers}. As PEFT, a second VeRA
     * adapter must use the same projection_prng_key and save_projection, and neither its rank nor its
     * layers may exceed what an existing adapter's pair covers.
     */
    @Override
    public List<Adapter> createAll(List<Linear> layers, String adapterName, Backend backend, long seed) {
        long maxIn = layers.stream().mapToLong(Linear::inFeatures).max().orElseThrow();
        long maxOut = layers.stream().mapToLong(Linear::outFeatures).max().orElseThrow();
        checkAgainstExisting(layers, maxIn, maxOut);
        Tensor a = Tensor.zeros(DType.F32, r, maxIn), b = Tensor.zeros(DType.F32, maxOut, r);
        backend.rngKaimingUniform(projectionPrngKey, 0, maxIn, 0f, a);
        backend.rngKaimingUniform(projectionPrngKey, roundUp4((long) r * maxIn), r, 0f, b);   // after A's draws
        Parameter pa = new Parameter(A, a, false, false), pb = new Parameter(B, b, false, false);
        Set<Parameter> unsaved = saveProjection ? Set.of() : Set.of(pa, pb);
        List<Adapter> out = new ArrayList<>();
        long layerSeed = seed;
        for (Linear l : layers) {
            Tensor lb = Tensor.zeros(DType.F32, l.outFeatures());
            float[] d = new float[r];
            Arrays.fill(d, dInitial);
            Parameter lambdaB = new Parameter(LAMBDA_B, lb, true, false);
            Parameter lambdaD = new Parameter(LAMBDA_D, Tensor.of(d, r), true, false);
            out.add(new ScaledLowRankAdapter(this, adapterName, layerSeed, 1f, dropout, l.inFeatures(), l.outFeatures(),
                    pa, pb, lambdaD, lambdaB, List.of(lambdaB, lambdaD), List.of(pa, pb), Set.of(pa, pb), unsaved));
            layerSeed += 0x9E3779B97F4A7C15L;   // a distinct dropout key per layer
        }
        return out;
    }

    private void checkAgainstExisting(List<Linear> layers, long maxIn, long maxOut) {
        for (Linear l : layers) {
            for (Adapter other : l.adapters().values()) {
                if (!(other.config() instanceof VeraConfig c) || !(other instanceof ScaledLowRankAdapter s)) continue;
                String name = "VeRA adapter '" + other.adapterName() + "'";
                if (c.projectionPrngKey() != projectionPrngKey) {
                    throw new IllegalArgumentException("VeRA projection_prng_key must be the same for every adapter of a model: "
                            + name + " has " + c.projectionPrngKey() + ", got " + projectionPrngKey);
                }
                if (c.saveProjection() != saveProjection) {
                    throw new IllegalArgumentException("VeRA save_projection must be the same for every adapter of a model: "
                            + name + " has " + c.saveProjection() + ", got " + saveProjection);
                }
                long haveR = s.a().value().dim(0), haveIn = s.a().value().dim(1), haveOut = s.b().value().dim(0);
                if (r > haveR || maxIn > haveIn || maxOut > haveOut) {
                    throw new IllegalArgumentException("VeRA: the shared projections of " + name + " are vera_A [" + haveR + ", " + haveIn
                            + "], vera_B [" + haveOut + ", " + haveR + "]; this adapter needs r " + r + " and layers up to " + maxIn
                            + " -> " + maxOut + " (a later VeRA adapter may not have a larger rank or larger layers)");
                }
            }
        }
    }

    private static long roundUp4(long n) {
        return (n + 3) & ~3L;
    }

    /** PEFT's VeraConfig fields. */
    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("r", r);
        m.put("target_modules", targetModules.toJson());
        m.put("projection_prng_key", projectionPrngKey);
        m.put("save_projection", saveProjection);
        m.put("vera_dropout", dropout);
        m.put("d_initial", dInitial);
        m.put("fan_in_fan_out", false);
        m.put("bias", "none");
        m.put("modules_to_save", null);
        m.put("init_weights", true);
        m.put("layers_to_transform", null);
        m.put("layers_pattern", null);
        m.put("task_type", null);
        m.put("inference_mode", true);
        m.put("base_model_name_or_path", null);
        return m;
    }

    static VeraConfig fromJson(Map<String, Object> json) {
        ConfigValues v = ConfigValues.read(VeraMethod.NAME, VeraMethod.FIELDS, json);
        return new VeraConfig(v.getInt("r"), v.getLong("projection_prng_key"), v.getBool("save_projection"), v.getFloat("vera_dropout"),
                v.getFloat("d_initial"), v.getTargets("target_modules"));
    }

    public static final class Builder {
        private int r = 256;
        private long projectionPrngKey;
        private boolean saveProjection = true;
        private float dropout;
        private float dInitial = 0.1f;
        private TargetModules targetModules;

        public Builder r(int x) { r = x; return this; }
        public Builder projectionPrngKey(long x) { projectionPrngKey = x; return this; }
        public Builder saveProjection(boolean x) { saveProjection = x; return this; }
        public Builder dropout(float x) { dropout = x; return this; }
        public Builder dInitial(float x) { dInitial = x; return this; }
        public Builder targetModules(TargetModules x) { targetModules = x; return this; }
        public Builder targetModules(String... names) { targetModules = TargetModules.names(names); return this; }

        public VeraConfig build() {
            return new VeraConfig(r, projectionPrngKey, saveProjection, dropout, dInitial, targetModules);
        }
    }
}
