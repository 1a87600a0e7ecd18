package io.peft4j.variants.bitfit;

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

/** BitFit's rows of the contract suite: the layer's own bias trains in place (saved as "bias"). */
public final class BitFitCases {
    private BitFitCases() {}

    private static final Map<String, String> NOT_APPLICABLE = Map.of(
            VariantCase.DISABLE, "the bias is trained in place, so disabling keeps the trained bias, as training it would",
            VariantCase.DISTINCT_ADAPTERS, "every BitFit adapter on a layer trains that layer's one bias, so two adapters cannot differ",
            VariantCase.BIASLESS_TARGETS, "BitFit trains a layer's bias, so a Linear without one cannot be a target");

    public static Stream<VariantCase> rows() {
        return Stream.of(
                row("BitFit, Mlp 13-17-11-5, all-linear", TestSupport::mlp, TargetModules.allLinear()),
                row("BitFit, nested, [q, embed]", TestSupport::nested, TargetModules.names("q", "embed")));
    }

    static VariantCase row(String name, LongFunction<Module> model, TargetModules targets) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", BitFitConfig.PEFT_TYPE);
        return new VariantCase(name, BitFitConfig::new,
                // Merging changes nothing: the weight stays W0 and the bias already is the trained one.
                new LayerAdapterReference(BitFitTest.REFERENCE, (p, w0, b0, in, out) -> new double[][] {w0.clone(), p.get("bias").clone()},
                        (in, out) -> out),
                model, targets, List.of("bias"), json, 0, true, model, NOT_APPLICABLE);
    }
}
