package io.peft4j.bench;

import io.peft4j.backend.Backend;
import io.peft4j.data.Dataset;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Mlp;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.PeftModel;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import io.peft4j.variants.adalora.AdaLoraConfig;
import io.peft4j.variants.dylora.DyLoraConfig;
import io.peft4j.variants.lora.LoraConfig;
import io.peft4j.variants.selora.SeLoraConfig;
import io.peft4j.variants.sora.SoraConfig;
import java.util.SplittableRandom;
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
 * The rank-adaptive ops against their ceilings, and the rank-adaptive methods' training steps on the
 * demo MLP against a LoRA step: the gated low-rank forward + backward at T = 512, d = 4096, r = 16
 * (6·T·r·(d_in + d_out) flops, against the FMA peak and beside LoRA's adapterFwdBwd), the importance
 * EMA update over 16M floats (6·4 bytes per element, against the copy bandwidth), and one training
 * step (forward, backward, callbacks, AdamW) of each method at r = 8, batch 128.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class RankAdaptiveBench {
    public static final long T = 512, D = 4096, R = 16;
    /** Elements of the importance update; bytes moved: 6·4·N (read w, grad, ibar, ubar; write ibar, ubar). */
    public static final long N = 16L << 20;
    /** Steps per invocation of {@link #methodSteps}. */
    public static final int STEPS = 20;

    @State(Scope.Benchmark)
    public static class Gated {
        Backend be;
        Tensor x, a, g, b, h, hg, y, gy, gb, ws, da, db, dg, dx;

        @Setup(Level.Trial)
        public void setup() {
            be = Backend.cpu();
            x = Fill.random(be, T, D);
            a = Fill.uniform(be, -0.02f, 0.02f, R, D);
            g = Fill.random(be, R);
            b = Fill.uniform(be, -0.02f, 0.02f, D, R);
            h = Fill.random(be, T, R);
            hg = Fill.random(be, T, R);
            y = Fill.random(be, T, D);
            gy = Fill.random(be, T, D);
            gb = Fill.random(be, T, R);
            ws = Fill.random(be, T, R);
            da = Fill.random(be, R, D);
            db = Fill.random(be, D, R);
            dg = Fill.random(be, R);
            dx = Fill.random(be, T, D);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            Fill.close(x, a, g, b, h, hg, y, gy, gb, ws, da, db, dg, dx);
        }
    }

    @State(Scope.Benchmark)
    public static class Importance {
        Backend be;
        Tensor w, grad, ibar, ubar;

        @Setup(Level.Trial)
        public void setup() {
            be = Backend.cpu();
            w = Fill.random(be, N);
            grad = Fill.uniform(be, -1e-2f, 1e-2f, N);
            ibar = Fill.uniform(be, 0f, 1e-3f, N);
            ubar = Fill.uniform(be, 0f, 1e-3f, N);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            Fill.close(w, grad, ibar, ubar);
        }
    }

    /** The demo MLP 784-512-512-10 with one method at r = 8 on all linear layers, and a synthetic batch stream. */
    @State(Scope.Benchmark)
    public static class Demo {
        @Param({"lora", "dylora", "adalora", "sora", "selora"})
        public String method;

        Backend be;
        PeftModel model;
        Dataset data;

        @Setup(Level.Trial)
        public void setup() {
            be = Backend.cpu();
            AdapterConfig cfg = switch (method) {
                case "lora" -> LoraConfig.builder().r(8).alpha(16).targetModules("fc1", "fc2", "fc3").build();
                case "dylora" -> DyLoraConfig.builder().r(8).alpha(16).targetModules("fc1", "fc2", "fc3").build();
                case "adalora" -> AdaLoraConfig.builder().initR(8).targetR(4).totalStep(100_000).deltaT(1000)
                        .targetModules("fc1", "fc2", "fc3").build();   // importance and regulariser every step; no mask in 20 steps, so ranks stay 8
                case "sora" -> SoraConfig.builder().r(8).alpha(16).targetModules("fc1", "fc2", "fc3").build();
                // r = 8 from the start and no growth (λ huge), one trial re-run every 10 steps: the test's own cost.
                case "selora" -> SeLoraConfig.builder().initR(8).alpha(16).expandStep(10).expandThreshold(1e30f)
                        .targetModules("fc1", "fc2", "fc3").build();
                default -> throw new IllegalArgumentException(method);
            };
            model = PeftModel.wrap(new Mlp(be, Mlp.Activation.RELU, 0, 784, 512, 512, 10), cfg, be, 1);
            SplittableRandom r = new SplittableRandom(5);
            int n = 128 * STEPS;
            float[] xs = new float[n * 784];
            int[] ys = new int[n];
            for (int i = 0; i < xs.length; i++) xs[i] = (float) r.nextDouble();
            for (int i = 0; i < n; i++) ys[i] = r.nextInt(10);
            data = new Dataset(xs, ys, n, 784, 10);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            model.close();
        }
    }

    @Benchmark
    public void gatedFwdBwd(Gated p) {
        p.be.rankGatedForward(0.5f, p.x, p.a, p.g, p.b, p.h, p.hg, p.y);
        p.be.rankGatedBackward(0.5f, p.x, p.a, p.g, p.b, p.h, p.gy, p.gb, p.ws, p.da, p.db, p.dg, p.dx, false);
    }

    @Benchmark
    public void importanceUpdate(Importance p) {
        p.be.rankImportanceUpdate(p.w, p.grad, p.ibar, p.ubar, 0.85f, 0.85f);
    }

    /** {@link #STEPS} training steps of batch 128 with the method's callbacks installed, as the CLI trains. */
    @Benchmark
    public long methodSteps(Demo d) {
        Trainer.Config cfg = Trainer.Config.builder().maxSteps(STEPS).batchSize(128).lr(1e-3f).seed(1).evalEvery(0).progress(false).build();
        try (Trainer t = new Trainer(d.model, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0f), cfg, d.be)) {
            d.model.trainerCallbacks().forEach(t::addCallback);
            return t.fit(d.data, null).steps();
        }
    }
}
