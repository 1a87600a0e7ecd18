package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.backend.NativeLoader;
import io.peft4j.bindings.Peft4j;
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
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The fused attention pair against {@link TransformerReference}: forward (out, and the row
 * log-sum-exp lse) and backward (dq, dk, dv, all overwritten: they start NaN) on sequence lengths
 * 1, 2, 17, 33 and head dims 1, 16, 24, 32, with and without the causal mask, with all keys and
 * with a key padding mask (mixed key lengths 1, t and one in between in one batch); t = 130 runs
 * the online softmax over three key blocks of 64, a 64-sequence batch runs on several threads, and
 * t·head_dim above 16384 takes the path that reads k and v in place instead of a transposed stack
 * copy. The reference's gradients pass central differences of its forward.
 */
class AttentionTest {
    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (int t : new int[] {1, 2, 17, 33}) {
            for (int dh : new int[] {1, 16, 24, 32}) {
                for (boolean causal : new boolean[] {false, true}) {
                    out.add(Arguments.of(3, t, 2, dh, causal, false));
                    out.add(Arguments.of(3, t, 2, dh, causal, true));
                }
            }
        }
        out.add(Arguments.of(2, 130, 3, 16, false, false));   // several key blocks
        out.add(Arguments.of(2, 130, 1, 24, true, false));
        out.add(Arguments.of(3, 130, 2, 32, false, true));    // masked: 1, 130 and 2..129 keys over the blocks
        out.add(Arguments.of(3, 130, 1, 24, true, true));
        out.add(Arguments.of(64, 33, 4, 16, false, false));   // many (sequence, head) pairs: several threads
        out.add(Arguments.of(64, 33, 4, 16, true, true));
        out.add(Arguments.of(1, 17, 5, 7, false, false));     // odd head count and size
        out.add(Arguments.of(2, 300, 1, 64, false, false));   // t·head_dim = 19200 > 16384: k and v read in place, not transposed
        out.add(Arguments.of(3, 300, 1, 64, false, true));
        out.add(Arguments.of(1, 257, 1, 64, true, false));    // 16448 > 16384, causal
        return out.stream();
    }

    /** Key lengths of b sequences of t tokens: 1, t, then random in [1, t] (so both ends are in every batch of 2+). */
    static int[] mixedLengths(Case c, int b, int t) {
        int[] lens = new int[b];
        for (int s = 0; s < b; s++) lens[s] = s == 0 ? 1 : s == 1 ? t : 1 + c.rnd.nextInt(t);
        return lens;
    }

    static double tol(int t, int dh) {
        return 8 * chainTol(dh, t);
    }

    @ParameterizedTest(name = "b={0} t={1} heads={2} dh={3} causal={4} masked={5}")
    @MethodSource("cases")
    void forwardAndBackwardMatchTheReference(int b, int t, int heads, int dh, boolean causal, boolean masked) {
        Case c = newCase("attention b=" + b + " t=" + t + " heads=" + heads + " dh=" + dh + " causal=" + causal + " masked=" + masked);
        int n = b * t * heads * dh;
        float scale = (float) (1 / Math.sqrt(dh));
        int[] lens = masked ? mixedLengths(c, b, t) : null;
        float[] q = c.normal(n), k = c.normal(n), v = c.normal(n), g = c.normal(n);
        try (Scope s = new Scope()) {
            Tensor tq = s.of(q, (long) b * t, (long) heads * dh), tk = s.of(k, (long) b * t, (long) heads * dh);
            Tensor tv = s.of(v, (long) b * t, (long) heads * dh), tg = s.of(g, (long) b * t, (long) heads * dh);
            Tensor out = s.poisoned((long) b * t, (long) heads * dh), lse = s.poisoned((long) b * heads, t);
            Backend.cpu().attentionForward(b, heads, scale, causal, lens, tq, tk, tv, out, lse);
            double[][] ref = TransformerReference.attention(b, t, heads, dh, scale, causal, lens, toDouble(q), toDouble(k), toDouble(v));
            assertNormwise(c, "out", out.toFloatArray(), ref[0], tol(t, dh));
            assertNormwise(c, "lse", lse.toFloatArray(), ref[1], tol(t, dh));

            Tensor dq = s.poisoned(tq.shape()), dk = s.poisoned(tq.shape()), dv = s.poisoned(tq.shape());
            Backend.cpu().attentionBackward(b, heads, scale, causal, lens, tq, tk, tv, out, lse, tg, dq, dk, dv);
            double[][] gr = TransformerReference.attentionBackward(b, t, heads, dh, scale, causal, lens, toDouble(q), toDouble(k),
                    toDouble(v), toDouble(g));
            double bt = 4 * tol(t, dh);
            if (t == 1) {
                // One key: p = 1 and dq = dk = scale·(dout·v − dout·out)·(k or q) = 0 up to the rounding of the two dot products.
                double bound = 8 * dh * U * scale * maxAbs(toDouble(g)) * maxAbs(toDouble(v)) * Math.max(maxAbs(toDouble(q)), maxAbs(toDouble(k)));
                assertWithin(c, "dq", dq.toFloatArray(), gr[0], i -> bound);
                assertWithin(c, "dk", dk.toFloatArray(), gr[1], i -> bound);
            } else {
                assertNormwise(c, "dq", dq.toFloatArray(), gr[0], bt);
                assertNormwise(c, "dk", dk.toFloatArray(), gr[1], bt);
            }
            assertNormwise(c, "dv", dv.toFloatArray(), gr[2], bt);
            if (masked) assertMaskedKeyRowsZero(c, b, t, heads * dh, lens, dk.toFloatArray(), dv.toFloatArray());
        }
    }

    /** dk and dv rows of keys no query sees are exactly 0 (overwritten, not left NaN). */
    static void assertMaskedKeyRowsZero(Case c, int b, int t, int width, int[] lens, float[] dk, float[] dv) {
        for (int s = 0; s < b; s++) {
            for (int j = lens[s]; j < t; j++) {
                for (int col = 0; col < width; col++) {
                    int at = (s * t + j) * width + col;
                    assertEquals(0f, dk[at], c.label() + ": dk of masked key " + j + " of sequence " + s);
                    assertEquals(0f, dv[at], c.label() + ": dv of masked key " + j + " of sequence " + s);
                }
            }
        }
    }

    /**
     * Masked keys carry no information: changing k and v in the padded rows leaves every output
     * bit (out and lse of all rows, padded query rows too, and dq) unchanged.
     */
    @ParameterizedTest(name = "causal={0}")
    @ValueSource(booleans = {false, true})
    void paddedKeysDoNotChangeAnything(boolean causal) {
        Case c = newCase("attention padded keys causal=" + causal);
        int b = 3, t = 17, heads = 2, dh = 16, w = heads * dh, n = b * t * w;
        int[] lens = {5, 17, 1};
        float[] q = c.normal(n), k = c.normal(n), v = c.normal(n), g = c.normal(n);
        float[] k2 = k.clone(), v2 = v.clone();
        for (int s = 0; s < b; s++) {
            for (int j = lens[s]; j < t; j++) {
                for (int col = 0; col < w; col++) {
                    k2[(s * t + j) * w + col] = (float) (100 * c.rnd.nextGaussian());
                    v2[(s * t + j) * w + col] = (float) (100 * c.rnd.nextGaussian());
                }
            }
        }
        float[][] got = new float[2][];
        float[][] keys = {k, k2}, values = {v, v2};
        for (int run = 0; run < 2; run++) {
            try (Scope s = new Scope()) {
                long rows = (long) b * t;
                Tensor tq = s.of(q, rows, w), tk = s.of(keys[run], rows, w), tv = s.of(values[run], rows, w);
                Tensor out = s.poisoned(rows, w), lse = s.poisoned((long) b * heads, t), dq = s.poisoned(rows, w);
                Tensor dk = s.poisoned(rows, w), dv = s.poisoned(rows, w);
                Backend.cpu().attentionForward(b, heads, 0.25f, causal, lens, tq, tk, tv, out, lse);
                Backend.cpu().attentionBackward(b, heads, 0.25f, causal, lens, tq, tk, tv, out, lse, s.of(g, rows, w), dq, dk, dv);
                float[] all = new float[2 * n + b * heads * t];
                System.arraycopy(out.toFloatArray(), 0, all, 0, n);
                System.arraycopy(dq.toFloatArray(), 0, all, n, n);
                System.arraycopy(lse.toFloatArray(), 0, all, 2 * n, b * heads * t);
                got[run] = all;
            }
        }
        assertBits(c.label(), "out, dq, lse with other padded k and v", got[1], got[0]);
    }

    /** Without causal, the padded query rows of a sequence attend to its real keys like any other row. */
    @Test
    void paddedQueryRowsAttendToTheRealKeys() {
        Case c = newCase("attention padded query rows");
        int t = 6, dh = 3, len = 2;
        float[] q = c.normal(t * dh), k = c.normal(t * dh), v = c.normal(t * dh);
        try (Scope s = new Scope()) {
            Tensor out = s.poisoned(t, dh), lse = s.poisoned(1, t);
            Backend.cpu().attentionForward(1, 1, 1f, false, new int[] {len}, s.of(q, t, dh), s.of(k, t, dh), s.of(v, t, dh), out, lse);
            float[] o = out.toFloatArray();
            int i = t - 1;  // the last, padded row: a convex mix of v[0] and v[1]
            double s0 = 0, s1 = 0;
            for (int c2 = 0; c2 < dh; c2++) {
                s0 += q[i * dh + c2] * k[c2];
                s1 += q[i * dh + c2] * k[dh + c2];
            }
            double p0 = 1 / (1 + Math.exp(s1 - s0));
            for (int c2 = 0; c2 < dh; c2++) {
                double want = p0 * v[c2] + (1 - p0) * v[dh + c2];
                assertEquals(want, o[i * dh + c2], 1e-5 * (1 + Math.abs(want)), "padded row " + i + " column " + c2);
            }
        }
    }

    /** Each (sequence, head) pair is one thread's whole task: one thread or two give the same bits. */
    @Test
    void resultsDoNotDependOnTheThreadCount() {
        Case c = newCase("attention threads");
        int b = 64, t = 33, heads = 4, dh = 16, n = b * t * heads * dh;
        float[] q = c.normal(n), k = c.normal(n), v = c.normal(n), g = c.normal(n);
        int[] lens = mixedLengths(c, b, t);
        float[][] got = new float[2][];
        int slot = 0;
        for (int threads : new int[] {1, 2}) {
            try (Backend be = Backend.cpu(threads); Scope s = new Scope()) {
                long rows = (long) b * t, w = (long) heads * dh;
                Tensor tq = s.of(q, rows, w), tk = s.of(k, rows, w), tv = s.of(v, rows, w);
                Tensor out = s.poisoned(rows, w), lse = s.poisoned((long) b * heads, t);
                Tensor dq = s.poisoned(rows, w), dk = s.poisoned(rows, w), dv = s.poisoned(rows, w);
                be.attentionForward(b, heads, 0.25f, false, lens, tq, tk, tv, out, lse);
                be.attentionBackward(b, heads, 0.25f, false, lens, tq, tk, tv, out, lse, s.of(g, rows, w), dq, dk, dv);
                float[] all = new float[4 * n];
                System.arraycopy(out.toFloatArray(), 0, all, 0, n);
                System.arraycopy(dq.toFloatArray(), 0, all, n, n);
                System.arraycopy(dk.toFloatArray(), 0, all, 2 * n, n);
                System.arraycopy(dv.toFloatArray(), 0, all, 3 * n, n);
                got[slot++] = all;
            }
        }
        assertBits(c.label(), "out, dq, dk, dv on 1 and 2 threads", got[1], got[0]);
    }

    @Test
    void causalFirstTokenAttendsOnlyToItself() {
        Case c = newCase("attention causal first token");
        int t = 5, dh = 3;
        float[] q = c.normal(t * dh), k = c.normal(t * dh), v = c.normal(t * dh);
        try (Scope s = new Scope()) {
            Tensor out = s.poisoned(t, dh), lse = s.poisoned(1, t);
            Backend.cpu().attentionForward(1, 1, 0.5f, true, null, s.of(q, t, dh), s.of(k, t, dh), s.of(v, t, dh), out, lse);
            float[] o = out.toFloatArray();
            for (int c2 = 0; c2 < dh; c2++) assertEquals(v[c2], o[c2], 1e-6f * Math.abs(v[c2]), "out[0] must equal v[0]");
        }
    }

    /** Scores of ±1e4 overflow a naive exp: the running maximum keeps the softmax finite and exact. */
    @Test
    void hugeScoresStayFinite() {
        Case c = newCase("attention huge scores");
        int t = 9, dh = 4;
        float[] q = c.signedUniform(t * dh, 50, 100), k = c.signedUniform(t * dh, 50, 100), v = c.normal(t * dh);
        try (Scope s = new Scope()) {
            Tensor out = s.poisoned(t, dh), lse = s.poisoned(1, t);
            Backend.cpu().attentionForward(1, 1, 1f, false, null, s.of(q, t, dh), s.of(k, t, dh), s.of(v, t, dh), out, lse);
            double[][] ref = TransformerReference.attention(1, t, 1, dh, 1, false, null, toDouble(q), toDouble(k), toDouble(v));
            // Scores carry an absolute fp32 error of ~|s|·2^-23 ≈ 1e-3 here, which exp turns into that relative error.
            assertNormwise(c, "out", out.toFloatArray(), ref[0], 1e-2);
        }
    }

    /** Central differences of the float64 reference confirm its gradients. */
    @ParameterizedTest(name = "t={0} dh={1} causal={2} masked={3}")
    @MethodSource("fdCases")
    void referenceGradientsMatchFiniteDifferences(int t, int dh, boolean causal, boolean masked) {
        Case c = newCase("attention fd t=" + t + " dh=" + dh + " causal=" + causal + " masked=" + masked);
        int b = 3, heads = 2, n = b * t * heads * dh;
        double scale = 1 / Math.sqrt(dh);
        int[] lens = masked ? mixedLengths(c, b, t) : null;
        double[] q = toDouble(c.normal(n)), k = toDouble(c.normal(n)), v = toDouble(c.normal(n)), g = toDouble(c.normal(n));
        double[][] gr = TransformerReference.attentionBackward(b, t, heads, dh, scale, causal, lens, q, k, v, g);
        double[][] inputs = {q, k, v};
        String[] names = {"dq", "dk", "dv"};
        for (int which = 0; which < 3; which++) {
            for (int trial = 0; trial < 10; trial++) {
                int i = c.rnd.nextInt(n);
                double[] x = inputs[which];
                double h = 1e-5, keep = x[i];
                x[i] = keep + h;
                double up = TransformerReference.dot(g, TransformerReference.attention(b, t, heads, dh, scale, causal, lens, q, k, v)[0]);
                x[i] = keep - h;
                double down = TransformerReference.dot(g, TransformerReference.attention(b, t, heads, dh, scale, causal, lens, q, k, v)[0]);
                x[i] = keep;
                double fd = (up - down) / (2 * h);
                assertEquals(fd, gr[which][i], 1e-6 * (1 + Math.abs(fd)), c.label() + ": " + names[which] + "[" + i + "]");
            }
        }
    }

    static Stream<Arguments> fdCases() {
        return Stream.of(Arguments.of(1, 1, false, false), Arguments.of(2, 16, true, false), Arguments.of(17, 24, false, false),
                Arguments.of(33, 16, true, false), Arguments.of(2, 1, false, true), Arguments.of(17, 32, false, true),
                Arguments.of(33, 16, true, true));
    }

    @Test
    void badArgumentsAreRefusedInJava() {
        try (Scope s = new Scope()) {
            Tensor q = s.poisoned(6, 8), lse = s.poisoned(4, 3), lseBad = s.poisoned(4, 2);
            Backend be = Backend.cpu();
            assertThrows(IllegalArgumentException.class, () -> be.attentionForward(2, 3, 1f, false, null, q, q, q, q, lse), "8 features into 3 heads");
            assertThrows(IllegalArgumentException.class, () -> be.attentionForward(4, 2, 1f, false, null, q, q, q, q, lse), "6 rows into 4 sequences");
            assertThrows(IllegalArgumentException.class, () -> be.attentionForward(2, 2, 1f, false, null, q, q, q, q, lseBad), "lse shape");
            assertThrows(IllegalArgumentException.class, () -> be.attentionForward(2, 2, Float.NaN, false, null, q, q, q, q, lse), "NaN scale");
            assertThrows(IllegalArgumentException.class, () -> be.attentionForward(2, 2, 1f, false, null, q, s.poisoned(6, 7), q, q, lse), "k shape");
            Tensor wide = s.poisoned(2, 257);
            assertThrows(IllegalArgumentException.class, () -> be.attentionForward(1, 1, 1f, false, null, wide, wide, wide, wide, s.poisoned(1, 2)),
                    "head dim 257");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> be.attentionBackward(2, 2, 1f, false, null, q, q, q, q, lse, q, q, q, s.poisoned(6, 4)));
            assertTrue(e.getMessage().contains("dv"), e.getMessage());
            // 2 sequences of t = 3: key lengths 0 and 4 = t + 1 are refused, as is a wrong count.
            for (int[] bad : new int[][] {{3, 0}, {4, 3}, {-1, 2}}) {
                for (boolean causal : new boolean[] {false, true}) {
                    e = assertThrows(IllegalArgumentException.class, () -> be.attentionForward(2, 2, 1f, causal, bad, q, q, q, q, lse));
                    assertTrue(e.getMessage().contains("keyLengths[") && e.getMessage().contains("outside [1, t = 3]"), e.getMessage());
                    e = assertThrows(IllegalArgumentException.class,
                            () -> be.attentionBackward(2, 2, 1f, causal, bad, q, q, q, q, lse, q, q, q, q));
                    assertTrue(e.getMessage().contains("keyLengths["), e.getMessage());
                }
            }
            e = assertThrows(IllegalArgumentException.class, () -> be.attentionForward(2, 2, 1f, false, new int[] {3}, q, q, q, q, lse));
            assertTrue(e.getMessage().contains("keyLengths has 1 entries for 2 sequences"), e.getMessage());
        }
    }

    /** Below the Java checks, the C entry points refuse bad raw arguments with P4J_EINVAL and a message. */
    @Test
    void badRawArgumentsReturnEinval() {
        NativeLoader.loadCpu();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.ADDRESS);
            assertEquals(0, Peft4j.p4j_ctx_create(1, out));
            MemorySegment ctx = out.get(ValueLayout.ADDRESS, 0);
            MemorySegment buf = a.allocate(4L * 4096, 64);
            try {
                assertEquals(-1, Peft4j.p4j_attention_forward(ctx, 1, 2, 1, 300, 1f, 0, MemorySegment.NULL, buf, buf, buf, buf, buf));
                assertTrue(lastError().contains("head_dim (300)"), lastError());
                assertEquals(-1, Peft4j.p4j_attention_forward(ctx, -1, 2, 1, 4, 1f, 0, MemorySegment.NULL, buf, buf, buf, buf, buf));
                assertTrue(lastError().contains("b (-1) < 0"), lastError());
                assertEquals(-1, Peft4j.p4j_attention_backward(ctx, 1, 2, 1, 4, 1f, 0, MemorySegment.NULL, buf, buf, buf, buf, buf, buf, buf, buf,
                        MemorySegment.NULL));
                assertTrue(lastError().contains("dv is null"), lastError());
                assertEquals(-1, Peft4j.p4j_attention_forward(ctx, 1, 2, 1, 4, Float.POSITIVE_INFINITY, 0, MemorySegment.NULL, buf, buf,
                        buf, buf, buf));
                assertTrue(lastError().contains("scale"), lastError());
                // Key lengths below 1 or above t: refused before any kernel runs, for either causal value.
                MemorySegment lens = a.allocate(ValueLayout.JAVA_INT, 2);
                for (int bad : new int[] {0, 3}) {
                    lens.setAtIndex(ValueLayout.JAVA_INT, 0, 2);
                    lens.setAtIndex(ValueLayout.JAVA_INT, 1, bad);
                    for (int causal = 0; causal < 2; causal++) {
                        assertEquals(-1, Peft4j.p4j_attention_forward(ctx, 2, 2, 1, 4, 1f, causal, lens, buf, buf, buf, buf, buf));
                        assertTrue(lastError().contains("key_lengths[1] = " + bad + " is outside [1, t = 2]"), lastError());
                        assertEquals(-1, Peft4j.p4j_attention_backward(ctx, 2, 2, 1, 4, 1f, causal, lens, buf, buf, buf, buf, buf, buf, buf,
                                buf, buf));
                        assertTrue(lastError().contains("key_lengths[1] = " + bad), lastError());
                    }
                }
            } finally {
                Peft4j.p4j_ctx_destroy(ctx);
            }
        }
    }

    static String lastError() {
        return Peft4j.p4j_last_error().reinterpret(4096).getString(0);
    }
}
