package io.peft4j.backend;

import io.peft4j.tensor.DType;
import io.peft4j.tensor.Device;
import io.peft4j.tensor.Tensor;
import java.util.Arrays;

/** Argument checks shared by the backends; each names the tensor at fault and its shape. */
final class Checks {
    private Checks() {}

    static void present(String name, Tensor t) {
        if (t == null) throw new IllegalArgumentException(name + " must not be null");
        t.checkAlive();
        if (!t.device().equals(Device.CPU)) {
            throw new IllegalArgumentException(name + " " + t.describe() + " is on " + t.device() + ", expected cpu");
        }
    }

    static void f32(String name, Tensor t) {
        present(name, t);
        if (t.dtype() != DType.F32) throw new IllegalArgumentException(name + " " + t.describe() + " must be F32");
    }

    static void matrix(String name, Tensor t) {
        f32(name, t);
        if (t.rank() != 2) throw new IllegalArgumentException(name + " " + t.describe() + " must be 2-D");
    }

    static void shape(String name, Tensor t, long... expected) {
        f32(name, t);
        if (!Arrays.equals(t.shape(), expected)) {
            throw new IllegalArgumentException(name + " " + t.describe() + " must have shape " + Arrays.toString(expected));
        }
    }

    static void sameShape(String name, Tensor t, String otherName, Tensor other) {
        f32(name, t);
        f32(otherName, other);
        if (!Arrays.equals(t.shape(), other.shape())) {
            throw new IllegalArgumentException(otherName + " " + other.describe() + " must match " + name + " "
                    + t.describe());
        }
    }

    static void labels(String name, Tensor t, long rows) {
        present(name, t);
        if (t.dtype() != DType.I32 || t.numel() != rows || t.rank() != 1) {
            throw new IllegalArgumentException(name + " " + t.describe() + " must be I32[" + rows + "]");
        }
    }

    static void mask(String name, Tensor t, long n) {
        present(name, t);
        if (t.dtype() != DType.U8 || t.numel() != n) {
            throw new IllegalArgumentException(name + " " + t.describe() + " must be U8 with " + n + " elements");
        }
    }

    static void probability(float p) {
        if (!(p >= 0f && p < 1f)) throw new IllegalArgumentException("dropout p must be in [0, 1), got " + p);
    }

    static void bytes(String name, Tensor t, long n) {
        present(name, t);
        if (t.dtype() != DType.U8 || t.numel() != n) {
            throw new IllegalArgumentException(name + " " + t.describe() + " must be U8 with " + n + " elements");
        }
    }
}
