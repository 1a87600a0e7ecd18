package io.peft4j.io;

import io.peft4j.tensor.DType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Files laid out byte for byte as the reference {@code safetensors} library writes them, built here
 * by hand from the format description: u64 LE header length, compact JSON padded with spaces to a
 * multiple of 8, then little-endian data with tensors ordered by descending dtype alignment, then name.
 */
class SafetensorsInteropTest {

    @TempDir
    Path dir;

    private static byte[] layout(String json, byte[] data) {
        byte[] h = json.getBytes(StandardCharsets.UTF_8);
        int padded = (h.length + 7) / 8 * 8;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded);
        out.writeBytes(len.array());
        out.writeBytes(h);
        for (int i = h.length; i < padded; i++) out.write(' ');
        out.writeBytes(data);
        return out.toByteArray();
    }

    private static byte[] f32(float... v) {
        ByteBuffer bb = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) bb.putFloat(x);
        return bb.array();
    }

    @Test
    void readsTheReferenceLayoutOfATinyFile() throws IOException {
        String json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        assertEquals(54, json.length());
        byte[] expected = layout(json, f32(1f, 2f));
        // the header length prefix: 56 = 54 bytes of JSON + 2 spaces
        assertArrayEquals(new byte[]{56, 0, 0, 0, 0, 0, 0, 0}, java.util.Arrays.copyOf(expected, 8));
        assertEquals(' ', expected[8 + 54]);
        assertEquals(' ', expected[8 + 55]);
        assertArrayEquals(new byte[]{0, 0, (byte) 0x80, 0x3F, 0, 0, 0, 0x40},
                java.util.Arrays.copyOfRange(expected, 64, 72));

        Path p = dir.resolve("model.safetensors");
        Files.write(p, expected);
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertEquals(56, f.headerLength());
            assertEquals(List.of("a"), f.names());
            assertEquals(new SafetensorsEntry("a", DType.F32, new long[]{2}, 0, 8), f.entry("a"));
            assertArrayEquals(new float[]{1f, 2f}, f.readF32("a"));
            assertEquals(Map.of(), f.metadata());
        }

        Path ours = dir.resolve("ours.safetensors");
        new SafetensorsWriter().putF32("a", new long[]{2}, new float[]{1f, 2f}).write(ours);
        assertArrayEquals(expected, Files.readAllBytes(ours));
    }

    @Test
    void mixedDtypesAndMetadataMatchTheReferenceOrderAndBytes() throws IOException {
        String json = "{\"__metadata__\":{\"format\":\"pt\"},"
                + "\"m\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
                + "\"z\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                + "\"h\":{\"dtype\":\"BF16\",\"shape\":[1,1],\"data_offsets\":[12,14]},"
                + "\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[14,17]}}";
        ByteBuffer data = ByteBuffer.allocate(17).order(ByteOrder.LITTLE_ENDIAN);
        data.putLong(-5L).putFloat(0.5f).putShort((short) 0x3FC0).put(new byte[]{9, 8, 7});
        byte[] expected = layout(json, data.array());

        Path ours = dir.resolve("mixed.safetensors");
        new SafetensorsWriter()
                .put("a", DType.U8, new long[]{3}, new byte[]{9, 8, 7})
                .put("h", DType.BF16, new long[]{1, 1}, new byte[]{(byte) 0xC0, 0x3F})
                .putF32("z", new long[]{1}, new float[]{0.5f})
                .put("m", DType.I64, new long[]{}, ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
                        .putLong(-5L).array())
                .metadata("format", "pt")
                .write(ours);
        assertArrayEquals(expected, Files.readAllBytes(ours),
                () -> new String(readQuiet(ours), StandardCharsets.ISO_8859_1));

        Path ref = dir.resolve("ref.safetensors");
        Files.write(ref, expected);
        try (SafetensorsFile f = SafetensorsFile.open(ref)) {
            assertEquals(List.of("m", "z", "h", "a"), f.names());
            assertEquals(Map.of("format", "pt"), f.metadata());
            assertEquals(-5L, ByteBuffer.wrap(f.bytes("m")).order(ByteOrder.LITTLE_ENDIAN).getLong());
            assertArrayEquals(new float[]{0.5f}, f.readF32("z"));
            assertArrayEquals(new float[]{1.5f}, f.readF32("h"));
            assertArrayEquals(new byte[]{9, 8, 7}, f.bytes("a"));
        }
    }

    @Test
    void emptyFilesMatchTheReferenceBytes() throws IOException {
        Path none = dir.resolve("none.safetensors");
        new SafetensorsWriter().write(none);
        assertArrayEquals(new byte[]{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '},
                Files.readAllBytes(none));

        Path meta = dir.resolve("meta.safetensors");
        new SafetensorsWriter().metadata("framework", "pt").write(meta);
        byte[] expected = layout("{\"__metadata__\":{\"framework\":\"pt\"}}", new byte[0]);
        assertEquals(8 + 40, expected.length);
        assertArrayEquals(expected, Files.readAllBytes(meta));
        try (SafetensorsFile f = SafetensorsFile.open(meta)) {
            assertEquals(0, f.size());
            assertEquals(Map.of("framework", "pt"), f.metadata());
        }
    }

    @Test
    void readsHeadersWrittenByOtherTools() throws IOException {
        // Pretty-printed JSON, keys in arbitrary order, extra per-tensor fields and a null
        // metadata, as hand-rolled writers produce: all accepted.
        String json = "{\n  \"b\": {\"data_offsets\": [4, 8], \"shape\": [1], \"dtype\": \"F32\", \"note\": 1},\n"
                + "  \"__metadata__\": null,\n"
                + "  \"a\": {\"shape\": [2], \"dtype\": \"F16\", \"data_offsets\": [0, 4]}\n}\n";
        ByteBuffer data = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        data.putShort((short) 0x3C00).putShort((short) 0x4000).putFloat(-3f);
        Path p = dir.resolve("other.safetensors");
        Files.write(p, layout(json, data.array()));
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertEquals(List.of("a", "b"), f.names());
            assertArrayEquals(new float[]{1f, 2f}, f.readF32("a"));
            assertArrayEquals(new float[]{-3f}, f.readF32("b"));
            assertEquals(Map.of(), f.metadata());
        }
    }

    private static byte[] readQuiet(Path p) {
        try {
            return Files.readAllBytes(p);
        } catch (IOException e) {
            return new byte[0];
        }
    }
}
