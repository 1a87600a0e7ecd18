package io.peft4j.variants;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A method's math in float64, written from docs/algorithms.md independently of the code under
 * test. Parameters come by the names the method's checkpoints use ("lora_A.weight"); all arrays
 * are row-major: x [t, dIn], g and the delta output [t, dOut], ΔW [dOut, dIn].
 *
 * <p>The contract suite also evaluates these methods on absolute values (|x|, |params|, |g|) to get
 * the magnitudes its fp32 error bounds scale with; for methods built from sums of products (every
 * LoRA-family method) that is the classic γ_k·Σ|a||b| bound.
 *
 * <p>The contract checks work on the whole adapted layer through the {@code layer…} methods and
 * {@link #merged}: for an additive method their defaults are x·W0ᵀ + b0 plus its delta and
 * W0 + ΔW. A method that rewrites the layer's input or output (DoRA, (IA)³, SSF, BitFit, Houlsby)
 * overrides them instead: see {@link LayerAdapterReference}.
 */
public interface AdapterReference {
    /** Key of the input gradient (the adapter's part of ∂L/∂x) in {@link #backward}'s result. */
    String INPUT = "input";

    /** The weight change ΔW the adapter applies, [dOut, dIn]. */
    double[] deltaWeight(Map<String, double[]> p, int dIn, int dOut);

    /** What the adapter adds to the base output for input x (no dropout), [t, dOut]. */
    double[] forward(Map<String, double[]> p, double[] x, int t, int dIn, int dOut);

    /**
     * Gradients of L = Σ g ⊙ forward(x) with respect to every parameter (by name) and to x
     * (under {@link #INPUT}).
     */
    Map<String, double[]> backward(Map<String, double[]> p, double[] x, double[] g, int t, int dIn, int dOut);

    /** Trainable parameters the method adds to one dOut×dIn layer. */
    long trainableParameters(int dIn, int dOut);

    /**
     * Whether the fp32 error bounds may come from evaluating this reference on absolute values
     * (sums of products). When false the checks use normwise bounds ({@link LayerChecks#REL}).
     */
    default boolean componentwiseBounds() {
        return true;
    }

    /**
     * The whole adapted layer's output for x, given its base weight W0 [dOut, dIn] and bias b0
     * [dOut] or null; {@code p} also holds the base parameters the method trains (by their name,
     * e.g. "bias").
     */
    default double[] layerForward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, int t, int dIn, int dOut) {
        double[] y = TestSupport.mulT(x, w0, t, dIn, dOut);
        if (b0 != null) y = TestSupport.addRows(y, b0, t, dOut);
        return TestSupport.add(y, forward(p, x, t, dIn, dOut));
    }

    /**
     * {@link #layerForward} with the quantities the method treats as constants in backward (DoRA's
     * norm) held at their value for the parameters {@code at}: the function finite differences of
     * {@link #layerBackward} are taken of.
     */
    default double[] layerForwardWithConstantsAt(Map<String, double[]> at, Map<String, double[]> p, double[] w0, double[] b0, double[] x,
                                                 int t, int dIn, int dOut) {
        return layerForward(p, w0, b0, x, t, dIn, dOut);
    }

    /** Gradients of L = Σ g ⊙ layerForward(x): every trained tensor by name, and the whole ∂L/∂x under {@link #INPUT}. */
    default Map<String, double[]> layerBackward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, double[] g,
                                                int t, int dIn, int dOut) {
        Map<String, double[]> grads = new LinkedHashMap<>(backward(p, x, g, t, dIn, dOut));
        grads.put(INPUT, TestSupport.add(TestSupport.mul(g, w0, t, dOut, dIn), grads.get(INPUT)));
        return grads;
    }

    /** The merged layer: {weight [dOut, dIn], bias [dOut] or null}. */
    default double[][] merged(Map<String, double[]> p, double[] w0, double[] b0, int dIn, int dOut) {
        return new double[][] {TestSupport.add(w0, deltaWeight(p, dIn, dOut)), b0};
    }
}
