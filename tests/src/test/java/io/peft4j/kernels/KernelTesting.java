package io.peft4j.kernels;

import static org.junit.jupiter.api.Assertions.fail;

import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.IntToDoubleFunction;

/**
 * What every kernel test shares: one seeded random stream per case (seed printed in every
 * failure), poisoned outputs, a scope that frees the tensors of a case, and comparisons that
 * report the worst element.
 *
 * <p>Seeds: each case's seed is mixed from a base seed and the case's name, so every case draws
 * its own fresh inputs and a failure is reproduced by rerunning with the printed base seed
 * ({@code -Dpeft4j.test.seed=0x...}); a different base seed draws new inputs for every case.
 */
final class KernelTesting {
    private KernelTesting() {}

    /** fp32 unit roundoff, 2^-24. */
    static final double U = 0x1p-24;

    static final long BASE_SEED = baseSeed();

    /** The odd sizes every elementwise op runs on; the last is the 1000x129 "larger" case. */
    static final int[] SIZES = {1, 7, 33, 257, 1000 * 129};

    /** [rows, cols] shapes for row-wise ops: a single element, thin, wide, and a large odd one. */
    static final int[][] SHAPES = {{1, 1}, {7, 33}, {33, 7}, {257, 1}, {1, 257}, {1000, 129}};

    private static long baseSeed() {
        String v = System.getProperty("peft4j.test.seed");
        if (v == null || v.isBlank()) return 0x5EEDC0DE2024L;
        return Long.decode(v.trim());
    }

    /** A test case: its name, its derived seed and its own random stream. */
    static final class Case {
        final String name;
        final long seed;
        final SplittableRandom rnd;

        Case(String name) {
            this.name = name;
            this.seed = mix(BASE_SEED ^ fnv(name));
            this.rnd = new SplittableRandom(seed);
        }

        /** "gemm NT 7x33x257 [seed 0x..., base seed 0x...]" */
        String label() {
            return name + " [case seed 0x" + Long.toHexString(seed) + ", base seed 0x" + Long.toHexString(BASE_SEED)
                    + " (-Dpeft4j.test.seed)]";
        }

        /** N(0, std²) values, never exactly zero. */
        float[] normal(int n, double std) {
            float[] a = new float[n];
            for (int i = 0; i < n; i++) {
                float v;
                do v = (float) (rnd.nextGaussian() * std); while (v == 0f);
                a[i] = v;
            }
            return a;
        }

        float[] normal(int n) {
            return normal(n, 1.0);
        }

        /** Uniform in ±[lo, hi) with a random sign: bounded away from zero. */
        float[] signedUniform(int n, double lo, double hi) {
            float[] a = new float[n];
            for (int i = 0; i < n; i++) {
                double m = lo + (hi - lo) * rnd.nextDouble();
                a[i] = (float) (rnd.nextBoolean() ? m : -m);
            }
            return a;
        }

        /** Uniform in [lo, hi). */
        float[] uniform(int n, double lo, double hi) {
            float[] a = new float[n];
            for (int i = 0; i < n; i++) a[i] = (float) (lo + (hi - lo) * rnd.nextDouble());
            return a;
        }

        int[] ints(int n, int bound) {
            int[] a = new int[n];
            for (int i = 0; i < n; i++) a[i] = rnd.nextInt(bound);
            return a;
        }
    }

    static Case newCase(String name) {
        return new Case(name);
    }

    static long fnv(String s) {
        long h = 0xcbf29ce484222325L;
        for (int i = 0; i < s.length(); i++) {
            h ^= s.charAt(i);
            h *= 0x100000001b3L;
        }
        return h;
    }

    /** SplitMix64's finalizer. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    // ---- tensors ----

    /** Owns the tensors of one case and frees them at the end. */
    static final class Scope implements AutoCloseable {
        private final List<Tensor> tensors = new ArrayList<>();

        Tensor of(float[] data, long... shape) {
            return keep(Tensor.of(data, shape));
        }

        Tensor ints(int[] data, long... shape) {
            return keep(Tensor.ofInts(data, shape));
        }

        Tensor zeros(DType dtype, long... shape) {
            return keep(Tensor.zeros(dtype, shape));
        }

        /** An F32 output filled with NaN: any element the kernel fails to write shows up. */
        Tensor poisoned(long... shape) {
            Tensor t = zeros(DType.F32, shape);
            float[] nan = new float[Math.toIntExact(t.numel())];
            Arrays.fill(nan, Float.NaN);
            return t.copyFrom(nan);
        }

        /** A U8 output filled with 0xA5 (neither 0 nor 1). */
        Tensor poisonedBytes(long n) {
            Tensor t = zeros(DType.U8, n);
            t.segment().fill((byte) 0xA5);
            return t;
        }

        /** An I32 output filled with a sentinel no valid index has. */
        Tensor poisonedInts(long n) {
            Tensor t = zeros(DType.I32, n);
            int[] s = new int[Math.toIntExact(n)];
            Arrays.fill(s, 0x7eadbeef);
            MemorySegments.copyInts(s, t);
            return t;
        }

        Tensor keep(Tensor t) {
            tensors.add(t);
            return t;
        }

        @Override
        public void close() {
            for (int i = tensors.size() - 1; i >= 0; i--) tensors.get(i).close();
        }
    }

    /** Small MemorySegment helpers for non-F32 tensors. */
    static final class MemorySegments {
        private MemorySegments() {}

        static void copyInts(int[] src, Tensor dst) {
            java.lang.foreign.MemorySegment.copy(src, 0, dst.segment(), java.lang.foreign.ValueLayout.JAVA_INT, 0, src.length);
        }

        static byte[] bytes(Tensor t) {
            return t.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        }
    }

    // ---- conversions ----

    static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }

    /** Rounds every element to fp32 (what a kernel stores for an intermediate). */
    static float[] toFloat(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) f[i] = (float) a[i];
        return f;
    }

    static double maxAbs(double[] a) {
        double m = 0;
        for (double v : a) m = Math.max(m, Math.abs(v));
        return m;
    }

    // ---- comparisons ----

    /**
     * Normwise relative error: max|got − ref| / (max|ref| + tiny) <= tol. Any NaN in got fails
     * (poisoned elements the kernel did not write are NaN).
     */
    static double assertNormwise(Case c, String what, float[] got, double[] ref, double tol) {
        if (got.length != ref.length) fail(c.label() + ": " + what + " has " + got.length + " elements, expected " + ref.length);
        double maxRef = maxAbs(ref), maxErr = 0;
        int worst = -1;
        for (int i = 0; i < got.length; i++) {
            if (Float.isNaN(got[i]) || Float.isInfinite(got[i])) {
                fail(c.label() + ": " + what + "[" + i + "] = " + got[i] + " (expected " + ref[i]
                        + "; an unwritten or non-finite element)");
            }
            double e = Math.abs(got[i] - ref[i]);
            if (e > maxErr) {
                maxErr = e;
                worst = i;
            }
        }
        double rel = maxErr / (maxRef + 1e-300);
        if (!(rel <= tol)) {
            fail(String.format("%s: %s normwise relative error %.3e > %.3e (max|ref| %.4g; worst element [%d]: got %s, ref %s)",
                    c.label(), what, rel, tol, maxRef, worst, got[worst], ref[worst]));
        }
        return rel;
    }

    /** Element by element: |got[i] − ref[i]| <= bound(i). NaN in got fails. */
    static void assertWithin(Case c, String what, float[] got, double[] ref, IntToDoubleFunction bound) {
        if (got.length != ref.length) fail(c.label() + ": " + what + " has " + got.length + " elements, expected " + ref.length);
        for (int i = 0; i < got.length; i++) {
            double b = bound.applyAsDouble(i);
            double e = Math.abs((double) got[i] - ref[i]);
            if (!(e <= b)) {
                fail(String.format("%s: %s[%d] = %s, ref %s: |error| %.3e > bound %.3e", c.label(), what, i,
                        got[i], ref[i], e, b));
            }
        }
    }

    /** Exact equality (numeric: +0 == -0), for ops whose fp32 result is one correctly rounded operation. */
    static void assertExact(Case c, String what, float[] got, float[] expected) {
        if (got.length != expected.length) fail(c.label() + ": " + what + " has " + got.length + " elements, expected " + expected.length);
        for (int i = 0; i < got.length; i++) {
            if (!(got[i] == expected[i]) && !(Float.isNaN(got[i]) && Float.isNaN(expected[i]))) {
                fail(c.label() + ": " + what + "[" + i + "] = " + got[i] + " (bits 0x" + Integer.toHexString(Float.floatToRawIntBits(got[i]))
                        + "), expected exactly " + expected[i] + " (bits 0x" + Integer.toHexString(Float.floatToRawIntBits(expected[i])) + ")");
            }
        }
    }

    /** Bit-for-bit equality. */
    static void assertBits(String label, String what, float[] got, float[] expected) {
        if (got.length != expected.length) fail(label + ": " + what + " has " + got.length + " elements, expected " + expected.length);
        for (int i = 0; i < got.length; i++) {
            if (Float.floatToRawIntBits(got[i]) != Float.floatToRawIntBits(expected[i])) {
                fail(label + ": " + what + "[" + i + "] = " + got[i] + " (bits 0x" + Integer.toHexString(Float.floatToRawIntBits(got[i]))
                        + ") differs from " + expected[i] + " (bits 0x" + Integer.toHexString(Float.floatToRawIntBits(expected[i])) + ")");
            }
        }
    }

    /** Tolerance for a GEMM-like sum of K products, normwise relative: 1e-6·(4 + √K) (≈ 17·2^-24·(4 + √K)). */
    static double gemmTol(long k) {
        return 1e-6 * (4 + Math.sqrt(k));
    }

    /** Tolerance for two chained GEMMs (an fp32 intermediate of inner size k1 feeding one of size k2). */
    static double chainTol(long k1, long k2) {
        return 1e-6 * (4 + Math.sqrt(k1) + Math.sqrt(k2));
    }
}
