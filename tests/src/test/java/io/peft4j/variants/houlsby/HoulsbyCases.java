package io.peft4j.variants.houlsby;

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

/** Houlsby's rows of the contract suite: a GELU bottleneck after the layer, y = z + GELU(z·W_dᵀ + b_d)·W_uᵀ + b_u. */
public final class HoulsbyCases {
    private HoulsbyCases() {}

    private static final Map<String, String> NOT_APPLICABLE = Map.of(
            VariantCase.MERGE, "the GELU bottleneck is not linear: no weight and bias give the same output",
            VariantCase.DELTA_WEIGHT, "the GELU bottleneck is not linear: there is no ΔW",
            VariantCase.TRAIN_MODE_DIFFERENCES, "the output is not linear in W_d, b_d and x (GELU), so large fp32 steps are not exact");

    public static Stream<VariantCase> rows() {
        return Stream.of(
                row("Houlsby m=3, Mlp 13-17-11-5, all-linear", 3, TestSupport::mlp, TargetModules.allLinear()),
                row("Houlsby m=4, nested, [q, o]", 4, TestSupport::nested, TargetModules.names("q", "o")));
    }

    static VariantCase row(String name, int m, LongFunction<Module> model, TargetModules targets) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", HoulsbyConfig.PEFT_TYPE);
        json.put("bottleneck_size", m);
        return new VariantCase(name, t -> new HoulsbyConfig(t, m, 0.01f),
                new LayerAdapterReference(new HoulsbyReference(m), null, (in, out) -> 2L * m * out + m + out),
                model, targets, List.of("adapter_down.weight", "adapter_down.bias", "adapter_up.weight", "adapter_up.bias"), json, 0,
                false, model, NOT_APPLICABLE);
    }
}
