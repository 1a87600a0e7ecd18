package io.peft4j.io;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A safetensors header that is not JSON is reported on one line, in the file's terms, without parser internals. */
class JsonErrorMessagesTest {
    @TempDir
    Path dir;

    private Path withHeader(String name, String json) throws IOException {
        byte[] h = json.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        return Files.write(dir.resolve(name), b.array());
    }

    @Test
    void brokenHeadersSayWhereAndWhat() throws IOException {
        record Case(String json, List<String> parts) {}
        for (Case c : List.of(
                new Case("{\"a\":{\"dtype\":\"F32\"", List.of("at line 1, column 20", "Unexpected end-of-input", "close marker for Object")),
                new Case("{\n\"a\": {\"dtype\": \"F32\",, }}", List.of("at line 2, column 22", "Unexpected character (',')")),
                new Case("{\"a\": tru}", List.of("at line 1, column", "Unrecognized token 'tru'")))) {
            Path p = withHeader("h.safetensors", c.json());
            SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> SafetensorsFile.open(p));
            assertTrue(e.getMessage().startsWith(p + ": header is not valid JSON at line"), e.getMessage());
            for (String part : c.parts()) assertTrue(e.getMessage().contains(part), "'" + part + "' missing from: " + e.getMessage());
            for (String internal : List.of("\n", "[Source", "(code ", "REDACTED", "StreamReadFeature")) {
                assertFalse(e.getMessage().contains(internal), "'" + internal + "' in: " + e.getMessage());
            }
        }
    }
}
