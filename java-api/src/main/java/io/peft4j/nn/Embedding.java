package io.peft4j.nn;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;

/**
 * A lookup table, as torch.nn.Embedding: {@code weight} [count, dim]; forward maps I32 ids (any
 * shape, n elements) to their rows [n, dim]; backward adds each gradient row into the row of its
 * id (ids carry no gradient). With a padding id (torch's padding_idx) that row starts at zero and
 * never gets a gradient.
 */
public final class Embedding extends Module {
    private final long count;
    private final long dim;
    private final int paddingId;
    private final Parameter weight;
    private Tensor ids;

    /**
     * Rows ~ N(0, std²) drawn from Philox with {@code seed} (BERT initialises its tables with std 0.02).
     *
     * @param paddingId the id whose row is zero and frozen (torch's padding_idx), or -1 for none
     */
    public Embedding(Backend backend, long count, long dim, int paddingId, float std, long seed) {
        if (count <= 0 || dim <= 0) throw new IllegalArgumentException("Embedding needs positive sizes, got count=" + count + " dim=" + dim);
        if (paddingId < -1 || paddingId >= count) throw new IllegalArgumentException("Embedding padding id " + paddingId + " is outside [0, " + count + ")");
        this.count = count;
        this.dim = dim;
        this.paddingId = paddingId;
        Tensor w = Tensor.zeros(DType.F32, count, dim);
        backend.rngNormal(seed, 0, 0f, std, w);
        if (paddingId >= 0) backend.fill(0f, w.rows(paddingId, 1));
        this.weight = addParameter(new Parameter("weight", w, true, true));
    }

    public long count() { return count; }
    public long dim() { return dim; }
    public Parameter weight() { return weight; }
    /** The padding id, or -1. */
    public int paddingId() { return paddingId; }

    @Override
    public Tensor forward(StepContext ctx, Tensor ids) {
        if (ids.dtype() != DType.I32) throw new IllegalArgumentException("Embedding '" + path() + "' expects I32 ids, got " + ids.describe());
        Tensor out = ctx.allocate(ids.numel(), dim);
        ctx.backend().embeddingForward(ids, weight.value(), out);
        this.ids = ids;
        return out;
    }

    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        if (ids == null || !ids.isAlive()) throw new IllegalStateException("Embedding '" + path() + "': backward without forward in this step");
        if (!weight.requiresGrad()) return null;
        Backend be = ctx.backend();
        if (paddingId >= 0) {   // the padding row gets no gradient: scatter a copy of g with those rows zeroed
            int[] v = ids.toIntArray();
            Tensor masked = ctx.allocate(g.shape());
            be.copy(g, masked);
            for (int i = 0; i < v.length; i++) if (v[i] == paddingId) be.fill(0f, masked.rows(i, 1));
            g = masked;
        }
        be.embeddingBackward(ids, g, weight.grad());
        return null;   // ids have no gradient
    }
}
