package io.peft4j.variants.selora;

import io.peft4j.peft.PeftModel;
import io.peft4j.train.Trainer;
import io.peft4j.train.TrainerCallback;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * SeLoRA's growth rule (the authors' code): after backward each layer's F = Σ (∂L/∂θ)² is kept
 * (the last {@code window} values); every expand_step optimizer steps every layer below r_max runs
 * the step again in trial mode with one more rank, and grows when F_exp / mean(F) ≥ λ. A grown
 * layer's optimizer state is restarted at zero or padded (keep_optimizer_state); each test records
 * every layer's rank ("rank &lt;layer&gt;") in the run's metrics and chart.
 */
final class RankExpander implements TrainerCallback {
    private final SeLoraConfig config;
    private final String adapterName;
    private final Map<String, SeLoraAdapter> layers = new LinkedHashMap<>();
    private final Map<String, double[]> window = new LinkedHashMap<>();
    private long scored;
    private int tests, grown;

    RankExpander(PeftModel model, String adapterName, SeLoraConfig config) {
        this.config = config;
        this.adapterName = adapterName;
        model.adaptedLayers(adapterName).forEach((p, l) -> {
            layers.put(p, (SeLoraAdapter) l.adapter(adapterName));
            window.put(p, new double[config.window()]);
        });
    }

    @Override
    public void afterBackward(Trainer.State state) {
        int slot = (int) (scored++ % config.window());
        layers.forEach((p, a) -> {
            if (a.loraA().requiresGrad()) window.get(p)[slot] = a.score(state.backend());
        });
    }

    @Override
    public void afterOptimizerStep(Trainer.State state) {
        if (state.step() % config.expandStep() != 0) return;
        tests++;
        List<String> trying = new ArrayList<>();
        layers.forEach((p, a) -> {
            if (a.loraA().requiresGrad() && (config.rMax() == 0 || a.rank() < config.rMax())) {
                a.setTrial(true);
                trying.add(p);
            }
        });
        if (!trying.isEmpty()) {
            try {
                state.rerunStep();
            } finally {
                layers.values().forEach(a -> a.setTrial(false));
            }
        }
        boolean changed = false;
        long filled = Math.min(scored, config.window());
        for (String p : trying) {
            SeLoraAdapter a = layers.get(p);
            double fOrig = Arrays.stream(window.get(p)).limit(filled).sum() / filled;
            double fExp = a.trialScore();
            if (fOrig > 0 && fExp / fOrig >= config.expandThreshold()) {
                grow(state, p, a);
                changed = true;
            }
        }
        if (changed) state.parametersChanged();
        layers.forEach((p, a) -> state.record("rank " + p, a.rank()));
    }

    private void grow(Trainer.State state, String path, SeLoraAdapter a) {
        int r = a.rank();
        long dIn = a.loraA().value().dim(1), dOut = a.loraB().value().dim(0);
        a.grow(state.backend());
        grown++;
        boolean keep = config.keepOptimizerState();
        String prefix = path + ".lora_";
        // Adam state of the grown layer: zero (the code re-registers the parameters) or the old rows and a zero row/column.
        state.optimizer().reshapeState(prefix + "A." + adapterName + ".weight",
                v -> keep ? Arrays.copyOf(v, (int) ((r + 1) * dIn)) : new float[(int) ((r + 1) * dIn)], r + 1, dIn);
        state.optimizer().reshapeState(prefix + "B." + adapterName + ".weight", v -> {
            float[] out = new float[(int) (dOut * (r + 1))];
            if (keep) for (int o = 0; o < dOut; o++) System.arraycopy(v, o * r, out, o * (r + 1), r);
            return out;
        }, dOut, r + 1);
    }

    @Override
    public Map<String, Integer> finalRanks() {
        Map<String, Integer> out = new LinkedHashMap<>();
        layers.forEach((p, a) -> out.put(p, a.rank()));
        return out;
    }

    @Override
    public String summary() {
        return "selora: final ranks per layer after " + tests + " expansion tests (" + grown + " growths): " + TrainerCallback.describe(finalRanks());
    }
}
