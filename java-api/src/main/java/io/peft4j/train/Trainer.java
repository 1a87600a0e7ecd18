package io.peft4j.train;

import io.peft4j.backend.Backend;
import io.peft4j.data.Batches;
import io.peft4j.data.Dataset;
import io.peft4j.io.IoErrors;
import io.peft4j.io.ModelCheckpoint;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.io.SafetensorsWriter;
import io.peft4j.nn.Linear;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The classification training loop: seeded shuffling, forward, loss, backward, clipping, optimizer
 * step, per-epoch evaluation, progress bar, JSONL metrics, a loss/accuracy chart, and checkpoints
 * that resume exactly (same batches, same dropout masks, same optimizer state).
 */
public final class Trainer implements AutoCloseable {
    public static final String CHECKPOINT_FILE = "trainer_state.safetensors";

    /**
     * @param epochs       passes over the data (ignored when maxSteps > 0)
     * @param maxSteps     stop after this many optimizer steps (0 = run the epochs)
     * @param batchSize    examples per step (the last batch of an epoch may be smaller)
     * @param lr           base learning rate, scaled by {@code schedule}
     * @param schedule     constant, linear or cosine (with warm-up)
     * @param warmupSteps  warm-up steps of the schedule
     * @param clipNorm     clip gradients to this global L2 norm (0 = no clipping)
     * @param seed         shuffling and dropout seed
     * @param evalEvery    evaluate every this many epochs (0 = never during training)
     * @param outDir       where metrics.jsonl, the chart and checkpoints go (null = nowhere)
     * @param checkpointEvery save a checkpoint every this many steps (0 = at each epoch end when outDir is set)
     * @param progress     show a console progress bar
     */
    public record Config(int epochs, long maxSteps, int batchSize, float lr, String schedule, long warmupSteps,
                         float clipNorm, long seed, int evalEvery, Path outDir, long checkpointEvery, boolean progress) {
        public Config {
            // Everything is checked here, before fit creates any file, so a bad value leaves nothing behind.
            if (epochs < 0 || maxSteps < 0 || (epochs == 0 && maxSteps == 0)) {
                throw new IllegalArgumentException("train for epochs > 0 or maxSteps > 0 (got epochs=" + epochs + ", maxSteps=" + maxSteps + ")");
            }
            if (batchSize <= 0) throw new IllegalArgumentException("batchSize must be > 0, got batchSize=" + batchSize);
            if (!(lr > 0) || !Float.isFinite(lr)) throw new IllegalArgumentException("lr must be a finite number > 0, got lr=" + lr);
            if (!(clipNorm >= 0) || !Float.isFinite(clipNorm)) {
                throw new IllegalArgumentException("clipNorm must be a finite number >= 0 (0 = no clipping), got clipNorm=" + clipNorm);
            }
            if (warmupSteps < 0) throw new IllegalArgumentException("warmupSteps must be >= 0, got warmupSteps=" + warmupSteps);
            if (evalEvery < 0) throw new IllegalArgumentException("evalEvery must be >= 0 (0 = never), got evalEvery=" + evalEvery);
            if (checkpointEvery < 0) {
                throw new IllegalArgumentException("checkpointEvery must be >= 0 (0 = every epoch), got checkpointEvery=" + checkpointEvery);
            }
            if (schedule == null) throw new IllegalArgumentException("schedule must be constant, linear or cosine, got null");
            LrSchedule.named(schedule, 0, 1); // validates the name
        }

        public static Builder builder() {
            return new Builder();
        }

        public static final class Builder {
            private int epochs = 1;
            private long maxSteps;
            private int batchSize = 128;
            private float lr = 1e-3f;
            private String schedule = "constant";
            private long warmupSteps;
            private float clipNorm;
            private long seed;
            private int evalEvery = 1;
            private Path outDir;
            private long checkpointEvery;
            private boolean progress = true;

            public Builder epochs(int v) { epochs = v; return this; }
            public Builder maxSteps(long v) { maxSteps = v; return this; }
            public Builder batchSize(int v) { batchSize = v; return this; }
            public Builder lr(float v) { lr = v; return this; }
            public Builder schedule(String v) { schedule = v; return this; }
            public Builder warmupSteps(long v) { warmupSteps = v; return this; }
            public Builder clipNorm(float v) { clipNorm = v; return this; }
            public Builder seed(long v) { seed = v; return this; }
            public Builder evalEvery(int v) { evalEvery = v; return this; }
            public Builder outDir(Path v) { outDir = v; return this; }
            public Builder checkpointEvery(long v) { checkpointEvery = v; return this; }
            public Builder progress(boolean v) { progress = v; return this; }

            public Config build() {
                return new Config(epochs, maxSteps, batchSize, lr, schedule, warmupSteps, clipNorm, seed, evalEvery, outDir,
                        checkpointEvery, progress);
            }
        }
    }

    /** Where training stands; handed to callbacks. */
    public static final class State {
        private final Trainer trainer;
        long step;          // optimizer steps done
        int epoch;          // current epoch, 0-based
        int stepInEpoch;    // steps done in the current epoch
        float loss;         // this step's loss
        float lr;           // this step's learning rate
        long totalSteps;    // optimizer steps this fit will have done when it ends

        State(Trainer trainer) { this.trainer = trainer; }

        public Module model() { return trainer.model; }
        public Backend backend() { return trainer.backend; }
        public long step() { return step; }
        public int epoch() { return epoch; }
        public float loss() { return loss; }
        public float lr() { return lr; }
        /** Optimizer steps the current fit runs to (schedules such as AdaLoRA's budget need the end). */
        public long totalSteps() { return totalSteps; }
        /** The optimizer, for callbacks that change parameter shapes ({@link Optimizer#reshapeState}). */
        public Optimizer optimizer() { return trainer.optimizer; }

        /**
         * Runs this step's forward and backward again on the same batch, in the same step arena and
         * with the same dropout noise, without zeroing gradients or stepping (SeLoRA's trial
         * expansion). From {@link TrainerCallback#afterOptimizerStep} only. Returns the loss.
         */
        public float rerunStep() {
            if (trainer.stepX == null) throw new IllegalStateException("rerunStep: no training step to run again");
            Tensor out = trainer.model.forward(trainer.ctx, trainer.stepX);
            float l = trainer.loss.forward(trainer.ctx, out, trainer.stepY);
            trainer.model.backward(trainer.ctx, trainer.loss.backward(trainer.ctx), false);
            return l;
        }

        /** A callback added or replaced trainable parameters: the next step trains the new set. */
        public void parametersChanged() {
            trainer.refreshTrainable();
        }

        /**
         * Records a value of a named series at this step (SeLoRA's rank per layer): written to
         * metrics.jsonl (when the run writes one) and drawn in a third panel of the training chart.
         */
        public void record(String series, double value) {
            trainer.extraSeries.computeIfAbsent(series, k -> new ArrayList<>()).add(new double[] {step, value});
            if (trainer.log != null) trainer.log.log(Map.of("step", step, "series", series, "value", value));
        }
        /** The parameters being trained, by full name. */
        public Map<String, Parameter> trainable() { return trainer.trainable; }
    }

    public record EvalResult(double loss, double accuracy, int count) {}

    /** @param eval null when this epoch was not evaluated */
    public record EpochResult(int epoch, double trainLoss, double seconds, int steps, EvalResult eval) {
        public double msPerStep() { return steps == 0 ? 0 : 1000 * seconds / steps; }
    }

    public record Result(List<EpochResult> epochs, long steps) {
        public EpochResult last() { return epochs.get(epochs.size() - 1); }
    }

    private final Module model;
    private final Loss loss;
    private final Optimizer optimizer;
    private final Config config;
    private final Backend backend;
    private final StepContext ctx;
    private final List<TrainerCallback> callbacks = new ArrayList<>();
    private final State state = new State(this);
    private Map<String, Parameter> trainable = Map.of();
    private final List<double[]> lossHistory = new ArrayList<>();   // {step, loss}
    private final List<double[]> accHistory = new ArrayList<>();    // {epoch, accuracy}
    private String progressLabel = "";
    private java.util.function.Supplier<Map<String, String>> checkpointNotes = Map::of;
    private final Map<String, List<double[]>> extraSeries = new LinkedHashMap<>();   // series -> {step, value}
    private MetricsLog log;          // the open metrics log during fit, for State.record
    private Tensor stepX, stepY;     // this step's batch, in the step arena, for State.rerunStep

    public Trainer(Module model, Loss loss, Optimizer optimizer, Config config, Backend backend) {
        this.model = model;
        this.loss = loss;
        this.optimizer = optimizer;
        this.config = config;
        this.backend = backend;
        this.ctx = new StepContext(backend);
    }

    /** Names the run in the progress bar ("lora: epoch 1/2"), e.g. when several methods run one after another. */
    public Trainer progressLabel(String label) {
        progressLabel = label == null || label.isEmpty() ? "" : label + ": ";
        return this;
    }

    /**
     * Extra entries written into every checkpoint's metadata, read when it is written (e.g. the
     * adapter config as training has changed it), so a resume can rebuild a model the saved shapes fit.
     */
    public Trainer checkpointNotes(java.util.function.Supplier<Map<String, String>> notes) {
        checkpointNotes = notes;
        return this;
    }

    /** The metadata of the checkpoint in dir (the loop position and any {@link #checkpointNotes}). */
    public static Map<String, String> checkpointMetadata(Path dir) {
        Path file = dir.resolve(CHECKPOINT_FILE);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            return f.metadata();
        } catch (IOException e) {
            throw IoErrors.unchecked("read", file, e);
        }
    }

    public Trainer addCallback(TrainerCallback callback) {
        callbacks.add(callback);
        return this;
    }

    public State state() {
        return state;
    }

    /** Trains on {@code train}, evaluating on {@code eval} (may be null) every evalEvery epochs. */
    public Result fit(Dataset train, Dataset eval) {
        if (train == null || train.count() == 0) throw new IllegalArgumentException("the training data set is empty");
        if (eval != null && eval.features() != train.features()) {
            throw new IllegalArgumentException("the evaluation data has " + eval.features() + " features per example, the training data "
                    + train.features());
        }
        Batches batches = new Batches(train);
        int perEpoch = batches.batchCount(config.batchSize());
        long total = config.maxSteps() > 0 ? config.maxSteps() : (long) perEpoch * config.epochs();
        long epochCount = Math.ceilDiv(total, (long) perEpoch);
        if (epochCount > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("maxSteps " + total + " needs " + epochCount + " epochs of " + perEpoch
                    + " steps, more than " + Integer.MAX_VALUE);
        }
        int epochs = (int) epochCount;
        state.totalSteps = total;
        LrSchedule schedule = LrSchedule.named(config.schedule(), Math.min(config.warmupSteps(), total), total);
        // A batch never holds more than the whole data set, whatever batchSize says.
        int[] yBuf = new int[Math.min(config.batchSize(), train.count())];
        refreshTrainable();   // fails before the metrics file exists
        List<EpochResult> results = new ArrayList<>();
        // Frozen weights cannot change during fit, so their transposes are made once.
        List<Linear> linears = model.namedModules().values().stream().filter(m -> m instanceof Linear).map(m -> (Linear) m).toList();
        linears.forEach(l -> l.setCacheFrozenTranspose(true));
        try (MetricsLog log = config.outDir() == null ? null : openLog(config.outDir().resolve("metrics.jsonl"))) {
            this.log = log;
            while (state.epoch < epochs && state.step < total) {
                refreshTrainable();
                int[] order = batches.order(config.seed(), state.epoch);
                int stepsThisEpoch = (int) Math.min(perEpoch, total - (long) state.epoch * perEpoch);
                double lossSum = 0;
                int counted = 0;
                long t0 = System.nanoTime();
                try (ProgressBars.Bar bar = ProgressBars.epoch(progressLabel + "epoch " + (state.epoch + 1) + "/" + epochs,
                        stepsThisEpoch, config.progress())) {
                    bar.stepBy(state.stepInEpoch);
                    while (state.stepInEpoch < stepsThisEpoch) {
                        float lr = (float) (config.lr() * schedule.factor(state.step));
                        float l = trainStep(batches, order, Math.toIntExact((long) state.stepInEpoch * config.batchSize()), lr, yBuf);
                        lossSum += l;
                        counted++;
                        lossHistory.add(new double[] {state.step, l});
                        bar.step().loss(l);
                        if (log != null && (state.step % 50 == 0 || state.stepInEpoch == stepsThisEpoch)) {
                            log.log(Map.of("step", state.step, "epoch", state.epoch + 1, "loss", l, "lr", lr));
                        }
                        if (config.outDir() != null && config.checkpointEvery() > 0 && state.step % config.checkpointEvery() == 0) {
                            saveCheckpoint(config.outDir());
                        }
                    }
                }
                double seconds = (System.nanoTime() - t0) / 1e9;
                boolean doEval = eval != null && config.evalEvery() > 0
                        && ((state.epoch + 1) % config.evalEvery() == 0 || state.epoch + 1 == epochs);
                EvalResult er = doEval ? evaluate(eval) : null;
                EpochResult result = new EpochResult(state.epoch + 1, counted == 0 ? Double.NaN : lossSum / counted, seconds, counted, er);
                results.add(result);
                if (er != null) accHistory.add(new double[] {state.epoch + 1, er.accuracy()});
                if (log != null) {
                    Map<String, Object> rec = new LinkedHashMap<>();
                    rec.put("epoch", result.epoch());
                    rec.put("train_loss", result.trainLoss());
                    rec.put("seconds", seconds);
                    rec.put("ms_per_step", result.msPerStep());
                    if (er != null) {
                        rec.put("eval_loss", er.loss());
                        rec.put("eval_accuracy", er.accuracy());
                    }
                    log.log(rec);
                }
                for (TrainerCallback c : callbacks) c.endOfEpoch(state, result);
                state.epoch++;
                state.stepInEpoch = 0;
                if (config.outDir() != null) {
                    // A state file that cannot be written costs the ability to resume, not the trained model.
                    if (config.checkpointEvery() == 0) {
                        try {
                            saveCheckpoint(config.outDir());
                        } catch (UncheckedIOException e) {
                            System.err.println("peft4j: warning: " + e.getMessage() + "; training goes on, but this run cannot be resumed");
                        }
                    }
                    writeChart(config.outDir().resolve("training.png"));
                }
            }
            for (TrainerCallback c : callbacks) c.endOfTraining(state);
        } finally {
            this.log = null;
            stepX = null;
            stepY = null;
            linears.forEach(l -> l.setCacheFrozenTranspose(false));
        }
        return new Result(results, state.step);
    }

    /** A fresh run starts a fresh log; a resumed one appends to the log it continues. */
    private MetricsLog openLog(Path file) {
        if (state.step == 0) {
            try {
                Files.deleteIfExists(file);
            } catch (IOException e) {
                throw IoErrors.unchecked("delete", file, e);
            }
        }
        return new MetricsLog(file);
    }

    private float trainStep(Batches batches, int[] order, int start, float lr, int[] yBuf) {
        ctx.begin(true, config.seed() * 1_000_003L + state.step);
        int rows = Math.min(config.batchSize(), order.length - start);
        Tensor x = ctx.allocate(rows, batches.dataset().features());
        batches.fill(order, start, rows, x.segment(), yBuf);
        Tensor y = ctx.allocate(DType.I32, rows);
        MemorySegment.copy(yBuf, 0, y.segment(), ValueLayout.JAVA_INT, 0, rows);
        stepX = x;
        stepY = y;
        for (Parameter p : trainable.values()) backend.fill(0f, p.grad());
        Tensor out = model.forward(ctx, x);
        float l = loss.forward(ctx, out, y);
        model.backward(ctx, loss.backward(ctx), false);
        state.loss = l;
        state.lr = lr;
        for (TrainerCallback c : callbacks) c.afterBackward(state);
        if (config.clipNorm() > 0) clipGradients(config.clipNorm());
        optimizer.step(backend, trainable, lr);
        state.step++;
        state.stepInEpoch++;
        for (TrainerCallback c : callbacks) c.afterOptimizerStep(state);
        return l;
    }

    /** Scales all gradients so their global L2 norm is at most maxNorm; returns the norm before. */
    public double clipGradients(float maxNorm) {
        double sq = 0;
        for (Parameter p : trainable.values()) sq += backend.sumsq(p.grad());
        double norm = Math.sqrt(sq);
        if (norm > maxNorm) {
            float f = (float) (maxNorm / (norm + 1e-6));
            for (Parameter p : trainable.values()) backend.scale(f, p.grad());
        }
        return norm;
    }

    private void refreshTrainable() {
        Map<String, Parameter> t = new LinkedHashMap<>();
        model.namedParameters().forEach((n, p) -> {
            if (p.requiresGrad()) t.put(n, p);
        });
        if (t.isEmpty()) throw new IllegalStateException("the model has no trainable parameters");
        trainable = t;
    }

    /** Mean loss and accuracy of the model on {@code data}, without dropout or gradients. */
    public EvalResult evaluate(Dataset data) {
        return evaluate(model, data, ctx, 1000);
    }

    public static EvalResult evaluate(Module model, Dataset data, StepContext ctx, int batchSize) {
        if (batchSize <= 0) throw new IllegalArgumentException("evaluation batchSize must be > 0, got batchSize=" + batchSize);
        Batches batches = new Batches(data);
        int[] order = Batches.sequential(data.count());
        int[] yBuf = new int[Math.min(batchSize, data.count())];
        double lossSum = 0;
        long correct = 0;
        Loss xent = Loss.crossEntropy();
        for (int start = 0; start < data.count(); start = (int) Math.min((long) start + batchSize, data.count())) {
            ctx.begin(false, 0);
            int rows = Math.min(batchSize, data.count() - start);
            Tensor x = ctx.allocate(rows, data.features());
            batches.fill(order, start, rows, x.segment(), yBuf);
            Tensor y = ctx.allocate(DType.I32, rows);
            MemorySegment.copy(yBuf, 0, y.segment(), ValueLayout.JAVA_INT, 0, rows);
            Tensor out = model.forward(ctx, x);
            lossSum += (double) xent.forward(ctx, out, y) * rows;
            Tensor pred = ctx.allocate(DType.I32, rows);
            ctx.backend().argmaxRows(out, pred);
            MemorySegment p = pred.segment();
            for (int i = 0; i < rows; i++) {
                if (p.getAtIndex(ValueLayout.JAVA_INT, i) == yBuf[i]) correct++;
            }
        }
        int n = data.count();
        return new EvalResult(n == 0 ? Double.NaN : lossSum / n, n == 0 ? Double.NaN : (double) correct / n, n);
    }

    // ---- checkpoints ----

    /** Writes trainable parameters, optimizer state and the loop position to dir/trainer_state.safetensors. */
    public void saveCheckpoint(Path dir) {
        if (trainable.isEmpty()) refreshTrainable();
        SafetensorsWriter w = new SafetensorsWriter();
        trainable.forEach((n, p) -> w.put("param." + n, DType.F32, p.value().shape(), p.value().segment()));
        optimizer.state().forEach((n, t) -> w.put("optim." + n, DType.F32, t.shape(), t.segment()));
        Map<String, String> meta = new LinkedHashMap<>(checkpointNotes.get());
        meta.putAll(Map.of("step", Long.toString(state.step), "epoch", Integer.toString(state.epoch),
                "step_in_epoch", Integer.toString(state.stepInEpoch), "optimizer_steps", Long.toString(optimizer.steps()),
                "seed", Long.toString(config.seed())));
        w.metadata(meta);
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw IoErrors.unchecked("create directory", dir, e);
        }
        Path file = dir.resolve(CHECKPOINT_FILE);
        try {
            w.write(file);
        } catch (IOException e) {
            throw IoErrors.unchecked("write", file, e);
        }
    }

    /** Restores a checkpoint written by {@link #saveCheckpoint}; the next fit continues where it stopped. */
    public void resume(Path dir) {
        Path file = dir.resolve(CHECKPOINT_FILE);
        refreshTrainable();
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            Map<String, String> meta = f.metadata();
            if (!Long.toString(config.seed()).equals(meta.get("seed"))) {
                throw new IllegalArgumentException(file + " was written with seed " + meta.get("seed") + ", this run uses " + config.seed());
            }
            // Everything is read and checked before anything changes: a bad checkpoint leaves the run as it was.
            Map<Parameter, float[]> params = new LinkedHashMap<>();
            for (var e : trainable.entrySet()) {
                String key = "param." + e.getKey();
                if (!f.contains(key)) throw new IllegalArgumentException(file + " has no tensor '" + key + "'");
                float[] v = ModelCheckpoint.readFiniteF32(f, key);
                if (v.length != e.getValue().numel()) {
                    throw new IllegalArgumentException(file + ": tensor '" + key + "' has " + v.length + " values, the model's is "
                            + e.getValue().value().describe());
                }
                params.put(e.getValue(), v);
            }
            Map<String, float[]> optState = new LinkedHashMap<>();
            for (String name : f.names()) {
                if (name.startsWith("optim.")) optState.put(name.substring(6), ModelCheckpoint.readFiniteF32(f, name));
            }
            long optimizerSteps = Long.parseLong(meta.get("optimizer_steps"));
            long step = Long.parseLong(meta.get("step"));
            int epoch = Integer.parseInt(meta.get("epoch"));
            int stepInEpoch = Integer.parseInt(meta.get("step_in_epoch"));
            optimizer.loadState(optState, optimizerSteps);
            params.forEach((p, v) -> p.value().copyFrom(v));
            state.step = step;
            state.epoch = epoch;
            state.stepInEpoch = stepInEpoch;
        } catch (IOException e) {
            throw IoErrors.unchecked("read", file, e);
        } catch (NumberFormatException | NullPointerException e) {
            throw new IllegalArgumentException(file + ": checkpoint metadata is missing or malformed", e);
        }
    }

    /** The loss per step and accuracy per epoch so far, as a two-panel PNG. */
    public void writeChart(Path png) {
        double[] steps = lossHistory.stream().mapToDouble(a -> a[0]).toArray();
        double[] losses = lossHistory.stream().mapToDouble(a -> a[1]).toArray();
        double[] epochs = accHistory.stream().mapToDouble(a -> a[0]).toArray();
        double[] acc = accHistory.stream().mapToDouble(a -> a[1]).toArray();
        if (extraSeries.isEmpty()) {
            Charts.trainingCurves(png, "training", steps, losses, epochs, acc);
            return;
        }
        List<Charts.Series> extra = new ArrayList<>();
        extraSeries.forEach((name, pts) -> extra.add(new Charts.Series(name, pts.stream().mapToDouble(a -> a[0]).toArray(),
                pts.stream().mapToDouble(a -> a[1]).toArray())));
        Charts.write(png, Charts.DEFAULT_WIDTH, Charts.DEFAULT_HEIGHT * 3 / 2, List.of(
                new Charts.Panel("training: training loss", "step", "loss", List.of(new Charts.Series("train loss", steps, losses))),
                new Charts.Panel("evaluation accuracy", "epoch", "accuracy", List.of(new Charts.Series("eval accuracy", epochs, acc))),
                new Charts.Panel("recorded by the method", "step", "value", extra)));
    }

    @Override
    public void close() {
        ctx.close();
    }
}
