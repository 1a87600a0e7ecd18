package io.peft4j.io;

import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.blobs;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.data.FashionMnist;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Mlp;
import io.peft4j.peft.PeftModel;
import io.peft4j.peft.TargetModules;
import io.peft4j.train.AdamW;
import io.peft4j.train.MetricsLog;
import io.peft4j.train.Trainer;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lora.LoraConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every I/O failure a user can meet says what was being done to which file, and why, in words:
 * "cannot write /x/y: not a directory". Tests run as root, who passes permission bits, so the
 * failures are made from what root cannot do either: a path under a regular file (not a
 * directory), sysfs (no new files), /dev/full and a full tmpfs (no space), /proc/self/mem (I/O error).
 */
class IoErrorMessagesTest {
    @TempDir
    Path dir;

    private static void assertMessage(Exception e, String... parts) {
        for (String p : parts) assertTrue(e.getMessage().contains(p), "'" + p + "' missing from: " + e.getMessage());
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
    }

    /** A regular file: any path below it fails with "not a directory", even for root. */
    private Path aFile() throws IOException {
        return Files.writeString(dir.resolve("plain-file"), "not a directory");
    }

    private static SafetensorsWriter smallWriter() {
        return new SafetensorsWriter().putF32("w", new long[] {2, 3}, new float[] {0.5f, -1.25f, 2f, 3.5f, -0.75f, 9f});
    }

    private List<String> listing(Path d) throws IOException {
        try (Stream<Path> s = Files.list(d)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void safetensorsWriteUnderAFile() throws IOException {
        Path target = aFile().resolve("model.safetensors");
        IOException e = assertThrows(IOException.class, () -> smallWriter().write(target));
        assertMessage(e, "cannot write " + target + ": ", "not a directory");
    }

    @Test
    void safetensorsWriteWhereEvenRootMayNotCreateFiles() {
        Path target = Path.of("/sys/peft4j-io-test.safetensors");
        IOException e = assertThrows(IOException.class, () -> smallWriter().write(target));
        assertMessage(e, "cannot write " + target + ": ");
        assertTrue(e.getMessage().endsWith("permission denied") || e.getMessage().endsWith("read-only file system"), e.getMessage());
        if (e.getMessage().endsWith("permission denied")) assertTrue(e instanceof AccessDeniedException, e.getClass().getName());
    }

    @Test
    void safetensorsWriteIntoAMissingDirectoryKeepsItsTypeAndSaysWhy() {
        Path target = dir.resolve("absent/model.safetensors");
        NoSuchFileException e = assertThrows(NoSuchFileException.class, () -> smallWriter().write(target));
        assertMessage(e, "cannot write " + target + ": ", "no such file or directory");
    }

    @Test
    void safetensorsOpenOfAMissingFileOrUnderAFile() throws IOException {
        Path missing = dir.resolve("absent.safetensors");
        NoSuchFileException e = assertThrows(NoSuchFileException.class, () -> SafetensorsFile.open(missing));
        assertMessage(e, "cannot read " + missing + ": no such file or directory");
        Path under = aFile().resolve("x.safetensors");
        FileSystemException f = assertThrows(FileSystemException.class, () -> SafetensorsFile.open(under));
        assertMessage(f, "cannot read " + under + ": not a directory");
    }

    @Test
    void modelCheckpointSaveAndLoad() throws IOException {
        Path under = aFile().resolve("base.safetensors");
        try (Mlp mlp = new Mlp(backend(), Mlp.Activation.RELU, 1, 5, 4, 3)) {
            IOException save = assertThrows(IOException.class, () -> ModelCheckpoint.save(mlp, under, Map.of()));
            assertMessage(save, "cannot write " + under + ": ", "not a directory");
            Path missing = dir.resolve("none.safetensors");
            IOException load = assertThrows(IOException.class, () -> ModelCheckpoint.load(mlp, missing));
            assertMessage(load, "cannot read " + missing + ": no such file or directory");
        }
    }

    @Test
    void metricsLogOnAFullDeviceAndUnderAFile() throws IOException {
        Path full = Path.of("/dev/full");
        assertTrue(Files.exists(full), "Linux has /dev/full");
        try (MetricsLog log = new MetricsLog(full)) {
            UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> log.log(Map.of("step", 1)));
            assertMessage(e, "cannot write /dev/full: no space left on device");
        }
        Path parent = aFile().resolve("run");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> new MetricsLog(parent.resolve("metrics.jsonl")));
        assertMessage(e, "cannot create directory " + parent + ": ", "not a directory");
    }

    @Test
    void trainerCheckpointsAndMetrics() throws IOException {
        Path out = aFile().resolve("run");
        Trainer.Config cfg = Trainer.Config.builder().batchSize(16).lr(1e-2f).seed(2).evalEvery(0).progress(false).outDir(out).build();
        try (Mlp mlp = new Mlp(backend(), Mlp.Activation.RELU, 1, 6, 8, 3);
             Trainer t = new Trainer(mlp, Loss.crossEntropy(), AdamW.defaults(), cfg, backend())) {
            UncheckedIOException fit = assertThrows(UncheckedIOException.class, () -> t.fit(blobs(40, 6, 3, 1), null));
            assertMessage(fit, "cannot delete " + out.resolve("metrics.jsonl") + ": not a directory");
            UncheckedIOException save = assertThrows(UncheckedIOException.class, () -> t.saveCheckpoint(out));
            assertMessage(save, "cannot create directory " + out + ": ", "not a directory");
            UncheckedIOException resume = assertThrows(UncheckedIOException.class, () -> t.resume(dir));
            assertMessage(resume, "cannot read " + dir.resolve(Trainer.CHECKPOINT_FILE) + ": no such file or directory");
        }
    }

    @Test
    void peftSaveAndLoad() throws IOException {
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(1), LoraConfig.builder().r(2).alpha(4).targetModules(TargetModules.names("fc2")).build());
        Path under = aFile().resolve("adapter");
        UncheckedIOException save = assertThrows(UncheckedIOException.class, () -> pm.save(under));
        assertMessage(save, "cannot create directory " + under + ": ", "not a directory");
        Path saved = dir.resolve("saved");
        pm.save(saved);
        Files.delete(saved.resolve(PeftModel.WEIGHTS_FILE));
        UncheckedIOException load = assertThrows(UncheckedIOException.class, () -> PeftModel.load(TestSupport.mlp(1), saved));
        assertMessage(load, "cannot read " + saved.resolve(PeftModel.WEIGHTS_FILE) + ": no such file or directory");
    }

    @Test
    void fashionMnistReadError() throws IOException {
        // /proc/self/mem is a regular file whose first page is unmapped: reading it fails with EIO.
        Files.createSymbolicLink(dir.resolve("t10k-labels-idx1-ubyte.gz"), Path.of("/proc/self/mem"));
        Files.writeString(dir.resolve("t10k-images-idx3-ubyte"), "never read");
        UncheckedIOException e = assertThrows(UncheckedIOException.class,
                () -> FashionMnist.load(dir, FashionMnist.Split.TEST, FashionMnist.Task.ORIGINAL, 0));
        assertMessage(e, "cannot read " + dir.resolve("t10k-labels-idx1-ubyte.gz") + ": input/output error");
    }

    /**
     * A full disk during the atomic write: the message says so, and neither the target nor a
     * temporary file is left. Needs a tiny tmpfs, which only a machine that lets root mount
     * can give; elsewhere this one sub-case is reported and left out (/dev/full above still
     * checks the "no space left on device" wording).
     */
    @Test
    void aFullFileSystemDuringAnAtomicWrite() throws Exception {
        Path mnt = Files.createDirectory(dir.resolve("tiny"));
        Process p = new ProcessBuilder("mount", "-t", "tmpfs", "-o", "size=64k", "peft4j-test", mnt.toString())
                .redirectErrorStream(true).start();
        String why = new String(p.getInputStream().readAllBytes()).strip();
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            System.out.println("IoErrorMessagesTest: full-disk sub-case not run: cannot mount a tmpfs here (" + why + ")");
            return;
        }
        try {
            Path target = mnt.resolve("adapter_model.safetensors");
            float[] big = new float[64 * 1024];   // 256 KiB into 64 KiB
            java.util.Arrays.fill(big, 0.25f);
            IOException e = assertThrows(IOException.class, () -> new SafetensorsWriter().putF32("w", new long[] {big.length}, big).write(target));
            assertMessage(e, "cannot write " + target + ": no space left on device");
            assertEquals(List.of(), listing(mnt), "no target and no temporary file remain");

            PeftModel pm = PeftModel.wrap(new Mlp(backend(), Mlp.Activation.RELU, 1, 200, 300, 3),
                    LoraConfig.builder().r(64).alpha(4).targetModules(TargetModules.names("fc1")).build());
            UncheckedIOException s = assertThrows(UncheckedIOException.class, () -> pm.save(mnt.resolve("a")));
            assertMessage(s, "cannot write " + mnt.resolve("a").resolve(PeftModel.WEIGHTS_FILE) + ": no space left on device");
        } finally {
            new ProcessBuilder("umount", mnt.toString()).inheritIO().start().waitFor(30, TimeUnit.SECONDS);
        }
    }
}
