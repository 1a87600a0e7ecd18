package io.peft4j.cli;

import io.peft4j.io.IoErrors;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.Set;
import java.util.stream.Stream;

/**
 * An output directory written as a whole: a run works in {@code .NAME.partial} beside {@code --out}
 * and moves it into place when it finishes, so {@code --out} always holds one complete run. A lock
 * file ({@code .NAME.lock}) refuses a second run on the same {@code --out} while one is going; an
 * interrupted run leaves its partial directory, which {@code train --resume} continues.
 */
final class RunDir implements AutoCloseable {
    /** Marks a directory as a peft4j run, so that a later run may replace it. */
    static final String MARKER = "run.json";

    private final Path out;
    private final Path work;
    private final FileChannel lockChannel;
    private final FileLock lock;
    private final Thread interruptNote;
    private boolean committed;

    private RunDir(Path out, Path work, FileChannel lockChannel, FileLock lock, Thread interruptNote) {
        this.out = out;
        this.work = work;
        this.lockChannel = lockChannel;
        this.lock = lock;
        this.interruptNote = interruptNote;
    }

    static Path partialOf(Path out) {
        Path abs = out.toAbsolutePath().normalize();
        return abs.resolveSibling("." + abs.getFileName() + ".partial");
    }

    /**
     * Locks {@code out} for this run and prepares its work directory.
     *
     * @param keepPartial continue in an existing partial directory (resume) instead of starting afresh
     * @throws IllegalStateException when another run holds {@code out}, or {@code out} exists and is not a peft4j run
     */
    static RunDir open(Path out, boolean keepPartial) {
        Path abs = out.toAbsolutePath().normalize();
        if (abs.getParent() == null) throw new IllegalArgumentException("--out " + out + ": cannot write a run over the file-system root");
        if (Files.exists(abs) && !isRun(abs) && !isEmptyDir(abs)) {
            throw new IllegalArgumentException("--out " + out + " exists and is not a peft4j run directory (no " + MARKER
                    + "); choose a new or empty directory");
        }
        Path lockFile = abs.resolveSibling("." + abs.getFileName() + ".lock");
        FileChannel ch = null;
        try {
            Files.createDirectories(abs.getParent());
            ch = FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
            FileLock lock;
            try {
                lock = ch.tryLock();
            } catch (OverlappingFileLockException e) {
                lock = null;
            }
            if (lock == null) {
                throw new IllegalStateException("--out " + out + " is in use by another peft4j run (lock " + lockFile
                        + "); wait for it or choose another --out");
            }
            Path work = partialOf(abs);
            if (!keepPartial) deleteTree(work);
            Files.createDirectories(work);
            Thread note = new Thread(() -> System.err.println("peft4j: interrupted; the unfinished run is in " + work
                    + (Files.isRegularFile(work.resolve("trainer_state.safetensors")) ? " (continue it with: peft4j train --resume " + out + ")" : "")
                    + "; " + out + " is unchanged"));
            Runtime.getRuntime().addShutdownHook(note);
            return new RunDir(abs, work, ch, lock, note);
        } catch (IOException e) {
            closeQuietly(ch);
            throw IoErrors.unchecked("prepare output directory", out, e);
        } catch (RuntimeException e) {
            closeQuietly(ch);
            throw e;
        }
    }

    /** A run has run.json; a run written before run.json existed holds only peft4j's own outputs. */
    static boolean isRun(Path dir) {
        if (Files.isRegularFile(dir.resolve(MARKER))) return true;
        if (!Files.isRegularFile(dir.resolve("adapter").resolve("adapter_config.json"))) return false;
        try (Stream<Path> s = Files.list(dir)) {
            return s.allMatch(p -> OUTPUTS.contains(p.getFileName().toString()));
        } catch (IOException e) {
            return false;
        }
    }

    private static final Set<String> OUTPUTS = Set.of("adapter", "metrics.jsonl", "training.png", "trainer_state.safetensors");

    private static boolean isEmptyDir(Path dir) {
        if (!Files.isDirectory(dir)) return false;
        try (Stream<Path> s = Files.list(dir)) {
            return s.findAny().isEmpty();
        } catch (IOException e) {
            return false;
        }
    }

    /** Where the run writes its files until {@link #commit}. */
    Path work() {
        return work;
    }

    Path out() {
        return out;
    }

    /** Moves the finished run into place, replacing the previous run in {@code out}. */
    void commit() {
        Path old = out.resolveSibling("." + out.getFileName() + ".old");
        try {
            deleteTree(old);
            if (Files.exists(out)) Files.move(out, old, StandardCopyOption.ATOMIC_MOVE);
            Files.move(work, out, StandardCopyOption.ATOMIC_MOVE);
            deleteTree(old);
            committed = true;
        } catch (IOException e) {
            throw IoErrors.unchecked("move the finished run " + work + " to", out, e);
        }
    }

    @Override
    public void close() {
        try {
            Runtime.getRuntime().removeShutdownHook(interruptNote);
        } catch (IllegalStateException ignored) {
            // shutting down already: the hook runs and says where the partial run is
        }
        try {
            lock.release();
        } catch (IOException ignored) {
            // closing the channel below releases it too
        }
        closeQuietly(lockChannel);
        if (!committed && Files.isDirectory(work) && !Files.isRegularFile(work.resolve("trainer_state.safetensors"))) {
            try {
                deleteTree(work);   // nothing resumable in it
            } catch (IOException ignored) {
                // a leftover partial directory is replaced by the next run
            }
        }
    }

    private static void closeQuietly(FileChannel ch) {
        if (ch == null) return;
        try {
            ch.close();
        } catch (IOException ignored) {
            // nothing to do: the lock dies with the channel or the process
        }
    }

    static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) return;
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        }
    }
}
