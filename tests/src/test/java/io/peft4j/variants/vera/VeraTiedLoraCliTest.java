package io.peft4j.variants.vera;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.cli.Cli;
import io.peft4j.io.SafetensorsFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** VeRA and Tied-LoRA reach the command line through their registrations alone: methods, train, eval, merge. */
class VeraTiedLoraCliTest {
    @TempDir
    Path tmp;

    private String[] small(String... a) {
        List<String> l = new java.util.ArrayList<>(List.of(a));
        l.addAll(List.of("--limit", "600", "--no-progress", "--seed", "1", "--cache", tmp.resolve("cache").toString()));
        return l.toArray(String[]::new);
    }

    @Test
    void bothMethodsTrainMergeAndEvaluateFromTheCommandLine() throws Exception {
        Cli.Run methods = Cli.run("methods");
        assertEquals(0, methods.code(), methods.err());
        assertTrue(methods.out().contains("vera       VERA") && methods.out().contains("tiedlora   TIEDLORA"), methods.out());

        Path vera = tmp.resolve("vera");
        Cli.Run train = Cli.run(small("train", "--variant", "vera", "--rank", "16", "--epochs", "1", "--out", vera.toString()));
        assertEquals(0, train.code(), train.out() + train.err());
        assertTrue(train.out().contains("learning rate 0.01 (vera's suggested rate"), train.out());
        assertTrue(train.out().contains("trainable params: " + String.format(java.util.Locale.ROOT, "%,d", (512 + 16) + (512 + 16) + (10 + 16))), train.out());
        try (SafetensorsFile f = SafetensorsFile.open(vera.resolve("adapter/adapter_model.safetensors"))) {
            assertTrue(new TreeSet<>(f.names()).containsAll(List.of("base_model.vera_A", "base_model.vera_B",
                    "base_model.model.fc1.vera_lambda_b", "base_model.model.fc3.vera_lambda_d")), f.names().toString());
            assertEquals(List.of(16L, 784L), java.util.Arrays.stream(f.entry("base_model.vera_A").shape()).boxed().toList());
        }
        Cli.Run merged = Cli.run("merge", "--adapter", vera.toString(), "--out", tmp.resolve("vera.safetensors").toString(), "--no-progress",
                "--cache", tmp.resolve("cache").toString());
        assertEquals(0, merged.code(), merged.out() + merged.err());
        assertTrue(Files.isRegularFile(tmp.resolve("vera.safetensors")));
        Cli.Run eval = Cli.run("eval", "--adapter", vera.toString(), "--limit", "600", "--no-progress", "--cache", tmp.resolve("cache").toString());
        assertEquals(0, eval.code(), eval.out() + eval.err());
        assertEquals(train.last(), eval.last(), "eval of the saved adapter gives training's final accuracy");

        Path tied = tmp.resolve("tied");
        Cli.Run t2 = Cli.run(small("train", "--variant", "tiedlora", "--set", "preset=tied-ab", "--set", "train_v=true", "--epochs", "1",
                "--out", tied.toString()));
        assertEquals(0, t2.code(), t2.out() + t2.err());
        // tied A [8, 784] and B [512, 8] once, v per layer.
        assertTrue(t2.out().contains("trainable params: " + String.format(java.util.Locale.ROOT, "%,d", 8 * 784 + 512 * 8 + 512 + 512 + 10)), t2.out());
        Cli.Run m2 = Cli.run("merge", "--adapter", tied.toString(), "--out", tmp.resolve("tied.safetensors").toString(), "--no-progress",
                "--cache", tmp.resolve("cache").toString());
        assertEquals(0, m2.code(), m2.out() + m2.err());
    }
}
