package io.peft4j.cli;

import io.peft4j.backend.Backend;
import io.peft4j.data.Dataset;
import io.peft4j.data.FashionMnist;
import io.peft4j.data.FashionMnist.Split;
import io.peft4j.data.FashionMnist.Task;
import io.peft4j.io.ModelCheckpoint;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import io.peft4j.variants.lora.LoraConfig;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/** The steps the commands share: data, the cached base MLP, fine-tuning, evaluation. */
final class Workflow {
    static final long[] MLP_SIZES = {784, 512, 512, 10};
    static final int BASE_EPOCHS = 3;

    final Backend backend = Backend.cpu();
    final Path dataDir;
    final Path cacheDir;
    final int limit;
    final PrintStream out;
    final boolean progress;

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

    Dataset data(Split split, Task task) {
        // With --limit the test split keeps a proportional share, so small runs stay small.
        int n = limit <= 0 ? 0 : split == Split.TRAIN ? limit : Math.max(1, limit / 6);
        return FashionMnist.load(dataDir, split, task, n);
    }

    Mlp newMlp(long seed) {
        return new Mlp(backend, Mlp.Activation.RELU, seed, MLP_SIZES);
    }

    Path baseFile(long seed) {
        return cacheDir.resolve("mlp-784-512-512-10-original-e" + BASE_EPOCHS + "-seed" + seed + (limit > 0 ? "-limit" + limit : "") + ".safetensors");
    }

    /** The base MLP pretrained on the original task, from the cache or trained now (Adam lr 1e-3, batch 128). */
    BaseModel base(long seed) {
        Path file = baseFile(seed);
        Mlp mlp = newMlp(seed);
        try {
            if (Files.isRegularFile(file)) {
                ModelCheckpoint.load(mlp, file);
                out.println("base model: loaded from cache " + file);
                return new BaseModel(mlp, Double.NaN, Double.NaN);
            }
            out.println("base model: pretraining MLP 784-512-512-10 on 'original' (" + BASE_EPOCHS + " epochs, Adam lr 1e-3, batch 128, seed " + seed + ")");
            Trainer.Config cfg = Trainer.Config.builder().epochs(BASE_EPOCHS).batchSize(128).lr(1e-3f).seed(seed)
                    .evalEvery(0).progress(progress).build();
            Trainer.Result r;
            try (Trainer t = new Trainer(mlp, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0f), cfg, backend)) {
                r = t.fit(data(Split.TRAIN, Task.ORIGINAL), null);
            }
            Files.createDirectories(cacheDir);
            ModelCheckpoint.save(mlp, file, Map.of("recipe", "mlp 784-512-512-10 relu, original, adam 1e-3, batch 128, epochs " + BASE_EPOCHS,
                    "seed", Long.toString(seed)));
            double sec = r.epochs().stream().mapToDouble(Trainer.EpochResult::seconds).average().orElse(Double.NaN);
            double ms = r.epochs().stream().mapToDouble(Trainer.EpochResult::msPerStep).average().orElse(Double.NaN);
            out.println("base model: cached at " + file);
            return new BaseModel(mlp, sec, ms);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read or write the base model cache " + file, e);
        }
    }

    record BaseModel(Mlp model, double secondsPerEpoch, double msPerStep) {}

    double accuracy(Module model, Task task) {
        try (StepContext ctx = new StepContext(backend)) {
            return Trainer.evaluate(model, data(Split.TEST, task), ctx, 1000).accuracy();
        }
    }

    static AdapterConfig adapterConfig(String variant, int rank, float alpha, float dropout, boolean rslora, String targets) {
        TargetModules tm = targets.equals("all-linear") ? TargetModules.allLinear() : TargetModules.names(targets.split(","));
        return switch (variant) {
            case "lora" -> LoraConfig.builder().r(rank).alpha(alpha).dropout(dropout).useRsLora(rslora).targetModules(tm).build();
            default -> throw new IllegalArgumentException("unknown variant '" + variant + "' (available: lora)");
        };
    }

    record FineTuned(PeftModel model, Trainer.Result result, double accuracy) {}

    /** Fine-tunes {@code config} on {@code task} with AdamW (weight decay 0.01) and evaluates on its test split. */
    FineTuned fineTune(Mlp base, AdapterConfig config, Task task, int epochs, float lr, int batch, long seed, Path outDir) {
        PeftModel pm = PeftModel.wrap(base, config, backend, seed);
        out.println(pm.trainableParametersReport());
        Trainer.Config cfg = Trainer.Config.builder().epochs(epochs).batchSize(batch).lr(lr).seed(seed).evalEvery(1)
                .outDir(outDir).progress(progress).build();
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), AdamW.defaults(), cfg, backend)) {
            Trainer.Result r = t.fit(data(Split.TRAIN, task), data(Split.TEST, task));
            return new FineTuned(pm, r, r.last().eval().accuracy());
        }
    }
}
