package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.bindings.Peft4j;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * NF4 (docs/algorithms.md §7): the tables and the quantize/dequantize/double-quant kernels bit for
 * bit against bitsandbytes' own vectors (tests/src/test/resources/interop/bnb, bitsandbytes 0.50.2.dev0)
 * and against {@link #refQuantize}, a plain Java transcription of the §7.2 rules, on random and
 * adversarial inputs; the fused matmul and its input gradient against a float64 product with the
 * dequantized weight.
 */
class Nf4Test {
    /** The §7.1 table as the spec prints it. */
    static final double[] SPEC_CODE = {-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
        0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0};

    static final float[] CODE = tables()[0];
    static final float[] DYN = tables()[1];

    static float[][] tables() {
        try (Tensor c = Tensor.zeros(DType.F32, 16); Tensor d = Tensor.zeros(DType.F32, 256)) {
            Backend.cpu().nf4Tables(c, d);
            return new float[][] {c.toFloatArray(), d.toFloatArray()};
        }
    }

    // ---- the float reference of §7.2 / §7.3 (Java float arithmetic is IEEE fp32, no contraction) ----

    static float mid(int k) {
        return (CODE[k] + CODE[k + 1]) / 2f;
    }

    static int index(float x) {
        int q = 0;
        for (int k = 0; k < 15; k++) if (x > mid(k)) q++;
        return q;
    }

    /** {codes (one per element, padded with 7 to even length), absmax} as §7.2 prescribes. */
    static Object[] refQuantize(float[] x, int bs) {
        int n = x.length, blocks = (n + bs - 1) / bs, full = n / bs;
        int[] codes = new int[n + (n & 1)];
        float[] absmax = new float[blocks];
        for (int b = 0; b < blocks; b++) {
            int b0 = b * bs, len = Math.min(bs, n - b0);
            float m = 0;
            for (int j = 0; j < len; j++) m = Math.max(m, Math.abs(x[b0 + j]));
            float cl = Math.max(m, 1e-38f);
            boolean partial = b >= full;
            absmax[b] = partial ? cl : m;
            float inv = 1f / cl;
            for (int j = 0; j < len; j++) {
                float s = partial ? x[b0 + j] / cl : x[b0 + j] * inv;
                codes[b0 + j] = index(Math.max(-1f, Math.min(1f, s)));
            }
        }
        if ((n & 1) == 1) codes[n] = 7;
        return new Object[] {codes, absmax};
    }

    static byte[] pack(int[] codes) {
        byte[] p = new byte[codes.length / 2];
        for (int j = 0; j < p.length; j++) p[j] = (byte) ((codes[2 * j] << 4) | codes[2 * j + 1]);
        return p;
    }

    static float[] refDequantize(int[] codes, float[] absmax, int n, int bs) {
        float[] out = new float[n];
        for (int i = 0; i < n; i++) out[i] = CODE[codes[i]] * absmax[i / bs];
        return out;
    }

    /** Runs the kernels; returns {packed bytes, absmax, dequantized}. */
    static Object[] nativeRoundTrip(float[] x, int bs) {
        int n = x.length, blocks = (n + bs - 1) / bs;
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, n), packed = s.poisonedBytes((n + 1) / 2), am = s.poisoned(blocks), out = s.poisoned(n);
            Backend.cpu().nf4Quantize(bs, tx, packed, am);
            Backend.cpu().nf4Dequantize(bs, packed, am, out);
            return new Object[] {MemorySegments.bytes(packed), am.toFloatArray(), out.toFloatArray()};
        }
    }

    static void assertMatchesReference(String label, float[] x, int bs) {
        Object[] ref = refQuantize(x, bs);
        int[] codes = (int[]) ref[0];
        float[] absmax = (float[]) ref[1];
        Object[] got = nativeRoundTrip(x, bs);
        byte[] want = pack(codes);
        byte[] gotPacked = (byte[]) got[0];
        for (int j = 0; j < want.length; j++) {
            if (want[j] != gotPacked[j]) {
                throw new AssertionError(label + ": packed byte " + j + " = 0x" + Integer.toHexString(gotPacked[j] & 0xff)
                        + ", reference 0x" + Integer.toHexString(want[j] & 0xff) + " (elements " + 2 * j + ", " + (2 * j + 1)
                        + ": " + x[2 * j] + (2 * j + 1 < x.length ? ", " + x[2 * j + 1] : "") + ")");
            }
        }
        assertBits(label, "absmax", (float[]) got[1], absmax);
        assertBits(label, "dequantized", (float[]) got[2], refDequantize(codes, absmax, x.length, bs));
    }

    // ---- tables ----

    @Test
    void codebookIsTheSpecTableAndBitsandbytesFile() {
        float[] file = readF32("nf4_codebook.f32");
        assertBits("codebook", "vs bitsandbytes' quant_map", CODE, file);
        for (int k = 0; k < 16; k++) assertEquals((float) SPEC_CODE[k], CODE[k], "code[" + k + "]");
        assertEquals(0f, CODE[7]);
        for (int k = 0; k < 15; k++) assertTrue(CODE[k] < mid(k) && mid(k) < CODE[k + 1], "midpoint " + k + " lies between its codes");
    }

    /** A value exactly on an fp32 boundary goes to the lower code; the next float up to the upper one. */
    @Test
    void boundariesAreTheFp32MidpointsAndTiesGoLow() {
        int bs = 64;
        float[] x = new float[bs];
        x[0] = 1f;   // absmax 1: the reciprocal is exact, so scaled values are the inputs themselves
        for (int k = 0; k < 15; k++) {
            x[1 + 2 * k] = mid(k);
            x[2 + 2 * k] = Math.nextUp(mid(k));
        }
        x[31] = -1f;
        Object[] got = nativeRoundTrip(x, bs);
        byte[] p = (byte[]) got[0];
        for (int k = 0; k < 15; k++) {
            assertEquals(k, code(p, 1 + 2 * k), "value on boundary " + k + " (" + mid(k) + ")");
            assertEquals(k + 1, code(p, 2 + 2 * k), "value just above boundary " + k);
        }
        assertEquals(15, code(p, 0));
        assertEquals(0, code(p, 31));
        // Where "nearest code, ties low" by distance would differ from the fp32 boundaries (§7.2).
        int differ = 0;
        for (int k = 0; k < 15; k++) {
            double exact = (CODE[k] + (double) CODE[k + 1]) / 2;
            if (mid(k) != exact) differ++;
        }
        assertEquals(9, differ, "boundaries that are not exact midpoints once rounded to fp32");
    }

    static int code(byte[] packed, int i) {
        int b = packed[i >> 1] & 0xff;
        return (i & 1) == 0 ? b >> 4 : b & 15;
    }

    @Test
    void packingPutsTheFirstElementInTheHighNibbleAndPadsWith7() {
        Object[] got = nativeRoundTrip(new float[] {1f, -1f, 0.5f}, 64);
        byte[] p = (byte[]) got[0];
        assertEquals(2, p.length);
        assertEquals(0xF0, p[0] & 0xff);
        assertEquals((index(0.5f) << 4) | 7, p[1] & 0xff);
    }

    @Test
    void dynamicMapIsTheConstructionOfSection73() {
        assertBits("dynamic map", "vs bitsandbytes' nested_quant_map", DYN, readF32("dynamic_map.f32"));
        // §7.3, in float64: for i = 0..6, 2^i means of linspace(0.1, 1, 2^i + 1), times ±10^(i−6); 0 and 1.
        List<Double> v = new ArrayList<>();
        for (int i = 0; i < 7; i++) {
            int pts = (1 << i) + 1;
            for (int j = 0; j + 1 < pts; j++) {
                double a = 0.1 + 0.9 * j / (pts - 1), b = 0.1 + 0.9 * (j + 1) / (pts - 1);
                double m = (a + b) / 2 * Math.pow(10, i - 6);
                v.add(m);
                v.add(-m);
            }
        }
        v.add(0.0);
        v.add(1.0);
        double[] ref = v.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        assertEquals(256, ref.length);
        for (int k = 0; k < 256; k++) {
            assertTrue(Math.abs(DYN[k] - ref[k]) <= 1e-7, "dyn[" + k + "] = " + DYN[k] + ", construction " + ref[k]);
            if (k > 0) assertTrue(DYN[k] > DYN[k - 1], "dyn is strictly increasing at " + k);
        }
        assertEquals(0f, DYN[127]);
        assertEquals(1f, DYN[255]);
        assertTrue(DYN[0] > -1f, "the map's most negative value is above -1 (" + DYN[0] + ")");
    }

    // ---- bitsandbytes' own vectors ----

    @Test
    void bitsandbytesVectorsWithoutDoubleQuant() {
        String dir = "c_normal_257x33_bs64/";
        float[] x = readF32(dir + "input.f32");
        assertEquals(257 * 33, x.length);
        Object[] got = nativeRoundTrip(x, 64);
        assertArrayEquals(readBytes(dir + "codes.u8"), (byte[]) got[0], "packed codes vs bitsandbytes");
        assertBits("bnb", "absmax", (float[]) got[1], readF32(dir + "absmax.f32"));
        assertBits("bnb", "dequantized", (float[]) got[2], readF32(dir + "dequant.f32"));
        assertMatchesReference("bnb input vs §7.2 reference", x, 64);
    }

    @Test
    void bitsandbytesVectorsWithDoubleQuant() {
        String dir = "c_normal_257x33_bs64_dq/";
        float[] x = readF32(dir + "input.f32");
        Object[] got = nativeRoundTrip(x, 64);
        assertArrayEquals(readBytes(dir + "codes.u8"), (byte[]) got[0], "packed codes vs bitsandbytes");
        float[] absmax = (float[]) got[1];
        assertBits("bnb dq", "absmax before double quant", absmax, readF32(dir + "absmax_pre_dq.f32"));
        try (Scope s = new Scope()) {
            Tensor am = s.of(absmax, absmax.length), q = s.poisonedBytes(absmax.length), a2 = s.poisoned(1);
            float off = Backend.cpu().nf4DoubleQuantize(am, q, a2);
            assertArrayEquals(readBytes(dir + "qabsmax.u8"), MemorySegments.bytes(q), "qabsmax vs bitsandbytes");
            assertBits("bnb dq", "absmax2", a2.toFloatArray(), readF32(dir + "absmax2.f32"));
            assertBits("bnb dq", "offset", new float[] {off}, readF32(dir + "offset.f32"));
            Tensor back = s.poisoned(absmax.length);
            Backend.cpu().nf4DequantizeAbsmax(q, a2, off, back);
            assertBits("bnb dq", "absmax rebuilt", back.toFloatArray(), readF32(dir + "absmax_dq.f32"));
            Tensor packed = s.keep(Tensor.zeros(DType.U8, (x.length + 1) / 2));
            packed.segment().copyFrom(MemorySegment.ofArray((byte[]) got[0]));
            Tensor out = s.poisoned(x.length);
            Backend.cpu().nf4Dequantize(64, packed, back, out);
            assertBits("bnb dq", "dequantized", out.toFloatArray(), readF32(dir + "dequant.f32"));
            // The same in Java: dyn[q]·absmax2 + offset, then code·absmax.
            byte[] qb = MemorySegments.bytes(q);
            float[] rebuilt = new float[absmax.length];
            for (int i = 0; i < rebuilt.length; i++) rebuilt[i] = DYN[qb[i] & 0xff] * a2.toFloatArray()[i / 256] + off;
            assertBits("bnb dq", "absmax rebuilt (Java)", rebuilt, readF32(dir + "absmax_dq.f32"));
        }
    }

    // ---- random and adversarial inputs against the reference ----

    static Stream<Arguments> randomCases() {
        List<Arguments> out = new ArrayList<>();
        for (int bs : new int[] {32, 64, 256, 4096}) {
            for (int n : new int[] {1, 7, 33, 63, 64, 65, 257, 8481, 129001}) out.add(Arguments.of(n, bs));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "n={0} blocksize={1}")
    @MethodSource("randomCases")
    void randomInputsMatchTheReference(int n, int bs) {
        Case c = newCase("nf4 random n=" + n + " bs=" + bs);
        float[] x = c.normal(n, 0.02);
        assertMatchesReference(c.label(), x, bs);
    }

    @ParameterizedTest(name = "blocksize={0}")
    @ValueSource(ints = {32, 64, 128})
    void adversarialBlocksMatchTheReference(int bs) {
        Case c = newCase("nf4 adversarial bs=" + bs);
        List<float[]> blocks = new ArrayList<>();
        blocks.add(new float[bs]);                                   // all +0
        float[] negZero = new float[bs];
        Arrays.fill(negZero, -0f);
        blocks.add(negZero);                                          // all −0
        float[] onMid = new float[bs];                               // values exactly on the boundaries, absmax 2^-3
        for (int j = 0; j < bs; j++) onMid[j] = mid(j % 15) * 0.125f;
        onMid[bs - 1] = -0.125f;
        blocks.add(onMid);
        float[] pm = c.normal(bs, 1);                                 // ±absmax itself
        pm[3] = 4f;
        pm[5] = -4f;
        blocks.add(pm);
        float[] sub = c.normal(bs, 1);                                // subnormal and below the 1e-38 floor
        for (int j = 0; j < bs; j++) sub[j] *= 1e-39f;
        blocks.add(sub);
        float[] tiny = new float[bs];
        tiny[7] = Float.MIN_VALUE;
        blocks.add(tiny);
        float[] mixed = c.normal(bs, 3);                              // reciprocal vs division differ somewhere
        blocks.add(mixed);
        int total = blocks.size() * bs;
        for (int tail : new int[] {0, 1, 5, bs - 1}) {
            float[] x = new float[total + tail];
            for (int b = 0; b < blocks.size(); b++) System.arraycopy(blocks.get(b), 0, x, b * bs, bs);
            float[] t = c.normal(tail, 1e-3);
            System.arraycopy(t, 0, x, total, tail);
            assertMatchesReference(c.label() + " tail " + tail, x, bs);
            if (tail > 0) {                                          // an all-zero partial last block stores 1e-38
                Arrays.fill(x, total, x.length, 0f);
                assertMatchesReference(c.label() + " zero tail " + tail, x, bs);
                float[] am = (float[]) nativeRoundTrip(x, bs)[1];
                assertEquals(1e-38f, am[am.length - 1], "all-zero last partial block's absmax");
                assertEquals(0f, am[0], "all-zero full block's absmax");
                assertEquals(0, Float.floatToRawIntBits(((float[]) nativeRoundTrip(x, bs)[2])[bs]), "−0 dequantizes to +0");
            }
        }
        // The 1e-38 floor: a subnormal full block quantizes against 1e-38 but keeps its real absmax.
        float[] am = (float[]) nativeRoundTrip(blocks.get(4), bs)[1];
        assertTrue(am[0] < 1e-38f && am[0] > 0, "subnormal block's stored absmax " + am[0]);
    }

    @Test
    void divisionInThePartialBlockDiffersFromTheReciprocalSomewhere() {
        // Guards the reference itself: the two scalings must disagree on some input, or the partial-block
        // rule above would go untested.
        Case c = newCase("nf4 recip vs div");
        int found = 0;
        for (int i = 0; i < 100000 && found == 0; i++) {
            float a = (float) (0.5 + c.rnd.nextDouble()), v = (float) (c.rnd.nextDouble() * a);
            if (v / a != v * (1f / a)) found++;
        }
        assertTrue(found > 0);
    }

    @Test
    void doubleQuantMatchesTheReferenceOnManyBlocks() {
        Case c = newCase("nf4 double quant");
        int nb = 1000;   // four 256-blocks, the last partial
        float[] am = c.uniform(nb, 0.001, 0.1);
        am[300] = am[301];   // a tie in distance is possible only between equal values; keep one duplicate
        try (Scope s = new Scope()) {
            Tensor t = s.of(am, nb), q = s.poisonedBytes(nb), a2 = s.poisoned(4), back = s.poisoned(nb);
            float off = Backend.cpu().nf4DoubleQuantize(t, q, a2);
            double sum = 0;
            for (float v : am) sum += v;
            assertEquals((float) (sum / nb), off, "offset = mean");
            byte[] qb = MemorySegments.bytes(q);
            float[] a2got = a2.toFloatArray();
            for (int b = 0; b < 4; b++) {
                float m = 0;
                for (int j = b * 256; j < Math.min(nb, b * 256 + 256); j++) m = Math.max(m, Math.abs(am[j] - off));
                assertEquals(m, a2got[b], "absmax2[" + b + "]");
                float inv = 1f / m;
                for (int j = b * 256; j < Math.min(nb, b * 256 + 256); j++) {
                    float sc = Math.max(-1f, Math.min(1f, (am[j] - off) * inv));
                    int best = 0;
                    for (int k = 1; k < 256; k++) if (Math.abs(sc - DYN[k]) < Math.abs(sc - DYN[best])) best = k;
                    assertEquals(best, qb[j] & 0xff, "qabsmax[" + j + "]");
                }
            }
            Backend.cpu().nf4DequantizeAbsmax(q, a2, off, back);
            float[] rebuilt = back.toFloatArray();
            for (int i = 0; i < nb; i++) {
                assertEquals(DYN[qb[i] & 0xff] * a2got[i / 256] + off, rebuilt[i], "absmax rebuilt [" + i + "]");
                assertTrue(Math.abs(rebuilt[i] - am[i]) <= a2got[i / 256] * 0.02, "double quant keeps absmax close at " + i);
            }
        }
    }

    @Test
    void bf16DequantizeIsBitsandbytesBfloat16Output() {
        Case c = newCase("nf4 bf16");
        int n = 1001, bs = 64;
        float[] x = c.normal(n, 0.05);
        Object[] ref = refQuantize(x, bs);
        int[] codes = (int[]) ref[0];
        float[] absmax = (float[]) ref[1];
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, n), packed = s.poisonedBytes((n + 1) / 2), am = s.poisoned(absmax.length);
            Backend.cpu().nf4Quantize(bs, tx, packed, am);
            Tensor out = s.zeros(DType.BF16, n);
            out.segment().fill((byte) 0x7f);
            Backend.cpu().nf4Dequantize(bs, packed, am, out);
            short[] got = out.segment().toArray(ValueLayout.JAVA_SHORT);
            for (int i = 0; i < n; i++) {
                float want = bf16(bf16(CODE[codes[i]]) * absmax[i / bs]);
                assertEquals(Float.floatToRawIntBits(want) >>> 16, got[i] & 0xffff, "bf16 element " + i);
            }
        }
    }

    /** Round to nearest even at bf16 precision. */
    static float bf16(float f) {
        int u = Float.floatToRawIntBits(f);
        return Float.intBitsToFloat(((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16);
    }

    // ---- fused matmul and its input gradient ----

    static Stream<Arguments> matmulCases() {
        List<Arguments> out = new ArrayList<>();
        int[][] shapes = {{1, 1}, {33, 7}, {7, 33}, {257, 33}, {129, 255}, {64, 1000}};
        for (int t : new int[] {1, 5, 16, 17, 63}) {
            for (int[] sh : shapes) out.add(Arguments.of(t, sh[0], sh[1], sh[0] * sh[1] > 4000 ? 64 : 32));
        }
        out.add(Arguments.of(3, 4096, 301, 4096));     // d_in < block: blocks span rows
        out.add(Arguments.of(40, 1025, 1031, 128));    // several sgemm tiles (1M floats / 1025 columns = 1023 rows)
        return out.stream();
    }

    @ParameterizedTest(name = "t={0} d_in={1} d_out={2} blocksize={3}")
    @MethodSource("matmulCases")
    void fusedMatmulAndInputGradientMatchDequantizeThenGemm(int t, int dIn, int dOut, int bs) {
        Case c = newCase("nf4 matmul t=" + t + " d_in=" + dIn + " d_out=" + dOut + " bs=" + bs);
        float[] w = c.normal(dOut * dIn, 0.05), x = c.normal(t * dIn), g = c.normal(t * dOut);
        Backend be = Backend.cpu();
        long ws = be.nf4Workspace(t, dIn, dOut);
        assertEquals(t <= 16, ws == 0, "workspace only for t > 16");
        try (Scope s = new Scope()) {
            int n = dOut * dIn, blocks = (n + bs - 1) / bs;
            Tensor tw = s.of(w, dOut, dIn), packed = s.poisonedBytes((n + 1) / 2), am = s.poisoned(blocks);
            be.nf4Quantize(bs, tw, packed, am);
            Tensor wdq = s.poisoned(dOut, dIn);
            be.nf4Dequantize(bs, packed, am, wdq);
            double[] wd = toDouble(wdq.toFloatArray());
            Tensor work = ws == 0 ? null : s.poisoned(ws);
            Tensor y = s.poisoned(t, dOut), dx = s.poisoned(t, dIn);
            be.nf4Matmul(bs, s.of(x, t, dIn), packed, am, work, y);
            assertNormwise(c, "y", y.toFloatArray(), Reference.gemm(false, true, t, dOut, dIn, 1, toDouble(x), wd, 0, null), gemmTol(dIn));
            if (work != null) work.copyFrom(nanArray(ws));
            be.nf4MatmulDx(bs, s.of(g, t, dOut), packed, am, work, dx);
            assertNormwise(c, "dx", dx.toFloatArray(), Reference.gemm(false, false, t, dIn, dOut, 1, toDouble(g), wd, 0, null), gemmTol(dOut));
        }
    }

    static float[] nanArray(long n) {
        float[] a = new float[Math.toIntExact(n)];
        Arrays.fill(a, Float.NaN);
        return a;
    }

    /** d_in = 0: y is all zeros; d_out = 0: dx is all zeros (both row paths). */
    @ParameterizedTest(name = "t={0}")
    @ValueSource(ints = {3, 20})
    void emptyInnerDimensionsGiveZeros(int t) {
        Backend be = Backend.cpu();
        try (Scope s = new Scope()) {
            Tensor packed = s.zeros(DType.U8, 0), am = s.zeros(DType.F32, 0);
            Tensor y = s.poisoned(t, 4), dx = s.poisoned(t, 5);
            be.nf4Matmul(64, s.zeros(DType.F32, t, 0), packed, am, null, y);
            be.nf4MatmulDx(64, s.zeros(DType.F32, t, 0), packed, am, null, dx);
            for (float v : y.toFloatArray()) assertEquals(0f, v);
            for (float v : dx.toFloatArray()) assertEquals(0f, v);
        }
    }

    // ---- bad arguments ----

    @Test
    void badArgumentsAreRefusedBeforeTheNativeCall() {
        Backend be = Backend.cpu();
        try (Scope s = new Scope()) {
            Tensor x = s.of(new float[100], 100), packed = s.zeros(DType.U8, 50), am = s.zeros(DType.F32, 2);
            assertMessage(() -> be.nf4Quantize(48, x, packed, am), "power of two in [32, 4096], got 48");
            assertMessage(() -> be.nf4Quantize(16, x, packed, am), "got 16");
            assertMessage(() -> be.nf4Quantize(8192, x, packed, am), "got 8192");
            assertMessage(() -> be.nf4Quantize(64, x, s.zeros(DType.U8, 49), am), "packed");
            assertMessage(() -> be.nf4Quantize(64, x, s.zeros(DType.F32, 50), am), "packed");
            assertMessage(() -> be.nf4Quantize(64, x, packed, s.zeros(DType.F32, 3)), "absmax");
            assertMessage(() -> be.nf4Dequantize(64, packed, am, s.zeros(DType.I32, 100)), "must be F32 or BF16");
            assertMessage(() -> be.nf4DoubleQuantize(s.zeros(DType.F32, 0), s.zeros(DType.U8, 0), s.zeros(DType.F32, 0)), "empty");
            assertMessage(() -> be.nf4DoubleQuantize(am, s.zeros(DType.U8, 3), s.zeros(DType.F32, 1)), "qabsmax");
            assertMessage(() -> be.nf4DequantizeAbsmax(s.zeros(DType.U8, 2), s.zeros(DType.F32, 1), Float.NaN, am), "offset");
            Tensor xt = s.of(new float[17 * 10], 17, 10), y = s.zeros(DType.F32, 17, 10);
            assertMessage(() -> be.nf4Matmul(64, xt, packed, am, null, y), "workspace");
            assertMessage(() -> be.nf4Matmul(64, xt, packed, am, s.zeros(DType.F32, 10), y), "workspace");
            assertMessage(() -> be.nf4Matmul(64, xt, packed, am, null, s.zeros(DType.F32, 16, 10)), "rows of x");
            assertMessage(() -> be.nf4MatmulDx(64, s.of(new float[30], 3, 10), packed, s.zeros(DType.F32, 1), null,
                    s.zeros(DType.F32, 3, 10)), "absmax");
        }
    }

    @Test
    void rawNativeCallsRejectBadSizesWithoutWriting() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ctx = a.allocate(ValueLayout.ADDRESS);
            assertEquals(0, Peft4j.p4j_ctx_create(1, ctx));
            MemorySegment c = ctx.get(ValueLayout.ADDRESS, 0);
            MemorySegment x = a.allocate(4 * 64), packed = a.allocate(32), am = a.allocate(4);
            packed.fill((byte) 0x5a);
            assertEquals(-1, Peft4j.p4j_nf4_quantize(c, 64, 96, x, packed, am));
            assertTrue(Peft4j.p4j_last_error().reinterpret(4096).getString(0).contains("blocksize (96)"));
            assertEquals(-1, Peft4j.p4j_nf4_quantize(c, -1, 64, x, packed, am));
            assertEquals(-1, Peft4j.p4j_nf4_quantize(c, 64, 64, MemorySegment.NULL, packed, am));
            assertEquals(-1, Peft4j.p4j_nf4_matmul(c, 17, 8, 8, 64, x, packed, am, MemorySegment.NULL, x));
            assertEquals(-1, Peft4j.p4j_nf4_double_quantize(c, 0, am, packed, am, am));
            assertEquals(-1, Peft4j.p4j_nf4_dequantize_absmax(c, 1, packed, am, Float.POSITIVE_INFINITY, am));
            assertEquals(-1, Peft4j.p4j_nf4_workspace(-1, 1, 1, a.allocate(8)));
            for (byte b : packed.toArray(ValueLayout.JAVA_BYTE)) assertEquals((byte) 0x5a, b);
            assertEquals(0, Peft4j.p4j_ctx_destroy(c));
        }
    }

    static void assertMessage(org.junit.jupiter.api.function.Executable e, String fragment) {
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, e);
        assertTrue(ex.getMessage().contains(fragment), "message '" + ex.getMessage() + "' should contain '" + fragment + "'");
    }

    // ---- fixture files ----

    static Path fixture(String name) {
        try {
            return Path.of(Nf4Test.class.getResource("/interop/bnb/" + name).toURI());
        } catch (URISyntaxException | NullPointerException e) {
            throw new IllegalStateException("missing test resource interop/bnb/" + name, e);
        }
    }

    static byte[] readBytes(String name) {
        try {
            return Files.readAllBytes(fixture(name));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static float[] readF32(String name) {
        ByteBuffer b = ByteBuffer.wrap(readBytes(name)).order(ByteOrder.LITTLE_ENDIAN);
        float[] f = new float[b.remaining() / 4];
        b.asFloatBuffer().get(f);
        return f;
    }
}
