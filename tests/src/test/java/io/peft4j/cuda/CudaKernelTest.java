package io.peft4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.peft4j.backend.Availability;
import io.peft4j.backend.Backend;
import io.peft4j.bindings.Peft4jCuda;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The CUDA library's kernels against a float64 reference on the device. Needs a GPU: without one
 * these tests are reported as skipped with the reason, never silently passed.
 */
class CudaKernelTest {
    private static Availability availability;

    @BeforeAll
    static void probe() {
        availability = Backend.available();
    }

    private static void requireGpu() {
        assumeTrue(availability.cudaUsable(), "no usable CUDA device: " + availability.cuda());
    }

    private static String lastError() {
        return Peft4jCuda.p4j_cuda_last_error().reinterpret(4096).getString(0);
    }

    private static MemorySegment device(Arena arena, long floats) {
        MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
        assertEquals(0, Peft4jCuda.p4j_cuda_malloc(floats * 4, out), CudaKernelTest::lastError);
        return out.get(ValueLayout.ADDRESS, 0);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 7, 33, 257, 100_003})
    void fillAndAxpyMatchTheReference(int n) {
        requireGpu();
        SplittableRandom rnd = new SplittableRandom(n * 31L + 5);
        float[] x = new float[n], y = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) rnd.nextDouble(-2, 2);
            y[i] = (float) rnd.nextDouble(-2, 2);
        }
        float alpha = 0.37f;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment hx = arena.allocateFrom(ValueLayout.JAVA_FLOAT, x);
            MemorySegment hy = arena.allocateFrom(ValueLayout.JAVA_FLOAT, y);
            MemorySegment dx = device(arena, n), dy = device(arena, n);
            try {
                assertEquals(0, Peft4jCuda.p4j_cuda_memcpy_h2d(dx, hx, 4L * n), CudaKernelTest::lastError);
                assertEquals(0, Peft4jCuda.p4j_cuda_memcpy_h2d(dy, hy, 4L * n), CudaKernelTest::lastError);
                assertEquals(0, Peft4jCuda.p4j_cuda_axpy(n, alpha, dx, dy), CudaKernelTest::lastError);
                MemorySegment back = arena.allocate(ValueLayout.JAVA_FLOAT, n);
                back.fill((byte) 0x7f); // poison
                assertEquals(0, Peft4jCuda.p4j_cuda_memcpy_d2h(back, dy, 4L * n), CudaKernelTest::lastError);
                for (int i = 0; i < n; i++) {
                    double ref = (double) y[i] + (double) alpha * x[i];
                    float got = back.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                    assertTrue(Math.abs(got - ref) <= 2e-7 * (Math.abs(ref) + 1), "axpy[" + i + "] = " + got + ", reference " + ref);
                }
                assertEquals(0, Peft4jCuda.p4j_cuda_fill(n, -1.25f, dx), CudaKernelTest::lastError);
                assertEquals(0, Peft4jCuda.p4j_cuda_memcpy_d2h(back, dx, 4L * n), CudaKernelTest::lastError);
                for (int i = 0; i < n; i++) assertEquals(-1.25f, back.getAtIndex(ValueLayout.JAVA_FLOAT, i));
            } finally {
                Peft4jCuda.p4j_cuda_free(dx);
                Peft4jCuda.p4j_cuda_free(dy);
            }
        }
    }

    @Test
    void badArgumentsReturnAnErrorNotACrash() {
        requireGpu();
        assertNotEquals(0, Peft4jCuda.p4j_cuda_fill(-1, 0f, MemorySegment.NULL));
        assertTrue(lastError().contains("p4j_cuda_fill"), lastError());
        assertNotEquals(0, Peft4jCuda.p4j_cuda_axpy(4, 1f, MemorySegment.NULL, MemorySegment.NULL));
    }

    /** Runs on every machine: without a GPU the library must say why instead of crashing. */
    @Test
    void availabilityExplainsTheCudaState() {
        String cuda = availability.cuda();
        assertTrue(availability.cudaUsable() ? cuda.contains("device") : !cuda.isBlank(), cuda);
        if (!availability.cudaUsable()) {
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, Backend::cuda);
            assertTrue(e.getMessage().contains("CUDA backend unavailable"), e.getMessage());
        }
    }
}
