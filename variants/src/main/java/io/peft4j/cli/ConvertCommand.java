package io.peft4j.cli;

import io.peft4j.io.SafetensorsFile;
import io.peft4j.variants.lycoris.LycorisFiles;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code peft4j convert --to lycoris|peft IN OUT}: LoHa / LoKr adapters between PEFT's directory and LyCORIS's single file. */
@Command(name = "convert", mixinStandardHelpOptions = true,
        description = {"Convert a LoHa or LoKr adapter between PEFT's layout (a directory) and LyCORIS/kohya's single file.",
            "  --to lycoris ADAPTER_DIR FILE.safetensors    --to peft FILE.safetensors ADAPTER_DIR"})
final class ConvertCommand implements Callable<Integer> {
    @Option(names = "--to", required = true, paramLabel = "lycoris|peft", description = "the layout to write") String to;
    @Option(names = "--prefix", paramLabel = "P", description = "LyCORIS key prefix (default: ${DEFAULT-VALUE})") String prefix = LycorisFiles.DEFAULT_PREFIX;
    @Option(names = "--base", paramLabel = "FILE",
            description = "--to peft: the base model's .safetensors, whose <layer>.weight keys resolve module names a file from another tool flattened")
    Path base;
    @Parameters(index = "0", paramLabel = "IN") Path in;
    @Parameters(index = "1", paramLabel = "OUT") Path out;

    @Override
    public Integer call() {
        switch (to) {
            case "lycoris" -> {
                LycorisFiles.peftToLycoris(Workflow.adapterDir(in), out, prefix);
                Main.out().println("LyCORIS file written to " + out);
            }
            case "peft" -> {
                if (!Files.isRegularFile(in)) throw new IllegalArgumentException(in + ": no such file");
                LycorisFiles.lycorisToPeft(in, out, prefix, base == null ? null : linearPaths(base));
                Main.out().println("PEFT adapter written to " + out);
            }
            default -> throw new IllegalArgumentException("--to must be lycoris or peft, got '" + to + "'");
        }
        return 0;
    }

    /** The layers of a base checkpoint: every key "<path>.weight" names one. */
    private static Set<String> linearPaths(Path file) {
        Set<String> paths = new LinkedHashSet<>();
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            for (String k : f.names()) if (k.endsWith(".weight")) paths.add(k.substring(0, k.length() - ".weight".length()));
        } catch (IOException e) {
            throw new UncheckedIOException("read " + file + ": " + e.getMessage(), e);
        }
        return paths;
    }
}
