package io.peft4j.readme;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The README's Java example compiles against the real API and runs: wrap, train, save, load, merge. */
class ReadmeExampleTest {

    @Test
    void readmeExampleCompilesAndRuns(@TempDir Path tmp) throws Exception {
        Path readme = Path.of(System.getProperty("peft4j.repo.root", ".."), "README.md");
        String text = Files.readString(readme);
        Matcher m = Pattern.compile("<!-- readme-example:start -->\\s*```java\\n(.*?)```\\s*<!-- readme-example:end -->", Pattern.DOTALL)
                .matcher(text);
        assertTrue(m.find(), "README.md has no example between readme-example markers");
        Path src = tmp.resolve("Quickstart.java");
        Files.writeString(src, m.group(1));

        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        String cp = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        ByteArrayOutputStream diag = new ByteArrayOutputStream();
        int rc = javac.run(null, diag, diag, "-d", tmp.toString(), "-cp", cp, src.toString());
        assertEquals(0, rc, "README example does not compile:\n" + diag);

        Path adapterDir = tmp.resolve("my-lora");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        PrintStream saved = System.out;
        try (URLClassLoader loader = new URLClassLoader(new URL[] {tmp.toUri().toURL()}, getClass().getClassLoader())) {
            Method main = loader.loadClass("Quickstart").getMethod("main", String[].class);
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            main.invoke(null, (Object) new String[] {adapterDir.toString()});
        } finally {
            System.setOut(saved);
        }
        String printed = out.toString(StandardCharsets.UTF_8);
        assertTrue(printed.contains("trainable params: 22,736 || all params: 692,442 || trainable%: 3.2835"), printed);
        Matcher acc = Pattern.compile("rot90 accuracy (\\S+)").matcher(printed);
        assertTrue(acc.find(), printed);
        double accuracy = Double.parseDouble(acc.group(1));
        assertTrue(accuracy > 0.2 && accuracy <= 1.0, "accuracy after one small epoch: " + accuracy);
        assertTrue(printed.contains("merged parameters 669706"), printed);
        for (String f : List.of("adapter_model.safetensors", "adapter_config.json")) {
            assertTrue(Files.isRegularFile(adapterDir.resolve(f)), "missing " + f);
        }
    }
}
