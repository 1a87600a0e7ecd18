package io.peft4j.cli;

import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.readF32;
import static io.peft4j.variants.TestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.data.Dataset;
import io.peft4j.data.FashionMnist;
import io.peft4j.io.SafetensorsFile;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import picocli.CommandLine;

/**
 * The command line on the real Fashion-MNIST files of the Debian package dataset-fashion-mnist
 * (installed by the project setup; a missing data set fails these tests). One small {@code train}
 * run (--limit 600: 600 training, 100 test images, base pretrained with seed 1 on the same 600) is
 * shared by the eval and merge checks, which compare what the files hold against float64 math.
 */
class CliTest {
    private static final Pattern ACCURACY = Pattern.compile("rot90 accuracy (0\\.\\d{4}|1\\.0000)");
    static final String[] SMALL = {"--limit", "600", "--no-progress"};

    @TempDir
    static Path tmp;
    static Path cache, out;
    static Cli.Run train;

    static String[] args(String... a) {
        List<String> l = new ArrayList<>(List.of(a));
        l.addAll(List.of(SMALL));
        l.add("--cache");
        l.add(cache.toString());
        return l.toArray(String[]::new);
    }

    @BeforeAll
    static void trainOnce() {
        assertTrue(Files.isDirectory(FashionMnist.DEBIAN_DIR),
                "Fashion-MNIST must be installed at " + FashionMnist.DEBIAN_DIR + " (Debian package dataset-fashion-mnist)");
        cache = tmp.resolve("cache");
        out = tmp.resolve("out");
        train = Cli.run(args("train", "--variant", "lora", "--rank", "4", "--epochs", "1", "--seed", "1", "--out", out.toString()));
        assertEquals(0, train.code(), "train failed:\n" + train.out() + train.err());
        assertTrue(ACCURACY.matcher(train.last()).matches(), "last line: '" + train.last() + "'");
    }

    // ---- train, eval, merge: what the files hold ----

    @Test
    void trainWritesOneCompleteRunDirectoryThatRecordsItsBase() throws IOException {
        assertTrue(train.out().contains("trainable params: "), train.out());
        assertTrue(train.out().contains("learning rate 0.001 (lora's suggested rate"), train.out());
        Path adapter = out.resolve("adapter");
        for (String f : List.of("adapter/adapter_model.safetensors", "adapter/adapter_config.json", "metrics.jsonl", "training.png",
                "trainer_state.safetensors", "run.json")) {
            assertTrue(Files.size(out.resolve(f)) > 0, f);
        }
        assertFalse(Files.exists(tmp.resolve(".out.partial")), "the work directory was moved into place");
        try (SafetensorsFile f = SafetensorsFile.open(adapter.resolve("adapter_model.safetensors"))) {
            assertEquals(List.of(4L, 784L), Arrays.stream(f.entry("base_model.model.fc1.lora_A.weight").shape()).boxed().toList());
            assertEquals(6, f.size(), "A and B on fc1, fc2, fc3 (all-linear)");
            assertEquals(64, f.metadata().get("peft4j.base.sha256").length(), f.metadata().toString());
            assertEquals("1", f.metadata().get("peft4j.base.seed"));
            assertEquals("600", f.metadata().get("peft4j.base.limit"));
        }
        Map<String, Object> run = Cli.readJson(out.resolve("run.json"));
        assertEquals("lora", run.get("variant"));
        assertEquals(4, ((Map<?, ?>) run.get("adapter_config")).get("r"));
    }

    @Test
    void evalTakesTheRunDirectoryOrTheAdapterDirectoryAndUsesTheRecordedBase() {
        for (Path dir : List.of(out, out.resolve("adapter"))) {
            Cli.Run eval = Cli.run(args("eval", "--adapter", dir.toString()));
            assertEquals(0, eval.code(), eval.out() + eval.err());
            assertTrue(eval.out().contains("as recorded in the adapter"), eval.out());
            assertEquals(train.last(), eval.last(), "eval of " + dir + " reproduces train's accuracy");
        }
    }

    @Test
    void evalAndMergeRefuseAnotherBaseAndSayWhichOneTheAdapterNeeds() {
        for (String cmd : List.of("eval", "merge")) {
            List<String> a = new ArrayList<>(List.of(args(cmd, "--adapter", out.toString(), "--seed", "0")));
            if (cmd.equals("merge")) {
                a.removeAll(List.of("--limit", "600"));
                a.addAll(List.of("--out", tmp.resolve("never.safetensors").toString()));
            }
            Cli.Run bad = Cli.run(a.toArray(String[]::new));
            assertEquals(2, bad.code(), bad.out() + bad.err());
            assertEquals(1, bad.errLines().size(), bad.err());
            assertTrue(bad.err().contains("--seed 1 --limit 600"), bad.err());
        }
        assertFalse(Files.exists(tmp.resolve("never.safetensors")));
    }

    @Test
    void aBaseFileThatIsNotTheRecordedOneIsRefusedByItsHash() throws IOException {
        Path other = tmp.resolve("other-base.safetensors");
        BaseFiles.mlp(other, 7, io.peft4j.tensor.DType.F32, 784, 512, 512, 10);
        Cli.Run bad = Cli.run(args("eval", "--adapter", out.toString(), "--base", other.toString()));
        assertEquals(2, bad.code(), bad.out() + bad.err());
        assertTrue(bad.err().contains("sha256") && bad.err().contains("--seed 1 --limit 600"), bad.err());
    }

    /** The adapted model's logits, recomputed in float64 from the cached base and the adapter file. */
    @Test
    void evalSavesTheAdaptedModelsLogits() throws IOException {
        Path logits = tmp.resolve("logits.safetensors");
        Cli.Run eval = Cli.run(args("eval", "--adapter", out.toString(), "--save-logits", logits.toString()));
        assertEquals(0, eval.code(), eval.out() + eval.err());
        Dataset test = FashionMnist.load(FashionMnist.Split.TEST, FashionMnist.Task.ROT90, 100);
        Path base = cache.resolve("mlp-784-512-512-10-original-e3-seed1-limit600.safetensors");
        Path adapter = out.resolve("adapter/adapter_model.safetensors");
        double[] h = toDouble(test.images());
        double[] hBase = h;
        int[] sizes = {784, 512, 512, 10};
        for (int l = 1; l <= 3; l++) {
            double[] w = toDouble(readF32(base, "fc" + l + ".weight"));
            double[] b = toDouble(readF32(base, "fc" + l + ".bias"));
            double[] a = toDouble(readF32(adapter, "base_model.model.fc" + l + ".lora_A.weight"));
            double[] bb = toDouble(readF32(adapter, "base_model.model.fc" + l + ".lora_B.weight"));
            double[] delta = mul(bb, a, sizes[l], 4, sizes[l - 1]);
            double[] wa = new double[w.length];
            for (int i = 0; i < w.length; i++) wa[i] = w[i] + 2.0 * delta[i];   // alpha 8 / r 4
            h = layer(h, wa, b, 100, sizes[l - 1], sizes[l], l < 3);
            hBase = layer(hBase, w, b, 100, sizes[l - 1], sizes[l], l < 3);
        }
        float[] got = readF32(logits, "logits");
        assertEquals(1000, got.length);
        double scale = Arrays.stream(h).map(Math::abs).max().orElse(1);
        double err = 0, adapterEffect = 0;
        for (int i = 0; i < got.length; i++) {
            err = Math.max(err, Math.abs(got[i] - h[i]));
            adapterEffect = Math.max(adapterEffect, Math.abs(h[i] - hBase[i]));
        }
        assertTrue(err <= 1e-5 * scale, "logits vs float64 base + adapter: max error " + err + " (scale " + scale + ")");
        assertTrue(adapterEffect > 1e3 * err, "the adapter changes the logits measurably: " + adapterEffect);
        try (SafetensorsFile f = SafetensorsFile.open(logits)) {
            int[] labels = new int[100];
            f.data("labels").asByteBuffer().order(java.nio.ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(labels);
            assertArrayEquals(test.labels(), labels);
        }
    }

    private static double[] layer(double[] x, double[] w, double[] b, int t, int in, int outF, boolean relu) {
        double[] y = new double[t * outF];
        for (int i = 0; i < t; i++) {
            for (int o = 0; o < outF; o++) {
                double s = b[o];
                for (int k = 0; k < in; k++) s += x[i * in + k] * w[o * in + k];
                y[i * outF + o] = relu ? Math.max(0, s) : s;
            }
        }
        return y;
    }

    @Test
    void mergeWritesW0PlusDeltaWWithTheBasesKeysAndShapes() throws IOException {
        Path merged = tmp.resolve("merged/model.safetensors");
        Cli.Run run = Cli.run("merge", "--adapter", out.toString(), "--out", merged.toString(), "--no-progress", "--cache", cache.toString());
        assertEquals(0, run.code(), run.out() + run.err());
        Path base = cache.resolve("mlp-784-512-512-10-original-e3-seed1-limit600.safetensors");
        Path adapter = out.resolve("adapter/adapter_model.safetensors");
        int[] sizes = {784, 512, 512, 10};
        try (SafetensorsFile m = SafetensorsFile.open(merged); SafetensorsFile b = SafetensorsFile.open(base)) {
            assertEquals(new TreeSet<>(b.names()), new TreeSet<>(m.names()), "the merged model has the base's keys");
            for (String k : b.names()) assertArrayEquals(b.entry(k).shape(), m.entry(k).shape(), k);
            assertTrue(m.metadata().containsKey("merged_adapter"), m.metadata().toString());
            for (int l = 1; l <= 3; l++) {
                double[] w = toDouble(b.readF32("fc" + l + ".weight"));
                double[] delta = mul(toDouble(readF32(adapter, "base_model.model.fc" + l + ".lora_B.weight")),
                        toDouble(readF32(adapter, "base_model.model.fc" + l + ".lora_A.weight")), sizes[l], 4, sizes[l - 1]);
                float[] got = m.readF32("fc" + l + ".weight");
                double maxDelta = 0;
                for (int i = 0; i < got.length; i++) {
                    double ref = w[i] + 2.0 * delta[i];
                    maxDelta = Math.max(maxDelta, Math.abs(2.0 * delta[i]));
                    assertTrue(Math.abs(got[i] - ref) <= 2e-7 * Math.max(Math.abs(ref), 1e-3), "fc" + l + ".weight[" + i + "] " + got[i] + " vs " + ref);
                }
                assertTrue(maxDelta > 1e-4, "the adapter moved fc" + l + " (an unmerged base would also pass otherwise): " + maxDelta);
                assertArrayEquals(b.readF32("fc" + l + ".bias"), m.readF32("fc" + l + ".bias"), "fc" + l + ".bias unchanged");
            }
        }
    }

    // ---- flags ----

    @ParameterizedTest
    @ValueSource(strings = {"--limit=-1", "--limit=60001", "--epochs=0", "--epochs=1001", "--batch=0", "--batch=2147483647", "--batch=2147483648",
            "--lr=NaN", "--lr=-1", "--lr=Infinity", "--lr=11", "--rank=0", "--rank=4.5", "--rank=99999999999", "--alpha=0", "--alpha=NaN",
            "--dropout=1", "--dropout=-0.1", "--seed=abc", "--task=rot45", "--activation=tanh"})
    void anOutOfRangeFlagIsRefusedInOneLineBeforeAnyOutput(String flag) {
        Path o = tmp.resolve("flags-" + Math.abs(flag.hashCode()));
        Cli.Run bad = Cli.run("train", flag, "--no-progress", "--cache", cache.toString(), "--out", o.toString());
        assertEquals(2, bad.code(), flag + ": " + bad.out() + bad.err());
        assertEquals(1, bad.errLines().size(), flag + ": one line: " + bad.err());
        String name = flag.substring(2, flag.indexOf('='));
        String field = switch (name) { case "rank" -> "'r'"; case "alpha" -> "'lora_alpha'"; case "dropout" -> "'lora_dropout'"; default -> "--" + name; };
        assertTrue(bad.err().contains(field), flag + ": names " + field + ": " + bad.err());
        assertFalse(Files.exists(o), "nothing written for " + flag);
        assertTrue(bad.out().isEmpty(), "no work started for " + flag + ": " + bad.out());
    }

    @Test
    void everyCommandTakesHelpAndEveryOptionIsDescribed() {
        CommandLine cl = new CommandLine(new Main());
        for (var e : cl.getSubcommands().entrySet()) {
            String name = e.getKey();
            if (name.equals("help")) continue;
            Cli.Run help = Cli.run(name, "--help");
            assertEquals(0, help.code(), name + " --help: " + help.err());
            assertTrue(help.out().contains("Usage: peft4j " + name), help.out());
            for (var opt : e.getValue().getCommandSpec().options()) {
                assertTrue(opt.description().length > 0 && !opt.description()[0].isBlank(), name + " " + opt.longestName() + " has no description");
            }
        }
        Cli.Run viaHelp = Cli.run("help", "train");
        assertEquals(0, viaHelp.code());
        assertTrue(viaHelp.out().contains("--set=FIELD=VALUE") && viaHelp.out().contains("--base=FILE"), viaHelp.out());
    }

    @Test
    void methodsListsEveryRegisteredMethodAndOneMethodsFieldsWithDocs() {
        Cli.Run all = Cli.run("methods");
        assertEquals(0, all.code(), all.err());
        assertTrue(all.out().contains("lora") && all.out().contains("LORA") && all.out().contains("r=8 lora_alpha=8"), all.out());
        assertTrue(all.out().contains("lora-r2") && all.out().contains("failing"), "methods registered by tests appear too: " + all.out());
        Cli.Run one = Cli.run("methods", "lora");
        assertEquals(0, one.code(), one.err());
        for (String s : List.of("lora_dropout", "[0, 1)", "use_rslora", "init_lora_weights", "true | gaussian", "target_modules", "mergeable: yes",
                "shortcut --rank", "use_dora", "fan_in_fan_out=false")) {
            assertTrue(one.out().contains(s), s + " in:\n" + one.out());
        }
        Cli.Run bad = Cli.run("methods", "nope");
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("nope") && bad.err().contains("lora"), bad.err());
    }

    // ---- base files ----

    @Test
    void baseFilesAreValidatedBeforeAnyWorkAndNamedInTheError() throws IOException {
        Path chain = tmp.resolve("chain.safetensors");
        BaseFiles.write(chain, Map.of("fc1.weight", new long[] {16, 784}, "fc1.bias", new long[] {16}, "fc2.weight", new long[] {10, 17},
                "fc2.bias", new long[] {10}), io.peft4j.tensor.DType.F32);
        assertRefused(chain, "do not chain", "fc2.weight");
        Path missing = tmp.resolve("missing.safetensors");
        BaseFiles.write(missing, Map.of("fc1.weight", new long[] {16, 784}, "fc1.bias", new long[] {16}, "fc2.weight", new long[] {10, 16}),
                io.peft4j.tensor.DType.F32);
        assertRefused(missing, "missing", "fc2.bias");
        Path extra = tmp.resolve("extra.safetensors");
        BaseFiles.write(extra, Map.of("fc1.weight", new long[] {10, 784}, "fc1.bias", new long[] {10}, "head.weight", new long[] {10, 10}),
                io.peft4j.tensor.DType.F32);
        assertRefused(extra, "unexpected", "head.weight");
        Path wrongIo = tmp.resolve("wrong-io.safetensors");
        BaseFiles.mlp(wrongIo, 3, io.peft4j.tensor.DType.F32, 48, 36, 10);
        assertRefused(wrongIo, "784", "48");
    }

    private static void assertRefused(Path base, String... words) {
        Path o = tmp.resolve("refused-" + base.getFileName());
        Cli.Run bad = Cli.run(args("train", "--base", base.toString(), "--out", o.toString()));
        assertEquals(2, bad.code(), bad.out() + bad.err());
        assertEquals(1, bad.errLines().size(), bad.err());
        for (String w : words) assertTrue(bad.err().contains(w), w + " in: " + bad.err());
        assertTrue(bad.err().contains(base.toString()), bad.err());
        assertFalse(Files.exists(o));
    }

    @Test
    void aBf16BaseIsConvertedWithANoteAndTrainsWithAGeluActivation() throws IOException {
        Path bf16 = tmp.resolve("bf16.safetensors");
        BaseFiles.mlp(bf16, 5, io.peft4j.tensor.DType.BF16, 784, 24, 10);
        Path o = tmp.resolve("bf16-run");
        Cli.Run run = Cli.run(args("train", "--base", bf16.toString(), "--activation", "gelu", "--epochs", "1", "--out", o.toString()));
        assertEquals(0, run.code(), run.out() + run.err());
        assertTrue(run.out().contains("note: fc1.weight is BF16, converted to F32 on load"), run.out());
        assertTrue(run.out().contains("MLP 784-24-10, gelu"), run.out());
        Cli.Run eval = Cli.run(args("eval", "--adapter", o.toString(), "--base", bf16.toString(), "--activation", "gelu"));
        assertEquals(0, eval.code(), eval.out() + eval.err());
        assertEquals(run.last(), eval.last());
        Cli.Run noBase = Cli.run(args("eval", "--adapter", o.toString()));
        assertEquals(2, noBase.code(), noBase.out());
        assertTrue(noBase.err().contains("--base " + bf16), noBase.err());
    }

    // ---- compare ----

    @Test
    void compareRunsEveryMethodShowsAFailureInItsRowAndWritesJsonlAndAChart() throws IOException {
        Path o = tmp.resolve("compare");
        Cli.Run run = Cli.run(args("compare", "--variants", "lora,failing,lora-r2", "--epochs", "1", "--out", o.toString()));
        assertEquals(1, run.code(), "one method failed: " + run.out() + run.err());
        List<String> rows = run.out().lines().filter(l -> l.startsWith("| ")).toList();
        assertEquals(4, rows.size(), "header and three rows:\n" + run.out());
        assertTrue(rows.get(1).matches("\\| lora +\\| r=8 lora_alpha=8 +\\| +22,736 \\| +3\\.395% \\| +0\\.\\d{4} \\|.*\\| yes +\\| - +\\|"), rows.get(1));
        assertTrue(rows.get(2).contains("failing") && rows.get(2).contains("error: failing method: deliberately broken"), rows.get(2));
        assertTrue(rows.get(3).matches("\\| lora-r2 +\\| r=2 +\\| +5,684 \\|.*"), rows.get(3));
        assertTrue(run.out().contains("learning rate 0.002 (lora-r2's suggested rate"), run.out());
        List<String> jsonl = Files.readAllLines(o.resolve("compare.jsonl"));
        assertEquals(3, jsonl.size());
        var mapper = new com.fasterxml.jackson.databind.ObjectMapper();
        Map<?, ?> lora = mapper.readValue(jsonl.get(0), Map.class);
        assertEquals(22736, lora.get("trainable_params"));
        assertTrue(((Number) lora.get("adapter_bytes")).longValue() > 22736 * 4, lora.toString());
        assertTrue(mapper.readValue(jsonl.get(1), Map.class).get("error").toString().contains("deliberately"), jsonl.get(1));
        BufferedImage png = ImageIO.read(o.resolve("compare.png").toFile());
        assertNotNull(png, "compare.png decodes");
        assertEquals(1000, png.getWidth());
        assertTrue(Files.isRegularFile(o.resolve("lora/adapter/adapter_model.safetensors")));
    }

    // ---- output directories ----

    @Test
    void aDirectoryThatIsNotARunIsNeverReplaced() throws IOException {
        Path mine = tmp.resolve("my-files");
        Files.createDirectories(mine);
        Files.writeString(mine.resolve("notes.txt"), "mine");
        Cli.Run bad = Cli.run(args("train", "--epochs", "1", "--out", mine.toString()));
        assertEquals(2, bad.code(), bad.out() + bad.err());
        assertTrue(bad.err().contains("not a peft4j run directory"), bad.err());
        assertEquals("mine", Files.readString(mine.resolve("notes.txt")));
    }

    @Test
    void aFailedRunLeavesThePreviousRunInOutUntouched() throws IOException {
        Path o = tmp.resolve("kept");
        assertEquals(0, Cli.run(args("train", "--epochs", "1", "--rank", "2", "--seed", "1", "--out", o.toString())).code());
        byte[] adapterBefore = Files.readAllBytes(o.resolve("adapter/adapter_model.safetensors"));
        byte[] metricsBefore = Files.readAllBytes(o.resolve("metrics.jsonl"));
        Cli.Run bad = Cli.run(args("train", "--variant", "failing", "--epochs", "1", "--seed", "1", "--out", o.toString()));
        assertEquals(2, bad.code(), bad.out() + bad.err());
        assertArrayEquals(adapterBefore, Files.readAllBytes(o.resolve("adapter/adapter_model.safetensors")));
        assertArrayEquals(metricsBefore, Files.readAllBytes(o.resolve("metrics.jsonl")));
        assertFalse(Files.exists(RunDir.partialOf(o)), "nothing resumable was left behind");
    }

    @Test
    void aSecondRunOnABusyOutIsRefusedInThisProcessAndFromAnother() throws Exception {
        Path o = tmp.resolve("busy");
        Path lockFile = tmp.resolve(".busy.lock");
        try (FileChannel ch = FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            // Held from a second process: the lock is the operating system's, not this JVM's.
            Process holder = new ProcessBuilder(javaCommand("io.peft4j.cli.LockHolder", lockFile.toString())).redirectErrorStream(true).start();
            assertEquals("locked", new String(holder.getInputStream().readNBytes(6)), "the holder process took the lock");
            try {
                Cli.Run bad = Cli.run(args("train", "--epochs", "1", "--out", o.toString()));
                assertEquals(2, bad.code(), bad.out() + bad.err());
                assertTrue(bad.err().contains("in use by another peft4j run"), bad.err());
            } finally {
                holder.destroy();
                holder.waitFor(10, TimeUnit.SECONDS);
            }
            FileLock mine = ch.lock();
            try {
                Process other = new ProcessBuilder(javaCommand("io.peft4j.cli.Main", "train", "--epochs", "1", "--limit", "600", "--no-progress",
                        "--cache", cache.toString(), "--out", o.toString())).redirectErrorStream(true).start();
                String said = new String(other.getInputStream().readAllBytes());
                assertTrue(other.waitFor(60, TimeUnit.SECONDS));
                assertEquals(2, other.exitValue(), said);
                assertTrue(said.contains("in use by another peft4j run"), said);
            } finally {
                mine.release();
            }
        }
        assertFalse(Files.exists(o));
    }

    static List<String> javaCommand(String main, String... args) {
        List<String> cmd = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElseThrow(), "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), main));
        cmd.addAll(List.of(args));
        return cmd;
    }

    @Test
    void resumeContinuesARunWithItsRecordedSettings() throws IOException {
        Path o = tmp.resolve("resumable");
        Cli.Run first = Cli.run(args("train", "--epochs", "1", "--rank", "2", "--seed", "1", "--out", o.toString()));
        assertEquals(0, first.code(), first.out() + first.err());
        Cli.Run more = Cli.run("train", "--resume", o.toString(), "--epochs", "2", "--no-progress", "--cache", cache.toString());
        assertEquals(0, more.code(), more.out() + more.err());
        assertTrue(more.out().contains("resuming") && more.out().contains("epoch 2: train loss"), more.out());
        assertFalse(more.out().contains("epoch 1: train loss"), "epoch 1 is not trained again: " + more.out());
        assertEquals(2, Cli.readJson(o.resolve("run.json")).get("epochs"));
        List<String> metrics = Files.readAllLines(o.resolve("metrics.jsonl"));
        assertTrue(metrics.stream().anyMatch(l -> l.contains("\"epoch\":1") && l.contains("eval_accuracy")), "epoch 1's record is kept");
        assertTrue(metrics.stream().anyMatch(l -> l.contains("\"epoch\":2") && l.contains("eval_accuracy")), "epoch 2 appended");
        Cli.Run bad = Cli.run("train", "--resume", o.toString(), "--rank", "8", "--no-progress", "--cache", cache.toString());
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("recorded settings"), bad.err());
        Cli.Run nothing = Cli.run("train", "--resume", tmp.resolve("no-such-run").toString(), "--no-progress");
        assertEquals(2, nothing.code());
        assertTrue(nothing.err().contains("no run to continue"), nothing.err());
    }

    /** SIGINT in the middle of a run: --out keeps the previous run whole, and --resume finishes the interrupted one. */
    @Test
    void anInterruptedRunLeavesOutWholeAndResumes() throws Exception {
        Path o = tmp.resolve("interrupted");
        assertEquals(0, Cli.run(args("train", "--epochs", "1", "--rank", "2", "--seed", "1", "--out", o.toString())).code());
        byte[] adapterBefore = Files.readAllBytes(o.resolve("adapter/adapter_model.safetensors"));
        Process child = new ProcessBuilder(javaCommand("io.peft4j.cli.Main", "train", "--limit", "1200", "--epochs", "500", "--rank", "2",
                "--seed", "1", "--no-progress", "--cache", cache.toString(), "--out", o.toString())).redirectErrorStream(true).start();
        Path state = RunDir.partialOf(o).resolve("trainer_state.safetensors");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!Files.isRegularFile(state) && child.isAlive() && System.nanoTime() < deadline) Thread.sleep(50);
        assertTrue(child.isAlive(), "the run was still going when interrupted");
        new ProcessBuilder("kill", "-INT", Long.toString(child.pid())).start().waitFor();
        String said = new String(child.getInputStream().readAllBytes());
        assertTrue(child.waitFor(30, TimeUnit.SECONDS));
        assertTrue(said.contains("interrupted; the unfinished run is in") && said.contains("--resume " + o), said);
        assertArrayEquals(adapterBefore, Files.readAllBytes(o.resolve("adapter/adapter_model.safetensors")), "--out still holds the previous run");
        int done;
        try (SafetensorsFile f = SafetensorsFile.open(state)) {
            done = Integer.parseInt(f.metadata().get("epoch"));
        }
        Cli.Run resumed = Cli.run("train", "--resume", o.toString(), "--epochs", Integer.toString(done + 1), "--no-progress", "--cache", cache.toString());
        assertEquals(0, resumed.code(), resumed.out() + resumed.err());
        assertTrue(resumed.out().contains("resuming " + RunDir.partialOf(o)), resumed.out());
        assertTrue(resumed.out().contains("epoch " + (done + 1) + ": train loss"), resumed.out());
        assertEquals(1200, Cli.readJson(o.resolve("run.json")).get("limit"), "the interrupted run's settings, now in --out");
        assertFalse(Files.exists(RunDir.partialOf(o)));
    }

    @Test
    void fileSystemErrorsNameThePathTheOperationAndTheCause() throws IOException {
        Path file = tmp.resolve("a-file");
        Files.writeString(file, "x");
        Cli.Run merge = Cli.run("merge", "--adapter", out.toString(), "--out", file.resolve("merged.safetensors").toString(), "--no-progress",
                "--cache", cache.toString());
        assertEquals(2, merge.code(), merge.out() + merge.err());
        assertEquals(1, merge.errLines().size(), merge.err());
        assertTrue(merge.err().contains("cannot") && merge.err().contains(file.toString()) && merge.err().contains("not a directory"), merge.err());
        Cli.Run trainUnder = Cli.run(args("train", "--epochs", "1", "--out", file.resolve("run").toString()));
        assertEquals(2, trainUnder.code(), trainUnder.out() + trainUnder.err());
        assertTrue(trainUnder.err().contains("cannot") && trainUnder.err().contains(file.toString()) && trainUnder.err().contains("not a directory"),
                trainUnder.err());
    }

    @Test
    void aMissingDataDirectoryFailsWithOneLineNamingIt() {
        Cli.Run bad = Cli.run("eval", "--data", "/nonexistent", "--limit", "600", "--no-progress", "--cache", cache.toString());
        assertNotEquals(0, bad.code());
        assertEquals(1, bad.errLines().size(), "one line: " + bad.err());
        assertTrue(bad.errLines().get(0).contains("/nonexistent"), bad.err());
    }

    @Test
    void infoPrintsCpuFeatures() {
        Cli.Run info = Cli.run("info");
        assertEquals(0, info.code());
        assertTrue(info.out().contains("cpu features"), info.out());
    }

    /** The last line of train is its accuracy; a matcher helper for other tests. */
    static double accuracy(Cli.Run r) {
        Matcher m = ACCURACY.matcher(r.last());
        assertTrue(m.matches(), r.last());
        return Double.parseDouble(m.group(1));
    }
}
