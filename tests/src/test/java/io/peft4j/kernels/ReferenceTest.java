package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.function.ToDoubleFunction;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Proves the reference before the kernels are compared with it: each reference gradient equals
 * central differences of the reference forward (in double, relative error <= 1e-6 of the
 * gradient's largest element), erf and Philox match published values.
 */
class ReferenceTest {
    /** Central-difference agreement, relative to the largest gradient element. */
    static final double FD_TOL = 1e-6;

    /** Checks analytic[i] against (f(x + h·e_i) − f(x − h·e_i)) / 2h at the given coordinates. */
    static void assertGradient(Case c, String what, double[] x, double[] analytic, ToDoubleFunction<double[]> f,
                               double h, int[] coords) {
        double scale = maxAbs(analytic) + 1e-300;
        for (int i : coords) {
            double[] xp = x.clone(), xm = x.clone();
            xp[i] += h;
            xm[i] -= h;
            double fd = (f.applyAsDouble(xp) - f.applyAsDouble(xm)) / (2 * h);
            double err = Math.abs(fd - analytic[i]) / scale;
            if (!(err <= FD_TOL)) {
                fail(String.format("%s: reference %s[%d] = %.12g but central difference gives %.12g (rel %.3e > %.1e)",
                        c.label(), what, i, analytic[i], fd, err, FD_TOL));
            }
        }
    }

    /** Every coordinate when there are few, else 40 random ones. */
    static int[] coords(Case c, int n) {
        if (n <= 64) return java.util.stream.IntStream.range(0, n).toArray();
        return c.rnd.ints(40, 0, n).toArray();
    }

    static Stream<Arguments> lowrankSizes() {
        return Stream.of(Arguments.of(1, 1, 1, 1), Arguments.of(3, 5, 4, 2), Arguments.of(7, 33, 9, 3),
                Arguments.of(33, 7, 1, 7));
    }

    @ParameterizedTest(name = "t={0} d_in={1} d_out={2} r={3}")
    @MethodSource("lowrankSizes")
    void lowrankGradientsMatchCentralDifferences(int t, int dIn, int dOut, int r) {
        Case c = newCase("reference lowrank grad " + t + "x" + dIn + "x" + dOut + "x" + r);
        double s = 0.75;
        double[] x = toDouble(c.normal(t * dIn)), a = toDouble(c.normal(r * dIn)), b = toDouble(c.normal(dOut * r));
        double[] y0 = toDouble(c.normal(t * dOut)), g = toDouble(c.normal(t * dOut));
        double[] h = Reference.lowrankH(t, dIn, r, x, a);
        double[] gb = Reference.lowrankGb(t, dOut, r, g, b);
        double[] da = Reference.lowrankDa(t, dIn, r, s, gb, x);
        double[] db = Reference.lowrankDb(t, dOut, r, s, g, h);
        double[] dx = Reference.lowrankDx(t, dIn, r, s, gb, a);
        // L is linear in each of x, a, b, so the differences are exact up to rounding.
        assertGradient(c, "dA", a, da, av -> Reference.lowrankLoss(t, dIn, dOut, r, s, x, av, b, y0, g), 1e-2,
                coords(c, a.length));
        assertGradient(c, "dB", b, db, bv -> Reference.lowrankLoss(t, dIn, dOut, r, s, x, a, bv, y0, g), 1e-2,
                coords(c, b.length));
        assertGradient(c, "dX", x, dx, xv -> Reference.lowrankLoss(t, dIn, dOut, r, s, xv, a, b, y0, g), 1e-2,
                coords(c, x.length));
    }

    @ParameterizedTest(name = "n={0}")
    @MethodSource("io.peft4j.kernels.Sizes#smallSizes")
    void reluGeluGradientsMatchCentralDifferences(int n) {
        Case c = newCase("reference relu/gelu grad n=" + n);
        // Kept away from relu's kink at 0 by more than the step.
        double[] x = toDouble(c.signedUniform(n, 0.05, 4)), g = toDouble(c.normal(n));
        assertGradient(c, "relu dx", x, Reference.reluBackward(x, g), xv -> Reference.dot(g, Reference.relu(xv)), 1e-3,
                coords(c, n));
        assertGradient(c, "gelu dx", x, Reference.geluBackward(x, g), xv -> Reference.dot(g, Reference.gelu(xv)), 1e-5,
                coords(c, n));
    }

    @ParameterizedTest(name = "t={0} c={1}")
    @MethodSource("io.peft4j.kernels.Sizes#smallShapes")
    void softmaxXentGradientMatchesCentralDifferences(int t, int k) {
        Case c = newCase("reference xent grad " + t + "x" + k);
        double scale = 1.5;
        double[] logits = toDouble(c.normal(t * k, 3));
        int[] labels = c.ints(t, k);
        double[] d = Reference.xentBackward(t, k, Reference.softmax(t, k, logits), labels, scale);
        assertGradient(c, "dlogits", logits, d, lv -> scale * Reference.xentLoss(t, k, lv, labels), 1e-5,
                coords(c, logits.length));
    }

    @ParameterizedTest(name = "n={0}")
    @MethodSource("io.peft4j.kernels.Sizes#smallSizes")
    void mseGradientMatchesCentralDifferences(int n) {
        Case c = newCase("reference mse grad n=" + n);
        double[] pred = toDouble(c.normal(n)), target = toDouble(c.normal(n));
        assertGradient(c, "g", pred, Reference.mseGrad(pred, target), pv -> Reference.mseLoss(pv, target), 1e-3,
                coords(c, n));
    }

    @Test
    void erfcMatchesPublishedValues() {
        // erfc as computed by C99's erfc (glibc, within an ulp or two), around the switch at 1.5 and in the tail.
        double[][] known = {
            {0.0, 1.0}, {0.5, 0.4795001221869535}, {1.0, 0.15729920705028513}, {1.4, 0.04771488023735121},
            {1.6, 0.023651616655355985}, {2.0, 0.004677734981047265}, {2.9, 4.109787809945886e-05},
            {3.0, 2.2090496998585438e-05}, {5.0, 1.5374597944280351e-12}, {8.0, 1.1224297172982928e-29},
        };
        for (double[] kv : known) {
            double got = Reference.erfc(kv[0]);
            assertEquals(kv[1], got, 1e-13 * kv[1], "erfc(" + kv[0] + ")");
        }
        assertEquals(0.841344746068542948, Reference.normalCdf(1.0), 1e-15);
        assertEquals(1.349898031630094527e-3, Reference.normalCdf(-3.0), 1e-15 * 1e-3 * 10);
    }

    @Test
    void philoxMatchesRandom123KnownAnswers() {
        // Random123 kat_vectors, philox4x32_10.
        assertArrayEquals(new int[] {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
                Reference.philox4x32(0, 0, 0, 0, 0, 0));
        assertArrayEquals(new int[] {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                Reference.philox4x32(-1, -1, -1, -1, -1, -1));
        assertArrayEquals(new int[] {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
                Reference.philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0));
    }
}
