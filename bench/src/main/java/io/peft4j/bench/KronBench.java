package io.peft4j.bench;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * KronA, LoHa and LoKr on the layer of {@link LowRankBench} (T = 512, d_in = d_out = 4096): each
 * adapter's forward + backward with the frozen base, the adapter alone, KronA against
 * materialise-then-GEMM, and the share of LoHa's and LoKr's time spent rebuilding their weights.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class KronBench {
    static final long T = LowRankBench.T, D = LowRankBench.D_IN;

    /** KronA A, B [64, 64]; LoHa r = 8; LoKr factor 16 (W1 [16, 16], W2 = W2a·W2b, [256, 8]·[8, 256]); their buffers. */
    @State(Scope.Benchmark)
    public static class Adapters {
        Tensor ka, kb, kp, kq, kda, kdb, kDelta;
        Tensor h1a, h1b, h2a, h2b, hdw, hws, hg1a, hg1b, hg2a, hg2b;
        Tensor w1, w2a, w2b, w2, lp, lq, ld1, ld2, lg2a, lg2b;

        @Setup(Level.Trial)
        public void setup() {
            Backend be = Backend.cpu();
            ka = Fill.uniform(be, -0.1f, 0.1f, 64, 64);
            kb = Fill.uniform(be, -0.1f, 0.1f, 64, 64);
            kp = Fill.random(be, T, 64 * 64);
            kq = Fill.random(be, T, 64 * 64);
            kda = Fill.random(be, 64, 64);
            kdb = Fill.random(be, 64, 64);
            kDelta = Fill.random(be, D, D);
            h1a = Fill.uniform(be, -0.1f, 0.1f, D, 8);
            h1b = Fill.uniform(be, -0.1f, 0.1f, 8, D);
            h2a = Fill.uniform(be, -0.1f, 0.1f, D, 8);
            h2b = Fill.uniform(be, -0.1f, 0.1f, 8, D);
            hdw = Fill.random(be, D, D);
            hws = Fill.random(be, 256, D);
            hg1a = Fill.random(be, D, 8);
            hg1b = Fill.random(be, 8, D);
            hg2a = Fill.random(be, D, 8);
            hg2b = Fill.random(be, 8, D);
            w1 = Fill.uniform(be, -0.1f, 0.1f, 16, 16);
            w2a = Fill.uniform(be, -0.1f, 0.1f, 256, 8);
            w2b = Fill.uniform(be, -0.1f, 0.1f, 8, 256);
            w2 = Fill.random(be, 256, 256);
            lp = Fill.random(be, T, 16 * 256);
            lq = Fill.random(be, T, 16 * 256);
            ld1 = Fill.random(be, 16, 16);
            ld2 = Fill.random(be, 256, 256);
            lg2a = Fill.random(be, 256, 8);
            lg2b = Fill.random(be, 8, 256);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            Fill.close(ka, kb, kp, kq, kda, kdb, kDelta, h1a, h1b, h2a, h2b, hdw, hws, hg1a, hg1b, hg2a, hg2b, w1, w2a, w2b, w2, lp, lq, ld1, ld2,
                    lg2a, lg2b);
        }
    }

    /** KronA's adapter alone: kronForward (y +=) and kronBackward (dA, dB, dX +=); A⊗B never formed. */
    @Benchmark
    public void kronaAdapter(LowRankBench.Base p, Adapters a) {
        p.be.kronForward(1f, p.x, a.ka, a.kb, a.kp, p.y);
        p.be.kronBackward(1f, p.x, a.ka, a.kb, a.kp, p.g, a.kq, a.kda, a.kdb, p.dx, false);
    }

    /** Frozen base + KronA 64×64 ⊗ 64×64, forward and backward. */
    @Benchmark
    public void kronaFwdBwd(LowRankBench.Base p, Adapters a) {
        Backend be = p.be;
        be.gemm(false, true, 1f, p.x, p.w0, 0f, p.y);
        be.kronForward(1f, p.x, a.ka, a.kb, a.kp, p.y);
        be.gemm(false, false, 1f, p.g, p.w0, 0f, p.dx);
        be.kronBackward(1f, p.x, a.ka, a.kb, a.kp, p.g, a.kq, a.kda, a.kdb, p.dx, false);
    }

    /**
     * KronA's adapter the naive way: materialise ΔW = kron(A, B), y += x·ΔWᵀ, dX += g·ΔW and the
     * weight gradient GW = gᵀ·x that dA and dB are reduced from (the reduction itself not counted).
     */
    @Benchmark
    public void kronaMaterialized(LowRankBench.Base p, Adapters a) {
        Backend be = p.be;
        be.kron(1f, a.ka, a.kb, a.kDelta, false);
        be.gemm(false, true, 1f, p.x, a.kDelta, 1f, p.y);
        be.gemm(false, false, 1f, p.g, a.kDelta, 1f, p.dx);
        be.gemm(true, false, 1f, p.g, p.x, 0f, p.dw);
    }

    /** Frozen base + LoHa r = 8 as LohaAdapter runs it: rebuild ΔW, y += x·ΔWᵀ, dX += g·ΔW, GW, factor gradients. */
    @Benchmark
    public void lohaFwdBwd(LowRankBench.Base p, Adapters a) {
        Backend be = p.be;
        be.gemm(false, true, 1f, p.x, p.w0, 0f, p.y);
        be.hadamardRebuild(1f, a.h1a, a.h1b, a.h2a, a.h2b, a.hdw);
        be.gemm(false, true, 1f, p.x, a.hdw, 1f, p.y);
        be.gemm(false, false, 1f, p.g, p.w0, 0f, p.dx);
        be.gemm(false, false, 1f, p.g, a.hdw, 1f, p.dx);
        be.gemm(true, false, 1f, p.g, p.x, 0f, a.hdw);
        be.hadamardBackward(1f, a.h1a, a.h1b, a.h2a, a.h2b, a.hdw, a.hws, a.hg1a, a.hg1b, a.hg2a, a.hg2b, false);
    }

    /** LoHa r = 8: the ΔW rebuild alone. */
    @Benchmark
    public void lohaRebuild(Adapters a) {
        Backend.cpu().hadamardRebuild(1f, a.h1a, a.h1b, a.h2a, a.h2b, a.hdw);
    }

    /** Frozen base + LoKr factor 16, r = 8, as LokrAdapter runs it (W2 rebuilt, Kronecker apply, chain rule). */
    @Benchmark
    public void lokrFwdBwd(LowRankBench.Base p, Adapters a) {
        Backend be = p.be;
        be.gemm(false, true, 1f, p.x, p.w0, 0f, p.y);
        be.gemm(false, false, 1f, a.w2a, a.w2b, 0f, a.w2);
        be.kronForward(1f, p.x, a.w1, a.w2, a.lp, p.y);
        be.gemm(false, false, 1f, p.g, p.w0, 0f, p.dx);
        be.kronBackward(1f, p.x, a.w1, a.w2, a.lp, p.g, a.lq, a.ld1, a.ld2, p.dx, false);
        be.gemm(false, true, 1f, a.ld2, a.w2b, 0f, a.lg2a);
        be.gemm(true, false, 1f, a.w2a, a.ld2, 0f, a.lg2b);
    }

    /** LoKr factor 16, r = 8: rebuilding W2 = W2a·W2b alone. */
    @Benchmark
    public void lokrRebuild(Adapters a) {
        Backend.cpu().gemm(false, false, 1f, a.w2a, a.w2b, 0f, a.w2);
    }

    /** The table rows from this class's figures (ms per call) beside the base layer's time and the FMA peak. */
    static List<BenchRunner.Row> rows(Map<String, BenchRunner.Figure> f, BenchRunner.Figure baseMs, BenchRunner.Figure fma, Map<String, String> load) {
        List<BenchRunner.Row> rows = new ArrayList<>();
        String baseC = baseMs.present() ? String.format(Locale.ROOT, "base %.1f ms", baseMs.value()) : "base n/a";
        String fmaC = fma.present() ? String.format(Locale.ROOT, "FMA peak %.0f GFLOP/s", fma.value()) : "FMA peak n/a";
        BenchRunner.Figure krona = f.get("kronaFwdBwd"), adapter = f.get("kronaAdapter"), mat = f.get("kronaMaterialized");
        if (krona != null) {
            double q = ratio(krona, baseMs);
            rows.add(new BenchRunner.Row("base + KronA 64x64 (x) 64x64 fwd+bwd (own fork)", krona, "ms", baseC, q, "<= 1.1" + mark(q <= 1.1, q))
                    .withLoad(load.get("KronBench.kronaFwdBwd")));
        }
        if (adapter != null) {
            // Kronecker apply: forward 2 products, backward 4, each 2·T·64³ flops.
            BenchRunner.Figure rate = new BenchRunner.Figure(6 * 2.0 * T * 64 * 64 * 64 / (adapter.value() * 1e-3) / 1e9, Double.NaN);
            rows.add(new BenchRunner.Row("KronA adapter alone (kronForward+Backward), 6·2·T·64^3 flops", rate, "GFLOP/s", fmaC,
                    ratio(rate, fma), "").withLoad(load.get("KronBench.kronaAdapter")));
            if (baseMs.present()) {
                double q = (baseMs.value() + adapter.value()) / baseMs.value();
                rows.add(new BenchRunner.Row("KronA / base: (base + adapter alone) / base", new BenchRunner.Figure(q, Double.NaN), "ratio", baseC, q,
                        "<= 1.1" + mark(q <= 1.1, q)));
            }
        }
        if (adapter != null && mat != null) {
            double q = mat.value() / adapter.value();
            rows.add(new BenchRunner.Row("KronA materialise-then-GEMM adapter / factored adapter", mat, "ms",
                    String.format(Locale.ROOT, "factored %.2f ms", adapter.value()), q, ">= 10" + mark(q >= 10, q)).withLoad(load.get("KronBench.kronaMaterialized")));
        }
        addMethod(rows, f.get("lohaFwdBwd"), f.get("lohaRebuild"), "LoHa r=8", baseMs, baseC, load, "KronBench.lohaFwdBwd");
        addMethod(rows, f.get("lokrFwdBwd"), f.get("lokrRebuild"), "LoKr factor 16 r=8", baseMs, baseC, load, "KronBench.lokrFwdBwd");
        return rows;
    }

    private static void addMethod(List<BenchRunner.Row> rows, BenchRunner.Figure total, BenchRunner.Figure rebuild, String what,
                                  BenchRunner.Figure baseMs, String baseC, Map<String, String> load, String label) {
        if (total == null) return;
        rows.add(new BenchRunner.Row("base + " + what + " fwd+bwd (own fork)", total, "ms", baseC, ratio(total, baseMs), "").withLoad(load.get(label)));
        if (rebuild != null) {
            double share = rebuild.value() / total.value();
            rows.add(new BenchRunner.Row(what + ": weight rebuild / fwd+bwd", rebuild, "ms", String.format(Locale.ROOT, "fwd+bwd %.1f ms", total.value()),
                    share, ""));
        }
    }

    private static double ratio(BenchRunner.Figure a, BenchRunner.Figure b) {
        return a.present() && b.present() ? a.value() / b.value() : Double.NaN;
    }

    private static String mark(boolean ok, double q) {
        return Double.isNaN(q) ? "" : ok ? "  ok" : "  MISS";
    }
}
