package io.peft4j.peft;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * One field of a method's adapter_config.json: its JSON name, type, default, allowed range and a
 * one-line doc. A method lists its fields in its {@link AdapterMethod} registration; the command line,
 * {@code peft4j methods} and config validation read nothing else, so a new method needs no CLI code.
 *
 * <p>Values are held as their JSON types: {@link Long} for integers, {@link Double} for reals,
 * {@link Boolean}, {@link String}, and for target modules a {@code List<String>} or a {@code String}.
 */
public final class ConfigField {
    /** What kind of value a field holds. */
    public enum Kind { INT, FLOAT, BOOL, CHOICE, TARGETS, FIXED, IGNORED, MAP }

    private final String name;
    private final Kind kind;
    private final Object defaultValue;
    private final double min, max;
    private final boolean minInclusive, maxInclusive;
    private final List<Object> choices;
    private final String shortcut;
    private final String doc;
    private final ConfigField values;   // MAP: the INT or FLOAT field each value is checked against

    private ConfigField(String name, Kind kind, Object defaultValue, double min, boolean minInclusive, double max,
                        boolean maxInclusive, List<Object> choices, String shortcut, String doc) {
        this(name, kind, defaultValue, min, minInclusive, max, maxInclusive, choices, shortcut, doc, null);
    }

    private ConfigField(String name, Kind kind, Object defaultValue, double min, boolean minInclusive, double max,
                        boolean maxInclusive, List<Object> choices, String shortcut, String doc, ConfigField values) {
        this.values = values;
        this.name = Objects.requireNonNull(name);
        this.kind = kind;
        this.defaultValue = defaultValue;
        this.min = min;
        this.max = max;
        this.minInclusive = minInclusive;
        this.maxInclusive = maxInclusive;
        this.choices = choices;
        this.shortcut = shortcut;
        this.doc = doc;
    }

    /** An integer in [min, max]. */
    public static ConfigField integer(String name, long dflt, long min, long max, String doc) {
        return new ConfigField(name, Kind.INT, dflt, min, true, max, true, List.of(), null, doc);
    }

    /** A finite real between min and max, each bound inclusive or not. */
    public static ConfigField real(String name, double dflt, double min, boolean minInclusive, double max, boolean maxInclusive, String doc) {
        return new ConfigField(name, Kind.FLOAT, dflt, min, minInclusive, max, maxInclusive, List.of(), null, doc);
    }

    public static ConfigField bool(String name, boolean dflt, String doc) {
        return new ConfigField(name, Kind.BOOL, dflt, 0, true, 0, true, List.of(), null, doc);
    }

    /** One of a few values (strings, or JSON booleans such as PEFT's {@code init_lora_weights: true}). */
    public static ConfigField choice(String name, Object dflt, List<Object> choices, String doc) {
        if (!choices.contains(dflt)) throw new IllegalArgumentException(name + ": default " + dflt + " is not among " + choices);
        return new ConfigField(name, Kind.CHOICE, dflt, 0, true, 0, true, List.copyOf(choices), null, doc);
    }

    /** PEFT's target_modules: a list of names, "all-linear", or a regex string. */
    public static ConfigField targets(String name, Object dflt, String doc) {
        return new ConfigField(name, Kind.TARGETS, dflt, 0, true, 0, true, List.of(), null, doc);
    }

    /**
     * A field PEFT writes that changes the math but that peft4j implements at one value only
     * ({@code use_dora: false}, {@code bias: "none"}, ...): any other value is refused by name.
     */
    public static ConfigField fixed(String name, Object only, String doc) {
        return new ConfigField(name, Kind.FIXED, only, 0, true, 0, true, List.of(), null, doc);
    }

    /** A field PEFT writes that does not change peft4j's math (e.g. {@code qalora_group_size} without QA-LoRA): any value is accepted. */
    public static ConfigField ignored(String name, String doc) {
        return new ConfigField(name, Kind.IGNORED, null, 0, true, 0, true, List.of(), null, doc);
    }

    /**
     * A JSON object from string keys to numbers, each value checked as {@code values} (an INT or FLOAT
     * field), default {} (PEFT's rank_pattern / alpha_pattern).
     */
    public static ConfigField map(String name, ConfigField values, String doc) {
        if (values.kind != Kind.INT && values.kind != Kind.FLOAT) throw new IllegalArgumentException(name + ": map values must be int or float");
        return new ConfigField(name, Kind.MAP, Map.of(), 0, true, 0, true, List.of(), null, doc, values);
    }

    /** Whether a user sets this field (fixed and ignored ones are only read from PEFT's files). */
    public boolean settable() {
        return kind != Kind.FIXED && kind != Kind.IGNORED;
    }

    /** The same field, also set by the command-line shortcut {@code --<shortcut>} (rank, alpha, dropout, targets). */
    public ConfigField shortcut(String flag) {
        return new ConfigField(name, kind, defaultValue, min, minInclusive, max, maxInclusive, choices, flag, doc, values);
    }

    public String name() { return name; }
    public Kind kind() { return kind; }
    public Object defaultValue() { return defaultValue; }
    public String doc() { return doc; }
    /** The command-line shortcut flag without dashes, or null. */
    public String shortcut() { return shortcut; }

    /** The type as users read it: "int", "float", "bool", "one of ...", "targets", "fixed", "map". */
    public String typeName() {
        return switch (kind) {
            case INT -> "int";
            case FLOAT -> "float";
            case BOOL -> "bool";
            case CHOICE -> "choice";
            case TARGETS -> "targets";
            case FIXED -> "fixed";
            case IGNORED -> "ignored";
            case MAP -> "map";
        };
    }

    /** The allowed values in words: "[1, 65536]", "(0, 1)", "true | gaussian", "only false". */
    public String range() {
        return switch (kind) {
            case INT -> "[" + fmt(min) + ", " + fmt(max) + "]";
            case FLOAT -> (minInclusive ? "[" : "(") + fmt(min) + ", " + fmt(max) + (maxInclusive ? "]" : ")");
            case BOOL -> "true | false";
            case CHOICE -> String.join(" | ", choices.stream().map(String::valueOf).toList());
            case TARGETS -> "names a,b,c | all-linear | \"regex\"";
            case FIXED -> "only " + json(defaultValue);
            case IGNORED -> "any";
            case MAP -> "{\"key\": " + values.range() + ", ...}";
        };
    }

    private static String fmt(double v) {
        if (Math.abs(v) >= 1e15) return String.format(Locale.ROOT, "%.3g", v);
        if (v == Math.rint(v) && Math.abs(v) < 1e15) return Long.toString((long) v);
        return Double.toString(v);
    }

    /** The value as JSON writes it (strings quoted). */
    public static String json(Object v) {
        if (v == null) return "null";
        if (v instanceof String s) return '"' + s + '"';
        if (v instanceof List<?> l) {
            List<String> parts = new ArrayList<>();
            for (Object o : l) parts.add(json(o));
            return "[" + String.join(", ", parts) + "]";
        }
        if (v instanceof Map<?, ?> m) {
            List<String> parts = new ArrayList<>();
            m.forEach((k, x) -> parts.add(json(String.valueOf(k)) + ": " + json(x)));
            return "{" + String.join(", ", parts) + "}";
        }
        if ((v instanceof Double || v instanceof Float) && ((Number) v).doubleValue() == Math.rint(((Number) v).doubleValue())
                && Math.abs(((Number) v).doubleValue()) < 1e15) {
            return Long.toString(((Number) v).longValue());   // 8, as PEFT writes lora_alpha, not 8.0
        }
        return String.valueOf(v);
    }

    /**
     * Checks a value read from JSON and returns it normalized (integers as Long, reals as Double).
     *
     * @throws IllegalArgumentException naming the field, the value and what is allowed
     */
    public Object check(Object v) {
        switch (kind) {
            case INT -> {
                BigDecimal d = number(v);
                BigInteger i;
                try {
                    i = d.toBigIntegerExact();
                } catch (ArithmeticException e) {
                    throw bad(v, "must be an integer");
                }
                if (i.compareTo(BigInteger.valueOf((long) min)) < 0 || i.compareTo(BigInteger.valueOf((long) max)) > 0) {
                    throw bad(v, "is out of range " + range());
                }
                return i.longValue();
            }
            case FLOAT -> {
                BigDecimal d = number(v);
                double x = d.doubleValue();
                if (!Double.isFinite(x)) throw bad(v, "must be a finite number");
                boolean lowOk = minInclusive ? x >= min : x > min;
                boolean highOk = maxInclusive ? x <= max : x < max;
                if (!lowOk || !highOk) throw bad(v, "is out of range " + range());
                return x;
            }
            case BOOL -> {
                if (!(v instanceof Boolean)) throw bad(v, "must be true or false");
                return v;
            }
            case CHOICE -> {
                if (!choices.contains(v)) throw bad(v, "must be one of " + range());
                return v;
            }
            case TARGETS -> {
                TargetModules.fromJson(v);   // validates the shape
                return v;
            }
            case FIXED -> {
                if (!sameValue(v, defaultValue)) {
                    throw new IllegalArgumentException("field '" + name + "' = " + json(v) + " is not implemented by peft4j (only "
                            + json(defaultValue) + ")");
                }
                return defaultValue;
            }
            case IGNORED -> {
                return v;
            }
            case MAP -> {
                if (v == null) return Map.of();
                if (!(v instanceof Map<?, ?> m)) throw bad(v, "must be a JSON object {\"key\": number}");
                Map<String, Object> out = new LinkedHashMap<>();
                for (var e : m.entrySet()) {
                    if (!(e.getKey() instanceof String k) || k.isEmpty()) throw bad(v, "has a key that is not a non-empty string");
                    ConfigField entry = new ConfigField(name + "['" + k + "']", values.kind, null, values.min, values.minInclusive,
                            values.max, values.maxInclusive, List.of(), null, doc);
                    out.put(k, entry.check(e.getValue()));
                }
                return java.util.Collections.unmodifiableMap(out);
            }
        }
        throw new AssertionError(kind);
    }

    private static boolean sameValue(Object v, Object expected) {
        if (expected == null) return v == null;
        if (expected instanceof Map<?, ?> m && m.isEmpty()) return v == null || (v instanceof Map<?, ?> vm && vm.isEmpty());
        return expected.equals(v);
    }

    private BigDecimal number(Object v) {
        if (v instanceof Integer || v instanceof Long || v instanceof Short || v instanceof Byte) return BigDecimal.valueOf(((Number) v).longValue());
        if (v instanceof BigInteger b) return new BigDecimal(b);
        if (v instanceof BigDecimal b) return b;
        if (v instanceof Double || v instanceof Float) {
            double d = ((Number) v).doubleValue();
            if (!Double.isFinite(d)) throw bad(v, "must be a finite number");
            return new BigDecimal(d);
        }
        throw bad(v, "must be a number");
    }

    /**
     * Parses a command-line value ({@code --set name=text}) as this field's type.
     *
     * @throws IllegalArgumentException naming the field, the text and what is allowed
     */
    public Object parse(String text) {
        String t = text.strip();
        return switch (kind) {
            case INT -> {
                try {
                    yield check(new BigDecimal(t));
                } catch (NumberFormatException e) {
                    throw bad(text, "must be an integer");
                }
            }
            case FLOAT -> {
                try {
                    yield check(new BigDecimal(t));
                } catch (NumberFormatException e) {
                    throw bad(text, "must be a number");
                }
            }
            case BOOL -> switch (t.toLowerCase(Locale.ROOT)) {
                case "true" -> true;
                case "false" -> false;
                default -> throw bad(text, "must be true or false");
            };
            case CHOICE -> {
                for (Object c : choices) {
                    if (String.valueOf(c).equals(t)) yield c;
                }
                throw bad(text, "must be one of " + range());
            }
            case TARGETS -> check(parseTargets(t));
            case IGNORED -> text;
            case MAP -> check(parseMap(text));
            case FIXED -> check(t.equals("null") ? null : t.equals("true") ? Boolean.TRUE : t.equals("false") ? Boolean.FALSE : t);
        };
    }

    /** "fc1,fc2" is a list of names, "all-linear" stays a string, and a quoted "regex" is PEFT's regex form. */
    static Object parseTargets(String t) {
        if (t.equals("all-linear")) return t;
        if (t.length() >= 2 && t.startsWith("\"") && t.endsWith("\"")) return t.substring(1, t.length() - 1);
        List<String> names = new ArrayList<>();
        for (String n : t.split(",")) names.add(n.strip());
        return names;
    }

    /** "key=value,key=value" (as {@code --set rank_pattern=q=4,v=2}); the empty text is {}. */
    private Map<String, Object> parseMap(String text) {
        Map<String, Object> out = new LinkedHashMap<>();
        if (text.isBlank()) return out;
        for (String part : text.split(",")) {
            int eq = part.lastIndexOf('=');
            if (eq <= 0) throw bad(text, "must be key=number pairs separated by commas");
            String k = part.substring(0, eq).strip(), x = part.substring(eq + 1).strip();
            try {
                out.put(k, new BigDecimal(x));
            } catch (NumberFormatException e) {
                throw bad(text, "has a non-numeric value '" + x + "' for key '" + k + "'");
            }
        }
        return out;
    }

    private IllegalArgumentException bad(Object v, String why) {
        String shown = v instanceof String s ? "'" + s + "'" : String.valueOf(v);
        return new IllegalArgumentException("field '" + name + "' = " + shown + " " + why);
    }

    @Override
    public String toString() {
        return name + " (" + typeName() + ", default " + json(defaultValue) + ", " + range() + ")";
    }
}
