package io.peft4j.variants.loha;

import io.peft4j.nn.Module;
import io.peft4j.peft.TargetModules;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.VariantCase;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongFunction;
import java.util.stream.Stream;

/** LoHa's rows of the contract suite. */
public final class LohaCases {
    private LohaCases() {}

    public static Stream<VariantCase> rows() {
        return Stream.of(
                row("LoHa r=4 alpha=8, Mlp, all-linear", 4, 8, 0f, "peft", TestSupport::mlp, TargetModules.allLinear()),
                row("LoHa lycoris init r=3 alpha=5, nested, [q, o]", 3, 5, 0f, "lycoris", TestSupport::nested, TargetModules.names("q", "o")),
                row("LoHa rank_dropout=0.3 r=2 alpha=4, Mlp, all-linear", 2, 4, 0.3f, "peft", TestSupport::mlp, TargetModules.allLinear()));
    }

    static VariantCase row(String name, int r, float alpha, float rankDropout, String init, LongFunction<Module> model, TargetModules targets) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", "LOHA");
        json.put("r", r);
        json.put("alpha", alpha);
        json.put("rank_dropout", rankDropout);
        json.put("module_dropout", 0.0);
        json.put("init_weights", init.equals("peft") ? (Object) true : init);
        return new VariantCase(name, t -> LohaConfig.builder().r(r).alpha(alpha).rankDropout(rankDropout).init(init).targetModules(t).build(),
                new LohaReference(r, alpha / r), model, targets,
                List.of(LohaReference.W1A, LohaReference.W1B, LohaReference.W2A, LohaReference.W2B), json, rankDropout, true);
    }
}
