package io.peft4j.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import io.peft4j.data.Fortunes;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * BertTokenizer against Hugging Face's own tokenizers library (Rust, through DJL's binding), on
 * all-MiniLM-L6-v2's real tokenizer.json: every fortune of every category, then strings made to
 * break a tokenizer, at several truncation lengths, one by one and as padded batches.
 */
class BertTokenizerHfTest {

    /** The tokenizer.json at the root of the langchain4j all-MiniLM-L6-v2 jar. */
    static final String RESOURCE = "/all-minilm-l6-v2-tokenizer.json";

    @TempDir
    static Path dir;
    static Path json;
    static BertTokenizer ours;
    static HuggingFaceTokenizer hfFull;

    @BeforeAll
    static void load() throws IOException {
        // DJL copies its bundled native library out of its jar into a cache directory; keep that
        // inside the build, and forbid any download (offline mode also pins the CPU build, which is
        // the one in the jar).
        System.setProperty("DJL_CACHE_DIR", Path.of("target", "djl-cache").toAbsolutePath().toString());
        System.setProperty("ai.djl.offline", "true");
        System.setProperty("RUST_FLAVOR", "cpu");
        json = dir.resolve("tokenizer.json");
        try (InputStream in = BertTokenizerHfTest.class.getResourceAsStream(RESOURCE)) {
            assertTrue(in != null, RESOURCE + " is not on the class path (the langchain4j all-MiniLM-L6-v2 jar)");
            Files.copy(in, json, StandardCopyOption.REPLACE_EXISTING);
        }
        ours = BertTokenizer.fromJson(json);
        hfFull = hf(0);
    }

    @AfterAll
    static void close() {
        if (hfFull != null) {
            hfFull.close();
        }
    }

    /** Hugging Face's tokenizer on the same file: truncated to {@code maxLength} (0: not truncated), not padded. */
    static HuggingFaceTokenizer hf(int maxLength) throws IOException {
        HuggingFaceTokenizer.Builder b = HuggingFaceTokenizer.builder().optTokenizerPath(json)
                .optAddSpecialTokens(true).optPadding(false);
        if (maxLength > 0) {
            b.optTruncation(true).optMaxLength(maxLength);
        } else {
            b.optTruncation(false);
        }
        return b.build();
    }

    static int[] ints(long[] ids) {
        return Arrays.stream(ids).mapToInt(Math::toIntExact).toArray();
    }

    static void assertSame(HuggingFaceTokenizer hf, String text, int maxLength) {
        Encoding e = hf.encode(text);
        int[] expected = ints(e.getIds());
        int[] actual = ours.encode(text, maxLength);
        assertArrayEquals(expected, actual, () -> "ids differ at maxLength " + maxLength + " for " + quote(text)
                + "\n  HF:   " + Arrays.toString(e.getTokens()) + "\n  ours: " + ours.tokens(text));
    }

    static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        s.codePoints().forEach(c -> sb.append(c < 0x20 || c > 0x7E ? String.format("\\u{%X}", c) : Character.toString(c)));
        return sb.append('"').toString();
    }

    static List<String> fortunes() {
        Fortunes f = Fortunes.load();
        List<String> texts = new ArrayList<>();
        f.train().forEach(e -> texts.add(e.text()));
        f.test().forEach(e -> texts.add(e.text()));
        return texts;
    }

    /** Strings made to catch a tokenizer out, each against Hugging Face's result. */
    static final List<String> ADVERSARIAL = List.of(
            "", " ", "   \t\n  ", "\u00A0\u2003\u3000", "a",
            // accents, combining marks, ligatures, case mappings with more than one character
            "Café naïve résumé Ångström façade", "cafe\u0301 n\u0303o", "ÀÉÎÕÜ ǅungla ﬁne ß Straße",
            "İstanbul ΣΊΣΥΦΟΣ ΌΣΟΣ", "Ⅻ ℌ ㎏ ①②", "ḍ̇ ạ̈ q̣̇",
            // CJK, Japanese, Korean, Thai, Arabic, Hebrew, Devanagari
            "我爱自然语言处理。", "東京タワーに行きました", "한국어 문장입니다", "ภาษาไทย", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया",
            "𠀀𠀁 𪜀 𫝀 \uD869\uDF00", // CJK extension B, C, D ideographs (outside the BMP)
            // emoji: plain, with skin tone, joined by ZWJ, flags, keycaps, newer ones
            "I love 🍕 and 🍣!", "👍🏽 👨‍👩‍👧‍👦 🇫🇷 1️⃣ 🥰 🫠 🪿",
            // control characters, zero-width characters, replacement character, private use, BOM
            "tab\there\nnew\rline", "bell\u0007 nul\u0000 esc\u001B del\u007F", "zero\u200Bwidth\u200Cnon\u200Djoiner\u2060word",
            "\uFEFFbom", "re\uFFFDplace", "private\uE000use", "soft\u00ADhyphen", "c1\u0085\u0080\u009F",
            "vertical\u000Btab\u000Cfeed", "sep\u2028line\u2029para", "\u001C\u001D\u001E\u001F",
            // unicode spaces
            "no\u00A0break", "en\u2002em\u2003thin\u2009hair\u200Anarrow\u202Fmath\u205Fideo\u3000space", "ogham\u1680space",
            "mongolian\u180Evowel",
            // punctuation runs and symbols
            "...!!!???", "--==++**", "\"'`~^|\\/<>{}[]()", "$100.00 & 50% off #1 @home", "«quoted» „German“ ‘single’ — dash – en",
            "¡Hola! ¿Qué tal? 。、「」『』【】", "a_b-c.d,e;f:g", "§¶†‡•…‰′″", "©®™°±×÷", "∑∫√∞≠≈",
            // digits
            "1234567890 3.14159 1,000,000 2024-01-01 12:30", "０１２３ ٠١٢٣ ४५६", "1st 2nd 3rd 4th",
            // special tokens written in the text (Hugging Face matches them in the raw text)
            "[CLS] [SEP] [PAD] [MASK] [UNK]", "x[MASK]y", "[cls] [Mask] [unused0] [[SEP]]", "[SEP][SEP]",
            // very long words around max_input_chars_per_word (100)
            "a".repeat(99), "a".repeat(100), "a".repeat(101), "b".repeat(250),
            "supercalifragilisticexpialidocious".repeat(3), "é".repeat(100), "e\u0301".repeat(100),
            "😀".repeat(101), "x" + "é".repeat(99) + "y",
            "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
            // mixed scripts and words that only part-match the vocabulary
            "unaffable xyzzyqwerty qqqqqq ZZZZZ", "tokenization tokenizers wordpiece", "日本語とEnglishのmix",
            "Mixed CASE WoRdS and ALLCAPS", "don't can't won't it's", "e-mail user@example.com http://x.y/z?a=b&c=d",
            "\u0130\u0131", "ǈǋǲ", "Ⓐⓑ", "ﬀﬃ", "K Å", // Kelvin and Angstrom signs
            "𝐀𝐁𝐂 𝒜 𝔄", "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ", "ᴀʙᴄ", "Ǆ ǅ ǆ",
            "\u0378\u0379 unassigned", "\uDB40\uDC01 tag", "lone \uD800 surrogate", "\uD83D");

    @Test
    void everyFortuneGivesHuggingFacesIds() {
        List<String> texts = fortunes();
        assertTrue(texts.size() > 2000, "all seven categories: " + texts.size());
        for (String t : texts) {
            assertSame(hfFull, t, Integer.MAX_VALUE);
        }
    }

    @Test
    void adversarialStringsGiveHuggingFacesIds() {
        for (String t : ADVERSARIAL) {
            assertSame(hfFull, t, Integer.MAX_VALUE);
        }
    }

    @Test
    void truncationMatchesAtSeveralLengths() throws IOException {
        List<String> texts = new ArrayList<>(ADVERSARIAL);
        List<String> all = fortunes();
        // the longest fortunes cross every boundary below; every 7th one adds variety
        all.stream().sorted((a, b) -> b.length() - a.length()).limit(40).forEach(texts::add);
        for (int i = 0; i < all.size(); i += 7) {
            texts.add(all.get(i));
        }
        texts.add("word ".repeat(600));
        texts.add("[MASK] ".repeat(20));
        texts.add("unaffable ".repeat(30)); // truncation inside a word's pieces (un ##aff ##able)
        for (int maxLength : new int[] {2, 3, 4, 5, 8, 16, 64, 128, 256, 512}) {
            try (HuggingFaceTokenizer hf = hf(maxLength)) {
                for (String t : texts) {
                    assertSame(hf, t, maxLength);
                    assertTrue(ours.encode(t, maxLength).length <= maxLength);
                }
            }
        }
    }

    @Test
    void paddedBatchMatchesHuggingFacesLongestPadding() throws IOException {
        List<String> texts = fortunes().subList(0, 300);
        List<String> batch = new ArrayList<>(texts);
        batch.addAll(ADVERSARIAL);
        int maxLength = 64;
        try (HuggingFaceTokenizer hf = HuggingFaceTokenizer.builder().optTokenizerPath(json).optAddSpecialTokens(true)
                .optTruncation(true).optMaxLength(maxLength).optPadding(true).build()) {
            Encoding[] expected = hf.batchEncode(batch);
            BertTokenizer.Batch actual = ours.encodeBatch(batch, maxLength);
            assertEquals(batch.size(), actual.size());
            assertEquals(expected[0].getIds().length, actual.length());
            assertEquals(maxLength, actual.length(), "some fortune reaches 64 tokens");
            for (int i = 0; i < batch.size(); i++) {
                int[] ids = Arrays.copyOfRange(actual.ids(), i * actual.length(), (i + 1) * actual.length());
                assertArrayEquals(ints(expected[i].getIds()), ids, "row " + i + ": " + quote(batch.get(i)));
                int real = (int) Arrays.stream(expected[i].getAttentionMask()).sum();
                assertEquals(real, actual.lengths()[i], "real tokens of row " + i);
                assertArrayEquals(ints(expected[i].getAttentionMask()),
                        Arrays.copyOfRange(actual.attentionMask(), i * actual.length(), (i + 1) * actual.length()));
            }
        }
    }

    @Test
    void specialIdsAndSizeMatchHuggingFace() {
        assertEquals(hfFull.encode("").getIds()[0], ours.clsId());
        assertEquals(101, ours.clsId());
        assertEquals(102, ours.sepId());
        assertEquals(0, ours.padId());
        assertEquals(100, ours.unkId());
        assertEquals(30522, ours.vocabSize());
        assertEquals(128, ours.maxLength(), "the file's truncation.max_length");
        assertArrayEquals(new int[] {101, 7592, 1010, 2088, 999, 102}, ours.encode("Hello, world!", 128), "the example in BertTokenizer's javadoc");
        assertEquals(List.of(hfFull.encode("Hello, world! Tokenization.").getTokens()), ours.tokens("Hello, world! Tokenization."));
    }
}
