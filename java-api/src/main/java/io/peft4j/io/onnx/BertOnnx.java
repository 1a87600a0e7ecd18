package io.peft4j.io.onnx;

import io.peft4j.nn.BertConfig;
import io.peft4j.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Loads a BERT encoder exported to ONNX by PyTorch (such as all-MiniLM-L6-v2 in langchain4j's
 * jar) as Hugging Face state-dict names and layouts, and infers its {@link BertConfig}.
 *
 * <p>In such an export the embeddings, biases and LayerNorms keep their module names, but the
 * Linear weights are anonymous MatMul operands ({@code onnx::MatMul_850}) stored [in, out]. Each
 * is found from its bias: the Add that reads {@code X.bias} must add it to the output of a MatMul
 * whose second operand is an initializer; that initializer is {@code X.weight}, transposed to
 * PyTorch's [out, in]. Sizes come from the embedding and bias shapes, the head count from the
 * Reshape that splits the query into [.., heads, head_dim], and the LayerNorm epsilon from each
 * LayerNormalization node or, in older opsets, from the constant added to the variance.
 *
 * <p>Every initializer must be accounted for: a weight, or one of {@link #NON_WEIGHTS}; anything
 * else, a missing piece or a shape that disagrees is an {@link OnnxFormatException} naming it.
 */
public final class BertOnnx {
    private BertOnnx() {}

    /** Initializers a BERT export may carry that are buffers, not weights (checked to be INT64 [1, max_positions]). */
    public static final Set<String> NON_WEIGHTS = Set.of("embeddings.position_ids", "embeddings.token_type_ids");

    /** The Linear modules of one encoder layer, relative to {@code encoder.layer.N.}. */
    static final List<String> LINEARS = List.of("attention.self.query", "attention.self.key", "attention.self.value",
            "attention.output.dense", "intermediate.dense", "output.dense");

    /** The LayerNorms of one encoder layer, relative to {@code encoder.layer.N.}. */
    static final List<String> LAYER_NORMS = List.of("attention.output.LayerNorm", "output.LayerNorm");

    private static final Pattern LAYER_NAME = Pattern.compile("encoder\\.layer\\.(\\d{1,4})\\..*");

    /**
     * The loaded encoder.
     *
     * @param config          sizes inferred from the file
     * @param weights         F32 CPU tensors by Hugging Face name (no {@code bert.} prefix), Linear weights [out, in]; the caller closes them
     * @param initializerOf   for each weight, the name of the ONNX initializer it came from
     * @param nonWeights      the initializers that are not weights (buffers such as {@code embeddings.position_ids})
     */
    public record Loaded(BertConfig config, Map<String, Tensor> weights, Map<String, String> initializerOf,
                         List<String> nonWeights) implements AutoCloseable {
        public Loaded {
            weights = Collections.unmodifiableMap(new LinkedHashMap<>(weights));
            initializerOf = Collections.unmodifiableMap(new LinkedHashMap<>(initializerOf));
            nonWeights = List.copyOf(nonWeights);
        }

        /** Closes every weight tensor. */
        @Override
        public void close() {
            weights.values().forEach(Tensor::close);
        }
    }

    /** Reads the ONNX file at {@code path} and loads it (see {@link #load(OnnxModel)}). */
    public static Loaded load(Path path) throws IOException {
        return load(OnnxModel.read(path));
    }

    /** Maps the model's initializers to Hugging Face BERT weights and infers the config. */
    public static Loaded load(OnnxModel model) {
        Objects.requireNonNull(model, "model");
        BertConfig config = inferConfig(model);
        Map<String, String> sources = weightSources(model, config);

        Set<String> unclaimed = new LinkedHashSet<>(model.initializers().keySet());
        unclaimed.removeAll(sources.values());
        List<String> nonWeights = new ArrayList<>();
        for (String name : unclaimed) {
            if (!NON_WEIGHTS.contains(name)) {
                throw new OnnxFormatException(model.source() + ": initializer '" + name
                        + "' is neither a BERT encoder weight nor a known buffer (" + NON_WEIGHTS + ")");
            }
            checkBuffer(model, model.initializer(name), config);
            nonWeights.add(name);
        }

        Map<String, Tensor> weights = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, String> e : sources.entrySet()) {
                OnnxTensor t = model.initializer(e.getValue());
                weights.put(e.getKey(), isLinearWeight(e.getKey()) ? transposed(t) : t.toF32Tensor());
            }
        } catch (RuntimeException | Error e) {
            weights.values().forEach(Tensor::close);
            throw e;
        }
        return new Loaded(config, weights, sources, nonWeights);
    }

    /** The Hugging Face names of a BERT encoder's weights with their shapes (Linear weights [out, in]), in module order. */
    public static Map<String, long[]> expectedShapes(BertConfig c) {
        Map<String, long[]> m = new LinkedHashMap<>();
        m.put("embeddings.word_embeddings.weight", new long[] {c.vocabSize(), c.hidden()});
        m.put("embeddings.position_embeddings.weight", new long[] {c.maxPositions(), c.hidden()});
        m.put("embeddings.token_type_embeddings.weight", new long[] {c.typeVocabSize(), c.hidden()});
        m.put("embeddings.LayerNorm.weight", new long[] {c.hidden()});
        m.put("embeddings.LayerNorm.bias", new long[] {c.hidden()});
        for (int l = 0; l < c.layers(); l++) {
            String p = "encoder.layer." + l + ".";
            for (String lin : LINEARS) {
                long out = lin.equals("intermediate.dense") ? c.intermediate() : c.hidden();
                long in = lin.equals("output.dense") ? c.intermediate() : c.hidden();
                m.put(p + lin + ".weight", new long[] {out, in});
                m.put(p + lin + ".bias", new long[] {out});
                if (lin.endsWith("output.dense")) {   // each output projection is followed by its LayerNorm
                    String ln = p + lin.replace("dense", "LayerNorm");
                    m.put(ln + ".weight", new long[] {c.hidden()});
                    m.put(ln + ".bias", new long[] {c.hidden()});
                }
            }
        }
        return m;
    }

    // ---- the config ----

    /** The BERT sizes, head count and LayerNorm epsilon this model's graph implies. */
    public static BertConfig inferConfig(OnnxModel model) {
        OnnxTensor word = floatInit(model, "embeddings.word_embeddings.weight", 2);
        OnnxTensor pos = floatInit(model, "embeddings.position_embeddings.weight", 2);
        OnnxTensor type = floatInit(model, "embeddings.token_type_embeddings.weight", 2);
        long hidden = word.dim(1);
        int layers = 0;
        for (String name : model.initializers().keySet()) {
            Matcher m = LAYER_NAME.matcher(name);
            if (m.matches()) layers = Math.max(layers, Integer.parseInt(m.group(1)) + 1);
        }
        if (layers == 0) throw new OnnxFormatException(model.source() + ": no encoder.layer.N initializers: not a BERT encoder");
        OnnxTensor inter = floatInit(model, "encoder.layer.0.intermediate.dense.bias", 1);
        int heads = -1;
        for (int l = 0; l < layers; l++) {
            int h = heads(model, "encoder.layer." + l + ".attention.self.query", hidden);
            if (heads >= 0 && h != heads) {
                throw new OnnxFormatException(model.source() + ": encoder.layer." + l + " splits attention into " + h
                        + " heads, layer 0 into " + heads);
            }
            heads = h;
        }
        float eps = epsilon(model, "embeddings.LayerNorm");
        for (int l = 0; l < layers; l++) {
            for (String ln : LAYER_NORMS) {
                String prefix = "encoder.layer." + l + "." + ln;
                float e = epsilon(model, prefix);
                if (Float.compare(e, eps) != 0) {
                    throw new OnnxFormatException(model.source() + ": " + prefix + " has epsilon " + e
                            + " but embeddings.LayerNorm has " + eps + " (BertConfig holds one layer_norm_eps)");
                }
            }
        }
        try {
            return new BertConfig(toInt(model, word.dim(0), word), toInt(model, hidden, word), layers, heads,
                    toInt(model, inter.dim(0), inter), toInt(model, pos.dim(0), pos), toInt(model, type.dim(0), type), eps);
        } catch (IllegalArgumentException e) {
            throw new OnnxFormatException(model.source() + ": the inferred BERT config is invalid: " + e.getMessage(), e);
        }
    }

    /**
     * The head count: the Reshape of {@code linear}'s output to [batch, seq, heads, head_dim], whose
     * target shape is a constant or a Concat ending in two constants.
     */
    private static int heads(OnnxModel model, String linear, long hidden) {
        OnnxNode add = linearOutput(model, linear);
        if (add.outputs().isEmpty()) throw new OnnxFormatException(model.source() + ": " + add + " has no output");
        String out = add.outputs().get(0);
        for (OnnxNode n : model.consumers(out)) {
            if (!n.opType().equals("Reshape") || n.inputs().size() < 2 || !n.inputs().get(0).equals(out)) continue;
            long[] shape = shapeValues(model, n.inputs().get(1));
            if (shape == null || shape.length != 4) continue;
            long h = shape[2], d = shape[3];
            if (h > 0 && d > 0 && h <= hidden && d <= hidden && h * d == hidden) return (int) h;
        }
        throw new OnnxFormatException(model.source() + ": cannot infer the number of attention heads: no Reshape of "
                + linear + "'s output into [batch, seq, heads, head_dim] with heads × head_dim = " + hidden);
    }

    /** A Reshape target: a constant, or a Concat of constants and computed parts (those read as -2); null when neither. */
    private static long[] shapeValues(OnnxModel model, String value) {
        OnnxTensor c = model.constant(value);
        if (c != null) return c.dataType().isFloatingPoint() || c.numel() > 16 ? null : c.toLongArray();
        OnnxNode p = model.producer(value);
        if (p == null || !p.opType().equals("Concat")) return null;
        List<Long> parts = new ArrayList<>();
        for (String in : p.inputs()) {
            OnnxTensor part = model.constant(in);
            if (part == null) {
                parts.add(-2L);
            } else if (!part.dataType().isFloatingPoint() && part.numel() <= 16) {
                for (long v : part.toLongArray()) parts.add(v);
            } else {
                return null;
            }
        }
        return parts.stream().mapToLong(Long::longValue).toArray();
    }

    /** The epsilon of the LayerNorm {@code prefix}: a LayerNormalization attribute, or the constant added to the variance. */
    private static float epsilon(OnnxModel model, String prefix) {
        String weight = prefix + ".weight";
        model.initializer(weight);
        for (OnnxNode n : model.consumers(weight)) {
            if (n.opType().equals("LayerNormalization")) {
                OnnxAttribute a = n.attributes().get("epsilon");
                return a == null ? 1e-5f : n.attribute("epsilon", OnnxAttribute.Kind.FLOAT).f();   // ONNX's default
            }
            // Decomposed: ((x - mean) / Sqrt(ReduceMean((x - mean)^2) + eps)) * weight + bias
            if (n.opType().equals("Mul")) {
                OnnxNode div = producerOfOther(model, n, weight, "Div");
                OnnxNode sqrt = div == null || div.inputs().size() < 2 ? null : model.producer(div.inputs().get(1));
                OnnxNode add = sqrt == null || !sqrt.opType().equals("Sqrt") || sqrt.inputs().isEmpty() ? null : model.producer(sqrt.inputs().get(0));
                if (add != null && add.opType().equals("Add")) {
                    for (String in : add.inputs()) {
                        OnnxTensor c = model.constant(in);
                        if (c != null && c.numel() == 1 && c.dataType().isFloatingPoint()) return c.floatAt(0);
                    }
                }
            }
        }
        throw new OnnxFormatException(model.source() + ": cannot find the epsilon of " + prefix
                + ": no LayerNormalization reads " + weight + ", nor a Mul of it by (x - mean) / Sqrt(variance + epsilon)");
    }

    /** The node of type {@code op} that produces {@code node}'s input other than {@code known}, or null. */
    private static OnnxNode producerOfOther(OnnxModel model, OnnxNode node, String known, String op) {
        if (node.inputs().size() != 2) return null;
        String other = node.inputs().get(0).equals(known) ? node.inputs().get(1) : node.inputs().get(0);
        OnnxNode p = model.producer(other);
        return p != null && p.opType().equals(op) ? p : null;
    }

    // ---- the weights ----

    /** Hugging Face name → ONNX initializer name, for every weight the config implies; shapes checked. */
    private static Map<String, String> weightSources(OnnxModel model, BertConfig config) {
        Map<String, String> sources = new LinkedHashMap<>();
        Map<String, String> claimedBy = new LinkedHashMap<>();
        for (Map.Entry<String, long[]> e : expectedShapes(config).entrySet()) {
            String name = e.getKey();
            String init = isLinearWeight(name) ? matMulWeight(model, name.substring(0, name.length() - ".weight".length())) : name;
            OnnxTensor t = model.initializer(init);
            long[] want = e.getValue();
            long[] got = isLinearWeight(name) ? new long[] {t.rank() == 2 ? t.dim(1) : -1, t.rank() == 2 ? t.dim(0) : -1} : t.dims();
            if (!t.dataType().isFloatingPoint() || !Arrays.equals(got, want)) {
                throw new OnnxFormatException(model.source() + ": initializer '" + init + "' (" + name + ") is " + t.dataType()
                        + Arrays.toString(t.dims()) + ", expected a floating-point tensor of "
                        + (isLinearWeight(name) ? "[in, out] = " + Arrays.toString(new long[] {want[1], want[0]}) : Arrays.toString(want)));
            }
            String before = claimedBy.putIfAbsent(init, name);
            if (before != null) {
                throw new OnnxFormatException(model.source() + ": initializer '" + init + "' serves as both " + before + " and " + name);
            }
            sources.put(name, init);
        }
        return sources;
    }

    /** The initializer that is the MatMul operand of the Linear {@code module} (found from its bias's Add). */
    private static String matMulWeight(OnnxModel model, String module) {
        OnnxNode matMul = linearMatMul(model, module);
        String b = matMul.inputs().get(1);
        if (!model.initializers().containsKey(b)) {
            throw new OnnxFormatException(model.source() + ": " + matMul + " of " + module + " multiplies by '" + b
                    + "', which is not an initializer");
        }
        return b;
    }

    /** The Add node that adds {@code module}'s bias to its MatMul's output. */
    private static OnnxNode linearOutput(OnnxModel model, String module) {
        String bias = module + ".bias";
        model.initializer(bias);
        List<OnnxNode> adds = model.consumers(bias).stream().filter(n -> n.opType().equals("Add")).toList();
        if (adds.size() != 1 || model.consumers(bias).size() != 1) {
            throw new OnnxFormatException(model.source() + ": " + bias + " should be read by exactly one Add node, but is read by "
                    + model.consumers(bias));
        }
        return adds.get(0);
    }

    private static OnnxNode linearMatMul(OnnxModel model, String module) {
        OnnxNode add = linearOutput(model, module);
        OnnxNode matMul = producerOfOther(model, add, module + ".bias", "MatMul");
        if (matMul == null || matMul.inputs().size() != 2) {
            throw new OnnxFormatException(model.source() + ": " + add + " adds " + module
                    + ".bias to something other than a MatMul output, so " + module + ".weight cannot be found");
        }
        return matMul;
    }

    private static boolean isLinearWeight(String hfName) {
        for (String lin : LINEARS) {
            if (hfName.endsWith("." + lin + ".weight")) return true;
        }
        return false;
    }

    /** A MatMul operand [in, out] as an F32 tensor [out, in]. */
    private static Tensor transposed(OnnxTensor t) {
        int in = (int) t.dim(0), out = (int) t.dim(1);
        float[] src = t.toFloatArray();
        float[] dst = new float[src.length];
        for (int i = 0; i < in; i++) {
            for (int o = 0; o < out; o++) dst[o * in + i] = src[i * out + o];
        }
        return Tensor.of(dst, out, in);
    }

    /** A known buffer must be the INT64 [1, max_positions] it is in Hugging Face's BertEmbeddings. */
    private static void checkBuffer(OnnxModel model, OnnxTensor t, BertConfig config) {
        if (t.dataType() != OnnxDataType.INT64 || !Arrays.equals(t.dims(), new long[] {1, config.maxPositions()})) {
            throw new OnnxFormatException(model.source() + ": buffer '" + t.name() + "' is " + t.dataType()
                    + Arrays.toString(t.dims()) + ", expected INT64[1, " + config.maxPositions() + "]");
        }
    }

    private static OnnxTensor floatInit(OnnxModel model, String name, int rank) {
        OnnxTensor t = model.initializer(name);
        if (!t.dataType().isFloatingPoint() || t.rank() != rank) {
            throw new OnnxFormatException(model.source() + ": initializer '" + name + "' is " + t.dataType()
                    + Arrays.toString(t.dims()) + ", expected a floating-point tensor of rank " + rank);
        }
        return t;
    }

    private static int toInt(OnnxModel model, long v, OnnxTensor from) {
        if (v <= 0 || v > Integer.MAX_VALUE) {
            throw new OnnxFormatException(model.source() + ": initializer '" + from.name() + "' has a size of " + v
                    + " in dims " + Arrays.toString(from.dims()));
        }
        return (int) v;
    }
}
