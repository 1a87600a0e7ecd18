package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The low-rank adapter pair against the reference (whose gradients {@link ReferenceTest} checks by
 * central differences). Forward: h = x·aᵀ (overwritten, starts NaN), y += s·h·bᵀ (starts random).
 * Backward: gb = g·b (workspace, starts NaN); db = s·gᵀ·h; da = s·gbᵀ·x (overwritten, starting NaN,
 * or accumulated into random contents); dx += s·gb·a or dx null. Tolerances: normwise
 * {@link KernelTesting#gemmTol} for one product, {@link KernelTesting#chainTol} for two in a row.
 * Accumulated-into buffers start at the size of the update, so a lost update cannot hide.
 */
class LowRankTest {
    /** t, d_in, d_out, r, s. */
    static final Object[][] SIZES = {
        {1, 1, 1, 1, 0.5f}, {7, 33, 257, 1, 2f}, {33, 7, 1, 7, -0.75f}, {257, 33, 7, 8, 1.5f},
        {1000, 129, 33, 16, 0.25f}, {33, 257, 129, 33, 0.125f},
    };

    static Stream<Arguments> forwardCases() {
        return Stream.of(SIZES).map(Arguments::of);
    }

    static Stream<Arguments> backwardCases() {
        List<Arguments> out = new ArrayList<>();
        for (Object[] s : SIZES) {
            for (boolean acc : new boolean[] {false, true}) {
                for (boolean withDx : new boolean[] {true, false}) {
                    out.add(Arguments.of(s[0], s[1], s[2], s[3], s[4], acc, withDx));
                }
            }
        }
        return out.stream();
    }

    @ParameterizedTest(name = "t={0} d_in={1} d_out={2} r={3} s={4}")
    @MethodSource("forwardCases")
    void forwardMatchesReference(int t, int dIn, int dOut, int r, float sc) {
        Case c = newCase("lowrankForward t=" + t + " d_in=" + dIn + " d_out=" + dOut + " r=" + r + " s=" + sc);
        float[] x = c.normal(t * dIn), a = c.normal(r * dIn), b = c.normal(dOut * r);
        float[] y0 = c.normal(t * dOut, Math.abs(sc) * Math.sqrt((double) dIn * r));
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, t, dIn), ta = s.of(a, r, dIn), tb = s.of(b, dOut, r);
            Tensor h = s.poisoned(t, r), y = s.of(y0, t, dOut);
            Backend.cpu().lowrankForward(sc, tx, ta, tb, h, y);
            assertNormwise(c, "h", h.toFloatArray(), Reference.lowrankH(t, dIn, r, toDouble(x), toDouble(a)), gemmTol(dIn));
            assertNormwise(c, "y", y.toFloatArray(),
                    Reference.lowrankY(t, dIn, dOut, r, sc, toDouble(x), toDouble(a), toDouble(b), toDouble(y0)),
                    chainTol(dIn, r));
        }
    }

    @ParameterizedTest(name = "t={0} d_in={1} d_out={2} r={3} s={4} accumulate={5} dx={6}")
    @MethodSource("backwardCases")
    void backwardMatchesReference(int t, int dIn, int dOut, int r, float sc, boolean accumulate, boolean withDx) {
        Case c = newCase("lowrankBackward t=" + t + " d_in=" + dIn + " d_out=" + dOut + " r=" + r + " s=" + sc
                + " accumulate=" + accumulate + " dx=" + (withDx ? "present" : "null"));
        double as = Math.abs(sc);
        float[] x = c.normal(t * dIn), a = c.normal(r * dIn), b = c.normal(dOut * r), g = c.normal(t * dOut);
        double[] xd = toDouble(x), ad = toDouble(a), bd = toDouble(b), gd = toDouble(g);
        // h as the forward stores it (fp32), so the backward computes the true gradient of Σ g⊙y.
        float[] h = toFloat(Reference.lowrankH(t, dIn, r, xd, ad));
        float[] da0 = accumulate ? c.normal(r * dIn, as * Math.sqrt((double) t * dOut)) : null;
        float[] db0 = accumulate ? c.normal(dOut * r, as * Math.sqrt((double) t * dIn)) : null;
        float[] dx0 = withDx ? c.normal(t * dIn, as * Math.sqrt((double) r * dOut)) : null;
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, t, dIn), ta = s.of(a, r, dIn), tb = s.of(b, dOut, r), th = s.of(h, t, r), tg = s.of(g, t, dOut);
            Tensor gb = s.poisoned(t, r);
            Tensor da = accumulate ? s.of(da0, r, dIn) : s.poisoned(r, dIn);
            Tensor db = accumulate ? s.of(db0, dOut, r) : s.poisoned(dOut, r);
            Tensor dx = withDx ? s.of(dx0, t, dIn) : null;
            Backend.cpu().lowrankBackward(sc, tx, ta, tb, th, tg, gb, da, db, dx, accumulate);

            double[] gbRef = Reference.lowrankGb(t, dOut, r, gd, bd);
            assertNormwise(c, "gb", gb.toFloatArray(), gbRef, gemmTol(dOut));
            double[] dbRef = Reference.lowrankDb(t, dOut, r, sc, gd, toDouble(h));
            double[] daRef = Reference.lowrankDa(t, dIn, r, sc, gbRef, xd);
            if (accumulate) {
                addInto(dbRef, db0);
                addInto(daRef, da0);
            }
            assertNormwise(c, "db", db.toFloatArray(), dbRef, gemmTol(t));
            assertNormwise(c, "da", da.toFloatArray(), daRef, chainTol(dOut, t));
            if (withDx) {
                double[] dxRef = Reference.lowrankDx(t, dIn, r, sc, gbRef, ad);
                addInto(dxRef, dx0);
                assertNormwise(c, "dx", dx.toFloatArray(), dxRef, chainTol(dOut, r));
            }
        }
    }

    static void addInto(double[] acc, float[] add) {
        for (int i = 0; i < acc.length; i++) acc[i] += add[i];
    }
}
