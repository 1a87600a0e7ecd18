package io.peft4j.nn;

import io.peft4j.tensor.Tensor;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A layer or a container of layers. Each module has a dotted path ("fc1", "layers.0.q") given by
 * where it sits in its parent, its own parameters, and a forward/backward pair: forward keeps what
 * backward needs in the step arena; backward accumulates parameter gradients and returns the
 * gradient of its input (or null when {@code needInputGrad} is false).
 */
public abstract class Module implements AutoCloseable {
    private final Map<String, Module> children = new LinkedHashMap<>();
    private final Map<String, Parameter> parameters = new LinkedHashMap<>();
    private String path = "";

    public abstract Tensor forward(StepContext ctx, Tensor x);

    public abstract Tensor backward(StepContext ctx, Tensor gradOut, boolean needInputGrad);

    /** The dotted path from the root ("" for the root itself). */
    public String path() { return path; }

    protected <M extends Module> M addChild(String name, M child) {
        if (name.isEmpty() || name.contains(".")) throw new IllegalArgumentException("bad child name '" + name + "'");
        if (children.putIfAbsent(name, child) != null) throw new IllegalArgumentException("duplicate child '" + name + "'");
        ((Module) child).setPath(path.isEmpty() ? name : path + "." + name);
        return child;
    }

    protected Parameter addParameter(Parameter p) {
        if (parameters.putIfAbsent(p.name(), p) != null) throw new IllegalArgumentException("duplicate parameter '" + p.name() + "'");
        return p;
    }

    void setPath(String p) {
        path = p;
        children.forEach((n, c) -> c.setPath(p.isEmpty() ? n : p + "." + n));
    }

    public Map<String, Module> children() {
        return Collections.unmodifiableMap(children);
    }

    /** This module's own parameters, by local name. */
    public Map<String, Parameter> localParameters() {
        return Collections.unmodifiableMap(parameters);
    }

    /** Every module in the tree, depth first, the root included, by dotted path. */
    public Map<String, Module> namedModules() {
        Map<String, Module> out = new LinkedHashMap<>();
        collectModules(out);
        return out;
    }

    private void collectModules(Map<String, Module> out) {
        out.put(path, this);
        for (Module c : children.values()) c.collectModules(out);
    }

    /** Every parameter in the tree by full dotted name ("fc1.weight", "fc1.lora_A.weight"). */
    public Map<String, Parameter> namedParameters() {
        Map<String, Parameter> out = new LinkedHashMap<>();
        for (Module m : namedModules().values()) {
            m.parametersForNaming().forEach((name, p) -> out.put(m.path.isEmpty() ? name : m.path + "." + name, p));
        }
        return out;
    }

    /** Parameters this module exposes in {@link #namedParameters()} by local name; layers with adapters add theirs. */
    protected Map<String, Parameter> parametersForNaming() {
        return localParameters();
    }

    public List<Parameter> trainableParameters() {
        return namedParameters().values().stream().filter(Parameter::requiresGrad).toList();
    }

    public long parameterCount() {
        return namedParameters().values().stream().mapToLong(Parameter::numel).sum();
    }

    public long trainableParameterCount() {
        return trainableParameters().stream().mapToLong(Parameter::numel).sum();
    }

    /** Frees every parameter of the tree. */
    @Override
    public void close() {
        for (Module c : children.values()) c.close();
        for (Parameter p : parameters.values()) p.close();
    }
}
