package io.peft4j.cli;

import io.peft4j.backend.Backend;
import io.peft4j.io.SafetensorsEntry;
import io.peft4j.io.SafetensorsFile;
import io.peft4j.io.SafetensorsWriter;
import io.peft4j.quant.Nf4Tensor;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code peft4j quantize} and {@code peft4j dequantize}: offline conversion of a .safetensors
 * checkpoint to and from bitsandbytes' NF4 state-dict entries (see {@link Nf4Tensor}).
 */
@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = {"Quantize every 2-D F32/BF16/F16 tensor of a .safetensors file to NF4, stored as",
            "bitsandbytes' 4-bit state-dict entries (other tensors are copied)."})
public final class QuantizeCommand implements Callable<Integer> {
    @Option(names = "--format", defaultValue = "nf4", paramLabel = "FORMAT", description = "the 4-bit format (only nf4)")
    String format;
    @Option(names = "--double-quant", description = "also quantize the block constants (bitsandbytes' compress_statistics)")
    boolean doubleQuant;
    @Option(names = "--block-size", defaultValue = "64", paramLabel = "N", description = "weights per block: a power of two in [32, 4096] (default 64)")
    int blockSize;
    @Parameters(index = "0", paramLabel = "IN", description = "the input .safetensors file") Path in;
    @Parameters(index = "1", paramLabel = "OUT", description = "the output .safetensors file (written atomically)") Path out;

    @Override
    public Integer call() throws Exception {
        if (!format.toLowerCase(Locale.ROOT).equals("nf4")) throw new IllegalArgumentException("--format " + format + " is not supported (only nf4)");
        Backend backend = Backend.cpu();
        List<Nf4Tensor> held = new ArrayList<>();
        long weights = 0, quantBytes = 0, copied = 0;
        try (SafetensorsFile f = SafetensorsFile.open(in)) {
            SafetensorsWriter w = new SafetensorsWriter().metadata(f.metadata());
            for (SafetensorsEntry e : f.entries()) {
                if (!quantizable(e)) {
                    w.put(e.name(), e.dtype(), e.shape(), f.data(e.name()));
                    copied++;
                    continue;
                }
                try (Tensor t = Tensor.of(f.readF32(e.name()), e.shape())) {
                    Nf4Tensor q = Nf4Tensor.quantize(backend, e.name(), t, blockSize, doubleQuant, torchName(e.dtype()));
                    held.add(q);
                    q.writeTo(w, e.name(), backend);
                    weights += q.numel();
                    quantBytes += q.residentBytes();
                }
            }
            w.write(out);
        } finally {
            held.forEach(Nf4Tensor::close);
        }
        Main.out().printf(Locale.ROOT, "quantized %d tensors (%d weights) to NF4, block size %d%s: %.3f bits per weight; copied %d others; wrote %s%n",
                held.size(), weights, blockSize, doubleQuant ? ", double-quantized" : "",
                weights == 0 ? 0.0 : quantBytes * 8.0 / weights, copied, out);
        return 0;
    }

    private static boolean quantizable(SafetensorsEntry e) {
        return e.rank() == 2 && e.numel() > 0 && (e.dtype() == DType.F32 || e.dtype() == DType.BF16 || e.dtype() == DType.F16);
    }

    private static String torchName(DType d) {
        return switch (d) {
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            default -> "float32";
        };
    }

    /** {@code peft4j dequantize IN OUT}: every NF4 weight back to F32, other tensors copied. */
    @Command(name = "dequantize", mixinStandardHelpOptions = true,
            description = {"Turn every bitsandbytes NF4 weight of a .safetensors file back into F32", "(other tensors are copied)."})
    public static final class Dequantize implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "IN", description = "a .safetensors file with NF4 entries") Path in;
        @Parameters(index = "1", paramLabel = "OUT", description = "the output .safetensors file (written atomically)") Path out;

        @Override
        public Integer call() throws Exception {
            Backend backend = Backend.cpu();
            List<Tensor> held = new ArrayList<>();
            int restored = 0, copied = 0;
            try (SafetensorsFile f = SafetensorsFile.open(in)) {
                Set<String> consumed = new HashSet<>();
                for (String name : f.names()) {
                    if (Nf4Tensor.isStoredAt(f, name)) consumed.addAll(Nf4Tensor.entryNames(name));
                }
                SafetensorsWriter w = new SafetensorsWriter().metadata(f.metadata());
                for (String name : f.names()) {
                    if (Nf4Tensor.isStoredAt(f, name)) {
                        try (Nf4Tensor q = Nf4Tensor.readFrom(f, name, backend)) {
                            Tensor t = q.dequantize(backend, DType.F32);
                            held.add(t);
                            w.put(name, DType.F32, t.shape(), t.segment());
                            restored++;
                        }
                    } else if (!consumed.contains(name)) {
                        SafetensorsEntry e = f.entry(name);
                        w.put(name, e.dtype(), e.shape(), f.data(name));
                        copied++;
                    }
                }
                if (restored == 0) throw new IllegalArgumentException(in + " holds no NF4 weights (no '*" + ".quant_state.bitsandbytes__nf4' entry)");
                w.write(out);
            } finally {
                held.forEach(Tensor::close);
            }
            Main.out().printf(Locale.ROOT, "dequantized %d NF4 tensors to F32, copied %d others; wrote %s%n", restored, copied, out);
            return 0;
        }
    }
}
