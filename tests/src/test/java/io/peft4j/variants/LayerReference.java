package io.peft4j.variants;

import java.util.Map;

/**
 * The float64 math of a method that may rewrite a layer's input or output (SSF, (IA)³, DoRA,
 * Houlsby, BitFit): the whole adapted layer's output, not only a delta. Written from
 * docs/algorithms.md independently of the code under test. Parameters come by their checkpoint
 * names, plus "bias" for a trained layer bias; arrays are row-major: x [t, in], y and g [t, out],
 * w0 [out, in]; b0 [out] or null.
 */
public interface LayerReference {
    /** Key of ∂L/∂x in {@link #backward}'s result. */
    String INPUT = "input";

    /** The adapted layer's output y [t, out]. */
    double[] forward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, int t, int in, int out);

    /** The analytic gradients of L = Σ g ⊙ y: every parameter by name, and x under {@link #INPUT}. */
    Map<String, double[]> backward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, double[] g, int t, int in, int out);

    /**
     * The function whose finite differences {@link #backward} must match: {@link #forward}, except
     * for quantities the method treats as constants in backward (DoRA's norm), which stay at their
     * value for the parameters {@code at}.
     */
    default double[] forwardWithConstantsAt(Map<String, double[]> at, Map<String, double[]> p, double[] w0, double[] b0, double[] x,
                                            int t, int in, int out) {
        return forward(p, w0, b0, x, t, in, out);
    }
}
