package io.peft4j.variants.dylora;

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
 * DyLoRA (Valipour et al. 2023): LoRA with maximum rank r trained so that every leading rank b ≤ r
 * works: each optimizer step samples one b ∈ {1..r} (uniform, seeded, shared by all layers) and the
 * layer computes (α/b)·B[:, :b]·A[:b]. PEFT has no DyLoRA: peft_type "DYLORA", keys as LoRA's
 * ({@code lora_A.weight} [r, d_in], {@code lora_B.weight} [d_out, r]), fields:
 * {@code r}, {@code lora_alpha}, {@code lora_dropout}, {@code target_modules} as LoRA;
 * {@code frozen} (the reference training: only row b−1 of A and column b−1 of B get gradient);
 * {@code rank_seed} (the sampling seed); {@code eval_rank} (the rank evaluation and merge use, 0 = r).
 * Defaults as the reference scripts: r 8, alpha 16, frozen.
 */
public record DyLoraConfig(int r, float alpha, float dropout, boolean frozen, long rankSeed, int evalRank, TargetModules targetModules)
        implements AdapterConfig {

    public static final String PEFT_TYPE = "DYLORA";

    public DyLoraConfig {
        if (r <= 0) throw new IllegalArgumentException("DyLoRA r must be > 0, got " + r);
        if (!(alpha > 0) || Float.isInfinite(alpha)) throw new IllegalArgumentException("DyLoRA lora_alpha must be > 0, got " + alpha);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("DyLoRA lora_dropout must be in [0, 1), got " + dropout);
        if (evalRank < 0 || evalRank > r) throw new IllegalArgumentException("DyLoRA eval_rank must be in [0, r=" + r + "] (0 = r), got " + evalRank);
        if (targetModules == null) throw new IllegalArgumentException("DyLoRA needs target_modules");
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
        return new DyLoraAdapter(this, layer, adapterName, backend, seed);
    }

    @Override
    public List<TrainerCallback> trainerCallbacks(PeftModel model, String adapterName) {
        return List.of(new RankSampler(model, adapterName, r, rankSeed));
    }

    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", PEFT_TYPE);
        m.put("r", r);
        m.put("lora_alpha", alpha == Math.rint(alpha) ? (Object) (int) alpha : (Object) alpha);
        m.put("lora_dropout", dropout);
        m.put("frozen", frozen);
        m.put("rank_seed", rankSeed);
        m.put("eval_rank", evalRank);
        m.put("target_modules", targetModules.toJson());
        return m;
    }

    static DyLoraConfig fromJson(Map<String, Object> json) {
        ConfigValues v = ConfigValues.read(DyLoraMethod.NAME, DyLoraMethod.FIELDS, json);
        return new DyLoraConfig(v.getInt("r"), v.getFloat("lora_alpha"), v.getFloat("lora_dropout"), v.getBool("frozen"),
                v.getLong("rank_seed"), v.getInt("eval_rank"), v.getTargets("target_modules"));
    }

    public static final class Builder {
        private int r = 8, evalRank;
        private float alpha = 16, dropout;
        private boolean frozen = true;
        private long rankSeed;
        private TargetModules targetModules;

        public Builder r(int v) { r = v; return this; }
        public Builder alpha(float v) { alpha = v; return this; }
        public Builder dropout(float v) { dropout = v; return this; }
        public Builder frozen(boolean v) { frozen = v; return this; }
        public Builder rankSeed(long v) { rankSeed = v; return this; }
        public Builder evalRank(int v) { evalRank = v; return this; }
        public Builder targetModules(TargetModules v) { targetModules = v; return this; }
        public Builder targetModules(String... names) { targetModules = TargetModules.names(names); return this; }

        public DyLoraConfig build() {
            return new DyLoraConfig(r, alpha, dropout, frozen, rankSeed, evalRank, targetModules);
        }
    }
}
