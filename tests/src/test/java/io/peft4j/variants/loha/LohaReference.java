package io.peft4j.variants.loha;

import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.mulT;
import static io.peft4j.variants.TestSupport.tMul;

import io.peft4j.variants.AdapterReference;
import io.peft4j.variants.lokr.KronMath;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * LoHa in float64 (algorithms.md §3): ΔW = s·(W1a·W1b) ⊙ (W2a·W2b), s = alpha/r; with GW = gᵀx,
 * T1 = s·GW ⊙ M2, T2 = s·GW ⊙ M1: ∂W1a = T1·W1bᵀ, ∂W1b = W1aᵀ·T1, ∂W2a = T2·W2bᵀ, ∂W2b = W2aᵀ·T2,
 * ∂x = g·ΔW.
 */
public record LohaReference(int r, double s) implements AdapterReference {
    public static final String W1A = "hada_w1_a", W1B = "hada_w1_b", W2A = "hada_w2_a", W2B = "hada_w2_b";

    @Override
    public double[] deltaWeight(Map<String, double[]> p, int dIn, int dOut) {
        double[] m1 = mul(p.get(W1A), p.get(W1B), dOut, r, dIn), m2 = mul(p.get(W2A), p.get(W2B), dOut, r, dIn);
        double[] w = new double[m1.length];
        for (int i = 0; i < w.length; i++) w[i] = s * m1[i] * m2[i];
        return w;
    }

    @Override
    public double[] forward(Map<String, double[]> p, double[] x, int t, int dIn, int dOut) {
        return mulT(x, deltaWeight(p, dIn, dOut), t, dIn, dOut);
    }

    @Override
    public Map<String, double[]> backward(Map<String, double[]> p, double[] x, double[] g, int t, int dIn, int dOut) {
        double[] gw = KronMath.gw(g, x, t, dIn, dOut);
        double[] m1 = mul(p.get(W1A), p.get(W1B), dOut, r, dIn), m2 = mul(p.get(W2A), p.get(W2B), dOut, r, dIn);
        double[] t1 = new double[gw.length], t2 = new double[gw.length];
        for (int i = 0; i < gw.length; i++) {
            t1[i] = s * gw[i] * m2[i];
            t2[i] = s * gw[i] * m1[i];
        }
        Map<String, double[]> out = new LinkedHashMap<>();
        out.put(W1A, mulT(t1, p.get(W1B), dOut, dIn, r));
        out.put(W1B, tMul(p.get(W1A), t1, dOut, r, dIn));
        out.put(W2A, mulT(t2, p.get(W2B), dOut, dIn, r));
        out.put(W2B, tMul(p.get(W2A), t2, dOut, r, dIn));
        out.put(INPUT, mul(g, deltaWeight(p, dIn, dOut), t, dOut, dIn));
        return out;
    }

    @Override
    public long trainableParameters(int dIn, int dOut) {
        return 2L * r * (dIn + dOut);
    }
}
