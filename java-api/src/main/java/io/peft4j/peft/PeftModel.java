package io.peft4j.peft;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.peft4j.backend.Backend;
import io.peft4j.io.AtomicFiles;
import io.peft4j.io.IoErrors;
import io.peft4j.io.ModelCheckpoint;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.io.SafetensorsWriter;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.TrainerCallback;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * A model with adapters injected into its matching Linear layers, everything else frozen: PEFT's
 * verbs on the JVM (wrap, merge, unmerge, mergeAndUnload, disable/enable, several named adapters,
 * save/load in PEFT's file layout).
 */
public final class PeftModel extends Module {
    public static final String DEFAULT_ADAPTER = "default";
    public static final String WEIGHTS_FILE = "adapter_model.safetensors";
    public static final String CONFIG_FILE = "adapter_config.json";
    /** PEFT prefixes every saved key with this (the PeftModel → LoraModel → base model path). */
    public static final String KEY_PREFIX = "base_model.model.";
    /** PEFT's prefix of model-level tensors shared by every layer (VeRA's base_model.vera_A). */
    public static final String SHARED_KEY_PREFIX = "base_model.";
    /** adapter_config.json's list of modules trained whole and saved with the adapter (read here, for every method). */
    static final String MODULES_TO_SAVE = "modules_to_save";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final Module base;
    private final Backend backend;
    private final Map<String, AdapterConfig> configs = new LinkedHashMap<>();
    // Adapters of whole-model methods (prompt tuning), by adapter name; the others live on Linear layers.
    private final Map<String, ModelAdapter> modelAdapters = new LinkedHashMap<>();
    // PEFT's modules_to_save, by adapter name: the names as given, and the modules they resolve to, by path.
    private final Map<String, List<String>> modulesToSaveNames = new LinkedHashMap<>();
    private final Map<String, Map<String, Module>> modulesToSave = new LinkedHashMap<>();
    private boolean adaptersEnabled = true;
    private String active;

    private PeftModel(Module base, Backend backend) {
        this.base = base;
        this.backend = backend;
    }

    /** Injects a "default" adapter per {@code config} and freezes every base parameter. */
    public static PeftModel wrap(Module model, AdapterConfig config) {
        return wrap(model, config, Backend.cpu(), 0);
    }

    public static PeftModel wrap(Module model, AdapterConfig config, Backend backend, long seed) {
        return wrap(model, config, backend, seed, List.of());
    }

    /**
     * As {@link #wrap(Module, AdapterConfig, Backend, long)}, and {@code modulesToSave} (PEFT's
     * modules_to_save, e.g. a classification head) are fully trained and saved with the adapter.
     */
    public static PeftModel wrap(Module model, AdapterConfig config, Backend backend, long seed, List<String> modulesToSave) {
        PeftModel pm = new PeftModel(model, backend);
        pm.freezeBaseWhile(() -> pm.addAdapter(DEFAULT_ADAPTER, config, seed, modulesToSave));
        return pm;
    }

    /** Loads a saved adapter (dir holds adapter_config.json and adapter_model.safetensors) onto {@code model}. */
    public static PeftModel load(Module model, Path dir) {
        return load(model, dir, Backend.cpu());
    }

    public static PeftModel load(Module model, Path dir, Backend backend) {
        PeftModel pm = new PeftModel(model, backend);
        pm.freezeBaseWhile(() -> pm.loadAdapter(dir, DEFAULT_ADAPTER));
        return pm;
    }

    /** Freezes every base parameter, then runs {@code inject}; if that fails the model is left as it was. */
    private void freezeBaseWhile(Runnable inject) {
        Map<Parameter, Boolean> before = new LinkedHashMap<>();
        for (Parameter p : base.namedParameters().values()) {
            before.put(p, p.requiresGrad());
            p.setRequiresGrad(false);
        }
        try {
            inject.run();
        } catch (RuntimeException e) {
            before.forEach(Parameter::setRequiresGrad);
            throw e;
        }
    }

    /** The wrapped model (its Linear layers now carry adapters). */
    public Module baseModel() { return base; }
    public Backend backend() { return backend; }
    public String activeAdapter() { return active; }
    public Map<String, AdapterConfig> adapterConfigs() { return Map.copyOf(configs); }

    /** The layers that carry the named adapter, by path. */
    public Map<String, Linear> adaptedLayers(String adapterName) {
        Map<String, Linear> out = new LinkedHashMap<>();
        base.namedModules().forEach((path, m) -> {
            if (m instanceof Linear l && l.adapters().containsKey(adapterName)) out.put(path, l);
        });
        return out;
    }

    /** Adds an adapter under {@code name} to every matching layer; the first adapter becomes active. */
    public void addAdapter(String name, AdapterConfig config, long seed) {
        addAdapter(name, config, seed, List.of());
    }

    /**
     * As {@link #addAdapter(String, AdapterConfig, long)}, with PEFT's modules_to_save: each name
     * is a module path or its last components ("classifier" names "classifier" and "x.classifier");
     * those modules train whole while this adapter is active and are saved with it (keys
     * base_model.model.&lt;path&gt;.&lt;param&gt;, as PEFT writes them). Unlike PEFT, which keeps
     * a copy per adapter, peft4j trains the module in place: only one adapter may name it, and
     * disabling adapters does not bring back its original values.
     */
    public void addAdapter(String name, AdapterConfig config, long seed, List<String> saveModules) {
        if (configs.containsKey(name)) throw new IllegalArgumentException("adapter '" + name + "' already exists");
        if (name.isBlank() || name.contains(".") || name.contains("/")) throw new IllegalArgumentException("bad adapter name '" + name + "'");
        Map<String, Module> saved = resolveModulesToSave(saveModules);
        modulesToSaveNames.put(name, List.copyOf(saveModules));
        modulesToSave.put(name, saved);
        try {
            addAdapterLayers(name, config, seed);
        } catch (RuntimeException e) {
            modulesToSaveNames.remove(name);
            modulesToSave.remove(name);
            throw e;
        }
    }

    /** The modules the names pick out, by path; each name must pick at least one not already saved by another adapter. */
    private Map<String, Module> resolveModulesToSave(List<String> names) {
        Map<String, Module> out = new LinkedHashMap<>();
        for (String n : names) {
            if (n == null || n.isBlank()) throw new IllegalArgumentException("modules_to_save holds an empty module name");
            int before = out.size();
            base.namedModules().forEach((path, m) -> {
                if (!path.isEmpty() && (path.equals(n) || path.endsWith("." + n))) out.put(path, m);
            });
            if (out.size() == before) {
                throw new IllegalArgumentException("modules_to_save '" + n + "' names no module of this model; its modules are "
                        + base.namedModules().keySet().stream().filter(p -> !p.isEmpty()).toList());
            }
        }
        out.forEach((path, m) -> {
            modulesToSave.forEach((other, ms) -> {
                if (ms.containsKey(path)) {
                    throw new IllegalArgumentException("modules_to_save '" + path + "' is already trained by adapter '" + other
                            + "' (peft4j trains such a module in place, for one adapter)");
                }
            });
        });
        return out;
    }

    private void addAdapterLayers(String name, AdapterConfig config, long seed) {
        if (config instanceof ModelAdapterConfig mc) {
            modelAdapters.put(name, mc.attach(base, name, backend, seed));
            configs.put(name, config);
            setActiveAdapter(active == null ? name : active);
            return;
        }
        List<Linear> targets = new ArrayList<>();
        base.namedModules().forEach((path, m) -> {
            // As PEFT: a module in modules_to_save is trained whole, never also adapted (so all-linear skips a classifier head).
            boolean saved = modulesToSave.get(name).keySet().stream().anyMatch(p -> path.equals(p) || path.startsWith(p + "."));
            if (m instanceof Linear l && !path.isEmpty() && !saved && config.targetModules().matches(path)) targets.add(l);
        });
        if (targets.isEmpty()) {
            List<String> linears = base.namedModules().entrySet().stream().filter(e -> e.getValue() instanceof Linear).map(Map.Entry::getKey).toList();
            throw new IllegalArgumentException("target_modules " + config.targetModules().toJson()
                    + " matches no Linear layer; the model's Linear layers are " + linears);
        }
        List<Adapter> created = config.createAll(targets, name, backend, seed);
        for (int i = 0; i < targets.size(); i++) targets.get(i).addAdapter(created.get(i));
        configs.put(name, config);
        setActiveAdapter(active == null ? name : active);   // re-syncs layers that just got their first adapter
    }

    /** Makes {@code name} the adapter that forward applies and training updates. */
    public void setActiveAdapter(String name) {
        requireAdapter(name);
        for (Linear l : allLinears()) l.setActiveAdapter(l.adapters().containsKey(name) ? name : null);
        active = name;
        freezeInactive();
    }

    private void freezeInactive() {
        for (Linear l : allLinears()) {
            l.adapters().forEach((n, a) -> {
                a.parameters().forEach(p -> p.setRequiresGrad(n.equals(active) && a.trainable(p)));
                a.sharedParameters().forEach(p -> p.setRequiresGrad(n.equals(active) && a.trainable(p)));
            });
            // Layer parameters an adapter trains (BitFit's bias): trained only while that adapter is active.
            l.adapters().forEach((n, a) -> trainedBase(l, a).forEach(p -> p.setRequiresGrad(false)));
            Adapter a = active == null ? null : l.adapters().get(active);
            if (a != null) trainedBase(l, a).forEach(p -> p.setRequiresGrad(true));
        }
        modelAdapters.forEach((n, a) -> {
            a.parameters().values().forEach(p -> p.setRequiresGrad(n.equals(active)));
            a.setApplied(adaptersEnabled && n.equals(active));
        });
        modulesToSave.forEach((n, ms) -> savedModuleParameters(ms).values().forEach(p -> p.setRequiresGrad(n.equals(active))));
    }

    /** Every parameter of the given modules (their subtrees), by its key in adapter_model.safetensors. */
    private static Map<String, Parameter> savedModuleParameters(Map<String, Module> modules) {
        Map<String, Parameter> out = new LinkedHashMap<>();
        // namedModules() keys are full paths from the wrapped model's root ("classifier", "head.fc")
        modules.values().forEach(root -> root.namedModules().forEach((path, m) ->
                m.localParameters().forEach((n, p) -> out.put(KEY_PREFIX + path + "." + n, p))));
        return out;
    }

    /** PEFT's modules_to_save of the named adapter, as given (empty when none). */
    public List<String> modulesToSave(String adapterName) {
        requireAdapter(adapterName);
        return modulesToSaveNames.get(adapterName);
    }

    /** The layer's own parameters that {@code a} trains, by {@link Adapter#trainedBaseParameters}. */
    private static List<Parameter> trainedBase(Linear l, Adapter a) {
        List<Parameter> out = new ArrayList<>();
        for (String n : a.trainedBaseParameters()) {
            Parameter p = l.localParameters().get(n);
            if (p == null) throw new IllegalArgumentException("layer '" + l.path() + "' has no parameter '" + n + "' for adapter '" + a.adapterName() + "' to train");
            out.add(p);
        }
        return out;
    }

    /** What a saved adapter holds for one layer: its own parameters, then the layer parameters it trains. */
    private static List<Parameter> savedParameters(Linear l, Adapter a) {
        List<Parameter> out = new ArrayList<>(a.parameters());
        out.addAll(trainedBase(l, a));
        return out;
    }

    private void requireAdapter(String name) {
        if (!configs.containsKey(name)) throw new IllegalArgumentException("no adapter '" + name + "' (have " + configs.keySet() + ")");
    }

    private List<Linear> allLinears() {
        return base.namedModules().values().stream().filter(m -> m instanceof Linear).map(m -> (Linear) m).toList();
    }

    /** The active adapter's training-loop callbacks, new for one run (see {@link AdapterConfig#trainerCallbacks}). */
    public List<TrainerCallback> trainerCallbacks() {
        return configs.get(requireActive()).trainerCallbacks(this, active);
    }

    /** Folds the active adapter into the base weights: W ← W + ΔW. */
    public void merge() {
        if (modelAdapters.containsKey(requireActive())) {
            throw new IllegalStateException(configs.get(active).peftType() + " adapter '" + active + "' adds to the model's input and cannot be merged into its weights");
        }
        for (Linear l : adaptedLayers(requireActive()).values()) {
            if (!l.isMerged(active)) l.merge(backend, active);
        }
    }

    /** Undoes {@link #merge()}: W ← W − ΔW. */
    public void unmerge() {
        for (Linear l : adaptedLayers(requireActive()).values()) {
            if (l.isMerged(active)) l.unmerge(backend, active);
        }
    }

    private String requireActive() {
        if (active == null) throw new IllegalStateException("no adapter left on this model");
        return active;
    }

    /** Merges the active adapter, removes every adapter, and returns the plain base model. */
    public Module mergeAndUnload() {
        merge();
        List<Parameter> shared = new ArrayList<>();
        for (String n : configs.keySet()) shared.addAll(sharedParameters(n).values());
        for (Linear l : allLinears()) {
            for (String n : List.copyOf(l.adapters().keySet())) {
                trainedBase(l, l.adapter(n)).forEach(p -> p.setRequiresGrad(false));
                l.removeAdapter(n);
            }
        }
        shared.forEach(Parameter::close);
        modelAdapters.values().forEach(ModelAdapter::close);
        modelAdapters.clear();
        modulesToSave.values().forEach(ms -> savedModuleParameters(ms).values().forEach(p -> p.setRequiresGrad(false)));
        modulesToSave.clear();
        modulesToSaveNames.clear();
        configs.clear();
        active = null;
        return base;
    }

    /** Base output only; a merged adapter is unmerged first so the base really is the base. */
    public void disableAdapters() {
        if (active != null) unmerge();
        for (Linear l : allLinears()) l.setAdaptersEnabled(false);
        adaptersEnabled = false;
        freezeInactive();
    }

    public void enableAdapters() {
        for (Linear l : allLinears()) l.setAdaptersEnabled(true);
        adaptersEnabled = true;
        freezeInactive();
    }

    /** "trainable params: N || all params: M || trainable%: P", as PEFT prints it. */
    public String trainableParametersReport() {
        long trainable = trainableParameterCount();
        long all = parameterCount();
        return String.format(Locale.ROOT, "trainable params: %,d || all params: %,d || trainable%%: %.4f",
                trainable, all, all == 0 ? 0.0 : 100.0 * trainable / all);
    }

    // ---- Module: delegate to the wrapped model ----

    @Override
    public Tensor forward(StepContext ctx, Tensor x) {
        return base.forward(ctx, x);
    }

    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        return base.backward(ctx, g, needInputGrad);
    }

    @Override
    public Map<String, Module> namedModules() {
        return base.namedModules();
    }

    /** The base model's parameters, then each adapter's trainable shared ones once ("vera_A.default"). */
    @Override
    public Map<String, Parameter> namedParameters() {
        Map<String, Parameter> out = base.namedParameters();
        for (String n : configs.keySet()) {
            sharedParameters(n).forEach((key, p) -> {
                if (sharedTrainable(n, p)) out.put(p.name() + "." + n, p);
            });
        }
        return out;
    }

    /**
     * The tensors the named adapter shares across layers ({@link Adapter#sharedParameters()}), each
     * once, by file key (base_model.&lt;name&gt;).
     */
    public Map<String, Parameter> sharedParameters(String adapterName) {
        Map<String, Parameter> out = new LinkedHashMap<>();
        for (Linear l : adaptedLayers(adapterName).values()) {
            for (Parameter p : l.adapter(adapterName).sharedParameters()) out.putIfAbsent(SHARED_KEY_PREFIX + p.name(), p);
        }
        return out;
    }

    private boolean sharedTrainable(String adapterName, Parameter p) {
        return adaptedLayers(adapterName).values().stream().anyMatch(l -> l.adapter(adapterName).trainable(p));
    }

    private boolean sharedSaved(String adapterName, Parameter p) {
        return adaptedLayers(adapterName).values().stream().anyMatch(l -> l.adapter(adapterName).saved(p));
    }

    @Override
    public void close() {
        List<Parameter> shared = new ArrayList<>();
        for (String n : configs.keySet()) shared.addAll(sharedParameters(n).values());
        modelAdapters.values().forEach(ModelAdapter::close);
        modelAdapters.clear();
        base.close();
        shared.forEach(Parameter::close);
    }

    // ---- files ----

    /**
     * Saves every adapter in PEFT's layout: the "default" adapter in {@code dir}, others in
     * {@code dir/<name>}; each as adapter_model.safetensors (keys base_model.model.&lt;layer&gt;.&lt;param&gt;)
     * and adapter_config.json. Both files are written atomically.
     */
    public void save(Path dir) {
        save(dir, Map.of());
    }

    /** {@link #save(Path)} with extra entries in each weights file's metadata (e.g. which base the adapter was trained on). */
    public void save(Path dir, Map<String, String> metadata) {
        if (configs.isEmpty()) {
            throw new IllegalStateException("this PeftModel has no adapter to save (mergeAndUnload or deleteAdapter removed them);"
                    + " save the merged model with ModelCheckpoint.save");
        }
        for (String name : configs.keySet()) {
            Path target = name.equals(DEFAULT_ADAPTER) ? dir : dir.resolve(name);
            saveAdapter(name, target, metadata);
        }
    }

    public void saveAdapter(String name, Path target) {
        saveAdapter(name, target, Map.of());
    }

    public void saveAdapter(String name, Path target, Map<String, String> metadata) {
        requireAdapter(name);
        SafetensorsWriter w = new SafetensorsWriter();
        adaptedLayers(name).forEach((path, l) -> {
            for (Parameter p : savedParameters(l, l.adapter(name))) {
                w.put(KEY_PREFIX + path + "." + p.name(), DType.F32, p.value().shape(), p.value().segment());
            }
        });
        sharedParameters(name).forEach((key, p) -> {
            if (sharedSaved(name, p)) w.put(key, DType.F32, p.value().shape(), p.value().segment());
        });
        if (modelAdapters.containsKey(name)) {
            modelAdapters.get(name).parameters().forEach((key, p) -> w.put(key, DType.F32, p.value().shape(), p.value().segment()));
        }
        savedModuleParameters(modulesToSave.get(name)).forEach((key, p) -> w.put(key, DType.F32, p.value().shape(), p.value().segment()));
        w.metadata(metadata);
        w.metadata(Map.of("format", "pt"));
        Map<String, Object> json = new TreeMap<>(configs.get(name).toJson());
        if (!modulesToSaveNames.get(name).isEmpty()) json.put(MODULES_TO_SAVE, modulesToSaveNames.get(name));
        try {
            Files.createDirectories(target);
        } catch (IOException e) {
            throw IoErrors.unchecked("create directory", target, e);
        }
        Path weights = target.resolve(WEIGHTS_FILE);
        Path configFile = target.resolve(CONFIG_FILE);
        try {
            w.write(weights);
        } catch (IOException e) {
            throw IoErrors.unchecked("write", weights, e);
        }
        try {
            AtomicFiles.writeString(configFile, JSON.writeValueAsString(json) + "\n");
        } catch (IOException e) {
            throw IoErrors.unchecked("write", configFile, e);
        }
    }

    /**
     * Adds the adapter saved in {@code dir} under {@code name}. Every layer the config targets must
     * have its tensors in the file with the right shapes, and the file must hold nothing else.
     */
    public void loadAdapter(Path dir, String name) {
        Path configFile = dir.resolve(CONFIG_FILE);
        Path weights = dir.resolve(WEIGHTS_FILE);
        Map<String, Object> json = readConfigJson(configFile);
        Object type = json.get("peft_type");
        if (!(type instanceof String t)) throw new IllegalArgumentException(configFile + ": missing peft_type");
        List<String> toSave = modulesToSaveOf(configFile, json.remove(MODULES_TO_SAVE));
        AdapterConfig config = AdapterMethods.forType(t).configFromJson(json);
        try (SafetensorsFile f = SafetensorsFile.open(weights)) {
            addAdapter(name, config, 0, toSave);
            Map<String, Parameter> expected = new LinkedHashMap<>();
            try {
                Map<String, Parameter> wanted = new LinkedHashMap<>();
                adaptedLayers(name).forEach((path, l) -> {
                    for (Parameter p : savedParameters(l, l.adapter(name))) wanted.put(KEY_PREFIX + path + "." + p.name(), p);
                });
                sharedParameters(name).forEach((key, p) -> {
                    if (sharedSaved(name, p) || f.contains(key)) wanted.put(key, p);   // an unsaved one is read when present
                });
                wanted.putAll(savedModuleParameters(modulesToSave.get(name)));
                wanted.forEach((key, p) -> {
                    expected.put(key, p);
                    if (!f.contains(key)) throw new IllegalArgumentException(weights + ": missing tensor '" + key + "'");
                    long[] shape = f.entry(key).shape();
                    if (!Arrays.equals(shape, p.value().shape())) {
                        throw new IllegalArgumentException(weights + ": tensor '" + key + "' has shape " + Arrays.toString(shape)
                                + ", the model needs " + p.value().describe());
                    }
                });
                if (modelAdapters.containsKey(name)) {
                    modelAdapters.get(name).parameters().forEach((key, p) -> {
                        expected.put(key, p);
                        if (!f.contains(key)) throw new IllegalArgumentException(weights + ": missing tensor '" + key + "'");
                        if (!Arrays.equals(f.entry(key).shape(), p.value().shape())) {
                            throw new IllegalArgumentException(weights + ": tensor '" + key + "' has shape " + Arrays.toString(f.entry(key).shape())
                                    + ", the model needs " + p.value().describe());
                        }
                    });
                }
                for (String key : f.names()) {
                    if (!expected.containsKey(key)) throw new IllegalArgumentException(weights + ": unexpected tensor '" + key
                            + "' (no adapted layer of this model has it)");
                }
                // Read everything before writing anything: a file that fails half way (a non-finite
                // value) leaves the layer parameters an adapter trains (BitFit's biases) untouched.
                Map<Parameter, float[]> values = new LinkedHashMap<>();
                expected.forEach((key, p) -> values.put(p, ModelCheckpoint.readFiniteF32(f, key)));
                values.forEach((p, v) -> p.value().copyFrom(v));
            } catch (RuntimeException e) {
                deleteAdapter(name);
                throw e;
            }
        } catch (IOException e) {
            throw IoErrors.unchecked("read", weights, e);
        }
    }

    /** adapter_config.json's modules_to_save: absent or null (none), else a list of module names. */
    private static List<String> modulesToSaveOf(Path configFile, Object value) {
        if (value == null) return List.of();
        if (!(value instanceof List<?> list) || list.stream().anyMatch(x -> !(x instanceof String))) {
            throw new IllegalArgumentException(configFile + ": modules_to_save must be null or a list of module names, got " + value);
        }
        return list.stream().map(x -> (String) x).toList();
    }

    /** The config file as a JSON object; a syntax error is reported as file, line, column and what was expected. */
    @SuppressWarnings("unchecked")
    private static Map<String, Object> readConfigJson(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {   // a missing or unreadable config is bad input to load, as a malformed one is
            throw new IllegalArgumentException(IoErrors.describe("read", file, e).getMessage(), e);
        }
        JsonNode root;
        try {
            root = JSON.readTree(bytes);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(file + ": not valid JSON " + IoErrors.jsonSyntax(e), e);
        } catch (IOException e) {
            throw new IllegalArgumentException(IoErrors.describe("read", file, e).getMessage(), e);
        }
        if (root == null || root.isMissingNode()) throw new IllegalArgumentException(file + ": the file is empty, expected a JSON object");
        if (!root.isObject()) {
            throw new IllegalArgumentException(file + ": expected a JSON object { ... } at the top level, found " + root.getNodeType().name().toLowerCase(Locale.ROOT));
        }
        return JSON.convertValue(root, Map.class);
    }

    /** Removes an adapter from every layer (unmerging it first if merged). */
    public void deleteAdapter(String name) {
        requireAdapter(name);
        List<Parameter> shared = List.copyOf(sharedParameters(name).values());
        for (Linear l : adaptedLayers(name).values()) {
            if (l.isMerged(name)) l.unmerge(backend, name);
            trainedBase(l, l.adapter(name)).forEach(p -> p.setRequiresGrad(false));
            l.removeAdapter(name);
        }
        shared.forEach(Parameter::close);
        ModelAdapter ma = modelAdapters.remove(name);
        if (ma != null) ma.close();
        savedModuleParameters(modulesToSave.remove(name)).values().forEach(p -> p.setRequiresGrad(false));
        modulesToSaveNames.remove(name);
        configs.remove(name);
        if (name.equals(active)) {
            active = null;
            if (!configs.isEmpty()) setActiveAdapter(configs.keySet().iterator().next());
        } else if (active != null) {
            freezeInactive();   // the loop above froze layer parameters the active adapter may train too (BitFit's bias)
        }
    }
}
