#!/usr/bin/env bash
# The GPU speed check of issue 28, for a machine with one CUDA GPU (alvit.gpuspeed says what it runs):
#
#   ALVIT_COMMIT=<commit> benchmarks/gpu_speed.sh OUTDIR      # OUTDIR/gpu_speed.json and gpu_speed.log
#   ALVIT_SPEED_SMALL=1 benchmarks/gpu_speed.sh OUTDIR        # the same on a CPU with tiny models
#
# Within 400 s (ALVIT_SPEED_BUDGET_S) on an H200: every bench compiles at once, then each is timed
# alone, most important first; a step that no longer fits is recorded as skipped. ALVIT_COMMIT
# names the commit measured where the copy of the repository has no .git (else git is asked).
# PYTHON: the interpreter with torch and timm (default python3).
set -uo pipefail
if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m alvit.gpuspeed "$OUT"
