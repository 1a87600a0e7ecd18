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
 */
public record VariantCase(String name, Function<TargetModules, AdapterConfig> config, AdapterReference reference,
                          LongFunction<Module> model, TargetModules targets, List<String> tensorNames,
                          Map<String, Object> configJson, double dropout, boolean identityAtInit) {

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
