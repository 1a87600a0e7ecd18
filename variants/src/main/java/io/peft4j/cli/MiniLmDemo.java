package io.peft4j.cli;

import io.peft4j.data.Dataset;
import io.peft4j.data.FashionMnist.Split;
import io.peft4j.data.FashionMnist.Task;
import io.peft4j.nn.BertClassifier;
import io.peft4j.nn.Loss;
import io.peft4j.train.AdamW;
import io.peft4j.train.Trainer;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * {@code peft4j demo --model minilm}: all-MiniLM-L6-v2 (bundled) classifying fortunes into their 7
 * files, two ways from the same start: a linear probe (the classifier head alone trained on the
 * frozen encoder's mean-pooled embedding) and LoRA r=8, α=16 on {@code query,value} with the head
 * trained beside it (PEFT's modules_to_save). Both: AdamW lr 1e-3, batch 32, texts cut at 64 tokens.
 * The LoRA run is saved as a PEFT adapter with its chart and metrics; the probe's run goes to head-only/.
 */
final class MiniLmDemo {
    static final int BATCH = 32;
    static final float LR = 1e-3f;

    private MiniLmDemo() {}

    static int run(Main.Common common, Path out, int epochs, long seed) {
        Main.checkRange("--epochs", epochs, 1, 1000);
        Workflow w = common.workflow();
        MethodOptions mo = new MethodOptions();
        mo.variant = "lora";
        mo.set = List.of("r=8", "lora_alpha=16", "target_modules=query,value");
        MethodOptions.Resolved method = mo.resolve();
        PrintStream o = w.out;
        try (RunDir run = RunDir.open(out, false)) {
            BaseModel base = MiniLmBase.load(w, null, seed);
            BertClassifier model = (BertClassifier) base.model();
            Dataset train = w.data(Split.TRAIN, Task.ROT90);
            long tokensPerEpoch = MiniLmBase.tokens(train);
            o.printf(Locale.ROOT, "fortunes: %d training texts (%,d tokens, cut at %d), %d test texts%n", train.count(), tokensPerEpoch,
                    MiniLmBase.MAX_LENGTH, w.data(Split.TEST, Task.ROT90).count());
            double accBase = w.accuracy(model, Task.ROT90);
            o.printf(Locale.ROOT, "untrained head: fortunes accuracy %.4f%n", accBase);

            Trainer.Result probe;
            long probeParams;
            try (BertClassifier copy = MiniLmBase.copy(w, model)) {
                copy.namedParameters().forEach((n, p) -> p.setRequiresGrad(n.startsWith("classifier.")));
                probeParams = copy.trainableParameterCount();
                o.printf(Locale.ROOT, "head only (linear probe): trainable params: %,d%n", probeParams);
                Trainer.Config cfg = Trainer.Config.builder().epochs(epochs).batchSize(BATCH).lr(LR).seed(seed).evalEvery(1)
                        .outDir(run.work().resolve("head-only")).progress(w.progress).build();
                try (Trainer t = new Trainer(copy, Loss.crossEntropy(), AdamW.defaults(), cfg, w.backend)) {
                    probe = t.progressLabel("head only").fit(train, w.data(Split.TEST, Task.ROT90));
                }
            }

            Workflow.TrainSettings s = new Workflow.TrainSettings(epochs, LR, BATCH, seed, Task.ROT90);
            Workflow.FineTuned ft = w.fineTune(model, method.config(), s, run.work(), null, "lora");
            Main.Train.finish(run, ft, method, s, base, common.limit);

            o.println();
            o.println("| model                                    | task     | accuracy | trained params | s/epoch | ms/step | tokens/s |");
            o.println("|------------------------------------------|----------|----------|----------------|---------|---------|----------|");
            o.printf(Locale.ROOT, "| all-MiniLM-L6-v2, untrained head         | fortunes | %8.4f | %14s | %7s | %7s | %8s |%n", accBase, "0", "-", "-", "-");
            row(o, "head only (linear probe), frozen encoder", probe, probe.last().eval().accuracy(), probeParams, tokensPerEpoch);
            row(o, "+ LoRA r=8 alpha=16, query,value + head", ft.result(), ft.accuracy(), ft.model().trainableParameterCount(), tokensPerEpoch);
            o.println();
            o.println("adapter: " + out.resolve("adapter") + "   chart: " + out.resolve("training.png") + "   metrics: " + out.resolve("metrics.jsonl")
                    + "   head-only run: " + out.resolve("head-only"));
            o.printf(Locale.ROOT, "fortunes accuracy %.4f%n", ft.accuracy());
        }
        return 0;
    }

    /** One table row: accuracy, trainable parameters, mean seconds per epoch and ms per step, real training tokens per second. */
    private static void row(PrintStream o, String name, Trainer.Result r, double accuracy, long trainable, long tokensPerEpoch) {
        double sec = r.epochs().stream().mapToDouble(Trainer.EpochResult::seconds).average().orElse(Double.NaN);
        double ms = r.epochs().stream().mapToDouble(Trainer.EpochResult::msPerStep).average().orElse(Double.NaN);
        o.printf(Locale.ROOT, "| %-40s | fortunes | %8.4f | %,14d | %7.2f | %7.1f | %8.0f |%n", name, accuracy, trainable, sec, ms, tokensPerEpoch / sec);
    }
}
