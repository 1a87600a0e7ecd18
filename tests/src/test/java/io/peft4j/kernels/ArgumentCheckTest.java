package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.backend.NativeException;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.StepArena;
import io.peft4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Bad arguments to the Backend give the documented exception, naming the tensor at fault with
 * its dtype and shape, and never reach (or crash) the native side: IllegalArgumentException for
 * shapes, dtypes, nulls and out-of-range scalars; IllegalStateException for closed or reset
 * tensors and closed backends; NativeException (P4J_EINVAL) for what only the native side checks
 * (label values). Each call is followed by a valid one, so a failure leaves nothing half-done.
 */
class ArgumentCheckTest {
    interface Bad {
        void call(Backend b, Scope s);
    }

    static Tensor f(Scope s, long... shape) {
        float[] v = new float[Math.toIntExact(prod(shape))];
        java.util.Arrays.fill(v, 0.5f);
        return s.of(v, shape);
    }

    static long prod(long[] shape) {
        long p = 1;
        for (long d : shape) p *= d;
        return p;
    }

    static Tensor i32(Scope s, int... values) {
        return s.ints(values, values.length);
    }

    static Arguments iae(String name, String fragment, Bad bad) {
        return Arguments.of(name, IllegalArgumentException.class, fragment, bad);
    }

    static Arguments ise(String name, String fragment, Bad bad) {
        return Arguments.of(name, IllegalStateException.class, fragment, bad);
    }

    static Stream<Arguments> cases() {
        List<Arguments> c = new ArrayList<>();
        // ---- shapes: the message names the tensor as "name DTYPE[dims]" ----
        c.add(iae("gemm inner sizes differ", "a F32[3, 4]", (b, s) -> b.gemm(false, false, 1, f(s, 3, 4), f(s, 5, 6), 0, f(s, 3, 6))));
        c.add(iae("gemm c shape", "c F32[3, 7]", (b, s) -> b.gemm(false, false, 1, f(s, 3, 4), f(s, 4, 6), 0, f(s, 3, 7))));
        c.add(iae("gemm transposed shapes", "b F32[6, 5]", (b, s) -> b.gemm(true, true, 1, f(s, 4, 3), f(s, 6, 5), 0, f(s, 3, 6))));
        c.add(iae("gemm 1-D operand", "a F32[12]", (b, s) -> b.gemm(false, false, 1, f(s, 12), f(s, 4, 6), 0, f(s, 3, 6))));
        c.add(iae("lowrankForward h", "h F32[3, 4]", (b, s) -> b.lowrankForward(1, f(s, 5, 4), f(s, 2, 4), f(s, 3, 2), f(s, 3, 4), f(s, 5, 3))));
        c.add(iae("lowrankForward y", "y F32[5, 4]", (b, s) -> b.lowrankForward(1, f(s, 5, 4), f(s, 2, 4), f(s, 3, 2), f(s, 5, 2), f(s, 5, 4))));
        c.add(iae("lowrankForward a", "a F32[2, 5]", (b, s) -> b.lowrankForward(1, f(s, 5, 4), f(s, 2, 5), f(s, 3, 2), f(s, 5, 2), f(s, 5, 3))));
        c.add(iae("lowrankForward b", "b F32[3, 3]", (b, s) -> b.lowrankForward(1, f(s, 5, 4), f(s, 2, 4), f(s, 3, 3), f(s, 5, 2), f(s, 5, 3))));
        c.add(iae("lowrankBackward da", "da F32[4, 2]", (b, s) -> b.lowrankBackward(1, f(s, 5, 4), f(s, 2, 4), f(s, 3, 2),
                f(s, 5, 2), f(s, 5, 3), f(s, 5, 2), f(s, 4, 2), f(s, 3, 2), null, false)));
        c.add(iae("lowrankBackward g", "g F32[5, 4]", (b, s) -> b.lowrankBackward(1, f(s, 5, 4), f(s, 2, 4), f(s, 3, 2),
                f(s, 5, 2), f(s, 5, 4), f(s, 5, 2), f(s, 2, 4), f(s, 3, 2), null, false)));
        c.add(iae("lowrankBackward gb", "gb F32[2, 5]", (b, s) -> b.lowrankBackward(1, f(s, 5, 4), f(s, 2, 4), f(s, 3, 2),
                f(s, 5, 2), f(s, 5, 3), f(s, 2, 5), f(s, 2, 4), f(s, 3, 2), null, false)));
        c.add(iae("lowrankBackward dx", "dx F32[4, 5]", (b, s) -> b.lowrankBackward(1, f(s, 5, 4), f(s, 2, 4), f(s, 3, 2),
                f(s, 5, 2), f(s, 5, 3), f(s, 5, 2), f(s, 2, 4), f(s, 3, 2), f(s, 4, 5), true)));
        c.add(iae("biasAdd bias", "bias F32[5]", (b, s) -> b.biasAdd(f(s, 5), f(s, 3, 4))));
        c.add(iae("colsum out", "out F32[3]", (b, s) -> b.colsum(f(s, 3, 4), f(s, 3), false)));
        c.add(iae("reluForward y", "y F32[4, 3]", (b, s) -> b.reluForward(f(s, 3, 4), f(s, 4, 3))));
        c.add(iae("reluBackward g", "g F32[11]", (b, s) -> b.reluBackward(f(s, 12), f(s, 11), f(s, 12))));
        c.add(iae("geluBackward dx", "dx F32[13]", (b, s) -> b.geluBackward(f(s, 12), f(s, 12), f(s, 13))));
        c.add(iae("axpy y", "y F32[7]", (b, s) -> b.axpy(2, f(s, 6), f(s, 7))));
        c.add(iae("mul out", "out F32[2, 3]", (b, s) -> b.mul(f(s, 6), f(s, 6), f(s, 2, 3))));
        c.add(iae("copy dst", "dst F32[5]", (b, s) -> b.copy(f(s, 6), f(s, 5))));
        c.add(iae("copy onto itself", "src F32[4] and dst F32[4] overlap", (b, s) -> {
            Tensor t = f(s, 8);
            b.copy(t.view(2, 4).rows(0, 1).view(4), t.view(2, 4).rows(0, 1).view(4));
        }));
        c.add(iae("argmaxRows out length", "out I32[4]", (b, s) -> b.argmaxRows(f(s, 3, 5), i32(s, 0, 0, 0, 0))));
        c.add(iae("softmaxXent labels length", "labels I32[2]", (b, s) -> b.softmaxXentForward(f(s, 3, 5), i32(s, 0, 1), f(s, 3, 5))));
        c.add(iae("softmaxXent probs", "probs F32[3, 4]", (b, s) -> b.softmaxXentForward(f(s, 3, 5), i32(s, 0, 1, 2), f(s, 3, 4))));
        c.add(iae("softmaxXentBackward dlogits", "dlogits F32[5, 3]", (b, s) -> b.softmaxXentBackward(f(s, 3, 5), i32(s, 0, 1, 2), 1, f(s, 5, 3))));
        c.add(iae("mse target", "target F32[8]", (b, s) -> b.mse(f(s, 7), f(s, 8), null)));
        c.add(iae("mse grad", "grad F32[6]", (b, s) -> b.mse(f(s, 7), f(s, 7), f(s, 6))));
        c.add(iae("adamw v", "v F32[9]", (b, s) -> b.adamwStep(f(s, 8), f(s, 8), f(s, 8), f(s, 9), 1e-3f, 0.9f, 0.999f, 1e-8f, 0, 1)));
        c.add(iae("sgd buf", "buf F32[9]", (b, s) -> b.sgdStep(f(s, 8), f(s, 8), f(s, 9), 0.1f, 0.9f, 0, false, false)));
        c.add(iae("dropout mask length", "mask U8[5]", (b, s) -> b.dropoutForward(0.5f, 1, 0, f(s, 6), s.zeros(DType.U8, 5), f(s, 6))));
        c.add(iae("dropoutBackward dx", "dx F32[5]", (b, s) -> b.dropoutBackward(0.5f, s.zeros(DType.U8, 6), f(s, 6), f(s, 5))));
        // ---- dtypes ----
        c.add(iae("gemm I32 operand", "a I32[3]", (b, s) -> b.gemm(false, false, 1, i32(s, 1, 2, 3), f(s, 1, 1), 0, f(s, 3, 1))));
        c.add(iae("scale on I32", "x I32[2]", (b, s) -> b.scale(2, i32(s, 1, 2))));
        c.add(iae("fill on U8", "x U8[4]", (b, s) -> b.fill(1, s.zeros(DType.U8, 4))));
        c.add(iae("rngUniform into I32", "out I32[3]", (b, s) -> b.rngUniform(1, 0, 0, 1, i32(s, 1, 2, 3))));
        c.add(iae("softmaxXent F32 labels", "labels F32[3]", (b, s) -> b.softmaxXentForward(f(s, 3, 5), f(s, 3), f(s, 3, 5))));
        c.add(iae("argmaxRows F32 out", "out F32[3]", (b, s) -> b.argmaxRows(f(s, 3, 5), f(s, 3))));
        c.add(iae("dropout F32 mask", "mask F32[6]", (b, s) -> b.dropoutForward(0.5f, 1, 0, f(s, 6), f(s, 6), f(s, 6))));
        c.add(iae("dropout I32 input", "x I32[2]", (b, s) -> b.dropoutForward(0.5f, 1, 0, i32(s, 1, 2), s.zeros(DType.U8, 2), f(s, 2))));
        // ---- nulls ----
        c.add(iae("gemm null b", "b must not be null", (b, s) -> b.gemm(false, false, 1, f(s, 3, 4), null, 0, f(s, 3, 6))));
        c.add(iae("lowrankForward null h", "h must not be null", (b, s) -> b.lowrankForward(1, f(s, 5, 4), f(s, 2, 4), f(s, 3, 2), null, f(s, 5, 3))));
        c.add(iae("lowrankBackward null gb", "gb must not be null", (b, s) -> b.lowrankBackward(1, f(s, 5, 4), f(s, 2, 4), f(s, 3, 2),
                f(s, 5, 2), f(s, 5, 3), null, f(s, 2, 4), f(s, 3, 2), null, false)));
        c.add(iae("mse null pred", "pred must not be null", (b, s) -> b.mse(null, f(s, 7), null)));
        c.add(iae("copy null src", "src must not be null", (b, s) -> b.copy(null, f(s, 7))));
        c.add(iae("sgd momentum without buf", "buf must not be null", (b, s) -> b.sgdStep(f(s, 8), f(s, 8), null, 0.1f, 0.9f, 0, false, true)));
        c.add(iae("sumsq null", "x must not be null", (b, s) -> b.sumsq(null)));
        c.add(iae("rngNormal null", "out must not be null", (b, s) -> b.rngNormal(1, 0, 0, 1, null)));
        // ---- scalars ----
        c.add(iae("dropout p = 1", "p must be in [0, 1), got 1.0", (b, s) -> b.dropoutForward(1f, 1, 0, f(s, 6), s.zeros(DType.U8, 6), f(s, 6))));
        c.add(iae("dropout p < 0", "p must be in [0, 1), got -0.1", (b, s) -> b.dropoutForward(-0.1f, 1, 0, f(s, 6), s.zeros(DType.U8, 6), f(s, 6))));
        c.add(iae("dropout p NaN", "p must be in [0, 1), got NaN", (b, s) -> b.dropoutForward(Float.NaN, 1, 0, f(s, 6), s.zeros(DType.U8, 6), f(s, 6))));
        c.add(iae("dropoutBackward p = 1", "p must be in [0, 1), got 1.0", (b, s) -> b.dropoutBackward(1f, s.zeros(DType.U8, 6), f(s, 6), f(s, 6))));
        c.add(iae("adamw step 0", "step must be >= 1, got 0", (b, s) -> b.adamwStep(f(s, 8), f(s, 8), f(s, 8), f(s, 8), 1e-3f, 0.9f, 0.999f, 1e-8f, 0, 0)));
        c.add(iae("adamw step -3", "step must be >= 1, got -3", (b, s) -> b.adamwStep(f(s, 8), f(s, 8), f(s, 8), f(s, 8), 1e-3f, 0.9f, 0.999f, 1e-8f, 0, -3)));
        c.add(iae("kaiming fanIn 0", "fanIn must be > 0, got 0", (b, s) -> b.rngKaimingUniform(1, 0, 0, 0, f(s, 4))));
        c.add(iae("fmaPeak negative", "iters must be >= 0, got -1", (b, s) -> b.fmaPeak(-1)));
        // ---- liveness ----
        c.add(ise("closed input", "tensor F32[3, 4] is closed", (b, s) -> {
            Tensor x = f(s, 3, 4);
            x.close();
            b.reluForward(x, f(s, 3, 4));
        }));
        c.add(ise("closed output", "tensor F32[3, 6] is closed", (b, s) -> {
            Tensor c2 = f(s, 3, 6);
            c2.close();
            b.gemm(false, false, 1, f(s, 3, 4), f(s, 4, 6), 0, c2);
        }));
        c.add(ise("view of a closed tensor", "tensor F32[3, 4] is closed", (b, s) -> {
            Tensor x = f(s, 12);
            Tensor v = x.view(3, 4);
            x.close();
            b.scale(2, v);
        }));
        c.add(ise("step-arena tensor after reset", "tensor F32[16] is from a step arena that has been reset", (b, s) -> {
            try (StepArena arena = new StepArena()) {
                Tensor g = arena.zeros(DType.F32, 16);
                arena.reset();
                b.fill(1, g);
            }
        }));
        c.add(ise("step-arena view after reset", "tensor F32[2, 4] is from a step arena that has been reset", (b, s) -> {
            try (StepArena arena = new StepArena()) {
                Tensor g = arena.zeros(DType.F32, 4, 4).rows(1, 2);
                arena.reset();
                b.mse(g, f(s, 2, 4), null);
            }
        }));
        return c.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void badArgumentsThrowTheDocumentedException(String name, Class<? extends Throwable> type, String fragment, Bad bad) {
        try (Scope s = new Scope()) {
            Throwable t = assertThrows(type, () -> bad.call(Backend.cpu(), s), name);
            assertTrue(t.getMessage() != null && t.getMessage().contains(fragment),
                    name + ": message '" + t.getMessage() + "' does not contain '" + fragment + "'");
            // The backend is still usable afterwards.
            Tensor x = s.of(new float[] {1.5f, -2f}, 2);
            Backend.cpu().scale(2, x);
            assertEquals(3f, x.getFloat(0));
        }
    }

    @Test
    void labelsOutOfRangeAreRejectedNatively() {
        try (Scope s = new Scope()) {
            Tensor logits = s.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3), probs = s.poisoned(2, 3), d = s.poisoned(2, 3);
            for (int[] bad : new int[][] {{0, 3}, {-1, 0}, {Integer.MAX_VALUE, 1}, {2, Integer.MIN_VALUE}}) {
                Tensor lab = s.ints(bad, 2);
                NativeException e = assertThrows(NativeException.class, () -> Backend.cpu().softmaxXentForward(logits, lab, probs));
                // The first bad label, by index and value.
                int at = bad[0] >= 0 && bad[0] < 3 ? 1 : 0;
                String named = "labels[" + at + "] (" + bad[at] + ") not in [0, 3)";
                assertTrue(e.getMessage().contains("P4J_EINVAL") && e.getMessage().contains("p4j_softmax_xent_forward: " + named),
                        e.getMessage());
                assertEquals(-1, e.status());
                NativeException e2 = assertThrows(NativeException.class, () -> Backend.cpu().softmaxXentBackward(logits, lab, 1f, d));
                assertTrue(e2.getMessage().contains("P4J_EINVAL") && e2.getMessage().contains("p4j_softmax_xent_backward: " + named),
                        e2.getMessage());
            }
            // Valid labels still work after the failures.
            float loss = Backend.cpu().softmaxXentForward(logits, s.ints(new int[] {2, 0}, 2), probs);
            assertTrue(Float.isFinite(loss) && loss > 0, "loss " + loss);
        }
    }

    @Test
    void closedBackendRefusesEveryCall() {
        Backend b = Backend.cpu(1);
        b.close();
        b.close(); // closing twice is harmless
        try (Scope s = new Scope()) {
            Tensor x = s.of(new float[] {1, 2, 3}, 3);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> b.scale(2, x));
            assertTrue(e.getMessage().contains("closed"), e.getMessage());
            assertThrows(IllegalStateException.class, () -> b.rngUniform(1, 0, 0, 1, x));
            assertThrows(IllegalStateException.class, () -> b.sumsq(x));
            assertThrows(IllegalStateException.class, () -> b.gemm(false, false, 1, x.view(3, 1), x.view(1, 3), 0, s.poisoned(3, 3)));
            assertThrows(IllegalStateException.class, () -> b.fmaPeak(1));
            assertEquals(2f, x.getFloat(1), "a refused call leaves its tensors alone");
        }
        // Closing a private backend does not disturb the shared one.
        try (Tensor y = Tensor.of(new float[] {1, 2}, 2)) {
            Backend.cpu().scale(3, y);
            assertEquals(6f, y.getFloat(1));
        }
        assertThrows(IllegalArgumentException.class, () -> Backend.cpu(-1));
    }
}
