package io.peft4j.kernels;

/**
 * The ground truth the kernels are compared with: the documented semantics of native/include/peft4j.h
 * written as plain double-precision loops over row-major double[] (fp32 inputs are converted
 * exactly). Nothing here is clever, so each line can be checked against the header by eye; the
 * gradients are further checked against central differences of the forwards
 * ({@link ReferenceTest}).
 */
public final class Reference {
    private Reference() {}

    // ---- GEMM ----

    /** alpha·op(a)·op(b) + beta·c; a is [m, k] (or [k, m] when transA), b is [k, n] (or [n, k]); c [m, n] or null. */
    static double[] gemm(boolean transA, boolean transB, int m, int n, int k, double alpha, double[] a, double[] b,
                         double beta, double[] c) {
        double[] out = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) {
                    double av = transA ? a[p * m + i] : a[i * k + p];
                    double bv = transB ? b[j * k + p] : b[p * n + j];
                    s += av * bv;
                }
                out[i * n + j] = alpha * s + (beta == 0 ? 0 : beta * c[i * n + j]);
            }
        }
        return out;
    }

    /** x·yᵀ for x [m, k], y [n, k]. */
    static double[] mulT(int m, int n, int k, double[] x, double[] y) {
        return gemm(false, true, m, n, k, 1, x, y, 0, null);
    }

    // ---- low-rank adapter ----

    /** h = x·aᵀ: [t, r]. */
    static double[] lowrankH(int t, int dIn, int r, double[] x, double[] a) {
        return mulT(t, r, dIn, x, a);
    }

    /** y0 + s·(x·aᵀ)·bᵀ: [t, dOut]. */
    static double[] lowrankY(int t, int dIn, int dOut, int r, double s, double[] x, double[] a, double[] b, double[] y0) {
        double[] h = lowrankH(t, dIn, r, x, a);
        return gemm(false, true, t, dOut, r, s, h, b, 1, y0);
    }

    /** gb = g·b: [t, r]. */
    static double[] lowrankGb(int t, int dOut, int r, double[] g, double[] b) {
        return gemm(false, false, t, r, dOut, 1, g, b, 0, null);
    }

    /** db = s·gᵀ·h: [dOut, r]. */
    static double[] lowrankDb(int t, int dOut, int r, double s, double[] g, double[] h) {
        return gemm(true, false, dOut, r, t, s, g, h, 0, null);
    }

    /** da = s·gbᵀ·x: [r, dIn]. */
    static double[] lowrankDa(int t, int dIn, int r, double s, double[] gb, double[] x) {
        return gemm(true, false, r, dIn, t, s, gb, x, 0, null);
    }

    /** s·gb·a: [t, dIn] (the term added to dx). */
    static double[] lowrankDx(int t, int dIn, int r, double s, double[] gb, double[] a) {
        return gemm(false, false, t, dIn, r, s, gb, a, 0, null);
    }

    /** L = Σ g ⊙ y(x, a, b), the scalar loss whose gradients the backward computes. */
    static double lowrankLoss(int t, int dIn, int dOut, int r, double s, double[] x, double[] a, double[] b,
                              double[] y0, double[] g) {
        return dot(lowrankY(t, dIn, dOut, r, s, x, a, b, y0), g);
    }

    // ---- elementwise ----

    static double[] biasAdd(int t, int d, double[] bias, double[] y) {
        double[] out = y.clone();
        for (int i = 0; i < t; i++) for (int j = 0; j < d; j++) out[i * d + j] += bias[j];
        return out;
    }

    static double[] colsum(int t, int d, double[] x) {
        double[] out = new double[d];
        for (int i = 0; i < t; i++) for (int j = 0; j < d; j++) out[j] += x[i * d + j];
        return out;
    }

    static double[] relu(double[] x) {
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) y[i] = Math.max(x[i], 0);
        return y;
    }

    static double[] reluBackward(double[] x, double[] g) {
        double[] dx = new double[x.length];
        for (int i = 0; i < x.length; i++) dx[i] = x[i] > 0 ? g[i] : 0;
        return dx;
    }

    public static double gelu(double x) {
        return x * normalCdf(x);
    }

    public static double geluGrad(double x) {
        return normalCdf(x) + x * normalPdf(x);
    }

    static double[] gelu(double[] x) {
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) y[i] = gelu(x[i]);
        return y;
    }

    static double[] geluBackward(double[] x, double[] g) {
        double[] dx = new double[x.length];
        for (int i = 0; i < x.length; i++) dx[i] = g[i] * geluGrad(x[i]);
        return dx;
    }

    static double normalPdf(double x) {
        return Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
    }

    /** Φ(x) = erfc(−x/√2)/2, evaluated so that both tails keep full relative accuracy. */
    static double normalCdf(double x) {
        double z = Math.abs(x) / Math.sqrt(2);
        double half = 0.5 * erfc(z);
        return x < 0 ? half : 1 - half;
    }

    /**
     * erfc(z) for z >= 0: 1 − (Maclaurin series of erf) below 1.5, Laplace's continued fraction
     * from there on (relative error ~1e-15 throughout; ReferenceTest checks published values).
     */
    static double erfc(double z) {
        if (z < 0) throw new IllegalArgumentException("erfc here takes z >= 0");
        if (z < 1.5) {
            double term = z, sum = z, z2 = z * z;
            for (int n = 1; n < 200; n++) {
                term *= -z2 / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
            }
            return 1 - 2 / Math.sqrt(Math.PI) * sum;
        }
        // erfc(z) = e^{-z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))), evaluated from the tail.
        double f = z;
        for (int k = 200; k >= 1; k--) f = z + (k / 2.0) / f;
        return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
    }

    static double[] mul(double[] x, double[] y) {
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) out[i] = x[i] * y[i];
        return out;
    }

    /** First maximum of each row; the first NaN counts as larger than any number (torch.argmax). */
    static int[] argmaxRows(int t, int c, double[] x) {
        int[] out = new int[t];
        for (int i = 0; i < t; i++) {
            int best = 0;
            for (int j = 1; j < c && !Double.isNaN(x[i * c + best]); j++) {
                if (Double.isNaN(x[i * c + j]) || x[i * c + j] > x[i * c + best]) best = j;
            }
            out[i] = best;
        }
        return out;
    }

    // ---- losses ----

    static double[] softmax(int t, int c, double[] logits) {
        double[] p = new double[t * c];
        for (int i = 0; i < t; i++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < c; j++) max = Math.max(max, logits[i * c + j]);
            double sum = 0;
            for (int j = 0; j < c; j++) sum += p[i * c + j] = Math.exp(logits[i * c + j] - max);
            for (int j = 0; j < c; j++) p[i * c + j] /= sum;
        }
        return p;
    }

    /** Mean over rows of −log softmax(logits)[label]. */
    static double xentLoss(int t, int c, double[] logits, int[] labels) {
        double total = 0;
        for (int i = 0; i < t; i++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < c; j++) max = Math.max(max, logits[i * c + j]);
            double sum = 0;
            for (int j = 0; j < c; j++) sum += Math.exp(logits[i * c + j] - max);
            total += Math.log(sum) + max - logits[i * c + labels[i]];
        }
        return total / t;
    }

    /** scale·(probs − onehot(labels))/t. */
    static double[] xentBackward(int t, int c, double[] probs, int[] labels, double scale) {
        double[] d = new double[t * c];
        for (int i = 0; i < t; i++) {
            for (int j = 0; j < c; j++) {
                d[i * c + j] = scale * (probs[i * c + j] - (j == labels[i] ? 1 : 0)) / t;
            }
        }
        return d;
    }

    static double mseLoss(double[] pred, double[] target) {
        double s = 0;
        for (int i = 0; i < pred.length; i++) {
            double e = pred[i] - target[i];
            s += e * e;
        }
        return s / pred.length;
    }

    static double[] mseGrad(double[] pred, double[] target) {
        double[] g = new double[pred.length];
        for (int i = 0; i < pred.length; i++) g[i] = 2 * (pred[i] - target[i]) / pred.length;
        return g;
    }

    // ---- optimizers (PyTorch semantics) ----

    /** One AdamW update in place on param, m, v (torch.optim.AdamW, amsgrad off). */
    static void adamw(double[] param, double[] grad, double[] m, double[] v, double lr, double beta1, double beta2,
                      double eps, double weightDecay, long step) {
        double bc1 = 1 - Math.pow(beta1, step), bc2 = 1 - Math.pow(beta2, step);
        for (int i = 0; i < param.length; i++) {
            param[i] -= lr * weightDecay * param[i];
            m[i] = beta1 * m[i] + (1 - beta1) * grad[i];
            v[i] = beta2 * v[i] + (1 - beta2) * grad[i] * grad[i];
            param[i] -= lr * (m[i] / bc1) / (Math.sqrt(v[i] / bc2) + eps);
        }
    }

    /** One SGD update in place (torch.optim.SGD, dampening 0); buf ignored when momentum == 0. */
    static void sgd(double[] param, double[] grad, double[] buf, double lr, double momentum, double weightDecay,
                    boolean nesterov, boolean first) {
        for (int i = 0; i < param.length; i++) {
            double g = grad[i] + weightDecay * param[i];
            if (momentum != 0) {
                buf[i] = first ? g : momentum * buf[i] + g;
                g = nesterov ? g + momentum * buf[i] : buf[i];
            }
            param[i] -= lr * g;
        }
    }

    static double sumsq(double[] x) {
        return dot(x, x);
    }

    static double dot(double[] x, double[] y) {
        double s = 0;
        for (int i = 0; i < x.length; i++) s += x[i] * y[i];
        return s;
    }

    // ---- Philox-4x32-10 (Salmon et al., SC'11), the generator of the rng kernels ----

    /** The four 32-bit outputs for a 128-bit counter (c0 least significant) under a 64-bit key (k0 low word). */
    static int[] philox4x32(int c0, int c1, int c2, int c3, int k0, int k1) {
        final long m0 = 0xD2511F53L, m1 = 0xCD9E8D57L;
        final int w0 = 0x9E3779B9, w1 = 0xBB67AE85;
        for (int round = 0; round < 10; round++) {
            long p0 = m0 * (c0 & 0xffffffffL), p1 = m1 * (c2 & 0xffffffffL);
            int hi0 = (int) (p0 >>> 32), lo0 = (int) p0, hi1 = (int) (p1 >>> 32), lo1 = (int) p1;
            int n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
            c0 = n0;
            c1 = n1;
            c2 = n2;
            c3 = n3;
            k0 += w0;
            k1 += w1;
        }
        return new int[] {c0, c1, c2, c3};
    }

    /** The uniform in [0, 1) a raw 32-bit draw maps to: its top 24 bits times 2^-24. */
    static float unit(int raw) {
        return (raw >>> 8) * 0x1p-24f;
    }
    // ---- the fill formulas of native/cpu/rng.cpp, one binary32 operation at a time ----
    // (Java float arithmetic is IEEE-754 binary32 with round-to-nearest, Math.fma rounds once, and
    // a float square root taken in double and rounded back is the correctly rounded one.)

    /** Word (pos % 4) of Philox block pos / 4 under key (low, high 32 bits of seed). */
    static int rawAt(long seed, long pos) {
        long block = pos >>> 2;
        return philox4x32((int) block, (int) (block >>> 32), 0, 0, (int) seed, (int) (seed >>> 32))[(int) (pos & 3)];
    }

    static float uniformAt(long seed, long pos, float lo, float hi) {
        float width = hi - lo;
        float v = lo + width * unit(rawAt(seed, pos));
        float top = lo < hi ? Math.nextDown(hi) : hi;   // the rounded sum can reach hi; [lo, hi) holds
        return Math.min(v, top);
    }

    static float normalAt(long seed, long pos, float mean, float std) {
        long pair = pos & ~1L;
        int x0 = rawAt(seed, pair), x1 = rawAt(seed, pair + 1);
        float u1 = ((x0 >>> 8) + 1) * 0x1p-24f;
        float u2 = (x1 >>> 8) * 0x1p-24f;
        float rad = (float) Math.sqrt(-2.0f * logFixed(u1));
        float[] sc = sincos2piFixed(u2);
        float z = (pos & 1) == 0 ? rad * sc[1] : rad * sc[0];
        return mean + std * z;
    }

    static float kaimingBound(long fanIn, float a) {
        double ad = a;
        return (float) Math.sqrt(6.0 / ((1.0 + ad * ad) * (double) fanIn));
    }

    static float logFixed(float u) {
        int bits = Float.floatToRawIntBits(u);
        int e = (bits >>> 23) - 127;
        float m = Float.intBitsToFloat((bits & 0x007FFFFF) | 0x3F800000);
        if (m > 1.41421354f) {
            m = m * 0.5f;
            e = e + 1;
        }
        float f = m - 1.0f;
        float s = f / (f + 2.0f);
        float s2 = s * s;
        float p = Math.fma(s2, 1.0f / 11.0f, 1.0f / 9.0f);
        p = Math.fma(s2, p, 1.0f / 7.0f);
        p = Math.fma(s2, p, 1.0f / 5.0f);
        p = Math.fma(s2, p, 1.0f / 3.0f);
        float t = 2.0f * s;
        float lnm = Math.fma(t * s2, p, t);
        float ef = e;
        return Math.fma(ef, 0.693145751953125f, Math.fma(ef, 1.42860682030941723e-6f, lnm));
    }

    /** {sin, cos} of 2π·u. */
    static float[] sincos2piFixed(float u) {
        int q = (int) (u * 4.0f + 0.5f);
        float f = u - (float) q * 0.25f;
        float a = f * 6.28318548f;
        float a2 = a * a;
        float ps = Math.fma(a2, 1.0f / 362880.0f, -1.0f / 5040.0f);
        ps = Math.fma(a2, ps, 1.0f / 120.0f);
        ps = Math.fma(a2, ps, -1.0f / 6.0f);
        float sa = Math.fma(a * a2, ps, a);
        float pc = Math.fma(a2, -1.0f / 3628800.0f, 1.0f / 40320.0f);
        pc = Math.fma(a2, pc, -1.0f / 720.0f);
        pc = Math.fma(a2, pc, 1.0f / 24.0f);
        pc = Math.fma(a2, pc, -0.5f);
        float ca = Math.fma(a2, pc, 1.0f);
        int quadrant = q & 3;
        float sAbs = (quadrant & 1) != 0 ? ca : sa, cAbs = (quadrant & 1) != 0 ? sa : ca;
        return new float[] {quadrant >= 2 ? -sAbs : sAbs, (quadrant == 1 || quadrant == 2) ? -cAbs : cAbs};
    }
}
