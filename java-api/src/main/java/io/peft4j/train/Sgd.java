package io.peft4j.train;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Parameter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.LinkedHashMap;
import java.util.Map;

/** SGD with momentum (PyTorch semantics, dampening 0); weight decay skips non-decayed parameters. */
public final class Sgd implements Optimizer {
    private final float momentum, weightDecay;
    private final boolean nesterov;
    private final Map<String, Tensor> buffers = new LinkedHashMap<>();
    private final Map<String, float[]> pending = new LinkedHashMap<>();
    private long steps;

    public Sgd(float momentum, float weightDecay, boolean nesterov) {
        if (!(momentum >= 0) || !Float.isFinite(momentum)) {
            throw new IllegalArgumentException("SGD momentum must be a finite number >= 0, got momentum=" + momentum);
        }
        if (!(weightDecay >= 0) || !Float.isFinite(weightDecay)) {
            throw new IllegalArgumentException("SGD weightDecay must be a finite number >= 0, got weightDecay=" + weightDecay);
        }
        if (nesterov && momentum == 0) throw new IllegalArgumentException("Nesterov momentum needs momentum > 0");
        this.momentum = momentum;
        this.weightDecay = weightDecay;
        this.nesterov = nesterov;
    }

    @Override
    public void step(Backend backend, Map<String, Parameter> params, float lr) {
        Optimizer.checkStep(params, lr);
        steps++;
        params.forEach((name, p) -> {
            float wd = p.decay() ? weightDecay : 0f;
            if (momentum == 0) {
                backend.sgdStep(p.value(), p.grad(), null, lr, 0f, wd, false, true);
                return;
            }
            Tensor buf = buffers.get(name);
            boolean first = false;
            if (buf == null) {
                float[] saved = pending.remove(name + ".momentum_buffer");
                if (saved != null && saved.length != p.numel()) {
                    throw new IllegalArgumentException("SGD state '" + name + ".momentum_buffer' has " + saved.length
                            + " values, the parameter is " + p.value().describe());
                }
                buf = saved == null ? Tensor.zeros(DType.F32, p.value().shape()) : Tensor.of(saved, p.value().shape());
                first = saved == null; // PyTorch starts the buffer at the first gradient
                buffers.put(name, buf);
            }
            backend.sgdStep(p.value(), p.grad(), buf, lr, momentum, wd, nesterov, first);
        });
    }

    @Override
    public long steps() {
        return steps;
    }

    @Override
    public Map<String, Tensor> state() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        buffers.forEach((name, t) -> out.put(name + ".momentum_buffer", t));
        return out;
    }

    @Override
    public void reshapeState(String param, java.util.function.UnaryOperator<float[]> map, long... newShape) {
        Tensor old = buffers.get(param);
        if (old == null) return;
        buffers.put(param, Tensor.of(map.apply(old.toFloatArray()), newShape));
        old.close();
    }

    @Override
    public void loadState(Map<String, float[]> state, long steps) {
        state.keySet().forEach(k -> {
            if (!k.endsWith(".momentum_buffer")) throw new IllegalArgumentException("unexpected SGD state '" + k + "'");
        });
        close();
        pending.putAll(state);
        this.steps = steps;
    }

    @Override
    public void close() {
        buffers.values().forEach(Tensor::close);
        buffers.clear();
        pending.clear();
    }
}
