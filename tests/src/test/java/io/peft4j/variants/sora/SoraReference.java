package io.peft4j.variants.sora;

import io.peft4j.variants.AdapterReference;
import io.peft4j.variants.adalora.AdaLoraReference;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * SoRA in float64 (algorithms.md §10): the gated product of AdaLoRA's reference with Λ → g,
 * c → s = α/r_max: delta = s·((x Aᵀ) ⊙ g) Bᵀ, ΔW = s·B diag(g) A.
 */
public record SoraReference(int r, AdaLoraReference gated) implements AdapterReference {
    public static final String A = "lora_A.weight", GATE = "lora_gate", B = "lora_B.weight";

    public static SoraReference of(int r, double alpha) {
        return new SoraReference(r, new AdaLoraReference(r, alpha / r));
    }

    private static Map<String, double[]> asAdaLora(Map<String, double[]> p) {
        return Map.of(AdaLoraReference.A, p.get(A), AdaLoraReference.E, p.get(GATE), AdaLoraReference.B, p.get(B));
    }

    @Override
    public double[] deltaWeight(Map<String, double[]> p, int dIn, int dOut) {
        return gated.deltaWeight(asAdaLora(p), dIn, dOut);
    }

    @Override
    public double[] forward(Map<String, double[]> p, double[] x, int t, int dIn, int dOut) {
        return gated.forward(asAdaLora(p), x, t, dIn, dOut);
    }

    @Override
    public Map<String, double[]> backward(Map<String, double[]> p, double[] x, double[] g, int t, int dIn, int dOut) {
        Map<String, double[]> d = gated.backward(asAdaLora(p), x, g, t, dIn, dOut);
        Map<String, double[]> out = new LinkedHashMap<>();
        out.put(A, d.get(AdaLoraReference.A));
        out.put(GATE, d.get(AdaLoraReference.E));
        out.put(B, d.get(AdaLoraReference.B));
        out.put(INPUT, d.get(INPUT));
        return out;
    }

    @Override
    public long trainableParameters(int dIn, int dOut) {
        return (long) r * (dIn + dOut + 1);
    }
}
