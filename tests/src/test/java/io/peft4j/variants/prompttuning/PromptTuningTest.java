package io.peft4j.variants.prompttuning;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.backend.Backend;
import io.peft4j.data.Dataset;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.io.SafetensorsWriter;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.nn.VisionTransformer;
import io.peft4j.peft.AdapterMethods;
import io.peft4j.peft.PeftModel;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.VitModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prompt tuning on a ViT: the prompt is the only thing that trains and the base stays bit for bit
 * as it was; the prompt's gradient matches differences of the loss; disabling gives the base's
 * output; PEFT's file layout (prompt_embeddings, PROMPT_TUNING) round-trips; what cannot work is
 * refused clearly.
 */
class PromptTuningTest {
    static final Backend B = Backend.cpu();
    static final int N = 5;   // images per batch; VitModels.TINY takes 4x4 images

    static float[] normal(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    static float[] forward(Module m, float[] x) {
        try (StepContext ctx = new StepContext(B)) {
            ctx.begin(false, 0);
            return m.forward(ctx, ctx.allocate(x.length / 16, 16).copyFrom(x)).toFloatArray();
        }
    }

    static void assertBits(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++) assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), what + " [" + i + "]");
    }

    @Test
    void onlyThePromptTrainsAndTheBaseStaysBitForBit() {
        SplittableRandom r = new SplittableRandom(1);
        VisionTransformer vit = VitModels.tiny(3);
        Map<String, float[]> before = new HashMap<>();
        vit.namedParameters().forEach((n, p) -> before.put(n, p.value().toFloatArray()));
        float[] x = normal(r, N * 16);
        float[] yBase = forward(vit, x);
        try (PeftModel pm = PeftModel.wrap(vit, new PromptTuningConfig(3, 0), B, 7)) {
            assertEquals(3 * 12, pm.trainableParameterCount());
            assertEquals(List.of("prompt_encoder.default.embedding.weight"),
                    pm.namedParameters().entrySet().stream().filter(e -> e.getValue().requiresGrad()).map(Map.Entry::getKey).toList());
            Parameter prompt = pm.namedParameters().get("prompt_encoder.default.embedding.weight");
            float[] prompt0 = prompt.value().toFloatArray();
            float[] yPrompt = forward(pm, x);
            assertFalse(java.util.Arrays.equals(yBase, yPrompt), "the prompt changes the output");

            int n = 60;
            int[] labels = new int[n];
            for (int i = 0; i < n; i++) labels[i] = r.nextInt(5);
            Trainer.Config cfg = Trainer.Config.builder().epochs(2).batchSize(10).lr(1e-2f).seed(2).evalEvery(0).build();
            try (Trainer t = new Trainer(pm, Loss.crossEntropy(), AdamW.defaults(), cfg, B)) {
                t.fit(new Dataset(normal(r, n * 16), labels, n, 16, 5), null);
            }
            assertFalse(java.util.Arrays.equals(prompt0, prompt.value().toFloatArray()), "the prompt trained");
            vit.namedParameters().forEach((name, p) -> {
                if (!name.startsWith("prompt_encoder.")) assertBits(before.get(name), p.value().toFloatArray(), "base parameter " + name);
            });
            pm.disableAdapters();
            assertBits(yBase, forward(pm, x), "disabled: the base's output");
            pm.enableAdapters();
            assertFalse(java.util.Arrays.equals(yBase, forward(pm, x)), "enabled again");
        }
    }

    /** ∂(Σ g ⊙ logits)/∂prompt by the model's backward against float32 central differences of the forward. */
    @Test
    void promptGradientMatchesDifferences() {
        SplittableRandom r = new SplittableRandom(2);
        try (PeftModel pm = PeftModel.wrap(VitModels.tiny(5), new PromptTuningConfig(4, 12), B, 3); StepContext ctx = new StepContext(B)) {
            Parameter prompt = pm.namedParameters().get("prompt_encoder.default.embedding.weight");
            float[] x = normal(r, N * 16), g = normal(r, N * 5);
            ctx.begin(true, 0);
            pm.forward(ctx, ctx.allocate(N, 16).copyFrom(x));
            B.fill(0f, prompt.grad());
            pm.backward(ctx, ctx.allocate(N, 5).copyFrom(g), false);
            float[] grad = prompt.grad().toFloatArray();
            double scale = 0;
            for (float v : grad) scale = Math.max(scale, Math.abs(v));
            float[] p0 = prompt.value().toFloatArray();
            for (int i : new int[] {0, 7, 13, 26, 47}) {
                double h = 1e-2;
                float[] p = p0.clone();
                p[i] = (float) (p0[i] + h);
                prompt.value().copyFrom(p);
                double up = dot(g, forward(pm, x));
                p[i] = (float) (p0[i] - h);
                prompt.value().copyFrom(p);
                double down = dot(g, forward(pm, x));
                prompt.value().copyFrom(p0);
                double fd = (up - down) / (2 * h);
                assertEquals(fd, grad[i], 1e-2 * scale, "prompt grad [" + i + "]");
            }
        }
    }

    static double dot(float[] a, float[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += (double) a[i] * b[i];
        return s;
    }

    @Test
    void savesAndLoadsInPeftsLayout(@TempDir Path dir) throws Exception {
        float[] x = normal(new SplittableRandom(4), N * 16);
        float[] y;
        try (PeftModel pm = PeftModel.wrap(VitModels.tiny(6), new PromptTuningConfig(3, 0), B, 9)) {
            y = forward(pm, x);
            pm.save(dir);
        }
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(PeftModel.WEIGHTS_FILE))) {
            assertEquals(List.of("prompt_embeddings"), List.copyOf(f.names()));
            assertArrayEquals(new long[] {3, 12}, f.entry("prompt_embeddings").shape());
        }
        Map<?, ?> json = new ObjectMapper().readValue(dir.resolve(PeftModel.CONFIG_FILE).toFile(), Map.class);
        assertEquals("PROMPT_TUNING", json.get("peft_type"));
        assertEquals(3, json.get("num_virtual_tokens"));
        try (PeftModel loaded = PeftModel.load(VitModels.tiny(6), dir)) {
            assertBits(y, forward(loaded, x), "loaded adapter's output");
            IllegalStateException e = assertThrows(IllegalStateException.class, loaded::mergeAndUnload);
            assertTrue(e.getMessage().contains("cannot be merged"), e.getMessage());
        }
        // A file whose prompt has another length is refused, naming the key.
        SafetensorsWriter w = new SafetensorsWriter();
        w.putF32("prompt_embeddings", new long[] {2, 12}, new float[24]);
        w.write(dir.resolve(PeftModel.WEIGHTS_FILE));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PeftModel.load(VitModels.tiny(6), dir));
        assertTrue(e.getMessage().contains("'prompt_embeddings' has shape [2, 12]"), e.getMessage());
    }

    @Test
    void severalPromptsSwitchAndDelete() {
        float[] x = normal(new SplittableRandom(5), N * 16);
        VisionTransformer vit = VitModels.tiny(8);
        float[] yBase = forward(vit, x);
        try (PeftModel pm = PeftModel.wrap(vit, new PromptTuningConfig(2, 0), B, 1)) {
            float[] yDefault = forward(pm, x);
            pm.addAdapter("other", new PromptTuningConfig(6, 0), 2);
            assertBits(yDefault, forward(pm, x), "the first adapter stays active");
            pm.setActiveAdapter("other");
            float[] yOther = forward(pm, x);
            assertFalse(java.util.Arrays.equals(yDefault, yOther));
            assertEquals(6 * 12, pm.trainableParameterCount());
            pm.deleteAdapter("other");
            assertBits(yDefault, forward(pm, x), "back to the default prompt");
            pm.deleteAdapter(PeftModel.DEFAULT_ADAPTER);
            assertBits(yBase, forward(pm, x), "no prompt left");
            assertTrue(vit.prompts().isEmpty());
        }
    }

    @Test
    void whatCannotWorkIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PeftModel.wrap(TestSupport.mlp(1), new PromptTuningConfig(4, 0), B, 0));
        assertTrue(e.getMessage().contains("prompt tuning needs a model that takes prompt tokens"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> PeftModel.wrap(VitModels.tiny(1), new PromptTuningConfig(4, 13), B, 0));
        assertTrue(e.getMessage().contains("token_dim 13"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new PromptTuningConfig(0, 0));
        // PEFT's own config fields load; a TEXT init (not implemented) is refused by name.
        Map<String, Object> json = new HashMap<>(Map.of("peft_type", "PROMPT_TUNING", "num_virtual_tokens", 20, "token_dim", 768,
                "num_transformer_submodules", 1, "num_attention_heads", 12, "num_layers", 12, "prompt_tuning_init", "RANDOM",
                "task_type", "SEQ_CLS", "peft_version", "0.17.0"));
        PromptTuningConfig c = (PromptTuningConfig) AdapterMethods.forType("PROMPT_TUNING").configFromJson(json);
        assertEquals(new PromptTuningConfig(20, 768), c);
        json.put("prompt_tuning_init", "TEXT");
        e = assertThrows(IllegalArgumentException.class, () -> AdapterMethods.forType("PROMPT_TUNING").configFromJson(json));
        assertTrue(e.getMessage().contains("prompt_tuning_init"), e.getMessage());
        assertFalse(AdapterMethods.forName("prompt-tuning").mergeable());
        // compare --variants all leaves it out on a model without tokens, and only there.
        try (Module mlp = TestSupport.mlp(1); Module vit = VitModels.tiny(1)) {
            assertTrue(AdapterMethods.forName("prompt-tuning").unsupportedModel(mlp).contains("--model vit"));
            assertEquals(null, AdapterMethods.forName("prompt-tuning").unsupportedModel(vit));
            assertEquals(null, AdapterMethods.forName("lora").unsupportedModel(mlp));
        }
    }
}
