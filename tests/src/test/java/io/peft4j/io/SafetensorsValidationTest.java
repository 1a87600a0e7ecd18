package io.peft4j.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every malformed file is refused at open, with a message naming the file and what is wrong. */
class SafetensorsValidationTest {

    @TempDir
    Path dir;

    /** 8-byte LE length + header bytes + {@code dataBytes} bytes of data. */
    private Path file(String name, long declaredLength, byte[] header, int dataBytes) throws IOException {
        ByteBuffer bb = ByteBuffer.allocate(8 + header.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        bb.putLong(declaredLength).put(header);
        for (int i = 0; i < dataBytes; i++) bb.put((byte) i);
        Path p = dir.resolve(name);
        Files.write(p, bb.array());
        return p;
    }

    private Path file(String name, String json, int dataBytes) throws IOException {
        byte[] h = json.getBytes(StandardCharsets.UTF_8);
        return file(name, h.length, h, dataBytes);
    }

    /** Asserts that opening fails with a format error whose message has the file name and every fragment. */
    private SafetensorsFormatException rejects(Path p, String... fragments) {
        SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> {
            try (SafetensorsFile f = SafetensorsFile.open(p)) {
                throw new AssertionError("opened " + f);
            }
        });
        String m = e.getMessage();
        assertTrue(m.startsWith(p.toString() + ": "), m);
        for (String frag : fragments) assertTrue(m.contains(frag), "'" + frag + "' not in: " + m);
        assertTrue(e instanceof IllegalArgumentException);
        return e;
    }

    @Test
    void fileShorterThanTheLengthPrefix() throws IOException {
        for (int size = 0; size < 8; size++) {
            Path p = dir.resolve("short" + size + ".safetensors");
            Files.write(p, new byte[size]);
            rejects(p, "file is " + size + " bytes, shorter than the 8-byte header length prefix");
        }
    }

    @Test
    void absurdHeaderLength() throws IOException {
        rejects(file("huge.safetensors", 1L << 62, "{}".getBytes(StandardCharsets.UTF_8), 0),
                "header length 4611686018427387904 exceeds the limit of 100000000 bytes");
        // an unsigned u64 above 2^63 must not be mistaken for a small (negative) number
        rejects(file("neg.safetensors", -2L, "{}".getBytes(StandardCharsets.UTF_8), 0),
                "header length 18446744073709551614 exceeds");
        rejects(file("justover.safetensors", 100_000_001L, "{}".getBytes(StandardCharsets.UTF_8), 0),
                "header length 100000001 exceeds");
    }

    @Test
    void headerLengthBeyondTheFile() throws IOException {
        rejects(file("beyond.safetensors", 1000, "{}      ".getBytes(StandardCharsets.UTF_8), 0),
                "header length 1000 runs past the end of the file (8 bytes follow the length prefix)");
    }

    @Test
    void invalidUtf8() throws IOException {
        byte[] h = "{\"a\":{}}".getBytes(StandardCharsets.UTF_8);
        byte[] bad = Arrays.copyOf(h, h.length + 2);
        bad[3] = (byte) 0xC3; // lead byte followed by a non-continuation byte
        bad[4] = (byte) 0x28;
        bad[h.length] = ' ';
        bad[h.length + 1] = ' ';
        rejects(file("utf8.safetensors", bad.length, bad, 0), "header is not valid UTF-8", "header offset 3");
        // an overlong encoding of '/' and an encoded surrogate are malformed too
        byte[] overlong = {'{', '"', (byte) 0xC0, (byte) 0xAF, '"', ':', '1', '}'};
        rejects(file("overlong.safetensors", overlong.length, overlong, 0), "not valid UTF-8");
        byte[] surrogate = {'{', '"', (byte) 0xED, (byte) 0xA0, (byte) 0x80, '"', ':', '1', '}'};
        rejects(file("surrogate.safetensors", surrogate.length, surrogate, 0), "not valid UTF-8");
    }

    @Test
    void notJsonOrNotAnObject() throws IOException {
        rejects(file("garbage.safetensors", "hello world", 0), "header is not valid JSON");
        rejects(file("cut.safetensors", "{\"a\":{\"dtype\":\"F32\"", 0), "header is not valid JSON");
        rejects(file("array.safetensors", "[1, 2, 3]", 0), "header is a JSON array, expected an object");
        rejects(file("string.safetensors", "\"x\"     ", 0), "header is a JSON string, expected an object");
        rejects(file("blank.safetensors", "        ", 0), "header is empty");
        rejects(file("trailing.safetensors", "{} {}", 0), "header is not valid JSON");
    }

    @Test
    void duplicateKeys() throws IOException {
        String t = "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}";
        rejects(file("dup.safetensors", "{\"a\":" + t + ",\"a\":" + t + "}", 1), "not valid JSON", "Duplicate", "'a'");
        rejects(file("dupfield.safetensors",
                "{\"a\":{\"dtype\":\"U8\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1),
                "Duplicate", "'dtype'");
        rejects(file("dupmeta.safetensors", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0), "Duplicate", "'k'");
    }

    @Test
    void unknownOrMissingDtype() throws IOException {
        rejects(file("f64.safetensors", "{\"w\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8),
                "tensor 'w'", "unsupported dtype 'F64'");
        rejects(file("nodtype.safetensors", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                "tensor 'w' has no 'dtype'");
        rejects(file("numdtype.safetensors", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                "tensor 'w' 'dtype' is a JSON number, expected a string");
    }

    @Test
    void badShapes() throws IOException {
        rejects(file("negshape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,0]}}", 0),
                "tensor 'w' shape [2, -1]: dimension 1 is negative");
        rejects(file("floatshape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,4]}}", 4),
                "tensor 'w' 'shape' element 0 is 2.5, expected an integer");
        rejects(file("strshape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8),
                "tensor 'w' 'shape' is a JSON string, expected an array");
        rejects(file("bigdim.safetensors",
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],\"data_offsets\":[0,1]}}", 1),
                "tensor 'w' 'shape' element 0", "out of the 64-bit range");
        rejects(file("overflow.safetensors",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4),
                "tensor 'w'", "overflows a 64-bit integer");
        rejects(file("bytesoverflow.safetensors",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4),
                "tensor 'w'", "byte size overflows");
        rejects(file("noshape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4),
                "tensor 'w' has no 'shape'");
    }

    @Test
    void badOffsets() throws IOException {
        rejects(file("beyond.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12),
                "tensor 'w' data_offsets [0, 16] runs past the end of the data section (12 bytes");
        rejects(file("reversed.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8),
                "tensor 'w' data_offsets [8, 4]: begin is after end");
        rejects(file("negoff.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8),
                "tensor 'w' data_offsets [-4, 0] has a negative offset");
        rejects(file("three.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8),
                "tensor 'w' 'data_offsets' has 3 elements, expected 2");
        rejects(file("hugeoff.safetensors",
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9223372036854775806,9223372036854775807]}}", 8),
                "tensor 'w'", "runs past the end of the data section");
    }

    @Test
    void shapeAndLengthMismatch() throws IOException {
        Path p = file("model.safetensors",
                "{\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[5,7],\"data_offsets\":[0,100]}}", 140);
        rejects(p, "tensor 'fc1.weight' data_offsets [0, 100] but F32 [5, 7] needs 140 bytes");
        rejects(file("scalar.safetensors", "{\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,4]}}", 8),
                "tensor 's' data_offsets [0, 4] but I64 [] needs 8 bytes");
    }

    @Test
    void overlappingRanges() throws IOException {
        rejects(file("overlap.safetensors",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                        + "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24),
                "tensors 'a' data_offsets [0, 16] and 'b' data_offsets [8, 24] overlap");
        // a range nested inside an earlier, longer one; listed in reverse header order
        rejects(file("nested.safetensors",
                "{\"inner\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[20,22]},"
                        + "\"mid\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                        + "\"outer\":{\"dtype\":\"U8\",\"shape\":[30],\"data_offsets\":[0,30]}}", 30),
                "'outer' data_offsets [0, 30] and 'mid' data_offsets [4, 6] overlap");
        rejects(file("same.safetensors",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                        + "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4),
                "overlap");
    }

    @Test
    void emptyTensorsMayShareAnOffsetAndGapsAreTolerated() throws IOException {
        Path p = file("empty.safetensors",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                        + "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[2,2]},"
                        + "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]}}", 10);
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertEquals(List.of("a", "e", "b"), f.names());
            assertArrayEquals(new byte[]{6, 7}, f.bytes("b"));
            assertEquals(0, f.bytes("e").length);
            assertEquals(10, f.dataSize());
        }
    }

    @Test
    void badMetadata() throws IOException {
        rejects(file("metanum.safetensors", "{\"__metadata__\":{\"epochs\":3}}", 0),
                "'__metadata__' value of 'epochs' is a JSON number, expected a string");
        rejects(file("metaarr.safetensors", "{\"__metadata__\":[\"a\"]}", 0),
                "'__metadata__' is a JSON array, expected an object of strings");
        rejects(file("tensorstr.safetensors", "{\"w\":\"F32\"}", 0), "tensor 'w' is a JSON string, expected an object");
    }

    @Test
    void truncatedFile() throws IOException {
        Path good = dir.resolve("good.safetensors");
        new SafetensorsWriter().putF32("a", new long[]{3}, new float[]{1, 2, 3})
                .putF32("b", new long[]{2, 2}, new float[]{4, 5, 6, 7}).write(good);
        byte[] all = Files.readAllBytes(good);
        try (SafetensorsFile f = SafetensorsFile.open(good)) {
            assertEquals(28, f.dataSize());
        }
        Path cut = dir.resolve("cut.safetensors");
        Files.write(cut, Arrays.copyOf(all, all.length - 1));
        rejects(cut, "tensor 'b' data_offsets [12, 28] runs past the end of the data section (27 bytes");
        Path cutHeader = dir.resolve("cuthead.safetensors");
        Files.write(cutHeader, Arrays.copyOf(all, 20));
        rejects(cutHeader, "runs past the end of the file");
    }

    @Test
    void messagesNameTheFileAsGiven() throws IOException {
        Path p = file("named.safetensors", "[]      ", 0);
        SafetensorsFormatException e = rejects(p);
        assertTrue(e.getMessage().contains("named.safetensors"), e.getMessage());
    }

    @Test
    void missingFileIsAnIoErrorNotAFormatError() {
        var e = assertThrows(java.nio.file.NoSuchFileException.class,
                () -> SafetensorsFile.open(dir.resolve("absent.safetensors")));
        assertTrue(e.getMessage().contains("absent.safetensors"), e.getMessage());
    }
}
