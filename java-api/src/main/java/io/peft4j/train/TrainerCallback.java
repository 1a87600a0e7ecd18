package io.peft4j.train;

import java.util.Map;
import java.util.StringJoiner;

/**
 * Hooks into the training loop, so that methods which adapt ranks or masks (AdaLoRA, SoRA,
 * DyLoRA, SeLoRA) run without special cases in the loop. Every method has an empty default.
 */
public interface TrainerCallback {
    /** Gradients of this step are complete; the optimizer has not run yet. */
    default void afterBackward(Trainer.State state) {}

    /** The optimizer has updated the parameters. */
    default void afterOptimizerStep(Trainer.State state) {}

    /** An epoch ended; {@code result} holds its training loss and, when evaluated, eval metrics. */
    default void endOfEpoch(Trainer.State state, Trainer.EpochResult result) {}

    /**
     * The run's last step and epoch are done (and checkpointed): a method may now change its
     * parameters' shapes (AdaLoRA drops pruned ranks), reshaping the optimizer's state with them
     * ({@link Optimizer#reshapeState}).
     */
    default void endOfTraining(Trainer.State state) {}

    /**
     * Each adapted layer's rank once training ended, by layer path in model order (rank-adaptive
     * methods: AdaLoRA's kept triplets, SoRA's surviving gates, SeLoRA's grown ranks); empty otherwise.
     */
    default Map<String, Integer> finalRanks() {
        return Map.of();
    }

    /** "fc1=10, fc2=5, fc3=9": ranks as the reports print them. */
    static String describe(Map<String, Integer> ranks) {
        StringJoiner j = new StringJoiner(", ");
        ranks.forEach((path, r) -> j.add(path + "=" + r));
        return j.toString();
    }

    /** One line for the run's report once training ended (AdaLoRA's rank pattern, SoRA's surviving ranks), or null. */
    default String summary() {
        return null;
    }
}
