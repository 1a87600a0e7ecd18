package io.peft4j.bench;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;

/** Benchmark inputs: F32 tensors allocated once and filled with random values (never zeros). */
final class Fill {
    private static long seed = 20240601L;

    private Fill() {}

    /** A new tensor of the given shape, uniform in [lo, hi). */
    static Tensor uniform(Backend be, float lo, float hi, long... shape) {
        Tensor t = Tensor.zeros(DType.F32, shape);
        be.rngUniform(seed++, 0, lo, hi, t);
        return t;
    }

    /** A new tensor of the given shape, uniform in [-1, 1). */
    static Tensor random(Backend be, long... shape) {
        return uniform(be, -1f, 1f, shape);
    }

    static void close(Tensor... ts) {
        for (Tensor t : ts) {
            if (t != null) t.close();
        }
    }
}
