package io.peft4j.variants;

import io.peft4j.nn.Module;
import io.peft4j.peft.AdapterConfig;
import io.peft4j.peft.TargetModules;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.function.LongFunction;

/**
 * One row of {@link AdapterContractTest}: a method with its settings, the model it is checked on,
 * and its float64 reference. Every new method joins the suite by adding rows.
 *
 * @param name           shown in the test report
 * @param config         the method's config for a given set of target modules
 * @param reference      the method's math in float64
 * @param model          a fresh base model for a seed (same seed, same weights)
 * @param targets        the layers of {@code model} the checks adapt
 * @param tensorNames    the per-layer tensor names in the saved file (keys are
 *                       {@code base_model.model.<layer path>.<name>})
 * @param configJson     fields adapter_config.json must hold with these values (target_modules is
 *                       checked separately against {@code targets})
 * @param dropout        > 0 when training-mode outputs are random (dropout): the float64 gradient
 *                       checks are replaced by train-mode forward/backward consistency
 * @param identityAtInit whether a freshly initialised adapter leaves the model's output unchanged
 * @param base           the model a disabled adapter must give exactly, for a seed: {@code model},
 *                       except where wrapping changes the base itself (QLoRA's NF4 weights)
 * @param notApplicable  check (one of the constants below) → why it does not apply to this row; the
 *                       check then asserts the documented alternative outcome instead
 */
public record VariantCase(String name, Function<TargetModules, AdapterConfig> config, AdapterReference reference,
                          LongFunction<Module> model, TargetModules targets, List<String> tensorNames,
                          Map<String, Object> configJson, double dropout, boolean identityAtInit,
                          LongFunction<Module> base, Map<String, String> notApplicable) {

    /** Merge, unmerge and mergeAndUnload: instead, merge must refuse with a message and change nothing. */
    public static final String MERGE = "merge";
    /** Disabling gives the base output: instead, disabling must leave the adapted output as it is (trained in place). */
    public static final String DISABLE = "disable";
    /** Two named adapters give different outputs: instead, switching must leave the output as it is (one shared trained tensor). */
    public static final String DISTINCT_ADAPTERS = "distinct adapters";
    /** Large-step differences of the fp32 train-mode forward: instead, the row must be deterministic so the float64 check covers it. */
    public static final String TRAIN_MODE_DIFFERENCES = "train-mode differences";
    /** The layer's ΔW: instead, deltaWeight must refuse with a message. */
    public static final String DELTA_WEIGHT = "delta weight";
    /** Any Linear can be targeted: instead, a layer without bias must be refused by name. */
    public static final String BIASLESS_TARGETS = "bias-less targets";

    /** A row whose base is its model and for which every check applies. */
    public VariantCase(String name, Function<TargetModules, AdapterConfig> config, AdapterReference reference,
                       LongFunction<Module> model, TargetModules targets, List<String> tensorNames,
                       Map<String, Object> configJson, double dropout, boolean identityAtInit) {
        this(name, config, reference, model, targets, tensorNames, configJson, dropout, identityAtInit, model, Map.of());
    }

    public VariantCase {
        for (String check : notApplicable.keySet()) {
            if (!List.of(MERGE, DISABLE, DISTINCT_ADAPTERS, TRAIN_MODE_DIFFERENCES, DELTA_WEIGHT, BIASLESS_TARGETS).contains(check)) {
                throw new IllegalArgumentException(name + ": unknown check '" + check + "' marked not applicable");
            }
        }
    }

    /** Whether {@code check} applies to this row. */
    public boolean applies(String check) {
        return !notApplicable.containsKey(check);
    }

    public Module base(long seed) {
        return base.apply(seed);
    }

    public AdapterConfig config(TargetModules t) {
        return config.apply(t);
    }

    public Module model(long seed) {
        return model.apply(seed);
    }

    public boolean stochastic() {
        return dropout > 0;
    }

    @Override
    public String toString() {
        return name;
    }
}
