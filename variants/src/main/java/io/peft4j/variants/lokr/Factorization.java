package io.peft4j.variants.lokr;

/**
 * PEFT's {@code factorization(dimension, factor)} (peft/tuners/lokr/layer.py, algorithms.md §4):
 * how LoKr (and KronA's default) split a layer dimension into the two Kronecker factors.
 */
public final class Factorization {
    private Factorization() {}

    /**
     * {@code (m, n)} with {@code m·n = dim}. A positive {@code factor} that divides {@code dim} gives
     * {@code (factor, dim/factor)} as it is (PEFT does not reorder it; LyCORIS would). Otherwise
     * divisors are tried in increasing order, each accepted while it is at most the factor (−1: no
     * limit) and stopping once the pair has crossed √dim; the result is ordered m ≤ n. That is the
     * divisor pair closest to √dim whose smaller member is at most the factor.
     */
    public static int[] of(int dim, int factor) {
        if (dim < 1) throw new IllegalArgumentException("factorization: dimension must be >= 1, got " + dim);
        if (factor > 0 && dim % factor == 0) return new int[] {factor, dim / factor};
        int limit = factor == -1 ? dim : factor;
        int m = 1, n = dim;
        while (m < n) {
            int next = m + 1;
            while (dim % next != 0) next++;
            // PEFT also breaks when next + dim/next > 1 + dim, which no divisor pair reaches.
            if (next > limit) break;
            m = next;
            n = dim / next;
        }
        return m > n ? new int[] {n, m} : new int[] {m, n};
    }
}
