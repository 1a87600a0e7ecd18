package io.peft4j.train;

import static io.peft4j.variants.TestSupport.assertThrowsNaming;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MetricsLogTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    private static Map<String, Object> record(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return m;
    }

    private static List<JsonNode> readLines(Path file) throws IOException {
        List<JsonNode> nodes = new ArrayList<>();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            nodes.add(JSON.readTree(line));
        }
        return nodes;
    }

    @Test
    void writesOneParsableObjectPerLineWithFullPrecision(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("runs/a/metrics.jsonl");
        double tricky = 0.1 + 0.2;
        try (MetricsLog log = new MetricsLog(file)) {
            log.log(record("step", 1, "loss", tricky, "lr", 1e-4, "tiny", Double.MIN_VALUE, "big", 1.7976931348623157e308));
            // flushed at once: readable before close
            assertEquals(1, Files.readAllLines(file).size());
            log.log(record("step", 2L, "loss", Double.NaN, "grad", Double.POSITIVE_INFINITY, "neg", Double.NEGATIVE_INFINITY,
                    "f", 0.1f, "fnan", Float.NaN));
            log.log(record("variant", "lora", "note", "quote \" backslash \\ newline \n tab \t bell \u0007 \u00e9\u4e2d \ud83d\ude00",
                    "ok", true, "none", null, "ranks", new int[] {8, 4}, "acc", List.of(0.5, 0.75),
                    "nested", record("k", 3, "x", -0.0), "mode", StandardCharsets.UTF_8.name()));
        }
        List<String> raw = Files.readAllLines(file, StandardCharsets.UTF_8);
        assertEquals(3, raw.size());
        List<JsonNode> lines = readLines(file);

        JsonNode a = lines.get(0);
        assertEquals(1, a.get("step").intValue());
        assertTrue(a.get("step").isIntegralNumber());
        assertEquals(tricky, a.get("loss").doubleValue(), 0.0, "doubles read back bit for bit");
        assertEquals(1e-4, a.get("lr").doubleValue(), 0.0);
        assertEquals(Double.MIN_VALUE, a.get("tiny").doubleValue(), 0.0);
        assertEquals(1.7976931348623157e308, a.get("big").doubleValue(), 0.0);
        // key order is kept
        Iterator<String> names = a.fieldNames();
        assertEquals(List.of("step", "loss", "lr", "tiny", "big"), List.of(names.next(), names.next(), names.next(), names.next(), names.next()));

        JsonNode b = lines.get(1);
        assertEquals(2L, b.get("step").longValue());
        assertTrue(b.get("loss").isNull(), "NaN is written as null");
        assertTrue(b.get("grad").isNull(), "+Inf is written as null");
        assertTrue(b.get("neg").isNull(), "-Inf is written as null");
        assertTrue(b.get("fnan").isNull());
        assertEquals(0.1f, (float) b.get("f").doubleValue(), 0.0f, "floats read back to the same float");

        JsonNode c = lines.get(2);
        assertEquals("lora", c.get("variant").textValue());
        assertEquals("quote \" backslash \\ newline \n tab \t bell \u0007 \u00e9\u4e2d \ud83d\ude00", c.get("note").textValue());
        assertTrue(c.get("ok").booleanValue());
        assertTrue(c.get("none").isNull());
        assertEquals(8, c.get("ranks").get(0).intValue());
        assertEquals(4, c.get("ranks").get(1).intValue());
        assertEquals(0.75, c.get("acc").get(1).doubleValue(), 0.0);
        assertEquals(3, c.get("nested").get("k").intValue());
        assertEquals("UTF-8", c.get("mode").textValue());
        assertFalse(raw.get(2).contains("\t"), "control characters are escaped, the line stays one line");
    }

    @Test
    void appendsToAnExistingFile(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("m.jsonl");
        try (MetricsLog log = new MetricsLog(file)) {
            log.log(record("epoch", 0, "acc", 0.5));
        }
        try (MetricsLog log = new MetricsLog(file)) {
            log.log(record("epoch", 1, "acc", 0.625));
        }
        List<JsonNode> lines = readLines(file);
        assertEquals(2, lines.size());
        assertEquals(0, lines.get(0).get("epoch").intValue());
        assertEquals(0.625, lines.get(1).get("acc").doubleValue(), 0.0);
    }

    @Test
    void rejectsValuesWithoutAJsonFormAndWritesNothing(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("m.jsonl");
        MetricsLog log = new MetricsLog(file);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> log.log(record("ok", 1, "bad", new Object())));
        assertTrue(e.getMessage().contains("value at record.bad has type java.lang.Object"), e.getMessage());
        assertEquals(0, Files.size(file), "a rejected record writes nothing");
        log.close();
        log.close();
        assertThrowsNaming(IllegalStateException.class, () -> log.log(record("step", 1)), file + " is closed");
    }

    @Test
    void toJsonIsTheLineText() {
        assertEquals("{\"a\":1,\"b\":\"x\\\"y\",\"c\":null,\"d\":2.5}",
                MetricsLog.toJson(record("a", 1, "b", "x\"y", "c", Double.NaN, "d", 2.5)));
        assertEquals("{\"s\":\"\\u0001\\u2028\"}", MetricsLog.toJson(record("s", "\u0001\u2028")));
    }
}
