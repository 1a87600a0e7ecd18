package io.peft4j.data;

import static io.peft4j.variants.TestSupport.assertThrowsNaming;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.data.FashionMnist.Split;
import io.peft4j.data.FashionMnist.Task;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FashionMnistTest {

    private static final Path DEBIAN = FashionMnist.DEBIAN_DIR;

    private static void assumeInstalled() {
        // .ci/setup installs the package; a machine without it fails here rather than skipping.
        assertTrue(Files.isRegularFile(DEBIAN.resolve("train-images-idx3-ubyte.gz")),
                "Debian package dataset-fashion-mnist is not installed (run .ci/setup)");
    }

    // ---- the real, installed data set ----

    @Test
    void loadsTheInstalledTrainingSplit() {
        assumeInstalled();
        Dataset train = FashionMnist.load(DEBIAN, Split.TRAIN, Task.ORIGINAL, 0);
        assertEquals(60000, train.count());
        assertEquals(784, train.features());
        assertEquals(10, train.classes());
        assertEquals(60000 * 784, train.images().length);
        // the first ten training labels of Fashion-MNIST (9 = Ankle boot)
        assertArrayEquals(new int[] {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, Arrays.copyOf(train.labels(), 10));
        assertEquals("Ankle boot", FashionMnist.className(train.label(0)));
        // the training split is balanced: 6000 of each class
        int[] perClass = new int[10];
        for (int y : train.labels()) {
            perClass[y]++;
        }
        int[] sixThousand = new int[10];
        Arrays.fill(sixThousand, 6000);
        assertArrayEquals(sixThousand, perClass);
        float min = Float.MAX_VALUE, max = -Float.MAX_VALUE;
        for (float v : train.images()) {
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        assertEquals(0f, min);
        assertEquals(1f, max);
        // the first image's bytes sum to 76247 (checked independently with Python's gzip module)
        double sum = 0;
        for (int k = 0; k < 784; k++) {
            sum += Math.round(train.images()[k] * 255f);
        }
        assertEquals(76247.0, sum);
        // row 10 of the first image starts with 13 zeros and then 0xc1 = 193
        assertEquals(0f, train.images()[10 * 28 + 12]);
        assertEquals(193 / 255f, train.images()[10 * 28 + 13]);
    }

    @Test
    void loadsTheInstalledTestSplitAndLimits() {
        assumeInstalled();
        Dataset test = FashionMnist.load(DEBIAN, Split.TEST, Task.ORIGINAL, -1);
        assertEquals(10000, test.count());
        assertArrayEquals(new int[] {9, 2, 1, 1, 6, 1, 4, 6}, Arrays.copyOf(test.labels(), 8));
        int[] perClass = new int[10];
        for (int y : test.labels()) {
            perClass[y]++;
        }
        for (int c = 0; c < 10; c++) {
            assertEquals(1000, perClass[c], "test examples of class " + c);
        }

        Dataset head = FashionMnist.load(DEBIAN, Split.TEST, Task.ORIGINAL, 37);
        assertEquals(37, head.count());
        assertArrayEquals(Arrays.copyOf(test.labels(), 37), head.labels());
        assertArrayEquals(Arrays.copyOf(test.images(), 37 * 784), head.images());

        Dataset more = FashionMnist.load(DEBIAN, Split.TEST, Task.ORIGINAL, 20000);
        assertEquals(10000, more.count(), "a limit above the size keeps everything");
    }

    @Test
    void rot90OfTheInstalledImagesMatchesTheFormula() {
        assumeInstalled();
        Dataset orig = FashionMnist.load(DEBIAN, Split.TEST, Task.ORIGINAL, 5);
        Dataset rot = FashionMnist.load(DEBIAN, Split.TEST, Task.ROT90, 5);
        assertArrayEquals(orig.labels(), rot.labels());
        for (int n = 0; n < 5; n++) {
            float[] in = orig.image(n);
            float[] out = rot.image(n);
            for (int i = 0; i < 28; i++) {
                for (int j = 0; j < 28; j++) {
                    assertEquals(in[j * 28 + (27 - i)], out[i * 28 + j]);
                }
            }
            assertTrue(!Arrays.equals(in, out), "image " + n + " changes under rotation");
        }
    }

    // ---- synthetic files ----

    @Test
    void rot90IsCounterClockwiseLikeNumpy(@TempDir Path dir) throws IOException {
        // image 0: a single bright pixel at row 1, column 24 (near the top-right corner)
        // image 1: every pixel distinct modulo 251, to check the whole mapping
        byte[] pixels = new byte[2 * 784];
        pixels[28 + 24] = (byte) 255;
        for (int k = 0; k < 784; k++) {
            pixels[784 + k] = (byte) (k % 251);
        }
        IdxFiles.writeSplit(dir, "train", pixels, new byte[] {3, 7});

        Dataset orig = FashionMnist.load(dir, Split.TRAIN, Task.ORIGINAL, 0);
        Dataset rot = FashionMnist.load(dir, Split.TRAIN, Task.ROT90, 0);
        assertArrayEquals(new int[] {3, 7}, rot.labels());
        assertEquals(1f, orig.images()[28 + 24]);

        // counter-clockwise: the top-right region moves to the top-left; (r=1, c=24) -> (r=3, c=1)
        float[] r0 = rot.image(0);
        assertEquals(1f, r0[3 * 28 + 1]);
        float total = 0;
        for (float v : r0) {
            total += v;
        }
        assertEquals(1f, total, "exactly one lit pixel after rotation");

        // out[i][j] = in[j][27 - i]: the input's last column is the output's first row
        float[] r1 = rot.image(1);
        for (int i = 0; i < 28; i++) {
            for (int j = 0; j < 28; j++) {
                int expected = (j * 28 + (27 - i)) % 251;
                assertEquals(expected / 255f, r1[i * 28 + j], "pixel (" + i + "," + j + ")");
            }
        }
        // the input's top-left pixel (0,0) ends at the bottom-left (27,0)
        assertEquals(0f, r1[27 * 28]);
        assertEquals((27 % 251) / 255f, r1[0], "the input's top-right pixel (0,27) ends at the top-left");
    }

    @Test
    void readsUncompressedFilesToo(@TempDir Path dir) throws IOException {
        byte[] pixels = new byte[784];
        pixels[5] = (byte) 51;
        Files.write(dir.resolve("t10k-images-idx3-ubyte"), IdxFiles.images(2051, 1, 28, 28, pixels));
        Files.write(dir.resolve("t10k-labels-idx1-ubyte"), IdxFiles.labels(2049, 1, new byte[] {8}));
        Dataset d = FashionMnist.load(dir, Split.TEST, Task.ORIGINAL, 0);
        assertEquals(1, d.count());
        assertEquals(8, d.label(0));
        assertEquals(0.2f, d.images()[5]);
    }

    @Test
    void truncatedGzipIsRejectedNamingTheFile(@TempDir Path dir) throws IOException {
        byte[] pixels = new byte[3 * 784];
        new java.util.Random(1).nextBytes(pixels);
        IdxFiles.writeSplit(dir, "train", pixels, new byte[] {1, 2, 3});
        Path images = dir.resolve("train-images-idx3-ubyte.gz");
        byte[] gz = Files.readAllBytes(images);
        Files.write(images, Arrays.copyOf(gz, gz.length / 2));

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FashionMnist.load(dir, Split.TRAIN, Task.ORIGINAL, 1));
        assertTrue(e.getMessage().contains(images.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
    }

    @Test
    void shortPayloadIsRejectedNamingTheFile(@TempDir Path dir) throws IOException {
        // a well-formed gzip stream whose IDX header promises 3 images but holds 2.5
        byte[] raw = IdxFiles.images(2051, 3, 28, 28, new byte[2 * 784 + 392]);
        Path images = dir.resolve("train-images-idx3-ubyte.gz");
        Files.write(images, IdxFiles.gzip(raw));
        Files.write(dir.resolve("train-labels-idx1-ubyte.gz"), IdxFiles.gzip(IdxFiles.labels(2049, 3, new byte[] {0, 1, 2})));

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FashionMnist.load(dir, Split.TRAIN, Task.ORIGINAL, 0));
        assertTrue(e.getMessage().contains(images.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
        // also when the limit keeps only the intact first image: the whole file is checked
        assertThrowsNaming(IllegalArgumentException.class, () -> FashionMnist.load(dir, Split.TRAIN, Task.ORIGINAL, 1),
                images.toString(), "truncated");
    }

    @Test
    void trailingBytesAreRejected(@TempDir Path dir) throws IOException {
        IdxFiles.writeSplit(dir, "train", new byte[784], new byte[] {4});
        Path labels = dir.resolve("train-labels-idx1-ubyte.gz");
        Files.write(labels, IdxFiles.gzip(IdxFiles.labels(2049, 1, new byte[] {4, 4})));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FashionMnist.load(dir, Split.TRAIN, Task.ORIGINAL, 0));
        assertTrue(e.getMessage().contains(labels.toString()), e.getMessage());
    }

    @Test
    void headerProblemsAreRejected(@TempDir Path dir) throws IOException {
        Path images = dir.resolve("train-images-idx3-ubyte.gz");
        Path labels = dir.resolve("train-labels-idx1-ubyte.gz");

        // wrong image magic (a label file's)
        Files.write(images, IdxFiles.gzip(IdxFiles.images(2049, 1, 28, 28, new byte[784])));
        Files.write(labels, IdxFiles.gzip(IdxFiles.labels(2049, 1, new byte[] {1})));
        assertMessage(dir, images, "magic");

        // wrong label magic
        Files.write(images, IdxFiles.gzip(IdxFiles.images(2051, 1, 28, 28, new byte[784])));
        Files.write(labels, IdxFiles.gzip(IdxFiles.labels(2051, 1, new byte[] {1})));
        assertMessage(dir, labels, "magic");

        // 32x24 images
        Files.write(images, IdxFiles.gzip(IdxFiles.images(2051, 1, 32, 24, new byte[768])));
        Files.write(labels, IdxFiles.gzip(IdxFiles.labels(2049, 1, new byte[] {1})));
        assertMessage(dir, images, "32x24");

        // two images, one label
        Files.write(images, IdxFiles.gzip(IdxFiles.images(2051, 2, 28, 28, new byte[2 * 784])));
        assertMessage(dir, images, "2 images");

        // label 10 is out of range
        Files.write(images, IdxFiles.gzip(IdxFiles.images(2051, 1, 28, 28, new byte[784])));
        Files.write(labels, IdxFiles.gzip(IdxFiles.labels(2049, 1, new byte[] {10})));
        assertMessage(dir, labels, "label 10");
    }

    private static void assertMessage(Path dir, Path file, String fragment) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FashionMnist.load(dir, Split.TRAIN, Task.ORIGINAL, 0));
        assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }

    @Test
    void missingDirectoryNamesTheFix(@TempDir Path tmp) {
        Path dir = tmp.resolve("nowhere");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FashionMnist.load(dir, Split.TRAIN, Task.ORIGINAL, 0));
        assertTrue(e.getMessage().startsWith("Fashion-MNIST not found at " + dir), e.getMessage());
        assertTrue(e.getMessage().contains("dataset-fashion-mnist"), e.getMessage());
        assertTrue(e.getMessage().contains("--data DIR"), e.getMessage());
    }

    @Test
    void missingFileIsNamed(@TempDir Path dir) throws IOException {
        IdxFiles.writeSplit(dir, "train", new byte[784], new byte[] {1});
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FashionMnist.load(dir, Split.TEST, Task.ORIGINAL, 0));
        assertTrue(e.getMessage().contains("Fashion-MNIST not found at " + dir), e.getMessage());
        assertTrue(e.getMessage().contains("t10k-images-idx3-ubyte.gz"), e.getMessage());
    }

    @Test
    void defaultDirFollowsTheSystemProperty(@TempDir Path dir) throws IOException {
        String old = System.getProperty(FashionMnist.PROPERTY_DIR);
        try {
            System.setProperty(FashionMnist.PROPERTY_DIR, dir.toString());
            assertEquals(dir, FashionMnist.defaultDir());
            IdxFiles.writeSplit(dir, "t10k", new byte[784], new byte[] {6});
            assertEquals(6, FashionMnist.load(Split.TEST, Task.ORIGINAL, 0).label(0));
            System.clearProperty(FashionMnist.PROPERTY_DIR);
            String env = System.getenv(FashionMnist.ENV_DIR);
            assertEquals(env == null || env.isBlank() ? FashionMnist.DEBIAN_DIR : Path.of(env), FashionMnist.defaultDir());
        } finally {
            if (old == null) {
                System.clearProperty(FashionMnist.PROPERTY_DIR);
            } else {
                System.setProperty(FashionMnist.PROPERTY_DIR, old);
            }
        }
    }

    @Test
    void taskNamesParse() {
        assertEquals(Task.ROT90, Task.parse("rot90"));
        assertEquals(Task.ORIGINAL, Task.parse(" Original "));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Task.parse("rot180"));
        assertTrue(e.getMessage().contains("rot180") && e.getMessage().contains("original or rot90"), e.getMessage());
    }

    @Test
    void datasetChecksItsShape() {
        assertThrowsNaming(IllegalArgumentException.class, () -> new Dataset(new float[783], new int[1], 1, 784),
                "images has 783 values, expected count*features = 1*784 = 784");
        assertThrowsNaming(IllegalArgumentException.class, () -> new Dataset(new float[784], new int[2], 1, 784),
                "labels has 2 entries, expected count = 1");
        assertThrowsNaming(IllegalArgumentException.class, () -> new Dataset(new float[784], new int[] {10}, 1, 784),
                "label 10 at index 0 is outside [0, 10)");
        Dataset d = new Dataset(new float[4], new int[] {2, 1}, 2, 2, 3);
        assertEquals(3, d.classes());
        assertThrowsNaming(IndexOutOfBoundsException.class, () -> d.image(2), "example 2 out of range [0, 2)");
    }
}
