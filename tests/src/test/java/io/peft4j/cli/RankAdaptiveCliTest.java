package io.peft4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The rank-adaptive methods through the command line with no method-specific code but the
 * rank sweep: DyLoRA's eval --rank-sweep prints accuracy at every rank and charts it; AdaLoRA and
 * SoRA train, report their final ranks and save adapters that evaluate.
 */
class RankAdaptiveCliTest {
    @TempDir
    static Path tmp;

    static String[] args(String... a) {
        List<String> l = new ArrayList<>(List.of(a));
        l.addAll(List.of("--limit", "600", "--no-progress", "--cache", tmp.resolve("cache").toString()));
        return l.toArray(String[]::new);
    }

    @Test
    void dyloraTrainsAndTheRankSweepPrintsEveryRankAndWritesTheChart() {
        Path out = tmp.resolve("dy");
        Cli.Run train = Cli.run(args("train", "--variant", "dylora", "--rank", "3", "--epochs", "1", "--out", out.toString()));
        assertEquals(0, train.code(), train.out() + train.err());
        assertTrue(train.out().contains("dylora: steps trained at each rank b (max r 3): 1="), train.out());
        Cli.Run plain = Cli.run(args("eval", "--adapter", out.toString()));
        assertEquals(0, plain.code(), plain.out() + plain.err());
        Cli.Run sweep = Cli.run(args("eval", "--adapter", out.toString(), "--rank-sweep"));
        assertEquals(0, sweep.code(), sweep.out() + sweep.err());
        Matcher m = Pattern.compile("(?m)^\\s+(\\d)\\s+(0\\.\\d{4}|1\\.0000)$").matcher(sweep.out());
        List<String> rows = new ArrayList<>();
        while (m.find()) rows.add(m.group(1) + " " + m.group(2));
        assertEquals(3, rows.size(), sweep.out());
        assertTrue(rows.get(0).startsWith("1 ") && rows.get(2).startsWith("3 "), rows.toString());
        assertTrue(plain.last().endsWith(rows.get(2).substring(2)), "rank r is the adapter's plain evaluation: " + plain.last() + " vs " + rows);
        assertTrue(Files.isRegularFile(out.resolve("rank_sweep.png")), sweep.out());
        Path chart = tmp.resolve("chart.png");
        assertEquals(0, Cli.run(args("eval", "--adapter", out.toString(), "--rank-sweep", "--chart", chart.toString())).code());
        assertTrue(Files.isRegularFile(chart));
    }

    @Test
    void theRankSweepRefusesAnAdapterThatIsNotDylora() {
        Path out = tmp.resolve("lora");
        assertEquals(0, Cli.run(args("train", "--variant", "lora", "--rank", "2", "--epochs", "1", "--out", out.toString())).code());
        Cli.Run sweep = Cli.run(args("eval", "--adapter", out.toString(), "--rank-sweep"));
        assertEquals(2, sweep.code());
        assertTrue(sweep.err().contains("needs a DyLoRA adapter") && sweep.err().contains("LORA"), sweep.err());
        Cli.Run noAdapter = Cli.run(args("eval", "--rank-sweep"));
        assertEquals(2, noAdapter.code());
        assertTrue(noAdapter.err().contains("--rank-sweep needs --adapter"), noAdapter.err());
    }

    @Test
    void adaloraAndSoraTrainThroughTheCliAndReportTheirFinalRanks() {
        Path ada = tmp.resolve("ada");
        Cli.Run a = Cli.run(args("train", "--variant", "adalora", "--set", "init_r=4", "--set", "target_r=2", "--set", "tinit=1",
                "--set", "tfinal=1", "--epochs", "1", "--out", ada.toString()));
        assertEquals(0, a.code(), a.out() + a.err());
        assertTrue(a.out().contains("adalora: final ranks (kept triplets per layer, init_r 4): fc1="), a.out());
        assertTrue(Cli.readJson(ada.resolve("adapter/adapter_config.json")).get("rank_pattern") instanceof java.util.Map, "rank_pattern saved");
        assertEquals(0, Cli.run(args("eval", "--adapter", ada.toString())).code());
        Path sora = tmp.resolve("sora");
        Cli.Run s = Cli.run(args("train", "--variant", "sora", "--epochs", "1", "--out", sora.toString()));
        assertEquals(0, s.code(), s.out() + s.err());
        assertTrue(s.out().contains("sora: surviving ranks per layer (non-zero gates of 8): fc1="), s.out());
        assertEquals(0, Cli.run(args("eval", "--adapter", sora.toString())).code());
    }

    @Test
    void compareShowsEachRankAdaptiveMethodsFinalRanksInItsTable() throws java.io.IOException {
        Path out = tmp.resolve("cmp");
        Cli.Run c = Cli.run(args("compare", "--variants", "lora,adalora", "--epochs", "1", "--out", out.toString()));
        assertEquals(0, c.code(), c.out() + c.err());
        assertTrue(c.out().contains("| final ranks |"), c.out());
        String report = "adalora: final ranks (kept triplets per layer, init_r 12): ";
        int at = c.out().indexOf(report);
        assertTrue(at > 0, c.out());
        // The report line names each layer's rank; the table's column lists the same ranks in layer order.
        Matcher m = Pattern.compile("fc1=(\\d+), fc2=(\\d+), fc3=(\\d+)").matcher(c.out().substring(at + report.length()));
        assertTrue(m.lookingAt(), c.out());
        String column = m.group(1) + "/" + m.group(2) + "/" + m.group(3);
        String adaloraRow = c.out().lines().filter(l -> l.startsWith("| adalora ")).findFirst().orElseThrow();
        assertTrue(adaloraRow.endsWith("| " + String.format("%-11s", column) + " |"), adaloraRow);
        String loraRow = c.out().lines().filter(l -> l.startsWith("| lora ")).findFirst().orElseThrow();
        assertTrue(loraRow.endsWith("| -           |"), loraRow);
        String jsonl = Files.readString(out.resolve("compare.jsonl"));
        assertTrue(jsonl.contains("\"final_ranks\":{\"fc1\":" + m.group(1) + ",\"fc2\":" + m.group(2) + ",\"fc3\":" + m.group(3) + "}"), jsonl);
    }

    /**
     * A SeLoRA run whose layers grew resumes with the grown ranks, both when it was interrupted
     * (its run.json still records the starting config, init_r) and when it finished.
     */
    @Test
    @SuppressWarnings("unchecked")
    void aSeloraRunWhoseRanksGrewResumesWithTheGrownRanks() throws java.io.IOException {
        Path out = tmp.resolve("selora");
        Cli.Run first = Cli.run(args("train", "--variant", "selora", "--set", "expand_step=1", "--set", "expand_threshold=0",
                "--epochs", "1", "--out", out.toString()));
        assertEquals(0, first.code(), first.out() + first.err());
        Map<String, Object> grown = (Map<String, Object>) Cli.readJson(out.resolve("adapter/adapter_config.json")).get("rank_pattern");
        assertTrue(grown != null && !grown.isEmpty() && grown.values().stream().allMatch(r -> ((Number) r).intValue() > 1),
                "every layer grew past init_r 1: " + grown);
        // What an interruption after epoch 1's checkpoint leaves: the partial directory whose run.json is the one
        // written at the start (the config without rank_pattern) beside the checkpoint of grown tensors.
        Path partial = RunDir.partialOf(out);
        try (var files = Files.walk(out)) {
            for (Path p : files.toList()) {
                if (Files.isRegularFile(p) && !p.startsWith(out.resolve("adapter"))) {
                    Files.createDirectories(partial.resolve(out.relativize(p).toString()).getParent());
                    Files.copy(p, partial.resolve(out.relativize(p).toString()));
                }
            }
        }
        Map<String, Object> record = Cli.readJson(partial.resolve(RunDir.MARKER));
        ((Map<String, Object>) record.get("adapter_config")).remove("rank_pattern");
        record.remove("accuracy");
        Files.writeString(partial.resolve(RunDir.MARKER), new ObjectMapper().writeValueAsString(record));

        Cli.Run interrupted = Cli.run(args("train", "--resume", out.toString(), "--epochs", "2"));
        assertEquals(0, interrupted.code(), interrupted.out() + interrupted.err());
        assertTrue(interrupted.out().contains("epoch 2:") && !interrupted.out().contains("epoch 1:"), interrupted.out());
        assertKeepsGrownRanks(grown, out);
        assertTrue(Files.notExists(partial), "the resumed run was moved into place");

        Cli.Run finished = Cli.run(args("train", "--resume", out.toString(), "--epochs", "3"));
        assertEquals(0, finished.code(), finished.out() + finished.err());
        assertTrue(finished.out().contains("epoch 3:") && !finished.out().contains("epoch 2:"), finished.out());
        assertKeepsGrownRanks(grown, out);
        assertEquals(0, Cli.run(args("eval", "--adapter", out.toString())).code());
    }

    @SuppressWarnings("unchecked")
    private static void assertKeepsGrownRanks(Map<String, Object> grown, Path out) {
        Map<String, Object> after = (Map<String, Object>) Cli.readJson(out.resolve("adapter/adapter_config.json")).get("rank_pattern");
        grown.forEach((layer, r) -> assertTrue(after != null && ((Number) after.get(layer)).intValue() >= ((Number) r).intValue(),
                layer + " kept its grown rank " + r + ": " + after));
    }
}
