package io.peft4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.data.FashionMnist;
import io.peft4j.io.SafetensorsFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --model vit} on the real Fashion-MNIST files with --limit 600: prompt tuning and LoRA on
 * attn.q,attn.k train on a ViT base pretrained (8 epochs on the same 600 images) into the cache;
 * eval finds that base from the adapter's record; merge refuses prompt tuning and writes a LoRA-merged
 * ViT that --model vit --base reads back with the adapter's accuracy; the demo prints its table.
 */
class VitCliTest {
    private static final Pattern ACCURACY = Pattern.compile("rot90 accuracy (0\\.\\d{4}|1\\.0000)");

    @TempDir
    static Path tmp;
    static Path cache;
    static Cli.Run prompt;

    static String[] args(String... a) {
        List<String> l = new ArrayList<>(List.of(a));
        l.addAll(List.of("--limit", "600", "--no-progress", "--cache", cache.toString()));
        return l.toArray(String[]::new);
    }

    static String accuracy(Cli.Run r) {
        Matcher m = ACCURACY.matcher(r.last());
        assertTrue(m.matches(), "last line: '" + r.last() + "'\n" + r.out() + r.err());
        return m.group(1);
    }

    @BeforeAll
    static void trainPromptTuning() {
        assertTrue(Files.isDirectory(FashionMnist.DEBIAN_DIR), "Fashion-MNIST must be installed at " + FashionMnist.DEBIAN_DIR);
        cache = tmp.resolve("cache");
        prompt = Cli.run(args("train", "--model", "vit", "--variant", "prompt-tuning", "--set", "num_virtual_tokens=3", "--epochs", "1",
                "--out", tmp.resolve("prompt").toString()));
        assertEquals(0, prompt.code(), prompt.out() + prompt.err());
    }

    @Test
    void promptTuningTrainsEvaluatesAndRefusesToMerge() throws Exception {
        assertTrue(prompt.out().contains("pretraining ViT"), prompt.out());
        assertTrue(prompt.out().contains("trainable params: 192 ||"), prompt.out());
        assertTrue(prompt.out().contains("learning rate 0.01 (prompt-tuning's suggested rate"), prompt.out());
        Path adapter = tmp.resolve("prompt/adapter");
        try (SafetensorsFile f = SafetensorsFile.open(adapter.resolve("adapter_model.safetensors"))) {
            assertEquals(List.of("prompt_embeddings"), List.copyOf(f.names()));
            assertArrayEquals(new long[] {3, 64}, f.entry("prompt_embeddings").shape());
            assertEquals("vit", f.metadata().get("peft4j.base.model"));
        }
        assertEquals("PROMPT_TUNING", Cli.readJson(adapter.resolve("adapter_config.json")).get("peft_type"));
        Cli.Run eval = Cli.run(args("eval", "--adapter", tmp.resolve("prompt").toString()));
        assertEquals(0, eval.code(), eval.out() + eval.err());
        assertTrue(eval.out().contains("the cached pretrained ViT"), eval.out());
        assertEquals(accuracy(prompt), accuracy(eval));
        Cli.Run merge = Cli.run("merge", "--adapter", adapter.toString(), "--cache", cache.toString(), "--out", tmp.resolve("m.safetensors").toString());
        assertEquals(2, merge.code());
        assertTrue(merge.err().contains("prompt-tuning adapters cannot be merged"), merge.err());
    }

    @Test
    void loraOnQueryAndKeyMergesIntoAViTCheckpoint() {
        Path run = tmp.resolve("lora");
        Cli.Run train = Cli.run(args("train", "--model", "vit", "--targets", "attn.q,attn.k", "--alpha", "16", "--epochs", "1",
                "--out", run.toString()));
        assertEquals(0, train.code(), train.out() + train.err());
        assertTrue(train.out().contains("trainable params: 8,192 ||"), "r=8 on 4 blocks x (q, k) of 64x64: " + train.out());
        Path merged = tmp.resolve("merged.safetensors");
        Cli.Run merge = Cli.run("merge", "--adapter", run.toString(), "--cache", cache.toString(), "--out", merged.toString());
        assertEquals(0, merge.code(), merge.out() + merge.err());
        Cli.Run eval = Cli.run(args("eval", "--model", "vit", "--base", merged.toString()));
        assertEquals(0, eval.code(), eval.out() + eval.err());
        // The merged weights round to other floats than base + adapter: the accuracy may differ by a test image or two.
        assertEquals(Double.parseDouble(accuracy(train)), Double.parseDouble(accuracy(eval)), 0.021, eval.out());
    }

    @Test
    void demoPrintsItsTable() {
        Cli.Run demo = Cli.run(args("demo", "--model", "vit", "--epochs", "1", "--out", tmp.resolve("demo").toString()));
        assertEquals(0, demo.code(), demo.out() + demo.err());
        assertTrue(demo.out().contains("| base ViT w64 d4 h4 mlp128 p7     | original |"), demo.out());
        assertTrue(demo.out().contains("| + LoRA r=8 alpha=16, attn.q,k    | rot90    |"), demo.out());
        assertTrue(demo.out().contains("8,192"), demo.out());
        accuracy(demo);
    }

    @Test
    void badModelIsRefused() {
        Cli.Run r = Cli.run(args("eval", "--model", "resnet"));
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--model resnet: expected mlp, vit or minilm"), r.err());
        Cli.Run p = Cli.run(args("train", "--variant", "prompt-tuning", "--epochs", "1", "--out", tmp.resolve("bad").toString()));
        assertEquals(2, p.code());
        assertTrue(p.err().contains("prompt tuning needs a model that takes prompt tokens (e.g. --model vit)"), p.err());
    }
}
