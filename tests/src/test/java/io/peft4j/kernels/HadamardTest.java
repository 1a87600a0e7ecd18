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
 * LoHa's Hadamard kernels (native/cpu/kron.cpp) against float64: the rebuild
 * ΔW = s·(W1a·W1b) ⊙ (W2a·W2b) and the factor gradients from GW = ∂L/∂ΔW, whose reference is
 * checked by central differences of L = Σ GW ⊙ ΔW. Odd sizes, ranks 1 to 17, column counts below
 * and above every vector width, and workspaces of 1 row, a few rows and more rows than the layer.
 */
class HadamardTest {
    /** d_out, d_in, r, s. */
    static final Object[][] SIZES = {
        {1, 1, 1, 0.5f}, {7, 33, 2, 1.5f}, {33, 7, 3, -0.75f}, {1, 257, 4, 2f}, {257, 1, 1, 0.25f},
        {65, 129, 8, 0.125f}, {300, 517, 17, 1f},
    };

    static Stream<Arguments> sizes() {
        return Stream.of(SIZES).map(Arguments::of);
    }

    static Stream<Arguments> backwardCases() {
        List<Arguments> out = new ArrayList<>();
        for (Object[] s : SIZES) {
            int dOut = (Integer) s[0];
            out.add(Arguments.of(s[0], s[1], s[2], s[3], 1, false));
            out.add(Arguments.of(s[0], s[1], s[2], s[3], Math.max(1, dOut / 3), true));
            out.add(Arguments.of(s[0], s[1], s[2], s[3], dOut + 5, false));
        }
        return out.stream();
    }

    /** x·y for x [m, k], y [k, n]. */
    static double[] mm(double[] x, double[] y, int m, int k, int n) {
        return Reference.gemm(false, false, m, n, k, 1, x, y, 0, null);
    }

    static double[] rebuildRef(int dOut, int dIn, int r, double s, double[] w1a, double[] w1b, double[] w2a, double[] w2b) {
        double[] m1 = mm(w1a, w1b, dOut, r, dIn), m2 = mm(w2a, w2b, dOut, r, dIn);
        double[] w = new double[dOut * dIn];
        for (int i = 0; i < w.length; i++) w[i] = s * m1[i] * m2[i];
        return w;
    }

    /** {dw1a, dw1b, dw2a, dw2b} from GW, as algorithms.md §3. */
    static double[][] backwardRef(int dOut, int dIn, int r, double s, double[] w1a, double[] w1b, double[] w2a, double[] w2b, double[] gw) {
        double[] m1 = mm(w1a, w1b, dOut, r, dIn), m2 = mm(w2a, w2b, dOut, r, dIn);
        double[] t1 = new double[gw.length], t2 = new double[gw.length];
        for (int i = 0; i < gw.length; i++) {
            t1[i] = s * gw[i] * m2[i];
            t2[i] = s * gw[i] * m1[i];
        }
        return new double[][] {
            Reference.gemm(false, true, dOut, r, dIn, 1, t1, w1b, 0, null),
            Reference.gemm(true, false, r, dIn, dOut, 1, w1a, t1, 0, null),
            Reference.gemm(false, true, dOut, r, dIn, 1, t2, w2b, 0, null),
            Reference.gemm(true, false, r, dIn, dOut, 1, w2a, t2, 0, null),
        };
    }

    @ParameterizedTest(name = "d_out={0} d_in={1} r={2} s={3}")
    @MethodSource("sizes")
    void rebuildMatchesReference(int dOut, int dIn, int r, float sc) {
        Case c = newCase("hadamardRebuild " + dOut + "x" + dIn + " r=" + r + " s=" + sc);
        float[] w1a = c.normal(dOut * r), w1b = c.normal(r * dIn), w2a = c.normal(dOut * r), w2b = c.normal(r * dIn);
        try (Scope s = new Scope()) {
            Tensor dw = s.poisoned(dOut, dIn);
            Backend.cpu().hadamardRebuild(sc, s.of(w1a, dOut, r), s.of(w1b, r, dIn), s.of(w2a, dOut, r), s.of(w2b, r, dIn), dw);
            double[] ref = rebuildRef(dOut, dIn, r, sc, toDouble(w1a), toDouble(w1b), toDouble(w2a), toDouble(w2b));
            // Elementwise: each factor's entry is a sum of r products (relative error ~r·U of Σ|products|).
            double[] m1 = mm(abs(w1a), abs(w1b), dOut, r, dIn), m2 = mm(abs(w2a), abs(w2b), dOut, r, dIn);
            assertWithin(c, "dw", dw.toFloatArray(), ref, i -> (2 * r + 4) * U * Math.abs(sc) * m1[i] * m2[i]);
        }
    }

    @ParameterizedTest(name = "d_out={0} d_in={1} r={2} s={3} ws_rows={4} accumulate={5}")
    @MethodSource("backwardCases")
    void backwardMatchesReference(int dOut, int dIn, int r, float sc, int wsRows, boolean accumulate) {
        Case c = newCase("hadamardBackward " + dOut + "x" + dIn + " r=" + r + " s=" + sc + " ws=" + wsRows + " acc=" + accumulate);
        float[] w1a = c.normal(dOut * r), w1b = c.normal(r * dIn), w2a = c.normal(dOut * r), w2b = c.normal(r * dIn);
        float[] gw = c.normal(dOut * dIn);
        double as = Math.abs(sc);
        float[] a0 = accumulate ? c.normal(dOut * r, as * r * Math.sqrt(dIn)) : null;
        float[] b0 = accumulate ? c.normal(r * dIn, as * r * Math.sqrt(dOut)) : null;
        float[] a20 = accumulate ? c.normal(dOut * r, as * r * Math.sqrt(dIn)) : null;
        float[] b20 = accumulate ? c.normal(r * dIn, as * r * Math.sqrt(dOut)) : null;
        try (Scope s = new Scope()) {
            Tensor tgw = s.of(gw, dOut, dIn), ws = s.poisoned(wsRows, dIn);
            Tensor d1a = accumulate ? s.of(a0, dOut, r) : s.poisoned(dOut, r), d1b = accumulate ? s.of(b0, r, dIn) : s.poisoned(r, dIn);
            Tensor d2a = accumulate ? s.of(a20, dOut, r) : s.poisoned(dOut, r), d2b = accumulate ? s.of(b20, r, dIn) : s.poisoned(r, dIn);
            Backend.cpu().hadamardBackward(sc, s.of(w1a, dOut, r), s.of(w1b, r, dIn), s.of(w2a, dOut, r), s.of(w2b, r, dIn),
                    tgw, ws, d1a, d1b, d2a, d2b, accumulate);
            double[][] ref = backwardRef(dOut, dIn, r, sc, toDouble(w1a), toDouble(w1b), toDouble(w2a), toDouble(w2b), toDouble(gw));
            if (accumulate) {
                LowRankTest.addInto(ref[0], a0);
                LowRankTest.addInto(ref[1], b0);
                LowRankTest.addInto(ref[2], a20);
                LowRankTest.addInto(ref[3], b20);
            }
            String[] names = {"dw1a", "dw1b", "dw2a", "dw2b"};
            Tensor[] got = {d1a, d1b, d2a, d2b};
            long[] k = {dIn, dOut, dIn, dOut};
            for (int i = 0; i < 4; i++) assertNormwise(c, names[i], got[i].toFloatArray(), ref[i], chainTol(r, k[i]));
            // gw now holds T1 = s·GW ⊙ (W2a·W2b).
            double[] m2 = mm(toDouble(w2a), toDouble(w2b), dOut, r, dIn);
            double[] t1 = new double[gw.length];
            for (int i = 0; i < t1.length; i++) t1[i] = sc * gw[i] * m2[i];
            assertNormwise(c, "gw (T1)", tgw.toFloatArray(), t1, gemmTol(r));
        }
    }

    /** The reference gradients are those of L = Σ GW ⊙ ΔW (central differences on every coordinate). */
    @Test
    void referenceGradientsMatchFiniteDifferences() {
        int dOut = 4, dIn = 5, r = 2;
        double s = 1.3;
        Case c = newCase("hadamard reference finite differences");
        double[][] w = {toDouble(c.normal(dOut * r)), toDouble(c.normal(r * dIn)), toDouble(c.normal(dOut * r)), toDouble(c.normal(r * dIn))};
        double[] gw = toDouble(c.normal(dOut * dIn));
        double[][] grads = backwardRef(dOut, dIn, r, s, w[0], w[1], w[2], w[3], gw);
        String[] names = {"dw1a", "dw1b", "dw2a", "dw2b"};
        for (int v = 0; v < 4; v++) {
            double[] fd = new double[w[v].length];
            for (int i = 0; i < fd.length; i++) {
                double keep = w[v][i], h = 1e-6;
                w[v][i] = keep + h;
                double lp = Reference.dot(rebuildRef(dOut, dIn, r, s, w[0], w[1], w[2], w[3]), gw);
                w[v][i] = keep - h;
                double lm = Reference.dot(rebuildRef(dOut, dIn, r, s, w[0], w[1], w[2], w[3]), gw);
                w[v][i] = keep;
                fd[i] = (lp - lm) / (2 * h);
            }
            final double[] g = grads[v];
            assertWithin(c, names[v] + " vs differences", toFloat(g), fd, i -> 1e-6 * (1 + Math.abs(fd[i])) + 1e-6 * Math.abs(g[i]));
        }
    }

    @Test
    void badShapesAreRefusedBeforeTheNativeCall() {
        try (Scope s = new Scope()) {
            Tensor a = s.of(new float[6], 3, 2), b = s.of(new float[8], 2, 4);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Backend.cpu().hadamardRebuild(1f, a, b, a, s.of(new float[6], 2, 3), s.poisoned(3, 4)));
            assertTrue(e.getMessage().startsWith("w2b ") && e.getMessage().contains("[2, 4]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> Backend.cpu().hadamardRebuild(1f, a, b, a, b, s.poisoned(4, 3)));
            assertTrue(e.getMessage().startsWith("dw "), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> Backend.cpu().hadamardBackward(1f, a, b, a, b, s.poisoned(3, 4), s.poisoned(2, 5),
                            s.poisoned(3, 2), s.poisoned(2, 4), s.poisoned(3, 2), s.poisoned(2, 4), false));
            assertTrue(e.getMessage().startsWith("ws ") && e.getMessage().contains("rows >= 1, 4"), e.getMessage());
        }
    }

    static double[] abs(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = Math.abs(a[i]);
        return d;
    }
}
