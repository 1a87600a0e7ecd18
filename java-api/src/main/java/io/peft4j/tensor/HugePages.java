package io.peft4j.tensor;

import io.peft4j.backend.NativeLoader;
import io.peft4j.bindings.Peft4j;
import java.lang.foreign.MemorySegment;

/** Best-effort transparent-huge-page advice for big buffers: first touch of a 4 KiB page costs
 *  ~11 µs on this VM class, of a huge page ~0.35 µs per 4 KiB. */
final class HugePages {
    private static final boolean AVAILABLE = probe();

    private HugePages() {}

    static void advise(MemorySegment seg) {
        if (AVAILABLE) Peft4j.p4j_mem_advise_huge(seg, seg.byteSize());
    }

    private static boolean probe() {
        try {
            NativeLoader.loadCpu();
            return true;
        } catch (UnsatisfiedLinkError e) {
            return false; // tensors still work; only the advice is skipped
        }
    }
}
