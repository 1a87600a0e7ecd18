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
 * c = alpha·op(a)·op(b) + beta·c for all four transpose combinations against the double reference.
 * Tolerance: normwise relative error <= 1e-6·(4 + √K) for inner size K ({@link KernelTesting#gemmTol}).
 * With beta = 0 the output starts as NaN: like BLAS, the kernel must not read c then (step-arena
 * outputs hold whatever the last step left).
 */
class GemmTest {
    static Stream<Arguments> cases() {
        int[][] sizes = {{1, 1, 1}, {7, 33, 1}, {33, 7, 257}, {257, 33, 7}, {1, 257, 33}, {1000, 129, 257}};
        List<Arguments> out = new ArrayList<>();
        for (boolean ta : new boolean[] {false, true}) {
            for (boolean tb : new boolean[] {false, true}) {
                for (int i = 0; i < sizes.length; i++) {
                    int[] s = sizes[i];
                    out.add(Arguments.of(ta, tb, s[0], s[1], s[2], 0.75f, 0f));
                    out.add(Arguments.of(ta, tb, s[0], s[1], s[2], -1.25f, i % 2 == 0 ? 1f : -0.625f));
                }
            }
        }
        return out.stream();
    }

    /**
     * alpha = 0 or k = 0 never reaches dnnl_sgemm (native/cpu/lowrank.cpp sgemm): c = beta·c, with
     * beta = 0 writing zeros over NaN (c is not read), beta = 1 leaving c alone, another beta scaling.
     * On two threads, so that c of 300 x 257 (over two threads' grain) is scaled by both (scale_matrix's
     * parallel side) and 129 x 257 by one.
     */
    @ParameterizedTest(name = "m={0} k={1} alpha={2} beta={3}")
    @org.junit.jupiter.params.provider.CsvSource({"129, 33, 0, 0", "129, 33, 0, 1", "129, 33, 0, -0.625", "129, 0, 1.5, 0",
        "129, 0, 1.5, 1", "129, 0, 1.5, 2.5", "300, 33, 0, 0", "300, 0, 1.5, 2.5"})
    void alphaZeroOrEmptyKOnlyScalesC(int m, int k, float alpha, float beta) {
        Case c = newCase("gemm scale-only m=" + m + " k=" + k + " alpha=" + alpha + " beta=" + beta);
        int n = 257;
        float[] a = c.normal(m * k), b = c.normal(k * n), c0 = c.normal(m * n);
        try (Scope s = new Scope()) {
            Tensor tc = beta == 0 ? s.poisoned(m, n) : s.of(c0, m, n);
            try (Backend two = Backend.cpu(2)) {
                two.gemm(false, false, alpha, s.of(a, m, k), s.of(b, k, n), beta, tc);
            }
            float[] expected = new float[m * n];
            for (int i = 0; i < expected.length; i++) expected[i] = beta == 0 ? 0f : beta * c0[i];
            assertExact(c, "c", tc.toFloatArray(), expected);
        }
    }

    @ParameterizedTest(name = "transA={0} transB={1} m={2} n={3} k={4} alpha={5} beta={6}")
    @MethodSource("cases")
    void matchesReference(boolean transA, boolean transB, int m, int n, int k, float alpha, float beta) {
        Case c = newCase("gemm " + (transA ? "T" : "N") + (transB ? "T" : "N") + " " + m + "x" + n + "x" + k
                + " alpha=" + alpha + " beta=" + beta);
        Backend be = Backend.cpu();
        float[] a = c.normal(m * k), b = c.normal(k * n);
        float[] c0 = beta == 0 ? null : c.normal(m * n, 2);
        try (Scope s = new Scope()) {
            Tensor ta = transA ? s.of(a, k, m) : s.of(a, m, k);
            Tensor tb = transB ? s.of(b, n, k) : s.of(b, k, n);
            Tensor tc = c0 == null ? s.poisoned(m, n) : s.of(c0, m, n);
            be.gemm(transA, transB, alpha, ta, tb, beta, tc);
            double[] ref = Reference.gemm(transA, transB, m, n, k, alpha, toDouble(a), toDouble(b), beta,
                    c0 == null ? null : toDouble(c0));
            assertNormwise(c, "c", tc.toFloatArray(), ref, gemmTol(k));
        }
    }
}
