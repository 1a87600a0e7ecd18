package io.peft4j.variants.lora;

import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.mulT;
import static io.peft4j.variants.TestSupport.scale;
import static io.peft4j.variants.TestSupport.tMul;

import io.peft4j.variants.AdapterReference;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * LoRA in float64 (algorithms.md §1): A [r, dIn], B [dOut, r], s = α/r or α/√r (rsLoRA).
 * delta(x) = s·(x Aᵀ) Bᵀ; with H = x Aᵀ and GB = g B: ∂B = s·gᵀH, ∂A = s·GBᵀx, ∂x = s·GB·A; ΔW = s·B·A.
 */
public record LoraReference(int r, double s) implements AdapterReference {
    public static final String A = "lora_A.weight";
    public static final String B = "lora_B.weight";

    public static LoraReference of(int r, double alpha, boolean rsLora) {
        return new LoraReference(r, rsLora ? alpha / Math.sqrt(r) : alpha / r);
    }

    @Override
    public double[] deltaWeight(Map<String, double[]> p, int dIn, int dOut) {
        return scale(s, mul(p.get(B), p.get(A), dOut, r, dIn));
    }

    @Override
    public double[] forward(Map<String, double[]> p, double[] x, int t, int dIn, int dOut) {
        double[] h = mulT(x, p.get(A), t, dIn, r);
        return scale(s, mulT(h, p.get(B), t, r, dOut));
    }

    @Override
    public Map<String, double[]> backward(Map<String, double[]> p, double[] x, double[] g, int t, int dIn, int dOut) {
        double[] h = mulT(x, p.get(A), t, dIn, r);          // [t, r]
        double[] gb = mul(g, p.get(B), t, dOut, r);         // [t, r]
        Map<String, double[]> out = new LinkedHashMap<>();
        out.put(A, scale(s, tMul(gb, x, t, r, dIn)));       // s·GBᵀ x: [r, dIn]
        out.put(B, scale(s, tMul(g, h, t, dOut, r)));       // s·gᵀ H: [dOut, r]
        out.put(INPUT, scale(s, mul(gb, p.get(A), t, r, dIn)));
        return out;
    }

    @Override
    public long trainableParameters(int dIn, int dOut) {
        return (long) r * (dIn + dOut);
    }
}
