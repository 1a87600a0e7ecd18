package io.peft4j.peft;

import io.peft4j.nn.Module;
import java.util.List;
import java.util.Map;

/**
 * A PEFT method, registered through java.util.ServiceLoader. The registration describes the method
 * completely: {@code PeftModel.load} finds it by peft_type, and the command line (train, methods,
 * compare) reads its name, fields and defaults from here, so adding a method needs no CLI change.
 */
public interface AdapterMethod {
    /** The command-line name ("lora"). */
    String name();

    /** PEFT's peft_type ("LORA"), as adapter_config.json stores it. */
    String peftType();

    /** One line: what the method trains. */
    String description();

    /** Every field of adapter_config.json this method reads, with type, default, range and doc. */
    List<ConfigField> fields();

    /** Whether the adapter can be folded into the base weights. */
    boolean mergeable();

    /**
     * The learning rate the method trains well with on the demo task. Methods that train only
     * scaling vectors need about ten times LoRA's 1e-3.
     */
    default float suggestedLearningRate() {
        return 1e-3f;
    }

    /**
     * Why this method cannot adapt {@code model} at all (prompt tuning needs a model that takes
     * tokens), or null when it can. {@code compare --variants all} leaves such methods out.
     */
    default String unsupportedModel(Module model) {
        return null;
    }

    /** The config saved in adapter_config.json, validated (see {@link ConfigValues#read}). */
    AdapterConfig configFromJson(Map<String, Object> json);
}
