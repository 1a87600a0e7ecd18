package io.peft4j.variants.krona;

import static io.peft4j.variants.TestSupport.U;
import static io.peft4j.variants.TestSupport.abs;
import static io.peft4j.variants.TestSupport.add;
import static io.peft4j.variants.TestSupport.adapterValues;
import static io.peft4j.variants.TestSupport.assertBitEqual;
import static io.peft4j.variants.TestSupport.assertWithin;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.bounds;
import static io.peft4j.variants.TestSupport.dot;
import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.mulT;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.rng;
import static io.peft4j.variants.TestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.nn.Linear;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.Sequential;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.PeftModel;
import io.peft4j.variants.TestSupport;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * KronA's residual form (square layers, which the contract suite's models lack), explicit factor
 * shapes, and the errors for shapes that cannot work.
 */
class KronaTest {
    private static final int D = 12;

    /** One square Linear 12→12 at "q". */
    static Module square(long seed) {
        Sequential root = new Sequential();
        root.add("q", new Linear(backend(), D, D, true, seed));
        return root;
    }

    static List<KronaConfig> residualConfigs() {
        return List.of(
                KronaConfig.builder().scale(1.5f).residual(true).targetModules("q").build(),
                KronaConfig.builder().scale(0.5f).residual(true).residualScale(0.75f).aShape(4, 3).targetModules("q").build(),
                KronaConfig.builder().scale(2f).residual(true).trainResidualScale(true).aShape(2, 6).targetModules("q").build());
    }

    static KronaReference reference(KronaConfig c) {
        return new KronaReference(c.aRows(), c.aCols(), c.decomposeFactor(), c.scale(), c.residual(), c.residualScale(), c.trainResidualScale());
    }

    /** Forward, every gradient (accumulated onto nonzero values) and ∂x against float64; the reference against central differences. */
    @Test
    void residualFormMatchesTheFloat64ReferenceAndItsFiniteDifferences() {
        for (KronaConfig cfg : residualConfigs()) {
            SplittableRandom r = rng("krona residual " + cfg);
            PeftModel pm = PeftModel.wrap(square(3), cfg, backend(), 5);
            TestSupport.randomizeAdapter(pm, "default", r, 0.5);
            Linear l = pm.adaptedLayers("default").get("q");
            KronaReference ref = reference(cfg);
            int t = 5;
            float[] x = normal(r, t * D, 1), g = normal(r, t * D, 1);
            List<Parameter> params = l.adapter("default").parameters();
            List<float[]> g0 = new ArrayList<>();
            for (Parameter p : params) {
                float[] v = normal(r, (int) p.numel(), 0.1);
                p.grad().copyFrom(v);
                g0.add(v);
            }
            float[] y, dx;
            try (StepContext ctx = new StepContext(backend())) {
                TestSupport.begin(ctx, true, 1);
                y = pm.forward(ctx, ctx.allocate(t, D).copyFrom(x)).toFloatArray();
                dx = pm.backward(ctx, ctx.allocate(t, D).copyFrom(g), true).toFloatArray();
            }
            Map<String, double[]> p = adapterValues(l.adapter("default"));
            Map<String, double[]> pAbs = new java.util.LinkedHashMap<>();
            p.forEach((k, v) -> pAbs.put(k, abs(v)));
            double[] w0 = TestSupport.values(l.weight()), b0 = TestSupport.values(l.bias()), xd = toDouble(x), gd = toDouble(g);
            double gam = 2.0 * (2 * D + 32) * U;
            double[] yRef = add(TestSupport.addRows(mulT(xd, w0, t, D, D), b0, t, D), ref.forward(p, xd, t, D, D));
            double[] yMag = add(TestSupport.addRows(mulT(abs(xd), abs(w0), t, D, D), abs(b0), t, D), ref.forward(pAbs, abs(xd), t, D, D));
            assertWithin(yRef, y, bounds(yMag, gam, 0), cfg + ": forward");
            Map<String, double[]> grads = ref.backward(p, xd, gd, t, D, D), mags = ref.backward(pAbs, abs(xd), abs(gd), t, D, D);
            for (int i = 0; i < params.size(); i++) {
                String n = params.get(i).name();
                double[] want = add(toDouble(g0.get(i)), grads.get(n));
                assertWithin(want, params.get(i).grad().toFloatArray(), add(bounds(mags.get(n), gam, 0), bounds(abs(want), 2 * U, 0)), cfg + ": ∂" + n);
            }
            assertWithin(add(mul(gd, w0, t, D, D), grads.get("input")), dx,
                    bounds(add(mul(abs(gd), abs(w0), t, D, D), mags.get("input")), gam, 0), cfg + ": ∂x");
            // The reference's gradients are its forward's derivatives (it is linear in each entry: step 1e-3 is exact).
            double h = 1e-3;
            for (String n : p.keySet()) {
                double[] th = p.get(n), fd = new double[th.length];
                for (int i = 0; i < th.length; i++) {
                    double keep = th[i];
                    th[i] = keep + h;
                    double lp = dot(gd, ref.forward(p, xd, t, D, D));
                    th[i] = keep - h;
                    double lm = dot(gd, ref.forward(p, xd, t, D, D));
                    th[i] = keep;
                    fd[i] = (lp - lm) / (2 * h);
                }
                double[] an = grads.get(n);
                assertWithin(an, fd, bounds(new double[an.length], 0, 1e-7 * Math.max(1, TestSupport.maxAbs(an))), cfg + ": differences of ∂" + n);
            }
        }
    }

    @Test
    void residualMergeAddsTheIdentityAndUnmergeRestores(@TempDir Path dir) {
        for (KronaConfig cfg : residualConfigs()) {
            SplittableRandom r = rng("krona merge " + cfg);
            PeftModel pm = PeftModel.wrap(square(3), cfg, backend(), 5);
            TestSupport.randomizeAdapter(pm, "default", r, 0.5);
            Linear l = pm.adaptedLayers("default").get("q");
            float[] w0 = l.weight().value().toFloatArray();
            float[] x = normal(r, 4 * D, 1);
            float[] y = TestSupport.forward(pm, x, 4);
            pm.save(dir.resolve("c" + cfg.hashCode()));
            assertBitEqual(y, TestSupport.forward(PeftModel.load(square(3), dir.resolve("c" + cfg.hashCode())), x, 4), cfg + ": save/load");
            Map<String, double[]> p = adapterValues(l.adapter("default"));
            double[] delta = reference(cfg).deltaWeight(p, D, D);
            pm.merge();
            double[] want = add(toDouble(w0), delta);
            Map<String, double[]> pAbs = new java.util.LinkedHashMap<>();
            p.forEach((k, v) -> pAbs.put(k, abs(v)));
            assertWithin(want, l.weight().value().toFloatArray(), bounds(add(abs(toDouble(w0)), reference(cfg).deltaWeight(pAbs, D, D)), 4 * U, 0),
                    cfg + ": merged W0 + s·kron(A, B) + c·I");
            TestSupport.assertRelClose(y, TestSupport.forward(pm, x, 4), 2e-6, cfg + ": merged output");
            pm.unmerge();
            assertBitEqual(w0, l.weight().value().toFloatArray(), cfg + ": unmerge restores W0");
        }
    }

    @Test
    void trainableResidualStartsAtZeroSoTheModelStartsUnchanged() {
        KronaConfig cfg = KronaConfig.builder().residual(true).trainResidualScale(true).targetModules("q").build();
        PeftModel pm = PeftModel.wrap(square(3), cfg, backend(), 5);
        var names = pm.adaptedLayers("default").get("q").adapter("default").parameters().stream().map(Parameter::name).toList();
        assertEquals(List.of("krona_A", "krona_B", "krona_residual_scale"), names);
        float[] x = normal(rng("krona zero"), 3 * D, 1);
        assertBitEqual(TestSupport.forward(square(3), x, 3), TestSupport.forward(pm, x, 3), "trainable residual scale and B start at 0");
        KronaConfig fixed = KronaConfig.builder().residual(true).targetModules("q").build();
        float[] yFixed = TestSupport.forward(PeftModel.wrap(square(3), fixed, backend(), 5), x, 3);
        float[] base = TestSupport.forward(square(3), x, 3);
        for (int i = 0; i < x.length; i++) assertEquals(base[i] + x[i], yFixed[i], 1e-5, "fixed residual: the output is base + x at init");
    }

    @Test
    void shapesThatCannotWorkAreRefusedNamingTheLayer() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PeftModel.wrap(TestSupport.single(1, 13, 11), KronaConfig.builder().residual(true).targetModules("q").build()));
        assertTrue(e.getMessage().contains("square") && e.getMessage().contains("layers.0.q") && e.getMessage().contains("[11, 13]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> PeftModel.wrap(square(1), KronaConfig.builder().aShape(5, 3).targetModules("q").build()));
        assertTrue(e.getMessage().contains("A [5, 3]") && e.getMessage().contains("'q'"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> KronaConfig.builder().scale(0).targetModules("q").build());
        assertThrows(IllegalArgumentException.class, () -> KronaConfig.builder().init("xavier").targetModules("q").build());
    }

    @Test
    void explicitAndDefaultFactorShapes() {
        PeftModel pm = PeftModel.wrap(square(1), KronaConfig.builder().aShape(1, 12).targetModules("q").build(), backend(), 1);
        KronaAdapter a = (KronaAdapter) pm.adaptedLayers("default").get("q").adapter("default");
        assertEquals("[1, 12]", java.util.Arrays.toString(a.kronaA().value().shape()), "A 1×n");
        assertEquals("[12, 1]", java.util.Arrays.toString(a.kronaB().value().shape()), "B n×1");
        KronaAdapter d = (KronaAdapter) KronaConfig.builder().targetModules("q").build()
                .create(new Linear(backend(), 4096, 3072, false, 1), "default", backend(), 1);
        assertEquals("[48, 64]", java.util.Arrays.toString(d.kronaA().value().shape()), "d_in 4096 → 64·64, d_out 3072 → 48·64");
        assertEquals("[64, 64]", java.util.Arrays.toString(d.kronaB().value().shape()));
        assertEquals(48 * 64 + 64 * 64, d.trainableParameterCount());
    }
}
