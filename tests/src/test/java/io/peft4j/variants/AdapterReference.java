package io.peft4j.variants;

import java.util.Map;

/**
 * A method's math in float64, written from docs/algorithms.md independently of the code under
 * test. Parameters come by the names the method's checkpoints use ("lora_A.weight"); all arrays
 * are row-major: x [t, dIn], g and the delta output [t, dOut], ΔW [dOut, dIn].
 *
 * <p>The contract suite also evaluates these methods on absolute values (|x|, |params|, |g|) to get
 * the magnitudes its fp32 error bounds scale with; for methods built from sums of products (every
 * LoRA-family method) that is the classic γ_k·Σ|a||b| bound.
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
}
