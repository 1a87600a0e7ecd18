package io.peft4j.variants;

import static io.peft4j.variants.TestSupport.backend;

import io.peft4j.nn.LayerNorm;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Module;
import io.peft4j.nn.Sequential;
import io.peft4j.nn.VisionTransformer;

/** Small Vision Transformers for the method tables: the q, k, v, o projections are Linear layers like any other. */
public final class VitModels {
    private VitModels() {}

    /** 4×4 images in 2×2 patches (5 tokens), width 12, 2 blocks of 3 heads, MLP 20, 5 classes; LayerNorms randomised. */
    public static final VisionTransformer.Config TINY = new VisionTransformer.Config(4, 2, 12, 2, 3, 20, 5);

    public static VisionTransformer tiny(long seed) {
        VisionTransformer vit = new VisionTransformer(backend(), TINY, seed);
        randomizeLayerNorms(vit, seed);
        return vit;
    }

    /**
     * The contract table's shape ([t, 13] in, [t, 5] out): {@code embed} 13→16 makes each row a 4×4
     * image for {@code vit} ({@link #TINY}), so every contract check runs through attention.
     */
    public static Module contractModel(long seed) {
        Sequential root = new Sequential();
        root.add("embed", new Linear(backend(), 13, 16, true, seed + 100));
        root.add("vit", tiny(seed));
        return root;
    }

    /** LayerNorm weights N(1, 0.2²) and biases N(0, 0.2²) instead of 1 and 0, so no test runs on the trivial affine. */
    public static void randomizeLayerNorms(Module model, long seed) {
        long s = seed * 31 + 7;
        for (Module m : model.namedModules().values()) {
            if (m instanceof LayerNorm ln) {
                backend().rngNormal(s++, 0, 1f, 0.2f, ln.weight().value());
                backend().rngNormal(s++, 0, 0f, 0.2f, ln.bias().value());
            }
        }
    }
}
