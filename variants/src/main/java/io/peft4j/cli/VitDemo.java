package io.peft4j.cli;

import io.peft4j.data.FashionMnist.Task;
import io.peft4j.nn.Module;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * {@code peft4j demo --model vit}: the ViT base pretrained on 'original' (cached), then LoRA r=8,
 * α=16 on the q and k projections of every block (attn.q, attn.k) fine-tuned on 'rot90' with
 * AdamW lr 1e-3, printing the MLP demo's table.
 */
final class VitDemo {
    private VitDemo() {}

    static int run(Main.Common common, Path out, int epochs, long seed) {
        Main.checkRange("--epochs", epochs, 1, 1000);
        Workflow w = common.workflow();
        MethodOptions mo = new MethodOptions();
        mo.variant = "lora";
        mo.set = List.of("r=8", "lora_alpha=16", "target_modules=attn.q,attn.k");
        MethodOptions.Resolved method = mo.resolve();
        PrintStream o = w.out;
        try (RunDir run = RunDir.open(out, false)) {
            BaseModel base = VitBase.pretrained(w, seed, common.limit);
            Module vit = base.model();
            double accOrig = w.accuracy(vit, Task.ORIGINAL);
            double accRot = w.accuracy(vit, Task.ROT90);
            o.printf(Locale.ROOT, "base accuracy: original %.4f, rot90 %.4f%n", accOrig, accRot);
            Workflow.TrainSettings s = new Workflow.TrainSettings(epochs, 1e-3f, 128, seed, Task.ROT90);
            Workflow.FineTuned ft = w.fineTune(vit, method.config(), s, run.work(), null, "lora");
            Main.Train.finish(run, ft, method, s, base, common.limit);
            double sec = ft.result().epochs().stream().mapToDouble(e -> e.seconds()).average().orElse(Double.NaN);
            double ms = ft.result().epochs().stream().mapToDouble(e -> e.msPerStep()).average().orElse(Double.NaN);
            long trainable = ft.model().trainableParameterCount();
            o.println();
            o.println("| model                            | task     | accuracy | trained params | s/epoch | ms/step |");
            o.println("|----------------------------------|----------|----------|----------------|---------|---------|");
            o.printf(Locale.ROOT, "| base ViT w64 d4 h4 mlp128 p7     | original | %8.4f | %,14d | %7s | %7s |%n", accOrig,
                    vit.parameterCount() - trainable, Main.Demo.fmt(base.secondsPerEpoch()), Main.Demo.fmt(base.msPerStep()));
            o.printf(Locale.ROOT, "| base ViT, frozen                 | rot90    | %8.4f | %14s | %7s | %7s |%n", accRot, "0", "-", "-");
            o.printf(Locale.ROOT, "| + LoRA r=8 alpha=16, attn.q,k    | rot90    | %8.4f | %,14d | %7s | %7s |%n", ft.accuracy(),
                    trainable, Main.Demo.fmt(sec), Main.Demo.fmt(ms));
            o.println();
            o.println("adapter: " + out.resolve("adapter") + "   chart: " + out.resolve("training.png") + "   metrics: " + out.resolve("metrics.jsonl"));
            o.printf(Locale.ROOT, "rot90 accuracy %.4f%n", ft.accuracy());
        }
        return 0;
    }
}
