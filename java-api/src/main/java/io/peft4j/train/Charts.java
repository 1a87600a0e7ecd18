package io.peft4j.train;

import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import io.peft4j.io.AtomicFiles;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.Channels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import javax.imageio.ImageIO;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * PNG charts of training runs, drawn with XChart. Works without a display: {@code java.awt.headless}
 * is set to {@code true} before any AWT class is touched, unless the application already chose a value.
 *
 * <p>A chart is one or more {@link Panel}s stacked top to bottom in one image, each with its own
 * title, axis labels and line {@link Series}. {@link #trainingCurves} is the usual two-panel chart:
 * training loss against step above, evaluation accuracy against epoch below.
 *
 * <p>Files are written atomically ({@link AtomicFiles}): the PNG goes to a temporary file in the
 * target's directory, which is then renamed over the target, so a reader never sees a half-written image.
 */
public final class Charts {

    static {
        if (System.getProperty("java.awt.headless") == null) {
            System.setProperty("java.awt.headless", "true");
        }
    }

    /** Width of {@link #trainingCurves(Path, String, double[], double[], double[], double[])}. */
    public static final int DEFAULT_WIDTH = 1000;
    /** Height of {@link #trainingCurves(Path, String, double[], double[], double[], double[])}. */
    public static final int DEFAULT_HEIGHT = 800;

    /** Series with at most this many points are drawn with markers, longer ones as plain lines. */
    static final int MARKER_LIMIT = 60;

    /** One line: {@code x[i], y[i]} pairs. Points whose x or y is NaN or infinite are left out. */
    public record Series(String name, double[] x, double[] y) {
        public Series {
            if (name == null || name.isBlank()) {
                throw new IllegalArgumentException("Charts.Series: name must not be blank");
            }
            if (x == null || y == null || x.length != y.length) {
                throw new IllegalArgumentException("Charts.Series '" + name + "': x and y must be non-null and of equal length, got "
                        + (x == null ? "null" : x.length) + " and " + (y == null ? "null" : y.length));
            }
        }
    }

    /** One plot: a title, axis labels and the series drawn in it. */
    public record Panel(String title, String xLabel, String yLabel, List<Series> series) {
        public Panel {
            if (series == null) {
                throw new IllegalArgumentException("Charts.Panel: series must not be null");
            }
            series = List.copyOf(series);
            title = title == null ? "" : title;
            xLabel = xLabel == null ? "" : xLabel;
            yLabel = yLabel == null ? "" : yLabel;
        }
    }

    private Charts() {
    }

    /**
     * {@link #trainingCurves(Path, String, double[], double[], double[], double[], int, int)} at
     * {@value #DEFAULT_WIDTH}×{@value #DEFAULT_HEIGHT}.
     */
    public static void trainingCurves(Path png, String title, double[] steps, double[] trainLoss,
                                      double[] evalEpochs, double[] evalAccuracy) {
        trainingCurves(png, title, steps, trainLoss, evalEpochs, evalAccuracy, DEFAULT_WIDTH, DEFAULT_HEIGHT);
    }

    /**
     * Writes a two-panel PNG: "{@code title}: training loss" (loss against step) above
     * "evaluation accuracy" (accuracy against epoch). Either series may be empty (e.g. before the
     * first evaluation); its panel is then drawn with empty axes.
     *
     * @param png          the file to write (replaced if present)
     * @param steps        x of each loss point (optimizer steps)
     * @param trainLoss    loss at each step, same length as {@code steps}
     * @param evalEpochs   x of each accuracy point (epochs)
     * @param evalAccuracy accuracy at each epoch, same length as {@code evalEpochs}
     * @param width        image width in pixels
     * @param height       image height in pixels (shared equally by the panels)
     */
    public static void trainingCurves(Path png, String title, double[] steps, double[] trainLoss,
                                      double[] evalEpochs, double[] evalAccuracy, int width, int height) {
        String t = title == null || title.isBlank() ? "training" : title;
        write(png, width, height, List.of(
                new Panel(t + ": training loss", "step", "loss", List.of(new Series("train loss", steps, trainLoss))),
                new Panel("evaluation accuracy", "epoch", "accuracy", List.of(new Series("eval accuracy", evalEpochs, evalAccuracy)))));
    }

    /**
     * Writes {@code panels}, stacked top to bottom, as one {@code width}×{@code height} PNG.
     *
     * @throws IllegalArgumentException if there are no panels or the size is too small
     * @throws UncheckedIOException     if the file cannot be written
     */
    public static void write(Path png, int width, int height, List<Panel> panels) {
        if (png == null) {
            throw new IllegalArgumentException("Charts.write: png path must not be null");
        }
        BufferedImage image = render(width, height, panels);
        try {
            Files.createDirectories(png.toAbsolutePath().getParent());
            // AtomicFiles creates the file as a plain create would (mode 0666 less the umask)
            AtomicFiles.write(png, ch -> {
                if (!ImageIO.write(image, "png", Channels.newOutputStream(ch))) {
                    throw new IOException("no PNG writer available in ImageIO");
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException("Charts: cannot write " + png + ": " + e.getMessage(), e);
        }
    }

    /** Draws {@code panels}, stacked top to bottom, into a new {@code width}×{@code height} image. */
    public static BufferedImage render(int width, int height, List<Panel> panels) {
        if (panels == null || panels.isEmpty()) {
            throw new IllegalArgumentException("Charts: need at least one panel");
        }
        int n = panels.size();
        if (width < 100 || height < 80 * n) {
            throw new IllegalArgumentException("Charts: " + width + "x" + height + " is too small for " + n
                    + " panel(s) (need width >= 100 and height >= 80 per panel)");
        }
        BufferedImage image = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = image.createGraphics();
        try {
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, width, height);
            int y = 0;
            for (int i = 0; i < n; i++) {
                int h = i == n - 1 ? height - y : height / n;
                Graphics2D pg = (Graphics2D) g.create(0, y, width, h);
                try {
                    chart(panels.get(i), width, h).paint(pg, width, h);
                } finally {
                    pg.dispose();
                }
                y += h;
            }
        } finally {
            g.dispose();
        }
        return image;
    }

    private static XYChart chart(Panel panel, int width, int height) {
        XYChart chart = new XYChartBuilder().width(width).height(height)
                .title(panel.title()).xAxisTitle(panel.xLabel()).yAxisTitle(panel.yLabel()).build();
        var styler = chart.getStyler();
        styler.setChartBackgroundColor(Color.WHITE);
        styler.setMarkerSize(6);
        styler.setXAxisTickMarkSpacingHint(160);
        // one series is named by the panel's title and axis label; several get a legend beside the plot
        int drawn = 0;
        for (Series s : panel.series()) {
            if (finitePoints(s)[0].length > 0) {
                drawn++;
            }
        }
        styler.setLegendVisible(drawn > 1);
        styler.setLegendPosition(Styler.LegendPosition.OutsideE);
        for (Series s : panel.series()) {
            double[][] xy = finitePoints(s);
            if (xy[0].length == 0) {
                continue;
            }
            XYSeries series = chart.addSeries(s.name(), xy[0], xy[1]);
            series.setMarker(xy[0].length <= MARKER_LIMIT ? SeriesMarkers.CIRCLE : SeriesMarkers.NONE);
        }
        if (drawn == 0) {
            // XChart needs a series to lay out axes; an invisible one keeps the panel's frame and labels.
            chart.setTitle(panel.title() + " (no data yet)");
            XYSeries empty = chart.addSeries("(no data yet)", new double[] {0, 1}, new double[] {0, 1});
            empty.setMarker(SeriesMarkers.NONE);
            empty.setLineColor(new Color(0, 0, 0, 0));
        }
        return chart;
    }

    private static double[][] finitePoints(Series s) {
        double[] x = s.x();
        double[] y = s.y();
        double[] xs = new double[x.length];
        double[] ys = new double[y.length];
        int m = 0;
        for (int i = 0; i < x.length; i++) {
            if (Double.isFinite(x[i]) && Double.isFinite(y[i])) {
                xs[m] = x[i];
                ys[m] = y[i];
                m++;
            }
        }
        return new double[][] {Arrays.copyOf(xs, m), Arrays.copyOf(ys, m)};
    }
}
