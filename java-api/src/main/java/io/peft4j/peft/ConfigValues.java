package io.peft4j.peft;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The fields of an adapter_config.json checked against a method's {@link ConfigField}s: every
 * value typed and in range, defaults filled in. Fields PEFT writes that never change the math
 * ({@link #INERT}) are accepted and dropped; any other unknown field is refused by name.
 */
public final class ConfigValues {
    /** Bookkeeping fields PEFT writes into every adapter_config.json. */
    public static final Set<String> INERT = Set.of("peft_type", "peft_version", "task_type", "auto_mapping",
            "base_model_name_or_path", "revision", "inference_mode");

    private final String method;
    private final Map<String, Object> values;

    private ConfigValues(String method, Map<String, Object> values) {
        this.method = method;
        this.values = values;
    }

    /**
     * Validates {@code json} against {@code fields}.
     *
     * @param method the method's name, for messages ("lora")
     * @throws IllegalArgumentException on an unknown field, a wrong type or an out-of-range value,
     *                                  naming the field and listing the method's valid fields
     */
    public static ConfigValues read(String method, List<ConfigField> fields, Map<String, ?> json) {
        Map<String, ConfigField> byName = new LinkedHashMap<>();
        for (ConfigField f : fields) byName.put(f.name(), f);
        for (String key : json.keySet()) {
            if (!byName.containsKey(key) && !INERT.contains(key)) {
                throw new IllegalArgumentException(method + ": unknown field '" + key + "'; valid fields: " + validFields(fields));
            }
        }
        Map<String, Object> out = new LinkedHashMap<>();
        for (ConfigField f : fields) {
            try {
                out.put(f.name(), json.containsKey(f.name()) ? f.check(json.get(f.name())) : f.defaultValue());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(method + ": " + e.getMessage() + "; valid fields: " + validFields(fields), e);
            }
        }
        return new ConfigValues(method, out);
    }

    /** The names of the fields a user can set (not the fixed ones). */
    public static String validFields(List<ConfigField> fields) {
        return String.join(", ", fields.stream().filter(ConfigField::settable).map(ConfigField::name).toList());
    }

    public Object get(String name) {
        if (!values.containsKey(name)) throw new IllegalArgumentException(method + " has no field '" + name + "'");
        return values.get(name);
    }

    /** An INT field; its range was checked against the field's bounds, which fit an int where this is used. */
    public int getInt(String name) {
        return Math.toIntExact((Long) get(name));
    }

    public long getLong(String name) {
        return (Long) get(name);
    }

    public float getFloat(String name) {
        return ((Number) get(name)).floatValue();
    }

    public double getDouble(String name) {
        return ((Number) get(name)).doubleValue();
    }

    public boolean getBool(String name) {
        return (Boolean) get(name);
    }

    /** A MAP field: string keys to Long (int values) or Double (float values), in file order. */
    @SuppressWarnings("unchecked")
    public Map<String, Object> getMap(String name) {
        return (Map<String, Object>) get(name);
    }

    public TargetModules getTargets(String name) {
        return TargetModules.fromJson(get(name));
    }
}
