#!/usr/bin/env bash
# Regenerates the FFM stubs in bindings/src/main/java/io/peft4j/bindings from native/include:
#   peft4j.h      -> Peft4j.java, Peft4j$shared.java
#   peft4j_cuda.h -> Peft4jCuda.java, Peft4jCuda$shared.java
# Every function the header declares is selected with --include-function (so macros and typedefs
# are not emitted), the package is io.peft4j.bindings, and there is no -l: java-api's loader
# loads the libraries, and the stubs resolve symbols through SymbolLookup.loaderLookup().
#
# Uses the real jextract when it is on PATH (or named by $JEXTRACT); otherwise gen_stubs.py, a
# stand-in that writes jextract's layout for the C subset our headers use, byte for byte.
# The output is committed; run this after every header change.
#
#   bindings/jextract.sh           regenerate in place
#   bindings/jextract.sh --check   regenerate into a temp dir; fail if the committed stubs differ
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
pkg=io.peft4j.bindings
pkg_dir=io/peft4j/bindings
out="$here/src/main/java"

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

jextract_bin="${JEXTRACT:-$(command -v jextract || true)}"
if [[ -n "$jextract_bin" ]]; then
  echo "jextract.sh: using $jextract_bin" >&2
else
  echo "jextract.sh: jextract not found; using gen_stubs.py (same layout)" >&2
fi

dest="$out"
if [[ $check == 1 ]]; then
  dest="$(mktemp -d)"
  trap 'rm -rf "$dest"' EXIT
fi

generate() {
  local header="$1" cls="$2"
  local -a filters=()
  local fn
  while IFS= read -r fn; do
    filters+=(--include-function "$fn")
  done < <(python3 "$here/gen_stubs.py" --list-functions "$header")
  if [[ ${#filters[@]} == 0 ]]; then
    echo "jextract.sh: no functions found in $header" >&2
    exit 1
  fi
  # A function removed from the header must not survive in a stale file.
  rm -f "$dest/$pkg_dir/$cls.java" "$dest/$pkg_dir/$cls\$shared.java"
  if [[ -n "$jextract_bin" ]]; then
    "$jextract_bin" -t "$pkg" --header-class-name "$cls" --output "$dest" "${filters[@]}" "$header"
  else
    python3 "$here/gen_stubs.py" -t "$pkg" --header-class-name "$cls" --output "$dest" "${filters[@]}" "$header"
  fi
  echo "jextract.sh: $cls <- ${header#"$root"/} ($(( ${#filters[@]} / 2 )) functions)" >&2
}

generate "$root/native/include/peft4j.h" Peft4j
generate "$root/native/include/peft4j_cuda.h" Peft4jCuda

if [[ $check == 1 ]]; then
  status=0
  for f in Peft4j.java 'Peft4j$shared.java' Peft4jCuda.java 'Peft4jCuda$shared.java'; do
    if ! diff -u "$out/$pkg_dir/$f" "$dest/$pkg_dir/$f"; then
      status=1
    fi
  done
  if [[ $status == 0 ]]; then
    echo "jextract.sh: committed stubs are up to date" >&2
  else
    echo "jextract.sh: committed stubs differ from the headers; run bindings/jextract.sh" >&2
  fi
  exit $status
fi
