package io.peft4j.cli;

import io.peft4j.backend.Backend;
import io.peft4j.data.FashionMnist.Task;
import io.peft4j.io.ModelCheckpoint;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.PeftModel;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** The peft4j command line: demo, train, eval, merge, info. */
@Command(name = "peft4j", mixinStandardHelpOptions = true, version = "peft4j 0.1.0",
        description = "Parameter-efficient fine-tuning (LoRA family) on the JVM with native kernels.",
        subcommands = {Main.Demo.class, Main.Train.class, Main.Eval.class, Main.Merge.class, Main.Info.class})
public final class Main implements Runnable {

    public static void main(String[] args) {
        System.exit(run(System.out, args));
    }

    /** Runs the command line, printing to {@code out}, and returns its exit code (tests call this). */
    public static int run(PrintStream out, String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(new java.io.PrintWriter(out, true));
        // Bad input is reported as one clear line, not a stack trace.
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            cmd.getErr().println("peft4j: " + (ex.getMessage() == null ? ex.toString() : ex.getMessage()));
            return 2;
        });
        OUT.set(out);
        try {
            return cl.execute(args);
        } finally {
            OUT.remove();
        }
    }

    private static final ThreadLocal<PrintStream> OUT = ThreadLocal.withInitial(() -> System.out);

    @Override
    public void run() {
        new CommandLine(this).usage(OUT.get());
    }

    /** Options every data-using command takes. */
    static final class Common {
        @Option(names = "--data", description = "Fashion-MNIST directory (default: the Debian package's, or $PEFT4J_DATA_DIR)")
        Path data;
        @Option(names = "--cache", description = "where the pretrained base model is cached (default: $PEFT4J_CACHE or ~/.cache/peft4j)")
        Path cache;
        @Option(names = "--limit", description = "use only the first N training examples (N/6 test examples); 0 = all", defaultValue = "0")
        int limit;
        @Option(names = "--seed", defaultValue = "0", description = "seed for initialisation, shuffling and dropout")
        long seed;
        @Option(names = "--no-progress", description = "no progress bar")
        boolean noProgress;

        Workflow workflow() {
            return new Workflow(data, cache, limit, !noProgress, OUT.get());
        }
    }

    @Command(name = "demo", description = "Pretrain an MLP on Fashion-MNIST (cached), then fine-tune LoRA r=8 on rotated images.")
    static final class Demo implements Callable<Integer> {
        @Mixin Common common;
        @Option(names = "--out", defaultValue = "peft4j-demo", description = "where the adapter, metrics and chart go")
        Path out;
        @Option(names = "--epochs", defaultValue = "2", description = "fine-tuning epochs")
        int epochs;

        @Override
        public Integer call() {
            Workflow w = common.workflow();
            PrintStream o = w.out;
            Workflow.BaseModel base = w.base(common.seed);
            Mlp mlp = base.model();
            double accOrig = w.accuracy(mlp, Task.ORIGINAL);
            double accRot = w.accuracy(mlp, Task.ROT90);
            o.printf(Locale.ROOT, "base accuracy: original %.4f, rot90 %.4f%n", accOrig, accRot);
            AdapterConfig cfg = Workflow.adapterConfig("lora", 8, 16, 0, false, "all-linear");
            Workflow.FineTuned ft = w.fineTune(mlp, cfg, Task.ROT90, epochs, 1e-3f, 128, common.seed, out);
            ft.model().save(out.resolve("adapter"));
            double sec = ft.result().epochs().stream().mapToDouble(e -> e.seconds()).average().orElse(Double.NaN);
            double ms = ft.result().epochs().stream().mapToDouble(e -> e.msPerStep()).average().orElse(Double.NaN);
            long trainable = ft.model().trainableParameterCount();
            o.println();
            o.println("| model                            | task     | accuracy | trained params | s/epoch | ms/step |");
            o.println("|----------------------------------|----------|----------|----------------|---------|---------|");
            o.printf(Locale.ROOT, "| base MLP 784-512-512-10          | original | %8.4f | %,14d | %7s | %7s |%n", accOrig,
                    mlp.parameterCount() - trainable, fmt(base.secondsPerEpoch()), fmt(base.msPerStep()));
            o.printf(Locale.ROOT, "| base MLP, frozen                 | rot90    | %8.4f | %14s | %7s | %7s |%n", accRot, "0", "-", "-");
            o.printf(Locale.ROOT, "| + LoRA r=8 alpha=16, all-linear  | rot90    | %8.4f | %,14d | %7s | %7s |%n", ft.accuracy(),
                    trainable, fmt(sec), fmt(ms));
            o.println();
            o.println("adapter: " + out.resolve("adapter") + "   chart: " + out.resolve("training.png") + "   metrics: " + out.resolve("metrics.jsonl"));
            o.printf(Locale.ROOT, "rot90 accuracy %.4f%n", ft.accuracy());
            return 0;
        }

        private static String fmt(double v) {
            return Double.isNaN(v) ? "cached" : String.format(Locale.ROOT, "%.2f", v);
        }
    }

    @Command(name = "train", description = "Fine-tune an adapter on the cached base model; the last line is the test accuracy.")
    static final class Train implements Callable<Integer> {
        @Mixin Common common;
        @Option(names = "--variant", defaultValue = "lora", description = "method: lora")
        String variant;
        @Option(names = {"--rank", "-r"}, defaultValue = "8") int rank;
        @Option(names = "--alpha", defaultValue = "16") float alpha;
        @Option(names = "--dropout", defaultValue = "0") float dropout;
        @Option(names = "--rslora", description = "scale by alpha/sqrt(r)") boolean rslora;
        @Option(names = "--targets", defaultValue = "all-linear", description = "comma-separated layer names, or all-linear")
        String targets;
        @Option(names = "--epochs", defaultValue = "2") int epochs;
        @Option(names = "--lr", defaultValue = "1e-3") float lr;
        @Option(names = "--batch", defaultValue = "128") int batch;
        @Option(names = "--task", defaultValue = "rot90", description = "original or rot90") String task;
        @Option(names = "--out", defaultValue = "peft4j-train", description = "where the adapter, metrics and chart go") Path out;

        @Override
        public Integer call() {
            Task t = Task.parse(task);
            Workflow w = common.workflow();
            AdapterConfig cfg = Workflow.adapterConfig(variant, rank, alpha, dropout, rslora, targets);
            Mlp mlp = w.base(common.seed).model();
            Workflow.FineTuned ft = w.fineTune(mlp, cfg, t, epochs, lr, batch, common.seed, out);
            ft.model().save(out.resolve("adapter"));
            printEpochs(w.out, ft);
            w.out.println("adapter saved to " + out.resolve("adapter"));
            w.out.printf(Locale.ROOT, "%s accuracy %.4f%n", task, ft.accuracy());
            return 0;
        }

        private static void printEpochs(PrintStream o, Workflow.FineTuned ft) {
            ft.result().epochs().forEach(e -> o.printf(Locale.ROOT, "epoch %d: train loss %.4f, %.2f s (%.2f ms/step), test accuracy %.4f%n",
                    e.epoch(), e.trainLoss(), e.seconds(), e.msPerStep(), e.eval() == null ? Double.NaN : e.eval().accuracy()));
        }
    }

    @Command(name = "eval", description = "Test accuracy of the cached base model, with an adapter when given.")
    static final class Eval implements Callable<Integer> {
        @Mixin Common common;
        @Option(names = "--adapter", description = "a saved adapter directory") Path adapter;
        @Option(names = "--task", defaultValue = "rot90") String task;

        @Override
        public Integer call() {
            Workflow w = common.workflow();
            Module model = w.base(common.seed).model();
            if (adapter != null) model = PeftModel.load(model, adapter, w.backend);
            w.out.printf(Locale.ROOT, "%s accuracy %.4f%n", task, w.accuracy(model, Task.parse(task)));
            return 0;
        }
    }

    @Command(name = "merge", description = "Fold an adapter into the base weights and save the merged model as safetensors.")
    static final class Merge implements Callable<Integer> {
        @Mixin Common common;
        @Option(names = "--adapter", required = true) Path adapter;
        @Option(names = "--out", required = true, description = "the merged model's .safetensors file") Path out;

        @Override
        public Integer call() throws Exception {
            Workflow w = common.workflow();
            PeftModel pm = PeftModel.load(w.base(common.seed).model(), adapter, w.backend);
            Module merged = pm.mergeAndUnload();
            Path parent = out.toAbsolutePath().getParent();
            if (parent != null) Files.createDirectories(parent);
            ModelCheckpoint.save(merged, out, Map.of("merged_adapter", adapter.toString()));
            w.out.println("merged model saved to " + out);
            return 0;
        }
    }

    @Command(name = "info", description = "Show what this machine offers: CPU features, BLAS, CUDA.")
    static final class Info implements Runnable {
        @Override
        public void run() {
            PrintStream o = OUT.get();
            o.println("peft4j 0.1.0");
            o.println(Backend.available());
        }
    }
}
