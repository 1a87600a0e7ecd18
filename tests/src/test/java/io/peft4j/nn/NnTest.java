package io.peft4j.nn;

import static io.peft4j.variants.TestSupport.U;
import static io.peft4j.variants.TestSupport.abs;
import static io.peft4j.variants.TestSupport.add;
import static io.peft4j.variants.TestSupport.addRows;
import static io.peft4j.variants.TestSupport.assertBitEqual;
import static io.peft4j.variants.TestSupport.assertThrowsNaming;
import static io.peft4j.variants.TestSupport.assertWithin;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.begin;
import static io.peft4j.variants.TestSupport.bounds;
import static io.peft4j.variants.TestSupport.dot;
import static io.peft4j.variants.TestSupport.maxAbs;
import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.mulT;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.rng;
import static io.peft4j.variants.TestSupport.tMul;
import static io.peft4j.variants.TestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.peft.PeftModel;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lora.LoraConfig;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/** The nn building blocks against float64: Linear, ReLU, GELU, Sequential; module paths and names. */
class NnTest {

    private static double gamma(int k) {
        return 2.0 * (k + 8) * U;
    }

    /** y = x Wᵀ + b in float64. */
    private static double[] linearRef(double[] x, double[] w, double[] b, int t, int in, int out) {
        double[] y = mulT(x, w, t, in, out);
        return b == null ? y : addRows(y, b, t, out);
    }

    /** Central differences of L(θ) = f(θ) over every entry of theta (modified in place, restored). */
    private static double[] finiteDifferences(double[] theta, java.util.function.DoubleSupplier loss, double h) {
        double[] fd = new double[theta.length];
        for (int i = 0; i < theta.length; i++) {
            double keep = theta[i];
            theta[i] = keep + h;
            double lp = loss.getAsDouble();
            theta[i] = keep - h;
            double lm = loss.getAsDouble();
            theta[i] = keep;
            fd[i] = (lp - lm) / (2 * h);
        }
        return fd;
    }

    private static void assertFd(double[] analytic, double[] fd, String what) {
        assertWithin(analytic, fd, bounds(new double[analytic.length], 0, 1e-6 * Math.max(1, maxAbs(analytic))), what);
    }

    @Test
    void linearForwardAndBackwardMatchFloat64AndAccumulate() {
        for (boolean hasBias : new boolean[] {true, false}) {
            SplittableRandom r = rng("linear " + hasBias);
            int t = 5, in = 13, out = 11;
            Linear l = new Linear(backend(), in, out, hasBias, 3);
            float[] x = normal(r, t * in, 1), g = normal(r, t * out, 1);
            float[] gw0 = normal(r, in * out, 0.1), gb0 = normal(r, out, 0.1);
            l.weight().grad().copyFrom(gw0);
            if (hasBias) l.bias().grad().copyFrom(gb0);
            float[] y, dx;
            try (StepContext ctx = new StepContext(backend())) {
                begin(ctx, true, 1);
                y = l.forward(ctx, ctx.allocate(t, in).copyFrom(x)).toFloatArray();
                dx = l.backward(ctx, ctx.allocate(t, out).copyFrom(g), true).toFloatArray();
            }
            double[] w = toDouble(l.weight().value().toFloatArray());
            double[] b = hasBias ? toDouble(l.bias().value().toFloatArray()) : null;
            double[] xd = toDouble(x), gd = toDouble(g);
            String tag = hasBias ? "with bias" : "without bias";
            assertWithin(linearRef(xd, w, b, t, in, out), y, bounds(linearRef(abs(xd), abs(w), b == null ? null : abs(b), t, in, out), gamma(in), 0), "y " + tag);
            double[] dW = tMul(gd, xd, t, out, in), dxRef = mul(gd, w, t, out, in);
            assertWithin(add(toDouble(gw0), dW), l.weight().grad().toFloatArray(),
                    add(bounds(tMul(abs(gd), abs(xd), t, out, in), gamma(t), 0), bounds(abs(toDouble(gw0)), 2 * U, 0)), "dW accumulated " + tag);
            assertWithin(dxRef, dx, bounds(mul(abs(gd), abs(w), t, out, in), gamma(out), 0), "dx " + tag);
            if (hasBias) {
                double[] db = new double[out], dbMag = new double[out];
                for (int i = 0; i < t; i++) for (int j = 0; j < out; j++) {
                    db[j] += gd[i * out + j];
                    dbMag[j] += Math.abs(gd[i * out + j]);
                }
                assertWithin(add(toDouble(gb0), db), l.bias().grad().toFloatArray(), add(bounds(dbMag, gamma(t), 0), bounds(abs(toDouble(gb0)), 2 * U, 0)), "db accumulated");
                // and the reference's gradients are the derivatives of its forward
                assertFd(db, finiteDifferences(b, () -> dot(gd, linearRef(xd, w, b, t, in, out)), 1e-3), "FD of db");
            } else {
                assertNull(l.bias());
            }
            assertFd(dW, finiteDifferences(w, () -> dot(gd, linearRef(xd, w, b, t, in, out)), 1e-3), "FD of dW " + tag);
            assertFd(dxRef, finiteDifferences(xd, () -> dot(gd, linearRef(xd, w, b, t, in, out)), 1e-3), "FD of dx " + tag);
        }
    }

    @Test
    void linearWithoutInputGradientStillAccumulatesParameterGradients() {
        SplittableRandom r = rng("no dx");
        Linear l = new Linear(backend(), 6, 4, true, 1);
        float[] x = normal(r, 3 * 6, 1), g = normal(r, 3 * 4, 1);
        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, true, 1);
            l.forward(ctx, ctx.allocate(3, 6).copyFrom(x));
            assertNull(l.backward(ctx, ctx.allocate(3, 4).copyFrom(g), false));
        }
        double[] dW = tMul(toDouble(g), toDouble(x), 3, 4, 6);
        assertWithin(dW, l.weight().grad().toFloatArray(), bounds(tMul(abs(toDouble(g)), abs(toDouble(x)), 3, 4, 6), gamma(3), 0), "dW");
    }

    @Test
    void frozenLinearHasNoGradientButPassesTheInputGradient() {
        Linear l = new Linear(backend(), 6, 4, true, 1);
        Tensor oldGrad = l.weight().grad();
        l.weight().setRequiresGrad(false);
        l.bias().setRequiresGrad(false);
        assertFalse(oldGrad.isAlive(), "freezing frees the gradient");
        assertThrowsNaming(IllegalStateException.class, () -> l.weight().grad(), "parameter 'weight' is frozen");
        SplittableRandom r = rng("frozen");
        float[] x = normal(r, 2 * 6, 1), g = normal(r, 2 * 4, 1);
        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, true, 1);
            l.forward(ctx, ctx.allocate(2, 6).copyFrom(x));
            float[] dx = l.backward(ctx, ctx.allocate(2, 4).copyFrom(g), true).toFloatArray();
            double[] w = toDouble(l.weight().value().toFloatArray());
            assertWithin(mul(toDouble(g), w, 2, 4, 6), dx, bounds(mul(abs(toDouble(g)), abs(w), 2, 4, 6), gamma(4), 0), "dx");
        }
    }

    @Test
    void reluForwardAndBackwardAreExact() {
        float[] x = normal(rng("relu"), 40, 1);
        x[3] = 0f;
        x[7] = -0f;
        float[] g = normal(rng("relu g"), 40, 1);
        ReLU relu = new ReLU();
        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, true, 1);
            float[] y = relu.forward(ctx, ctx.allocate(5, 8).copyFrom(x)).toFloatArray();
            float[] dx = relu.backward(ctx, ctx.allocate(5, 8).copyFrom(g), true).toFloatArray();
            for (int i = 0; i < x.length; i++) {
                assertEquals(Math.max(x[i], 0f), y[i], 0f, "relu(" + x[i] + ")");
                assertEquals(x[i] > 0 ? g[i] : 0f, dx[i], 0f, "relu'(" + x[i] + ")·g");
            }
            assertNull(relu.backward(ctx, ctx.allocate(5, 8).copyFrom(g), false));
        }
    }

    /** erf by its Taylor series (|x| ≤ 6 here): exact to ~1e-15 at these arguments. */
    static double erf(double x) {
        if (Math.abs(x) > 6) return Math.signum(x);
        double sum = 0, term = x;
        for (int n = 0; n < 200; n++) {
            sum += term / (2 * n + 1);
            term *= -x * x / (n + 1);
        }
        return 2 / Math.sqrt(Math.PI) * sum;
    }

    @Test
    void geluIsTheExactErfForm() {
        SplittableRandom r = rng("gelu");
        float[] x = normal(r, 60, 1.5), g = normal(r, 60, 1);
        GELU gelu = new GELU();
        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, true, 1);
            float[] y = gelu.forward(ctx, ctx.allocate(6, 10).copyFrom(x)).toFloatArray();
            float[] dx = gelu.backward(ctx, ctx.allocate(6, 10).copyFrom(g), true).toFloatArray();
            for (int i = 0; i < x.length; i++) {
                double xi = x[i], cdf = 0.5 * (1 + erf(xi / Math.sqrt(2))), pdf = Math.exp(-xi * xi / 2) / Math.sqrt(2 * Math.PI);
                assertEquals(xi * cdf, y[i], 1e-6 * (Math.abs(xi) + 1e-3), "gelu(" + xi + ")");
                assertEquals(g[i] * (cdf + xi * pdf), dx[i], 1e-6 * Math.abs(g[i]) * (1 + Math.abs(xi)), "gelu'(" + xi + ")·g");
            }
            // the tanh approximation differs from the erf form by up to ~5e-4 at these inputs: this is the exact one
            assertEquals(0.8413447460685429, gelu.forward(ctx, Tensor.of(new float[] {1f}, 1, 1)).toFloatArray()[0], 1e-6);
        }
    }

    @Test
    void sequentialChainsBackwardThroughEveryLayer() {
        SplittableRandom r = rng("sequential");
        int t = 4, in = 7, hid = 9, out = 3;
        Sequential s = new Sequential();
        Linear fc1 = s.add("fc1", new Linear(backend(), in, hid, true, 1));
        s.add("act", new ReLU());
        Linear fc2 = s.add("fc2", new Linear(backend(), hid, out, true, 2));
        float[] x = normal(r, t * in, 1), g = normal(r, t * out, 1);
        float[] y, dx;
        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, true, 1);
            y = s.forward(ctx, ctx.allocate(t, in).copyFrom(x)).toFloatArray();
            dx = s.backward(ctx, ctx.allocate(t, out).copyFrom(g), true).toFloatArray();
        }
        double[] w1 = toDouble(fc1.weight().value().toFloatArray()), b1 = toDouble(fc1.bias().value().toFloatArray());
        double[] w2 = toDouble(fc2.weight().value().toFloatArray()), b2 = toDouble(fc2.bias().value().toFloatArray());
        double[] xd = toDouble(x), gd = toDouble(g);
        Function<double[], double[]> model = xx -> {
            double[] z = linearRef(xx, w1, b1, t, in, hid);
            double[] h = z.clone();
            for (int i = 0; i < h.length; i++) h[i] = Math.max(0, h[i]);
            return linearRef(h, w2, b2, t, hid, out);
        };
        double[] z = linearRef(xd, w1, b1, t, in, hid);
        double[] h = z.clone();
        for (int i = 0; i < h.length; i++) h[i] = Math.max(0, h[i]);
        double[] gh = mul(gd, w2, t, out, hid);
        double[] gz = gh.clone();
        for (int i = 0; i < gz.length; i++) if (z[i] <= 0) gz[i] = 0;
        double[] dxRef = mul(gz, w1, t, hid, in);
        double tol = 1e-5;
        TestSupport.assertRelClose(toFloat(model.apply(xd)), y, tol, "y");
        TestSupport.assertRelClose(toFloat(dxRef), dx, tol, "dx through fc2, ReLU, fc1");
        TestSupport.assertRelClose(toFloat(tMul(gz, xd, t, hid, in)), fc1.weight().grad().toFloatArray(), tol, "fc1 dW");
        TestSupport.assertRelClose(toFloat(tMul(gd, h, t, out, hid)), fc2.weight().grad().toFloatArray(), tol, "fc2 dW");
        assertFd(dxRef, finiteDifferences(xd, () -> dot(gd, model.apply(xd)), 1e-6), "FD of dx");

        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, true, 1);
            s.forward(ctx, ctx.allocate(t, in).copyFrom(x));
            assertNull(s.backward(ctx, ctx.allocate(t, out).copyFrom(g), false), "no input gradient when not asked");
        }
    }

    private static float[] toFloat(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) f[i] = (float) a[i];
        return f;
    }

    @Test
    void modulePathsFollowTheTree() {
        Mlp mlp = new Mlp(backend(), Mlp.Activation.GELU, 1, 12, 16, 8, 4);
        assertEquals(List.of("", "fc1", "act1", "fc2", "act2", "fc3"), List.copyOf(mlp.namedModules().keySet()));
        assertEquals(List.of("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"), List.copyOf(mlp.namedParameters().keySet()));
        assertEquals(12 * 16 + 16 + 16 * 8 + 8 + 8 * 4 + 4, mlp.parameterCount());
        assertEquals(mlp.parameterCount(), mlp.trainableParameterCount());

        // Built bottom-up: a layer's path is fixed up when its parent is attached.
        Sequential inner = new Sequential();
        Linear q = inner.add("q", new Linear(backend(), 4, 4, false, 1));
        assertEquals("q", q.path());
        Sequential layers = new Sequential();
        layers.add("0", inner);
        Sequential root = new Sequential();
        root.add("layers", layers);
        assertEquals("layers.0.q", q.path());
        assertEquals(List.of("", "layers", "layers.0", "layers.0.q"), List.copyOf(root.namedModules().keySet()));
        assertEquals(List.of("layers.0.q.weight"), List.copyOf(root.namedParameters().keySet()));
        assertSame(q, root.namedModules().get("layers.0.q"));

        assertThrowsNaming(IllegalArgumentException.class, () -> root.add("layers", new ReLU()), "duplicate child 'layers'");
        assertThrowsNaming(IllegalArgumentException.class, () -> root.add("a.b", new ReLU()), "bad child name 'a.b'");
        assertThrowsNaming(IllegalArgumentException.class, () -> root.add("", new ReLU()), "bad child name ''");
    }

    @Test
    void adapterParametersAreNamedAsPeftNamesThem() {
        PeftModel pm = PeftModel.wrap(new Mlp(backend(), Mlp.Activation.RELU, 1, 6, 5, 3),
                LoraConfig.builder().r(2).targetModules("fc2").build());
        assertEquals(List.of("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc2.lora_A.default.weight", "fc2.lora_B.default.weight"),
                List.copyOf(pm.namedParameters().keySet()));
        assertEquals(2 * (5 + 3), pm.trainableParameterCount());
    }

    @Test
    void linearInitIsTorchsUniformWithinOneOverSqrtIn() {
        int in = 300, out = 50;
        Linear l = new Linear(backend(), in, out, true, 7);
        double bound = 1 / Math.sqrt(in);
        float[] w = l.weight().value().toFloatArray(), b = l.bias().value().toFloatArray();
        double wMax = maxAbs(w), bMax = maxAbs(b);
        assertTrue(wMax <= bound && wMax > 0.99 * bound, "max |w| " + wMax + " vs " + bound);
        assertTrue(bMax <= bound && bMax > 0.5 * bound, "max |b| " + bMax + " vs " + bound);
        double mean = 0;
        for (float v : w) mean += v;
        assertEquals(0, mean / w.length, 0.05 * bound, "mean of w");
        assertFalse(java.util.Arrays.equals(b, java.util.Arrays.copyOf(w, out)), "bias and weight draw different numbers");
        assertBitEqual(w, new Linear(backend(), in, out, true, 7).weight().value().toFloatArray(), "same seed, same weights");
        assertTrue(TestSupport.differs(w, new Linear(backend(), in, out, true, 8).weight().value().toFloatArray()), "another seed");
        assertTrue(l.weight().requiresGrad() && l.weight().decay());
        assertTrue(l.bias().requiresGrad() && !l.bias().decay(), "biases are not decayed");
        assertThrowsNaming(IllegalArgumentException.class, () -> new Linear(backend(), 0, 3, true, 1), "in=0 out=3");
        assertThrowsNaming(IllegalArgumentException.class, () -> new Linear(backend(), 3, 0, true, 1), "in=3 out=0");
        double bMin = Double.POSITIVE_INFINITY;
        for (float v : b) bMin = Math.min(bMin, v);
        assertTrue(bMin < 0, "the bias is drawn from (-bound, bound), not [bound, bound]");
    }

    /** Weight and bias come from one Philox stream: the bias starts at the first multiple of 4 past the weight's draws. */
    @Test
    void linearDrawsTheBiasAfterTheWeight() {
        int in = 7, out = 5;   // 35 weights, so the bias starts at 36
        long seed = 9;
        Linear l = new Linear(backend(), in, out, true, seed);
        Tensor w = Tensor.zeros(DType.F32, out, in);
        backend().rngKaimingUniform(seed, 0, in, (float) Math.sqrt(5), w);
        Tensor b = Tensor.zeros(DType.F32, out);
        float bound = (float) (1 / Math.sqrt(in));
        backend().rngUniform(seed, 36, -bound, bound, b);
        assertBitEqual(w.toFloatArray(), l.weight().value().toFloatArray(), "weight: draws 0..34");
        assertBitEqual(b.toFloatArray(), l.bias().value().toFloatArray(), "bias: draws 36..40");
    }

    @Test
    void mlpStacksSeededLinearsWithAnActivationBetween() {
        long[] sizes = {7, 6, 4, 3};
        Mlp m = new Mlp(backend(), Mlp.Activation.RELU, 5, sizes);
        assertEquals(List.of("", "fc1", "act1", "fc2", "act2", "fc3"), List.copyOf(m.namedModules().keySet()));
        assertInstanceOf(ReLU.class, m.namedModules().get("act2"));
        for (int i = 1; i < sizes.length; i++) {
            Linear fc = (Linear) m.namedModules().get("fc" + i);
            assertEquals(sizes[i - 1], fc.inFeatures());
            assertEquals(sizes[i], fc.outFeatures());
            assertBitEqual(new Linear(backend(), sizes[i - 1], sizes[i], true, 5 + i).weight().value().toFloatArray(),
                    fc.weight().value().toFloatArray(), "fc" + i + " is seeded with seed + " + i);
        }
        m.sizes()[0] = 99;
        assertArrayEquals(sizes, m.sizes());
        Mlp single = new Mlp(backend(), Mlp.Activation.GELU, 1, 4, 2);
        assertEquals(List.of("", "fc1"), List.copyOf(single.namedModules().keySet()), "one layer, no activation");
        assertInstanceOf(GELU.class, new Mlp(backend(), Mlp.Activation.GELU, 1, 4, 3, 2).namedModules().get("act1"));
        assertThrowsNaming(IllegalArgumentException.class, () -> new Mlp(backend(), Mlp.Activation.RELU, 1, 4),
                "an Mlp needs at least an input and an output size");
    }

    /** Loss.mse: mean of (p − t)² and its gradient 2(p − t)/n, against float64. */
    @Test
    void mseLossAndGradient() {
        SplittableRandom r = rng("mse");
        int t = 5, n = 7;
        float[] p = normal(r, t * n, 1), y = normal(r, t * n, 1);
        double loss = 0, scale = 0;
        double[] grad = new double[t * n];
        for (int i = 0; i < t * n; i++) {
            double e = (double) p[i] - y[i];
            loss += e * e;
            scale += Math.abs(e) * Math.abs(e);
            grad[i] = 2 * e / (t * n);
        }
        loss /= t * n;
        Loss mse = Loss.mse();
        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, true, 1);
            float got = mse.forward(ctx, ctx.allocate(t, n).copyFrom(p), ctx.allocate(t, n).copyFrom(y));
            assertEquals(loss, got, (gamma(t * n) + 3 * U) * scale / (t * n), "loss");
            double[] mag = new double[t * n];
            for (int i = 0; i < mag.length; i++) mag[i] = Math.abs(grad[i]);
            assertWithin(grad, mse.backward(ctx).toFloatArray(), bounds(mag, 4 * U, 0), "gradient");
        }
    }

    /** Closing a model frees every tensor it owns: weights, gradients, adapters. */
    @Test
    void closingAModelFreesItsTensors() {
        PeftModel pm = PeftModel.wrap(new Mlp(backend(), Mlp.Activation.RELU, 1, 6, 5, 3),
                LoraConfig.builder().r(2).targetModules("fc1", "fc2").build());
        pm.merge();   // fc1 and fc2 now also hold a copy of W0
        java.util.Map<String, Tensor> owned = new java.util.LinkedHashMap<>();
        pm.namedParameters().forEach((name, p) -> {
            owned.put(name, p.value());
            if (p.requiresGrad()) owned.put(name + ".grad", p.grad());
        });
        assertEquals(4 + 2 * 2 * 2, owned.size(), "4 frozen base values, 2 adapters x (A, B) with their gradients");
        pm.close();
        owned.forEach((name, x) -> assertFalse(x.isAlive(), name + " is freed"));
    }

    @Test
    void parametersAreFloat32() {
        assertThrowsNaming(IllegalArgumentException.class,
                () -> new Parameter("w", Tensor.zeros(DType.U8, 3), true, true), "U8", "must be F32");
    }

    @Test
    void badInputShapeNamesTheLayer() {
        var model = TestSupport.nested(1);
        try (StepContext ctx = new StepContext(backend())) {
            ctx.begin(false, 0);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> model.forward(ctx, ctx.allocate(2, 12)));
            assertTrue(e.getMessage().contains("'embed'") && e.getMessage().contains("13") && e.getMessage().contains("[2, 12]"), e.getMessage());
            Linear q = (Linear) model.namedModules().get("layers.0.q");
            IllegalArgumentException e2 = assertThrows(IllegalArgumentException.class, () -> q.forward(ctx, ctx.allocate(2, 8)));
            assertTrue(e2.getMessage().contains("layers.0.q"), e2.getMessage());
            IllegalArgumentException e3 = assertThrows(IllegalArgumentException.class, () -> q.forward(ctx, ctx.allocate(9)));
            assertTrue(e3.getMessage().contains("layers.0.q"), e3.getMessage());
        }
    }

    @Test
    void backwardWithoutForwardIsRefused() {
        Linear l = new Linear(backend(), 3, 2, true, 1);
        try (StepContext ctx = new StepContext(backend())) {
            ctx.begin(true, 0);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> l.backward(ctx, ctx.allocate(1, 2), true));
            assertTrue(e.getMessage().contains("backward without forward"), e.getMessage());
            l.forward(ctx, ctx.allocate(1, 3));
            ctx.begin(true, 1);   // the step's activations are gone
            assertThrowsNaming(IllegalStateException.class, () -> l.backward(ctx, ctx.allocate(1, 2), true),
                    "backward without forward in this step");
        }
    }
}
