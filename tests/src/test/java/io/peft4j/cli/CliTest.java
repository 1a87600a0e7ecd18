package io.peft4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.data.Dataset;
import io.peft4j.data.FashionMnist;
import io.peft4j.io.ModelCheckpoint;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.StepContext;
import io.peft4j.train.Trainer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The command line on the real Fashion-MNIST files of the Debian package dataset-fashion-mnist
 * (installed by the project setup; a missing data set fails these tests). One small {@code train}
 * run (--limit 600: 600 training, 100 test images) is shared by the eval and merge checks.
 */
class CliTest {
    private static final Pattern ACCURACY = Pattern.compile("rot90 accuracy (0\\.\\d{4}|1\\.0000)");

    @TempDir
    static Path tmp;
    static Path cache, out;
    static Run train;
    static double trainAccuracy;

    record Run(int code, String out, String err) {
        List<String> lines() {
            return out.lines().filter(l -> !l.isBlank()).toList();
        }

        String last() {
            List<String> l = lines();
            return l.isEmpty() ? "" : l.get(l.size() - 1);
        }
    }

    /** Runs the CLI in-process, capturing what it prints and System.err. */
    static synchronized Run cli(String... args) {
        ByteArrayOutputStream o = new ByteArrayOutputStream(), e = new ByteArrayOutputStream();
        PrintStream oldErr = System.err;
        int code;
        try (PrintStream ps = new PrintStream(o, true, StandardCharsets.UTF_8); PrintStream es = new PrintStream(e, true, StandardCharsets.UTF_8)) {
            System.setErr(es);
            code = Main.run(ps, args);
        } finally {
            System.setErr(oldErr);
        }
        return new Run(code, o.toString(StandardCharsets.UTF_8), e.toString(StandardCharsets.UTF_8));
    }

    @BeforeAll
    static void trainOnce() {
        assertTrue(Files.isDirectory(FashionMnist.DEBIAN_DIR),
                "Fashion-MNIST must be installed at " + FashionMnist.DEBIAN_DIR + " (Debian package dataset-fashion-mnist)");
        cache = tmp.resolve("cache");
        out = tmp.resolve("out");
        train = cli("train", "--variant", "lora", "--rank", "4", "--epochs", "1", "--limit", "600", "--no-progress",
                "--cache", cache.toString(), "--out", out.toString());
        assertEquals(0, train.code(), "train failed:\n" + train.out() + train.err());
        Matcher m = ACCURACY.matcher(train.last());
        assertTrue(m.matches(), "last line: '" + train.last() + "'");
        trainAccuracy = Double.parseDouble(m.group(1));
    }

    @Test
    void trainPrintsTheAccuracyLastAndWritesAdapterMetricsAndChart() throws IOException {
        assertTrue(train.out().contains("trainable params: "), train.out());
        assertTrue(train.out().contains("base model: pretraining"), "the first run pretrains and caches the base model");
        Path adapter = out.resolve("adapter");
        assertTrue(Files.isRegularFile(adapter.resolve("adapter_model.safetensors")));
        assertTrue(Files.isRegularFile(adapter.resolve("adapter_config.json")));
        assertTrue(Files.readString(adapter.resolve("adapter_config.json")).contains("\"LORA\""));
        try (SafetensorsFile f = SafetensorsFile.open(adapter.resolve("adapter_model.safetensors"))) {
            assertEquals(List.of(4L, 784L), Arrays.stream(f.entry("base_model.model.fc1.lora_A.weight").shape()).boxed().toList());
            assertEquals(6, f.size(), "A and B on fc1, fc2, fc3 (all-linear)");
        }
        assertTrue(Files.size(out.resolve("metrics.jsonl")) > 0);
        assertTrue(Files.size(out.resolve("training.png")) > 0);
        assertTrue(train.out().lines().anyMatch(l -> l.startsWith("epoch 1: train loss")), train.out());
        // 5 steps on 600 images barely move a base that scores ~0.02 on rot90: only the format and the files are checked here.
        assertTrue(trainAccuracy >= 0 && trainAccuracy <= 1);
    }

    @Test
    void evalWithTheAdapterPrintsTheSameAccuracy() {
        Run eval = cli("eval", "--adapter", out.resolve("adapter").toString(), "--limit", "600", "--no-progress", "--cache", cache.toString());
        assertEquals(0, eval.code(), eval.out() + eval.err());
        assertTrue(eval.out().contains("loaded from cache"), "eval reuses the cached base model: " + eval.out());
        assertEquals(train.last(), eval.last());
    }

    @Test
    void mergeWritesAModelWithTheSameAccuracy() throws IOException {
        Path merged = tmp.resolve("merged/model.safetensors");
        Run run = cli("merge", "--adapter", out.resolve("adapter").toString(), "--out", merged.toString(), "--limit", "600",
                "--no-progress", "--cache", cache.toString());
        assertEquals(0, run.code(), run.out() + run.err());
        assertTrue(Files.isRegularFile(merged));
        Mlp mlp = new Mlp(Backend.cpu(), Mlp.Activation.RELU, 99, 784, 512, 512, 10);
        var meta = ModelCheckpoint.load(mlp, merged);
        assertTrue(meta.containsKey("merged_adapter"), meta.toString());
        Dataset test = FashionMnist.load(FashionMnist.Split.TEST, FashionMnist.Task.ROT90, 100);
        double acc;
        try (StepContext ctx = new StepContext(Backend.cpu())) {
            acc = Trainer.evaluate(mlp, test, ctx, 1000).accuracy();
        }
        // Merged weights differ from base + adapter by fp32 rounding only; allow one of the 100 argmaxes to flip on a near tie.
        assertEquals(trainAccuracy, acc, 1.0 / 100 + 1e-9, "merged model accuracy vs the adapter's");
    }

    @Test
    void infoPrintsCpuFeatures() {
        Run info = cli("info");
        assertEquals(0, info.code());
        assertTrue(info.out().contains("cpu features"), info.out());
    }

    @Test
    void anUnknownVariantFailsWithOneLineNamingIt() {
        Run bad = cli("train", "--variant", "nope", "--limit", "600", "--no-progress", "--cache", cache.toString(), "--out", tmp.resolve("bad").toString());
        assertNotEquals(0, bad.code());
        List<String> err = bad.err().lines().filter(l -> !l.isBlank()).toList();
        assertEquals(1, err.size(), "one line: " + bad.err());
        assertTrue(err.get(0).contains("nope") && err.get(0).contains("lora"), err.get(0));
    }

    @Test
    void aMissingDataDirectoryFailsWithOneLineNamingIt() {
        Run bad = cli("eval", "--data", "/nonexistent", "--limit", "600", "--no-progress", "--cache", cache.toString());
        assertNotEquals(0, bad.code());
        List<String> err = bad.err().lines().filter(l -> !l.isBlank()).toList();
        assertEquals(1, err.size(), "one line: " + bad.err());
        assertTrue(err.get(0).contains("/nonexistent"), err.get(0));
        Run badTrain = cli("train", "--data", "/nonexistent", "--limit", "600", "--no-progress", "--cache", tmp.resolve("empty-cache").toString(),
                "--out", tmp.resolve("bad2").toString());
        assertNotEquals(0, badTrain.code());
        List<String> err2 = badTrain.err().lines().filter(l -> !l.isBlank()).toList();
        assertEquals(1, err2.size(), "one line: " + badTrain.err());
        assertTrue(err2.get(0).contains("/nonexistent"), err2.get(0));
    }
}
