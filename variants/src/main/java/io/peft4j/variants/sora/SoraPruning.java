package io.peft4j.variants.sora;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.peft4j.io.AtomicFiles;
import io.peft4j.io.IoErrors;
import io.peft4j.io.SafetensorsWriter;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.tensor.DType;
import io.peft4j.variants.lora.LoraConfig;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * SoRA after training: ranks whose gate is 0 are dropped and the gate is folded into B
 * (A' = A[nz], B' = B[:, nz]·diag(g[nz])), saved as a plain LoRA adapter that PEFT and
 * {@code PeftModel.load} read. Each layer keeps exactly its surviving ranks r', recorded in PEFT's
 * rank_pattern, and alpha_pattern's α·r'/r_max keeps SoRA's scale α/r_max; layers with no surviving
 * rank add nothing and are left out of target_modules.
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

    /** A pattern key naming exactly this layer path: its regex characters (the dots) escaped, as Python's re.escape. */
    private static String patternKey(String path) {
        StringBuilder k = new StringBuilder();
        for (char c : path.toCharArray()) {
            if ("\\.^$|?*+()[]{}".indexOf(c) >= 0) k.append('\\');
            k.append(c);
        }
        return k.toString();
    }

    /** Writes the pruned adapter as LoRA (adapter_config.json, adapter_model.safetensors) to {@code dir}; returns the surviving ranks. */
    public static Map<String, Integer> saveAsLora(PeftModel model, String adapterName, Path dir, Map<String, String> metadata) {
        Map<String, Integer> ranks = survivingRanks(model, adapterName);
        SoraConfig cfg = null;
        SafetensorsWriter w = new SafetensorsWriter();
        List<String> kept = new ArrayList<>();
        Map<String, Integer> rankPattern = new LinkedHashMap<>();
        Map<String, Float> alphaPattern = new LinkedHashMap<>();
        for (var e : model.adaptedLayers(adapterName).entrySet()) {
            SoraAdapter s = sora(e.getValue().adapter(adapterName), e.getKey());
            cfg = s.config();
            int r = cfg.r(), rPruned = ranks.get(e.getKey());
            if (rPruned == 0) continue;   // all gates closed: the layer adds nothing
            kept.add(e.getKey());
            rankPattern.put(patternKey(e.getKey()), rPruned);
            alphaPattern.put(patternKey(e.getKey()), cfg.scaling() * rPruned);
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
        if (kept.isEmpty()) throw new IllegalArgumentException("every gate of adapter '" + adapterName + "' is closed: no rank survives to save");
        // r and lora_alpha only matter for layers no pattern names, and every kept layer is named.
        int rMax = rankPattern.values().stream().mapToInt(Integer::intValue).max().orElseThrow();
        LoraConfig lora = LoraConfig.builder().r(rMax).alpha(cfg.scaling() * rMax).dropout(cfg.dropout())
                .targetModules(TargetModules.names(kept.toArray(String[]::new))).rankPattern(rankPattern).alphaPattern(alphaPattern).build();
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
