#!/usr/bin/env bash
# Run every GPU test and every kernel benchmark of mlx_linalg on a GPU machine (CUDA, or
# Metal), and write the results where docs/ cites them.
#
# Usage: tools/gpu-check.sh                      # all GPU tests + all kernel benchmarks
#        TESTS="tests/gpu/test_small_factor.py" BENCH_OPS=cholesky,solve tools/gpu-check.sh
#        BENCH=0 tools/gpu-check.sh -k cholesky  # extra arguments go to pytest
#        CONFORMANCE=quick PEERS=1 tools/gpu-check.sh  # also the conformance suite on the GPU
#                                                      # and the gpu-h100 peer benchmark
#        BLOCKED=1 BENCH=0 tools/gpu-check.sh          # also time the large-matrix blocks
#        CROSSOVERS=1 TESTS= BENCH=0 tools/gpu-check.sh  # the blocked graphs as dispatched
#                                                      # against the CPU path: CROSSOVER
#        BENCH=0 tools/gpu-check.sh -m 'gpu and not slow'  # skip the minutes-long tests of
#                                                      # undispatched blocks (QDWH-eig/SVD)
#        SPECTRAL=1 TESTS= BENCH=0 tools/gpu-check.sh  # the SVD route's breakdown and the
#                                                      # long products' costs, each with TF32
#                                                      # on and off (MLX_ENABLE_TF32=0)
#        THREADGROUPS=1 TESTS= BENCH=0 tools/gpu-check.sh  # lu_panel, qr_panel, qr_small
#                                                      # times by threadgroup size, against the
#                                                      # launch rules that pick them
#
# Needs: MLX with a GPU backend (pip install "mlx[cuda13]" on Linux), numpy, scipy, pytest,
# hypothesis; PyTorch with CUDA for the side-by-side benchmark columns.
# Writes to $RESULTS (default docs/results): gpu-machine.txt, gpu-tests.log,
# gpu-tests.xml, small_kernels.json, small_kernels.md, bench-small-kernels.log; and packs
# them into $OUT/gpu-results.tgz when $OUT is set (a device machine's output folder).
# Exit status: 0 when the tests pass (and the benchmarks ran), else the first failure's.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${RESULTS:-docs/results}
TESTS=${TESTS-tests/gpu}  # TESTS= (empty) runs no tests
mkdir -p "$RESULTS"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX (a peer) would take most of the GPU memory
PY=${PYTHON:-python3}

if ! "$PY" -c "import mlx.core as mx, sys; sys.exit(0 if mx.is_available(mx.gpu) else 1)"; then
  echo "gpu-check: this MLX has no GPU backend (mx.is_available(mx.gpu) is False)" >&2
  exit 2
fi
{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
    || echo "no nvidia-smi"
  "$PY" -c "import mlx.core as mx, platform; print('mlx', mx.__version__, \
'metal' if mx.metal.is_available() else 'cuda', platform.python_version())"
  git rev-parse HEAD 2>/dev/null || true
} > "$RESULTS/gpu-machine.txt"
cat "$RESULTS/gpu-machine.txt"

status=0
if [ -n "$TESTS" ]; then
  # shellcheck disable=SC2086  # TESTS may name several paths
  "$PY" -m pytest -q -m gpu -p no:cacheprovider $TESTS "$@" \
    --junitxml="$RESULTS/gpu-tests.xml" 2>&1 | tee "$RESULTS/gpu-tests.log"
  status=$?
fi

if [ "${BENCH:-1}" != 0 ]; then
  "$PY" tools/bench_small_kernels.py --out "$RESULTS" \
    ${BENCH_OPS:+--ops "$BENCH_OPS"} 2>&1 | tee "$RESULTS/bench-small-kernels.log"
  bench=$?
  [ "$status" = 0 ] && status=$bench
fi

# Blocked factorizations, the QR panels, the tall-skinny rules and the spectral building
# blocks: BLOCKED=1 times them against the peers, to choose block sizes and crossovers.
if [ "${BLOCKED:-0}" != 0 ]; then
  "$PY" tools/bench_blocked.py --out "$RESULTS" --reps 2 --deadline 300 2>&1 \
    | tee "$RESULTS/bench-blocked.log"
  "$PY" tools/bench_spectral_blocks.py --out "$RESULTS" 2>&1 | tee "$RESULTS/bench-spectral-blocks.log"
  "$PY" tools/bench_qr_panel.py --out "$RESULTS" 2>&1 | tee "$RESULTS/bench-qr-panel.log"
  "$PY" tools/bench_tall.py --out "$RESULTS" --peers torch 2>&1 | tee "$RESULTS/bench-tall.log"
  "$PY" tools/bench_band_reduction.py --out "$RESULTS" 2>&1 | tee "$RESULTS/bench-band-reduction.log"
  "$PY" tools/bench_compiled.py --out "$RESULTS" 2>&1 | tee "$RESULTS/bench-compiled.log"
fi

# Where the spectral routes' time and error go, with products split (TF32, MLX's CUDA
# default) and in float32 proper: docs/kernels-spectral-blocks.md, "Long products" and
# docs/speed-gaps.md. Each setting is a process of its own (MLX reads it once).
if [ "${SPECTRAL:-0}" != 0 ]; then
  mkdir -p "$RESULTS/spectral"
  for tf32 in default 0; do
    if [ "$tf32" = 0 ]; then setting=(env MLX_ENABLE_TF32=0); else setting=(env); fi
    "${setting[@]}" "$PY" tools/svd_route_breakdown.py 1024 4096 2>&1 \
      | tee "$RESULTS/spectral/svd-route-tf32-$tf32.log"
    "${setting[@]}" "$PY" tools/bench_long_products.py --sizes 4096,8192 2>&1 \
      | tee "$RESULTS/spectral/long-products-tf32-$tf32.log"
  done
  "$PY" tools/bench_long_products.py --sizes "" --eigh 8192,16384 2>&1 \
    | tee "$RESULTS/spectral/eigh-memory.log"
  "$PY" tools/kernel_times.py timeline --ops svd,eigh --n 1024 --calls 2 --top 20 2>&1 \
    | tee "$RESULTS/spectral/timeline-1024.log"
fi

# Kernel times by threadgroup size against the launch rules (tools/bench_threadgroups.py).
if [ "${THREADGROUPS:-0}" != 0 ]; then
  { "$PY" tools/bench_threadgroups.py lu-panel
    "$PY" tools/bench_threadgroups.py qr-panel --width 32
    "$PY" tools/bench_threadgroups.py qr-small \
      --cases 100x32x32,500x32x32,1000x32x32,4000x32x32,1000x64x64,4000x64x64,4000x16x16,1000x128x32,4000x128x32
  } 2>&1 | tee "$RESULTS/threadgroups.log"
fi

# The blocked graphs as the dispatch runs them (compiled) against mlx_linalg's CPU path,
# n = 256 ... 4096: the table ends with each op's crossover (blocked_rules.CROSSOVER).
if [ "${CROSSOVERS:-0}" != 0 ]; then
  "$PY" tools/bench_blocked.py --out "$RESULTS/crossovers" --blocks default \
    --sizes 256,512,1024,2048,4096 --skip cupy --reps 3 --deadline 400 2>&1 \
    | tee "$RESULTS/bench-crossovers.log"
fi

if [ -n "${CONFORMANCE:-}" ]; then
  "$PY" -m conformance "--${CONFORMANCE}" --device gpu --no-progress \
    --out "$RESULTS/conformance-gpu-${CONFORMANCE}" 2>&1 | tail -40
  conformance=$?
  [ "$status" = 0 ] && status=$conformance
fi

if [ "${PEERS:-0}" != 0 ]; then
  "$PY" -m benchmarks --preset gpu-h100 --out "$RESULTS/gpu-h100" 2>&1 | tail -60
fi

# A device machine returns at most 8 files from $OUT: everything goes back as one tarball.
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  tar -czf "$OUT/gpu-results.tgz" -C "$RESULTS" . && cp "$RESULTS"/gpu-tests.log "$OUT"/ 2>/dev/null
fi
exit "$status"
