package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.backend.NativeLoader;
import io.peft4j.bindings.Peft4j;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Token embedding lookup (exact: a row copy) and its backward, the scatter-add of gradient rows
 * into the table's gradient, against a float64 sum; ids drawn with many repeats (a small vocab),
 * outputs poisoned, d_table starting from random contents. Bad ids are refused by Java and, when
 * Java is bypassed, by the native side.
 */
class EmbeddingTest {
    @ParameterizedTest(name = "n={0} vocab={1} d={2}")
    @CsvSource({"1, 1, 1", "7, 3, 33", "33, 37, 12", "257, 5, 7", "2048, 101, 384", "3000, 30522, 17", "0, 4, 3"})
    void lookupAndScatterAddMatchFloat64(int n, int vocab, int d) {
        Case c = newCase("embedding " + n + " " + vocab + " " + d);
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = c.rnd.nextInt(vocab);
        if (n > 2) ids[n - 1] = ids[0];   // at least one repeat, also when vocab is large
        float[] table = c.normal(vocab * d), g = c.normal(n * d), dtable0 = c.normal(vocab * d);
        float[] expected = new float[n * d];
        double[] dtableExpected = toDouble(dtable0);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < d; j++) {
                expected[i * d + j] = table[ids[i] * d + j];
                dtableExpected[ids[i] * d + j] += g[i * d + j];
            }
        }
        try (Scope s = new Scope()) {
            Tensor idt = s.ints(ids, n);
            Tensor out = s.poisoned(n, d);
            Backend.cpu().embeddingForward(idt, s.of(table, vocab, d), out);
            assertExact(c, "out", out.toFloatArray(), expected);
            Tensor dtable = s.of(dtable0, vocab, d);
            Backend.cpu().embeddingBackward(idt, s.of(g, n, d), dtable);
            assertNormwise(c, "d_table", dtable.toFloatArray(), dtableExpected, 1e-6 * (4 + Math.sqrt(n)));
        }
    }

    /** The backward adds a repeated id's rows in position order: the same bits on 1 and 2 threads. */
    @Test
    void scatterAddIsTheSameOnEveryThreadCount() {
        Case c = newCase("embedding threads");
        int n = 4096, vocab = 3, d = 64;
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = c.rnd.nextInt(vocab);
        float[] g = c.normal(n * d);
        float[][] results = new float[2][];
        for (int k = 0; k < 2; k++) {
            try (Backend be = Backend.cpu(k + 1); Scope s = new Scope()) {
                Tensor dtable = s.zeros(DType.F32, vocab, d);
                be.embeddingBackward(s.ints(ids, 8, n / 8), s.of(g, n, d), dtable);
                results[k] = dtable.toFloatArray();
            }
        }
        assertBits(c.label(), "d_table", results[1], results[0]);
    }

    @Test
    void badArgumentsAreRefusedInJava() {
        try (Scope s = new Scope()) {
            Backend be = Backend.cpu();
            Tensor table = s.poisoned(5, 3);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> be.embeddingForward(s.ints(new int[] {0, 5}, 2), table, s.poisoned(2, 3)));
            assertTrue(e.getMessage().contains("ids[1] = 5 is outside the embedding table's [0, 5)"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> be.embeddingBackward(s.ints(new int[] {-1, 0}, 2), s.poisoned(2, 3), table));
            assertTrue(e.getMessage().contains("ids[0] = -1"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> be.embeddingForward(s.poisoned(2), table, s.poisoned(2, 3)), "F32 ids");
            assertThrows(IllegalArgumentException.class, () -> be.embeddingForward(s.ints(new int[] {0, 1}, 2), table, s.poisoned(3, 3)), "rows");
            assertThrows(IllegalArgumentException.class, () -> be.embeddingForward(s.ints(new int[] {0, 1}, 2), table, s.poisoned(2, 4)), "width");
            assertThrows(IllegalArgumentException.class, () -> be.embeddingBackward(s.ints(new int[] {0, 1}, 2), s.poisoned(2, 2), table), "g width");
        }
    }

    /** Below the Java checks: an id out of range is EINVAL with its index and value, and nothing is written. */
    @Test
    void badIdsAreRefusedNatively() {
        NativeLoader.loadCpu();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ctxOut = a.allocate(ValueLayout.ADDRESS);
            assertEquals(0, Peft4j.p4j_ctx_create(1, ctxOut));
            MemorySegment ctx = ctxOut.get(ValueLayout.ADDRESS, 0);
            try {
                MemorySegment ids = a.allocate(ValueLayout.JAVA_INT, 3), table = a.allocate(ValueLayout.JAVA_FLOAT, 8),
                        out = a.allocate(ValueLayout.JAVA_FLOAT, 6);
                for (int[] bad : new int[][] {{0, 4, 1}, {1, 0, -3}, {Integer.MIN_VALUE, 0, 0}}) {
                    MemorySegment.copy(bad, 0, ids, ValueLayout.JAVA_INT, 0, 3);
                    out.fill((byte) 0x7f);
                    table.fill((byte) 0x3f);
                    int at = bad[1] == 4 ? 1 : bad[2] == -3 ? 2 : 0;
                    String named = "ids[" + at + "] = " + bad[at] + " is outside [0, vocab (4))";
                    assertEquals(-1, Peft4j.p4j_embedding_forward(ctx, 3, 4, 2, ids, table, out));
                    assertTrue(lastError().contains("p4j_embedding_forward: " + named), lastError());
                    assertEquals(-1, Peft4j.p4j_embedding_backward(ctx, 3, 4, 2, ids, out, table));
                    assertTrue(lastError().contains("p4j_embedding_backward: " + named), lastError());
                    for (long i = 0; i < 24; i++) assertEquals((byte) 0x7f, out.get(ValueLayout.JAVA_BYTE, i), "out written");
                    for (long i = 0; i < 32; i++) assertEquals((byte) 0x3f, table.get(ValueLayout.JAVA_BYTE, i), "d_table written");
                }
            } finally {
                assertEquals(0, Peft4j.p4j_ctx_destroy(ctx));
            }
        }
    }

    private static String lastError() {
        return Peft4j.p4j_last_error().reinterpret(4096).getString(0);
    }
}
