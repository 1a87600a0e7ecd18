package io.peft4j.backend;

import io.peft4j.bindings.Peft4j;
import io.peft4j.bindings.Peft4jCuda;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * What this machine offers peft4j.
 *
 * @param cpuLibrary   where libpeft4j.so was loaded from, or why it could not be
 * @param cpuFeatures  vector extensions the kernels use (AVX2, FMA, AVX512F, AVX512BF16, AVX512VBMI, AVX512VNNI)
 * @param buildInfo    compiler, BLAS library and OpenMP runtime of the native build
 * @param threads      threads the shared CPU backend uses
 * @param cuda         the CUDA library and devices found, or what is missing
 * @param cudaUsable   whether the CUDA library loaded and sees at least one device
 */
public record Availability(String cpuLibrary, List<String> cpuFeatures, String buildInfo, int threads,
                           String cuda, boolean cudaUsable) {

    static Availability probe() {
        String cpuLibrary;
        List<String> features = new ArrayList<>();
        String build = "";
        int threads = 0;
        try {
            cpuLibrary = NativeLoader.loadCpu().toString();
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment f = arena.allocate(ValueLayout.JAVA_INT);
                CpuBackend.check("p4j_cpu_features", Peft4j.p4j_cpu_features(f));
                int bits = f.get(ValueLayout.JAVA_INT, 0);
                String[] names = {"AVX2", "FMA", "AVX512F", "AVX512BF16", "AVX512VBMI", "AVX512VNNI"};
                for (int i = 0; i < names.length; i++) {
                    if ((bits & (1 << i)) != 0) features.add(names[i]);
                }
            }
            build = Peft4j.p4j_build_info().reinterpret(4096).getString(0);
            threads = Backend.cpu().threads();
        } catch (UnsatisfiedLinkError e) {
            cpuLibrary = "not loaded: " + e.getMessage();
        }
        String cuda;
        boolean usable = false;
        try {
            NativeLoader.loadCuda();
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment n = arena.allocate(ValueLayout.JAVA_INT);
                int status = Peft4jCuda.p4j_cuda_device_count(n);
                if (status != 0) {
                    cuda = "library loaded, no usable device: "
                            + Peft4jCuda.p4j_cuda_last_error().reinterpret(4096).getString(0);
                } else {
                    int count = n.get(ValueLayout.JAVA_INT, 0);
                    usable = count > 0;
                    cuda = count + " device(s)";
                }
            }
        } catch (UnsatisfiedLinkError e) {
            cuda = "libpeft4j_cuda.so (or libcudart) not loadable: " + e.getMessage();
        }
        return new Availability(cpuLibrary, List.copyOf(features), build, threads, cuda, usable);
    }

    @Override
    public String toString() {
        return "cpu library : " + cpuLibrary + "\n"
                + "cpu features: " + (cpuFeatures.isEmpty() ? "(baseline x86-64 only)" : String.join(" ", cpuFeatures)) + "\n"
                + "build       : " + buildInfo + "\n"
                + "threads     : " + threads + "\n"
                + "cuda        : " + cuda;
    }
}
