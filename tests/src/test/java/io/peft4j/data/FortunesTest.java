package io.peft4j.data;

import static io.peft4j.variants.TestSupport.assertThrowsNaming;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.data.Fortunes.Example;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FortunesTest {

    private static void assumeInstalled() {
        // .ci/setup installs the package; a machine without it fails here rather than skipping.
        assertTrue(Files.isRegularFile(Fortunes.DEBIAN_DIR.resolve("riddles")),
                "Debian package fortunes is not installed (run .ci/setup)");
    }

    /** Writes the seven category files into {@code dir}, the given contents for the first ones, one fortune for the rest. */
    private static void write(Path dir, String... contents) throws IOException {
        for (int i = 0; i < Fortunes.CATEGORIES.size(); i++) {
            String content = i < contents.length ? contents[i] : "only fortune of " + Fortunes.CATEGORIES.get(i) + "\n%\n";
            Files.writeString(dir.resolve(Fortunes.CATEGORIES.get(i)), content, StandardCharsets.UTF_8);
        }
    }

    private static List<Example> all(Fortunes f) {
        List<Example> all = new ArrayList<>(f.train());
        all.addAll(f.test());
        return all;
    }

    // ---- the installed package ----

    @Test
    void theInstalledFilesGiveStableCountsAndSplits() {
        assumeInstalled();
        Fortunes f = Fortunes.load();
        assertEquals(List.of("computers", "science", "literature", "food", "love", "sports", "riddles"), f.categories());
        // counted independently by a short Python script applying the documented rules: %-separated,
        // backspaces applied, white space collapsed, duplicates dropped, FNV-1a-32 of the UTF-8 text
        // mod 5 == 0 -> test
        assertArrayEquals(new int[] {858, 479, 223, 159, 116, 119, 102}, Fortunes.countsPerLabel(f.train()));
        assertArrayEquals(new int[] {193, 146, 39, 39, 34, 28, 26}, Fortunes.countsPerLabel(f.test()));
        assertEquals(2056, f.train().size());
        assertEquals(505, f.test().size());
        // a second load gives the same lists
        Fortunes again = Fortunes.load(Fortunes.DEBIAN_DIR);
        assertEquals(f.train(), again.train());
        assertEquals(f.test(), again.test());
    }

    @Test
    void theSplitsAreDisjointCleanAndFollowTheHashRule() {
        assumeInstalled();
        Fortunes f = Fortunes.load();
        Set<String> train = f.train().stream().map(Example::text).collect(Collectors.toSet());
        Set<String> test = f.test().stream().map(Example::text).collect(Collectors.toSet());
        assertEquals(f.train().size(), train.size(), "no duplicate within train");
        assertEquals(f.test().size(), test.size(), "no duplicate within test");
        assertTrue(Collections.disjoint(train, test));
        for (Example e : f.train()) {
            assertFalse(Fortunes.isTest(e.text()));
        }
        for (Example e : f.test()) {
            assertTrue(Fortunes.isTest(e.text()));
        }
        for (Example e : all(f)) {
            assertEquals(e.text().strip(), e.text());
            assertFalse(e.text().contains("\n") || e.text().contains("\t") || e.text().contains("  ") || e.text().contains("\b"),
                    "white space collapsed, backspaces applied: " + e.text());
        }
        double testShare = f.test().size() / (double) (f.train().size() + f.test().size());
        assertTrue(testShare > 0.17 && testShare < 0.23, "about 20% test: " + testShare);
    }

    @Test
    void labelsAreTheCategoryOfTheFileAFortuneComesFrom() {
        assumeInstalled();
        List<Example> all = all(Fortunes.load());
        assertEquals(6, labelOf(all, "Q: Why was Stonehenge abandoned? A: It wasn't IBM compatible."), "riddles");
        assertEquals(0, labelOf(all, "Calm down, it's *only* ones and zeroes."), "computers, with its underline applied");
        for (int label = 0; label < Fortunes.CATEGORIES.size(); label++) {
            String first = firstFortune(Fortunes.DEBIAN_DIR.resolve(Fortunes.CATEGORIES.get(label)));
            assertEquals(label, labelOf(all, first), Fortunes.CATEGORIES.get(label));
        }
    }

    /** The label of the one example whose text starts with {@code prefix}. */
    private static int labelOf(List<Example> all, String prefix) {
        List<Example> hits = all.stream().filter(e -> e.text().startsWith(prefix)).toList();
        assertEquals(1, hits.size(), "examples starting with: " + prefix);
        return hits.get(0).label();
    }

    /** The first fortune of a file, read with nothing but a line scan. */
    private static String firstFortune(Path file) {
        try {
            List<String> lines = Files.readAllLines(file);
            return String.join(" ", lines.subList(0, lines.indexOf("%"))).replaceAll("\\s+", " ").strip();
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    // ---- hand-made files ----

    @Test
    void separatorsEmptyEntriesWhiteSpaceBackspacesAndDuplicates(@TempDir Path dir) throws IOException {
        write(dir,
                // computers: leading separator, empty and blank entries, CRLF lines, tabs, a backspace
                // underline, a duplicate, a '%' that is not alone on its line, no final separator
                "%\nFirst  line\n\tsecond line\n%\n%\n   \n\t\n%\r\nwin\r\ndows\r\n%\r\n*___\b\b\bnot*\n%\n"
                        + "First line second line\n%\n50% off\n%\nlast one",
                // science: repeats a computers text (dropped: computers comes first) and itself
                "last one\n%\nscience\n%\nscience\n%\n");
        Fortunes f = Fortunes.load(dir);
        List<Example> computers = all(f).stream().filter(e -> e.label() == 0).toList();
        assertEquals(Set.of("First line second line", "win dows", "*not*", "50% off", "last one"),
                computers.stream().map(Example::text).collect(Collectors.toSet()));
        assertEquals(List.of(new Example("science", 1)), all(f).stream().filter(e -> e.label() == 1).toList());
        int[] counts = Fortunes.countsPerLabel(all(f));
        assertArrayEquals(new int[] {5, 1, 1, 1, 1, 1, 1}, counts);
        // each split keeps file order
        List<String> order = List.of("First line second line", "win dows", "*not*", "50% off", "last one");
        for (List<Example> split : List.of(f.train(), f.test())) {
            List<String> texts = split.stream().filter(e -> e.label() == 0).map(Example::text).toList();
            assertEquals(order.stream().filter(texts::contains).toList(), texts);
        }
    }

    @Test
    void theSplitOfATextDoesNotDependOnTheOrderOfTheFiles(@TempDir Path dir) throws IOException {
        List<String> texts = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            texts.add("fortune number " + i + " says " + Integer.toHexString(i * 7919));
        }
        write(dir, String.join("\n%\n", texts));
        Fortunes original = Fortunes.load(dir);
        Collections.shuffle(texts, new Random(5));
        texts.add(0, "a new fortune at the front");
        write(dir, String.join("\n%\n", texts));
        Fortunes shuffled = Fortunes.load(dir);
        Set<String> testBefore = original.test().stream().map(Example::text).collect(Collectors.toSet());
        Set<String> testAfter = new HashSet<>(shuffled.test().stream().map(Example::text).toList());
        testAfter.remove("a new fortune at the front");
        assertEquals(testBefore, testAfter);
        long inTest = original.test().stream().filter(e -> e.label() == 0).count();
        assertTrue(inTest > 20 && inTest < 60, "about 40 of 200 in test: " + inTest);
    }

    @Test
    void fnv1aMatchesThePublishedTestVectors() {
        // FNV-1a 32-bit test vectors (Fowler, Noll, Vo): "", "a", "foobar"
        assertEquals(0x811C9DC5, Fortunes.fnv1a32(new byte[0]));
        assertEquals(0xE40C292C, Fortunes.fnv1a32("a".getBytes(StandardCharsets.UTF_8)));
        assertEquals(0xBF9CF968, Fortunes.fnv1a32("foobar".getBytes(StandardCharsets.UTF_8)));
        // 0xE40C292C = 3826002220 = 5 * 765200444: "a" is a test text, "foobar" (3214735720 % 5 = 0) too, "b" not
        assertTrue(Fortunes.isTest("a"));
        assertTrue(Fortunes.isTest("foobar"));
        assertEquals(Integer.toUnsignedLong(Fortunes.fnv1a32("b".getBytes(StandardCharsets.UTF_8))) % 5 == 0, Fortunes.isTest("b"));
    }

    // ---- what is missing ----

    @Test
    void aMissingDirectoryOrFileSaysToInstallThePackage(@TempDir Path dir) throws IOException {
        Path nowhere = dir.resolve("nowhere");
        assertThrowsNaming(IllegalArgumentException.class, () -> Fortunes.load(nowhere),
                nowhere.toString(), "apt-get install fortunes");
        write(dir);
        Files.delete(dir.resolve("sports"));
        assertThrowsNaming(IllegalArgumentException.class, () -> Fortunes.load(dir),
                dir.resolve("sports").toString(), "install Debian's fortunes package");
    }

    @Test
    void aFileThatIsNotUtf8IsNamed(@TempDir Path dir) throws IOException {
        write(dir);
        Files.write(dir.resolve("love"), new byte[] {'l', 'o', (byte) 0xE9, 'v', 'e'});
        assertThrowsNaming(IllegalArgumentException.class, () -> Fortunes.load(dir), dir.resolve("love").toString(), "UTF-8");
    }
}
