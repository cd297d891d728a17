#!/usr/bin/env bash
# The GPU session in one call: the CuPy backend verified and measured on a real GPU.
#
#   bash scripts/gpu_session.sh          # from the repository root, on a machine with a CUDA GPU
#
# 1. the environment (GPU, driver, CUDA runtime, versions, CPU) into $OUT/env.txt;
# 2. the `gpu` extra: cupy must import; where it does not, `pip install -e '.[gpu]'` installs it
#    (needs a package registry); where it does, the checkout runs as it is (PYTHONPATH);
# 3. scripts/gpu_check.py: correctness of every CuPy kernel against NumPy with its negative twins,
#    then the timings and the B sweep against CPU_THREADS CPU cores -> $OUT/gpu_check.json;
# 4. the GPU tests (pytest -m gpu) -> $OUT/pytest_gpu.log;
# 5. the audit's CuPy rows: python -m verify audit --quick --backend numpy,cupy -> $OUT/audit.{md,json}.
#
# Each step has its own time limit and a failing step does not stop the next. Exit status: 0 when
# every step passed, else the number of failed steps. Logs and results go to $OUT (default
# ./gpu_session_out). Commit them under bench_results/gpu-<card>/.
set -uo pipefail
OUT=${OUT:-gpu_session_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
failed=0
step() {   # step NAME LIMIT_S COMMAND...: run with a time limit, log to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date -u +%T), limit ${limit}s): $*"
    local t0=$SECONDS
    timeout -s INT "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$OUT/$name.log"
    echo "=== $name: exit $rc after $((SECONDS - t0)) s"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.memory --format=csv
    $PY -c "import sys, numpy, numba; print(sys.version); print('numpy', numpy.__version__, 'numba', numba.__version__)"
    $PY -c "import cupy; print('cupy', cupy.__version__, 'CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())"
    lscpu | grep -E 'Model name|^CPU\(s\)|Thread|MHz' || true
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

if ! $PY -c "import cupy" 2>/dev/null; then
    echo "cupy does not import: installing the gpu extra"
    $PY -m pip install -e '.[gpu]' || { echo "gpu_session: could not install the gpu extra" >&2; exit 2; }
fi

step gpu_check 300 $PY scripts/gpu_check.py --out "$OUT/gpu_check.json"
step pytest_gpu 180 $PY -m pytest -m gpu -q -p no:cacheprovider tests/
step audit 120 $PY -m verify audit --quick --backend numpy,cupy --report "$OUT/audit"
echo "gpu_session: $failed step(s) failed; results in $OUT"
exit "$failed"
