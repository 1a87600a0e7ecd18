package io.peft4j.train;

import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.blobs;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.data.Dataset;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Mlp;
import io.peft4j.peft.PeftModel;
import io.peft4j.variants.lora.LoraConfig;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A trainer state file that cannot be written costs the ability to resume, never the trained model. */
class CheckpointFailureTest {
    @Test
    void anUnwritableStateFileWarnsAndTrainingFinishes(@TempDir Path tmp) throws IOException {
        // A directory where the state file should go: the atomic rename onto it fails.
        Files.createDirectories(tmp.resolve(Trainer.CHECKPOINT_FILE).resolve("blocker"));
        Dataset data = blobs(96, 13, 5, 3);
        PeftModel pm = PeftModel.wrap(new Mlp(backend(), Mlp.Activation.RELU, 1, 13, 17, 5), LoraConfig.builder().r(2).targetModules("fc1", "fc2").build());
        Trainer.Config cfg = Trainer.Config.builder().epochs(2).batchSize(32).lr(1e-2f).outDir(tmp).progress(false).build();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream old = System.err;
        Trainer.Result r;
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), AdamW.defaults(), cfg, backend());
             PrintStream es = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            System.setErr(es);
            r = t.fit(data, data);
        } finally {
            System.setErr(old);
        }
        assertEquals(2, r.epochs().size(), "both epochs ran");
        String said = err.toString(StandardCharsets.UTF_8);
        assertTrue(said.contains("warning") && said.contains("cannot be resumed") && said.contains(tmp.toString()), said);
        assertTrue(Files.size(tmp.resolve("training.png")) > 0 && Files.size(tmp.resolve("metrics.jsonl")) > 0, "the other outputs are written");
        pm.save(tmp.resolve("adapter"));
        assertTrue(Files.size(tmp.resolve("adapter/adapter_model.safetensors")) > 0, "the trained adapter can still be saved");
    }
}
