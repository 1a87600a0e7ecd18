package io.peft4j.packaging;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.data.Dataset;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Mlp;
import io.peft4j.peft.PeftModel;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import io.peft4j.variants.lora.LoraConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every file a training run writes gets the mode a plain create gives (0644 under umask 022), the chart included. */
class OutputModesTest {

    private static Dataset random(Random r, int count, int features, int classes) {
        float[] x = new float[count * features];
        int[] y = new int[count];
        for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
        for (int i = 0; i < count; i++) y[i] = r.nextInt(classes);
        return new Dataset(x, y, count, features, classes);
    }

    @Test
    void trainingOutputsHaveThePlainCreateMode(@TempDir Path out) throws Exception {
        Backend cpu = Backend.cpu();
        Random r = new Random(11);
        Mlp model = new Mlp(cpu, Mlp.Activation.RELU, 3, 13, 17, 5);
        PeftModel peft = PeftModel.wrap(model, LoraConfig.builder().r(2).alpha(4).targetModules("fc1", "fc2").build());
        Trainer.Config cfg = Trainer.Config.builder().epochs(2).batchSize(16).lr(1e-2f).outDir(out).progress(false).build();
        try (Trainer trainer = new Trainer(peft, Loss.crossEntropy(), AdamW.defaults(), cfg, cpu)) {
            trainer.fit(random(r, 67, 13, 5), random(r, 23, 13, 5));
        }
        peft.save(out.resolve("adapter"));

        // What the umask leaves of 0666: the mode of a file created the ordinary way.
        Path reference = Files.createTempDirectory("modes").resolve("plain");
        Files.newOutputStream(reference).close();
        Set<PosixFilePermission> expected = Files.getPosixFilePermissions(reference);
        Files.delete(reference);
        Files.delete(reference.getParent());

        List<Path> files;
        try (Stream<Path> s = Files.walk(out)) {
            files = s.filter(Files::isRegularFile).toList();
        }
        for (String f : List.of("training.png", "metrics.jsonl", "adapter/adapter_model.safetensors", "adapter/adapter_config.json")) {
            assertTrue(files.contains(out.resolve(f)), "the run did not write " + f + "; wrote " + files);
        }
        for (Path f : files) {
            assertEquals(PosixFilePermissions.toString(expected), PosixFilePermissions.toString(Files.getPosixFilePermissions(f)),
                    "mode of " + out.relativize(f));
        }
    }
}
