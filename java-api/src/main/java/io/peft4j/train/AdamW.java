package io.peft4j.train;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Parameter;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.PagedTensors;
import io.peft4j.tensor.Tensor;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * AdamW (PyTorch semantics: decoupled weight decay, bias correction), one fused native pass per
 * parameter. Weight decay skips parameters marked as not decayed (biases). With weightDecay 0 it
 * is Adam.
 */
public final class AdamW implements Optimizer {
    private final float beta1, beta2, eps, weightDecay;
    private final Path pagedDir;   // moments in file-backed memory here, or null
    private final Map<String, Tensor[]> moments = new LinkedHashMap<>();
    // Loaded state waits here until the first step, which knows each parameter's shape.
    private final Map<String, float[]> pending = new LinkedHashMap<>();
    private long steps;

    public AdamW(float beta1, float beta2, float eps, float weightDecay) {
        this(beta1, beta2, eps, weightDecay, null);
    }

    private AdamW(float beta1, float beta2, float eps, float weightDecay, Path pagedDir) {
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
            throw new IllegalArgumentException("AdamW betas must be in [0, 1), got " + beta1 + ", " + beta2);
        }
        if (!(eps > 0) || !Float.isFinite(eps)) throw new IllegalArgumentException("AdamW eps must be a finite number > 0, got eps=" + eps);
        if (!(weightDecay >= 0) || !Float.isFinite(weightDecay)) {
            throw new IllegalArgumentException("AdamW weightDecay must be a finite number >= 0, got weightDecay=" + weightDecay);
        }
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        this.pagedDir = pagedDir;
    }

    /**
     * The same AdamW with its moment buffers in file-backed memory the OS can page out
     * ({@link PagedTensors}, files in java.io.tmpdir): bitsandbytes' paged optimizer, same math.
     */
    public AdamW pagedOptimizer(boolean paged) {
        return new AdamW(beta1, beta2, eps, weightDecay, paged ? Path.of(System.getProperty("java.io.tmpdir")) : null);
    }

    /** Paged, with the backing files in {@code dir}. */
    public AdamW pagedOptimizer(Path dir) {
        return new AdamW(beta1, beta2, eps, weightDecay, dir);
    }

    public boolean paged() { return pagedDir != null; }

    /** PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01. */
    public static AdamW defaults() {
        return new AdamW(0.9f, 0.999f, 1e-8f, 0.01f);
    }

    @Override
    public void step(Backend backend, Map<String, Parameter> params, float lr) {
        Optimizer.checkStep(params, lr);
        steps++;
        params.forEach((name, p) -> {
            Tensor[] mv = moments.computeIfAbsent(name, k -> new Tensor[] {moment(k + ".exp_avg", p), moment(k + ".exp_avg_sq", p)});
            backend.adamwStep(p.value(), p.grad(), mv[0], mv[1], lr, beta1, beta2, eps, p.decay() ? weightDecay : 0f, steps);
        });
    }

    private Tensor moment(String key, Parameter p) {
        float[] saved = pending.remove(key);
        Tensor t = pagedDir == null ? Tensor.zeros(DType.F32, p.value().shape()) : PagedTensors.zeros(pagedDir, DType.F32, p.value().shape());
        if (saved == null) return t;
        if (saved.length != p.numel()) {
            t.close();
            throw new IllegalArgumentException("AdamW state '" + key + "' has " + saved.length + " values, the parameter is "
                    + p.value().describe());
        }
        return t.copyFrom(saved);
    }

    @Override
    public long steps() {
        return steps;
    }

    @Override
    public Map<String, Tensor> state() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        moments.forEach((name, mv) -> {
            out.put(name + ".exp_avg", mv[0]);
            out.put(name + ".exp_avg_sq", mv[1]);
        });
        return out;
    }

    @Override
    public void reshapeState(String param, java.util.function.UnaryOperator<float[]> map, long... newShape) {
        Tensor[] mv = moments.get(param);
        if (mv == null) return;
        for (int i = 0; i < mv.length; i++) {
            Tensor old = mv[i];
            mv[i] = Tensor.of(map.apply(old.toFloatArray()), newShape);
            old.close();
        }
    }

    @Override
    public void loadState(Map<String, float[]> state, long steps) {
        for (String key : state.keySet()) {
            String pair = key.endsWith(".exp_avg") ? key + "_sq" : key.endsWith(".exp_avg_sq") ? key.substring(0, key.length() - 3) : null;
            if (pair == null) throw new IllegalArgumentException("unexpected AdamW state '" + key + "'");
            if (!state.containsKey(pair)) throw new IllegalArgumentException("AdamW state '" + key + "' has no '" + pair + "'");
        }
        close();
        pending.putAll(state);
        this.steps = steps;
    }

    @Override
    public void close() {
        moments.values().forEach(mv -> {
            for (Tensor t : mv) if (t != null) t.close();
        });
        moments.clear();
        pending.clear();
    }
}
