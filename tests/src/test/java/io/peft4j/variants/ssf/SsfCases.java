package io.peft4j.variants.ssf;

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
 * SSF's rows of the contract suite: y = γ ⊙ (x·W0ᵀ + b0) + β. Merging puts β into the bias, so the
 * rows target layers with a bias (merging one without is refused, see {@link SsfTest}).
 */
public final class SsfCases {
    private SsfCases() {}

    public static Stream<VariantCase> rows() {
        return Stream.of(
                row("SSF identity init, Mlp 13-17-11-5, all-linear", TestSupport::mlp, TargetModules.allLinear()),
                row("SSF identity init, nested, [q, embed]", TestSupport::nested, TargetModules.names("q", "embed")));
    }

    static VariantCase row(String name, LongFunction<Module> model, TargetModules targets) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", SsfConfig.PEFT_TYPE);
        return new VariantCase(name, t -> new SsfConfig(t, "identity"),
                new LayerAdapterReference(new SsfReference(), SsfCases::merged, (in, out) -> 2L * out),
                model, targets, List.of("ssf_scale", "ssf_shift"), json, 0, true);
    }

    /** W ← diag(γ)·W0, b ← γ ⊙ b0 + β. */
    static double[][] merged(Map<String, double[]> p, double[] w0, double[] b0, int in, int out) {
        double[] g = p.get("ssf_scale"), beta = p.get("ssf_shift"), w = w0.clone(), b = new double[out];
        for (int i = 0; i < out; i++) {
            for (int j = 0; j < in; j++) w[i * in + j] *= g[i];
            b[i] = g[i] * b0[i] + beta[i];
        }
        return new double[][] {w, b};
    }
}
