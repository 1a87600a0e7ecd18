package io.peft4j.bench;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The transformer kernels: fused attention forward + backward (against the GEMM ceiling: its work
 * is 14·b·heads·t²·headDim flops, 4 in forward, 10 in the backward that recomputes the scores) at
 * the demo ViT's shape and at ViT-B/16's, and LayerNorm forward + backward (against the copy
 * bandwidth: 28 bytes per element moved, see {@link #LN_BYTES_PER_ELEMENT}).
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class TransformerBench {
    /** LayerNorm rows [t, d]: 16 MiB per tensor, beyond the caches. */
    public static final long LN_T = 65536, LN_D = 64;
    /** forward: read x, write y (8 B); backward: read x, g, write dx (12 B), then x, g again for dw, db (8 B). */
    public static final double LN_BYTES_PER_ELEMENT = 28;

    @State(Scope.Benchmark)
    public static class Attention {
        /** batch x tokens x heads x head dim: the demo ViT (128 images of 17 tokens), ViT-B/16 (197 tokens, 12 heads of 64). */
        @Param({"128x17x4x16", "32x197x12x64"})
        public String shape;

        Backend be;
        long b, t;
        int heads;
        Tensor q, k, v, out, lse, dout, dq, dk, dv;

        @Setup(Level.Trial)
        public void setup() {
            String[] s = shape.split("x");
            b = Long.parseLong(s[0]);
            t = Long.parseLong(s[1]);
            heads = Integer.parseInt(s[2]);
            long width = heads * Long.parseLong(s[3]);
            be = Backend.cpu();
            q = Fill.random(be, b * t, width);
            k = Fill.random(be, b * t, width);
            v = Fill.random(be, b * t, width);
            dout = Fill.random(be, b * t, width);
            out = Fill.random(be, b * t, width);
            dq = Fill.random(be, b * t, width);
            dk = Fill.random(be, b * t, width);
            dv = Fill.random(be, b * t, width);
            lse = Fill.random(be, b * heads, t);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            Fill.close(q, k, v, out, lse, dout, dq, dk, dv);
        }

        /** Flops of one forward + backward. */
        public static double flops(String shape) {
            String[] s = shape.split("x");
            double b = Double.parseDouble(s[0]), t = Double.parseDouble(s[1]), h = Double.parseDouble(s[2]), dh = Double.parseDouble(s[3]);
            return 14 * b * h * t * t * dh;
        }
    }

    @Benchmark
    public void attentionFwdBwd(Attention a) {
        float scale = (float) (1 / Math.sqrt(a.q.dim(1) / (double) a.heads));
        a.be.attentionForward(a.b, a.heads, scale, false, null, a.q, a.k, a.v, a.out, a.lse);
        a.be.attentionBackward(a.b, a.heads, scale, false, null, a.q, a.k, a.v, a.out, a.lse, a.dout, a.dq, a.dk, a.dv);
    }

    @State(Scope.Benchmark)
    public static class Norm {
        Backend be;
        Tensor x, w, bias, y, mean, rstd, g, dx, dw, db;

        @Setup(Level.Trial)
        public void setup() {
            be = Backend.cpu();
            x = Fill.random(be, LN_T, LN_D);
            w = Fill.random(be, LN_D);
            bias = Fill.random(be, LN_D);
            y = Fill.random(be, LN_T, LN_D);
            g = Fill.random(be, LN_T, LN_D);
            dx = Fill.random(be, LN_T, LN_D);
            mean = Fill.random(be, LN_T);
            rstd = Fill.random(be, LN_T);
            dw = Fill.random(be, LN_D);
            db = Fill.random(be, LN_D);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            Fill.close(x, w, bias, y, mean, rstd, g, dx, dw, db);
        }
    }

    @Benchmark
    public void layerNormFwdBwd(Norm n) {
        n.be.layerNormForward(1e-6f, n.x, n.w, n.bias, n.y, n.mean, n.rstd);
        n.be.layerNormBackward(n.x, n.w, n.mean, n.rstd, n.g, n.dx, n.dw, n.db);
    }
}
