package io.peft4j.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.data.Dataset;
import io.peft4j.io.ModelCheckpoint;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.kernels.TransformerReference;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import io.peft4j.variants.VitModels;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The ViT in nn: one transformer block forward and backward against a float64 reference (the
 * backward against central differences of it), the names adapters target, training on a small
 * learnable task, and a checkpoint round trip that restores the outputs bit for bit.
 */
class VisionTransformerTest {
    static final Backend B = Backend.cpu();

    static float[] normal(SplittableRandom r, int n, double std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * std);
        return a;
    }

    static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }

    static double maxAbs(double[] a) {
        double m = 0;
        for (double v : a) m = Math.max(m, Math.abs(v));
        return m;
    }

    /** Width 24 in 3 heads of 8, MLP 40, 3 sequences of 17 tokens; every parameter random (biases and LayerNorms too). */
    @Test
    void blockForwardAndBackwardMatchTheFloat64Reference() {
        int b = 3, t = 17, width = 24, heads = 3, mlp = 40;
        SplittableRandom r = new SplittableRandom(0xB10C);
        try (TransformerBlock block = new TransformerBlock(B, width, heads, mlp, false, 11); StepContext ctx = new StepContext(B)) {
            VitModels.randomizeLayerNorms(block, 5);
            for (Parameter p : block.namedParameters().values()) {
                if (p.name().equals("bias") && p.value().rank() == 1) p.value().copyFrom(normal(r, (int) p.numel(), 0.3));
            }
            block.attention().setSequenceLength(t);
            Map<String, double[]> params = new LinkedHashMap<>();
            block.namedParameters().forEach((n, p) -> params.put(n, toDouble(p.value().toFloatArray())));
            float[] x = normal(r, b * t * width, 1.0), g = normal(r, b * t * width, 1.0);
            double[] xd = toDouble(x), gd = toDouble(g);

            ctx.begin(true, 1);
            Tensor tx = ctx.allocate(b * t, width).copyFrom(x);
            float[] y = block.forward(ctx, tx).toFloatArray();
            double[] ref = TransformerReference.block(params, xd, b, t, width, heads, mlp, 1e-6);
            double err = 0;
            for (int i = 0; i < y.length; i++) err = Math.max(err, Math.abs(y[i] - ref[i]));
            assertTrue(err <= 2e-5 * maxAbs(ref), "block forward: max error " + err + " vs max|ref| " + maxAbs(ref));

            float[] dx = block.backward(ctx, ctx.allocate(b * t, width).copyFrom(g), true).toFloatArray();
            // Central differences of Σ g ⊙ block(x) in float64, at random elements of x and of every parameter.
            checkAgainstDifferences("dx", dx, xd, r, () -> TransformerReference.dot(gd, TransformerReference.block(params, xd, b, t, width, heads, mlp, 1e-6)));
            block.namedParameters().forEach((n, p) -> checkAgainstDifferences(n, p.grad().toFloatArray(), params.get(n), r,
                    () -> TransformerReference.dot(gd, TransformerReference.block(params, xd, b, t, width, heads, mlp, 1e-6))));
        }
    }

    private static void checkAgainstDifferences(String what, float[] got, double[] at, SplittableRandom r, java.util.function.DoubleSupplier loss) {
        double scale = 0;
        for (float v : got) scale = Math.max(scale, Math.abs(v));
        for (int trial = 0; trial < 4; trial++) {
            int i = r.nextInt(at.length);
            double keep = at[i], h = 1e-5;
            at[i] = keep + h;
            double up = loss.getAsDouble();
            at[i] = keep - h;
            double down = loss.getAsDouble();
            at[i] = keep;
            double fd = (up - down) / (2 * h);
            assertEquals(fd, got[i], 1e-4 * scale + 1e-6, what + "[" + i + "] against central differences (max|grad| " + scale + ")");
        }
    }

    @Test
    void namesAreTheOnesAdaptersTarget() {
        try (VisionTransformer vit = new VisionTransformer(B, VisionTransformer.Config.DEMO, 0)) {
            Map<String, Module> m = vit.namedModules();
            for (String name : List.of("patch_embed", "blocks.3.attn.q", "blocks.3.attn.k", "blocks.3.attn.v", "blocks.3.attn.o",
                    "blocks.3.mlp.fc1", "blocks.3.mlp.fc2", "blocks.0.norm1", "norm", "head")) {
                assertTrue(m.containsKey(name), "module " + name + " in " + m.keySet());
            }
            assertTrue(m.get("blocks.3.attn.q") instanceof Linear);
            Map<String, Parameter> p = vit.namedParameters();
            assertArrayEquals(new long[] {1, 64}, p.get("cls_token").value().shape());
            assertArrayEquals(new long[] {17, 64}, p.get("pos_embed").value().shape());
            assertArrayEquals(new long[] {64, 49}, p.get("patch_embed.weight").value().shape());
            // 17·64 + 64 + 49·64 + 64 + 4·(2·128 + 4·(64·64 + 64) + 64·128 + 128 + 128·64 + 64) + 128 + 64·10 + 10
            assertEquals(139_018, vit.parameterCount());
        }
    }

    /** Ten noisy copies of ten random prototype images: a ViT learns them, so the loss falls by far. */
    @Test
    void trainsOnALearnableTask() {
        VisionTransformer.Config c = new VisionTransformer.Config(8, 4, 16, 2, 2, 32, 10);
        SplittableRandom r = new SplittableRandom(3);
        float[][] protos = new float[10][];
        for (int k = 0; k < 10; k++) protos[k] = normal(r, 64, 1.0);
        int n = 200;
        float[] images = new float[n * 64];
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) {
            labels[i] = i % 10;
            for (int j = 0; j < 64; j++) images[i * 64 + j] = protos[labels[i]][j] + (float) (0.3 * r.nextGaussian());
        }
        Dataset data = new Dataset(images, labels, n, 64);
        try (VisionTransformer vit = new VisionTransformer(B, c, 1)) {
            Trainer.Config cfg = Trainer.Config.builder().epochs(12).batchSize(20).lr(3e-3f).schedule("cosine").seed(1).evalEvery(0).build();
            Trainer.Result res;
            try (Trainer tr = new Trainer(vit, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0.05f), cfg, B)) {
                res = tr.fit(data, null);
            }
            double first = res.epochs().get(0).trainLoss(), last = res.last().trainLoss();
            assertTrue(last < 0.2 * first, "train loss " + first + " -> " + last);
            try (StepContext ctx = new StepContext(B)) {
                assertTrue(Trainer.evaluate(vit, data, ctx, 100).accuracy() > 0.95, "the prototypes are learned");
            }
        }
    }

    @Test
    void checkpointRoundTripRestoresOutputsBitForBit(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("vit.safetensors");
        SplittableRandom r = new SplittableRandom(9);
        float[] x = normal(r, 5 * 16, 1.0);
        float[] y0;
        try (VisionTransformer vit = VitModels.tiny(4); StepContext ctx = new StepContext(B)) {
            ctx.begin(false, 0);
            y0 = vit.forward(ctx, ctx.allocate(5, 16).copyFrom(x)).toFloatArray();
            ModelCheckpoint.save(vit, file, vit.metadata());
        }
        VisionTransformer.Config c;
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            c = VisionTransformer.Config.fromMetadata(f.metadata(), file.toString());
        }
        assertEquals(VitModels.TINY, c);
        try (VisionTransformer loaded = new VisionTransformer(B, c, 99); StepContext ctx = new StepContext(B)) {
            ModelCheckpoint.load(loaded, file);
            ctx.begin(false, 0);
            float[] y1 = loaded.forward(ctx, ctx.allocate(5, 16).copyFrom(x)).toFloatArray();
            for (int i = 0; i < y0.length; i++) assertEquals(Float.floatToRawIntBits(y0[i]), Float.floatToRawIntBits(y1[i]), "logit " + i);
        }
        // Other sizes are refused, naming the tensor.
        try (VisionTransformer wider = new VisionTransformer(B, new VisionTransformer.Config(4, 2, 15, 2, 3, 20, 5), 0)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelCheckpoint.load(wider, file));
            assertTrue(e.getMessage().contains("cls_token"), e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> VisionTransformer.Config.fromMetadata(Map.of("peft4j.vit.image_size", "4"), "f"));
        assertTrue(e.getMessage().contains("peft4j.vit.patch"), e.getMessage());
    }

    @Test
    void badSizesAndInputsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new VisionTransformer.Config(28, 5, 64, 4, 4, 128, 10), "28 % 5");
        assertThrows(IllegalArgumentException.class, () -> new VisionTransformer.Config(28, 7, 64, 4, 5, 128, 10), "64 % 5");
        try (VisionTransformer vit = VitModels.tiny(1); StepContext ctx = new StepContext(B)) {
            ctx.begin(false, 0);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> vit.forward(ctx, ctx.allocate(2, 15)));
            assertTrue(e.getMessage().contains("[b, 16]"), e.getMessage());
        }
    }
}
