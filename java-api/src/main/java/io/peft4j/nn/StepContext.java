package io.peft4j.nn;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.StepArena;
import io.peft4j.tensor.Tensor;

/**
 * What a forward/backward pass needs besides its inputs: the backend, the step arena that holds
 * activations until the step ends, whether this is training (dropout on, activations kept for
 * backward), and the seed that makes this step's dropout masks reproducible.
 */
public final class StepContext implements AutoCloseable {
    private final Backend backend;
    private final StepArena arena = new StepArena();
    private boolean training;
    private long stepSeed;

    public StepContext(Backend backend) {
        this.backend = backend;
    }

    public Backend backend() { return backend; }
    public boolean training() { return training; }
    public long stepSeed() { return stepSeed; }

    /** Starts a step: recycles the previous step's activations. */
    public StepContext begin(boolean training, long stepSeed) {
        arena.reset();
        this.training = training;
        this.stepSeed = stepSeed;
        return this;
    }

    /** Scratch or activation memory valid until the next {@link #begin}; contents unspecified. */
    public Tensor allocate(long... shape) {
        return arena.allocate(DType.F32, shape);
    }

    public Tensor allocate(DType dtype, long... shape) {
        return arena.allocate(dtype, shape);
    }

    @Override
    public void close() {
        arena.close();
    }
}
