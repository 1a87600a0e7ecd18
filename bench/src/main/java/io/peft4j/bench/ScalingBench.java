package io.peft4j.bench;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Sequential;
import io.peft4j.nn.StepContext;
import io.peft4j.peft.PeftModel;
import io.peft4j.tensor.Tensor;
import io.peft4j.variants.lora.LoraConfig;
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
 * The scaling adapters' costs: DoRA's forward + backward through a real Linear layer against
 * LoRA's at the same rank (T = 512, d_in = d_out = 4096, W0 frozen, as Trainer runs it), and the
 * row-norm kernel DoRA runs every step against copy bandwidth.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class ScalingBench {
    public static final long T = LowRankBench.T, D = LowRankBench.D_IN;
    /** Row norms over the copy ceiling's 64M floats, as an [8192, 8192] matrix (256 MiB read). */
    public static final long NORM_ROWS = 8192, NORM_COLS = CeilingBench.COPY_N / NORM_ROWS;

    /** One Linear 4096→4096 with a LoRA or DoRA adapter of rank r, and its input and output gradient. */
    @State(Scope.Benchmark)
    public static class Layer {
        @Param({"8", "16"})
        public int r;

        Backend be;
        PeftModel lora, dora;
        StepContext ctx;
        Tensor x, g;

        static PeftModel wrap(Backend be, int r, boolean useDora) {
            Sequential root = new Sequential();
            root.add("q", new Linear(be, D, D, true, 1));
            PeftModel pm = PeftModel.wrap(root, LoraConfig.builder().r(r).alpha(2f * r).useDora(useDora).targetModules("q").build(), be, 2);
            Linear l = pm.adaptedLayers(PeftModel.DEFAULT_ADAPTER).get("q");
            l.setCacheFrozenTranspose(true);   // as Trainer.fit runs every layer
            // B = 0 at init would let nothing depend on it; make it non-zero as after training.
            try (Tensor b = Fill.uniform(be, -0.01f, 0.01f, D, r)) {
                l.adapter(PeftModel.DEFAULT_ADAPTER).parameters().get(1).value().copyFrom(b);
            }
            return pm;
        }

        @Setup(Level.Trial)
        public void setup() {
            be = Backend.cpu();
            lora = wrap(be, r, false);
            dora = wrap(be, r, true);
            ctx = new StepContext(be);
            x = Fill.random(be, T, D);
            g = Fill.random(be, T, D);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            Fill.close(x, g);
            ctx.close();
            lora.close();
            dora.close();
        }
    }

    private static Tensor step(Layer p, PeftModel model) {
        p.ctx.begin(true, 1);
        model.forward(p.ctx, p.x);
        return model.backward(p.ctx, p.g, true);
    }

    /** LoRA through Linear (the plain additive path of the adapter SPI). */
    @Benchmark
    public Tensor loraLayerFwdBwd(Layer p) {
        return step(p, p.lora);
    }

    /** DoRA through Linear: LoRA plus the row norm, the magnitude scaling and its gradient. */
    @Benchmark
    public Tensor doraLayerFwdBwd(Layer p) {
        return step(p, p.dora);
    }

    @State(Scope.Benchmark)
    public static class Norms {
        Backend be;
        Tensor w, out;

        @Setup(Level.Trial)
        public void setup() {
            be = Backend.cpu();
            w = Fill.uniform(be, -0.02f, 0.02f, NORM_ROWS, NORM_COLS);
            out = Fill.random(be, NORM_ROWS);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            Fill.close(w, out);
        }
    }

    /** ‖W‖_row over 64M floats: a read-only stream, compared with the copy ceiling's bandwidth. */
    @Benchmark
    public void rowNorms(Norms p) {
        p.be.rowNorms(p.w, p.out);
    }
}
