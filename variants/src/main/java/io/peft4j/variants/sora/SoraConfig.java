package io.peft4j.variants.sora;

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
 * SoRA (Ding et al. 2023): LoRA with a gate g ∈ R^r between A and B, ΔW = (α/r)·B·diag(g)·A,
 * trained with an L1 term on the gates and a proximal (thresholding) step after each gate update,
 * so that gates reach exactly 0 and their ranks can be pruned. PEFT has no SoRA: peft_type "SORA",
 * keys {@code lora_A.weight} [r, d_in], {@code lora_gate} [r], {@code lora_B.weight} [d_out, r]; fields
 * (names of the reference code's arguments): {@code r}, {@code lora_alpha}, {@code lora_dropout},
 * {@code target_modules}; {@code sparse_lambda} (the L1 weight λ, default 10); {@code sparse_lambda_2}
 * (the threshold ξ, default 3e-4); {@code threshold} ("reference": the code's map, ξ not times the
 * learning rate; "soft": the paper's proximal step T_{η·ξ}); {@code sparse_lr} (the gates' learning
 * rate, 0 = the run's); {@code lambda_schedule} ("none", "linear", "log_linear", "exp_linear"),
 * {@code max_lambda}, {@code lambda_num} and {@code lambda_epochs}: ξ steps through the schedule's
 * values, one every lambda_epochs epochs (the reference instead chains 15-epoch runs after the first).
 * Defaults as the reference's no-schedule script: r 8, alpha 16.
 */
public record SoraConfig(int r, float alpha, float dropout, float sparseLambda, float sparseLambda2, String threshold, float sparseLr,
                         String lambdaSchedule, float maxLambda, int lambdaNum, int lambdaEpochs, TargetModules targetModules)
        implements AdapterConfig {

    public static final String PEFT_TYPE = "SORA";

    public SoraConfig {
        if (r <= 0) throw new IllegalArgumentException("SoRA r must be > 0, got " + r);
        if (!(alpha > 0) || Float.isInfinite(alpha)) throw new IllegalArgumentException("SoRA lora_alpha must be > 0, got " + alpha);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("SoRA lora_dropout must be in [0, 1), got " + dropout);
        if (!(sparseLambda >= 0) || Float.isInfinite(sparseLambda)) throw new IllegalArgumentException("SoRA sparse_lambda must be finite and >= 0, got " + sparseLambda);
        if (!(sparseLambda2 >= 0) || Float.isInfinite(sparseLambda2)) throw new IllegalArgumentException("SoRA sparse_lambda_2 must be finite and >= 0, got " + sparseLambda2);
        if (!threshold.equals("reference") && !threshold.equals("soft")) {
            throw new IllegalArgumentException("SoRA threshold must be 'reference' or 'soft', got '" + threshold + "'");
        }
        if (!(sparseLr >= 0) || Float.isInfinite(sparseLr)) throw new IllegalArgumentException("SoRA sparse_lr must be finite and >= 0, got " + sparseLr);
        if (!List.of("none", "linear", "log_linear", "exp_linear").contains(lambdaSchedule)) {
            throw new IllegalArgumentException("SoRA lambda_schedule must be none, linear, log_linear or exp_linear, got '" + lambdaSchedule + "'");
        }
        if (!(maxLambda >= 0) || Float.isInfinite(maxLambda)) throw new IllegalArgumentException("SoRA max_lambda must be finite and >= 0, got " + maxLambda);
        if (lambdaNum < 1 || lambdaEpochs < 1) {
            throw new IllegalArgumentException("SoRA lambda_num and lambda_epochs must be >= 1, got " + lambdaNum + ", " + lambdaEpochs);
        }
        if (lambdaSchedule.equals("exp_linear") && !(sparseLambda2 > 0)) {
            throw new IllegalArgumentException("SoRA exp_linear schedule needs sparse_lambda_2 > 0 (it interpolates logarithms)");
        }
        if (targetModules == null) throw new IllegalArgumentException("SoRA needs target_modules");
    }

    public static Builder builder() {
        return new Builder();
    }

    /** s = α/r_max, kept after pruning. */
    public float scaling() {
        return alpha / r;
    }

    /** The threshold ξ in force during epoch {@code epoch} (0-based). */
    public double xiAtEpoch(int epoch) {
        if (lambdaSchedule.equals("none") || lambdaNum == 1) return sparseLambda2;
        int k = Math.min(epoch / lambdaEpochs, lambdaNum - 1);
        double f = (double) k / (lambdaNum - 1);
        return switch (lambdaSchedule) {
            case "linear" -> sparseLambda2 + f * (maxLambda - sparseLambda2);
            case "log_linear" -> Math.log(Math.exp(sparseLambda2) + f * (Math.exp(maxLambda) - Math.exp(sparseLambda2)));
            default -> Math.exp(Math.log(sparseLambda2) + f * (Math.log(maxLambda) - Math.log(sparseLambda2)));
        };
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        return new SoraAdapter(this, layer, adapterName, backend, seed);
    }

    @Override
    public List<TrainerCallback> trainerCallbacks(PeftModel model, String adapterName) {
        return List.of(new GateOptimizer(model, adapterName, this));
    }

    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("r", r);
        m.put("lora_alpha", alpha == Math.rint(alpha) ? (Object) (int) alpha : (Object) alpha);
        m.put("lora_dropout", dropout);
        m.put("sparse_lambda", sparseLambda);
        m.put("sparse_lambda_2", sparseLambda2);
        m.put("threshold", threshold);
        m.put("sparse_lr", sparseLr);
        m.put("lambda_schedule", lambdaSchedule);
        m.put("max_lambda", maxLambda);
        m.put("lambda_num", lambdaNum);
        m.put("lambda_epochs", lambdaEpochs);
        m.put("target_modules", targetModules.toJson());
        return m;
    }

    static SoraConfig fromJson(Map<String, Object> json) {
        ConfigValues v = ConfigValues.read(SoraMethod.NAME, SoraMethod.FIELDS, json);
        return new SoraConfig(v.getInt("r"), v.getFloat("lora_alpha"), v.getFloat("lora_dropout"), v.getFloat("sparse_lambda"),
                v.getFloat("sparse_lambda_2"), (String) v.get("threshold"), v.getFloat("sparse_lr"), (String) v.get("lambda_schedule"),
                v.getFloat("max_lambda"), v.getInt("lambda_num"), v.getInt("lambda_epochs"), v.getTargets("target_modules"));
    }

    public static final class Builder {
        private int r = 8, lambdaNum = 1, lambdaEpochs = 15;
        private float alpha = 16, dropout, sparseLambda = 10, sparseLambda2 = 3e-4f, sparseLr, maxLambda = 7e-4f;
        private String threshold = "reference", lambdaSchedule = "none";
        private TargetModules targetModules;

        public Builder r(int v) { r = v; return this; }
        public Builder alpha(float v) { alpha = v; return this; }
        public Builder dropout(float v) { dropout = v; return this; }
        public Builder sparseLambda(float v) { sparseLambda = v; return this; }
        public Builder sparseLambda2(float v) { sparseLambda2 = v; return this; }
        public Builder threshold(String v) { threshold = v; return this; }
        public Builder sparseLr(float v) { sparseLr = v; return this; }
        public Builder lambdaSchedule(String v) { lambdaSchedule = v; return this; }
        public Builder maxLambda(float v) { maxLambda = v; return this; }
        public Builder lambdaNum(int v) { lambdaNum = v; return this; }
        public Builder lambdaEpochs(int v) { lambdaEpochs = v; return this; }
        public Builder targetModules(TargetModules v) { targetModules = v; return this; }
        public Builder targetModules(String... names) { targetModules = TargetModules.names(names); return this; }

        public SoraConfig build() {
            return new SoraConfig(r, alpha, dropout, sparseLambda, sparseLambda2, threshold, sparseLr, lambdaSchedule, maxLambda,
                    lambdaNum, lambdaEpochs, targetModules);
        }
    }
}
