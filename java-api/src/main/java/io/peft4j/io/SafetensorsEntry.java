package io.peft4j.io;

import io.peft4j.tensor.DType;

import java.util.Arrays;
import java.util.Objects;

/**
 * One tensor described by a safetensors header.
 *
 * @param name   the tensor's key in the header
 * @param dtype  element type
 * @param shape  dimensions, row-major; {@code []} is a 0-d scalar (one element)
 * @param offset byte offset of the first element, relative to the start of the data section
 *               (the header's {@code data_offsets[0]})
 * @param length byte length ({@code data_offsets[1] - data_offsets[0]}), always
 *               {@code numel() * dtype.byteSize()}
 */
public record SafetensorsEntry(String name, DType dtype, long[] shape, long offset, long length) {

    public SafetensorsEntry {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(shape, "shape");
        shape = shape.clone();
        if (offset < 0) throw new IllegalArgumentException("tensor '" + name + "': negative offset " + offset);
        long expected;
        try {
            expected = byteLength(dtype, shape);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("tensor '" + name + "': " + e.getMessage(), e);
        }
        if (length != expected) {
            throw new IllegalArgumentException("tensor '" + name + "': length " + length + " but " + dtype + " "
                    + Arrays.toString(shape) + " needs " + expected + " bytes");
        }
        try {
            Math.addExact(offset, length);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("tensor '" + name + "': offset + length overflows", e);
        }
    }

    /** A copy of the shape. */
    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** Number of dimensions (0 for a scalar). */
    public int rank() {
        return shape.length;
    }

    /** Number of elements: the product of the shape (1 for a scalar, 0 if any dimension is 0). */
    public long numel() {
        return numel(shape);
    }

    /** End offset (exclusive) in the data section: {@code offset + length}. */
    public long end() {
        return offset + length;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SafetensorsEntry e
                && name.equals(e.name) && dtype == e.dtype && Arrays.equals(shape, e.shape)
                && offset == e.offset && length == e.length;
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, dtype, Arrays.hashCode(shape), offset, length);
    }

    @Override
    public String toString() {
        return "'" + name + "' " + dtype + " " + Arrays.toString(shape) + " data_offsets [" + offset + ", "
                + end() + "]";
    }

    /**
     * Elements in a tensor of this shape.
     *
     * @throws IllegalArgumentException if a dimension is negative or the product overflows a long
     */
    static long numel(long[] shape) {
        boolean empty = false;
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] < 0) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + ": dimension " + i
                        + " is negative");
            }
            if (shape[i] == 0) empty = true;
        }
        if (empty) return 0;
        long n = 1;
        for (long d : shape) {
            try {
                n = Math.multiplyExact(n, d);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape)
                        + ": element count overflows a 64-bit integer", e);
            }
        }
        return n;
    }

    /**
     * Bytes in a tensor of this dtype and shape.
     *
     * @throws IllegalArgumentException if a dimension is negative or the size overflows a long
     */
    static long byteLength(DType dtype, long[] shape) {
        long n = numel(shape);
        try {
            return Math.multiplyExact(n, (long) dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(dtype + " " + Arrays.toString(shape)
                    + ": byte size overflows a 64-bit integer", e);
        }
    }
}
