package io.peft4j.variants;

import java.util.Map;

/**
 * The contract's reference for a method that rewrites a layer's input or output rather than adding
 * a delta (DoRA, (IA)³, SSF, BitFit, Houlsby): its {@link LayerReference} gives the whole layer's
 * output and gradients, {@code merge} the merged weight and bias. Such a method has no additive
 * form, so the delta-only methods of {@link AdapterReference} refuse; error bounds are normwise.
 *
 * @param layer      the method's float64 layer math
 * @param merge      the merged {weight, bias} for W0 and b0, or null when the method cannot merge
 * @param parameters trainable parameters on one dOut×dIn layer (trained base parameters included)
 */
public record LayerAdapterReference(LayerReference layer, Merge merge, Count parameters) implements AdapterReference {

    @FunctionalInterface
    public interface Merge {
        double[][] apply(Map<String, double[]> p, double[] w0, double[] b0, int dIn, int dOut);
    }

    @FunctionalInterface
    public interface Count {
        long of(int dIn, int dOut);
    }

    @Override
    public boolean componentwiseBounds() {
        return false;
    }

    @Override
    public double[] layerForward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, int t, int dIn, int dOut) {
        return layer.forward(p, w0, b0, x, t, dIn, dOut);
    }

    @Override
    public double[] layerForwardWithConstantsAt(Map<String, double[]> at, Map<String, double[]> p, double[] w0, double[] b0, double[] x,
                                                int t, int dIn, int dOut) {
        return layer.forwardWithConstantsAt(at, p, w0, b0, x, t, dIn, dOut);
    }

    @Override
    public Map<String, double[]> layerBackward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, double[] g,
                                               int t, int dIn, int dOut) {
        return layer.backward(p, w0, b0, x, g, t, dIn, dOut);
    }

    @Override
    public double[][] merged(Map<String, double[]> p, double[] w0, double[] b0, int dIn, int dOut) {
        if (merge == null) throw new UnsupportedOperationException("this method has no merged form");
        return merge.apply(p, w0, b0, dIn, dOut);
    }

    @Override
    public long trainableParameters(int dIn, int dOut) {
        return parameters.of(dIn, dOut);
    }

    @Override
    public double[] deltaWeight(Map<String, double[]> p, int dIn, int dOut) {
        throw new UnsupportedOperationException("no additive form: ΔW depends on W0, use merged()");
    }

    @Override
    public double[] forward(Map<String, double[]> p, double[] x, int t, int dIn, int dOut) {
        throw new UnsupportedOperationException("no additive form: use layerForward()");
    }

    @Override
    public Map<String, double[]> backward(Map<String, double[]> p, double[] x, double[] g, int t, int dIn, int dOut) {
        throw new UnsupportedOperationException("no additive form: use layerBackward()");
    }
}
