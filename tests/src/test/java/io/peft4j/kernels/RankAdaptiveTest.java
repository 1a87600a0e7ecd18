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
 * The rank-adaptive ops (native/cpu/rank_adaptive.cpp) against float64 references written here
 * from the header: the gated low-rank product y += c·((x·aᵀ) ⊙ g)·bᵀ with every gradient (the
 * reference's own gradients checked by central differences), the importance EMAs, and both
 * threshold semantics on hand-picked values including the boundaries ξ and 2ξ.
 */
class RankAdaptiveTest {
    /** t, d_in, d_out, r, c. */
    static final Object[][] SIZES = {
        {1, 1, 1, 1, 0.5f}, {7, 33, 17, 3, 2f}, {33, 7, 1, 7, -0.75f}, {257, 33, 7, 8, 1.5f}, {129, 65, 33, 13, 0.25f},
        {5, 0, 9, 3, 1.5f}, {6, 9, 0, 3, 1.5f}, {0, 5, 4, 2, 1f},
    };

    static Stream<Arguments> sizes() {
        return Stream.of(SIZES).map(Arguments::of);
    }

    static Stream<Arguments> backwardCases() {
        List<Arguments> out = new ArrayList<>();
        for (Object[] s : SIZES) {
            out.add(Arguments.of(s[0], s[1], s[2], s[3], s[4], false, true));
            out.add(Arguments.of(s[0], s[1], s[2], s[3], s[4], true, true));
            out.add(Arguments.of(s[0], s[1], s[2], s[3], s[4], false, false));
        }
        return out.stream();
    }

    // ---- float64 reference ----

    /** h·diag(g): [t, r]. */
    static double[] gated(double[] h, double[] g, int t, int r) {
        double[] out = new double[t * r];
        for (int i = 0; i < t; i++) for (int j = 0; j < r; j++) out[i * r + j] = h[i * r + j] * g[j];
        return out;
    }

    static double[] forwardY(int t, int dIn, int dOut, int r, double c, double[] x, double[] a, double[] g, double[] b, double[] y0) {
        double[] hg = gated(Reference.lowrankH(t, dIn, r, x, a), g, t, r);
        return Reference.gemm(false, true, t, dOut, r, c, hg, b, 1, y0);
    }

    /** Gradients of L = Σ gy ⊙ y: {da, db, dg, dx}. */
    static double[][] backward(int t, int dIn, int dOut, int r, double c, double[] x, double[] a, double[] g, double[] b, double[] gy) {
        double[] h = Reference.lowrankH(t, dIn, r, x, a);
        double[] gb = Reference.lowrankGb(t, dOut, r, gy, b);
        double[] gbg = gated(gb, g, t, r);
        double[] dg = new double[r];
        for (int j = 0; j < r; j++) {
            double s = 0;
            for (int i = 0; i < t; i++) s += gb[i * r + j] * h[i * r + j];
            dg[j] = c * s;
        }
        return new double[][] {
            Reference.gemm(true, false, r, dIn, t, c, gbg, x, 0, null),
            Reference.gemm(true, false, dOut, r, t, c, gy, gated(h, g, t, r), 0, null),
            dg,
            Reference.gemm(false, false, t, dIn, r, c, gbg, a, 0, null),
        };
    }

    @Test
    void referenceGradientsMatchCentralDifferences() {
        int t = 5, dIn = 7, dOut = 4, r = 3;
        double c = 0.75;
        Case k = newCase("rank gated reference grad");
        double[] x = toDouble(k.normal(t * dIn)), a = toDouble(k.normal(r * dIn)), g = toDouble(k.normal(r));
        double[] b = toDouble(k.normal(dOut * r)), gy = toDouble(k.normal(t * dOut)), y0 = new double[t * dOut];
        double[][] d = backward(t, dIn, dOut, r, c, x, a, g, b, gy);
        ReferenceTest.assertGradient(k, "da", a, d[0], v -> Reference.dot(forwardY(t, dIn, dOut, r, c, x, v, g, b, y0), gy), 1e-5,
                ReferenceTest.coords(k, a.length));
        ReferenceTest.assertGradient(k, "db", b, d[1], v -> Reference.dot(forwardY(t, dIn, dOut, r, c, x, a, g, v, y0), gy), 1e-5,
                ReferenceTest.coords(k, b.length));
        ReferenceTest.assertGradient(k, "dg", g, d[2], v -> Reference.dot(forwardY(t, dIn, dOut, r, c, x, a, v, b, y0), gy), 1e-5,
                ReferenceTest.coords(k, g.length));
        ReferenceTest.assertGradient(k, "dx", x, d[3], v -> Reference.dot(forwardY(t, dIn, dOut, r, c, v, a, g, b, y0), gy), 1e-5,
                ReferenceTest.coords(k, x.length));
    }

    // ---- gated low-rank ----

    @ParameterizedTest(name = "t={0} d_in={1} d_out={2} r={3} c={4}")
    @MethodSource("sizes")
    void gatedForwardMatchesReference(int t, int dIn, int dOut, int r, float c) {
        Case k = newCase("rankGatedForward t=" + t + " d_in=" + dIn + " d_out=" + dOut + " r=" + r + " c=" + c);
        float[] x = k.normal(t * dIn), a = k.normal(r * dIn), g = k.normal(r), b = k.normal(dOut * r);
        float[] y0 = k.normal(t * dOut, Math.abs(c) * Math.sqrt(Math.max(1.0, (double) dIn * r)));
        try (Scope s = new Scope()) {
            Tensor h = s.poisoned(t, r), hg = s.poisoned(t, r), y = s.of(y0, t, dOut);
            Backend.cpu().rankGatedForward(c, s.of(x, t, dIn), s.of(a, r, dIn), s.of(g, r, 1), s.of(b, dOut, r), h, hg, y);
            assertNormwise(k, "h", h.toFloatArray(), Reference.lowrankH(t, dIn, r, toDouble(x), toDouble(a)), gemmTol(dIn));
            assertNormwise(k, "y", y.toFloatArray(),
                    forwardY(t, dIn, dOut, r, c, toDouble(x), toDouble(a), toDouble(g), toDouble(b), toDouble(y0)), chainTol(dIn, r));
        }
    }

    @ParameterizedTest(name = "t={0} d_in={1} d_out={2} r={3} c={4} accumulate={5} outputs={6}")
    @MethodSource("backwardCases")
    void gatedBackwardMatchesReference(int t, int dIn, int dOut, int r, float c, boolean accumulate, boolean all) {
        Case k = newCase("rankGatedBackward t=" + t + " d_in=" + dIn + " d_out=" + dOut + " r=" + r + " c=" + c + " acc=" + accumulate + " all=" + all);
        float[] x = k.normal(t * dIn), a = k.normal(r * dIn), g = k.normal(r), b = k.normal(dOut * r), gy = k.normal(t * dOut);
        double[] xd = toDouble(x), ad = toDouble(a), gd = toDouble(g), bd = toDouble(b), gyd = toDouble(gy);
        float[] h = toFloat(Reference.lowrankH(t, dIn, r, xd, ad));
        double as = Math.abs(c) * Math.sqrt(Math.max(1, t * Math.max(dIn, dOut)));
        float[] da0 = k.normal(r * dIn, as), db0 = k.normal(dOut * r, as), dg0 = k.normal(r, as), dx0 = k.normal(t * dIn, as);
        double[][] ref = backward(t, dIn, dOut, r, c, xd, ad, gd, bd, gyd);
        try (Scope s = new Scope()) {
            Tensor gb = s.poisoned(t, r), ws = s.poisoned(t, r);
            Tensor da = accumulate ? s.of(da0, r, dIn) : s.poisoned(r, dIn);
            Tensor db = accumulate ? s.of(db0, dOut, r) : s.poisoned(dOut, r);
            Tensor dg = accumulate ? s.of(dg0, r) : s.poisoned(r);
            Tensor dx = s.of(dx0, t, dIn);
            // all = false: only dg and dx (da, db null), the others must stay untouched.
            Backend.cpu().rankGatedBackward(c, s.of(x, t, dIn), s.of(a, r, dIn), s.of(g, r), s.of(b, dOut, r), s.of(h, t, r),
                    s.of(gy, t, dOut), gb, ws, all ? da : null, all ? db : null, dg, dx, accumulate);
            assertNormwise(k, "gb", gb.toFloatArray(), Reference.lowrankGb(t, dOut, r, gyd, bd), gemmTol(dOut));
            if (accumulate) {
                LowRankTest.addInto(ref[0], da0);
                LowRankTest.addInto(ref[1], db0);
                LowRankTest.addInto(ref[2], dg0);
            }
            LowRankTest.addInto(ref[3], dx0);
            if (all) {
                assertNormwise(k, "da", da.toFloatArray(), ref[0], chainTol(dOut, t));
                assertNormwise(k, "db", db.toFloatArray(), ref[1], gemmTol(t));
            } else {
                for (float v : da.toFloatArray()) assertTrue(Float.isNaN(v), k.label() + ": da was null and must not be written");
            }
            assertNormwise(k, "dg", dg.toFloatArray(), ref[2], chainTol(dOut, t));
            assertNormwise(k, "dx", dx.toFloatArray(), ref[3], chainTol(dOut, r));
        }
    }

    // ---- importance EMAs ----

    @ParameterizedTest(name = "n={0}")
    @MethodSource("io.peft4j.kernels.RankAdaptiveTest#lengths")
    void importanceUpdateMatchesReference(int n) {
        Case k = newCase("rankImportanceUpdate n=" + n);
        float b1 = 0.85f, b2 = 0.7f;
        float[] w = k.normal(n), grad = k.normal(n), ib = k.uniform(n, 0, 2), ub = k.uniform(n, 0, 2);
        double[] ibRef = new double[n], ubRef = new double[n];
        for (int i = 0; i < n; i++) {
            double ipt = Math.abs((double) w[i] * grad[i]);
            ibRef[i] = b1 * (double) ib[i] + (1 - (double) b1) * ipt;
            ubRef[i] = b2 * (double) ub[i] + (1 - (double) b2) * Math.abs(ipt - ibRef[i]);
        }
        try (Scope s = new Scope()) {
            Tensor tib = s.of(ib, n), tub = s.of(ub, n);
            Backend.cpu().rankImportanceUpdate(s.of(w, n), s.of(grad, n), tib, tub, b1, b2);
            // A handful of roundings per element: 8 ulp of the magnitudes involved.
            float[] gotI = tib.toFloatArray(), gotU = tub.toFloatArray();
            assertWithin(k, "ibar", gotI, ibRef, i -> 8 * U * (Math.abs(ib[i]) + Math.abs((double) w[i] * grad[i])));
            assertWithin(k, "ubar", gotU, ubRef, i -> 16 * U * (Math.abs(ub[i]) + Math.abs((double) w[i] * grad[i]) + Math.abs(ib[i])));
        }
    }

    static Stream<Arguments> lengths() {
        return Stream.of(1, 7, 33, 257, 70001).map(Arguments::of);
    }

    // ---- thresholding ----

    @Test
    void thresholdBothSemanticsOnHandPickedValues() {
        float xi = 0.25f;
        //            0    ±ξ/2    ±ξ      ±1.5ξ  ±2ξ    ±3ξ     ±1     NaN
        float[] x = {0f, 0.125f, -0.125f, 0.25f, -0.25f, 0.375f, -0.375f, 0.5f, -0.5f, 0.75f, -0.75f, 1f, -1f, Float.NaN};
        // SoRA's code: |x| < ξ: 0; |x| = ξ: kept; ξ < |x| < 2ξ: 0 (shrunk below ξ); |x| >= 2ξ: shrunk by ξ.
        float[] reference = {0f, 0f, 0f, 0.25f, -0.25f, 0f, 0f, 0.25f, -0.25f, 0.5f, -0.5f, 0.75f, -0.75f, Float.NaN};
        // Soft threshold: |x| <= ξ: 0, else shrunk by ξ.
        float[] soft = {0f, 0f, 0f, 0f, 0f, 0.125f, -0.125f, 0.25f, -0.25f, 0.5f, -0.5f, 0.75f, -0.75f, Float.NaN};
        Case k = newCase("rankThreshold hand-picked");
        try (Scope s = new Scope()) {
            Tensor t = s.of(x, x.length);
            Backend.cpu().rankThreshold(xi, false, t);
            assertExact(k, "reference semantics", t.toFloatArray(), reference);
            Tensor u = s.of(x, x.length);
            Backend.cpu().rankThreshold(xi, true, u);
            assertExact(k, "soft threshold", u.toFloatArray(), soft);
        }
    }

    @ParameterizedTest(name = "n={0}")
    @MethodSource("io.peft4j.kernels.RankAdaptiveTest#lengths")
    void thresholdOnRandomValuesMatchesItsDefinition(int n) {
        Case k = newCase("rankThreshold n=" + n);
        float xi = 0.3f;
        float[] x = k.normal(n);
        float[] ref = new float[n], soft = new float[n];
        for (int i = 0; i < n; i++) {
            float v = x[i], a = Math.abs(v);
            float shrunk = v - Math.signum(v) * xi;   // exact enough: both semantics subtract once
            ref[i] = a == xi ? v : Math.abs(shrunk) < xi || a < xi ? 0f : shrunk;
            soft[i] = a <= xi ? 0f : shrunk;
        }
        try (Scope s = new Scope()) {
            Tensor t = s.of(x, n), u = s.of(x, n);
            Backend.cpu().rankThreshold(xi, false, t);
            Backend.cpu().rankThreshold(xi, true, u);
            assertExact(k, "reference semantics", t.toFloatArray(), ref);
            assertExact(k, "soft threshold", u.toFloatArray(), soft);
        }
    }

    // ---- bad arguments (Java side, before any native call) ----

    @Test
    void badArgumentsAreRefusedNamingTheTensor() {
        try (Scope s = new Scope()) {
            Tensor x = s.poisoned(3, 4), a = s.poisoned(2, 4), b = s.poisoned(5, 2), g = s.poisoned(2), h = s.poisoned(3, 2), y = s.poisoned(3, 5);
            Backend be = Backend.cpu();
            var e1 = assertThrows(IllegalArgumentException.class, () -> be.rankGatedForward(1f, x, a, s.poisoned(3), b, h, h, y));
            assertTrue(e1.getMessage().contains("g") && e1.getMessage().contains("r = 2"), e1.getMessage());
            var e2 = assertThrows(IllegalArgumentException.class, () -> be.rankGatedForward(1f, x, a, g, b, h, s.poisoned(2, 3), y));
            assertTrue(e2.getMessage().startsWith("hg"), e2.getMessage());
            var e3 = assertThrows(IllegalArgumentException.class,
                    () -> be.rankGatedBackward(1f, x, a, g, b, h, y, h, h, null, null, s.poisoned(3), null, false));
            assertTrue(e3.getMessage().startsWith("dg"), e3.getMessage());
            var e4 = assertThrows(IllegalArgumentException.class, () -> be.rankGatedForward(Float.NaN, x, a, g, b, h, h, y));
            assertTrue(e4.getMessage().contains("c must be finite"), e4.getMessage());
            var e5 = assertThrows(IllegalArgumentException.class, () -> be.rankImportanceUpdate(g, g, g, s.poisoned(3), 0.85f, 0.85f));
            assertTrue(e5.getMessage().startsWith("ubar"), e5.getMessage());
            var e6 = assertThrows(IllegalArgumentException.class, () -> be.rankImportanceUpdate(g, g, g, g, 1f, 0.85f));
            assertTrue(e6.getMessage().contains("beta1=1.0"), e6.getMessage());
            var e7 = assertThrows(IllegalArgumentException.class, () -> be.rankThreshold(-1f, false, g));
            assertTrue(e7.getMessage().contains("xi=-1.0"), e7.getMessage());
        }
    }
}
