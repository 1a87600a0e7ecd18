package io.peft4j.variants;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.peft4j.backend.Backend;
import io.peft4j.data.Dataset;
import io.peft4j.nn.GELU;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.ReLU;
import io.peft4j.nn.Sequential;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.PeftModel;
import io.peft4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.nio.file.Path;
import io.peft4j.io.SafetensorsFile;
import java.util.SplittableRandom;
import org.junit.jupiter.api.function.Executable;

/**
 * What the PEFT, LoRA, trainer, nn and CLI tests share: seeded random inputs (never exactly zero),
 * NaN-poisoned step memory, the small odd-shaped models every variant runs on, float64 copies of
 * tensors, and comparisons that name the worst element.
 */
public final class TestSupport {
    private TestSupport() {}

    /** fp32 unit roundoff, 2^-24. */
    public static final double U = 0x1p-24;

    /** Floats (4 MiB) poisoned at the start of a step; more than any step of these tests allocates. */
    private static final long POISON_FLOATS = 1L << 20;

    public static Backend backend() {
        return Backend.cpu();
    }

    /** A random stream of its own for each test, derived from its name (reproducible run to run). */
    public static SplittableRandom rng(String name) {
        long h = 0xcbf29ce484222325L;
        for (int i = 0; i < name.length(); i++) h = (h ^ name.charAt(i)) * 0x100000001b3L;
        return new SplittableRandom(h ^ 0x5EEDC0DE2024L);
    }

    /** N(0, std²) values, never exactly zero. */
    public static float[] normal(SplittableRandom r, int n, double std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            float v;
            do v = (float) (r.nextGaussian() * std); while (v == 0f);
            a[i] = v;
        }
        return a;
    }

    public static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }

    public static double[] abs(double[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = Math.abs(a[i]);
        return d;
    }

    public static double[] values(Parameter p) {
        return toDouble(p.value().toFloatArray());
    }

    /**
     * Starts a step whose fresh allocations hold NaN: the step arena recycles its memory on
     * {@code begin}, so NaN written into it before the real begin is what every output and
     * workspace of the step starts as. An op that reads an output it should only write shows up.
     */
    public static StepContext begin(StepContext ctx, boolean training, long stepSeed) {
        ctx.begin(training, stepSeed);
        Tensor junk = ctx.allocate(POISON_FLOATS);
        ctx.backend().fill(Float.NaN, junk);
        ctx.begin(training, stepSeed);
        Tensor probe = ctx.allocate(1);
        if (!Float.isNaN(probe.getFloat(0))) fail("step memory was not poisoned: the arena did not reuse its memory");
        return ctx;
    }

    /** The model's output for {@code x} ([t, in]) in a fresh poisoned step. */
    public static float[] forward(Module model, float[] x, int t, boolean training, long stepSeed) {
        try (StepContext ctx = new StepContext(backend())) {
            begin(ctx, training, stepSeed);
            Tensor xt = ctx.allocate(t, x.length / t).copyFrom(x);
            return model.forward(ctx, xt).toFloatArray();
        }
    }

    public static float[] forward(Module model, float[] x, int t) {
        return forward(model, x, t, false, 0);
    }

    // ---- models ----

    /** Fashion-MNIST's MLP shape, shrunk to odd sizes: fc1 13→17, fc2 17→11, fc3 11→5, GELU between. */
    public static Module mlp(long seed) {
        return new Mlp(backend(), Mlp.Activation.GELU, seed, 13, 17, 11, 5);
    }

    /**
     * A transformer-like nest of Sequentials: embed 13→9, layers.0.{q 9→7, act GELU, o 7→9},
     * layers.1.{q 9→6, act ReLU, o 6→9}, head_q 9→5. "head_q" ends in "q" but not in ".q", so name
     * matching must not pick it up for "q".
     */
    public static Module nested(long seed) {
        Sequential root = new Sequential();
        root.add("embed", new Linear(backend(), 13, 9, true, seed + 1));
        Sequential layers = root.add("layers", new Sequential());
        Sequential l0 = layers.add("0", new Sequential());
        l0.add("q", new Linear(backend(), 9, 7, true, seed + 2));
        l0.add("act", new GELU());
        l0.add("o", new Linear(backend(), 7, 9, false, seed + 3));
        Sequential l1 = layers.add("1", new Sequential());
        l1.add("q", new Linear(backend(), 9, 6, true, seed + 4));
        l1.add("act", new ReLU());
        l1.add("o", new Linear(backend(), 6, 9, true, seed + 5));
        root.add("head_q", new Linear(backend(), 9, 5, true, seed + 6));
        return root;
    }

    /** One Linear 13→11 (with bias) at path "layers.0.q": the layer whose gradients are checked. */
    public static Module single(long seed, int in, int out) {
        Sequential root = new Sequential();
        Sequential layers = root.add("layers", new Sequential());
        Sequential l0 = layers.add("0", new Sequential());
        l0.add("q", new Linear(backend(), in, out, true, seed));
        return root;
    }

    /** Every Linear of the model by path. */
    public static Map<String, Linear> linears(Module model) {
        Map<String, Linear> out = new LinkedHashMap<>();
        model.namedModules().forEach((p, m) -> {
            if (m instanceof Linear l) out.put(p, l);
        });
        return out;
    }

    /** The parameters that belong to the modules themselves (not to adapters), by full name. */
    public static Map<String, Parameter> baseParameters(Module model) {
        Map<String, Parameter> out = new LinkedHashMap<>();
        model.namedModules().forEach((path, m) -> m.localParameters().forEach((n, p) -> out.put(path.isEmpty() ? n : path + "." + n, p)));
        return out;
    }

    /** Copies of every parameter's values, by full name. */
    public static Map<String, float[]> snapshot(Map<String, Parameter> params) {
        Map<String, float[]> out = new LinkedHashMap<>();
        params.forEach((n, p) -> out.put(n, p.value().toFloatArray()));
        return out;
    }

    /** Overwrites every parameter of the named adapter with N(0, std²) values (never zero). */
    public static void randomizeAdapter(PeftModel pm, String adapter, SplittableRandom r, double std) {
        for (Linear l : pm.adaptedLayers(adapter).values()) {
            for (Parameter p : l.adapter(adapter).parameters()) p.value().copyFrom(normal(r, (int) p.numel(), std));
        }
        // Shared tensors once; one that is not saved is what its key gives (VeRA without save_projection) and stays so.
        Adapter any = pm.adaptedLayers(adapter).values().iterator().next().adapter(adapter);
        for (Parameter p : pm.sharedParameters(adapter).values()) {
            if (any.saved(p)) p.value().copyFrom(normal(r, (int) p.numel(), std));
        }
    }

    /** An adapter's parameters, shared ones included, as float64 arrays, by the names its checkpoints use ("lora_A.weight"). */
    public static Map<String, double[]> adapterValues(Adapter a) {
        Map<String, double[]> out = new LinkedHashMap<>();
        for (Parameter p : a.parameters()) out.put(p.name(), values(p));
        for (Parameter p : a.sharedParameters()) out.put(p.name(), values(p));
        return out;
    }

    /** The parameters (per layer and shared) that train while the adapter is active. */
    public static List<Parameter> trainedParameters(Adapter a) {
        List<Parameter> out = new ArrayList<>();
        for (Parameter p : a.parameters()) if (a.trainable(p)) out.add(p);
        for (Parameter p : a.sharedParameters()) if (a.trainable(p)) out.add(p);
        return out;
    }

    // ---- data ----

    /** {@code classes} Gaussian blobs in {@code features} dimensions: learnable, but not in one step. */
    public static Dataset blobs(int count, int features, int classes, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        double[][] centers = new double[classes][features];
        for (double[] c : centers) for (int j = 0; j < features; j++) c[j] = r.nextGaussian();
        float[] x = new float[count * features];
        int[] y = new int[count];
        for (int i = 0; i < count; i++) {
            y[i] = r.nextInt(classes);
            for (int j = 0; j < features; j++) x[i * features + j] = (float) (centers[y[i]][j] + 0.7 * r.nextGaussian());
        }
        return new Dataset(x, y, count, features, classes);
    }

    // ---- comparisons ----

    public static void assertBitEqual(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                fail(what + ": not bit-identical at [" + i + "]: expected " + expected[i] + ", got " + actual[i]);
            }
        }
    }

    /**
     * assertThrows that also checks the message: it must contain every fragment (the argument,
     * field or file at fault, and its value), so a refusal for the wrong reason does not pass.
     */
    public static <T extends Throwable> T assertThrowsNaming(Class<T> type, Executable call, String... fragments) {
        T e = assertThrows(type, call);
        String m = String.valueOf(e.getMessage());
        for (String f : fragments) assertTrue(m.contains(f), "'" + f + "' not in the message: " + m);
        return e;
    }

    /** True when some element differs (by bits). */
    public static boolean differs(float[] a, float[] b) {
        if (a.length != b.length) return true;
        for (int i = 0; i < a.length; i++) if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) return true;
        return false;
    }

    /** |actual − ref| ≤ bound elementwise (and finite); the message names the worst element. */
    public static void assertWithin(double[] ref, float[] actual, double[] bound, String what) {
        double[] a = toDouble(actual);
        assertWithin(ref, a, bound, what);
    }

    public static void assertWithin(double[] ref, double[] actual, double[] bound, String what) {
        assertEquals(ref.length, actual.length, what + ": length");
        int worst = -1;
        double worstRatio = 0;
        for (int i = 0; i < ref.length; i++) {
            if (!Double.isFinite(actual[i])) fail(what + ": non-finite value " + actual[i] + " at [" + i + "] (reference " + ref[i] + ")");
            double ratio = Math.abs(actual[i] - ref[i]) / bound[i];
            if (!(ratio <= 1) && (worst < 0 || ratio > worstRatio)) {
                worst = i;
                worstRatio = ratio;
            }
        }
        if (worst >= 0) {
            fail(what + ": worst at [" + worst + "]: got " + actual[worst] + ", reference " + ref[worst] + ", error "
                    + Math.abs(actual[worst] - ref[worst]) + " > bound " + bound[worst] + " (" + worstRatio + "x)");
        }
    }

    /** bound_i = factor·mag_i + floor (floor keeps exact-zero references comparable). */
    public static double[] bounds(double[] mag, double factor, double floor) {
        double[] b = new double[mag.length];
        for (int i = 0; i < mag.length; i++) b[i] = factor * mag[i] + floor;
        return b;
    }

    public static double maxAbs(double[] a) {
        double m = 0;
        for (double v : a) m = Math.max(m, Math.abs(v));
        return m;
    }

    public static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) m = Math.max(m, Math.abs(v));
        return m;
    }

    /** Normwise: max|a − b| ≤ rel·max|b|. */
    public static void assertRelClose(float[] expected, float[] actual, double rel, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        double scale = maxAbs(expected);
        double err = 0;
        int at = -1;
        for (int i = 0; i < expected.length; i++) {
            if (!Float.isFinite(actual[i])) fail(what + ": non-finite value at [" + i + "]");
            double e = Math.abs((double) expected[i] - actual[i]);
            if (e > err) {
                err = e;
                at = i;
            }
        }
        assertTrue(err <= rel * scale, what + ": max error " + err + " at [" + at + "] > " + rel + " x max|expected| " + scale);
    }

    // ---- float64 linear algebra, row-major ----

    /** a: [m, k] · bᵀ where b: [n, k] → [m, n]. */
    public static double[] mulT(double[] a, double[] b, int m, int k, int n) {
        double[] c = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int l = 0; l < k; l++) s += a[i * k + l] * b[j * k + l];
                c[i * n + j] = s;
            }
        }
        return c;
    }

    /** a: [m, k] · b: [k, n] → [m, n]. */
    public static double[] mul(double[] a, double[] b, int m, int k, int n) {
        double[] c = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int l = 0; l < k; l++) {
                double av = a[i * k + l];
                for (int j = 0; j < n; j++) c[i * n + j] += av * b[l * n + j];
            }
        }
        return c;
    }

    /** aᵀ · b with a: [k, m], b: [k, n] → [m, n]. */
    public static double[] tMul(double[] a, double[] b, int k, int m, int n) {
        double[] c = new double[m * n];
        for (int l = 0; l < k; l++) {
            for (int i = 0; i < m; i++) {
                double av = a[l * m + i];
                for (int j = 0; j < n; j++) c[i * n + j] += av * b[l * n + j];
            }
        }
        return c;
    }

    public static double[] scale(double s, double[] a) {
        double[] c = new double[a.length];
        for (int i = 0; i < a.length; i++) c[i] = s * a[i];
        return c;
    }

    public static double[] add(double[] a, double[] b) {
        double[] c = new double[a.length];
        for (int i = 0; i < a.length; i++) c[i] = a[i] + b[i];
        return c;
    }

    /** y: [t, n] plus bias: [n] on every row. */
    public static double[] addRows(double[] y, double[] bias, int t, int n) {
        double[] c = y.clone();
        for (int i = 0; i < t; i++) for (int j = 0; j < n; j++) c[i * n + j] += bias[j];
        return c;
    }

    public static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    /** One tensor of a safetensors file as floats. */
    public static float[] readF32(Path file, String key) throws java.io.IOException {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            return f.readF32(key);
        }
    }
}
