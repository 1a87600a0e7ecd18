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
 * Accumulated-into buffers start at the size of the update (at least 1, for empty products), so a lost
 * update cannot hide.
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

    /**
     * Both sides of every size switch of native/cpu/lowrank.cpp (use_direct: direct kernels or
     * dnnl_sgemm; inside the direct kernels: bᵀ tiles, r a multiple of the vector width), beyond
     * what {@link #SIZES} reaches. t, d_in, d_out, r, s; the backward runs each with
     * (accumulate, dx) = (true, present) and (false, null).
     */
    static final Object[][] SWITCH_SIZES = {
        {7, 33, 257, 65, 0.75f},        // r = 65 > 64: dnnl_sgemm (fwd, bwd)
        {31, 97, 53, 64, -0.5f},        // r = 64, small: direct; r a multiple of every width (bwd gb by rows of b)
        {1358, 257, 129, 64, 0.5f},     // r in (16, 64]: t·r·(d_in + d_out) = 2^25 - 1488 <= 2^25: direct
        {1359, 257, 129, 64, 0.5f},     // ... one row more, past 2^25: dnnl_sgemm
        {31, 97, 53, 16, 1.25f},        // r = 16, small: direct (bwd: r a multiple of every width)
        {513, 129, 127, 5, -1.5f},      // bwd: t > 512 but d_in + d_out = 256, not short rows: direct
        {513, 128, 127, 5, 2f},         // bwd: t > 512 and d_in + d_out = 255 < 256: dnnl_sgemm
        {512, 100, 55, 5, 0.5f},        // bwd: short rows but t = 512: direct
        {33, 257, 257, 33, -0.625f},    // d_out = 257 > 224 columns per bᵀ tile at r = 33: two tiles
        {5, 0, 0, 12, 1.5f},            // d_in = d_out = 0 (no work per row), r = 12 > 8: direct, h = 0
        {6, 0, 9, 3, 1.5f},             // d_in = 0 alone: h = 0, y unchanged, dx empty
        {6, 9, 0, 3, 1.5f},             // d_out = 0, r % W != 0: gb = 0 (bwd zero-fill branch)
        {1, 8191, 8193, 8, 0.5f},       // one row, 2^17 multiply-adds: two threads, one of them without rows
    };

    /**
     * Register-tile remainders the sizes above leave out (native/cpu/lowrank.cpp, Tile): ranks of every
     * remainder of 8, 4 and 2 and multiples of 8 and 16 between 16 and 64 (for the backward's gb by rows of
     * b: column tiles of 2 and 1 vectors), rows of every remainder of 6, 3 and 2, columns of every
     * remainder of 64, 32, 16 and 8.
     */
    static final Object[][] TILE_SIZES = {
        {2, 45, 29, 2, 0.5f}, {3, 17, 130, 4, -1.25f}, {4, 130, 17, 6, 0.75f}, {5, 61, 47, 10, 1.5f},
        {7, 23, 95, 24, -0.5f}, {11, 77, 61, 32, 0.25f}, {13, 99, 83, 48, 1.25f}, {8, 40, 72, 40, -0.75f},
        {9, 111, 49, 56, 0.5f}, {10, 48, 112, 14, 2f},
        // d_in a multiple of 16 (no strip) with odd ranks, and d_out past one bᵀ tile (528 columns at
        // r = 15, 1152 at r = 7): the backward's gb dot products then add into the first tile's.
        {5, 64, 600, 15, 0.5f}, {7, 80, 1200, 7, -0.5f},
    };

    /**
     * r in (8, 16]: t·r·(d_in + d_out) = 2^27 + 2^15 > 2^27: dnnl_sgemm. Forward only: use_direct's
     * test is the same for the backward, whose dnnl code other cases run, and its reference would
     * take seconds at this size.
     */
    static final Object[] LARGE_R16 = {4097, 1023, 1025, 16, 0.25f};

    static Stream<Arguments> forwardSwitchCases() {
        return Stream.of(Stream.of(SWITCH_SIZES), Stream.of(TILE_SIZES), Stream.<Object[]>of(LARGE_R16))
                .flatMap(x -> x).map(Arguments::of);
    }

    static Stream<Arguments> backwardSwitchCases() {
        List<Arguments> out = new ArrayList<>();
        for (Object[] s : Stream.concat(Stream.of(SWITCH_SIZES), Stream.of(TILE_SIZES)).toList()) {
            out.add(Arguments.of(s[0], s[1], s[2], s[3], s[4], true, true));
            out.add(Arguments.of(s[0], s[1], s[2], s[3], s[4], false, false));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "t={0} d_in={1} d_out={2} r={3} s={4}")
    @MethodSource("forwardSwitchCases")
    void forwardBothSidesOfEverySwitch(int t, int dIn, int dOut, int r, float sc) {
        forwardMatchesReference(t, dIn, dOut, r, sc);
    }

    @ParameterizedTest(name = "t={0} d_in={1} d_out={2} r={3} s={4} accumulate={5} dx={6}")
    @MethodSource("backwardSwitchCases")
    void backwardBothSidesOfEverySwitch(int t, int dIn, int dOut, int r, float sc, boolean accumulate, boolean withDx) {
        backwardMatchesReference(t, dIn, dOut, r, sc, accumulate, withDx);
    }

    @ParameterizedTest(name = "t={0} d_in={1} d_out={2} r={3} s={4}")
    @MethodSource("forwardCases")
    void forwardMatchesReference(int t, int dIn, int dOut, int r, float sc) {
        Case c = newCase("lowrankForward t=" + t + " d_in=" + dIn + " d_out=" + dOut + " r=" + r + " s=" + sc);
        float[] x = c.normal(t * dIn), a = c.normal(r * dIn), b = c.normal(dOut * r);
        float[] y0 = c.normal(t * dOut, Math.abs(sc) * Math.sqrt(Math.max(1.0, (double) dIn * r)));
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
        float[] da0 = accumulate ? c.normal(r * dIn, as * Math.sqrt(Math.max(1.0, (double) t * dOut))) : null;
        float[] db0 = accumulate ? c.normal(dOut * r, as * Math.sqrt(Math.max(1.0, (double) t * dIn))) : null;
        float[] dx0 = withDx ? c.normal(t * dIn, as * Math.sqrt(Math.max(1.0, (double) r * dOut))) : null;
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
