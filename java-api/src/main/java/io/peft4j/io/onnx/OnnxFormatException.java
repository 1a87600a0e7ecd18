package io.peft4j.io.onnx;

/**
 * An ONNX file breaks the format or is not what the reader expects: a truncated or malformed
 * protobuf field, a tensor whose dims, data_type and data disagree, external data, or a graph
 * that does not have the shape a loader needs. The message names the file and the field, tensor
 * or node at fault.
 */
public final class OnnxFormatException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public OnnxFormatException(String message) {
        super(message);
    }

    public OnnxFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
