package io.peft4j.bench;

import io.peft4j.backend.Backend;
import io.peft4j.nn.BertConfig;
import io.peft4j.nn.BertModel;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.tensor.Tensor;
import java.util.SplittableRandom;
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
 * BERT at all-MiniLM-L6-v2's sizes (random weights), a batch of B sequences of T tokens: the token
 * embedding lookup + scatter-add backward (against the copy bandwidth, {@link #EMBEDDING_BYTES_PER_ELEMENT})
 * and the whole encoder's inference forward (against the sgemm ceiling, {@link #encoderFlops()}).
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class BertBench {
    public static final BertConfig CONFIG = BertConfig.ALL_MINILM_L6_V2;
    public static final int B = 32, T = 64;
    /** forward: read a table row, write an output row (8 B); backward: read g, read and write the table row (12 B). */
    public static final double EMBEDDING_BYTES_PER_ELEMENT = 20;

    /** Forward flops: per token and layer, the six GEMMs (q, k, v, output.dense: 4·H²; intermediate, output: 2·H·I) and attention (2·2·T·H). */
    public static double encoderFlops() {
        double h = CONFIG.hidden(), i = CONFIG.intermediate();
        return (double) B * T * CONFIG.layers() * (2 * (4 * h * h + 2 * h * i) + 4.0 * T * h);
    }

    static int[] ids() {
        SplittableRandom r = new SplittableRandom(5);
        int[] ids = new int[B * T];
        for (int k = 0; k < ids.length; k++) ids[k] = 1 + r.nextInt(CONFIG.vocabSize() - 1);
        return ids;
    }

    @State(Scope.Benchmark)
    public static class Lookup {
        Backend be;
        Tensor ids, table, out, g, dtable;

        @Setup(Level.Trial)
        public void setup() {
            be = Backend.cpu();
            ids = Tensor.ofInts(ids(), (long) B * T);
            table = Fill.random(be, CONFIG.vocabSize(), CONFIG.hidden());
            dtable = Fill.random(be, CONFIG.vocabSize(), CONFIG.hidden());
            out = Fill.random(be, (long) B * T, CONFIG.hidden());
            g = Fill.random(be, (long) B * T, CONFIG.hidden());
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            Fill.close(ids, table, out, g, dtable);
        }
    }

    @Benchmark
    public void embeddingFwdBwd(Lookup s) {
        s.be.embeddingForward(s.ids, s.table, s.out);
        s.be.embeddingBackward(s.ids, s.g, s.dtable);
    }

    @State(Scope.Benchmark)
    public static class Encoder {
        BertModel bert;
        StepContext ctx;
        Tensor ids;

        @Setup(Level.Trial)
        public void setup() {
            Backend be = Backend.cpu();
            bert = new BertModel(be, CONFIG, 1);
            for (Parameter p : bert.namedParameters().values()) p.setRequiresGrad(false);
            ctx = new StepContext(be);
            ids = Tensor.ofInts(ids(), B, T);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            ctx.close();
            bert.close();
            ids.close();
        }
    }

    @Benchmark
    public float encoderForward(Encoder s) {
        s.ctx.begin(false, 0);
        return s.bert.encode(s.ctx, s.ids, null, true).pooled().getFloat(0);
    }
}
