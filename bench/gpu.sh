#!/usr/bin/env bash
# Issue 16's GPU check: one prepared script, <= 8 minutes on one GPU, one JSON.
#   1. attribution: bench/attribution.py on a t5-large-shaped T5 (738M) in bf16, CQA and SVAMP test:
#      examples/s of ours and of the step-wise loop, their ratio, peak GPU memory (inseq: null, not installed);
#   2. paper cell: `attrdistill run` on full CQA with a from-scratch t5-base-sized teacher (768/3072, 12+12
#      layers, 12 heads) and t5-small-sized student (512/2048, 6+6, 8 heads), bf16, 300 steps each, every
#      stage (variants standard and saliency): device placement, bf16 training, attribution in bf16 and
#      generation on CUDA, end to end.
# Every model is built from config with random init: no weights travel.
#
# How to run
#   Here (online), once:   bash bench/gpu.sh --prepare
#     fills bench/results/gpu-carry/ (ignored by git): wheels/ = datasets and those of its requirements that the
#     GPU image lacks (dill, multiprocess) or has in another version (fsspec), for CPython 3.12 (the image's
#     python3, KINDS.md; multiprocess also for 3.11, the smoke test's), and shared/ = a copy of ../shared's CQA,
#     SVAMP and T5 tokenizer (../shared does not travel). It prints what travels: limit 64 MiB, the tree and
#     this ~15 MB. pyarrow (55 MB) would not fit beside the data; the image has it (datasets wants >= 24).
#   Here, the proof:       bash bench/gpu.sh --smoke        (the same steps on the CPU: tiny models, few steps)
#   On the GPU machine:    device tool run(command="bash bench/gpu.sh", carry=["bench/results/gpu-carry"],
#                          timeout_s=600)
#     The JSON is $OUT/gpu.json (the tool brings $OUT back, with the logs), else bench/results/gpu.json;
#     --smoke writes gpu-smoke.json. A part that fails or runs out of its time is recorded and the next runs.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=gpu
case "${1:-}" in
  "") ;;
  --smoke) MODE=smoke ;;
  --prepare) MODE=prepare ;;
  *) sed -n '2,22p' "$0"; exit 2 ;;
esac
PY=${PYTHON:-python3}                 # on the GPU machine the python3 that holds torch
CARRY=bench/results/gpu-carry
WORK=$PWD/bench/results/gpu-work-$MODE
# Pinned to the versions of the project's .venv, where they work together.
WHEELS=(datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0)

prepare() {
  rm -rf "$CARRY"
  mkdir -p "$CARRY/wheels" "$CARRY/shared/data/dsbs" "$CARRY/shared/tokenizers"
  local py
  for py in 3.12 3.11; do   # multiprocess ships one wheel per Python version; the rest are py3
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$CARRY/wheels" "${WHEELS[@]}"
  done
  cp -r ../shared/data/dsbs/cqa ../shared/data/dsbs/svamp "$CARRY/shared/data/dsbs/"
  cp -r ../shared/tokenizers/t5 "$CARRY/shared/tokenizers/"
  chmod -R u+w "$CARRY"   # ../shared is read-only; the next --prepare must be able to delete the copy
  local tree carry
  tree=$(git ls-files -z -co --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}') \
    || true   # a tracked file deleted in the working tree makes stat fail; the sum is still right
  carry=$(du -sb "$CARRY" | cut -f1)
  ls -l "$CARRY/wheels"
  echo "travels: tree $((tree / 1024)) KiB + $CARRY $((carry / 1024)) KiB = $(((tree + carry) / 1048576)) MiB" \
       "(limit 64 MiB)"
  ((tree + carry < 64 * 1048576)) || { echo "too large to travel" >&2; exit 1; }
}

if [ "$MODE" = prepare ]; then prepare; exit 0; fi

# ---------------------------------------------------------------------------------------------- sizes
if [ "$MODE" = gpu ]; then
  TOTAL=${GPU_SH_TOTAL:-455}   # seconds for all parts (env: to test); each part's budget is cut to what is left
  ATTR=(--size large --dtype bfloat16 --sets cqa svamp --n 1024 --loop-n 32 --batch-size 64)
  ATTR_BUDGET=150
  TEACHER=(d_model=768 d_ff=3072 num_layers=12 num_heads=12)   # t5-base's shape (d_kv 64)
  STUDENT=(d_model=512 d_ff=2048 num_layers=6 num_heads=8)     # t5-small's shape (d_kv 64)
  STEPS=(max_steps=300 eval_steps=150 batch_size=64 learning_rate=5.0e-4 warmup_steps=30)
  CELL=(data.limit=0 attribution.batch_size=128 eval.batch_size=256)
else   # smoke: the same steps at toy size on the CPU
  TOTAL=${GPU_SH_TOTAL:-1200}
  ATTR=(--size tiny --dtype bfloat16 --sets cqa svamp --n 8 --loop-n 2 --batch-size 4 --repeats 1 --step-repeats 1)
  ATTR_BUDGET=300
  TEACHER=(d_model=64 d_ff=256 num_layers=2 num_heads=4)
  STUDENT=(d_model=32 d_ff=128 num_layers=1 num_heads=4)
  STEPS=(max_steps=4 eval_steps=2 batch_size=8 learning_rate=1.0e-3 warmup_steps=0)
  CELL=(data.limit=40 attribution.batch_size=8 eval.batch_size=16 eval.max_new_tokens=8
        analysis.faithfulness_examples=8)
fi

# ---------------------------------------------------------------------------------------------- set-up
if [ -d "$CARRY/shared/data/dsbs/cqa" ]; then SHARED=$PWD/$CARRY/shared      # the carried copy (GPU, smoke)
elif [ -d ../shared/data/dsbs/cqa ]; then SHARED=$(cd ../shared && pwd)
else echo "no data: run 'bash bench/gpu.sh --prepare' here and carry $CARRY" >&2; exit 1; fi
rm -rf "$WORK"
mkdir -p "$WORK"
echo "$MODE" >"$WORK/mode"
SITE=$WORK/site   # wheels go here, not into the image's environment (the device README's way)
# This checkout's attrdistill comes first even where the install below fails or another copy is installed.
export PYTHONPATH=$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false TQDM_MININTERVAL=10 \
       HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1   # nothing is reachable there: never wait on it
ABSENT=()
[ "$MODE" = smoke ] && ABSENT=(--absent datasets dill multiprocess)   # the venv has them; the GPU image does not

setup() {   # runs in an `if`, where set -e is off: each step returns its failure
  local wheels=""
  if [ "$MODE" = smoke ] || ! "$PY" -c "import datasets" 2>/dev/null; then
    wheels=$("$PY" bench/gpu_run.py wheels "$CARRY/wheels" "${ABSENT[@]}") || return
    echo "installing into $SITE: ${wheels:-nothing}"
    if [ -n "$wheels" ]; then
      # shellcheck disable=SC2086  # one word per wheel
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" $wheels || return
    fi
  fi
  "$PY" -c "import datasets; print('datasets', datasets.__version__, 'from', datasets.__file__)" || return
  if ! (cd /tmp && PYTHONPATH=$SITE "$PY" -c "import attrdistill" 2>/dev/null); then
    # Offline: no build isolation (it would download setuptools); PYTHONPATH covers a failure here.
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . \
      || echo "warning: pip install -e . failed; attrdistill runs from PYTHONPATH"
  fi
}

START=$EPOCHREALTIME
record() {   # record NAME RC T0: one line of parts.tsv
  printf '%s\t%s\t%s\n' "$1" "$2" "$(awk "BEGIN {printf \"%.1f\", $EPOCHREALTIME - $3}")" >>"$WORK/parts.tsv"
  echo "== $(date -u +%T) $1: exit status $2"
}

part() {   # part NAME BUDGET CMD...: CMD under min(BUDGET, what is left of TOTAL), logged to WORK/NAME.log
  local name=$1 budget=$2 t0=$EPOCHREALTIME rc left
  shift 2
  left=$(awk "BEGIN {print int($TOTAL - ($EPOCHREALTIME - $START))}")
  ((budget < left)) || budget=$left
  echo "== $(date -u +%T) $name (budget ${budget}s): $*"
  if ((budget < 10)); then record "$name" 124 "$t0"; return; fi
  set +e
  timeout --kill-after=15 "$budget" "$@" 2>&1 | tee "$WORK/$name.log"
  rc=${PIPESTATUS[0]}
  set -e
  record "$name" "$rc" "$t0"
}

SMI=""
cleanup() { if [ -n "$SMI" ]; then kill "$SMI" 2>/dev/null || true; fi; }
trap cleanup EXIT

echo "== $(date -u +%T) gpu.sh $MODE: data and tokenizer from $SHARED"
t0=$EPOCHREALTIME
if setup 2>&1 | tee "$WORK/setup.log"; then record setup 0 "$t0"; else record setup 1 "$t0"; fi

# ---------------------------------------------------------------------------------------------- 1. attribution
part attribution "$ATTR_BUDGET" "$PY" bench/gpu_run.py attribution "$SHARED" -- "${ATTR[@]}" \
  --json "$WORK/attribution.json"

# ---------------------------------------------------------------------------------------------- 2. paper cell
RUN=(--out "$WORK/run" --force --set name=gpu-cqa --set data.source=cqa --set "data.path=$SHARED/data/dsbs"
     --set "distill.variants=[standard, saliency]" --set "distill.seeds=[0]")
for role in teacher student; do
  RUN+=(--set "$role.tokenizer=$SHARED/tokenizers/t5" --set "$role.dtype=bfloat16")
done
for kv in "${TEACHER[@]}"; do RUN+=(--set "teacher.$kv"); done
for kv in "${STUDENT[@]}"; do RUN+=(--set "student.$kv"); done
for kv in "${STEPS[@]}"; do RUN+=(--set "teacher.train.$kv" --set "student.train.$kv"); done
for kv in "${CELL[@]}"; do RUN+=(--set "$kv"); done
if command -v nvidia-smi >/dev/null; then   # GPU memory and load once a second while the run goes
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 >"$WORK/smi.csv" &
  SMI=$!
fi
part run 600 "$PY" -m attrdistill.cli run "${RUN[@]}"
cleanup
SMI=""

# ---------------------------------------------------------------------------------------------- the JSON
DEST=${OUT:-bench/results}
JSON=$DEST/$([ "$MODE" = gpu ] && echo gpu.json || echo gpu-smoke.json)
"$PY" bench/gpu_run.py collect "$JSON" "$WORK"
if [ -n "${OUT:-}" ]; then   # the device tool brings back what is under $OUT (8 files at most)
  for f in setup attribution run; do cp "$WORK/$f.log" "$OUT/gpu-$f.log" 2>/dev/null || true; done
  cp "$WORK/run/report.md" "$OUT/gpu-report.md" 2>/dev/null || true
fi
rm -rf "$SITE"   # the installed wheels are scratch: no third-party code stays in the tree after a run
echo "== $(date -u +%T) wrote $JSON; $(awk "BEGIN {printf \"%.0f\", $EPOCHREALTIME - $START}")s in all"
