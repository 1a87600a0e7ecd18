package io.peft4j.text;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.io.IoErrors;
import io.peft4j.train.ProgressBars;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The BERT WordPiece tokenizer of a Hugging Face {@code tokenizer.json} (e.g. all-MiniLM-L6-v2's,
 * bert-base-uncased's), or of a plain {@code vocab.txt}, giving the same ids as Hugging Face's
 * {@code tokenizers} library. It implements exactly the pipeline such a file describes and refuses
 * (with a message naming the field) a file that asks for anything else:
 *
 * <ol>
 *   <li><b>added tokens</b> ({@code added_tokens}, e.g. {@code [CLS]}, {@code [MASK]}): found in the
 *       raw text first, leftmost-longest and case-sensitively, and kept as their own ids, as Hugging
 *       Face does; only tokens with {@code normalized}, {@code lstrip}, {@code rstrip} and
 *       {@code single_word} all false are supported;</li>
 *   <li><b>normalizer</b> {@code BertNormalizer}: {@code clean_text} removes U+0000, U+FFFD and
 *       "other" characters (controls, formats such as zero-width spaces, private use) except tab,
 *       newline and carriage return, and turns every white space (Unicode White_Space) into a
 *       space; {@code handle_chinese_chars} puts spaces around CJK ideographs; {@code strip_accents}
 *       (null: follow {@code lowercase}) decomposes (NFD) and drops non-spacing marks;
 *       {@code lowercase} lower-cases character by character (Unicode simple mappings, and
 *       U+0130 to "i" + U+0307 as Rust's {@code char::to_lowercase} does);</li>
 *   <li><b>pre_tokenizer</b> {@code BertPreTokenizer}: splits on white space, and makes every
 *       punctuation character a word of its own (the ASCII symbols {@code !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~}
 *       and the Unicode categories Pc, Pd, Ps, Pe, Pi, Pf, Po);</li>
 *   <li><b>model</b> {@code WordPiece}: greedy longest-match-first from the start of each word, later
 *       pieces carrying {@code continuing_subword_prefix} ({@code ##}); a word longer than
 *       {@code max_input_chars_per_word} characters (code points), or one that cannot be covered by
 *       vocabulary pieces, becomes a single {@code unk_token};</li>
 *   <li><b>truncation</b>: to at most {@code maxLength} ids, the two special tokens included (the
 *       word pieces after the first {@code maxLength - 2} are dropped);</li>
 *   <li><b>post_processor</b> {@code TemplateProcessing} ({@code [CLS] $A [SEP]}) or
 *       {@code BertProcessing};</li>
 *   <li><b>padding</b>: {@link #encodeBatch} right-pads with the file's {@code pad_id} to the longest
 *       sequence of the batch. A file's {@code Fixed} padding length (all-MiniLM-L6-v2 says 128) is not
 *       applied: with an attention mask the extra padding changes no result, only the cost.</li>
 * </ol>
 *
 * <p>The file's {@code truncation.max_length} is {@link #maxLength()}, the length the model was
 * trained at; encoding takes the length to use as an argument. Character classes come from the
 * JDK's Unicode tables (Unicode 16 in Java 25); Hugging Face's Rust code uses older tables for some
 * classes, so characters assigned in recent Unicode versions may be treated differently.
 *
 * <pre>{@code
 * BertTokenizer tok = BertTokenizer.fromJson(Path.of("tokenizer.json"));
 * int[] ids = tok.encode("Hello, world!", 128);          // [101, 7592, 1010, 2088, 999, 102]
 * try (ProgressBars.Bar bar = ProgressBars.epoch("tokenizing", texts.size(), true)) {
 *     BertTokenizer.Batch batch = tok.encodeBatch(texts, 128, bar);
 * }
 * }</pre>
 *
 * <p>Instances are immutable and thread-safe.
 */
public final class BertTokenizer {

    /** The length used when a file does not say ({@code truncation} null, or a {@code vocab.txt}): BERT's 512 positions. */
    public static final int DEFAULT_MAX_LENGTH = 512;

    /** Ids of a batch of texts, row-major {@code [size][length]}, each row right-padded with {@code padId}. */
    public record Batch(int size, int length, int[] ids, int[] lengths, int padId) {
        public Batch {
            if (ids == null || lengths == null || lengths.length != size || ids.length != size * length) {
                throw new IllegalArgumentException("Batch: ids must hold size*length = " + size + "*" + length
                        + " and lengths size entries");
            }
        }

        /** The ids of text {@code i}, without its padding. */
        public int[] row(int i) {
            return Arrays.copyOfRange(ids, i * length, i * length + lengths[i]);
        }

        /** 1 for a real token, 0 for padding, laid out like {@link #ids()}. */
        public int[] attentionMask() {
            int[] mask = new int[size * length];
            for (int i = 0; i < size; i++) {
                Arrays.fill(mask, i * length, i * length + lengths[i], 1);
            }
            return mask;
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private final String source;
    private final Map<String, Integer> vocab;
    private final String[] tokenOf;
    private final boolean cleanText;
    private final boolean handleChineseChars;
    private final boolean stripAccents;
    private final boolean lowercase;
    private final String prefix;
    private final int maxInputCharsPerWord;
    private final int unkId;
    private final int clsId;
    private final int sepId;
    private final int padId;
    private final int maxLength;
    /** Added tokens matched in the raw text, longest first (so the first match at a position is the longest). */
    private final String[] addedTokens;
    private final int[] addedIds;

    private BertTokenizer(String source, Map<String, Integer> vocab, Map<String, Integer> added, boolean cleanText,
                          boolean handleChineseChars, boolean stripAccents, boolean lowercase, String prefix,
                          int maxInputCharsPerWord, String unkToken, String clsToken, String sepToken, int padId, int maxLength) {
        this.source = source;
        this.vocab = Map.copyOf(vocab);
        this.cleanText = cleanText;
        this.handleChineseChars = handleChineseChars;
        this.stripAccents = stripAccents;
        this.lowercase = lowercase;
        this.prefix = prefix;
        this.maxInputCharsPerWord = maxInputCharsPerWord;
        this.unkId = idOf(unkToken, added, "model.unk_token");
        this.clsId = idOf(clsToken, added, "the [CLS] token of post_processor");
        this.sepId = idOf(sepToken, added, "the [SEP] token of post_processor");
        this.padId = padId;
        this.maxLength = maxLength;
        int size = 0;
        for (int id : vocab.values()) {
            size = Math.max(size, id + 1);
        }
        for (int id : added.values()) {
            size = Math.max(size, id + 1);
        }
        this.tokenOf = new String[size];
        vocab.forEach((t, id) -> tokenOf[id] = t);
        added.forEach((t, id) -> tokenOf[id] = t);
        List<String> sorted = new ArrayList<>(added.keySet());
        sorted.sort((a, b) -> b.length() != a.length() ? b.length() - a.length() : a.compareTo(b));
        this.addedTokens = sorted.toArray(String[]::new);
        this.addedIds = sorted.stream().mapToInt(added::get).toArray();
        if (padId < 0 || padId >= size) {
            throw bad("padding.pad_id " + padId + " is outside the vocabulary (0.." + (size - 1) + ")");
        }
    }

    private int idOf(String token, Map<String, Integer> added, String what) {
        Integer id = added.containsKey(token) ? added.get(token) : vocab.get(token);
        if (id == null) {
            throw bad(what + " '" + token + "' is not in the vocabulary");
        }
        return id;
    }

    // ---------------------------------------------------------------- loading

    /** Reads a Hugging Face {@code tokenizer.json}. */
    public static BertTokenizer fromJson(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            return fromJson(in, file.toString());
        } catch (IOException e) {
            throw IoErrors.describe("read", file, e);
        }
    }

    /**
     * Reads a Hugging Face {@code tokenizer.json} from {@code in} (not closed); {@code source} names
     * it in messages.
     *
     * @throws IllegalArgumentException if it is not JSON, lacks a required field, or asks for a
     *                                  component or option this class does not implement (the message
     *                                  names the source and the field)
     */
    public static BertTokenizer fromJson(InputStream in, String source) throws IOException {
        JsonNode root;
        try {
            root = JSON.readTree(in);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("tokenizer " + source + " is not valid JSON: " + IoErrors.jsonSyntax(e), e);
        }
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException("tokenizer " + source + " is not a JSON object");
        }
        return new JsonReader(source, root).read();
    }

    /**
     * Reads a BERT {@code vocab.txt} (one token per line, the line number is the id), with the
     * settings Hugging Face's {@code BertTokenizerFast} uses for it: clean text, Chinese characters
     * split, accents stripped when {@code lowercase}, {@code ##} continuations, 100 characters per
     * word, {@code [CLS]}/{@code [SEP]}/{@code [PAD]}/{@code [UNK]}/{@code [MASK]} as special tokens,
     * and {@link #DEFAULT_MAX_LENGTH}.
     */
    public static BertTokenizer fromVocab(Path vocabTxt, boolean lowercase) throws IOException {
        Map<String, Integer> vocab = new HashMap<>();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(Files.newInputStream(vocabTxt), StandardCharsets.UTF_8))) {
            String line;
            for (int id = 0; (line = r.readLine()) != null; id++) {
                String token = line.strip();
                if (token.isEmpty()) {
                    throw new IllegalArgumentException("vocabulary " + vocabTxt + " has an empty line " + (id + 1)
                            + " (one token per line, the line number is its id)");
                }
                Integer before = vocab.putIfAbsent(token, id);
                if (before != null) {
                    throw new IllegalArgumentException("vocabulary " + vocabTxt + " has '" + token + "' on lines "
                            + (before + 1) + " and " + (id + 1));
                }
            }
        } catch (IOException e) {
            throw IoErrors.describe("read", vocabTxt, e);
        }
        Map<String, Integer> added = new HashMap<>();
        for (String special : List.of("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")) {
            Integer id = vocab.get(special);
            if (id == null && !special.equals("[MASK]")) {
                throw new IllegalArgumentException("vocabulary " + vocabTxt + " has no " + special + " token");
            }
            if (id != null) {
                added.put(special, id);
            }
        }
        return new BertTokenizer(vocabTxt.toString(), vocab, added, true, true, lowercase, lowercase, "##", 100,
                "[UNK]", "[CLS]", "[SEP]", vocab.get("[PAD]"), DEFAULT_MAX_LENGTH);
    }

    /** Reads the parts of a tokenizer.json, checking every field it uses. */
    private record JsonReader(String source, JsonNode root) {

        BertTokenizer read() {
            JsonNode model = object(root, "model", true);
            requireType(model, "model", "WordPiece");
            knownKeys(model, "model", "type", "unk_token", "continuing_subword_prefix", "max_input_chars_per_word", "vocab");
            String unk = text(model, "model", "unk_token", "[UNK]");
            String prefix = text(model, "model", "continuing_subword_prefix", "##");
            int maxChars = integer(model, "model", "max_input_chars_per_word", 100);
            if (maxChars < 1) {
                throw fail("model.max_input_chars_per_word must be at least 1, got " + maxChars);
            }
            Map<String, Integer> vocab = vocab(model);

            JsonNode norm = object(root, "normalizer", true);
            requireType(norm, "normalizer", "BertNormalizer");
            knownKeys(norm, "normalizer", "type", "clean_text", "handle_chinese_chars", "strip_accents", "lowercase");
            boolean lower = bool(norm, "normalizer", "lowercase", true);
            boolean clean = bool(norm, "normalizer", "clean_text", true);
            boolean chinese = bool(norm, "normalizer", "handle_chinese_chars", true);
            JsonNode strip = norm.get("strip_accents");
            boolean stripAccents = strip == null || strip.isNull() ? lower : bool(norm, "normalizer", "strip_accents", lower);

            JsonNode pre = object(root, "pre_tokenizer", true);
            requireType(pre, "pre_tokenizer", "BertPreTokenizer");
            knownKeys(pre, "pre_tokenizer", "type");

            Map<String, Integer> added = addedTokens(vocab);
            String[] clsSep = postProcessor(vocab, added);

            int maxLength = DEFAULT_MAX_LENGTH;
            JsonNode trunc = object(root, "truncation", false);
            if (trunc != null) {
                knownKeys(trunc, "truncation", "direction", "max_length", "strategy", "stride");
                require(trunc, "truncation", "direction", "Right");
                if (integer(trunc, "truncation", "stride", 0) != 0) {
                    throw fail("truncation.stride " + trunc.get("stride") + " is not supported (only 0)");
                }
                String strategy = text(trunc, "truncation", "strategy", "LongestFirst");
                if (!Set.of("LongestFirst", "OnlyFirst").contains(strategy)) {
                    throw fail("truncation.strategy '" + strategy + "' is not supported (LongestFirst or OnlyFirst)");
                }
                maxLength = integer(trunc, "truncation", "max_length", DEFAULT_MAX_LENGTH);
                if (maxLength < 2) {
                    throw fail("truncation.max_length must be at least 2 ([CLS] and [SEP]), got " + maxLength);
                }
            }

            Integer padId = vocab.get("[PAD]");
            JsonNode pad = object(root, "padding", false);
            if (pad != null) {
                knownKeys(pad, "padding", "strategy", "direction", "pad_to_multiple_of", "pad_id", "pad_type_id", "pad_token");
                require(pad, "padding", "direction", "Right");
                JsonNode multiple = pad.get("pad_to_multiple_of");
                if (multiple != null && !multiple.isNull()) {
                    throw fail("padding.pad_to_multiple_of " + multiple + " is not supported (only null)");
                }
                if (integer(pad, "padding", "pad_type_id", 0) != 0) {
                    throw fail("padding.pad_type_id " + pad.get("pad_type_id") + " is not supported (only 0)");
                }
                padId = integer(pad, "padding", "pad_id", 0);
                String padToken = text(pad, "padding", "pad_token", "[PAD]");
                Integer tokenId = added.containsKey(padToken) ? added.get(padToken) : vocab.get(padToken);
                if (tokenId == null || tokenId.intValue() != padId) {
                    throw fail("padding.pad_token '" + padToken + "' has id " + tokenId + " in the vocabulary, but padding.pad_id is " + padId);
                }
            } else if (padId == null) {
                throw fail("has no padding section and no [PAD] token in the vocabulary");
            }
            return new BertTokenizer(source, vocab, added, clean, chinese, stripAccents, lower, prefix, maxChars,
                    unk, clsSep[0], clsSep[1], padId, maxLength);
        }

        private Map<String, Integer> vocab(JsonNode model) {
            JsonNode v = model.get("vocab");
            if (v == null || v.isNull()) {
                throw fail("has no model.vocab");
            }
            if (!v.isObject() || v.isEmpty()) {
                throw fail("model.vocab must be a non-empty object of token: id");
            }
            Map<String, Integer> vocab = new HashMap<>(v.size() * 2);
            boolean[] used = new boolean[v.size()];
            for (Iterator<Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                JsonNode id = e.getValue();
                if (!id.isInt() || id.intValue() < 0 || id.intValue() >= v.size()) {
                    throw fail("model.vocab id of '" + e.getKey() + "' is " + id + ", expected an integer in 0.." + (v.size() - 1));
                }
                if (used[id.intValue()]) {
                    throw fail("model.vocab gives id " + id + " to two tokens (one is '" + e.getKey() + "')");
                }
                used[id.intValue()] = true;
                vocab.put(e.getKey(), id.intValue());
            }
            return vocab;
        }

        private Map<String, Integer> addedTokens(Map<String, Integer> vocab) {
            Map<String, Integer> added = new HashMap<>();
            JsonNode list = root.get("added_tokens");
            if (list == null || list.isNull()) {
                return added;
            }
            if (!list.isArray()) {
                throw fail("added_tokens must be an array");
            }
            for (int i = 0; i < list.size(); i++) {
                JsonNode t = list.get(i);
                String where = "added_tokens[" + i + "]";
                if (!t.isObject()) {
                    throw fail(where + " must be an object");
                }
                String content = text(t, where, "content", null);
                if (content.isEmpty()) {
                    throw fail(where + ".content is empty");
                }
                int id = integer(t, where, "id", -1);
                if (id < 0) {
                    throw fail(where + ".id must be a non-negative integer");
                }
                for (String flag : List.of("normalized", "lstrip", "rstrip", "single_word")) {
                    if (bool(t, where, flag, false)) {
                        throw fail(where + " ('" + content + "') has " + flag + "=true, which is not supported");
                    }
                }
                Integer inVocab = vocab.get(content);
                if (inVocab != null && inVocab != id) {
                    throw fail(where + " ('" + content + "') has id " + id + " but model.vocab says " + inVocab);
                }
                if (inVocab == null && vocab.containsValue(id)) {
                    throw fail(where + " ('" + content + "') has id " + id + ", which model.vocab gives to another token");
                }
                added.put(content, id);
            }
            return added;
        }

        /** [cls token, sep token] of a TemplateProcessing "[CLS] $A [SEP]" or a BertProcessing. */
        private String[] postProcessor(Map<String, Integer> vocab, Map<String, Integer> added) {
            JsonNode post = object(root, "post_processor", true);
            String type = text(post, "post_processor", "type", null);
            if (type.equals("BertProcessing")) {
                return new String[] {pair(post, "cls", vocab, added), pair(post, "sep", vocab, added)};
            }
            if (!type.equals("TemplateProcessing")) {
                throw fail("post_processor.type '" + type + "' is not supported (TemplateProcessing or BertProcessing)");
            }
            JsonNode single = post.get("single");
            String expected = "post_processor.single must be [SpecialToken, Sequence A, SpecialToken] with type_id 0 (as [CLS] $A [SEP])";
            if (single == null || !single.isArray() || single.size() != 3) {
                throw fail(expected);
            }
            JsonNode first = single.get(0).get("SpecialToken");
            JsonNode seq = single.get(1).get("Sequence");
            JsonNode last = single.get(2).get("SpecialToken");
            if (first == null || seq == null || last == null || !"A".equals(seq.path("id").asText())
                    || first.path("type_id").asInt(-1) != 0 || seq.path("type_id").asInt(-1) != 0 || last.path("type_id").asInt(-1) != 0) {
                throw fail(expected);
            }
            JsonNode specials = post.get("special_tokens");
            String[] out = new String[2];
            JsonNode[] ends = {first, last};
            for (int k = 0; k < 2; k++) {
                String name = ends[k].path("id").asText();
                JsonNode spec = specials == null ? null : specials.get(name);
                String where = "post_processor.special_tokens." + name;
                if (spec == null || !spec.path("ids").isArray() || spec.path("ids").size() != 1
                        || !spec.path("tokens").isArray() || spec.path("tokens").size() != 1) {
                    throw fail(where + " must exist with exactly one id and one token");
                }
                out[k] = spec.path("tokens").get(0).asText();
                checkId(where, out[k], spec.path("ids").get(0).asInt(-1), vocab, added);
            }
            return out;
        }

        private String pair(JsonNode post, String key, Map<String, Integer> vocab, Map<String, Integer> added) {
            JsonNode p = post.get(key);
            if (p == null || !p.isArray() || p.size() != 2 || !p.get(0).isTextual() || !p.get(1).isInt()) {
                throw fail("post_processor." + key + " must be [token, id]");
            }
            checkId("post_processor." + key, p.get(0).asText(), p.get(1).asInt(), vocab, added);
            return p.get(0).asText();
        }

        private void checkId(String where, String token, int id, Map<String, Integer> vocab, Map<String, Integer> added) {
            Integer actual = added.containsKey(token) ? added.get(token) : vocab.get(token);
            if (actual == null || actual != id) {
                throw fail(where + " gives '" + token + "' id " + id + " but the vocabulary says " + actual);
            }
        }

        private JsonNode object(JsonNode parent, String key, boolean required) {
            JsonNode n = parent.get(key);
            if (n == null || n.isNull()) {
                if (required) {
                    throw fail("has no " + key);
                }
                return null;
            }
            if (!n.isObject()) {
                throw fail(key + " must be an object, got " + n.getNodeType().toString().toLowerCase(java.util.Locale.ROOT));
            }
            return n;
        }

        private void requireType(JsonNode n, String where, String type) {
            String actual = text(n, where, "type", null);
            if (!actual.equals(type)) {
                throw fail(where + ".type '" + actual + "' is not supported (only " + type + ")");
            }
        }

        private void require(JsonNode n, String where, String key, String value) {
            String actual = text(n, where, key, value);
            if (!actual.equals(value)) {
                throw fail(where + "." + key + " '" + actual + "' is not supported (only " + value + ")");
            }
        }

        private void knownKeys(JsonNode n, String where, String... keys) {
            Set<String> known = Set.of(keys);
            for (Iterator<String> it = n.fieldNames(); it.hasNext(); ) {
                String k = it.next();
                if (!known.contains(k)) {
                    throw fail(where + "." + k + " is not supported (known: " + String.join(", ", keys) + ")");
                }
            }
        }

        /** A string field; {@code dflt == null} makes it required. */
        private String text(JsonNode n, String where, String key, String dflt) {
            JsonNode v = n.get(key);
            if (v == null || v.isNull()) {
                if (dflt == null) {
                    throw fail("has no " + where + "." + key);
                }
                return dflt;
            }
            if (!v.isTextual()) {
                throw fail(where + "." + key + " must be a string, got " + v);
            }
            return v.asText();
        }

        private int integer(JsonNode n, String where, String key, int dflt) {
            JsonNode v = n.get(key);
            if (v == null || v.isNull()) {
                return dflt;
            }
            if (!v.isInt()) {
                throw fail(where + "." + key + " must be an integer, got " + v);
            }
            return v.intValue();
        }

        private boolean bool(JsonNode n, String where, String key, boolean dflt) {
            JsonNode v = n.get(key);
            if (v == null || v.isNull()) {
                return dflt;
            }
            if (!v.isBoolean()) {
                throw fail(where + "." + key + " must be true or false, got " + v);
            }
            return v.booleanValue();
        }

        private IllegalArgumentException fail(String what) {
            return new IllegalArgumentException("tokenizer " + source + ": " + what);
        }
    }

    private IllegalArgumentException bad(String what) {
        return new IllegalArgumentException("tokenizer " + source + ": " + what);
    }

    // ---------------------------------------------------------------- encoding

    /**
     * The ids of {@code text}: {@code [CLS]}, its word pieces, {@code [SEP]}, truncated to at most
     * {@code maxLength} ids in all.
     *
     * @throws IllegalArgumentException if {@code maxLength < 2} or {@code text} is null
     */
    public int[] encode(String text, int maxLength) {
        checkMaxLength(maxLength);
        if (text == null) {
            throw new IllegalArgumentException("BertTokenizer.encode: text is null");
        }
        IdList ids = new IdList();
        ids.add(clsId);
        pieces(text, ids, null, maxLength - 2);
        ids.add(sepId);
        return ids.toArray();
    }

    /** {@link #encodeBatch(List, int, ProgressBars.Bar)} without a progress bar. */
    public Batch encodeBatch(List<String> texts, int maxLength) {
        return encodeBatch(texts, maxLength, null);
    }

    /**
     * Encodes every text ({@link #encode}) and right-pads them with {@link #padId()} to the longest.
     *
     * @param progress stepped once per text; may be null
     */
    public Batch encodeBatch(List<String> texts, int maxLength, ProgressBars.Bar progress) {
        checkMaxLength(maxLength);
        if (texts == null) {
            throw new IllegalArgumentException("BertTokenizer.encodeBatch: texts is null");
        }
        int[][] rows = new int[texts.size()][];
        int longest = 0;
        for (int i = 0; i < rows.length; i++) {
            String text = texts.get(i);
            if (text == null) {
                throw new IllegalArgumentException("BertTokenizer.encodeBatch: text " + i + " is null");
            }
            rows[i] = encode(text, maxLength);
            longest = Math.max(longest, rows[i].length);
            if (progress != null) {
                progress.step();
            }
        }
        int[] ids = new int[Math.multiplyExact(rows.length, longest)];
        Arrays.fill(ids, padId);
        int[] lengths = new int[rows.length];
        for (int i = 0; i < rows.length; i++) {
            System.arraycopy(rows[i], 0, ids, i * longest, rows[i].length);
            lengths[i] = rows[i].length;
        }
        return new Batch(rows.length, longest, ids, lengths, padId);
    }

    /** The tokens of {@code text} as {@link #encode} would give them without truncation, for looking at. */
    public List<String> tokens(String text) {
        IdList ids = new IdList();
        List<String> out = new ArrayList<>();
        out.add(tokenOf[clsId]);
        pieces(text, ids, out, Integer.MAX_VALUE);
        out.add(tokenOf[sepId]);
        return out;
    }

    private static void checkMaxLength(int maxLength) {
        if (maxLength < 2) {
            throw new IllegalArgumentException("BertTokenizer: maxLength must be at least 2 ([CLS] and [SEP]), got " + maxLength);
        }
    }

    /** Appends the ids (and, when {@code tokens} is not null, the tokens) of {@code text}'s pieces, at most {@code limit}. */
    private void pieces(String text, IdList ids, List<String> tokens, int limit) {
        int start = 0;
        int pos = 0;
        int n = text.length();
        while (pos < n && ids.size() - 1 < limit) {
            int match = addedTokenAt(text, pos);
            if (match < 0) {
                pos++;
                continue;
            }
            words(text.substring(start, pos), ids, tokens, limit);
            if (ids.size() - 1 < limit) {
                ids.add(addedIds[match]);
                if (tokens != null) {
                    tokens.add(addedTokens[match]);
                }
            }
            pos += addedTokens[match].length();
            start = pos;
        }
        if (start < n) {
            words(text.substring(start), ids, tokens, limit);
        }
    }

    /** The index of the longest added token that starts at {@code pos}, or -1. */
    private int addedTokenAt(String text, int pos) {
        for (int k = 0; k < addedTokens.length; k++) {
            if (text.startsWith(addedTokens[k], pos)) {
                return k;
            }
        }
        return -1;
    }

    /** Normalizes, pre-tokenizes and WordPiece-encodes a stretch of text holding no added token. */
    private void words(String text, IdList ids, List<String> tokens, int limit) {
        String normalized = normalize(text);
        int wordStart = -1;
        for (int i = 0; i < normalized.length(); ) {
            int c = normalized.codePointAt(i);
            int next = i + Character.charCount(c);
            if (isWhitespace(c) || isPunctuation(c)) {
                if (wordStart >= 0) {
                    wordPiece(normalized.substring(wordStart, i), ids, tokens, limit);
                    wordStart = -1;
                }
                if (!isWhitespace(c)) {
                    wordPiece(normalized.substring(i, next), ids, tokens, limit);
                }
            } else if (wordStart < 0) {
                wordStart = i;
            }
            i = next;
        }
        if (wordStart >= 0) {
            wordPiece(normalized.substring(wordStart), ids, tokens, limit);
        }
    }

    /** Greedy longest-match-first WordPiece of one word; the whole word becomes [UNK] when it cannot be covered. */
    private void wordPiece(String word, IdList ids, List<String> tokens, int limit) {
        if (ids.size() - 1 >= limit) {
            return;
        }
        int mark = ids.size();
        int tokensMark = tokens == null ? 0 : tokens.size();
        if (word.codePointCount(0, word.length()) <= maxInputCharsPerWord) {
            int start = 0;
            while (start < word.length()) {
                int end = word.length();
                Integer id = null;
                String piece = null;
                while (start < end) {
                    piece = start > 0 ? prefix + word.substring(start, end) : word.substring(start, end);
                    id = vocab.get(piece);
                    if (id != null) {
                        break;
                    }
                    end = word.offsetByCodePoints(end, -1);
                }
                if (id == null) {
                    ids.truncate(mark);
                    if (tokens != null) {
                        tokens.subList(tokensMark, tokens.size()).clear();
                    }
                    break;
                }
                ids.add(id);
                if (tokens != null) {
                    tokens.add(piece);
                }
                start = end;
            }
            if (ids.size() > mark) {
                // truncation keeps the first pieces of a word that crosses the limit, as Hugging Face does
                if (ids.size() - 1 > limit) {
                    ids.truncate(limit + 1);
                    if (tokens != null) {
                        tokens.subList(tokensMark + (limit + 1 - mark), tokens.size()).clear();
                    }
                }
                return;
            }
        }
        ids.add(unkId);
        if (tokens != null) {
            tokens.add(tokenOf[unkId]);
        }
    }

    /** BertNormalizer: clean text, space out Chinese characters, strip accents, lower-case, as configured. */
    String normalize(String text) {
        StringBuilder sb = new StringBuilder(text.length() + 8);
        for (int i = 0; i < text.length(); ) {
            int c = text.codePointAt(i);
            i += Character.charCount(c);
            if (cleanText) {
                if (c == 0 || c == 0xFFFD || isControl(c)) {
                    continue;
                }
                if (isWhitespace(c)) {
                    c = ' ';
                }
            }
            if (handleChineseChars && isChinese(c)) {
                sb.append(' ').appendCodePoint(c).append(' ');
            } else {
                sb.appendCodePoint(c);
            }
        }
        String s = sb.toString();
        if (stripAccents) {
            String nfd = Normalizer.normalize(s, Normalizer.Form.NFD);
            sb.setLength(0);
            for (int i = 0; i < nfd.length(); ) {
                int c = nfd.codePointAt(i);
                i += Character.charCount(c);
                if (Character.getType(c) != Character.NON_SPACING_MARK) {
                    sb.appendCodePoint(c);
                }
            }
            s = sb.toString();
        }
        if (lowercase) {
            sb.setLength(0);
            for (int i = 0; i < s.length(); ) {
                int c = s.codePointAt(i);
                i += Character.charCount(c);
                if (c == 0x130) {
                    sb.append("i\u0307"); // the one unconditional multi-character lower-case mapping
                } else {
                    sb.appendCodePoint(Character.toLowerCase(c));
                }
            }
            s = sb.toString();
        }
        return s;
    }

    /** Unicode's White_Space property (Rust's char::is_whitespace). */
    static boolean isWhitespace(int c) {
        return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680
                || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
    }

    /** Controls, formats, private use and surrogates, but not tab, newline and carriage return (kept as white space). */
    static boolean isControl(int c) {
        if (c == '\t' || c == '\n' || c == '\r') {
            return false;
        }
        int type = Character.getType(c);
        return type == Character.CONTROL || type == Character.FORMAT || type == Character.PRIVATE_USE || type == Character.SURROGATE;
    }

    /** The ASCII symbols and Unicode punctuation (P*). */
    static boolean isPunctuation(int c) {
        if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) {
            return true;
        }
        return switch (Character.getType(c)) {
            case Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.START_PUNCTUATION,
                 Character.END_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION, Character.FINAL_QUOTE_PUNCTUATION,
                 Character.OTHER_PUNCTUATION -> true;
            default -> false;
        };
    }

    /** The CJK ideograph blocks BERT spaces out. */
    static boolean isChinese(int c) {
        return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF)
                || (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF)
                || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
    }

    // ---------------------------------------------------------------- accessors

    /** The id of the padding token. */
    public int padId() {
        return padId;
    }

    /** The id of {@code [CLS]} (the first token of every encoding). */
    public int clsId() {
        return clsId;
    }

    /** The id of {@code [SEP]} (the last token of every encoding). */
    public int sepId() {
        return sepId;
    }

    /** The id of the unknown-word token. */
    public int unkId() {
        return unkId;
    }

    /** The number of ids: one more than the largest id of the vocabulary and the added tokens. */
    public int vocabSize() {
        return tokenOf.length;
    }

    /** The file's {@code truncation.max_length}, or {@link #DEFAULT_MAX_LENGTH} when it gives none. */
    public int maxLength() {
        return maxLength;
    }

    /** The token of {@code id}, or null for an id no token has. */
    public String token(int id) {
        if (id < 0 || id >= tokenOf.length) {
            throw new IllegalArgumentException("BertTokenizer.token: id " + id + " is outside 0.." + (tokenOf.length - 1));
        }
        return tokenOf[id];
    }

    /** The id of {@code token} in the vocabulary or the added tokens, or -1. */
    public int id(String token) {
        Integer id = vocab.get(token);
        if (id == null) {
            for (int k = 0; k < addedTokens.length; k++) {
                if (addedTokens[k].equals(token)) {
                    return addedIds[k];
                }
            }
            return -1;
        }
        return id;
    }

    @Override
    public String toString() {
        return "BertTokenizer[" + source + ", " + tokenOf.length + " ids, lowercase=" + lowercase + "]";
    }

    /** A growable int array. */
    private static final class IdList {
        private int[] a = new int[32];
        private int n;

        void add(int v) {
            if (n == a.length) {
                a = Arrays.copyOf(a, n * 2);
            }
            a[n++] = v;
        }

        int size() {
            return n;
        }

        void truncate(int size) {
            n = size;
        }

        int[] toArray() {
            return Arrays.copyOf(a, n);
        }
    }
}
