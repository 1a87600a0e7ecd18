package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;
import java.util.Arrays;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Elementwise ops against the double reference, outputs NaN-poisoned unless documented "+=".
 * Ops whose fp32 result is one correctly rounded operation on two floats (bias add, scale, mul,
 * relu, fill, copy) must match (float) of the reference exactly: the double result of one sum or
 * product of two floats is exact here, so its rounding is the correctly rounded fp32 result.
 * Bounds for the others are stated at each assertion.
 */
class ElementwiseTest {
    static long[] shapeOf(int n) {
        return n == 1000 * 129 ? new long[] {1000, 129} : new long[] {n};
    }

    static float[] round(double[] r) {
        return toFloat(r);
    }

    @ParameterizedTest(name = "t={0} d={1}")
    @MethodSource("io.peft4j.kernels.Sizes#shapes")
    void biasAddIsExact(int t, int d) {
        Case c = newCase("biasAdd " + t + "x" + d);
        float[] bias = c.normal(d), y0 = c.normal(t * d);
        try (Scope s = new Scope()) {
            Tensor y = s.of(y0, t, d);
            Backend.cpu().biasAdd(s.of(bias, d), y);
            assertExact(c, "y", y.toFloatArray(), round(Reference.biasAdd(t, d, toDouble(bias), toDouble(y0))));
        }
    }

    @ParameterizedTest(name = "t={0} d={1}")
    @MethodSource("io.peft4j.kernels.Sizes#shapes")
    void colsumOverwritesAndAccumulates(int t, int d) {
        for (boolean accumulate : new boolean[] {false, true}) {
            Case c = newCase("colsum " + t + "x" + d + " accumulate=" + accumulate);
            float[] x = c.normal(t * d), out0 = accumulate ? c.normal(d, Math.sqrt(t)) : null;
            try (Scope s = new Scope()) {
                Tensor out = accumulate ? s.of(out0, d) : s.poisoned(d);
                Backend.cpu().colsum(s.of(x, t, d), out, accumulate);
                double[] ref = Reference.colsum(t, d, toDouble(x));
                double[] absSum = Reference.colsum(t, d, absolute(x));
                if (accumulate) {
                    for (int j = 0; j < d; j++) {
                        ref[j] += out0[j];
                        absSum[j] += Math.abs(out0[j]);
                    }
                }
                // Any summation order in fp32: |error| <= γ_(t+1)·Σ|terms| (Higham, Thm 4.4), γ_n ≈ n·u.
                double gamma = (t + 2) * U / (1 - (t + 2) * U);
                assertWithin(c, "out", out.toFloatArray(), ref, j -> gamma * absSum[j]);
            }
        }
    }

    @ParameterizedTest(name = "n={0}")
    @MethodSource("io.peft4j.kernels.Sizes#sizes")
    void reluForwardBackwardAreExact(int n) {
        Case c = newCase("relu n=" + n);
        long[] shape = shapeOf(n);
        float[] x = c.normal(n), g = c.normal(n);
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, shape), y = s.poisoned(shape), dx = s.poisoned(shape);
            Backend.cpu().reluForward(tx, y);
            assertExact(c, "y", y.toFloatArray(), round(Reference.relu(toDouble(x))));
            Backend.cpu().reluBackward(tx, s.of(g, shape), dx);
            assertExact(c, "dx", dx.toFloatArray(), round(Reference.reluBackward(toDouble(x), toDouble(g))));
            // y may equal x.
            Backend.cpu().reluForward(tx, tx);
            assertExact(c, "y (in place)", tx.toFloatArray(), round(Reference.relu(toDouble(x))));
        }
    }

    @ParameterizedTest(name = "n={0}")
    @MethodSource("io.peft4j.kernels.Sizes#sizes")
    void geluForwardBackwardMatchReference(int n) {
        Case c = newCase("gelu n=" + n);
        long[] shape = shapeOf(n);
        float[] x = c.normal(n, 2.5), g = c.normal(n);
        double[] xd = toDouble(x), gd = toDouble(g);
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, shape), y = s.poisoned(shape), dx = s.poisoned(shape);
            Backend.cpu().geluForward(tx, y);
            // Relative 1e-5 per element, tails included: erfc approximations good to ~1e-7 plus
            // e^(-x²/2) whose fp32 argument carries ~x²·u of absolute error (x² <= ~150 here).
            double[] yRef = Reference.gelu(xd);
            assertWithin(c, "y", y.toFloatArray(), yRef, i -> 1e-5 * Math.abs(yRef[i]) + 1e-37);
            Backend.cpu().geluBackward(tx, s.of(g, shape), dx);
            // Φ(x) + x·φ(x) crosses zero near x = −0.75, so the bound is relative to |g|·(Φ + |x|φ).
            double[] dxRef = Reference.geluBackward(xd, gd);
            assertWithin(c, "dx", dx.toFloatArray(), dxRef, i -> 1e-5 * Math.abs(gd[i])
                    * (Reference.normalCdf(xd[i]) + Math.abs(xd[i]) * Reference.normalPdf(xd[i])) + 1e-37);
            Backend.cpu().geluForward(tx, tx);
            assertWithin(c, "y (in place)", tx.toFloatArray(), yRef, i -> 1e-5 * Math.abs(yRef[i]) + 1e-37);
        }
    }

    /**
     * GELU in its far tails and on NaN: |x| from 13.5 to 60, where exp_f's argument c − x²/2 falls
     * below ln(2^-126) and is clamped (internal.h: Φ(x) = 1 or 0, φ(x) = 0 in fp32), and NaN, which
     * must come out as NaN. The clamp flushes results below 2^-126 to zero: the bounds allow that.
     */
    @ParameterizedTest(name = "n={0}")
    @ValueSource(ints = {37, 1001})
    void geluTailsAndNaN(int n) {
        Case c = newCase("gelu tails n=" + n);
        float[] x = c.signedUniform(n, 13.5, 60), g = c.normal(n);
        for (int i = 0; i < n; i += 7) x[i] = Float.NaN;
        double[] xd = toDouble(x), gd = toDouble(g);
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, n), y = s.of(filled(n, 7.5f), n), dx = s.of(filled(n, 7.5f), n);
            Backend.cpu().geluForward(tx, y);
            Backend.cpu().geluBackward(tx, s.of(g, n), dx);
            double[] yRef = Reference.gelu(xd), dxRef = Reference.geluBackward(xd, gd);
            float[] yGot = y.toFloatArray(), dxGot = dx.toFloatArray();
            for (int i = 0; i < n; i++) {
                if (Float.isNaN(x[i])) {
                    assertTrue(Float.isNaN(yGot[i]) && Float.isNaN(dxGot[i]), c.label() + ": NaN x[" + i + "] gave y " + yGot[i] + ", dx " + dxGot[i]);
                    yGot[i] = dxGot[i] = 0;
                    yRef[i] = dxRef[i] = 0;
                }
            }
            assertWithin(c, "y", yGot, yRef, i -> 1e-6 * Math.abs(yRef[i]) + 1e-36);
            assertWithin(c, "dx", dxGot, dxRef, i -> 1e-6 * Math.abs(dxRef[i]) + 1e-36);
        }
    }

    static float[] filled(int n, float v) {
        float[] a = new float[n];
        Arrays.fill(a, v);
        return a;
    }

    @ParameterizedTest(name = "n={0}")
    @MethodSource("io.peft4j.kernels.Sizes#sizes")
    void scaleIsExact(int n) {
        Case c = newCase("scale n=" + n);
        float alpha = (float) (c.rnd.nextDouble(0.5, 3) * (c.rnd.nextBoolean() ? 1 : -1));
        float[] x = c.normal(n);
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, shapeOf(n));
            Backend.cpu().scale(alpha, tx);
            double[] ref = new double[n];
            for (int i = 0; i < n; i++) ref[i] = (double) alpha * x[i];
            assertExact(c, "x", tx.toFloatArray(), round(ref));
        }
    }

    @ParameterizedTest(name = "n={0}")
    @MethodSource("io.peft4j.kernels.Sizes#sizes")
    void axpyMatchesReference(int n) {
        Case c = newCase("axpy n=" + n);
        float alpha = (float) (c.rnd.nextDouble(0.5, 3) * (c.rnd.nextBoolean() ? 1 : -1));
        float[] x = c.normal(n), y0 = c.normal(n);
        try (Scope s = new Scope()) {
            Tensor y = s.of(y0, shapeOf(n));
            Backend.cpu().axpy(alpha, s.of(x, shapeOf(n)), y);
            double[] ref = new double[n];
            for (int i = 0; i < n; i++) ref[i] = y0[i] + (double) alpha * x[i];
            // Two roundings at most (one with an FMA): |error| <= 2u·(|y| + |αx|).
            assertWithin(c, "y", y.toFloatArray(), ref, i -> 2.0001 * U * (Math.abs(y0[i]) + Math.abs(alpha * (double) x[i])));
        }
    }

    @ParameterizedTest(name = "n={0}")
    @MethodSource("io.peft4j.kernels.Sizes#sizes")
    void mulIsExactAlsoInPlace(int n) {
        Case c = newCase("mul n=" + n);
        long[] shape = shapeOf(n);
        float[] x = c.normal(n), y = c.normal(n);
        float[] expected = round(Reference.mul(toDouble(x), toDouble(y)));
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, shape), ty = s.of(y, shape), out = s.poisoned(shape);
            Backend.cpu().mul(tx, ty, out);
            assertExact(c, "out", out.toFloatArray(), expected);
            Backend.cpu().mul(tx, ty, tx); // out may equal x
            assertExact(c, "out (= x)", tx.toFloatArray(), expected);
            tx.copyFrom(x);
            Backend.cpu().mul(tx, ty, ty); // out may equal y
            assertExact(c, "out (= y)", ty.toFloatArray(), expected);
        }
    }

    @ParameterizedTest(name = "n={0}")
    @MethodSource("io.peft4j.kernels.Sizes#sizes")
    void fillAndCopyAreExact(int n) {
        Case c = newCase("fill/copy n=" + n);
        long[] shape = shapeOf(n);
        float value = c.normal(1)[0];
        float[] src = c.normal(n);
        try (Scope s = new Scope()) {
            Tensor x = s.poisoned(shape);
            Backend.cpu().fill(value, x);
            float[] expected = new float[n];
            Arrays.fill(expected, value);
            assertBits(c.label(), "fill", x.toFloatArray(), expected);
            Tensor dst = s.poisoned(shape);
            Backend.cpu().copy(s.of(src, shape), dst);
            assertBits(c.label(), "copy", dst.toFloatArray(), src);
        }
    }

    /**
     * p4j_copy's two paths (native/cpu/elementwise.cpp, kStreamBytes): memcpy below 16 MiB, non-temporal
     * stream_copy from 16 MiB. The last case's destination starts 4 bytes past a 64-byte boundary and
     * its length is no multiple of 16 floats, so stream_copy's head and tail loops run as well; the
     * poisoned float before it must stay untouched.
     */
    @ParameterizedTest(name = "n={0} dst offset={1} floats")
    @CsvSource({"4194303, 0", "4194304, 0", "4194317, 1"})
    void copyBelowAndFromTheStreamingSizeIsExact(int n, int dstOffset) {
        Case c = newCase("copy n=" + n + " dst offset=" + dstOffset);
        float[] src = c.signedUniform(n, 0.5, 2);
        try (Scope s = new Scope()) {
            Tensor whole = s.poisoned(n + dstOffset), dst = whole.rows(dstOffset, n);
            Backend.cpu().copy(s.of(src, n), dst);
            assertBits(c.label(), "copy", dst.toFloatArray(), src);
            if (dstOffset > 0) assertTrue(Float.isNaN(whole.getFloat(0)), c.label() + ": copy wrote before dst");
        }
    }

    @ParameterizedTest(name = "t={0} c={1}")
    @MethodSource("io.peft4j.kernels.Sizes#shapes")
    void argmaxRowsPicksTheFirstMaximum(int t, int k) {
        Case c = newCase("argmaxRows " + t + "x" + k);
        float[] x = c.normal(t * k);
        // A third of the rows get a tied maximum at two places; the first one must win.
        for (int i = 0; i < t && k > 1; i++) {
            if (c.rnd.nextInt(3) != 0) continue;
            int j1 = c.rnd.nextInt(k - 1), j2 = j1 + 1 + c.rnd.nextInt(k - 1 - j1);
            float top = x[i * k];
            for (int j = 0; j < k; j++) top = Math.max(top, x[i * k + j]);
            x[i * k + j1] = x[i * k + j2] = top + 1;
        }
        try (Scope s = new Scope()) {
            Tensor out = s.poisonedInts(t);
            Backend.cpu().argmaxRows(s.of(x, t, k), out);
            assertArrayEquals(Reference.argmaxRows(t, k, toDouble(x)), out.toIntArray(), c.label());
        }
    }

    /** NaN first in a row, NaN later (and a second NaN after it): the first NaN is the answer. */
    @ParameterizedTest(name = "t={0} c={1}")
    @MethodSource("io.peft4j.kernels.Sizes#shapes")
    void argmaxRowsTakesTheFirstNaN(int t, int k) {
        Case c = newCase("argmaxRows NaN " + t + "x" + k);
        float[] x = c.normal(t * k);
        for (int i = 0; i < t; i++) {
            if (c.rnd.nextInt(3) == 0) continue;
            int j = c.rnd.nextInt(k);
            x[i * k + j] = Float.NaN;
            if (j + 1 < k && c.rnd.nextBoolean()) x[i * k + j + 1 + c.rnd.nextInt(k - j - 1)] = Float.NaN;
        }
        try (Scope s = new Scope()) {
            Tensor out = s.poisonedInts(t);
            Backend.cpu().argmaxRows(s.of(x, t, k), out);
            assertArrayEquals(Reference.argmaxRows(t, k, toDouble(x)), out.toIntArray(), c.label());
        }
    }

    static double[] absolute(float[] x) {
        double[] a = new double[x.length];
        for (int i = 0; i < x.length; i++) a[i] = Math.abs(x[i]);
        return a;
    }
}
