package io.peft4j.packaging;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.NativeLoader;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/** Fresh JVMs on the JDK running the tests, for what one process cannot show (extraction, the class path a user has). */
public final class Forked {
    private Forked() {
    }

    /** The finished java-api jar (built by the package phase that precedes the tests in `mvn verify`). */
    public static Path javaApiJar() throws Exception {
        Path p = Path.of(NativeLoader.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        assertTrue(p.toString().endsWith(".jar"), "java-api is on the test class path as " + p
                + ", not as its jar: run the tests through `mvn verify`, which packages java-api first");
        return p;
    }

    /** The jars a library user has at run time: the test class path less the test classes and the test-scoped jars. */
    public static List<String> runtimeJars() {
        List<String> cp = new ArrayList<>();
        for (String e : System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")).split(File.pathSeparator)) {
            String name = Path.of(e).getFileName().toString();
            if (e.endsWith(".jar") && !TEST_ONLY.matcher(name).lookingAt()) cp.add(e);
        }
        return cp;
    }

    /** Jars that tests/pom.xml adds with scope test (JUnit and its parts, the CLI's picocli and progressbar with jline). */
    private static final Pattern TEST_ONLY = Pattern.compile(
            "junit-|opentest4j-|apiguardian-|picocli-|progressbar-|jline-");

    public record Result(int exitCode, String stdout, String stderr) {
    }

    /** Starts {@code java ARGS} with {@code tmpdir} as java.io.tmpdir. */
    public static Process start(Path tmpdir, Path log, List<String> args) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.add("-Djava.io.tmpdir=" + tmpdir);
        cmd.addAll(args);
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(log.toFile()).redirectError(log.resolveSibling(log.getFileName() + ".err").toFile());
        pb.environment().remove("PEFT4J_NATIVE_DIR");   // these runs test the jar's own natives (coverage.sh sets it for the suite)
        return pb.start();
    }

    public static Result finish(Process p, Path log, int timeoutSeconds) throws Exception {
        if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("forked JVM did not finish in " + timeoutSeconds + " s");
        }
        return new Result(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8),
                Files.readString(log.resolveSibling(log.getFileName() + ".err"), StandardCharsets.UTF_8));
    }

    public static Result run(Path tmpdir, Path log, List<String> args, int timeoutSeconds) throws Exception {
        return finish(start(tmpdir, log, args), log, timeoutSeconds);
    }
}
