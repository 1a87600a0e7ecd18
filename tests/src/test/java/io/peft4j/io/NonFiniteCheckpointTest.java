package io.peft4j.io;

import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.blobs;
import static io.peft4j.variants.TestSupport.snapshot;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.nn.Loss;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Parameter;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import io.peft4j.variants.TestSupport;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A base checkpoint or trainer state holding NaN or an infinity is refused by name, and the model keeps its weights. */
class NonFiniteCheckpointTest {
    @TempDir
    Path dir;

    private static Mlp mlp(long seed) {
        return new Mlp(backend(), Mlp.Activation.RELU, seed, 7, 5, 3);
    }

    @Test
    void aBaseCheckpointWithNaNWeightsIsRefused() throws IOException {
        for (float bad : new float[] {Float.NaN, Float.NEGATIVE_INFINITY}) {
            Path file = dir.resolve("base-" + bad + ".safetensors");
            try (Mlp source = mlp(1); Mlp target = mlp(2)) {
                Parameter b = source.namedParameters().get("fc2.bias");
                b.value().setFloat(1, bad);
                ModelCheckpoint.save(source, file, Map.of());
                Map<String, float[]> before = snapshot(target.namedParameters());
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelCheckpoint.load(target, file));
                assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("tensor 'fc2.bias' holds " + bad + " at element 1"),
                        e.getMessage());
                // Nothing was copied, not even the tensors before the bad one.
                Map<String, float[]> after = snapshot(target.namedParameters());
                before.forEach((n, v) -> TestSupport.assertBitEqual(v, after.get(n), n));
            }
        }
    }

    @Test
    void aTrainerCheckpointWithNaNIsRefused() {
        Trainer.Config cfg = Trainer.Config.builder().batchSize(8).lr(1e-2f).seed(4).evalEvery(0).progress(false).build();
        try (Mlp m = mlp(3); Trainer t = new Trainer(m, Loss.crossEntropy(), AdamW.defaults(), cfg, backend())) {
            t.fit(blobs(24, 7, 3, 9), null);
            m.namedParameters().get("fc2.weight").value().setFloat(4, Float.POSITIVE_INFINITY);
            t.saveCheckpoint(dir);
            // The model moves on after the save, so a partial resume would show in fc1 (read before fc2).
            m.namedParameters().get("fc2.weight").value().setFloat(4, 0.5f);
            m.namedParameters().get("fc1.weight").value().setFloat(0, 0.125f);
            Map<String, float[]> before = snapshot(m.namedParameters());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.resume(dir));
            assertTrue(e.getMessage().contains("tensor 'param.fc2.weight' holds Infinity at element 4"), e.getMessage());
            Map<String, float[]> after = snapshot(m.namedParameters());
            before.forEach((n, v) -> TestSupport.assertBitEqual(v, after.get(n), n));
            assertEquals(3, t.state().step(), "the loop position is not moved by a refused resume");
        }
    }
}
