package io.peft4j.packaging;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.peft4j.backend.NativeLoader;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import org.junit.jupiter.api.Test;

/** Loading the native library bounds libgomp's idle spinning, unless the user chose a wait policy. */
class OpenMpSpinCountTest {

    /** The process environment as libgomp reads it (System.getenv is the JVM's start-up copy). */
    private static String nativeGetenv(String name) throws Throwable {
        Linker linker = Linker.nativeLinker();
        MethodHandle getenv = linker.downcallHandle(linker.defaultLookup().find("getenv").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = (MemorySegment) getenv.invokeExact(arena.allocateFrom(name));
            return v.equals(MemorySegment.NULL) ? null : v.reinterpret(Long.MAX_VALUE).getString(0);
        }
    }

    @Test
    void spinCountIsSetBeforeLibgompLoadsUnlessTheUserChose() throws Throwable {
        NativeLoader.loadCpu();
        String userSpin = System.getenv("GOMP_SPINCOUNT");
        String userPolicy = System.getenv("OMP_WAIT_POLICY");
        if (userSpin == null && userPolicy == null) {
            assertEquals(NativeLoader.SPIN_COUNT, nativeGetenv("GOMP_SPINCOUNT"));
        } else {
            assertEquals(userSpin, nativeGetenv("GOMP_SPINCOUNT"), "the user's GOMP_SPINCOUNT is left as it was");
            assertEquals(userPolicy, nativeGetenv("OMP_WAIT_POLICY"), "the user's OMP_WAIT_POLICY is left as it was");
        }
    }
}
