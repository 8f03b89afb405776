#!/usr/bin/env bash
# Issue #7 on a lent GPU: everything a session with a GPU has to run, in ONE device call.
#
# 1. HERE, on the machine with the checkout and a network (the GPU machine reaches nothing):
#
#        bash scripts/gpu_session.sh prepare
#
#    downloads the pure-Python wheels the GPU image lacks (array-api-compat, array-api-strict;
#    the same versions as here) and copies the Fashion-MNIST/MNIST files into out/gpu_carry/
#    (ignored by git through /out/; about 43 MB, under the 64 MiB a call may carry).
#
# 2. ONE device call (the `run` tool), from the repository root:
#
#        run(command="bash scripts/gpu_session.sh", carry=["out/gpu_carry"], timeout_s=600)
#
#    It finishes in about 6 minutes (GPU_SESSION_BUDGET, default 360 s), most important
#    first: setup and versions; the CuPy parity tests (layers, training steps, backend and
#    RNG) with TF32 off; the GPU benchmark table; one CLI training run; NCCL; then the rest of
#    the suite restricted to its cupy parametrisation. Each step runs under its own `timeout`
#    and leaves its log in $OUT (at most 8 files come back): summary.txt, info.txt,
#    parity.log, gpu_bench.md, gpu_bench.json, train_cnn.log, pytest_cupy.log.
#    One step alone: `bash scripts/gpu_session.sh parity` (install|info|parity|bench|train|nccl|
#    tests).
#
# What the GPU image already has (see the device notes): python3 3.12 with torch (CUDA),
# cupy-cuda13x, numpy, pytest, pytest-benchmark, hypothesis, tqdm, scipy, pandas,
# matplotlib, scikit-learn. dnn itself runs from the checkout through PYTHONPATH.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CARRY=out/gpu_carry
PY=${PYTHON:-python3}
OUT=${OUT:-$ROOT/out/gpu_session}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export DNN_DATA_HOME=$ROOT/$CARRY/datasets
START=$SECONDS
#: about 6 minutes of the device call's 600 s, leaving time to rerun a step in the same session
BUDGET=${GPU_SESSION_BUDGET:-360}

#: the CPU-GPU parity files: layers, losses, optimizers, training steps, backend ops, the RNG
PARITY_FILES="tests/test_layer_parity.py tests/test_train_parity.py tests/test_parity.py \
tests/test_backend.py tests/test_random.py"

log() { echo "[$(date -u +%H:%M:%S) +$((SECONDS - START))s] $*" | tee -a "$OUT/summary.txt"; }

# run_step NAME CAP_SECONDS LOGFILE CMD...: the command under `timeout`, capped by what is left
run_step() {
  local name=$1 cap=$2 logfile=$3; shift 3
  local left=$((BUDGET - (SECONDS - START)))
  if [ "$left" -lt 20 ]; then log "$name: SKIPPED (only ${left}s of the budget left)"; return 0; fi
  [ "$cap" -gt "$left" ] && cap=$left
  log "$name: start (cap ${cap}s) -> $(basename "$logfile")"
  local t0=$SECONDS
  timeout --signal=INT --kill-after=10 "$cap" "$@" 2>&1 | tee "$logfile"
  local rc=$?
  log "$name: exit $rc after $((SECONDS - t0))s$([ $rc -eq 124 ] && echo ' (TIMED OUT)')"
  return 0
}

prepare() {
  # HERE, not on the GPU machine: fetch the wheels and the data sets into out/gpu_carry.
  mkdir -p "$CARRY/wheels" "$CARRY/datasets"
  local compat strict
  compat=$($PY -c "import importlib.metadata as m; print(m.version('array-api-compat'))")
  strict=$($PY -c "import importlib.metadata as m; print(m.version('array-api-strict'))")
  $PY -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$CARRY/wheels" "array-api-compat==$compat" "array-api-strict==$strict" || exit 1
  local src=${DNN_DATA_SOURCE:-$ROOT/../shared/datasets}
  for name in fashion-mnist mnist; do
    cp -r --no-preserve=mode "$src/$name" "$CARRY/datasets/" || exit 1
  done
  du -sh "$CARRY"
  echo "now: run(command=\"bash scripts/gpu_session.sh\", carry=[\"$CARRY\"], timeout_s=600)"
}

install() {
  # Proves: the project installs on the GPU image from carried wheels alone (no network).
  if ls "$CARRY"/wheels/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site "$CARRY"/wheels/*.whl || { log "install: FAILED"; exit 1; }
    export PYTHONPATH=/tmp/site:$ROOT
  else
    log "install: no wheels in $CARRY/wheels (run 'bash scripts/gpu_session.sh prepare' here first)"
    export PYTHONPATH=$ROOT
  fi
  log "install: PYTHONPATH=$PYTHONPATH"
}

info() {
  # Proves: which GPU, driver, CUDA, cupy and torch the numbers below were taken on, and that
  # dnn selects CuPy there (dnn info prints the backend, device and versions).
  {
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
    $PY -c "import cupy, torch, numpy; print('cupy', cupy.__version__, 'cuda runtime',
cupy.cuda.runtime.runtimeGetVersion(), '| torch', torch.__version__, torch.version.cuda,
torch.cuda.get_device_name(), '| numpy', numpy.__version__)"
    echo "CUPY_TF32=${CUPY_TF32:-unset (CuPy default 0: no TF32)} NVIDIA_TF32_OVERRIDE=${NVIDIA_TF32_OVERRIDE:-unset}"
    DNN_BACKEND=cupy $PY -m dnn info
  } 2>&1 | tee "$OUT/info.txt"
}

parity() {
  # Proves: every registered layer, loss and optimizer, and whole training steps of an MLP, the
  # reference CNN and an LSTM, give the same numbers on CuPy as on NumPy (float64 rtol 1e-9,
  # float32 rtol 1e-4). The cupy cases no longer skip here: check "skipped" in the log is only
  # about missing backends other than cupy. NVIDIA_TF32_OVERRIDE=0 keeps cuBLAS/cuDNN from
  # using TF32 in float32 products (CuPy's default is already off; the tests fail if
  # CUPY_TF32=1). dnn's torch backend makes CPU tensors, so its cases run on the CPU here.
  run_step parity 120 "$OUT/parity.log" env DNN_BACKEND=cupy NVIDIA_TF32_OVERRIDE=0 \
    $PY -m pytest -q -rs -p no:cacheprovider $PARITY_FILES
}

bench() {
  # Proves (or disproves) issue #7's speed and memory targets: dnn on CuPy vs torch CUDA in one
  # process, alternating runs, medians of 5, synchronised; writes gpu_bench.md/.json to $OUT.
  run_step bench 100 "$OUT/bench.log" $PY -m benchmarks.gpu --device cuda --out "$OUT"
  rm -f "$OUT/bench.log"  # the tables are in gpu_bench.md; the progress lines in the reply
}

train() {
  # Proves: a real training run works end to end on the GPU through the CLI (data loading,
  # fit, evaluate) and how long one Fashion-MNIST CNN epoch takes, with its test accuracy.
  run_step train 60 "$OUT/train_cnn.log" env DNN_BACKEND=cupy \
    $PY -m dnn train fashion-mnist --model cnn --epochs 1 --data-home "$DNN_DATA_HOME"
}

nccl() {
  # Proves: the NCCL communicator of dnn.distributed starts and reduces CuPy arrays on the GPU
  # (one rank: a one-GPU machine cannot hold two NCCL ranks; with several GPUs run
  # `mpiexec -n <gpus> python -m mpi4py -m benchmarks.distributed --worker` under
  # DNN_BACKEND=cupy). Needs mpi4py, which the GPU image may lack: then it says so.
  if ! $PY -c "import mpi4py" 2>/dev/null; then
    log "nccl: skipped (no mpi4py on this image: pip install mpi4py mpich)"; return
  fi
  run_step nccl 30 "$OUT/nccl.log" env DNN_BACKEND=cupy $PY -c "
import cupy, dnn
comm = dnn.distributed.init('nccl')
a = cupy.arange(8, dtype=cupy.float32)
comm.allreduce_(a)
assert bool((a == cupy.arange(8, dtype=cupy.float32) * comm.size).all()), a
print('nccl ok:', comm, 'device', cupy.cuda.Device().id)
"
}

tests() {
  # Proves: the rest of the fast suite passes on CuPy: every test parametrised over backends,
  # restricted to its cupy case (-k cupy), the parity files excluded (step 2 ran them). Last,
  # since it is the longest: it gets what is left of the budget. With pytest-xdist (in the GPU
  # image) it runs on GPU_TEST_WORKERS processes (default 8; 0 = one process; every test writes
  # only under its tmp_path), and with pytest-timeout no single test may hang the step (60 s).
  local par=() workers=${GPU_TEST_WORKERS:-8}
  if [ "$workers" != 0 ] && $PY -c "import xdist" 2>/dev/null; then par+=(-n "$workers"); fi
  if $PY -c "import pytest_timeout" 2>/dev/null; then par+=(--timeout 60); fi
  local skip=()
  for f in $PARITY_FILES; do skip+=(--ignore "$f"); done
  run_step tests 600 "$OUT/pytest_cupy.log" env DNN_BACKEND=cupy NVIDIA_TF32_OVERRIDE=0 \
    $PY -m pytest -q -m "not slow" -k cupy -p no:cacheprovider --durations=15 "${skip[@]}" \
    "${par[@]}"
}

case "${1:-all}" in
  prepare) prepare ;;
  install) install ;;
  info) install; info ;;
  parity) install; parity ;;
  bench) install; bench ;;
  train) install; train ;;
  tests) install; tests ;;
  nccl) install; nccl ;;
  all) install; info; parity; bench; train; nccl; tests; log "done"; cat "$OUT/summary.txt" ;;
  *) echo "usage: $0 [prepare|all|install|info|parity|bench|train|nccl|tests]" >&2; exit 2 ;;
esac
