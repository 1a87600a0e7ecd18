package io.peft4j.backend;

import io.peft4j.io.AtomicFiles;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.channels.Channels;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Loads peft4j's native libraries with System.load, so that the jextract stubs (which look
 * symbols up through the class loader) find them. Order: -Dpeft4j.native.dir or
 * PEFT4J_NATIVE_DIR, then the copy packaged in the jar, then java.library.path. A failure lists
 * every path tried with its dlopen message.
 *
 * <p>The jar also carries the runtime libraries libpeft4j.so needs beyond glibc and the C++
 * runtime ({@link #RUNTIME_LIBS}); whichever of them sit next to the chosen library are loaded
 * first, in dependency order, so a machine with only a JDK runs peft4j.
 *
 * <p>The packaged files are extracted once per content into
 * {@code ${java.io.tmpdir}/peft4j-native-<version>-<hash of the files>/} and reused by every
 * later JVM: a file whose size or SHA-256 differs from the packaged one is rewritten, each file
 * atomically (temporary file + rename), so JVMs starting at once never see a partial library.
 */
public final class NativeLoader {
    static final String RESOURCE_DIR = "META-INF/native/linux-x86_64/";
    /** Dependencies of libpeft4j.so shipped in the jar, in load order (libdnnl needs the other two). */
    static final List<String> RUNTIME_LIBS = List.of("libgomp.so.1", "libOpenCL.so.1", "libdnnl.so.2");
    private static final List<String> PACKAGED = Stream.concat(RUNTIME_LIBS.stream(),
            Stream.of("libpeft4j.so", "libpeft4j_cuda.so")).toList();
    /** A temporary file older than this was left by a killed JVM, not one still writing. */
    private static final Duration STALE_TMP = Duration.ofMinutes(10);
    /** Rounds an idle OpenMP worker spins before it sleeps (see {@link #boundOpenMpSpinning}). */
    public static final String SPIN_COUNT = "20000";
    private static final Object LOCK = new Object();
    private static final Set<String> loadedRuntimeLibs = new HashSet<>();
    private static Path loadedCpu;
    private static Path extractDir;

    private NativeLoader() {}

    /** Loads libpeft4j.so once; returns the path it was loaded from. */
    public static Path loadCpu() {
        synchronized (LOCK) {
            if (loadedCpu == null) {
                boundOpenMpSpinning();
                loadedCpu = load("peft4j");
            }
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
            Path extracted = extracted();
            if (extracted != null && Files.isRegularFile(extracted.resolve(file))) candidates.add(extracted.resolve(file));
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
                loadRuntimeLibsBeside(candidate);
                System.load(candidate.toAbsolutePath().toString());
                return candidate;
            } catch (UnsatisfiedLinkError e) {
                tried.add(candidate + ": " + e.getMessage());
            }
        }
        throw new UnsatisfiedLinkError("cannot load " + file + "; tried:\n  " + String.join("\n  ", tried)
                + "\n(set -Dpeft4j.native.dir=DIR or PEFT4J_NATIVE_DIR to the directory holding " + file + ")");
    }

    /**
     * Sets GOMP_SPINCOUNT=20000 in this process's environment before libgomp reads it (when it is
     * first loaded, with libpeft4j.so), unless the user chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT
     * set). libgomp's default lets an idle worker spin up to 300,000 rounds between parallel
     * regions: fine on an idle machine, but beside other busy processes or JVM threads the spinning
     * worker holds the core its team needs. Demo ViT training step, 2 threads (ms, median):
     * idle machine 18.8 default, 18.9 with 20000, 33.5 passive; beside two busy processes 84
     * default (mean 115–230), 43 with 20000, 77 passive. No effect if libgomp was loaded before peft4j.
     */
    private static void boundOpenMpSpinning() {
        if (System.getenv("OMP_WAIT_POLICY") != null || System.getenv("GOMP_SPINCOUNT") != null) return;
        Linker linker = Linker.nativeLinker();
        var setenv = linker.defaultLookup().find("setenv");
        if (setenv.isEmpty()) return;
        MethodHandle h = linker.downcallHandle(setenv.get(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
        try (Arena arena = Arena.ofConfined()) {
            int rc = (int) h.invokeExact(arena.allocateFrom("GOMP_SPINCOUNT"), arena.allocateFrom(SPIN_COUNT), 0);
            if (rc != 0) throw new IllegalStateException("setenv(GOMP_SPINCOUNT) returned " + rc);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("setenv(GOMP_SPINCOUNT) failed", t);
        }
    }

    /**
     * Loads the runtime libraries found next to {@code library}, each once per JVM: once a soname is
     * loaded the dynamic linker resolves libpeft4j.so's (and libdnnl's) needs to it. Those not there
     * come from the system, through the RUNPATH/ld.so search.
     */
    private static void loadRuntimeLibsBeside(Path library) {
        Path dir = library.toAbsolutePath().getParent();
        for (String lib : RUNTIME_LIBS) {
            Path p = dir.resolve(lib);
            if (!loadedRuntimeLibs.contains(lib) && Files.isRegularFile(p)) {
                System.load(p.toString());
                loadedRuntimeLibs.add(lib);
            }
        }
    }

    /** The directory holding the jar's native files, extracted and checked once per JVM; null if none are packaged. */
    private static Path extracted() throws IOException {
        if (extractDir == null) extractDir = extractTo(Path.of(System.getProperty("java.io.tmpdir")));
        return extractDir;
    }

    /**
     * Makes {@code base/peft4j-native-<version>-<hash>/} hold exactly the packaged native files and
     * returns it; null if the jar packages none. Safe against other JVMs doing the same at once.
     */
    private static Path extractTo(Path base) throws IOException {
        Map<String, Digest> packaged = new LinkedHashMap<>();
        for (String file : PACKAGED) {
            try (InputStream in = resource(file)) {
                if (in != null) packaged.put(file, Digest.of(in));
            }
        }
        if (packaged.isEmpty()) return null;
        MessageDigest all = newSha256();
        packaged.forEach((file, d) -> all.update((file + ' ' + d.size + ' ' + d.sha256 + '\n').getBytes(StandardCharsets.UTF_8)));
        String version = NativeLoader.class.getPackage().getImplementationVersion();
        Path dir = base.resolve("peft4j-native-" + (version == null ? "" : version + "-")
                + HexFormat.of().formatHex(all.digest()).substring(0, 16));
        try {
            Files.createDirectories(dir);
        } catch (FileAlreadyExistsException e) {
            throw new IOException(dir + " exists and is not a directory", e);
        }
        removeStaleTemporaries(dir);
        for (Map.Entry<String, Digest> e : packaged.entrySet()) {
            Path target = dir.resolve(e.getKey());
            if (Files.isRegularFile(target) && Files.size(target) == e.getValue().size) {
                try (InputStream in = Files.newInputStream(target)) {
                    if (Digest.of(in).sha256.equals(e.getValue().sha256)) continue;
                }
            }
            // missing or damaged: replace it in one rename, so a JVM loading it at the same time sees old or new
            try (InputStream in = resource(e.getKey())) {
                AtomicFiles.write(target, ch -> in.transferTo(Channels.newOutputStream(ch)));
            }
            try (InputStream in = Files.newInputStream(target)) {
                if (!Digest.of(in).sha256.equals(e.getValue().sha256)) {
                    throw new IOException(target + ": content differs from the packaged " + RESOURCE_DIR + e.getKey()
                            + " right after writing it");
                }
            }
        }
        return dir;
    }

    /** Deletes AtomicFiles temporaries ({@code .<name>.<random>.tmp}) that a killed JVM left behind. */
    private static void removeStaleTemporaries(Path dir) throws IOException {
        FileTime cutoff = FileTime.from(Instant.now().minus(STALE_TMP));
        try (Stream<Path> files = Files.list(dir)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                String n = p.getFileName().toString();
                try {
                    if (n.startsWith(".") && n.endsWith(".tmp") && Files.getLastModifiedTime(p).compareTo(cutoff) < 0) {
                        Files.deleteIfExists(p);
                    }
                } catch (IOException e) {
                    // another JVM removed it first
                }
            }
        }
    }

    private static InputStream resource(String file) {
        return NativeLoader.class.getClassLoader().getResourceAsStream(RESOURCE_DIR + file);
    }

    private static MessageDigest newSha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every JDK", e);
        }
    }

    private record Digest(long size, String sha256) {
        static Digest of(InputStream in) throws IOException {
            MessageDigest md = newSha256();
            byte[] buf = new byte[1 << 16];
            long size = 0;
            for (int n; (n = in.read(buf)) > 0; size += n) md.update(buf, 0, n);
            return new Digest(size, HexFormat.of().formatHex(md.digest()));
        }
    }
}
