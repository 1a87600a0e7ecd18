package io.peft4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.io.SafetensorsWriter;
import io.peft4j.quant.Nf4Tensor;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code peft4j quantize} / {@code peft4j dequantize} on a small checkpoint with F32, BF16 and 1-D tensors. */
class QuantizeCliTest {
    @TempDir Path dir;

    static float[] normal(long seed, int n) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * 0.05);
        return a;
    }

    static byte[] bf16(float[] v) {
        byte[] b = new byte[v.length * 2];
        for (int i = 0; i < v.length; i++) {
            int u = Float.floatToRawIntBits(v[i]) >>> 16;
            b[2 * i] = (byte) u;
            b[2 * i + 1] = (byte) (u >>> 8);
        }
        return b;
    }

    Path checkpoint(float[] w1) throws Exception {
        Path in = dir.resolve("model.safetensors");
        new SafetensorsWriter().metadata("format", "pt")
                .putF32("fc1.weight", new long[] {33, 65}, w1)
                .put("fc2.weight", DType.BF16, new long[] {7, 33}, bf16(normal(2, 7 * 33)))
                .putF32("fc1.bias", new long[] {33}, normal(3, 33))
                .write(in);
        return in;
    }

    @Test
    void quantizeThenDequantizeRestoresTheNf4Values() throws Exception {
        float[] w1 = normal(1, 33 * 65);
        Path in = checkpoint(w1), q = dir.resolve("q.safetensors"), back = dir.resolve("back.safetensors");
        Cli.Run r = Cli.run("quantize", "--format", "nf4", "--double-quant", "--block-size", "64", in.toString(), q.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.last().contains("quantized 2 tensors") && r.last().contains("copied 1"), r.last());
        try (SafetensorsFile f = SafetensorsFile.open(q)) {
            assertTrue(Nf4Tensor.isStoredAt(f, "fc1.weight") && Nf4Tensor.isStoredAt(f, "fc2.weight"));
            assertEquals(DType.U8, f.entry("fc1.weight.absmax").dtype(), "double-quantized constants");
            assertEquals(DType.F32, f.entry("fc1.bias").dtype());
            assertEquals("pt", f.metadata().get("format"));
            assertTrue(new String(f.bytes("fc2.weight.quant_state.bitsandbytes__nf4")).contains("\"bfloat16\""));
        }
        r = Cli.run("dequantize", q.toString(), back.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.last().contains("dequantized 2 NF4 tensors"), r.last());
        try (SafetensorsFile f = SafetensorsFile.open(back); SafetensorsFile orig = SafetensorsFile.open(in);
             Tensor w = Tensor.of(w1, 33, 65); Nf4Tensor n = Nf4Tensor.quantize(Backend.cpu(), "fc1.weight", w, 64, true, "float32");
             Tensor want = n.dequantize(Backend.cpu(), DType.F32)) {
            assertEquals(3, f.names().size(), "no NF4 side entries left: " + f.names());
            assertEquals(DType.F32, f.entry("fc2.weight").dtype());
            assertArrayEquals(new long[] {7, 33}, f.entry("fc2.weight").shape());
            assertArrayEquals(want.toFloatArray(), f.readF32("fc1.weight"));
            assertArrayEquals(orig.readF32("fc1.bias"), f.readF32("fc1.bias"));
            float[] got = f.readF32("fc1.weight");
            for (int i = 0; i < got.length; i++) assertTrue(Math.abs(got[i] - w1[i]) <= 0.2 * 0.25, "NF4 error at " + i);
        }
    }

    @Test
    void nonFiniteInputIsRefusedByNameAndNothingIsWritten() throws Exception {
        float[] w1 = normal(1, 33 * 65);
        w1[40] = Float.POSITIVE_INFINITY;
        Path in = checkpoint(w1), q = dir.resolve("q.safetensors");
        Cli.Run r = Cli.run("quantize", in.toString(), q.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("'fc1.weight'") && r.err().contains("Infinity"), r.err());
        assertFalse(Files.exists(q));
    }

    @Test
    void badOptionsAndPlainFilesAreRefused() throws Exception {
        Path in = checkpoint(normal(1, 33 * 65)), out = dir.resolve("o.safetensors");
        Cli.Run r = Cli.run("quantize", "--format", "fp4", in.toString(), out.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("fp4"), r.err());
        r = Cli.run("quantize", "--block-size", "100", in.toString(), out.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("100"), r.err());
        r = Cli.run("dequantize", in.toString(), out.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("no NF4 weights"), r.err());
        assertFalse(Files.exists(out));
    }
}
