package io.peft4j.cli;

import io.peft4j.data.FashionMnist.Task;
import io.peft4j.nn.Module;
import io.peft4j.peft.PeftModel;
import io.peft4j.train.Charts;
import io.peft4j.variants.dylora.DyLoraAdapter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import picocli.CommandLine.Option;

/**
 * {@code peft4j eval --rank-sweep}: a DyLoRA adapter evaluated at every rank 1..r without retraining,
 * printed as a table and drawn as accuracy against rank (the search-free result DyLoRA is for).
 */
final class RankSweep {
    /** The eval options of the sweep (a mixin of {@code eval}). */
    static final class Options {
        @Option(names = "--rank-sweep", description = "DyLoRA: evaluate the adapter at every rank 1..r and chart accuracy against rank")
        boolean enabled;
        @Option(names = "--chart", paramLabel = "FILE",
                description = "with --rank-sweep: the chart's PNG (default: rank_sweep.png in the run directory, or next to the adapter)")
        Path chart;
    }

    private RankSweep() {}

    /** Prints the accuracy at every rank of the DyLoRA adapter on {@code model} and writes the chart; the exit code. */
    static int run(Workflow w, Module evaluated, Path adapter, Task task, Path chart) {
        if (adapter == null || !(evaluated instanceof PeftModel model)) throw new IllegalArgumentException("--rank-sweep needs --adapter");
        sweep(w, model, Workflow.adapterDir(adapter), task, chart);
        return 0;
    }

    /** Accuracy at every rank; returns {rank, accuracy} rows. */
    static double[][] sweep(Workflow w, PeftModel model, Path adapterDir, Task task, Path chart) {
        List<DyLoraAdapter> layers = model.adaptedLayers(model.activeAdapter()).values().stream()
                .map(l -> l.adapter(model.activeAdapter())).filter(a -> a instanceof DyLoraAdapter).map(a -> (DyLoraAdapter) a).toList();
        if (layers.isEmpty()) {
            throw new IllegalArgumentException("--rank-sweep needs a DyLoRA adapter; " + adapterDir + " holds peft_type "
                    + model.adapterConfigs().get(model.activeAdapter()).peftType());
        }
        int r = layers.get(0).maxRank();
        double[][] rows = new double[r][];
        double[] ranks = new double[r], acc = new double[r];
        w.out.println("rank  " + task.name().toLowerCase(Locale.ROOT) + " accuracy");
        for (int b = 1; b <= r; b++) {
            for (DyLoraAdapter a : layers) a.setEvalRank(b);
            ranks[b - 1] = b;
            acc[b - 1] = w.accuracy(model, task);
            rows[b - 1] = new double[] {b, acc[b - 1]};
            w.out.printf(Locale.ROOT, "%4d  %.4f%n", b, acc[b - 1]);
        }
        for (DyLoraAdapter a : layers) a.setEvalRank(r);
        Path png = chart != null ? chart
                : (adapterDir.getFileName() != null && adapterDir.getFileName().toString().equals("adapter") && adapterDir.getParent() != null
                        ? adapterDir.getParent() : adapterDir).resolve("rank_sweep.png");
        Charts.write(png, Charts.DEFAULT_WIDTH, Charts.DEFAULT_HEIGHT, List.of(new Charts.Panel(
                "DyLoRA: accuracy at each rank, one training run", "rank b", task.name().toLowerCase(Locale.ROOT) + " test accuracy",
                List.of(new Charts.Series("accuracy", ranks, acc)))));
        w.out.println("chart written to " + png);
        return rows;
    }
}
