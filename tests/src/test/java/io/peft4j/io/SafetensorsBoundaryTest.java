package io.peft4j.io;

import io.peft4j.tensor.DType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each validation rule of {@link SafetensorsFile#open} at its boundary: the last accepted value
 * opens (and reads back what was written), the first refused one fails naming the tensor or field.
 */
class SafetensorsBoundaryTest {

    @TempDir
    Path dir;

    /** 8-byte LE length + header bytes + {@code dataBytes} bytes of data (byte i holds i + 1, never 0). */
    private Path file(String name, long declaredLength, byte[] header, int dataBytes) throws IOException {
        ByteBuffer bb = ByteBuffer.allocate(8 + header.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        bb.putLong(declaredLength).put(header);
        for (int i = 0; i < dataBytes; i++) bb.put((byte) (i + 1));
        Path p = dir.resolve(name);
        Files.write(p, bb.array());
        return p;
    }

    private Path file(String name, String json, int dataBytes) throws IOException {
        byte[] h = json.getBytes(StandardCharsets.UTF_8);
        return file(name, h.length, h, dataBytes);
    }

    private static String tensor(String name, String dtype, String shape, long begin, long end) {
        return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" + begin + ","
                + end + "]}";
    }

    private static SafetensorsFormatException rejects(Path p, String... fragments) {
        SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> {
            try (SafetensorsFile f = SafetensorsFile.open(p)) {
                throw new AssertionError("opened " + f);
            }
        });
        String m = e.getMessage();
        assertTrue(m.startsWith(p + ": "), m);
        for (String frag : fragments) assertTrue(m.contains(frag), "'" + frag + "' not in: " + m);
        return e;
    }

    private static SafetensorsFile opens(Path p) throws IOException {
        return SafetensorsFile.open(p);
    }

    private static byte[] counting(int from, int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) b[i] = (byte) (from + i + 1);
        return b;
    }

    // ---- the length prefix ----

    /** A header of exactly 100 MB opens; one byte more is refused by the limit, not by the file size. */
    @Test
    void headerLengthAtTheLimit() throws IOException {
        long max = SafetensorsFile.MAX_HEADER_LENGTH;
        assertEquals(100_000_000L, max);
        Path p = dir.resolve("big.safetensors");
        // "{}" padded with spaces (as the reference writer pads) to max + 1 bytes, all really in the file
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ByteBuffer prefix = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, max + 1);
            ch.write(prefix);
            ch.write(ByteBuffer.wrap(new byte[]{'{', '}'}));
            byte[] spaces = new byte[1 << 20];
            Arrays.fill(spaces, (byte) ' ');
            for (long left = max + 1 - 2; left > 0; left -= spaces.length) {
                ch.write(ByteBuffer.wrap(spaces, 0, (int) Math.min(left, spaces.length)));
            }
            assertEquals(8 + max + 1, ch.size());
        }
        rejects(p, "header length 100000001 exceeds the limit of 100000000 bytes");
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, max), 0);
        }
        try (SafetensorsFile f = opens(p)) {
            assertEquals(max, f.headerLength());
            assertEquals(1, f.dataSize(), "the last space is now the (unused) data section");
            assertEquals(0, f.size());
        } finally {
            Files.delete(p);
        }
    }

    @Test
    void headerLengthUpToTheEndOfTheFile() throws IOException {
        byte[] h = "{}   ".getBytes(StandardCharsets.UTF_8);
        try (SafetensorsFile f = opens(file("exact.safetensors", h.length, h, 0))) {
            assertEquals(5, f.headerLength());
            assertEquals(0, f.dataSize());
            assertEquals(List.of(), f.names());
            assertEquals(Map.of(), f.metadata());
        }
        rejects(file("onemore.safetensors", h.length + 1, h, 0),
                "header length 6 runs past the end of the file (5 bytes follow the length prefix)");
        // the smallest valid file: "{}" and nothing else
        try (SafetensorsFile f = opens(file("smallest.safetensors", "{}", 0))) {
            assertEquals(10, Files.size(f.path()));
        }
        rejects(file("zero.safetensors", 0, new byte[0], 0), "header is empty");
        rejects(file("one.safetensors", 1, new byte[]{'{'}, 0), "header is not valid JSON at line 1, column ");
    }

    // ---- JSON limits ----

    /** Jackson's own limits must not refuse what fits the 100 MB header: names over 50 000, strings over 20 M chars. */
    @Test
    void longNamesAndValuesWithinTheHeaderLimitAreAccepted() throws IOException {
        String name = "n".repeat(50_001);
        String value = "v".repeat(20_000_001);
        Path p = file("long.safetensors",
                "{" + tensor(name, "U8", "[2]", 0, 2) + ",\"__metadata__\":{\"k\":\"" + value + "\"}}", 2);
        try (SafetensorsFile f = opens(p)) {
            assertEquals(List.of(name), f.names());
            assertArrayEquals(new byte[]{1, 2}, f.bytes(name));
            assertEquals(value, f.metadata().get("k"));
        }
    }

    /** Unknown fields of a tensor are ignored (as the reference does), but nesting stops at depth 64. */
    @Test
    void nestingDepthAtTheLimit() throws IOException {
        // root object (1) > tensor object (2) > k arrays
        int deepest = 62;
        String ok = "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":"
                + "[".repeat(deepest) + "]".repeat(deepest) + "}}";
        try (SafetensorsFile f = opens(file("depth64.safetensors", ok, 1))) {
            assertArrayEquals(new byte[]{1}, f.bytes("w"));
        }
        String deep = "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":"
                + "[".repeat(deepest + 1) + "]".repeat(deepest + 1) + "}}";
        rejects(file("depth65.safetensors", deep, 1), "header is not valid JSON", "nesting depth", "64");
    }

    // ---- dtype ----

    /** Every dtype has its byte size: the exact length opens, one byte less or more is refused. */
    @Test
    void everyDtypeAtItsExactByteLength() throws IOException {
        for (DType d : DType.values()) {
            int n = 15 * d.byteSize();   // shape [3, 5]
            try (SafetensorsFile f = opens(file(d + ".safetensors", "{" + tensor("t", d.name(), "[3,5]", 0, n) + "}", n))) {
                SafetensorsEntry e = f.entry("t");
                assertEquals(d, e.dtype());
                assertEquals(n, e.length());
                assertArrayEquals(counting(0, n), f.bytes("t"), d.name());
            }
            rejects(file(d + "short.safetensors", "{" + tensor("t", d.name(), "[3,5]", 0, n - 1) + "}", n),
                    "tensor 't' data_offsets [0, " + (n - 1) + "] but " + d + " [3, 5] needs " + n + " bytes");
            rejects(file(d + "long.safetensors", "{" + tensor("t", d.name(), "[3,5]", 0, n + 1) + "}", n + 1),
                    "tensor 't' data_offsets [0, " + (n + 1) + "] but " + d + " [3, 5] needs " + n + " bytes");
        }
    }

    @Test
    void dtypeNamesAreExact() throws IOException {
        for (String bad : List.of("f32", "F32 ", "", "F64", "BOOL", "I8")) {
            rejects(file("dt.safetensors", "{" + tensor("w", bad, "[1]", 0, 1) + "}", 8),
                    "tensor 'w'", "unsupported dtype '" + bad + "'");
        }
    }

    // ---- shape ----

    @Test
    void dimensionsFromZeroUpTo64Bits() throws IOException {
        try (SafetensorsFile f = opens(file("zero.safetensors", "{" + tensor("w", "F32", "[3,0]", 0, 0) + "}", 0))) {
            assertEquals(0, f.entry("w").numel());
            assertEquals(0, f.readF32("w").length);
        }
        rejects(file("minus.safetensors", "{" + tensor("w", "F32", "[3,-1]", 0, 0) + "}", 0),
                "tensor 'w' shape [3, -1]: dimension 1 is negative");
        // Long.MAX_VALUE is a valid dimension (then the size is wrong); one more is not a 64-bit integer
        rejects(file("maxdim.safetensors", "{" + tensor("w", "U8", "[9223372036854775807]", 0, 1) + "}", 1),
                "tensor 'w' data_offsets [0, 1] but U8 [9223372036854775807] needs 9223372036854775807 bytes");
        rejects(file("pastmax.safetensors", "{" + tensor("w", "U8", "[9223372036854775808]", 0, 1) + "}", 1),
                "tensor 'w' 'shape' element 0 (9223372036854775808) is out of the 64-bit range");
        try (SafetensorsFile f = opens(file("scalar.safetensors", "{" + tensor("s", "F32", "[]", 0, 4) + "}", 4))) {
            assertEquals(0, f.entry("s").rank());
            assertEquals(1, f.entry("s").numel());
            assertArrayEquals(counting(0, 4), f.bytes("s"));
        }
    }

    /** The element count is checked against 64 bits: 3037000499² fits, 3037000500² does not. */
    @Test
    void elementCountAtTheOverflowBoundary() throws IOException {
        rejects(file("fits.safetensors", "{" + tensor("w", "U8", "[3037000499,3037000499]", 0, 1) + "}", 1),
                "tensor 'w' data_offsets [0, 1] but U8 [3037000499, 3037000499] needs 9223372030926249001 bytes");
        rejects(file("over.safetensors", "{" + tensor("w", "U8", "[3037000500,3037000500]", 0, 1) + "}", 1),
                "tensor 'w'", "[3037000500, 3037000500]: element count overflows a 64-bit integer");
        // a zero dimension makes the tensor empty however large the others are
        try (SafetensorsFile f = opens(file("emptybig.safetensors",
                "{" + tensor("w", "F32", "[9223372036854775807,9223372036854775807,0]", 0, 0) + "}", 0))) {
            assertEquals(0, f.entry("w").numel());
        }
    }

    /** The byte size is checked against 64 bits per element size: (2^63 − 1) / size elements fit. */
    @Test
    void byteSizeAtTheOverflowBoundary() throws IOException {
        rejects(file("f16fits.safetensors", "{" + tensor("w", "F16", "[4611686018427387903]", 0, 2) + "}", 2),
                "tensor 'w' data_offsets [0, 2] but F16 [4611686018427387903] needs 9223372036854775806 bytes");
        rejects(file("f16over.safetensors", "{" + tensor("w", "F16", "[4611686018427387904]", 0, 2) + "}", 2),
                "tensor 'w' F16 [4611686018427387904]: byte size overflows a 64-bit integer");
        rejects(file("i64fits.safetensors", "{" + tensor("w", "I64", "[1152921504606846975]", 0, 8) + "}", 8),
                "needs 9223372036854775800 bytes");
        rejects(file("i64over.safetensors", "{" + tensor("w", "I64", "[1152921504606846976]", 0, 8) + "}", 8),
                "tensor 'w' I64 [1152921504606846976]: byte size overflows");
    }

    // ---- data_offsets ----

    @Test
    void lastByteOfTheDataSection() throws IOException {
        try (SafetensorsFile f = opens(file("end.safetensors", "{" + tensor("w", "F32", "[3]", 0, 12) + "}", 12))) {
            assertArrayEquals(counting(0, 12), f.bytes("w"));
        }
        rejects(file("past.safetensors", "{" + tensor("w", "F32", "[3]", 1, 13) + "}", 12),
                "tensor 'w' data_offsets [1, 13] runs past the end of the data section (12 bytes");
        // an empty tensor may sit at the very end, not one past it
        try (SafetensorsFile f = opens(file("emptyend.safetensors",
                "{" + tensor("w", "F32", "[3]", 0, 12) + "," + tensor("e", "F32", "[0]", 12, 12) + "}", 12))) {
            assertEquals(List.of("w", "e"), f.names());
            assertEquals(12, f.entry("e").offset());
        }
        rejects(file("emptypast.safetensors",
                "{" + tensor("w", "F32", "[3]", 0, 12) + "," + tensor("e", "F32", "[0]", 13, 13) + "}", 12),
                "tensor 'e' data_offsets [13, 13] runs past the end of the data section (12 bytes");
    }

    @Test
    void beginAndEndOrder() throws IOException {
        try (SafetensorsFile f = opens(file("equal.safetensors",
                "{" + tensor("a", "U8", "[4]", 0, 4) + "," + tensor("e", "U8", "[0]", 4, 4) + "}", 4))) {
            assertEquals(0, f.bytes("e").length);
        }
        rejects(file("after.safetensors", "{" + tensor("w", "U8", "[0]", 5, 4) + "}", 8),
                "tensor 'w' data_offsets [5, 4]: begin is after end");
        rejects(file("negbegin.safetensors", "{" + tensor("w", "U8", "[1]", -1, 0) + "}", 8),
                "tensor 'w' data_offsets [-1, 0] has a negative offset");
        rejects(file("negend.safetensors", "{" + tensor("w", "U8", "[0]", 0, -1) + "}", 8),
                "tensor 'w' data_offsets [0, -1] has a negative offset");
        rejects(file("bigend.safetensors",
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,9223372036854775808]}}", 8),
                "tensor 'w' 'data_offsets' element 1 (9223372036854775808) is out of the 64-bit range");
        rejects(file("floatend.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1.0]}}", 8),
                "tensor 'w' 'data_offsets' element 1 is 1.0, expected an integer");
        rejects(file("one.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 8),
                "tensor 'w' 'data_offsets' has 1 elements, expected 2");
        rejects(file("none.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 8),
                "tensor 'w' has no 'data_offsets'");
    }

    // ---- overlaps ----

    @Test
    void adjacentTensorsAreAcceptedInEitherHeaderOrder() throws IOException {
        for (String json : List.of(
                "{" + tensor("a", "U8", "[5]", 0, 5) + "," + tensor("b", "U8", "[3]", 5, 8) + "}",
                "{" + tensor("b", "U8", "[3]", 5, 8) + "," + tensor("a", "U8", "[5]", 0, 5) + "}")) {
            try (SafetensorsFile f = opens(file("adjacent.safetensors", json, 8))) {
                assertEquals(List.of("a", "b"), f.names());
                assertArrayEquals(counting(0, 5), f.bytes("a"));
                assertArrayEquals(counting(5, 3), f.bytes("b"));
            }
        }
    }

    @Test
    void tensorsOverlappingByOneByteAreRefusedInEitherHeaderOrder() throws IOException {
        rejects(file("one.safetensors", "{" + tensor("a", "U8", "[5]", 0, 5) + "," + tensor("b", "U8", "[4]", 4, 8) + "}", 8),
                "tensors 'a' data_offsets [0, 5] and 'b' data_offsets [4, 8] overlap");
        rejects(file("rev.safetensors", "{" + tensor("b", "U8", "[4]", 4, 8) + "," + tensor("a", "U8", "[5]", 0, 5) + "}", 8),
                "tensors 'a' data_offsets [0, 5] and 'b' data_offsets [4, 8] overlap");
        // after a run of adjacent tensors, one that reaches a single byte back
        rejects(file("far.safetensors", "{" + tensor("a", "U8", "[4]", 0, 4) + "," + tensor("b", "U8", "[1]", 4, 5)
                        + "," + tensor("c", "U8", "[6]", 5, 11) + "," + tensor("d", "U8", "[2]", 10, 12) + "}", 12),
                "tensors 'c' data_offsets [5, 11] and 'd' data_offsets [10, 12] overlap");
    }

    /** An empty tensor occupies no byte, so it may point inside another tensor. */
    @Test
    void emptyTensorsInsideAnotherAreAccepted() throws IOException {
        try (SafetensorsFile f = opens(file("inside.safetensors",
                "{" + tensor("a", "U8", "[8]", 0, 8) + "," + tensor("e", "F32", "[2,0]", 3, 3) + ","
                        + tensor("z", "I64", "[0]", 0, 0) + "}", 8))) {
            assertEquals(List.of("a", "z", "e"), f.names());
            assertArrayEquals(counting(0, 8), f.bytes("a"));
        }
    }

    // ---- accessors ----

    /** A missing name lists the file's first 8 tensors, and "..." only when there are more. */
    @Test
    void missingTensorMessageListsUpToEightNames() throws IOException {
        for (int count : new int[]{8, 9}) {
            StringBuilder json = new StringBuilder("{");
            for (int i = 0; i < count; i++) json.append(i == 0 ? "" : ",").append(tensor("t" + i, "U8", "[1]", i, i + 1));
            try (SafetensorsFile f = opens(file("names" + count + ".safetensors", json + "}", count))) {
                assertTrue(f.contains("t0"));
                assertFalse(f.contains("nope"));
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> f.entry("nope"));
                assertEquals(f.path() + ": no tensor 'nope' (" + count + " tensors: 't0', 't1', 't2', 't3', 't4', 't5', 't6', 't7'"
                        + (count > 8 ? ", ...)" : ")"), e.getMessage());
            }
        }
    }

    /** A tensor one byte over the largest Java array can be mapped but not copied into an array. */
    @Test
    void tensorsTooLargeForAJavaArrayAreOnlyMapped() throws IOException {
        long tooLarge = Integer.MAX_VALUE - 7L;   // one past the largest array the JVM allocates
        byte[] h = ("{" + tensor("big", "U8", "[" + tooLarge + "]", 0, tooLarge) + "}").getBytes(StandardCharsets.UTF_8);
        Path p = dir.resolve("sparse.safetensors");
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, h.length));
            ch.write(ByteBuffer.wrap(h));
            ch.write(ByteBuffer.wrap(new byte[]{42}), 8 + h.length + tooLarge - 1);   // the rest stays a hole
        }
        try (SafetensorsFile f = opens(p)) {
            assertEquals(tooLarge, f.data("big").byteSize());
            assertEquals(42, f.data("big").get(java.lang.foreign.ValueLayout.JAVA_BYTE, tooLarge - 1));
            for (var copy : List.<org.junit.jupiter.api.function.Executable>of(() -> f.bytes("big"), () -> f.readF32("big"))) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, copy);
                assertEquals(p + ": tensor 'big' (U8 [" + tooLarge + "]) is too large for a Java array; use data(name)",
                        e.getMessage());
            }
        } finally {
            Files.delete(p);
        }
    }

    // ---- metadata ----

    @Test
    void metadataNullEmptyOrStrings() throws IOException {
        try (SafetensorsFile f = opens(file("null.safetensors", "{\"__metadata__\":null}", 0))) {
            assertEquals(Map.of(), f.metadata());
        }
        try (SafetensorsFile f = opens(file("empty.safetensors", "{\"__metadata__\":{}}", 0))) {
            assertEquals(Map.of(), f.metadata());
        }
        try (SafetensorsFile f = opens(file("strings.safetensors", "{\"__metadata__\":{\"b\":\"\",\"a\":\"1\"}}", 0))) {
            assertEquals(List.of("b", "a"), List.copyOf(f.metadata().keySet()), "file order");
            assertEquals("", f.metadata().get("b"));
        }
        rejects(file("nullvalue.safetensors", "{\"__metadata__\":{\"a\":null}}", 0),
                "'__metadata__' value of 'a' is a JSON null, expected a string");
        rejects(file("metastring.safetensors", "{\"__metadata__\":\"x\"}", 0),
                "'__metadata__' is a JSON string, expected an object of strings");
    }
}
