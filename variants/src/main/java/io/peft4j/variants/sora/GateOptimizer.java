package io.peft4j.variants.sora;

import io.peft4j.backend.Backend;
import io.peft4j.peft.PeftModel;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.Trainer;
import io.peft4j.train.TrainerCallback;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * SoRA's gates have their own optimizer (the reference's SparseAdamW): after backward, each gate's
 * gradient gets the L1 term λ·sign(g)/N (N = all gate entries), an AdamW step (betas 0.9/0.999,
 * eps 1e-6, no weight decay) at the run's learning rate (or sparse_lr), then the threshold step;
 * the gradient is then zeroed, so the run's optimizer leaves the gates as they are (zero moments,
 * no decay). Unlike the reference, gradient clipping does not see the gates' gradients.
 */
final class GateOptimizer implements TrainerCallback {
    private final SoraConfig config;
    private final Map<String, SoraAdapter> gates = new LinkedHashMap<>();
    private final Map<String, Tensor[]> moments = new LinkedHashMap<>();
    private final int entries;
    private long steps;

    GateOptimizer(PeftModel model, String adapterName, SoraConfig config) {
        this.config = config;
        int n = 0;
        for (var e : model.adaptedLayers(adapterName).entrySet()) {
            SoraAdapter a = (SoraAdapter) e.getValue().adapter(adapterName);
            gates.put(e.getKey(), a);
            moments.put(e.getKey(), new Tensor[] {Tensor.zeros(DType.F32, config.r()), Tensor.zeros(DType.F32, config.r())});
            n += config.r();
        }
        this.entries = n;
    }

    @Override
    public void afterBackward(Trainer.State state) {
        step(state.backend(), state.lr(), state.epoch());
    }

    /** One gate update at the run's learning rate {@code runLr} in epoch {@code epoch} (0-based). */
    void step(Backend be, float runLr, int epoch) {
        steps++;
        float lr = config.sparseLr() > 0 ? config.sparseLr() : runLr;
        double xi = config.xiAtEpoch(epoch);
        boolean soft = config.threshold().equals("soft");
        float l1 = config.sparseLambda() / entries;
        gates.forEach((path, a) -> {
            if (!a.gate().requiresGrad()) return;
            Tensor g = a.gate().value(), grad = a.gate().grad();
            for (int i = 0; i < config.r(); i++) grad.setFloat(i, grad.getFloat(i) + l1 * Math.signum(g.getFloat(i)));
            Tensor[] mv = moments.get(path);
            be.adamwStep(g, grad, mv[0], mv[1], lr, 0.9f, 0.999f, 1e-6f, 0f, steps);
            // The reference thresholds at ξ itself; the paper's proximal step at η·ξ.
            be.rankThreshold((float) (soft ? lr * xi : xi), soft, g);
            be.fill(0f, grad);
        });
    }

    /** Surviving (non-zero) gates per layer. */
    @Override
    public Map<String, Integer> finalRanks() {
        Map<String, Integer> out = new LinkedHashMap<>();
        gates.forEach((p, a) -> out.put(p, a.survivingRanks()));
        return out;
    }

    @Override
    public String summary() {
        return "sora: surviving ranks per layer (non-zero gates of " + config.r() + "): " + TrainerCallback.describe(finalRanks());
    }

    @Override
    public void endOfTraining(Trainer.State state) {
        moments.values().forEach(mv -> {
            for (Tensor t : mv) t.close();
        });
    }
}
