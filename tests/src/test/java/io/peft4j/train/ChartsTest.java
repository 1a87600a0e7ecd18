package io.peft4j.train;

import static io.peft4j.variants.TestSupport.assertThrowsNaming;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ChartsTest {

    private static double[] range(int n) {
        double[] x = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = i + 1;
        }
        return x;
    }

    /** Pixels in rows [y0, y1) whose colour is saturated (not white, grey or black): the series lines and markers. */
    private static int colouredPixels(BufferedImage img, int y0, int y1) {
        int count = 0;
        for (int y = y0; y < y1; y++) {
            for (int x = 0; x < img.getWidth(); x++) {
                int rgb = img.getRGB(x, y);
                int r = (rgb >> 16) & 0xFF, g = (rgb >> 8) & 0xFF, b = rgb & 0xFF;
                if (Math.max(r, Math.max(g, b)) - Math.min(r, Math.min(g, b)) > 60) {
                    count++;
                }
            }
        }
        return count;
    }

    private static int pixelsDifferentFrom(BufferedImage img, int background) {
        int count = 0;
        for (int y = 0; y < img.getHeight(); y++) {
            for (int x = 0; x < img.getWidth(); x++) {
                if ((img.getRGB(x, y) & 0xFFFFFF) != (background & 0xFFFFFF)) {
                    count++;
                }
            }
        }
        return count;
    }

    @Test
    void writesATwoPanelPng(@TempDir Path dir) throws IOException {
        int steps = 500;
        double[] x = range(steps);
        double[] loss = new double[steps];
        for (int i = 0; i < steps; i++) {
            loss[i] = 2.3 * Math.exp(-i / 120.0) + 0.05 * Math.sin(i);
        }
        loss[17] = Double.NaN; // skipped, not fatal
        double[] epochs = {1, 2, 3, 4, 5};
        double[] acc = {0.62, 0.74, 0.79, 0.82, 0.84};

        Path png = dir.resolve("charts/run1.png");
        Charts.trainingCurves(png, "LoRA r=8 on Fashion-MNIST", x, loss, epochs, acc, 640, 480);

        assertTrue(Files.isRegularFile(png));
        BufferedImage img = ImageIO.read(png.toFile());
        assertNotNull(img, "ImageIO reads the file as an image");
        assertEquals(640, img.getWidth());
        assertEquals(480, img.getHeight());
        int corner = img.getRGB(0, 0);
        assertTrue(pixelsDifferentFrom(img, corner) > 640 * 480 / 50, "the chart is not blank");
        assertTrue(colouredPixels(img, 0, 240) > 200, "the loss panel draws its series");
        assertTrue(colouredPixels(img, 240, 480) > 50, "the accuracy panel draws its series");
        try (Stream<Path> files = Files.list(png.getParent())) {
            assertEquals(List.of(png), files.toList(), "no temporary file is left behind");
        }

        // rewriting replaces the file atomically, with the new size
        Charts.trainingCurves(png, "again", x, loss, epochs, acc, 500, 400);
        BufferedImage again = ImageIO.read(png.toFile());
        assertEquals(500, again.getWidth());
        assertEquals(400, again.getHeight());
    }

    @Test
    void drawsEmptyEvaluationBeforeTheFirstEpoch(@TempDir Path dir) throws IOException {
        Path png = dir.resolve("early.png");
        Charts.trainingCurves(png, "early", new double[] {1, 2, 3}, new double[] {2.3, 2.1, 2.0}, new double[0], new double[0]);
        BufferedImage img = ImageIO.read(png.toFile());
        assertEquals(Charts.DEFAULT_WIDTH, img.getWidth());
        assertEquals(Charts.DEFAULT_HEIGHT, img.getHeight());
        assertTrue(colouredPixels(img, 0, img.getHeight() / 2) > 20);
    }

    @Test
    void panelsOfSeveralSeries(@TempDir Path dir) throws IOException {
        Path png = dir.resolve("compare.png");
        double[] x = range(50);
        double[] a = new double[50], b = new double[50];
        for (int i = 0; i < 50; i++) {
            a[i] = 1.0 / (i + 1);
            b[i] = 1.5 / (i + 1);
        }
        Charts.write(png, 800, 300, List.of(new Charts.Panel("loss by variant", "step", "loss",
                List.of(new Charts.Series("lora", x, a), new Charts.Series("loha", x, b)))));
        BufferedImage img = ImageIO.read(png.toFile());
        assertEquals(800, img.getWidth());
        assertEquals(300, img.getHeight());
        assertTrue(colouredPixels(img, 0, 300) > 100);
    }

    @Test
    void rejectsBadInput(@TempDir Path dir) {
        Path png = dir.resolve("bad.png");
        assertThrowsNaming(IllegalArgumentException.class,
                () -> Charts.trainingCurves(png, "t", new double[3], new double[2], new double[0], new double[0]),
                "Charts.Series 'train loss'", "got 3 and 2");
        assertThrowsNaming(IllegalArgumentException.class, () -> Charts.write(png, 800, 600, List.of()), "need at least one panel");
        assertThrowsNaming(IllegalArgumentException.class,
                () -> Charts.trainingCurves(png, "t", new double[1], new double[1], new double[1], new double[1], 50, 50),
                "50x50 is too small for 2 panel(s)");
        assertTrue(Files.notExists(png));
    }
}
