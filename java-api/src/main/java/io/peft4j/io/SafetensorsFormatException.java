package io.peft4j.io;

/**
 * A safetensors file (or a tensor about to be written to one) breaks the format: a length,
 * offset, dtype, shape or header field is wrong. The message names the file and the tensor or
 * header field at fault.
 */
public final class SafetensorsFormatException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public SafetensorsFormatException(String message) {
        super(message);
    }

    public SafetensorsFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
