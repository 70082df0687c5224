#!/usr/bin/env bash
# The GPU speed check of issue 28, for a machine with one CUDA GPU (alvit.gpuspeed says what it runs):
#
#   ALVIT_COMMIT=<commit> benchmarks/gpu_speed.sh OUTDIR      # OUTDIR/gpu_speed.json and gpu_speed.log
#   ALVIT_SPEED_SMALL=1 benchmarks/gpu_speed.sh OUTDIR        # the same on a CPU with tiny models
#   benchmarks/gpu_speed.sh OUTDIR --only swinv2_t-64,probe   # some jobs only (python -m alvit.gpuspeed -h)
#
# In a budget of 380 s (ALVIT_SPEED_BUDGET_S) on an H200: every bench compiles at once, then each
# is timed alone, most important first; a step that no longer fits is recorded as skipped.
# ALVIT_COMMIT names the commit measured where the copy of the repository has no .git (else git
# is asked). PYTHON: the interpreter with torch and timm (default python3).
set -uo pipefail
if [[ $# -lt 1 ]]; then
  echo "usage: $0 OUTDIR [alvit.gpuspeed options]" >&2
  exit 2
fi
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
shift
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m alvit.gpuspeed "$OUT" "$@"
