package io.peft4j.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A bump allocator for one step's activations and gradients. {@link #reset()} makes every tensor
 * it handed out unusable (checked, never a dangling pointer) and recycles the memory; after the
 * first step the arena has grown to the step's size and a step allocates nothing.
 */
public final class StepArena implements AutoCloseable {
    private static final long MIN_CHUNK = 1L << 20;

    private final Arena arena = Arena.ofShared();
    private final List<MemorySegment> chunks = new ArrayList<>();
    private int chunk;          // index of the chunk being filled
    private long used;          // bytes used in that chunk
    private long highWater;     // bytes used by the largest step so far
    private long stepBytes;
    private long generation;
    private boolean closed;

    public StepArena() {}

    /** A tensor valid until the next reset; its contents are unspecified (not zeroed). */
    public Tensor allocate(DType dtype, long... shape) {
        if (closed) throw new IllegalStateException("step arena is closed");
        long bytes = Tensor.byteSize(dtype, shape);
        Tensor.checkFits(() -> dtype + Arrays.toString(shape), bytes);   // also keeps the sums below from overflowing
        long padded = (bytes + Tensor.ALIGNMENT - 1) & -Tensor.ALIGNMENT;
        while (chunk < chunks.size() && used + padded > chunks.get(chunk).byteSize()) {
            chunk++;
            used = 0;
        }
        if (chunk == chunks.size()) {
            chunks.add(newChunk(Math.max(padded, Math.max(MIN_CHUNK, highWater)), dtype + Arrays.toString(shape)));
            used = 0;
        }
        MemorySegment seg = chunks.get(chunk).asSlice(used, bytes);
        used += padded;
        stepBytes += padded;
        return new Tensor(dtype, shape, seg, null, this, generation, null);
    }

    /** A zero-filled tensor valid until the next reset. */
    public Tensor zeros(DType dtype, long... shape) {
        Tensor t = allocate(dtype, shape);
        t.segment().fill((byte) 0);
        return t;
    }

    /** Invalidates every tensor handed out so far and reuses the memory. */
    public void reset() {
        if (closed) throw new IllegalStateException("step arena is closed");
        generation++;
        highWater = Math.max(highWater, stepBytes);
        // A step that needed several chunks gets one chunk of the full size next time.
        if (chunks.size() > 1) {
            chunks.clear();
            chunks.add(newChunk(highWater, "the step's " + highWater + " bytes of activations"));
        }
        chunk = 0;
        used = 0;
        stepBytes = 0;
    }

    long generation() {
        return generation;
    }

    /** A chunk of {@code bytes}, made for {@code what} (named when the machine cannot give it). */
    private MemorySegment newChunk(long bytes, String what) {
        return Tensor.allocate(arena, what, bytes);
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        try {
            arena.close();
        } catch (IllegalStateException e) {   // a running downcall holds the memory: refuse rather than leak it
            throw new IllegalStateException("cannot close the step arena while an operation is using its memory;"
                    + " close it after the operation returns", e);
        }
        closed = true;
        generation++;
    }
}
