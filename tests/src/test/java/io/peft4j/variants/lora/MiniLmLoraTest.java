package io.peft4j.variants.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.data.Batches;
import io.peft4j.data.Dataset;
import io.peft4j.data.Fortunes;
import io.peft4j.io.onnx.BertOnnx;
import io.peft4j.io.onnx.OnnxModel;
import io.peft4j.nn.BertClassifier;
import io.peft4j.nn.Loss;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.text.BertTokenizer;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * LoRA r=8, α=16 on all-MiniLM-L6-v2's {@code query,value} (with the classifier head trained
 * beside it as modules_to_save) beats the linear probe (the head alone on the frozen encoder) on
 * held-out fortunes, both trained with the same recipe (the demo's: AdamW lr 1e-3), here kept to
 * about a minute on 2 cores: 280 training texts and 140 test texts (each split shuffled with seed
 * 0, all 7 categories present), cut at 32 tokens, batch 16, 3 epochs. Measured: probe 0.707, LoRA
 * 0.814. (On so few steps a probe given its own best rate, 1e-2, reaches 0.879 and LoRA's best,
 * 3e-3, 0.864: the same-recipe comparison is what this test claims; the demo's full run at lr 1e-3
 * gives 0.762 and 0.854.)
 */
class MiniLmLoraTest {
    private static final int TRAIN = 280, TEST = 140, MAX_LENGTH = 32, BATCH = 16, EPOCHS = 3;
    private static final float LR = 1e-3f;

    @Test
    void loraOnQueryValueBeatsTheLinearProbe() throws IOException {
        Backend backend = Backend.cpu();
        byte[] onnx;
        try (InputStream in = MiniLmLoraTest.class.getResourceAsStream("/all-minilm-l6-v2.onnx")) {
            onnx = in.readAllBytes();
        }
        BertTokenizer tokenizer;
        try (InputStream in = MiniLmLoraTest.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            tokenizer = BertTokenizer.fromJson(in, "all-minilm-l6-v2-tokenizer.json");
        }
        Fortunes fortunes = Fortunes.load();
        Dataset train = ids(tokenizer, fortunes.train(), TRAIN), test = ids(tokenizer, fortunes.test(), TEST);
        assertEquals(7, Arrays.stream(train.labels()).distinct().count(), "every category is in the training subset");

        try (BertOnnx.Loaded loaded = BertOnnx.load(OnnxModel.parse(onnx, "all-minilm-l6-v2.onnx"))) {
            double probe;
            try (BertClassifier model = classifier(backend, loaded)) {
                model.namedParameters().forEach((n, p) -> p.setRequiresGrad(n.startsWith("classifier.")));
                assertEquals(7 * 384 + 7, model.trainableParameterCount());
                probe = fit(backend, model, train, test);
            }
            try (BertClassifier model = classifier(backend, loaded)) {
                LoraConfig config = LoraConfig.builder().r(8).alpha(16).targetModules(TargetModules.names("query", "value")).build();
                PeftModel pm = PeftModel.wrap(model, config, backend, 0, List.of("classifier"));
                assertEquals(6 * 2 * 8 * (384 + 384) + 7 * 384 + 7, pm.trainableParameterCount());
                Map<String, float[]> before = snapshot(pm);
                double lora = fit(backend, pm, train, test);
                System.out.printf(Locale.ROOT, "MiniLM fortunes, lr 1e-3: linear probe %.4f, LoRA r=8 query,value + head %.4f%n", probe, lora);
                assertTrue(!Arrays.equals(before.get("encoder.layer.2.attention.self.value.lora_B.default.weight"),
                        pm.namedParameters().get("encoder.layer.2.attention.self.value.lora_B.default.weight").value().toFloatArray()),
                        "LoRA's B trained away from zero");
                assertTrue(lora > probe, "LoRA on query,value " + lora + " should beat the linear probe " + probe);
            }
        }
    }

    private static BertClassifier classifier(Backend backend, BertOnnx.Loaded loaded) {
        BertClassifier model = new BertClassifier(backend, loaded.config(), Fortunes.CATEGORIES.size(), false, 0);
        model.loadWeights(loaded.weights());
        return model;
    }

    private static double fit(Backend backend, io.peft4j.nn.Module model, Dataset train, Dataset test) {
        Trainer.Config cfg = Trainer.Config.builder().epochs(EPOCHS).batchSize(BATCH).lr(LR).seed(0).evalEvery(EPOCHS).progress(false).build();
        try (Trainer t = new Trainer(model, Loss.crossEntropy(), AdamW.defaults(), cfg, backend)) {
            return t.fit(train, test).last().eval().accuracy();
        }
    }

    private static Map<String, float[]> snapshot(io.peft4j.nn.Module m) {
        Map<String, float[]> out = new java.util.LinkedHashMap<>();
        m.namedParameters().forEach((n, p) -> {
            if (p.requiresGrad()) out.put(n, p.value().toFloatArray());
        });
        return out;
    }

    /** The first {@code n} examples of a fixed shuffle (seed 0) as ids [n, MAX_LENGTH] held as floats, padded with [PAD] = 0. */
    private static Dataset ids(BertTokenizer tokenizer, List<Fortunes.Example> all, int n) {
        int[] order = Batches.order(all.size(), 0, 0);
        List<Fortunes.Example> chosen = Arrays.stream(order, 0, n).mapToObj(all::get).toList();
        float[] x = new float[n * MAX_LENGTH];
        int[] y = new int[n];
        for (int i = 0; i < n; i++) {
            int[] ids = tokenizer.encode(chosen.get(i).text(), MAX_LENGTH);
            for (int j = 0; j < ids.length; j++) x[i * MAX_LENGTH + j] = ids[j];
            y[i] = chosen.get(i).label();
        }
        return new Dataset(x, y, n, MAX_LENGTH, Fortunes.CATEGORIES.size());
    }
}
