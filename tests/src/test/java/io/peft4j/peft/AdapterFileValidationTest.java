package io.peft4j.peft;

import static io.peft4j.variants.TestSupport.baseParameters;
import static io.peft4j.variants.TestSupport.linears;
import static io.peft4j.variants.TestSupport.randomizeAdapter;
import static io.peft4j.variants.TestSupport.rng;
import static io.peft4j.variants.TestSupport.snapshot;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.io.SafetensorsFile;
import io.peft4j.io.SafetensorsWriter;
import io.peft4j.nn.Module;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lora.LoraConfig;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a careless user hands PeftModel: a broken config file, weights that are not numbers, a save with nothing left to save. */
class AdapterFileValidationTest {
    @TempDir
    Path dir;

    private static LoraConfig lora() {
        return LoraConfig.builder().r(3).alpha(6).targetModules(TargetModules.names("fc1", "fc3")).build();
    }

    private Path savedAdapter() {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), lora());
        randomizeAdapter(pm, PeftModel.DEFAULT_ADAPTER, rng("adapter-file"), 0.3);
        Path out = dir.resolve("adapter");
        pm.save(out);
        return out;
    }

    private static void assertOneLine(Exception e, String... parts) {
        for (String p : parts) assertTrue(e.getMessage().contains(p), "'" + p + "' missing from: " + e.getMessage());
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
        // Jackson's internals: its source excerpts, token codes and class names.
        for (String internal : List.of("[Source", "(code ", "java.util", "LinkedHashMap", "jackson")) {
            assertFalse(e.getMessage().contains(internal), "'" + internal + "' in: " + e.getMessage());
        }
    }

    private void assertLoadFailsCleanly(Path adapter, Module model, String... parts) {
        Map<String, float[]> before = snapshot(baseParameters(model));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PeftModel.load(model, adapter));
        assertOneLine(e, parts);
        linears(model).values().forEach(l -> assertTrue(l.adapters().isEmpty(), "no adapter is left on " + l.path()));
        Map<String, float[]> after = snapshot(baseParameters(model));
        before.forEach((n, v) -> TestSupport.assertBitEqual(v, after.get(n), n));
    }

    @Test
    void malformedConfigJsonSaysWhereAndWhat() throws IOException {
        Path adapter = savedAdapter();
        Path config = adapter.resolve(PeftModel.CONFIG_FILE);
        Map<String, List<String>> cases = new java.util.LinkedHashMap<>();
        cases.put("{\n  \"peft_type\": \"LORA\",\n  \"r\": 3,,\n  \"lora_alpha\": 6\n}\n",
                List.of("not valid JSON at line 3, column 10", "Unexpected character (','): was expecting double-quote to start field name"));
        cases.put("{\"peft_type\": \"LORA\", \"r\": 3\n", List.of("not valid JSON at line 2", "Unexpected end-of-input", "close marker for Object"));
        cases.put("{\"peft_type\": LORA}", List.of("not valid JSON at line 1, column", "Unrecognized token 'LORA'"));
        cases.put("[\"peft_type\", \"LORA\"]", List.of("expected a JSON object { ... } at the top level, found array"));
        cases.put("", List.of("the file is empty, expected a JSON object"));
        cases.put("   \n", List.of("the file is empty, expected a JSON object"));
        for (Map.Entry<String, List<String>> c : cases.entrySet()) {
            Files.writeString(config, c.getKey(), StandardCharsets.UTF_8);
            List<String> parts = new java.util.ArrayList<>(c.getValue());
            parts.add(config.toString());
            assertLoadFailsCleanly(adapter, TestSupport.mlp(1), parts.toArray(String[]::new));
        }
    }

    @Test
    void aMissingConfigSaysNoSuchFile() throws IOException {
        Path adapter = savedAdapter();
        Files.delete(adapter.resolve(PeftModel.CONFIG_FILE));
        assertLoadFailsCleanly(adapter, TestSupport.mlp(1), "cannot read " + adapter.resolve(PeftModel.CONFIG_FILE) + ": no such file or directory");
    }

    @Test
    void nonFiniteAdapterWeightsAreRefusedWithTheTensorName() throws IOException {
        Path adapter = savedAdapter();
        Path weights = adapter.resolve(PeftModel.WEIGHTS_FILE);
        String key = PeftModel.KEY_PREFIX + "fc3.lora_B.weight";
        for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
            SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
            try (SafetensorsFile f = SafetensorsFile.open(weights)) {
                for (String name : f.names()) {
                    float[] v = f.readF32(name);
                    if (name.equals(key)) v[v.length - 2] = bad;
                    w.putF32(name, f.entry(name).shape(), v);
                }
            }
            Path poisoned = Files.createDirectories(dir.resolve("poisoned-" + bad));
            Files.copy(adapter.resolve(PeftModel.CONFIG_FILE), poisoned.resolve(PeftModel.CONFIG_FILE));
            w.write(poisoned.resolve(PeftModel.WEIGHTS_FILE));
            int index = 5 * 3 - 2;   // fc3: 11 -> 5, lora_B is [5, 3]
            assertLoadFailsCleanly(poisoned, TestSupport.mlp(1),
                    poisoned.resolve(PeftModel.WEIGHTS_FILE).toString(), "tensor '" + key + "' holds " + bad + " at element " + index);
        }
    }

    @Test
    void savingAfterMergeAndUnloadIsRefused() throws IOException {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), lora());
        pm.mergeAndUnload();
        Path out = dir.resolve("after-unload");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> pm.save(out));
        assertOneLine(e, "no adapter to save", "mergeAndUnload", "ModelCheckpoint.save");
        assertFalse(Files.exists(out));
        IllegalStateException merge = assertThrows(IllegalStateException.class, pm::merge);
        assertOneLine(merge, "no adapter left");
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(List.of(), s.toList());
        }
    }
}
