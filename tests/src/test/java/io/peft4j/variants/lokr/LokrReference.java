package io.peft4j.variants.lokr;

import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.mulT;
import static io.peft4j.variants.TestSupport.tMul;

import io.peft4j.variants.AdapterReference;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * LoKr in float64 (algorithms.md §4): (a, b) = factorization(d_out, f), (c, d) = factorization(d_in, f)
 * by brute force; W1 [a, c] full unless decompose_both and r < max(a, c)/2 (then W1a·W1b), W2 [b, d]
 * full when r >= max(b, d)/2 (else W2a·W2b); ΔW = s·kron(W1, W2), s = alpha/r (1 under LyCORIS's
 * rule when both are full). Gradients through GW = gᵀx and the chain rule for the decomposed ones.
 */
public record LokrReference(int r, double alpha, int factor, boolean decomposeBoth, boolean lycorisFullScale)
        implements AdapterReference {

    /** a, b, c, d, fullW1, fullW2 on a layer. */
    record Shape(int a, int b, int c, int d, boolean full1, boolean full2) {}

    public Shape shape(int dIn, int dOut) {
        int[] o = KronMath.factorization(dOut, factor), i = KronMath.factorization(dIn, factor);
        int a = o[0], b = o[1], c = i[0], d = i[1];
        return new Shape(a, b, c, d, !(decomposeBoth && r < Math.max(a, c) / 2.0), r >= Math.max(b, d) / 2.0);
    }

    /** The tensor names on a layer, as PEFT stores them. */
    public java.util.List<String> names(int dIn, int dOut) {
        Shape sh = shape(dIn, dOut);
        java.util.List<String> n = new java.util.ArrayList<>(sh.full1() ? java.util.List.of("lokr_w1") : java.util.List.of("lokr_w1_a", "lokr_w1_b"));
        n.addAll(sh.full2() ? java.util.List.of("lokr_w2") : java.util.List.of("lokr_w2_a", "lokr_w2_b"));
        return n;
    }

    double scale(Shape sh) {
        return lycorisFullScale && sh.full1() && sh.full2() ? 1 : alpha / r;
    }

    private double[] w1(Map<String, double[]> p, Shape sh) {
        return sh.full1() ? p.get("lokr_w1") : mul(p.get("lokr_w1_a"), p.get("lokr_w1_b"), sh.a(), r, sh.c());
    }

    private double[] w2(Map<String, double[]> p, Shape sh) {
        return sh.full2() ? p.get("lokr_w2") : mul(p.get("lokr_w2_a"), p.get("lokr_w2_b"), sh.b(), r, sh.d());
    }

    @Override
    public double[] deltaWeight(Map<String, double[]> p, int dIn, int dOut) {
        Shape sh = shape(dIn, dOut);
        double[] w = KronMath.kron(w1(p, sh), sh.a(), sh.c(), w2(p, sh), sh.b(), sh.d());
        double s = scale(sh);
        for (int i = 0; i < w.length; i++) w[i] *= s;
        return w;
    }

    @Override
    public double[] forward(Map<String, double[]> p, double[] x, int t, int dIn, int dOut) {
        return mulT(x, deltaWeight(p, dIn, dOut), t, dIn, dOut);
    }

    @Override
    public Map<String, double[]> backward(Map<String, double[]> p, double[] x, double[] g, int t, int dIn, int dOut) {
        Shape sh = shape(dIn, dOut);
        double s = scale(sh);
        double[] gw = KronMath.gw(g, x, t, dIn, dOut), w1 = w1(p, sh), w2 = w2(p, sh);
        double[] d1 = KronMath.gradA(gw, s, w2, sh.a(), sh.c(), sh.b(), sh.d());
        double[] d2 = KronMath.gradB(gw, s, w1, sh.a(), sh.c(), sh.b(), sh.d());
        Map<String, double[]> out = new LinkedHashMap<>();
        if (sh.full1()) {
            out.put("lokr_w1", d1);
        } else {
            out.put("lokr_w1_a", mulT(d1, p.get("lokr_w1_b"), sh.a(), sh.c(), r));
            out.put("lokr_w1_b", tMul(p.get("lokr_w1_a"), d1, sh.a(), r, sh.c()));
        }
        if (sh.full2()) {
            out.put("lokr_w2", d2);
        } else {
            out.put("lokr_w2_a", mulT(d2, p.get("lokr_w2_b"), sh.b(), sh.d(), r));
            out.put("lokr_w2_b", tMul(p.get("lokr_w2_a"), d2, sh.b(), r, sh.d()));
        }
        out.put(INPUT, mul(g, deltaWeight(p, dIn, dOut), t, dOut, dIn));
        return out;
    }

    @Override
    public long trainableParameters(int dIn, int dOut) {
        Shape sh = shape(dIn, dOut);
        return (sh.full1() ? (long) sh.a() * sh.c() : (long) r * (sh.a() + sh.c()))
                + (sh.full2() ? (long) sh.b() * sh.d() : (long) r * (sh.b() + sh.d()));
    }
}
