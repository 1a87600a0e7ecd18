package io.peft4j.variants.ssf;

import static io.peft4j.variants.TestSupport.mul;

import io.peft4j.variants.LayerReference;
import io.peft4j.variants.ia3.Ia3Reference;
import java.util.LinkedHashMap;
import java.util.Map;

/** SSF (algorithms.md §13) in float64: z = x·W0ᵀ + b0, y = γ ⊙ z + β. */
final class SsfReference implements LayerReference {
    @Override
    public double[] forward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, int t, int in, int out) {
        double[] y = Ia3Reference.base(w0, b0, x, t, in, out), g = p.get("ssf_scale"), b = p.get("ssf_shift");
        for (int i = 0; i < t; i++) for (int j = 0; j < out; j++) y[i * out + j] = g[j] * y[i * out + j] + b[j];
        return y;
    }

    @Override
    public Map<String, double[]> backward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, double[] g, int t, int in, int out) {
        double[] z = Ia3Reference.base(w0, b0, x, t, in, out), gamma = p.get("ssf_scale");
        double[] dg = new double[out], db = new double[out];
        for (int i = 0; i < t; i++) {
            for (int j = 0; j < out; j++) {
                dg[j] += g[i * out + j] * z[i * out + j];
                db[j] += g[i * out + j];
            }
        }
        Map<String, double[]> r = new LinkedHashMap<>();
        r.put("ssf_scale", dg);
        r.put("ssf_shift", db);
        r.put(INPUT, mul(Ia3Reference.scaleColumns(g, gamma, t, out), w0, t, out, in));
        return r;
    }
}
