package io.peft4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/** Runs the command line in-process for tests, capturing what it prints and System.err. */
public final class Cli {
    private Cli() {}

    public record Run(int code, String out, String err) {
        public List<String> lines() {
            return out.lines().filter(l -> !l.isBlank()).toList();
        }

        public String last() {
            List<String> l = lines();
            return l.isEmpty() ? "" : l.get(l.size() - 1);
        }

        /** The non-blank lines written to stderr. */
        public List<String> errLines() {
            return err.lines().filter(l -> !l.isBlank()).toList();
        }
    }

    public static synchronized Run run(String... args) {
        ByteArrayOutputStream o = new ByteArrayOutputStream(), e = new ByteArrayOutputStream();
        PrintStream oldErr = System.err;
        int code;
        try (PrintStream ps = new PrintStream(o, true, StandardCharsets.UTF_8); PrintStream es = new PrintStream(e, true, StandardCharsets.UTF_8)) {
            System.setErr(es);
            code = Main.run(ps, args);
        } finally {
            System.setErr(oldErr);
        }
        return new Run(code, o.toString(StandardCharsets.UTF_8), e.toString(StandardCharsets.UTF_8));
    }

    @SuppressWarnings("unchecked")
    public static Map<String, Object> readJson(Path file) {
        try {
            return new ObjectMapper().readValue(file.toFile(), Map.class);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
