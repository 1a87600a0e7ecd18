package io.peft4j.variants.dora;

import io.peft4j.nn.Module;
import io.peft4j.peft.TargetModules;
import io.peft4j.variants.LayerAdapterReference;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.VariantCase;
import io.peft4j.variants.lora.LoraConfig;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongFunction;
import java.util.stream.Stream;

/** DoRA's rows of the contract suite: the whole layer is m ⊙ (W0 + s·B·A)x / ‖W0 + s·B·A‖_row + b0. */
public final class DoraCases {
    private DoraCases() {}

    public static Stream<VariantCase> rows() {
        return Stream.of(
                row("DoRA r=4 alpha=8, Mlp 13-17-11-5, all-linear", 4, 8, TestSupport::mlp, TargetModules.allLinear()),
                row("DoRA r=3 alpha=5 (odd), nested, [q, o]", 3, 5, TestSupport::nested, TargetModules.names("q", "o")));
    }

    static VariantCase row(String name, int r, float alpha, LongFunction<Module> model, TargetModules targets) {
        DoraReference ref = new DoraReference(r, alpha / r);
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("r", r);
        json.put("lora_alpha", alpha);
        json.put("use_dora", true);
        return new VariantCase(name, t -> LoraConfig.builder().r(r).alpha(alpha).useDora(true).targetModules(t).build(),
                new LayerAdapterReference(ref, (p, w0, b0, in, out) -> new double[][] {ref.merged(p, w0, in, out), b0},
                        (in, out) -> (long) r * (in + out) + out),
                model, targets, List.of("lora_A.weight", "lora_B.weight", "lora_magnitude_vector"), json, 0,
                // m starts at ‖W0‖_row, so (m/n)·W0 is W0 only up to fp32 rounding: not bit-exactly the identity.
                false, model,
                Map.of(VariantCase.TRAIN_MODE_DIFFERENCES, "backward holds the row norm ‖W0 + s·B·A‖ constant (PEFT detaches it), so the "
                        + "gradient of A and B is not the derivative of the forward; the float64 check holds the norm constant too"));
    }
}
