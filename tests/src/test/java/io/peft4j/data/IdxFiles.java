package io.peft4j.data;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;

/** Writes small IDX files (gzip or raw) for the loader tests. */
final class IdxFiles {

    private IdxFiles() {
    }

    static byte[] images(int magic, int count, int rows, int cols, byte[] pixels) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        DataOutputStream out = new DataOutputStream(bytes);
        out.writeInt(magic);
        out.writeInt(count);
        out.writeInt(rows);
        out.writeInt(cols);
        out.write(pixels);
        out.flush();
        return bytes.toByteArray();
    }

    static byte[] labels(int magic, int count, byte[] labels) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        DataOutputStream out = new DataOutputStream(bytes);
        out.writeInt(magic);
        out.writeInt(count);
        out.write(labels);
        out.flush();
        return bytes.toByteArray();
    }

    static byte[] gzip(byte[] raw) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (OutputStream gz = new GZIPOutputStream(bytes)) {
            gz.write(raw);
        }
        return bytes.toByteArray();
    }

    /** Writes a well-formed gzip pair for {@code split} holding {@code pixels.length / 784} images. */
    static void writeSplit(Path dir, String prefix, byte[] pixels, byte[] labels) throws IOException {
        int n = labels.length;
        Files.write(dir.resolve(prefix + "-images-idx3-ubyte.gz"), gzip(images(2051, n, 28, 28, pixels)));
        Files.write(dir.resolve(prefix + "-labels-idx1-ubyte.gz"), gzip(labels(2049, n, labels)));
    }
}
