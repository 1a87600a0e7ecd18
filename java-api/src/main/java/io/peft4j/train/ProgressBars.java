package io.peft4j.train;

import java.io.Console;
import java.io.PrintStream;
import java.util.Locale;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.DelegatingProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarConsumer;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * Progress bars for training loops, over {@code me.tongfei:progressbar}.
 *
 * <p>On a terminal the bar is redrawn in place (carriage return) every {@value #TTY_UPDATE_MS} ms.
 * When output is not a terminal (a log file, CI), a redraw in place would pile up as one endless
 * line, so the bar is instead printed as a plain line of its own every
 * {@value #LOG_UPDATE_MS} ms, and only when progress was made. Both use the ASCII style, which any
 * log viewer shows correctly. A disabled bar is a no-op that still counts steps, so a loop can
 * use the same code with and without a bar.
 *
 * <pre>{@code
 * try (ProgressBars.Bar bar = ProgressBars.epoch("epoch 3/10", stepsPerEpoch, showProgress)) {
 *     for (...) { ...; bar.step().loss(loss); }
 * }
 * }</pre>
 */
public final class ProgressBars {

    /** Redraw interval on a terminal. */
    public static final int TTY_UPDATE_MS = 200;
    /** Interval between printed lines when not on a terminal. */
    public static final int LOG_UPDATE_MS = 10_000;
    /** Rendered width of a bar that is not on a terminal (a terminal's own width is used there). */
    public static final int LOG_WIDTH = 100;

    /**
     * progressbar and the jline it renders with are optional dependencies (kept off library users'
     * class paths); without them {@link #epoch(String, long, boolean)} gives a disabled bar.
     */
    static final boolean LIBRARY_PRESENT = present("me.tongfei.progressbar.ProgressBar") && present("org.jline.utils.WCWidth");

    private ProgressBars() {
    }

    private static boolean present(String className) {
        try {
            Class.forName(className, false, ProgressBars.class.getClassLoader());
            return true;
        } catch (ClassNotFoundException e) {
            return false;
        }
    }

    /**
     * A bar over {@code steps} steps on standard error, redrawn in place when the JVM runs on a
     * terminal and printed line by line otherwise; a no-op when {@code enabled} is false or the
     * optional progressbar library is not on the class path.
     */
    public static Bar epoch(String task, long steps, boolean enabled) {
        if (!enabled) {
            return new Bar(null);
        }
        boolean tty = isTerminal();
        return epoch(task, steps, true, System.err, tty);
    }

    /**
     * A bar over {@code steps} steps written to {@code out}: redrawn in place every
     * {@value #TTY_UPDATE_MS} ms when {@code interactive}, else one line per {@value #LOG_UPDATE_MS} ms;
     * a no-op when {@code enabled} is false.
     */
    public static Bar epoch(String task, long steps, boolean enabled, PrintStream out, boolean interactive) {
        if (!enabled || !LIBRARY_PRESENT) {
            return new Bar(null);
        }
        if (out == null) {
            throw new IllegalArgumentException("ProgressBars: out must not be null");
        }
        return custom(task, steps, Consumers.of(out, interactive), interactive ? TTY_UPDATE_MS : LOG_UPDATE_MS);
    }

    /**
     * Apart from ProgressBars because verifying this code loads the library's classes (two consumer
     * types meet in one variable): this class is loaded only when the library is present.
     */
    private static final class Consumers {
        static ProgressBarConsumer of(PrintStream out, boolean interactive) {
            if (interactive) {
                return out == System.err || out == System.out
                        ? new ConsoleProgressBarConsumer(out) // the library sizes it to the terminal
                        : new ConsoleProgressBarConsumer(out, LOG_WIDTH);
            }
            return new DelegatingProgressBarConsumer(new LinePrinter(out), LOG_WIDTH);
        }
    }

    /** A bar over {@code steps} steps rendered (ASCII style) into {@code consumer} every {@code updateIntervalMillis}. */
    public static Bar custom(String task, long steps, ProgressBarConsumer consumer, int updateIntervalMillis) {
        if (task == null || consumer == null) {
            throw new IllegalArgumentException("ProgressBars: task and consumer must not be null");
        }
        if (steps < 0 || updateIntervalMillis <= 0) {
            throw new IllegalArgumentException("ProgressBars: steps must be >= 0 and the interval > 0, got steps="
                    + steps + ", interval=" + updateIntervalMillis + " ms");
        }
        ProgressBar bar = new ProgressBarBuilder()
                .setTaskName(task)
                .setInitialMax(steps)
                .setStyle(ProgressBarStyle.ASCII)
                .setUpdateIntervalMillis(updateIntervalMillis)
                .setConsumer(consumer)
                .showSpeed()
                .build();
        return new Bar(bar);
    }

    /** Prints each rendered bar as a line of its own, skipping a line equal to the one before (the final state is drawn twice). */
    private static final class LinePrinter implements java.util.function.Consumer<String> {
        private final PrintStream out;
        private String last;

        LinePrinter(PrintStream out) {
            this.out = out;
        }

        @Override
        public synchronized void accept(String rendered) {
            String line = rendered.strip();
            if (!line.equals(last)) {
                out.println(line);
                out.flush();
                last = line;
            }
        }
    }

    /** Whether standard input and output are both a terminal. */
    public static boolean isTerminal() {
        Console c = System.console();
        return c != null && c.isTerminal();
    }

    /** A progress bar, or a no-op stand-in for one when disabled. Not thread-safe beyond what the library gives. */
    public static final class Bar implements AutoCloseable {
        private final ProgressBar bar;
        private long current;
        private boolean closed;

        private Bar(ProgressBar bar) {
            this.bar = bar;
        }

        /** Whether anything is displayed. */
        public boolean enabled() {
            return bar != null;
        }

        /** Advances by one step. */
        public Bar step() {
            return stepBy(1);
        }

        /** Advances by {@code n} steps. */
        public Bar stepBy(long n) {
            current += n;
            if (bar != null) {
                bar.stepBy(n);
            }
            return this;
        }

        /** Steps done so far. */
        public long current() {
            return current;
        }

        /** Shows {@code loss 0.1234} after the bar. */
        public Bar loss(double loss) {
            return message(String.format(Locale.ROOT, "loss %.4f", loss));
        }

        /** Shows {@code message} after the bar. */
        public Bar message(String message) {
            if (bar != null) {
                // the library appends the message straight after the speed ("12.5/s"): keep them apart
                bar.setExtraMessage(message == null || message.isEmpty() ? "" : " " + message);
            }
            return this;
        }

        /** Draws the final state and stops updating; safe to call twice. */
        @Override
        public void close() {
            if (bar != null && !closed) {
                bar.close();
            }
            closed = true;
        }
    }
}
