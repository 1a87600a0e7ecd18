package io.peft4j.cli;

import io.peft4j.io.SafetensorsWriter;
import io.peft4j.tensor.DType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;

/** Base-model checkpoints in PyTorch's naming, with random non-zero weights, for the --base tests. */
final class BaseFiles {
    private BaseFiles() {}

    /** An MLP fc1..fcN with the given sizes. */
    static void mlp(Path file, long seed, DType dtype, long... sizes) throws IOException {
        Map<String, long[]> shapes = new TreeMap<>();
        for (int i = 1; i < sizes.length; i++) {
            shapes.put("fc" + i + ".weight", new long[] {sizes[i], sizes[i - 1]});
            shapes.put("fc" + i + ".bias", new long[] {sizes[i]});
        }
        write(file, shapes, dtype, seed);
    }

    static void write(Path file, Map<String, long[]> shapes, DType dtype) throws IOException {
        write(file, shapes, dtype, 1);
    }

    static void write(Path file, Map<String, long[]> shapes, DType dtype, long seed) throws IOException {
        SplittableRandom r = new SplittableRandom(seed);
        SafetensorsWriter w = new SafetensorsWriter();
        for (var e : new TreeMap<>(shapes).entrySet()) {
            long n = 1;
            for (long d : e.getValue()) n *= d;
            ByteBuffer b = ByteBuffer.allocate((int) n * dtype.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
            for (long i = 0; i < n; i++) {
                float v = (float) (r.nextGaussian() * 0.05 + 0.001);
                if (dtype == DType.F32) b.putFloat(v);
                else if (dtype == DType.BF16) b.putShort((short) (Float.floatToRawIntBits(v) >>> 16));
                else b.putShort(Float.floatToFloat16(v));
            }
            w.put(e.getKey(), dtype, e.getValue(), b.array());
        }
        w.write(file);
    }
}
