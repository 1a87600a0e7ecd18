package io.peft4j.variants.krona;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.List;
import java.util.Map;

/** Registers KronA: peft4j's own peft_type "KRONA" (PEFT has no KronA; fields in {@link KronaConfig}). */
public final class KronaMethod implements AdapterMethod {
    static final String NAME = "krona";

    static final List<ConfigField> FIELDS = List.of(
            ConfigField.integer("a_rows", 0, 0, 1 << 20, "rows of A (divides d_out); 0 = closest divisor pair to sqrt(d_out)"),
            ConfigField.integer("a_cols", 0, 0, 1 << 20, "columns of A (divides d_in); 0 = closest divisor pair to sqrt(d_in)"),
            ConfigField.integer("decompose_factor", -1, -1, 1 << 20, "cap on A's automatic side, as LoKr's factor (-1: none)"),
            ConfigField.real("scale", 1, -Float.MAX_VALUE, true, Float.MAX_VALUE, true, "s in W0 + s·(A⊗B)").shortcut("alpha"),
            ConfigField.bool("residual", false, "KronA^B_res: add c·I (square layers only)"),
            ConfigField.real("residual_scale", 1, -Float.MAX_VALUE, true, Float.MAX_VALUE, true, "c, the fixed scale of the residual I"),
            ConfigField.bool("train_residual_scale", false, "train c as a scalar starting at 0 (residual_scale unused)"),
            ConfigField.choice("init_weights", true, List.of(true, "zero_a"), "true: A kaiming-uniform, B = 0; zero_a: B kaiming, A = 0"),
            ConfigField.targets("target_modules", "all-linear",
                    "layers to adapt: names (suffix match), all-linear, or a quoted regex").shortcut("targets"));

    @Override public String name() { return NAME; }
    @Override public String peftType() { return KronaConfig.PEFT_TYPE; }
    @Override public String description() { return "Kronecker update W0 + s·(A⊗B) (+ c·I residual) (Edalati et al. 2022)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return true; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return KronaConfig.fromJson(json);
    }
}
