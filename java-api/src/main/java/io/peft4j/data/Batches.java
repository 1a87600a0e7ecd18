package io.peft4j.data;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/**
 * Mini-batches over a {@link Dataset}: a seeded shuffled order per epoch, and copying of one batch
 * of examples (in that order) into caller-owned buffers, so a training loop allocates nothing per step.
 *
 * <p>The order for epoch {@code e} under seed {@code s} is a Fisher–Yates shuffle of
 * {@code 0..count-1} driven by {@code new SplittableRandom(s + e)}: the same {@code (seed, epoch)}
 * always gives the same order, on every machine and JVM.
 *
 * <pre>{@code
 * Batches batches = new Batches(train);
 * float[] x = new float[batch * train.features()];
 * int[] y = new int[batch];
 * for (int epoch = 0; epoch < epochs; epoch++) {
 *     int[] order = batches.order(seed, epoch);
 *     for (int start = 0; start < order.length; start += batch) {
 *         int rows = batches.fill(order, start, batch, x, y);   // rows < batch only for the last batch
 *         ...
 *     }
 * }
 * }</pre>
 */
public final class Batches {

    private final Dataset data;

    public Batches(Dataset data) {
        if (data == null) {
            throw new IllegalArgumentException("Batches: dataset must not be null");
        }
        this.data = data;
    }

    public Dataset dataset() {
        return data;
    }

    /** The shuffled order of this data set's examples for {@code (seed, epoch)}; see {@link #order(int, long, int)}. */
    public int[] order(long seed, int epoch) {
        return order(data.count(), seed, epoch);
    }

    /**
     * A permutation of {@code 0..n-1}: Fisher–Yates over the identity, with
     * {@code new SplittableRandom(seed + epoch)} choosing each swap ({@code j = nextInt(i + 1)} for
     * {@code i = n-1} down to 1).
     */
    public static int[] order(int n, long seed, int epoch) {
        int[] order = sequential(n);
        SplittableRandom rng = new SplittableRandom(seed + epoch);
        for (int i = n - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        return order;
    }

    /** The identity order {@code 0..n-1} (for evaluation, where order does not matter). */
    public static int[] sequential(int n) {
        if (n < 0) {
            throw new IllegalArgumentException("Batches: negative example count " + n);
        }
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        return order;
    }

    /** The number of batches of {@code batchSize} in one epoch, counting a final partial batch. */
    public int batchCount(int batchSize) {
        if (batchSize <= 0) {
            throw new IllegalArgumentException("Batches: batchSize must be positive, got " + batchSize);
        }
        return (int) Math.ceilDiv((long) data.count(), batchSize);   // long: count + batchSize can pass 2^31
    }

    /**
     * Copies the examples {@code order[start .. start + rows)} into {@code xOut} (row-major,
     * {@code features} values per row) and their labels into {@code yOut}, where
     * {@code rows = min(batchSize, order.length - start)}: the last batch of an epoch may be partial
     * and is kept. Entries of the buffers past {@code rows} are left unchanged.
     *
     * @return the number of rows copied
     */
    public int fill(int[] order, int start, int batchSize, float[] xOut, int[] yOut) {
        int rows = rows(order, start, batchSize, yOut);
        int f = data.features();
        if (xOut == null || (long) xOut.length < (long) rows * f) {
            throw new IllegalArgumentException("Batches.fill: xOut holds " + (xOut == null ? "null" : xOut.length)
                    + " floats, the batch needs " + rows + "*" + f + " = " + (long) rows * f);
        }
        float[] images = data.images();
        int[] labels = data.labels();
        for (int r = 0; r < rows; r++) {
            int ex = example(order, start + r);
            System.arraycopy(images, ex * f, xOut, r * f, f);
            yOut[r] = labels[ex];
        }
        return rows;
    }

    /**
     * As {@link #fill(int[], int, int, float[], int[])}, writing the images as native-order floats
     * into an off-heap (or any) segment, starting at byte offset 0.
     *
     * @return the number of rows copied
     */
    public int fill(int[] order, int start, int batchSize, MemorySegment xOut, int[] yOut) {
        int rows = rows(order, start, batchSize, yOut);
        int f = data.features();
        long need = (long) rows * f * Float.BYTES;
        if (xOut == null || xOut.byteSize() < need) {
            throw new IllegalArgumentException("Batches.fill: xOut holds " + (xOut == null ? "null" : xOut.byteSize() + " bytes")
                    + ", the batch needs " + rows + "*" + f + " floats = " + need + " bytes");
        }
        float[] images = data.images();
        int[] labels = data.labels();
        for (int r = 0; r < rows; r++) {
            int ex = example(order, start + r);
            MemorySegment.copy(images, ex * f, xOut, ValueLayout.JAVA_FLOAT, (long) r * f * Float.BYTES, f);
            yOut[r] = labels[ex];
        }
        return rows;
    }

    private int rows(int[] order, int start, int batchSize, int[] yOut) {
        if (order == null) {
            throw new IllegalArgumentException("Batches.fill: order must not be null");
        }
        if (batchSize <= 0) {
            throw new IllegalArgumentException("Batches.fill: batchSize must be positive, got " + batchSize);
        }
        if (start < 0 || start >= order.length) {
            throw new IllegalArgumentException("Batches.fill: start " + start + " outside [0, " + order.length + ")");
        }
        int rows = Math.min(batchSize, order.length - start);
        if (yOut == null || yOut.length < rows) {
            throw new IllegalArgumentException("Batches.fill: yOut holds " + (yOut == null ? "null" : yOut.length)
                    + " labels, the batch needs " + rows);
        }
        return rows;
    }

    private int example(int[] order, int pos) {
        int ex = order[pos];
        if (ex < 0 || ex >= data.count()) {
            throw new IllegalArgumentException("Batches.fill: order[" + pos + "] = " + ex
                    + " is not an example index in [0, " + data.count() + ")");
        }
        return ex;
    }
}
