package io.peft4j.peft;

import java.util.Map;
import java.util.ServiceLoader;
import java.util.TreeMap;

/** The methods on the class path, by peft_type. */
public final class AdapterMethods {
    private AdapterMethods() {}

    public static Map<String, AdapterMethod> all() {
        Map<String, AdapterMethod> out = new TreeMap<>();
        for (AdapterMethod m : ServiceLoader.load(AdapterMethod.class)) out.put(m.peftType(), m);
        return out;
    }

    public static AdapterMethod forType(String peftType) {
        Map<String, AdapterMethod> all = all();
        AdapterMethod m = all.get(peftType);
        if (m == null) throw new IllegalArgumentException("unknown peft_type '" + peftType + "' (known: " + all.keySet() + ")");
        return m;
    }
}
