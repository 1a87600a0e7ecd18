package io.peft4j.variants.dora;

import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.mulT;
import static io.peft4j.variants.TestSupport.tMul;

import io.peft4j.variants.LayerReference;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * DoRA (algorithms.md §16) in float64: V = W0 + s·B·A, n = ‖V‖_row, y = b0 + (m/n) ⊙ (x·Vᵀ), with
 * n a constant in backward.
 */
record DoraReference(int r, double s) implements LayerReference {

    static double[] rowNorms(double[] v, int rows, int cols) {
        double[] n = new double[rows];
        for (int i = 0; i < rows; i++) {
            double a = 0;
            for (int j = 0; j < cols; j++) a += v[i * cols + j] * v[i * cols + j];
            n[i] = Math.sqrt(a);
        }
        return n;
    }

    /** V = W0 + s·B·A, [out, in]. */
    double[] weight(Map<String, double[]> p, double[] w0, int in, int out) {
        double[] ba = mul(p.get("lora_B.weight"), p.get("lora_A.weight"), out, r, in);
        double[] v = w0.clone();
        for (int i = 0; i < v.length; i++) v[i] += s * ba[i];
        return v;
    }

    /** The merged weight (m/n) ⊙ V. */
    double[] merged(Map<String, double[]> p, double[] w0, int in, int out) {
        double[] v = weight(p, w0, in, out), n = rowNorms(v, out, in), m = p.get("lora_magnitude_vector");
        for (int i = 0; i < out; i++) for (int j = 0; j < in; j++) v[i * in + j] *= m[i] / n[i];
        return v;
    }

    private double[] forward(Map<String, double[]> p, double[] n, double[] w0, double[] b0, double[] x, int t, int in, int out) {
        double[] y = mulT(x, weight(p, w0, in, out), t, in, out), m = p.get("lora_magnitude_vector");
        for (int i = 0; i < t; i++) {
            for (int j = 0; j < out; j++) y[i * out + j] = y[i * out + j] * m[j] / n[j] + (b0 == null ? 0 : b0[j]);
        }
        return y;
    }

    @Override
    public double[] forward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, int t, int in, int out) {
        return forward(p, rowNorms(weight(p, w0, in, out), out, in), w0, b0, x, t, in, out);
    }

    @Override
    public double[] forwardWithConstantsAt(Map<String, double[]> at, Map<String, double[]> p, double[] w0, double[] b0, double[] x,
                                           int t, int in, int out) {
        return forward(p, rowNorms(weight(at, w0, in, out), out, in), w0, b0, x, t, in, out);
    }

    @Override
    public Map<String, double[]> backward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, double[] g, int t, int in, int out) {
        double[] v = weight(p, w0, in, out), n = rowNorms(v, out, in), m = p.get("lora_magnitude_vector");
        double[] a = p.get("lora_A.weight"), b = p.get("lora_B.weight");
        double[] z = mulT(x, v, t, in, out);
        double[] dm = new double[out], gc = new double[t * out];
        for (int i = 0; i < t; i++) {
            for (int j = 0; j < out; j++) {
                dm[j] += g[i * out + j] * z[i * out + j] / n[j];
                gc[i * out + j] = g[i * out + j] * m[j] / n[j];
            }
        }
        double[] h = mulT(x, a, t, in, r);                    // x·Aᵀ [t, r]
        double[] db = tMul(gc, h, t, out, r);                 // Gcᵀ·h [out, r]
        double[] gcb = mul(gc, b, t, out, r);                 // Gc·B [t, r]
        double[] da = tMul(gcb, x, t, r, in);                 // (Gc·B)ᵀ·x [r, in]
        for (int i = 0; i < db.length; i++) db[i] *= s;
        for (int i = 0; i < da.length; i++) da[i] *= s;
        Map<String, double[]> out2 = new LinkedHashMap<>();
        out2.put("lora_A.weight", da);
        out2.put("lora_B.weight", db);
        out2.put("lora_magnitude_vector", dm);
        out2.put(INPUT, mul(gc, v, t, out, in));
        return out2;
    }
}
