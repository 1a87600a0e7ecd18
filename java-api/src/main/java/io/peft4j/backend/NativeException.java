package io.peft4j.backend;

/** A native kernel returned an error status; the message is the library's own (p4j_last_error). */
public final class NativeException extends RuntimeException {
    private final String op;
    private final int status;

    public NativeException(String op, int status, String nativeMessage) {
        super(op + " failed with status " + status + " (" + statusName(status) + "): " + nativeMessage);
        this.op = op;
        this.status = status;
    }

    public String op() {
        return op;
    }

    public int status() {
        return status;
    }

    static String statusName(int status) {
        return switch (status) {
            case -1 -> "P4J_EINVAL";
            case -2 -> "P4J_ENOMEM";
            case -3 -> "P4J_ENOTSUP";
            case -4 -> "P4J_EINTERNAL";
            default -> "unknown";
        };
    }
}
