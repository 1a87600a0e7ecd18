package io.peft4j.variants.vera;

import io.peft4j.variants.tiedlora.ScaledLowRankReference;

/** VeRA in float64 (algorithms.md §5): Tied-LoRA's math with s = 1, u = λ_d, v = λ_b; per layer λ_b [dOut] and λ_d [r] train. */
public final class VeraReference {
    private VeraReference() {}

    public static ScaledLowRankReference of(int r) {
        return new ScaledLowRankReference("vera_A", "vera_B", "vera_lambda_d", "vera_lambda_b", r, 1.0, (dIn, dOut) -> dOut + r);
    }
}
