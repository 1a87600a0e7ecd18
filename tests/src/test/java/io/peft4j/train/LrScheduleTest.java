package io.peft4j.train;

import static io.peft4j.variants.TestSupport.assertThrowsNaming;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * Learning-rate factors at key steps (0-based optimizer steps). Warm-up reaches the full rate at
 * its last step: factor (step + 1)/warmup.
 */
class LrScheduleTest {
    private static final double EPS = 1e-12;

    @Test
    void constantIsOne() {
        LrSchedule s = LrSchedule.constant();
        for (long step : new long[] {0, 1, 17, 1_000_000}) assertEquals(1.0, s.factor(step), EPS);
        assertEquals(1.0, LrSchedule.named("constant", 5, 10).factor(0), EPS);
    }

    @Test
    void linearWarmsUpThenDecaysToZero() {
        LrSchedule s = LrSchedule.linear(10, 100);
        assertEquals(0.1, s.factor(0), EPS);
        assertEquals(0.5, s.factor(4), EPS);
        assertEquals(1.0, s.factor(9), EPS);
        assertEquals(1.0, s.factor(10), EPS);
        assertEquals(0.5, s.factor(55), EPS);
        assertEquals(1.0 / 90, s.factor(99), EPS);
        assertEquals(0.0, s.factor(100), EPS);
        assertEquals(0.0, s.factor(250), EPS, "never negative past the end");
        for (long t = 10; t < 100; t++) assertTrue(s.factor(t + 1) < s.factor(t), "decreasing at " + t);
        LrSchedule noWarmup = LrSchedule.linear(0, 4);
        assertEquals(1.0, noWarmup.factor(0), EPS);
        assertEquals(0.25, noWarmup.factor(3), EPS);
    }

    @Test
    void cosineWarmsUpThenFollowsAHalfCosine() {
        LrSchedule s = LrSchedule.cosine(10, 110);
        assertEquals(0.1, s.factor(0), EPS);
        assertEquals(1.0, s.factor(9), EPS);
        assertEquals(1.0, s.factor(10), EPS);
        assertEquals(0.5 * (1 + Math.cos(Math.PI / 4)), s.factor(35), EPS);
        assertEquals(0.5, s.factor(60), EPS);
        assertEquals(0.5 * (1 + Math.cos(Math.PI * 3 / 4)), s.factor(85), EPS);
        assertEquals(0.0, s.factor(110), EPS);
        assertEquals(0.0, s.factor(500), EPS, "stays at zero past the end");
        for (long t = 10; t < 110; t++) assertTrue(s.factor(t + 1) < s.factor(t), "decreasing at " + t);
        assertEquals(1.0, LrSchedule.cosine(0, 50).factor(0), EPS);
    }

    @Test
    void namesAndArgumentsAreChecked() {
        assertEquals(0.5, LrSchedule.named("linear", 2, 10).factor(0), EPS);
        assertEquals(0.5, LrSchedule.named("cosine", 2, 10).factor(0), EPS);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LrSchedule.named("step", 0, 10));
        assertTrue(e.getMessage().contains("step"), e.getMessage());
        assertThrowsNaming(IllegalArgumentException.class, () -> LrSchedule.linear(11, 10), "0 <= warmup <= total", "got 11, 10");
        assertThrowsNaming(IllegalArgumentException.class, () -> LrSchedule.linear(-1, 10), "got -1, 10");
        assertThrowsNaming(IllegalArgumentException.class, () -> LrSchedule.cosine(0, 0), "total > 0", "got 0, 0");
    }
}
