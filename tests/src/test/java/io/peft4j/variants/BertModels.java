package io.peft4j.variants;

import static io.peft4j.variants.TestSupport.backend;

import io.peft4j.nn.BertClassifier;
import io.peft4j.nn.BertConfig;
import io.peft4j.nn.Module;
import io.peft4j.nn.StepContext;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;

/** A small BERT classifier for the method tables: query, key, value, dense are Linear layers like any other. */
public final class BertModels {
    private BertModels() {}

    /** vocab 37, hidden 12, 2 layers of 3 heads, intermediate 20, 16 positions. */
    public static final BertConfig TINY = new BertConfig(37, 12, 2, 3, 20, 16, 2, 1e-12f);

    /**
     * The contract table's shape ([t, 13] in, [t, 5] out): each row of floats becomes one sequence
     * of token ids (length 1..13 from the row's first value, ids 1..36 from each value, the rest
     * padding), which {@code bert}, a {@link BertClassifier} with 5 classes, classifies; so every
     * contract check runs through embeddings, padded attention and mean pooling. The ids carry no
     * gradient: backward returns null.
     */
    public static Module contractModel(long seed) {
        return new Contract(seed);
    }

    private static final class Contract extends Module {
        private final BertClassifier bert;

        Contract(long seed) {
            this.bert = addChild("bert", new BertClassifier(backend(), TINY, 5, false, seed));
            VitModels.randomizeLayerNorms(bert, seed);
        }

        @Override
        public Tensor forward(StepContext ctx, Tensor x) {
            int rows = Math.toIntExact(x.dim(0)), cols = Math.toIntExact(x.dim(1));
            float[] v = x.toFloatArray();
            int[] ids = new int[rows * cols];
            for (int r = 0; r < rows; r++) {
                int len = 1 + (int) (Math.abs(v[r * cols]) * 7) % cols;
                for (int i = 0; i < len; i++) ids[r * cols + i] = 1 + (int) (Math.abs(v[r * cols + i]) * 1000) % (TINY.vocabSize() - 1);
            }
            Tensor idt = ctx.allocate(DType.I32, rows, cols);
            java.lang.foreign.MemorySegment.copy(ids, 0, idt.segment(), java.lang.foreign.ValueLayout.JAVA_INT, 0, ids.length);
            return bert.forward(ctx, idt);
        }

        @Override
        public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
            return bert.backward(ctx, g, false);
        }
    }
}
