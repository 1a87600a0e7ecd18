#!/usr/bin/env bash
# Line and branch coverage of the Java code (JaCoCo over bindings, java-api and variants) and of the
# native CPU code (gcov over native/cpu), from one run of the test suite against a gcov-instrumented
# libpeft4j.so (the kernel tests run once per ISA, so all three kernel variants count). Not part of
# `mvn verify`: an -O0 library makes the suite slower.
#   tests/coverage.sh                 the whole suite
#   tests/coverage.sh -Dtest='X*'     extra Maven arguments (e.g. a subset while iterating)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
build=$root/build/coverage

if ! command -v gcovr >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "coverage.sh: installing gcovr" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gcovr >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gcovr >/dev/null; }
  else
    echo "coverage.sh: gcovr is missing (sudo apt-get install gcovr)" >&2
    exit 1
  fi
fi

# 1. The instrumented native library, in a build directory of its own.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DPEFT4J_CUDA=off -DPEFT4J_COVERAGE=ON >/dev/null
cmake --build "$build" --target peft4j --parallel >/dev/null
find "$build" -name '*.gcda' -delete

# 2. The suite against it (NativeLoader honours PEFT4J_NATIVE_DIR before the jar's copy), with JaCoCo.
jacoco_version=0.8.14
offline=-o
[ -d "$HOME/.m2/repository/org/jacoco/org.jacoco.agent/$jacoco_version" ] || offline=  # first run downloads JaCoCo
rm -f tests/target/jacoco.exec
PEFT4J_NATIVE_DIR=$build/native mvn -B $offline -q verify -pl tests -am -P coverage "$@"

# 3. Native: gcov over native/cpu (lines, branches; uncovered lines per file).
echo
echo "==== native/cpu (gcov; uncovered lines per file) ===="
gcovr -r "$root" --filter 'native/cpu/' --object-directory "$build" --exclude-throw-branches --exclude-unreachable-branches -s "$build"
echo
echo "==== native/cpu branches (gcov at -O0: every compiled branch of every template instance and"
echo "     unrolled constant-trip loop counts; exception-only branches left out) ===="
gcovr -r "$root" --filter 'native/cpu/' --object-directory "$build" --exclude-throw-branches --exclude-unreachable-branches --branches "$build"

# 4. Java: JaCoCo's aggregate over the modules the tests depend on.
csv=tests/target/site/jacoco-aggregate/jacoco.csv
echo
echo "==== Java (JaCoCo; HTML: tests/target/site/jacoco-aggregate/index.html) ===="
awk -F, 'NR > 1 { m = $1; sub(/.*\//, "", m); bm[m] += $6; bc[m] += $7; lm[m] += $8; lc[m] += $9; BM += $6; BC += $7; LM += $8; LC += $9 }
  function pct(c, m) { return (c + m) > 0 ? sprintf("%5.1f%%", 100 * c / (c + m)) : "  n/a" }
  END {
    printf "%-24s %16s %18s\n", "module", "lines", "branches"
    for (k in lm) printf "%-24s %s (%6d/%6d) %s (%6d/%6d)\n", k, pct(lc[k], lm[k]), lc[k], lc[k] + lm[k], pct(bc[k], bm[k]), bc[k], bc[k] + bm[k]
    printf "%-24s %s (%6d/%6d) %s (%6d/%6d)\n", "TOTAL", pct(LC, LM), LC, LC + LM, pct(BC, BM), BC, BC + BM
  }' "$csv"
echo
echo "Java classes with uncovered lines (missed/total):"
awk -F, 'NR > 1 && $8 > 0 { printf "%6d/%-6d %s.%s\n", $8, $8 + $9, $2, $3 }' "$csv" | sort -rn | head -40 || true   # head closing early must not fail the script under pipefail
