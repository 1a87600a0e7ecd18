package io.peft4j.backend;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Loads peft4j's native libraries with System.load, so that the jextract stubs (which look
 * symbols up through the class loader) find them. Order: -Dpeft4j.native.dir or
 * PEFT4J_NATIVE_DIR, then the copy packaged in the jar (extracted to a temp dir), then
 * java.library.path. A failure lists every path tried with its dlopen message.
 */
public final class NativeLoader {
    static final String RESOURCE_DIR = "META-INF/native/linux-x86_64/";
    private static final Object LOCK = new Object();
    private static Path loadedCpu;
    private static Path extractDir;

    private NativeLoader() {}

    /** Loads libpeft4j.so once; returns the path it was loaded from. */
    public static Path loadCpu() {
        synchronized (LOCK) {
            if (loadedCpu == null) loadedCpu = load("peft4j");
            return loadedCpu;
        }
    }

    /** Loads libpeft4j_cuda.so; throws UnsatisfiedLinkError naming every path tried and why. */
    public static Path loadCuda() {
        synchronized (LOCK) {
            return load("peft4j_cuda");
        }
    }

    private static Path load(String name) {
        String file = System.mapLibraryName(name);
        List<String> tried = new ArrayList<>();
        List<Path> candidates = new ArrayList<>();
        String dir = System.getProperty("peft4j.native.dir");
        if (dir == null || dir.isBlank()) dir = System.getenv("PEFT4J_NATIVE_DIR");
        if (dir != null && !dir.isBlank()) candidates.add(Path.of(dir, file));
        try {
            Path extracted = extract(file);
            if (extracted != null) candidates.add(extracted);
            else tried.add("jar resource " + RESOURCE_DIR + file + ": not packaged");
        } catch (IOException e) {
            tried.add("jar resource " + RESOURCE_DIR + file + ": extraction failed: " + e.getMessage());
        }
        for (String p : System.getProperty("java.library.path", "").split(java.io.File.pathSeparator)) {
            if (!p.isBlank()) candidates.add(Path.of(p, file));
        }
        for (Path candidate : candidates) {
            if (!Files.isRegularFile(candidate)) {
                tried.add(candidate + ": no such file");
                continue;
            }
            try {
                System.load(candidate.toAbsolutePath().toString());
                return candidate;
            } catch (UnsatisfiedLinkError e) {
                tried.add(candidate + ": " + e.getMessage());
            }
        }
        throw new UnsatisfiedLinkError("cannot load " + file + "; tried:\n  " + String.join("\n  ", tried)
                + "\n(set -Dpeft4j.native.dir=DIR or PEFT4J_NATIVE_DIR to the directory holding " + file + ")");
    }

    private static Path extract(String file) throws IOException {
        try (InputStream in = NativeLoader.class.getClassLoader().getResourceAsStream(RESOURCE_DIR + file)) {
            if (in == null) return null;
            if (extractDir == null) {
                extractDir = Files.createTempDirectory("peft4j-native-");
                extractDir.toFile().deleteOnExit();
            }
            Path target = extractDir.resolve(file);
            Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
            target.toFile().deleteOnExit();
            return target;
        }
    }
}
