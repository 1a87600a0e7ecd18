package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.fail;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * One row of x against the NF4 kernel layout (p4j_nf4_matmul_rp at t = 1) on random and adversarial
 * x: every output within the error peft4j.h promises of a float64 product with the dequantized weight
 * (2^-19·Σ|x|·absmax per run of columns summed in fixed point, plus fp32 rounding), non-finite x
 * giving what dequantize-then-GEMM gives; and where the run has the tables path (AVX-512 with VBMI
 * and VNNI), the output bit for bit as {@link #tablesPath} computes it: which runs go to fixed point,
 * their 24-bit rounding and the one clamp, exact sums, the fp32 order of the rest.
 */
class Nf4GemvTablesTest {

    static final float[] CODE = Nf4Test.CODE;

    /** Whether this run's kernels take the tables path at t = 1 (a CPU fact per ISA run). */
    static boolean tablesPathActive() {
        Set<String> flags = IsaRun.cpuFlags();
        return "avx512".equals(IsaRun.effective()) && flags.contains("avx512vbmi") && flags.contains("avx512_vnni");
    }

    static Stream<Arguments> cases() {
        // {d_in, d_out, blocksize}: runs of 64 (block 64), of 8 (d_in = 8·odd), of 64 inside a
        // 4096 block over eight column tiles, of 32 (block 32), of 64 in 256-column segments, and
        // 19 row groups on two threads in pieces of two (pairs of groups sharing table reads, one alone).
        int[][] shapes = {{1024, 45, 64}, {200, 33, 128}, {4096, 17, 4096}, {520, 37, 32}, {768, 70, 256}, {1536, 300, 64}};
        String[] inputs = {"normal", "sparse", "outlier over zero weights", "wide range", "zero runs", "tie at 2^23",
                "tiny and huge runs", "infinity", "nan"};
        List<Arguments> out = new ArrayList<>();
        for (String in : inputs) for (int[] sh : shapes) out.add(Arguments.of(in, sh[0], sh[1], sh[2]));
        return out.stream();
    }

    @ParameterizedTest(name = "{0}: d_in={1} d_out={2} blocksize={3}")
    @MethodSource("cases")
    void oneRowOfXWithinThePromisedErrorAndBitExactOnTheTablesPath(String input, int dIn, int dOut, int bs) {
        Case c = newCase("nf4 gemv " + input + " d_in=" + dIn + " d_out=" + dOut + " bs=" + bs);
        Backend be = Backend.cpu();
        int seg = Math.min(bs, Integer.lowestOneBit(dIn)), run = Math.min(seg, 64);
        float[] w = c.normal(dIn * dOut, 0.05);
        float[] x = c.normal(dIn);
        int col = c.ints(1, dIn)[0];  // the adversarial column
        switch (input) {
            case "normal" -> { }
            case "sparse" -> {  // 90% zeros (after a ReLU): runs stay in fixed point (nonzero x counted)
                for (int j = 0; j < dIn; j++) if (j % 10 != 0) x[j] = 0f;
            }
            case "outlier over zero weights" -> {  // 1e4 where every weight is 0: fixed point would lose the rest
                x[col] = 1e4f;
                for (int r = 0; r < dOut; r++) w[r * dIn + col] = 0f;
            }
            case "wide range" -> {  // runs alternate 1e-3 and 1e3 scales, one value per run 1000x its neighbours
                for (int j = 0; j < dIn; j++) x[j] *= (j / run) % 2 == 0 ? 1e-3f : 1e3f;
                for (int j = 0; j < dIn; j += run) x[j] *= 1000f;
            }
            case "zero runs" -> {
                for (int j = 0; j < dIn; j++) if ((j / run) % 3 == 1) x[j] = 0f;
            }
            case "tie at 2^23" -> {  // max|x| = 1 − 2^-24 meets codes 0 and 15: x·code·2^23 = ±(2^23 − 1/2)
                for (int j = 0; j < dIn; j++) x[j] = Math.max(-0.9f, Math.min(0.9f, x[j]));
                x[col] = 0.99999994f;
                for (int r = 0; r < dOut; r++) w[r * dIn + col] = r % 2 == 0 ? 1f : -1f;
            }
            case "tiny and huge runs" -> {  // outside [2^-100, 2^100]: the fp32 path; the others fixed point
                for (int j = 0; j < dIn; j++) {
                    int k = (j / run) % 4;
                    x[j] *= k == 1 ? 1e-33f : k == 3 ? 1e33f : 1f;
                }
                for (int j = 0; j < dOut * dIn; j++) if ((j % dIn / run) % 4 == 3) w[j] *= 1e-6f;  // keep y finite
            }
            case "infinity" -> x[col] = Float.POSITIVE_INFINITY;  // ±inf where w != 0, NaN where w = 0
            case "nan" -> x[col] = Float.NaN;
            default -> throw new IllegalArgumentException(input);
        }
        try (Scope s = new Scope()) {
            int n = dIn * dOut;
            Tensor packed = s.poisonedBytes((n + 1) / 2), am = s.poisoned((n + bs - 1) / bs);
            be.nf4Quantize(bs, s.of(w, dOut, dIn), packed, am);
            long[] size = be.nf4RpSize(bs, dIn, dOut);
            Tensor codes = s.poisonedBytes(size[0]), scales = s.poisoned(size[1]);
            be.nf4Repack(bs, dIn, dOut, packed, am, codes, scales);
            Tensor y = s.poisoned(1, dOut);
            be.nf4MatmulRp(bs, s.of(x, 1, dIn), codes, scales, s.poisonedBytes(be.nf4RpWorkspace(1, dIn)), y);
            float[] got = y.toFloatArray();
            byte[] q = packed.segment().toArray(ValueLayout.JAVA_BYTE);
            float[] absmax = am.toFloatArray();

            Tensor wdq = s.poisoned(dOut, dIn);
            be.nf4Dequantize(bs, packed, am, wdq);
            float[] wd = wdq.toFloatArray();
            for (int r = 0; r < dOut; r++) {
                double ref = 0, absXW = 0, absXScale = 0;
                for (int j = 0; j < dIn; j++) {
                    ref += (double) x[j] * wd[r * dIn + j];
                    absXW += Math.abs((double) x[j] * wd[r * dIn + j]);
                    absXScale += Math.abs((double) x[j]) * absmax[(r * dIn + j) / bs];
                }
                if (!Double.isFinite(ref)) {  // what the fp32 product gives: NaN stays NaN, ±inf the same inf
                    if (Double.compare(ref, got[r]) != 0) fail(c.label() + ": y[" + r + "] = " + got[r] + ", expected " + ref);
                    continue;
                }
                double bound = 0x1p-19 * absXScale * (1 + 1e-6) + gemmTol(dIn) * absXW + Float.MIN_NORMAL;
                double err = Math.abs(got[r] - ref);
                if (!(err <= bound)) {
                    fail(String.format("%s: y[%d] = %s, ref %s: |error| %.3e > bound %.3e", c.label(), r, got[r], ref, err, bound));
                }
            }
            if (tablesPathActive()) {
                assertBits(c.label(), "y on the tables path", got, tablesPath(x, q, absmax, dIn, dOut, bs));
            }
        }
    }

    /**
     * What the tables path computes, in Java: for each run of min(S, 64) columns (S = the segment),
     * fixed point when x is finite, max|x| is 0 or in [2^-100, 2^100] and n·max|x| <= 16·Σ|x| over
     * its n nonzero x: q = min(rint(x·(code·2^(23−e))), 2^23 − 1) with max|x| < 2^e, summed exactly,
     * converted to fp32 and times 2^(e−23); otherwise fp32: two FMA chains over column pairs. Each
     * run's sum times the row's absmax is FMA'd into the row's fp32 sum, runs in column order.
     */
    static float[] tablesPath(float[] x, byte[] packed, float[] absmax, int dIn, int dOut, int bs) {
        int seg = Math.min(bs, Integer.lowestOneBit(dIn)), run = Math.min(seg, 64);
        int runs = dIn / run;
        int[] e = new int[runs];
        boolean[] fixed = new boolean[runs];
        for (int b = 0; b < runs; b++) {
            double m = 0, sum = 0;
            int nz = 0;
            boolean finite = true;
            for (int j = b * run; j < (b + 1) * run; j++) {
                float a = Math.abs(x[j]);
                finite &= Float.isFinite(a);
                m = Math.max(m, a);
                sum += a;
                nz += a > 0 ? 1 : 0;
            }
            double lhs = nz * m, rhs = 16 * sum;
            // The kernel decides in fp32 sums; the cases keep away from the border so both agree.
            if (finite && Math.abs(lhs - rhs) < 1e-4 * rhs) throw new IllegalStateException("run " + b + " is on the border of the fixed-point test");
            fixed[b] = finite && m <= 0x1p100 && (m == 0 || m >= 0x1p-100) && lhs <= rhs;
            e[b] = m == 0 ? 0 : Math.getExponent((float) m) + 1;
        }
        float[] y = new float[dOut];
        for (int r = 0; r < dOut; r++) {
            float acc = 0f;
            for (int b = 0; b < runs; b++) {
                float sc = absmax[(int) (((long) r * dIn + (long) b * run) / bs)];
                if (fixed[b]) {
                    float up = Math.scalb(1f, 23 - e[b]);
                    long sum = 0;
                    for (int j = b * run; j < (b + 1) * run; j++) {
                        float cs = CODE[code(packed, (long) r * dIn + j)] * up;  // exact: a power of two
                        sum += (long) Math.min(Math.rint(x[j] * cs), (1 << 23) - 1);
                    }
                    acc = Math.fma((float) sum * Math.scalb(1f, e[b] - 23), sc, acc);
                } else {
                    float[] part = new float[2];
                    for (int j = b * run; j < (b + 1) * run; j += 2) {
                        int h = (j % 8) / 2 & 1;
                        part[h] = Math.fma(CODE[code(packed, (long) r * dIn + j)], x[j], part[h]);
                        part[h] = Math.fma(CODE[code(packed, (long) r * dIn + j + 1)], x[j + 1], part[h]);
                    }
                    acc = Math.fma(part[0] + part[1], sc, acc);
                }
            }
            y[r] = acc;
        }
        return y;
    }

    /** The NF4 code of flattened element f (bitsandbytes: the first of a byte in its high nibble). */
    static int code(byte[] packed, long f) {
        int v = packed[(int) (f >> 1)] & 0xff;
        return (f & 1) == 0 ? v >> 4 : v & 15;
    }
}
