package io.peft4j.text;

import static io.peft4j.variants.TestSupport.assertThrowsNaming;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.data.Fortunes;
import io.peft4j.train.ProgressBars;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** BertTokenizer on small hand-made vocabularies, on vocab.txt files, and on tokenizer.json files it must refuse. */
class BertTokenizerTest {

    static final ObjectMapper JSON = new ObjectMapper();

    /** Special tokens at ids 0..4, then the word pieces the tests use. */
    static final List<String> VOCAB = List.of("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
            "un", "##aff", "##able", "aff", "able", "##a", "##f",
            "ab", "##c", "a", "b", "c", ",", ".", "!", "x", "##x",
            "cafe", "café", "Cafe", "我", "爱", "我爱",
            "😀", "##😀", "hello", "world", "[", "]", "mask", "##bd");

    /** A valid tokenizer.json in the layout of all-MiniLM-L6-v2's, over {@link #VOCAB}. */
    static ObjectNode json() {
        ObjectNode root = JSON.createObjectNode();
        root.put("version", "1.0");
        ObjectNode trunc = root.putObject("truncation");
        trunc.put("direction", "Right").put("max_length", 16).put("strategy", "LongestFirst").put("stride", 0);
        ObjectNode pad = root.putObject("padding");
        pad.putObject("strategy").put("Fixed", 16);
        pad.put("direction", "Right").putNull("pad_to_multiple_of");
        pad.put("pad_id", 0).put("pad_type_id", 0).put("pad_token", "[PAD]");
        ArrayNode added = root.putArray("added_tokens");
        for (String t : List.of("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")) {
            added.addObject().put("id", VOCAB.indexOf(t)).put("content", t).put("single_word", false).put("lstrip", false)
                    .put("rstrip", false).put("normalized", false).put("special", true);
        }
        root.putObject("normalizer").put("type", "BertNormalizer").put("clean_text", true)
                .put("handle_chinese_chars", true).putNull("strip_accents").put("lowercase", true);
        root.putObject("pre_tokenizer").put("type", "BertPreTokenizer");
        ObjectNode post = root.putObject("post_processor");
        post.put("type", "TemplateProcessing");
        ArrayNode single = post.putArray("single");
        single.addObject().putObject("SpecialToken").put("id", "[CLS]").put("type_id", 0);
        single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        single.addObject().putObject("SpecialToken").put("id", "[SEP]").put("type_id", 0);
        ObjectNode specials = post.putObject("special_tokens");
        for (String t : List.of("[CLS]", "[SEP]")) {
            ObjectNode s = specials.putObject(t);
            s.put("id", t);
            s.putArray("ids").add(VOCAB.indexOf(t));
            s.putArray("tokens").add(t);
        }
        root.putObject("decoder").put("type", "WordPiece").put("prefix", "##").put("cleanup", true);
        ObjectNode model = root.putObject("model");
        model.put("type", "WordPiece").put("unk_token", "[UNK]").put("continuing_subword_prefix", "##")
                .put("max_input_chars_per_word", 100);
        ObjectNode vocab = model.putObject("vocab");
        for (int i = 0; i < VOCAB.size(); i++) {
            vocab.put(VOCAB.get(i), i);
        }
        return root;
    }

    static BertTokenizer tokenizer(Consumer<ObjectNode> edit) {
        ObjectNode root = json();
        edit.accept(root);
        try {
            return BertTokenizer.fromJson(new ByteArrayInputStream(JSON.writeValueAsBytes(root)), "test.json");
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    static final BertTokenizer TOK = tokenizer(r -> { });

    static List<String> pieces(BertTokenizer t, String text) {
        List<String> all = t.tokens(text);
        return all.subList(1, all.size() - 1);
    }

    static int id(String token) {
        return VOCAB.indexOf(token);
    }

    // ---- WordPiece ----

    @Test
    void wordPieceTakesTheLongestPieceFirst() {
        assertEquals(List.of("un", "##aff", "##able"), pieces(TOK, "unaffable"));
        assertEquals(List.of("aff", "##able"), pieces(TOK, "affable"));
        assertEquals(List.of("aff"), pieces(TOK, "aff"));
        assertEquals(List.of("aff", "##a"), pieces(TOK, "affa"));
        // "ab" is taken before "a", and then "##c" covers the rest
        assertEquals(List.of("ab", "##c"), pieces(TOK, "abc"));
        assertArrayEquals(new int[] {id("[CLS]"), id("un"), id("##aff"), id("##able"), id("[SEP]")}, TOK.encode("unaffable", 64));
    }

    @Test
    void aWordThatCannotBeCoveredIsOneUnk() {
        // "abz": "ab" matches, but nothing covers "z": the whole word is [UNK], not "ab [UNK]"
        assertEquals(List.of("[UNK]"), pieces(TOK, "abz"));
        // greedy, not exhaustive: "ab" is taken and "##d" does not exist, although "a" "##bd" would cover "abd"
        assertEquals(List.of("[UNK]"), pieces(TOK, "abd"));
        assertEquals(List.of("x", "##bd"), pieces(TOK, "xbd"));
        assertEquals(List.of("x", "[UNK]", "x"), pieces(TOK, "x zzz x"));
        assertEquals(List.of("[UNK]"), pieces(TOK, "q"));
        assertEquals(id("[UNK]"), TOK.unkId());
    }

    @Test
    void wordsLongerThanMaxInputCharsPerWordAreUnkCountedInCodePoints() {
        BertTokenizer t = tokenizer(r -> ((ObjectNode) r.get("model")).put("max_input_chars_per_word", 5));
        assertEquals(List.of("x", "##x", "##x", "##x", "##x"), pieces(t, "xxxxx"));
        assertEquals(List.of("[UNK]"), pieces(t, "xxxxxx"));
        // five emoji are ten UTF-16 units but five characters
        assertEquals(List.of("😀", "##😀", "##😀", "##😀", "##😀"), pieces(t, "😀".repeat(5)));
        assertEquals(List.of("[UNK]"), pieces(t, "😀".repeat(6)));
    }

    // ---- normalizer and pre-tokenizer ----

    @Test
    void punctuationIsSplitOffAndWhiteSpaceRemoved() {
        assertEquals(List.of("hello", ",", "world", "!"), pieces(TOK, "  Hello,World!\n"));
        assertEquals(List.of(".", ".", "."), pieces(TOK, "..."));
        assertEquals(List.of("[", "mask", "]"), pieces(TOK, "[mask]"), "special tokens are matched case-sensitively");
        assertEquals(List.of(), pieces(TOK, " \t\u00A0\u3000"));
    }

    @Test
    void lowercaseAndAccentStrippingFollowTheNormalizerSettings() {
        assertEquals(List.of("cafe"), pieces(TOK, "CAFÉ"), "strip_accents null follows lowercase=true");
        BertTokenizer cased = tokenizer(r -> ((ObjectNode) r.get("normalizer")).put("lowercase", false));
        assertEquals(List.of("Cafe"), pieces(cased, "Cafe"));
        assertEquals(List.of("[UNK]"), pieces(cased, "Café"), "strip_accents null follows lowercase=false: accents kept");
        BertTokenizer keepAccents = tokenizer(r -> ((ObjectNode) r.get("normalizer")).put("strip_accents", false));
        assertEquals(List.of("café"), pieces(keepAccents, "CAFÉ"));
        BertTokenizer stripOnly = tokenizer(r -> ((ObjectNode) r.get("normalizer")).put("lowercase", false).put("strip_accents", true));
        assertEquals(List.of("Cafe"), pieces(stripOnly, "Café"));
    }

    @Test
    void chineseCharactersAndCleanTextFollowTheirSwitches() {
        assertEquals(List.of("我", "爱"), pieces(TOK, "我爱"));
        BertTokenizer joined = tokenizer(r -> ((ObjectNode) r.get("normalizer")).put("handle_chinese_chars", false));
        assertEquals(List.of("我爱"), pieces(joined, "我爱"));
        // clean_text drops controls and zero-width characters, so the word survives
        assertEquals(List.of("hello"), pieces(TOK, "hel\u0000lo\u200B\u0007"));
        BertTokenizer raw = tokenizer(r -> ((ObjectNode) r.get("normalizer")).put("clean_text", false));
        assertEquals(List.of("[UNK]"), pieces(raw, "hel\u0007lo"));
    }

    @Test
    void addedTokensAreMatchedLeftmostLongestInTheRawText() {
        assertEquals(List.of("x", "[MASK]", "x"), pieces(TOK, "x[MASK]x"));
        assertArrayEquals(new int[] {id("[CLS]"), id("[SEP]"), id("[SEP]")}, TOK.encode("[SEP]", 8));
        BertTokenizer t = tokenizer(r -> {
            ((ObjectNode) r.get("model").get("vocab")).put("[MASK]x", VOCAB.size());
            ((ArrayNode) r.get("added_tokens")).addObject().put("id", VOCAB.size()).put("content", "[MASK]x")
                    .put("normalized", false).put("special", true);
        });
        assertEquals(List.of("a", "[MASK]x", "x"), pieces(t, "a[MASK]xx"));
        assertEquals(List.of("a", "[MASK]", "a"), pieces(t, "a[MASK]a"));
    }

    // ---- truncation, batches, progress ----

    @Test
    void truncationCountsTheSpecialTokens() {
        int cls = id("[CLS]"), sep = id("[SEP]");
        assertArrayEquals(new int[] {cls, id("un"), id("##aff"), sep}, TOK.encode("unaffable x", 4));
        assertArrayEquals(new int[] {cls, id("un"), id("##aff"), id("##able"), sep}, TOK.encode("unaffable x", 5));
        assertArrayEquals(new int[] {cls, sep}, TOK.encode("unaffable", 2));
        assertArrayEquals(new int[] {cls, sep}, TOK.encode("", 2));
        assertArrayEquals(new int[] {cls, id("x"), id("[MASK]"), sep}, TOK.encode("x [MASK] x", 4));
        assertEquals(16, TOK.maxLength(), "truncation.max_length of the file");
        assertThrowsNaming(IllegalArgumentException.class, () -> TOK.encode("x", 1), "maxLength", "at least 2");
        assertThrowsNaming(IllegalArgumentException.class, () -> TOK.encode(null, 8), "null");
    }

    @Test
    void batchesArePaddedOnTheRightToTheLongest() {
        BertTokenizer.Batch b = TOK.encodeBatch(List.of("x", "unaffable x", ""), 5);
        assertEquals(3, b.size());
        assertEquals(5, b.length());
        int cls = id("[CLS]"), sep = id("[SEP]"), pad = TOK.padId(), x = id("x");
        assertEquals(id("[PAD]"), pad);
        assertArrayEquals(new int[] {cls, x, sep, pad, pad, cls, id("un"), id("##aff"), id("##able"), sep, cls, sep, pad, pad, pad}, b.ids());
        assertArrayEquals(new int[] {3, 5, 2}, b.lengths());
        assertArrayEquals(new int[] {1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}, b.attentionMask());
        assertArrayEquals(new int[] {cls, x, sep}, b.row(0));
        BertTokenizer.Batch empty = TOK.encodeBatch(List.of(), 5);
        assertEquals(0, empty.size());
        assertEquals(0, empty.ids().length);
        List<String> withNull = new ArrayList<>(List.of("x"));
        withNull.add(null);
        assertThrowsNaming(IllegalArgumentException.class, () -> TOK.encodeBatch(withNull, 5), "text 1 is null");
    }

    @Test
    void aProgressBarIsSteppedOncePerText() {
        List<String> texts = List.of("a", "b", "c", "hello world");
        try (ProgressBars.Bar bar = ProgressBars.epoch("tokenizing", texts.size(), false)) {
            BertTokenizer.Batch b = TOK.encodeBatch(texts, 8, bar);
            assertEquals(texts.size(), bar.current());
            assertEquals(b.ids().length, TOK.encodeBatch(texts, 8).ids().length);
        }
    }

    // ---- vocab.txt ----

    @Test
    void vocabTxtGivesTheSameIdsAsTheMiniLmTokenizerJson(@TempDir Path dir) throws IOException {
        BertTokenizer fromJson;
        try (InputStream in = getClass().getResourceAsStream(BertTokenizerHfTest.RESOURCE)) {
            fromJson = BertTokenizer.fromJson(in, BertTokenizerHfTest.RESOURCE);
        }
        // vocab.txt: the tokens in id order, one a line
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < fromJson.vocabSize(); i++) {
            lines.add(fromJson.token(i));
        }
        Path vocab = dir.resolve("vocab.txt");
        Files.write(vocab, lines, StandardCharsets.UTF_8);
        BertTokenizer fromTxt = BertTokenizer.fromVocab(vocab, true);
        assertEquals(fromJson.vocabSize(), fromTxt.vocabSize());
        assertEquals(BertTokenizer.DEFAULT_MAX_LENGTH, fromTxt.maxLength());
        List<String> texts = new ArrayList<>();
        Fortunes.load().test().forEach(e -> texts.add(e.text()));
        texts.addAll(BertTokenizerHfTest.ADVERSARIAL);
        for (String t : texts) {
            assertArrayEquals(fromJson.encode(t, 512), fromTxt.encode(t, 512), t);
        }
        BertTokenizer cased = BertTokenizer.fromVocab(vocab, false);
        assertEquals(List.of("[CLS]", "[UNK]", "[SEP]"), cased.tokens("Zürich"), "not lower-cased: 'Z' is not in this uncased vocabulary");
        assertEquals(List.of("[CLS]", "zurich", "[SEP]"), fromTxt.tokens("Zürich"));
    }

    @Test
    void vocabTxtWithoutSpecialTokensOrWithBlankLinesIsRefused(@TempDir Path dir) throws IOException {
        Path noCls = dir.resolve("vocab.txt");
        Files.write(noCls, List.of("[PAD]", "[UNK]", "[SEP]", "a"));
        assertThrowsNaming(IllegalArgumentException.class, () -> BertTokenizer.fromVocab(noCls, true), noCls.toString(), "[CLS]");
        Path blank = dir.resolve("blank.txt");
        Files.write(blank, List.of("[PAD]", "", "[UNK]"));
        assertThrowsNaming(IllegalArgumentException.class, () -> BertTokenizer.fromVocab(blank, true), "empty line 2");
        Path twice = dir.resolve("twice.txt");
        Files.write(twice, List.of("[PAD]", "[UNK]", "a", "[CLS]", "a", "[SEP]"));
        assertThrowsNaming(IllegalArgumentException.class, () -> BertTokenizer.fromVocab(twice, true), "'a' on lines 3 and 5");
        Path ok = dir.resolve("ok.txt");
        Files.write(ok, List.of("[PAD]", "[UNK]", "a", "[CLS]", "##b", "[SEP]"));
        BertTokenizer t = BertTokenizer.fromVocab(ok, true);
        assertArrayEquals(new int[] {3, 2, 4, 5}, t.encode("AB", 8), "ids are line numbers from 0");
        assertEquals(0, t.padId());
        assertEquals(1, t.unkId());
        assertThrows(NoSuchFileException.class, () -> BertTokenizer.fromVocab(dir.resolve("missing.txt"), true));
    }

    // ---- tokenizer.json files it must refuse ----

    static void refused(Consumer<ObjectNode> edit, String... fragments) {
        String[] all = Arrays.copyOf(fragments, fragments.length + 1);
        all[fragments.length] = "test.json";
        assertThrowsNaming(IllegalArgumentException.class, () -> tokenizer(edit), all);
    }

    @Test
    void badTokenizerJsonFilesAreRefusedNamingTheField() {
        refused(r -> ((ObjectNode) r.get("model")).remove("vocab"), "has no model.vocab");
        refused(r -> r.remove("model"), "has no model");
        refused(r -> ((ObjectNode) r.get("model")).put("type", "BPE"), "model.type 'BPE' is not supported");
        refused(r -> ((ObjectNode) r.get("model")).put("dropout", 0.1), "model.dropout is not supported");
        refused(r -> ((ObjectNode) r.get("model")).put("unk_token", "<unk>"), "model.unk_token '<unk>'", "not in the vocabulary");
        refused(r -> ((ObjectNode) r.get("model")).put("max_input_chars_per_word", 0), "max_input_chars_per_word");
        refused(r -> ((ObjectNode) r.get("model").get("vocab")).put("x", 1000), "model.vocab id of 'x' is 1000");
        refused(r -> ((ObjectNode) r.get("model").get("vocab")).put("x", 0), "gives id 0 to two tokens");
        refused(r -> ((ObjectNode) r.get("model").get("vocab")).put("x", "one"), "model.vocab id of 'x'");
        refused(r -> ((ObjectNode) r.get("normalizer")).put("type", "Lowercase"), "normalizer.type 'Lowercase' is not supported");
        refused(r -> ((ObjectNode) r.get("normalizer")).put("lowercase", "yes"), "normalizer.lowercase must be true or false");
        refused(r -> ((ObjectNode) r.get("normalizer")).put("nfkc", true), "normalizer.nfkc is not supported");
        refused(r -> r.remove("normalizer"), "has no normalizer");
        refused(r -> ((ObjectNode) r.get("pre_tokenizer")).put("type", "Whitespace"), "pre_tokenizer.type 'Whitespace'");
        refused(r -> r.put("pre_tokenizer", "BertPreTokenizer"), "pre_tokenizer must be an object");
        refused(r -> ((ObjectNode) r.get("post_processor")).put("type", "RobertaProcessing"), "post_processor.type 'RobertaProcessing'");
        refused(r -> ((ArrayNode) r.get("post_processor").get("single")).remove(2), "post_processor.single");
        refused(r -> ((ObjectNode) r.get("post_processor").get("special_tokens")).remove("[SEP]"), "post_processor.special_tokens.[SEP]");
        refused(r -> ((ArrayNode) r.get("post_processor").get("special_tokens").get("[CLS]").get("ids")).set(0, 7),
                "post_processor.special_tokens.[CLS] gives '[CLS]' id 7");
        refused(r -> ((ObjectNode) r.get("truncation")).put("direction", "Left"), "truncation.direction 'Left' is not supported");
        refused(r -> ((ObjectNode) r.get("truncation")).put("stride", 4), "truncation.stride");
        refused(r -> ((ObjectNode) r.get("truncation")).put("strategy", "OnlySecond"), "truncation.strategy 'OnlySecond'");
        refused(r -> ((ObjectNode) r.get("truncation")).put("max_length", 1), "truncation.max_length must be at least 2");
        refused(r -> ((ObjectNode) r.get("padding")).put("direction", "Left"), "padding.direction 'Left'");
        refused(r -> ((ObjectNode) r.get("padding")).put("pad_to_multiple_of", 8), "padding.pad_to_multiple_of 8");
        refused(r -> ((ObjectNode) r.get("padding")).put("pad_id", 3), "padding.pad_token '[PAD]' has id 0", "pad_id is 3");
        refused(r -> ((ObjectNode) r.get("added_tokens").get(4)).put("normalized", true), "added_tokens[4] ('[MASK]') has normalized=true");
        refused(r -> ((ObjectNode) r.get("added_tokens").get(4)).put("lstrip", true), "lstrip=true");
        refused(r -> ((ObjectNode) r.get("added_tokens").get(4)).put("id", 9), "added_tokens[4] ('[MASK]') has id 9 but model.vocab says 4");
        refused(r -> ((ObjectNode) r.get("added_tokens").get(4)).remove("content"), "has no added_tokens[4].content");
    }

    @Test
    void aTokenizerJsonWithoutTruncationOrPaddingSectionsOrWithBertProcessingLoads() {
        BertTokenizer t = tokenizer(r -> {
            r.putNull("truncation");
            r.putNull("padding");
            r.remove("added_tokens");
            ObjectNode post = r.putObject("post_processor");
            post.put("type", "BertProcessing");
            post.putArray("sep").add("[SEP]").add(id("[SEP]"));
            post.putArray("cls").add("[CLS]").add(id("[CLS]"));
        });
        assertEquals(BertTokenizer.DEFAULT_MAX_LENGTH, t.maxLength());
        assertEquals(id("[PAD]"), t.padId());
        assertArrayEquals(TOK.encode("hello, unaffable world", 64), t.encode("hello, unaffable world", 64));
        // without added_tokens, "[MASK]" in the text is punctuation and a word
        assertEquals(List.of("[", "mask", "]"), pieces(t, "[MASK]"));
        refused(r -> {
            ObjectNode post = r.putObject("post_processor");
            post.put("type", "BertProcessing");
            post.putArray("sep").add("[SEP]").add(9);
            post.putArray("cls").add("[CLS]").add(id("[CLS]"));
        }, "post_processor.sep gives '[SEP]' id 9");
    }

    @Test
    void notJsonOrMissingFilesAreReportedAsSuch(@TempDir Path dir) throws IOException {
        assertThrowsNaming(IllegalArgumentException.class,
                () -> BertTokenizer.fromJson(new ByteArrayInputStream("{\"model\": ".getBytes(StandardCharsets.UTF_8)), "broken.json"),
                "broken.json", "not valid JSON");
        assertThrowsNaming(IllegalArgumentException.class,
                () -> BertTokenizer.fromJson(new ByteArrayInputStream("[1, 2]".getBytes(StandardCharsets.UTF_8)), "array.json"),
                "array.json", "not a JSON object");
        Path missing = dir.resolve("tokenizer.json");
        assertThrowsNaming(NoSuchFileException.class, () -> BertTokenizer.fromJson(missing), missing.toString());
        Path truncated = dir.resolve("truncated.json");
        Files.writeString(truncated, JSON.writeValueAsString(json()).substring(0, 300));
        assertThrowsNaming(IllegalArgumentException.class, () -> BertTokenizer.fromJson(truncated), truncated.toString(), "not valid JSON");
    }
}
