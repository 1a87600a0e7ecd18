package io.peft4j.nn;

import io.peft4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/** Children applied in order; backward runs them in reverse. */
public class Sequential extends Module {
    private final List<Module> order = new ArrayList<>();

    /** Appends a child under {@code name} (its path becomes "&lt;this path&gt;.name"). */
    public <M extends Module> M add(String name, M module) {
        addChild(name, module);
        order.add(module);
        return module;
    }

    @Override
    public Tensor forward(StepContext ctx, Tensor x) {
        for (Module m : order) x = m.forward(ctx, x);
        return x;
    }

    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        for (int i = order.size() - 1; i >= 0; i--) {
            // The first layer's input gradient is only needed when the caller wants it.
            g = order.get(i).backward(ctx, g, i > 0 || needInputGrad);
        }
        return g;
    }
}
