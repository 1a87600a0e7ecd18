package io.peft4j.data;

import static io.peft4j.variants.TestSupport.assertThrowsNaming;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class BatchesTest {

    /** 10 examples of 3 features; example i holds (i, i + 0.25, i + 0.5) and label i % 4. */
    private static Dataset tiny() {
        int n = 10;
        float[] x = new float[n * 3];
        int[] y = new int[n];
        for (int i = 0; i < n; i++) {
            x[3 * i] = i;
            x[3 * i + 1] = i + 0.25f;
            x[3 * i + 2] = i + 0.5f;
            y[i] = i % 4;
        }
        return new Dataset(x, y, n, 3, 4);
    }

    @Test
    void orderIsADeterministicPermutation() {
        int n = 1000;
        int[] a = Batches.order(n, 42L, 3);
        int[] b = Batches.order(n, 42L, 3);
        assertArrayEquals(a, b, "same (seed, epoch) gives the same order");

        int[] sorted = a.clone();
        Arrays.sort(sorted);
        assertArrayEquals(Batches.sequential(n), sorted, "the order is a permutation of 0..n-1");

        assertFalse(Arrays.equals(a, Batches.order(n, 42L, 4)), "another epoch gives another order");
        assertFalse(Arrays.equals(a, Batches.order(n, 43L, 3)), "another seed gives another order");
        assertFalse(Arrays.equals(a, Batches.sequential(n)), "the order is shuffled");
        // seed + epoch is what seeds the generator
        assertArrayEquals(Batches.order(n, 40L, 5), a);
    }

    @Test
    void orderIsFisherYatesOverSplittableRandom() {
        int n = 57;
        long seed = 1234L;
        int epoch = 2;
        int[] expected = new int[n];
        for (int i = 0; i < n; i++) {
            expected[i] = i;
        }
        SplittableRandom rng = new SplittableRandom(seed + epoch);
        for (int i = n - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int t = expected[i];
            expected[i] = expected[j];
            expected[j] = t;
        }
        assertArrayEquals(expected, Batches.order(n, seed, epoch));
        assertArrayEquals(Batches.order(10, seed, epoch), new Batches(tiny()).order(seed, epoch));
        assertEquals(0, Batches.order(0, 1, 1).length);
        assertArrayEquals(new int[] {0}, Batches.order(1, 1, 1));
    }

    @Test
    void fillCopiesRowsInOrderAndKeepsTheLastPartialBatch() {
        Dataset d = tiny();
        Batches batches = new Batches(d);
        assertEquals(3, batches.batchCount(4));
        assertEquals(10, batches.batchCount(1));
        int[] order = batches.order(7L, 0);

        float[] x = new float[4 * 3];
        int[] y = new int[4];
        int seen = 0;
        boolean[] hit = new boolean[10];
        for (int start = 0; start < order.length; start += 4) {
            Arrays.fill(x, -1f);
            Arrays.fill(y, -1);
            int rows = batches.fill(order, start, 4, x, y);
            assertEquals(start == 8 ? 2 : 4, rows);
            for (int r = 0; r < rows; r++) {
                int ex = order[start + r];
                assertArrayEquals(new float[] {ex, ex + 0.25f, ex + 0.5f}, Arrays.copyOfRange(x, 3 * r, 3 * r + 3));
                assertEquals(ex % 4, y[r]);
                hit[ex] = true;
            }
            for (int r = rows; r < 4; r++) {
                assertEquals(-1f, x[3 * r], "rows past the batch are left as they were");
                assertEquals(-1, y[r]);
            }
            seen += rows;
        }
        assertEquals(10, seen);
        for (boolean h : hit) {
            assertTrue(h, "every example appears in an epoch");
        }
    }

    @Test
    void fillIntoAMemorySegment() {
        Dataset d = tiny();
        Batches batches = new Batches(d);
        int[] order = {9, 2, 5};
        int[] y = new int[3];
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(3L * 3 * Float.BYTES, Float.BYTES);
            assertEquals(3, batches.fill(order, 0, 8, seg, y));
            float[] got = seg.toArray(ValueLayout.JAVA_FLOAT);
            assertArrayEquals(new float[] {9, 9.25f, 9.5f, 2, 2.25f, 2.5f, 5, 5.25f, 5.5f}, got);
            assertArrayEquals(new int[] {1, 2, 1}, y);
            MemorySegment small = arena.allocate(8L * Float.BYTES, Float.BYTES);
            assertThrowsNaming(IllegalArgumentException.class, () -> batches.fill(order, 0, 3, small, y),
                    "xOut holds 32 bytes, the batch needs 3*3 floats = 36 bytes");
        }
    }

    @Test
    void fillRejectsBadArguments() {
        Batches batches = new Batches(tiny());
        int[] order = Batches.sequential(10);
        float[] x = new float[12];
        int[] y = new int[4];
        assertThrowsNaming(IllegalArgumentException.class, () -> batches.fill(order, 10, 4, x, y), "start 10 outside [0, 10)");
        assertThrowsNaming(IllegalArgumentException.class, () -> batches.fill(order, -1, 4, x, y), "start -1 outside [0, 10)");
        assertThrowsNaming(IllegalArgumentException.class, () -> batches.fill(order, 0, 0, x, y), "batchSize must be positive, got 0");
        assertThrowsNaming(IllegalArgumentException.class, () -> batches.fill(order, 0, 4, new float[11], y),
                "xOut holds 11 floats, the batch needs 4*3 = 12");
        assertThrowsNaming(IllegalArgumentException.class, () -> batches.fill(order, 0, 4, x, new int[3]),
                "yOut holds 3 labels, the batch needs 4");
        assertThrowsNaming(IllegalArgumentException.class, () -> batches.fill(new int[] {0, 10}, 0, 2, x, y),
                "order[1] = 10 is not an example index in [0, 10)");
        assertThrowsNaming(IllegalArgumentException.class, () -> batches.batchCount(0), "batchSize must be positive, got 0");
    }
}
