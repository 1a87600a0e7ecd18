package io.peft4j.variants.houlsby;

import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.mulT;
import static io.peft4j.variants.TestSupport.tMul;

import io.peft4j.kernels.Reference;
import io.peft4j.variants.LayerReference;
import io.peft4j.variants.ia3.Ia3Reference;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Houlsby adapter (algorithms.md §14) in float64 after a layer: z = x·W0ᵀ + b0, u = z·W_dᵀ + b_d,
 * a = GELU(u), y = z + a·W_uᵀ + b_u (exact erf GELU).
 */
record HoulsbyReference(int m) implements LayerReference {
    private double[] u(Map<String, double[]> p, double[] z, int t, int out) {
        double[] u = mulT(z, p.get("adapter_down.weight"), t, out, m), bd = p.get("adapter_down.bias");
        for (int i = 0; i < t; i++) for (int j = 0; j < m; j++) u[i * m + j] += bd[j];
        return u;
    }

    @Override
    public double[] forward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, int t, int in, int out) {
        double[] z = Ia3Reference.base(w0, b0, x, t, in, out), u = u(p, z, t, out), a = new double[u.length];
        for (int i = 0; i < u.length; i++) a[i] = Reference.gelu(u[i]);
        double[] y = mulT(a, p.get("adapter_up.weight"), t, m, out), bu = p.get("adapter_up.bias");
        for (int i = 0; i < t; i++) for (int j = 0; j < out; j++) y[i * out + j] += z[i * out + j] + bu[j];
        return y;
    }

    @Override
    public Map<String, double[]> backward(Map<String, double[]> p, double[] w0, double[] b0, double[] x, double[] g, int t, int in, int out) {
        double[] z = Ia3Reference.base(w0, b0, x, t, in, out), u = u(p, z, t, out), a = new double[u.length];
        for (int i = 0; i < u.length; i++) a[i] = Reference.gelu(u[i]);
        double[] ga = mul(g, p.get("adapter_up.weight"), t, out, m), gu = new double[ga.length];
        for (int i = 0; i < ga.length; i++) gu[i] = ga[i] * Reference.geluGrad(u[i]);
        double[] gz = mul(gu, p.get("adapter_down.weight"), t, m, out);
        for (int i = 0; i < gz.length; i++) gz[i] += g[i];
        double[] dbu = new double[out], dbd = new double[m];
        for (int i = 0; i < t; i++) {
            for (int j = 0; j < out; j++) dbu[j] += g[i * out + j];
            for (int j = 0; j < m; j++) dbd[j] += gu[i * m + j];
        }
        Map<String, double[]> r = new LinkedHashMap<>();
        r.put("adapter_down.weight", tMul(gu, z, t, m, out));
        r.put("adapter_down.bias", dbd);
        r.put("adapter_up.weight", tMul(g, a, t, out, m));
        r.put("adapter_up.bias", dbu);
        r.put(INPUT, mul(gz, w0, t, out, in));
        return r;
    }
}
