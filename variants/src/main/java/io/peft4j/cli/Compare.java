package io.peft4j.cli;

import io.peft4j.io.IoErrors;
import io.peft4j.data.FashionMnist.Task;
import io.peft4j.io.AtomicFiles;
import io.peft4j.nn.Module;
import io.peft4j.peft.AdapterMethod;
import io.peft4j.peft.AdapterMethods;
import io.peft4j.peft.ConfigField;
import io.peft4j.peft.PeftModel;
import java.awt.Color;
import java.awt.Font;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code peft4j compare}: fine-tunes several methods from the same base and seed on rot90 and prints
 * one table, with {@code compare.jsonl} and {@code compare.png} (accuracy against trainable
 * parameters). A method that fails shows its error in its row; the others still run.
 */
@Command(name = "compare", mixinStandardHelpOptions = true, showDefaultValues = true,
        description = {"Fine-tune several methods from the same base and seed on rot90 and compare them:",
                "accuracy, trainable parameters, speed, adapter size; writes compare.jsonl and compare.png."})
final class Compare implements Callable<Integer> {
    private static final com.fasterxml.jackson.databind.ObjectMapper JSONL = new com.fasterxml.jackson.databind.ObjectMapper();

    @Mixin Main.Common common;
    @Mixin Main.BaseOptions baseOptions;
    @Mixin Main.TrainOptions trainOptions;
    @Option(names = "--variants", defaultValue = "lora", paramLabel = "NAMES",
            description = "comma-separated method names, or all (every registered method at its defaults)")
    String variants;
    @Option(names = "--out", paramLabel = "DIR", defaultValue = "peft4j-compare", description = "where each method's run, compare.jsonl and compare.png go")
    Path out;

    /** One method's outcome: its figures, or the error it failed with. */
    record Row(String method, String settings, long trainable, double share, double accuracy, double secondsPerEpoch,
               double msPerStep, long adapterBytes, long baseWeightBytes, boolean mergeable, String lr, String error, List<String> summaries,
               Map<String, Integer> finalRanks) {
        Map<String, Object> json() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("method", method);
            m.put("settings", settings);
            if (error != null) {
                m.put("error", error);
                return m;
            }
            m.put("trainable_params", trainable);
            m.put("trainable_share", share);
            m.put("accuracy", accuracy);
            m.put("seconds_per_epoch", secondsPerEpoch);
            m.put("ms_per_step", msPerStep);
            m.put("adapter_bytes", adapterBytes);
            m.put("base_weight_bytes", baseWeightBytes);   // the base's linear weights as held in memory
            m.put("mergeable", mergeable);
            m.put("lr", lr);
            if (!finalRanks.isEmpty()) m.put("final_ranks", finalRanks);
            return m;
        }
    }

    @Override
    public Integer call() {
        trainOptions.validate();
        baseOptions.validate();
        List<AdapterMethod> methods = new ArrayList<>();
        if (variants.strip().equals("all")) methods.addAll(AdapterMethods.byName().values());
        else for (String n : variants.split(",")) methods.add(AdapterMethods.forName(n.strip()));
        if (methods.isEmpty()) throw new IllegalArgumentException("--variants names no method");
        Workflow w = common.workflow();
        PrintStream o = w.out;
        long seed = trainOptions.seed == null ? 0 : trainOptions.seed;
        BaseModel base = w.base(baseOptions, seed, true);
        if (variants.strip().equals("all")) {
            methods.removeIf(m -> {
                String why = m.unsupportedModel(base.model());
                if (why != null) o.println(m.name() + ": left out, " + why);
                return why != null;
            });
        }
        long baseParams = base.model().parameterCount();
        List<Row> rows = new ArrayList<>();
        try (RunDir run = RunDir.open(out, false)) {
            for (int i = 0; i < methods.size(); i++) {
                AdapterMethod m = methods.get(i);
                o.printf(Locale.ROOT, "[%d/%d] %s%n", i + 1, methods.size(), m.name());
                rows.add(runOne(w, m, base, baseParams, run.work().resolve(m.name())));
            }
            writeJsonl(run.work().resolve("compare.jsonl"), rows);
            chart(run.work().resolve("compare.png"), rows, base, w.taskName(Task.ROT90));
            try {
                AtomicFiles.writeString(run.work().resolve(RunDir.MARKER), Main.JSON.writeValueAsString(Map.of("command", "compare",
                        "methods", rows.stream().map(Row::method).toList(), "base", base.origin(), "base_sha256", base.sha256())) + "\n");
            } catch (IOException e) {
                throw IoErrors.unchecked("write", run.work().resolve(RunDir.MARKER), e);
            }
            run.commit();
        }
        printTable(o, rows, w.taskName(Task.ROT90));
        o.println("results: " + out.resolve("compare.jsonl") + "   chart: " + out.resolve("compare.png"));
        long failed = rows.stream().filter(r -> r.error() != null).count();
        if (failed > 0) {
            o.println(failed + " of " + rows.size() + " methods failed");
            return 1;
        }
        return 0;
    }

    private Row runOne(Workflow w, AdapterMethod m, BaseModel base, long baseParams, Path dir) {
        String settings = "";
        try {
            MethodOptions mo = new MethodOptions();
            mo.variant = m.name();
            MethodOptions.Resolved resolved = mo.resolve();
            settings = keySettings(m, resolved.config().toJson());
            Workflow.TrainSettings s = trainOptions.settings(m, Task.ROT90, w.out);
            Module model = base.copyModel(w, baseOptions.activation);
            try {
                Workflow.FineTuned ft = w.fineTune(model, resolved.config(), s, dir, null, m.name());
                Path adapterDir = dir.resolve("adapter");
                ft.model().save(adapterDir, base.metadata());
                long bytes = Files.size(adapterDir.resolve(PeftModel.WEIGHTS_FILE));
                long trainable = ft.model().trainableParameterCount();
                double sec = ft.result().epochs().stream().mapToDouble(e -> e.seconds()).average().orElse(Double.NaN);
                double ms = ft.result().epochs().stream().mapToDouble(e -> e.msPerStep()).average().orElse(Double.NaN);
                long baseBytes = Workflow.linearWeightBytes(ft.model())[0];
                return new Row(m.name(), settings, trainable, (double) trainable / baseParams, ft.accuracy(), sec, ms, bytes, baseBytes, m.mergeable(),
                        Float.toString(s.lr()), null, ft.summaries(), ft.finalRanks());
            } finally {
                model.close();
            }
        } catch (RuntimeException | IOException | OutOfMemoryError e) {
            String msg = e.getMessage() == null ? e.toString() : e.getMessage();
            w.out.println("peft4j: " + m.name() + " failed: " + msg);
            return new Row(m.name(), settings, 0, 0, Double.NaN, Double.NaN, Double.NaN, 0, 0, m.mergeable(), "", msg, List.of(), Map.of());
        }
    }

    /** The values of the method's shortcut fields (rank, alpha, dropout when not 0): what tells its rows apart. */
    static String keySettings(AdapterMethod m, Map<String, Object> json) {
        List<String> parts = new ArrayList<>();
        for (ConfigField f : m.fields()) {
            if (f.shortcut() == null || f.shortcut().equals("targets")) continue;
            Object v = json.get(f.name());
            if (f.shortcut().equals("dropout") && v instanceof Number n && n.doubleValue() == 0) continue;
            if (v != null) parts.add(f.name() + "=" + ConfigField.json(v));
        }
        return String.join(" ", parts);
    }

    private static void writeJsonl(Path file, List<Row> rows) {
        StringBuilder sb = new StringBuilder();
        try {
            for (Row r : rows) sb.append(JSONL.writeValueAsString(r.json())).append('\n');
            AtomicFiles.writeString(file, sb.toString());
        } catch (IOException e) {
            throw IoErrors.unchecked("write", file, e);
        }
    }

    static void printTable(PrintStream o, List<Row> rows, String task) {
        o.println();
        o.println("| method   | settings                 | trainable params | share of base | " + String.format(Locale.ROOT, "%14s", task + " accuracy")
                + " | s/epoch | ms/step | base MiB | adapter file | mergeable | final ranks |");
        o.println("|----------|--------------------------|------------------|---------------|----------------|---------|---------|----------|--------------|-----------|-------------|");
        for (Row r : rows) {
            if (r.error() != null) {
                o.printf(Locale.ROOT, "| %-8s | %-24s | error: %s |%n", r.method(), r.settings(), r.error());
                continue;
            }
            o.printf(Locale.ROOT, "| %-8s | %-24s | %,16d | %12.3f%% | %14.4f | %7.2f | %7.2f | %8.3f | %,10d B | %-9s | %-11s |%n", r.method(), r.settings(),
                    r.trainable(), 100 * r.share(), r.accuracy(), r.secondsPerEpoch(), r.msPerStep(), r.baseWeightBytes() / 1048576.0,
                    r.adapterBytes(), r.mergeable() ? "yes" : "no", ranksColumn(r.finalRanks()));
        }
        o.println();
        // The methods' own report lines (which layer has which rank, DyLoRA's rank counts) under the table.
        for (Row r : rows) r.summaries().forEach(o::println);
        if (rows.stream().anyMatch(r -> !r.summaries().isEmpty())) o.println();
    }

    /** "10/5/9": each layer's final rank in model order, or "-" for methods whose rank does not change. */
    static String ranksColumn(Map<String, Integer> ranks) {
        return ranks.isEmpty() ? "-" : String.join("/", ranks.values().stream().map(String::valueOf).toList());
    }

    /** Accuracy against trainable parameters (log axis), one labelled point per method. */
    static void chart(Path png, List<Row> rows, BaseModel base, String task) {
        XYChart chart = new XYChartBuilder().width(1000).height(700)
                .title(task + " accuracy against trainable parameters (base " + (base.origin().containsKey("model") ? "" : "MLP ")
                        + base.origin().get("sizes") + ")")
                .xAxisTitle("trainable parameters (log scale)").yAxisTitle(task + " test accuracy").build();
        var st = chart.getStyler();
        st.setXAxisLogarithmic(true);
        st.setYAxisMin(0.0);
        st.setYAxisMax(1.0);
        st.setLegendPosition(Styler.LegendPosition.InsideSE);
        st.setChartBackgroundColor(Color.WHITE);
        st.setMarkerSize(12);
        st.setAnnotationTextFont(new Font(Font.SANS_SERIF, Font.PLAIN, 14));
        st.setPlotGridLinesVisible(true);
        boolean any = false;
        for (Row r : rows) {
            if (r.error() != null || r.trainable() <= 0) continue;
            XYSeries s = chart.addSeries(r.method() + " (" + String.format(Locale.ROOT, "%.3f", r.accuracy()) + ")",
                    new double[] {r.trainable()}, new double[] {r.accuracy()});
            s.setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Scatter);
            chart.addAnnotation(new org.knowm.xchart.AnnotationText(r.method(), r.trainable(), r.accuracy() + 0.04, false));
            any = true;
        }
        // Whole decades around the points, so that even one point sits on a readable log axis.
        double lo = rows.stream().filter(r -> r.error() == null && r.trainable() > 0).mapToDouble(Row::trainable).min().orElse(1);
        double hi = rows.stream().filter(r -> r.error() == null && r.trainable() > 0).mapToDouble(Row::trainable).max().orElse(10);
        st.setXAxisMin(Math.pow(10, Math.floor(Math.log10(lo))));
        st.setXAxisMax(Math.pow(10, Math.max(Math.ceil(Math.log10(hi)), Math.floor(Math.log10(lo)) + 1)));
        if (!any) chart.addSeries("no method finished", new double[] {1}, new double[] {0}).setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Scatter);
        try {
            Path tmp = png.resolveSibling("." + png.getFileName() + ".tmp.png");
            BitmapEncoder.saveBitmap(chart, tmp.toString(), BitmapEncoder.BitmapFormat.PNG);
            Files.move(tmp, png, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw IoErrors.unchecked("write", png, e);
        }
    }
}
