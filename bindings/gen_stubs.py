#!/usr/bin/env python3
"""Stand-in for jextract where jextract is not installed.

peft4j commits its FFM stubs (bindings/src/main/java/io/peft4j/bindings) in exactly the layout
that jextract for JDK 25 emits, so that running the real tool (bindings/jextract.sh) on a machine
that has it regenerates the same files without a diff. This script emits that layout for the
subset of C that native/include/*.h is allowed to use (docs/design.md, "The C ABI"):

  * function declarations only (every function is selected with --include-function, as
    jextract.sh does; typedefs, macros and structs are not emitted, as jextract skips them
    under function filters);
  * parameter and return types built from int32_t/int64_t/uint8_t/... (or the plain C integer
    types), float, double, void, and pointers to anything (opaque `typedef struct x x;` included);
  * `extern "C"` guards and preprocessor lines are ignored.

Anything outside that subset (arrays, structs or unions by value, function pointers, variadics)
is rejected with an error instead of being guessed at.

Usage mirrors jextract's options:

    gen_stubs.py -t io.peft4j.bindings --header-class-name Peft4j --output bindings/src/main/java \
        --include-function p4j_last_error --include-function p4j_version ... native/include/peft4j.h
    gen_stubs.py --list-functions native/include/peft4j.h     # one function name per line

Reference output: docs/bindings-example (real jextract output); this script reproduces it byte for
byte from example.h.
"""

import argparse
import os
import re
import sys

# Canonical C type of each scalar the headers may use (the typedefs of <stdint.h> on LP64 Linux,
# which jextract resolves before choosing a layout), mapped to jextract's layout constant and the
# Java carrier type of the wrapper method.
SCALARS = {
    "_Bool": ("C_BOOL", "boolean"),
    "bool": ("C_BOOL", "boolean"),
    "char": ("C_CHAR", "byte"),
    "signed char": ("C_CHAR", "byte"),
    "unsigned char": ("C_CHAR", "byte"),
    "short": ("C_SHORT", "short"),
    "unsigned short": ("C_SHORT", "short"),
    "int": ("C_INT", "int"),
    "unsigned int": ("C_INT", "int"),
    "long": ("C_LONG", "long"),
    "unsigned long": ("C_LONG", "long"),
    "long long": ("C_LONG_LONG", "long"),
    "unsigned long long": ("C_LONG_LONG", "long"),
    "float": ("C_FLOAT", "float"),
    "double": ("C_DOUBLE", "double"),
}

TYPEDEFS = {
    "int8_t": "signed char",
    "uint8_t": "unsigned char",
    "int16_t": "short",
    "uint16_t": "unsigned short",
    "int32_t": "int",
    "uint32_t": "unsigned int",
    "int64_t": "long",
    "uint64_t": "unsigned long",
    "intptr_t": "long",
    "uintptr_t": "unsigned long",
    "size_t": "unsigned long",
    "ptrdiff_t": "long",
}

# Spellings of the same integer type that C allows; normalized to the keys of SCALARS.
INT_SPELLINGS = {
    "signed": "int",
    "unsigned": "unsigned int",
    "signed int": "int",
    "short int": "short",
    "signed short": "short",
    "signed short int": "short",
    "unsigned short int": "unsigned short",
    "long int": "long",
    "signed long": "long",
    "signed long int": "long",
    "unsigned long int": "unsigned long",
    "long long int": "long long",
    "signed long long": "long long",
    "signed long long int": "long long",
    "unsigned long long int": "unsigned long long",
}

JAVA_KEYWORDS = {
    "abstract", "assert", "boolean", "break", "byte", "case", "catch", "char", "class", "const",
    "continue", "default", "do", "double", "else", "enum", "extends", "final", "finally", "float",
    "for", "goto", "if", "implements", "import", "instanceof", "int", "interface", "long", "native",
    "new", "package", "private", "protected", "public", "return", "short", "static", "strictfp",
    "super", "switch", "synchronized", "this", "throw", "throws", "transient", "try", "void",
    "volatile", "while", "true", "false", "null", "_",
}

# jextract splits a header class that holds more declarations than this into a chain of classes;
# the stand-in only writes the single-class layout and refuses beyond it.
DECLS_PER_HEADER_CLASS = 1000


class HeaderError(Exception):
    pass


class CType:
    """A parameter or return type: qualifiers and base name as written, then pointer levels."""

    def __init__(self, base_quals, base, pointers):
        self.base_quals = base_quals  # e.g. ["const"]
        self.base = base              # as written: "int32_t", "p4j_ctx", "unsigned char"
        self.pointers = pointers      # one list of qualifiers per '*', outermost last

    def is_void(self):
        return self.base == "void" and not self.pointers

    def canonical_scalar(self):
        name = TYPEDEFS.get(self.base, self.base)
        return INT_SPELLINGS.get(name, name)

    def layout(self, where):
        if self.pointers:
            return "C_POINTER", "MemorySegment"
        scalar = self.canonical_scalar()
        if scalar not in SCALARS:
            raise HeaderError(f"{where}: type '{self.base}' by value is not supported "
                              "(the ABI passes only scalars and pointers)")
        return SCALARS[scalar]

    def spelled(self, name):
        """The declaration as jextract prints it: `const float *x`, `p4j_ctx **out`."""
        text = " ".join(self.base_quals + [self.base])
        if self.pointers:
            text += " "
            for quals in self.pointers:
                text += "*"
                if quals:
                    text += " ".join(quals) + " "
            text += name
        elif name:
            text += " " + name
        return text


class Function:
    def __init__(self, name, ret, params):
        self.name = name
        self.ret = ret
        self.params = params  # list of (name or None, CType)


def strip_source(text):
    """Removes comments, preprocessor lines and extern "C" braces; keeps the declarations."""
    out = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise HeaderError("unterminated comment")
            out.append(" ")
            i = j + 2
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    lines = []
    continued = False
    for line in "".join(out).split("\n"):
        directive = continued or line.lstrip().startswith("#")
        continued = directive and line.rstrip().endswith("\\")
        if not directive:
            lines.append(line)
    body = "\n".join(lines)
    body = re.sub(r'extern\s+"C"\s*\{', " ", body)
    body = re.sub(r'extern\s+"C"', " ", body)
    return body


TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|\*|\(|\)|,|\[|\]|\.\.\.|\{|\}|\S)")


def tokenize(text):
    tokens = []
    pos = 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            break
        tokens.append(m.group(1))
        pos = m.end()
    return tokens


QUALIFIERS = ("const", "volatile", "restrict", "__restrict", "__restrict__")
TYPE_WORDS = ("signed", "unsigned", "short", "long", "int", "char")


def parse_type_and_name(tokens, where, allow_unnamed):
    """Parses `quals base * quals * ... name` (name optional when allow_unnamed)."""
    quals, words, pointers = [], [], []
    i = 0
    while i < len(tokens) and not pointers and tokens[i] != "*":
        t = tokens[i]
        if t in QUALIFIERS:
            if t == "const" or t == "volatile":
                quals.append(t)
        elif t in ("extern", "static", "inline"):
            pass
        elif re.fullmatch(r"[A-Za-z_]\w*", t):
            if words and not (words[-1] in TYPE_WORDS and t in TYPE_WORDS):
                break  # the second identifier is the declarator's name
            words.append(t)
        else:
            raise HeaderError(f"{where}: unsupported token '{t}'")
        i += 1
    while i < len(tokens) and tokens[i] == "*":
        i += 1
        pq = []
        while i < len(tokens) and tokens[i] in QUALIFIERS:
            if tokens[i] in ("const", "volatile"):
                pq.append(tokens[i])
            i += 1
        pointers.append(pq)
    # `const` written after the base type (`float const *x`) belongs to the base.
    while i < len(tokens) and tokens[i] in ("const", "volatile") and not pointers:
        quals.append(tokens[i])
        i += 1
    name = None
    if i < len(tokens) and re.fullmatch(r"[A-Za-z_]\w*", tokens[i]):
        name = tokens[i]
        i += 1
    if i != len(tokens):
        raise HeaderError(f"{where}: unsupported declarator near '{' '.join(tokens[i:])}'")
    if not words:
        raise HeaderError(f"{where}: missing type")
    if "struct" in words or "union" in words or "enum" in words:
        raise HeaderError(f"{where}: write a typedef name instead of '{' '.join(words)}'")
    if name is None and not allow_unnamed:
        raise HeaderError(f"{where}: missing name")
    # jextract prints `const` before the base type, once, in the order C allows.
    ordered = [q for q in ("const", "volatile") if q in quals]
    return CType(ordered, " ".join(words), pointers), name


def parse_header(path):
    with open(path, encoding="utf-8") as f:
        body = strip_source(f.read())
    functions = []
    for decl in body.split(";"):
        tokens = tokenize(decl)
        tokens = [t for t in tokens if t not in ("{", "}")]
        if not tokens or tokens[0] == "typedef":
            continue
        where = f"{os.path.basename(path)}: {' '.join(tokens)[:60]}"
        if "(" not in tokens:
            raise HeaderError(f"{where}: only function declarations are supported")
        open_at = tokens.index("(")
        if tokens[-1] != ")":
            raise HeaderError(f"{where}: not a plain function declaration")
        ret, name = parse_type_and_name(tokens[:open_at], where, allow_unnamed=False)
        inner = tokens[open_at + 1:-1]
        if "(" in inner or ")" in inner or "[" in inner or "..." in inner:
            raise HeaderError(f"{where}: function pointers, arrays and variadics are not supported")
        params = []
        if inner and inner != ["void"]:
            groups, cur = [], []
            for t in inner:
                if t == ",":
                    groups.append(cur)
                    cur = []
                else:
                    cur.append(t)
            groups.append(cur)
            for k, g in enumerate(groups):
                ptype, pname = parse_type_and_name(g, f"{where} (parameter {k + 1})", allow_unnamed=True)
                if ptype.is_void():
                    raise HeaderError(f"{where}: a 'void' parameter")
                params.append((pname, ptype))
        functions.append(Function(name, ret, params))
    seen = set()
    for fn in functions:
        if fn.name in seen:
            raise HeaderError(f"{path}: '{fn.name}' is declared twice")
        seen.add(fn.name)
    return functions


def java_name(name):
    return name + "_" if name in JAVA_KEYWORDS else name


PREAMBLE = """\
// Generated by jextract

package {pkg};

import java.lang.invoke.*;
import java.lang.foreign.*;
import java.nio.ByteOrder;
import java.util.*;
import java.util.function.*;
import java.util.stream.*;

import static java.lang.foreign.ValueLayout.*;
import static java.lang.foreign.MemoryLayout.PathElement.*;

"""

HEADER_CLASS_START = """\
public class {cls} extends {cls}$shared {{

    {cls}() {{
        // Should not be called directly
    }}

    static final Arena LIBRARY_ARENA = Arena.ofAuto();

    static final SymbolLookup SYMBOL_LOOKUP = SymbolLookup.loaderLookup()
            .or(Linker.nativeLinker().defaultLookup());

"""

FUNCTION = """
    private static class {name} {{
        public static final FunctionDescriptor DESC = {desc};

        public static final MemorySegment ADDR = SYMBOL_LOOKUP.findOrThrow("{name}");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }}

    /**
     * Function descriptor for:
     * {{@snippet lang=c :
     * {decl}
     * }}
     */
    public static FunctionDescriptor {name}$descriptor() {{
        return {name}.DESC;
    }}

    /**
     * Downcall method handle for:
     * {{@snippet lang=c :
     * {decl}
     * }}
     */
    public static MethodHandle {name}$handle() {{
        return {name}.HANDLE;
    }}

    /**
     * Address for:
     * {{@snippet lang=c :
     * {decl}
     * }}
     */
    public static MemorySegment {name}$address() {{
        return {name}.ADDR;
    }}

    /**
     * {{@snippet lang=c :
     * {decl}
     * }}
     */
    public static {jret} {name}({jparams}) {{
        var mh$ = {name}.HANDLE;
        try {{
            if (TRACE_DOWNCALLS) {{
                traceDowncall("{name}"{trace_args});
            }}
            {ret_expr}mh$.invokeExact({args});
        }} catch (Error | RuntimeException ex) {{
           throw ex;
        }} catch (Throwable ex$) {{
           throw new AssertionError("should not reach here", ex$);
        }}
    }}
"""

SHARED_CLASS = """\
public class {cls}$shared {{

    {cls}$shared() {{
        // Should not be called directly
    }}

    public static final ValueLayout.OfBoolean C_BOOL = (ValueLayout.OfBoolean) Linker.nativeLinker().canonicalLayouts().get("bool");
    public static final ValueLayout.OfByte C_CHAR =(ValueLayout.OfByte)Linker.nativeLinker().canonicalLayouts().get("char");
    public static final ValueLayout.OfShort C_SHORT = (ValueLayout.OfShort) Linker.nativeLinker().canonicalLayouts().get("short");
    public static final ValueLayout.OfInt C_INT = (ValueLayout.OfInt) Linker.nativeLinker().canonicalLayouts().get("int");
    public static final ValueLayout.OfLong C_LONG_LONG = (ValueLayout.OfLong) Linker.nativeLinker().canonicalLayouts().get("long long");
    public static final ValueLayout.OfFloat C_FLOAT = (ValueLayout.OfFloat) Linker.nativeLinker().canonicalLayouts().get("float");
    public static final ValueLayout.OfDouble C_DOUBLE = (ValueLayout.OfDouble) Linker.nativeLinker().canonicalLayouts().get("double");
    public static final AddressLayout C_POINTER = ((AddressLayout) Linker.nativeLinker().canonicalLayouts().get("void*"))
            .withTargetLayout(MemoryLayout.sequenceLayout(java.lang.Long.MAX_VALUE, C_CHAR));
    public static final ValueLayout.OfLong C_LONG = (ValueLayout.OfLong) Linker.nativeLinker().canonicalLayouts().get("long");

    static final boolean TRACE_DOWNCALLS = Boolean.getBoolean("jextract.trace.downcalls");

    static void traceDowncall(String name, Object... args) {{
         String traceArgs = Arrays.stream(args)
                       .map(Object::toString)
                       .collect(Collectors.joining(", "));
         System.out.printf("%s(%s)\\n", name, traceArgs);
    }}

    static MethodHandle upcallHandle(Class<?> fi, String name, FunctionDescriptor fdesc) {{
        try {{
            return MethodHandles.lookup().findVirtual(fi, name, fdesc.toMethodType());
        }} catch (ReflectiveOperationException ex) {{
            throw new AssertionError(ex);
        }}
    }}

    static MemoryLayout align(MemoryLayout layout, long align) {{
        return switch (layout) {{
            case PaddingLayout p -> p;
            case ValueLayout v -> v.withByteAlignment(align);
            case GroupLayout g -> {{
                MemoryLayout[] alignedMembers = g.memberLayouts().stream()
                        .map(m -> align(m, align)).toArray(MemoryLayout[]::new);
                yield g instanceof StructLayout ?
                        MemoryLayout.structLayout(alignedMembers) : MemoryLayout.unionLayout(alignedMembers);
            }}
            case SequenceLayout s -> MemoryLayout.sequenceLayout(s.elementCount(), align(s.elementLayout(), align));
        }};
    }}
}}

"""


def descriptor(cls, fn):
    """FunctionDescriptor.of(...)/ofVoid(...) with jextract's line breaks and indentation."""
    args = [f"{cls}.{p.layout(fn.name)[0]}" for _, p in fn.params]
    if fn.ret.is_void():
        text = "FunctionDescriptor.ofVoid("
    else:
        text = "FunctionDescriptor.of(\n            " + f"{cls}.{fn.ret.layout(fn.name)[0]}"
        if args:
            text += ","
    if args:
        text += "\n" + ",\n".join("            " + a for a in args) + "\n        )"
    else:
        text += "    )"
    return text


def render_function(cls, fn):
    names = []
    for k, (pname, _) in enumerate(fn.params):
        names.append(java_name(pname) if pname else f"x{k}")
    decl_params = ", ".join(p.spelled(n or "") for n, p in fn.params)
    decl = f"{fn.ret.spelled(fn.name)}({decl_params})"
    jparams = ", ".join(f"{p.layout(fn.name)[1]} {n}" for n, (_, p) in zip(names, fn.params))
    if fn.ret.is_void():
        jret, ret_expr = "void", ""
    else:
        jret = fn.ret.layout(fn.name)[1]
        ret_expr = f"return ({jret})"
    return FUNCTION.format(
        name=fn.name, desc=descriptor(cls, fn), decl=decl, jret=jret, jparams=jparams,
        trace_args="".join(", " + n for n in names), ret_expr=ret_expr, args=", ".join(names))


def render_header_class(pkg, cls, functions):
    if len(functions) > DECLS_PER_HEADER_CLASS:
        raise HeaderError(f"{len(functions)} functions: jextract would split {cls} into several "
                          "classes, which this stand-in does not reproduce; install jextract")
    text = PREAMBLE.format(pkg=pkg) + HEADER_CLASS_START.format(cls=cls)
    for fn in functions:
        text += render_function(cls, fn)
    return text + "}\n\n"


def render_shared_class(pkg, cls):
    return PREAMBLE.format(pkg=pkg) + SHARED_CLASS.format(cls=cls)


def main(argv):
    ap = argparse.ArgumentParser(description="Writes FFM stubs in jextract's layout (see module doc).")
    ap.add_argument("-t", "--target-package")
    ap.add_argument("--header-class-name")
    ap.add_argument("--output", default=".")
    ap.add_argument("--include-function", action="append", default=[])
    ap.add_argument("--list-functions", action="store_true",
                    help="print the header's function names, one a line, and exit")
    ap.add_argument("header")
    args = ap.parse_args(argv)
    try:
        functions = parse_header(args.header)
        if args.list_functions:
            for fn in functions:
                print(fn.name)
            return 0
        if not args.header_class_name or not args.target_package:
            ap.error("-t and --header-class-name are required")
        if not args.include_function:
            ap.error("select functions with --include-function (the stand-in emits functions only)")
        declared = {fn.name for fn in functions}
        missing = [f for f in args.include_function if f not in declared]
        if missing:
            raise HeaderError(f"{args.header}: no declaration for {', '.join(missing)}")
        wanted = set(args.include_function)
        selected = [fn for fn in functions if fn.name in wanted]
        cls = args.header_class_name
        pkg = args.target_package
        out_dir = os.path.join(args.output, *pkg.split("."))
        os.makedirs(out_dir, exist_ok=True)
        files = {
            f"{cls}.java": render_header_class(pkg, cls, selected),
            f"{cls}$shared.java": render_shared_class(pkg, cls),
        }
        for fname, text in files.items():
            with open(os.path.join(out_dir, fname), "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
    except (HeaderError, OSError) as e:
        print(f"gen_stubs.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
