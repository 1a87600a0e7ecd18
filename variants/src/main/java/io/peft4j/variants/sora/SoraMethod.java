package io.peft4j.variants.sora;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.List;
import java.util.Map;

/** Registers SoRA: peft_type "SORA" (peft4j's; PEFT lacks the method), fields in {@link SoraConfig}. */
public final class SoraMethod implements AdapterMethod {
    static final String NAME = "sora";

    static final List<ConfigField> FIELDS = List.of(
            ConfigField.integer("r", 8, 1, 65536, "maximum rank r_max (gates prune it)").shortcut("rank"),
            ConfigField.real("lora_alpha", 16, 0, false, Float.MAX_VALUE, true, "scale numerator: ΔW = (alpha/r)·B·diag(g)·A").shortcut("alpha"),
            ConfigField.real("lora_dropout", 0, 0, true, 1, false, "dropout on the adapter's input while training").shortcut("dropout"),
            ConfigField.real("sparse_lambda", 10, 0, true, Float.MAX_VALUE, true, "L1 weight on the mean |gate|"),
            ConfigField.real("sparse_lambda_2", 3e-4, 0, true, Float.MAX_VALUE, true, "threshold xi of the gates' proximal step"),
            ConfigField.choice("threshold", "reference", List.of("reference", "soft"),
                    "reference: the code's map (|g| < 2xi -> 0 except |g| = xi); soft: the paper's soft threshold at lr·xi"),
            ConfigField.real("sparse_lr", 0, 0, true, Float.MAX_VALUE, true, "the gates' learning rate (0 = the run's)"),
            ConfigField.choice("lambda_schedule", "none", List.of("none", "linear", "log_linear", "exp_linear"),
                    "sparsity schedule of xi from sparse_lambda_2 to max_lambda"),
            ConfigField.real("max_lambda", 7e-4, 0, true, Float.MAX_VALUE, true, "last xi of the schedule"),
            ConfigField.integer("lambda_num", 1, 1, 1000, "values of xi in the schedule"),
            ConfigField.integer("lambda_epochs", 15, 1, 100000, "epochs per value of xi"),
            ConfigField.targets("target_modules", "all-linear",
                    "layers to adapt: names (suffix match), all-linear, or a quoted regex").shortcut("targets"));

    @Override public String name() { return NAME; }
    @Override public String peftType() { return SoraConfig.PEFT_TYPE; }
    @Override public String description() { return "LoRA with L1-sparsified rank gates, pruned to plain LoRA (Ding et al. 2023)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return true; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return SoraConfig.fromJson(json);
    }
}
