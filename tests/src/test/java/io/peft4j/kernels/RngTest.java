package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The Philox fills and dropout. Three kinds of check:
 * <ul>
 *   <li>known answer: Random123's philox4x32-10 vector through the public API;</li>
 *   <li>bit-exact: every fill equals the formulas written down in native/cpu/rng.cpp, replayed
 *       in Java ({@link Reference#uniformAt} etc.), for many seeds (negative ones too, so the key's
 *       high word is used), offsets (odd ones, and ones past 2^34 so the counter's high word is
 *       used) and sizes; this is what lets a CUDA or any other implementation match bit for bit;</li>
 *   <li>statistics on 10^6 draws, each bound about 5 standard errors (a false alarm ~1e-6).</li>
 * </ul>
 * Thread-count and split independence is in {@link ThreadCountTest}.
 */
class RngTest {
    static final int N_STAT = 1_000_000;

    @Test
    void uniformOfSeedZeroIsRandom123KnownAnswer() {
        Case c = newCase("philox known answer");
        int[] kat = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8};
        try (Scope s = new Scope()) {
            Tensor out = s.poisoned(4);
            Backend.cpu().rngUniform(0, 0, 0f, 1f, out);
            float[] expected = new float[4];
            for (int i = 0; i < 4; i++) expected[i] = (kat[i] >>> 8) * 0x1p-24f;
            assertBits(c.label(), "uniform(seed 0, offset 0, [0, 1))", out.toFloatArray(), expected);
            // Offset 4 is block 1: element 0 of that fill is word 0 of counter 1.
            Tensor next = s.poisoned(1);
            Backend.cpu().rngUniform(0, 4, 0f, 1f, next);
            assertEquals(Reference.unit(Reference.philox4x32(1, 0, 0, 0, 0, 0)[0]), next.getFloat(0), 0f, c.label());
        }
    }

    /** seed, offset, n. */
    static Stream<Arguments> streams() {
        long[][] so = {
            {0, 0}, {1, 0}, {42, 3}, {-1, 5}, {0x123456789abcdefL, 4}, {Long.MIN_VALUE, 1L << 36},
            {7, (1L << 34) + 2}, {-9_876_543_210L, 1_000_001},
        };
        List<Arguments> out = new ArrayList<>();
        int i = 0;
        for (long[] p : so) out.add(Arguments.of(p[0], p[1], SIZES[i++ % SIZES.length]));
        out.add(Arguments.of(99L, 13L, 129_000));
        return out.stream();
    }

    @ParameterizedTest(name = "seed={0} offset={1} n={2}")
    @MethodSource("streams")
    void fillsFollowTheDocumentedFormulasBitForBit(long seed, long offset, int n) {
        Case c = newCase("rng formulas seed=" + seed + " offset=" + offset + " n=" + n);
        float lo = -2.5f, hi = 7.25f, mean = 0.3f, std = 1.7f, ka = (float) Math.sqrt(5);
        long fanIn = 129;
        try (Scope s = new Scope()) {
            Tensor u = s.poisoned(n), z = s.poisoned(n), k = s.poisoned(n);
            Backend be = Backend.cpu();
            be.rngUniform(seed, offset, lo, hi, u);
            be.rngNormal(seed, offset, mean, std, z);
            be.rngKaimingUniform(seed, offset, fanIn, ka, k);
            float bound = Reference.kaimingBound(fanIn, ka);
            float[] eu = new float[n], ez = new float[n], ek = new float[n];
            for (int i = 0; i < n; i++) {
                eu[i] = Reference.uniformAt(seed, offset + i, lo, hi);
                ez[i] = Reference.normalAt(seed, offset + i, mean, std);
                ek[i] = Reference.uniformAt(seed, offset + i, -bound, bound);
            }
            assertBits(c.label(), "uniform", u.toFloatArray(), eu);
            assertBits(c.label(), "normal", z.toFloatArray(), ez);
            assertBits(c.label(), "kaiming_uniform", k.toFloatArray(), ek);
        }
    }

    static Stream<Arguments> uniformRanges() {
        return Stream.of(Arguments.of(0f, 1f), Arguments.of(-2.5f, 7.25f), Arguments.of(0.1f, 0.7f),
                Arguments.of(-1e-3f, -1e-4f), Arguments.of(1f, 2f));
    }

    @ParameterizedTest(name = "[{0}, {1})")
    @MethodSource("uniformRanges")
    void uniformStaysInRangeWithTheRightMoments(float lo, float hi) {
        Case c = newCase("uniform statistics [" + lo + ", " + hi + ")");
        long seed = c.rnd.nextLong();
        float[] v = fill(s -> Backend.cpu().rngUniform(seed, 0, lo, hi, s));
        double w = (double) hi - lo, sum = 0, sq = 0;
        int[] hist = new int[16];
        for (int i = 0; i < N_STAT; i++) {
            if (!(v[i] >= lo && v[i] < hi)) fail(c.label() + ": seed " + seed + " element " + i + " = " + v[i] + " outside [" + lo + ", " + hi + ")");
            sum += v[i];
            hist[Math.min(15, (int) ((v[i] - lo) / w * 16))]++;
        }
        double mean = sum / N_STAT;
        for (float x : v) sq += (x - mean) * (x - mean);
        double var = sq / (N_STAT - 1);
        // mean: σ/√n with σ² = w²/12; variance: standard error w²/√(180·n).
        assertEquals(((double) lo + hi) / 2, mean, 5 * w / Math.sqrt(12.0 * N_STAT), c.label() + ": mean");
        assertEquals(w * w / 12, var, 5 * w * w / Math.sqrt(180.0 * N_STAT), c.label() + ": variance");
        // Each of 16 bins: binomial(n, 1/16).
        double sd = Math.sqrt(N_STAT / 16.0 * 15 / 16);
        for (int b = 0; b < 16; b++) assertEquals(N_STAT / 16.0, hist[b], 5 * sd, c.label() + ": histogram bin " + b);
    }

    /**
     * The largest unit draw is 1 − 2^-24; lo + (hi − lo)·u must still be below hi. With lo = 1,
     * hi = 2 the exact sum 2 − 2^-24 is a tie that rounds (to even) to 2.0 = hi, so the element
     * whose Philox word has its top 24 bits set is the one to look at.
     */
    @Test
    void uniformNeverReturnsHiEvenForTheLargestDraw() {
        long seed = 0, pos = -1;
        for (long blk = 0; pos < 0; blk++) {
            int[] w = Reference.philox4x32((int) blk, (int) (blk >>> 32), 0, 0, 0, 0);
            for (int j = 0; j < 4; j++) if ((w[j] >>> 8) == 0xFFFFFF) pos = 4 * blk + j;
        }
        float[][] ranges = {{0f, 1f}, {-3f, 5f}, {0.1f, 0.7f}, {1e-3f, 1e3f}, {1f, 2f}};
        try (Scope s = new Scope()) {
            Tensor out = s.poisoned(1);
            for (long fanIn : new long[] {1, 3, 129, 4096}) {
                Backend.cpu().rngKaimingUniform(seed, pos, fanIn, 0f, out);
                float v = out.getFloat(0), bound = Reference.kaimingBound(fanIn, 0f);
                assertTrue(v > 0 && v < bound, "rngKaimingUniform(fan_in " + fanIn + ") at the largest draw = " + v
                        + ", bound " + bound);
            }
            for (float[] r : ranges) {
                Backend.cpu().rngUniform(seed, pos, r[0], r[1], out);
                float v = out.getFloat(0);
                assertTrue(v >= r[0] && v < r[1], "rngUniform(seed 0, offset " + pos + ", lo " + r[0] + ", hi " + r[1]
                        + ") = " + v + " (unit draw 1 − 2^-24) is outside [lo, hi)");
            }
        }
    }

    @Test
    void normalHasTheRightMeanStdAndShape() {
        Case c = newCase("normal statistics");
        long seed = c.rnd.nextLong();
        float mean = -1.25f, std = 2.5f;
        float[] v = fill(s -> Backend.cpu().rngNormal(seed, 0, mean, std, s));
        double sum = 0, sq = 0;
        int within1 = 0;
        for (float x : v) {
            if (!Float.isFinite(x)) fail(c.label() + ": non-finite draw " + x);
            sum += x;
        }
        double m = sum / N_STAT;
        for (float x : v) {
            sq += (x - m) * (x - m);
            if (Math.abs(x - mean) < std) within1++;
        }
        double sdev = Math.sqrt(sq / (N_STAT - 1));
        assertEquals(mean, m, 5 * std / Math.sqrt(N_STAT), c.label() + ": mean");
        // Standard error of the sample std of a normal: σ/√(2n).
        assertEquals(std, sdev, 5 * std / Math.sqrt(2.0 * N_STAT), c.label() + ": std");
        double p1 = 0.6826894921370859;
        assertEquals(p1, within1 / (double) N_STAT, 5 * Math.sqrt(p1 * (1 - p1) / N_STAT), c.label() + ": P(|z| < 1)");
    }

    @Test
    void kaimingUniformFillsItsBound() {
        for (float a : new float[] {0f, (float) Math.sqrt(5)}) {
            long fanIn = 257;
            Case c = newCase("kaiming statistics a=" + a);
            long seed = c.rnd.nextLong();
            float[] v = fill(s -> Backend.cpu().rngKaimingUniform(seed, 0, fanIn, a, s));
            double bound = Math.sqrt(6.0 / ((1 + (double) a * a) * fanIn));
            // a = 0: sqrt(6/fan_in); a = √5 (rounded to float): 1/sqrt(fan_in) to float precision.
            double torch = a == 0 ? Math.sqrt(6.0 / fanIn) : 1 / Math.sqrt(fanIn);
            assertEquals(torch, bound, 1e-6 * torch, "torch's bound for a");
            float fb = (float) bound;
            double min = Double.MAX_VALUE, max = -Double.MAX_VALUE, sq = 0;
            for (float x : v) {
                if (!(x >= -fb && x < fb)) fail(c.label() + ": " + x + " outside [-" + fb + ", " + fb + ")");
                min = Math.min(min, x);
                max = Math.max(max, x);
                sq += (double) x * x;
            }
            // 10^6 draws reach within 1e-4 of each end (a miss has probability e^-50).
            assertTrue(min < -bound * (1 - 1e-4) && max > bound * (1 - 1e-4), c.label() + ": range [" + min + ", " + max
                    + "] does not fill ±" + bound);
            // E[x²] = b²/3 with standard error (2b)²/√(180·n).
            assertEquals(bound * bound / 3, sq / N_STAT, 5 * 4 * bound * bound / Math.sqrt(180.0 * N_STAT), c.label() + ": variance");
        }
    }

    @Test
    void sameSeedSameOutputDifferentSeedDifferentOutput() {
        Case c = newCase("rng seeds");
        long seed = c.rnd.nextLong();
        int n = 4097;
        float[] a = fillN(n, t -> Backend.cpu().rngNormal(seed, 0, 0f, 1f, t));
        float[] b = fillN(n, t -> Backend.cpu().rngNormal(seed, 0, 0f, 1f, t));
        float[] d = fillN(n, t -> Backend.cpu().rngNormal(seed + 1, 0, 0f, 1f, t));
        float[] e = fillN(n, t -> Backend.cpu().rngNormal(seed ^ (1L << 40), 0, 0f, 1f, t));
        assertBits(c.label(), "same seed", b, a);
        assertTrue(countEqual(a, d) < 5, c.label() + ": seeds " + seed + " and " + (seed + 1) + " agree in " + countEqual(a, d) + " of " + n);
        assertTrue(countEqual(a, e) < 5, c.label() + ": a seed differing only in its high word gives the same stream");
        // Offsets index one stream: a fill at offset k is the tail of the fill at 0.
        float[] tail = fillN(n - 5, t -> Backend.cpu().rngNormal(seed, 5, 0f, 1f, t));
        float[] aTail = java.util.Arrays.copyOfRange(a, 5, n);
        assertBits(c.label(), "offset 5", tail, aTail);
    }

    static Stream<Arguments> dropoutCases() {
        List<Arguments> out = new ArrayList<>();
        float[] ps = {0f, 0.1f, 0.5f, 0.9f, 0.3333f};
        for (int i = 0; i < SIZES.length; i++) out.add(Arguments.of(SIZES[i], ps[i], (long) (i * 7)));
        out.add(Arguments.of(N_STAT, 0.25f, 3L));
        return out.stream();
    }

    @ParameterizedTest(name = "n={0} p={1} offset={2}")
    @MethodSource("dropoutCases")
    void dropoutKeepsWithProbabilityOneMinusPAndScalesExactly(int n, float p, long offset) {
        Case c = newCase("dropout n=" + n + " p=" + p + " offset=" + offset);
        long seed = c.rnd.nextLong();
        float[] x = c.normal(n), g = c.normal(n);
        float scale = 1.0f / (1.0f - p); // rng.cpp: the scale is computed in float
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, n), mask = s.poisonedBytes(n), y = s.poisoned(n), u = s.poisoned(n);
            Backend.cpu().dropoutForward(p, seed, offset, tx, mask, y);
            Backend.cpu().rngUniform(seed, offset, 0f, 1f, u);
            byte[] mk = MemorySegments.bytes(mask);
            float[] yv = y.toFloatArray(), uv = u.toFloatArray();
            int kept = 0;
            for (int i = 0; i < n; i++) {
                boolean keep = uv[i] >= p; // the draw is the uniform fill's element
                if (mk[i] != (keep ? 1 : 0)) fail(c.label() + ": mask[" + i + "] = " + mk[i] + " but uniform draw " + uv[i] + (keep ? " >= " : " < ") + "p");
                float expected = keep ? x[i] * scale : 0f;
                if (yv[i] != expected) fail(c.label() + ": y[" + i + "] = " + yv[i] + ", expected x·mask/(1−p) = " + expected);
                if (keep) {
                    kept++;
                    // x·fl(1/(1−p)) is within 1.5 ulp of the exact x/(1−p).
                    double exact = x[i] / (1.0 - p);
                    if (Math.abs(yv[i] - exact) > 1.5 * Math.ulp(yv[i])) fail(c.label() + ": y[" + i + "] = " + yv[i] + " vs x/(1−p) = " + exact);
                }
            }
            double sd = Math.sqrt(n * p * (1.0 - p));
            assertEquals(n * (1.0 - p), kept, 5 * sd + 1e-9, c.label() + ": kept count");
            if (p == 0f) assertEquals(n, kept, c.label());

            Tensor dx = s.poisoned(n);
            Backend.cpu().dropoutBackward(p, mask, s.of(g, n), dx);
            float[] dxv = dx.toFloatArray();
            for (int i = 0; i < n; i++) {
                float expected = mk[i] != 0 ? g[i] * scale : 0f;
                if (dxv[i] != expected) fail(c.label() + ": dx[" + i + "] = " + dxv[i] + ", expected g·mask/(1−p) = " + expected);
            }
            // y may equal x: the same mask and values in place.
            Backend.cpu().dropoutForward(p, seed, offset, tx, s.poisonedBytes(n), tx);
            assertExact(c, "y (in place)", tx.toFloatArray(), yv);
        }
    }

    // ---- helpers ----

    interface FillOp {
        void into(Tensor t);
    }

    static float[] fill(FillOp op) {
        return fillN(N_STAT, op);
    }

    static float[] fillN(int n, FillOp op) {
        try (Tensor t = Tensor.zeros(DType.F32, n)) {
            t.copyFrom(nanArray(n));
            op.into(t);
            return t.toFloatArray();
        }
    }

    static float[] nanArray(int n) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, Float.NaN);
        return a;
    }

    static int countEqual(float[] a, float[] b) {
        int k = 0;
        for (int i = 0; i < a.length; i++) if (a[i] == b[i]) k++;
        return k;
    }
}
