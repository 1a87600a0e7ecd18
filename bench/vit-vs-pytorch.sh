#!/usr/bin/env bash
# One training step of the demo ViT (batch 128) in peft4j and in PyTorch on this CPU, one after the
# other in the same run, and their ratio: bench/src/main/java/io/peft4j/bench/VitStepTiming.java and
# bench/pytorch/vit_step.py build the same model and recipe. PyTorch runs with as many threads as
# peft4j's backend uses (all cores), with both of its attention forms.
#   bench/vit-vs-pytorch.sh [warmup steps] [timed steps]     PYTHON=/path/to/python-with-torch
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PYTHON:-python3}
"$py" -c 'import torch' 2>/dev/null || { echo "vit-vs-pytorch: $py has no torch; set PYTHON to a Python with PyTorch" >&2; exit 1; }
warmup=${1:-20}
steps=${2:-100}
threads=$(nproc)

# Builds the benchmarks jar when needed, as bench/run.sh does ('--help' then only prints its usage).
"$root/bench/run.sh" --help >/dev/null
java_home=${PEFT4J_JAVA_HOME:-}
for d in /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/*-25-* /usr/lib/jvm/*25*; do
  [ -z "$java_home" ] && [ -x "$d/bin/java" ] && java_home=$d
done

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $threads threads; $warmup warm-up + $steps timed steps of 128 images"
p4j=$("$java_home/bin/java" --enable-native-access=ALL-UNNAMED -cp "$root/bench/target/benchmarks.jar" \
  io.peft4j.bench.VitStepTiming "$warmup" "$steps")
torch_mm=$("$py" "$root/bench/pytorch/vit_step.py" --warmup "$warmup" --steps "$steps" --threads "$threads" --attention matmul)
torch_sdpa=$("$py" "$root/bench/pytorch/vit_step.py" --warmup "$warmup" --steps "$steps" --threads "$threads" --attention sdpa)
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); torch $("$py" -c 'import torch; print(torch.__version__)')"
median() { awk -v run="$1" '$1 == run { print $3 }'; }
printf '\n| step (median ms) | peft4j | PyTorch, matmul attention | PyTorch, sdpa | PyTorch matmul / peft4j | PyTorch sdpa / peft4j |\n|---|---:|---:|---:|---:|---:|\n'
for run in full lora-qk; do
  a=$(median $run <<<"$p4j"); b=$(median $run <<<"$torch_mm"); c=$(median $run <<<"$torch_sdpa")
  awk -v r="$run" -v a="$a" -v b="$b" -v c="$c" 'BEGIN { printf "| %s | %.2f | %.2f | %.2f | %.2f× | %.2f× |\n", r, a, b, c, b / a, c / a }'
done
