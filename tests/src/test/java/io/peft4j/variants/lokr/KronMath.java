package io.peft4j.variants.lokr;

/**
 * Float64 Kronecker math shared by the KronA and LoKr references, written from algorithms.md §2
 * and §4 independently of the code under test: the materialised kron, the factor gradients from
 * GW = ∂L/∂ΔW, and the spec's factorization by brute force over all divisor pairs.
 */
public final class KronMath {
    private KronMath() {}

    /** kron(a, b): [a1·b1, a2·b2], K[i·b1+k, j·b2+l] = a[i,j]·b[k,l]. */
    public static double[] kron(double[] a, int a1, int a2, double[] b, int b1, int b2) {
        int dIn = a2 * b2;
        double[] w = new double[a1 * b1 * dIn];
        for (int i = 0; i < a1; i++)
            for (int j = 0; j < a2; j++)
                for (int k = 0; k < b1; k++)
                    for (int l = 0; l < b2; l++) w[(i * b1 + k) * dIn + j * b2 + l] = a[i * a2 + j] * b[k * b2 + l];
        return w;
    }

    /** ∂L/∂a of L = Σ GW ⊙ s·kron(a, b): s·Σ_{k,l} GW[i·b1+k, j·b2+l]·b[k,l]. */
    public static double[] gradA(double[] gw, double s, double[] b, int a1, int a2, int b1, int b2) {
        int dIn = a2 * b2;
        double[] da = new double[a1 * a2];
        for (int i = 0; i < a1; i++)
            for (int j = 0; j < a2; j++)
                for (int k = 0; k < b1; k++)
                    for (int l = 0; l < b2; l++) da[i * a2 + j] += s * gw[(i * b1 + k) * dIn + j * b2 + l] * b[k * b2 + l];
        return da;
    }

    /** ∂L/∂b of L = Σ GW ⊙ s·kron(a, b): s·Σ_{i,j} GW[i·b1+k, j·b2+l]·a[i,j]. */
    public static double[] gradB(double[] gw, double s, double[] a, int a1, int a2, int b1, int b2) {
        int dIn = a2 * b2;
        double[] db = new double[b1 * b2];
        for (int i = 0; i < a1; i++)
            for (int j = 0; j < a2; j++)
                for (int k = 0; k < b1; k++)
                    for (int l = 0; l < b2; l++) db[k * b2 + l] += s * gw[(i * b1 + k) * dIn + j * b2 + l] * a[i * a2 + j];
        return db;
    }

    /** GW = gᵀ·x: [dOut, dIn]. */
    public static double[] gw(double[] g, double[] x, int t, int dIn, int dOut) {
        double[] gw = new double[dOut * dIn];
        for (int n = 0; n < t; n++)
            for (int o = 0; o < dOut; o++)
                for (int i = 0; i < dIn; i++) gw[o * dIn + i] += g[n * dOut + o] * x[n * dIn + i];
        return gw;
    }

    /**
     * The spec's factorization by brute force: a positive factor dividing dim gives (factor, dim/factor);
     * otherwise, of all divisor pairs (p, q), p·q = dim, p ≤ q, whose smaller member p is at most the
     * factor (no limit for −1), the one with the largest p (closest to √dim).
     */
    public static int[] factorization(int dim, int factor) {
        if (factor > 0 && dim % factor == 0) return new int[] {factor, dim / factor};
        double cap = factor == -1 ? Double.POSITIVE_INFINITY : factor;
        int best = 1;
        for (int p = 1; (double) p * p <= dim; p++) {
            if (dim % p == 0 && p <= cap) best = p;
        }
        return new int[] {best, dim / best};
    }
}
