package io.peft4j.train;

import io.peft4j.io.IoErrors;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.lang.reflect.Array;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;

/**
 * A metrics file in JSON Lines form: each {@link #log(Map)} appends one JSON object on its own
 * line and flushes it, so the file can be followed while training runs and a crash loses at most
 * the line being written.
 *
 * <p>Values may be numbers, strings, booleans, {@code null}, enums (written as their name),
 * nested maps with string keys, and arrays or iterables of these. Integral numbers are written as
 * integers; {@code double}s as {@link Double#toString(double)} (the shortest text that reads back
 * to the same double), {@code float}s as {@link Float#toString(float)}; NaN and ±infinity, which
 * JSON cannot express, are written as {@code null}. Keys keep the map's iteration order, so pass a
 * {@link java.util.LinkedHashMap} for a stable column order.
 */
public final class MetricsLog implements AutoCloseable {

    private final Path file;
    private final Writer out;
    private boolean closed;

    /**
     * Opens {@code file} for appending, creating it and its parent directories if needed.
     *
     * @throws UncheckedIOException if the file cannot be opened
     */
    public MetricsLog(Path file) {
        if (file == null) {
            throw new IllegalArgumentException("MetricsLog: file must not be null");
        }
        this.file = file;
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) {
            try {
                Files.createDirectories(parent);
            } catch (IOException e) {
                throw IoErrors.unchecked("create directory", parent, e);
            }
        }
        try {
            this.out = new BufferedWriter(new OutputStreamWriter(Files.newOutputStream(file,
                    StandardOpenOption.CREATE, StandardOpenOption.APPEND, StandardOpenOption.WRITE),
                    StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw IoErrors.unchecked("write", file, e);
        }
    }

    /** The file being written. */
    public Path file() {
        return file;
    }

    /**
     * Appends {@code record} as one line of JSON and flushes it. The record is converted completely
     * before anything is written, so a value of an unsupported type writes nothing.
     *
     * @throws IllegalArgumentException if a value has a type that has no JSON form
     * @throws IllegalStateException    if the log is closed
     * @throws UncheckedIOException     if writing fails
     */
    public synchronized void log(Map<String, ?> record) {
        if (closed) {
            throw new IllegalStateException("MetricsLog " + file + " is closed");
        }
        String line = toJson(record);
        try {
            out.write(line);
            out.write('\n');
            out.flush();
        } catch (IOException e) {
            throw IoErrors.unchecked("write", file, e);
        }
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            out.close();
        } catch (IOException e) {
            throw IoErrors.unchecked("write", file, e);
        }
    }

    /** The JSON text of {@code record}, on one line, as {@link #log(Map)} writes it. */
    public static String toJson(Map<String, ?> record) {
        if (record == null) {
            throw new IllegalArgumentException("MetricsLog: record must not be null");
        }
        StringBuilder sb = new StringBuilder(64 + 24 * record.size());
        writeValue(sb, record, "record");
        return sb.toString();
    }

    private static void writeValue(StringBuilder sb, Object v, String path) {
        switch (v) {
            case null -> sb.append("null");
            case String s -> writeString(sb, s);
            case Boolean b -> sb.append(b.booleanValue());
            case Double d -> writeDouble(sb, d);
            case Float f -> {
                if (Float.isFinite(f)) {
                    sb.append(Float.toString(f));
                } else {
                    sb.append("null");
                }
            }
            case Integer i -> sb.append(i.intValue());
            case Long l -> sb.append(l.longValue());
            case Short s -> sb.append(s.shortValue());
            case Byte b -> sb.append(b.byteValue());
            case BigInteger bi -> sb.append(bi);
            case BigDecimal bd -> sb.append(bd);
            case Number n -> writeDouble(sb, n.doubleValue());
            case Character c -> writeString(sb, c.toString());
            case CharSequence cs -> writeString(sb, cs.toString());
            case Enum<?> e -> writeString(sb, e.name());
            case Map<?, ?> m -> {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    if (!(e.getKey() instanceof String key)) {
                        throw new IllegalArgumentException("MetricsLog: key " + e.getKey() + " in " + path
                                + " is not a String");
                    }
                    if (!first) {
                        sb.append(',');
                    }
                    first = false;
                    writeString(sb, key);
                    sb.append(':');
                    writeValue(sb, e.getValue(), path + "." + key);
                }
                sb.append('}');
            }
            case Iterable<?> it -> {
                sb.append('[');
                int i = 0;
                for (Object o : it) {
                    if (i > 0) {
                        sb.append(',');
                    }
                    writeValue(sb, o, path + "[" + i + "]");
                    i++;
                }
                sb.append(']');
            }
            default -> {
                if (!v.getClass().isArray()) {
                    throw new IllegalArgumentException("MetricsLog: value at " + path + " has type "
                            + v.getClass().getName() + ", which has no JSON form");
                }
                sb.append('[');
                int n = Array.getLength(v);
                for (int i = 0; i < n; i++) {
                    if (i > 0) {
                        sb.append(',');
                    }
                    writeValue(sb, Array.get(v, i), path + "[" + i + "]");
                }
                sb.append(']');
            }
        }
    }

    private static void writeDouble(StringBuilder sb, double d) {
        if (Double.isFinite(d)) {
            sb.append(Double.toString(d));
        } else {
            sb.append("null");
        }
    }

    private static void writeString(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    boolean lone = Character.isHighSurrogate(c)
                            ? i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))
                            : Character.isLowSurrogate(c) && (i == 0 || !Character.isHighSurrogate(s.charAt(i - 1)));
                    if (c < 0x20 || c == '\u2028' || c == '\u2029' || lone) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        sb.append('"');
    }
}
