package io.peft4j.io.onnx;

import java.util.List;
import java.util.Map;

/**
 * One node of the graph ({@code NodeProto}): an operator, the names of the values it reads and
 * writes (an empty input name is an omitted optional input), and its attributes by name.
 */
public record OnnxNode(String name, String opType, String domain, List<String> inputs, List<String> outputs,
                       Map<String, OnnxAttribute> attributes) {

    public OnnxNode {
        inputs = List.copyOf(inputs);
        outputs = List.copyOf(outputs);
        attributes = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(attributes));
    }

    /** The attribute {@code name} of kind {@code kind}; an error naming the node when it is missing or of another kind. */
    public OnnxAttribute attribute(String attrName, OnnxAttribute.Kind kind) {
        OnnxAttribute a = attributes.get(attrName);
        if (a == null) throw new OnnxFormatException(this + " has no attribute '" + attrName + "'");
        if (a.kind() != kind) {
            throw new OnnxFormatException(this + ": attribute '" + attrName + "' is " + a.kind() + ", expected " + kind);
        }
        return a;
    }

    @Override
    public String toString() {
        return opType + " node '" + name + "'";
    }
}
