package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.backend.NativeLoader;
import io.peft4j.bindings.Peft4j;
import io.peft4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * LayerNorm forward (y, mean, rstd start NaN) and backward (dx starts NaN; dw and db are added to
 * random contents) against {@link TransformerReference} on rows 1, 2, 17, 33 and a 2176-row batch
 * (several threads), widths 1, 16, 24, 64 and 257 (two column blocks of the weight gradient), with
 * and without a bias; the reference passes central differences.
 */
class LayerNormTest {
    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (int t : new int[] {1, 2, 17, 33, 2176}) {
            for (int d : new int[] {1, 16, 24, 64, 257}) out.add(Arguments.of(t, d, t % 2 == 1));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "t={0} d={1} bias={2}")
    @MethodSource("cases")
    void forwardAndBackwardMatchTheReference(int t, int d, boolean withBias) {
        Case c = newCase("layernorm t=" + t + " d=" + d + " bias=" + withBias);
        float eps = 1e-5f;
        // An offset mean: a one-pass variance would lose digits here.
        float[] x = c.normal(t * d, 2.0);
        for (int i = 0; i < x.length; i++) x[i] += 30f;
        float[] w = c.normal(d), b = c.normal(d), g = c.normal(t * d);
        float[] dw0 = c.normal(d), db0 = c.normal(d);
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, t, d), tw = s.of(w, d), tb = withBias ? s.of(b, d) : null;
            Tensor y = s.poisoned(t, d), mean = s.poisoned(t), rstd = s.poisoned(t);
            Backend.cpu().layerNormForward(eps, tx, tw, tb, y, mean, rstd);
            double[] ref = TransformerReference.layerNorm(t, d, eps, toDouble(x), toDouble(w), withBias ? toDouble(b) : null);
            double tol = 1e-6 * (8 + Math.sqrt(d)) * 8;
            if (d == 1) assertWithin(c, "y", y.toFloatArray(), ref, i -> 1e-6 * (1 + Math.abs(ref[i])));
            else assertNormwise(c, "y", y.toFloatArray(), ref, tol);

            Tensor dx = s.poisoned(t, d), dw = s.of(dw0, d), db = s.of(db0, d);
            Backend.cpu().layerNormBackward(tx, tw, mean, rstd, s.of(g, t, d), dx, dw, db);
            double[][] gr = TransformerReference.layerNormBackward(t, d, eps, toDouble(x), toDouble(w), toDouble(g));
            double[] refDw = new double[d], refDb = new double[d];
            for (int j = 0; j < d; j++) {
                refDw[j] = dw0[j] + gr[1][j];
                refDb[j] = db0[j] + gr[2][j];
            }
            // d = 1: x̂ = 0 and dx = rstd·(g·w − g·w) = 0 up to the rounding of g·w (an FMA keeps it), times rstd = 1/√eps.
            if (d == 1) assertWithin(c, "dx", dx.toFloatArray(), gr[0], i -> 4 * U / Math.sqrt(eps) * Math.abs(g[i] * w[0]));
            else assertNormwise(c, "dx", dx.toFloatArray(), gr[0], tol);
            assertNormwise(c, "dw", dw.toFloatArray(), refDw, tol);
            assertNormwise(c, "db", db.toFloatArray(), refDb, 1e-6);
        }
    }

    /** Rows split over threads and column sums taken in row order: one thread or two give the same bits. */
    @Test
    void resultsDoNotDependOnTheThreadCount() {
        Case c = newCase("layernorm threads");
        int t = 2176, d = 64;
        float[] x = c.normal(t * d), w = c.normal(d), b = c.normal(d), g = c.normal(t * d);
        float[][] got = new float[2][];
        int slot = 0;
        for (int threads : new int[] {1, 2}) {
            try (Backend be = Backend.cpu(threads); Scope s = new Scope()) {
                Tensor tx = s.of(x, t, d), tw = s.of(w, d), y = s.poisoned(t, d), mean = s.poisoned(t), rstd = s.poisoned(t);
                be.layerNormForward(1e-6f, tx, tw, s.of(b, d), y, mean, rstd);
                Tensor dx = s.poisoned(t, d), dw = s.zeros(io.peft4j.tensor.DType.F32, d), db = s.zeros(io.peft4j.tensor.DType.F32, d);
                be.layerNormBackward(tx, tw, mean, rstd, s.of(g, t, d), dx, dw, db);
                float[] all = new float[2 * t * d + 2 * d];
                System.arraycopy(y.toFloatArray(), 0, all, 0, t * d);
                System.arraycopy(dx.toFloatArray(), 0, all, t * d, t * d);
                System.arraycopy(dw.toFloatArray(), 0, all, 2 * t * d, d);
                System.arraycopy(db.toFloatArray(), 0, all, 2 * t * d + d, d);
                got[slot++] = all;
            }
        }
        assertBits(c.label(), "y, dx, dw, db on 1 and 2 threads", got[1], got[0]);
    }

    /** Only the wanted gradients are written: null dx, or null dw and db. */
    @Test
    void nullGradientsAreSkipped() {
        Case c = newCase("layernorm nulls");
        int t = 7, d = 24;
        float[] x = c.normal(t * d), w = c.normal(d), g = c.normal(t * d);
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, t, d), tw = s.of(w, d), y = s.poisoned(t, d), mean = s.poisoned(t), rstd = s.poisoned(t);
            Backend.cpu().layerNormForward(1e-6f, tx, tw, null, y, mean, rstd);
            Tensor dw = s.poisoned(d);
            Backend.cpu().layerNormBackward(tx, tw, mean, rstd, s.of(g, t, d), null, dw, null);
            double[][] gr = TransformerReference.layerNormBackward(t, d, 1e-6, toDouble(x), toDouble(w), toDouble(g));
            assertTrue(Float.isNaN(dw.toFloatArray()[0]), "dw is accumulated into (NaN stays NaN)");
            Tensor dx = s.poisoned(t, d);
            Backend.cpu().layerNormBackward(tx, tw, mean, rstd, s.of(g, t, d), dx, null, null);
            assertNormwise(c, "dx", dx.toFloatArray(), gr[0], 1e-5);
        }
    }

    @ParameterizedTest(name = "t={0} d={1}")
    @MethodSource("fdCases")
    void referenceGradientsMatchFiniteDifferences(int t, int d) {
        Case c = newCase("layernorm fd t=" + t + " d=" + d);
        double eps = 1e-5;
        double[] x = toDouble(c.normal(t * d)), w = toDouble(c.normal(d)), g = toDouble(c.normal(t * d));
        double[][] gr = TransformerReference.layerNormBackward(t, d, eps, x, w, g);
        for (int trial = 0; trial < 8; trial++) {
            int i = c.rnd.nextInt(t * d), j = c.rnd.nextInt(d);
            double h = 1e-6;
            double fdx = central(x, i, h, () -> TransformerReference.dot(g, TransformerReference.layerNorm(t, d, eps, x, w, null)));
            assertEquals(fdx, gr[0][i], 1e-6 * (1 + Math.abs(fdx)), c.label() + ": dx[" + i + "]");
            double fdw = central(w, j, h, () -> TransformerReference.dot(g, TransformerReference.layerNorm(t, d, eps, x, w, null)));
            assertEquals(fdw, gr[1][j], 1e-6 * (1 + Math.abs(fdw)), c.label() + ": dw[" + j + "]");
            double[] bias = new double[d];
            double fdb = central(bias, j, h, () -> TransformerReference.dot(g, TransformerReference.layerNorm(t, d, eps, x, w, bias)));
            assertEquals(fdb, gr[2][j], 1e-6 * (1 + Math.abs(fdb)), c.label() + ": db[" + j + "]");
        }
    }

    static double central(double[] v, int i, double h, java.util.function.DoubleSupplier f) {
        double keep = v[i];
        v[i] = keep + h;
        double up = f.getAsDouble();
        v[i] = keep - h;
        double down = f.getAsDouble();
        v[i] = keep;
        return (up - down) / (2 * h);
    }

    static Stream<Arguments> fdCases() {
        return Stream.of(Arguments.of(1, 16), Arguments.of(2, 24), Arguments.of(17, 1), Arguments.of(33, 16));
    }

    @Test
    void badArgumentsAreRefused() {
        try (Scope s = new Scope()) {
            Tensor x = s.poisoned(3, 4), w = s.poisoned(4), m = s.poisoned(3);
            Backend be = Backend.cpu();
            assertThrows(IllegalArgumentException.class, () -> be.layerNormForward(0f, x, w, null, x, m, m), "eps 0");
            assertThrows(IllegalArgumentException.class, () -> be.layerNormForward(1e-5f, x, s.poisoned(3), null, x, m, m), "w shape");
            assertThrows(IllegalArgumentException.class, () -> be.layerNormForward(1e-5f, x, w, null, x, s.poisoned(4), m), "mean shape");
            assertThrows(IllegalArgumentException.class, () -> be.layerNormBackward(x, w, m, m, s.poisoned(4, 3), null, null, null), "g shape");
        }
        NativeLoader.loadCpu();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.ADDRESS);
            assertEquals(0, Peft4j.p4j_ctx_create(1, out));
            MemorySegment ctx = out.get(ValueLayout.ADDRESS, 0);
            MemorySegment buf = a.allocate(1024, 64);
            try {
                assertEquals(-1, Peft4j.p4j_layernorm_forward(ctx, 2, 4, -1f, buf, buf, MemorySegment.NULL, buf, buf, buf));
                assertTrue(AttentionTest.lastError().contains("eps (-1)"), AttentionTest.lastError());
                assertEquals(-1, Peft4j.p4j_layernorm_backward(ctx, 2, -4, buf, buf, buf, buf, buf, buf, buf, buf));
                assertTrue(AttentionTest.lastError().contains("d (-4) < 0"), AttentionTest.lastError());
                assertEquals(-1, Peft4j.p4j_layernorm_forward(ctx, 2, 4, 1e-5f, buf, MemorySegment.NULL, MemorySegment.NULL, buf, buf, buf));
                assertTrue(AttentionTest.lastError().contains("w is null"), AttentionTest.lastError());
            } finally {
                Peft4j.p4j_ctx_destroy(ctx);
            }
        }
    }
}
