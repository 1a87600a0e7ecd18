package io.peft4j.cli;

import io.peft4j.backend.Backend;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The peft4j command line. */
@Command(name = "peft4j", mixinStandardHelpOptions = true, version = "peft4j 0.1.0",
        description = "Parameter-efficient fine-tuning (LoRA family) on the JVM with native kernels.",
        subcommands = {Main.Info.class})
public final class Main implements Runnable {

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns its exit code (tests call this). */
    public static int run(String... args) {
        return new CommandLine(new Main()).execute(args);
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }

    @Command(name = "info", description = "Show what this machine offers: CPU features, BLAS, CUDA.")
    static final class Info implements Runnable {
        @Override
        public void run() {
            System.out.println("peft4j 0.1.0");
            System.out.println(Backend.available());
        }
    }
}
