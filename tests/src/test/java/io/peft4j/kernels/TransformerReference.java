package io.peft4j.kernels;

import java.util.Map;

/**
 * Float64 references for the transformer kernels (attention, LayerNorm), written straight from
 * the formulas; {@link AttentionTest} and {@link LayerNormTest} check their gradients against
 * central differences, and the nn tests build a whole block from them.
 */
public final class TransformerReference {
    private TransformerReference() {}

    /**
     * Attention of b sequences of t tokens, heads·dh features per row (head h in columns h·dh..);
     * row i of sequence s attends to the keys j < keyLengths[s] (all t when keyLengths is null),
     * and j <= i too when causal. Returns {out, lse}; lse: [b, heads, t].
     */
    public static double[][] attention(int b, int t, int heads, int dh, double scale, boolean causal, int[] keyLengths, double[] q,
                                       double[] k, double[] v) {
        int ld = heads * dh;
        double[] out = new double[b * t * ld];
        double[] lse = new double[b * heads * t];
        for (int s = 0; s < b; s++) {
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < t; i++) {
                    int keys = keys(t, causal, keyLengths, s, i);
                    double[] sc = new double[keys];
                    double m = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < keys; j++) {
                        double d = 0;
                        for (int c = 0; c < dh; c++) d += q[(s * t + i) * ld + h * dh + c] * k[(s * t + j) * ld + h * dh + c];
                        sc[j] = scale * d;
                        m = Math.max(m, sc[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < keys; j++) sum += Math.exp(sc[j] - m);
                    for (int c = 0; c < dh; c++) {
                        double acc = 0;
                        for (int j = 0; j < keys; j++) acc += Math.exp(sc[j] - m) / sum * v[(s * t + j) * ld + h * dh + c];
                        out[(s * t + i) * ld + h * dh + c] = acc;
                    }
                    lse[(s * heads + h) * t + i] = m + Math.log(sum);
                }
            }
        }
        return new double[][] {out, lse};
    }

    /** Keys row i of sequence s attends to: j < keys(...). */
    static int keys(int t, boolean causal, int[] keyLengths, int s, int i) {
        int len = keyLengths == null ? t : keyLengths[s];
        return causal ? Math.min(i + 1, len) : len;
    }

    /** {dq, dk, dv} of Σ dout ⊙ attention(q, k, v). */
    public static double[][] attentionBackward(int b, int t, int heads, int dh, double scale, boolean causal, int[] keyLengths,
                                               double[] q, double[] k, double[] v, double[] dout) {
        int ld = heads * dh;
        double[] dq = new double[q.length], dk = new double[k.length], dv = new double[v.length];
        for (int s = 0; s < b; s++) {
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < t; i++) {
                    int keys = keys(t, causal, keyLengths, s, i);
                    double[] p = new double[keys];
                    double m = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int j = 0; j < keys; j++) {
                        double d = 0;
                        for (int c = 0; c < dh; c++) d += q[(s * t + i) * ld + h * dh + c] * k[(s * t + j) * ld + h * dh + c];
                        p[j] = scale * d;
                        m = Math.max(m, p[j]);
                    }
                    for (int j = 0; j < keys; j++) sum += (p[j] = Math.exp(p[j] - m));
                    for (int j = 0; j < keys; j++) p[j] /= sum;
                    // dP_ij = dout_i·v_j; dS = P ⊙ (dP − Σ_j P_ij dP_ij)
                    double[] dp = new double[keys];
                    double dot = 0;
                    for (int j = 0; j < keys; j++) {
                        for (int c = 0; c < dh; c++) dp[j] += dout[(s * t + i) * ld + h * dh + c] * v[(s * t + j) * ld + h * dh + c];
                        dot += p[j] * dp[j];
                    }
                    for (int j = 0; j < keys; j++) {
                        double ds = p[j] * (dp[j] - dot);
                        for (int c = 0; c < dh; c++) {
                            int ic = (s * t + i) * ld + h * dh + c, jc = (s * t + j) * ld + h * dh + c;
                            dq[ic] += scale * ds * k[jc];
                            dk[jc] += scale * ds * q[ic];
                            dv[jc] += p[j] * dout[ic];
                        }
                    }
                }
            }
        }
        return new double[][] {dq, dk, dv};
    }

    /** LayerNorm of rows [t, d] with weight w and bias b (b may be null); returns y. */
    public static double[] layerNorm(int t, int d, double eps, double[] x, double[] w, double[] b) {
        double[] y = new double[t * d];
        for (int i = 0; i < t; i++) {
            double mu = 0, var = 0;
            for (int j = 0; j < d; j++) mu += x[i * d + j];
            mu /= d;
            for (int j = 0; j < d; j++) var += (x[i * d + j] - mu) * (x[i * d + j] - mu);
            double r = 1 / Math.sqrt(var / d + eps);
            for (int j = 0; j < d; j++) y[i * d + j] = (x[i * d + j] - mu) * r * w[j] + (b == null ? 0 : b[j]);
        }
        return y;
    }

    /** {dx, dw, db} of Σ g ⊙ layerNorm(x). */
    public static double[][] layerNormBackward(int t, int d, double eps, double[] x, double[] w, double[] g) {
        double[] dx = new double[t * d], dw = new double[d], db = new double[d];
        for (int i = 0; i < t; i++) {
            double mu = 0, var = 0;
            for (int j = 0; j < d; j++) mu += x[i * d + j];
            mu /= d;
            for (int j = 0; j < d; j++) var += (x[i * d + j] - mu) * (x[i * d + j] - mu);
            double r = 1 / Math.sqrt(var / d + eps);
            double mg = 0, mgx = 0;
            for (int j = 0; j < d; j++) {
                double xh = (x[i * d + j] - mu) * r;
                mg += g[i * d + j] * w[j];
                mgx += g[i * d + j] * w[j] * xh;
                dw[j] += g[i * d + j] * xh;
                db[j] += g[i * d + j];
            }
            mg /= d;
            mgx /= d;
            for (int j = 0; j < d; j++) {
                double xh = (x[i * d + j] - mu) * r;
                dx[i * d + j] = r * (g[i * d + j] * w[j] - mg - xh * mgx);
            }
        }
        return new double[][] {dx, dw, db};
    }

    /** x·wᵀ + b: x [t, in], w [out, in], b [out]. */
    public static double[] linear(double[] x, int t, int in, int out, double[] w, double[] b) {
        double[] y = new double[t * out];
        for (int i = 0; i < t; i++) {
            for (int o = 0; o < out; o++) {
                double s = b[o];
                for (int c = 0; c < in; c++) s += x[i * in + c] * w[o * in + c];
                y[i * out + o] = s;
            }
        }
        return y;
    }

    /**
     * A pre-norm transformer block over b sequences of t tokens: h = x + o(attn(q, k, v of norm1(x)));
     * y = h + fc2(gelu(fc1(norm2(h)))). p holds the block's parameters by their names in the block
     * ("norm1.weight", "attn.q.weight", "mlp.fc1.bias", ...); LayerNorm eps as given.
     */
    public static double[] block(Map<String, double[]> p, double[] x, int b, int t, int width, int heads, int mlp, double eps) {
        int n = b * t;
        double[] n1 = layerNorm(n, width, eps, x, p.get("norm1.weight"), p.get("norm1.bias"));
        double[] q = linear(n1, n, width, width, p.get("attn.q.weight"), p.get("attn.q.bias"));
        double[] k = linear(n1, n, width, width, p.get("attn.k.weight"), p.get("attn.k.bias"));
        double[] v = linear(n1, n, width, width, p.get("attn.v.weight"), p.get("attn.v.bias"));
        int dh = width / heads;
        double[] a = attention(b, t, heads, dh, 1 / Math.sqrt(dh), false, null, q, k, v)[0];
        double[] o = linear(a, n, width, width, p.get("attn.o.weight"), p.get("attn.o.bias"));
        double[] h = new double[n * width];
        for (int i = 0; i < h.length; i++) h[i] = x[i] + o[i];
        double[] n2 = layerNorm(n, width, eps, h, p.get("norm2.weight"), p.get("norm2.bias"));
        double[] f1 = linear(n2, n, width, mlp, p.get("mlp.fc1.weight"), p.get("mlp.fc1.bias"));
        double[] act = Reference.gelu(f1);
        double[] f2 = linear(act, n, mlp, width, p.get("mlp.fc2.weight"), p.get("mlp.fc2.bias"));
        double[] y = new double[n * width];
        for (int i = 0; i < y.length; i++) y[i] = h[i] + f2[i];
        return y;
    }

    /** Σ g ⊙ f. */
    public static double dot(double[] g, double[] f) {
        double s = 0;
        for (int i = 0; i < g.length; i++) s += g[i] * f[i];
        return s;
    }
}
