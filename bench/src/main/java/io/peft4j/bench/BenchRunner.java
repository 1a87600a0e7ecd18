package io.peft4j.bench;

import io.peft4j.backend.Backend;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.infra.IterationParams;
import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.format.OutputFormat;
import org.openjdk.jmh.runner.format.OutputFormatFactory;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import org.openjdk.jmh.runner.options.VerboseMode;

/**
 * Runs the peft4j JMH benchmarks and prints one table: each figure in its natural unit beside
 * the ceiling measured in the same run (FMA peak, copy bandwidth, C sgemm, base layer) and the
 * ratio to it.
 *
 * <pre>
 * java --enable-native-access=ALL-UNNAMED -jar bench/target/benchmarks.jar [-quick] [-v] [REGEX]
 * </pre>
 * REGEX selects benchmarks by full name (e.g. {@code LowRank}; the ceilings always run too);
 * -quick is a short smoke run;
 * -v shows JMH's own output (otherwise it goes to bench/target/jmh-output.log). The C sgemm is
 * found via -Dpeft4j.sgemm.bench / PEFT4J_SGEMM_BENCH, else in java-api/target/native-build/bin.
 */
public final class BenchRunner {
    private static final String PKG = "io.peft4j.bench.";
    private static final double GIGA = 1e9;

    private BenchRunner() {}

    public static void main(String[] args) throws Exception {
        boolean quick = false, verbose = false;
        String filter = null;
        for (String a : args) {
            switch (a) {
                case "-quick", "--quick" -> quick = true;
                case "-v", "--verbose" -> verbose = true;
                case "-h", "-help", "--help" -> {
                    usage(System.out);
                    return;
                }
                default -> {
                    if (a.startsWith("-")) {
                        System.err.println("unknown option " + a);
                        usage(System.err);
                        System.exit(2);
                    }
                    if (filter != null) {
                        System.err.println("only one REGEX argument is accepted (got '" + filter + "' and '" + a + "')");
                        System.exit(2);
                    }
                    filter = a;
                }
            }
        }

        Path outDir = outputDir();
        Files.createDirectories(outDir);
        String loadBefore = loadAverage();

        ChainedOptionsBuilder ob = new OptionsBuilder()
                .include(Pattern.quote(PKG) + ".*" + (filter == null ? "" : "(?:" + filter + ")"))
                // The ceilings are always measured, so every figure has its ceiling from this run.
                .include(Pattern.quote(PKG + "CeilingBench."))
                .forks(1)
                .threads(1)
                .shouldFailOnError(true)
                .jvmArgsAppend(forkJvmArgs());
        if (quick) {
            ob.warmupIterations(1).warmupTime(TimeValue.milliseconds(500))
              .measurementIterations(2).measurementTime(TimeValue.milliseconds(500));
        } else {
            ob.warmupIterations(2).warmupTime(TimeValue.seconds(2))
              .measurementIterations(4).measurementTime(TimeValue.seconds(2));
        }

        Path log = outDir.resolve("jmh-output.log");
        Collection<RunResult> results;
        // The same sgemm from C runs right after the Java one, so both see the same machine load.
        int cReps = quick ? 3 : 15;
        CSgemm[] cSgemm = {null};
        Map<String, String> loads = new java.util.concurrent.ConcurrentHashMap<>();
        Runnable afterSgemm = () -> {
            cSgemm[0] = runCSgemm(cReps);
            loads.put("p4j_sgemm_bench", load1());
        };
        try (PrintStream logStream = new PrintStream(Files.newOutputStream(log), true, StandardCharsets.UTF_8)) {
            OutputFormat jmhOut = verbose
                    ? new Progress(OutputFormatFactory.createFormatInstance(unclosable(System.out), VerboseMode.NORMAL), null, afterSgemm, loads)
                    : new Progress(OutputFormatFactory.createFormatInstance(logStream, VerboseMode.NORMAL), System.out, afterSgemm, loads);
            if (!verbose) System.out.println("peft4j bench" + (quick ? " (quick)" : "") + ": JMH output in " + log);
            results = new Runner(ob.build(), jmhOut).run();
        }
        boolean ranSgemm = results.stream().anyMatch(r -> r.getParams().getBenchmark().equals(PKG + "SgemmBench.sgemm"));
        if (ranSgemm && cSgemm[0] == null) afterSgemm.run();

        String loadAfter = loadAverage();
        Table table = buildTable(results, cSgemm[0], loads);
        List<String> header = header(quick, loadBefore, loadAfter);

        System.out.println();
        header.forEach(System.out::println);
        System.out.println();
        System.out.print(table.text());
        table.notes().forEach(System.out::println);

        Path md = outDir.resolve("bench-results.md");
        StringBuilder sb = new StringBuilder("# peft4j benchmark results\n\n");
        for (String h : header) sb.append("- ").append(h).append('\n');
        sb.append('\n').append(table.markdown());
        if (!table.notes().isEmpty()) sb.append('\n');
        for (String n : table.notes()) sb.append("- ").append(n).append('\n');
        Files.writeString(md, sb.toString(), StandardCharsets.UTF_8);
        System.out.println("\nwritten: " + md);
    }

    /** System.out for JMH, which closes its output stream at the end of a run. */
    private static PrintStream unclosable(PrintStream target) {
        return new PrintStream(new java.io.OutputStream() {
            @Override
            public void write(int b) {
                target.write(b);
            }

            @Override
            public void write(byte[] b, int off, int len) {
                target.write(b, off, len);
            }

            @Override
            public void flush() {
                target.flush();
            }

            @Override
            public void close() {
                target.flush();
            }
        }, true, StandardCharsets.UTF_8);
    }

    private static void usage(PrintStream out) {
        out.println("usage: benchmarks.jar [-quick] [-v] [REGEX]");
        out.println("  REGEX   run only benchmarks whose full name matches (e.g. LowRank, 'Sgemm|Adamw'); the ceilings always run");
        out.println("  -quick  short smoke run (1 warmup + 2 measurement iterations of 0.5 s)");
        out.println("  -v      show JMH's own output instead of writing it to bench/target/jmh-output.log");
    }

    /** JVM flags for the forked benchmark JVMs: native access, and any -Dpeft4j.* settings. */
    private static String[] forkJvmArgs() {
        List<String> a = new ArrayList<>(List.of("--enable-native-access=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow", "-Xmx1g"));
        for (String k : System.getProperties().stringPropertyNames()) {
            if (k.startsWith("peft4j.")) a.add("-D" + k + "=" + System.getProperty(k));
        }
        return a.toArray(String[]::new);
    }

    /** bench/target (next to benchmarks.jar), or -Dpeft4j.bench.out. */
    private static Path outputDir() {
        String p = System.getProperty("peft4j.bench.out");
        if (p != null && !p.isBlank()) return Path.of(p);
        Path jar = jarPath();
        if (jar != null && Files.isRegularFile(jar)) return jar.getParent();
        return Path.of("bench", "target");
    }

    private static Path jarPath() {
        try {
            return Path.of(BenchRunner.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toAbsolutePath();
        } catch (URISyntaxException | RuntimeException e) {
            return null;
        }
    }

    // ---- the C sgemm ----

    record CSgemm(double gflops, String detail) {}

    private static CSgemm runCSgemm(int reps) {
        Path exe = findSgemmBench();
        if (exe == null) {
            return new CSgemm(Double.NaN, "p4j_sgemm_bench not found (set -Dpeft4j.sgemm.bench or PEFT4J_SGEMM_BENCH)");
        }
        List<String> cmd = List.of(exe.toString(), Long.toString(SgemmBench.M), Long.toString(SgemmBench.N),
                Long.toString(SgemmBench.K), Integer.toString(reps));
        System.out.println("  " + String.join(" ", cmd) + " (C, median of " + reps + ")");
        try {
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
            String threads = System.getProperty("peft4j.threads", System.getenv("PEFT4J_THREADS"));
            if (threads != null && !threads.isBlank() && !threads.trim().equals("0")) {
                pb.environment().put("OMP_NUM_THREADS", threads.trim());
            }
            Process p = pb.start();
            String out;
            try (InputStream in = p.getInputStream()) {
                out = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            }
            if (!p.waitFor(10, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                return new CSgemm(Double.NaN, exe + " timed out");
            }
            Matcher m = Pattern.compile("sgemm_c\\s+\\d+\\s+\\d+\\s+\\d+\\s+gflops=([0-9.eE+-]+)").matcher(out);
            if (p.exitValue() != 0 || !m.find()) {
                return new CSgemm(Double.NaN, exe + " exited " + p.exitValue() + ": " + out.strip());
            }
            return new CSgemm(Double.parseDouble(m.group(1)), exe.toString());
        } catch (IOException e) {
            return new CSgemm(Double.NaN, exe + ": " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new CSgemm(Double.NaN, "interrupted");
        }
    }

    private static Path findSgemmBench() {
        String exe = "p4j_sgemm_bench";
        List<Path> candidates = new ArrayList<>();
        String explicit = System.getProperty("peft4j.sgemm.bench", System.getenv("PEFT4J_SGEMM_BENCH"));
        if (explicit != null && !explicit.isBlank()) {
            Path p = Path.of(explicit);
            return Files.isDirectory(p) ? p.resolve(exe) : p;
        }
        Path rel = Path.of("java-api", "target", "native-build", "bin", exe);
        Path jar = jarPath();
        if (jar != null && jar.getParent() != null && jar.getParent().getParent() != null) {
            Path root = jar.getParent().getParent().getParent(); // bench/target/benchmarks.jar -> repo root
            if (root != null) candidates.add(root.resolve(rel));
        }
        candidates.add(rel.toAbsolutePath());
        String nativeDir = System.getProperty("peft4j.native.dir", System.getenv("PEFT4J_NATIVE_DIR"));
        if (nativeDir != null && !nativeDir.isBlank()) {
            candidates.add(Path.of(nativeDir, exe));
            candidates.add(Path.of(nativeDir, "bin", exe));
        }
        for (String dir : System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator)) {
            if (!dir.isBlank()) candidates.add(Path.of(dir, exe));
        }
        for (Path c : candidates) {
            if (Files.isRegularFile(c) && Files.isExecutable(c)) return c.normalize();
        }
        return null;
    }

    // ---- the table ----

    /** A JMH figure converted to its natural unit, with its error. */
    record Figure(double value, double error) {
        static final Figure MISSING = new Figure(Double.NaN, Double.NaN);

        boolean present() {
            return !Double.isNaN(value);
        }

        /**
         * From per-call times (ms/op) to a rate work/s (work in units of 1e9): the median call, ±
         * half the interquartile range. Sampled (SampleTime) results have per-call percentiles;
         * an AverageTime result falls back to its mean ± JMH's error.
         */
        static Figure rate(Result<?> r, double work) {
            double[] q = quartiles(r);
            double v = work / (q[1] * 1e-3) / GIGA;
            double e = work / (q[0] * 1e-3) / GIGA - work / (q[2] * 1e-3) / GIGA;
            return new Figure(v, Double.isNaN(e) ? Double.NaN : e / 2);
        }

        /** The median call in ms, ± half the interquartile range. */
        static Figure millis(Result<?> r) {
            double[] q = quartiles(r);
            return new Figure(q[1], (q[2] - q[0]) / 2);
        }

        /** p25, p50, p75 of the per-call time, or mean − err, mean, mean + err when not sampled. */
        private static double[] quartiles(Result<?> r) {
            if (r instanceof org.openjdk.jmh.results.SampleTimeResult) {
                var st = r.getStatistics();
                return new double[] {st.getPercentile(25), st.getPercentile(50), st.getPercentile(75)};
            }
            double m = r.getScore(), e = r.getScoreError();
            return Double.isNaN(e) ? new double[] {Double.NaN, m, Double.NaN} : new double[] {m - e, m, m + e};
        }
    }

    record Row(String name, Figure figure, String unit, String ceiling, double ratio, String target, String load) {
        Row(String name, Figure figure, String unit, String ceiling, double ratio, String target) {
            this(name, figure, unit, ceiling, ratio, target, "");
        }

        Row withLoad(String l) {
            return new Row(name, figure, unit, ceiling, ratio, target, l == null ? "" : l);
        }
    }

    record Table(List<Row> rows) {
        /** Rows whose figure exceeds the ceiling they are compared with: that ceiling is not one. */
        List<String> notes() {
            List<String> n = new ArrayList<>();
            for (Row r : rows) {
                if (!r.ceiling().isEmpty() && r.ratio() > 1.0 && !r.unit().equals("ratio") && !r.unit().equals("ms")) {
                    n.add("note: '" + r.name() + "' exceeds its ceiling (" + r.ceiling() + ") by "
                            + String.format(Locale.ROOT, "%.0f%%", 100 * (r.ratio() - 1))
                            + ": within run-to-run noise if small, else that ceiling kernel underperforms");
                }
            }
            return n;
        }

        private static final String[] HEAD = {"benchmark", "figure", "unit", "ceiling", "ratio", "target", "load"};

        private static String[] cells(Row r) {
            String fig = !r.figure().present() ? "n/a"
                    : fmt(r.figure().value()) + (Double.isNaN(r.figure().error()) || r.figure().error() == 0
                    ? "" : " ± " + fmt(r.figure().error()));
            return new String[] {r.name(), fig, r.unit(), r.ceiling(),
                    Double.isNaN(r.ratio()) ? "" : String.format(Locale.ROOT, "%.3f", r.ratio()), r.target(), r.load()};
        }

        String text() {
            List<String[]> all = new ArrayList<>();
            all.add(HEAD);
            for (Row r : rows) all.add(cells(r));
            int[] w = new int[HEAD.length];
            for (String[] c : all) for (int i = 0; i < c.length; i++) w[i] = Math.max(w[i], c[i].length());
            StringBuilder sb = new StringBuilder();
            for (int k = 0; k < all.size(); k++) {
                String[] c = all.get(k);
                for (int i = 0; i < c.length; i++) {
                    boolean num = i == 1 || i == 4;
                    String cell = num && k > 0 ? pad(c[i], w[i], true) : pad(c[i], w[i], false);
                    sb.append(i == 0 ? "" : " | ").append(cell);
                }
                sb.append('\n');
                if (k == 0) {
                    for (int i = 0; i < w.length; i++) sb.append(i == 0 ? "" : "-+-").append("-".repeat(w[i]));
                    sb.append('\n');
                }
            }
            return sb.toString();
        }

        String markdown() {
            StringBuilder sb = new StringBuilder("| " + String.join(" | ", HEAD) + " |\n");
            sb.append("|---|---:|---|---|---:|---|---:|\n");
            for (Row r : rows) sb.append("| ").append(String.join(" | ", cells(r))).append(" |\n");
            return sb.toString();
        }

        private static String pad(String s, int w, boolean right) {
            String sp = " ".repeat(Math.max(0, w - s.length()));
            return right ? sp + s : s + sp;
        }
    }

    private static String fmt(double v) {
        if (Double.isNaN(v)) return "n/a";
        double a = Math.abs(v);
        String f = a >= 100 ? "%.1f" : a >= 10 ? "%.2f" : "%.3f";
        return String.format(Locale.ROOT, f, v);
    }

    private static String atLeast(double target, double ratio) {
        return ">= " + target + (Double.isNaN(ratio) ? "" : ratio >= target ? "  ok" : "  MISS");
    }

    private static String atMost(double target, double ratio) {
        return "<= " + target + (Double.isNaN(ratio) ? "" : ratio <= target ? "  ok" : "  MISS");
    }

    private static double ratio(Figure a, Figure b) {
        return a.present() && b.present() ? a.value() / b.value() : Double.NaN;
    }

    private static Table buildTable(Collection<RunResult> results, CSgemm cSgemm, Map<String, String> loads) {
        Figure fma = Figure.MISSING, copy = Figure.MISSING, sgemm = Figure.MISSING, base = Figure.MISSING,
                baseTrain = Figure.MISSING, baseMs = Figure.MISSING, adamw = Figure.MISSING, copyJdk = Figure.MISSING;
        Figure vera = Figure.MISSING, veraAdapter = Figure.MISSING, unfused = Figure.MISSING;
        Map<Integer, Figure> lora = new java.util.TreeMap<>(), adapter = new java.util.TreeMap<>();
        Figure gated = Figure.MISSING, importance = Figure.MISSING;
        Map<String, Figure> methodStep = new java.util.LinkedHashMap<>();
        Map<String, Figure> nf4 = new java.util.HashMap<>();   // Nf4Bench method -> ms
        Map<Integer, Figure> loraLayer = new java.util.TreeMap<>(), doraLayer = new java.util.TreeMap<>();
        Figure rowNorms = Figure.MISSING;
        Map<String, Figure> attention = new java.util.TreeMap<>();
        Figure vitStep = Figure.MISSING;
        Figure layerNorm = Figure.MISSING;
        Figure embedding = Figure.MISSING, bertForward = Figure.MISSING;
        Map<String, Figure> kron = new java.util.HashMap<>();   // KronBench method -> ms per call
        Map<String, Figure> miniLm = new java.util.HashMap<>();   // MiniLmBench method -> ms per batch
        Map<String, String> load = new java.util.HashMap<>(); // short benchmark label -> load1 at its end
        double T = LowRankBench.T, DI = LowRankBench.D_IN, DO = LowRankBench.D_OUT;
        for (RunResult rr : results) {
            String name = rr.getParams().getBenchmark();
            String shortName = name.startsWith(PKG) ? name.substring(PKG.length()) : name;
            Result<?> p = rr.getPrimaryResult();
            requireMs(shortName, p);
            load.put(Progress.label(rr.getParams()), loads.get(Progress.label(rr.getParams())));
            switch (shortName) {
                case "CeilingBench.fmaPeak" -> {
                    Result<?> f = rr.getSecondaryResults().get("flops");
                    if (f == null) throw new IllegalStateException("fmaPeak reported no 'flops' counter");
                    fma = new Figure(f.getScore() / GIGA, f.getScoreError() / GIGA);
                }
                case "CeilingBench.copy" -> copy = Figure.rate(p, 2.0 * 4 * CeilingBench.COPY_N);
                case "CeilingBench.copyJdk" -> copyJdk = Figure.rate(p, 2.0 * 4 * CeilingBench.COPY_N);
                case "SgemmBench.sgemm" -> sgemm = Figure.rate(p, 2.0 * SgemmBench.M * SgemmBench.N * SgemmBench.K);
                case "LowRankBench.baseFwdBwd" -> {
                    base = Figure.rate(p, 4 * T * DI * DO);
                    baseMs = Figure.millis(p);
                }
                case "LowRankBench.baseTrainableFwdBwd" -> baseTrain = Figure.rate(p, 6 * T * DI * DO);
                case "LowRankBench.loraFwdBwd" -> lora.put(Integer.parseInt(rr.getParams().getParam("r")), Figure.millis(p));
                case "LowRankBench.adapterFwdBwd" -> adapter.put(Integer.parseInt(rr.getParams().getParam("r")), Figure.millis(p));
                case "AdamwBench.adamw" -> adamw = Figure.rate(p, 7.0 * 4 * AdamwBench.N);
                case "ScaledLowRankBench.veraFwdBwd" -> vera = Figure.millis(p);
                case "ScaledLowRankBench.veraAdapterFwdBwd" -> veraAdapter = Figure.millis(p);
                case "ScaledLowRankBench.unfusedAdapterFwdBwd" -> unfused = Figure.millis(p);
                case "RankAdaptiveBench.gatedFwdBwd" -> gated = Figure.rate(p,
                        6.0 * RankAdaptiveBench.T * RankAdaptiveBench.R * 2 * RankAdaptiveBench.D);
                case "RankAdaptiveBench.importanceUpdate" -> importance = Figure.rate(p, 6.0 * 4 * RankAdaptiveBench.N);
                case "RankAdaptiveBench.methodSteps" -> methodStep.put(rr.getParams().getParam("method"), Figure.millis(p));
                case "Nf4Bench.dequantize", "Nf4Bench.gemvFp32", "Nf4Bench.gemvNf4", "Nf4Bench.gemvNf4Bnb", "Nf4Bench.gemmFp32",
                     "Nf4Bench.gemmNf4", "Nf4Bench.qloraFwdBwd" -> nf4.put(shortName.substring("Nf4Bench.".length()), Figure.millis(p));
                case "ScalingBench.loraLayerFwdBwd" -> loraLayer.put(Integer.parseInt(rr.getParams().getParam("r")), Figure.millis(p));
                case "ScalingBench.doraLayerFwdBwd" -> doraLayer.put(Integer.parseInt(rr.getParams().getParam("r")), Figure.millis(p));
                case "ScalingBench.rowNorms" -> rowNorms = Figure.rate(p, 4.0 * ScalingBench.NORM_ROWS * ScalingBench.NORM_COLS);
                case "TransformerBench.attentionFwdBwd" -> {
                    String shape = rr.getParams().getParam("shape");
                    attention.put(shape, Figure.rate(p, TransformerBench.Attention.flops(shape)));
                }
                case "TransformerBench.vitStepFwdBwd" -> vitStep = Figure.millis(p);
                case "TransformerBench.layerNormFwdBwd" -> layerNorm = Figure.rate(p,
                        TransformerBench.LN_BYTES_PER_ELEMENT * TransformerBench.LN_T * TransformerBench.LN_D);
                case "BertBench.embeddingFwdBwd" -> embedding = Figure.rate(p,
                        BertBench.EMBEDDING_BYTES_PER_ELEMENT * BertBench.B * BertBench.T * BertBench.CONFIG.hidden());
                case "BertBench.encoderForward" -> bertForward = Figure.rate(p, BertBench.encoderFlops());
                case "KronBench.kronaAdapter", "KronBench.kronaFwdBwd", "KronBench.kronaMaterialized", "KronBench.lohaFwdBwd",
                     "KronBench.lohaRebuild", "KronBench.lokrFwdBwd", "KronBench.lokrRebuild" ->
                        kron.put(shortName.substring("KronBench.".length()), Figure.millis(p));
                case "MiniLmBench.peft4jForward", "MiniLmBench.ortForward" -> miniLm.put(shortName.substring("MiniLmBench.".length()), Figure.millis(p));
                default -> System.err.println("note: no table row for " + name);
            }
        }

        List<Row> rows = new ArrayList<>();
        String fmaC = fma.present() ? "FMA peak " + fmt(fma.value()) + " GFLOP/s" : "FMA peak n/a";
        String copyC = copy.present() ? "copy " + fmt(copy.value()) + " GB/s" : "copy n/a";
        if (fma.present()) rows.add(new Row("ceiling: FMA peak (Backend.fmaPeak, all threads)", fma, "GFLOP/s", "", Double.NaN, "").withLoad(load.get("CeilingBench.fmaPeak")));
        if (copy.present()) rows.add(new Row("ceiling: copy 2x64M floats (Backend.copy)", copy, "GB/s", "", Double.NaN, "").withLoad(load.get("CeilingBench.copy")));
        if (copyJdk.present()) {
            rows.add(new Row("cross-check: same copy by JDK MemorySegment.copy (1 thread)", copyJdk, "GB/s",
                    copy.present() ? copyC : "", ratio(copyJdk, copy), "").withLoad(load.get("CeilingBench.copyJdk")));
        }
        if (sgemm.present() || cSgemm != null) {
            String dims = SgemmBench.M + "x" + SgemmBench.N + "x" + SgemmBench.K;
            rows.add(new Row("sgemm " + dims + ", Java (Backend.gemm)", sgemm, "GFLOP/s", fmaC, ratio(sgemm, fma), "").withLoad(load.get("SgemmBench.sgemm")));
            Figure c = cSgemm == null ? Figure.MISSING : new Figure(cSgemm.gflops(), Double.NaN);
            rows.add(new Row("sgemm " + dims + ", C (p4j_sgemm_bench)", c, "GFLOP/s", fmaC, ratio(c, fma), "").withLoad(loads.get("p4j_sgemm_bench")));
            double jc = ratio(sgemm, c);
            rows.add(new Row("sgemm Java / C", new Figure(jc, Double.NaN), "ratio",
                    c.present() ? "C " + fmt(c.value()) + " GFLOP/s" : (cSgemm == null ? "C not run" : cSgemm.detail()),
                    jc, atLeast(0.95, jc)));
        }
        String layer = "T=" + LowRankBench.T + " " + LowRankBench.D_IN + "->" + LowRankBench.D_OUT;
        if (base.present()) {
            rows.add(new Row("base fwd+bwd, W0 frozen (x.W0t, g.W0) " + layer, base, "GFLOP/s", fmaC, ratio(base, fma), "").withLoad(load.get("LowRankBench.baseFwdBwd")));
        }
        if (baseTrain.present()) {
            rows.add(new Row("base fwd+bwd, W0 trainable (+ gt.x) " + layer, baseTrain, "GFLOP/s", fmaC, ratio(baseTrain, fma), "").withLoad(load.get("LowRankBench.baseTrainableFwdBwd")));
        }
        if (base.present()) {
            rows.add(new Row("base fwd+bwd, W0 frozen (time)", baseMs, "ms", "", Double.NaN, ""));
        }
        String baseC = baseMs.present() ? "base " + fmt(baseMs.value()) + " ms" : "base n/a";
        for (Map.Entry<Integer, Figure> e : lora.entrySet()) {
            double q = ratio(e.getValue(), baseMs);
            rows.add(new Row("base + LoRA r=" + e.getKey() + " fwd+bwd " + layer + " (own fork)", e.getValue(), "ms",
                    baseC, q, e.getKey() == 16 ? atMost(1.05, q) : "")
                    .withLoad(load.get("LowRankBench.loraFwdBwd r=" + e.getKey())));
        }
        for (Map.Entry<Integer, Figure> e : adapter.entrySet()) {
            Figure f = e.getValue();
            rows.add(new Row("LoRA r=" + e.getKey() + " adapter alone (lowrankForward+Backward)", f, "ms", baseC,
                    ratio(f, baseMs), "").withLoad(load.get("LowRankBench.adapterFwdBwd r=" + e.getKey())));
        }
        for (Map.Entry<Integer, Figure> e : adapter.entrySet()) {
            if (!baseMs.present()) break;
            Figure f = e.getValue();
            Figure sum = new Figure(baseMs.value() + f.value(), Double.NaN);
            double q = ratio(sum, baseMs);
            rows.add(new Row("LoRA r=" + e.getKey() + " / base: (base + adapter alone) / base", new Figure(q, Double.NaN), "ratio",
                    baseC, q, e.getKey() == 16 ? atMost(1.05, q) : ""));
        }
        // VeRA r = 256 (the scaled low-rank op of VeRA and Tied-LoRA): on the base, alone, and against its unfused composition.
        String veraName = "VeRA r=" + ScaledLowRankBench.R;
        if (vera.present()) {
            double q = ratio(vera, baseMs);
            rows.add(new Row("base + " + veraName + " fwd+bwd " + layer + " (own fork)", vera, "ms", baseC, q, atMost(1.10, q))
                    .withLoad(load.get("ScaledLowRankBench.veraFwdBwd")));
        }
        if (veraAdapter.present()) {
            rows.add(new Row(veraName + " adapter alone (scaledLowrankForward+Backward)", veraAdapter, "ms", baseC, ratio(veraAdapter, baseMs), "")
                    .withLoad(load.get("ScaledLowRankBench.veraAdapterFwdBwd")));
            if (baseMs.present()) {
                double q = (baseMs.value() + veraAdapter.value()) / baseMs.value();
                rows.add(new Row(veraName + " / base: (base + adapter alone) / base", new Figure(q, Double.NaN), "ratio", baseC, q, atMost(1.10, q)));
            }
        }
        if (unfused.present()) {
            String fusedC = veraAdapter.present() ? "fused " + fmt(veraAdapter.value()) + " ms" : "fused n/a";
            double q = ratio(unfused, veraAdapter);
            rows.add(new Row(veraName + " adapter from unfused ops (gemm, mul, colsum)", unfused, "ms", fusedC, q, atLeast(1.0, q))
                    .withLoad(load.get("ScaledLowRankBench.unfusedAdapterFwdBwd")));
        }
        // ---- scaling adapters (ScalingBench) ----
        for (Map.Entry<Integer, Figure> e : loraLayer.entrySet()) {
            rows.add(new Row("Linear + LoRA r=" + e.getKey() + " fwd+bwd " + layer + " (adapter SPI)", e.getValue(), "ms", baseC,
                    ratio(e.getValue(), baseMs), "").withLoad(load.get("ScalingBench.loraLayerFwdBwd r=" + e.getKey())));
        }
        for (Map.Entry<Integer, Figure> e : doraLayer.entrySet()) {
            Figure l = loraLayer.getOrDefault(e.getKey(), Figure.MISSING);
            rows.add(new Row("Linear + DoRA r=" + e.getKey() + " fwd+bwd " + layer, e.getValue(), "ms",
                    l.present() ? "LoRA r=" + e.getKey() + " " + fmt(l.value()) + " ms" : "LoRA n/a", ratio(e.getValue(), l), "")
                    .withLoad(load.get("ScalingBench.doraLayerFwdBwd r=" + e.getKey())));
        }
        if (rowNorms.present()) {
            rows.add(new Row("row norms (DoRA), 64M floats read", rowNorms, "GB/s", copyC, ratio(rowNorms, copy), "")
                    .withLoad(load.get("ScalingBench.rowNorms")));
        }
        rows.addAll(KronBench.rows(kron, baseMs, fma, load));
        rows.addAll(MiniLmBench.rows(miniLm, load));
        if (adamw.present()) {
            double q = ratio(adamw, copy);
            rows.add(new Row("AdamW step, 16M floats (7x4 B/elem)", adamw, "GB/s", copyC, q, atLeast(0.70, q)).withLoad(load.get("AdamwBench.adamw")));
        }
        if (gated.present()) {
            rows.add(new Row("gated low-rank fwd+bwd (AdaLoRA/SoRA) r=" + RankAdaptiveBench.R + " " + layer, gated, "GFLOP/s", fmaC,
                    ratio(gated, fma), "").withLoad(load.get("RankAdaptiveBench.gatedFwdBwd")));
        }
        if (importance.present()) {
            double q = ratio(importance, copy);
            rows.add(new Row("AdaLoRA importance EMA update, 16M floats (6x4 B/elem)", importance, "GB/s", copyC, q, "")
                    .withLoad(load.get("RankAdaptiveBench.importanceUpdate")));
        }
        Figure loraStep = methodStep.getOrDefault("lora", Figure.MISSING);
        String loraStepC = loraStep.present() ? "LoRA " + fmt(loraStep.value() / RankAdaptiveBench.STEPS) + " ms/step" : "LoRA n/a";
        for (Map.Entry<String, Figure> e : methodStep.entrySet()) {
            Figure perStep = new Figure(e.getValue().value() / RankAdaptiveBench.STEPS, e.getValue().error() / RankAdaptiveBench.STEPS);
            rows.add(new Row(e.getKey() + " training step, demo MLP r=8 batch 128 (callbacks included)", perStep, "ms", loraStepC,
                    ratio(e.getValue(), loraStep), "").withLoad(load.get("RankAdaptiveBench.methodSteps method=" + e.getKey())));
        }
        nf4Rows(rows, nf4, copy, baseMs, load);
        String sgemmC = sgemm.present() ? "sgemm " + fmt(sgemm.value()) + " GFLOP/s" : "sgemm n/a";
        for (Map.Entry<String, Figure> e : attention.entrySet()) {
            rows.add(new Row("attention fwd+bwd fused, b x t x heads x dh = " + e.getKey(), e.getValue(), "GFLOP/s", sgemmC,
                    ratio(e.getValue(), sgemm), "").withLoad(load.get("TransformerBench.attentionFwdBwd shape=" + e.getKey())));
        }
        if (vitStep.present()) {
            rows.add(new Row("ViT demo step fwd+bwd (all trainable), batch " + TransformerBench.Vit.BATCH, vitStep, "ms", "", Double.NaN, "")
                    .withLoad(load.get("TransformerBench.vitStepFwdBwd")));
        }
        if (layerNorm.present()) {
            rows.add(new Row("LayerNorm fwd+bwd, 65536 x 64 (28 B/elem)", layerNorm, "GB/s", copyC, ratio(layerNorm, copy), "")
                    .withLoad(load.get("TransformerBench.layerNormFwdBwd")));
        }
        if (embedding.present()) {
            rows.add(new Row("token embedding lookup fwd+bwd, " + BertBench.B * BertBench.T + " ids of a 30522 x 384 table (20 B/elem)",
                    embedding, "GB/s", copyC, ratio(embedding, copy), "").withLoad(load.get("BertBench.embeddingFwdBwd")));
        }
        if (bertForward.present()) {
            rows.add(new Row("BERT encoder forward (all-MiniLM-L6-v2 sizes), " + BertBench.B + " x " + BertBench.T + " tokens, mean pool + L2",
                    bertForward, "GFLOP/s", sgemmC, ratio(bertForward, sgemm), "").withLoad(load.get("BertBench.encoderForward")));
        }
        return new Table(rows);
    }

    /** NF4 (Nf4Bench, 4096x4096, block 64): dequantize against copy, fused matmuls against fp32, QLoRA against the base. */
    private static void nf4Rows(List<Row> rows, Map<String, Figure> nf4, Figure copy, Figure baseMs, Map<String, String> load) {
        double n = (double) Nf4Bench.D * Nf4Bench.D;
        Figure deq = nf4.get("dequantize");
        if (deq != null) {
            Figure gbs = new Figure(4 * n / (deq.value() * 1e-3) / GIGA, Double.NaN);
            double q = ratio(gbs, copy);
            rows.add(new Row("NF4 dequantize 4096x4096 -> F32 (GB/s written)", gbs, "GB/s",
                    copy.present() ? "copy " + fmt(copy.value()) + " GB/s" : "copy n/a", q, atLeast(0.80, q)).withLoad(load.get("Nf4Bench.dequantize")));
        }
        Figure gv = nf4.get("gemvNf4"), gvf = nf4.get("gemvFp32");
        if (gv != null && gvf != null) {
            double speedup = gvf.value() / gv.value();
            rows.add(new Row("NF4 fused matmul T=1 4096x4096", gv, "ms", "fp32 GEMV " + fmt(gvf.value()) + " ms", speedup,
                    atLeast(4.0, speedup) + " (fp32/NF4 time)").withLoad(load.get("Nf4Bench.gemvNf4")));
        }
        Figure gvb = nf4.get("gemvNf4Bnb");
        if (gvb != null && gvf != null) {  // the same product on bitsandbytes' layout, for comparison
            rows.add(new Row("NF4 fused matmul T=1 4096x4096 (bnb layout)", gvb, "ms", "fp32 GEMV " + fmt(gvf.value()) + " ms",
                    gvf.value() / gvb.value(), "(fp32/NF4 time)").withLoad(load.get("Nf4Bench.gemvNf4Bnb")));
        }
        Figure gm = nf4.get("gemmNf4"), gmf = nf4.get("gemmFp32");
        if (gm != null && gmf != null) {
            double q = gm.value() / gmf.value();
            rows.add(new Row("NF4 fused matmul T=512 4096x4096", gm, "ms", "fp32 GEMM " + fmt(gmf.value()) + " ms", q,
                    atMost(1.2, q)).withLoad(load.get("Nf4Bench.gemmNf4")));
        }
        Figure ql = nf4.get("qloraFwdBwd");
        if (ql != null) {
            double q = baseMs.present() ? ql.value() / baseMs.value() : Double.NaN;
            rows.add(new Row("QLoRA r=16 fwd+bwd T=512 4096->4096 (NF4 base)", ql, "ms",
                    baseMs.present() ? "fp32 base " + fmt(baseMs.value()) + " ms" : "base n/a (run LowRank too)", q, "")
                    .withLoad(load.get("Nf4Bench.qloraFwdBwd")));
        }
    }

    private static void requireMs(String name, Result<?> r) {
        String u = r.getScoreUnit();
        if (!u.equals("ms/op") && !u.equals("ops/s")) {
            throw new IllegalStateException(name + ": unexpected unit " + u + " (expected ms/op or ops/s)");
        }
    }

    // ---- run facts ----

    /** The 1-minute load average now (this machine is shared: high values mean noisy figures). */
    static String load1() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+")[0];
        } catch (IOException | RuntimeException e) {
            return "n/a";
        }
    }

    private static String loadAverage() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return String.join(" ", Arrays.copyOf(f, 3));
        } catch (IOException | RuntimeException e) {
            return "n/a";
        }
    }

    private static List<String> header(boolean quick, String loadBefore, String loadAfter) {
        List<String> h = new ArrayList<>();
        h.add("date: " + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm")) + (quick ? "  (QUICK smoke run: figures are rough)" : ""));
        h.add("cpu: " + cpuModel() + ", " + Runtime.getRuntime().availableProcessors() + " logical cores");
        try {
            var a = Backend.available();
            h.add("peft4j: " + a.threads() + " threads, features " + String.join(" ", a.cpuFeatures()) + "; " + a.buildInfo());
        } catch (Throwable t) {
            h.add("peft4j: availability probe failed: " + t);
        }
        h.add("java: " + System.getProperty("java.vm.name") + " " + System.getProperty("java.version"));
        h.add("figures: timed cases = median call (JMH SampleTime) ± half the interquartile range; FMA peak = mean"
                + " ± JMH 99.9% error; the C sgemm = median of its timed calls");
        h.add("load average (1/5/15 min): before " + loadBefore + ", after " + loadAfter + "; column 'load' = 1-min load"
                + " average as each benchmark ended (" + Runtime.getRuntime().availableProcessors()
                + " cores: above ~" + (Runtime.getRuntime().availableProcessors() + 0.5) + " other work competed)");
        return h;
    }

    private static String cpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) return line.substring(line.indexOf(':') + 1).trim();
            }
        } catch (IOException | RuntimeException e) {
            // fall through
        }
        return System.getProperty("os.arch");
    }

    // ---- progress ----

    /**
     * Passes JMH's output on (to the log, or to the console with -v), prints one line per
     * finished benchmark when {@code out} is set, and runs {@code afterSgemm} after the sgemm.
     */
    private static final class Progress implements OutputFormat {
        private final OutputFormat log;
        private final PrintStream out;
        private final Runnable afterSgemm;
        private final Map<String, String> loads;
        private long start;

        Progress(OutputFormat log, PrintStream out, Runnable afterSgemm, Map<String, String> loads) {
            this.log = log;
            this.out = out;
            this.afterSgemm = afterSgemm;
            this.loads = loads;
        }

        static String label(BenchmarkParams p) {
            String n = p.getBenchmark();
            n = n.startsWith(PKG) ? n.substring(PKG.length()) : n;
            StringBuilder sb = new StringBuilder(n);
            for (String k : p.getParamsKeys()) sb.append(' ').append(k).append('=').append(p.getParam(k));
            return sb.toString();
        }

        @Override public void iteration(BenchmarkParams b, IterationParams i, int n) { log.iteration(b, i, n); }
        @Override public void iterationResult(BenchmarkParams b, IterationParams i, int n, IterationResult r) { log.iterationResult(b, i, n, r); }

        @Override
        public void startBenchmark(BenchmarkParams p) {
            log.startBenchmark(p);
            start = System.nanoTime();
            if (out != null) {
                out.print("  " + label(p) + " ... ");
                out.flush();
            }
        }

        @Override
        public void endBenchmark(BenchmarkResult r) {
            log.endBenchmark(r);
            String load = load1();
            if (r != null) loads.put(label(r.getParams()), load);
            if (out != null) {
                if (r == null) {
                    out.println("FAILED (see log)");
                } else {
                    Result<?> p = r.getPrimaryResult();
                    boolean sampled = p instanceof org.openjdk.jmh.results.SampleTimeResult;
                    out.printf(Locale.ROOT, "%s%.4g %s  (%.0f s, load %s)%n", sampled ? "median " : "",
                            sampled ? p.getStatistics().getPercentile(50) : p.getScore(), p.getScoreUnit(),
                            (System.nanoTime() - start) / 1e9, load);
                }
            }
            if (r != null && r.getParams().getBenchmark().equals(PKG + "SgemmBench.sgemm")) afterSgemm.run();
        }

        @Override public void startRun() { log.startRun(); }
        @Override public void endRun(Collection<RunResult> r) { log.endRun(r); }
        @Override public void print(String s) { log.print(s); }
        @Override public void println(String s) { log.println(s); }
        @Override public void flush() { log.flush(); out.flush(); }
        @Override public void close() { log.close(); }
        @Override public void verbosePrintln(String s) { log.verbosePrintln(s); }
        @Override public void write(int b) { log.write(b); }
        @Override public void write(byte[] b) throws IOException { log.write(b); }
    }
}
