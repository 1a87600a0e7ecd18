package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.fail;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Softmax cross-entropy and MSE against the reference (gradients proven in {@link ReferenceTest}). */
class LossTest {
    static Stream<Arguments> xentCases() {
        float[] scales = {1f, -0.5f, 3f};
        List<Arguments> out = new ArrayList<>();
        int i = 0;
        for (int[] s : SHAPES) out.add(Arguments.of(s[0], s[1], scales[i++ % scales.length]));
        out.add(Arguments.of(257, 10, 1f));
        // One row above two threads' grain: on >= 2 cores the team is larger than the rows (backward,
        // parallel_rows) and than the chunks (forward, deterministic_sum); native/cpu/internal.h.
        out.add(Arguments.of(1, 70001, 0.5f));
        return out.stream();
    }

    @ParameterizedTest(name = "t={0} c={1} scale={2}")
    @MethodSource("xentCases")
    void softmaxXentMatchesReference(int t, int k, float scale) {
        Case c = newCase("softmaxXent " + t + "x" + k + " scale=" + scale);
        float[] logits = c.normal(t * k, 3);
        int[] labels = c.ints(t, k);
        double[] ld = toDouble(logits);
        try (Scope s = new Scope()) {
            Tensor tl = s.of(logits, t, k), lab = s.ints(labels, t), probs = s.poisoned(t, k);
            float loss = Backend.cpu().softmaxXentForward(tl, lab, probs);
            double lossRef = Reference.xentLoss(t, k, ld, labels);
            // Each row's loss is log Σe + max − x_label in fp32: a few u times |logits| (<~ 20 here).
            if (!(Math.abs(loss - lossRef) <= 1e-5 * (1 + Math.abs(lossRef)))) {
                fail(c.label() + ": loss " + loss + ", reference " + lossRef);
            }
            // exp to a few ulp, its argument x − max rounded (relative ~|x − max|·u in the result).
            double[] pRef = Reference.softmax(t, k, ld);
            assertWithin(c, "probs", probs.toFloatArray(), pRef, i -> 1e-5 * pRef[i] + 1e-38);

            float[] p = toFloat(pRef);
            Tensor dl = s.poisoned(t, k);
            Backend.cpu().softmaxXentBackward(s.of(p, t, k), lab, scale, dl);
            double[] dRef = Reference.xentBackward(t, k, toDouble(p), labels, scale);
            // scale·(p − onehot)/t in a few roundings: 4u of |scale|·(p + onehot)/t.
            assertWithin(c, "dlogits", dl.toFloatArray(), dRef,
                    i -> 4 * U * Math.abs(scale) * (p[i] + (i % k == labels[i / k] ? 1 : 0)) / t + 1e-45);
        }
    }

    /**
     * Rows the normal cases never hold (native/cpu/loss.cpp, exp_f in internal.h), c = 7 and 33 so
     * both the vector and the tail loops see them: row 0 spans ±600, so most x − max fall below
     * ln(2^-126) and exp_f returns 0 (the reference's p there is below 2^-126 too); row 1 holds a NaN
     * and row 2 only −∞ (its max is taken as 0): both rows' probabilities and the loss are NaN, as in
     * the reference. The other rows must be unaffected. probs is poisoned with 7.5, not NaN, here.
     */
    @ParameterizedTest(name = "t=5 c={0}")
    @ValueSource(ints = {7, 33})
    void softmaxXentWideNaNAndInfiniteRows(int k) {
        int t = 5;
        Case c = newCase("softmaxXent special rows c=" + k);
        float[] logits = c.normal(t * k, 3);
        for (int j = 0; j < k; j++) logits[j] *= 200;
        logits[k + k / 2] = Float.NaN;
        for (int j = 0; j < k; j++) logits[2 * k + j] = Float.NEGATIVE_INFINITY;
        int[] labels = c.ints(t, k);
        try (Scope s = new Scope()) {
            float[] seven = new float[t * k];
            Arrays.fill(seven, 7.5f);
            Tensor lab = s.ints(labels, t), probs = s.of(seven, t, k);
            float loss = Backend.cpu().softmaxXentForward(s.of(logits, t, k), lab, probs);
            double lossRef = Reference.xentLoss(t, k, toDouble(logits), labels);
            if (!Double.isNaN(lossRef) || !Float.isNaN(loss)) fail(c.label() + ": loss " + loss + ", reference " + lossRef);
            double[] pRef = Reference.softmax(t, k, toDouble(logits));
            float[] got = probs.toFloatArray();
            for (int i = 0; i < 3 * k; i++) {
                if (i >= k && !(Float.isNaN(got[i]) && Double.isNaN(pRef[i])))
                    fail(c.label() + ": probs[" + i + "] = " + got[i] + ", reference " + pRef[i] + ", both must be NaN");
            }
            // Each finite row on its own: its loss, and its probabilities as in softmaxXentMatchesReference
            // (plus 2^-126 for values exp_f flushes to zero).
            for (int row : new int[] {0, 3, 4}) {
                float[] x = Arrays.copyOfRange(logits, row * k, (row + 1) * k);
                double[] rowRef = Reference.softmax(1, k, toDouble(x));
                double rowLoss = Reference.xentLoss(1, k, toDouble(x), new int[] {labels[row]});
                float[] rowGot = Arrays.copyOfRange(got, row * k, (row + 1) * k);
                assertWithin(c, "probs row " + row, rowGot, rowRef, i -> 1e-5 * rowRef[i] + 0x1p-126);
                Tensor one = s.poisoned(1, k);
                float l1 = Backend.cpu().softmaxXentForward(s.of(x, 1, k), s.ints(new int[] {labels[row]}, 1), one);
                if (!(Math.abs(l1 - rowLoss) <= 1e-5 * (1 + Math.abs(rowLoss))))
                    fail(c.label() + ": row " + row + " loss " + l1 + ", reference " + rowLoss);
                assertWithin(c, "probs of row " + row + " alone", one.toFloatArray(), rowRef, i -> 1e-5 * rowRef[i] + 0x1p-126);
            }
        }
    }

    static Stream<Arguments> mseCases() {
        List<Arguments> out = new ArrayList<>();
        for (int n : SIZES) {
            out.add(Arguments.of(n, true));
            out.add(Arguments.of(n, false));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "n={0} grad={1}")
    @MethodSource("mseCases")
    void mseMatchesReference(int n, boolean withGrad) {
        Case c = newCase("mse n=" + n + " grad=" + withGrad);
        float[] pred = c.normal(n), target = c.normal(n);
        long[] shape = ElementwiseTest.shapeOf(n);
        try (Scope s = new Scope()) {
            Tensor g = withGrad ? s.poisoned(shape) : null;
            float loss = Backend.cpu().mse(s.of(pred, shape), s.of(target, shape), g);
            double ref = Reference.mseLoss(toDouble(pred), toDouble(target));
            // A sum of n positive terms: relative 1e-6·(4 + √n) as for a GEMM of inner size n.
            assertNormwise(c, "loss", new float[] {loss}, new double[] {ref}, gemmTol(n));
            if (withGrad) {
                double[] gRef = Reference.mseGrad(toDouble(pred), toDouble(target));
                // 2·(p − t)/n: at most three roundings.
                assertWithin(c, "g", g.toFloatArray(), gRef, i -> 4 * U * Math.abs(gRef[i]));
            }
        }
    }
}
