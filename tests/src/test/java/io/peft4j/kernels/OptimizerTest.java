package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.fail;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * AdamW and SGD (PyTorch semantics) over several steps with a fresh gradient each step, and sumsq.
 * Each step is compared with the double reference applied to the kernel's own fp32 state before
 * that step, so the per-step bounds stay tight (stated per assertion).
 */
class OptimizerTest {
    static Stream<Arguments> adamwCases() {
        List<Arguments> out = new ArrayList<>();
        // Gradients of size 1e-2 with eps = 1e-3, so eps's place in the denominator matters.
        for (int n : SIZES) out.add(Arguments.of(n, 1e-2f, 0.9f, 0.999f, 1e-3f, 0.1f, 1L, 1e-2));
        out.add(Arguments.of(257, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1L, 1.0));
        out.add(Arguments.of(33, 5e-2f, 0.5f, 0.75f, 1e-4f, 0.25f, 1L, 1e-1));
        out.add(Arguments.of(33, 1e-2f, 0.9f, 0.999f, 1e-6f, 0.01f, 998L, 1e-2));
        return out.stream();
    }

    @ParameterizedTest(name = "n={0} lr={1} betas=({2},{3}) eps={4} wd={5} from step {6}")
    @MethodSource("adamwCases")
    void adamwMatchesReferenceOverSeveralSteps(int n, float lr, float b1, float b2, float eps, float wd, long first,
                                               double gradScale) {
        Case c = newCase("adamwStep n=" + n + " lr=" + lr + " b1=" + b1 + " b2=" + b2 + " eps=" + eps + " wd=" + wd
                + " first=" + first);
        long[] shape = ElementwiseTest.shapeOf(n);
        float[] p0 = c.normal(n), m0 = new float[n], v0 = new float[n];
        if (first > 1) {
            m0 = c.normal(n, gradScale);
            for (int i = 0; i < n; i++) v0[i] = (float) Math.pow(c.normal(1, gradScale)[0], 2);
        }
        try (Scope s = new Scope()) {
            Tensor p = s.of(p0, shape), m = s.of(m0, shape), v = s.of(v0, shape), g = s.of(new float[n], shape);
            for (long step = first; step < first + 4; step++) {
                float[] grad = c.normal(n, gradScale);
                g.copyFrom(grad);
                double[] pr = toDouble(p.toFloatArray()), mr = toDouble(m.toFloatArray()), vr = toDouble(v.toFloatArray());
                double[] pBefore = pr.clone(), mBefore = mr.clone(), vBefore = vr.clone();
                Reference.adamw(pr, toDouble(grad), mr, vr, lr, b1, b2, eps, wd, step);
                Backend.cpu().adamwStep(p, g, m, v, lr, b1, b2, eps, wd, step);

                String at = " after step " + step;
                // m, v: three roundings each: 4u of the magnitudes of their two terms.
                assertWithin(c, "m" + at, m.toFloatArray(), mr,
                        i -> 4 * U * (Math.abs(b1 * mBefore[i]) + Math.abs((1 - (double) b1) * grad[i])));
                assertWithin(c, "v" + at, v.toFloatArray(), vr,
                        i -> 5 * U * (b2 * vBefore[i] + (1 - (double) b2) * grad[i] * grad[i]));
                // param: the decay product (4u of |p|), plus the update lr·m̂/(√v̂ + eps) to 16u of the
                // size of its terms (m is itself a sum of two terms that may cancel).
                double bc1 = 1 - Math.pow(b1, step), bc2 = 1 - Math.pow(b2, step);
                assertWithin(c, "param" + at, p.toFloatArray(), pr, i -> 4 * U * Math.abs(pBefore[i])
                        + 16 * U * lr * (Math.abs(b1 * mBefore[i]) + Math.abs((1 - (double) b1) * grad[i])) / bc1
                        / (Math.sqrt(vr[i] / bc2) + eps) + 1e-45);
            }
        }
    }

    static Stream<Arguments> sgdCases() {
        List<Arguments> out = new ArrayList<>();
        for (int n : SIZES) {
            out.add(Arguments.of(n, 0f, false, 0f, "none"));
            out.add(Arguments.of(n, 0f, false, 0.01f, "unused"));
            out.add(Arguments.of(n, 0.9f, false, 0f, "first"));
            out.add(Arguments.of(n, 0.9f, true, 0.01f, "first"));
            out.add(Arguments.of(n, 0.9f, false, 0.01f, "given"));
            out.add(Arguments.of(n, 0.9f, true, 0f, "given"));
        }
        return out.stream();
    }

    /**
     * buf: "none" = null (momentum 0); "unused" = NaN-filled with momentum 0, must stay untouched;
     * "first" = NaN-filled, first = true on the first step (buf = g' then); "given" = random
     * momentum from an earlier step, first = false throughout.
     */
    @ParameterizedTest(name = "n={0} momentum={1} nesterov={2} wd={3} buf={4}")
    @MethodSource("sgdCases")
    void sgdMatchesReferenceOverSeveralSteps(int n, float momentum, boolean nesterov, float wd, String bufMode) {
        Case c = newCase("sgdStep n=" + n + " momentum=" + momentum + " nesterov=" + nesterov + " wd=" + wd + " buf=" + bufMode);
        long[] shape = ElementwiseTest.shapeOf(n);
        float lr = 0.05f;
        try (Scope s = new Scope()) {
            Tensor p = s.of(c.normal(n), shape), g = s.of(new float[n], shape);
            Tensor buf = switch (bufMode) {
                case "none" -> null;
                case "unused", "first" -> s.poisoned(shape);
                default -> s.of(c.normal(n, 0.5), shape);
            };
            for (int step = 0; step < 3; step++) {
                boolean first = bufMode.equals("first") && step == 0;
                float[] grad = c.normal(n);
                g.copyFrom(grad);
                double[] pr = toDouble(p.toFloatArray());
                double[] br = buf == null ? new double[n] : toDouble(buf.toFloatArray());
                double[] pBefore = pr.clone(), bBefore = br.clone();
                Reference.sgd(pr, toDouble(grad), br, lr, momentum, wd, nesterov, first);
                Backend.cpu().sgdStep(p, g, buf, lr, momentum, wd, nesterov, first);

                // Magnitudes of the terms each output is built from; every output is a few roundings of them.
                double[] aBuf = new double[n], aUpd = new double[n];
                for (int i = 0; i < n; i++) {
                    double agp = Math.abs(grad[i]) + wd * Math.abs(pBefore[i]);
                    aBuf[i] = momentum == 0 ? 0 : first ? agp : momentum * Math.abs(bBefore[i]) + agp;
                    aUpd[i] = momentum == 0 ? agp : nesterov ? agp + momentum * aBuf[i] : aBuf[i];
                }
                String at = " after step " + step;
                assertWithin(c, "param" + at, p.toFloatArray(), pr, i -> 6 * U * (Math.abs(pBefore[i]) + lr * aUpd[i]));
                if (momentum != 0) {
                    assertWithin(c, "buf" + at, buf.toFloatArray(), br, i -> 4 * U * aBuf[i]);
                } else if (buf != null) {
                    for (float b : buf.toFloatArray()) {
                        if (!Float.isNaN(b)) fail(c.label() + ": buf was written although momentum == 0 (got " + b + ")");
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "n={0}")
    @MethodSource("io.peft4j.kernels.Sizes#sizes")
    void sumsqIsAccumulatedInDouble(int n) {
        Case c = newCase("sumsq n=" + n);
        float[] x = c.normal(n, 3);
        try (Scope s = new Scope()) {
            float got = Backend.cpu().sumsq(s.of(x, ElementwiseTest.shapeOf(n)));
            double ref = Reference.sumsq(toDouble(x));
            // A double sum (relative error <= n·2^-53) rounded once to fp32.
            assertWithin(c, "sumsq", new float[] {got}, new double[] {ref}, i -> (U + n * 0x1p-53) * ref * 1.0001);
        }
    }
}
