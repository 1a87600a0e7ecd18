package io.peft4j.cli;

import io.peft4j.io.IoErrors;
import io.peft4j.backend.Backend;
import io.peft4j.data.Dataset;
import io.peft4j.data.FashionMnist;
import io.peft4j.data.FashionMnist.Split;
import io.peft4j.data.FashionMnist.Task;
import io.peft4j.io.ModelCheckpoint;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.BertClassifier;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.PeftModel;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import io.peft4j.train.TrainerCallback;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The steps the commands share: data, the base model, fine-tuning, evaluation. */
final class Workflow {
    static final long[] MLP_SIZES = {784, 512, 512, 10};
    static final int BASE_EPOCHS = 3;

    final Backend backend = Backend.cpu();
    final Path dataDir;
    final Path cacheDir;
    final int limit;
    final PrintStream out;
    final boolean progress;
    /** The fortunes as token ids once a MiniLM base is loaded (its tokenizer made them); null for the image models. */
    private Map<Split, Dataset> text;

    Workflow(Path dataDir, Path cacheDir, int limit, boolean progress, PrintStream out) {
        this.dataDir = dataDir == null ? FashionMnist.defaultDir() : dataDir;
        this.cacheDir = cacheDir == null ? defaultCache() : cacheDir;
        this.limit = limit;
        this.progress = progress;
        this.out = out;
    }

    static Path defaultCache() {
        String env = System.getenv("PEFT4J_CACHE");
        if (env != null && !env.isBlank()) return Path.of(env);
        String xdg = System.getenv("XDG_CACHE_HOME");
        return (xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache")).resolve("peft4j");
    }

    /** --model's value checked: "mlp", "vit" or "minilm". */
    static String modelKind(String name) {
        String k = name == null ? "mlp" : name.toLowerCase(java.util.Locale.ROOT);
        if (!k.equals("mlp") && !k.equals("vit") && !k.equals(MiniLmBase.MODEL)) {
            throw new IllegalArgumentException("--model " + name + ": expected mlp, vit or minilm");
        }
        return k;
    }

    /** From now on the data is this text task (the MiniLM base sets it: its tokenizer made the ids); the image task is then ignored. */
    void useText(Map<Split, Dataset> splits) {
        text = splits;
    }

    /** The task's name in reports: "fortunes" for the text task, else "original" or "rot90". */
    /** Whether the base is the text model (one data set, fortunes: --task does not apply). */
    boolean textTask() {
        return text != null;
    }

    String taskName(Task task) {
        return text != null ? "fortunes" : task.name().toLowerCase(java.util.Locale.ROOT);
    }

    Dataset data(Split split, Task task) {
        if (text != null) return text.get(split);
        // With --limit the test split keeps a proportional share, so small runs stay small.
        int n = limit <= 0 ? 0 : split == Split.TRAIN ? limit : Math.max(1, limit / 6);
        return FashionMnist.load(dataDir, split, task, n);
    }

    Path baseFile(long seed, int pretrainLimit) {
        return cacheDir.resolve("mlp-784-512-512-10-original-e" + BASE_EPOCHS + "-seed" + seed
                + (pretrainLimit > 0 ? "-limit" + pretrainLimit : "") + ".safetensors");
    }

    /**
     * The base MLP pretrained on the original task (Adam lr 1e-3, batch 128) with {@code seed} on the
     * first {@code pretrainLimit} images (0 = all), from the cache or trained now.
     */
    BaseModel pretrained(long seed, int pretrainLimit) {
        Path file = baseFile(seed, pretrainLimit);
        Mlp mlp = new Mlp(backend, Mlp.Activation.RELU, seed, MLP_SIZES);
        Map<String, String> origin = new LinkedHashMap<>();
        origin.put("source", "pretrained");
        origin.put("sizes", BaseModel.sizesText(MLP_SIZES));
        origin.put("seed", Long.toString(seed));
        origin.put("limit", Integer.toString(pretrainLimit));
        origin.put("recipe", "relu, task original, adam lr 1e-3, batch 128, epochs " + BASE_EPOCHS);
        try {
            if (Files.isRegularFile(file)) {
                ModelCheckpoint.load(mlp, file);
                out.println("base model: loaded from cache " + file);
                return new BaseModel(mlp, BaseModel.sha256(mlp), origin, Double.NaN, Double.NaN);
            }
            out.println("base model: pretraining MLP 784-512-512-10 on 'original' (" + BASE_EPOCHS + " epochs, Adam lr 1e-3, batch 128, seed " + seed
                    + (pretrainLimit > 0 ? ", first " + pretrainLimit + " images" : "") + ")");
            Trainer.Config cfg = Trainer.Config.builder().epochs(BASE_EPOCHS).batchSize(128).lr(1e-3f).seed(seed)
                    .evalEvery(0).progress(progress).build();
            Trainer.Result r;
            try (Trainer t = new Trainer(mlp, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0f), cfg, backend)) {
                r = t.progressLabel("pretraining base").fit(FashionMnist.load(dataDir, Split.TRAIN, Task.ORIGINAL, pretrainLimit), null);
            }
            Files.createDirectories(cacheDir);
            ModelCheckpoint.save(mlp, file, Map.of("recipe", origin.get("recipe"), "seed", Long.toString(seed), "limit", Integer.toString(pretrainLimit)));
            double sec = r.epochs().stream().mapToDouble(Trainer.EpochResult::seconds).average().orElse(Double.NaN);
            double ms = r.epochs().stream().mapToDouble(Trainer.EpochResult::msPerStep).average().orElse(Double.NaN);
            out.println("base model: cached at " + file);
            return new BaseModel(mlp, BaseModel.sha256(mlp), origin, sec, ms);
        } catch (IOException e) {
            throw IoErrors.unchecked("read or write the base model cache", file, e);
        }
    }

    /** The cached pretrained base of a kind ("mlp" or "vit", as --model and the recorded origin name it). */
    BaseModel pretrained(String model, long seed, int pretrainLimit) {
        if (MiniLmBase.MODEL.equals(model)) return MiniLmBase.load(this, null, seed);
        return "vit".equals(model) ? VitBase.pretrained(this, seed, pretrainLimit) : pretrained(seed, pretrainLimit);
    }

    /** The base a command's flags name: {@code --base FILE}, else the cached pretrained MLP (or ViT) for --seed and --limit. */
    BaseModel base(Main.BaseOptions b, long seed, boolean requireIo) {
        if (MiniLmBase.MODEL.equals(b.model)) return MiniLmBase.load(this, b.base, seed);
        if (b.base == null) return pretrained(b.model, seed, limit);
        if ("vit".equals(b.model)) {
            BaseModel m = VitBase.fromFile(this, b.base, requireIo);
            out.println("base model: " + b.base + " (" + m.origin().get("sizes") + ")");
            return m;
        }
        List<String> notes = new ArrayList<>();
        BaseModel m = BaseModel.fromFile(backend, b.base, b.activation, requireIo, notes);
        notes.forEach(out::println);
        out.println("base model: " + b.base + " (MLP " + m.origin().get("sizes") + ", " + m.origin().get("activation") + ")");
        return m;
    }

    /**
     * The base an adapter was trained on: the origin its metadata records, unless --base or --seed
     * name one; the base's weights must hash to what the adapter recorded.
     */
    BaseModel baseFor(Path adapter, Main.BaseOptions b, Long seedFlag, boolean requireIo) {
        Map<String, String> meta = adapterMetadata(adapter);
        Map<String, String> recorded = BaseModel.recordedOrigin(meta);
        if (recorded.get("model") != null) b.model = recorded.get("model");   // the adapter knows its model kind (vit, minilm)
        BaseModel base;
        if (b.base == null && seedFlag == null && "pretrained".equals(recorded.get("source"))) {
            long seed = Long.parseLong(recorded.getOrDefault("seed", "0"));
            int pretrainLimit = Integer.parseInt(recorded.getOrDefault("limit", "0"));
            out.println("base model: as recorded in the adapter (" + BaseModel.describe(recorded) + ")");
            base = pretrained(recorded.getOrDefault("model", "mlp"), seed, pretrainLimit);
        } else {
            if (b.base == null && "pretrained".equals(recorded.get("source")) && !recorded.get("seed").equals(String.valueOf(seedFlag))) {
                throw new IllegalArgumentException("adapter " + adapter + " was trained on " + BaseModel.describe(recorded) + ", not on --seed "
                        + seedFlag + "; run with " + BaseModel.flags(recorded) + " (or without --seed)");
            }
            if (b.base == null && "file".equals(recorded.get("source")) && seedFlag == null) {
                throw new IllegalArgumentException("adapter " + adapter + " was trained on --base " + recorded.get("file") + "; pass that file with --base");
            }
            if (meta.get(BaseModel.META_SHA) == null) {
                out.println("note: adapter " + adapter + " does not record its base model; using the base these flags name");
            }
            base = base(b, seedFlag == null ? 0 : seedFlag, requireIo);
        }
        base.requireMatches(adapter, meta);
        return base;
    }

    /** An adapter directory, or a run directory holding one in {@code adapter/}. */
    static Path adapterDir(Path dir) {
        Path inner = dir.resolve("adapter");
        if (!Files.isRegularFile(dir.resolve(PeftModel.CONFIG_FILE)) && Files.isRegularFile(inner.resolve(PeftModel.CONFIG_FILE))) return inner;
        if (!Files.isDirectory(dir)) throw new IllegalArgumentException("--adapter " + dir + ": no such directory");
        if (!Files.isRegularFile(dir.resolve(PeftModel.CONFIG_FILE))) {
            throw new IllegalArgumentException("--adapter " + dir + ": no " + PeftModel.CONFIG_FILE + " in it or in " + inner
                    + " (give the directory 'train --out' wrote, or its adapter/ subdirectory)");
        }
        return dir;
    }

    static Map<String, String> adapterMetadata(Path adapter) {
        Path weights = adapter.resolve(PeftModel.WEIGHTS_FILE);
        try (SafetensorsFile f = SafetensorsFile.open(weights)) {
            return f.metadata();
        } catch (IOException e) {
            throw IoErrors.unchecked("read", weights, e);
        }
    }

    double accuracy(Module model, Task task) {
        try (StepContext ctx = new StepContext(backend)) {
            return Trainer.evaluate(model, data(Split.TEST, task), ctx, 1000).accuracy();
        }
    }

    /** How a fine-tuning run trains (what run.json records, with the method and base). */
    record TrainSettings(int epochs, float lr, int batch, long seed, Task task) {}

    /**
     * @param summaries  the method's report lines after training (final ranks of rank-adaptive methods), often none
     * @param finalRanks each layer's rank after training, for rank-adaptive methods; empty otherwise
     */
    record FineTuned(PeftModel model, Trainer.Result result, double accuracy, List<String> summaries, Map<String, Integer> finalRanks) {}

    /** {bytes the base's linear weights hold in memory, the same weights' fp32 bytes}: they differ when frozen weights are compact (QLoRA's NF4). */
    static long[] linearWeightBytes(PeftModel pm) {
        long fp32 = 0, held = 0;
        for (Module m : pm.baseModel().namedModules().values()) {
            if (m instanceof io.peft4j.nn.Linear l) {
                long bytes = l.weight().numel() * 4;
                fp32 += bytes;
                held += l.frozenWeight() == null ? bytes : l.frozenWeight().residentBytes();
            }
        }
        return new long[] {held, fp32};
    }

    private void printCompactBase(PeftModel pm) {
        long[] b = linearWeightBytes(pm);
        if (b[0] != b[1]) {
            out.printf(java.util.Locale.ROOT, "base linear weights in memory: %.3f MiB (fp32: %.3f MiB, %.3f bits per weight)%n",
                    b[0] / 1048576.0, b[1] / 1048576.0, b[0] * 32.0 / b[1]);
        }
    }

    /** The checkpoint metadata key holding the adapter config the saved tensors fit. */
    static final String CHECKPOINT_CONFIG_KEY = "adapter_config";

    private static String configJson(AdapterConfig config) {
        try {
            return Main.JSON.writeValueAsString(config.toJson());
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /**
     * Fine-tunes {@code config} on {@code s.task()} with AdamW (weight decay 0.01), writing metrics,
     * chart and trainer state to {@code outDir}, and evaluates on the task's test split.
     *
     * @param resumeFrom a directory holding trainer_state.safetensors to continue from, or null
     * @param label      progress-bar label (the method's name)
     */
    FineTuned fineTune(Module base, AdapterConfig config, TrainSettings s, Path outDir, Path resumeFrom, String label) {
        // A text classifier's head trains whole with every method (PEFT's modules_to_save for sequence classification).
        PeftModel pm = PeftModel.wrap(base, config, backend, s.seed(), base instanceof BertClassifier ? MiniLmBase.HEAD : List.of());
        out.println(pm.trainableParametersReport());
        printCompactBase(pm);
        Trainer.Config cfg = Trainer.Config.builder().epochs(s.epochs()).batchSize(s.batch()).lr(s.lr()).seed(s.seed()).evalEvery(1)
                .outDir(outDir).progress(progress).build();
        // A method whose config asks for paged_optimizer (QLoRA) trains with the paged AdamW; same math.
        AdamW optimizer = AdamW.defaults().pagedOptimizer(Boolean.TRUE.equals(config.toJson().get("paged_optimizer")));
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), optimizer, cfg, backend)) {
            t.progressLabel(label);
            // Training may change the config (SeLoRA grows ranks): each checkpoint records it as it is then.
            t.checkpointNotes(() -> Map.of(CHECKPOINT_CONFIG_KEY, configJson(pm.adapterConfigs().get(pm.activeAdapter()))));
            List<TrainerCallback> callbacks = pm.trainerCallbacks();
            callbacks.forEach(t::addCallback);
            if (resumeFrom != null) t.resume(resumeFrom);
            Trainer.Result r = t.fit(data(Split.TRAIN, s.task()), data(Split.TEST, s.task()));
            List<String> summaries = callbacks.stream().map(TrainerCallback::summary).filter(java.util.Objects::nonNull).toList();
            summaries.forEach(out::println);
            double acc = r.epochs().isEmpty() ? accuracy(pm, s.task()) : r.last().eval().accuracy();
            Map<String, Integer> ranks = new LinkedHashMap<>();
            callbacks.forEach(c -> ranks.putAll(c.finalRanks()));
            return new FineTuned(pm, r, acc, summaries, ranks);
        }
    }
}
