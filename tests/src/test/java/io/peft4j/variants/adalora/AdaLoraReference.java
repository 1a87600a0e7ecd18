package io.peft4j.variants.adalora;

import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.mulT;
import static io.peft4j.variants.TestSupport.scale;
import static io.peft4j.variants.TestSupport.tMul;

import io.peft4j.variants.AdapterReference;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * AdaLoRA in float64 (algorithms.md §9): Q = lora_A [r, dIn], Λ = lora_E [r, 1], P = lora_B [dOut, r],
 * c = α/(r_init + 1e-5). With H = x Qᵀ and GP = g P: delta = c·(H ⊙ Λᵀ) Pᵀ; ∂P = c·gᵀ(H ⊙ Λᵀ);
 * ∂Λ_i = c·Σ_rows GP[:, i]·H[:, i]; ∂Q = c·(GP ⊙ Λᵀ)ᵀ x; ∂x = c·(GP ⊙ Λᵀ) Q; ΔW = c·P diag(Λ) Q.
 */
public record AdaLoraReference(int r, double c) implements AdapterReference {
    public static final String A = "lora_A", E = "lora_E", B = "lora_B";

    public static AdaLoraReference of(int r, int initR, double alpha) {
        return new AdaLoraReference(r, alpha / (initR + 1e-5));
    }

    static double[] gate(double[] h, double[] e, int t, int r) {
        double[] out = new double[t * r];
        for (int i = 0; i < t; i++) for (int j = 0; j < r; j++) out[i * r + j] = h[i * r + j] * e[j];
        return out;
    }

    @Override
    public double[] deltaWeight(Map<String, double[]> p, int dIn, int dOut) {
        double[] qe = new double[r * dIn];
        for (int i = 0; i < r; i++) for (int j = 0; j < dIn; j++) qe[i * dIn + j] = p.get(A)[i * dIn + j] * p.get(E)[i];
        return scale(c, mul(p.get(B), qe, dOut, r, dIn));
    }

    @Override
    public double[] forward(Map<String, double[]> p, double[] x, int t, int dIn, int dOut) {
        double[] h = gate(mulT(x, p.get(A), t, dIn, r), p.get(E), t, r);
        return scale(c, mulT(h, p.get(B), t, r, dOut));
    }

    @Override
    public Map<String, double[]> backward(Map<String, double[]> p, double[] x, double[] g, int t, int dIn, int dOut) {
        double[] h = mulT(x, p.get(A), t, dIn, r);
        double[] gp = mul(g, p.get(B), t, dOut, r);
        double[] dE = new double[r];
        for (int i = 0; i < t; i++) for (int j = 0; j < r; j++) dE[j] += c * gp[i * r + j] * h[i * r + j];
        double[] gpe = gate(gp, p.get(E), t, r);
        Map<String, double[]> out = new LinkedHashMap<>();
        out.put(A, scale(c, tMul(gpe, x, t, r, dIn)));
        out.put(E, dE);
        out.put(B, scale(c, tMul(g, gate(h, p.get(E), t, r), t, dOut, r)));
        out.put(INPUT, scale(c, mul(gpe, p.get(A), t, r, dIn)));
        return out;
    }

    @Override
    public long trainableParameters(int dIn, int dOut) {
        return (long) r * (dIn + dOut + 1);
    }
}
