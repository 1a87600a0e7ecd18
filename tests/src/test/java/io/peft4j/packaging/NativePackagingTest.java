package io.peft4j.packaging;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.jar.JarFile;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The java-api jar alone runs on a machine without libdnnl: it carries libpeft4j.so's runtime
 * libraries, extracts them once per content into java.io.tmpdir and loads them from there. Each
 * check runs a fresh JVM on the jar with its own java.io.tmpdir.
 */
class NativePackagingTest {
    static final String NATIVE = "META-INF/native/linux-x86_64/";
    static final List<String> SHIPPED = List.of("libgomp.so.1", "libOpenCL.so.1", "libdnnl.so.2");
    /** What the loaded libraries may still take from the system: glibc and the C++ runtime. */
    static final List<String> SYSTEM_OK = List.of("libc.so", "libm.so", "libdl.so", "libpthread.so", "librt.so",
            "ld-linux-x86-64.so", "libstdc++.so", "libgcc_s.so");

    private static List<String> args() throws Exception {
        Path testClasses = Path.of(MapsReport.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        return List.of("-cp", Forked.javaApiJar() + File.pathSeparator + testClasses, MapsReport.class.getName());
    }

    private static List<Path> extractionDirs(Path tmp) throws Exception {
        try (Stream<Path> s = Files.list(tmp)) {
            return s.filter(p -> p.getFileName().toString().startsWith("peft4j-native-")).toList();
        }
    }

    private static Path onlyExtractionDir(Path tmp) throws Exception {
        List<Path> dirs = extractionDirs(tmp);
        assertEquals(1, dirs.size(), "extraction directories in " + tmp + ": " + dirs);
        return dirs.get(0);
    }

    private static Forked.Result load(Path tmp, String name) throws Exception {
        Forked.Result r = Forked.run(tmp, tmp.resolveSibling(name + ".log"), args(), 60);
        assertEquals(0, r.exitCode(), "forked JVM failed:\n" + r.stdout() + r.stderr());
        return r;
    }

    private static byte[] packaged(String file) throws Exception {
        try (JarFile jar = new JarFile(Forked.javaApiJar().toFile()); InputStream in = jar.getInputStream(jar.getEntry(NATIVE + file))) {
            return in.readAllBytes();
        }
    }

    @Test
    void jarCarriesRuntimeLibrariesAndLoadsThemFromTheExtractedDirectory(@TempDir Path work) throws Exception {
        Path tmp = Files.createDirectory(work.resolve("tmp"));
        Forked.Result r = load(tmp, "first");
        Path dir = onlyExtractionDir(tmp).toRealPath();
        assertTrue(r.stdout().contains("loaded " + dir.resolve("libpeft4j.so")), r.stdout());
        List<String> mapped = r.stdout().lines().filter(l -> l.startsWith("mapped ")).map(l -> l.substring(7)).toList();
        for (String lib : SHIPPED) {
            assertTrue(mapped.contains(dir.resolve(lib).toString()), lib + " not mapped from " + dir + ":\n" + r.stdout());
        }
        String javaHome = Path.of(System.getProperty("java.home")).toRealPath().toString();
        for (String m : mapped) {
            String name = Path.of(m).getFileName().toString();
            boolean ok = m.startsWith(dir + "/") || m.startsWith(javaHome + "/") || SYSTEM_OK.stream().anyMatch(name::startsWith);
            assertTrue(ok, "loaded from the system, not shipped in the jar: " + m + "\n" + r.stdout());
        }
        try (JarFile jar = new JarFile(Forked.javaApiJar().toFile())) {
            String notice = new String(jar.getInputStream(jar.getEntry("META-INF/THIRD-PARTY.md")).readAllBytes());
            for (String s : List.of("libdnnl.so.2", "Apache-2.0", "libgomp.so.1", "GCC Runtime Library Exception", "libOpenCL.so.1", "BSD-2-Clause")) {
                assertTrue(notice.contains(s), "META-INF/THIRD-PARTY.md does not mention " + s);
            }
        }
    }

    @Test
    void extractionIsReusedAndADamagedFileIsReplaced(@TempDir Path work) throws Exception {
        Path tmp = Files.createDirectory(work.resolve("tmp"));
        load(tmp, "first");
        Path dir = onlyExtractionDir(tmp);
        Path dnnl = dir.resolve("libdnnl.so.2");
        BasicFileAttributes before = Files.readAttributes(dnnl, BasicFileAttributes.class);

        load(tmp, "second");
        assertEquals(dir, onlyExtractionDir(tmp));
        BasicFileAttributes after = Files.readAttributes(dnnl, BasicFileAttributes.class);
        assertEquals(before.fileKey(), after.fileKey(), "an intact file was rewritten");
        assertEquals(before.lastModifiedTime(), after.lastModifiedTime(), "an intact file was rewritten");

        // Same size, different bytes: only the content hash can tell.
        byte[] damaged = Files.readAllBytes(dnnl);
        Random random = new Random(7);
        for (int i = 0; i < 64; i++) {
            damaged[random.nextInt(damaged.length)] ^= (byte) (1 + random.nextInt(255));
        }
        Files.write(dnnl, damaged);
        load(tmp, "third");
        assertEquals(dir, onlyExtractionDir(tmp));
        assertArrayEquals(packaged("libdnnl.so.2"), Files.readAllBytes(dnnl), "the damaged libdnnl.so.2 was not replaced");
    }

    @Test
    void twoJvmsStartingAtOnceBothLoad(@TempDir Path work) throws Exception {
        Path tmp = Files.createDirectory(work.resolve("tmp"));
        List<Process> ps = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            ps.add(Forked.start(tmp, work.resolve("jvm" + i + ".log"), args()));
        }
        for (int i = 0; i < 2; i++) {
            Forked.Result r = Forked.finish(ps.get(i), work.resolve("jvm" + i + ".log"), 60);
            assertEquals(0, r.exitCode(), "JVM " + i + " failed:\n" + r.stdout() + r.stderr());
        }
        Path dir = onlyExtractionDir(tmp);
        for (String lib : List.of("libgomp.so.1", "libOpenCL.so.1", "libdnnl.so.2", "libpeft4j.so")) {
            assertArrayEquals(packaged(lib), Files.readAllBytes(dir.resolve(lib)), lib);
        }
        try (Stream<Path> s = Files.list(dir)) {
            List<Path> leftovers = s.filter(p -> p.getFileName().toString().endsWith(".tmp")).toList();
            assertTrue(leftovers.isEmpty(), "temporary files left: " + leftovers);
        }
    }
}
