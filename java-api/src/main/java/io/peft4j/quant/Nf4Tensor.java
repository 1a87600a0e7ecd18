package io.peft4j.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.backend.Backend;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.io.SafetensorsWriter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A weight in NF4 exactly as bitsandbytes stores it (docs/algorithms.md §7, §18): the row-major
 * flattened values in blocks of {@code blockSize}, two 4-bit codes per byte, and per block an fp32
 * absmax, or, with double quantization, an 8-bit code per block plus an fp32 absmax per 256 blocks
 * and one fp32 offset. No fp32 copy of the weight is kept.
 *
 * <p>State-dict entries under a key {@code K} (bitsandbytes' Linear4bit "weight"): {@code K} U8
 * [(n+1)/2, 1]; {@code K.absmax} F32 [blocks] (U8 with double quantization); {@code K.quant_map}
 * F32 [16]; with double quantization {@code K.nested_absmax} F32 [ceil(blocks/256)] and
 * {@code K.nested_quant_map} F32 [256]; {@code K.quant_state.bitsandbytes__nf4} U8 [bytes] holding
 * the JSON {@code quant_type, blocksize, dtype, shape} (+ {@code nested_blocksize, nested_dtype,
 * nested_offset}).
 */
public final class Nf4Tensor implements AutoCloseable {
    public static final int DEFAULT_BLOCK_SIZE = 64;
    /** Blocks of block constants per second-level absmax (bitsandbytes' nested block size). */
    public static final int NESTED_BLOCK_SIZE = 256;
    static final String STATE_SUFFIX = ".quant_state.bitsandbytes__nf4";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final long[] shape;
    private final int blockSize;
    private final String dtype;        // the original dtype as bitsandbytes names it ("float32", "bfloat16", "float16")
    private final Tensor packed;       // U8 [(n + 1) / 2]
    private final Tensor absmax;       // F32 [blocks], or null with double quantization
    private final Tensor qabsmax;      // U8 [blocks] with double quantization
    private final Tensor absmax2;      // F32 [ceil(blocks / 256)] with double quantization
    private final float offset;

    private Nf4Tensor(long[] shape, int blockSize, String dtype, Tensor packed, Tensor absmax, Tensor qabsmax,
                      Tensor absmax2, float offset) {
        this.shape = shape.clone();
        this.blockSize = blockSize;
        this.dtype = dtype;
        this.packed = packed;
        this.absmax = absmax;
        this.qabsmax = qabsmax;
        this.absmax2 = absmax2;
        this.offset = offset;
    }

    /**
     * Quantises the F32 tensor {@code w} (any shape, every value finite; {@code name} is used in
     * errors). {@code dtype} records the original dtype in the state ("float32", "bfloat16", "float16").
     */
    public static Nf4Tensor quantize(Backend backend, String name, Tensor w, int blockSize, boolean doubleQuant, String dtype) {
        w.requireDType(DType.F32);
        checkBlockSize(blockSize);
        if (w.numel() == 0) throw new IllegalArgumentException("cannot quantize '" + name + "' to NF4: it is empty " + w.describe());
        checkDtypeName(dtype);
        requireFinite(name, w);
        long n = w.numel();
        long blocks = (n + blockSize - 1) / blockSize;
        Tensor packed = Tensor.zeros(DType.U8, (n + 1) / 2);
        Tensor am = Tensor.zeros(DType.F32, blocks);
        backend.nf4Quantize(blockSize, w, packed, am);
        if (!doubleQuant) return new Nf4Tensor(w.shape(), blockSize, dtype, packed, am, null, null, 0f);
        Tensor q = Tensor.zeros(DType.U8, blocks);
        Tensor a2 = Tensor.zeros(DType.F32, (blocks + NESTED_BLOCK_SIZE - 1) / NESTED_BLOCK_SIZE);
        float off = backend.nf4DoubleQuantize(am, q, a2);
        am.close();
        return new Nf4Tensor(w.shape(), blockSize, dtype, packed, null, q, a2, off);
    }

    private static void requireFinite(String name, Tensor w) {
        MemorySegment s = w.segment();
        long n = w.numel();
        for (long i = 0; i < n; i++) {
            float v = s.getAtIndex(ValueLayout.JAVA_FLOAT, i);
            if (!Float.isFinite(v)) {
                throw new IllegalArgumentException("cannot quantize '" + name + "' to NF4: element " + i + " is " + v);
            }
        }
    }

    static void checkBlockSize(int blockSize) {
        if (blockSize < 32 || blockSize > 4096 || Integer.bitCount(blockSize) != 1) {
            throw new IllegalArgumentException("NF4 block size must be a power of two in [32, 4096], got " + blockSize);
        }
    }

    private static void checkDtypeName(String dtype) {
        if (!List.of("float32", "bfloat16", "float16").contains(dtype)) {
            throw new IllegalArgumentException("NF4 original dtype must be float32, bfloat16 or float16, got '" + dtype + "'");
        }
    }

    public long[] shape() { return shape.clone(); }
    public long numel() { return packedCount(shape); }
    public int blockSize() { return blockSize; }
    public boolean doubleQuant() { return qabsmax != null; }
    public String dtype() { return dtype; }
    /** The packed codes, U8 [(n + 1) / 2]. */
    public Tensor packed() { return packed; }
    /** Offset subtracted before the second quantization level (0 without double quantization). */
    public float offset() { return offset; }
    public long blocks() { return (numel() + blockSize - 1) / blockSize; }

    /** The fp32 block constants: stored ones, or rebuilt bit-exactly from the double-quantized ones. */
    public void blockAbsmax(Backend backend, Tensor out) {
        if (absmax != null) backend.copy(absmax, out);
        else backend.nf4DequantizeAbsmax(qabsmax, absmax2, offset, out);
    }

    /** A new tensor of this shape: F32 or BF16 (as bitsandbytes' dequantize_4bit gives it). */
    public Tensor dequantize(Backend backend, DType outType) {
        try (Tensor am = Tensor.zeros(DType.F32, blocks())) {
            blockAbsmax(backend, am);
            Tensor out = Tensor.zeros(outType, shape);
            try {
                backend.nf4Dequantize(blockSize, packed, am, out);
            } catch (RuntimeException e) {
                out.close();
                throw e;
            }
            return out;
        }
    }

    /** Bytes this weight holds in memory (codes and constants). */
    public long residentBytes() {
        long b = packed.byteSize();
        if (absmax != null) return b + absmax.byteSize();
        return b + qabsmax.byteSize() + absmax2.byteSize() + 4;
    }

    /** Storage bits per weight: 4 plus the constants (≈ 4.5 plain, ≈ 4.127 double-quantized at block size 64). */
    public double bitsPerWeight() {
        return residentBytes() * 8.0 / numel();
    }

    // ---- bitsandbytes state-dict entries ----

    /** Adds this weight's entries under {@code key} (e.g. "fc1.weight"); they reference this tensor's memory, so keep it open until the writer has written. */
    public void writeTo(SafetensorsWriter w, String key, Backend backend) {
        w.put(key, DType.U8, new long[] {packed.numel(), 1}, packed.segment());
        Map<String, Object> state = new LinkedHashMap<>();
        state.put("quant_type", "nf4");
        state.put("blocksize", blockSize);
        state.put("dtype", dtype);
        state.put("shape", shape);
        try (Tensor code = Tensor.zeros(DType.F32, 16); Tensor dyn = Tensor.zeros(DType.F32, 256)) {
            backend.nf4Tables(code, dyn);
            w.putF32(key + ".quant_map", new long[] {16}, code.toFloatArray());
            if (absmax != null) {
                w.put(key + ".absmax", DType.F32, new long[] {absmax.numel()}, absmax.segment());
            } else {
                w.put(key + ".absmax", DType.U8, new long[] {qabsmax.numel()}, qabsmax.segment());
                w.put(key + ".nested_absmax", DType.F32, new long[] {absmax2.numel()}, absmax2.segment());
                w.putF32(key + ".nested_quant_map", new long[] {256}, dyn.toFloatArray());
                state.put("nested_blocksize", NESTED_BLOCK_SIZE);
                state.put("nested_dtype", "float32");
                state.put("nested_offset", offset);
            }
        }
        byte[] json;
        try {
            json = JSON.writeValueAsString(state).getBytes(StandardCharsets.UTF_8);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException("cannot encode the NF4 quant state of '" + key + "'", e);
        }
        w.put(key + STATE_SUFFIX, DType.U8, new long[] {json.length}, json);
    }

    /** Whether {@code f} holds a bitsandbytes NF4 weight under {@code key}. */
    public static boolean isStoredAt(SafetensorsFile f, String key) {
        return f.contains(key + STATE_SUFFIX);
    }

    /** The names of the entries a weight stored under {@code key} may use (for copying the rest of a file). */
    public static List<String> entryNames(String key) {
        return List.of(key, key + ".absmax", key + ".quant_map", key + ".nested_absmax", key + ".nested_quant_map",
                key + STATE_SUFFIX);
    }

    /** Reads and validates the entries under {@code key}; every mismatch is refused naming the entry. */
    public static Nf4Tensor readFrom(SafetensorsFile f, String key, Backend backend) {
        String file = f.path().toString();
        JsonNode st = readState(f, key, file);
        String qt = text(st, "quant_type", key, file);
        if (!qt.equals("nf4")) throw bad(file, key + STATE_SUFFIX, "quant_type '" + qt + "' is not supported (only nf4)");
        int bs = st.path("blocksize").asInt(-1);
        try {
            checkBlockSize(bs);
        } catch (IllegalArgumentException e) {
            throw bad(file, key + STATE_SUFFIX, "blocksize " + st.path("blocksize") + ": " + e.getMessage());
        }
        String dtype = text(st, "dtype", key, file);
        try {
            checkDtypeName(dtype);
        } catch (IllegalArgumentException e) {
            throw bad(file, key + STATE_SUFFIX, e.getMessage());
        }
        JsonNode sh = st.path("shape");
        if (!sh.isArray() || sh.isEmpty()) throw bad(file, key + STATE_SUFFIX, "shape must be a non-empty list, got " + sh);
        long[] shape = new long[sh.size()];
        for (int i = 0; i < shape.length; i++) {
            if (!sh.get(i).canConvertToLong() || sh.get(i).asLong() <= 0) throw bad(file, key + STATE_SUFFIX, "shape " + sh + " must hold positive integers");
            shape[i] = sh.get(i).asLong();
        }
        long n = packedCount(shape);
        long blocks = (n + bs - 1) / bs;
        boolean dq = f.contains(key + ".nested_absmax");
        Tensor packed = null, am = null, q = null, a2 = null;
        try {
            packed = readTensor(f, key, DType.U8, (n + 1) / 2, file);
            float[] code = readF32(f, key + ".quant_map", 16, file);
            try (Tensor c = Tensor.zeros(DType.F32, 16); Tensor d = Tensor.zeros(DType.F32, 256)) {
                backend.nf4Tables(c, d);
                if (!Arrays.equals(code, c.toFloatArray())) throw bad(file, key + ".quant_map", "is not the NF4 codebook");
                if (dq) {
                    float[] dyn = readF32(f, key + ".nested_quant_map", 256, file);
                    if (!Arrays.equals(dyn, d.toFloatArray())) throw bad(file, key + ".nested_quant_map", "is not bitsandbytes' dynamic 8-bit map");
                }
            }
            if (!dq) {
                if (f.contains(key + ".nested_quant_map")) throw bad(file, key + ".nested_quant_map", "present without " + key + ".nested_absmax");
                am = readTensor(f, key + ".absmax", DType.F32, blocks, file);
                return new Nf4Tensor(shape, bs, dtype, packed, am, null, null, 0f);
            }
            int nbs = st.path("nested_blocksize").asInt(-1);
            if (nbs != NESTED_BLOCK_SIZE) throw bad(file, key + STATE_SUFFIX, "nested_blocksize " + st.path("nested_blocksize") + " is not supported (only 256)");
            JsonNode off = st.path("nested_offset");
            if (!off.isNumber() || !Float.isFinite(off.floatValue())) throw bad(file, key + STATE_SUFFIX, "nested_offset must be a finite number, got " + off);
            q = readTensor(f, key + ".absmax", DType.U8, blocks, file);
            a2 = readTensor(f, key + ".nested_absmax", DType.F32, (blocks + NESTED_BLOCK_SIZE - 1) / NESTED_BLOCK_SIZE, file);
            return new Nf4Tensor(shape, bs, dtype, packed, null, q, a2, off.floatValue());
        } catch (RuntimeException e) {
            for (Tensor t : new Tensor[] {packed, am, q, a2}) if (t != null) t.close();
            throw e;
        }
    }

    private static JsonNode readState(SafetensorsFile f, String key, String file) {
        String name = key + STATE_SUFFIX;
        if (!f.contains(name)) throw bad(file, name, "is missing");
        if (f.entry(name).dtype() != DType.U8) throw bad(file, name, "must be U8, got " + f.entry(name).dtype());
        try {
            JsonNode n = JSON.readTree(new String(f.bytes(name), StandardCharsets.UTF_8));
            if (n == null || !n.isObject()) throw bad(file, name, "is not a JSON object");
            return n;
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw bad(file, name, "is not valid JSON: " + e.getOriginalMessage());
        }
    }

    private static String text(JsonNode st, String field, String key, String file) {
        JsonNode v = st.path(field);
        if (!v.isTextual()) throw bad(file, key + STATE_SUFFIX, "field '" + field + "' must be a string, got " + v);
        return v.asText();
    }

    private static Tensor readTensor(SafetensorsFile f, String name, DType dtype, long numel, String file) {
        if (!f.contains(name)) throw bad(file, name, "is missing");
        var e = f.entry(name);
        if (e.dtype() != dtype || e.numel() != numel) {
            throw bad(file, name, "must be " + dtype + " with " + numel + " elements, got " + e.dtype() + Arrays.toString(e.shape()));
        }
        Tensor t = Tensor.zeros(dtype, numel);
        MemorySegment.copy(f.data(name), 0, t.segment(), 0, t.byteSize());
        return t;
    }

    private static float[] readF32(SafetensorsFile f, String name, int numel, String file) {
        if (!f.contains(name)) throw bad(file, name, "is missing");
        var e = f.entry(name);
        if (e.dtype() != DType.F32 || e.numel() != numel) {
            throw bad(file, name, "must be F32 with " + numel + " elements, got " + e.dtype() + Arrays.toString(e.shape()));
        }
        return f.readF32(name);
    }

    private static IllegalArgumentException bad(String file, String entry, String what) {
        return new IllegalArgumentException(file + ": NF4 entry '" + entry + "' " + what);
    }

    private static long packedCount(long[] shape) {
        long n = 1;
        for (long d : shape) n = Math.multiplyExact(n, d);
        return n;
    }

    @Override
    public void close() {
        for (Tensor t : new Tensor[] {packed, absmax, qabsmax, absmax2}) if (t != null) t.close();
    }

    @Override
    public String toString() {
        return "Nf4Tensor(" + Arrays.toString(shape) + ", block " + blockSize + (doubleQuant() ? ", double-quantized" : "") + ")";
    }
}
