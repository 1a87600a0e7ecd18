package io.peft4j.tensor;

import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.rng;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** Misuse of Tensor and StepArena ends in one clear exception, and never in a leak or a dangling pointer. */
class TensorMisuseTest {

    @Test
    void dimOutOfRangeNamesTheIndexAndTheShape() {
        try (Tensor t = Tensor.zeros(DType.F32, 3, 5)) {
            assertEquals(5, t.dim(1));
            assertEquals(5, t.dim(-1));
            assertEquals(3, t.dim(-2));
            for (int bad : new int[] {2, -3, 7, Integer.MIN_VALUE}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.dim(bad));
                assertTrue(e.getMessage().contains("dimension " + bad) && e.getMessage().contains("F32[3, 5]")
                        && e.getMessage().contains("rank 2"), e.getMessage());
            }
        }
        try (Tensor scalar = Tensor.zeros(DType.F32)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> scalar.dim(0));
            assertTrue(e.getMessage().contains("rank 0"), e.getMessage());
        }
    }

    @Test
    void arraysOfTheWrongLengthAreRefusedBeforeAnyAllocation() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Tensor.of(new float[7], 2, 3));
        assertTrue(e.getMessage().contains("length 7") && e.getMessage().contains("F32[2, 3]") && e.getMessage().contains("6 elements"),
                e.getMessage());
        IllegalArgumentException i = assertThrows(IllegalArgumentException.class, () -> Tensor.ofInts(new int[5], 2, 3));
        assertTrue(i.getMessage().contains("length 5") && i.getMessage().contains("I32[2, 3]"), i.getMessage());
    }

    @Test
    void aStepArenaRefusesUseAfterClose() {
        StepArena arena = new StepArena();
        Tensor t = arena.allocate(DType.F32, 4);
        arena.close();
        IllegalStateException use = assertThrows(IllegalStateException.class, t::segment);
        assertTrue(use.getMessage().contains("F32[4]"), use.getMessage());
        IllegalStateException alloc = assertThrows(IllegalStateException.class, () -> arena.allocate(DType.F32, 4));
        assertTrue(alloc.getMessage().contains("step arena is closed"), alloc.getMessage());
        IllegalStateException reset = assertThrows(IllegalStateException.class, arena::reset);
        assertTrue(reset.getMessage().contains("step arena is closed"), reset.getMessage());
    }

    /** The GEMM's output and what closing it means: a self-owned tensor, or the step arena it came from. */
    private interface Output {
        Tensor tensor();

        void close();
    }

    /**
     * A close while a native GEMM on another thread writes the memory is refused (it must not be
     * freed under the kernel) and leaves everything usable; once the GEMM returns, close frees it.
     * Before, close marked the tensor or arena closed, failed to close the FFM arena, and the memory
     * was never freed. Returns the refusal's message.
     */
    private static String closeDuringGemm(java.util.function.Function<Integer, Output> make) throws Exception {
        int n = 1536;
        SplittableRandom r = rng("close-during-gemm");
        try (Tensor a = Tensor.of(normal(r, n * n, 1.0), n, n); Tensor b = Tensor.of(normal(r, n * n, 1.0), n, n)) {
            IllegalStateException refused = null;
            for (int attempt = 0; attempt < 20 && refused == null; attempt++) {
                Output out = make.apply(n);
                Tensor c = out.tensor();
                CountDownLatch started = new CountDownLatch(1);
                AtomicReference<Throwable> failure = new AtomicReference<>();
                Thread op = new Thread(() -> {
                    started.countDown();
                    try {
                        backend().gemm(false, false, 1f, a, b, 0f, c);
                    } catch (Throwable t) {
                        failure.set(t);
                    }
                });
                op.start();
                started.await();
                boolean closed = false;
                while (op.isAlive() && !closed) {
                    try {
                        out.close();
                        closed = true;
                    } catch (IllegalStateException e) {
                        refused = e;
                        assertTrue(c.isAlive(), "a refused close leaves the memory usable");
                    }
                }
                op.join();
                // A close that came before the GEMM started makes the GEMM fail cleanly instead; then try again.
                if (refused != null) assertEquals(null, failure.get(), "the GEMM whose output was being closed completes");
                out.close();
                assertFalse(c.isAlive());
                IllegalStateException after = assertThrows(IllegalStateException.class, c::segment);
                assertTrue(after.getMessage().contains("F32[1536, 1536]"), after.getMessage());
            }
            assertNotNull(refused, "no close ever overlapped a 1536^3 GEMM in 20 tries");
            return refused.getMessage();
        }
    }

    @Test
    void closingATensorWhileAnOperationUsesItIsRefusedThenWorks() throws Exception {
        String m = closeDuringGemm(n -> {
            Tensor t = Tensor.zeros(DType.F32, n, n);
            return new Output() {
                public Tensor tensor() { return t; }
                public void close() { t.close(); }
            };
        });
        assertTrue(m.contains("cannot close tensor F32[1536, 1536] while an operation is using it"), m);
    }

    @Test
    void closingAStepArenaWhileAnOperationUsesItIsRefusedThenWorks() throws Exception {
        String m = closeDuringGemm(n -> {
            StepArena arena = new StepArena();
            Tensor t = arena.allocate(DType.F32, n, n);
            return new Output() {
                public Tensor tensor() { return t; }
                public void close() { arena.close(); }
            };
        });
        assertTrue(m.contains("cannot close the step arena while an operation is using its memory"), m);
    }
}
