package io.peft4j.io;

import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.tensor.DType;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

/**
 * A model's own parameters as safetensors, keyed by their dotted names as a PyTorch state_dict
 * ("fc1.weight", "fc1.bias"), so base checkpoints move between peft4j and PyTorch unchanged.
 * Adapter parameters are not part of it (PeftModel.save writes those).
 */
public final class ModelCheckpoint {
    private ModelCheckpoint() {}

    public static void save(Module model, Path file, Map<String, String> metadata) throws IOException {
        SafetensorsWriter w = new SafetensorsWriter();
        baseParameters(model).forEach((name, p) -> w.put(name, DType.F32, p.value().shape(), p.value().segment()));
        w.metadata(metadata);
        w.write(file);
    }

    /** Loads every base parameter of {@code model} from {@code file}: all must be there, with their shapes, and nothing else. */
    public static Map<String, String> load(Module model, Path file) throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            Map<String, Parameter> params = baseParameters(model);
            params.forEach((name, p) -> {
                if (!f.contains(name)) throw new IllegalArgumentException(file + ": missing tensor '" + name + "'");
                long[] shape = f.entry(name).shape();
                if (!Arrays.equals(shape, p.value().shape())) {
                    throw new IllegalArgumentException(file + ": tensor '" + name + "' has shape " + Arrays.toString(shape)
                            + ", the model needs " + p.value().describe());
                }
            });
            for (String name : f.names()) {
                if (!params.containsKey(name)) throw new IllegalArgumentException(file + ": unexpected tensor '" + name + "'");
            }
            // Read and check everything before writing anything, so a bad file leaves the model as it was.
            Map<String, float[]> values = new java.util.LinkedHashMap<>();
            params.keySet().forEach(name -> values.put(name, readFiniteF32(f, name)));
            params.forEach((name, p) -> p.value().copyFrom(values.get(name)));
            return f.metadata();
        }
    }

    /**
     * An F32 tensor's values, refusing NaN and infinities: a weight that is not a number would only
     * surface later as a NaN loss, far from the file that caused it.
     */
    public static float[] readFiniteF32(SafetensorsFile f, String name) {
        float[] v = f.readF32(name);
        for (int i = 0; i < v.length; i++) {
            if (!Float.isFinite(v[i])) {
                throw new IllegalArgumentException(f.path() + ": tensor '" + name + "' holds " + v[i] + " at element " + i
                        + " (weights must be finite numbers)");
            }
        }
        return v;
    }

    /** Parameters that belong to the modules themselves, not to adapters attached to them. */
    static Map<String, Parameter> baseParameters(Module model) {
        Map<String, Parameter> out = new java.util.LinkedHashMap<>();
        model.namedModules().forEach((path, m) -> m.localParameters().forEach((n, p) -> out.put(path.isEmpty() ? n : path + "." + n, p)));
        return out;
    }
}
