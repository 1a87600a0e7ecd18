package io.peft4j.peft;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import java.util.ArrayList;
import io.peft4j.train.TrainerCallback;
import java.util.List;
import java.util.Map;

/** A method's settings (one record per method) and how it builds an adapter for one layer. */
public interface AdapterConfig {

    /** PEFT's peft_type ("LORA", "LOHA", ...), the key of the method in {@link AdapterMethods}. */
    String peftType();

    TargetModules targetModules();

    /** A new adapter for {@code layer}; {@code seed} makes its initialisation reproducible. */
    Adapter create(Linear layer, String adapterName, Backend backend, long seed);

    /**
     * Adapters for all {@code layers} an adapter is added to, in order. By default each comes from
     * {@link #create} with its own Philox key; methods that share tensors across layers (VeRA,
     * Tied-LoRA) override this to size them from every layer's shape first.
     */
    default List<Adapter> createAll(List<Linear> layers, String adapterName, Backend backend, long seed) {
        List<Adapter> out = new ArrayList<>();
        long layerSeed = seed;
        for (Linear l : layers) {
            out.add(create(l, adapterName, backend, layerSeed));
            layerSeed += 0x9E3779B97F4A7C15L; // a distinct Philox key per layer
        }
        return out;
    }

    /** The fields of adapter_config.json (peft_type and target_modules included). */
    Map<String, Object> toJson();

    /**
     * What the method does in the training loop beyond the gradient step (rank allocation, gate
     * updates, rank sampling) for the adapter {@code adapterName} of {@code model}: new callbacks
     * for one training run, which whoever trains installs ({@link PeftModel#trainerCallbacks}).
     */
    default List<TrainerCallback> trainerCallbacks(PeftModel model, String adapterName) {
        return List.of();
    }
}
