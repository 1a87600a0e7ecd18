package io.peft4j.train;

import static io.peft4j.variants.TestSupport.U;
import static io.peft4j.variants.TestSupport.assertBitEqual;
import static io.peft4j.variants.TestSupport.assertThrowsNaming;
import static io.peft4j.variants.TestSupport.assertWithin;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.rng;
import static io.peft4j.variants.TestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.peft4j.nn.Parameter;
import io.peft4j.tensor.Tensor;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/** AdamW and SGD through the Optimizer API against float64 PyTorch semantics, and exact resume of their state. */
class OptimizerTest {
    private static final int[] SIZES = {37, 5};   // "w" (decayed) and "b" (not decayed)

    /** Two parameters, "w" decayed and "b" not (a bias), with random values. */
    private static Map<String, Parameter> params(SplittableRandom r) {
        Map<String, Parameter> m = new LinkedHashMap<>();
        m.put("w", new Parameter("weight", Tensor.of(normal(r, SIZES[0], 1.0), SIZES[0]), true, true));
        m.put("b", new Parameter("bias", Tensor.of(normal(r, SIZES[1], 1.0), SIZES[1]), true, false));
        return m;
    }

    private static Map<String, Parameter> copy(Map<String, Parameter> src) {
        Map<String, Parameter> m = new LinkedHashMap<>();
        src.forEach((k, p) -> m.put(k, new Parameter(p.name(), p.value().copy(), true, p.decay())));
        return m;
    }

    private static List<Map<String, float[]>> gradients(SplittableRandom r, int steps) {
        return java.util.stream.IntStream.range(0, steps).mapToObj(i -> {
            Map<String, float[]> g = new LinkedHashMap<>();
            g.put("w", normal(r, SIZES[0], 1.0));
            g.put("b", normal(r, SIZES[1], 1.0));
            return g;
        }).toList();
    }

    private static void setGrads(Map<String, Parameter> ps, Map<String, float[]> g) {
        ps.forEach((k, p) -> p.grad().copyFrom(g.get(k)));
    }

    @Test
    void adamWMatchesPyTorchInFloat64() {
        SplittableRandom r = rng("adamw");
        float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f;
        Map<String, Parameter> ps = params(r);
        // p, m, v in float64, plus |.|-magnitudes of m (its update cancels) for the fp32 error bounds.
        Map<String, double[]> p = new LinkedHashMap<>(), m = new LinkedHashMap<>(), v = new LinkedHashMap<>(), mMag = new LinkedHashMap<>();
        ps.forEach((k, prm) -> {
            p.put(k, toDouble(prm.value().toFloatArray()));
            m.put(k, new double[(int) prm.numel()]);
            v.put(k, new double[(int) prm.numel()]);
            mMag.put(k, new double[(int) prm.numel()]);
        });
        List<Map<String, float[]>> grads = gradients(r, 4);
        try (AdamW opt = new AdamW(b1, b2, eps, wd)) {
            for (int t = 1; t <= grads.size(); t++) {
                Map<String, float[]> g = grads.get(t - 1);
                setGrads(ps, g);
                opt.step(backend(), ps, lr);
                assertEquals(t, opt.steps());
                for (String k : ps.keySet()) {
                    double decay = ps.get(k).decay() ? wd : 0;
                    double[] pk = p.get(k), mk = m.get(k), vk = v.get(k), mm = mMag.get(k);
                    double bc1 = 1 - Math.pow(b1, t), bc2 = 1 - Math.pow(b2, t);
                    double[] bound = new double[pk.length], mBound = new double[pk.length], vBound = new double[pk.length];
                    for (int i = 0; i < pk.length; i++) {
                        double gi = g.get(k)[i];
                        pk[i] *= 1 - lr * decay;
                        mk[i] = b1 * mk[i] + (1 - b1) * gi;
                        mm[i] = b1 * mm[i] + (1 - b1) * Math.abs(gi);
                        vk[i] = b2 * vk[i] + (1 - b2) * gi * gi;
                        double denom = Math.sqrt(vk[i]) / Math.sqrt(bc2) + eps;
                        pk[i] -= lr / bc1 * mk[i] / denom;
                        double err = 8 * U * t;   // relative rounding accumulated per step in m, v and the update
                        mBound[i] = err * mm[i];
                        vBound[i] = err * vk[i];
                        bound[i] = 4 * U * t * Math.abs(pk[i]) + lr / bc1 * (mBound[i] + err * Math.abs(mk[i])) / denom;
                    }
                    assertWithin(pk, ps.get(k).value().toFloatArray(), bound, "AdamW step " + t + " '" + k + "'");
                    Map<String, Tensor> state = opt.state();
                    assertWithin(mk, state.get(k + ".exp_avg").toFloatArray(), mBound, "exp_avg of '" + k + "' at step " + t);
                    assertWithin(vk, state.get(k + ".exp_avg_sq").toFloatArray(), vBound, "exp_avg_sq of '" + k + "' at step " + t);
                }
            }
        }
    }

    @Test
    void sgdMatchesPyTorchInFloat64() {
        for (boolean nesterov : new boolean[] {false, true}) {
            for (float momentum : new float[] {0f, 0.9f}) {
                if (nesterov && momentum == 0) continue;
                SplittableRandom r = rng("sgd " + nesterov + " " + momentum);
                float lr = 0.05f, wd = 0.01f;
                Map<String, Parameter> ps = params(r);
                Map<String, double[]> p = new LinkedHashMap<>(), buf = new LinkedHashMap<>();
                ps.forEach((k, prm) -> p.put(k, toDouble(prm.value().toFloatArray())));
                List<Map<String, float[]>> grads = gradients(r, 4);
                try (Sgd opt = new Sgd(momentum, wd, nesterov)) {
                    for (int t = 1; t <= grads.size(); t++) {
                        setGrads(ps, grads.get(t - 1));
                        opt.step(backend(), ps, lr);
                        for (String k : ps.keySet()) {
                            double decay = ps.get(k).decay() ? wd : 0;
                            double[] pk = p.get(k), bk = buf.computeIfAbsent(k, x -> null);
                            boolean first = bk == null;
                            if (first) {
                                bk = new double[pk.length];
                                buf.put(k, bk);
                            }
                            double[] bound = new double[pk.length];
                            for (int i = 0; i < pk.length; i++) {
                                double d = grads.get(t - 1).get(k)[i] + decay * pk[i];
                                if (momentum != 0) {
                                    bk[i] = first ? d : momentum * bk[i] + d;
                                    d = nesterov ? d + momentum * bk[i] : bk[i];
                                }
                                pk[i] -= lr * d;
                                bound[i] = 4 * U * Math.abs(pk[i]) + 16 * U * lr * t * (1 + Math.abs(d));
                            }
                            assertWithin(pk, ps.get(k).value().toFloatArray(), bound,
                                    "SGD momentum " + momentum + (nesterov ? " nesterov" : "") + " step " + t + " '" + k + "'");
                        }
                        assertEquals(momentum == 0 ? 0 : 2, opt.state().size(), "momentum buffers");
                    }
                }
            }
        }
    }

    /** k steps, state() to arrays, a new optimizer loadState()s them and continues: identical to never stopping. */
    private static void resumeIsExact(String what, Supplier<Optimizer> make, float lr) {
        SplittableRandom r = rng("resume " + what);
        Map<String, Parameter> straight = params(r), resumed = copy(straight);
        List<Map<String, float[]>> grads = gradients(r, 5);
        int k = 2;
        try (Optimizer a = make.get(); Optimizer b = make.get(); Optimizer c = make.get()) {
            for (Map<String, float[]> g : grads) {
                setGrads(straight, g);
                a.step(backend(), straight, lr);
            }
            for (int t = 0; t < k; t++) {
                setGrads(resumed, grads.get(t));
                b.step(backend(), resumed, lr);
            }
            Map<String, float[]> saved = new LinkedHashMap<>();
            b.state().forEach((n, tensor) -> saved.put(n, tensor.toFloatArray()));
            c.loadState(saved, b.steps());
            assertEquals(k, c.steps());
            for (int t = k; t < grads.size(); t++) {
                setGrads(resumed, grads.get(t));
                c.step(backend(), resumed, lr);
            }
            assertEquals(a.steps(), c.steps());
            straight.forEach((n, p) -> assertBitEqual(p.value().toFloatArray(), resumed.get(n).value().toFloatArray(), what + ": '" + n + "' after resume"));
            a.state().forEach((n, t) -> assertBitEqual(t.toFloatArray(), c.state().get(n).toFloatArray(), what + ": state " + n));
        }
    }

    @Test
    void adamWStateRoundTripResumesExactly() {
        resumeIsExact("AdamW", () -> new AdamW(0.9f, 0.999f, 1e-8f, 0.05f), 1e-2f);
    }

    @Test
    void sgdStateRoundTripResumesExactly() {
        resumeIsExact("SGD nesterov", () -> new Sgd(0.9f, 0.01f, true), 0.05f);
        resumeIsExact("SGD momentum", () -> new Sgd(0.5f, 0f, false), 0.05f);
    }

    @Test
    void badStateAndSettingsAreRefused() {
        try (AdamW a = AdamW.defaults()) {
            assertThrowsNaming(IllegalArgumentException.class, () -> a.loadState(Map.of("w.momentum_buffer", new float[1]), 1),
                    "unexpected AdamW state 'w.momentum_buffer'");
            assertThrowsNaming(IllegalArgumentException.class, () -> a.loadState(Map.of("w.exp_avg", new float[1]), 1),
                    "AdamW state 'w.exp_avg' has no 'w.exp_avg_sq'");
            assertThrowsNaming(IllegalArgumentException.class, () -> a.loadState(Map.of("w.exp_avg_sq", new float[1]), 1),
                    "AdamW state 'w.exp_avg_sq' has no 'w.exp_avg'");
        }
        try (Sgd s = new Sgd(0.9f, 0, false)) {
            assertThrowsNaming(IllegalArgumentException.class, () -> s.loadState(Map.of("w.exp_avg", new float[1]), 1),
                    "unexpected SGD state 'w.exp_avg'");
        }
        assertThrowsNaming(IllegalArgumentException.class, () -> new AdamW(1f, 0.999f, 1e-8f, 0), "betas", "got 1.0, 0.999");
        assertThrowsNaming(IllegalArgumentException.class, () -> new AdamW(0.9f, 0.999f, 0f, 0), "eps=0.0");
        assertThrowsNaming(IllegalArgumentException.class, () -> new AdamW(0.9f, 0.999f, 1e-8f, -1), "weightDecay=-1.0");
        assertThrowsNaming(IllegalArgumentException.class, () -> new Sgd(0f, 0f, true), "Nesterov momentum needs momentum > 0");
        assertThrowsNaming(IllegalArgumentException.class, () -> new Sgd(-0.1f, 0f, false), "momentum=-0.1");
    }
}
