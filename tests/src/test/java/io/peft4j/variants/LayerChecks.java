package io.peft4j.variants;

import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.begin;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.peft4j.data.Dataset;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.PeftModel;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * Checks shared by the methods that rewrite a layer's input or output, on a model with one
 * adapted Linear layer: forward and every gradient against a {@link LayerReference} (whose own
 * gradients pass a finite-difference check), and merge equivalence.
 */
public final class LayerChecks {
    private LayerChecks() {}

    /** Normwise fp32 bound for these small odd layers: max|a − b| ≤ REL·max|b|. */
    public static final double REL = 2e-5;

    /** The adapter's parameters and the layer parameters it trains, as float64, by checkpoint name. */
    public static Map<String, double[]> params(Linear layer, Adapter a) {
        Map<String, double[]> p = new LinkedHashMap<>();
        for (Parameter q : a.parameters()) p.put(q.name(), toDouble(q.value().toFloatArray()));
        for (String n : a.trainedBaseParameters()) p.put(n, toDouble(layer.localParameters().get(n).value().toFloatArray()));
        return p;
    }

    private static Map<String, Parameter> trained(Linear layer, Adapter a) {
        Map<String, Parameter> p = new LinkedHashMap<>();
        for (Parameter q : a.parameters()) p.put(q.name(), q);
        for (String n : a.trainedBaseParameters()) p.put(n, layer.localParameters().get(n));
        return p;
    }

    public static void assertClose(double[] ref, float[] got, double rel, String what) {
        assertEquals(ref.length, got.length, what + ": length");
        double scale = 0, err = 0;
        int at = -1;
        for (double v : ref) scale = Math.max(scale, Math.abs(v));
        for (int i = 0; i < ref.length; i++) {
            if (!Float.isFinite(got[i])) fail(what + ": non-finite value at [" + i + "]");
            double e = Math.abs(ref[i] - got[i]);
            if (e > err) {
                err = e;
                at = i;
            }
        }
        assertTrue(scale > 0, what + ": the reference is all zeros, the check would prove nothing");
        assertTrue(err <= rel * scale, what + ": max error " + err + " at [" + at + "] > " + rel + " x max|ref| " + scale);
    }

    /**
     * Train-mode forward and backward of {@code model} (one adapted Linear {@code layer}) on random
     * x and g against the reference; the reference's gradients against its central differences.
     */
    public static void checkForwardAndGradients(Module model, Linear layer, Adapter a, LayerReference ref, int t, SplittableRandom r) {
        int in = (int) layer.inFeatures(), out = (int) layer.outFeatures();
        float[] x = normal(r, t * in, 1), g = normal(r, t * out, 1);
        double[] w0 = toDouble(layer.weight().value().toFloatArray());
        double[] b0 = layer.bias() == null ? null : toDouble(layer.bias().value().toFloatArray());
        Map<String, double[]> p = params(layer, a);
        Map<String, Parameter> trained = trained(layer, a);
        trained.values().forEach(q -> assertTrue(q.requiresGrad(), q.name() + " trains"));
        trained.values().forEach(q -> backend().fill(0f, q.grad()));
        float[] y, dx;
        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, true, 1);
            Tensor xt = ctx.allocate(t, in).copyFrom(x);
            y = model.forward(ctx, xt).toFloatArray();
            dx = model.backward(ctx, ctx.allocate(t, out).copyFrom(g), true).toFloatArray();
        }
        double[] xd = toDouble(x), gd = toDouble(g);
        assertClose(ref.forward(p, w0, b0, xd, t, in, out), y, REL, "forward");
        Map<String, double[]> grads = ref.backward(p, w0, b0, xd, gd, t, in, out);
        assertClose(grads.get(LayerReference.INPUT), dx, REL, "∂L/∂x");
        assertEquals(trained.keySet(), withoutInput(grads).keySet(), "the reference has a gradient for every trained tensor");
        trained.forEach((n, q) -> assertClose(grads.get(n), q.grad().toFloatArray(), REL, "∂L/∂" + n));
        checkFiniteDifferences(ref, p, w0, b0, xd, gd, grads, t, in, out);
    }

    private static Map<String, double[]> withoutInput(Map<String, double[]> grads) {
        Map<String, double[]> m = new LinkedHashMap<>(grads);
        m.remove(LayerReference.INPUT);
        return m;
    }

    /** Central differences in float64 of L = Σ g ⊙ y against the reference's analytic gradients. */
    static void checkFiniteDifferences(LayerReference ref, Map<String, double[]> p, double[] w0, double[] b0, double[] x, double[] g,
                                       Map<String, double[]> grads, int t, int in, int out) {
        double h = 1e-6;
        Map<String, double[]> at = new LinkedHashMap<>();   // the unperturbed point, for the method's constants
        p.forEach((n, v) -> at.put(n, v.clone()));
        for (String name : grads.keySet()) {
            boolean isInput = name.equals(LayerReference.INPUT);
            double[] v = isInput ? x : p.get(name);
            double[] fd = new double[v.length];
            for (int i = 0; i < v.length; i++) {
                double keep = v[i];
                v[i] = keep + h;
                double lp = loss(ref, at, p, w0, b0, x, g, t, in, out);
                v[i] = keep - h;
                double lm = loss(ref, at, p, w0, b0, x, g, t, in, out);
                v[i] = keep;
                fd[i] = (lp - lm) / (2 * h);
            }
            double scale = 0, err = 0;
            for (int i = 0; i < fd.length; i++) {
                scale = Math.max(scale, Math.abs(grads.get(name)[i]));
                err = Math.max(err, Math.abs(fd[i] - grads.get(name)[i]));
            }
            assertTrue(scale > 0 && err <= 1e-6 * Math.max(scale, 1), "reference ∂L/∂" + name + " vs finite differences: error " + err + ", scale " + scale);
        }
    }

    private static double loss(LayerReference ref, Map<String, double[]> at, Map<String, double[]> p, double[] w0, double[] b0,
                               double[] x, double[] g, int t, int in, int out) {
        double[] y = ref.forwardWithConstantsAt(at, p, w0, b0, x, t, in, out);
        double l = 0;
        for (int i = 0; i < y.length; i++) l += g[i] * y[i];
        return l;
    }

    /**
     * Three AdamW steps on blobs (the model's input is 13 wide, 5 classes): exactly {@code trained}
     * train and change, every other parameter of the model is bit-identical afterwards.
     */
    public static void checkTrainingChangesOnly(PeftModel pm, Set<Parameter> trained) {
        assertEquals(trained, Set.copyOf(pm.trainableParameters()), "the trainable parameters");
        Map<Parameter, float[]> before = new LinkedHashMap<>();
        pm.namedParameters().values().forEach(p -> before.put(p, p.value().toFloatArray()));
        Dataset data = TestSupport.blobs(64, 13, 5, 17);
        Trainer.Config cfg = Trainer.Config.builder().maxSteps(3).batchSize(16).lr(1e-2f).seed(3).evalEvery(0).progress(false).build();
        try (Trainer t = new Trainer(pm, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0f), cfg, backend())) {
            assertEquals(3, t.fit(data, null).steps());
        }
        pm.namedParameters().forEach((n, p) -> {
            boolean changed = TestSupport.differs(before.get(p), p.value().toFloatArray());
            assertEquals(trained.contains(p), changed, n + (trained.contains(p) ? " must change" : " must stay bit-identical"));
        });
    }

    /** y of the model in eval mode for x, then merged, then unmerged: all must agree, and unmerge restores W and b bit-exactly. */
    public static void checkMerge(PeftModel pm, Linear layer, int t, SplittableRandom r) {
        int in = (int) layer.inFeatures();
        float[] x = normal(r, t * in, 1);
        float[] w0 = layer.weight().value().toFloatArray();
        float[] b0 = layer.bias() == null ? null : layer.bias().value().toFloatArray();
        float[] y = TestSupport.forward(pm, x, t);
        pm.merge();
        float[] ym = TestSupport.forward(pm, x, t);
        assertClose(toDouble(y), ym, REL, "merged forward vs unmerged");
        pm.unmerge();
        TestSupport.assertBitEqual(w0, layer.weight().value().toFloatArray(), "W after unmerge");
        if (b0 != null) TestSupport.assertBitEqual(b0, layer.bias().value().toFloatArray(), "b after unmerge");
        TestSupport.assertBitEqual(y, TestSupport.forward(pm, x, t), "forward after unmerge");
    }

    /** The adapter's own merge then unmerge on copies of W and b (the path taken when several adapters are merged). */
    public static void checkAdapterUnmergeRestores(Linear layer, Adapter a, double rel) {
        try (Tensor w = layer.weight().value().copy(); Tensor b = layer.bias() == null ? null : layer.bias().value().copy()) {
            a.merge(backend(), w, b);
            assertTrue(TestSupport.differs(layer.weight().value().toFloatArray(), w.toFloatArray()), "merge changed W");
            a.unmerge(backend(), w, b);
            assertClose(toDouble(layer.weight().value().toFloatArray()), w.toFloatArray(), rel, "W after the adapter's unmerge");
            if (b != null) assertClose(toDouble(layer.bias().value().toFloatArray()), b.toFloatArray(), rel, "b after the adapter's unmerge");
        }
    }
}
