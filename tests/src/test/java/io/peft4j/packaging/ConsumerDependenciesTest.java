package io.peft4j.packaging;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a project depending on peft4j-variants gets on its compile and runtime class path, read from
 * Maven's own dependency tree: no test framework, no PDF library, no terminal library, no CLI parser.
 */
class ConsumerDependenciesTest {
    /** groupIds that must not reach a library user (JUnit, pdfbox, jline, picocli). */
    private static final List<String> BANNED = List.of("org.junit", "junit", "org.opentest4j", "org.apache.pdfbox",
            "de.rototor.pdfbox", "org.jline", "info.picocli");
    /** One tree line: indentation, groupId:artifactId:type:version:scope, maybe " (optional)". */
    private static final Pattern NODE = Pattern.compile("^([| +\\\\-]*)([^: ]+):([^: ]+):[^: ]+:[^: ]+:([a-z]+)( \\(optional\\))?$");

    @Test
    void variantsConsumersGetNoTestPdfTerminalOrCliLibraries(@TempDir Path tmp) throws Exception {
        Path root = Path.of(System.getProperty("peft4j.repo.root", "..")).toAbsolutePath().normalize();
        Path tree = tmp.resolve("tree.txt");
        Path log = tmp.resolve("mvn.log");
        Process p = new ProcessBuilder("mvn", "-B", "-q", "dependency:tree", "-pl", "variants", "-am",
                "-DoutputFile=" + tree, "-DappendOutput=true")
                .directory(root.toFile()).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "mvn dependency:tree did not finish in 120 s");
        assertEquals(0, p.exitValue(), Files.readString(log));

        List<String> lines = Files.readAllLines(tree);
        int start = lines.indexOf(lines.stream().filter(l -> l.startsWith("io.peft4j:peft4j-variants:")).findFirst()
                .orElseThrow(() -> new AssertionError("no peft4j-variants tree in:\n" + lines)));
        List<String> consumer = new ArrayList<>();
        int optionalDepth = Integer.MAX_VALUE; // inside an optional dependency's subtree, nothing reaches a user
        for (String line : lines.subList(start + 1, lines.size())) {
            Matcher m = NODE.matcher(line);
            if (!m.matches()) break; // the next module's tree begins
            int depth = m.group(1).length() / 3;
            if (depth <= optionalDepth) optionalDepth = Integer.MAX_VALUE;
            if (depth > optionalDepth) continue;
            if (m.group(5) != null) {
                optionalDepth = depth;
                continue;
            }
            if (m.group(4).equals("compile") || m.group(4).equals("runtime")) consumer.add(m.group(2) + ":" + m.group(3));
        }
        assertTrue(consumer.contains("io.peft4j:peft4j-java-api") && consumer.contains("org.knowm.xchart:xchart"),
                "tree not understood: " + consumer + "\n" + String.join("\n", lines));
        for (String dep : consumer) {
            String group = dep.substring(0, dep.indexOf(':'));
            assertTrue(BANNED.stream().noneMatch(b -> group.equals(b) || group.startsWith(b + ".")),
                    dep + " reaches peft4j-variants' users; their class path: " + consumer);
        }
    }
}
