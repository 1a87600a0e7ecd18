package io.peft4j.variants.tiedlora;

import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.ConfigField;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Registers Tied-LoRA: peft_type "TIEDLORA" (peft4j's own; see {@link TiedLoraConfig} for fields and keys). */
public final class TiedLoraMethod implements AdapterMethod {
    static final String NAME = "tiedlora";

    private static final List<Object> FLAG = List.of("preset", true, false);

    static final List<ConfigField> FIELDS = List.of(
            ConfigField.integer("r", 8, 1, 65536, "rank of A and B").shortcut("rank"),
            ConfigField.real("lora_alpha", 8, 0, false, Float.MAX_VALUE, true, "scale numerator: ΔW = (alpha/r)·diag(v)·B·diag(u)·A")
                    .shortcut("alpha"),
            ConfigField.real("lora_dropout", 0, 0, true, 1, false, "dropout on the adapter's input while training").shortcut("dropout"),
            ConfigField.choice("preset", TiedLoraConfig.DEFAULT_PRESET, presetNames(), presetDoc()),
            ConfigField.choice("tie_a", "preset", FLAG, "A shared by every layer (sliced to each d_in); preset: as the preset says"),
            ConfigField.choice("tie_b", "preset", FLAG, "B shared by every layer (sliced to each d_out); preset: as the preset says"),
            ConfigField.choice("train_a", "preset", FLAG, "train A (false: frozen random); preset: as the preset says"),
            ConfigField.choice("train_b", "preset", FLAG, "train B (false: frozen random); preset: as the preset says"),
            ConfigField.choice("train_u", "preset", FLAG, "train the per-layer inner scaling u [r] (false: u = 1)"),
            ConfigField.choice("train_v", "preset", FLAG, "train the per-layer output scaling v [d_out] (false: v = 1)"),
            ConfigField.targets("target_modules", "all-linear",
                    "layers to adapt: names (suffix match), all-linear, or a quoted regex").shortcut("targets"));

    private static List<Object> presetNames() {
        return new ArrayList<>(TiedLoraConfig.PRESETS.stream().map(p -> (Object) p.name()).toList());
    }

    private static String presetDoc() {
        return "named configuration: " + String.join("; ", TiedLoraConfig.PRESETS.stream().map(p -> p.name() + " = " + p.doc()).toList());
    }

    @Override public String name() { return NAME; }
    @Override public String peftType() { return TiedLoraConfig.PEFT_TYPE; }
    @Override public String description() { return "LoRA with A, B tied across layers and per-layer scalings u, v (Renduchintala et al. 2024)"; }
    @Override public List<ConfigField> fields() { return FIELDS; }
    @Override public boolean mergeable() { return true; }

    @Override
    public AdapterConfig configFromJson(Map<String, Object> json) {
        return TiedLoraConfig.fromJson(json);
    }
}
