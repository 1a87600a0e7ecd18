package io.peft4j.variants.ia3;

import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.mulT;

import io.peft4j.variants.LayerReference;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * (IA)³ (algorithms.md §15) in float64. Output mode: y = l ⊙ (x·W0ᵀ + b0); input mode
 * (feedforward): y = (x ⊙ l)·W0ᵀ + b0. l is "ia3_l".
 */
public record Ia3Reference(boolean feedforward) implements LayerReference {

    public static double[] base(double[] w0, double[] b0, double[] x, int t, int in, int out) {
        double[] y = mulT(x, w0, t, in, out);
        if (b0 != null) for (int i = 0; i < t; i++) for (int j = 0; j < out; j++) y[i * out + j] += b0[j];
        return y;
    }

    public static double[] scaleColumns(double[] a, double[] l, int rows, int cols) {
        double[] o = a.clone();
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) o[i * cols + j] *= l[j];
        return o;
    }

    @Override
    public double[] forward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, int t, int in, int out) {
        double[] l = p.get("ia3_l");
        if (feedforward) return base(w0, b0, scaleColumns(x, l, t, in), t, in, out);
        return scaleColumns(base(w0, b0, x, t, in, out), l, t, out);
    }

    @Override
    public Map<String, double[]> backward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, double[] g, int t, int in, int out) {
        double[] l = p.get("ia3_l");
        Map<String, double[]> r = new LinkedHashMap<>();
        if (feedforward) {
            double[] gw = mul(g, w0, t, out, in);   // ∂L/∂(x ⊙ l)
            double[] dl = new double[in];
            for (int i = 0; i < t; i++) for (int j = 0; j < in; j++) dl[j] += gw[i * in + j] * x[i * in + j];
            r.put("ia3_l", dl);
            r.put(INPUT, scaleColumns(gw, l, t, in));
        } else {
            double[] z = base(w0, b0, x, t, in, out), dl = new double[out];
            for (int i = 0; i < t; i++) for (int j = 0; j < out; j++) dl[j] += g[i * out + j] * z[i * out + j];
            r.put("ia3_l", dl);
            r.put(INPUT, mul(scaleColumns(g, l, t, out), w0, t, out, in));
        }
        return r;
    }
}
