package io.peft4j.variants.lycoris;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.peft4j.io.AtomicFiles;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.io.SafetensorsWriter;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Module;
import io.peft4j.peft.AdapterMethods;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.variants.loha.LohaConfig;
import io.peft4j.variants.lokr.LokrConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * LoHa and LoKr in LyCORIS/kohya's single-file layout (algorithms.md §18): one .safetensors whose
 * keys are {@code <prefix><module path with . → _>.<tensor>} (tensors as PEFT names them:
 * {@code hada_w1_a}, {@code lokr_w1}, {@code lokr_w2_a}, ...) plus a 0-d {@code .alpha} per module;
 * a module's scale is alpha/dim (dim: the rank of hada_w1_b, or of LoKr's decomposed factor; a
 * missing alpha means scale 1), and a LoKr module whose two factors are full has scale 1 whatever
 * its alpha. Conversion keeps every module's ΔW: where PEFT's single alpha/r cannot express a
 * module's scale (LoKr with both factors full, or per-module alphas), the ratio is folded into the
 * module's first factor ({@code hada_w1_a}, {@code lokr_w1} or {@code lokr_w1_a}).
 *
 * <p>Files peft4j writes also carry, in {@code __metadata__}, the adapter's config
 * ({@value #META_CONFIG}) and each flattened name's module path ({@value #META_PATHS}), so that a
 * round trip is exact; for other files module names are resolved against the base model's Linear
 * layers and PEFT's config is inferred from the tensor shapes.
 */
public final class LycorisFiles {
    private LycorisFiles() {}

    public static final String DEFAULT_PREFIX = "lycoris_";
    public static final String META_CONFIG = "peft4j.adapter_config";
    public static final String META_PATHS = "peft4j.module_paths";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final List<String> LOHA = List.of("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b");
    private static final List<String> LOKR = List.of("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b");

    /** One module's tensors (by PEFT name), values and shapes. */
    private record ModuleTensors(Map<String, float[]> values, Map<String, long[]> shapes) {
        ModuleTensors() {
            this(new LinkedHashMap<>(), new LinkedHashMap<>());
        }

        long dim(String name, int i) { return shapes.get(name)[i]; }

        boolean has(String name) { return values.containsKey(name); }

        /** LoKr: d_out = rows(W1)·rows(W2), d_in = cols(W1)·cols(W2). */
        long[] lokrDims() {
            long a = has("lokr_w1") ? dim("lokr_w1", 0) : dim("lokr_w1_a", 0), c = has("lokr_w1") ? dim("lokr_w1", 1) : dim("lokr_w1_b", 1);
            long b = has("lokr_w2") ? dim("lokr_w2", 0) : dim("lokr_w2_a", 0), d = has("lokr_w2") ? dim("lokr_w2", 1) : dim("lokr_w2_b", 1);
            return new long[] {a, b, c, d};
        }

        /** Multiplies the module's first factor by k (keeps ΔW when the scale changes by 1/k). */
        void foldIntoFirstFactor(float k) {
            if (k == 1f) return;
            String first = Stream.of("hada_w1_a", "lokr_w1", "lokr_w1_a").filter(this::has).findFirst().orElseThrow();
            float[] v = values.get(first);
            for (int i = 0; i < v.length; i++) v[i] *= k;
        }
    }

    // ---- PEFT → LyCORIS ----

    /** Writes the LoHa or LoKr adapter of a PEFT-layout directory as one LyCORIS file. */
    public static void peftToLycoris(Path peftDir, Path out, String prefix) {
        Map<String, Object> json = readJson(peftDir.resolve(PeftModel.CONFIG_FILE));
        Object type = json.get("peft_type");
        if (!"LOHA".equals(type) && !"LOKR".equals(type)) {
            throw new IllegalArgumentException(peftDir.resolve(PeftModel.CONFIG_FILE) + ": peft_type " + type
                    + " has no LyCORIS layout in peft4j (LOHA and LOKR do)");
        }
        Object config = AdapterMethods.forType((String) type).configFromJson(json);
        Path weights = peftDir.resolve(PeftModel.WEIGHTS_FILE);
        Map<String, ModuleTensors> modules = readModules(weights, PeftModel.KEY_PREFIX, "LOHA".equals(type) ? LOHA : LOKR, "");
        SafetensorsWriter w = new SafetensorsWriter();
        Map<String, String> paths = new TreeMap<>();
        modules.forEach((path, m) -> {
            String flatName = path.replace('.', '_'), flat = prefix + flatName;
            if (paths.put(flatName, path) != null) throw new IllegalArgumentException(weights + ": modules flatten to the same LyCORIS name '" + flat + "'");
            float alpha;
            if (config instanceof LohaConfig c) {
                alpha = c.alpha();   // LyCORIS: alpha / dim(hada_w1_b) = alpha / r, PEFT's scale
            } else {
                LokrConfig c = (LokrConfig) config;
                long[] d = m.lokrDims();
                LokrConfig.Shapes sh = new LokrConfig.Shapes((int) d[0], (int) d[1], (int) d[2], (int) d[3], m.has("lokr_w1"), m.has("lokr_w2"));
                if (sh.fullW1() && sh.fullW2()) {
                    m.foldIntoFirstFactor(c.scaling(sh));   // LyCORIS applies scale 1 here
                    alpha = c.r();
                } else {
                    alpha = c.alpha();
                }
            }
            m.values().forEach((name, v) -> w.putF32(flat + "." + name, m.shapes().get(name), v));
            w.putF32(flat + ".alpha", new long[0], new float[] {alpha});
        });
        try {
            w.metadata(Map.of("format", "pt", META_CONFIG, JSON.writeValueAsString(json), META_PATHS, JSON.writeValueAsString(paths)));
            w.write(out);
        } catch (IOException e) {
            throw new UncheckedIOException("write " + out + ": " + e.getMessage(), e);
        }
    }

    // ---- LyCORIS → PEFT ----

    /**
     * Writes a LyCORIS file as a PEFT-layout directory. {@code modulePaths} (the base model's Linear
     * paths, may be null) resolve flattened module names when the file lacks peft4j's path map.
     */
    public static void lycorisToPeft(Path file, Path outDir, String prefix, Set<String> modulePaths) {
        Map<String, String> meta;
        Set<String> types = new LinkedHashSet<>();
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            meta = f.metadata();
            for (String key : f.names()) {
                if (!key.startsWith(prefix)) throw new IllegalArgumentException(file + ": key '" + key + "' does not start with the prefix '" + prefix + "'");
                String name = key.substring(key.indexOf('.') + 1);
                if (LOHA.contains(name)) types.add("LOHA");
                else if (LOKR.contains(name)) types.add("LOKR");
                else if (!name.equals("alpha")) {
                    throw new IllegalArgumentException(file + ": tensor '" + key + "' is not a LoHa or LoKr tensor (" + String.join(", ", LOHA) + ", "
                            + String.join(", ", LOKR) + ", alpha)");
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("read " + file + ": " + e.getMessage(), e);
        }
        if (types.size() != 1) throw new IllegalArgumentException(file + ": expected the tensors of one method (LoHa or LoKr), found " + types);
        String type = types.iterator().next();
        Map<String, ModuleTensors> flat = readModules(file, prefix, type.equals("LOHA") ? LOHA : LOKR, "alpha");
        Map<String, String> pathOf = resolvePaths(file, flat.keySet(), meta, modulePaths);
        Map<String, Object> json;
        if (meta.containsKey(META_CONFIG)) {
            json = readJsonString(file, meta.get(META_CONFIG));
        } else {
            json = type.equals("LOHA") ? inferLoha(file, flat) : inferLokr(file, flat, pathOf);
            List<String> targets = new ArrayList<>(new java.util.TreeSet<>(pathOf.values()));
            json.put("target_modules", TargetModules.names(targets.toArray(String[]::new)).toJson());
        }
        Object config = AdapterMethods.forType(type).configFromJson(json);
        SafetensorsWriter w = new SafetensorsWriter();
        flat.forEach((name, m) -> {
            float lycoris = lycorisScale(m, type);
            float peft;
            if (config instanceof LohaConfig c) {
                peft = c.scaling();
                if (m.dim("hada_w1_b", 0) != c.r()) throw new IllegalArgumentException(file + ": module '" + name + "' has rank " + m.dim("hada_w1_b", 0) + ", the config " + c.r());
            } else {
                LokrConfig c = (LokrConfig) config;
                long[] d = m.lokrDims();
                LokrConfig.Shapes sh = c.shapes(d[0] * d[1], d[2] * d[3]);
                if (sh.a() != d[0] || sh.b() != d[1] || sh.c() != d[2] || sh.d() != d[3] || sh.fullW1() != m.has("lokr_w1") || sh.fullW2() != m.has("lokr_w2")) {
                    throw new IllegalArgumentException(file + ": module '" + name + "' has LoKr factors " + java.util.Arrays.toString(d)
                            + " that PEFT's rules for this config give as " + sh);
                }
                peft = c.scaling(sh);
            }
            m.foldIntoFirstFactor(lycoris / peft);
            m.values().forEach((t, v) -> w.putF32(PeftModel.KEY_PREFIX + pathOf.get(name) + "." + t, m.shapes().get(t), v));
        });
        try {
            Files.createDirectories(outDir);
            w.metadata("format", "pt");
            w.write(outDir.resolve(PeftModel.WEIGHTS_FILE));
            AtomicFiles.writeString(outDir.resolve(PeftModel.CONFIG_FILE), JSON.writeValueAsString(new TreeMap<>(json)) + "\n");
        } catch (IOException e) {
            throw new UncheckedIOException("write " + outDir + ": " + e.getMessage(), e);
        }
    }

    /** The scale LyCORIS gives a module: alpha/dim, 1 without alpha, 1 for LoKr with both factors full. */
    private static float lycorisScale(ModuleTensors m, String type) {
        float[] alpha = m.values().remove("alpha");
        m.shapes().remove("alpha");
        long dim;
        if (type.equals("LOHA")) dim = m.dim("hada_w1_b", 0);
        else if (m.has("lokr_w2_b")) dim = m.dim("lokr_w2_b", 0);
        else if (m.has("lokr_w1_b")) dim = m.dim("lokr_w1_b", 0);
        else return 1f;
        return alpha == null ? 1f : alpha[0] / dim;
    }

    private static Map<String, Object> inferLoha(Path file, Map<String, ModuleTensors> flat) {
        ModuleTensors first = flat.values().iterator().next();
        long r = first.dim("hada_w1_b", 0);
        float[] alpha = first.values().get("alpha");
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", "LOHA");
        json.put("r", r);
        json.put("alpha", alpha == null ? (double) r : (double) alpha[0]);
        return json;
    }

    /**
     * PEFT derives LoKr's factor shapes from (r, decompose_factor, decompose_both): find values that
     * give every module the shapes it has, or refuse naming the first module none fits.
     */
    private static Map<String, Object> inferLokr(Path file, Map<String, ModuleTensors> flat, Map<String, String> pathOf) {
        long r = -1;
        float alpha = Float.NaN;
        Set<Long> candidates = new LinkedHashSet<>(List.of(-1L));
        long needFull = 1;
        for (ModuleTensors m : flat.values()) {
            long[] d = m.lokrDims();
            candidates.add(d[0]);
            candidates.add(d[2]);
            for (String dec : List.of("lokr_w2_b", "lokr_w1_b")) {
                if (!m.has(dec)) continue;
                if (r != -1 && r != m.dim(dec, 0)) throw new IllegalArgumentException(file + ": modules of different ranks (" + r + ", " + m.dim(dec, 0)
                        + "); PEFT's config holds one r");
                r = m.dim(dec, 0);
                if (Float.isNaN(alpha)) alpha = m.has("alpha") ? m.values().get("alpha")[0] : r;
            }
            needFull = Math.max(needFull, (Math.max(d[1], d[3]) + 1) / 2);
        }
        if (r == -1) {   // every factor full: LyCORIS scale 1, PEFT alpha = r
            r = needFull;
            alpha = r;
        }
        for (long f : candidates) {
            for (boolean both : new boolean[] {false, true}) {
                LokrConfig c = LokrConfig.builder().r((int) r).alpha(alpha).decomposeFactor((int) f).decomposeBoth(both).targetModules("x").build();
                boolean fits = flat.values().stream().allMatch(m -> {
                    long[] d = m.lokrDims();
                    return c.shapes(d[0] * d[1], d[2] * d[3]).equals(new LokrConfig.Shapes((int) d[0], (int) d[1], (int) d[2], (int) d[3],
                            m.has("lokr_w1"), m.has("lokr_w2")));
                });
                if (fits) {
                    Map<String, Object> json = new LinkedHashMap<>();
                    json.put("peft_type", "LOKR");
                    json.put("r", r);
                    json.put("alpha", (double) alpha);
                    json.put("decompose_factor", f);
                    json.put("decompose_both", both);
                    return json;
                }
            }
        }
        String first = flat.keySet().iterator().next();
        throw new IllegalArgumentException(file + ": the LoKr factor shapes (e.g. module '" + first + "' "
                + java.util.Arrays.toString(flat.get(first).lokrDims()) + ") match no PEFT factorization (decompose_factor, decompose_both, r = " + r + ")");
    }

    /** Flattened module name → module path: peft4j's map when the file has it, else the base model's Linear paths. */
    private static Map<String, String> resolvePaths(Path file, Set<String> names, Map<String, String> meta, Set<String> modulePaths) {
        Map<String, String> pathOf = new LinkedHashMap<>();
        if (meta.containsKey(META_PATHS)) {
            Map<String, Object> map = readJsonString(file, meta.get(META_PATHS));
            for (String n : names) {
                if (!(map.get(n) instanceof String p)) throw new IllegalArgumentException(file + ": module '" + n + "' is not in the file's " + META_PATHS);
                pathOf.put(n, p);
            }
            return pathOf;
        }
        if (modulePaths == null) {
            throw new IllegalArgumentException(file + ": module names like '" + names.iterator().next() + "' need the base model to be resolved"
                    + " (which '_' were '.'): pass the base (--base)");
        }
        return matchFlatNames(file, names, modulePaths);
    }

    private static Map<String, String> matchFlatNames(Path file, Set<String> names, Set<String> modulePaths) {
        Map<String, String> byFlat = new LinkedHashMap<>();
        for (String p : modulePaths) {
            String prev = byFlat.put(p.replace('.', '_'), p);
            if (prev != null) throw new IllegalArgumentException("Linear layers '" + prev + "' and '" + p + "' have the same LyCORIS name");
        }
        Map<String, String> pathOf = new LinkedHashMap<>();
        for (String n : names) {
            String p = byFlat.get(n);
            if (p == null) throw new IllegalArgumentException(file + ": module '" + n + "' matches no Linear layer of the base (" + modulePaths + ")");
            pathOf.put(n, p);
        }
        return pathOf;
    }

    /** Tensors by module: keys {@code <prefix><module>.<name>}, names among {@code allowed} (and {@code extra}). */
    private static Map<String, ModuleTensors> readModules(Path file, String prefix, List<String> allowed, String extra) {
        Map<String, ModuleTensors> out = new TreeMap<>();
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            for (String key : f.names().stream().sorted(Comparator.naturalOrder()).toList()) {
                String rest = key.startsWith(prefix) ? key.substring(prefix.length()) : null;
                String name = rest == null ? null : allowed.stream().filter(n -> rest.endsWith("." + n)).findFirst()
                        .orElse(!extra.isEmpty() && rest.endsWith("." + extra) ? extra : null);
                if (name == null) throw new IllegalArgumentException(file + ": unexpected tensor '" + key + "'");
                String module = rest.substring(0, rest.length() - name.length() - 1);
                ModuleTensors m = out.computeIfAbsent(module, k -> new ModuleTensors());
                m.values().put(name, f.readF32(key));
                m.shapes().put(name, f.entry(key).shape());
            }
        } catch (IOException e) {
            throw new UncheckedIOException("read " + file + ": " + e.getMessage(), e);
        }
        if (out.isEmpty()) throw new IllegalArgumentException(file + ": no adapter tensors");
        return out;
    }

    // ---- a model's adapter ----

    /** Saves a LoHa or LoKr adapter of {@code pm} as one LyCORIS file. */
    public static void save(PeftModel pm, String adapter, Path file, String prefix) {
        Path tmp = tempDir();
        try {
            pm.saveAdapter(adapter, tmp);
            peftToLycoris(tmp, file, prefix);
        } finally {
            deleteTree(tmp);
        }
    }

    /** Loads a LyCORIS file onto {@code base} (module names resolved against its Linear layers). */
    public static PeftModel load(Module base, Path file, String prefix) {
        Set<String> paths = new LinkedHashSet<>();
        base.namedModules().forEach((p, m) -> {
            if (m instanceof Linear) paths.add(p);
        });
        Path tmp = tempDir();
        try {
            lycorisToPeft(file, tmp, prefix, paths);
            return PeftModel.load(base, tmp);
        } finally {
            deleteTree(tmp);
        }
    }

    private static Path tempDir() {
        try {
            return Files.createTempDirectory("peft4j-lycoris");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> readJson(Path file) {
        try {
            return JSON.readValue(file.toFile(), Map.class);
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read the config: " + e.getMessage(), e);
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> readJsonString(Path file, String text) {
        try {
            return JSON.readValue(text, Map.class);
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": malformed peft4j metadata: " + e.getMessage(), e);
        }
    }
}
