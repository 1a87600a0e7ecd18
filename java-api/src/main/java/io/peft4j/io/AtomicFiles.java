package io.peft4j.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermission;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.Objects;
import java.util.Set;

/**
 * Crash-safe file replacement: the content goes to a temporary file in the target's directory,
 * is forced to disk, and is then renamed over the target in one atomic step. Readers see either
 * the old file or the complete new one, never a half-written file; if writing fails the
 * temporary file is deleted and the old file is left untouched.
 */
public final class AtomicFiles {

    /** Writes the whole content of a file to an open channel positioned at 0. */
    @FunctionalInterface
    public interface ChannelWriter {
        void writeTo(FileChannel channel) throws IOException;
    }

    private static final SecureRandom RANDOM = new SecureRandom();
    private static final int CREATE_ATTEMPTS = 16;

    private AtomicFiles() {
    }

    /**
     * Replaces {@code target} atomically with what {@code body} writes. The temporary file is
     * named {@code .<target name>.<random>.tmp} in the same directory. When {@code target}
     * already exists its POSIX permissions are carried over to the new file; otherwise the new
     * file gets the process's default permissions (as a plain create would).
     *
     * @throws IOException if the directory does not exist, the write, the fsync or the rename
     *                     fails; any exception from {@code body} propagates unchanged. In every
     *                     failure case the temporary file is removed and {@code target} is as
     *                     it was.
     */
    public static void write(Path target, ChannelWriter body) throws IOException {
        Objects.requireNonNull(target, "target");
        Objects.requireNonNull(body, "body");
        Path absolute = target.toAbsolutePath();
        Path fileName = absolute.getFileName();
        Path dir = absolute.getParent();
        if (fileName == null || dir == null) {
            throw new IllegalArgumentException("not a file path: " + target);
        }
        if (Files.isDirectory(absolute)) {
            throw new IOException("cannot write " + target + ": is a directory");
        }
        Path tmp = null;
        FileChannel channel = null;
        boolean inBody = false;
        try {
            for (int attempt = 0; ; attempt++) {
                Path candidate = dir.resolve("." + fileName + "." + randomSuffix() + ".tmp");
                try {
                    channel = FileChannel.open(candidate, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
                    tmp = candidate;
                    break;
                } catch (FileAlreadyExistsException e) {
                    if (attempt + 1 >= CREATE_ATTEMPTS) throw e;
                }
            }
            copyPermissions(absolute, tmp);
            inBody = true;
            body.writeTo(channel);
            inBody = false;
            channel.force(true);
            channel.close();
            channel = null;
            Files.move(tmp, absolute, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            tmp = null;
        } catch (Throwable t) {
            if (channel != null) {
                try {
                    channel.close();
                } catch (IOException e) {
                    t.addSuppressed(e);
                }
            }
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException e) {
                    t.addSuppressed(e);
                }
            }
            // The body describes its own failures; ours get the target, the operation and the cause.
            if (!inBody && t instanceof IOException e) throw IoErrors.describe("write", target, e);
            throw t;
        }
        syncDirectory(dir);
    }

    /** Replaces {@code target} atomically with {@code bytes}. */
    public static void writeBytes(Path target, byte[] bytes) throws IOException {
        Objects.requireNonNull(bytes, "bytes");
        write(target, ch -> writeFully(ch, ByteBuffer.wrap(bytes)));
    }

    /** Replaces {@code target} atomically with {@code text} encoded as UTF-8. */
    public static void writeString(Path target, String text) throws IOException {
        Objects.requireNonNull(text, "text");
        writeBytes(target, text.getBytes(StandardCharsets.UTF_8));
    }

    /** Writes every remaining byte of {@code buffer} (a channel may write fewer per call). */
    static void writeFully(FileChannel channel, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
    }

    private static String randomSuffix() {
        byte[] b = new byte[6];
        RANDOM.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    private static void copyPermissions(Path from, Path to) throws IOException {
        PosixFileAttributeView src = Files.getFileAttributeView(from, PosixFileAttributeView.class);
        PosixFileAttributeView dst = Files.getFileAttributeView(to, PosixFileAttributeView.class);
        if (src == null || dst == null || !Files.exists(from, LinkOption.NOFOLLOW_LINKS)) return;
        Set<PosixFilePermission> perms;
        try {
            perms = src.readAttributes().permissions();
        } catch (IOException e) {
            return; // the old file vanished or is unreadable: keep the default permissions
        }
        dst.setPermissions(perms);
    }

    /** Makes the rename itself durable; not every platform can open a directory, so best effort. */
    private static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException | UnsupportedOperationException e) {
            // The rename has happened; only its durability across a power loss is not forced here.
        }
    }
}
