package io.peft4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.data.Fortunes;
import io.peft4j.io.ModelCheckpoint;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.io.onnx.BertOnnx;
import io.peft4j.nn.BertModel;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --model minilm} end to end on tiny runs (--limit 42: 42 training fortunes, 7 test ones,
 * batch 14, one epoch): train saves a PEFT adapter with PEFT's key names and the classifier as
 * modules_to_save, eval finds the bundled base from the adapter's record and restores the head,
 * compare runs other methods, the demo prints its table, and --base takes the same encoder as an
 * .onnx with its tokenizer beside it and as a Hugging Face directory (each giving the bundled base's
 * accuracy, the head coming from the same seed).
 */
class MiniLmCliTest {
    private static final Pattern ACCURACY = Pattern.compile("fortunes accuracy (0\\.\\d{4}|1\\.0000)");

    @TempDir
    static Path tmp;
    static Cli.Run lora;

    static String[] args(String... a) {
        List<String> l = new ArrayList<>(List.of(a));
        l.addAll(List.of("--limit", "42", "--no-progress", "--cache", tmp.resolve("cache").toString()));
        return l.toArray(String[]::new);
    }

    static String accuracy(Cli.Run r) {
        Matcher m = ACCURACY.matcher(r.last());
        assertTrue(m.matches(), "last line: '" + r.last() + "'\n" + r.out() + r.err());
        return m.group(1);
    }

    @BeforeAll
    static void trainLora() {
        assertTrue(Files.isDirectory(Fortunes.DEBIAN_DIR), "Debian's fortunes must be installed at " + Fortunes.DEBIAN_DIR);
        lora = Cli.run(args("train", "--model", "minilm", "--targets", "query,value", "--alpha", "16", "--epochs", "1", "--batch", "14",
                "--out", tmp.resolve("lora").toString()));
        assertEquals(0, lora.code(), lora.out() + lora.err());
    }

    @Test
    void loraSavesPeftsKeysWithTheHeadAndEvalRestoresIt() throws Exception {
        // r=8 on 6 layers x (query, value) of 384x384, plus the classifier [7, 384] + 7
        assertTrue(lora.out().contains("trainable params: 76,423 || all params: 22,641,799"), lora.out());
        Path adapter = tmp.resolve("lora/adapter");
        try (SafetensorsFile f = SafetensorsFile.open(adapter.resolve("adapter_model.safetensors"))) {
            Set<String> keys = Set.copyOf(f.names());
            assertEquals(26, keys.size(), keys.toString());
            assertTrue(keys.contains("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight"), keys.toString());
            assertTrue(keys.contains("base_model.model.encoder.layer.5.attention.self.value.lora_B.weight"), keys.toString());
            assertTrue(keys.contains("base_model.model.classifier.weight") && keys.contains("base_model.model.classifier.bias"), keys.toString());
            assertArrayEquals(new long[] {8, 384}, f.entry("base_model.model.encoder.layer.3.attention.self.value.lora_A.weight").shape());
            assertArrayEquals(new long[] {7, 384}, f.entry("base_model.model.classifier.weight").shape());
            assertEquals("minilm", f.metadata().get("peft4j.base.model"));
        }
        assertEquals("fortunes", Cli.readJson(tmp.resolve("lora/run.json")).get("task"), "run.json names the text task");
        Map<String, Object> config = Cli.readJson(adapter.resolve("adapter_config.json"));
        assertEquals(List.of("classifier"), config.get("modules_to_save"));
        assertEquals(List.of("query", "value"), config.get("target_modules"));

        Cli.Run eval = Cli.run(args("eval", "--adapter", tmp.resolve("lora").toString()));
        assertEquals(0, eval.code(), eval.out() + eval.err());
        assertTrue(eval.out().contains("the bundled all-MiniLM-L6-v2 (--model minilm --seed 0)"), eval.out());
        assertEquals(accuracy(lora), accuracy(eval), "the trained head and LoRA come back from the adapter");

        // merge folds LoRA into query and value; the result holds the whole classifier under Hugging Face's names.
        Path merged = tmp.resolve("merged.safetensors");
        Cli.Run merge = Cli.run("merge", "--adapter", adapter.toString(), "--cache", tmp.resolve("cache").toString(), "--no-progress",
                "--out", merged.toString());
        assertEquals(0, merge.code(), merge.out() + merge.err());
        try (SafetensorsFile f = SafetensorsFile.open(merged)) {
            assertTrue(f.contains("encoder.layer.0.attention.self.query.weight") && f.contains("classifier.weight"), f.names().toString());
            assertTrue(f.names().stream().noneMatch(k -> k.contains("lora_")), f.names().toString());
            assertEquals(3 + 2 + 6 * 16 + 2, f.names().size(), f.names().toString());
        }

        Cli.Run otherSeed = Cli.run(args("eval", "--adapter", tmp.resolve("lora").toString(), "--seed", "3"));
        assertEquals(2, otherSeed.code());
        assertTrue(otherSeed.err().contains("run with --model minilm --seed 0"), otherSeed.err());

        // --task picks a Fashion-MNIST task: refused, not ignored, on the text model.
        Cli.Run withTask = Cli.run(args("eval", "--adapter", tmp.resolve("lora").toString(), "--task", "original"));
        assertEquals(2, withTask.code(), withTask.out() + withTask.err());
        assertTrue(withTask.err().contains("--task applies to the Fashion-MNIST models (mlp, vit)"), withTask.err());
        Cli.Run trainWithTask = Cli.run(args("train", "--model", "minilm", "--task", "rot90", "--epochs", "1", "--out", tmp.resolve("task").toString()));
        assertEquals(2, trainWithTask.code(), trainWithTask.out() + trainWithTask.err());
        assertTrue(trainWithTask.err().contains("--model minilm trains and evaluates on fortunes"), trainWithTask.err());
        assertFalse(Files.exists(tmp.resolve("task")), "nothing written for a refused run");

        // --resume rebuilds the base and the 42-text subset from run.json and trains one more epoch.
        Cli.Run resumed = Cli.run("train", "--resume", tmp.resolve("lora").toString(), "--epochs", "2", "--no-progress",
                "--cache", tmp.resolve("cache").toString());
        assertEquals(0, resumed.code(), resumed.out() + resumed.err());
        assertTrue(resumed.out().contains("epoch 2: train loss"), resumed.out());
        accuracy(resumed);
    }

    @Test
    void compareRunsOtherMethodsWithTheHead() {
        Cli.Run r = Cli.run(args("compare", "--model", "minilm", "--variants", "ia3,bitfit", "--epochs", "1", "--batch", "14",
                "--out", tmp.resolve("compare").toString()));
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("fortunes accuracy"), r.out());
        List<String> rows = r.lines().stream().filter(l -> l.startsWith("| ia3 ") || l.startsWith("| bitfit ")).collect(Collectors.toList());
        assertEquals(2, rows.size(), r.out());
        assertTrue(Files.isRegularFile(tmp.resolve("compare/compare.png")));
        Map<String, Object> ia3 = Cli.readJson(tmp.resolve("compare/ia3/adapter/adapter_config.json"));
        assertEquals(List.of("classifier"), ia3.get("modules_to_save"));
    }

    @Test
    void demoPrintsItsTable() {
        Cli.Run demo = Cli.run(args("demo", "--model", "minilm", "--epochs", "1", "--out", tmp.resolve("demo").toString()));
        assertEquals(0, demo.code(), demo.out() + demo.err());
        assertTrue(demo.out().contains("| head only (linear probe), frozen encoder | fortunes |"), demo.out());
        assertTrue(demo.out().contains("| + LoRA r=8 alpha=16, query,value + head  | fortunes |"), demo.out());
        assertTrue(demo.out().contains("2,695") && demo.out().contains("76,423"), demo.out());
        assertTrue(Files.isRegularFile(tmp.resolve("demo/training.png")) && Files.isRegularFile(tmp.resolve("demo/head-only/training.png")));
        accuracy(demo);
    }

    /** The same encoder as an .onnx with its tokenizer beside it, and as a Hugging Face directory, gives the bundled base's accuracy. */
    @Test
    void baseFromAnOnnxFileAndAHuggingFaceDirectory() throws Exception {
        Cli.Run bundled = Cli.run(args("eval", "--model", "minilm"));
        assertEquals(0, bundled.code(), bundled.out() + bundled.err());

        Path onnxDir = Files.createDirectories(tmp.resolve("onnx"));
        Path onnx = copyResource("/all-minilm-l6-v2.onnx", onnxDir.resolve("model.onnx"));
        Cli.Run noTokenizer = Cli.run(args("eval", "--model", "minilm", "--base", onnx.toString()));
        assertEquals(2, noTokenizer.code());
        assertTrue(noTokenizer.err().contains("no tokenizer beside it"), noTokenizer.err());
        Path tokenizer = copyResource("/all-minilm-l6-v2-tokenizer.json", onnxDir.resolve("tokenizer.json"));
        Cli.Run fromOnnx = Cli.run(args("eval", "--model", "minilm", "--base", onnx.toString()));
        assertEquals(0, fromOnnx.code(), fromOnnx.out() + fromOnnx.err());
        assertEquals(accuracy(bundled), accuracy(fromOnnx));

        // A Hugging Face checkpoint: config.json, model.safetensors (HF names, from the ONNX weights) and tokenizer.json.
        Path hf = Files.createDirectories(tmp.resolve("hf"));
        try (BertOnnx.Loaded loaded = BertOnnx.load(onnx); BertModel encoder = new BertModel(Backend.cpu(), loaded.config(), 0)) {
            encoder.loadWeights(loaded.weights());
            ModelCheckpoint.save(encoder, hf.resolve("model.safetensors"), Map.of("format", "pt"));
        }
        Files.writeString(hf.resolve("config.json"), """
                {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute", "vocab_size": 30522,
                 "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
                 "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12}
                """);
        Files.copy(tokenizer, hf.resolve("tokenizer.json"));
        Cli.Run fromHf = Cli.run(args("eval", "--model", "minilm", "--base", hf.toString()));
        assertEquals(0, fromHf.code(), fromHf.out() + fromHf.err());
        assertEquals(accuracy(bundled), accuracy(fromHf));

        Cli.Run notABase = Cli.run(args("eval", "--model", "minilm", "--base", hf.resolve("config.json").toString()));
        assertEquals(2, notABase.code());
        assertTrue(notABase.err().contains("give an .onnx file"), notABase.err());
    }

    private static Path copyResource(String name, Path to) throws Exception {
        try (InputStream in = MiniLmCliTest.class.getResourceAsStream(name)) {
            Files.copy(in, to, StandardCopyOption.REPLACE_EXISTING);
        }
        return to;
    }
}
