package io.peft4j.io;

import io.peft4j.tensor.DType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafetensorsRoundTripTest {

    @TempDir
    Path dir;

    private static byte[] randomBytes(Random rnd, long n) {
        byte[] b = new byte[Math.toIntExact(n)];
        rnd.nextBytes(b);
        return b;
    }

    private static long bytesFor(DType d, long[] shape) {
        long n = d.byteSize();
        for (long s : shape) n *= s;
        return n;
    }

    @Test
    void everyDtypeAndOddShapeRoundTripsBitExactly() throws IOException {
        Random rnd = new Random(20240611L);
        long[][] shapes = {{3, 5, 7}, {1}, {}, {0, 3}, {2, 1, 3, 1}, {11}};
        Map<String, byte[]> expected = new LinkedHashMap<>();
        Map<String, DType> dtypes = new LinkedHashMap<>();
        Map<String, long[]> shapeOf = new LinkedHashMap<>();
        SafetensorsWriter w = new SafetensorsWriter();
        for (DType d : DType.values()) {
            for (int i = 0; i < shapes.length; i++) {
                String name = "layer" + i + "." + d.name().toLowerCase() + ".weight";
                byte[] data = randomBytes(rnd, bytesFor(d, shapes[i]));
                w.put(name, d, shapes[i], data);
                expected.put(name, data);
                dtypes.put(name, d);
                shapeOf.put(name, shapes[i]);
            }
        }
        Path p = dir.resolve("all.safetensors");
        w.write(p);

        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertEquals(expected.size(), f.size());
            assertEquals(expected.keySet(), new java.util.HashSet<>(f.names()));
            for (String name : expected.keySet()) {
                SafetensorsEntry e = f.entry(name);
                assertEquals(dtypes.get(name), e.dtype(), name);
                assertArrayEquals(shapeOf.get(name), e.shape(), name);
                assertEquals(expected.get(name).length, e.length(), name);
                assertArrayEquals(expected.get(name), f.bytes(name), name);
                MemorySegment view = f.data(name);
                assertEquals(-1, view.mismatch(MemorySegment.ofArray(expected.get(name))), name);
                assertTrue(view.isReadOnly(), name);
                // the writer orders by descending alignment, so every tensor is naturally aligned
                assertEquals(0, (8 + f.headerLength() + e.offset()) % e.dtype().byteSize(), name);
                if (e.dtype() == DType.F32) {
                    float[] v = f.readF32(name);
                    ByteBuffer bb = ByteBuffer.wrap(expected.get(name)).order(ByteOrder.LITTLE_ENDIAN);
                    for (int k = 0; k < v.length; k++) {
                        assertEquals(bb.getInt(4 * k), Float.floatToRawIntBits(v[k]), name + "[" + k + "]");
                    }
                }
            }
            SafetensorsEntry scalar = f.entry("layer2.i64.weight");
            assertEquals(0, scalar.rank());
            assertEquals(1, scalar.numel());
            assertEquals(8, scalar.length());
            SafetensorsEntry empty = f.entry("layer3.f32.weight");
            assertEquals(0, empty.numel());
            assertEquals(0, empty.length());
            assertEquals(0, f.readF32("layer3.f32.weight").length);
            assertEquals(0, f.bytes("layer3.u8.weight").length);
        }
    }

    @Test
    void namesFollowDataOrderAndDataIsContiguous() throws IOException {
        SafetensorsWriter w = new SafetensorsWriter()
                .put("u", DType.U8, new long[]{3}, new byte[]{1, 2, 3})
                .put("h", DType.F16, new long[]{1}, new byte[]{0, 0x3C})
                .putF32("b", new long[]{2}, new float[]{1f, 2f})
                .putF32("a", new long[]{1}, new float[]{3f})
                .put("l", DType.I64, new long[]{}, new byte[8]);
        Path p = dir.resolve("order.safetensors");
        w.write(p);
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertEquals(List.of("l", "a", "b", "h", "u"), f.names());
            long next = 0;
            for (SafetensorsEntry e : f.entries()) {
                assertEquals(next, e.offset(), e.name());
                next = e.end();
            }
            assertEquals(next, f.dataSize());
            assertEquals(8 + f.headerLength() + f.dataSize(), Files.size(p));
        }
    }

    @Test
    void headerIsPaddedWithSpacesToAMultipleOfEight() throws IOException {
        for (int nameLength = 1; nameLength <= 9; nameLength++) {
            Path p = dir.resolve("pad" + nameLength + ".safetensors");
            new SafetensorsWriter().putF32("x".repeat(nameLength), new long[]{1}, new float[]{5f}).write(p);
            byte[] raw = Files.readAllBytes(p);
            long n = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
            assertEquals(0, n % 8, "header length " + n);
            String header = new String(raw, 8, (int) n, StandardCharsets.UTF_8);
            String json = header.stripTrailing();
            assertTrue(json.endsWith("}"), header);
            assertTrue(header.length() - json.length() < 8, "at most 7 pad bytes");
            assertEquals(" ".repeat(header.length() - json.length()), header.substring(json.length()));
            assertEquals(8 + n + 4, raw.length);
            assertEquals(5f, ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).getFloat((int) (8 + n)));
        }
    }

    @Test
    void metadataRoundTripsIncludingEscapesAndUnicode() throws IOException {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "pt");
        meta.put("note", "quote \" backslash \\ newline \n tab \t ünïcödé ✓ 𝄞");
        meta.put("empty", "");
        Path p = dir.resolve("meta.safetensors");
        new SafetensorsWriter().metadata(meta).putF32("w", new long[]{2}, new float[]{1f, -1f}).write(p);
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertEquals(meta, f.metadata());
            assertEquals(List.of("w"), f.names());
        }
        Path q = dir.resolve("nometa.safetensors");
        new SafetensorsWriter().putF32("w", new long[]{1}, new float[]{1f}).write(q);
        try (SafetensorsFile f = SafetensorsFile.open(q)) {
            assertTrue(f.metadata().isEmpty());
            assertFalse(new String(Files.readAllBytes(q), StandardCharsets.UTF_8).contains("__metadata__"));
        }
    }

    @Test
    void unicodeTensorNamesRoundTrip() throws IOException {
        Path p = dir.resolve("uni.safetensors");
        new SafetensorsWriter()
                .putF32("blöck.𝄞.weight", new long[]{1}, new float[]{7f})
                .putF32("\uFFFDz", new long[]{1}, new float[]{8f})
                .write(p);
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            // UTF-8 byte order, as the reference writer sorts: 'b' < U+FFFD (EF BF BD) < U+1D11E (F0 ...)
            assertEquals(List.of("blöck.𝄞.weight", "\uFFFDz"), f.names());
            assertArrayEquals(new float[]{7f}, f.readF32("blöck.𝄞.weight"));
            assertArrayEquals(new float[]{8f}, f.readF32("\uFFFDz"));
        }
    }

    @Test
    void readF32WidensBf16AndF16Exactly() throws IOException {
        short[] bf16 = {(short) 0x3F80, (short) 0xC000, (short) 0x7F80, (short) 0x0000, (short) 0x8000,
                (short) 0x4049, (short) 0x0001};
        float[] bf16Expected = {1f, -2f, Float.POSITIVE_INFINITY, 0f, -0f,
                Float.intBitsToFloat(0x40490000), Float.intBitsToFloat(0x00010000)};
        short[] f16 = {(short) 0x3C00, (short) 0xC000, (short) 0x7BFF, (short) 0x0001, (short) 0xFC00,
                (short) 0x3555};
        float[] f16Expected = {1f, -2f, 65504f, 0x1p-24f, Float.NEGATIVE_INFINITY, 0.333251953125f};
        Path p = dir.resolve("half.safetensors");
        new SafetensorsWriter()
                .put("bf", DType.BF16, new long[]{bf16.length}, shortsLE(bf16))
                .put("hf", DType.F16, new long[]{f16.length}, shortsLE(f16))
                .put("nanbf", DType.BF16, new long[]{1}, shortsLE(new short[]{(short) 0x7FC0}))
                .write(p);
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            float[] b = f.readF32("bf");
            for (int i = 0; i < b.length; i++) {
                assertEquals(Float.floatToRawIntBits(bf16Expected[i]), Float.floatToRawIntBits(b[i]), "bf16[" + i + "]");
            }
            assertArrayEquals(f16Expected, f.readF32("hf"));
            assertTrue(Float.isNaN(f.readF32("nanbf")[0]));
        }
    }

    @Test
    void accessorsRejectWrongUseWithClearMessages() throws IOException {
        Path p = dir.resolve("acc.safetensors");
        new SafetensorsWriter().put("ids", DType.I32, new long[]{2}, new byte[8])
                .putF32("w", new long[]{1}, new float[]{1f}).write(p);
        SafetensorsFile f = SafetensorsFile.open(p);
        var notFloat = assertThrows(IllegalArgumentException.class, () -> f.readF32("ids"));
        assertTrue(notFloat.getMessage().contains("tensor 'ids' is I32, not a floating-point dtype"), notFloat.getMessage());
        var missing = assertThrows(IllegalArgumentException.class, () -> f.entry("nope"));
        assertTrue(missing.getMessage().contains("no tensor 'nope'"), missing.getMessage());
        assertTrue(missing.getMessage().contains("'w'"), missing.getMessage());
        MemorySegment view = f.data("w");
        assertTrue(view.isReadOnly());
        var readOnly = assertThrows(IllegalArgumentException.class, () -> view.set(ValueLayout.JAVA_BYTE, 0, (byte) 1));
        assertTrue(readOnly.getMessage().contains("read-only"), readOnly.getMessage());
        f.close();
        f.close(); // idempotent
        // the file's own check, not the JDK's "Already closed" from the unmapped segment
        for (var access : List.<org.junit.jupiter.api.function.Executable>of(() -> f.readF32("w"), () -> f.bytes("w"),
                () -> f.data("w"))) {
            var closed = assertThrows(IllegalStateException.class, access);
            assertEquals(p + ": file is closed", closed.getMessage());
        }
        assertTrue(f.toString().endsWith(", closed]"), f.toString());
        var unmapped = assertThrows(IllegalStateException.class, () -> view.get(ValueLayout.JAVA_BYTE, 0));
        assertTrue(unmapped.getMessage().toLowerCase(java.util.Locale.ROOT).contains("closed"), unmapped.getMessage());
        // metadata and entries stay readable after close
        assertEquals(DType.F32, f.entry("w").dtype());
    }

    @Test
    void largeTensorIsWrittenThroughTheStagingBufferIntact() throws IOException {
        Random rnd = new Random(7);
        byte[] big = randomBytes(rnd, (9L << 20) + 13); // more than two 4 MiB staging chunks
        float[] small = {1.5f, -2.5f, 3.25f};
        Path p = dir.resolve("big.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(big.length);
            MemorySegment.copy(big, 0, seg, ValueLayout.JAVA_BYTE, 0, big.length);
            new SafetensorsWriter().put("big", DType.U8, new long[]{big.length}, seg)
                    .putF32("small", new long[]{3}, small).write(p);
        }
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertArrayEquals(big, f.bytes("big"));
            assertArrayEquals(small, f.readF32("small"));
        }
    }

    @Test
    void outputIsIndependentOfInsertionOrder() throws IOException {
        Random rnd = new Random(3);
        List<String> names = new ArrayList<>(List.of("q", "k", "v", "o", "up", "down"));
        Map<String, byte[]> data = new LinkedHashMap<>();
        for (String n : names) data.put(n, randomBytes(rnd, 24));
        SafetensorsWriter w1 = new SafetensorsWriter().metadata("format", "pt").metadata("b", "1");
        for (String n : names) w1.put(n, DType.F16, new long[]{3, 4}, data.get(n));
        java.util.Collections.reverse(names);
        SafetensorsWriter w2 = new SafetensorsWriter().metadata("b", "1").metadata("format", "pt");
        for (String n : names) w2.put(n, DType.F16, new long[]{3, 4}, data.get(n));
        Path p1 = dir.resolve("one.safetensors");
        Path p2 = dir.resolve("two.safetensors");
        w1.write(p1);
        w2.write(p2);
        assertArrayEquals(Files.readAllBytes(p1), Files.readAllBytes(p2));
        byte[] written = Files.readAllBytes(p1);
        int n = (int) ByteBuffer.wrap(written).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        assertArrayEquals(java.util.Arrays.copyOfRange(written, 8, 8 + n), w1.headerBytes(), "headerBytes() is what write() puts");
        assertArrayEquals(w1.headerBytes(), w2.headerBytes());
    }

    @Test
    void writerRejectsBadTensors() {
        SafetensorsWriter w = new SafetensorsWriter().putF32("a", new long[]{2}, new float[]{1f, 2f});
        var dup = assertThrows(IllegalArgumentException.class,
                () -> w.putF32("a", new long[]{1}, new float[]{1f}));
        assertTrue(dup.getMessage().contains("'a' was already added"), dup.getMessage());
        var reserved = assertThrows(IllegalArgumentException.class,
                () -> w.put("__metadata__", DType.U8, new long[]{1}, new byte[1]));
        assertTrue(reserved.getMessage().contains("reserved"), reserved.getMessage());
        var size = assertThrows(IllegalArgumentException.class,
                () -> w.putF32("b", new long[]{2, 3}, new float[5]));
        assertTrue(size.getMessage().contains("tensor 'b': F32 [2, 3] needs 24 bytes but the data has 20"),
                size.getMessage());
        var negative = assertThrows(IllegalArgumentException.class,
                () -> w.put("c", DType.U8, new long[]{-1}, new byte[0]));
        assertTrue(negative.getMessage().contains("dimension 0 is negative"), negative.getMessage());
        var overflow = assertThrows(IllegalArgumentException.class,
                () -> w.put("d", DType.F32, new long[]{1L << 62}, new byte[0]));
        assertTrue(overflow.getMessage().contains("overflows"), overflow.getMessage());
        var empty = assertThrows(IllegalArgumentException.class, () -> w.put("", DType.U8, new long[]{0}, new byte[0]));
        assertTrue(empty.getMessage().contains("tensor name must not be empty"), empty.getMessage());
        assertEquals(1, w.size());
        assertTrue(w.contains("a"));
        assertFalse(w.contains("b"));
    }

    @Test
    void entryRecordCopiesShapeAndChecksItsInvariant() {
        long[] shape = {2, 3};
        SafetensorsEntry e = new SafetensorsEntry("t", DType.BF16, shape, 16, 12);
        shape[0] = 99;
        assertArrayEquals(new long[]{2, 3}, e.shape());
        e.shape()[1] = 42;
        assertArrayEquals(new long[]{2, 3}, e.shape());
        assertEquals(6, e.numel());
        assertEquals(28, e.end());
        assertEquals(new SafetensorsEntry("t", DType.BF16, new long[]{2, 3}, 16, 12), e);
        assertEquals(new SafetensorsEntry("t", DType.BF16, new long[]{2, 3}, 16, 12).hashCode(), e.hashCode());
        assertEquals(2, e.rank());
        for (SafetensorsEntry other : List.of(new SafetensorsEntry("u", DType.BF16, new long[]{2, 3}, 16, 12),
                new SafetensorsEntry("t", DType.F16, new long[]{2, 3}, 16, 12),
                new SafetensorsEntry("t", DType.BF16, new long[]{3, 2}, 16, 12),
                new SafetensorsEntry("t", DType.BF16, new long[]{2, 3}, 18, 12))) {
            assertFalse(e.equals(other), other.toString());
        }
        assertEquals("'t' BF16 [2, 3] data_offsets [16, 28]", e.toString());
        var bad = assertThrows(IllegalArgumentException.class,
                () -> new SafetensorsEntry("t", DType.F32, new long[]{2}, 0, 4));
        assertTrue(bad.getMessage().contains("needs 8 bytes"), bad.getMessage());
        // a zero dimension makes the tensor empty even if the other dimensions are huge
        assertEquals(0, new SafetensorsEntry("z", DType.I64, new long[]{1L << 40, 1L << 40, 0}, 0, 0).numel());
    }

    static byte[] shortsLE(short[] v) {
        ByteBuffer bb = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (short s : v) bb.putShort(s);
        return bb.array();
    }
}
