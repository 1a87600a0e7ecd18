package io.peft4j.variants.qlora;

import static io.peft4j.variants.TestSupport.assertRelClose;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.begin;
import static io.peft4j.variants.TestSupport.mulT;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.rng;
import static io.peft4j.variants.TestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.nn.StepContext;
import io.peft4j.quant.Nf4Tensor;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Nf4Weight's two forward paths: at few rows (t <= 16, in a multiple of 8) the kernel layout,
 * built once on the first such call and counted in residentBytes; otherwise bitsandbytes' layout.
 * Both against x·dequant(W)ᵀ in float64, with and without double quantization.
 */
class Nf4WeightTest {
    static final int OUT = 45;

    static float[] toFloat(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) f[i] = (float) a[i];
        return f;
    }

    @ParameterizedTest(name = "in={0} doubleQuant={1} blocksize={2}")
    @CsvSource({"96, true, 64", "96, false, 32", "256, true, 128", "37, true, 64"})
    void forwardAtFewAndManyRowsMatchesTheDequantizedProduct(int in, boolean doubleQuant, int bs) {
        SplittableRandom r = rng("nf4 weight in=" + in + " dq=" + doubleQuant);
        try (Tensor w = Tensor.of(normal(r, OUT * in, 0.05), OUT, in);
             Nf4Weight nw = new Nf4Weight(Nf4Tensor.quantize(backend(), "w", w, bs, doubleQuant, "float32"));
             StepContext ctx = new StepContext(backend())) {
            double[] wd;
            try (Tensor deq = nw.dequantize(backend())) {
                wd = toDouble(deq.toFloatArray());
            }
            long packedOnly = nw.residentBytes();
            for (int t : new int[] {17, 1, 3, 16}) {
                begin(ctx, false, t);
                float[] x = normal(r, t * in, 1);
                Tensor y = ctx.allocate(t, OUT);
                nw.forward(ctx, ctx.allocate(t, in).copyFrom(x), y);
                assertRelClose(toFloat(mulT(toDouble(x), wd, t, in, OUT)), y.toFloatArray(), 2e-5, "y at t=" + t);
                if (t == 17) assertEquals(packedOnly, nw.residentBytes(), "many rows: no kernel layout");
            }
            long extra = 0;
            if (in % 8 == 0) {
                long[] size = backend().nf4RpSize(bs, in, OUT);
                extra = size[0] + 4 * size[1];
            }
            assertEquals(packedOnly + extra, nw.residentBytes(), "the kernel layout, built once, is counted");
            assertTrue(extra == 0 || extra < 2.2 * (OUT * (long) in) / 2, "kernel layout bytes " + extra);
        }
    }
}
