package io.peft4j.data;

import io.peft4j.io.IoErrors;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * A text classification data set from Debian's {@code fortunes} package: which file a fortune comes
 * from, among {@link #CATEGORIES} ({@code computers, science, literature, food, love, sports,
 * riddles}; the label is the index in that list).
 *
 * <p>How the files become examples, all of it deterministic:
 * <ul>
 *   <li>each file is read as UTF-8; fortunes are separated by lines holding only {@code %};</li>
 *   <li>a backspace deletes the character before it (the files underline words by overstriking,
 *       {@code ___\b\b\bnot}, which a terminal shows as {@code not});</li>
 *   <li>every run of white space, newlines included, becomes a single space, and the text is
 *       trimmed; empty fortunes are dropped;</li>
 *   <li>a text seen before (in the same file or in an earlier category) is dropped: the first one,
 *       in category order then file order, is kept;</li>
 *   <li>the split depends on the text alone, not on its position: a text goes to the test split when
 *       the 32-bit FNV-1a hash of its UTF-8 bytes, read as unsigned, is divisible by 5 (about 20%),
 *       else to the training split ({@link #isTest(String)}). Reordering or adding fortunes moves no
 *       other text from one split to the other.</li>
 * </ul>
 * Both splits keep the categories' order, then the files' order.
 */
public final class Fortunes {

    /** Where Debian's {@code fortunes} package installs the files. */
    public static final Path DEBIAN_DIR = Path.of("/usr/share/games/fortunes");

    /** The categories (file names) in label order. */
    public static final List<String> CATEGORIES = List.of("computers", "science", "literature", "food", "love", "sports", "riddles");

    /** One fortune: its text (white space collapsed) and its category's index in {@link #CATEGORIES}. */
    public record Example(String text, int label) {
        public Example {
            if (text == null || text.isEmpty() || label < 0 || label >= CATEGORIES.size()) {
                throw new IllegalArgumentException("Fortunes.Example: text must not be empty and label must be in 0.."
                        + (CATEGORIES.size() - 1) + ", got label " + label);
            }
        }
    }

    private final List<Example> train;
    private final List<Example> test;

    private Fortunes(List<Example> train, List<Example> test) {
        this.train = Collections.unmodifiableList(train);
        this.test = Collections.unmodifiableList(test);
    }

    /** {@link #load(Path)} from {@link #DEBIAN_DIR}. */
    public static Fortunes load() {
        return load(DEBIAN_DIR);
    }

    /**
     * Reads the seven category files from {@code dir}.
     *
     * @throws IllegalArgumentException if the directory or a file is missing (the message says to
     *                                  install the {@code fortunes} package) or a file is not UTF-8
     * @throws java.io.UncheckedIOException for other I/O failures
     */
    public static Fortunes load(Path dir) {
        if (dir == null) {
            throw new IllegalArgumentException("Fortunes.load: dir must not be null");
        }
        if (!Files.isDirectory(dir)) {
            throw new IllegalArgumentException("fortunes not found: no directory " + dir + INSTALL);
        }
        List<Example> train = new ArrayList<>();
        List<Example> test = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        for (int label = 0; label < CATEGORIES.size(); label++) {
            Path file = dir.resolve(CATEGORIES.get(label));
            if (!Files.isRegularFile(file)) {
                throw new IllegalArgumentException("fortunes not found: no file " + file + INSTALL);
            }
            String content;
            try {
                // a strict decoder: a byte that is not UTF-8 is an error, not a silent U+FFFD
                content = StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(Files.readAllBytes(file))).toString();
            } catch (CharacterCodingException e) {
                throw new IllegalArgumentException("fortunes file " + file + " is not valid UTF-8", e);
            } catch (IOException e) {
                throw IoErrors.unchecked("read", file, e);
            }
            for (String text : split(content)) {
                if (seen.add(text)) {
                    (isTest(text) ? test : train).add(new Example(text, label));
                }
            }
        }
        return new Fortunes(train, test);
    }

    private static final String INSTALL = " (install Debian's fortunes package: apt-get install fortunes)";

    /** The cleaned, non-empty fortunes of one file's content, in order (duplicates kept). */
    static List<String> split(String content) {
        List<String> out = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        for (String line : content.split("\n", -1)) {
            String l = line.endsWith("\r") ? line.substring(0, line.length() - 1) : line;
            if (l.equals("%")) {
                add(out, current);
                current.setLength(0);
            } else {
                current.append(l).append('\n');
            }
        }
        add(out, current);
        return out;
    }

    private static void add(List<String> out, CharSequence raw) {
        String text = clean(raw);
        if (!text.isEmpty()) {
            out.add(text);
        }
    }

    /** Applies backspaces, collapses white space runs to one space, trims. */
    static String clean(CharSequence raw) {
        StringBuilder sb = new StringBuilder(raw.length());
        for (int i = 0; i < raw.length(); i++) {
            char c = raw.charAt(i);
            if (c == '\b') {
                if (!sb.isEmpty()) {
                    sb.setLength(sb.length() - 1);
                }
            } else {
                sb.append(c);
            }
        }
        return sb.toString().replaceAll("\\s+", " ").strip();
    }

    /** Whether {@code text} belongs to the test split: FNV-1a-32 of its UTF-8 bytes, unsigned, divisible by 5. */
    public static boolean isTest(String text) {
        return Integer.toUnsignedLong(fnv1a32(text.getBytes(StandardCharsets.UTF_8))) % 5 == 0;
    }

    /** The 32-bit FNV-1a hash (offset basis 0x811C9DC5, prime 0x01000193). */
    static int fnv1a32(byte[] bytes) {
        int h = 0x811C9DC5;
        for (byte b : bytes) {
            h ^= b & 0xFF;
            h *= 0x01000193;
        }
        return h;
    }

    /** The training split (about 80%). */
    public List<Example> train() {
        return train;
    }

    /** The test split (about 20%). */
    public List<Example> test() {
        return test;
    }

    /** {@link #CATEGORIES}: the class names in label order. */
    public List<String> categories() {
        return CATEGORIES;
    }

    /** The number of examples of each label in {@code examples}. */
    public static int[] countsPerLabel(List<Example> examples) {
        int[] counts = new int[CATEGORIES.size()];
        for (Example e : examples) {
            counts[e.label()]++;
        }
        return counts;
    }
}
