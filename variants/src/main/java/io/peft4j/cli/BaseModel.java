package io.peft4j.cli;

import io.peft4j.io.IoErrors;
import io.peft4j.backend.Backend;
import io.peft4j.io.SafetensorsEntry;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.nn.BertClassifier;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.VisionTransformer;
import io.peft4j.tensor.DType;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A base model (the MLP, or the ViT with --model vit) with its identity: a SHA-256 of its weights and how it was made. An adapter records
 * both (in its safetensors metadata), so eval and merge use the same base or refuse.
 *
 * @param model           the MLP or ViT, weights loaded
 * @param sha256          hex SHA-256 over every parameter's name, shape and float32 bytes, in order
 * @param origin          how it was made: keys {@code source} ("pretrained" or "file") and its settings
 * @param secondsPerEpoch pretraining time when it was trained in this run, else NaN
 * @param msPerStep       likewise
 */
record BaseModel(Module model, String sha256, Map<String, String> origin, double secondsPerEpoch, double msPerStep) {
    /** Metadata keys in adapter_model.safetensors. */
    static final String META_SHA = "peft4j.base.sha256";
    static final String META_PREFIX = "peft4j.base.";

    private static final Pattern KEY = Pattern.compile("fc(\\d+)\\.(weight|bias)");

    /** Identity of {@code mlp}'s current weights. */
    static String sha256(Module mlp) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            for (Map.Entry<String, Parameter> e : mlp.namedParameters().entrySet()) {
                md.update(e.getKey().getBytes(StandardCharsets.UTF_8));
                md.update(Arrays.toString(e.getValue().value().shape()).getBytes(StandardCharsets.UTF_8));
                md.update(e.getValue().value().segment().toArray(ValueLayout.JAVA_BYTE));
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The metadata an adapter trained on this base records. */
    Map<String, String> metadata() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put(META_SHA, sha256);
        origin.forEach((k, v) -> m.put(META_PREFIX + k, v));
        return m;
    }

    /** "pretrained MLP 784-512-512-10, seed 1, --limit 600" or "file base.safetensors". */
    String describe() {
        return describe(origin);
    }

    static String describe(Map<String, String> origin) {
        if ("file".equals(origin.get("source"))) return "--base " + origin.get("file");
        String limit = origin.getOrDefault("limit", "0");
        if (MiniLmBase.MODEL.equals(origin.get("model"))) return "the bundled all-MiniLM-L6-v2 (--model minilm --seed " + origin.get("seed") + ")";
        if ("vit".equals(origin.get("model"))) {
            return "the cached pretrained ViT (--model vit --seed " + origin.get("seed") + (limit.equals("0") ? "" : " --limit " + limit) + ")";
        }
        return "the cached pretrained MLP " + origin.get("sizes") + " (--seed " + origin.get("seed")
                + (limit.equals("0") ? "" : " --limit " + limit) + ")";
    }

    /** The flags that select this base again: "--seed 1 --limit 600" or "--base FILE". */
    static String flags(Map<String, String> origin) {
        String model = origin.get("model") != null ? "--model " + origin.get("model") + " " : "";
        if ("file".equals(origin.get("source"))) return model + "--base " + origin.get("file");
        String limit = origin.getOrDefault("limit", "0");
        return model + "--seed " + origin.get("seed") + (limit.equals("0") ? "" : " --limit " + limit);
    }

    static String shortSha(String sha) {
        return sha == null ? "?" : sha.substring(0, Math.min(12, sha.length()));
    }

    /** The origin recorded in an adapter's metadata (keys without the prefix), empty when none. */
    static Map<String, String> recordedOrigin(Map<String, String> adapterMetadata) {
        Map<String, String> o = new LinkedHashMap<>();
        adapterMetadata.forEach((k, v) -> {
            if (k.startsWith(META_PREFIX) && !k.equals(META_SHA)) o.put(k.substring(META_PREFIX.length()), v);
        });
        return o;
    }

    /**
     * Refuses a base that is not the one the adapter was trained on.
     *
     * @param adapter         the adapter directory, for the message
     * @param adapterMetadata its adapter_model.safetensors metadata
     */
    void requireMatches(Path adapter, Map<String, String> adapterMetadata) {
        String want = adapterMetadata.get(META_SHA);
        if (want == null || want.equals(sha256)) return;
        Map<String, String> recorded = recordedOrigin(adapterMetadata);
        throw new IllegalArgumentException("adapter " + adapter + " was trained on another base: it needs base sha256 " + shortSha(want)
                + "… (" + (recorded.isEmpty() ? "origin not recorded" : describe(recorded)) + "), but this base is sha256 "
                + shortSha(sha256) + "… (" + describe() + "); run with " + (recorded.isEmpty() ? "that base" : flags(recorded)));
    }

    /**
     * Reads an MLP checkpoint in PyTorch's naming ({@code fc1.weight} [out, in], {@code fc1.bias},
     * ..., {@code fcN.*}), checking keys, dtypes and that consecutive shapes chain before loading.
     *
     * @param requireIo when true (commands that use data), the first input must be 784 and the last output 10
     * @param notes     receives one line per conversion made (BF16/F16 to F32)
     */
    static BaseModel fromFile(Backend backend, Path file, Mlp.Activation activation, boolean requireIo, List<String> notes) {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            Map<Integer, long[]> weights = new java.util.TreeMap<>();
            Set<String> extra = new TreeSet<>();
            for (SafetensorsEntry e : f.entries()) {
                Matcher m = KEY.matcher(e.name());
                if (!m.matches()) {
                    extra.add(e.name());
                    continue;
                }
                if (e.dtype() != DType.F32 && e.dtype() != DType.BF16 && e.dtype() != DType.F16) {
                    throw new IllegalArgumentException(file + ": tensor '" + e.name() + "' is " + e.dtype() + "; a base needs F32, BF16 or F16");
                }
                if (m.group(2).equals("weight")) weights.put(Integer.parseInt(m.group(1)), e.shape());
            }
            if (!extra.isEmpty()) {
                throw new IllegalArgumentException(file + ": unexpected tensor '" + extra.iterator().next()
                        + "' (an MLP base holds only fc1.weight, fc1.bias, ..., fcN.weight, fcN.bias)");
            }
            if (weights.isEmpty()) throw new IllegalArgumentException(file + ": no fc1.weight (an MLP base holds fc1.weight, fc1.bias, ..., fcN.*)");
            int layers = weights.size();
            List<Long> sizes = new ArrayList<>();
            for (int i = 1; i <= layers; i++) {
                long[] w = weights.get(i);
                if (w == null) throw new IllegalArgumentException(file + ": missing tensor 'fc" + i + ".weight' (the file has fc1..fc"
                        + Collections.max(weights.keySet()) + " with gaps)");
                if (w.length != 2) throw new IllegalArgumentException(file + ": 'fc" + i + ".weight' has shape " + Arrays.toString(w) + ", expected [out, in]");
                if (i == 1) sizes.add(w[1]);
                else if (w[1] != sizes.get(i - 1)) {
                    throw new IllegalArgumentException(file + ": layers do not chain: 'fc" + (i - 1) + ".weight' outputs " + sizes.get(i - 1)
                            + " features but 'fc" + i + ".weight' " + Arrays.toString(w) + " takes " + w[1]);
                }
                sizes.add(w[0]);
                String bias = "fc" + i + ".bias";
                if (!f.contains(bias)) throw new IllegalArgumentException(file + ": missing tensor '" + bias + "'");
                if (!Arrays.equals(f.entry(bias).shape(), new long[] {w[0]})) {
                    throw new IllegalArgumentException(file + ": '" + bias + "' has shape " + Arrays.toString(f.entry(bias).shape())
                            + ", expected [" + w[0] + "]");
                }
            }
            if (requireIo && (sizes.get(0) != 784 || sizes.get(sizes.size() - 1) != 10)) {
                throw new IllegalArgumentException(file + ": this base maps " + sizes.get(0) + " to " + sizes.get(sizes.size() - 1)
                        + " features; Fashion-MNIST needs 784 inputs (fc1.weight [*, 784]) and 10 outputs (fc" + layers + ".weight [10, *])");
            }
            Mlp mlp = new Mlp(backend, activation, 0, sizes.stream().mapToLong(Long::longValue).toArray());
            for (Map.Entry<String, Parameter> e : mlp.namedParameters().entrySet()) {
                SafetensorsEntry entry = f.entry(e.getKey());
                if (entry.dtype() != DType.F32) notes.add("note: " + e.getKey() + " is " + entry.dtype() + ", converted to F32 on load");
                float[] v = f.readF32(e.getKey());
                for (float x : v) {
                    if (!Float.isFinite(x)) throw new IllegalArgumentException(file + ": tensor '" + e.getKey() + "' holds a non-finite value (" + x + ")");
                }
                e.getValue().value().copyFrom(v);
            }
            Map<String, String> origin = new LinkedHashMap<>();
            origin.put("source", "file");
            origin.put("file", file.toString());
            origin.put("sizes", sizesText(mlp.sizes()));
            origin.put("activation", activation.name().toLowerCase(Locale.ROOT));
            return new BaseModel(mlp, sha256(mlp), origin, Double.NaN, Double.NaN);
        } catch (IOException e) {
            throw IoErrors.unchecked("read base model", file, e);
        }
    }

    static String sizesText(long[] sizes) {
        return String.join("-", Arrays.stream(sizes).mapToObj(Long::toString).toList());
    }

    /** A new model with the same sizes and weights (each compared method trains its own copy). */
    Module copyModel(Workflow w, Mlp.Activation activation) {
        if (model instanceof VisionTransformer vit) return VitBase.copy(w, vit);
        if (model instanceof BertClassifier bert) return MiniLmBase.copy(w, bert);
        Mlp copy = new Mlp(w.backend, activation, 0, ((Mlp) model).sizes());
        Map<String, Parameter> src = model.namedParameters();
        copy.namedParameters().forEach((n, p) -> p.value().copyFrom(src.get(n).value()));
        return copy;
    }
}
