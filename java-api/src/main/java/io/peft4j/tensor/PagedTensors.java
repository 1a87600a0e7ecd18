package io.peft4j.tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;

/**
 * Tensors whose memory is a shared mapping of a file, so the OS can write their pages out under
 * memory pressure and read them back on use (the CPU counterpart of bitsandbytes' paged optimizer
 * state in CUDA unified memory). The file is unlinked as soon as it is mapped: nothing is left on
 * disk after the tensor is closed or the process ends.
 */
public final class PagedTensors {
    /** Name prefix of the backing files (visible in /proc/self/maps as "(deleted)" entries). */
    public static final String FILE_PREFIX = "peft4j-paged-";

    private PagedTensors() {}

    /** A zero-filled tensor backed by a new file in {@code dir}. */
    public static Tensor zeros(Path dir, DType dtype, long... shape) {
        long bytes = Tensor.byteSize(dtype, shape);
        Path file = null;
        Arena arena = Arena.ofShared();
        try {
            file = Files.createTempFile(dir, FILE_PREFIX, ".bin");
            MemorySegment seg;
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                // A new file reads as zeros; at least one byte so that an empty tensor still maps.
                seg = ch.map(FileChannel.MapMode.READ_WRITE, 0, Math.max(bytes, 1), arena);
            }
            Files.delete(file);
            return new Tensor(dtype, shape, seg.asSlice(0, bytes), arena, null, 0, null);
        } catch (IOException e) {
            arena.close();
            if (file != null) {
                try {
                    Files.deleteIfExists(file);
                } catch (IOException ignored) {
                    // the first error is the one to report
                }
            }
            throw new UncheckedIOException("cannot map paged memory for " + dtype + Arrays.toString(shape) + " in " + dir + ": "
                    + e.getMessage(), e);
        }
    }
}
