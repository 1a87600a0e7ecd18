package io.peft4j.variants.ia3;

import io.peft4j.nn.Module;
import io.peft4j.peft.TargetModules;
import io.peft4j.variants.LayerAdapterReference;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.VariantCase;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongFunction;
import java.util.stream.Stream;

/**
 * (IA)³'s rows of the contract suite, in both modes: output scaling y = l ⊙ (x·W0ᵀ + b0), and
 * input scaling y = (x ⊙ l)·W0ᵀ + b0 for the layers in feedforward_modules (here every target, so
 * the suite's one-layer checks see that mode).
 */
public final class Ia3Cases {
    private Ia3Cases() {}

    public static Stream<VariantCase> rows() {
        return Stream.of(
                row("(IA)³ output scaling, Mlp 13-17-11-5, all-linear", false, TestSupport::mlp, TargetModules.allLinear()),
                row("(IA)³ output scaling, nested, [q, o]", false, TestSupport::nested, TargetModules.names("q", "o")),
                row("(IA)³ input scaling (feedforward_modules = targets), Mlp, [fc1, fc2]", true, TestSupport::mlp,
                        TargetModules.names("fc1", "fc2")),
                row("(IA)³ input scaling (feedforward_modules = targets), nested, all-linear", true, TestSupport::nested,
                        TargetModules.allLinear()));
    }

    static VariantCase row(String name, boolean feedforward, LongFunction<Module> model, TargetModules targets) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", Ia3Config.PEFT_TYPE);
        if (feedforward) json.put("feedforward_modules", targets.toJson());
        return new VariantCase(name, t -> new Ia3Config(t, feedforward ? t : null),
                new LayerAdapterReference(new Ia3Reference(feedforward), (p, w0, b0, in, out) -> merged(feedforward, p.get("ia3_l"), w0, b0, in, out),
                        (in, out) -> feedforward ? in : out),
                model, targets, List.of("ia3_l"), json, 0, true);
    }

    /** Output mode: W ← diag(l)·W0, b ← l ⊙ b0; input mode: W ← W0·diag(l), b unchanged. */
    static double[][] merged(boolean feedforward, double[] l, double[] w0, double[] b0, int in, int out) {
        double[] w = w0.clone();
        for (int i = 0; i < out; i++) for (int j = 0; j < in; j++) w[i * in + j] *= feedforward ? l[j] : l[i];
        double[] b = b0 == null || feedforward ? b0 : b0.clone();
        if (b != null && !feedforward) for (int i = 0; i < out; i++) b[i] *= l[i];
        return new double[][] {w, b};
    }
}
