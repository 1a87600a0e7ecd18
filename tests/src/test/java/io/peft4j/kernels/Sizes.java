package io.peft4j.kernels;

import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.params.provider.Arguments;

/** Case tables shared by several tests (@MethodSource("io.peft4j.kernels.Sizes#...")). */
final class Sizes {
    private Sizes() {}

    /** Element counts for elementwise ops: 1, 7, 33, 257 and 1000·129. */
    static Stream<Arguments> sizes() {
        return Arrays.stream(KernelTesting.SIZES).mapToObj(Arguments::of);
    }

    /** Element counts small enough for central differences on every coordinate (or a sample). */
    static Stream<Arguments> smallSizes() {
        return Stream.of(1, 7, 33, 257).map(Arguments::of);
    }

    /** [rows, cols] for row-wise ops, including the 1000x129 one. */
    static Stream<Arguments> shapes() {
        return Arrays.stream(KernelTesting.SHAPES).map(s -> Arguments.of(s[0], s[1]));
    }

    static Stream<Arguments> smallShapes() {
        return Stream.of(new int[] {1, 1}, new int[] {3, 5}, new int[] {7, 33}, new int[] {33, 7})
                .map(s -> Arguments.of(s[0], s[1]));
    }
}
