package io.peft4j.io;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import io.peft4j.tensor.DType;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * Collects named tensors and writes them as one safetensors file, atomically.
 *
 * <p>The output has the byte layout of the reference (Python/Rust {@code safetensors}) writer:
 * tensors are ordered by dtype, widest alignment first (I64, F32, I32, BF16, F16, U8), then by
 * name (UTF-8 byte order), with consecutive offsets starting at 0, so every tensor starts at a
 * multiple of its element size; the header is compact JSON with {@code __metadata__} first
 * (its keys sorted), each entry written as {@code dtype, shape, data_offsets}, padded with
 * spaces to a multiple of 8 bytes. Data is written as given: raw little-endian bytes.
 *
 * <p>{@link #put(String, DType, long[], MemorySegment)} keeps a reference to the segment (no
 * copy), so it must stay alive and unchanged until {@link #write} returns. The array overloads
 * copy. Not thread-safe.
 */
public final class SafetensorsWriter {

    private static final ValueLayout.OfFloat F32_LE =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final JsonFactory JSON = JsonFactory.builder().build();
    private static final int STAGING_BYTES = 4 << 20;

    private record Pending(String name, byte[] utf8Name, DType dtype, long[] shape, MemorySegment data) {
    }

    private final Map<String, Pending> tensors = new LinkedHashMap<>();
    private final TreeMap<String, String> metadata = new TreeMap<>();

    public SafetensorsWriter() {
    }

    /**
     * Adds a tensor whose raw little-endian, row-major bytes are {@code data}. The segment is
     * referenced, not copied.
     *
     * @throws IllegalArgumentException if the name is empty, {@value SafetensorsFile#METADATA_KEY}
     *                                  or already added, a dimension is negative, or
     *                                  {@code data.byteSize()} differs from the shape's size
     */
    public SafetensorsWriter put(String name, DType dtype, long[] shape, MemorySegment data) {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(shape, "shape");
        Objects.requireNonNull(data, "data");
        if (name.isEmpty()) throw new IllegalArgumentException("tensor name must not be empty");
        if (name.equals(SafetensorsFile.METADATA_KEY)) {
            throw new IllegalArgumentException("'" + SafetensorsFile.METADATA_KEY
                    + "' is reserved for the metadata map and cannot name a tensor");
        }
        if (tensors.containsKey(name)) throw new IllegalArgumentException("tensor '" + name + "' was already added");
        long[] s = shape.clone();
        long needed;
        try {
            needed = SafetensorsEntry.byteLength(dtype, s);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("tensor '" + name + "': " + e.getMessage(), e);
        }
        if (data.byteSize() != needed) {
            throw new IllegalArgumentException("tensor '" + name + "': " + dtype + " " + Arrays.toString(s)
                    + " needs " + needed + " bytes but the data has " + data.byteSize());
        }
        tensors.put(name, new Pending(name, name.getBytes(StandardCharsets.UTF_8), dtype, s, data));
        return this;
    }

    /** Adds a tensor from raw little-endian bytes (copied). */
    public SafetensorsWriter put(String name, DType dtype, long[] shape, byte[] data) {
        Objects.requireNonNull(data, "data");
        return put(name, dtype, shape, MemorySegment.ofArray(data.clone()));
    }

    /** Adds an F32 tensor (copied, stored little-endian). */
    public SafetensorsWriter putF32(String name, long[] shape, float[] values) {
        Objects.requireNonNull(values, "values");
        if (values.length > Integer.MAX_VALUE / 4) {
            throw new IllegalArgumentException("tensor '" + name + "': " + values.length + " floats need "
                    + 4L * values.length + " bytes, more than one Java array holds; pass a MemorySegment instead");
        }
        MemorySegment seg = MemorySegment.ofArray(new byte[values.length * 4]);
        MemorySegment.copy(values, 0, seg, F32_LE, 0, values.length);
        return put(name, DType.F32, shape, seg);
    }

    /** Sets one {@code __metadata__} entry (replacing an earlier value for the key). */
    public SafetensorsWriter metadata(String key, String value) {
        Objects.requireNonNull(key, "metadata key");
        Objects.requireNonNull(value, "metadata value of '" + key + "'");
        metadata.put(key, value);
        return this;
    }

    /** Sets several {@code __metadata__} entries. */
    public SafetensorsWriter metadata(Map<String, String> entries) {
        Objects.requireNonNull(entries, "metadata");
        entries.forEach(this::metadata);
        return this;
    }

    /** Number of tensors added. */
    public int size() {
        return tensors.size();
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    /**
     * Writes the file atomically (see {@link AtomicFiles#write}): on any failure, including a
     * tensor segment whose arena was closed (an {@link IllegalStateException}), the previous file
     * at {@code path} is left as it was and no temporary file remains. The writer can be written
     * again afterwards.
     */
    public void write(Path path) throws IOException {
        Objects.requireNonNull(path, "path");
        List<Pending> ordered = order();
        byte[] header = header(ordered);
        AtomicFiles.write(path, ch -> {
            try {
                ByteBuffer prefix = ByteBuffer.allocate(8 + header.length).order(ByteOrder.LITTLE_ENDIAN);
                prefix.putLong(header.length).put(header).flip();
                AtomicFiles.writeFully(ch, prefix);
                long longest = 0;
                for (Pending p : ordered) longest = Math.max(longest, p.data.byteSize());
                if (longest == 0) return;
                try (Arena staging = Arena.ofConfined()) {
                    MemorySegment buf = staging.allocate(Math.min(longest, STAGING_BYTES), 64);
                    for (Pending p : ordered) copyToChannel(p.data, buf, ch);
                }
            } catch (IOException e) {
                throw IoErrors.describe("write", path, e);   // e.g. "no space left on device"
            }
        });
    }

    /** The header JSON (padded to a multiple of 8 bytes with spaces) as it would be written now. */
    public byte[] headerBytes() {
        return header(order());
    }

    private List<Pending> order() {
        List<Pending> out = new ArrayList<>(tensors.values());
        out.sort(Comparator.comparingInt((Pending p) -> alignmentRank(p.dtype))
                .thenComparing(Pending::utf8Name, Arrays::compareUnsigned));
        return out;
    }

    /** Reference writer order: I64, F32, I32, BF16, F16, U8 (its dtype enum, descending). */
    private static int alignmentRank(DType d) {
        return switch (d) {
            case I64 -> 0;
            case F32 -> 1;
            case I32 -> 2;
            case BF16 -> 3;
            case F16 -> 4;
            case U8 -> 5;
        };
    }

    private byte[] header(List<Pending> ordered) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (JsonGenerator g = JSON.createGenerator(bytes, JsonEncoding.UTF8)) {
            g.writeStartObject();
            if (!metadata.isEmpty()) {
                g.writeObjectFieldStart(SafetensorsFile.METADATA_KEY);
                for (Map.Entry<String, String> m : metadata.entrySet()) g.writeStringField(m.getKey(), m.getValue());
                g.writeEndObject();
            }
            long offset = 0;
            for (Pending p : ordered) {
                long end = Math.addExact(offset, p.data.byteSize());
                g.writeObjectFieldStart(p.name);
                g.writeStringField("dtype", p.dtype.name());
                g.writeArrayFieldStart("shape");
                for (long d : p.shape) g.writeNumber(d);
                g.writeEndArray();
                g.writeArrayFieldStart("data_offsets");
                g.writeNumber(offset);
                g.writeNumber(end);
                g.writeEndArray();
                g.writeEndObject();
                offset = end;
            }
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException("writing JSON to memory failed", e);
        }
        int len = bytes.size();
        int padded = (len + 7) & ~7;
        if (padded > SafetensorsFile.MAX_HEADER_LENGTH) {
            throw new IllegalArgumentException("safetensors header would be " + padded + " bytes, over the limit of "
                    + SafetensorsFile.MAX_HEADER_LENGTH + " that readers accept");
        }
        byte[] out = Arrays.copyOf(bytes.toByteArray(), padded);
        Arrays.fill(out, len, padded, (byte) ' ');
        return out;
    }

    private static void copyToChannel(MemorySegment src, MemorySegment buf, FileChannel ch) throws IOException {
        long size = src.byteSize();
        for (long off = 0; off < size; ) {
            long n = Math.min(buf.byteSize(), size - off);
            MemorySegment.copy(src, off, buf, 0, n);
            AtomicFiles.writeFully(ch, buf.asSlice(0, n).asByteBuffer());
            off += n;
        }
    }
}
