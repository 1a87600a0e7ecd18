package io.peft4j.cli;

import io.peft4j.io.IoErrors;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.AdapterMethods;
import io.peft4j.peft.ConfigField;
import io.peft4j.peft.ConfigValues;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Option;

/**
 * How a command picks a method and its settings: {@code --variant}, an {@code adapter_config.json}
 * ({@code --config}), {@code --set field=value} and the shortcut flags. Everything is read from the
 * method's registration, so the command line has no code for any one method.
 */
final class MethodOptions {
    private static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.USE_BIG_INTEGER_FOR_INTS)
            .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS);

    @Option(names = "--variant", paramLabel = "NAME",
            description = "the method (see 'peft4j methods'); default: the --config file's peft_type, else lora")
    String variant;
    @Option(names = "--config", paramLabel = "FILE", description = "an adapter_config.json with PEFT's field names; --set and the shortcuts override it")
    Path config;
    @Option(names = "--set", paramLabel = "FIELD=VALUE",
            description = "set one field of the method's config by its adapter_config.json name (repeatable), e.g. --set lora_dropout=0.1")
    List<String> set = new ArrayList<>();
    @Option(names = {"--rank", "-r"}, paramLabel = "N", description = "shortcut for the method's rank field (LoRA: r)")
    String rank;
    @Option(names = "--alpha", paramLabel = "X", description = "shortcut for the method's alpha field (LoRA: lora_alpha)")
    String alpha;
    @Option(names = "--dropout", paramLabel = "P", description = "shortcut for the method's dropout field (LoRA: lora_dropout)")
    String dropout;
    @Option(names = "--targets", paramLabel = "NAMES", description = "shortcut for target_modules: comma-separated layer names, all-linear, or a quoted regex")
    String targets;

    /** The chosen method, the adapter_config.json fields the user gave, and the validated config. */
    record Resolved(AdapterMethod method, Map<String, Object> json, AdapterConfig config) {}

    Resolved resolve() {
        Map<String, Object> json = new LinkedHashMap<>();
        AdapterMethod method;
        if (config != null) {
            json.putAll(readConfig(config));
            Object type = json.get("peft_type");
            if (!(type instanceof String t)) throw new IllegalArgumentException(config + ": no \"peft_type\" string (e.g. \"LORA\")");
            method = AdapterMethods.forType(t);
            if (variant != null && !variant.equals(method.name())) {
                throw new IllegalArgumentException("--variant " + variant + " contradicts " + config + ", whose peft_type " + t + " is method " + method.name());
            }
        } else {
            method = AdapterMethods.forName(variant == null ? "lora" : variant);
        }
        Map<String, ConfigField> fields = new LinkedHashMap<>();
        for (ConfigField f : method.fields()) fields.put(f.name(), f);
        applyShortcut(method, "rank", rank, json);
        applyShortcut(method, "alpha", alpha, json);
        applyShortcut(method, "dropout", dropout, json);
        applyShortcut(method, "targets", targets, json);
        for (String s : set) {
            int eq = s.indexOf('=');
            if (eq <= 0) throw new IllegalArgumentException("--set " + s + ": expected FIELD=VALUE, e.g. --set lora_dropout=0.1");
            String name = s.substring(0, eq).strip();
            ConfigField f = fields.get(name);
            if (f == null) {
                throw new IllegalArgumentException(method.name() + ": unknown field '" + name + "'; valid fields: " + ConfigValues.validFields(method.fields()));
            }
            json.put(name, parse(method, f, s.substring(eq + 1)));
        }
        json.put("peft_type", method.peftType());
        return new Resolved(method, json, method.configFromJson(json));
    }

    /** A method and config from a complete adapter_config.json map (a run's record). */
    static Resolved fromJson(Map<String, Object> json) {
        Object type = json == null ? null : json.get("peft_type");
        if (!(type instanceof String t)) throw new IllegalArgumentException("the recorded adapter config has no peft_type");
        AdapterMethod method = AdapterMethods.forType(t);
        return new Resolved(method, json, method.configFromJson(json));
    }

    private static Object parse(AdapterMethod method, ConfigField f, String text) {
        try {
            return f.parse(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(method.name() + ": " + e.getMessage() + "; valid fields: " + ConfigValues.validFields(method.fields()), e);
        }
    }

    private static void applyShortcut(AdapterMethod method, String flag, String value, Map<String, Object> json) {
        if (value == null) return;
        for (ConfigField f : method.fields()) {
            if (flag.equals(f.shortcut())) {
                json.put(f.name(), parse(method, f, value));
                return;
            }
        }
        throw new IllegalArgumentException("--" + flag + " does not apply to " + method.name() + " (it has no such field); valid fields: "
                + ConfigValues.validFields(method.fields()));
    }

    /** Reads an adapter_config.json; a syntax error names the file, line and column. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> readConfig(Path file) {
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw IoErrors.unchecked("read", file, e);
        }
        try {
            Object v = JSON.readValue(text, Object.class);
            if (!(v instanceof Map<?, ?> m)) throw new IllegalArgumentException(file + ": expected a JSON object { ... }, got " + (v == null ? "null" : "a " + v.getClass().getSimpleName()));
            return (Map<String, Object>) m;
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(file + ": not valid JSON " + IoErrors.jsonSyntax(e), e);
        }
    }
}
