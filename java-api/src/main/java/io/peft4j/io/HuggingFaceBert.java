package io.peft4j.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.nn.BertConfig;
import io.peft4j.nn.BertModel;
import io.peft4j.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A Hugging Face BERT checkpoint directory: {@code config.json} (BertConfig's fields) and
 * {@code model.safetensors} (HF tensor names, Linear weights [out, in]). Gives the sizes and the
 * tensors for {@link BertModel#loadWeights}; BF16/F16 tensors are widened to F32.
 */
public final class HuggingFaceBert {
    private HuggingFaceBert() {}

    /** The sizes and the tensors (self-owned: close the record when loaded). */
    public record Weights(BertConfig config, Map<String, Tensor> tensors) implements AutoCloseable {
        @Override
        public void close() {
            tensors.values().forEach(Tensor::close);
        }
    }

    public static Weights read(Path dir) throws IOException {
        BertConfig config = config(dir.resolve("config.json"));
        Path file = dir.resolve("model.safetensors");
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            for (SafetensorsEntry e : f.entries()) {
                String name = e.name().startsWith("bert.") ? e.name().substring(5) : e.name();
                if (BertModel.UNUSED_HF_TENSORS.contains(name)) continue;   // the pooler and buffers: not used
                tensors.put(e.name(), Tensor.of(f.readF32(e.name()), e.shape()));
            }
        } catch (RuntimeException | IOException ex) {
            tensors.values().forEach(Tensor::close);
            throw ex;
        }
        return new Weights(config, tensors);
    }

    /** BertConfig from Hugging Face's config.json; fields this encoder cannot honour are refused by name. */
    public static BertConfig config(Path file) throws IOException {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(Files.readString(file));
        } catch (IOException e) {
            throw IoErrors.describe("read BERT config", file, e);
        }
        if (root == null || !root.isObject()) throw new IllegalArgumentException(file + ": not a JSON object");
        requireText(root, file, "model_type", "bert");
        requireText(root, file, "hidden_act", "gelu");
        requireText(root, file, "position_embedding_type", "absolute");
        return new BertConfig(integer(root, file, "vocab_size"), integer(root, file, "hidden_size"),
                integer(root, file, "num_hidden_layers"), integer(root, file, "num_attention_heads"),
                integer(root, file, "intermediate_size"), integer(root, file, "max_position_embeddings"),
                integer(root, file, "type_vocab_size"), (float) number(root, file, "layer_norm_eps"));
    }

    private static void requireText(JsonNode root, Path file, String field, String expected) {
        JsonNode n = root.get(field);
        if (n != null && !expected.equals(n.asText())) {
            throw new IllegalArgumentException(file + ": '" + field + "' is " + n + ", only \"" + expected + "\" is supported");
        }
    }

    private static int integer(JsonNode root, Path file, String field) {
        JsonNode n = root.get(field);
        if (n == null) throw new IllegalArgumentException(file + ": missing '" + field + "'");
        if (!n.isIntegralNumber() || !n.canConvertToInt()) throw new IllegalArgumentException(file + ": '" + field + "' is " + n + ", not an integer");
        return n.intValue();
    }

    private static double number(JsonNode root, Path file, String field) {
        JsonNode n = root.get(field);
        if (n == null) throw new IllegalArgumentException(file + ": missing '" + field + "'");
        if (!n.isNumber()) throw new IllegalArgumentException(file + ": '" + field + "' is " + n + ", not a number");
        return n.doubleValue();
    }
}
