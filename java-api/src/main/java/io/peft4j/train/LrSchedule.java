package io.peft4j.train;

/** The learning rate at each optimizer step (0-based), as a multiple of the base rate. */
@FunctionalInterface
public interface LrSchedule {
    double factor(long step);

    static LrSchedule constant() {
        return step -> 1.0;
    }

    /** Linear warm-up from 0 over {@code warmup} steps, then linear decay to 0 at {@code total}. */
    static LrSchedule linear(long warmup, long total) {
        check(warmup, total);
        return step -> step < warmup ? (step + 1.0) / warmup
                : Math.max(0.0, (double) (total - step) / Math.max(1, total - warmup));
    }

    /** Linear warm-up, then a half cosine from 1 down to 0 at {@code total}. */
    static LrSchedule cosine(long warmup, long total) {
        check(warmup, total);
        return step -> {
            if (step < warmup) return (step + 1.0) / warmup;
            double progress = Math.min(1.0, (double) (step - warmup) / Math.max(1, total - warmup));
            return 0.5 * (1 + Math.cos(Math.PI * progress));
        };
    }

    /** By name, as the CLI takes it: constant, linear or cosine. */
    static LrSchedule named(String name, long warmup, long total) {
        return switch (name) {
            case "constant" -> constant();
            case "linear" -> linear(warmup, total);
            case "cosine" -> cosine(warmup, total);
            default -> throw new IllegalArgumentException("unknown schedule '" + name + "' (constant, linear, cosine)");
        };
    }

    private static void check(long warmup, long total) {
        if (warmup < 0 || total <= 0 || warmup > total) {
            throw new IllegalArgumentException("schedule needs 0 <= warmup <= total and total > 0, got " + warmup + ", " + total);
        }
    }
}
