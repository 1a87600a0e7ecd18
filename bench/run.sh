#!/usr/bin/env bash
# Runs peft4j's JMH benchmarks and prints one table of figures beside the ceilings measured in
# the same run (FMA peak, copy bandwidth, the same sgemm from C); also writes
# bench/target/bench-results.md. Builds bench/target/benchmarks.jar first when it is missing or
# older than the sources.
#   bench/run.sh [-quick] [-v] [REGEX]      e.g. bench/run.sh -quick, bench/run.sh 'LowRank|Ceiling'
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

java_home=${PEFT4J_JAVA_HOME:-}
if [ -z "$java_home" ]; then
  for d in /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/*-25-* /usr/lib/jvm/*25*; do
    [ -x "$d/bin/java" ] && { java_home=$d; break; }
  done
fi
[ -n "$java_home" ] || { echo "bench: no JDK 25 found under /usr/lib/jvm; set PEFT4J_JAVA_HOME" >&2; exit 1; }

jar="$root/bench/target/benchmarks.jar"
stale() {
  [ ! -f "$jar" ] && return 0
  [ -n "$(find "$root/CMakeLists.txt" "$root/pom.xml" "$root/native" "$root/bindings" "$root/java-api" "$root/variants" "$root/bench" \
      -newer "$jar" -type f \( -name '*.java' -o -name '*.cpp' -o -name '*.cu' -o -name '*.h' -o -name '*.c' \
      -o -name 'pom.xml' -o -name 'CMakeLists.txt' \) -not -path '*/target/*' -print -quit 2>/dev/null)" ]
}
if stale; then
  echo "bench: building benchmarks.jar..." >&2
  (cd "$root" && mvn -q -B -DskipTests -pl bench -am package >&2)
fi

cd "$root"
exec "$java_home/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow \
  -jar "$jar" "$@"
