package io.peft4j.nn;

import io.peft4j.backend.Backend;

/**
 * Linear layers fc1..fcN with an activation (act1..act(N-1)) between them, e.g. 784-512-512-10.
 */
public final class Mlp extends Sequential {
    public enum Activation { RELU, GELU }

    private final long[] sizes;

    public Mlp(Backend backend, Activation activation, long seed, long... sizes) {
        if (sizes.length < 2) throw new IllegalArgumentException("an Mlp needs at least an input and an output size");
        this.sizes = sizes.clone();
        for (int i = 1; i < sizes.length; i++) {
            add("fc" + i, new Linear(backend, sizes[i - 1], sizes[i], true, seed + i));
            if (i < sizes.length - 1) add("act" + i, activation == Activation.RELU ? new ReLU() : new GELU());
        }
    }

    public long[] sizes() {
        return sizes.clone();
    }
}
