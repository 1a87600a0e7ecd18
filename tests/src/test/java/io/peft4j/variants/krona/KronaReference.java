package io.peft4j.variants.krona;

import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.mulT;

import io.peft4j.variants.AdapterReference;
import io.peft4j.variants.lokr.KronMath;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * KronA in float64 (algorithms.md §2): ΔW = s·kron(A, B) + c·I (residual form), A [a1, a2] with
 * a1, a2 the first members of the spec's factorization of d_out and d_in (or given), B the rest.
 * Gradients through the materialised ΔW: GW = gᵀx, ∂A = s·Σ GW-blocks·B, ∂B = s·Σ GW-blocks·A,
 * ∂x = g·ΔW, ∂c = Σ g ⊙ x (trainable c).
 */
public record KronaReference(int aRows, int aCols, int factor, double s, boolean residual, double c, boolean trainC)
        implements AdapterReference {
    public static final String A = "krona_A", B = "krona_B", C = "krona_residual_scale";

    int[] shape(int dIn, int dOut) {
        int a1 = aRows > 0 ? aRows : KronMath.factorization(dOut, factor)[0];
        int a2 = aCols > 0 ? aCols : KronMath.factorization(dIn, factor)[0];
        return new int[] {a1, a2, dOut / a1, dIn / a2};
    }

    private double residualScale(Map<String, double[]> p) {
        return !residual ? 0 : trainC ? p.get(C)[0] : c;
    }

    @Override
    public double[] deltaWeight(Map<String, double[]> p, int dIn, int dOut) {
        int[] sh = shape(dIn, dOut);
        double[] w = KronMath.kron(p.get(A), sh[0], sh[1], p.get(B), sh[2], sh[3]);
        for (int i = 0; i < w.length; i++) w[i] *= s;
        double cr = residualScale(p);
        for (int i = 0; i < Math.min(dIn, dOut) && residual; i++) w[i * dIn + i] += cr;
        return w;
    }

    @Override
    public double[] forward(Map<String, double[]> p, double[] x, int t, int dIn, int dOut) {
        return mulT(x, deltaWeight(p, dIn, dOut), t, dIn, dOut);
    }

    @Override
    public Map<String, double[]> backward(Map<String, double[]> p, double[] x, double[] g, int t, int dIn, int dOut) {
        int[] sh = shape(dIn, dOut);
        double[] gw = KronMath.gw(g, x, t, dIn, dOut);
        Map<String, double[]> out = new LinkedHashMap<>();
        out.put(A, KronMath.gradA(gw, s, p.get(B), sh[0], sh[1], sh[2], sh[3]));
        out.put(B, KronMath.gradB(gw, s, p.get(A), sh[0], sh[1], sh[2], sh[3]));
        if (residual && trainC) {
            double dc = 0;
            for (int i = 0; i < g.length; i++) dc += g[i] * x[i];
            out.put(C, new double[] {dc});
        }
        out.put(INPUT, mul(g, deltaWeight(p, dIn, dOut), t, dOut, dIn));
        return out;
    }

    @Override
    public long trainableParameters(int dIn, int dOut) {
        int[] sh = shape(dIn, dOut);
        return (long) sh[0] * sh[1] + (long) sh[2] * sh[3] + (residual && trainC ? 1 : 0);
    }
}
