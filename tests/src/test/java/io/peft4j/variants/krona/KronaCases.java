package io.peft4j.variants.krona;

import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.peft.TargetModules;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.VariantCase;
import io.peft4j.variants.krona.KronaConfig;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * KronA's rows of the contract suite. The residual form needs square layers, which the suite's
 * models and its 13→11 gradient layer do not have: {@link KronaTest} runs its checks.
 */
public final class KronaCases {
    private KronaCases() {}

    /** Mlp 13→12→8→5 (GELU): dimensions with non-trivial factor pairs (12 = 3·4, 8 = 2·4). */
    public static Module mlp12(long seed) {
        return new Mlp(TestSupport.backend(), Mlp.Activation.GELU, seed, 13, 12, 8, 5);
    }

    public static Stream<VariantCase> rows() {
        return Stream.of(
                row("KronA s=2 default factor pairs, Mlp 13-12-8-5, all-linear", 2f, "kaiming", KronaCases::mlp12, TargetModules.allLinear()),
                row("KronA s=0.5 zero_a init, nested, [q, o]", 0.5f, "zero_a", TestSupport::nested, TargetModules.names("q", "o")));
    }

    static VariantCase row(String name, float s, String init, java.util.function.LongFunction<Module> model, TargetModules targets) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", "KRONA");
        json.put("scale", s);
        json.put("residual", false);
        json.put("init_weights", init.equals("kaiming") ? (Object) true : init);
        return new VariantCase(name, t -> KronaConfig.builder().scale(s).init(init).targetModules(t).build(),
                new KronaReference(0, 0, -1, s, false, 0, false), model, targets,
                List.of(KronaReference.A, KronaReference.B), json, 0, true);
    }
}
