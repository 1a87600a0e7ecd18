package io.peft4j.bindings;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.peft4j.backend.NativeLoader;
import java.io.IOException;
import java.lang.foreign.AddressLayout;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Header and stubs never drift: for native/include/peft4j.h and peft4j_cuda.h, the compiler's own
 * view of every declaration (gcc -aux-info, typedefs resolved by a _Generic probe compiled against
 * the header) is compared with the committed jextract-layout stubs (Peft4j, Peft4jCuda).
 *
 * <p>Two levels per header: the wrapper method signatures, read by reflection without initializing
 * the per-function holder classes (so no native library is needed), and the real
 * FunctionDescriptors, which resolve each symbol and therefore need the library loaded through
 * java-api's NativeLoader. libpeft4j.so is always built, so the CPU check never skips; the CUDA
 * descriptor check runs where libpeft4j_cuda.so loads.
 */
class HeaderStubTest {

    /** One parameter or return type as the compiler sees it. */
    record CType(String spelled, boolean pointer, String scalar) {
        boolean isVoid() {
            return !pointer && spelled.equals("void");
        }
    }

    /** One prototype from gcc -aux-info, with scalar typedefs resolved to C's basic types. */
    record CFunction(String name, int line, CType ret, List<CType> params) {}

    @TempDir
    Path tmp;

    // ---- the four checks ---------------------------------------------------------------------

    @Test
    void cpuHeaderMatchesStubSignatures() throws Exception {
        checkSignatures(header("peft4j.h"), Peft4j.class);
    }

    @Test
    void cpuHeaderMatchesStubDescriptors() throws Exception {
        Path lib;
        try {
            lib = NativeLoader.loadCpu();
        } catch (UnsatisfiedLinkError e) {
            throw new AssertionError("libpeft4j.so must load for the CPU descriptor check: " + e.getMessage(), e);
        }
        checkDescriptors(header("peft4j.h"), Peft4j.class, lib);
    }

    @Test
    void cudaHeaderMatchesStubSignatures() throws Exception {
        checkSignatures(header("peft4j_cuda.h"), Peft4jCuda.class);
    }

    @Test
    void cudaHeaderMatchesStubDescriptors() throws Exception {
        Path lib;
        try {
            lib = NativeLoader.loadCuda();
        } catch (UnsatisfiedLinkError e) {
            Assumptions.abort("libpeft4j_cuda.so does not load here; descriptors unchecked: " + e.getMessage());
            return;
        }
        checkDescriptors(header("peft4j_cuda.h"), Peft4jCuda.class, lib);
    }

    // ---- comparisons -------------------------------------------------------------------------

    private void checkSignatures(Path header, Class<?> stubs) throws Exception {
        Map<String, CFunction> declared = declarations(header);
        List<String> problems = new ArrayList<>(sameFunctionSet(header, declared, stubs));
        for (CFunction fn : declared.values()) {
            List<Method> wrappers = publicStatic(stubs, fn.name());
            if (wrappers.isEmpty()) {
                continue; // reported by sameFunctionSet
            }
            if (wrappers.size() != 1) {
                problems.add(fn.name() + ": " + wrappers.size() + " public static wrappers, expected 1");
                continue;
            }
            Method m = wrappers.get(0);
            List<Class<?>> expectedParams = fn.params().stream().map(HeaderStubTest::carrier).toList();
            if (!Arrays.asList(m.getParameterTypes()).equals(expectedParams)) {
                problems.add(fn.name() + ": wrapper parameters " + names(Arrays.asList(m.getParameterTypes()))
                        + ", header " + describe(fn) + " needs " + names(expectedParams));
            }
            if (m.getReturnType() != carrier(fn.ret())) {
                problems.add(fn.name() + ": wrapper returns " + m.getReturnType().getSimpleName()
                        + ", header " + describe(fn) + " needs " + carrier(fn.ret()).getSimpleName());
            }
            for (var accessor : Map.of("$descriptor", FunctionDescriptor.class, "$handle", MethodHandle.class,
                    "$address", MemorySegment.class).entrySet()) {
                String name = fn.name() + accessor.getKey();
                List<Method> found = publicStatic(stubs, name);
                if (found.size() != 1 || found.get(0).getParameterCount() != 0
                        || found.get(0).getReturnType() != accessor.getValue()) {
                    problems.add(fn.name() + ": missing accessor " + accessor.getValue().getSimpleName()
                            + " " + name + "()");
                }
            }
        }
        assertNoProblems(header, stubs, problems);
    }

    private void checkDescriptors(Path header, Class<?> stubs, Path lib) throws Exception {
        Map<String, CFunction> declared = declarations(header);
        List<String> problems = new ArrayList<>(sameFunctionSet(header, declared, stubs));
        Map<String, MemoryLayout> canonical = Linker.nativeLinker().canonicalLayouts();
        for (CFunction fn : declared.values()) {
            FunctionDescriptor desc;
            try {
                desc = (FunctionDescriptor) stubs.getMethod(fn.name() + "$descriptor").invoke(null);
            } catch (NoSuchMethodException e) {
                continue; // reported by sameFunctionSet
            } catch (InvocationTargetException | ExceptionInInitializerError | NoClassDefFoundError e) {
                Throwable cause = e;
                while (cause.getCause() != null) {
                    cause = cause.getCause(); // e.g. NoSuchElementException: symbol not in the library
                }
                problems.add(fn.name() + ": stub does not initialize against " + lib + ": " + cause);
                continue;
            }
            if (fn.ret().isVoid()) {
                if (desc.returnLayout().isPresent()) {
                    problems.add(fn.name() + ": header returns void, descriptor returns "
                        + describe(desc.returnLayout().get()));
                }
            } else if (desc.returnLayout().isEmpty()) {
                problems.add(fn.name() + ": header returns " + fn.ret().spelled() + ", descriptor returns void");
            } else {
                String bad = layoutMismatch(fn.ret(), desc.returnLayout().get(), canonical);
                if (bad != null) {
                    problems.add(fn.name() + ": return " + bad);
                }
            }
            List<MemoryLayout> args = desc.argumentLayouts();
            if (args.size() != fn.params().size()) {
                problems.add(fn.name() + ": descriptor has " + args.size() + " arguments, header "
                        + describe(fn) + " has " + fn.params().size());
                continue;
            }
            for (int i = 0; i < args.size(); i++) {
                String bad = layoutMismatch(fn.params().get(i), args.get(i), canonical);
                if (bad != null) {
                    problems.add(fn.name() + ": argument " + (i + 1) + " " + bad);
                }
            }
        }
        assertNoProblems(header, stubs, problems);
    }

    /** Null when the layout is the linker's canonical layout for the C type, else what differs. */
    private static String layoutMismatch(CType type, MemoryLayout layout, Map<String, MemoryLayout> canonical) {
        MemoryLayout expected = canonical.get(type.pointer() ? "void*" : canonicalName(type.scalar()));
        MemoryLayout actual = layout instanceof AddressLayout a ? a.withoutTargetLayout() : layout;
        if (expected == null) {
            return "is C " + type.spelled() + " (" + type.scalar() + "), which has no canonical layout";
        }
        return expected.equals(actual) ? null
                : "is C " + type.spelled() + " (" + (type.pointer() ? "pointer" : type.scalar()) + ", layout "
                        + describe(expected) + ") but the descriptor has " + describe(layout);
    }

    private static String describe(MemoryLayout layout) {
        String kind = layout instanceof ValueLayout v ? v.carrier().getSimpleName() : layout.getClass().getSimpleName();
        return kind + " " + layout.byteSize() + " bytes (" + layout + ")";
    }

    /** Every header function has a stub and every stub function has a header declaration. */
    private static List<String> sameFunctionSet(Path header, Map<String, CFunction> declared, Class<?> stubs) {
        Set<String> stubbed = Arrays.stream(stubs.getDeclaredMethods())
                .filter(m -> Modifier.isPublic(m.getModifiers()) && Modifier.isStatic(m.getModifiers()))
                .map(Method::getName)
                .filter(n -> n.endsWith("$descriptor"))
                .map(n -> n.substring(0, n.length() - "$descriptor".length()))
                .collect(Collectors.toCollection(TreeSet::new));
        List<String> problems = new ArrayList<>();
        for (String name : declared.keySet()) {
            if (!stubbed.contains(name)) {
                problems.add(name + ": declared in " + header.getFileName() + " but has no stub in "
                        + stubs.getSimpleName() + " (run bindings/jextract.sh)");
            }
        }
        for (String name : stubbed) {
            if (!declared.containsKey(name)) {
                problems.add(name + ": stub in " + stubs.getSimpleName() + " but not declared in "
                        + header.getFileName() + " (run bindings/jextract.sh)");
            }
        }
        return problems;
    }

    private static void assertNoProblems(Path header, Class<?> stubs, List<String> problems) {
        if (!problems.isEmpty()) {
            fail(header.getFileName() + " and " + stubs.getSimpleName() + " disagree:\n  "
                    + String.join("\n  ", problems));
        }
    }

    private static List<Method> publicStatic(Class<?> c, String name) {
        // getDeclaredMethods does not initialize the class nor its per-function holder classes.
        return Arrays.stream(c.getDeclaredMethods())
                .filter(m -> m.getName().equals(name))
                .filter(m -> Modifier.isPublic(m.getModifiers()) && Modifier.isStatic(m.getModifiers()))
                .toList();
    }

    /** The Java type jextract gives a C type in a wrapper signature. */
    private static Class<?> carrier(CType t) {
        if (t.pointer()) {
            return MemorySegment.class;
        }
        return switch (canonicalName(t.scalar())) {
            case "void" -> void.class;
            case "bool" -> boolean.class;
            case "char" -> byte.class;
            case "short" -> short.class;
            case "int" -> int.class;
            case "long", "long long" -> long.class;
            case "float" -> float.class;
            case "double" -> double.class;
            default -> throw new AssertionError("no Java carrier for C type " + t.spelled() + " (" + t.scalar() + ")");
        };
    }

    /** Key of Linker.canonicalLayouts() for a basic C type (signedness does not change the layout). */
    private static String canonicalName(String scalar) {
        return switch (scalar) {
            case "_Bool" -> "bool";
            case "signed char", "unsigned char" -> "char";
            case "unsigned short" -> "short";
            case "unsigned int" -> "int";
            case "unsigned long" -> "long";
            case "unsigned long long" -> "long long";
            default -> scalar;
        };
    }

    private static String names(List<Class<?>> types) {
        return types.stream().map(Class::getSimpleName).collect(Collectors.joining(", ", "(", ")"));
    }

    private static String describe(CFunction fn) {
        return fn.ret().spelled() + " " + fn.name() + "("
                + fn.params().stream().map(CType::spelled).collect(Collectors.joining(", ")) + ") at line " + fn.line();
    }

    // ---- the compiler's view of a header -----------------------------------------------------

    private static Path repoRoot() {
        String prop = System.getProperty("peft4j.repo.root");
        if (prop != null && !prop.isBlank()) {
            return Path.of(prop).toAbsolutePath().normalize();
        }
        // Surefire runs in tests/; walk up to the directory that holds native/include.
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            if (Files.isRegularFile(p.resolve("native/include/peft4j.h"))) {
                return p;
            }
        }
        throw new AssertionError("cannot find the repository root (native/include/peft4j.h) above "
                + Path.of("").toAbsolutePath() + "; set -Dpeft4j.repo.root");
    }

    private static Path header(String name) throws IOException {
        Path h = repoRoot().resolve("native/include").resolve(name);
        assertTrue(Files.isRegularFile(h), "missing header " + h);
        return h.toRealPath();
    }

    // gcc -aux-info writes one line per prototype: /* FILE:LINE:NC */ extern RET NAME (ARGS);
    // (N = declared in the file, C = with a prototype; O = old-style, F = a definition).
    private static final Pattern AUX_LINE = Pattern.compile(
            "^/\\* (.+):(\\d+):([NO][CF]) \\*/ (?:extern )?(.*?)\\b([A-Za-z_]\\w*) \\((.*)\\);$");

    private Map<String, CFunction> declarations(Path header) throws IOException, InterruptedException {
        Path aux = tmp.resolve(header.getFileName() + ".aux");
        run(List.of(compiler(), "-std=c11", "-aux-info", aux.toString(), "-fsyntax-only", "-x", "c", header.toString()));
        record Raw(String name, int line, String ret, List<String> params) {}
        List<Raw> raws = new ArrayList<>();
        List<String> problems = new ArrayList<>();
        for (String line : Files.readAllLines(aux, StandardCharsets.UTF_8)) {
            Matcher m = AUX_LINE.matcher(line);
            if (!m.matches() || !Path.of(m.group(1)).equals(header)) {
                continue; // lines from <stdint.h> and the like, or the "compiled from" banner
            }
            if (!m.group(3).equals("NC")) {
                problems.add(m.group(5) + ": not a prototype declaration (" + m.group(3) + "): " + line);
                continue;
            }
            String args = m.group(6).strip();
            List<String> params = args.equals("void") ? List.of() : splitTopLevel(args);
            if (params.contains("...")) {
                problems.add(m.group(5) + ": variadic functions are not allowed in the ABI");
            }
            raws.add(new Raw(m.group(5), Integer.parseInt(m.group(2)), m.group(4).strip(), params));
        }
        assertTrue(problems.isEmpty(), header.getFileName() + ": " + String.join("; ", problems));
        assertTrue(!raws.isEmpty(), "gcc -aux-info found no function declarations in " + header);

        // Resolve every by-value type name (int32_t, uint8_t, ...) to the basic C type the compiler
        // gives it, by compiling and running a probe that includes the header.
        Set<String> scalars = new TreeSet<>();
        for (Raw r : raws) {
            for (String t : concat(r.ret(), r.params())) {
                if (!isPointer(t) && !stripQualifiers(t).equals("void")) {
                    scalars.add(stripQualifiers(t));
                }
            }
        }
        Map<String, String> resolved = resolveScalars(header, scalars);

        Map<String, CFunction> out = new LinkedHashMap<>();
        for (Raw r : raws) {
            List<CType> params = r.params().stream().map(t -> ctype(t, resolved)).toList();
            CFunction fn = new CFunction(r.name(), r.line(), ctype(r.ret(), resolved), params);
            for (CType p : params) {
                assertTrue(!p.isVoid(), r.name() + ": a void parameter in " + header);
            }
            assertTrue(out.put(r.name(), fn) == null, r.name() + " declared twice in " + header);
        }
        return out;
    }

    private static CType ctype(String spelled, Map<String, String> resolved) {
        if (isPointer(spelled)) {
            return new CType(spelled, true, null);
        }
        String bare = stripQualifiers(spelled);
        return new CType(spelled, false, bare.equals("void") ? "void" : resolved.get(bare));
    }

    private static boolean isPointer(String spelled) {
        // '[' covers array parameters, which C adjusts to pointers.
        return spelled.contains("*") || spelled.contains("[");
    }

    private static String stripQualifiers(String spelled) {
        return Arrays.stream(spelled.trim().split("\\s+"))
                .filter(w -> !w.equals("const") && !w.equals("volatile"))
                .collect(Collectors.joining(" "));
    }

    private static List<String> concat(String first, List<String> rest) {
        List<String> all = new ArrayList<>(rest);
        all.add(first);
        return all;
    }

    /** Splits "a, b (*)(c, d), e" at the commas outside parentheses. */
    private static List<String> splitTopLevel(String s) {
        List<String> parts = new ArrayList<>();
        int depth = 0;
        int start = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '(') {
                depth++;
            } else if (c == ')') {
                depth--;
            } else if (c == ',' && depth == 0) {
                parts.add(s.substring(start, i).strip());
                start = i + 1;
            }
        }
        parts.add(s.substring(start).strip());
        return parts;
    }

    private static final List<String> BASIC_TYPES = List.of(
            "_Bool", "char", "signed char", "unsigned char", "short", "unsigned short", "int",
            "unsigned int", "long", "unsigned long", "long long", "unsigned long long", "float", "double",
            "long double");

    private Map<String, String> resolveScalars(Path header, Set<String> names) throws IOException, InterruptedException {
        StringBuilder c = new StringBuilder();
        c.append("#include <stdio.h>\n#include \"").append(header).append("\"\n");
        c.append("#define P4J_KIND(v) _Generic((v)");
        for (String t : BASIC_TYPES) {
            c.append(", ").append(t).append(": \"").append(t).append('"');
        }
        c.append(", default: \"other\")\nint main(void) {\n");
        for (String name : names) {
            c.append("    { ").append(name).append(" v = 0; printf(\"%s=%s\\n\", \"").append(name)
                    .append("\", P4J_KIND(v)); }\n");
        }
        c.append("    return 0;\n}\n");
        Path src = tmp.resolve(header.getFileName() + ".probe.c");
        Path exe = tmp.resolve(header.getFileName() + ".probe");
        Files.writeString(src, c.toString(), StandardCharsets.UTF_8);
        run(List.of(compiler(), "-std=c11", "-o", exe.toString(), src.toString()));
        Map<String, String> resolved = new LinkedHashMap<>();
        for (String line : run(List.of(exe.toString())).split("\n")) {
            if (!line.isBlank()) {
                String[] kv = line.split("=", 2);
                resolved.put(kv[0], kv[1]);
            }
        }
        assertEquals(names, resolved.keySet(), "probe output for " + header);
        for (var e : resolved.entrySet()) {
            assertTrue(!e.getValue().equals("other") && !e.getValue().equals("long double"),
                    header.getFileName() + ": type " + e.getKey() + " by value is not an ABI scalar");
        }
        return resolved;
    }

    private static String compiler() {
        String cc = System.getenv("CC");
        return cc == null || cc.isBlank() ? "gcc" : cc;
    }

    private String run(List<String> cmd) throws IOException, InterruptedException {
        Process p;
        try {
            p = new ProcessBuilder(cmd).directory(tmp.toFile()).redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new AssertionError("cannot run " + cmd.get(0) + " (a C compiler is needed to read the headers"
                    + " as the compiler does; set CC): " + e.getMessage(), e);
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("timed out: " + String.join(" ", cmd));
        }
        if (p.exitValue() != 0) {
            throw new AssertionError(String.join(" ", cmd) + " failed (" + p.exitValue() + "):\n" + out);
        }
        return out;
    }
}
