package io.peft4j.variants.qlora;

import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.linears;

import io.peft4j.nn.Linear;
import io.peft4j.nn.Module;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.quant.Nf4Tensor;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.VariantCase;
import io.peft4j.variants.lora.LoraConfig;
import io.peft4j.variants.lora.LoraReference;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.LongFunction;
import java.util.stream.Stream;

/**
 * QLoRA's rows of the contract suite: LoRA's math on W0 = dequant(NF4(W)). Wrapping quantizes the
 * targets, so the base a disabled adapter must give exactly is the model with those layers' weights
 * NF4-quantized the same way (and no adapter).
 */
public final class QLoraCases {
    private QLoraCases() {}

    public static Stream<VariantCase> rows() {
        return Stream.of(
                row("QLoRA r=4 alpha=8 double-quant blocks of 64, Mlp 13-17-11-5, all-linear", 4, 8, true, 64, TestSupport::mlp,
                        TargetModules.allLinear()),
                row("QLoRA r=3 alpha=5 blocks of 32, nested, [q, o]", 3, 5, false, 32, TestSupport::nested, TargetModules.names("q", "o")));
    }

    static VariantCase row(String name, int r, float alpha, boolean doubleQuant, int blockSize, LongFunction<Module> model, TargetModules targets) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("peft_type", QLoraConfig.PEFT_TYPE);
        json.put("r", r);
        json.put("lora_alpha", alpha);
        json.put("bnb_4bit_use_double_quant", doubleQuant);
        json.put("bnb_4bit_blocksize", blockSize);
        java.util.function.Function<TargetModules, io.peft4j.peft.AdapterConfig> config =
                t -> new QLoraConfig(LoraConfig.builder().r(r).alpha(alpha).targetModules(t).build(), "nf4", doubleQuant, blockSize, false);
        return new VariantCase(name, config, LoraReference.of(r, alpha, false), model, targets,
                List.of(LoraReference.A, LoraReference.B), json, 0, true,
                seed -> quantizedBase(model.apply(seed), PeftModel.wrap(model.apply(seed), config.apply(targets), backend(), 1)
                        .adaptedLayers(PeftModel.DEFAULT_ADAPTER).keySet(), doubleQuant, blockSize), Map.of());
    }

    /** {@code plain} with the layers at {@code paths} frozen and their weights NF4-quantized, no adapter anywhere. */
    static Module quantizedBase(Module plain, Set<String> paths, boolean doubleQuant, int blockSize) {
        Map<String, Linear> layers = linears(plain);
        for (String path : paths) {
            Linear l = layers.get(path);
            l.weight().setRequiresGrad(false);
            l.setFrozenWeight(new Nf4Weight(Nf4Tensor.quantize(backend(), path + ".weight", l.weight().value(), blockSize, doubleQuant, "float32")));
        }
        return plain;
    }
}
