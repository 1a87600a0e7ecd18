package io.peft4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class ProgressBarsTest {

    @Test
    void disabledBarIsANoOpThatCounts() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        try (ProgressBars.Bar bar = ProgressBars.epoch("epoch 1", 100, false, out, true)) {
            assertFalse(bar.enabled());
            for (int i = 0; i < 10; i++) {
                bar.step().loss(1.0 / (i + 1));
            }
            bar.stepBy(5).message("done");
            assertEquals(15, bar.current());
        }
        assertEquals(0, bytes.size(), "a disabled bar writes nothing");
        try (ProgressBars.Bar bar = ProgressBars.epoch("epoch 1", 3, false)) {
            assertFalse(bar.enabled());
            bar.step();
            assertEquals(1, bar.current());
        }
    }

    @Test
    void interactiveBarRedrawsInPlaceWithTheLoss() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        ProgressBars.Bar bar = ProgressBars.epoch("epoch 2/5", 20, true, out, true);
        assertTrue(bar.enabled());
        for (int i = 0; i < 20; i++) {
            bar.step();
        }
        bar.loss(0.5);
        bar.close();
        bar.close();
        String text = bytes.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("epoch 2/5"), text);
        assertTrue(text.contains("loss 0.5000"), text);
        assertTrue(text.contains("100%"), text);
        assertTrue(text.contains("20/20"), text);
        assertTrue(text.indexOf('\r') >= 0, "redrawn with carriage returns");
        assertEquals(20, bar.current());
    }

    @Test
    void logModePrintsWholeLines() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        try (ProgressBars.Bar bar = ProgressBars.epoch("eval", 4, true, out, false)) {
            bar.stepBy(4).message("acc 0.8125");
        }
        String text = bytes.toString(StandardCharsets.UTF_8);
        assertTrue(text.indexOf('\r') < 0, "no carriage returns in a log: " + text);
        String[] lines = text.split("\n");
        String last = lines[lines.length - 1];
        assertTrue(last.startsWith("eval"), last);
        assertTrue(last.contains("4/4") && last.contains("acc 0.8125"), last);
        for (String line : lines) {
            assertTrue(line.contains("eval"), "every line names the task: " + line);
        }
    }
}
