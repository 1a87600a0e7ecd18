package io.peft4j.train;

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

    /** One line for the run's report once training ended (AdaLoRA's rank pattern, SoRA's surviving ranks), or null. */
    default String summary() {
        return null;
    }
}
