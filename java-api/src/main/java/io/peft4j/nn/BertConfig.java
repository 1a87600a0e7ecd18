package io.peft4j.nn;

/**
 * The sizes of a BERT encoder, as Hugging Face's {@code BertConfig} names them: vocabulary,
 * hidden width, layers, attention heads, intermediate (feed-forward) width, position table length,
 * token-type table length and the LayerNorm epsilon.
 */
public record BertConfig(int vocabSize, int hidden, int layers, int heads, int intermediate, int maxPositions,
                         int typeVocabSize, float layerNormEps) {

    /** sentence-transformers/all-MiniLM-L6-v2: 6 layers of width 384, 12 heads, intermediate 1536. */
    public static final BertConfig ALL_MINILM_L6_V2 = new BertConfig(30522, 384, 6, 12, 1536, 512, 2, 1e-12f);

    public BertConfig {
        if (vocabSize <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || intermediate <= 0 || maxPositions <= 0
                || typeVocabSize <= 0) {
            throw new IllegalArgumentException("BERT sizes must be positive: " + this);
        }
        if (hidden % heads != 0) throw new IllegalArgumentException("BERT hidden size " + hidden + " does not split into " + heads + " heads");
        if (!(layerNormEps > 0) || !Float.isFinite(layerNormEps)) {
            throw new IllegalArgumentException("BERT layer_norm_eps must be a positive number, got " + layerNormEps);
        }
    }

    public int headDim() { return hidden / heads; }
}
