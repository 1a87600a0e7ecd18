package io.peft4j.nn;

import io.peft4j.backend.Backend;
import io.peft4j.io.ModelCheckpoint;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Text classification on a {@link BertModel}: the same root modules (embeddings, encoder) plus a
 * {@code classifier} Linear [classes, hidden] on the mean-pooled sentence embedding (L2-normalised
 * first when {@code normalize}, as all-MiniLM-L6-v2's embeddings are). forward(ctx, ids [b, t])
 * returns logits [b, classes]; ids may be F32 holding whole numbers, so the Trainer's float batches
 * feed it unchanged.
 */
public final class BertClassifier extends BertModel {
    private final int classes;
    private final boolean normalize;
    private final Linear classifier;

    /** The encoder initialised as {@link BertModel#BertModel}; the classifier as torch.nn.Linear from seed + 1. */
    public BertClassifier(Backend backend, BertConfig config, int classes, boolean normalize, long seed) {
        super(backend, config, seed);
        if (classes <= 0) throw new IllegalArgumentException("a classifier needs at least one class, got " + classes);
        this.classes = classes;
        this.normalize = normalize;
        this.classifier = addChild("classifier", new Linear(backend, config.hidden(), classes, true, seed + 1));
    }

    public int classes() { return classes; }
    public boolean normalize() { return normalize; }
    public Linear classifier() { return classifier; }

    /** Logits [b, classes] of token ids [b, t]. */
    @Override
    public Tensor forward(StepContext ctx, Tensor ids) {
        Tensor h = hiddenStates(ctx, ids, null);
        return classifier.forward(ctx, pool(ctx, h, normalize));
    }

    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        // A linear probe (frozen encoder, no adapters) needs no gradient below the head.
        boolean bodyTrains = trainableParameters().size() > classifier.trainableParameters().size();
        Tensor dp = classifier.backward(ctx, g, bodyTrains);
        if (bodyTrains) hiddenStatesBackward(ctx, poolBackward(ctx, dp, normalize));
        return null;
    }

    @Override
    protected boolean optionalWeight(String name) {
        return name.startsWith("classifier.");
    }

    /** Checkpoint metadata: the encoder's sizes, the class count and whether the embedding is normalised. */
    public Map<String, String> metadata() {
        Map<String, String> m = new LinkedHashMap<>(metadata(config()));
        m.put(META_PREFIX + "classes", Integer.toString(classes));
        m.put(META_PREFIX + "normalize", Boolean.toString(normalize));
        return m;
    }

    /** Writes every base parameter (HF names) with {@link #metadata()} (atomically, as ModelCheckpoint does). */
    public void save(Path file) throws IOException {
        ModelCheckpoint.save(this, file, metadata());
    }

    /** A classifier rebuilt from a checkpoint written by {@link #save}: sizes from its metadata, then every tensor. */
    public static BertClassifier load(Backend backend, Path file) throws IOException {
        Map<String, String> meta;
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            meta = f.metadata();
        }
        String source = file.toString();
        BertConfig config = configFromMetadata(meta, source);
        int classes = metaInt(meta, "classes", source);
        String norm = meta.get(META_PREFIX + "normalize");
        if (!"true".equals(norm) && !"false".equals(norm)) {
            throw new IllegalArgumentException(source + ": metadata '" + META_PREFIX + "normalize' is " + (norm == null ? "missing" : "'" + norm + "'") + ", not true or false");
        }
        BertClassifier model = new BertClassifier(backend, config, classes, Boolean.parseBoolean(norm), 0);
        try {
            ModelCheckpoint.load(model, file);
        } catch (RuntimeException | IOException e) {
            model.close();
            throw e;
        }
        return model;
    }
}
