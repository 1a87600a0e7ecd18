package io.peft4j.nn;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A BERT encoder with Hugging Face's module and parameter names at the root, so a state dict's keys
 * are HF's ({@code encoder.layer.0.attention.self.query.weight}) and PEFT target names such as
 * {@code query,value} pick the same layers: {@code embeddings} (word_embeddings,
 * position_embeddings, token_type_embeddings, LayerNorm) and {@code encoder.layer.N}, each a
 * post-norm block x = LN(x + attention(x)); x = LN(x + output(GELU(intermediate(x)))).
 *
 * <p>Input: token ids [b, t], I32 (or F32 holding whole numbers, as the Trainer's batches do),
 * each row right-padded with {@link #PAD_ID}: a row's length is the count before its first pad (at
 * least 1), and everything after it must be padding. Positions are 0..t-1, token types 0 unless
 * given. Attention masks padded keys (every query row, padded ones included, attends to the real
 * keys only). Forward returns the last hidden state [b·t, hidden]; {@link #encode} adds mean
 * pooling over the real tokens and optional L2 normalisation (sentence-transformers' embedding).
 * No dropout: the encoder runs as in eval mode, also while training.
 */
public class BertModel extends Module {
    /** Hugging Face BERT's pad_token_id ([PAD]). */
    public static final int PAD_ID = 0;
    /** Checkpoint metadata keys {@code peft4j.bert.<field>}. */
    public static final String META_PREFIX = "peft4j.bert.";
    /** Tensors of Hugging Face BERT checkpoints this encoder has no use for: skipped when loading. */
    public static final List<String> UNUSED_HF_TENSORS = List.of("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias");

    private final BertConfig config;
    private final BertEmbeddings embeddings;
    private final Sequential layers;
    private final MeanPooling pooling = new MeanPooling();
    private final L2Normalize normalize = new L2Normalize(L2Normalize.DEFAULT_EPS);
    private long batch;
    private long seqLen;
    private int[] lengths;

    /**
     * Initialised as Hugging Face's BertPreTrainedModel: Linear weights and embedding tables
     * ~ N(0, 0.02²) (the [PAD] row of word_embeddings zero), biases 0, LayerNorms 1 and 0; from {@code seed}.
     */
    public BertModel(Backend backend, BertConfig config, long seed) {
        this.config = config;
        this.embeddings = addChild("embeddings", new BertEmbeddings(backend, config, seed));
        BertEncoder encoder = addChild("encoder", new BertEncoder());
        this.layers = encoder.layer;
        for (int i = 0; i < config.layers(); i++) {
            layers.add(Integer.toString(i), new BertLayer(backend, config, seed + 100L * (i + 1)));
        }
    }

    public BertConfig config() { return config; }

    /** Real tokens per sequence of the last forward. */
    public int[] lengths() {
        if (lengths == null) throw new IllegalStateException("no forward yet");
        return lengths.clone();
    }

    /** The last hidden state [b·t, hidden] of ids [b, t] (see the class comment); token types all 0. */
    @Override
    public Tensor forward(StepContext ctx, Tensor ids) {
        return hiddenStates(ctx, ids, null);
    }

    /** Backward of {@link #forward}: g [b·t, hidden]; accumulates parameter gradients; ids have none (null). */
    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        hiddenStatesBackward(ctx, g);
        return null;
    }

    /** The last hidden state [b·t, hidden]; typeIds: I32 [b, t] token types, or null for all 0. */
    public Tensor hiddenStates(StepContext ctx, Tensor ids, Tensor typeIds) {
        Inputs in = inputs(ctx, ids, typeIds);
        batch = in.b;
        seqLen = in.t;
        lengths = in.lengths;
        for (Module layer : layers.children().values()) ((BertLayer) layer).attention.self.setSequences(in.b, in.lengths);
        return layers.forward(ctx, embeddings.forward(ctx, in.ids, in.types, in.positions));
    }

    /** Backward of {@link #hiddenStates}: g [b·t, hidden]. */
    protected void hiddenStatesBackward(StepContext ctx, Tensor g) {
        if (lengths == null) throw new IllegalStateException("BERT: backward without forward");
        boolean embeddingsTrain = !embeddings.trainableParameters().isEmpty();
        Tensor dx = layers.backward(ctx, g, embeddingsTrain);
        if (embeddingsTrain) embeddings.backward(ctx, dx, false);
    }

    /** A sequence's hidden states and its sentence embedding. */
    public record Encoded(Tensor lastHiddenState, Tensor pooled) {}

    /**
     * Inference: the last hidden state [b·t, hidden] and the mean of each sequence's real-token
     * rows [b, hidden], L2-normalised when {@code normalize} (all-MiniLM-L6-v2's sentence embedding).
     */
    public Encoded encode(StepContext ctx, Tensor ids, Tensor typeIds, boolean normalize) {
        Tensor h = hiddenStates(ctx, ids, typeIds);
        return new Encoded(h, pool(ctx, h, normalize));
    }

    /** Mean pooling of the last forward's hidden state h [b·t, hidden] over its real tokens, then L2 normalisation when asked. */
    protected Tensor pool(StepContext ctx, Tensor h, boolean normalized) {
        pooling.setLengths(seqLen, lengths);
        Tensor p = pooling.forward(ctx, h);
        return normalized ? normalize.forward(ctx, p) : p;
    }

    /** Backward of {@link #pool}: g [b, hidden] → [b·t, hidden]. */
    protected Tensor poolBackward(StepContext ctx, Tensor g, boolean normalized) {
        if (normalized) g = normalize.backward(ctx, g, true);
        return pooling.backward(ctx, g, true);
    }

    // ---- inputs ----

    private record Inputs(long b, long t, int[] lengths, Tensor ids, Tensor types, Tensor positions) {}

    /** Validates ids [b, t] (and typeIds) and lays out I32 ids, types and positions [b·t] in the step arena. */
    private Inputs inputs(StepContext ctx, Tensor ids, Tensor typeIds) {
        if (ids.rank() != 2 || ids.dim(0) <= 0 || ids.dim(1) <= 0) {
            throw new IllegalArgumentException("BERT expects token ids [b, t], got " + ids.describe());
        }
        long b = ids.dim(0), t = ids.dim(1);
        if (t > config.maxPositions()) {
            throw new IllegalArgumentException("BERT: sequences of " + t + " tokens are longer than max_position_embeddings " + config.maxPositions());
        }
        int[] v = idValues(ids);
        int[] len = new int[Math.toIntExact(b)];
        for (int s = 0; s < b; s++) {
            int n = 0;
            for (int i = 0; i < t; i++) {
                int id = v[(int) (s * t + i)];
                if (id < 0 || id >= config.vocabSize()) {
                    throw new IllegalArgumentException("BERT: token id " + id + " at [" + s + ", " + i + "] is outside the vocabulary [0, " + config.vocabSize() + ")");
                }
                if (id != PAD_ID) {
                    if (n != i) throw new IllegalArgumentException("BERT: row " + s + " has token " + id + " at " + i + " after padding (rows must be right-padded with " + PAD_ID + ")");
                    n++;
                }
            }
            if (n == 0) throw new IllegalArgumentException("BERT: row " + s + " has no tokens (all " + PAD_ID + ")");
            len[s] = n;
        }
        Tensor idT = ctx.allocate(DType.I32, b * t);
        MemorySegment.copy(v, 0, idT.segment(), ValueLayout.JAVA_INT, 0, v.length);
        Tensor types = ctx.allocate(DType.I32, b * t);
        if (typeIds == null) {
            types.segment().fill((byte) 0);
        } else {
            if (typeIds.dtype() != DType.I32 || !Arrays.equals(typeIds.shape(), ids.shape())) {
                throw new IllegalArgumentException("BERT: token_type_ids " + typeIds.describe() + " must be I32 of the ids' shape " + Arrays.toString(ids.shape()));
            }
            int[] tv = typeIds.toIntArray();
            for (int i = 0; i < tv.length; i++) {
                if (tv[i] < 0 || tv[i] >= config.typeVocabSize()) {
                    throw new IllegalArgumentException("BERT: token type " + tv[i] + " at [" + i / t + ", " + i % t + "] is outside [0, " + config.typeVocabSize() + ")");
                }
            }
            types.copyFrom(typeIds.view(b * t));
        }
        Tensor positions = ctx.allocate(DType.I32, b * t);
        MemorySegment ps = positions.segment();
        for (long i = 0; i < b * t; i++) ps.setAtIndex(ValueLayout.JAVA_INT, i, (int) (i % t));
        return new Inputs(b, t, len, idT, types, positions);
    }

    /** The ids as ints: I32 as they are, F32 only when every value is a whole number (as the Trainer's float batches hold them). */
    private static int[] idValues(Tensor ids) {
        if (ids.dtype() == DType.I32) return ids.toIntArray();
        if (ids.dtype() != DType.F32) throw new IllegalArgumentException("BERT: token ids " + ids.describe() + " must be I32 (or F32 holding whole numbers)");
        float[] f = ids.toFloatArray();
        int[] v = new int[f.length];
        for (int i = 0; i < f.length; i++) {
            v[i] = (int) f[i];
            if (v[i] != f[i]) throw new IllegalArgumentException("BERT: token id " + f[i] + " at element " + i + " is not a whole number");
        }
        return v;
    }

    // ---- weights ----

    /**
     * Copies a state dict keyed by Hugging Face names into this model: a leading {@code bert.} is
     * stripped, the pooler and position_ids buffer are skipped; every parameter must be there with
     * its shape ([out, in] for Linear weights), F32 and finite, and nothing else may be (classifier
     * weights only where the model has a classifier, and optional there). Checks everything first,
     * so a bad map leaves the model as it was; the message lists every missing, unexpected and
     * mis-shaped tensor.
     */
    public void loadWeights(Map<String, Tensor> weights) {
        Map<String, Tensor> byName = new LinkedHashMap<>();
        for (var e : weights.entrySet()) {
            String name = e.getKey().startsWith("bert.") ? e.getKey().substring(5) : e.getKey();
            if (UNUSED_HF_TENSORS.contains(name)) continue;
            if (byName.put(name, e.getValue()) != null) throw new IllegalArgumentException("BERT weights: '" + name + "' is given twice (with and without 'bert.')");
        }
        Map<String, Parameter> params = baseParameters();
        List<String> missing = new ArrayList<>(), unexpected = new ArrayList<>(), bad = new ArrayList<>();
        params.forEach((name, p) -> {
            Tensor v = byName.get(name);
            if (v == null) {
                if (!optionalWeight(name)) missing.add(name);
            } else if (v.dtype() != DType.F32) {
                bad.add("'" + name + "' is " + v.describe() + ", must be F32");
            } else if (!Arrays.equals(v.shape(), p.value().shape())) {
                bad.add("'" + name + "' has shape " + Arrays.toString(v.shape()) + ", the model needs " + Arrays.toString(p.value().shape()));
            }
        });
        for (String name : byName.keySet()) if (!params.containsKey(name)) unexpected.add(name);
        if (!missing.isEmpty() || !unexpected.isEmpty() || !bad.isEmpty()) {
            StringBuilder m = new StringBuilder("BERT weights do not fit " + config + ":");
            if (!missing.isEmpty()) m.append(" missing ").append(missing).append(";");
            if (!unexpected.isEmpty()) m.append(" unexpected ").append(unexpected).append(";");
            if (!bad.isEmpty()) m.append(" ").append(String.join("; ", bad)).append(";");
            throw new IllegalArgumentException(m.substring(0, m.length() - 1));
        }
        Map<String, float[]> values = new LinkedHashMap<>();
        params.forEach((name, p) -> {
            Tensor v = byName.get(name);
            if (v == null) return;
            float[] f = v.toFloatArray();
            for (int i = 0; i < f.length; i++) {
                if (!Float.isFinite(f[i])) throw new IllegalArgumentException("BERT weights: '" + name + "' holds " + f[i] + " at element " + i + " (weights must be finite)");
            }
            values.put(name, f);
        });
        values.forEach((name, f) -> params.get(name).value().copyFrom(f));
    }

    /** Parameters a weight map may leave out (the classifier head, kept at its initialisation). */
    protected boolean optionalWeight(String name) {
        return false;
    }

    /** The model's own parameters (no adapters') by dotted name. */
    private Map<String, Parameter> baseParameters() {
        Map<String, Parameter> out = new LinkedHashMap<>();
        namedModules().forEach((path, m) -> m.localParameters().forEach((n, p) -> out.put(path.isEmpty() ? n : path + "." + n, p)));
        return out;
    }

    // ---- checkpoint metadata ----

    /** The sizes as checkpoint metadata {@code peft4j.bert.<HF config field>}. */
    public static Map<String, String> metadata(BertConfig c) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put(META_PREFIX + "vocab_size", Integer.toString(c.vocabSize()));
        m.put(META_PREFIX + "hidden_size", Integer.toString(c.hidden()));
        m.put(META_PREFIX + "num_hidden_layers", Integer.toString(c.layers()));
        m.put(META_PREFIX + "num_attention_heads", Integer.toString(c.heads()));
        m.put(META_PREFIX + "intermediate_size", Integer.toString(c.intermediate()));
        m.put(META_PREFIX + "max_position_embeddings", Integer.toString(c.maxPositions()));
        m.put(META_PREFIX + "type_vocab_size", Integer.toString(c.typeVocabSize()));
        m.put(META_PREFIX + "layer_norm_eps", Float.toString(c.layerNormEps()));
        return m;
    }

    /** The sizes a checkpoint's metadata records; every key must be there and be a number. */
    public static BertConfig configFromMetadata(Map<String, String> meta, String source) {
        String[] keys = {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size"};
        int[] v = new int[keys.length];
        for (int i = 0; i < keys.length; i++) v[i] = metaInt(meta, keys[i], source);
        String eps = meta.get(META_PREFIX + "layer_norm_eps");
        if (eps == null) throw new IllegalArgumentException(source + ": metadata lacks '" + META_PREFIX + "layer_norm_eps' (not a BERT checkpoint?)");
        float e;
        try {
            e = Float.parseFloat(eps);
        } catch (NumberFormatException ex) {
            throw new IllegalArgumentException(source + ": metadata '" + META_PREFIX + "layer_norm_eps' is '" + eps + "', not a number");
        }
        return new BertConfig(v[0], v[1], v[2], v[3], v[4], v[5], v[6], e);
    }

    static int metaInt(Map<String, String> meta, String key, String source) {
        String s = meta.get(META_PREFIX + key);
        if (s == null) throw new IllegalArgumentException(source + ": metadata lacks '" + META_PREFIX + key + "' (not a BERT checkpoint?)");
        try {
            return Integer.parseInt(s);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(source + ": metadata '" + META_PREFIX + key + "' is '" + s + "', not an integer");
        }
    }

    // ---- the modules, named as Hugging Face's ----

    /** HF init of a Linear: weight ~ N(0, 0.02²), bias 0. */
    static Linear bertLinear(Backend backend, long in, long out, long seed) {
        Linear l = new Linear(backend, in, out, true, seed);
        backend.rngNormal(seed, 0, 0f, 0.02f, l.weight().value());
        backend.fill(0f, l.bias().value());
        return l;
    }

    /** word + position + token-type embeddings, then LayerNorm. */
    public static final class BertEmbeddings extends Module {
        private final Embedding word;
        private final Embedding position;
        private final Embedding tokenType;
        private final LayerNorm norm;

        BertEmbeddings(Backend backend, BertConfig c, long seed) {
            this.word = addChild("word_embeddings", new Embedding(backend, c.vocabSize(), c.hidden(), PAD_ID, 0.02f, seed));
            this.position = addChild("position_embeddings", new Embedding(backend, c.maxPositions(), c.hidden(), -1, 0.02f, seed + 1));
            this.tokenType = addChild("token_type_embeddings", new Embedding(backend, c.typeVocabSize(), c.hidden(), -1, 0.02f, seed + 2));
            this.norm = addChild("LayerNorm", new LayerNorm(c.hidden(), c.layerNormEps()));
        }

        /** Token, type and position ids, each I32 [n]: → [n, hidden]. */
        public Tensor forward(StepContext ctx, Tensor ids, Tensor types, Tensor positions) {
            Backend be = ctx.backend();
            Tensor x = word.forward(ctx, ids);
            be.axpy(1f, position.forward(ctx, positions), x);
            be.axpy(1f, tokenType.forward(ctx, types), x);
            return norm.forward(ctx, x);
        }

        @Override
        public Tensor forward(StepContext ctx, Tensor x) {
            throw new UnsupportedOperationException("BERT embeddings need token, type and position ids: forward(ctx, ids, types, positions)");
        }

        @Override
        public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
            boolean tablesTrain = word.weight().requiresGrad() || position.weight().requiresGrad() || tokenType.weight().requiresGrad();
            Tensor dx = norm.backward(ctx, g, tablesTrain);
            if (tablesTrain) {
                word.backward(ctx, dx, false);
                position.backward(ctx, dx, false);
                tokenType.backward(ctx, dx, false);
            }
            return null;
        }
    }

    /** encoder: its layers under {@code layer}. */
    static final class BertEncoder extends Module {
        final Sequential layer = addChild("layer", new Sequential());

        @Override
        public Tensor forward(StepContext ctx, Tensor x) { return layer.forward(ctx, x); }

        @Override
        public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) { return layer.backward(ctx, g, needInputGrad); }
    }

    /** encoder.layer.N: attention, intermediate (dense + GELU), output (dense + residual + LayerNorm). */
    public static final class BertLayer extends Module {
        final BertAttention attention;
        private final BertIntermediate intermediate;
        private final ResidualNorm output;
        private Tensor h;

        BertLayer(Backend backend, BertConfig c, long seed) {
            this.attention = addChild("attention", new BertAttention(backend, c, seed));
            this.intermediate = addChild("intermediate", new BertIntermediate(backend, c, seed + 10));
            this.output = addChild("output", new ResidualNorm(backend, c.intermediate(), c.hidden(), c.layerNormEps(), seed + 11));
        }

        @Override
        public Tensor forward(StepContext ctx, Tensor x) {
            h = attention.forward(ctx, x);
            return output.forward(ctx, intermediate.forward(ctx, h), h);
        }

        @Override
        public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
            Tensor dh = intermediate.backward(ctx, output.backward(ctx, g, true), true);
            ctx.backend().axpy(1f, output.residualGrad(), dh);
            return attention.backward(ctx, dh, needInputGrad);
        }
    }

    /** attention: self (query, key, value and the fused kernel), output (dense + residual + LayerNorm). */
    public static final class BertAttention extends Module {
        final BertSelfAttention self;
        private final ResidualNorm output;

        BertAttention(Backend backend, BertConfig c, long seed) {
            this.self = addChild("self", new BertSelfAttention(backend, c, seed));
            this.output = addChild("output", new ResidualNorm(backend, c.hidden(), c.hidden(), c.layerNormEps(), seed + 3));
        }

        @Override
        public Tensor forward(StepContext ctx, Tensor x) {
            return output.forward(ctx, self.forward(ctx, x), x);
        }

        @Override
        public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
            Tensor dx = self.backward(ctx, output.backward(ctx, g, true), needInputGrad);
            if (needInputGrad) ctx.backend().axpy(1f, output.residualGrad(), dx);
            return needInputGrad ? dx : null;
        }
    }

    /**
     * attention.self: query, key, value projections and softmax(q·kᵀ/√headDim)·v per head, the keys
     * of each sequence limited to its real tokens. Returns the context [b·t, hidden] (before output.dense).
     */
    public static final class BertSelfAttention extends Module {
        private final int heads;
        private final float scale;
        private final Linear query;
        private final Linear key;
        private final Linear value;
        private long batch;
        private int[] keyLengths;
        private Tensor q, k, v, out, lse;

        BertSelfAttention(Backend backend, BertConfig c, long seed) {
            if (c.headDim() > 256) throw new IllegalArgumentException("BERT head size " + c.headDim() + " > 256 is not supported");
            this.heads = c.heads();
            this.scale = (float) (1 / Math.sqrt(c.headDim()));
            this.query = addChild("query", bertLinear(backend, c.hidden(), c.hidden(), seed));
            this.key = addChild("key", bertLinear(backend, c.hidden(), c.hidden(), seed + 1));
            this.value = addChild("value", bertLinear(backend, c.hidden(), c.hidden(), seed + 2));
        }

        /** The next forward's sequences: b of them, keyLengths[s] real tokens each. */
        void setSequences(long b, int[] keyLengths) {
            this.batch = b;
            this.keyLengths = keyLengths.clone();
        }

        @Override
        public Tensor forward(StepContext ctx, Tensor x) {
            if (keyLengths == null || x.dim(0) % batch != 0) {
                throw new IllegalStateException("attention '" + path() + "': sequences not set for input " + x.describe());
            }
            q = query.forward(ctx, x);
            k = key.forward(ctx, x);
            v = value.forward(ctx, x);
            out = ctx.allocate(x.shape());
            lse = ctx.allocate(batch * heads, x.dim(0) / batch);
            ctx.backend().attentionForward(batch, heads, scale, false, keyLengths, q, k, v, out, lse);
            return out;
        }

        @Override
        public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
            if (lse == null || !lse.isAlive()) throw new IllegalStateException("attention '" + path() + "': backward without forward in this step");
            Tensor dq = ctx.allocate(q.shape()), dk = ctx.allocate(k.shape()), dv = ctx.allocate(v.shape());
            ctx.backend().attentionBackward(batch, heads, scale, false, keyLengths, q, k, v, out, lse, g, dq, dk, dv);
            Tensor dx = query.backward(ctx, dq, needInputGrad);
            Tensor dxk = key.backward(ctx, dk, needInputGrad);
            Tensor dxv = value.backward(ctx, dv, needInputGrad);
            if (!needInputGrad) return null;
            ctx.backend().axpy(1f, dxk, dx);
            ctx.backend().axpy(1f, dxv, dx);
            return dx;
        }
    }

    /** intermediate: dense, then the exact (erf) GELU. */
    public static final class BertIntermediate extends Module {
        private final Linear dense;
        private final GELU act = new GELU();   // no parameters; not a child, as in HF (intermediate_act_fn)

        BertIntermediate(Backend backend, BertConfig c, long seed) {
            this.dense = addChild("dense", bertLinear(backend, c.hidden(), c.intermediate(), seed));
        }

        @Override
        public Tensor forward(StepContext ctx, Tensor x) { return act.forward(ctx, dense.forward(ctx, x)); }

        @Override
        public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
            return dense.backward(ctx, act.backward(ctx, g, true), needInputGrad);
        }
    }

    /**
     * HF's BertSelfOutput and BertOutput: y = LayerNorm(dense(x) + residual). Backward returns the
     * gradient of x; the residual's is {@link #residualGrad()}.
     */
    public static final class ResidualNorm extends Module {
        private final Linear dense;
        private final LayerNorm norm;
        private Tensor residualGrad;

        ResidualNorm(Backend backend, long in, long out, float eps, long seed) {
            this.dense = addChild("dense", bertLinear(backend, in, out, seed));
            this.norm = addChild("LayerNorm", new LayerNorm(out, eps));
        }

        public Tensor forward(StepContext ctx, Tensor x, Tensor residual) {
            Tensor y = dense.forward(ctx, x);
            ctx.backend().axpy(1f, residual, y);
            return norm.forward(ctx, y);
        }

        @Override
        public Tensor forward(StepContext ctx, Tensor x) {
            throw new UnsupportedOperationException("'" + path() + "' adds a residual: forward(ctx, x, residual)");
        }

        @Override
        public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
            residualGrad = norm.backward(ctx, g, true);
            return dense.backward(ctx, residualGrad, needInputGrad);
        }

        /** The residual's gradient from the last backward (the LayerNorm's input gradient). */
        public Tensor residualGrad() { return residualGrad; }
    }
}
