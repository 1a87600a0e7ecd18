package io.peft4j.kernels;

import static io.peft4j.kernels.KernelTesting.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.Backend;
import io.peft4j.backend.NativeException;
import io.peft4j.bindings.Peft4j;
import io.peft4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The diagonally scaled low-rank op of VeRA and Tied-LoRA (native/cpu/scaled_lowrank.cpp) against
 * a float64 reference, whose gradients are checked here by central differences. A and B are
 * slices of wider shared matrices (D_in ≥ d_in, D_out ≥ d_out) in most cases; u and v are random
 * or absent (ones). Outputs start NaN (overwritten) or random (accumulated into); the workspace
 * starts NaN; gradient columns/rows outside the slice must stay untouched.
 */
class ScaledLowRankTest {
    /** t, d_in, d_out, r, D_in, D_out, s. */
    static final Object[][] SIZES = {
        {1, 1, 1, 1, 1, 1, 0.5f}, {7, 33, 17, 5, 40, 20, 2f}, {33, 7, 1, 7, 7, 3, -0.75f},
        {257, 33, 65, 16, 33, 65, 1.5f}, {100, 129, 33, 33, 200, 50, 0.25f}, {3, 0, 9, 3, 4, 9, 1f}, {5, 6, 0, 3, 6, 2, 1f},
        {9, 17, 300, 261, 20, 301, 0.5f},   // d_out and r past one 256-column block of the column sums (dv, du)
    };

    static Stream<Arguments> forwardCases() {
        List<Arguments> out = new ArrayList<>();
        for (Object[] s : SIZES) {
            for (boolean withU : new boolean[] {true, false}) {
                for (boolean withV : new boolean[] {true, false}) out.add(Arguments.of(s[0], s[1], s[2], s[3], s[4], s[5], s[6], withU, withV));
            }
        }
        return out.stream();
    }

    static Stream<Arguments> backwardCases() {
        List<Arguments> out = new ArrayList<>();
        for (Object[] s : SIZES) {
            // (u and v present or ones, accumulate, gradients wanted: all / only du, dv, dx / only da, db)
            out.add(Arguments.of(s[0], s[1], s[2], s[3], s[4], s[5], s[6], true, false, "all"));
            out.add(Arguments.of(s[0], s[1], s[2], s[3], s[4], s[5], s[6], true, true, "all"));
            out.add(Arguments.of(s[0], s[1], s[2], s[3], s[4], s[5], s[6], true, true, "uvx"));
            out.add(Arguments.of(s[0], s[1], s[2], s[3], s[4], s[5], s[6], true, false, "ab"));
            out.add(Arguments.of(s[0], s[1], s[2], s[3], s[4], s[5], s[6], false, true, "all"));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "t={0} d_in={1} d_out={2} r={3} D_in={4} D_out={5} s={6} u={7} v={8}")
    @MethodSource("forwardCases")
    void forwardMatchesReference(int t, int dIn, int dOut, int r, int bigIn, int bigOut, float sc, boolean withU, boolean withV) {
        Case c = newCase("scaledLowrankForward " + t + "x" + dIn + "x" + dOut + " r=" + r + " D=" + bigIn + "x" + bigOut
                + " s=" + sc + " u=" + withU + " v=" + withV);
        Inputs in = new Inputs(c, t, dIn, dOut, r, bigIn, bigOut, withU, withV);
        float[] y0 = c.normal(t * dOut, Math.max(1.0, Math.sqrt((double) dIn * r)));
        try (Scope s = new Scope()) {
            Tensor h = s.poisoned(t, r), z = s.poisoned(t, dOut), y = s.of(y0, t, dOut), work = s.poisoned(Math.max(1, t * r));
            Backend.cpu().scaledLowrankForward(sc, s.of(in.x, t, dIn), s.of(in.a, r, bigIn), s.of(in.b, bigOut, r),
                    in.u == null ? null : s.of(in.u, r), in.v == null ? null : s.of(in.v, dOut), h, z, work, y);
            Ref ref = in.ref(sc);
            assertNormwise(c, "h", h.toFloatArray(), ref.h(), gemmTol(dIn));
            assertNormwise(c, "z", z.toFloatArray(), ref.z(), chainTol(dIn, r));
            double[] yRef = ref.y();
            for (int i = 0; i < yRef.length; i++) yRef[i] += y0[i];
            assertNormwise(c, "y", y.toFloatArray(), yRef, chainTol(dIn, r));
        }
    }

    @ParameterizedTest(name = "t={0} d_in={1} d_out={2} r={3} D_in={4} D_out={5} s={6} u,v={7} accumulate={8} grads={9}")
    @MethodSource("backwardCases")
    void backwardMatchesReference(int t, int dIn, int dOut, int r, int bigIn, int bigOut, float sc, boolean withUv,
                                  boolean accumulate, String grads) {
        Case c = newCase("scaledLowrankBackward " + t + "x" + dIn + "x" + dOut + " r=" + r + " D=" + bigIn + "x" + bigOut
                + " s=" + sc + " uv=" + withUv + " accumulate=" + accumulate + " grads=" + grads);
        Inputs in = new Inputs(c, t, dIn, dOut, r, bigIn, bigOut, withUv, withUv);
        float[] g = c.normal(t * dOut);
        Ref ref = in.ref(sc);
        double[] h = ref.h();
        boolean uvx = !grads.equals("ab"), ab = !grads.equals("uvx");
        // Accumulated-into buffers start random at about the size of the update; the slices' outside starts random too.
        float[] du0 = c.normal(r), dv0 = c.normal(dOut), da0 = c.normal(r * bigIn), db0 = c.normal(bigOut * r), dx0 = c.normal(t * dIn);
        try (Scope s = new Scope()) {
            Tensor th = s.of(KernelTesting.toFloat(h), t, r), tz = s.of(KernelTesting.toFloat(ref.z()), t, dOut), tg = s.of(g, t, dOut);
            Tensor work = s.poisoned(Math.max(1, 2 * (t + dOut) * r));
            Tensor du = uvx ? (accumulate ? s.of(du0, r) : s.poisoned(r)) : null;
            Tensor dv = uvx ? (accumulate ? s.of(dv0, dOut) : s.poisoned(dOut)) : null;
            Tensor dx = uvx ? s.of(dx0, t, dIn) : null;
            Tensor da = ab ? s.of(withOutside(accumulate, da0, r, bigIn, dIn), r, bigIn) : null;
            Tensor db = ab ? s.of(withOutsideRows(accumulate, db0, bigOut, r, dOut), bigOut, r) : null;
            Backend.cpu().scaledLowrankBackward(sc, s.of(in.x, t, dIn), s.of(in.a, r, bigIn), s.of(in.b, bigOut, r),
                    in.u == null ? null : s.of(in.u, r), in.v == null ? null : s.of(in.v, dOut), th, tz, tg, work, du, dv, da, db, dx,
                    accumulate);
            Grads gr = ref.backward(toDouble(g));
            double tol = chainTol(Math.max(dOut, 1), Math.max(t, 1));
            if (uvx) {
                assertNormwise(c, "du", du.toFloatArray(), plus(accumulate ? du0 : null, gr.du), tol);
                assertNormwise(c, "dv", dv.toFloatArray(), plus(accumulate ? dv0 : null, gr.dv), tol);
                assertNormwise(c, "dx", dx.toFloatArray(), plus(dx0, gr.dx), chainTol(dOut, r));
            }
            if (ab) {
                double[] daRef = new double[r * bigIn];
                float[] daStart = withOutside(accumulate, da0, r, bigIn, dIn);
                for (int k = 0; k < r; k++) {
                    for (int i = 0; i < bigIn; i++) {
                        daRef[k * bigIn + i] = i < dIn ? (accumulate ? daStart[k * bigIn + i] : 0) + gr.da[k * dIn + i] : daStart[k * bigIn + i];
                    }
                }
                assertNormwise(c, "da", da.toFloatArray(), daRef, chainTol(dOut, t));
                float[] dbStart = withOutsideRows(accumulate, db0, bigOut, r, dOut);
                double[] dbRef = new double[bigOut * r];
                for (int i = 0; i < bigOut * r; i++) dbRef[i] = i < dOut * r ? (accumulate ? dbStart[i] : 0) + gr.db[i] : dbStart[i];
                assertNormwise(c, "db", db.toFloatArray(), dbRef, chainTol(dIn, t));
            }
        }
    }

    /** The reference's gradients against central differences of L = Σ g ⊙ y, on every input. */
    @Test
    void referenceGradientsMatchFiniteDifferences() {
        Case c = newCase("scaledLowrank reference finite differences");
        int t = 5, dIn = 7, dOut = 6, r = 3, bigIn = 9, bigOut = 8;
        Inputs in = new Inputs(c, t, dIn, dOut, r, bigIn, bigOut, true, true);
        double[] g = toDouble(c.normal(t * dOut));
        double sc = 0.7;
        Grads gr = in.ref(sc).backward(g);
        double[][] params = {in.xd(), in.ad(), in.bd(), in.ud(), in.vd()};
        double[][] grads = {gr.dx, null, null, gr.du, gr.dv};
        String[] names = {"x", "a", "b", "u", "v"};
        for (int p = 0; p < params.length; p++) {
            double[] w = params[p];
            for (int i = 0; i < w.length; i++) {
                double keep = w[i], eps = 1e-6;
                w[i] = keep + eps;
                double lp = loss(in, params, sc, g);
                w[i] = keep - eps;
                double lm = loss(in, params, sc, g);
                w[i] = keep;
                double fd = (lp - lm) / (2 * eps);
                double an = switch (p) {
                    case 1 -> (i % bigIn) < dIn ? gr.da[(i / bigIn) * dIn + i % bigIn] : 0;   // outside the slice: no effect
                    case 2 -> i < dOut * r ? gr.db[i] : 0;
                    default -> grads[p][i];
                };
                assertEquals(fd, an, 1e-6 * (1 + Math.abs(fd)), c.label() + ": d" + names[p] + "[" + i + "]");
            }
        }
    }

    private static double loss(Inputs in, double[][] p, double sc, double[] g) {
        double[] y = new Ref(in.t, in.dIn, in.dOut, in.r, in.bigIn, p[0], p[1], p[2], p[3], p[4], sc).y();
        double l = 0;
        for (int i = 0; i < y.length; i++) l += y[i] * g[i];
        return l;
    }

    /** Results do not depend on the thread count (column sums in a fixed order). */
    @Test
    void bitIdenticalOnOneAndTwoThreads() {
        Case c = newCase("scaledLowrank threads");
        int t = 300, dIn = 257, dOut = 600, r = 300, bigIn = 300, bigOut = 601;   // several column blocks, split over threads
        Inputs in = new Inputs(c, t, dIn, dOut, r, bigIn, bigOut, true, true);
        float[] g = c.normal(t * dOut);
        List<float[]> first = null;
        for (int threads : new int[] {1, 2}) {
            try (Scope s = new Scope(); Backend be = Backend.cpu(threads)) {
                Tensor x = s.of(in.x, t, dIn), a = s.of(in.a, r, bigIn), b = s.of(in.b, bigOut, r), u = s.of(in.u, r), v = s.of(in.v, dOut);
                Tensor h = s.poisoned(t, r), z = s.poisoned(t, dOut), y = s.poisoned(t, dOut), work = s.poisoned(2 * (t + dOut) * r);
                be.fill(0f, y);
                be.scaledLowrankForward(1.5f, x, a, b, u, v, h, z, work, y);
                Tensor du = s.poisoned(r), dv = s.poisoned(dOut), da = s.poisoned(r, bigIn), db = s.poisoned(bigOut, r), dx = s.poisoned(t, dIn);
                be.fill(0f, dx);
                be.scaledLowrankBackward(1.5f, x, a, b, u, v, h, z, s.of(g, t, dOut), work, du, dv, da, db, dx, false);
                List<float[]> got = List.of(y.toFloatArray(), du.toFloatArray(), dv.toFloatArray(), da.toFloatArray(), db.toFloatArray(),
                        dx.toFloatArray());
                if (first == null) first = got;
                else for (int i = 0; i < got.size(); i++) assertBits(c.label(), "output " + i, got.get(i), first.get(i));
            }
        }
    }

    // ---- bad arguments ----

    static Tensor f(Scope s, long... shape) {
        float[] v = new float[Math.toIntExact(ArgumentCheckTest.prod(shape))];
        java.util.Arrays.fill(v, 0.5f);
        return s.of(v, shape);
    }

    static Stream<Arguments> badJavaArguments() {
        // Valid: x [5, 4], a [2, 6], b [3, 2], u [2], v [3], h [5, 2], work 32 (fwd 16), y/g [5, 3].
        List<Arguments> c = new ArrayList<>();
        c.add(Arguments.of("a narrower than x", "a F32[2, 3]", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankForward(1, f(s, 5, 4),
                f(s, 2, 3), f(s, 3, 2), f(s, 2), f(s, 3), f(s, 5, 2), f(s, 5, 3), f(s, 32), f(s, 5, 3))));
        c.add(Arguments.of("b shorter than y", "b F32[2, 2]", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankForward(1, f(s, 5, 4),
                f(s, 2, 6), f(s, 2, 2), f(s, 2), f(s, 3), f(s, 5, 2), f(s, 5, 3), f(s, 32), f(s, 5, 3))));
        c.add(Arguments.of("b rank differs", "b F32[3, 3]", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankForward(1, f(s, 5, 4),
                f(s, 2, 6), f(s, 3, 3), f(s, 2), f(s, 3), f(s, 5, 2), f(s, 5, 3), f(s, 32), f(s, 5, 3))));
        c.add(Arguments.of("u size", "u F32[3]", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankForward(1, f(s, 5, 4),
                f(s, 2, 6), f(s, 3, 2), f(s, 3), f(s, 3), f(s, 5, 2), f(s, 5, 3), f(s, 32), f(s, 5, 3))));
        c.add(Arguments.of("v size", "v F32[2]", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankForward(1, f(s, 5, 4),
                f(s, 2, 6), f(s, 3, 2), f(s, 2), f(s, 2), f(s, 5, 2), f(s, 5, 3), f(s, 32), f(s, 5, 3))));
        c.add(Arguments.of("forward work too small", "at least 10", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankForward(1,
                f(s, 5, 4), f(s, 2, 6), f(s, 3, 2), f(s, 2), f(s, 3), f(s, 5, 2), f(s, 5, 3), f(s, 9), f(s, 5, 3))));
        c.add(Arguments.of("z shape", "z F32[5, 4]", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankForward(1,
                f(s, 5, 4), f(s, 2, 6), f(s, 3, 2), f(s, 2), f(s, 3), f(s, 5, 2), f(s, 5, 4), f(s, 32), f(s, 5, 3))));
        c.add(Arguments.of("h shape", "h F32[5, 3]", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankForward(1, f(s, 5, 4),
                f(s, 2, 6), f(s, 3, 2), f(s, 2), f(s, 3), f(s, 5, 3), f(s, 5, 3), f(s, 32), f(s, 5, 3))));
        c.add(Arguments.of("null x", "x must not be null", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankForward(1, null,
                f(s, 2, 6), f(s, 3, 2), f(s, 2), f(s, 3), f(s, 5, 2), f(s, 5, 3), f(s, 32), f(s, 5, 3))));
        c.add(Arguments.of("backward work too small", "at least 32", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankBackward(1,
                f(s, 5, 4), f(s, 2, 6), f(s, 3, 2), f(s, 2), f(s, 3), f(s, 5, 2), f(s, 5, 3), f(s, 5, 3), f(s, 31), null, null, null, null, null, false)));
        c.add(Arguments.of("da not shaped as a", "da F32[2, 4]", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankBackward(1,
                f(s, 5, 4), f(s, 2, 6), f(s, 3, 2), f(s, 2), f(s, 3), f(s, 5, 2), f(s, 5, 3), f(s, 5, 3), f(s, 32), null, null, f(s, 2, 4), null, null, false)));
        c.add(Arguments.of("db not shaped as b", "db F32[3, 1]", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankBackward(1,
                f(s, 5, 4), f(s, 2, 6), f(s, 3, 2), f(s, 2), f(s, 3), f(s, 5, 2), f(s, 5, 3), f(s, 5, 3), f(s, 32), null, null, null, f(s, 3, 1), null, false)));
        c.add(Arguments.of("du size", "du F32[3]", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankBackward(1,
                f(s, 5, 4), f(s, 2, 6), f(s, 3, 2), f(s, 2), f(s, 3), f(s, 5, 2), f(s, 5, 3), f(s, 5, 3), f(s, 32), f(s, 3), null, null, null, null, false)));
        c.add(Arguments.of("dv size", "dv F32[4]", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankBackward(1,
                f(s, 5, 4), f(s, 2, 6), f(s, 3, 2), f(s, 2), f(s, 3), f(s, 5, 2), f(s, 5, 3), f(s, 5, 3), f(s, 32), null, f(s, 4), null, null, null, false)));
        c.add(Arguments.of("dx shape", "dx F32[5, 6]", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankBackward(1,
                f(s, 5, 4), f(s, 2, 6), f(s, 3, 2), f(s, 2), f(s, 3), f(s, 5, 2), f(s, 5, 3), f(s, 5, 3), f(s, 32), null, null, null, null, f(s, 5, 6), false)));
        c.add(Arguments.of("g shape", "g F32[4, 3]", (Consumer<Scope>) s -> Backend.cpu().scaledLowrankBackward(1,
                f(s, 5, 4), f(s, 2, 6), f(s, 3, 2), f(s, 2), f(s, 3), f(s, 5, 2), f(s, 5, 3), f(s, 4, 3), f(s, 32), null, null, null, null, null, false)));
        return c.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badJavaArguments")
    void badArgumentsAreRefusedInJava(String name, String fragment, Consumer<Scope> call) {
        try (Scope s = new Scope()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> call.accept(s));
            assertTrue(e.getMessage().contains(fragment), name + ": message '" + e.getMessage() + "' lacks '" + fragment + "'");
        }
    }

    /** What only the native side checks: s not finite, lda < d_in, negative sizes, null pointers. */
    @Test
    void badArgumentsAreRefusedNatively() {
        try (Scope s = new Scope()) {
            NativeException e = assertThrows(NativeException.class, () -> Backend.cpu().scaledLowrankForward(Float.NaN, f(s, 5, 4),
                    f(s, 2, 6), f(s, 3, 2), f(s, 2), f(s, 3), f(s, 5, 2), f(s, 5, 3), f(s, 32), f(s, 5, 3)));
            assertTrue(e.getMessage().contains("s"), e.getMessage());
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ctxOut = arena.allocate(ValueLayout.ADDRESS);
            Backend.cpu();   // loads the library
            assertEquals(0, Peft4j.p4j_ctx_create(1, ctxOut));
            MemorySegment ctx = ctxOut.get(ValueLayout.ADDRESS, 0);
            MemorySegment buf = arena.allocate(4096, 64);
            MemorySegment nul = MemorySegment.NULL;
            assertEquals(-1, Peft4j.p4j_scaled_lowrank_forward(ctx, 5, 4, 3, 2, 3, 1f, buf, buf, buf, nul, nul, buf, buf, buf, buf));
            assertTrue(lastError().contains("lda"), lastError());
            assertEquals(-1, Peft4j.p4j_scaled_lowrank_forward(ctx, -1, 4, 3, 2, 4, 1f, buf, buf, buf, nul, nul, buf, buf, buf, buf));
            assertTrue(lastError().contains("t"), lastError());
            assertEquals(-1, Peft4j.p4j_scaled_lowrank_forward(ctx, 5, 4, 3, 2, 4, 1f, buf, buf, buf, nul, nul, buf, buf, nul, buf));
            assertTrue(lastError().contains("work"), lastError());
            assertEquals(-1, Peft4j.p4j_scaled_lowrank_forward(ctx, 5, 4, 3, 2, 4, 1f, buf, buf, buf, nul, nul, buf, nul, buf, buf));
            assertTrue(lastError().contains("z"), lastError());
            assertEquals(-1, Peft4j.p4j_scaled_lowrank_backward(ctx, 5, 4, 3, 2, 4, 1f, buf, buf, buf, nul, nul, buf, buf, nul, buf,
                    nul, nul, nul, nul, nul, 0));
            assertTrue(lastError().contains("g"), lastError());
            assertEquals(-1, Peft4j.p4j_scaled_lowrank_backward(nul, 5, 4, 3, 2, 4, 1f, buf, buf, buf, nul, nul, buf, buf, buf, buf,
                    nul, nul, nul, nul, nul, 0));
            assertEquals(0, Peft4j.p4j_ctx_destroy(ctx));
        }
    }

    private static String lastError() {
        return Peft4j.p4j_last_error().reinterpret(4096).getString(0);
    }

    // ---- helpers and the float64 reference ----

    private static float[] withOutside(boolean accumulate, float[] start, int rows, int ld, int cols) {
        float[] out = start.clone();
        if (!accumulate) for (int k = 0; k < rows; k++) for (int i = 0; i < cols; i++) out[k * ld + i] = Float.NaN;
        return out;
    }

    private static float[] withOutsideRows(boolean accumulate, float[] start, int rows, int r, int used) {
        float[] out = start.clone();
        if (!accumulate) for (int i = 0; i < used * r; i++) out[i] = Float.NaN;
        return out;
    }

    private static double[] plus(float[] start, double[] upd) {
        double[] o = upd.clone();
        if (start != null) for (int i = 0; i < o.length; i++) o[i] += start[i];
        return o;
    }

    /** Random inputs: x [t, d_in], a [r, D_in], b [D_out, r], u [r] and v [d_out] near 1 (or null). */
    static final class Inputs {
        final int t, dIn, dOut, r, bigIn, bigOut;
        final float[] x, a, b, u, v;

        Inputs(Case c, int t, int dIn, int dOut, int r, int bigIn, int bigOut, boolean withU, boolean withV) {
            this.t = t;
            this.dIn = dIn;
            this.dOut = dOut;
            this.r = r;
            this.bigIn = bigIn;
            this.bigOut = bigOut;
            x = c.normal(t * dIn);
            a = c.normal(r * bigIn);
            b = c.normal(bigOut * r);
            u = withU ? c.signedUniform(r, 0.25, 2) : null;
            v = withV ? c.signedUniform(dOut, 0.25, 2) : null;
        }

        double[] xd() { return toDouble(x); }
        double[] ad() { return toDouble(a); }
        double[] bd() { return toDouble(b); }
        double[] ud() { return u == null ? ones(r) : toDouble(u); }
        double[] vd() { return v == null ? ones(dOut) : toDouble(v); }

        Ref ref(double s) {
            return new Ref(t, dIn, dOut, r, bigIn, xd(), ad(), bd(), ud(), vd(), s);
        }

        private static double[] ones(int n) {
            double[] o = new double[n];
            java.util.Arrays.fill(o, 1);
            return o;
        }
    }

    record Grads(double[] du, double[] dv, double[] da, double[] db, double[] dx) {}

    /** y = s·v ⊙ ((u ⊙ (x·a_sᵀ))·b_sᵀ) and its gradients, in double (da: [r, d_in], db: [d_out, r]). */
    record Ref(int t, int dIn, int dOut, int r, int lda, double[] x, double[] a, double[] b, double[] u, double[] v, double s) {
        double[] h() {
            double[] h = new double[t * r];
            for (int n = 0; n < t; n++) {
                for (int k = 0; k < r; k++) {
                    double acc = 0;
                    for (int i = 0; i < dIn; i++) acc += x[n * dIn + i] * a[k * lda + i];
                    h[n * r + k] = acc;
                }
            }
            return h;
        }

        /** z = (h ⊙ u)·b_sᵀ, without s and v. */
        double[] z() {
            double[] h = h(), z = new double[t * dOut];
            for (int n = 0; n < t; n++) {
                for (int j = 0; j < dOut; j++) {
                    double acc = 0;
                    for (int k = 0; k < r; k++) acc += u[k] * h[n * r + k] * b[j * r + k];
                    z[n * dOut + j] = acc;
                }
            }
            return z;
        }

        double[] y() {
            double[] h = h(), y = new double[t * dOut];
            for (int n = 0; n < t; n++) {
                for (int j = 0; j < dOut; j++) {
                    double acc = 0;
                    for (int k = 0; k < r; k++) acc += u[k] * h[n * r + k] * b[j * r + k];
                    y[n * dOut + j] = s * v[j] * acc;
                }
            }
            return y;
        }

        Grads backward(double[] g) {
            double[] h = h();
            double[] gb = new double[t * r];
            for (int n = 0; n < t; n++) {
                for (int k = 0; k < r; k++) {
                    double acc = 0;
                    for (int j = 0; j < dOut; j++) acc += g[n * dOut + j] * v[j] * b[j * r + k];
                    gb[n * r + k] = acc;
                }
            }
            double[] du = new double[r], dv = new double[dOut], da = new double[r * dIn], db = new double[dOut * r], dx = new double[t * dIn];
            for (int n = 0; n < t; n++) {
                for (int k = 0; k < r; k++) {
                    du[k] += s * gb[n * r + k] * h[n * r + k];
                    for (int i = 0; i < dIn; i++) {
                        da[k * dIn + i] += s * gb[n * r + k] * u[k] * x[n * dIn + i];
                        dx[n * dIn + i] += s * gb[n * r + k] * u[k] * a[k * lda + i];
                    }
                }
                for (int j = 0; j < dOut; j++) {
                    for (int k = 0; k < r; k++) {
                        double term = s * g[n * dOut + j] * u[k] * h[n * r + k];
                        dv[j] += term * b[j * r + k];
                        db[j * r + k] += term * v[j];
                    }
                }
            }
            return new Grads(du, dv, da, db, dx);
        }
    }
}
