package io.peft4j.packaging;

import io.peft4j.backend.NativeLoader;
import java.nio.file.Files;
import java.nio.file.Path;

/** Run in a forked JVM: loads libpeft4j.so as a user would, then prints "loaded PATH" and one "mapped PATH" per shared object. */
public final class MapsReport {
    private MapsReport() {
    }

    public static void main(String[] args) throws Exception {
        System.out.println("loaded " + NativeLoader.loadCpu());
        Files.readAllLines(Path.of("/proc/self/maps")).stream()
                .map(l -> l.indexOf('/') < 0 ? "" : l.substring(l.indexOf('/')))
                .filter(p -> p.contains(".so"))
                .distinct()
                .forEach(p -> System.out.println("mapped " + p));
    }
}
