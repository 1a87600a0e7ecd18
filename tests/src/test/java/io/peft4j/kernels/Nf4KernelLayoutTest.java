package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.bindings.Peft4j;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The NF4 kernel layout (peft4j.h, p4j_nf4_rp_size) and the product on it: every code and scale
 * where the header says, dequantizing from it gives bitsandbytes' values bit for bit, and
 * x·dequant(W)ᵀ against a float64 product with the dequantized weight (block sizes 32…4096, d_in a
 * multiple of 128 and not, d_out not a multiple of 16, t = 1, 3, 5, 16, sizes that use both threads).
 */
class Nf4KernelLayoutTest {

    static Stream<Arguments> shapes() {
        List<Arguments> out = new ArrayList<>();
        // {d_in, d_out, blocksize}: d_in = 8·odd (segment 8), 40, 96, 200 (segment 8 < block),
        // multiples of 128, 4096 with one block per row, d_in < block (rows share blocks).
        int[][] shapes = {{8, 1, 32}, {40, 17, 32}, {96, 37, 64}, {200, 33, 128}, {128, 16, 32}, {256, 45, 64},
                {384, 129, 128}, {512, 300, 256}, {1024, 70, 64}, {4096, 5, 4096}, {768, 23, 4096}, {136, 301, 256}};
        for (int[] sh : shapes) out.add(Arguments.of(sh[0], sh[1], sh[2]));
        return out.stream();
    }

    static Stream<Arguments> matmulCases() {
        List<Arguments> out = new ArrayList<>();
        for (int t : new int[] {1, 3, 5, 16}) {
            shapes().forEach(a -> out.add(Arguments.of(t, a.get()[0], a.get()[1], a.get()[2])));
        }
        return out.stream();
    }

    /** W quantized by nf4Quantize, then repacked; returns {packed, absmax, codes, scales}. */
    static Tensor[] quantizedAndRepacked(Scope s, Case c, int dIn, int dOut, int bs) {
        Backend be = Backend.cpu();
        int n = dIn * dOut;
        float[] w = c.normal(n, 0.05);
        for (int i = 0; i < Math.min(bs, n); i++) w[i] = 0f;  // an all-zero block (absmax 0)
        Tensor packed = s.poisonedBytes((n + 1) / 2), am = s.poisoned((n + bs - 1) / bs);
        be.nf4Quantize(bs, s.of(w, dOut, dIn), packed, am);
        long[] size = be.nf4RpSize(bs, dIn, dOut);
        Tensor codes = s.poisonedBytes(size[0]), scales = s.poisoned(size[1]);
        be.nf4Repack(bs, dIn, dOut, packed, am, codes, scales);
        return new Tensor[] {packed, am, codes, scales};
    }

    @ParameterizedTest(name = "d_in={0} d_out={1} blocksize={2}")
    @MethodSource("shapes")
    void codesAndScalesSitWhereTheHeaderSays(int dIn, int dOut, int bs) {
        Case c = newCase("nf4 layout d_in=" + dIn + " d_out=" + dOut + " bs=" + bs);
        try (Scope s = new Scope()) {
            Tensor[] t = quantizedAndRepacked(s, c, dIn, dOut, bs);
            byte[] packed = t[0].segment().toArray(ValueLayout.JAVA_BYTE), codes = t[2].segment().toArray(ValueLayout.JAVA_BYTE);
            float[] am = t[1].toFloatArray(), scales = t[3].toFloatArray();
            int groups = (dOut + 15) / 16, seg = Math.min(bs, Integer.lowestOneBit(dIn)), segs = dIn / seg;
            assertEquals(64L * groups * dIn / 8 + 64, codes.length, "code bytes");
            assertEquals(16L * groups * segs, scales.length, "scale floats");
            for (int o = 0; o < groups * 16; o++) {
                int g = o / 16, l = o % 16;
                for (int col = 0; col < dIn; col++) {
                    int at = 64 * (g * dIn / 8 + col / 8) + 4 * l + (col % 8) / 2;
                    int q = ((codes[at] & 0xff) >> (col % 2 == 0 ? 0 : 4)) & 15;
                    long f = (long) o * dIn + col;
                    int expected = o >= dOut ? 7 : f % 2 == 0 ? (packed[(int) (f / 2)] & 0xff) >> 4 : packed[(int) (f / 2)] & 15;
                    if (q != expected) throw new AssertionError(c.label() + ": code of W[" + o + ", " + col + "] is " + q + ", expected " + expected);
                }
                for (int sg = 0; sg < segs; sg++) {
                    float expected = o >= dOut ? 0f : am[(int) (((long) o * dIn + (long) sg * seg) / bs)];
                    assertEquals(expected, scales[16 * (g * segs + sg) + l], c.label() + ": scale of row " + o + " segment " + sg);
                }
            }
        }
    }

    @ParameterizedTest(name = "d_in={0} d_out={1} blocksize={2}")
    @MethodSource("shapes")
    void dequantizingTheKernelLayoutGivesBitsandbytesValuesBitForBit(int dIn, int dOut, int bs) {
        Case c = newCase("nf4 layout dequantize d_in=" + dIn + " d_out=" + dOut + " bs=" + bs);
        Backend be = Backend.cpu();
        try (Scope s = new Scope()) {
            Tensor[] t = quantizedAndRepacked(s, c, dIn, dOut, bs);
            Tensor bnb = s.poisoned(dOut, dIn), rp = s.poisoned(dOut, dIn);
            be.nf4Dequantize(bs, t[0], t[1], bnb);
            be.nf4RpDequantize(bs, t[2], t[3], rp);
            assertBits(c.label(), "dequant(W) from the kernel layout", rp.toFloatArray(), bnb.toFloatArray());
        }
    }

    @ParameterizedTest(name = "t={0} d_in={1} d_out={2} blocksize={3}")
    @MethodSource("matmulCases")
    void matmulOnTheKernelLayoutMatchesDequantizeThenGemm(int t, int dIn, int dOut, int bs) {
        Case c = newCase("nf4 rp matmul t=" + t + " d_in=" + dIn + " d_out=" + dOut + " bs=" + bs);
        Backend be = Backend.cpu();
        try (Scope s = new Scope()) {
            Tensor[] w = quantizedAndRepacked(s, c, dIn, dOut, bs);
            Tensor wdq = s.poisoned(dOut, dIn);
            be.nf4Dequantize(bs, w[0], w[1], wdq);
            float[] x = c.normal(t * dIn);
            Tensor y = s.poisoned(t, dOut);
            long ws = be.nf4RpWorkspace(t, dIn);
            be.nf4MatmulRp(bs, s.of(x, t, dIn), w[2], w[3], ws == 0 ? null : s.poisonedBytes(ws), y);
            double[] ref = Reference.gemm(false, true, t, dOut, dIn, 1, toDouble(x), toDouble(wdq.toFloatArray()), 0, null);
            assertNormwise(c, "y", y.toFloatArray(), ref, gemmTol(dIn));
        }
    }

    @Test
    void emptyShapesAreAccepted() {
        Backend be = Backend.cpu();
        try (Scope s = new Scope()) {
            Case c = newCase("nf4 rp empty");
            Tensor[] w = quantizedAndRepacked(s, c, 64, 0, 64);
            Tensor y = s.poisoned(3, 0);
            be.nf4MatmulRp(64, s.of(c.normal(3 * 64), 3, 64), w[2], w[3], null, y);
            Tensor[] w2 = quantizedAndRepacked(s, c, 64, 5, 64);
            be.nf4MatmulRp(64, s.zeros(DType.F32, 0, 64), w2[2], w2[3], null, s.poisoned(0, 5));
            be.nf4MatmulRp(64, s.of(c.normal(64), 1, 64), w[2], w[3], s.poisonedBytes(be.nf4RpWorkspace(1, 64)), s.poisoned(1, 0));
            assertEquals(64, be.nf4RpSize(64, 64, 0)[0], "d_out = 0: only the 64 bytes read past the end");
        }
    }

    @Test
    void badArgumentsAreRefusedBeforeTheNativeCall() {
        Backend be = Backend.cpu();
        try (Scope s = new Scope()) {
            assertMessage(() -> be.nf4RpSize(64, 12, 4), "d_in (12) must be a positive multiple of 8");
            assertMessage(() -> be.nf4RpSize(64, 0, 4), "d_in (0)");
            assertMessage(() -> be.nf4RpSize(48, 64, 4), "power of two in [32, 4096], got 48");
            assertMessage(() -> be.nf4RpSize(64, 64, -1), "d_out (-1)");
            long[] size = be.nf4RpSize(64, 64, 20);
            Tensor packed = s.zeros(DType.U8, 640), am = s.zeros(DType.F32, 20);
            Tensor codes = s.zeros(DType.U8, size[0]), scales = s.zeros(DType.F32, size[1]);
            assertMessage(() -> be.nf4Repack(64, 64, 20, s.zeros(DType.U8, 639), am, codes, scales), "packed");
            assertMessage(() -> be.nf4Repack(64, 64, 20, packed, am, s.zeros(DType.U8, size[0] - 1), scales), "codes");
            assertMessage(() -> be.nf4Repack(64, 64, 20, packed, am, codes, s.zeros(DType.F32, size[1] + 1)), "scales");
            assertMessage(() -> be.nf4Repack(64, 64, 20, packed, am, codes, s.zeros(DType.I32, size[1])), "scales");
            Tensor x = s.zeros(DType.F32, 2, 64);
            assertMessage(() -> be.nf4MatmulRp(64, x, codes, scales, null, s.zeros(DType.F32, 3, 20)), "rows of x");
            assertMessage(() -> be.nf4MatmulRp(64, x, codes, scales, null, s.zeros(DType.F32, 2, 40)), "codes");
            assertMessage(() -> be.nf4MatmulRp(64, s.zeros(DType.F32, 2, 60), codes, scales, null, s.zeros(DType.F32, 2, 20)), "d_in (60)");
            assertEquals(0, be.nf4RpWorkspace(2, 64), "t = 2: no workspace");
            long ws = be.nf4RpWorkspace(1, 64);
            assertTrue(ws >= 8 * 384, "t = 1: 48 bytes of tables per column, got " + ws);
            assertMessage(() -> be.nf4RpWorkspace(-1, 64), "t (-1)");
            assertMessage(() -> be.nf4RpWorkspace(1, 12), "d_in (12)");
            Tensor x1 = s.zeros(DType.F32, 1, 64), y1 = s.zeros(DType.F32, 1, 20);
            assertMessage(() -> be.nf4MatmulRp(64, x1, codes, scales, null, y1), "workspace");
            assertMessage(() -> be.nf4MatmulRp(64, x1, codes, scales, s.zeros(DType.U8, ws - 1), y1), "at least " + ws);
            assertMessage(() -> be.nf4MatmulRp(64, x1, codes, scales, s.zeros(DType.F32, ws), y1), "must be U8");
            assertMessage(() -> be.nf4RpDequantize(64, codes, scales, s.zeros(DType.F32, 20, 72)), "codes");
        }
    }

    @Test
    void rawNativeCallsRejectBadSizesWithoutWriting() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ctx = a.allocate(ValueLayout.ADDRESS);
            assertEquals(0, Peft4j.p4j_ctx_create(1, ctx));
            MemorySegment c = ctx.get(ValueLayout.ADDRESS, 0);
            MemorySegment x = a.allocate(4 * 64), codes = a.allocate(64 * 8 + 64), scales = a.allocate(4 * 16), y = a.allocate(4 * 16);
            MemorySegment ws = a.allocate(8 * 384 + 96);
            y.fill((byte) 0x5a);
            assertEquals(-1, Peft4j.p4j_nf4_matmul_rp(c, 1, 12, 16, 64, x, codes, scales, ws, y));
            assertTrue(Peft4j.p4j_last_error().reinterpret(4096).getString(0).contains("d_in (12)"));
            assertEquals(-1, Peft4j.p4j_nf4_matmul_rp(c, 1, 64, 16, 96, x, codes, scales, ws, y));
            assertEquals(-1, Peft4j.p4j_nf4_matmul_rp(c, -1, 64, 16, 64, x, codes, scales, ws, y));
            assertEquals(-1, Peft4j.p4j_nf4_matmul_rp(c, 1, 64, 16, 64, x, MemorySegment.NULL, scales, ws, y));
            assertEquals(-1, Peft4j.p4j_nf4_matmul_rp(c, 1, 64, 16, 64, x, codes, MemorySegment.NULL, ws, y));
            assertEquals(-1, Peft4j.p4j_nf4_matmul_rp(c, 1, 64, 16, 64, x, codes, scales, ws, MemorySegment.NULL));
            assertEquals(-1, Peft4j.p4j_nf4_matmul_rp(c, 1, 64, 16, 64, x, codes, scales, MemorySegment.NULL, y));
            assertTrue(Peft4j.p4j_last_error().reinterpret(4096).getString(0).contains("workspace"));
            assertEquals(-1, Peft4j.p4j_nf4_rp_workspace(1, 12, a.allocate(8)));
            assertEquals(-1, Peft4j.p4j_nf4_rp_workspace(-1, 64, a.allocate(8)));
            assertEquals(-1, Peft4j.p4j_nf4_rp_workspace(1, 64, MemorySegment.NULL));
            assertEquals(-1, Peft4j.p4j_nf4_repack(c, 64, 16, 64, MemorySegment.NULL, scales, codes, scales));
            assertEquals(-1, Peft4j.p4j_nf4_rp_dequantize(c, 64, 16, 64, codes, scales, MemorySegment.NULL));
            assertEquals(-1, Peft4j.p4j_nf4_rp_size(64, 16, 64, MemorySegment.NULL, a.allocate(8)));
            for (byte b : y.toArray(ValueLayout.JAVA_BYTE)) assertEquals((byte) 0x5a, b);
            assertEquals(0, Peft4j.p4j_ctx_destroy(c));
        }
    }

    static void assertMessage(org.junit.jupiter.api.function.Executable e, String fragment) {
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, e);
        assertTrue(ex.getMessage().contains(fragment), "message '" + ex.getMessage() + "' should contain '" + fragment + "'");
    }
}
