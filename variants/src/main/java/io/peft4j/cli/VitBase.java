package io.peft4j.cli;

import io.peft4j.data.FashionMnist;
import io.peft4j.data.FashionMnist.Split;
import io.peft4j.data.FashionMnist.Task;
import io.peft4j.io.IoErrors;
import io.peft4j.io.ModelCheckpoint;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.VisionTransformer;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The ViT base for {@code --model vit}: the demo's {@link VisionTransformer.Config#DEMO} pretrained
 * on 'original' (AdamW lr 1e-3, weight decay 0.05, cosine schedule, batch 128, 8 epochs) and cached
 * like the MLP, or a ViT checkpoint given with --base (its sizes come from its metadata).
 */
final class VitBase {
    static final int EPOCHS = 8;
    static final String RECIPE = "vit, task original, adamw lr 1e-3 wd 0.05, cosine, batch 128, epochs " + EPOCHS;

    private VitBase() {}

    static Path file(Workflow w, long seed, int pretrainLimit) {
        VisionTransformer.Config c = VisionTransformer.Config.DEMO;
        return w.cacheDir.resolve("vit-" + c.imageSize() + "-p" + c.patch() + "-w" + c.width() + "-d" + c.depth() + "-h" + c.heads()
                + "-m" + c.mlpWidth() + "-original-e" + EPOCHS + "-wd0.05-cosine-seed" + seed
                + (pretrainLimit > 0 ? "-limit" + pretrainLimit : "") + ".safetensors");
    }

    static String sizes(VisionTransformer.Config c) {
        return "vit " + c.imageSize() + "x" + c.imageSize() + "/" + c.patch() + " w" + c.width() + " d" + c.depth() + " h" + c.heads()
                + " mlp" + c.mlpWidth();
    }

    /** The cached pretrained ViT for {@code seed} and {@code pretrainLimit} (0 = all images), trained now when missing. */
    static BaseModel pretrained(Workflow w, long seed, int pretrainLimit) {
        Path file = file(w, seed, pretrainLimit);
        VisionTransformer.Config config = VisionTransformer.Config.DEMO;
        VisionTransformer vit = new VisionTransformer(w.backend, config, seed);
        Map<String, String> origin = new LinkedHashMap<>();
        origin.put("source", "pretrained");
        origin.put("model", "vit");
        origin.put("sizes", sizes(config));
        origin.put("seed", Long.toString(seed));
        origin.put("limit", Integer.toString(pretrainLimit));
        origin.put("recipe", RECIPE);
        try {
            if (Files.isRegularFile(file)) {
                ModelCheckpoint.load(vit, file);
                w.out.println("base model: loaded from cache " + file);
                return new BaseModel(vit, BaseModel.sha256(vit), origin, Double.NaN, Double.NaN);
            }
            w.out.println("base model: pretraining " + config + " on 'original' (" + EPOCHS + " epochs, AdamW lr 1e-3, weight decay 0.05, "
                    + "cosine, batch 128, seed " + seed + (pretrainLimit > 0 ? ", first " + pretrainLimit + " images" : "") + ")");
            Trainer.Config cfg = Trainer.Config.builder().epochs(EPOCHS).batchSize(128).lr(1e-3f).schedule("cosine").seed(seed)
                    .evalEvery(0).progress(w.progress).build();
            Trainer.Result r;
            try (Trainer t = new Trainer(vit, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0.05f), cfg, w.backend)) {
                r = t.progressLabel("pretraining ViT").fit(FashionMnist.load(w.dataDir, Split.TRAIN, Task.ORIGINAL, pretrainLimit), null);
            }
            Files.createDirectories(w.cacheDir);
            Map<String, String> meta = new LinkedHashMap<>(vit.metadata());
            meta.put("recipe", RECIPE);
            meta.put("seed", Long.toString(seed));
            meta.put("limit", Integer.toString(pretrainLimit));
            ModelCheckpoint.save(vit, file, meta);
            double sec = r.epochs().stream().mapToDouble(Trainer.EpochResult::seconds).average().orElse(Double.NaN);
            double ms = r.epochs().stream().mapToDouble(Trainer.EpochResult::msPerStep).average().orElse(Double.NaN);
            w.out.println("base model: cached at " + file);
            return new BaseModel(vit, BaseModel.sha256(vit), origin, sec, ms);
        } catch (IOException e) {
            throw IoErrors.unchecked("read or write the base model cache", file, e);
        }
    }

    /** A ViT checkpoint: sizes from its metadata, every tensor present with its shape (ModelCheckpoint.load checks). */
    static BaseModel fromFile(Workflow w, Path file, boolean requireIo) {
        VisionTransformer.Config config;
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            config = VisionTransformer.Config.fromMetadata(f.metadata(), file.toString());
        } catch (IOException e) {
            throw IoErrors.unchecked("read base model", file, e);
        }
        if (requireIo && (config.imageSize() != 28 || config.classes() != 10)) {
            throw new IllegalArgumentException(file + ": this ViT takes " + config.imageSize() + "x" + config.imageSize() + " images into "
                    + config.classes() + " classes; Fashion-MNIST needs 28x28 and 10");
        }
        VisionTransformer vit = new VisionTransformer(w.backend, config, 0);
        try {
            ModelCheckpoint.load(vit, file);
        } catch (IOException e) {
            vit.close();
            throw IoErrors.unchecked("read base model", file, e);
        } catch (RuntimeException e) {
            vit.close();
            throw e;
        }
        Map<String, String> origin = new LinkedHashMap<>();
        origin.put("source", "file");
        origin.put("model", "vit");
        origin.put("file", file.toString());
        origin.put("sizes", sizes(config));
        return new BaseModel(vit, BaseModel.sha256(vit), origin, Double.NaN, Double.NaN);
    }

    /** A new ViT with the same sizes and weights. */
    static VisionTransformer copy(Workflow w, VisionTransformer src) {
        VisionTransformer copy = new VisionTransformer(w.backend, src.config(), 0);
        Map<String, Parameter> from = src.namedParameters();
        copy.namedParameters().forEach((n, p) -> p.value().copyFrom(from.get(n).value()));
        return copy;
    }
}
