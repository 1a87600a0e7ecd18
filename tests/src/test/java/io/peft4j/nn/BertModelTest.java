package io.peft4j.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.peft4j.backend.Backend;
import io.peft4j.data.Dataset;
import io.peft4j.io.HuggingFaceBert;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.io.SafetensorsWriter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.DoubleSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The BERT encoder against {@link BertReference} (float64): the last hidden state at every
 * position and every parameter's gradient (the embedding tables' included) for a batch of
 * right-padded sequences of lengths 1 to t, and the classifier's logits and gradients through mean
 * pooling with and without L2 normalisation; the reference's gradients against central
 * differences; Hugging Face names; padding invariance; training; weight loading and its errors;
 * the checkpoint round trip.
 */
class BertModelTest {
    static final Backend B = Backend.cpu();
    /** vocab 37, hidden 12, 2 layers of 3 heads, intermediate 20, 16 positions, 2 token types. */
    static final BertConfig TINY = new BertConfig(37, 12, 2, 3, 20, 16, 2, 1e-12f);
    static final int[] LENGTHS = {1, 16, 7, 11, 3};
    static final int T = 16;
    static final int CLASSES = 5;

    // ---- helpers ----

    static float[] normal(SplittableRandom r, int n, double std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * std);
        return a;
    }

    static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }

    /** Every parameter random: tables N(0, 0.7²), Linear weights N(0, 1/in), biases N(0, 0.3²), LayerNorms N(1, 0.2²) and N(0, 0.2²). */
    static void randomize(Module m, SplittableRandom r) {
        m.namedParameters().forEach((name, p) -> {
            int n = (int) p.numel();
            float[] v;
            if (name.contains("LayerNorm.weight")) {
                v = normal(r, n, 0.2);
                for (int i = 0; i < n; i++) v[i] += 1f;
            } else if (name.contains("LayerNorm") || name.endsWith("bias")) {
                v = normal(r, n, name.contains("LayerNorm") ? 0.2 : 0.3);
            } else if (name.contains("embeddings")) {
                v = normal(r, n, 0.7);
            } else {
                v = normal(r, n, 1 / Math.sqrt(p.value().dim(1)));
            }
            p.value().copyFrom(v);
        });
    }

    static Map<String, double[]> values(Module m) {
        Map<String, double[]> out = new LinkedHashMap<>();
        m.namedParameters().forEach((n, p) -> out.put(n, toDouble(p.value().toFloatArray())));
        return out;
    }

    /** Right-padded ids [b, t]: real tokens in [1, vocab), many repeated (vocab 37). */
    static int[] ids(SplittableRandom r, int[] lengths, int t, int vocab) {
        int[] ids = new int[lengths.length * t];
        for (int s = 0; s < lengths.length; s++)
            for (int i = 0; i < lengths[s]; i++) ids[s * t + i] = 1 + r.nextInt(vocab - 1);
        return ids;
    }

    /** A step context whose arena memory is NaN before the step: any output a kernel fails to write shows up. */
    static StepContext poisonedContext() {
        StepContext ctx = new StepContext(B);
        ctx.begin(true, 0);
        B.fill(Float.NaN, ctx.allocate(1 << 18));   // the arena's first 1 MiB chunk, reused by the next step
        return ctx;
    }

    /** max|got − ref| <= tol·max|ref|, no NaN. */
    static void assertClose(double[] ref, float[] got, double tol, String what) {
        assertEquals(ref.length, got.length, what + ": length");
        double maxRef = 0, maxErr = 0;
        for (int i = 0; i < ref.length; i++) {
            if (!Float.isFinite(got[i])) fail(what + "[" + i + "] = " + got[i]);
            maxRef = Math.max(maxRef, Math.abs(ref[i]));
            maxErr = Math.max(maxErr, Math.abs(got[i] - ref[i]));
        }
        assertTrue(maxRef > 0, what + ": the reference is all zero (the test would prove nothing)");
        assertTrue(maxErr <= tol * maxRef, what + ": max error " + maxErr + " > " + tol + " · max|ref| " + maxRef);
    }

    /**
     * Every gradient against the reference. key.bias's is 0 in exact arithmetic (it adds q·b_k to
     * every score of a row, which softmax ignores): there the fp32 result must be roundoff-small
     * next to key.weight's gradient.
     */
    static void assertGradients(Module m, Map<String, double[]> grads, java.util.function.Predicate<String> compared) {
        m.namedParameters().forEach((n, prm) -> {
            if (!compared.test(n)) return;
            float[] got = prm.grad().toFloatArray();
            if (n.endsWith("attention.self.key.bias")) {
                double scale = 0;
                for (float v : prm.grad().toFloatArray()) assertTrue(Float.isFinite(v), n);
                for (double v : grads.get(n.replace(".bias", ".weight"))) scale = Math.max(scale, Math.abs(v));
                for (int i = 0; i < got.length; i++) {
                    assertTrue(Math.abs(grads.get(n)[i]) < 1e-12 * scale, n + " reference is not ~0");
                    assertTrue(Math.abs(got[i]) <= 1e-5 * scale, n + "[" + i + "] = " + got[i] + ", should be ~0 next to " + scale);
                }
            } else {
                assertClose(grads.get(n), got, 1e-4, "∂L/∂" + n);
            }
        });
    }

    static void zeroGrads(Module m) {
        for (Parameter p : m.trainableParameters()) B.fill(0f, p.grad());
    }

    // ---- forward and backward against the float64 reference ----

    @Test
    void encoderHiddenStatesAndEveryGradientMatchTheFloat64Reference() {
        SplittableRandom r = new SplittableRandom(0xBE27);
        int b = LENGTHS.length;
        int[] ids = ids(r, LENGTHS, T, TINY.vocabSize());
        int[] types = new int[b * T];
        for (int i = 0; i < types.length; i++) types[i] = r.nextInt(2);
        float[] g = normal(r, b * T * TINY.hidden(), 1.0);
        try (BertModel bert = new BertModel(B, TINY, 3); StepContext ctx = poisonedContext()) {
            randomize(bert, r);
            zeroGrads(bert);
            Map<String, double[]> p = values(bert);
            ctx.begin(true, 1);
            Tensor h = bert.hiddenStates(ctx, Tensor.ofInts(ids, b, T), Tensor.ofInts(types, b, T));
            assertArrayEquals(new long[] {b * T, TINY.hidden()}, h.shape());
            assertArrayEquals(LENGTHS, bert.lengths());
            BertReference ref = new BertReference(TINY, p, b, T, ids, types, LENGTHS);
            assertClose(ref.hidden(), h.toFloatArray(), 2e-5, "last hidden state");
            bert.backward(ctx, ctx.allocate(b * T, TINY.hidden()).copyFrom(g), false);
            Map<String, double[]> grads = ref.hiddenBackward(toDouble(g));
            assertEquals(grads.keySet(), bert.namedParameters().keySet(), "a reference gradient for every parameter");
            assertGradients(bert, grads, n -> true);
            assertEquals(0f, maxAbsRow(bert.namedParameters().get("embeddings.word_embeddings.weight").grad(), BertModel.PAD_ID),
                    "the [PAD] row of word_embeddings gets no gradient");
        }
    }

    static float maxAbsRow(Tensor t, int row) {
        float m = 0;
        for (long j = 0; j < t.dim(1); j++) m = Math.max(m, Math.abs(t.getFloat(row * t.dim(1) + j)));
        return m;
    }

    @ParameterizedTest(name = "normalize={0}")
    @ValueSource(booleans = {false, true})
    void classifierLogitsAndEveryGradientMatchTheFloat64Reference(boolean normalize) {
        SplittableRandom r = new SplittableRandom(normalize ? 0xC1A5 : 0xC1A6);
        int b = LENGTHS.length;
        int[] ids = ids(r, LENGTHS, T, TINY.vocabSize());
        float[] g = normal(r, b * CLASSES, 1.0);
        try (BertClassifier clf = new BertClassifier(B, TINY, CLASSES, normalize, 5); StepContext ctx = poisonedContext()) {
            randomize(clf, r);
            zeroGrads(clf);
            Map<String, double[]> p = values(clf);
            ctx.begin(true, 1);
            // The Trainer's float batches: whole numbers in F32.
            float[] fids = new float[ids.length];
            for (int i = 0; i < ids.length; i++) fids[i] = ids[i];
            Tensor logits = clf.forward(ctx, ctx.allocate(b, T).copyFrom(fids));
            BertReference ref = new BertReference(TINY, p, b, T, ids, new int[b * T], LENGTHS);
            assertClose(ref.logits(CLASSES, normalize), logits.toFloatArray(), 2e-5, "logits");
            assertEquals(null, clf.backward(ctx, ctx.allocate(b, CLASSES).copyFrom(g), false));
            Map<String, double[]> grads = ref.logitsBackward(CLASSES, normalize, toDouble(g));
            assertEquals(grads.keySet(), clf.namedParameters().keySet(), "a reference gradient for every parameter");
            String types = "embeddings.token_type_embeddings.weight";
            assertGradients(clf, grads, n -> !n.equals(types));
            // Only token type 0 is used: row 0 as the reference, row 1 gets nothing.
            Tensor dtypes = clf.namedParameters().get(types).grad();
            assertClose(java.util.Arrays.copyOf(grads.get(types), TINY.hidden()),
                    java.util.Arrays.copyOf(dtypes.toFloatArray(), TINY.hidden()), 1e-4, "∂L/∂" + types + "[0]");
            assertEquals(0f, maxAbsRow(dtypes, 1), "token type 1 unused");
            // The pooled embedding of encode(): the reference's, normalised or not.
            ctx.begin(false, 0);
            BertModel.Encoded enc = clf.encode(ctx, Tensor.ofInts(ids, b, T), null, normalize);
            assertClose(ref.pool(ref.hidden(), normalize), enc.pooled().toFloatArray(), 2e-5, "pooled embedding");
            assertClose(ref.hidden(), enc.lastHiddenState().toFloatArray(), 2e-5, "encode's last hidden state");
        }
    }

    /** The hand-written reference backward against central differences of the reference forward. */
    @ParameterizedTest(name = "normalize={0}")
    @ValueSource(booleans = {false, true})
    void referenceGradientsMatchCentralDifferences(boolean normalize) {
        SplittableRandom r = new SplittableRandom(0xFD + (normalize ? 1 : 0));
        int[] lengths = {1, 5, 3};
        int b = lengths.length, t = 5;
        int[] ids = ids(r, lengths, t, TINY.vocabSize());
        int[] types = new int[b * t];
        for (int i = 0; i < types.length; i++) types[i] = r.nextInt(2);
        try (BertClassifier clf = new BertClassifier(B, TINY, CLASSES, normalize, 7)) {
            randomize(clf, r);
            Map<String, double[]> p = values(clf);
            double[] gh = toDouble(normal(r, b * t * TINY.hidden(), 1.0)), gl = toDouble(normal(r, b * CLASSES, 1.0));
            BertReference ref = new BertReference(TINY, p, b, t, ids, types, lengths);
            // Loss: Σ gh ⊙ hidden + Σ gl ⊙ logits, so both backward paths are checked.
            ref.logits(CLASSES, normalize);
            Map<String, double[]> viaLogits = ref.logitsBackward(CLASSES, normalize, gl);
            ref.hidden();
            Map<String, double[]> viaHidden = ref.hiddenBackward(gh);
            DoubleSupplier loss = () -> dot(gh, ref.hidden()) + dot(gl, ref.logits(CLASSES, normalize));
            for (var e : p.entrySet()) {
                String name = e.getKey();
                double[] at = e.getValue();
                double[] grad = viaLogits.get(name).clone();
                double[] gh2 = viaHidden.get(name);
                if (gh2 != null) for (int i = 0; i < grad.length; i++) grad[i] += gh2[i];
                for (int trial = 0; trial < 3; trial++) {
                    int i = r.nextInt(at.length);
                    // The [PAD] row has no gradient by design (padding_idx), not by calculus: skip it.
                    if (name.equals("embeddings.word_embeddings.weight") && i < TINY.hidden()) i += TINY.hidden();
                    // Only used rows of the tables have a nonzero derivative: aim at a used one half the time.
                    if (name.equals("embeddings.word_embeddings.weight") && trial < 2) i = ids[t + r.nextInt(lengths[1])] * TINY.hidden() + r.nextInt(TINY.hidden());
                    double keep = at[i], step = 1e-5;
                    at[i] = keep + step;
                    double up = loss.getAsDouble();
                    at[i] = keep - step;
                    double down = loss.getAsDouble();
                    at[i] = keep;
                    double fd = (up - down) / (2 * step);
                    assertEquals(fd, grad[i], 1e-6 * (1 + Math.abs(fd)), name + "[" + i + "] against central differences");
                }
            }
        }
    }

    static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    // ---- names, padding, inputs ----

    @Test
    void parameterNamesAreHuggingFaces() {
        List<String> expected = new ArrayList<>(List.of("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"));
        for (int l = 0; l < TINY.layers(); l++) {
            for (String m : List.of("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                    "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm")) {
                expected.add("encoder.layer." + l + "." + m + ".weight");
                expected.add("encoder.layer." + l + "." + m + ".bias");
            }
        }
        try (BertModel bert = new BertModel(B, TINY, 0)) {
            assertEquals(expected, new ArrayList<>(bert.namedParameters().keySet()));
            assertArrayEquals(new long[] {12, 20}, bert.namedParameters().get("encoder.layer.1.output.dense.weight").value().shape());
            assertTrue(bert.namedModules().get("encoder.layer.0.attention.self.query") instanceof Linear);
            // (37 + 16 + 2)·12 + 2·12 + 2·(4·(12·12 + 12) + 2·2·12 + 12·20 + 20 + 20·12 + 12)
            assertEquals(3052, bert.parameterCount());
            assertEquals(0f, maxAbsRow(bert.namedParameters().get("embeddings.word_embeddings.weight").value(), BertModel.PAD_ID),
                    "the [PAD] row starts at zero");
        }
        try (BertClassifier clf = new BertClassifier(B, TINY, 3, true, 0)) {
            expected.add("classifier.weight");
            expected.add("classifier.bias");
            assertEquals(expected, new ArrayList<>(clf.namedParameters().keySet()));
        }
    }

    /** More padding after a row changes nothing of its real tokens' states nor of its pooled embedding. */
    @Test
    void paddingDoesNotChangeTheRealTokens() {
        SplittableRandom r = new SplittableRandom(21);
        int[] lengths = {4, 6};
        int[] short6 = ids(r, lengths, 6, TINY.vocabSize());
        int[] long13 = new int[2 * 13];
        for (int s = 0; s < 2; s++) System.arraycopy(short6, s * 6, long13, s * 13, 6);
        try (BertModel bert = new BertModel(B, TINY, 1); StepContext ctx = new StepContext(B)) {
            randomize(bert, r);
            ctx.begin(false, 0);
            BertModel.Encoded a = bert.encode(ctx, Tensor.ofInts(short6, 2, 6), null, true);
            float[] ha = a.lastHiddenState().toFloatArray(), pa = a.pooled().toFloatArray();
            BertModel.Encoded c = bert.encode(ctx, Tensor.ofInts(long13, 2, 13), null, true);
            float[] hc = c.lastHiddenState().toFloatArray(), pc = c.pooled().toFloatArray();
            int d = TINY.hidden();
            for (int s = 0; s < 2; s++)
                for (int i = 0; i < lengths[s]; i++)
                    for (int j = 0; j < d; j++) assertEquals(ha[(s * 6 + i) * d + j], hc[(s * 13 + i) * d + j], 2e-6, "row " + s + " token " + i);
            for (int i = 0; i < pa.length; i++) assertEquals(pa[i], pc[i], 2e-6, "pooled " + i);
            double n0 = 0;
            for (int j = 0; j < d; j++) n0 += pa[j] * pa[j];
            assertEquals(1.0, Math.sqrt(n0), 1e-6, "normalised");
        }
    }

    @Test
    void badIdsAreRefusedNamingWhatIsWrong() {
        try (BertModel bert = new BertModel(B, TINY, 0); StepContext ctx = new StepContext(B)) {
            ctx.begin(false, 0);
            assertRefused(() -> bert.forward(ctx, Tensor.ofInts(new int[] {5, 0, 7}, 1, 3)), "row 0 has token 7 at 2 after padding");
            assertRefused(() -> bert.forward(ctx, Tensor.ofInts(new int[] {5, 6, 0, 0}, 2, 2)), "row 1 has no tokens");
            assertRefused(() -> bert.forward(ctx, Tensor.ofInts(new int[] {5, 37}, 1, 2)), "token id 37 at [0, 1] is outside the vocabulary [0, 37)");
            assertRefused(() -> bert.forward(ctx, Tensor.ofInts(new int[] {-2, 1}, 1, 2)), "token id -2 at [0, 0]");
            assertRefused(() -> bert.forward(ctx, Tensor.ofInts(new int[17], 1, 17)), "longer than max_position_embeddings 16");
            assertRefused(() -> bert.forward(ctx, Tensor.of(new float[] {3f, 1.5f}, 1, 2)), "token id 1.5 at element 1 is not a whole number");
            assertRefused(() -> bert.forward(ctx, Tensor.ofInts(new int[] {3, 4}, 2)), "token ids [b, t]");
            assertRefused(() -> bert.hiddenStates(ctx, Tensor.ofInts(new int[] {3, 4}, 1, 2), Tensor.ofInts(new int[] {0, 2}, 1, 2)),
                    "token type 2 at [0, 1] is outside [0, 2)");
        }
    }

    static void assertRefused(org.junit.jupiter.api.function.Executable call, String fragment) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call, fragment);
        assertTrue(e.getMessage().contains(fragment), "'" + e.getMessage() + "' does not contain '" + fragment + "'");
    }

    /** torch.nn.functional.normalize: y = x / max(‖x‖, 1e-12); a row whose norm is below eps is divided by eps, and so is its gradient. */
    @Test
    void l2NormalizeMatchesTorchIncludingTheClampedNorm() {
        SplittableRandom r = new SplittableRandom(61);
        int b = 3, d = 7;
        float[] x = normal(r, b * d, 1.0), g = normal(r, b * d, 1.0);
        for (int j = 0; j < d; j++) x[d + j] = (float) (1e-14 * (j + 1));   // row 1: norm ~1.4e-13 < 1e-12
        L2Normalize norm = new L2Normalize(L2Normalize.DEFAULT_EPS);
        try (StepContext ctx = new StepContext(B)) {
            ctx.begin(true, 0);
            float[] y = norm.forward(ctx, ctx.allocate(b, d).copyFrom(x)).toFloatArray();
            float[] dx = norm.backward(ctx, ctx.allocate(b, d).copyFrom(g), true).toFloatArray();
            for (int s = 0; s < b; s++) {
                double ss = 0, dot = 0;
                for (int j = 0; j < d; j++) ss += (double) x[s * d + j] * x[s * d + j];
                double den = Math.max(Math.sqrt(ss), 1e-12);
                boolean clamped = Math.sqrt(ss) < 1e-12;
                assertEquals(s == 1, clamped, "row " + s + " clamped");
                for (int j = 0; j < d; j++) dot += x[s * d + j] / den * g[s * d + j];
                for (int j = 0; j < d; j++) {
                    double yr = x[s * d + j] / den;
                    double dxr = clamped ? g[s * d + j] / 1e-12 : (g[s * d + j] - yr * dot) / den;
                    assertEquals(yr, y[s * d + j], 1e-6 * Math.max(1, Math.abs(yr)), "y[" + s + ", " + j + "]");
                    assertEquals(dxr, dx[s * d + j], 1e-5 * Math.abs(dxr) + 1e-6, "dx[" + s + ", " + j + "]");
                }
            }
        }
        assertThrows(IllegalArgumentException.class, () -> new L2Normalize(0f));
    }

    @Test
    void modulesThatNeedMoreThanOneInputSaySo() {
        try (BertModel bert = new BertModel(B, TINY, 0); StepContext ctx = new StepContext(B)) {
            ctx.begin(false, 0);
            Tensor x = ctx.allocate(2, TINY.hidden());
            for (String path : List.of("embeddings", "encoder.layer.0.attention.output", "encoder.layer.1.output")) {
                UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                        () -> bert.namedModules().get(path).forward(ctx, x), path);
                assertTrue(e.getMessage().contains("forward(ctx, "), e.getMessage());
            }
            assertThrows(IllegalStateException.class, () -> bert.backward(ctx, x, false), "backward before any forward");
            MeanPooling pool = new MeanPooling();
            assertRefused(() -> pool.setLengths(4, new int[] {2, 5}), "sequence 1 has length 5, outside [1, 4]");
            assertRefused(() -> pool.setLengths(4, new int[] {0}), "sequence 0 has length 0");
        }
    }

    // ---- training ----

    /** Three classes, each writing its tokens from its own third of the vocabulary; the Trainer fits it. */
    @Test
    void classifierTrainsWithTheTrainer() {
        SplittableRandom r = new SplittableRandom(77);
        int n = 120, t = 10;
        float[] x = new float[n * t];
        int[] labels = new int[n];
        for (int e = 0; e < n; e++) {
            labels[e] = e % 3;
            int len = 1 + r.nextInt(t);
            for (int i = 0; i < len; i++) x[e * t + i] = 1 + labels[e] * 12 + r.nextInt(12);
        }
        Dataset data = new Dataset(x, labels, n, t, 3);
        try (BertClassifier clf = new BertClassifier(B, TINY, 3, false, 2)) {
            Trainer.Config cfg = Trainer.Config.builder().epochs(8).batchSize(16).lr(3e-3f).schedule("cosine").seed(1).evalEvery(0).build();
            Trainer.Result res;
            try (Trainer tr = new Trainer(clf, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0.01f), cfg, B)) {
                res = tr.fit(data, null);
            }
            double first = res.epochs().get(0).trainLoss(), last = res.last().trainLoss();
            assertTrue(last < 0.3 * first, "train loss " + first + " -> " + last);
            try (StepContext ctx = new StepContext(B)) {
                assertTrue(Trainer.evaluate(clf, data, ctx, 50).accuracy() > 0.95, "the classes are learned");
            }
        }
    }

    // ---- weights ----

    static Map<String, Tensor> stateDict(Module m, String prefix) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        m.namedParameters().forEach((n, p) -> out.put(prefix + n, p.value().copy()));
        return out;
    }

    static float[] logits(BertModel m, int[] ids, int b, int t) {
        try (StepContext ctx = new StepContext(B)) {
            ctx.begin(false, 0);
            return m.forward(ctx, Tensor.ofInts(ids, b, t)).toFloatArray();
        }
    }

    static void assertBits(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++) assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), what + "[" + i + "]");
    }

    @Test
    void weightsLoadFromHuggingFaceNamesWithOrWithoutBertPrefix() {
        SplittableRandom r = new SplittableRandom(31);
        int[] ids = ids(r, new int[] {3, 5}, 5, TINY.vocabSize());
        try (BertClassifier src = new BertClassifier(B, TINY, 4, true, 1); BertModel dst = new BertModel(B, TINY, 2);
             BertClassifier dstClf = new BertClassifier(B, TINY, 4, true, 3)) {
            randomize(src, r);
            Map<String, Tensor> sd = stateDict(src, "bert.");
            sd.put("bert.pooler.dense.weight", Tensor.zeros(DType.F32, 12, 12));   // HF's pooler: skipped
            sd.put("bert.pooler.dense.bias", Tensor.zeros(DType.F32, 12));
            sd.put("classifier.weight", sd.remove("bert.classifier.weight"));
            sd.put("classifier.bias", sd.remove("bert.classifier.bias"));
            dstClf.loadWeights(sd);
            assertBits(logits(src, ids, 2, 5), logits(dstClf, ids, 2, 5), "classifier logits after loading");
            // The encoder alone refuses the classifier's tensors, naming them.
            assertRefused(() -> dst.loadWeights(sd), "unexpected [classifier.weight, classifier.bias]");
            sd.remove("classifier.weight").close();
            sd.remove("classifier.bias").close();
            dst.loadWeights(sd);
            try (StepContext a = new StepContext(B); StepContext c = new StepContext(B)) {
                a.begin(false, 0);
                c.begin(false, 0);
                assertBits(src.hiddenStates(a, Tensor.ofInts(ids, 2, 5), null).toFloatArray(),
                        dst.hiddenStates(c, Tensor.ofInts(ids, 2, 5), null).toFloatArray(), "hidden states after loading");
            }
            // The classifier head is optional: an encoder-only map loads and keeps the head as it was.
            float[] head = dstClf.classifier().weight().value().toFloatArray();
            dstClf.loadWeights(sd);
            assertBits(head, dstClf.classifier().weight().value().toFloatArray(), "head kept");
            sd.values().forEach(Tensor::close);
        }
    }

    @Test
    void badWeightMapsAreRefusedAndLeaveTheModelAsItWas() {
        try (BertModel src = new BertModel(B, TINY, 1); BertModel dst = new BertModel(B, TINY, 2)) {
            float[] before = dst.namedParameters().get("encoder.layer.0.attention.self.query.weight").value().toFloatArray();
            Map<String, Tensor> sd = stateDict(src, "");
            sd.remove("encoder.layer.1.output.LayerNorm.bias").close();
            sd.remove("embeddings.word_embeddings.weight").close();
            sd.put("encoder.layer.2.attention.self.query.weight", Tensor.zeros(DType.F32, 12, 12));
            sd.put("encoder.layer.0.intermediate.dense.weight", Tensor.zeros(DType.F32, 12, 20));   // transposed
            sd.put("encoder.layer.0.output.dense.bias", Tensor.zeros(DType.BF16, 12));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> dst.loadWeights(sd));
            for (String part : List.of("missing [embeddings.word_embeddings.weight, encoder.layer.1.output.LayerNorm.bias]",
                    "unexpected [encoder.layer.2.attention.self.query.weight]",
                    "'encoder.layer.0.intermediate.dense.weight' has shape [12, 20], the model needs [20, 12]",
                    "'encoder.layer.0.output.dense.bias' is BF16[12], must be F32")) {
                assertTrue(e.getMessage().contains(part), "'" + e.getMessage() + "' does not contain '" + part + "'");
            }
            sd.values().forEach(Tensor::close);
            Map<String, Tensor> nan = stateDict(src, "");
            nan.get("encoder.layer.1.intermediate.dense.bias").setFloat(3, Float.NaN);
            assertRefused(() -> dst.loadWeights(nan), "'encoder.layer.1.intermediate.dense.bias' holds NaN at element 3");
            nan.values().forEach(Tensor::close);
            assertBits(before, dst.namedParameters().get("encoder.layer.0.attention.self.query.weight").value().toFloatArray(), "unchanged");
        }
    }

    @Test
    void huggingFaceDirectoryLoads(@TempDir Path dir) throws Exception {
        SplittableRandom r = new SplittableRandom(41);
        int[] ids = ids(r, new int[] {2, 4, 4}, 4, TINY.vocabSize());
        try (BertModel src = new BertModel(B, TINY, 1)) {
            randomize(src, r);
            SafetensorsWriter w = new SafetensorsWriter();
            src.namedParameters().forEach((n, p) -> w.put("bert." + n, DType.F32, p.value().shape(), p.value().segment()));
            w.put("bert.embeddings.position_ids", DType.I64, new long[] {1, 16}, new byte[16 * 8]);
            w.putF32("bert.pooler.dense.weight", new long[] {12, 12}, new float[144]);
            w.putF32("bert.pooler.dense.bias", new long[] {12}, new float[12]);
            w.write(dir.resolve("model.safetensors"));
            Files.writeString(dir.resolve("config.json"), """
                    {"architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu", "vocab_size": 37, "hidden_size": 12,
                     "num_hidden_layers": 2, "num_attention_heads": 3, "intermediate_size": 20, "max_position_embeddings": 16,
                     "type_vocab_size": 2, "layer_norm_eps": 1e-12, "position_embedding_type": "absolute", "pad_token_id": 0}
                    """);
            try (HuggingFaceBert.Weights hf = HuggingFaceBert.read(dir); BertModel dst = new BertModel(B, hf.config(), 9)) {
                assertEquals(TINY, hf.config());
                dst.loadWeights(hf.tensors());
                assertBits(logits(src, ids, 3, 4), logits(dst, ids, 3, 4), "hidden states from the HF directory");
            }
        }
        Files.writeString(dir.resolve("config.json"), "{\"model_type\": \"bert\", \"hidden_act\": \"relu\", \"vocab_size\": 37}");
        assertRefused(() -> HuggingFaceBert.read(dir), "'hidden_act' is \"relu\", only \"gelu\" is supported");
        Files.writeString(dir.resolve("config.json"), "{\"vocab_size\": 37.5}");
        assertRefused(() -> HuggingFaceBert.read(dir), "'vocab_size' is 37.5, not an integer");
        Files.writeString(dir.resolve("config.json"), "{\"vocab_size\": 37}");
        assertRefused(() -> HuggingFaceBert.read(dir), "missing 'hidden_size'");
    }

    @Test
    void classifierCheckpointRoundTripIsBitExact(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("bert-clf.safetensors");
        SplittableRandom r = new SplittableRandom(51);
        int[] ids = ids(r, new int[] {1, 6, 3}, 6, TINY.vocabSize());
        float[] y0;
        try (BertClassifier clf = new BertClassifier(B, TINY, 4, true, 1)) {
            randomize(clf, r);
            y0 = logits(clf, ids, 3, 6);
            clf.save(file);
        }
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals("12", f.metadata().get("peft4j.bert.hidden_size"));
            assertEquals("true", f.metadata().get("peft4j.bert.normalize"));
            assertTrue(f.contains("encoder.layer.1.attention.self.value.weight") && f.contains("classifier.bias"), f.names().toString());
        }
        try (BertClassifier loaded = BertClassifier.load(B, file)) {
            assertEquals(TINY, loaded.config());
            assertEquals(4, loaded.classes());
            assertTrue(loaded.normalize());
            assertBits(y0, logits(loaded, ids, 3, 6), "logits after the round trip");
        }
        assertRefused(() -> BertModel.configFromMetadata(Map.of("peft4j.bert.vocab_size", "37"), "f"), "lacks 'peft4j.bert.hidden_size'");
        Map<String, String> meta = new LinkedHashMap<>(BertModel.metadata(TINY));
        meta.put("peft4j.bert.num_hidden_layers", "two");
        assertRefused(() -> BertModel.configFromMetadata(meta, "f"), "'peft4j.bert.num_hidden_layers' is 'two', not an integer");
    }
}
