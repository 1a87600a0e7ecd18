package io.peft4j.variants.sora;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.peft4j.io.AtomicFiles;
import io.peft4j.io.IoErrors;
import io.peft4j.io.SafetensorsWriter;
import io.peft4j.peft.PeftModel;
import io.peft4j.tensor.DType;
import io.peft4j.variants.lora.LoraConfig;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * SoRA after training: ranks whose gate is 0 are dropped and the gate is folded into B
 * (A' = A[nz], B' = B[:, nz]·diag(g[nz])), saved as a plain LoRA adapter that PEFT and
 * {@code PeftModel.load} read. One LoRA config holds every layer, so its r is the largest surviving
 * rank; layers with fewer ranks are padded with zero rows of A and zero columns of B (their output
 * is unchanged). lora_alpha = α·r'/r_max keeps SoRA's scale α/r_max.
 */
public final class SoraPruning {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private SoraPruning() {}

    /** Surviving ranks per layer, by layer path. */
    public static Map<String, Integer> survivingRanks(PeftModel model, String adapterName) {
        Map<String, Integer> out = new LinkedHashMap<>();
        model.adaptedLayers(adapterName).forEach((p, l) -> out.put(p, sora(l.adapter(adapterName), p).survivingRanks()));
        return out;
    }

    private static SoraAdapter sora(Object adapter, String path) {
        if (!(adapter instanceof SoraAdapter s)) throw new IllegalArgumentException("layer '" + path + "' does not carry a SoRA adapter");
        return s;
    }

    /** Writes the pruned adapter as LoRA (adapter_config.json, adapter_model.safetensors) to {@code dir}; returns the surviving ranks. */
    public static Map<String, Integer> saveAsLora(PeftModel model, String adapterName, Path dir, Map<String, String> metadata) {
        Map<String, Integer> ranks = survivingRanks(model, adapterName);
        int rPruned = Math.max(1, ranks.values().stream().mapToInt(Integer::intValue).max().orElse(1));
        SoraConfig cfg = null;
        SafetensorsWriter w = new SafetensorsWriter();
        for (var e : model.adaptedLayers(adapterName).entrySet()) {
            SoraAdapter s = sora(e.getValue().adapter(adapterName), e.getKey());
            cfg = s.config();
            int r = cfg.r();
            long dIn = s.loraA().value().dim(1), dOut = s.loraB().value().dim(0);
            float[] a = s.loraA().value().toFloatArray(), b = s.loraB().value().toFloatArray(), g = s.gate().value().toFloatArray();
            float[] na = new float[(int) (rPruned * dIn)], nb = new float[(int) (dOut * rPruned)];
            int j = 0;
            for (int i = 0; i < r; i++) {
                if (g[i] == 0f) continue;
                System.arraycopy(a, (int) (i * dIn), na, (int) (j * dIn), (int) dIn);
                for (long o = 0; o < dOut; o++) nb[(int) (o * rPruned + j)] = b[(int) (o * r + i)] * g[i];
                j++;
            }
            String key = PeftModel.KEY_PREFIX + e.getKey() + ".";
            w.put(key + "lora_A.weight", DType.F32, new long[] {rPruned, dIn}, MemorySegment.ofArray(na));
            w.put(key + "lora_B.weight", DType.F32, new long[] {dOut, rPruned}, MemorySegment.ofArray(nb));
        }
        if (cfg == null) throw new IllegalArgumentException("no layer carries adapter '" + adapterName + "'");
        LoraConfig lora = LoraConfig.builder().r(rPruned).alpha(cfg.alpha() * rPruned / cfg.r()).dropout(cfg.dropout())
                .targetModules(cfg.targetModules()).build();
        w.metadata(metadata);
        w.metadata(Map.of("format", "pt"));
        try {
            Files.createDirectories(dir);
            w.write(dir.resolve(PeftModel.WEIGHTS_FILE));
            AtomicFiles.writeString(dir.resolve(PeftModel.CONFIG_FILE), JSON.writeValueAsString(new TreeMap<>(lora.toJson())) + "\n");
        } catch (IOException e) {
            throw IoErrors.unchecked("write the pruned adapter to", dir, e);
        }
        return ranks;
    }
}
