package io.peft4j.io.onnx;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.WireFormat;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.function.UnaryOperator;

import static io.peft4j.io.onnx.OnnxReaderTest.assertMessage;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Corrupted copies of all-MiniLM-L6-v2's ONNX file, each rewritten by the test's own protobuf
 * code: every one must end in an {@link OnnxFormatException} (no other exception type) whose
 * message names the problem and the tensor, node or field at fault.
 */
class BertOnnxCorruptionTest {
    @TempDir
    static Path dir;
    static byte[] original;

    @BeforeAll
    static void read() throws IOException {
        original = Files.readAllBytes(MiniLmOnnx.copyTo(dir));
    }

    /** Writes {@code bytes[0, length)} to a file and loads it; returns the OnnxFormatException's message. */
    private static String loadFailure(byte[] bytes, int length) throws IOException {
        Path f = dir.resolve("corrupt.onnx");
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer b = ByteBuffer.wrap(bytes, 0, length);
            while (b.hasRemaining()) ch.write(b);
        }
        String m = assertThrows(OnnxFormatException.class, () -> BertOnnx.load(f).close()).getMessage();
        assertTrue(m.startsWith(f.toString()), m);
        return m;
    }

    private static String loadFailure(byte[] bytes) throws IOException {
        return loadFailure(bytes, bytes.length);
    }

    private static byte[] editInitializer(String name, int field, Proto.Field replacement) {
        return Proto.editInitializer(original, name, t -> Proto.replace(t, field, replacement));
    }

    private static Proto.Field varint(int number, long v) {
        return new Proto.Field(number, WireFormat.WIRETYPE_VARINT, v, null);
    }

    private static Proto.Field packedDims(long... dims) {
        return new Proto.Field(1, WireFormat.WIRETYPE_LENGTH_DELIMITED, 0, Proto.field(new Proto.Msg().packedVarints(1, dims).build(), 1).bytes());
    }

    @Test
    void truncatedCopies() throws IOException {
        int n = original.length;
        for (int at : new int[] {5, 30, 1000, 123_457, n / 3, n / 2, n - 20, n - 1}) {
            assertMessage(loadFailure(original, at), "truncated");
        }
    }

    @Test
    void otherFilesAreNotTakenForOnnx() throws IOException {
        byte[] json;
        try (var in = BertOnnxCorruptionTest.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            json = in.readAllBytes();
        }
        assertMessage(loadFailure(json), "(is this an ONNX file?)");
        byte[] text = "hello, world\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        assertMessage(loadFailure(text), "(is this an ONNX file?)");
    }

    @Test
    void rawDataLengthThatDoesNotMatchTheDims() throws IOException {
        byte[] bad = editInitializer("encoder.layer.0.attention.self.query.bias", 9,
                new Proto.Field(9, WireFormat.WIRETYPE_LENGTH_DELIMITED, 0, new byte[1532]));
        assertMessage(loadFailure(bad), "tensor 'encoder.layer.0.attention.self.query.bias': raw_data holds 1532 bytes"
                + " but dims [384] of FLOAT need 1536");
        byte[] longer = editInitializer("onnx::MatMul_798", 9,
                new Proto.Field(9, WireFormat.WIRETYPE_LENGTH_DELIMITED, 0, new byte[384 * 1536 * 4 + 4]));
        assertMessage(loadFailure(longer), "tensor 'onnx::MatMul_798': raw_data holds 2359300 bytes but dims [384, 1536] of FLOAT need 2359296");
    }

    @Test
    void wrongDataTypes() throws IOException {
        assertMessage(loadFailure(editInitializer("embeddings.LayerNorm.bias", 2, varint(2, 7))),
                "tensor 'embeddings.LayerNorm.bias': raw_data holds 1536 bytes but dims [384] of INT64 need 3072");
        assertMessage(loadFailure(editInitializer("embeddings.LayerNorm.bias", 2, varint(2, 8))),
                "tensor 'embeddings.LayerNorm.bias' has data_type 8 (STRING), which is not supported");
        assertMessage(loadFailure(editInitializer("embeddings.LayerNorm.bias", 2, varint(2, 1234))),
                "data_type 1234 (unknown)");
        // Same size, valid tensor, wrong type for a weight: the loader refuses it.
        assertMessage(loadFailure(editInitializer("encoder.layer.1.output.LayerNorm.weight", 2, varint(2, 6))),
                "initializer 'encoder.layer.1.output.LayerNorm.weight' (encoder.layer.1.output.LayerNorm.weight) is INT32[384],"
                        + " expected a floating-point tensor of [384]");
        assertMessage(loadFailure(editInitializer("embeddings.position_ids", 2, varint(2, 11))),
                "buffer 'embeddings.position_ids' is DOUBLE[1, 512], expected INT64[1, 512]");
    }

    @Test
    void negativeHugeAndMismatchedDims() throws IOException {
        assertMessage(loadFailure(editInitializer("embeddings.word_embeddings.weight", 1, packedDims(-30522, 384))),
                "tensor 'embeddings.word_embeddings.weight' has a negative dim: dims [-30522, 384]");
        assertMessage(loadFailure(editInitializer("embeddings.word_embeddings.weight", 1, packedDims(1L << 40, 1L << 40))),
                "tensor 'embeddings.word_embeddings.weight' has dims [1099511627776, 1099511627776] whose product overflows");
        assertMessage(loadFailure(editInitializer("embeddings.word_embeddings.weight", 1, packedDims(1L << 40, 384))),
                "raw_data holds 46881792 bytes but dims [1099511627776, 384] of FLOAT need 1688849860263936");
        // Consistent tensors whose shapes disagree with the model.
        byte[] shortBias = Proto.editInitializer(original, "encoder.layer.5.output.dense.bias", t -> Proto.replace(
                Proto.replace(t, 1, packedDims(383)), 9, new Proto.Field(9, 2, 0, new byte[383 * 4])));
        assertMessage(loadFailure(shortBias), "initializer 'encoder.layer.5.output.dense.bias' (encoder.layer.5.output.dense.bias)"
                + " is FLOAT[383], expected a floating-point tensor of [384]");
        assertMessage(loadFailure(editInitializer("onnx::MatMul_798", 1, packedDims(1536, 384))),
                "initializer 'onnx::MatMul_798' (encoder.layer.0.intermediate.dense.weight) is FLOAT[1536, 384],"
                        + " expected a floating-point tensor of [in, out] = [384, 1536]");
    }

    @Test
    void missingAndExtraInitializers() throws IOException {
        assertMessage(loadFailure(Proto.editInitializer(original, "encoder.layer.3.output.dense.bias", t -> null)),
                "no initializer 'encoder.layer.3.output.dense.bias'");
        assertMessage(loadFailure(Proto.editInitializer(original, "embeddings.LayerNorm.weight", t -> null)),
                "no initializer 'embeddings.LayerNorm.weight'");
        assertMessage(loadFailure(Proto.editInitializer(original, "onnx::MatMul_850", t -> null)),
                "MatMul node '/encoder/layer.4/intermediate/dense/MatMul' of encoder.layer.4.intermediate.dense multiplies by"
                        + " 'onnx::MatMul_850', which is not an initializer");
        byte[] extra = Proto.editGraph(original, g -> g.number() == 2
                ? new Proto.Field(5, 2, 0, Proto.floatTensor("pooler.dense.bias", new float[384], 384).build()) : g);
        assertMessage(loadFailure(extra), "initializer 'pooler.dense.bias' is neither a BERT encoder weight nor a known buffer");
    }

    @Test
    void badVarints() throws IOException {
        int at = firstInitializerLengthOffset();
        byte[] bad = original.clone();
        Arrays.fill(bad, at, at + 11, (byte) 0xFF);
        assertMessage(loadFailure(bad), ": graph: malformed varint");
        // The graph's length prefix (4 bytes for ~90 MB) set to 2^28 - 1, past the end of the file.
        int g = graphLengthOffset();
        assertEquals(4, varintLength(original, g));
        byte[] tooLong = original.clone();
        tooLong[g] = tooLong[g + 1] = tooLong[g + 2] = (byte) 0xFF;
        tooLong[g + 3] = 0x7F;
        assertMessage(loadFailure(tooLong), ": graph declares 268435455 bytes but only " + (original.length - g - 4) + " remain",
                "truncated or corrupt");
    }

    @Test
    void graphsThatDoNotHaveTheExpectedStructure() throws IOException {
        assertMessage(loadFailure(editNode("/encoder/layer.2/attention/self/value/Add", n -> Proto.replace(n, 4, str(4, "Sub")))),
                "encoder.layer.2.attention.self.value.bias should be read by exactly one Add node, but is read by [Sub node"
                        + " '/encoder/layer.2/attention/self/value/Add']");
        assertMessage(loadFailure(editNode("/encoder/layer.2/attention/self/value/MatMul", n -> Proto.replace(n, 4, str(4, "Gemm")))),
                "Add node '/encoder/layer.2/attention/self/value/Add' adds encoder.layer.2.attention.self.value.bias to something"
                        + " other than a MatMul output");
        // A LayerNorm epsilon that differs from the others (BertConfig has one).
        assertMessage(loadFailure(editNode("/encoder/layer.4/output/LayerNorm/Constant_1",
                        n -> Proto.replace(n, 5, new Proto.Field(5, 2, 0, Proto.attrTensor("value",
                                Proto.tensor("", 1).bytes(9, Proto.floatsLe(1e-5f))).build())))),
                "encoder.layer.4.output.LayerNorm has epsilon 1.0E-5 but embeddings.LayerNorm has 1.0E-12");
        // Layer 3's query split into 24 heads of 16 instead of 12 of 32.
        byte[] heads = editConstantInt64("/encoder/layer.3/attention/self/Constant_10", 24,
                editConstantInt64("/encoder/layer.3/attention/self/Constant_11", 16, original));
        assertMessage(loadFailure(heads), "encoder.layer.3 splits attention into 24 heads, layer 0 into 12");
        byte[] noHeads = editConstantInt64("/encoder/layer.0/attention/self/Constant_10", 7, original);
        assertMessage(loadFailure(noHeads), "cannot infer the number of attention heads: no Reshape of encoder.layer.0.attention.self.query's output");
    }

    private static Proto.Field str(int number, String s) {
        return new Proto.Field(number, 2, 0, s.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    private static byte[] editNode(String name, UnaryOperator<byte[]> edit) {
        return editNode(original, name, edit);
    }

    private static byte[] editNode(byte[] model, String name, UnaryOperator<byte[]> edit) {
        boolean[] found = {false};
        byte[] out = Proto.editGraph(model, g -> {
            if (g.number() != 1 || !Proto.field(g.bytes(), 3).string().equals(name)) return g;
            found[0] = true;
            return new Proto.Field(1, 2, 0, edit.apply(g.bytes()));
        });
        assertTrue(found[0], "no node " + name);
        return out;
    }

    private static byte[] editConstantInt64(String node, long value, byte[] model) {
        return editNode(model, node, n -> Proto.replace(n, 5, new Proto.Field(5, 2, 0,
                Proto.attrTensor("value", Proto.tensor("", 7, 1).bytes(9, Proto.longsLe(value))).build())));
    }

    /** Where the length prefix of the graph's first initializer starts in the file. */
    private static int firstInitializerLengthOffset() throws IOException {
        int g = graphLengthOffset();
        CodedInputStream in = CodedInputStream.newInstance(original, g, original.length - g);
        int end = in.readRawVarint32() + in.getTotalBytesRead();
        while (in.getTotalBytesRead() < end) {
            int t = in.readTag();
            if (WireFormat.getTagFieldNumber(t) == 5) return g + in.getTotalBytesRead();
            in.skipField(t);
        }
        throw new IllegalStateException("no initializer");
    }

    /** Where the length prefix of the model's graph field starts in the file. */
    private static int graphLengthOffset() throws IOException {
        CodedInputStream in = CodedInputStream.newInstance(original);
        int tag;
        while ((tag = in.readTag()) != 0) {
            if (WireFormat.getTagFieldNumber(tag) == 7) return in.getTotalBytesRead();
            in.skipField(tag);
        }
        throw new IllegalStateException("no graph");
    }

    private static int varintLength(byte[] b, int at) {
        int n = 1;
        while ((b[at + n - 1] & 0x80) != 0) n++;
        return n;
    }
}
