package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Results that must not depend on the thread count: Philox fills and dropout bit for bit (also when
 * a fill is split into pieces at a multiple of 4, and at any other position, since each element
 * depends only on seed and offset + i), colsum and sumsq bit for bit (each documents a fixed
 * summation order), GEMM and the losses within rounding. Sizes are large enough that the
 * 2-thread backend really splits the work.
 */
class ThreadCountTest {
    static Backend one, two;

    @BeforeAll
    static void open() {
        one = Backend.cpu(1);
        two = Backend.cpu(2);
    }

    @AfterAll
    static void close() {
        one.close();
        two.close();
    }

    @Test
    void backendsHaveTheirThreadCounts() {
        assertEquals(1, one.threads());
        assertEquals(2, two.threads());
        if (System.getProperty("peft4j.threads") == null && System.getenv("PEFT4J_THREADS") == null) {
            assertEquals(Runtime.getRuntime().availableProcessors(), Backend.cpu().threads(),
                    "Backend.cpu() uses all cores when peft4j.threads is unset");
        }
    }

    /** Split positions: multiples of 4 (documented), and odd ones (implied by the per-element formula). */
    @ParameterizedTest(name = "split at {0}")
    @ValueSource(ints = {4 * 12_345, 4 * 100_001, 49_381, 262_143})
    void fillsAreIdenticalForAnyThreadCountAndSplit(int split) {
        int n = 1_000_003;
        Case c = newCase("rng thread/split independence split=" + split);
        long seed = c.rnd.nextLong(), offset = 4L * c.rnd.nextInt(1 << 20) + 1;
        check(c, n, split, "uniform", (b, t) -> b.rngUniform(seed, offset + off(t), -1f, 3f, t.out));
        check(c, n, split, "normal", (b, t) -> b.rngNormal(seed, offset + off(t), 0.5f, 2f, t.out));
        check(c, n, split, "kaiming_uniform", (b, t) -> b.rngKaimingUniform(seed, offset + off(t), 77, 0.1f, t.out));
        float[] x = c.normal(n);
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, n);
            float[][] ys = new float[3][];
            byte[][] masks = new byte[3][];
            for (int run = 0; run < 3; run++) {
                Tensor y = s.poisoned(n), mask = s.poisonedBytes(n);
                if (run < 2) {
                    (run == 0 ? one : two).dropoutForward(0.3f, seed, offset, tx, mask, y);
                } else {
                    two.dropoutForward(0.3f, seed, offset, tx.rows(0, split), mask.rows(0, split), y.rows(0, split));
                    one.dropoutForward(0.3f, seed, offset + split, tx.rows(split, n - split), mask.rows(split, n - split),
                            y.rows(split, n - split));
                }
                ys[run] = y.toFloatArray();
                masks[run] = MemorySegments.bytes(mask);
            }
            String[] how = {"cpu(1)", "cpu(2)", "split at " + split};
            for (int run = 1; run < 3; run++) {
                assertBits(c.label(), "dropout y, " + how[run] + " vs cpu(1)", ys[run], ys[0]);
                org.junit.jupiter.api.Assertions.assertArrayEquals(masks[0], masks[run], c.label() + ": dropout mask, " + how[run]);
            }
        }
    }

    /** Where a piece of a split fill starts, so its offset can be shifted to match. */
    record Piece(Tensor out, long start) {}

    static long off(Piece p) {
        return p.start;
    }

    static void check(Case c, int n, int split, String what, BiConsumer<Backend, Piece> fill) {
        try (Scope s = new Scope()) {
            Tensor a = s.poisoned(n), b = s.poisoned(n), d = s.poisoned(n);
            fill.accept(one, new Piece(a, 0));
            fill.accept(two, new Piece(b, 0));
            fill.accept(two, new Piece(d.rows(split, n - split), split));
            fill.accept(one, new Piece(d.rows(0, split), 0));
            float[] ref = a.toFloatArray();
            assertBits(c.label(), what + ", cpu(2) vs cpu(1)", b.toFloatArray(), ref);
            assertBits(c.label(), what + ", split at " + split + " vs cpu(1)", d.toFloatArray(), ref);
        }
    }

    @Test
    void colsumAndSumsqAreBitIdentical() {
        Case c = newCase("colsum/sumsq thread independence");
        int t = 4099, d = 257, n = 2_000_003;
        float[] x = c.normal(t * d), v = c.normal(n, 5), out0 = c.normal(d);
        try (Scope s = new Scope()) {
            Tensor tx = s.of(x, t, d);
            for (boolean acc : new boolean[] {false, true}) {
                Tensor a = acc ? s.of(out0, d) : s.poisoned(d), b = acc ? s.of(out0, d) : s.poisoned(d);
                one.colsum(tx, a, acc);
                two.colsum(tx, b, acc);
                assertBits(c.label(), "colsum accumulate=" + acc + ", cpu(2) vs cpu(1)", b.toFloatArray(), a.toFloatArray());
            }
            Tensor tv = s.of(v, n);
            float s1 = one.sumsq(tv), s2 = two.sumsq(tv), s0 = Backend.cpu().sumsq(tv);
            assertBits(c.label(), "sumsq", new float[] {s2, s0}, new float[] {s1, s1});
        }
    }

    @Test
    void gemmLowrankAndLossesAgreeWithinRounding() {
        Case c = newCase("gemm/lowrank/loss thread independence");
        int m = 1000, n = 129, k = 257;
        float[] a = c.normal(m * k), b = c.normal(k * n);
        try (Scope s = new Scope()) {
            Tensor ta = s.of(a, m, k), tb = s.of(b, n, k), c1 = s.poisoned(m, n), c2 = s.poisoned(m, n);
            one.gemm(false, true, 1f, ta, tb, 0f, c1);
            two.gemm(false, true, 1f, ta, tb, 0f, c2);
            assertNormwise(c, "gemm cpu(2) vs cpu(1)", c2.toFloatArray(), toDouble(c1.toFloatArray()), 2 * gemmTol(k));

            int r = 16;
            Tensor x = ta, la = s.of(c.normal(r * k), r, k), lb = s.of(c.normal(n * r), n, r);
            float[] y0 = c.normal(m * n);
            Tensor h1 = s.poisoned(m, r), h2 = s.poisoned(m, r), y1 = s.of(y0, m, n), y2 = s.of(y0, m, n);
            one.lowrankForward(0.5f, x, la, lb, h1, y1);
            two.lowrankForward(0.5f, x, la, lb, h2, y2);
            assertNormwise(c, "lowrank y cpu(2) vs cpu(1)", y2.toFloatArray(), toDouble(y1.toFloatArray()), 2 * chainTol(k, r));

            int[] labels = c.ints(m, n);
            Tensor lab = s.ints(labels, m), p1 = s.poisoned(m, n), p2 = s.poisoned(m, n);
            float l1 = one.softmaxXentForward(c1, lab, p1), l2 = two.softmaxXentForward(c1, lab, p2);
            assertEquals(l1, l2, 1e-5 * (1 + Math.abs(l1)), c.label() + ": softmax xent loss");
            Tensor target = s.of(c.normal(m * n), m, n);
            float m1 = one.mse(c1, target, null), m2 = two.mse(c1, target, null);
            assertEquals(m1, m2, gemmTol((long) m * n) * m1, c.label() + ": mse loss");
        }
    }
}
