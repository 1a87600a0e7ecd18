package io.peft4j.io.onnx;

import io.peft4j.io.IoErrors;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * An ONNX model ({@code ModelProto}) as a weight loader sees it: the opsets, the main graph's
 * initializers by name (in file order), its nodes in order, and the names of its inputs and
 * outputs. Read with {@link #read(Path)}; every field is validated while it is parsed (see
 * {@link OnnxTensor} for what a tensor must satisfy), and anything wrong is an
 * {@link OnnxFormatException} naming the file and the field, tensor or node.
 *
 * <p>The file is memory-mapped (an automatic arena: unmapped once this model and its tensors are
 * unreachable); {@code raw_data} is never copied until asked. Files above protobuf's 2 GiB limit
 * and tensors kept in external data files are refused.
 */
public final class OnnxModel {
    private final String source;
    private final long irVersion;
    private final String producerName;
    private final Map<String, Long> opsets;
    private final String graphName;
    private final Map<String, OnnxTensor> initializers;
    private final List<OnnxNode> nodes;
    private final List<String> inputs;
    private final List<String> outputs;
    private final Map<String, OnnxNode> producers = new HashMap<>();
    private final Map<String, List<OnnxNode>> consumers = new HashMap<>();

    OnnxModel(String source, long irVersion, String producerName, Map<String, Long> opsets, String graphName,
              Map<String, OnnxTensor> initializers, List<OnnxNode> nodes, List<String> inputs, List<String> outputs) {
        this.source = source;
        this.irVersion = irVersion;
        this.producerName = producerName;
        this.opsets = Collections.unmodifiableMap(new LinkedHashMap<>(opsets));
        this.graphName = graphName;
        this.initializers = Collections.unmodifiableMap(new LinkedHashMap<>(initializers));
        this.nodes = List.copyOf(nodes);
        this.inputs = List.copyOf(inputs);
        this.outputs = List.copyOf(outputs);
        for (OnnxNode n : this.nodes) {
            for (String out : n.outputs()) {
                if (out.isEmpty()) continue;
                if (initializers.containsKey(out) || producers.putIfAbsent(out, n) != null) {
                    throw new OnnxFormatException(source + ": value '" + out + "' is produced twice (by " + n
                            + " and by " + (initializers.containsKey(out) ? "an initializer" : producers.get(out)) + ")");
                }
            }
            for (String in : n.inputs()) {
                if (!in.isEmpty()) consumers.computeIfAbsent(in, k -> new ArrayList<>()).add(n);
            }
        }
    }

    /**
     * Maps and parses the ONNX file at {@code path}.
     *
     * @throws OnnxFormatException if it is not a valid ONNX model this reader can hold
     * @throws IOException         if it cannot be read
     */
    public static OnnxModel read(Path path) throws IOException {
        Objects.requireNonNull(path, "path");
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size == 0) throw new OnnxFormatException(path + ": the file is empty");
            if (size > Integer.MAX_VALUE) {
                throw new OnnxFormatException(path + ": the file is " + size + " bytes, past protobuf's 2 GiB limit"
                        + " (such models keep their weights in external data, which is not supported)");
            }
            MemorySegment mapped = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, Arena.ofAuto());
            return OnnxReader.parse(path.toString(), mapped);
        } catch (IOException e) {
            throw IoErrors.describe("read", path, e);
        }
    }

    /** Parses an ONNX model held in memory; {@code source} names it in messages. */
    public static OnnxModel parse(byte[] bytes, String source) {
        Objects.requireNonNull(bytes, "bytes");
        if (bytes.length == 0) throw new OnnxFormatException(source + ": the model is empty");
        return OnnxReader.parse(source, MemorySegment.ofArray(bytes.clone()));
    }

    /** The file (or the name given to {@link #parse}) this model came from. */
    public String source() { return source; }

    public long irVersion() { return irVersion; }

    public String producerName() { return producerName; }

    /** Opset versions by domain ("" is the default ONNX domain). */
    public Map<String, Long> opsets() { return opsets; }

    /** The version of the default ONNX operator set ("" or "ai.onnx"); an error when the model imports none. */
    public long opsetVersion() {
        Long v = opsets.containsKey("") ? opsets.get("") : opsets.get("ai.onnx");
        if (v == null) throw new OnnxFormatException(source + ": no opset_import for the default ONNX domain");
        return v;
    }

    public String graphName() { return graphName; }

    /** The graph's initializers by name, in file order. */
    public Map<String, OnnxTensor> initializers() { return initializers; }

    /** The initializer {@code name}; an error naming it when the file has none of that name. */
    public OnnxTensor initializer(String name) {
        OnnxTensor t = initializers.get(name);
        if (t == null) throw new OnnxFormatException(source + ": no initializer '" + name + "'");
        return t;
    }

    /** The graph's nodes, in file order. */
    public List<OnnxNode> nodes() { return nodes; }

    /** The names of the graph's inputs (as listed in the file, which may include initializers). */
    public List<String> inputs() { return inputs; }

    /** The names of the graph's outputs. */
    public List<String> outputs() { return outputs; }

    /** The node that writes the value {@code name}, or null (a graph input, an initializer, or nothing). */
    public OnnxNode producer(String name) {
        return producers.get(name);
    }

    /** The nodes that read the value {@code name}, in graph order (empty when none). */
    public List<OnnxNode> consumers(String name) {
        return Collections.unmodifiableList(consumers.getOrDefault(name, List.of()));
    }

    /**
     * The constant behind the value {@code name}: an initializer, or the {@code value} tensor of the
     * Constant node that writes it; null when it is neither.
     */
    public OnnxTensor constant(String name) {
        OnnxTensor t = initializers.get(name);
        if (t != null) return t;
        OnnxNode p = producers.get(name);
        if (p == null || !p.opType().equals("Constant") || !p.attributes().containsKey("value")) return null;
        return p.attribute("value", OnnxAttribute.Kind.TENSOR).t();
    }
}
