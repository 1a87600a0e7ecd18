package io.peft4j.readme;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.NativeLoader;
import io.peft4j.packaging.Forked;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.xpath.XPathFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;

/**
 * The README's "Use it from Java" works as written for a library user: its pom asks for what the
 * build provides, and its example compiles at release 25 against the peft4j jars and their runtime
 * dependencies only, then runs in a fresh JVM with nothing but those jars (natives from the jar):
 * wrap, train, save, load, merge.
 */
class ReadmeExampleTest {
    private static final Path README = Path.of(System.getProperty("peft4j.repo.root", ".."), "README.md");

    private static String between(String marker, String lang) throws Exception {
        Matcher m = Pattern.compile("<!-- " + marker + ":start -->\\s*```" + lang + "\\n(.*?)```\\s*<!-- " + marker + ":end -->",
                Pattern.DOTALL).matcher(Files.readString(README));
        assertTrue(m.find(), "README.md has no " + lang + " block between " + marker + " markers");
        return m.group(1);
    }

    @Test
    void readmePomMatchesTheBuild() throws Exception {
        Document pom = DocumentBuilderFactory.newInstance().newDocumentBuilder()
                .parse(new ByteArrayInputStream(between("readme-pom", "xml").getBytes(StandardCharsets.UTF_8)));
        var xpath = XPathFactory.newInstance().newXPath();
        assertEquals("25", xpath.evaluate("/project/properties/maven.compiler.release", pom));
        assertEquals("peft4j-variants", xpath.evaluate("/project/dependencies/dependency/artifactId", pom));
        String version = NativeLoader.class.getPackage().getImplementationVersion();
        assertEquals(version, xpath.evaluate("/project/dependencies/dependency/version", pom), "peft4j version in the README's pom");
        String parent = Files.readString(README.resolveSibling("pom.xml"));
        String compilerPlugin = xpath.evaluate("//plugin[artifactId='maven-compiler-plugin']/version", pom);
        assertTrue(parent.contains("<artifactId>maven-compiler-plugin</artifactId><version>" + compilerPlugin + "</version>"),
                "README's maven-compiler-plugin " + compilerPlugin + " is not the one the build uses");
    }

    @Test
    void readmeExampleCompilesAndRunsOnTheJarsAlone(@TempDir Path tmp) throws Exception {
        Forked.javaApiJar(); // the natives must come from the jar, as for a user
        Path src = tmp.resolve("Quickstart.java");
        Files.writeString(src, between("readme-example", "java"));
        List<String> jars = Forked.runtimeJars();
        String cp = String.join(File.pathSeparator, jars);

        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        ByteArrayOutputStream diag = new ByteArrayOutputStream();
        int rc = javac.run(null, diag, diag, "--release", "25", "-d", tmp.toString(), "-cp", cp, src.toString());
        assertEquals(0, rc, "README example does not compile against " + jars + ":\n" + diag);

        Path adapterDir = tmp.resolve("my-lora");
        Path javaTmp = Files.createDirectory(tmp.resolve("java-tmp"));
        List<String> args = new ArrayList<>(List.of("-cp", tmp + File.pathSeparator + cp, "Quickstart", adapterDir.toString()));
        Forked.Result run = Forked.run(javaTmp, tmp.resolve("run.log"), args, 120);
        String printed = run.stdout();
        assertEquals(0, run.exitCode(), "README example failed:\n" + printed + run.stderr());
        assertTrue(printed.contains("trainable params: 22,736 || all params: 692,442 || trainable%: 3.2835"), printed);
        Matcher acc = Pattern.compile("(?m)^rot90 accuracy (\\S+)$").matcher(printed);
        assertTrue(acc.find(), printed);
        double accuracy = Double.parseDouble(acc.group(1));
        // An untrained base, one small epoch: the README says to expect about 0.35-0.45; chance is 0.1.
        assertTrue(accuracy > 0.2 && accuracy <= 1.0, "accuracy after one small epoch: " + accuracy);
        assertTrue(printed.contains("merged parameters 669706"), printed);
        for (String f : List.of("adapter_model.safetensors", "adapter_config.json")) {
            assertTrue(Files.isRegularFile(adapterDir.resolve(f)), "missing " + f);
        }
    }
}
