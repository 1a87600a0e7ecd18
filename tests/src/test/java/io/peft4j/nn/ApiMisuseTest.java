package io.peft4j.nn;

import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.normal;
import static io.peft4j.variants.TestSupport.rng;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/** Calling the layer and loss API out of order fails with an IllegalStateException that says what was missing. */
class ApiMisuseTest {

    private static void assertMessage(Exception e, String... parts) {
        for (String p : parts) assertTrue(e.getMessage().contains(p), "'" + p + "' missing from: " + e.getMessage());
    }

    @Test
    void lossBackwardWithoutForwardIsRefused() {
        for (Supplier<Loss> make : java.util.List.<Supplier<Loss>>of(Loss::crossEntropy, Loss::mse)) {
            try (StepContext ctx = new StepContext(backend())) {
                ctx.begin(true, 1);
                Loss loss = make.get();
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> loss.backward(ctx));
                assertMessage(e, "loss: backward() called without a forward() in this step");
            }
        }
    }

    @Test
    void lossBackwardAfterTheStepOfItsForwardIsRefused() {
        SplittableRandom r = rng("stale-loss");
        try (StepContext ctx = new StepContext(backend())) {
            ctx.begin(true, 1);
            Tensor logits = ctx.allocate(3, 4).copyFrom(normal(r, 12, 1.0));
            Tensor labels = ctx.allocate(DType.I32, 3);
            labels.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, 0, 2);
            labels.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, 1, 0);
            labels.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, 2, 3);
            Loss xent = Loss.crossEntropy();
            float l = xent.forward(ctx, logits, labels);
            assertTrue(Float.isFinite(l) && l > 0, "loss " + l);
            assertTrue(xent.backward(ctx).isAlive());
            ctx.begin(true, 2);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> xent.backward(ctx));
            assertMessage(e, "crossEntropy loss", "without a forward()");

            Tensor target = ctx.allocate(3, 4).copyFrom(normal(r, 12, 1.0));
            Tensor out = ctx.allocate(3, 4).copyFrom(normal(r, 12, 1.0));
            Loss mse = Loss.mse();
            mse.forward(ctx, out, target);
            ctx.begin(true, 3);
            IllegalStateException m = assertThrows(IllegalStateException.class, () -> mse.backward(ctx));
            assertMessage(m, "mse loss", "without a forward()");
        }
    }

    @Test
    void activationBackwardWithoutForwardIsRefused() {
        SplittableRandom r = rng("activation-backward");
        try (StepContext ctx = new StepContext(backend())) {
            ctx.begin(true, 1);
            Tensor g = ctx.allocate(2, 5).copyFrom(normal(r, 10, 1.0));
            Sequential model = new Sequential();
            ReLU relu = model.add("relu", new ReLU());
            GELU gelu = model.add("gelu", new GELU());
            assertMessage(assertThrows(IllegalStateException.class, () -> relu.backward(ctx, g, true)),
                    "ReLU 'relu': backward without forward");
            assertMessage(assertThrows(IllegalStateException.class, () -> gelu.backward(ctx, g, true)),
                    "GELU 'gelu': backward without forward");
            // After a forward in an earlier step, the kept input is gone: refused the same way.
            Tensor x = ctx.allocate(2, 5).copyFrom(normal(r, 10, 1.0));
            model.forward(ctx, x);
            ctx.begin(true, 2);
            Tensor g2 = ctx.allocate(2, 5).copyFrom(normal(r, 10, 1.0));
            assertMessage(assertThrows(IllegalStateException.class, () -> model.backward(ctx, g2, true)),
                    "GELU 'gelu': backward without forward");
        }
    }

    @Test
    void aClosedStepContextRefusesNewSteps() {
        StepContext ctx = new StepContext(backend());
        ctx.begin(true, 1);
        ctx.close();
        assertMessage(assertThrows(IllegalStateException.class, () -> ctx.begin(true, 2)), "step arena is closed");
        assertMessage(assertThrows(IllegalStateException.class, () -> ctx.allocate(3)), "step arena is closed");
    }

    @Test
    void aClosedModelRefusesUse() {
        Linear l = new Linear(backend(), 5, 3, true, 7);
        l.close();
        try (StepContext ctx = new StepContext(backend())) {
            ctx.begin(false, 0);
            Tensor x = ctx.allocate(2, 5).copyFrom(normal(rng("closed-model"), 10, 1.0));
            assertMessage(assertThrows(IllegalStateException.class, () -> l.forward(ctx, x)), "F32[3, 5]", "closed");
        }
    }
}
