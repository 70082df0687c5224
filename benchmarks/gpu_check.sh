#!/usr/bin/env bash
# The GPU check, for the first machine with a CUDA GPU:
#
#   pip install -e '.[test]'            # from this repository; no network needed afterwards
#   benchmarks/gpu_check.sh OUTDIR      # writes OUTDIR/gpu_check.json, one file with every figure
#
# Most important first, each step under its own time limit, and steps that no longer fit in the
# overall budget (8 minutes) are recorded as skipped rather than run:
#   1. pytest -m gpu tests/test_gpu.py: the one file of gpu tests (tests/test_gpu_check.py keeps it so),
#      which imports only torch, timm and the scientific stack, as the whole check does
#   2. alvit bench vit_b16 at batch 64: MFU, speedup over the naive pipeline, cost of train.deterministic
#   3. two real rounds of the paper recipe (configs/paper-example.yaml, GCI-ViTAL) on random-init
#      vit_b16, with synthetic CIFAR-sized images written as an image folder
#   4. alvit bench vit_b32 at batch 64 with 1, 2 and 4 concurrent processes
#   5. alvit bench vit_b16 at 256, vit_b32 at 256, swinv2_t and vit_l16 at 64 and 256
# Each process compiles its model (cold: about a minute per model and batch); when 8 minutes
# are not enough for all, ALVIT_CHECK_BUDGET_S=1200 runs the rest.
# A failed step is recorded with the tail of its log, and the check carries on.
#
# Environment:
#   ALVIT_CHECK_SMALL=1   CPU, vit_nano_p4, a small pool and short timings, budget 900 s: checks this script anywhere
#   ALVIT_CHECK_BUDGET_S  overall budget in seconds (default 480; 900 in small mode)
#   ALVIT_CHECK_ONLY      run only these steps (names as in the report, e.g. "bench-vit_l16-64 bench-vit_l16-256");
#                         the rest are recorded as "not selected". two-rounds needs synthetic-data.
#   ALVIT_CHECK_DEVICE, ALVIT_CHECK_MODELS, ALVIT_CHECK_BATCHES, ALVIT_CHECK_CONCURRENT_MODEL,
#   ALVIT_CHECK_CONCURRENT, ALVIT_CHECK_ROUND_MODEL, ALVIT_CHECK_POOL, ALVIT_CHECK_SECONDS override one setting each
#   PYTHON                the interpreter with alvit installed (default: python)
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."  # the repository: every step runs from here
PY=${PYTHON:-python}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/alvit-gpu-check.XXXXXX")
mkdir -p "$WORK/logs"
: > "$WORK/steps.tsv"
trap 'rm -rf "$WORK"' EXIT

if [[ ${ALVIT_CHECK_SMALL:-0} == 1 ]]; then
  DEVICE=cpu MODELS="vit_nano_p4" BATCHES="16" CONCURRENT_MODEL=vit_nano_p4 CONCURRENT="1,2"
  ROUND_MODEL=vit_nano_p4 POOL=600 TEST=200 INITIAL=100 QUERY=100 EPOCHS=2 MEASURE_S=1 STEP_LIMIT=400 ROUND_LIMIT=400
  BUDGET=900
else
  DEVICE=cuda MODELS="vit_b16 vit_b32 swinv2_t vit_l16" BATCHES="64 256" CONCURRENT_MODEL=vit_b32 CONCURRENT="1,2,4"
  ROUND_MODEL=vit_b16 POOL=10000 TEST=2000 INITIAL=1000 QUERY=1000 EPOCHS=20 MEASURE_S=3 STEP_LIMIT=240 ROUND_LIMIT=300
  BUDGET=480
fi
DEVICE=${ALVIT_CHECK_DEVICE:-$DEVICE}
MODELS=${ALVIT_CHECK_MODELS:-$MODELS}
BATCHES=${ALVIT_CHECK_BATCHES:-$BATCHES}
CONCURRENT_MODEL=${ALVIT_CHECK_CONCURRENT_MODEL:-$CONCURRENT_MODEL}
CONCURRENT=${ALVIT_CHECK_CONCURRENT:-$CONCURRENT}
ROUND_MODEL=${ALVIT_CHECK_ROUND_MODEL:-$ROUND_MODEL}
POOL=${ALVIT_CHECK_POOL:-$POOL}
MEASURE_S=${ALVIT_CHECK_SECONDS:-$MEASURE_S}
BUDGET=${ALVIT_CHECK_BUDGET_S:-$BUDGET}
ONLY=${ALVIT_CHECK_ONLY:-}
START=$(date +%s)
FIRST_MODEL=${MODELS%% *}
FIRST_BATCH=${BATCHES%% *}
STEPS="pytest-gpu synthetic-data two-rounds bench-$CONCURRENT_MODEL-$FIRST_BATCH"  # every step's name, once
for model in $MODELS; do
  for batch in $BATCHES; do [[ " $STEPS " == *" bench-$model-$batch "* ]] || STEPS="$STEPS bench-$model-$batch"; done
done
for name in $ONLY; do
  if [[ " $STEPS " != *" $name "* ]]; then
    echo "gpu_check: ALVIT_CHECK_ONLY names no step '$name'; valid choices are $STEPS" >&2
    exit 2
  fi
done
for setting in DEVICE MODELS BATCHES CONCURRENT_MODEL CONCURRENT ROUND_MODEL POOL TEST INITIAL QUERY EPOCHS MEASURE_S; do
  printf '%s\t%s\n' "$setting" "${!setting}" >> "$WORK/settings.tsv"
done

# step NAME COMMAND...: run COMMAND under min(STEP_LIMIT, budget left),
# log to $WORK/logs/NAME.log, and record "NAME status rc seconds" in $WORK/steps.tsv.
step() {
  local name=$1 left began rc status
  shift
  left=$(( BUDGET - ($(date +%s) - START) ))
  if [[ -n $ONLY && " $ONLY " != *" $name "* ]]; then
    printf '%s\tnot selected\t\t0\n' "$name" >> "$WORK/steps.tsv"
    echo "gpu_check: $name not selected (ALVIT_CHECK_ONLY)"
    return
  fi
  if (( left < 20 )); then
    printf '%s\tskipped\t\t0\n' "$name" >> "$WORK/steps.tsv"
    echo "gpu_check: $name skipped (budget spent)"
    return
  fi
  echo "gpu_check: $name"
  began=$(date +%s)
  timeout --kill-after=10 $(( left < STEP_LIMIT ? left : STEP_LIMIT )) "$@" > "$WORK/logs/$name.log" 2>&1
  rc=$?
  case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=failed ;; esac
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$(( $(date +%s) - began ))" >> "$WORK/steps.tsv"
}

ran() { grep -q "^$1"$'\t' "$WORK/steps.tsv"; }  # ran NAME: whether step NAME ran (or was skipped)

bench() {  # bench MODEL BATCH [extra args]: one alvit bench, its figures in $WORK/bench-MODEL-BATCH.json
  local model=$1 batch=$2 extra=()
  shift 2
  # The cost of train.deterministic is measured once: first model, first batch.
  if [[ $model/$batch == "$FIRST_MODEL/$FIRST_BATCH" ]]; then extra=(--deterministic); fi
  step "bench-$model-$batch" "$PY" -m alvit.cli bench "$model" --device "$DEVICE" --batch "$batch" \
    --seconds "$MEASURE_S" --json "$WORK/bench-$model-$batch.json" "${extra[@]}" "$@"
}

# Without CUDA every gpu test skips; that still checks that they are collected and import. Not
# tests/: collecting it imports the book's and the lint's packages (nbformat, papermill, grimp).
step pytest-gpu "$PY" -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py
# The headline figures first; the concurrency step measures its own model at the first batch.
[[ $FIRST_MODEL == "$CONCURRENT_MODEL" ]] || bench "$FIRST_MODEL" "$FIRST_BATCH"
step synthetic-data "$PY" -c "from alvit.bench import write_synthetic_imagefolder as w; w('$WORK/synthetic', $POOL, $TEST)"
STEP_LIMIT=$ROUND_LIMIT step two-rounds "$PY" -m alvit.cli run configs/paper-example.yaml --quiet --out "$WORK/run" \
  --set "dataset=imagefolder:$WORK/synthetic" --set "model=$ROUND_MODEL" --set pretrained=false \
  --set strategy=gci_vital --set "device=$DEVICE" --set al.rounds=1 --set "al.initial=$INITIAL" \
  --set "al.query=$QUERY" --set "train.epochs=$EPOCHS"
bench "$CONCURRENT_MODEL" "$FIRST_BATCH" --concurrent "$CONCURRENT"
for model in $MODELS; do
  for batch in $BATCHES; do
    ran "bench-$model-$batch" || bench "$model" "$batch"
  done
done

"$PY" -m alvit.gpucheck "$WORK" "$OUT/gpu_check.json" --budget "$BUDGET" --started "$START"
