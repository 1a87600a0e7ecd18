package io.peft4j.variants.tiedlora;

import io.peft4j.variants.AdapterReference;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.LongBinaryOperator;

/**
 * Tied-LoRA and VeRA in float64 (algorithms.md §5, §6): delta(x) = s·v ⊙ ((u ⊙ (x·A_sᵀ))·B_sᵀ), ΔW =
 * s·diag(v)·B_s·diag(u)·A_s, with A_s = A[:, :dIn] of A [r, D_in] and B_s = B[:dOut, :] of B
 * [D_out, r] (the shared tensors come whole, the widths read from their lengths); u, v absent = 1.
 * Gradients, with H = x·A_sᵀ and GB = (g ⊙ v)·B_s: ∂u = s·Σ_rows GB ⊙ H; ∂v = s·Σ_rows g ⊙ ((H ⊙ u)·B_sᵀ);
 * ∂A_s = s·(GB ⊙ u)ᵀ·x; ∂B_s = s·diag(v)·gᵀ·(H ⊙ u); ∂x = s·(GB ⊙ u)·A_s; zero outside the slices.
 *
 * @param perLayerTrainable trainable parameters per layer (dIn, dOut), for the contract's counts
 */
public record ScaledLowRankReference(String aName, String bName, String uName, String vName, int r, double s,
                                     LongBinaryOperator perLayerTrainable) implements AdapterReference {

    private double[] u(Map<String, double[]> p) {
        double[] u = p.get(uName);
        return u != null ? u : ones(r);
    }

    private double[] v(Map<String, double[]> p, int dOut) {
        double[] v = p.get(vName);
        return v != null ? v : ones(dOut);
    }

    private static double[] ones(int n) {
        double[] o = new double[n];
        java.util.Arrays.fill(o, 1);
        return o;
    }

    private int lda(Map<String, double[]> p) {
        return p.get(aName).length / r;
    }

    private double[] h(Map<String, double[]> p, double[] x, int t, int dIn) {
        double[] a = p.get(aName), h = new double[t * r];
        int lda = lda(p);
        for (int n = 0; n < t; n++) {
            for (int k = 0; k < r; k++) {
                double acc = 0;
                for (int i = 0; i < dIn; i++) acc += x[n * dIn + i] * a[k * lda + i];
                h[n * r + k] = acc;
            }
        }
        return h;
    }

    @Override
    public double[] deltaWeight(Map<String, double[]> p, int dIn, int dOut) {
        double[] a = p.get(aName), b = p.get(bName), u = u(p), v = v(p, dOut), d = new double[dOut * dIn];
        int lda = lda(p);
        for (int j = 0; j < dOut; j++) {
            for (int i = 0; i < dIn; i++) {
                double acc = 0;
                for (int k = 0; k < r; k++) acc += b[j * r + k] * u[k] * a[k * lda + i];
                d[j * dIn + i] = s * v[j] * acc;
            }
        }
        return d;
    }

    @Override
    public double[] forward(Map<String, double[]> p, double[] x, int t, int dIn, int dOut) {
        double[] h = h(p, x, t, dIn), b = p.get(bName), u = u(p), v = v(p, dOut), y = new double[t * dOut];
        for (int n = 0; n < t; n++) {
            for (int j = 0; j < dOut; j++) {
                double acc = 0;
                for (int k = 0; k < r; k++) acc += u[k] * h[n * r + k] * b[j * r + k];
                y[n * dOut + j] = s * v[j] * acc;
            }
        }
        return y;
    }

    @Override
    public Map<String, double[]> backward(Map<String, double[]> p, double[] x, double[] g, int t, int dIn, int dOut) {
        double[] a = p.get(aName), b = p.get(bName), u = u(p), v = v(p, dOut), h = h(p, x, t, dIn);
        int lda = lda(p);
        double[] gb = new double[t * r];
        for (int n = 0; n < t; n++) {
            for (int k = 0; k < r; k++) {
                double acc = 0;
                for (int j = 0; j < dOut; j++) acc += g[n * dOut + j] * v[j] * b[j * r + k];
                gb[n * r + k] = acc;
            }
        }
        double[] du = new double[r], dv = new double[dOut], da = new double[a.length], db = new double[b.length], dx = new double[t * dIn];
        for (int n = 0; n < t; n++) {
            for (int k = 0; k < r; k++) {
                du[k] += s * gb[n * r + k] * h[n * r + k];
                for (int i = 0; i < dIn; i++) {
                    da[k * lda + i] += s * gb[n * r + k] * u[k] * x[n * dIn + i];
                    dx[n * dIn + i] += s * gb[n * r + k] * u[k] * a[k * lda + i];
                }
            }
            for (int j = 0; j < dOut; j++) {
                for (int k = 0; k < r; k++) {
                    double term = s * g[n * dOut + j] * u[k] * h[n * r + k];
                    dv[j] += term * b[j * r + k];
                    db[j * r + k] += term * v[j];
                }
            }
        }
        Map<String, double[]> out = new LinkedHashMap<>();
        out.put(aName, da);
        out.put(bName, db);
        if (p.containsKey(uName)) out.put(uName, du);
        if (p.containsKey(vName)) out.put(vName, dv);
        out.put(INPUT, dx);
        return out;
    }

    @Override
    public long trainableParameters(int dIn, int dOut) {
        return perLayerTrainable.applyAsLong(dIn, dOut);
    }
}
