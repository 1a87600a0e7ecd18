package io.peft4j.io;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.tensor.DType;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A safetensors file opened read-only and memory-mapped.
 *
 * <p>Layout: an 8-byte little-endian header length {@code N}, {@code N} bytes of UTF-8 JSON
 * ({@code {"name": {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {...}}}), then the data section; offsets are relative to the start of the data
 * section, data is little-endian and row-major.
 *
 * <p>{@link #open} validates the whole header against the file size before anything else
 * happens: a length or offset that would read outside the file, a size that does not match the
 * dtype and shape, overlapping tensors, an unknown dtype, malformed UTF-8 or JSON, or duplicate
 * keys all fail with a {@link SafetensorsFormatException} naming the file and the tensor or field
 * at fault. Gaps between tensors and bytes after the last tensor are tolerated (the reference
 * writer never produces them, but they cannot make a read go out of bounds).
 *
 * <p>The mapping lives in a shared arena: the accessors may be called from any thread, and
 * {@link #close()} unmaps the file; segments returned by {@link #data} are invalid afterwards.
 * If another process truncates the file while it is mapped, reads fail (the JVM turns the fault
 * into an {@link InternalError}); files are replaced by rename ({@link AtomicFiles}), which does
 * not disturb an open mapping.
 */
public final class SafetensorsFile implements AutoCloseable {

    /** Largest header accepted, as in the reference implementation (100 MB). */
    public static final long MAX_HEADER_LENGTH = 100_000_000L;

    /** The header key holding the free-form string→string metadata map. */
    public static final String METADATA_KEY = "__metadata__";

    private static final ValueLayout.OfFloat F32_LE =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16_LE =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final long MAX_ARRAY_LENGTH = Integer.MAX_VALUE - 8;

    private static final ObjectMapper HEADER_MAPPER = new ObjectMapper(JsonFactory.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .streamReadConstraints(StreamReadConstraints.builder()
                    .maxStringLength((int) MAX_HEADER_LENGTH)
                    .maxNameLength((int) MAX_HEADER_LENGTH)
                    .maxNestingDepth(64)
                    .build())
            .build())
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY);

    private final Path path;
    private final Arena arena;
    private final MemorySegment data;
    private final long headerLength;
    private final Map<String, SafetensorsEntry> entries;
    private final List<String> names;
    private final Map<String, String> metadata;
    private volatile boolean closed;

    private SafetensorsFile(Path path, Arena arena, MemorySegment data, long headerLength,
                            Map<String, SafetensorsEntry> entries, List<String> names,
                            Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.data = data;
        this.headerLength = headerLength;
        this.entries = entries;
        this.names = names;
        this.metadata = metadata;
    }

    /**
     * Opens, validates and maps a safetensors file.
     *
     * @throws SafetensorsFormatException if the file is not a valid safetensors file
     * @throws IOException                if it cannot be read or mapped
     */
    public static SafetensorsFile open(Path path) throws IOException {
        Objects.requireNonNull(path, "path");
        String file = path.toString();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long fileSize = ch.size();
            if (fileSize < 8) {
                throw error(file, "file is " + fileSize + " bytes, shorter than the 8-byte header length prefix");
            }
            ByteBuffer prefix = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, prefix, 0, file);
            long n = prefix.getLong(0);
            if (n < 0 || n > MAX_HEADER_LENGTH) {
                throw error(file, "header length " + Long.toUnsignedString(n) + " exceeds the limit of "
                        + MAX_HEADER_LENGTH + " bytes");
            }
            if (n > fileSize - 8) {
                throw error(file, "header length " + n + " runs past the end of the file (" + (fileSize - 8)
                        + " bytes follow the length prefix)");
            }
            ByteBuffer headerBytes = ByteBuffer.allocate((int) n);
            readFully(ch, headerBytes, 8, file);
            headerBytes.flip();
            long dataSize = fileSize - 8 - n;
            Header header = parseHeader(file, headerBytes, dataSize);

            Arena arena = Arena.ofShared();
            try {
                MemorySegment mapped = ch.map(FileChannel.MapMode.READ_ONLY, 0, fileSize, arena);
                MemorySegment dataSection = mapped.asSlice(8 + n, dataSize).asReadOnly();
                return new SafetensorsFile(path, arena, dataSection, n, header.entries, header.names,
                        header.metadata);
            } catch (Throwable t) {
                arena.close();
                throw t;
            }
        } catch (IOException e) {
            throw IoErrors.describe("read", path, e);
        }
    }

    /** The path this file was opened from. */
    public Path path() {
        return path;
    }

    /** Length {@code N} of the JSON header; the data section starts at byte {@code 8 + N}. */
    public long headerLength() {
        return headerLength;
    }

    /** Size of the data section in bytes. */
    public long dataSize() {
        return data.byteSize();
    }

    /** Tensor names ordered by their offset in the data section (ties keep header order). */
    public List<String> names() {
        return names;
    }

    /** All entries, in {@link #names()} order. */
    public List<SafetensorsEntry> entries() {
        List<SafetensorsEntry> out = new ArrayList<>(names.size());
        for (String name : names) out.add(entries.get(name));
        return Collections.unmodifiableList(out);
    }

    /** Number of tensors. */
    public int size() {
        return names.size();
    }

    public boolean contains(String name) {
        return entries.containsKey(name);
    }

    /**
     * The header entry of a tensor.
     *
     * @throws IllegalArgumentException if there is no such tensor
     */
    public SafetensorsEntry entry(String name) {
        Objects.requireNonNull(name, "name");
        SafetensorsEntry e = entries.get(name);
        if (e == null) {
            StringBuilder sb = new StringBuilder(path.toString()).append(": no tensor '").append(name)
                    .append("' (").append(names.size()).append(" tensors");
            int shown = Math.min(names.size(), 8);
            for (int i = 0; i < shown; i++) sb.append(i == 0 ? ": '" : ", '").append(names.get(i)).append('\'');
            if (shown < names.size()) sb.append(", ...");
            throw new IllegalArgumentException(sb.append(')').toString());
        }
        return e;
    }

    /** The {@code __metadata__} map in file order; empty when the header has none. */
    public Map<String, String> metadata() {
        return metadata;
    }

    /**
     * A read-only view of a tensor's bytes inside the mapping (no copy). Valid until
     * {@link #close()}. The slice is not necessarily aligned to the element size.
     */
    public MemorySegment data(String name) {
        SafetensorsEntry e = entry(name);
        ensureOpen();
        return data.asSlice(e.offset(), e.length());
    }

    /** A copy of a tensor's raw little-endian bytes. */
    public byte[] bytes(String name) {
        SafetensorsEntry e = entry(name);
        checkArrayLength(e, e.length());
        ensureOpen();
        return data.asSlice(e.offset(), e.length()).toArray(ValueLayout.JAVA_BYTE);
    }

    /**
     * A tensor's values as floats, row-major. F32 is copied bit-exactly; BF16 and F16 are widened
     * exactly (every BF16/F16 value is representable as a float).
     *
     * @throws IllegalArgumentException if the tensor's dtype is not F32, BF16 or F16
     */
    public float[] readF32(String name) {
        SafetensorsEntry e = entry(name);
        long numel = e.numel();
        checkArrayLength(e, numel);
        ensureOpen();
        MemorySegment src = data.asSlice(e.offset(), e.length());
        int n = (int) numel;
        float[] out = new float[n];
        switch (e.dtype()) {
            case F32 -> MemorySegment.copy(src, F32_LE, 0, out, 0, n);
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Float.intBitsToFloat((src.getAtIndex(I16_LE, i) & 0xFFFF) << 16);
                }
            }
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Float.float16ToFloat(src.getAtIndex(I16_LE, i));
                }
            }
            default -> throw new IllegalArgumentException(path + ": tensor '" + name + "' is " + e.dtype()
                    + ", not a floating-point dtype (F32, BF16, F16)");
        }
        return out;
    }

    /** Unmaps the file. Idempotent. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        arena.close();
    }

    @Override
    public String toString() {
        return "SafetensorsFile[" + path + ", " + names.size() + " tensors" + (closed ? ", closed]" : "]");
    }

    private void ensureOpen() {
        if (closed) throw new IllegalStateException(path + ": file is closed");
    }

    private void checkArrayLength(SafetensorsEntry e, long n) {
        if (n > MAX_ARRAY_LENGTH) {
            throw new IllegalArgumentException(path + ": tensor '" + e.name() + "' (" + e.dtype() + " "
                    + Arrays.toString(e.shape()) + ") is too large for a Java array; use data(name)");
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Header parsing and validation

    private record Header(Map<String, SafetensorsEntry> entries, List<String> names, Map<String, String> metadata) {
    }

    private static Header parseHeader(String file, ByteBuffer headerBytes, long dataSize) {
        String json = decodeUtf8(file, headerBytes);
        JsonNode root;
        try {
            root = HEADER_MAPPER.readTree(json);
        } catch (JsonProcessingException e) {
            throw new SafetensorsFormatException(file + ": header is not valid JSON " + IoErrors.jsonSyntax(e), e);
        }
        if (root == null || root.isMissingNode()) {
            throw error(file, "header is empty, expected a JSON object");
        }
        if (!root.isObject()) {
            throw error(file, "header is a JSON " + kind(root) + ", expected an object");
        }

        Map<String, SafetensorsEntry> entries = new HashMap<>();
        List<SafetensorsEntry> inHeaderOrder = new ArrayList<>();
        Map<String, String> metadata = Map.of();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.properties().iterator(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> field = it.next();
            String key = field.getKey();
            if (key.equals(METADATA_KEY)) {
                metadata = parseMetadata(file, field.getValue());
            } else {
                SafetensorsEntry e = parseEntry(file, key, field.getValue(), dataSize);
                entries.put(key, e);
                inHeaderOrder.add(e);
            }
        }
        checkOverlaps(file, inHeaderOrder);

        List<SafetensorsEntry> byOffset = new ArrayList<>(inHeaderOrder);
        byOffset.sort(Comparator.comparingLong(SafetensorsEntry::offset)); // stable: ties keep header order
        List<String> names = new ArrayList<>(byOffset.size());
        for (SafetensorsEntry e : byOffset) names.add(e.name());
        return new Header(Collections.unmodifiableMap(entries), Collections.unmodifiableList(names), metadata);
    }

    private static String decodeUtf8(String file, ByteBuffer bytes) {
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        CharBuffer out = CharBuffer.allocate(bytes.remaining());
        CoderResult r = decoder.decode(bytes, out, true);
        if (r.isUnderflow()) r = decoder.flush(out);
        if (r.isError()) {
            throw error(file, "header is not valid UTF-8 (malformed sequence of " + r.length()
                    + " byte(s) at header offset " + bytes.position() + ")");
        }
        return out.flip().toString();
    }

    private static Map<String, String> parseMetadata(String file, JsonNode node) {
        if (node.isNull()) return Map.of();
        if (!node.isObject()) {
            throw error(file, "'" + METADATA_KEY + "' is a JSON " + kind(node) + ", expected an object of strings");
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = node.properties().iterator(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> f = it.next();
            if (!f.getValue().isTextual()) {
                throw error(file, "'" + METADATA_KEY + "' value of '" + f.getKey() + "' is a JSON "
                        + kind(f.getValue()) + ", expected a string");
            }
            out.put(f.getKey(), f.getValue().textValue());
        }
        return Collections.unmodifiableMap(out);
    }

    private static SafetensorsEntry parseEntry(String file, String name, JsonNode node, long dataSize) {
        String t = file + ": tensor '" + name + "'";
        if (!node.isObject()) {
            throw new SafetensorsFormatException(t + " is a JSON " + kind(node) + ", expected an object");
        }
        JsonNode dtypeNode = node.get("dtype");
        if (dtypeNode == null) throw new SafetensorsFormatException(t + " has no 'dtype'");
        if (!dtypeNode.isTextual()) {
            throw new SafetensorsFormatException(t + " 'dtype' is a JSON " + kind(dtypeNode) + ", expected a string");
        }
        DType dtype;
        try {
            dtype = DType.fromSafetensors(dtypeNode.textValue());
        } catch (IllegalArgumentException e) {
            throw new SafetensorsFormatException(t + ": " + e.getMessage(), e);
        }

        long[] shape = integerArray(t, node, "shape", -1);
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] < 0) {
                throw new SafetensorsFormatException(t + " shape " + Arrays.toString(shape) + ": dimension " + i
                        + " is negative");
            }
        }
        long[] offsets = integerArray(t, node, "data_offsets", 2);
        long begin = offsets[0];
        long end = offsets[1];
        String range = "data_offsets [" + begin + ", " + end + "]";
        if (begin < 0 || end < 0) {
            throw new SafetensorsFormatException(t + " " + range + " has a negative offset");
        }
        if (begin > end) {
            throw new SafetensorsFormatException(t + " " + range + ": begin is after end");
        }
        if (end > dataSize) {
            throw new SafetensorsFormatException(t + " " + range + " runs past the end of the data section ("
                    + dataSize + " bytes; is the file truncated?)");
        }
        long needed;
        try {
            needed = SafetensorsEntry.byteLength(dtype, shape);
        } catch (IllegalArgumentException e) {
            throw new SafetensorsFormatException(t + " " + e.getMessage(), e);
        }
        if (end - begin != needed) {
            throw new SafetensorsFormatException(t + " " + range + " but " + dtype + " " + Arrays.toString(shape)
                    + " needs " + needed + " bytes");
        }
        return new SafetensorsEntry(name, dtype, shape, begin, end - begin);
    }

    /** Reads {@code node[field]} as an array of 64-bit integers; {@code expectedLength < 0}: any. */
    private static long[] integerArray(String t, JsonNode node, String field, int expectedLength) {
        JsonNode a = node.get(field);
        if (a == null) throw new SafetensorsFormatException(t + " has no '" + field + "'");
        if (!a.isArray()) {
            throw new SafetensorsFormatException(t + " '" + field + "' is a JSON " + kind(a) + ", expected an array");
        }
        if (expectedLength >= 0 && a.size() != expectedLength) {
            throw new SafetensorsFormatException(t + " '" + field + "' has " + a.size() + " elements, expected "
                    + expectedLength);
        }
        long[] out = new long[a.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode v = a.get(i);
            if (!v.isIntegralNumber()) {
                throw new SafetensorsFormatException(t + " '" + field + "' element " + i + " is " + v
                        + ", expected an integer");
            }
            if (!v.canConvertToLong()) {
                throw new SafetensorsFormatException(t + " '" + field + "' element " + i + " (" + v
                        + ") is out of the 64-bit range");
            }
            out[i] = v.longValue();
        }
        return out;
    }

    /** No two non-empty byte ranges may share a byte (empty tensors occupy nothing). */
    private static void checkOverlaps(String file, List<SafetensorsEntry> list) {
        List<SafetensorsEntry> sorted = new ArrayList<>();
        for (SafetensorsEntry e : list) if (e.length() > 0) sorted.add(e);
        sorted.sort(Comparator.comparingLong(SafetensorsEntry::offset));
        SafetensorsEntry furthest = null;
        for (SafetensorsEntry e : sorted) {
            if (furthest != null && e.offset() < furthest.end()) {
                throw error(file, "tensors '" + furthest.name() + "' data_offsets [" + furthest.offset() + ", "
                        + furthest.end() + "] and '" + e.name() + "' data_offsets [" + e.offset() + ", " + e.end()
                        + "] overlap");
            }
            if (furthest == null || e.end() > furthest.end()) furthest = e;
        }
    }

    private static String kind(JsonNode n) {
        return switch (n.getNodeType()) {
            case ARRAY -> "array";
            case OBJECT, POJO -> "object";
            case STRING -> "string";
            case NUMBER -> "number";
            case BOOLEAN -> "boolean";
            case NULL -> "null";
            default -> n.getNodeType().name().toLowerCase(java.util.Locale.ROOT);
        };
    }

    private static void readFully(FileChannel ch, ByteBuffer buf, long position, String file) throws IOException {
        long pos = position;
        while (buf.hasRemaining()) {
            int r = ch.read(buf, pos);
            if (r < 0) throw error(file, "file ended while reading the header (was it truncated while opening?)");
            pos += r;
        }
    }

    private static SafetensorsFormatException error(String file, String message) {
        return new SafetensorsFormatException(file + ": " + message);
    }
}
