package io.peft4j.bench;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The ceilings every other figure is compared against, measured in the same run:
 * the machine's FMA peak (GFLOP/s) and a large copy's bandwidth (GB/s).
 */
public class CeilingBench {

    /** Copy: 64M floats (256 MiB) each way, far beyond any cache. */
    public static final long COPY_N = 64L << 20;

    /**
     * Calibrated FMA loop length: at least 2^22 rounds (about 2 GFLOP on two AVX-512 threads) and
     * at least 100 ms by the best of three timings, so the start-up of the thread team (and, on a
     * busy machine, a descheduled thread at the barrier) stays small beside the work.
     */
    @State(Scope.Benchmark)
    public static class Fma {
        Backend be;
        long iters;

        @Setup(Level.Trial)
        public void setup() {
            be = Backend.cpu();
            be.fmaPeak(1 << 16); // wakes the thread team; the first call is not representative
            iters = 1 << 22;
            while (iters < 1L << 36) {
                long best = Long.MAX_VALUE;
                for (int i = 0; i < 3; i++) {
                    long t0 = System.nanoTime();
                    be.fmaPeak(iters);
                    best = Math.min(best, System.nanoTime() - t0);
                }
                if (best >= 100_000_000L) break;
                iters *= 2;
            }
        }
    }

    /** Floating-point operations done in the current iteration; JMH reports them per second. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Flops {
        public long flops;

        @Setup(Level.Iteration)
        public void reset() {
            flops = 0;
        }
    }

    @State(Scope.Benchmark)
    public static class Copy {
        Backend be;
        Tensor src, dst;

        @Setup(Level.Trial)
        public void setup() {
            be = Backend.cpu();
            src = Fill.random(be, COPY_N);
            dst = Fill.random(be, COPY_N);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            Fill.close(src, dst);
        }
    }

    /** Secondary result "flops" = FLOP/s; the primary score (calls/s) is not used. */
    @Benchmark
    @BenchmarkMode(Mode.Throughput)
    @OutputTimeUnit(TimeUnit.SECONDS)
    public void fmaPeak(Fma s, Flops f) {
        f.flops += s.be.fmaPeak(s.iters);
    }

    /** Bytes moved per call: 2·4·COPY_N (read src, write dst). */
    @Benchmark
    @BenchmarkMode(Mode.SampleTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    public void copy(Copy s) {
        s.be.copy(s.src, s.dst);
    }

    /** The same copy by the JDK (one thread, libc memmove): a cross-check of the copy ceiling. */
    @Benchmark
    @BenchmarkMode(Mode.SampleTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    public void copyJdk(Copy s) {
        MemorySegment.copy(s.src.segment(), 0, s.dst.segment(), 0, 4 * COPY_N);
    }
}
