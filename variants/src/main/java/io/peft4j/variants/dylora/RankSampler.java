package io.peft4j.variants.dylora;

import io.peft4j.peft.PeftModel;
import io.peft4j.train.Trainer;
import io.peft4j.train.TrainerCallback;
import java.util.List;
import java.util.SplittableRandom;

/**
 * DyLoRA's step hook (the reference's on_step_begin): one rank b ∈ {1..r}, uniform from a seeded
 * stream, set on every layer for the next step. The first b is drawn when the run starts.
 */
final class RankSampler implements TrainerCallback {
    private final List<DyLoraAdapter> adapters;
    private final SplittableRandom rnd;
    private final int r;

    RankSampler(PeftModel model, String adapterName, int r, long seed) {
        this.adapters = model.adaptedLayers(adapterName).values().stream().map(l -> (DyLoraAdapter) l.adapter(adapterName)).toList();
        this.rnd = new SplittableRandom(seed);
        this.r = r;
        sample();
    }

    private void sample() {
        int b = 1 + rnd.nextInt(r);
        for (DyLoraAdapter a : adapters) a.setTrainRank(b);
    }

    @Override
    public void afterOptimizerStep(Trainer.State state) {
        sample();
    }
}
