package io.peft4j.peft;

import java.util.List;
import java.util.regex.Pattern;

/**
 * Which linear layers get an adapter, as PEFT's {@code target_modules}: a list of names (a layer
 * matches when its path equals a name or ends with "." + name), a regex (matched against the whole
 * path), or {@code all-linear} (every Linear layer of the model).
 */
public sealed interface TargetModules {

    boolean matches(String path);

    /** The value PEFT's adapter_config.json stores: a list, a regex string, or "all-linear". */
    Object toJson();

    static TargetModules names(String... names) {
        return new Names(List.of(names));
    }

    static TargetModules regex(String regex) {
        return new Regex(Pattern.compile(regex));
    }

    static TargetModules allLinear() {
        return new AllLinear();
    }

    /** As adapter_config.json writes it: a list of names, "all-linear", or a regex string. */
    static TargetModules fromJson(Object value) {
        if (value instanceof List<?> list) {
            return new Names(list.stream().map(o -> {
                if (!(o instanceof String s)) throw new IllegalArgumentException("target_modules entries must be strings, got " + o);
                return s;
            }).toList());
        }
        if (value instanceof String s) return s.equals("all-linear") ? allLinear() : regex(s);
        throw new IllegalArgumentException("target_modules must be a list of names or a string, got " + value);
    }

    record Names(List<String> names) implements TargetModules {
        public Names {
            if (names.isEmpty()) throw new IllegalArgumentException("target_modules must name at least one module");
            for (String n : names) {
                if (n.isBlank()) throw new IllegalArgumentException("target_modules contains a blank name");
            }
            names = List.copyOf(names);
        }

        @Override
        public boolean matches(String path) {
            for (String n : names) {
                if (path.equals(n) || path.endsWith("." + n)) return true;
            }
            return false;
        }

        @Override
        public Object toJson() {
            return names;
        }
    }

    record Regex(Pattern pattern) implements TargetModules {
        @Override
        public boolean matches(String path) {
            return pattern.matcher(path).matches();
        }

        @Override
        public Object toJson() {
            return pattern.pattern();
        }
    }

    record AllLinear() implements TargetModules {
        @Override
        public boolean matches(String path) {
            return true;
        }

        @Override
        public Object toJson() {
            return "all-linear";
        }
    }
}
