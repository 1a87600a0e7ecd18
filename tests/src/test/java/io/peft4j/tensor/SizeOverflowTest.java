package io.peft4j.tensor;

import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.blobs;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.data.Batches;
import io.peft4j.data.Dataset;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.StepContext;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import org.junit.jupiter.api.Test;

/** Sizes too big for the machine or for 64-bit arithmetic fail up front, with the sizes in the message. */
class SizeOverflowTest {
    /** LoRA rank 2^30 on a 784-wide layer: 3136 GiB of F32, far past any test machine's memory. */
    private static final long HUGE_RANK = 1L << 30;

    private static void assertMentions(Exception e, String... parts) {
        for (String p : parts) assertTrue(e.getMessage().contains(p), "'" + p + "' missing from: " + e.getMessage());
        assertFalse(e.getMessage().contains("overflow") && !e.getMessage().contains("2^63"), e.getMessage());
    }

    @Test
    void aTensorPastPhysicalMemoryIsRefusedBeforeAllocating() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Tensor.zeros(DType.F32, HUGE_RANK, 784));
        assertMentions(e, "F32[1073741824, 784]", "3136.00 GiB", "memory");
    }

    @Test
    void aStepArenaTensorPastPhysicalMemoryIsRefused() {
        try (StepArena arena = new StepArena()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> arena.allocate(DType.BF16, 3, HUGE_RANK, 1000));
            assertMentions(e, "BF16[3, 1073741824, 1000]", "6000.00 GiB", "memory");
            // The arena is still usable after the refusal.
            Tensor t = arena.zeros(DType.F32, 5, 7);
            assertEquals(35, t.numel());
        }
    }

    @Test
    void elementCountsPast64BitsNameTheShape() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Tensor.zeros(DType.F32, Long.MAX_VALUE / 3, 5));
        assertMentions(e, "[" + Long.MAX_VALUE / 3 + ", 5]", "2^63");
        IllegalArgumentException b = assertThrows(IllegalArgumentException.class, () -> Tensor.zeros(DType.I64, Long.MAX_VALUE / 5, 2));
        assertMentions(b, "I64[" + Long.MAX_VALUE / 5 + ", 2]", "2^63");
        try (StepArena arena = new StepArena()) {
            IllegalArgumentException s = assertThrows(IllegalArgumentException.class, () -> arena.allocate(DType.F32, Long.MAX_VALUE / 4 + 1));
            assertMentions(s, "F32[" + (Long.MAX_VALUE / 4 + 1) + "]", "2^63");
        }
    }

    @Test
    void rowRangesThatOverflowAreRefused() {
        try (Tensor t = Tensor.zeros(DType.F32, 6, 3)) {
            assertEquals(2, t.rows(4, 2).dim(0));
            for (long[] bad : new long[][] {{Long.MAX_VALUE, 2}, {2, Long.MAX_VALUE}, {5, 2}, {7, 0}, {-1, 1}}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.rows(bad[0], bad[1]));
                assertMentions(e, "rows(" + bad[0] + ", " + bad[1] + ") out of range for F32[6, 3]");
            }
        }
    }

    @Test
    void aHugeLinearNamesItsSizes() {
        long huge = 3_000_000_001L;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Linear(backend(), huge, huge, true, 1));
        assertMentions(e, "in=" + huge, "out=" + huge);
        IllegalArgumentException big = assertThrows(IllegalArgumentException.class, () -> new Linear(backend(), 784, HUGE_RANK, false, 1));
        assertMentions(big, "in=784", "out=" + HUGE_RANK, "GiB");
        IllegalArgumentException mlp = assertThrows(IllegalArgumentException.class,
                () -> new Mlp(backend(), Mlp.Activation.RELU, 1, 13, huge, 5));
        assertMentions(mlp, "in=13", "out=" + huge);
    }

    @Test
    void batchCountsDoNotOverflowForTheLargestBatch() {
        Dataset d = blobs(97, 5, 3, 11);
        assertEquals(1, new Batches(d).batchCount(Integer.MAX_VALUE));
        assertEquals(1, new Batches(d).batchCount(Integer.MAX_VALUE - 50));
        assertEquals(4, new Batches(d).batchCount(32));
    }

    @Test
    void trainingWithTheLargestBatchSizeTakesOneStepPerEpoch() {
        Dataset d = blobs(97, 5, 3, 12);
        Trainer.Config cfg = Trainer.Config.builder().epochs(2).batchSize(Integer.MAX_VALUE).lr(1e-2f).seed(3).evalEvery(0)
                .progress(false).build();
        try (Mlp mlp = new Mlp(backend(), Mlp.Activation.RELU, 4, 5, 9, 3);
             Trainer t = new Trainer(mlp, Loss.crossEntropy(), new AdamW(0.9f, 0.999f, 1e-8f, 0f), cfg, backend())) {
            Trainer.Result r = t.fit(d, null);
            assertEquals(2, r.steps());
            assertEquals(2, r.epochs().size());
            assertTrue(Double.isFinite(r.last().trainLoss()) && r.last().trainLoss() > 0, "loss " + r.last().trainLoss());
            try (StepContext ctx = new StepContext(backend())) {
                Trainer.EvalResult er = Trainer.evaluate(mlp, d, ctx, Integer.MAX_VALUE);
                assertEquals(97, er.count());
                assertTrue(er.accuracy() >= 0 && er.accuracy() <= 1, "accuracy " + er.accuracy());
                // The same numbers as in batches that fit, as evaluation has no batch-dependent state.
                Trainer.EvalResult small = Trainer.evaluate(mlp, d, ctx, 10);
                assertEquals(small.accuracy(), er.accuracy());
                assertEquals(small.loss(), er.loss(), 1e-5 * Math.abs(small.loss()));
            }
        }
    }
}
