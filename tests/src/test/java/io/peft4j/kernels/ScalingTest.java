package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The scaling kernels of SSF, (IA)³ and DoRA (scaling.cpp) against float64 references on odd
 * shapes, outputs poisoned with NaN first, in-place forms, and bad arguments.
 */
class ScalingTest {

    @ParameterizedTest(name = "t={0} d={1}")
    @MethodSource("io.peft4j.kernels.Sizes#shapes")
    void rowNormsMatchFloat64(int t, int d) {
        Case c = newCase("rowNorms " + t + "x" + d);
        float[] x = c.normal(t * d);
        try (Scope s = new Scope()) {
            Tensor out = s.poisoned(t);
            Backend.cpu().rowNorms(s.of(x, t, d), out);
            double[] ref = new double[t];
            for (int i = 0; i < t; i++) {
                double a = 0;
                for (int j = 0; j < d; j++) a += (double) x[i * d + j] * x[i * d + j];
                ref[i] = Math.sqrt(a);
            }
            // Accumulated in double, one rounding to float at the end.
            assertWithin(c, "out", out.toFloatArray(), ref, i -> 2 * U * ref[i]);
        }
    }

    @ParameterizedTest(name = "t={0} d={1}")
    @MethodSource("io.peft4j.kernels.Sizes#shapes")
    void scaleShiftForwardMatchesFloat64OutOfPlaceAndInPlace(int t, int d) {
        Case c = newCase("scaleShiftForward " + t + "x" + d);
        float[] x = c.normal(t * d), gamma = c.signedUniform(d, 0.5, 2), beta = c.normal(d);
        double[] ref = new double[t * d], mag = new double[t * d];
        float[] refNoShift = new float[t * d];
        for (int i = 0; i < t; i++) {
            for (int j = 0; j < d; j++) {
                int k = i * d + j;
                ref[k] = (double) x[k] * gamma[j] + beta[j];
                mag[k] = Math.abs((double) x[k] * gamma[j]) + Math.abs(beta[j]);
                refNoShift[k] = (float) ((double) x[k] * gamma[j]);   // one correctly rounded product
            }
        }
        try (Scope s = new Scope()) {
            Backend be = Backend.cpu();
            Tensor y = s.poisoned(t, d);
            be.scaleShiftForward(s.of(x, t, d), s.of(gamma, d), s.of(beta, d), y);
            assertWithin(c, "y", y.toFloatArray(), ref, k -> 2 * U * mag[k]);   // fused or two roundings
            Tensor y2 = s.poisoned(t, d);
            be.scaleShiftForward(s.of(x, t, d), s.of(gamma, d), null, y2);
            assertExact(c, "y without shift", y2.toFloatArray(), refNoShift);
            Tensor inPlace = s.of(x, t, d);
            be.scaleShiftForward(inPlace, s.of(gamma, d), s.of(beta, d), inPlace);
            assertWithin(c, "y in place", inPlace.toFloatArray(), ref, k -> 2 * U * mag[k]);
        }
    }

    @ParameterizedTest(name = "t={0} d={1}")
    @MethodSource("io.peft4j.kernels.Sizes#shapes")
    void scaleShiftBackwardMatchesFloat64(int t, int d) {
        for (boolean accumulate : new boolean[] {false, true}) {
            Case c = newCase("scaleShiftBackward " + t + "x" + d + " accumulate=" + accumulate);
            float[] x = c.normal(t * d), g = c.normal(t * d), gamma = c.signedUniform(d, 0.5, 2);
            float[] dg0 = c.normal(d), db0 = c.normal(d);
            double[] dgRef = new double[d], dbRef = new double[d], dgMag = new double[d], dbMag = new double[d];
            float[] dxRef = new float[t * d];
            for (int j = 0; j < d; j++) {
                if (accumulate) {
                    dgRef[j] = dg0[j];
                    dbRef[j] = db0[j];
                    dgMag[j] = Math.abs(dg0[j]);
                    dbMag[j] = Math.abs(db0[j]);
                }
            }
            for (int i = 0; i < t; i++) {
                for (int j = 0; j < d; j++) {
                    int k = i * d + j;
                    dgRef[j] += (double) g[k] * x[k];
                    dgMag[j] += Math.abs((double) g[k] * x[k]);
                    dbRef[j] += g[k];
                    dbMag[j] += Math.abs(g[k]);
                    dxRef[k] = (float) ((double) g[k] * gamma[j]);
                }
            }
            try (Scope s = new Scope()) {
                Backend be = Backend.cpu();
                Tensor dgamma = accumulate ? s.of(dg0, d) : s.poisoned(d), dbeta = accumulate ? s.of(db0, d) : s.poisoned(d);
                Tensor dx = s.poisoned(t, d);
                be.scaleShiftBackward(s.of(x, t, d), s.of(gamma, d), s.of(g, t, d), dgamma, dbeta, dx, accumulate);
                // Summed in double: one rounding to float at the end (and of the accumulated value).
                assertWithin(c, "dgamma", dgamma.toFloatArray(), dgRef, j -> 2 * U * dgMag[j]);
                assertWithin(c, "dbeta", dbeta.toFloatArray(), dbRef, j -> 2 * U * dbMag[j]);
                assertExact(c, "dx", dx.toFloatArray(), dxRef);
                // dx may be g, and any output may be skipped.
                Tensor gInPlace = s.of(g, t, d), dgOnly = s.poisoned(d);
                be.scaleShiftBackward(s.of(x, t, d), s.of(gamma, d), gInPlace, dgOnly, null, gInPlace, false);
                assertExact(c, "dx in place", gInPlace.toFloatArray(), dxRef);
                double[] dgFresh = new double[d];
                for (int k = 0; k < t * d; k++) dgFresh[k % d] += (double) g[k] * x[k];
                assertWithin(c, "dgamma (dx in place)", dgOnly.toFloatArray(), dgFresh, j -> 2 * U * dgMag[j]);
                Tensor dbOnly = s.poisoned(d);
                be.scaleShiftBackward(null, null, s.of(g, t, d), null, dbOnly, null, false);
                double[] dbFresh = new double[d];
                for (int k = 0; k < t * d; k++) dbFresh[k % d] += g[k];
                assertWithin(c, "dbeta alone", dbOnly.toFloatArray(), dbFresh, j -> 2 * U * dbMag[j]);
            }
        }
    }

    @ParameterizedTest(name = "t={0} d={1}")
    @MethodSource("io.peft4j.kernels.Sizes#shapes")
    void rowScaleIsOneRoundedProduct(int t, int d) {
        Case c = newCase("rowScale " + t + "x" + d);
        float[] x = c.normal(t * d), sc = c.signedUniform(t, 0.5, 2);
        float[] ref = new float[t * d];
        for (int k = 0; k < t * d; k++) ref[k] = (float) ((double) x[k] * sc[k / d]);
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, t, d);
            Backend.cpu().rowScale(s.of(sc, t), tx);
            assertExact(c, "x", tx.toFloatArray(), ref);
        }
    }

    @Test
    void badArgumentsAreRefusedNamingTheTensor() {
        Backend be = Backend.cpu();
        try (Scope s = new Scope()) {
            Tensor x = s.poisoned(3, 5), v5 = s.poisoned(5), v3 = s.poisoned(3), v4 = s.poisoned(4);
            assertNamed(() -> be.rowNorms(x, v5), "out");
            assertNamed(() -> be.rowNorms(v5, v5), "x");
            assertNamed(() -> be.scaleShiftForward(x, v4, null, x), "gamma");
            assertNamed(() -> be.scaleShiftForward(x, v5, v3, x), "beta");
            assertNamed(() -> be.scaleShiftForward(x, v5, null, s.poisoned(5, 3)), "y");
            assertNamed(() -> be.scaleShiftBackward(null, v5, x, v5, null, null, false), "dgamma needs x");
            assertNamed(() -> be.scaleShiftBackward(x, null, x, null, null, s.poisoned(3, 5), false), "dx needs gamma");
            assertNamed(() -> be.scaleShiftBackward(x, v5, x, null, v3, null, false), "dbeta");
            assertNamed(() -> be.scaleShiftBackward(x, v5, x, null, null, s.poisoned(5, 3), false), "dx");
            assertNamed(() -> be.rowScale(v5, x), "s");
            // A valid call after the refusals works.
            Tensor ok = s.of(new float[] {3, 4}, 1, 2), n = s.poisoned(1);
            be.rowNorms(ok, n);
            assertTrue(n.toFloatArray()[0] == 5f);
        }
    }

    private static void assertNamed(org.junit.jupiter.api.function.Executable call, String fragment) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }
}
