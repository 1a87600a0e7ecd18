package io.peft4j.cli;

import io.peft4j.io.IoErrors;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.peft4j.backend.Backend;
import io.peft4j.data.Dataset;
import io.peft4j.data.FashionMnist.Split;
import io.peft4j.data.FashionMnist.Task;
import io.peft4j.io.ModelCheckpoint;
import io.peft4j.io.SafetensorsWriter;
import io.peft4j.nn.Mlp;
import io.peft4j.nn.Module;
import io.peft4j.nn.StepContext;
import io.peft4j.nn.VisionTransformer;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.AdapterMethods;
import io.peft4j.peft.ConfigField;
import io.peft4j.peft.PeftModel;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.Trainer;
import io.peft4j.io.AtomicFiles;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** The peft4j command line: demo, train, eval, merge, compare, methods, info, help. */
@Command(name = "peft4j", mixinStandardHelpOptions = true, version = "peft4j 0.1.0",
        description = "Parameter-efficient fine-tuning (LoRA family) on the JVM with native kernels.",
        subcommands = {Main.Demo.class, Main.Train.class, Main.Eval.class, Main.Merge.class, Compare.class, Main.Methods.class,
                Main.Info.class, QuantizeCommand.class, QuantizeCommand.Dequantize.class, ConvertCommand.class,
                CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    public static void main(String[] args) {
        System.exit(run(System.out, args));
    }

    /** Runs the command line, printing to {@code out}, and returns its exit code (tests call this). */
    public static int run(PrintStream out, String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(new java.io.PrintWriter(out, true));
        // Bad input is reported as one clear line, not a stack trace or a page of usage.
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            cmd.getErr().println("peft4j: " + (ex.getMessage() == null ? ex.toString() : ex.getMessage()));
            return 2;
        });
        cl.setParameterExceptionHandler((ex, args2) -> {
            String name = ex.getCommandLine().getCommandName();
            ex.getCommandLine().getErr().println("peft4j: " + ex.getMessage() + " (see 'peft4j " + (name.equals("peft4j") ? "" : name + " ") + "--help')");
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

    static PrintStream out() {
        return OUT.get();
    }

    @Override
    public void run() {
        new CommandLine(this).usage(OUT.get());
    }

    /** A flag's value outside its documented range is refused before any work or output. */
    static long checkRange(String flag, long value, long min, long max) {
        if (value < min || value > max) throw new IllegalArgumentException(flag + " " + value + " is out of range [" + min + ", " + max + "]");
        return value;
    }

    static float checkLr(Float lr) {
        if (lr != null && !(Float.isFinite(lr) && lr > 0 && lr <= 10)) throw new IllegalArgumentException("--lr " + lr + " is out of range (0, 10]");
        return lr == null ? Float.NaN : lr;
    }

    /** Options every data-using command takes. */
    static final class Common {
        @Option(names = "--data", paramLabel = "DIR", description = "Fashion-MNIST directory (default: the Debian package's, or $PEFT4J_DATA_DIR)")
        Path data;
        @Option(names = "--cache", paramLabel = "DIR", description = "where the pretrained base model is cached (default: $PEFT4J_CACHE or ~/.cache/peft4j)")
        Path cache;
        @Option(names = "--limit", paramLabel = "N", defaultValue = "0",
                description = "use only the first N training images (N/6 test images), also for pretraining the cached base; 0 = all; range [0, 60000]")
        int limit;
        @Option(names = "--no-progress", description = "no progress bar")
        boolean noProgress;

        Workflow workflow() {
            checkRange("--limit", limit, 0, 60000);
            return new Workflow(data, cache, limit, !noProgress, OUT.get());
        }
    }

    /** Which base model a command uses. */
    static final class BaseOptions {
        @Option(names = "--base", paramLabel = "FILE",
                description = "your own base: an MLP checkpoint in PyTorch's naming (fc1.weight [out, in], fc1.bias, ..., fcN.*) as .safetensors; "
                        + "default: the cached pretrained MLP 784-512-512-10")
        Path base;
        @Option(names = "--activation", paramLabel = "NAME", defaultValue = "relu", description = "activation between the --base layers: relu or gelu")
        String activationName;
        @Option(names = "--model", paramLabel = "KIND", defaultValue = "mlp",
                description = "the base model: mlp, vit (a small Vision Transformer; --base then names a ViT checkpoint), or minilm "
                        + "(all-MiniLM-L6-v2 classifying fortunes; --base then names an .onnx with tokenizer.json beside it, or a Hugging Face BERT directory)")
        String model;
        Mlp.Activation activation;

        void validate() {
            model = Workflow.modelKind(model);
            activation = switch (activationName.toLowerCase(Locale.ROOT)) {
                case "relu" -> Mlp.Activation.RELU;
                case "gelu" -> Mlp.Activation.GELU;
                default -> throw new IllegalArgumentException("--activation " + activationName + ": expected relu or gelu");
            };
            boolean directoryBase = MiniLmBase.MODEL.equals(model) && base != null && Files.isDirectory(base);   // a Hugging Face checkpoint
            if (base != null && !Files.isRegularFile(base) && !directoryBase) throw new IllegalArgumentException("--base " + base + ": no such file");
        }
    }

    /** How a fine-tuning run trains. */
    static final class TrainOptions {
        @Option(names = "--epochs", paramLabel = "N", description = "fine-tuning epochs, range [1, 1000] (default: 2)")
        Integer epochs;
        @Option(names = "--lr", paramLabel = "X", description = "learning rate, range (0, 10] (default: the method's suggested rate, 1e-3 for LoRA)")
        Float lr;
        @Option(names = "--batch", paramLabel = "N", description = "batch size, range [1, 60000] (default: 128)")
        Integer batch;
        @Option(names = "--seed", paramLabel = "N", description = "seed for the base model, initialisation, shuffling and dropout (default: 0)")
        Long seed;

        void validate() {
            if (epochs != null) checkRange("--epochs", epochs, 1, 1000);
            if (batch != null) checkRange("--batch", batch, 1, 60000);
            checkLr(lr);
        }

        Workflow.TrainSettings settings(AdapterMethod method, Task task, PrintStream out) {
            float rate = lr != null ? lr : method.suggestedLearningRate();
            out.println(lr != null ? "learning rate " + rate + " (--lr)"
                    : "learning rate " + rate + " (" + method.name() + "'s suggested rate; set --lr to change it)");
            return new Workflow.TrainSettings(epochs == null ? 2 : epochs, rate, batch == null ? 128 : batch, seed == null ? 0 : seed, task);
        }
    }

    /** --task picks a Fashion-MNIST task; refused, rather than ignored, when the base is the text model. */
    static void refuseTaskForText(Workflow w, CommandLine.Model.CommandSpec spec) {
        if (w.textTask() && spec.commandLine().getParseResult().hasMatchedOption("--task")) {
            throw new IllegalArgumentException("--task applies to the Fashion-MNIST models (mlp, vit); --model minilm trains and evaluates on fortunes");
        }
    }

    static Task task(String name) {
        try {
            return Task.parse(name);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--task " + name + ": expected original or rot90");
        }
    }

    @Command(name = "demo", mixinStandardHelpOptions = true, showDefaultValues = true,
            description = "Pretrain an MLP on Fashion-MNIST (cached), then fine-tune LoRA r=8 on rotated images.")
    static final class Demo implements Callable<Integer> {
        @Mixin Common common;
        @Option(names = "--out", paramLabel = "DIR", defaultValue = "peft4j-demo", description = "where the adapter, metrics and chart go")
        Path out;
        @Option(names = "--epochs", description = "fine-tuning epochs, range [1, 1000] (default: 2; 3 with --model vit)")
        Integer epochs;
        @Option(names = "--seed", defaultValue = "0", description = "seed for the base model, initialisation and shuffling")
        long seed;
        @Option(names = "--model", paramLabel = "KIND", defaultValue = "mlp",
                description = {"mlp, or vit: pretrain a small Vision Transformer (8 epochs, cached) and fine-tune LoRA on attn.q,attn.k,",
                        "or minilm: classify fortunes with all-MiniLM-L6-v2, a linear probe against LoRA on query,value (+ head)"})
        String model;

        @Override
        public Integer call() {
            if ("vit".equals(Workflow.modelKind(model))) return VitDemo.run(common, out, epochs == null ? 3 : epochs, seed);
            if (MiniLmBase.MODEL.equals(Workflow.modelKind(model))) return MiniLmDemo.run(common, out, epochs == null ? 2 : epochs, seed);
            int epochs = this.epochs == null ? 2 : this.epochs;
            checkRange("--epochs", epochs, 1, 1000);
            Workflow w = common.workflow();
            MethodOptions mo = new MethodOptions();
            mo.variant = "lora";
            mo.set = List.of("r=8", "lora_alpha=16", "target_modules=all-linear");
            MethodOptions.Resolved method = mo.resolve();
            PrintStream o = w.out;
            try (RunDir run = RunDir.open(out, false)) {
                BaseModel base = w.pretrained(seed, common.limit);
                Module mlp = base.model();
                double accOrig = w.accuracy(mlp, Task.ORIGINAL);
                double accRot = w.accuracy(mlp, Task.ROT90);
                o.printf(Locale.ROOT, "base accuracy: original %.4f, rot90 %.4f%n", accOrig, accRot);
                Workflow.TrainSettings s = new Workflow.TrainSettings(epochs, 1e-3f, 128, seed, Task.ROT90);
                Workflow.FineTuned ft = w.fineTune(mlp, method.config(), s, run.work(), null, "lora");
                Train.finish(run, ft, method, s, base, common.limit);
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
            }
            return 0;
        }

        static String fmt(double v) {
            return Double.isNaN(v) ? "cached" : String.format(Locale.ROOT, "%.2f", v);
        }
    }

    @Command(name = "train", mixinStandardHelpOptions = true, showDefaultValues = true,
            description = {"Fine-tune an adapter of any registered method on a base model; the last line is the test accuracy.",
                    "The run is written to --out as a whole: adapter/, metrics.jsonl, training.png, trainer_state.safetensors, run.json."})
    static final class Train implements Callable<Integer> {
        @Mixin Common common;
        @Mixin BaseOptions baseOptions;
        @Mixin MethodOptions methodOptions;
        @Mixin TrainOptions trainOptions;
        @Option(names = "--task", paramLabel = "TASK", defaultValue = "rot90", description = "original or rot90 (Fashion-MNIST models)") String task;
        @Option(names = "--out", paramLabel = "DIR", defaultValue = "peft4j-train", description = "the run directory") Path out;
        @Spec CommandLine.Model.CommandSpec spec;
        @Option(names = "--resume", paramLabel = "DIR",
                description = "continue the run in DIR (interrupted, or finished and given more --epochs) with its recorded settings")
        Path resume;

        @Override
        public Integer call() throws IOException {
            if (resume != null) return resume();
            Task t = task(task);
            trainOptions.validate();
            baseOptions.validate();
            MethodOptions.Resolved method = methodOptions.resolve();
            Workflow w = common.workflow();
            Workflow.TrainSettings s = trainOptions.settings(method.method(), t, w.out);
            BaseModel base = w.base(baseOptions, s.seed(), true);
            refuseTaskForText(w, spec);
            try (RunDir run = RunDir.open(out, false)) {
                writeRecord(run, method, s, base, common.limit, null);
                Workflow.FineTuned ft = w.fineTune(base.model(), method.config(), s, run.work(), null, method.method().name());
                finish(run, ft, method, s, base, common.limit);
                report(w.out, ft, out, w.taskName(t));
            }
            return 0;
        }

        /** Writes the adapter (recording its base) and run.json, then moves the run into place. */
        static void finish(RunDir run, Workflow.FineTuned ft, MethodOptions.Resolved method, Workflow.TrainSettings s, BaseModel base, int limit) {
            ft.model().save(run.work().resolve("adapter"), base.metadata());
            writeRecord(run, method, s, base, limit, ft.accuracy());
            run.commit();
        }

        /** run.json's task for a run on the text model, whose data are fortunes whatever the Task. */
        static final String TEXT_TASK = "fortunes";

        /** run.json: what --resume needs to continue the run (written at the start too, so an interrupted run can be resumed). */
        static void writeRecord(RunDir run, MethodOptions.Resolved method, Workflow.TrainSettings s, BaseModel base, int limit, Double accuracy) {
            Map<String, Object> record = new LinkedHashMap<>();
            record.put("variant", method.method().name());
            record.put("adapter_config", method.config().toJson());
            record.put("epochs", s.epochs());
            record.put("lr", s.lr());
            record.put("batch", s.batch());
            record.put("seed", s.seed());
            record.put("task", MiniLmBase.MODEL.equals(base.origin().get("model")) ? TEXT_TASK : s.task().name().toLowerCase(Locale.ROOT));
            record.put("limit", limit);
            record.put("base", base.origin());
            record.put("base_sha256", base.sha256());
            if (accuracy != null) record.put("accuracy", accuracy);
            try {
                AtomicFiles.writeString(run.work().resolve(RunDir.MARKER), JSON.writeValueAsString(record) + "\n");
            } catch (IOException e) {
                throw IoErrors.unchecked("write", run.work().resolve(RunDir.MARKER), e);
            }
        }

        static void report(PrintStream o, Workflow.FineTuned ft, Path out, String task) {
            ft.result().epochs().forEach(e -> o.printf(Locale.ROOT, "epoch %d: train loss %.4f, %.2f s (%.2f ms/step), test accuracy %.4f%n",
                    e.epoch(), e.trainLoss(), e.seconds(), e.msPerStep(), e.eval() == null ? Double.NaN : e.eval().accuracy()));
            o.println("adapter saved to " + out.resolve("adapter"));
            o.printf(Locale.ROOT, "%s accuracy %.4f%n", task, ft.accuracy());
        }

        /** Continues a run from its trainer state with the settings its run.json records. */
        @SuppressWarnings("unchecked")
        private int resume() throws IOException {
            if (methodOptions.variant != null || methodOptions.config != null || !methodOptions.set.isEmpty() || methodOptions.rank != null
                    || methodOptions.alpha != null || methodOptions.dropout != null || methodOptions.targets != null || trainOptions.lr != null
                    || trainOptions.batch != null || trainOptions.seed != null || baseOptions.base != null
                    || spec.commandLine().getParseResult().hasMatchedOption("--task")) {
                throw new IllegalArgumentException("--resume continues with the run's recorded settings; only --epochs (and --data, --cache, --no-progress) may be given");
            }
            trainOptions.validate();
            Path partial = RunDir.partialOf(resume);
            boolean fromPartial = Files.isRegularFile(partial.resolve(Trainer.CHECKPOINT_FILE)) && Files.isRegularFile(partial.resolve(RunDir.MARKER));
            Path source = fromPartial ? partial : resume;
            if (!Files.isRegularFile(source.resolve(RunDir.MARKER)) || !Files.isRegularFile(source.resolve(Trainer.CHECKPOINT_FILE))) {
                throw new IllegalArgumentException("--resume " + resume + ": no run to continue (it needs run.json and "
                        + Trainer.CHECKPOINT_FILE + ", written by peft4j train --out)");
            }
            Map<String, Object> rec = MethodOptions.readConfig(source.resolve(RunDir.MARKER));
            // The checkpoint's own config (as training left it: grown ranks) fits its tensors; run.json's is the starting one.
            String saved = Trainer.checkpointMetadata(source).get(Workflow.CHECKPOINT_CONFIG_KEY);
            MethodOptions.Resolved method = MethodOptions.fromJson(saved != null
                    ? (Map<String, Object>) JSON.readValue(saved, Map.class) : (Map<String, Object>) rec.get("adapter_config"));
            int recordedEpochs = ((Number) rec.get("epochs")).intValue();
            Workflow.TrainSettings s = new Workflow.TrainSettings(trainOptions.epochs == null ? recordedEpochs : trainOptions.epochs,
                    ((Number) rec.get("lr")).floatValue(), ((Number) rec.get("batch")).intValue(), ((Number) rec.get("seed")).longValue(),
                    TEXT_TASK.equals(rec.get("task")) ? Task.ROT90 : task((String) rec.get("task")));  // the text model's data ignore it
            Workflow w = new Workflow(common.data, common.cache, ((Number) rec.get("limit")).intValue(), !common.noProgress, OUT.get());
            Map<String, String> origin = (Map<String, String>) rec.get("base");
            BaseOptions bo = new BaseOptions();
            bo.activationName = origin.getOrDefault("activation", "relu");
            bo.base = "file".equals(origin.get("source")) ? Path.of(origin.get("file")) : null;
            bo.model = origin.getOrDefault("model", "mlp");
            bo.validate();
            BaseModel base = bo.base != null ? w.base(bo, s.seed(), true)
                    : w.pretrained(bo.model, Long.parseLong(origin.get("seed")), Integer.parseInt(origin.get("limit")));
            if (!base.sha256().equals(rec.get("base_sha256"))) {
                throw new IllegalArgumentException("--resume " + resume + ": the base model changed since the run started (sha256 "
                        + BaseModel.shortSha((String) rec.get("base_sha256")) + "… recorded, " + BaseModel.shortSha(base.sha256()) + "… now)");
            }
            w.out.println("resuming " + source + " (" + method.method().name() + ", until epoch " + s.epochs() + ")");
            try (RunDir run = RunDir.open(resume, fromPartial)) {
                if (!fromPartial) copyTree(resume, run.work());
                writeRecord(run, method, s, base, w.limit, null);
                Workflow.FineTuned ft = w.fineTune(base.model(), method.config(), s, run.work(), run.work(), method.method().name());
                finish(run, ft, method, s, base, w.limit);
                report(w.out, ft, resume, w.taskName(s.task()));
            }
            return 0;
        }

        private static void copyTree(Path from, Path to) throws IOException {
            try (var s = Files.walk(from)) {
                for (Path p : s.toList()) {
                    Path target = to.resolve(from.relativize(p).toString());
                    if (Files.isDirectory(p)) Files.createDirectories(target);
                    else Files.copy(p, target, StandardCopyOption.REPLACE_EXISTING);
                }
            }
        }
    }

    @Command(name = "eval", mixinStandardHelpOptions = true, showDefaultValues = true,
            description = {"Test accuracy of the base model, with an adapter when given.",
                    "With --adapter, the base it was trained on is used (as its metadata records), or the command refuses."})
    static final class Eval implements Callable<Integer> {
        @Mixin Common common;
        @Mixin BaseOptions baseOptions;
        @Option(names = "--adapter", paramLabel = "DIR", description = "a saved adapter: the run directory 'train --out' wrote, or its adapter/ subdirectory")
        Path adapter;
        @Option(names = "--seed", paramLabel = "N", description = "seed of the cached pretrained base (default: the adapter's recorded base, else 0)")
        Long seed;
        @Option(names = "--task", paramLabel = "TASK", defaultValue = "rot90", description = "original or rot90 (Fashion-MNIST models)") String task;
        @Spec CommandLine.Model.CommandSpec spec;
        @Option(names = "--save-logits", paramLabel = "FILE", description = "also write the test logits [n, classes] and labels [n] as safetensors")
        Path saveLogits;
        @Mixin RankSweep.Options rankSweep;

        @Override
        public Integer call() throws IOException {
            Task t = task(task);
            baseOptions.validate();
            Workflow w = common.workflow();
            Module model;
            if (adapter != null) {
                Path dir = Workflow.adapterDir(adapter);
                BaseModel base = w.baseFor(dir, baseOptions, seed, true);
                model = PeftModel.load(base.model(), dir, w.backend);
            } else {
                model = w.base(baseOptions, seed == null ? 0 : seed, true).model();
            }
            refuseTaskForText(w, spec);
            if (saveLogits != null) writeLogits(w, model, t);
            if (rankSweep.enabled) return RankSweep.run(w, model, adapter, t, rankSweep.chart);
            w.out.printf(Locale.ROOT, "%s accuracy %.4f%n", w.taskName(t), w.accuracy(model, t));
            return 0;
        }

        private void writeLogits(Workflow w, Module model, Task t) throws IOException {
            Dataset test = w.data(Split.TEST, t);
            int n = test.count();
            try (StepContext ctx = new StepContext(w.backend); Tensor xs = Tensor.of(test.images(), n, test.features())) {
                ctx.begin(false, 0);
                Tensor logits = model.forward(ctx, xs);
                SafetensorsWriter sw = new SafetensorsWriter();
                sw.putF32("logits", logits.shape(), logits.toFloatArray());
                sw.put("labels", DType.I32, new long[] {n}, java.lang.foreign.MemorySegment.ofArray(test.labels().clone()));
                sw.write(saveLogits);
            }
            w.out.println("logits saved to " + saveLogits);
        }
    }

    @Command(name = "merge", mixinStandardHelpOptions = true, showDefaultValues = true,
            description = {"Fold an adapter into its base weights and save the merged model as safetensors,",
                    "with the base's keys and shapes (fc1.weight, fc1.bias, ...), so PyTorch's load_state_dict takes it unchanged."})
    static final class Merge implements Callable<Integer> {
        @Option(names = "--cache", paramLabel = "DIR", description = "where the pretrained base model is cached (default: $PEFT4J_CACHE or ~/.cache/peft4j)")
        Path cache;
        @Option(names = "--data", paramLabel = "DIR", description = "Fashion-MNIST, only needed when the adapter's cached base must be pretrained first")
        Path data;
        @Option(names = "--no-progress", description = "no progress bar") boolean noProgress;
        @Mixin BaseOptions baseOptions;
        @Option(names = "--adapter", required = true, paramLabel = "DIR", description = "the run directory 'train --out' wrote, or its adapter/ subdirectory")
        Path adapter;
        @Option(names = "--seed", paramLabel = "N", description = "seed of the cached pretrained base (default: the adapter's recorded base)")
        Long seed;
        @Option(names = "--out", required = true, paramLabel = "FILE", description = "the merged model's .safetensors file") Path out;

        @Override
        public Integer call() throws Exception {
            baseOptions.validate();
            Path dir = Workflow.adapterDir(adapter);
            AdapterMethod method = AdapterMethods.forType(String.valueOf(MethodOptions.readConfig(dir.resolve(PeftModel.CONFIG_FILE)).get("peft_type")));
            if (!method.mergeable()) throw new IllegalArgumentException(method.name() + " adapters cannot be merged into the base weights: " + method.description());
            Workflow w = new Workflow(data, cache, 0, !noProgress, OUT.get());
            BaseModel base = w.baseFor(dir, baseOptions, seed, false);
            PeftModel pm = PeftModel.load(base.model(), dir, w.backend);
            Module merged = pm.mergeAndUnload();
            Path parent = out.toAbsolutePath().getParent();
            try {
                if (parent != null) Files.createDirectories(parent);
            } catch (IOException e) {
                throw IoErrors.unchecked("create directory", parent, e);
            }
            Map<String, String> meta = new LinkedHashMap<>();
            meta.put("format", "pt");
            meta.put("merged_adapter", adapter.toString());
            meta.putAll(base.metadata());
            if (merged instanceof VisionTransformer vit) meta.putAll(vit.metadata());   // its sizes, so --model vit --base reads it
            ModelCheckpoint.save(merged, out, meta);
            w.out.println("merged model saved to " + out);
            return 0;
        }
    }

    @Command(name = "methods", mixinStandardHelpOptions = true,
            description = {"List every registered method with its fields and defaults,", "or one method's fields with their docs."})
    static final class Methods implements Callable<Integer> {
        @Parameters(arity = "0..1", paramLabel = "NAME", description = "a method's name, e.g. lora") String name;

        @Override
        public Integer call() {
            PrintStream o = OUT.get();
            if (name != null) {
                AdapterMethod m = AdapterMethods.forName(name);
                o.printf(Locale.ROOT, "%s (peft_type %s): %s%n", m.name(), m.peftType(), m.description());
                o.printf(Locale.ROOT, "mergeable: %s; suggested learning rate: %s%n%n", m.mergeable() ? "yes" : "no", m.suggestedLearningRate());
                o.printf(Locale.ROOT, "%-20s %-8s %-14s %-28s %s%n", "field", "type", "default", "range", "doc");
                for (ConfigField f : m.fields()) {
                    if (!f.settable()) continue;
                    o.printf(Locale.ROOT, "%-20s %-8s %-14s %-28s %s%s%n", f.name(), f.typeName(), ConfigField.json(f.defaultValue()), f.range(), f.doc(),
                            f.shortcut() == null ? "" : " (shortcut --" + f.shortcut() + ")");
                }
                List<String> fixed = m.fields().stream().filter(f -> f.kind() == ConfigField.Kind.FIXED)
                        .map(f -> f.name() + "=" + ConfigField.json(f.defaultValue())).toList();
                if (!fixed.isEmpty()) o.println("\nPEFT fields accepted only at one value: " + String.join(", ", fixed));
                o.println("\nset fields with: peft4j train --variant " + m.name() + " --set FIELD=VALUE ...");
                return 0;
            }
            o.printf(Locale.ROOT, "%-10s %-10s %-9s %s%n", "method", "peft_type", "mergeable", "description");
            for (AdapterMethod m : AdapterMethods.byName().values()) {
                o.printf(Locale.ROOT, "%-10s %-10s %-9s %s%n", m.name(), m.peftType(), m.mergeable() ? "yes" : "no", m.description());
                StringBuilder fields = new StringBuilder();
                for (ConfigField f : m.fields()) {
                    if (f.settable()) fields.append(fields.isEmpty() ? "" : " ").append(f.name()).append('=').append(ConfigField.json(f.defaultValue()));
                }
                o.println("           fields: " + fields);
            }
            o.println("\n'peft4j methods NAME' shows a method's fields with their docs.");
            return 0;
        }
    }

    @Command(name = "info", mixinStandardHelpOptions = true, description = "Show what this machine offers: CPU features, BLAS, CUDA.")
    static final class Info implements Runnable {
        @Override
        public void run() {
            PrintStream o = OUT.get();
            o.println("peft4j 0.1.0");
            o.println(Backend.available());
        }
    }
}
