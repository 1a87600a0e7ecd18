package io.peft4j.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.peft.PeftModel;
import io.peft4j.tensor.Tensor;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lora.LoraConfig;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The cached transpose of frozen weights (used inside Trainer.fit) gives the same outputs and follows merges. */
class FrozenTransposeTest {

    private static float[] forward(Module m, StepContext ctx, float[] x, int t, int in) {
        ctx.begin(false, 0);
        Tensor xt = ctx.allocate(t, in).copyFrom(x);
        return m.forward(ctx, xt).toFloatArray();
    }

    private static void assertClose(float[] expected, float[] got) {
        double max = 0, diff = 0;
        for (int i = 0; i < expected.length; i++) {
            max = Math.max(max, Math.abs(expected[i]));
            diff = Math.max(diff, Math.abs(expected[i] - got[i]));
        }
        assertTrue(diff <= 1e-5 * (max + 1e-30), "max difference " + diff + " against max " + max);
    }

    @Test
    void cachedTransposeMatchesAndTracksMerge() {
        Backend b = TestSupport.backend();
        int t = 9, in = 37, hidden = 23, out = 5;
        Mlp mlp = new Mlp(b, Mlp.Activation.RELU, 3, in, hidden, out);
        PeftModel pm = PeftModel.wrap(mlp, LoraConfig.builder().r(4).alpha(8).targetModules("fc1", "fc2").build(), b, 7);
        SplittableRandom rnd = new SplittableRandom(11);
        // B starts at zero; make the adapter change the output so a stale transpose would show.
        for (var p : pm.namedParameters().entrySet()) {
            if (p.getKey().contains("lora_B")) p.getValue().value().copyFrom(TestSupport.normal(rnd, (int) p.getValue().numel(), 0.5));
        }
        float[] x = TestSupport.normal(rnd, t * in, 1.0);
        try (StepContext ctx = new StepContext(b)) {
            float[] plain = forward(pm, ctx, x, t, in);
            mlp.namedModules().values().forEach(m -> { if (m instanceof Linear l) l.setCacheFrozenTranspose(true); });
            assertClose(plain, forward(pm, ctx, x, t, in));
            pm.merge();   // changes W: the cached transposes must not be reused
            assertClose(plain, forward(pm, ctx, x, t, in));
            pm.disableAdapters();   // unmerges: back to W0
            float[] base = forward(pm, ctx, x, t, in);
            mlp.namedModules().values().forEach(m -> { if (m instanceof Linear l) l.setCacheFrozenTranspose(false); });
            assertArrayEquals(forward(pm, ctx, x, t, in), base, 1e-5f);
            pm.enableAdapters();
            assertClose(plain, forward(pm, ctx, x, t, in));
        }
    }
}
