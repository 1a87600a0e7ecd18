package io.peft4j.data;

import java.util.Arrays;

/**
 * An in-memory classification data set: {@code count} examples of {@code features} floats each,
 * stored row-major in one array, with one integer label per example.
 *
 * <p>The arrays are held as given, not copied: a {@code Dataset} is a view that the loaders build
 * once and the training loop reads many times, so copying would only double the memory.
 *
 * @param images   {@code count * features} values, example {@code i} at
 *                 {@code [i * features, (i + 1) * features)}
 * @param labels   {@code count} labels, each in {@code [0, classes)}
 * @param count    the number of examples
 * @param features values per example (784 for a 28×28 image)
 * @param classes  the number of classes the labels are drawn from
 */
public record Dataset(float[] images, int[] labels, int count, int features, int classes) {

    /** Classes of a Fashion-MNIST (or MNIST) style data set. */
    public static final int DEFAULT_CLASSES = 10;

    public Dataset {
        if (images == null || labels == null) {
            throw new IllegalArgumentException("Dataset: images and labels must not be null");
        }
        if (count < 0 || features <= 0 || classes <= 0) {
            throw new IllegalArgumentException("Dataset: count=" + count + ", features=" + features
                    + ", classes=" + classes + " (need count >= 0, features > 0, classes > 0)");
        }
        if ((long) count * features != images.length) {
            throw new IllegalArgumentException("Dataset: images has " + images.length + " values, expected count*features = "
                    + count + "*" + features + " = " + (long) count * features);
        }
        if (labels.length != count) {
            throw new IllegalArgumentException("Dataset: labels has " + labels.length + " entries, expected count = " + count);
        }
        for (int i = 0; i < count; i++) {
            if (labels[i] < 0 || labels[i] >= classes) {
                throw new IllegalArgumentException("Dataset: label " + labels[i] + " at index " + i
                        + " is outside [0, " + classes + ")");
            }
        }
    }

    /** A data set with {@link #DEFAULT_CLASSES} (10) classes. */
    public Dataset(float[] images, int[] labels, int count, int features) {
        this(images, labels, count, features, DEFAULT_CLASSES);
    }

    /** The label of example {@code i}. */
    public int label(int i) {
        return labels[checkIndex(i)];
    }

    /** A copy of the {@code features} values of example {@code i}. */
    public float[] image(int i) {
        int from = checkIndex(i) * features;
        return Arrays.copyOfRange(images, from, from + features);
    }

    private int checkIndex(int i) {
        if (i < 0 || i >= count) {
            throw new IndexOutOfBoundsException("example " + i + " out of range [0, " + count + ")");
        }
        return i;
    }

    @Override
    public String toString() {
        return "Dataset[count=" + count + ", features=" + features + ", classes=" + classes + "]";
    }
}
