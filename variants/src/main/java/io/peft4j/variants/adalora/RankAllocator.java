package io.peft4j.variants.adalora;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Parameter;
import io.peft4j.peft.PeftModel;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.Trainer;
import io.peft4j.train.TrainerCallback;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdaLoRA's training-loop part, as PEFT's RankAllocator and AdaLoraModel.update_and_allocate:
 * after backward, the orthogonal regulariser's gradient; after each optimizer step t (counted from
 * 0), the importance EMAs of every P, Λ, Q entry while t &lt; T − t_f, and masking at the cubic
 * budget b(t) every ΔT steps (and at t = T − t_f, which fixes the pattern); after that every step
 * re-applies the fixed pattern. At the end of training the layers are resized to the pattern,
 * the optimizer's state with them, and the config records it as rank_pattern.
 */
final class RankAllocator implements TrainerCallback {
    private final AdaLoraConfig config;
    private final String adapterName;
    private final Map<String, AdaLoraAdapter> layers = new LinkedHashMap<>();
    // Per layer, for lora_A, lora_E, lora_B: the importance EMA Ī and the uncertainty EMA Ū.
    private final Map<String, Tensor[]> ibar = new LinkedHashMap<>(), ubar = new LinkedHashMap<>();
    // Orthogonality workspaces per layer: [r, r] for QQᵀ and PᵀP.
    private final Map<String, Tensor[]> cov = new LinkedHashMap<>();
    private final int initBudget;
    private final int targetBudget;
    private final Map<String, boolean[]> pattern = new LinkedHashMap<>();

    RankAllocator(PeftModel model, String adapterName, AdaLoraConfig config) {
        this.config = config;
        this.adapterName = adapterName;
        int total = 0;
        for (var e : model.adaptedLayers(adapterName).entrySet()) {
            AdaLoraAdapter ad = (AdaLoraAdapter) e.getValue().adapter(adapterName);
            layers.put(e.getKey(), ad);
            List<Parameter> ps = ad.parameters();
            Tensor[] ib = new Tensor[3], ub = new Tensor[3];
            for (int i = 0; i < 3; i++) {
                ib[i] = Tensor.zeros(DType.F32, ps.get(i).value().shape());
                ub[i] = Tensor.zeros(DType.F32, ps.get(i).value().shape());
            }
            ibar.put(e.getKey(), ib);
            ubar.put(e.getKey(), ub);
            cov.put(e.getKey(), new Tensor[] {Tensor.zeros(DType.F32, ad.rank(), ad.rank()), Tensor.zeros(DType.F32, ad.rank(), ad.rank())});
            total += ad.rank();
        }
        this.initBudget = total;
        this.targetBudget = config.targetR() * layers.size();
    }

    int initBudget() { return initBudget; }
    int targetBudget() { return targetBudget; }

    /** The total step count the schedule runs to: the config's total_step, else the trainer's. */
    private long total(Trainer.State state) {
        return config.totalStep() > 0 ? config.totalStep() : state.totalSteps();
    }

    /** PEFT's budget_schedule: the total rank kept after step t, and whether step t masks. */
    record Budget(int budget, boolean mask) {}

    Budget budget(long t, long total) {
        if (t <= config.tinit()) return new Budget(initBudget, false);
        if (t > total - config.tfinal()) return new Budget(targetBudget, true);
        double mul = 1 - (double) (t - config.tinit()) / (total - config.tfinal() - config.tinit());
        int b = (int) Math.floor((initBudget - targetBudget) * mul * mul * mul + targetBudget);
        return new Budget(b, t % config.deltaT() == 0);
    }

    // ---- orthogonal regulariser ----

    @Override
    public void afterBackward(Trainer.State state) {
        if (config.orthRegWeight() == 0) return;
        Backend be = state.backend();
        boolean squared = config.orthRegForm().equals("squared");
        // PEFT: γ·(1/n)·Σ ‖M − I‖_F over every lora_A (M = QQᵀ) and lora_B (M = PᵀP); the paper: γ·Σ ‖M − I‖_F².
        double coefBase = squared ? config.orthRegWeight() : config.orthRegWeight() / (2.0 * layers.size());
        layers.forEach((path, ad) -> {
            if (ad.rank() == 0 || !ad.loraA().requiresGrad()) return;
            Tensor[] m = cov.get(path);
            Tensor q = ad.loraA().value(), p = ad.loraB().value();
            be.gemm(false, true, 1f, q, q, 0f, m[0]);   // QQᵀ
            be.gemm(true, false, 1f, p, p, 0f, m[1]);   // PᵀP
            orthogonalDirection(m[0], coefBase, squared);
            orthogonalDirection(m[1], coefBase, squared);
            be.gemm(false, false, 1f, m[0], q, 1f, ad.loraA().grad());   // ∂/∂Q = k·(QQᵀ − I)·Q
            be.gemm(false, false, 1f, p, m[1], 1f, ad.loraB().grad());   // ∂/∂P = k·P·(PᵀP − I)
        });
    }

    /** m ← k·(m − I), k = 4γ (squared) or 2γ'/‖m − I‖_F (PEFT's norm, γ' = γ/n). */
    private static void orthogonalDirection(Tensor m, double coefBase, boolean squared) {
        int r = (int) m.dim(0);
        float[] v = m.toFloatArray();
        double sq = 0;
        for (int i = 0; i < r; i++) v[i * r + i] -= 1f;
        for (float x : v) sq += (double) x * x;
        double k = squared ? 4 * coefBase : sq == 0 ? 0 : 2 * coefBase / Math.sqrt(sq);
        for (int i = 0; i < v.length; i++) v[i] = (float) (k * v[i]);
        m.copyFrom(v);
    }

    // ---- importance and masking ----

    @Override
    public void afterOptimizerStep(Trainer.State state) {
        long t = state.step() - 1;   // PEFT counts the step just taken from 0
        long total = total(state);
        config.checkSchedule(total);
        long end = total - config.tfinal();
        if (t < end) {
            updateImportance(state.backend());
            Budget b = budget(t, total);
            if (b.mask()) maskToBudget(b.budget());
        } else if (t == end) {
            maskToBudget(budget(t, total).budget());   // PEFT forces this mask: the pattern is fixed here
        } else if (!pattern.isEmpty()) {
            layers.forEach((path, ad) -> ad.mask(pattern.get(path)));
        }
    }

    void updateImportance(Backend be) {
        layers.forEach((path, ad) -> {
            List<Parameter> ps = ad.parameters();
            Tensor[] ib = ibar.get(path), ub = ubar.get(path);
            for (int i = 0; i < 3; i++) {
                Parameter p = ps.get(i);
                if (p.requiresGrad()) be.rankImportanceUpdate(p.value(), p.grad(), ib[i], ub[i], config.beta1(), config.beta2());
            }
        });
    }

    /** S_i = s(Λ_i) + mean_j s(Q_ij) + mean_j s(P_ji), s = Ī·Ū, per layer. */
    Map<String, double[]> tripletScores() {
        Map<String, double[]> out = new LinkedHashMap<>();
        layers.forEach((path, ad) -> {
            Tensor[] ib = ibar.get(path), ub = ubar.get(path);
            int r = ad.rank();
            float[] ia = ib[0].toFloatArray(), ua = ub[0].toFloatArray();
            float[] ie = ib[1].toFloatArray(), ue = ub[1].toFloatArray();
            float[] ibb = ib[2].toFloatArray(), ubb = ub[2].toFloatArray();
            int dIn = r == 0 ? 0 : ia.length / r, dOut = r == 0 ? 0 : ibb.length / r;
            double[] s = new double[r];
            for (int i = 0; i < r; i++) {
                double qa = 0, pb = 0;
                for (int j = 0; j < dIn; j++) qa += (double) ia[i * dIn + j] * ua[i * dIn + j];
                for (int j = 0; j < dOut; j++) pb += (double) ibb[j * r + i] * ubb[j * r + i];
                s[i] = (double) ie[i] * ue[i] + (dIn == 0 ? 0 : qa / dIn) + (dOut == 0 ? 0 : pb / dOut);
            }
            out.put(path, s);
        });
        return out;
    }

    /**
     * Masks every triplet whose score is at or below the k-th smallest, k = init budget − budget
     * (PEFT's kthvalue and {@code <=}: tied scores at the threshold are all masked). k &lt; 1 masks nothing.
     */
    void maskToBudget(int budget) {
        int k = initBudget - budget;
        Map<String, double[]> scores = tripletScores();
        double[] all = scores.values().stream().flatMapToDouble(Arrays::stream).toArray();
        if (k < 1 || all.length == 0) return;
        double[] sorted = all.clone();
        Arrays.sort(sorted);
        double thr = sorted[Math.min(k, sorted.length) - 1];
        scores.forEach((path, s) -> {
            boolean[] keep = new boolean[s.length];
            for (int i = 0; i < s.length; i++) keep[i] = !(s[i] <= thr);
            layers.get(path).mask(keep);
            pattern.put(path, keep);
        });
    }

    /** The triplets kept per layer so far (empty before the first mask). */
    Map<String, boolean[]> pattern() {
        return pattern;
    }

    // ---- end of training: resize to the pattern ----

    @Override
    public void endOfTraining(Trainer.State state) {
        for (Map<String, Tensor[]> m : List.of(ibar, ubar, cov)) m.values().forEach(ts -> {
            for (Tensor t : ts) t.close();
        });
        if (pattern.isEmpty()) return;
        layers.forEach((path, ad) -> {
            boolean[] keep = pattern.get(path);
            long dIn = ad.loraA().value().dim(1), dOut = ad.loraB().value().dim(0), r = ad.rank();
            ad.keepOnly(keep);
            // The optimizer's per-parameter state keeps the same rows and columns as the parameter.
            state.optimizer().reshapeState(path + ".lora_A." + adapterName, v -> AdaLoraAdapter.select(v, keep, r, dIn, 0),
                    ad.loraA().value().shape());
            state.optimizer().reshapeState(path + ".lora_E." + adapterName, v -> AdaLoraAdapter.select(v, keep, r, 1, 0),
                    ad.loraE().value().shape());
            state.optimizer().reshapeState(path + ".lora_B." + adapterName, v -> AdaLoraAdapter.select(v, keep, dOut, r, 1),
                    ad.loraB().value().shape());
            config.rankPattern().put(path, expandToInitR(path, keep));
        });
    }

    @Override
    public Map<String, Integer> finalRanks() {
        Map<String, Integer> out = new LinkedHashMap<>();
        layers.forEach((path, ad) -> out.put(path, ad.rank()));
        return out;
    }

    @Override
    public String summary() {
        return "adalora: final ranks (kept triplets per layer, init_r " + config.initR() + "): " + TrainerCallback.describe(finalRanks());
    }

    /** The layer's flags over all init_r triplets: a layer already resized on load keeps its earlier drops. */
    private boolean[] expandToInitR(String path, boolean[] keep) {
        boolean[] earlier = config.rankPattern().get(path);
        if (earlier == null) return keep;
        boolean[] full = new boolean[earlier.length];
        int j = 0;
        for (int i = 0; i < earlier.length; i++) if (earlier[i]) full[i] = keep[j++];
        return full;
    }
}
