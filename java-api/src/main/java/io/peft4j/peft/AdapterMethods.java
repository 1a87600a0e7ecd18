package io.peft4j.peft;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.TreeMap;

/** The methods on the class path, by peft_type or by name. */
public final class AdapterMethods {
    private AdapterMethods() {}

    /** Every registered method, by peft_type. */
    public static Map<String, AdapterMethod> all() {
        Map<String, AdapterMethod> out = new TreeMap<>();
        for (AdapterMethod m : ServiceLoader.load(AdapterMethod.class)) out.put(m.peftType(), m);
        return out;
    }

    /** Every registered method by its command-line name, LoRA first, then alphabetical. */
    public static Map<String, AdapterMethod> byName() {
        Map<String, AdapterMethod> sorted = new TreeMap<>();
        for (AdapterMethod m : all().values()) sorted.put(m.name(), m);
        Map<String, AdapterMethod> out = new LinkedHashMap<>();
        if (sorted.containsKey("lora")) out.put("lora", sorted.remove("lora"));
        out.putAll(sorted);
        return out;
    }

    public static AdapterMethod forType(String peftType) {
        Map<String, AdapterMethod> all = all();
        AdapterMethod m = all.get(peftType);
        if (m == null) throw new IllegalArgumentException("unknown peft_type '" + peftType + "' (known: " + String.join(", ", all.keySet()) + ")");
        return m;
    }

    public static AdapterMethod forName(String name) {
        Map<String, AdapterMethod> all = byName();
        AdapterMethod m = all.get(name);
        if (m == null) throw new IllegalArgumentException("unknown method '" + name + "' (available: " + String.join(", ", all.keySet()) + ")");
        return m;
    }
}
