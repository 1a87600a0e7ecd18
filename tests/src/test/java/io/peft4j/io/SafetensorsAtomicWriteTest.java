package io.peft4j.io;

import io.peft4j.tensor.DType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafetensorsAtomicWriteTest {

    @TempDir
    Path dir;

    private List<String> listing() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    private Path writeOld() throws IOException {
        Path p = dir.resolve("adapter_model.safetensors");
        new SafetensorsWriter().metadata("format", "pt")
                .putF32("old", new long[]{2}, new float[]{1f, 2f}).write(p);
        return p;
    }

    @Test
    void failureMidWriteLeavesTheOldFileAndNoTemporaryFile() throws IOException {
        Path p = writeOld();
        byte[] before = Files.readAllBytes(p);

        // The first tensor is fine and large enough that data has already reached the temp file
        // when the second one, whose memory was freed after put(), fails the copy.
        SafetensorsWriter w = new SafetensorsWriter()
                .put("a_first", DType.I64, new long[]{1 << 16}, new byte[8 << 16]);
        Arena arena = Arena.ofConfined();
        MemorySegment doomed = arena.allocate(4096);
        w.put("b_second", DType.F32, new long[]{1024}, doomed);
        arena.close();

        IllegalStateException e = assertThrows(IllegalStateException.class, () -> w.write(p));
        assertTrue(e.getMessage().toLowerCase().contains("closed"), e.getMessage());
        assertArrayEquals(before, Files.readAllBytes(p));
        assertEquals(List.of("adapter_model.safetensors"), listing());
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertEquals(List.of("old"), f.names());
            assertArrayEquals(new float[]{1f, 2f}, f.readF32("old"));
        }
    }

    @Test
    void failingBodyLeavesNoTraceForANewFile() {
        Path p = dir.resolve("config.json");
        IOException boom = new IOException("disk on fire");
        IOException thrown = assertThrows(IOException.class, () -> AtomicFiles.write(p, ch -> {
            ch.write(java.nio.ByteBuffer.wrap("partial".getBytes(StandardCharsets.UTF_8)));
            throw boom;
        }));
        assertSame(boom, thrown);
        assertFalse(Files.exists(p));
        assertEquals(List.of(), assertDoesNotThrowListing());
    }

    private List<String> assertDoesNotThrowListing() {
        try {
            return listing();
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void successfulOverwriteReplacesTheContentAndCleansUp() throws IOException {
        Path p = writeOld();
        new SafetensorsWriter().putF32("new", new long[]{3}, new float[]{7f, 8f, 9f}).write(p);
        assertEquals(List.of("adapter_model.safetensors"), listing());
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertEquals(List.of("new"), f.names());
            assertTrue(f.metadata().isEmpty());
            assertArrayEquals(new float[]{7f, 8f, 9f}, f.readF32("new"));
        }
    }

    @Test
    void anOpenMappingSurvivesTheFileBeingReplaced() throws IOException {
        Path p = writeOld();
        try (SafetensorsFile old = SafetensorsFile.open(p)) {
            new SafetensorsWriter().putF32("new", new long[]{1}, new float[]{5f}).write(p);
            assertArrayEquals(new float[]{1f, 2f}, old.readF32("old"));
        }
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertArrayEquals(new float[]{5f}, f.readF32("new"));
        }
    }

    @Test
    void missingDirectoryFailsWithoutCreatingAnything() throws IOException {
        Path p = dir.resolve("no/such/dir/x.safetensors");
        NoSuchFileException e = assertThrows(NoSuchFileException.class,
                () -> new SafetensorsWriter().putF32("a", new long[]{1}, new float[]{1f}).write(p));
        assertTrue(e.getMessage().contains(p.getParent().toString()), e.getMessage());
        assertEquals(List.of(), listing());
    }

    @Test
    void writingOverADirectoryIsRefused() throws IOException {
        Path sub = Files.createDirectory(dir.resolve("sub"));
        IOException e = assertThrows(IOException.class,
                () -> new SafetensorsWriter().putF32("a", new long[]{1}, new float[]{1f}).write(sub));
        assertTrue(e.getMessage().contains("is a directory"), e.getMessage());
        assertTrue(Files.isDirectory(sub));
        assertEquals(List.of("sub"), listing());
    }

    @Test
    void overwriteKeepsThePermissionsOfTheOldFile() throws IOException {
        assertTrue(FileSystems.getDefault().supportedFileAttributeViews().contains("posix"), "peft4j runs on Linux (POSIX)");
        Path p = writeOld();
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rw-r-----"));
        new SafetensorsWriter().putF32("x", new long[]{1}, new float[]{1f}).write(p);
        assertEquals("rw-r-----", PosixFilePermissions.toString(Files.getPosixFilePermissions(p)));
    }

    @Test
    void stringAndByteHelpersReplaceAtomically() throws IOException {
        Path p = dir.resolve("adapter_config.json");
        AtomicFiles.writeString(p, "{\"peft_type\":\"LORA\"}");
        AtomicFiles.writeString(p, "{\"peft_type\":\"LOHA\",\"r\":8}");
        assertEquals("{\"peft_type\":\"LOHA\",\"r\":8}", Files.readString(p));
        AtomicFiles.writeBytes(p, new byte[0]);
        assertEquals(0, Files.size(p));
        assertEquals(List.of("adapter_config.json"), listing());
    }
}
