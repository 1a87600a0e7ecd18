package io.peft4j.data;

import io.peft4j.io.IoErrors;
import java.io.BufferedInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * Loader for Fashion-MNIST in its original IDX format, as installed by the Debian package
 * {@code dataset-fashion-mnist} under {@code /usr/share/datasets/fashion-mnist}:
 * {@code train-images-idx3-ubyte.gz}, {@code train-labels-idx1-ubyte.gz},
 * {@code t10k-images-idx3-ubyte.gz}, {@code t10k-labels-idx1-ubyte.gz}.
 * Uncompressed files with the same names minus {@code .gz} are read too when the {@code .gz} is absent.
 *
 * <p>Every file is checked completely before any of it is used: the IDX magic number (2051 for
 * images, 2049 for labels), the 28×28 image size, that the image and label files hold the same
 * number of examples, that each label is in 0..9, and that the payload is exactly as long as the
 * header says (a short, over-long or corrupt file, including a gzip stream whose checksum fails,
 * is an {@link IllegalArgumentException} naming the file). The whole file is read and checked even
 * when {@code limit} keeps only its first examples.
 *
 * <p>Pixels become floats in [0, 1] ({@code byte / 255f}), row-major, 784 per image.
 */
public final class FashionMnist {

    /** Where the Debian package installs the files. */
    public static final Path DEBIAN_DIR = Path.of("/usr/share/datasets/fashion-mnist");
    /** System property naming the data directory; wins over {@link #ENV_DIR}. */
    public static final String PROPERTY_DIR = "peft4j.data.dir";
    /** Environment variable naming the data directory. */
    public static final String ENV_DIR = "PEFT4J_DATA_DIR";

    public static final int ROWS = 28;
    public static final int COLS = 28;
    public static final int FEATURES = ROWS * COLS;
    public static final int CLASSES = 10;

    static final int IMAGES_MAGIC = 0x00000803; // 2051: unsigned byte, 3 dimensions
    static final int LABELS_MAGIC = 0x00000801; // 2049: unsigned byte, 1 dimension

    /** Class names in label order. */
    private static final String[] CLASS_NAMES = {
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

    /** Which half of the data set. */
    public enum Split {
        /** The 60,000 training examples ({@code train-*}). */
        TRAIN("train"),
        /** The 10,000 test examples ({@code t10k-*}). */
        TEST("t10k");

        private final String prefix;

        Split(String prefix) {
            this.prefix = prefix;
        }

        /** The file name prefix: {@code train} or {@code t10k}. */
        public String filePrefix() {
            return prefix;
        }
    }

    /** The task the images are presented for: the images as stored, or each one rotated. */
    public enum Task {
        /** The images as stored in the files. */
        ORIGINAL,
        /**
         * Every image rotated by 90° counter-clockwise, exactly as {@code numpy.rot90(img, 1)} (and
         * {@code torch.rot90(img, 1, dims=(0, 1))}) do: {@code out[i][j] = in[j][27 - i]}. The input's
         * right-hand column, read top to bottom, becomes the output's top row, read left to right;
         * the input's top row becomes the output's left column, read bottom to top.
         * Labels are unchanged.
         */
        ROT90;

        /** Parses {@code original} or {@code rot90} (any case), naming the choices when it fails. */
        public static Task parse(String name) {
            if (name != null) {
                for (Task t : values()) {
                    if (t.name().equalsIgnoreCase(name.strip())) {
                        return t;
                    }
                }
            }
            throw new IllegalArgumentException("unknown Fashion-MNIST task '" + name + "' (choose original or rot90)");
        }
    }

    private FashionMnist() {
    }

    /** The name of class {@code label} (0 = T-shirt/top … 9 = Ankle boot). */
    public static String className(int label) {
        if (label < 0 || label >= CLASSES) {
            throw new IllegalArgumentException("Fashion-MNIST label " + label + " is outside 0..9");
        }
        return CLASS_NAMES[label];
    }

    /**
     * The data directory: the system property {@value #PROPERTY_DIR} if set, else the environment
     * variable {@value #ENV_DIR} if set, else {@link #DEBIAN_DIR}.
     */
    public static Path defaultDir() {
        String p = System.getProperty(PROPERTY_DIR);
        if (p != null && !p.isBlank()) {
            return Path.of(p);
        }
        String e = System.getenv(ENV_DIR);
        if (e != null && !e.isBlank()) {
            return Path.of(e);
        }
        return DEBIAN_DIR;
    }

    /** {@link #load(Path, Split, Task, int)} from {@link #defaultDir()}. */
    public static Dataset load(Split split, Task task, int limit) {
        return load(defaultDir(), split, task, limit);
    }

    /**
     * Loads one split.
     *
     * @param dir   the directory holding the four IDX files
     * @param split which split
     * @param task  {@link Task#ORIGINAL} or {@link Task#ROT90}
     * @param limit keep only the first {@code limit} examples; {@code <= 0} keeps all
     * @return the examples, {@code features() == 784}, {@code classes() == 10}
     * @throws IllegalArgumentException if the directory or a file is missing, or a file is malformed
     *                                  (the message names the file)
     * @throws UncheckedIOException     for other I/O failures (e.g. permissions)
     */
    public static Dataset load(Path dir, Split split, Task task, int limit) {
        if (dir == null || split == null || task == null) {
            throw new IllegalArgumentException("FashionMnist.load: dir, split and task must not be null");
        }
        if (!Files.isDirectory(dir)) {
            throw new IllegalArgumentException(notFound(dir, null));
        }
        Path imagesFile = locate(dir, split.filePrefix() + "-images-idx3-ubyte");
        Path labelsFile = locate(dir, split.filePrefix() + "-labels-idx1-ubyte");

        byte[] labelBytes = readLabels(labelsFile);
        int n = labelBytes.length;
        int take = limit <= 0 ? n : Math.min(limit, n);
        byte[] pixels = readImages(imagesFile, n, labelsFile, take);

        int[] labels = new int[take];
        for (int i = 0; i < take; i++) {
            labels[i] = labelBytes[i];
        }
        float[] images = new float[take * FEATURES];
        if (task == Task.ORIGINAL) {
            for (int k = 0; k < images.length; k++) {
                images[k] = (pixels[k] & 0xFF) / 255f;
            }
        } else {
            for (int img = 0; img < take; img++) {
                int base = img * FEATURES;
                for (int i = 0; i < ROWS; i++) {
                    for (int j = 0; j < COLS; j++) {
                        // out[i][j] = in[j][COLS - 1 - i]  (numpy.rot90(img, 1), counter-clockwise)
                        images[base + i * COLS + j] = (pixels[base + j * COLS + (COLS - 1 - i)] & 0xFF) / 255f;
                    }
                }
            }
        }
        return new Dataset(images, labels, take, FEATURES, CLASSES);
    }

    private static String notFound(Path dir, String missingFile) {
        return "Fashion-MNIST not found at " + dir
                + (missingFile == null ? "" : " (no " + missingFile + ".gz or " + missingFile + ")")
                + " (install the Debian package dataset-fashion-mnist, or pass --data DIR)";
    }

    private static Path locate(Path dir, String baseName) {
        Path gz = dir.resolve(baseName + ".gz");
        if (Files.isRegularFile(gz)) {
            return gz;
        }
        Path raw = dir.resolve(baseName);
        if (Files.isRegularFile(raw)) {
            return raw;
        }
        throw new IllegalArgumentException(notFound(dir, baseName));
    }

    /** Reads a whole label file; returns one byte per example, every one checked to be in 0..9. */
    private static byte[] readLabels(Path file) {
        try (InputStream in = open(file)) {
            byte[] header = readFully(in, 8, file, "the 8-byte IDX header");
            int magic = bigEndianInt(header, 0);
            if (magic != LABELS_MAGIC) {
                throw malformed(file, "magic number is " + magic + ", expected " + LABELS_MAGIC + " for an IDX label file");
            }
            int n = bigEndianInt(header, 4);
            if (n < 0) {
                throw malformed(file, "header gives a negative count " + n);
            }
            byte[] labels = readFully(in, n, file, n + " labels");
            expectEnd(in, file, 8L + n);
            for (int i = 0; i < n; i++) {
                if (labels[i] < 0 || labels[i] >= CLASSES) {
                    throw malformed(file, "label " + (labels[i] & 0xFF) + " at index " + i + " is outside 0..9");
                }
            }
            return labels;
        } catch (EOFException | ZipException e) {
            throw corrupt(file, e);
        } catch (IOException e) {
            throw IoErrors.unchecked("read", file, e);
        }
    }

    /** Reads an image file holding {@code expected} images and returns the first {@code take} of them. */
    private static byte[] readImages(Path file, int expected, Path labelsFile, int take) {
        try (InputStream in = open(file)) {
            byte[] header = readFully(in, 16, file, "the 16-byte IDX header");
            int magic = bigEndianInt(header, 0);
            if (magic != IMAGES_MAGIC) {
                throw malformed(file, "magic number is " + magic + ", expected " + IMAGES_MAGIC + " for an IDX image file");
            }
            int n = bigEndianInt(header, 4);
            int rows = bigEndianInt(header, 8);
            int cols = bigEndianInt(header, 12);
            if (rows != ROWS || cols != COLS) {
                throw malformed(file, "images are " + rows + "x" + cols + ", expected " + ROWS + "x" + COLS);
            }
            if (n != expected) {
                throw malformed(file, "holds " + n + " images but " + labelsFile + " holds " + expected + " labels");
            }
            long payload = (long) n * FEATURES;
            if (payload > Integer.MAX_VALUE - 16) {
                throw malformed(file, "header gives " + n + " images, more than one Java array can hold");
            }
            byte[] pixels = readFully(in, take * FEATURES, file, take + " images");
            long rest = in.transferTo(OutputStream.nullOutputStream());
            long have = (long) take * FEATURES + rest;
            if (have != payload) {
                throw malformed(file, "has " + have + " bytes of pixels, the header's " + n + " images of "
                        + ROWS + "x" + COLS + " need " + payload + (have < payload ? " (truncated)" : ""));
            }
            return pixels;
        } catch (EOFException | ZipException e) {
            throw corrupt(file, e);
        } catch (IOException e) {
            throw IoErrors.unchecked("read", file, e);
        }
    }

    /** Opens a file, decompressing it when it starts with the gzip magic bytes. */
    private static InputStream open(Path file) throws IOException {
        BufferedInputStream in = new BufferedInputStream(Files.newInputStream(file), 1 << 16);
        try {
            in.mark(2);
            int b0 = in.read();
            int b1 = in.read();
            in.reset();
            if (b0 == 0x1f && b1 == 0x8b) {
                return new BufferedInputStream(new GZIPInputStream(in, 1 << 16), 1 << 16);
            }
            return in;
        } catch (IOException | RuntimeException e) {
            in.close();
            throw e;
        }
    }

    private static byte[] readFully(InputStream in, int n, Path file, String what) throws IOException {
        byte[] b = in.readNBytes(n);
        if (b.length != n) {
            throw malformed(file, "ends after " + b.length + " of the " + n + " bytes of " + what + " (truncated)");
        }
        return b;
    }

    private static void expectEnd(InputStream in, Path file, long expectedLength) throws IOException {
        long extra = in.transferTo(OutputStream.nullOutputStream());
        if (extra != 0) {
            throw malformed(file, "has " + extra + " bytes after the " + expectedLength + " the header accounts for");
        }
    }

    private static int bigEndianInt(byte[] b, int off) {
        return ((b[off] & 0xFF) << 24) | ((b[off + 1] & 0xFF) << 16) | ((b[off + 2] & 0xFF) << 8) | (b[off + 3] & 0xFF);
    }

    private static IllegalArgumentException malformed(Path file, String why) {
        return new IllegalArgumentException("Fashion-MNIST file " + file + " is malformed: " + why);
    }

    private static IllegalArgumentException corrupt(Path file, IOException e) {
        return new IllegalArgumentException(String.format(Locale.ROOT,
                "Fashion-MNIST file %s is truncated or corrupt: %s", file, e.getMessage()), e);
    }
}
