package io.peft4j.io;

import static io.peft4j.variants.TestSupport.assertBitEqual;
import static io.peft4j.variants.TestSupport.assertThrowsNaming;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.baseParameters;
import static io.peft4j.variants.TestSupport.differs;
import static io.peft4j.variants.TestSupport.snapshot;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.peft.PeftModel;
import io.peft4j.tensor.DType;
import io.peft4j.variants.lora.LoraConfig;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Base checkpoints: the model's own parameters under their state_dict names, loaded all-or-nothing. */
class ModelCheckpointTest {

    @TempDir
    Path dir;

    private static Module mlp(long seed) {
        return new Mlp(backend(), Mlp.Activation.GELU, seed, 9, 7, 4);
    }

    @Test
    void baseParametersRoundTripWithoutTheAdapters() throws IOException {
        PeftModel pm = PeftModel.wrap(mlp(1), LoraConfig.builder().r(2).targetModules("fc1").build());
        Path file = dir.resolve("base.safetensors");
        ModelCheckpoint.save(pm.baseModel(), file, Map.of("epoch", "3"));
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(Set.of("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"), Set.copyOf(f.names()), "no lora_A/lora_B");
            assertEquals(DType.F32, f.entry("fc1.weight").dtype());
        }
        Module fresh = mlp(2);
        Map<String, float[]> saved = snapshot(baseParameters(pm.baseModel()));
        assertTrue(differs(saved.get("fc1.weight"), fresh.namedParameters().get("fc1.weight").value().toFloatArray()));
        assertEquals(Map.of("epoch", "3"), ModelCheckpoint.load(fresh, file));
        saved.forEach((name, v) -> assertBitEqual(v, fresh.namedParameters().get(name).value().toFloatArray(), name));
    }

    /** Every tensor is checked before any is copied: a refused file leaves the model as it was. */
    @Test
    void loadRefusesAFileThatDoesNotFitAndChangesNothing() throws IOException {
        Path small = dir.resolve("small.safetensors");
        ModelCheckpoint.save(new Mlp(backend(), Mlp.Activation.GELU, 1, 9, 7), small, Map.of());
        Path wide = dir.resolve("wide.safetensors");
        ModelCheckpoint.save(new Mlp(backend(), Mlp.Activation.GELU, 1, 9, 8, 4), wide, Map.of());
        Path deep = dir.resolve("deep.safetensors");
        ModelCheckpoint.save(new Mlp(backend(), Mlp.Activation.GELU, 1, 9, 7, 4, 3), deep, Map.of());

        Module m = mlp(5);
        Map<String, float[]> before = snapshot(baseParameters(m));
        assertThrowsNaming(IllegalArgumentException.class, () -> ModelCheckpoint.load(m, small),
                small + ": missing tensor 'fc2.weight'");
        assertThrowsNaming(IllegalArgumentException.class, () -> ModelCheckpoint.load(m, wide),
                wide + ": tensor 'fc1.weight' has shape [8, 9], the model needs");
        assertThrowsNaming(IllegalArgumentException.class, () -> ModelCheckpoint.load(m, deep),
                deep + ": unexpected tensor 'fc3.");
        before.forEach((name, v) -> assertBitEqual(v, m.namedParameters().get(name).value().toFloatArray(), name + " untouched"));
    }
}
