#!/usr/bin/env bash
# One prepared GPU check: turns a few minutes on a GPU machine into recorded numbers.
#
#   scripts/gpu_check.sh [--dry-run] [--wheels DIR] [--out DIR] [--budget SECONDS] [--stages LIST]
#
# On a machine with a GPU and this repository (a plain checkout, nothing installed) it
#   1. installs only what is missing, from wheels carried with the tree (--wheels, default .whl; fill it on a
#      machine with the registries with scripts/gpu_wheels.sh): a module that imports is left as it is;
#      matplotlib is optional (without it the scaling PNG is drawn later from the JSON, as the log says);
#   2. runs the stages of --stages (comma-separated, default train,training,physics,render,questions), each within
#      its share of --budget (seconds, at least 60; default 480, 1200 with --dry-run; the shares add up to 90%,
#      the rest is for installing and starting Python), a stage that runs out of time keeping the rows it
#      finished:
#      - train: the gpu_small step's examples/s, its time shares (simulation, rendering, questions, model) and
#        MFU;
#      - training: 100 steps of gpu_small with its held-out evaluation at step 100 (log and metrics.jsonl kept);
#      - physics: 1k-64k worlds per family;
#      - render: 64x64 and 128x128 for 1k-16k frames (the JAX ray caster, and MuJoCo Warp where warp-lang and
#        mujoco-warp import);
#      - questions: the whole jitted pipeline (QA samples/s);
#      gpu_small is scaled to the GPUs present (data.shards = their number): each GPU simulates, renders and
#      trains what one GPU of the 8-GPU node it was written for does (all 8 shards on one GPU would hold about 8
#      times the temporaries that `make aot` estimates per device, more than an H100 has);
#   3. writes everything to --out (default $OUT, else a new folder under /tmp, kept) as it is measured: the
#      bench merges its rows into --out/<device>.json as it measures each family and batch, the stage logs are
#      written there, and the run's metrics.jsonl (its last "eval" line is the evaluation) is copied there after
#      its stage; so a limit on the whole call loses nothing already measured. A real run also copies the
#      results (and the scaling PNG, where matplotlib is) to benchmarks/results/ after every stage and starts
#      from the copy there, so a second call with the stages left (--stages) adds to the first's rows.
#
# --dry-run: the same stages on the CPU at small sizes (the quick config instead of gpu_small, 2 training steps and
# a 4-question held-out suite, 16-64 worlds), results under --out only (benchmarks/ untouched). The test suite
# runs it (tests/test_bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."

dry=0 wheels=.whl out=${OUT:-} budget= stages=train,training,physics,render,questions
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry=1 ;;
    --wheels) wheels=$2; shift ;;
    --out) out=$2; shift ;;
    --budget) budget=$2; shift ;;
    --stages) stages=$2; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$budget" ]; then
  case $budget in *[!0-9]*) echo "gpu_check.sh: --budget $budget: seconds, a whole number" >&2; exit 2 ;; esac
  budget=$(( 10#$budget ))
  [ "$budget" -ge 60 ] || { echo "gpu_check.sh: --budget $budget: at least 60 seconds" >&2; exit 2; }
fi
for s in ${stages//,/ }; do
  case $s in train|training|physics|render|questions) ;;
    *) echo "gpu_check.sh: --stages: unknown stage '$s' (train, training, physics, render, questions)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ "$dry" = 1 ]; then
  export JAX_PLATFORMS=cpu
  budget=${budget:-1200}  # two CPU cores compile every program from scratch
fi
out=${out:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")}  # kept: the logs, the results, the run's metrics
budget=${budget:-480}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log() { echo "gpu_check: $*"; }

# --- 1. what is missing, from carried wheels ---------------------------------------------------------------
# module to import : wheel file prefix (as pip names the file)
needs="mujoco:mujoco- mujoco.mjx:mujoco_mjx- flax.nnx:flax- optax:optax- einops:einops- orbax.checkpoint:orbax_checkpoint- rich:rich- tqdm:tqdm-"
optional="matplotlib:matplotlib-"  # the scaling PNG only: drawn later from the JSON where it is missing
missing=($("$PY" - $needs $optional <<'PYEOF'
import importlib, sys
for pair in sys.argv[1:]:
    try:
        importlib.import_module(pair.split(":")[0])
    except Exception:
        print(pair)
PYEOF
))
if [ ${#missing[@]} -gt 0 ]; then
  files=()
  for pair in "${missing[@]}"; do
    module=${pair%%:*} prefix=${pair#*:}
    found=$(ls "$wheels"/"$prefix"[0-9]*.whl 2>/dev/null | head -1 || true)
    if [ -z "$found" ]; then
      case " $optional " in
        *" $pair "*) log "no $module here and no $wheels/$prefix*.whl: the JSON is written, the PNG is not"; continue ;;
      esac
      log "cannot import $module and no $wheels/$prefix*.whl was carried (scripts/gpu_wheels.sh fills $wheels)" >&2
      exit 2
    fi
    files+=("$found")
    log "installing $(basename "$found") (import $module failed)"
  done
  # Their own needs that are missing too ride along in the same folder (gpu_wheels.sh puts them there).
  for extra in "$wheels"/*.whl; do
    [ -e "$extra" ] || continue
    case " ${files[*]-} " in *" $extra "*) continue ;; esac
    name=$(basename "$extra" | cut -d- -f1 | tr _ - | tr 'A-Z' 'a-z')
    "$PY" -m pip show "$name" >/dev/null 2>&1 || files+=("$extra")
  done
  if [ ${#files[@]} -gt 0 ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" \
      "${files[@]}"
    export PYTHONPATH="$PYTHONPATH:$work/site"
  fi
fi
"$PY" -c "import physsim, flax.nnx, mujoco.mjx" || { log "physsim does not import after installing" >&2; exit 2; }

# The last line only: MJX prints "Failed to import warp" on stdout where warp-lang is not installed.
device=$("$PY" -c "from physsim.bench.sections import device_name; print(device_name())" | tail -1)
slug=$(echo "$device" | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9]\+/-/g; s/^-//; s/-$//')
# The bench merges its rows into $out/<device>.json as it measures them, and stage logs go there too, so a limit
# on the whole call loses nothing already measured; a real run copies the file to benchmarks/results/ after every
# stage (and starts from the copy there, so a second call with --stages adds to the first's rows).
results="$out/$slug.json" record=
if [ "$dry" = 0 ]; then
  case $device in gpu:*|cuda:*) ;; *) log "no GPU here ($device): use --dry-run on a CPU" >&2; exit 2 ;; esac
  record="benchmarks/results/$slug.json"
fi
mkdir -p "$out"
[ -z "$record" ] || [ ! -f "$record" ] || [ -f "$results" ] || cp "$record" "$results"
log "device $device; results -> $results${record:+ and $record}; logs -> $out; budget ${budget} s"
"$PY" -c "import jax, mujoco, flax; print('gpu_check: jax', jax.__version__, 'mujoco', mujoco.__version__, 'flax', flax.__version__)"

# --- 2. the stages ---------------------------------------------------------------------------------------
if [ "$dry" = 1 ]; then
  # The held-out evaluation the tests' runs of quick.py use (tests/helpers.py: SMALL), so its programs are shared.
  config=experiments/quick.py steps=2 families="collision" suite=(--eval.questions=4 "--eval.splits=('train',)")
  physics="16 64" render_batches="8" questions="16" resolutions="32"
  render_backends="jax" scale=()
else
  config=experiments/gpu_small.py steps=100 families="" suite=()
  physics="1024 4096 16384 65536" render_batches="512 2048 8192" questions="64 256" resolutions="64 128"
  render_backends=""
  gpus=$("$PY" -c "import jax; print(jax.device_count())" | tail -1)
  scale=(data.shards=$gpus)  # gpu_small's 8 shards are one per GPU of an 8-GPU node: one per GPU here
  log "$gpus GPU(s): gpu_small with ${scale[*]}"
fi
failed=()
keep() {  # what is measured so far: the run's metrics to --out, the results to benchmarks/results/ (real runs)
  # The run stops early (--stop-at), so its evaluation is a line of metrics.jsonl, not a final eval.json.
  cp "$work/runs/gpu_check/metrics.jsonl" "$out/training_metrics.jsonl" 2>/dev/null || true
  [ -z "$record" ] || cp "$results" "${results%.json}.png" "$(dirname "$record")"/ 2>/dev/null || true
}
stage() {  # stage NAME SHARE_OF_BUDGET_PERCENT COMMAND...: runs within its share, logs to $out/NAME.log
  local name=$1 share=$2; shift 2
  case ",$stages," in *",$name,"*) ;; *) log "stage $name: not in --stages"; return 0 ;; esac
  local limit=$(( budget * share / 100 )) start=$SECONDS rc=0
  log "stage $name (at most ${limit} s): $*"
  timeout --signal=INT --kill-after=20 "$limit" "$@" 2>&1 | tee "$out/$name.log" || rc=$?
  [ "$rc" = 0 ] || failed+=("$name (exit $rc)")
  log "stage $name: exit $rc after $(( SECONDS - start )) s"
  keep
}
bench=("$PY" -m physsim.bench --update "$results")
train_set=()
[ ${#scale[@]} = 0 ] || train_set=(--train-set "${scale[@]}")
overrides=()
for kv in ${scale[@]+"${scale[@]}"}; do overrides+=("--$kv"); done

stage train 18 "${bench[@]}" --sections train --train-config "$config" ${train_set[@]+"${train_set[@]}"}
# --stop-at, not --train.steps: the step count is compiled into the learning-rate schedule, so stopping the
# config's own schedule early runs the very program the train section compiled (a persistent-cache hit); the
# evaluation due at the --stop-at step runs before it stops.
stage training 32 "$PY" -m physsim.train --config "$config" --stop-at $steps --eval.every=$steps \
  --train.checkpoint_every=$steps --train.log_every=$(( steps < 10 ? 1 : 10 )) --run.out_dir="$work/runs" \
  --run.name=gpu_check --no-resume ${suite[@]+"${suite[@]}"} ${overrides[@]+"${overrides[@]}"}
stage physics 18 "${bench[@]}" --sections physics --physics-batches $physics ${families:+--families $families}
stage render 13 "${bench[@]}" --sections render --render-batches $render_batches --render-resolutions $resolutions \
  ${render_backends:+--render-backends $render_backends} ${families:+--families $families}
stage questions 9 "${bench[@]}" --sections questions --questions-batches $questions ${families:+--families $families}

# --- 3. what is kept (after every stage, above) -------------------------------------------------------------
if [ ${#failed[@]} -gt 0 ]; then
  log "stages that did not finish: ${failed[*]} (rerun them with --stages; finished rows are kept in $results)" >&2
  exit 1
fi
log "every stage finished; results in $results"
