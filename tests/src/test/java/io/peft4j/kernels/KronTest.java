package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The Kronecker kernels (native/cpu/kron.cpp) against a float64 reference that materialises
 * ΔW = s·kron(A, B) entry by entry (torch.kron order) and multiplies with it, so the reshape the
 * kernels use is checked, not repeated. The reference's gradients are checked by central
 * differences of its loss Σ g ⊙ y. Factor shapes include 1×n, n×1, 1×1, non-square factors and
 * rectangular layers, sizes below and above every vector width (b2 < 4, b2 % 16 != 0, tiles of dA
 * with edges), and one batch large enough to run on several threads.
 */
class KronTest {
    /** t, a1, a2, b1, b2, s. */
    static final Object[][] SHAPES = {
        {1, 1, 1, 1, 1, 0.5f},          // 1x1 ⊗ 1x1
        {7, 1, 5, 3, 1, 1.5f},          // A 1×5 (1×n), B 3×1 (n×1): d_out 3, d_in 5
        {5, 3, 1, 1, 7, -0.75f},        // A 3×1, B 1×7: d_out 3, d_in 7
        {33, 7, 5, 3, 9, 0.25f},        // non-square both, rectangular layer 21×45
        {9, 5, 3, 1, 1, 2f},            // B 1×1: ΔW = s·A
        {6, 1, 1, 6, 9, -1.25f},        // A 1×1: ΔW = s·a·B
        {13, 6, 4, 16, 17, 0.5f},       // b2 = 17: one vector + a tail; dA tiles with edges (a1 % 4 = 2)
        {11, 8, 8, 33, 20, 0.125f},     // dA in full 4×4 tiles, b2 % 16 = 4
        {4, 9, 7, 5, 32, 1f},           // b2 a multiple of 16, odd tiles
        {65, 16, 16, 16, 19, 0.75f},    // d_out 256, d_in 304: several threads, vector and tail paths
        {3, 4, 32, 2, 3, -0.5f},        // wide A, narrow B
        {0, 3, 2, 2, 5, 0.5f},          // no rows: dA, dB are empty sums (0 when overwritten)
        {4, 3, 2, 2, 0, 0.5f},          // d_in = 0 (b2 = 0): p empty, y unchanged, dA = 0
        {40, 70, 3, 2, 2, 0.25f},       // dA rows split over threads, a1 not a multiple of any tile
    };

    static Stream<Arguments> shapes() {
        return Stream.of(SHAPES).map(Arguments::of);
    }

    static Stream<Arguments> backwardCases() {
        List<Arguments> out = new ArrayList<>();
        for (Object[] s : SHAPES) {
            out.add(Arguments.of(s[0], s[1], s[2], s[3], s[4], s[5], false, true));
            out.add(Arguments.of(s[0], s[1], s[2], s[3], s[4], s[5], true, false));
        }
        return out.stream();
    }

    // ---- float64 reference: materialised kron ----

    /** s·kron(a, b): [a1·b1, a2·b2], ΔW[i·b1+k, j·b2+l] = s·a[i,j]·b[k,l]. */
    static double[] kron(int a1, int a2, int b1, int b2, double s, double[] a, double[] b) {
        int dIn = a2 * b2;
        double[] w = new double[a1 * b1 * dIn];
        for (int i = 0; i < a1; i++)
            for (int j = 0; j < a2; j++)
                for (int k = 0; k < b1; k++)
                    for (int l = 0; l < b2; l++) w[(i * b1 + k) * dIn + j * b2 + l] = s * a[i * a2 + j] * b[k * b2 + l];
        return w;
    }

    /** y0 + x·ΔWᵀ. */
    static double[] forwardRef(int t, int a1, int a2, int b1, int b2, double s, double[] x, double[] a, double[] b, double[] y0) {
        int dOut = a1 * b1, dIn = a2 * b2;
        double[] w = kron(a1, a2, b1, b2, s, a, b);
        double[] y = y0.clone();
        for (int n = 0; n < t; n++)
            for (int o = 0; o < dOut; o++) {
                double acc = 0;
                for (int i = 0; i < dIn; i++) acc += x[n * dIn + i] * w[o * dIn + i];
                y[n * dOut + o] += acc;
            }
        return y;
    }

    /** p = A·Xm per row: [t, a1·b2]. */
    static double[] pRef(int t, int a1, int a2, int b2, double[] x, double[] a) {
        double[] p = new double[t * a1 * b2];
        for (int n = 0; n < t; n++)
            for (int i = 0; i < a1; i++)
                for (int l = 0; l < b2; l++) {
                    double acc = 0;
                    for (int j = 0; j < a2; j++) acc += a[i * a2 + j] * x[n * a2 * b2 + j * b2 + l];
                    p[n * a1 * b2 + i * b2 + l] = acc;
                }
        return p;
    }

    /**
     * Gradients of L = Σ g ⊙ (x·ΔWᵀ) through the materialised ΔW: GW = gᵀ·x, ∂A[i,j] = s·Σ_{k,l}
     * GW[i·b1+k, j·b2+l]·B[k,l], ∂B[k,l] = s·Σ_{i,j} GW[..]·A[i,j], ∂x = g·ΔW. Returns {da, db, dx}.
     */
    static double[][] backwardRef(int t, int a1, int a2, int b1, int b2, double s, double[] x, double[] a, double[] b, double[] g) {
        int dOut = a1 * b1, dIn = a2 * b2;
        double[] gw = new double[dOut * dIn];
        for (int n = 0; n < t; n++)
            for (int o = 0; o < dOut; o++)
                for (int i = 0; i < dIn; i++) gw[o * dIn + i] += g[n * dOut + o] * x[n * dIn + i];
        double[] da = new double[a1 * a2], db = new double[b1 * b2];
        for (int i = 0; i < a1; i++)
            for (int j = 0; j < a2; j++)
                for (int k = 0; k < b1; k++)
                    for (int l = 0; l < b2; l++) {
                        double v = gw[(i * b1 + k) * dIn + j * b2 + l];
                        da[i * a2 + j] += s * v * b[k * b2 + l];
                        db[k * b2 + l] += s * v * a[i * a2 + j];
                    }
        double[] w = kron(a1, a2, b1, b2, s, a, b);
        double[] dx = new double[t * dIn];
        for (int n = 0; n < t; n++)
            for (int o = 0; o < dOut; o++)
                for (int i = 0; i < dIn; i++) dx[n * dIn + i] += g[n * dOut + o] * w[o * dIn + i];
        return new double[][] {da, db, dx};
    }

    static double loss(int t, int a1, int a2, int b1, int b2, double s, double[] x, double[] a, double[] b, double[] g) {
        double[] y = forwardRef(t, a1, a2, b1, b2, s, x, a, b, new double[t * a1 * b1]);
        double l = 0;
        for (int i = 0; i < y.length; i++) l += y[i] * g[i];
        return l;
    }

    /** Tolerance: ΔW's entries are exact products (2 roundings), each output a sum of d_in of them. */
    static double tol(int k1, int k2) {
        return chainTol(k1, k2);
    }

    @ParameterizedTest(name = "t={0} A {1}x{2} B {3}x{4} s={5}")
    @MethodSource("shapes")
    void forwardMatchesMaterialisedKron(int t, int a1, int a2, int b1, int b2, float sc) {
        Case c = newCase("kronForward t=" + t + " A " + a1 + "x" + a2 + " B " + b1 + "x" + b2 + " s=" + sc);
        int dIn = a2 * b2, dOut = a1 * b1;
        float[] x = c.normal(t * dIn), a = c.normal(a1 * a2), b = c.normal(b1 * b2);
        float[] y0 = c.normal(t * dOut, Math.abs(sc) * Math.sqrt(Math.max(1, dIn)));
        try (Scope s = new Scope()) {
            Tensor p = s.poisoned(t, (long) a1 * b2), y = s.of(y0, t, dOut);
            Backend.cpu().kronForward(sc, s.of(x, t, dIn), s.of(a, a1, a2), s.of(b, b1, b2), p, y);
            assertNormwise(c, "p", p.toFloatArray(), pRef(t, a1, a2, b2, toDouble(x), toDouble(a)), gemmTol(a2));
            assertNormwise(c, "y", y.toFloatArray(),
                    forwardRef(t, a1, a2, b1, b2, sc, toDouble(x), toDouble(a), toDouble(b), toDouble(y0)), tol(a2, b2));
        }
    }

    @ParameterizedTest(name = "t={0} A {1}x{2} B {3}x{4} s={5} accumulate={6} dx={7}")
    @MethodSource("backwardCases")
    void backwardMatchesMaterialisedKron(int t, int a1, int a2, int b1, int b2, float sc, boolean accumulate, boolean withDx) {
        Case c = newCase("kronBackward t=" + t + " A " + a1 + "x" + a2 + " B " + b1 + "x" + b2 + " s=" + sc
                + " accumulate=" + accumulate + " dx=" + withDx);
        int dIn = a2 * b2, dOut = a1 * b1;
        float[] x = c.normal(t * dIn), a = c.normal(a1 * a2), b = c.normal(b1 * b2), g = c.normal(t * dOut);
        double[] xd = toDouble(x), ad = toDouble(a), bd = toDouble(b), gd = toDouble(g);
        float[] p = toFloat(pRef(t, a1, a2, b2, xd, ad));   // as the forward stores it
        // Accumulated-into contents of the size of the update, so a lost update cannot hide.
        double as = Math.abs(sc);
        float[] da0 = accumulate ? c.normal(a1 * a2, as * Math.sqrt(Math.max(1.0, (double) t * b1 * b2))) : null;
        float[] db0 = accumulate ? c.normal(b1 * b2, as * Math.sqrt(Math.max(1.0, (double) t * a1 * a2))) : null;
        float[] dx0 = withDx ? c.normal(t * dIn, Math.abs(sc) * Math.sqrt(Math.max(1, dOut))) : null;
        try (Scope s = new Scope()) {
            Tensor q = s.poisoned(t, (long) a1 * b2);
            Tensor da = accumulate ? s.of(da0, a1, a2) : s.poisoned(a1, a2);
            Tensor db = accumulate ? s.of(db0, b1, b2) : s.poisoned(b1, b2);
            Tensor dx = withDx ? s.of(dx0, t, dIn) : null;
            Backend.cpu().kronBackward(sc, s.of(x, t, dIn), s.of(a, a1, a2), s.of(b, b1, b2), s.of(p, t, (long) a1 * b2),
                    s.of(g, t, dOut), q, da, db, dx, accumulate);
            double[][] ref = backwardRef(t, a1, a2, b1, b2, sc, xd, ad, bd, gd);
            if (accumulate) {
                LowRankTest.addInto(ref[0], da0);
                LowRankTest.addInto(ref[1], db0);
            }
            assertNormwise(c, "da", da.toFloatArray(), ref[0], tol(b1, t * b2));
            assertNormwise(c, "db", db.toFloatArray(), ref[1], tol(a2, t * a1));
            if (withDx) {
                LowRankTest.addInto(ref[2], dx0);
                assertNormwise(c, "dx", dx.toFloatArray(), ref[2], tol(b1, a1));
            }
        }
    }

    @ParameterizedTest(name = "A {1}x{2} B {3}x{4} s={5}")
    @MethodSource("shapes")
    void kronMaterialisesTorchKronOrder(int t, int a1, int a2, int b1, int b2, float sc) {
        Case c = newCase("kron A " + a1 + "x" + a2 + " B " + b1 + "x" + b2 + " s=" + sc);
        float[] a = c.normal(a1 * a2), b = c.normal(b1 * b2), w0 = c.normal(a1 * b1 * a2 * b2, Math.abs(sc));
        double[] ref = kron(a1, a2, b1, b2, sc, toDouble(a), toDouble(b));
        try (Scope s = new Scope()) {
            Tensor out = s.poisoned((long) a1 * b1, (long) a2 * b2);
            Backend.cpu().kron(sc, s.of(a, a1, a2), s.of(b, b1, b2), out, false);
            // Each entry is (s·a)·b: two roundings.
            assertWithin(c, "kron", out.toFloatArray(), ref, i -> 2 * U * Math.abs(ref[i]));
            Tensor acc = s.of(w0, (long) a1 * b1, (long) a2 * b2);
            Backend.cpu().kron(sc, s.of(a, a1, a2), s.of(b, b1, b2), acc, true);
            double[] sum = ref.clone();
            LowRankTest.addInto(sum, w0);
            assertWithin(c, "w0 + kron", acc.toFloatArray(), sum, i -> 3 * U * (Math.abs(ref[i]) + Math.abs(w0[i])));
        }
    }

    /** The reference's gradients are those of its loss (central differences on every coordinate). */
    @Test
    void referenceGradientsMatchFiniteDifferences() {
        int t = 3, a1 = 2, a2 = 3, b1 = 3, b2 = 2;
        double s = 0.7;
        Case c = newCase("kron reference finite differences");
        double[] x = toDouble(c.normal(t * a2 * b2)), a = toDouble(c.normal(a1 * a2)), b = toDouble(c.normal(b1 * b2));
        double[] g = toDouble(c.normal(t * a1 * b1));
        double[][] grads = backwardRef(t, a1, a2, b1, b2, s, x, a, b, g);
        double[][] inputs = {a, b, x};
        String[] names = {"da", "db", "dx"};
        for (int v = 0; v < 3; v++) {
            double[] in = inputs[v];
            double[] fd = new double[in.length];
            for (int i = 0; i < in.length; i++) {
                double keep = in[i], h = 1e-6;
                in[i] = keep + h;
                double lp = loss(t, a1, a2, b1, b2, s, x, a, b, g);
                in[i] = keep - h;
                double lm = loss(t, a1, a2, b1, b2, s, x, a, b, g);
                in[i] = keep;
                fd[i] = (lp - lm) / (2 * h);
            }
            final int vv = v;
            assertWithin(c, names[v] + " vs differences", toFloat(grads[v]), fd, i -> 1e-6 * (1 + Math.abs(fd[i])) + 1e-6 * Math.abs(grads[vv][i]));
        }
    }

    @Test
    void badShapesAreRefusedBeforeTheNativeCall() {
        try (Scope s = new Scope()) {
            Tensor x = s.of(new float[12], 2, 6), a = s.of(new float[8], 2, 4), b = s.of(new float[4], 2, 2);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Backend.cpu().kronForward(1f, x, a, b, s.poisoned(2, 4), s.poisoned(2, 4)));
            assertTrue(e.getMessage().contains("a2·b2") && e.getMessage().contains("x F32[2, 6]"), e.getMessage());
            Tensor a2 = s.of(new float[6], 2, 3), b3 = s.of(new float[6], 3, 2);
            e = assertThrows(IllegalArgumentException.class,
                    () -> Backend.cpu().kronForward(1f, x, a2, b3, s.poisoned(2, 5), s.poisoned(2, 6)));
            assertTrue(e.getMessage().startsWith("p "), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> Backend.cpu().kronBackward(1f, x, a2, b3, s.poisoned(2, 4), s.poisoned(2, 6), s.poisoned(2, 4),
                            s.poisoned(3, 2), s.poisoned(3, 2), null, false));
            assertTrue(e.getMessage().startsWith("da "), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Backend.cpu().kron(1f, a2, b3, s.poisoned(6, 5), false));
            assertTrue(e.getMessage().startsWith("out ") && e.getMessage().contains("[6, 6]"), e.getMessage());
        }
    }
}
