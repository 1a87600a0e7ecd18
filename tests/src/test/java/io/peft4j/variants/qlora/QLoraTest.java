package io.peft4j.variants.qlora;

import static io.peft4j.variants.TestSupport.assertRelClose;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.begin;
import static io.peft4j.variants.TestSupport.forward;
import static io.peft4j.variants.TestSupport.linears;
import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.mulT;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.randomizeAdapter;
import static io.peft4j.variants.TestSupport.rng;
import static io.peft4j.variants.TestSupport.tMul;
import static io.peft4j.variants.TestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.nn.Linear;
import io.peft4j.nn.Module;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.AdapterMethods;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.quant.Nf4Tensor;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import io.peft4j.nn.Loss;
import io.peft4j.data.Dataset;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lora.LoraAdapter;
import io.peft4j.variants.lora.LoraConfig;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * QLoRA (docs/algorithms.md §7.4): the NF4 base layer with LoRA on top, against a float64 reference
 * y = x·dequant(W)ᵀ + b + s·(x·Aᵀ)·Bᵀ and its gradients (checked by central differences), on both
 * kernel paths (t ≤ 16 and t > 16); the fp32 base is freed and never trained; merge goes into a
 * dequantized copy and unmerge returns to NF4 exactly; save/load in PEFT's layout.
 */
class QLoraTest {
    static final int IN = 37, OUT = 29, R = 5;
    static final float ALPHA = 7;

    static QLoraConfig config(TargetModules t, boolean dq, int bs) {
        return new QLoraConfig(LoraConfig.builder().r(R).alpha(ALPHA).targetModules(t).build(), "nf4", dq, bs, false);
    }

    /** The model's one Linear (path layers.0.q) wrapped with QLoRA, A and B randomized. */
    static PeftModel wrapped(boolean dq, int bs, SplittableRandom r) {
        PeftModel pm = PeftModel.wrap(TestSupport.single(11, IN, OUT), config(TargetModules.names("q"), dq, bs), backend(), 3);
        randomizeAdapter(pm, PeftModel.DEFAULT_ADAPTER, r, 0.3);
        return pm;
    }

    static Linear layer(PeftModel pm) {
        return linears(pm.baseModel()).get("layers.0.q");
    }

    static double[] dequantized(Linear l) {
        try (Tensor w = l.frozenWeight().dequantize(backend())) {
            return toDouble(w.toFloatArray());
        }
    }

    @Test
    void theBaseIsQuantizedExactlyAndItsFp32CopyFreed() {
        Module plain = TestSupport.single(11, IN, OUT);
        float[] w0 = linears(plain).get("layers.0.q").weight().value().toFloatArray();
        PeftModel pm = wrapped(true, 64, rng("qlora quantized"));
        Linear l = layer(pm);
        assertTrue(l.frozenWeight() instanceof Nf4Weight);
        assertFalse(l.weight().value().isAlive(), "the fp32 W is freed");
        assertFalse(l.weight().requiresGrad());
        try (Tensor w = Tensor.of(w0, OUT, IN); Nf4Tensor ref = Nf4Tensor.quantize(backend(), "w", w, 64, true, "float32");
             Tensor want = ref.dequantize(backend(), DType.F32); Tensor got = l.frozenWeight().dequantize(backend())) {
            assertArrayEquals(want.toFloatArray(), got.toFloatArray());
            assertEquals(ref.residentBytes(), l.frozenWeight().residentBytes());
        }
        assertTrue(l.frozenWeight().residentBytes() * 8.0 / (IN * OUT) < 4.6);
    }

    /** Reference forward; returns y. */
    static double[] refForward(double[] x, double[] w, double[] b, double[] a, double[] bb, double s, int t) {
        double[] y = mulT(x, w, t, IN, OUT);
        double[] h = mulT(x, a, t, IN, R);
        double[] d = mulT(h, bb, t, R, OUT);
        for (int i = 0; i < t; i++) for (int o = 0; o < OUT; o++) y[i * OUT + o] += b[o] + s * d[i * OUT + o];
        return y;
    }

    static double loss(double[] y, double[] g) {
        double l = 0;
        for (int i = 0; i < y.length; i++) l += y[i] * g[i];
        return l;
    }

    @ParameterizedTest(name = "t={0}")
    @ValueSource(ints = {5, 37})
    void forwardAndGradientsMatchTheFloat64Reference(int t) {
        SplittableRandom r = rng("qlora grads t=" + t);
        PeftModel pm = wrapped(true, 64, r);
        Linear l = layer(pm);
        LoraAdapter ad = (LoraAdapter) l.adapter(PeftModel.DEFAULT_ADAPTER);
        double s = ALPHA / R;
        double[] w = dequantized(l), b = toDouble(l.bias().value().toFloatArray());
        double[] a = toDouble(ad.loraA().value().toFloatArray()), bb = toDouble(ad.loraB().value().toFloatArray());
        float[] x = normal(r, t * IN, 1), g = normal(r, t * OUT, 1);
        double[] xd = toDouble(x), gd = toDouble(g);
        double[] yRef = refForward(xd, w, b, a, bb, s, t);
        // Analytic gradients of L = Σ y∘g.
        double[] h = mulT(xd, a, t, IN, R);
        double[] dB = scaleAll(s, tMul(gd, h, t, OUT, R));
        double[] dh = scaleAll(s, mul(gd, bb, t, OUT, R));
        double[] dA = tMul(dh, xd, t, R, IN);
        double[] dx = mul(gd, w, t, OUT, IN);
        double[] dxa = mul(dh, a, t, R, IN);
        for (int i = 0; i < dx.length; i++) dx[i] += dxa[i];
        // The reference's gradients against central differences of its own forward.
        double eps = 1e-6;
        for (int k : new int[] {0, 7, R * IN - 1}) {
            double[] ap = a.clone(), am = a.clone();
            ap[k] += eps;
            am[k] -= eps;
            double fd = (loss(refForward(xd, w, b, ap, bb, s, t), gd) - loss(refForward(xd, w, b, am, bb, s, t), gd)) / (2 * eps);
            assertEquals(dA[k], fd, 1e-6 * (1 + Math.abs(fd)), "dA[" + k + "] vs finite differences");
        }
        for (int k : new int[] {0, OUT * R - 1}) {
            double[] bp = bb.clone(), bm = bb.clone();
            bp[k] += eps;
            bm[k] -= eps;
            double fd = (loss(refForward(xd, w, b, a, bp, s, t), gd) - loss(refForward(xd, w, b, a, bm, s, t), gd)) / (2 * eps);
            assertEquals(dB[k], fd, 1e-6 * (1 + Math.abs(fd)), "dB[" + k + "] vs finite differences");
        }
        for (int k : new int[] {0, t * IN - 1}) {
            double[] xp = xd.clone(), xm = xd.clone();
            xp[k] += eps;
            xm[k] -= eps;
            double fd = (loss(refForward(xp, w, b, a, bb, s, t), gd) - loss(refForward(xm, w, b, a, bb, s, t), gd)) / (2 * eps);
            assertEquals(dx[k], fd, 1e-6 * (1 + Math.abs(fd)), "dx[" + k + "] vs finite differences");
        }
        byte[] packedBefore = ((Nf4Weight) l.frozenWeight()).nf4().packed().segment().toArray(ValueLayout.JAVA_BYTE);
        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, true, 1);
            backend().fill(0f, ad.loraA().grad());
            backend().fill(0f, ad.loraB().grad());
            Tensor xt = ctx.allocate(t, IN).copyFrom(x);
            Tensor y = pm.forward(ctx, xt);
            assertRelClose(toFloat(yRef), y.toFloatArray(), 2e-5, "y");
            Tensor gt = ctx.allocate(t, OUT).copyFrom(g);
            Tensor dxt = pm.backward(ctx, gt, true);
            assertRelClose(toFloat(dx), dxt.toFloatArray(), 2e-5, "dx");
            assertRelClose(toFloat(dA), ad.loraA().grad().toFloatArray(), 2e-5, "dA");
            assertRelClose(toFloat(dB), ad.loraB().grad().toFloatArray(), 2e-5, "dB");
        }
        assertArrayEquals(packedBefore, ((Nf4Weight) l.frozenWeight()).nf4().packed().segment().toArray(ValueLayout.JAVA_BYTE),
                "the quantized weight is never written");
        assertEquals(List.of(ad.loraA(), ad.loraB()), pm.namedParameters().values().stream().filter(p -> p.requiresGrad()).toList());
    }

    static double[] scaleAll(double s, double[] a) {
        double[] c = a.clone();
        for (int i = 0; i < c.length; i++) c[i] *= s;
        return c;
    }

    static float[] toFloat(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) f[i] = (float) a[i];
        return f;
    }

    @Test
    void mergeGoesIntoADequantizedCopyAndUnmergeReturnsToNf4Exactly() {
        SplittableRandom r = rng("qlora merge");
        PeftModel pm = wrapped(false, 32, r);
        Linear l = layer(pm);
        LoraAdapter ad = (LoraAdapter) l.adapter(PeftModel.DEFAULT_ADAPTER);
        float[] x = normal(r, 9 * IN, 1);
        float[] before = forward(pm, x, 9);
        double[] w = dequantized(l);
        pm.merge();
        assertTrue(l.weight().value().isAlive(), "merged: an fp32 W exists");
        double[] delta = mul(toDouble(ad.loraB().value().toFloatArray()), toDouble(ad.loraA().value().toFloatArray()), OUT, R, IN);
        double[] want = new double[w.length];
        for (int i = 0; i < w.length; i++) want[i] = w[i] + ALPHA / R * delta[i];
        assertRelClose(toFloat(want), l.weight().value().toFloatArray(), 1e-6, "merged W = dequant(W) + s·B·A");
        assertRelClose(before, forward(pm, x, 9), 1e-5, "merged forward");
        pm.unmerge();
        assertFalse(l.weight().value().isAlive(), "unmerged: the fp32 copy is freed again");
        TestSupport.assertBitEqual(before, forward(pm, x, 9), "forward after unmerge");
        Module plain = pm.mergeAndUnload();
        Linear pl = linears(plain).get("layers.0.q");
        assertNull(pl.frozenWeight(), "after mergeAndUnload the layer is a plain fp32 Linear");
        assertRelClose(before, forward(plain, x, 9), 1e-5, "merged-and-unloaded forward");
    }

    @Test
    void saveAndLoadUsePeftLayoutAndGiveTheSameOutputs(@TempDir Path dir) throws Exception {
        SplittableRandom r = rng("qlora save");
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(5), config(TargetModules.allLinear(), true, 64), backend(), 3);
        randomizeAdapter(pm, PeftModel.DEFAULT_ADAPTER, r, 0.3);
        float[] x = normal(r, 7 * 13, 1);
        float[] y = forward(pm, x, 7);
        pm.save(dir);
        String json = Files.readString(dir.resolve(PeftModel.CONFIG_FILE));
        assertTrue(json.contains("\"QLORA\"") && json.contains("\"bnb_4bit_use_double_quant\"") && json.contains("\"bnb_4bit_quant_type\""), json);
        PeftModel back = PeftModel.load(TestSupport.mlp(5), dir, backend());
        assertTrue(back.adapterConfigs().get(PeftModel.DEFAULT_ADAPTER) instanceof QLoraConfig);
        TestSupport.assertBitEqual(y, forward(back, x, 7), "loaded QLoRA model");
        for (Linear l : linears(back.baseModel()).values()) assertTrue(l.frozenWeight() instanceof Nf4Weight, l.path());
    }

    @Test
    void configIsReadByFieldAndBadSettingsAreRefused() {
        var m = AdapterMethods.forType("QLORA");
        assertEquals("qlora", m.name());
        Map<String, Object> json = new HashMap<>(Map.of("peft_type", "QLORA", "r", 4, "lora_alpha", 8, "target_modules", List.of("fc1"),
                "bnb_4bit_use_double_quant", false, "bnb_4bit_blocksize", 128, "paged_optimizer", true));
        QLoraConfig c = (QLoraConfig) m.configFromJson(json);
        assertEquals(4, c.lora().r());
        assertFalse(c.doubleQuant());
        assertEquals(128, c.blockSize());
        assertTrue(c.pagedOptimizer());
        assertEquals(true, c.toJson().get("paged_optimizer"));
        json.put("bnb_4bit_quant_type", "fp4");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> m.configFromJson(json)).getMessage().contains("bnb_4bit_quant_type"));
        json.put("bnb_4bit_quant_type", "nf4");
        json.put("bnb_4bit_blocksize", 48);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> m.configFromJson(json)).getMessage().contains("bnb_4bit_blocksize"));
        Map<String, Object> dflt = (Map<String, Object>) (Map) new HashMap<>(Map.of("peft_type", "QLORA"));
        QLoraConfig d = (QLoraConfig) m.configFromJson(dflt);
        assertTrue(d.doubleQuant());
        assertEquals(64, d.blockSize());
        assertFalse(d.pagedOptimizer());
    }

    @Test
    void aLayerWithAFrozenWeightRefusesASecondOneAndATrainedWeight() {
        PeftModel pm = wrapped(true, 64, rng("qlora misuse"));
        Linear l = layer(pm);
        assertThrows(IllegalStateException.class, () -> l.setFrozenWeight(l.frozenWeight()));
        Linear fresh = linears(TestSupport.single(2, IN, OUT)).get("layers.0.q");
        assertThrows(IllegalStateException.class, () -> fresh.setFrozenWeight(l.frozenWeight()), "the weight is still trainable");
    }

    /**
     * Trained end to end (Trainer, paged AdamW for QLoRA): from the same base and seed, QLoRA's
     * training and held-out losses follow fp32 LoRA's closely, since only W's NF4 rounding differs.
     */
    @Test
    void trainsLikeFp32LoraFromTheSameBase(@TempDir Path dir) {
        Dataset all = TestSupport.blobs(600, 13, 5, 31);   // one task: 400 examples to train on, 200 held out
        Dataset train = new Dataset(java.util.Arrays.copyOf(all.images(), 400 * 13), java.util.Arrays.copyOf(all.labels(), 400), 400, 13, 5);
        Dataset test = new Dataset(java.util.Arrays.copyOfRange(all.images(), 400 * 13, 600 * 13),
                java.util.Arrays.copyOfRange(all.labels(), 400, 600), 200, 13, 5);
        LoraConfig lora = LoraConfig.builder().r(4).alpha(8).targetModules(TargetModules.allLinear()).build();
        double[] lossLora = fit(PeftModel.wrap(TestSupport.mlp(9), lora, backend(), 3), AdamW.defaults(), train, test);
        QLoraConfig q = new QLoraConfig(lora, "nf4", true, 32, true);
        PeftModel qm = PeftModel.wrap(TestSupport.mlp(9), q, backend(), 3);
        double[] lossQ = fit(qm, AdamW.defaults().pagedOptimizer(dir), train, test);
        assertTrue(lossQ[1] < 0.5 * lossQ[0], "QLoRA training reduced the loss: " + lossQ[0] + " -> " + lossQ[1]);
        String both = "LoRA " + java.util.Arrays.toString(lossLora) + ", QLoRA " + java.util.Arrays.toString(lossQ);
        assertEquals(lossLora[0], lossQ[0], 0.02 * lossLora[0], "first epoch's training loss: " + both);
        assertEquals(lossLora[2], lossQ[2], 0.05, "held-out loss: " + both);
        assertEquals(lossLora[3], lossQ[3], 0.01, "held-out accuracy within one point: " + both);
    }

    /** {first epoch's training loss, last epoch's, held-out loss, held-out accuracy}. */
    static double[] fit(PeftModel pm, AdamW opt, Dataset train, Dataset test) {
        Trainer.Config cfg = Trainer.Config.builder().epochs(6).batchSize(20).lr(1e-2f).seed(3).evalEvery(0).progress(false).build();
        try (pm; Trainer t = new Trainer(pm, Loss.crossEntropy(), opt, cfg, backend())) {
            Trainer.Result r = t.fit(train, null);
            Trainer.EvalResult e = t.evaluate(test);
            return new double[] {r.epochs().get(0).trainLoss(), r.last().trainLoss(), e.loss(), e.accuracy()};
        }
    }
}
