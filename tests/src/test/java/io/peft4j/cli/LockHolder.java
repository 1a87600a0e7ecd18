package io.peft4j.cli;

import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** A second process for the lock test: takes the lock on args[0], says "locked", and holds it until killed. */
public final class LockHolder {
    public static void main(String[] args) throws Exception {
        try (FileChannel ch = FileChannel.open(Path.of(args[0]), StandardOpenOption.CREATE, StandardOpenOption.WRITE); var lock = ch.lock()) {
            System.out.print("locked");
            System.out.flush();
            Thread.sleep(60_000);
        }
    }
}
