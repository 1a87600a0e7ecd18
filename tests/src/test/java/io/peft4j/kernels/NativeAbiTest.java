package io.peft4j.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.backend.NativeLoader;
import io.peft4j.bindings.Peft4j;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The C ABI itself, below the Java checks: every entry point given a bad raw argument (null
 * pointer, negative size, too-small leading dimension, out-of-range scalar, a pointer that is not
 * a context) returns P4J_EINVAL, sets a p4j_last_error() message naming the function and the
 * argument with its value (each case's fragment starts at the argument, so the function's name
 * cannot satisfy it), writes nothing, and the process carries on (a crash would end the test run). Buffers are real and
 * large enough, so only the bad argument can be at fault.
 */
class NativeAbiTest {
    static final int EINVAL = -1;
    static final long FLOATS = 64;
    static Arena arena;
    static MemorySegment ctx, notACtx;
    /** Float buffers f[0..5], int labels, byte mask, int64 scalar: all filled with a sentinel. */
    static MemorySegment[] f;
    static MemorySegment labels, mask, i64;
    /** Where p4j_ctx_create may store its (null) result even when failing; outside the snapshot. */
    static MemorySegment ctxOut;

    @BeforeAll
    static void setUp() {
        NativeLoader.loadCpu();
        arena = Arena.ofShared();
        MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
        assertEquals(0, Peft4j.p4j_ctx_create(1, out), () -> lastError());
        ctx = out.get(ValueLayout.ADDRESS, 0);
        notACtx = arena.allocate(64, 64); // readable memory without the context's magic number
        f = new MemorySegment[6];
        for (int i = 0; i < f.length; i++) f[i] = arena.allocate(FLOATS * 4, 64);
        labels = arena.allocate(FLOATS * 4, 64);
        mask = arena.allocate(FLOATS, 64);
        i64 = arena.allocate(8, 8);
        ctxOut = arena.allocate(ValueLayout.ADDRESS);
    }

    @AfterAll
    static void tearDown() {
        assertEquals(0, Peft4j.p4j_ctx_destroy(ctx), () -> lastError());
        arena.close();
    }

    static String lastError() {
        return Peft4j.p4j_last_error().reinterpret(4096).getString(0);
    }

    static void fillSentinels() {
        for (MemorySegment s : f) for (long i = 0; i < FLOATS; i++) s.setAtIndex(ValueLayout.JAVA_FLOAT, i, 0.25f);
        for (long i = 0; i < FLOATS; i++) labels.setAtIndex(ValueLayout.JAVA_INT, i, 1);
        mask.fill((byte) 1);
        i64.set(ValueLayout.JAVA_LONG, 0, 77);
    }

    /** Every buffer but labels (which some cases set to a bad value on purpose). */
    static byte[] snapshot() {
        List<byte[]> parts = new ArrayList<>();
        for (MemorySegment s : f) parts.add(s.toArray(ValueLayout.JAVA_BYTE));
        parts.add(mask.toArray(ValueLayout.JAVA_BYTE));
        parts.add(i64.toArray(ValueLayout.JAVA_BYTE));
        int n = parts.stream().mapToInt(p -> p.length).sum(), at = 0;
        byte[] all = new byte[n];
        for (byte[] p : parts) {
            System.arraycopy(p, 0, all, at, p.length);
            at += p.length;
        }
        return all;
    }

    interface Call {
        int run();
    }

    static Arguments bad(String fn, String what, String fragment, Call call) {
        return Arguments.of(fn, what, fragment, call);
    }

    static final MemorySegment NULL = MemorySegment.NULL;

    static Stream<Arguments> badCalls() {
        List<Arguments> c = new ArrayList<>();
        // [2, 4] · [4, 2] with lda = 4, ldb = 2, ldc = 2 is a valid call; each case breaks one thing.
        c.add(bad("p4j_gemm", "null ctx", "ctx is null", () -> Peft4j.p4j_gemm(NULL, 0, 0, 2, 2, 4, 1, f[0], 4, f[1], 2, 0, f[2], 2)));
        c.add(bad("p4j_gemm", "ctx not a context", "ctx (0x", () -> Peft4j.p4j_gemm(notACtx, 0, 0, 2, 2, 4, 1, f[0], 4, f[1], 2, 0, f[2], 2)));
        c.add(bad("p4j_gemm", "trans_a = 2", "trans_a (2) is not 0 or 1", () -> Peft4j.p4j_gemm(ctx, 2, 0, 2, 2, 4, 1, f[0], 4, f[1], 2, 0, f[2], 2)));
        c.add(bad("p4j_gemm", "m < 0", "m (-2) < 0", () -> Peft4j.p4j_gemm(ctx, 0, 0, -2, 2, 4, 1, f[0], 4, f[1], 2, 0, f[2], 2)));
        c.add(bad("p4j_gemm", "k < 0", "k (-4) < 0", () -> Peft4j.p4j_gemm(ctx, 0, 0, 2, 2, -4, 1, f[0], 4, f[1], 2, 0, f[2], 2)));
        c.add(bad("p4j_gemm", "lda < k", "lda (3) < k (4)", () -> Peft4j.p4j_gemm(ctx, 0, 0, 2, 2, 4, 1, f[0], 3, f[1], 2, 0, f[2], 2)));
        c.add(bad("p4j_gemm", "lda < m (a transposed)", "lda (3) < m (4)", () -> Peft4j.p4j_gemm(ctx, 1, 0, 4, 2, 2, 1, f[0], 3, f[1], 2, 0, f[2], 2)));
        c.add(bad("p4j_gemm", "ldb < n", "ldb (2) < n (3)", () -> Peft4j.p4j_gemm(ctx, 0, 0, 2, 3, 4, 1, f[0], 4, f[1], 2, 0, f[2], 3)));
        c.add(bad("p4j_gemm", "ldc < n", "ldc (1) < n (2)", () -> Peft4j.p4j_gemm(ctx, 0, 0, 2, 2, 4, 1, f[0], 4, f[1], 2, 0, f[2], 1)));
        c.add(bad("p4j_gemm", "null a", ": a is null", () -> Peft4j.p4j_gemm(ctx, 0, 0, 2, 2, 4, 1, NULL, 4, f[1], 2, 0, f[2], 2)));
        c.add(bad("p4j_gemm", "null c", ": c is null", () -> Peft4j.p4j_gemm(ctx, 0, 0, 2, 2, 4, 1, f[0], 4, f[1], 2, 0, NULL, 2)));
        // t=3, d_in=4, d_out=2, r=2
        c.add(bad("p4j_lowrank_forward", "null x", ": x is null", () -> Peft4j.p4j_lowrank_forward(ctx, 3, 4, 2, 2, 1, NULL, f[1], f[2], f[3], f[4])));
        c.add(bad("p4j_lowrank_forward", "r < 0", ": r (-2) < 0", () -> Peft4j.p4j_lowrank_forward(ctx, 3, 4, 2, -2, 1, f[0], f[1], f[2], f[3], f[4])));
        c.add(bad("p4j_lowrank_forward", "null y", ": y is null", () -> Peft4j.p4j_lowrank_forward(ctx, 3, 4, 2, 2, 1, f[0], f[1], f[2], f[3], NULL)));
        c.add(bad("p4j_lowrank_backward", "null gb", ": gb is null", () -> Peft4j.p4j_lowrank_backward(ctx, 3, 4, 2, 2, 1, f[0], f[1], f[2], f[3], f[4], NULL, f[5], f[0], NULL, 0)));
        c.add(bad("p4j_lowrank_backward", "null da", ": da is null", () -> Peft4j.p4j_lowrank_backward(ctx, 3, 4, 2, 2, 1, f[0], f[1], f[2], f[3], f[4], f[5], NULL, f[0], NULL, 0)));
        c.add(bad("p4j_lowrank_backward", "t < 0", ": t (-3) < 0", () -> Peft4j.p4j_lowrank_backward(ctx, -3, 4, 2, 2, 1, f[0], f[1], f[2], f[3], f[4], f[5], f[0], f[1], NULL, 0)));
        c.add(bad("p4j_bias_add", "null bias", ": bias is null", () -> Peft4j.p4j_bias_add(ctx, 3, 4, NULL, f[1])));
        c.add(bad("p4j_bias_add", "d < 0", ": d (-4) < 0", () -> Peft4j.p4j_bias_add(ctx, 3, -4, f[0], f[1])));
        c.add(bad("p4j_colsum", "null out", ": out is null", () -> Peft4j.p4j_colsum(ctx, 3, 4, f[0], NULL, 0)));
        c.add(bad("p4j_relu_forward", "n < 0", ": n (-1) < 0", () -> Peft4j.p4j_relu_forward(ctx, -1, f[0], f[1])));
        c.add(bad("p4j_relu_forward", "null y", ": y is null", () -> Peft4j.p4j_relu_forward(ctx, 8, f[0], NULL)));
        c.add(bad("p4j_relu_backward", "null g", ": g is null", () -> Peft4j.p4j_relu_backward(ctx, 8, f[0], NULL, f[2])));
        c.add(bad("p4j_gelu_forward", "null x", ": x is null", () -> Peft4j.p4j_gelu_forward(ctx, 8, NULL, f[1])));
        c.add(bad("p4j_gelu_backward", "null dx", ": dx is null", () -> Peft4j.p4j_gelu_backward(ctx, 8, f[0], f[1], NULL)));
        c.add(bad("p4j_scale", "null x", ": x is null", () -> Peft4j.p4j_scale(ctx, 8, 2, NULL)));
        c.add(bad("p4j_axpy", "null y", ": y is null", () -> Peft4j.p4j_axpy(ctx, 8, 2, f[0], NULL)));
        c.add(bad("p4j_mul", "null out", ": out is null", () -> Peft4j.p4j_mul(ctx, 8, f[0], f[1], NULL)));
        c.add(bad("p4j_fill", "n < 0", ": n (-8) < 0", () -> Peft4j.p4j_fill(ctx, -8, 1, f[0])));
        c.add(bad("p4j_copy", "null dst", ": dst is null", () -> Peft4j.p4j_copy(ctx, 8, f[0], NULL)));
        c.add(bad("p4j_copy", "dst overlaps src", ") overlap for n (8) floats", () -> Peft4j.p4j_copy(ctx, 8, f[0], f[0].asSlice(16))));
        c.add(bad("p4j_argmax_rows", "null out", ": out is null", () -> Peft4j.p4j_argmax_rows(ctx, 3, 4, f[0], NULL)));
        c.add(bad("p4j_argmax_rows", "c = 0 with rows", ": c (0) must be > 0 when t (3) > 0", () -> Peft4j.p4j_argmax_rows(ctx, 3, 0, f[0], labels)));
        c.add(bad("p4j_softmax_xent_forward", "label >= c", ": labels[2] (4) not in [0, 4)", () -> {
            labels.setAtIndex(ValueLayout.JAVA_INT, 2, 4);
            return Peft4j.p4j_softmax_xent_forward(ctx, 3, 4, f[0], labels, f[1], f[2]);
        }));
        c.add(bad("p4j_softmax_xent_forward", "label < 0", ": labels[0] (-1) not in [0, 4)", () -> {
            labels.setAtIndex(ValueLayout.JAVA_INT, 0, -1);
            return Peft4j.p4j_softmax_xent_forward(ctx, 3, 4, f[0], labels, f[1], f[2]);
        }));
        c.add(bad("p4j_softmax_xent_forward", "null loss", ": loss is null", () -> Peft4j.p4j_softmax_xent_forward(ctx, 3, 4, f[0], labels, f[1], NULL)));
        c.add(bad("p4j_softmax_xent_backward", "null probs", ": probs is null", () -> Peft4j.p4j_softmax_xent_backward(ctx, 3, 4, NULL, labels, 1, f[1])));
        c.add(bad("p4j_softmax_xent_backward", "label >= c", ": labels[1] (1073741824) not in [0, 4)", () -> {
            labels.setAtIndex(ValueLayout.JAVA_INT, 1, 1 << 30);
            return Peft4j.p4j_softmax_xent_backward(ctx, 3, 4, f[0], labels, 1, f[1]);
        }));
        c.add(bad("p4j_mse", "null loss", ": loss is null", () -> Peft4j.p4j_mse(ctx, 8, f[0], f[1], NULL, f[2])));
        c.add(bad("p4j_mse", "n < 0", ": n (-8) < 0", () -> Peft4j.p4j_mse(ctx, -8, f[0], f[1], f[2], NULL)));
        c.add(bad("p4j_adamw_step", "step 0", ": step (0) < 1", () -> Peft4j.p4j_adamw_step(ctx, 8, f[0], f[1], f[2], f[3], 1e-3f, 0.9f, 0.999f, 1e-8f, 0, 0)));
        c.add(bad("p4j_adamw_step", "beta1 = 1", ": beta1 (1) not in [0, 1)", () -> Peft4j.p4j_adamw_step(ctx, 8, f[0], f[1], f[2], f[3], 1e-3f, 1f, 0.999f, 1e-8f, 0, 1)));
        // Each way out of optim.cpp's range checks: NaN, below the bound, infinite.
        c.add(bad("p4j_adamw_step", "beta1 NaN", ": beta1 (nan) not in [0, 1)", () -> Peft4j.p4j_adamw_step(ctx, 8, f[0], f[1], f[2], f[3], 1e-3f, Float.NaN, 0.999f, 1e-8f, 0, 1)));
        c.add(bad("p4j_adamw_step", "beta2 < 0", ": beta2 (-0.5) not in [0, 1)", () -> Peft4j.p4j_adamw_step(ctx, 8, f[0], f[1], f[2], f[3], 1e-3f, 0.9f, -0.5f, 1e-8f, 0, 1)));
        c.add(bad("p4j_adamw_step", "lr < 0", ": lr (-0.001) is not finite and >= 0", () -> Peft4j.p4j_adamw_step(ctx, 8, f[0], f[1], f[2], f[3], -1e-3f, 0.9f, 0.999f, 1e-8f, 0, 1)));
        c.add(bad("p4j_adamw_step", "eps = inf", ": eps (inf) is not finite and >= 0", () -> Peft4j.p4j_adamw_step(ctx, 8, f[0], f[1], f[2], f[3], 1e-3f, 0.9f, 0.999f, Float.POSITIVE_INFINITY, 0, 1)));
        c.add(bad("p4j_sgd_step", "weight_decay NaN", ": weight_decay (nan) is not finite and >= 0", () -> Peft4j.p4j_sgd_step(ctx, 8, f[0], f[1], f[2], 0.1f, 0.9f, Float.NaN, 0, 1)));
        c.add(bad("p4j_adamw_step", "null v", ": v is null", () -> Peft4j.p4j_adamw_step(ctx, 8, f[0], f[1], f[2], NULL, 1e-3f, 0.9f, 0.999f, 1e-8f, 0, 1)));
        c.add(bad("p4j_sgd_step", "momentum without buf", ": buf (momentum != 0) is null", () -> Peft4j.p4j_sgd_step(ctx, 8, f[0], f[1], NULL, 0.1f, 0.9f, 0, 0, 1)));
        c.add(bad("p4j_sgd_step", "n < 0", ": n (-8) < 0", () -> Peft4j.p4j_sgd_step(ctx, -8, f[0], f[1], f[2], 0.1f, 0.9f, 0, 0, 1)));
        c.add(bad("p4j_sumsq", "null out", ": out is null", () -> Peft4j.p4j_sumsq(ctx, 8, f[0], NULL)));
        c.add(bad("p4j_rng_uniform", "n < 0", ": n (-8) < 0", () -> Peft4j.p4j_rng_uniform(ctx, -8, 1, 0, 0, 1, f[0])));
        c.add(bad("p4j_rng_uniform", "offset < 0", ": offset (-4) < 0", () -> Peft4j.p4j_rng_uniform(ctx, 8, 1, -4, 0, 1, f[0])));
        c.add(bad("p4j_rng_uniform", "null out", ": out is null", () -> Peft4j.p4j_rng_uniform(ctx, 8, 1, 0, 0, 1, NULL)));
        c.add(bad("p4j_rng_normal", "std < 0", ": std (-1) < 0", () -> Peft4j.p4j_rng_normal(ctx, 8, 1, 0, 0, -1, f[0])));
        c.add(bad("p4j_rng_kaiming_uniform", "fan_in 0", ": fan_in (0) <= 0", () -> Peft4j.p4j_rng_kaiming_uniform(ctx, 8, 1, 0, 0, 0, f[0])));
        c.add(bad("p4j_dropout_forward", "p = 1", ": p (1) not in [0, 1)", () -> Peft4j.p4j_dropout_forward(ctx, 8, 1f, 1, 0, f[0], mask, f[1])));
        c.add(bad("p4j_dropout_forward", "p < 0", ": p (-0.5) not in [0, 1)", () -> Peft4j.p4j_dropout_forward(ctx, 8, -0.5f, 1, 0, f[0], mask, f[1])));
        c.add(bad("p4j_dropout_forward", "null mask", ": mask is null", () -> Peft4j.p4j_dropout_forward(ctx, 8, 0.5f, 1, 0, f[0], NULL, f[1])));
        c.add(bad("p4j_dropout_backward", "p = 1", ": p (1) not in [0, 1)", () -> Peft4j.p4j_dropout_backward(ctx, 8, 1f, mask, f[0], f[1])));
        c.add(bad("p4j_dropout_backward", "null g", ": g is null", () -> Peft4j.p4j_dropout_backward(ctx, 8, 0.5f, mask, NULL, f[1])));
        c.add(bad("p4j_fma_peak", "null flops", ": flops is null", () -> Peft4j.p4j_fma_peak(ctx, 10, NULL, f[0])));
        c.add(bad("p4j_fma_peak", "iters < 0", ": iters (-10) < 0", () -> Peft4j.p4j_fma_peak(ctx, -10, i64, f[0])));
        c.add(bad("p4j_ctx_create", "threads < 0", ": threads (-1) < 0", () -> Peft4j.p4j_ctx_create(-1, ctxOut)));
        c.add(bad("p4j_ctx_create", "null out", ": out is null", () -> Peft4j.p4j_ctx_create(1, NULL)));
        c.add(bad("p4j_ctx_threads", "null threads", ": threads is null", () -> Peft4j.p4j_ctx_threads(ctx, NULL)));
        c.add(bad("p4j_ctx_threads", "null ctx", ": ctx is null", () -> Peft4j.p4j_ctx_threads(NULL, f[0])));
        c.add(bad("p4j_ctx_destroy", "not a context", ": ctx (0x", () -> Peft4j.p4j_ctx_destroy(notACtx)));
        c.add(bad("p4j_version", "null major", ": major is null", () -> Peft4j.p4j_version(NULL, f[0], f[1])));
        c.add(bad("p4j_cpu_features", "null features", ": features is null", () -> Peft4j.p4j_cpu_features(NULL)));
        c.add(bad("p4j_mem_advise_huge", "null ptr with bytes", ": ptr is null", () -> Peft4j.p4j_mem_advise_huge(NULL, 4096)));
        c.add(bad("p4j_mem_advise_huge", "bytes < 0", ": bytes (-1) < 0", () -> Peft4j.p4j_mem_advise_huge(f[0], -1)));
        c.add(bad("p4j_mem_advise_huge", "range wraps around", ": ptr (0xfffffffffffff000) + bytes (8192) wraps around",
                () -> Peft4j.p4j_mem_advise_huge(MemorySegment.ofAddress(-4096L), 8192)));
        c.add(bad("p4j_fill", "n = 2^61", ": [n] size [2305843009213693952, 1] overflows int64", () -> Peft4j.p4j_fill(ctx, 1L << 61, 1, f[0])));
        c.add(bad("p4j_lowrank_forward", "s NaN", ": s (nan) is not finite", () -> Peft4j.p4j_lowrank_forward(ctx, 3, 4, 2, 2, Float.NaN, f[0], f[1], f[2], f[3], f[4])));
        c.add(bad("p4j_rng_uniform", "offset + n overflows", ": offset (9223372036854775804) + n (8) overflows int64",
                () -> Peft4j.p4j_rng_uniform(ctx, 8, 1, Long.MAX_VALUE - 3, 0, 1, f[0])));
        c.add(bad("p4j_argmax_rows", "c > INT32_MAX", ": c (2147483648) > INT32_MAX", () -> Peft4j.p4j_argmax_rows(ctx, 1, 1L << 31, f[0], labels)));
        c.add(bad("p4j_ctx_create", "threads > 1024", ": threads (1025) > 1024", () -> Peft4j.p4j_ctx_create(1025, ctxOut)));
        c.add(bad("p4j_fma_peak", "iters overflows the flop count", ": iters (9223372036854775807) makes the flop count overflow",
                () -> Peft4j.p4j_fma_peak(ctx, Long.MAX_VALUE, i64, f[0])));
        c.add(bad("p4j_gemm", "trans_b = 3", ": trans_b (3) is not 0 or 1", () -> Peft4j.p4j_gemm(ctx, 0, 3, 2, 2, 4, 1, f[0], 4, f[1], 2, 0, f[2], 2)));
        c.add(bad("p4j_gemm", "n < 0", ": n (-2) < 0", () -> Peft4j.p4j_gemm(ctx, 0, 0, 2, -2, 4, 1, f[0], 4, f[1], 2, 0, f[2], 2)));
        c.add(bad("p4j_gemm", "ldb < k (b transposed)", ": ldb (3) < k (4)", () -> Peft4j.p4j_gemm(ctx, 0, 1, 2, 2, 4, 1, f[0], 4, f[1], 3, 0, f[2], 2)));
        c.add(bad("p4j_gemm", "null b", ": b is null", () -> Peft4j.p4j_gemm(ctx, 0, 0, 2, 2, 4, 1, f[0], 4, NULL, 2, 0, f[2], 2)));
        // Each of lowrank's five matrices as the first whose element count overflows.
        long big = 1L << 31;
        c.add(bad("p4j_lowrank_forward", "x overflows", ": x [t, d_in] size [2147483648, 2147483648] overflows",
                () -> Peft4j.p4j_lowrank_forward(ctx, big, big, 1, 1, 1, f[0], f[1], f[2], f[3], f[4])));
        c.add(bad("p4j_lowrank_forward", "a overflows", ": a [r, d_in] size [2147483648, 2147483648] overflows",
                () -> Peft4j.p4j_lowrank_forward(ctx, 1, big, 1, big, 1, f[0], f[1], f[2], f[3], f[4])));
        c.add(bad("p4j_lowrank_forward", "b overflows", ": b [d_out, r] size [2147483648, 2147483648] overflows",
                () -> Peft4j.p4j_lowrank_forward(ctx, 1, 1, big, big, 1, f[0], f[1], f[2], f[3], f[4])));
        c.add(bad("p4j_lowrank_forward", "h overflows", ": h [t, r] size [2147483648, 2147483648] overflows",
                () -> Peft4j.p4j_lowrank_forward(ctx, big, 1, 1, big, 1, f[0], f[1], f[2], f[3], f[4])));
        c.add(bad("p4j_lowrank_backward", "y, g overflow", ": y, g [t, d_out] size [2147483648, 2147483648] overflows",
                () -> Peft4j.p4j_lowrank_backward(ctx, big, 1, big, 1, 1, f[0], f[1], f[2], f[3], f[4], f[5], f[0], f[1], NULL, 0)));
        c.add(bad("p4j_rng_uniform", "lo > hi", ": lo (2) > hi (1)", () -> Peft4j.p4j_rng_uniform(ctx, 8, 1, 0, 2, 1, f[0])));
        c.add(bad("p4j_rng_uniform", "hi - lo overflows", ": hi - lo overflows float (lo -3e+38, hi 3e+38)",
                () -> Peft4j.p4j_rng_uniform(ctx, 8, 1, 0, -3e38f, 3e38f, f[0])));
        c.addAll(everyArgument());
        return c.stream();
    }

    /**
     * One bad call per checked argument of every entry point, generated from its signature: in
     * each spec token, ctx is the context; @x a float buffer, #x an int32 buffer, %x a byte buffer,
     * &x an int64 buffer (null: "x is null"); x=3 a size (-1: "x (-1)", and 2^61, which makes some
     * [rows, cols] operand overflow: "2305843009213693952 ... overflows"); x^3 another checked
     * integer (-1 only); x~0.5 a float that must be finite (NaN: "x (nan)"); x!0.5, x:5 and x|0
     * unchecked float, int64 and int32 values; ?@x a buffer that may be null. Sizes are small
     * enough for the 64-float buffers, so only the argument made bad can be at fault.
     */
    static final String[] SPECS = {
        "p4j_lowrank_forward ctx t=3 d_in=4 d_out=2 r=2 s~0.5 @x @a @b @h @y",
        "p4j_lowrank_backward ctx t=3 d_in=4 d_out=2 r=2 s~0.5 @x @a @b @h @g @gb @da @db ?@dx accumulate|0",
        "p4j_bias_add ctx t=3 d=4 @bias @y",
        "p4j_colsum ctx t=3 d=4 @x @out accumulate|0",
        "p4j_relu_forward ctx n=8 @x @y",
        "p4j_relu_backward ctx n=8 @x @g @dx",
        "p4j_gelu_forward ctx n=8 @x @y",
        "p4j_gelu_backward ctx n=8 @x @g @dx",
        "p4j_scale ctx n=8 alpha!2 @x",
        "p4j_axpy ctx n=8 alpha!2 @x @y",
        "p4j_mul ctx n=8 @x @y @out",
        "p4j_fill ctx n=8 value!2 @x",
        "p4j_copy ctx n=8 @src @dst",
        "p4j_argmax_rows ctx t=3 c=4 @x #out",
        "p4j_softmax_xent_forward ctx t=3 c=4 @logits #labels @probs @loss",
        "p4j_softmax_xent_backward ctx t=3 c=4 @probs #labels scale~1 @dlogits",
        "p4j_mse ctx n=8 @pred @target @loss ?@g",
        "p4j_adamw_step ctx n=8 @param @grad @m @v lr~0.001 beta1~0.9 beta2~0.999 eps~1e-8 weight_decay~0 step^1",
        "p4j_sgd_step ctx n=8 @param @grad ?@buf lr~0.1 momentum~0 weight_decay~0 nesterov|0 first|1",
        "p4j_sumsq ctx n=8 @x @out",
        "p4j_rng_uniform ctx n=8 seed:1 offset^0 lo~0 hi~1 @out",
        "p4j_rng_normal ctx n=8 seed:1 offset^0 mean~0 std~1 @out",
        "p4j_rng_kaiming_uniform ctx n=8 seed:1 offset^0 fan_in^3 a~0 @out",
        "p4j_dropout_forward ctx n=8 p~0.5 seed:1 offset^0 @x %mask @y",
        "p4j_dropout_backward ctx n=8 p~0.5 %mask @g @dx",
        "p4j_rank_gated_forward ctx t=3 d_in=4 d_out=2 r=2 c~0.5 @x @a @g @b @h @hg @y",
        "p4j_rank_gated_backward ctx t=3 d_in=4 d_out=2 r=2 c~0.5 @x @a @g @b @h @gy @gb @ws ?@da ?@db ?@dg ?@dx accumulate|0",
        "p4j_rank_importance_update ctx n=8 @w @grad @ibar @ubar beta1~0.85 beta2~0.85",
        "p4j_rank_threshold ctx n=8 xi~0.5 mode|0 @x",
        "p4j_fma_peak ctx iters^10 &flops @sink",
        "p4j_version #major #minor #patch",
        "p4j_ctx_threads ctx #threads",
        "p4j_kron_forward ctx t=3 a1=2 a2=2 b1=2 b2=2 s~0.5 @x @a @b @p @y",
        "p4j_kron_backward ctx t=3 a1=2 a2=2 b1=2 b2=2 s~0.5 @x @a @b @p @g @q @da @db ?@dx accumulate|0",
        "p4j_kron ctx a1=2 a2=2 b1=2 b2=2 s~0.5 @a @b @out accumulate|0",
        "p4j_hadamard_rebuild ctx d_out=3 d_in=4 r=2 s~0.5 @w1a @w1b @w2a @w2b @dw",
        "p4j_hadamard_backward ctx d_out=3 d_in=4 r=2 s~0.5 @w1a @w1b @w2a @w2b @gw ws_rows^1 @ws @dw1a @dw1b @dw2a @dw2b accumulate|0",
        "p4j_embedding_forward ctx n=3 vocab=4 d=2 #ids @table @out",
        "p4j_embedding_backward ctx n=3 vocab=4 d=2 #ids @g @d_table",
    };

    static List<Arguments> everyArgument() {
        List<Arguments> out = new ArrayList<>();
        for (String spec : SPECS) {
            String[] tok = spec.split(" ");
            String fn = tok[0];
            String[] args = java.util.Arrays.copyOfRange(tok, 1, tok.length);
            for (int i = 0; i < args.length; i++) {
                String t = args[i], name = t.replaceAll("^[@#%&?]+|[=^~!:|].*$", "");
                if (t.equals("ctx")) {
                    out.add(bad(fn, "null ctx", "ctx is null", invoke(fn, args, i, NULL)));
                } else if (t.matches("[@#%&]\\w+")) {
                    out.add(bad(fn, "null " + name, ": " + name + " is null", invoke(fn, args, i, NULL)));
                } else if (t.contains("=") || t.contains("^")) {
                    out.add(bad(fn, name + " = -1", ": " + name + " (-1)", invoke(fn, args, i, -1L)));
                    if (t.contains("=")) {
                        out.add(bad(fn, name + " = 2^61", "2305843009213693952", invoke(fn, args, i, 1L << 61)));
                    }
                } else if (t.contains("~")) {
                    out.add(bad(fn, name + " NaN", ": " + name + " (nan)", invoke(fn, args, i, Float.NaN)));
                }
            }
        }
        return out;
    }

    /** A call of fn with the spec's valid arguments, argument `bad` replaced by badValue. */
    static Call invoke(String fn, String[] spec, int bad, Object badValue) {
        java.lang.reflect.Method m = java.util.Arrays.stream(Peft4j.class.getMethods())
                .filter(x -> x.getName().equals(fn) && x.getParameterCount() == spec.length)
                .findFirst().orElseThrow(() -> new AssertionError("no stub " + fn + " with " + spec.length + " parameters"));
        return () -> {
            Class<?>[] types = m.getParameterTypes();
            Object[] v = new Object[spec.length];
            int buf = 0;
            for (int i = 0; i < spec.length; i++) {
                String t = spec[i];
                Object val;
                if (t.equals("ctx")) val = ctx;
                else if (t.contains("@")) val = f[buf++ % f.length];
                else if (t.startsWith("#")) val = labels;
                else if (t.startsWith("%")) val = mask;
                else if (t.startsWith("&")) val = i64;
                else val = Double.parseDouble(t.replaceAll("^.*[=^~!:|]", ""));
                if (i == bad) val = badValue;
                if (val instanceof Number num) {
                    if (types[i] == long.class) val = num.longValue();
                    else if (types[i] == int.class) val = num.intValue();
                    else val = num.floatValue();
                }
                v[i] = val;
            }
            try {
                return (Integer) m.invoke(null, v);
            } catch (ReflectiveOperationException e) {
                throw new AssertionError(fn + ": " + e, e);
            }
        };
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("badCalls")
    void badRawArgumentsReturnEinvalAndWriteNothing(String fn, String what, String fragment, Call call) {
        fillSentinels();
        // The message must be this call's: set a different one first.
        assertEquals(EINVAL, Peft4j.p4j_fill(ctx, -1, 0, NULL));
        fillSentinels();
        byte[] before = snapshot();
        int status = call.run();
        String msg = lastError();
        assertEquals(EINVAL, status, fn + " (" + what + ") returned " + status + "; last error: " + msg);
        assertTrue(msg.startsWith(fn) || msg.contains(fn + ":"), fn + " (" + what + "): last error '" + msg + "' does not name " + fn);
        assertTrue(msg.contains(fragment), fn + " (" + what + "): last error '" + msg + "' does not mention '" + fragment + "'");
        assertArrayEquals(before, snapshot(), fn + " (" + what + ") wrote to a buffer before failing");
        // The library still works.
        assertEquals(0, Peft4j.p4j_fill(ctx, FLOATS, 2f, f[5]), () -> lastError());
        assertEquals(2f, f[5].getAtIndex(ValueLayout.JAVA_FLOAT, FLOATS - 1));
    }

    @Test
    void emptySizesWithNullPointersAreFine() {
        assertEquals(0, Peft4j.p4j_fill(ctx, 0, 1f, NULL), () -> lastError());
        assertEquals(0, Peft4j.p4j_copy(ctx, 0, NULL, NULL), () -> lastError());
        f[5].setAtIndex(ValueLayout.JAVA_FLOAT, 3, 1.75f);
        assertEquals(0, Peft4j.p4j_copy(ctx, 8, f[5], f[5]), () -> lastError()); // onto itself: nothing to do
        assertEquals(1.75f, f[5].getAtIndex(ValueLayout.JAVA_FLOAT, 3));
        assertEquals(0, Peft4j.p4j_relu_forward(ctx, 0, NULL, NULL), () -> lastError());
        assertEquals(0, Peft4j.p4j_rng_normal(ctx, 0, 5, 0, 0, 1, NULL), () -> lastError());
        assertEquals(0, Peft4j.p4j_gemm(ctx, 0, 0, 0, 0, 0, 1, NULL, 0, NULL, 0, 0, NULL, 0), () -> lastError());
        // Rows but no columns (m = 2, n = 0; a and b never read, c empty), and the same transposed.
        assertEquals(0, Peft4j.p4j_gemm(ctx, 0, 0, 2, 0, 4, 1, NULL, 4, NULL, 0, 0, NULL, 0), () -> lastError());
        assertEquals(0, Peft4j.p4j_gemm(ctx, 1, 1, 2, 0, 4, 1, NULL, 2, NULL, 4, 0, NULL, 0), () -> lastError());
        assertEquals(0, Peft4j.p4j_ctx_destroy(NULL), "destroying NULL is a no-op, like free(NULL)");
        assertEquals(0, Peft4j.p4j_mem_advise_huge(NULL, 0), () -> lastError());
        assertEquals(0, Peft4j.p4j_mem_advise_huge(f[0], FLOATS * 4), () -> lastError()); // no whole page: no advice
        f[0].setAtIndex(ValueLayout.JAVA_FLOAT, 0, Float.NaN);
        assertEquals(0, Peft4j.p4j_mse(ctx, 0, NULL, NULL, f[0], NULL), () -> lastError());
        assertEquals(0f, f[0].getAtIndex(ValueLayout.JAVA_FLOAT, 0), "the mean of no squares is 0");
        f[0].setAtIndex(ValueLayout.JAVA_FLOAT, 0, Float.NaN);
        assertEquals(0, Peft4j.p4j_softmax_xent_forward(ctx, 0, 4, NULL, NULL, NULL, f[0]), () -> lastError());
        assertEquals(0f, f[0].getAtIndex(ValueLayout.JAVA_FLOAT, 0), "the mean loss of no rows is 0");
        assertEquals(0, Peft4j.p4j_softmax_xent_backward(ctx, 0, 4, NULL, NULL, 1, NULL), () -> lastError());
        assertEquals(0, Peft4j.p4j_bias_add(ctx, 0, 4, NULL, NULL), () -> lastError());
        assertEquals(0, Peft4j.p4j_bias_add(ctx, 3, 0, NULL, NULL), () -> lastError());
        assertEquals(0, Peft4j.p4j_colsum(ctx, 3, 0, NULL, NULL, 0), () -> lastError());
        assertEquals(0, Peft4j.p4j_argmax_rows(ctx, 0, 4, NULL, NULL), () -> lastError());
        assertEquals(0, Peft4j.p4j_adamw_step(ctx, 0, NULL, NULL, NULL, NULL, 1e-3f, 0.9f, 0.999f, 1e-8f, 0, 1), () -> lastError());
        // A valid lowrank backward with dx = NULL (documented "may be null").
        assertEquals(0, Peft4j.p4j_lowrank_backward(ctx, 3, 4, 2, 2, 1, f[0], f[1], f[2], f[3], f[4], f[5], f[0], f[1], NULL, 0),
                () -> lastError());
    }

    /**
     * A copy of 16 MiB or more streams (non-temporal stores) only when dst is 4-byte aligned
     * (native/cpu/elementwise.cpp p4j_copy); Java's tensors always are, so the other side, a byte-
     * misaligned dst taking memcpy, is reached through the raw ABI. The aligned side:
     * ElementwiseTest#copyBelowAndFromTheStreamingSizeIsExact.
     */
    @Test
    void largeCopyToAByteMisalignedDestinationIsExact() {
        long n = (16L << 20) / 4 + 5;
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(KernelTesting.mix(KernelTesting.BASE_SEED ^ 0xC0B1L));
        try (Arena a = Arena.ofConfined()) {
            MemorySegment src = a.allocate(n * 4, 64), dst = a.allocate(n * 4 + 2, 64);
            for (long i = 0; i < n; i++) src.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (1 + rnd.nextDouble()));
            dst.fill((byte) 0x5A);
            assertEquals(0, Peft4j.p4j_copy(ctx, n, src, dst.asSlice(1)), () -> lastError());
            assertEquals(-1, src.mismatch(dst.asSlice(1, n * 4)), "misaligned copy differs from the source");
            assertEquals((byte) 0x5A, dst.get(ValueLayout.JAVA_BYTE, 0), "copy wrote before dst");
            assertEquals((byte) 0x5A, dst.get(ValueLayout.JAVA_BYTE, n * 4 + 1), "copy wrote past dst + n");
        }
    }

    /** t = 0 or r = 0: nothing to compute (h and gb empty, y and dx += 0); nothing is written. */
    @Test
    void emptyLowrankCallsAreNoOps() {
        fillSentinels();
        byte[] before = snapshot();
        assertEquals(0, Peft4j.p4j_lowrank_forward(ctx, 0, 4, 2, 2, 1, f[0], f[1], f[2], f[3], f[4]), () -> lastError());
        assertEquals(0, Peft4j.p4j_lowrank_forward(ctx, 3, 4, 2, 0, 1, f[0], f[1], f[2], f[3], f[4]), () -> lastError());
        assertEquals(0, Peft4j.p4j_lowrank_backward(ctx, 3, 4, 2, 0, 1, f[0], f[1], f[2], f[3], f[4], f[5], f[0], f[1], f[2], 1),
                () -> lastError());
        assertArrayEquals(before, snapshot(), "an empty low-rank call wrote to a buffer");
    }

    /** lo = hi: every value is lo (the clamp below hi falls back to hi itself; native/cpu/rng.cpp). */
    @Test
    void uniformWithLoEqualToHiIsConstant() {
        fillSentinels();
        assertEquals(0, Peft4j.p4j_rng_uniform(ctx, 13, 7, 5, -1.5f, -1.5f, f[0]), () -> lastError());
        for (long i = 0; i < 13; i++) assertEquals(-1.5f, f[0].getAtIndex(ValueLayout.JAVA_FLOAT, i), "element " + i);
        assertEquals(0.25f, f[0].getAtIndex(ValueLayout.JAVA_FLOAT, 13), "wrote past n");
    }

    /** threads = 0 asks for every core (native/cpu/abi.cpp p4j_ctx_create). */
    @Test
    void zeroThreadsMeansEveryCore() {
        assertEquals(0, Peft4j.p4j_ctx_create(0, ctxOut), () -> lastError());
        MemorySegment c = ctxOut.get(ValueLayout.ADDRESS, 0);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment n = a.allocate(ValueLayout.JAVA_INT);
            assertEquals(0, Peft4j.p4j_ctx_threads(c, n), () -> lastError());
            assertEquals(Runtime.getRuntime().availableProcessors(), n.get(ValueLayout.JAVA_INT, 0));
        } finally {
            assertEquals(0, Peft4j.p4j_ctx_destroy(c), () -> lastError());
        }
    }

    @Test
    void versionIs010AndLibraryFactsAreThere() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(ValueLayout.JAVA_INT, 3);
            assertEquals(0, Peft4j.p4j_version(v, v.asSlice(4), v.asSlice(8)), () -> lastError());
            assertArrayEquals(new int[] {0, 1, 0}, v.toArray(ValueLayout.JAVA_INT), "p4j_version");
            String info = Peft4j.p4j_build_info().reinterpret(4096).getString(0);
            assertTrue(info.contains("0.1.0"), "build info '" + info + "' lacks the version");
            MemorySegment feat = a.allocate(ValueLayout.JAVA_INT);
            assertEquals(0, Peft4j.p4j_cpu_features(feat), () -> lastError());
            int bits = feat.get(ValueLayout.JAVA_INT, 0);
            assertEquals(0, bits & ~63, "only P4J_CPU_* bits");
            if ((bits & 4) != 0) assertEquals(3, bits & 3, "AVX-512 kernels imply AVX2 + FMA");
            if ((bits & (8 | 16 | 32)) != 0) assertEquals(4, bits & 4, "BF16, VBMI and VNNI are reported with the AVX-512 kernels");
            MemorySegment n = a.allocate(ValueLayout.JAVA_INT);
            assertEquals(0, Peft4j.p4j_ctx_threads(ctx, n), () -> lastError());
            assertEquals(1, n.get(ValueLayout.JAVA_INT, 0));
        }
    }

    @Test
    void lastErrorIsPerThread() throws Exception {
        assertEquals(EINVAL, Peft4j.p4j_scale(ctx, -3, 1, f[0]));
        String mine = lastError();
        String[] other = new String[1];
        Thread t = Thread.ofPlatform().start(() -> {
            Peft4j.p4j_sumsq(ctx, 8, f[0], NULL);
            other[0] = lastError();
        });
        t.join();
        assertTrue(mine.contains("p4j_scale"), mine);
        assertTrue(other[0].contains("p4j_sumsq"), other[0]);
        assertEquals(mine, lastError(), "another thread's failure must not change this thread's message");
    }
}
