package io.peft4j.variants.qlora;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Linear;
import io.peft4j.peft.Adapter;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.TargetModules;
import io.peft4j.quant.Nf4Tensor;
import io.peft4j.variants.lora.LoraConfig;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * QLoRA (Dettmers et al. 2023): every targeted layer's frozen W is quantized to NF4 (bitsandbytes'
 * format, optionally double-quantized; its fp32 copy is freed) and a LoRA adapter trains on top.
 *
 * <p>adapter_config.json: LoRA's fields (PEFT's LoraConfig, same defaults: in PEFT a QLoRA adapter
 * is a LoRA adapter on a bitsandbytes base) plus {@code bnb_4bit_quant_type} ("nf4"),
 * {@code bnb_4bit_use_double_quant} (default true, as the paper) and {@code bnb_4bit_blocksize}
 * (default 64), and the training setting {@code paged_optimizer} (default false: AdamW's moments in
 * file-backed memory the OS can page out, {@code AdamW.pagedOptimizer}), with {@code peft_type} "QLORA"; the weights file has LoRA's keys, so PEFT loads it as
 * a LORA adapter once peft_type is changed.
 */
public record QLoraConfig(LoraConfig lora, String quantType, boolean doubleQuant, int blockSize, boolean pagedOptimizer)
        implements AdapterConfig {
    public static final String PEFT_TYPE = "QLORA";

    public QLoraConfig {
        if (lora == null) throw new IllegalArgumentException("QLoRA needs its LoRA settings");
        if (!"nf4".equals(quantType)) throw new IllegalArgumentException("QLoRA bnb_4bit_quant_type must be nf4, got '" + quantType + "'");
        if (blockSize < 32 || blockSize > 4096 || Integer.bitCount(blockSize) != 1) {
            throw new IllegalArgumentException("QLoRA bnb_4bit_blocksize must be a power of two in [32, 4096], got " + blockSize);
        }
    }

    /** QLoRA over the given LoRA settings, double-quantized NF4 in blocks of 64. */
    public static QLoraConfig of(LoraConfig lora) {
        return new QLoraConfig(lora, "nf4", true, Nf4Tensor.DEFAULT_BLOCK_SIZE, false);
    }

    @Override public String peftType() { return PEFT_TYPE; }
    @Override public TargetModules targetModules() { return lora.targetModules(); }

    /** Quantizes the layer's W (once per layer) and attaches a LoRA adapter. */
    @Override
    public Adapter create(Linear layer, String adapterName, Backend backend, long seed) {
        if (layer.frozenWeight() == null) {
            layer.weight().setRequiresGrad(false);
            Nf4Tensor q = Nf4Tensor.quantize(backend, layer.path() + ".weight", layer.weight().value(), blockSize, doubleQuant, "float32");
            layer.setFrozenWeight(new Nf4Weight(q));
        }
        return lora.create(layer, adapterName, backend, seed);
    }

    @Override
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>(lora.toJson());
        m.put("peft_type", PEFT_TYPE);
        m.put("bnb_4bit_quant_type", quantType);
        m.put("bnb_4bit_use_double_quant", doubleQuant);
        m.put("bnb_4bit_blocksize", blockSize);
        m.put("paged_optimizer", pagedOptimizer);
        return m;
    }
}
