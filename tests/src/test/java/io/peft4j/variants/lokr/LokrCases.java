package io.peft4j.variants.lokr;

import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.peft.TargetModules;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.VariantCase;
import io.peft4j.variants.krona.KronaCases;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongFunction;
import java.util.stream.Stream;

/**
 * LoKr's rows of the contract suite: both factors full; W2 decomposed; both decomposed
 * (decompose_both, factor 4, LyCORIS init); LyCORIS's scale-1 rule. The file keys are the same on
 * every adapted layer of a row (the suite checks one list per row).
 */
public final class LokrCases {
    private LokrCases() {}

    /** Mlp 13→36→5: fc1's d_out = 36 = 4·9 under factor 4, so W1 [4, 1] decomposes at r = 1. */
    static Module mlp36(long seed) {
        return new Mlp(TestSupport.backend(), Mlp.Activation.GELU, seed, 13, 36, 5);
    }

    public static Stream<VariantCase> rows() {
        return Stream.of(
                row("LoKr r=8 alpha=16 (W1, W2 full), Mlp 13-12-8-5, all-linear", 8, 16, -1, false, "peft", false,
                        KronaCases::mlp12, TargetModules.allLinear(), 13, 12),
                row("LoKr r=2 alpha=3 (W2 = W2a·W2b), Mlp, all-linear", 2, 3, -1, false, "peft", false,
                        TestSupport::mlp, TargetModules.allLinear(), 13, 17),
                row("LoKr decompose_both r=1 factor 4 lycoris init, Mlp 13-36-5, [fc1]", 1, 2, 4, true, "lycoris", false,
                        LokrCases::mlp36, TargetModules.names("fc1"), 13, 36),
                row("LoKr lycoris_full_scale r=8 alpha=4, nested, all-linear", 8, 4, -1, false, "peft", true,
                        TestSupport::nested, TargetModules.allLinear(), 13, 9));
    }

    static VariantCase row(String name, int r, float alpha, int factor, boolean both, String init, boolean fullScale,
                           LongFunction<Module> model, TargetModules targets, int sampleIn, int sampleOut) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", "LOKR");
        json.put("r", r);
        json.put("alpha", alpha);
        json.put("decompose_factor", factor);
        json.put("decompose_both", both);
        json.put("init_weights", init.equals("peft") ? (Object) true : init);
        if (fullScale) json.put("lycoris_full_scale", true);
        LokrReference ref = new LokrReference(r, alpha, factor, both, fullScale);
        return new VariantCase(name,
                t -> LokrConfig.builder().r(r).alpha(alpha).decomposeFactor(factor).decomposeBoth(both).init(init)
                        .lycorisFullScale(fullScale).targetModules(t).build(),
                ref, model, targets, ref.names(sampleIn, sampleOut), json, 0, true);
    }
}
