package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The token-row kernels (pure data movement, so exact): patchify, inserting rows into every
 * sequence and its backward (the inserted rows' gradient summed over sequences), gathering one
 * token per sequence and its backward. Outputs start NaN; drows is added to random contents.
 */
class TokensTest {
    @ParameterizedTest(name = "b={0} side={1} p={2}")
    @CsvSource({"1, 7, 7", "3, 28, 7", "2, 6, 3", "129, 28, 4", "5, 9, 1"})
    void patchifyCutsPatchesRowMajor(int b, int side, int p) {
        Case c = newCase("patchify " + b + " " + side + " " + p);
        float[] x = c.normal(b * side * side);
        int grid = side / p;
        float[] expected = new float[x.length];
        for (int s = 0; s < b; s++)
            for (int py = 0; py < grid; py++)
                for (int px = 0; px < grid; px++)
                    for (int r = 0; r < p; r++)
                        for (int q = 0; q < p; q++)
                            expected[((s * grid * grid) + py * grid + px) * p * p + r * p + q] = x[s * side * side + (py * p + r) * side + px * p + q];
        try (Scope sc = new Scope()) {
            Tensor out = sc.poisoned((long) b * grid * grid, (long) p * p);
            Backend.cpu().patchify(side, side, p, sc.of(x, b, (long) side * side), out);
            assertExact(c, "patches", out.toFloatArray(), expected);
        }
    }

    @ParameterizedTest(name = "b={0} t={1} n={2} at={3} d={4}")
    @CsvSource({"1, 1, 1, 0, 1", "3, 16, 1, 0, 64", "3, 17, 5, 1, 24", "2, 2, 3, 2, 16", "700, 17, 10, 1, 64", "4, 33, 0, 5, 7"})
    void insertAndItsBackward(int b, int t, int n, int at, int d) {
        Case c = newCase("tokens insert " + b + " " + t + " " + n + " " + at + " " + d);
        float[] x = c.normal(b * t * d), rows = c.normal(n * d), g = c.normal(b * (t + n) * d), drows0 = c.normal(n * d);
        float[] expected = new float[b * (t + n) * d];
        float[] dxExpected = new float[b * t * d];
        double[] drowsExpected = toDouble(drows0);
        for (int s = 0; s < b; s++) {
            for (int r = 0; r < t + n; r++) {
                for (int j = 0; j < d; j++) {
                    int o = (s * (t + n) + r) * d + j;
                    if (r < at) {
                        expected[o] = x[(s * t + r) * d + j];
                        dxExpected[(s * t + r) * d + j] = g[o];
                    } else if (r < at + n) {
                        expected[o] = rows[(r - at) * d + j];
                        drowsExpected[(r - at) * d + j] += g[o];
                    } else {
                        expected[o] = x[(s * t + r - n) * d + j];
                        dxExpected[(s * t + r - n) * d + j] = g[o];
                    }
                }
            }
        }
        try (Scope sc = new Scope()) {
            Tensor out = sc.poisoned((long) b * (t + n), d);
            Backend.cpu().tokensInsert(b, at, sc.of(x, (long) b * t, d), sc.of(rows, n, d), out);
            assertExact(c, "out", out.toFloatArray(), expected);
            Tensor dx = sc.poisoned((long) b * t, d), drows = sc.of(drows0, n, d);
            Backend.cpu().tokensInsertBackward(b, t, n, at, sc.of(g, (long) b * (t + n), d), dx, drows);
            assertExact(c, "dx", dx.toFloatArray(), dxExpected);
            if (n > 0) assertNormwise(c, "drows", drows.toFloatArray(), drowsExpected, 1e-6);
        }
    }

    @ParameterizedTest(name = "b={0} t={1} index={2} d={3}")
    @CsvSource({"1, 1, 0, 1", "3, 17, 0, 64", "5, 33, 32, 24", "300, 17, 3, 64"})
    void gatherAndItsBackward(int b, int t, int index, int d) {
        Case c = newCase("tokens gather " + b + " " + t + " " + index + " " + d);
        float[] x = c.normal(b * t * d), g = c.normal(b * d);
        float[] expected = new float[b * d], dxExpected = new float[b * t * d];
        for (int s = 0; s < b; s++) {
            for (int j = 0; j < d; j++) {
                expected[s * d + j] = x[(s * t + index) * d + j];
                dxExpected[(s * t + index) * d + j] = g[s * d + j];
            }
        }
        try (Scope sc = new Scope()) {
            Tensor out = sc.poisoned(b, d);
            Backend.cpu().tokensGather(b, index, sc.of(x, (long) b * t, d), out);
            assertExact(c, "out", out.toFloatArray(), expected);
            Tensor dx = sc.poisoned((long) b * t, d);
            Backend.cpu().tokensGatherBackward(b, index, sc.of(g, b, d), dx);
            assertExact(c, "dx", dx.toFloatArray(), dxExpected);
        }
    }

    @Test
    void badArgumentsAreRefused() {
        try (Scope s = new Scope()) {
            Backend be = Backend.cpu();
            Tensor x = s.poisoned(6, 4);
            assertThrows(IllegalArgumentException.class, () -> be.patchify(28, 28, 5, s.poisoned(1, 784), s.poisoned(1, 784)), "28 % 5");
            assertThrows(IllegalArgumentException.class, () -> be.patchify(28, 28, 7, s.poisoned(1, 783), s.poisoned(16, 49)), "not 28x28");
            assertThrows(IllegalArgumentException.class, () -> be.tokensInsert(4, 0, x, s.poisoned(1, 4), s.poisoned(10, 4)), "6 rows / 4");
            assertThrows(IllegalArgumentException.class, () -> be.tokensInsert(2, 4, x, s.poisoned(1, 4), s.poisoned(8, 4)), "at 4 > t 3");
            assertThrows(IllegalArgumentException.class, () -> be.tokensInsert(2, 0, x, s.poisoned(1, 5), s.poisoned(8, 4)), "rows width");
            assertThrows(IllegalArgumentException.class, () -> be.tokensInsertBackward(2, 2, 2, 0, x, null, null), "2 + 2 != 3");
            assertThrows(IllegalArgumentException.class, () -> be.tokensGather(2, 3, x, s.poisoned(2, 4)), "index 3 of 3");
            assertThrows(IllegalArgumentException.class, () -> be.tokensGatherBackward(2, 0, s.poisoned(3, 4), x), "g rows");
        }
    }
}
