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
    private final long[] drawn;   // steps trained at each rank, for the summary

    RankSampler(PeftModel model, String adapterName, int r, long seed) {
        this.adapters = model.adaptedLayers(adapterName).values().stream().map(l -> (DyLoraAdapter) l.adapter(adapterName)).toList();
        this.rnd = new SplittableRandom(seed);
        this.r = r;
        this.drawn = new long[r + 1];
        sample();
    }

    private void sample() {
        int b = 1 + rnd.nextInt(r);
        for (DyLoraAdapter a : adapters) a.setTrainRank(b);
    }

    @Override
    public void afterOptimizerStep(Trainer.State state) {
        drawn[adapters.isEmpty() ? 0 : adapters.get(0).trainRank()]++;
        sample();
    }

    @Override
    public String summary() {
        StringBuilder sb = new StringBuilder("dylora: steps trained at each rank b (max r " + r + "):");
        for (int b = 1; b <= r; b++) sb.append(' ').append(b).append('=').append(drawn[b]);
        return sb.append("; evaluate any rank with 'peft4j eval --rank-sweep'").toString();
    }
}
