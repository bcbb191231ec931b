#!/usr/bin/env bash
# cuda-check.sh - build the CUDA backend, check it against the C reference, benchmark it: the
# one command to run on a GPU machine (e.g. one call of the device tool, from the repo root).
#
#   scripts/cuda-check.sh [--full | --cuda-only] [--no-test] [--reps N] [--rows R] [--cols C]
#
# Steps: print the GPU and toolchain; configure and build in build-cuda-check/ (Release); run
# test_cuda (every format: dequantize bit-exact, matvec NMSE against the CPU reference); run
# `qfleet bench --backend cuda --op matvec --format all` at 4096 x 14336 (n = 1), which times
# each pass with CUDA events after warm-up and prints GB/s of weight bytes and the % of the
# device-to-device copy bandwidth it measured in the same run; the same on a matrix four times
# taller (per-launch overhead versus steady rate); print the table last.
# Build mode: the full project when pkg-config finds every fleet dependency (qfleet bench),
# else QF_CUDA_ONLY (kernels + CUDA backend + qfleet-bench + test_cuda, which need only
# jansson and cmocka, taken from build-cudadeps/ when the machine lacks them). build-cudadeps/
# (ignored by git) is made once on a Debian/Ubuntu x86-64 machine and carried to the GPU one:
#   mkdir -p /tmp/debs build-cudadeps && (cd /tmp/debs && apt-get download libjansson-dev \
#     libjansson4 libcmocka-dev libcmocka0) &&
#   for f in /tmp/debs/*.deb; do dpkg -x "$f" build-cudadeps; done
# Logs and the benchmark table go to $OUT when it is set (the device tool's folder), else to
# build-cuda-check/. Results: docs/performance.md, "CUDA (H100)".
set -euo pipefail

mode=auto run_test=1 reps=200 rows=4096 cols=14336
while [ $# -gt 0 ]; do
    case "$1" in
        --full) mode=full ;;
        --cuda-only) mode=cuda-only ;;
        --no-test) run_test=0 ;;
        --reps) reps="$2"; shift ;;
        --rows) rows="$2"; shift ;;
        --cols) cols="$2"; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "cuda-check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-cuda-check"
out="${OUT:-$build}"
mkdir -p "$build" "$out"
command -v nvcc >/dev/null 2>&1 || export PATH="/usr/local/cuda/bin:$PATH"

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
    --format=csv 2>&1 || echo "(nvidia-smi failed)"
nvcc --version | tail -2
cmake --version | head -1

if [ "$mode" = auto ]; then
    if command -v pkg-config >/dev/null 2>&1 &&
       pkg-config --exists jansson cmocka msgpack libzmq sqlite3 hwloc yaml-0.1 libsodium; then
        mode=full
    else
        mode=cuda-only
    fi
fi
echo "== build ($mode)"
flags=(-DCMAKE_BUILD_TYPE=Release -DQF_CUDA=ON)
if [ "$mode" = cuda-only ]; then
    flags+=(-DQF_CUDA_ONLY=ON -DQF_DEPS_PREFIX="$root/build-cudadeps")
    bench="$build/qfleet-bench"
    targets=(qfleet-bench test_cuda)
else
    flags+=(-DQF_CUDA_ONLY=OFF)
    bench="$build/qfleet bench"
    targets=(qfleet test_cuda)
fi
start=$(date +%s)
cmake -S "$root" -B "$build" -G Ninja "${flags[@]}" >"$out/configure.log" 2>&1 ||
    { cat "$out/configure.log"; exit 1; }
cmake --build "$build" --target "${targets[@]}" >"$out/build.log" 2>&1 ||
    { tail -60 "$out/build.log"; exit 1; }
echo "built in $(( $(date +%s) - start )) s"

status=0
if [ "$run_test" = 1 ]; then
    echo "== test_cuda"
    start=$(date +%s)
    set +e
    "$build/tests/test_cuda" 2>&1 | tee "$out/test_cuda.log"
    rc=${PIPESTATUS[0]}
    set -e
    echo "test_cuda exit $rc in $(( $(date +%s) - start )) s"
    [ "$rc" = 0 ] || status=1
fi

echo "== bench"
# The same kernels on a matrix 4x taller (Gaussian weights, the quicker generator): how much
# of the gap to the copy bandwidth is per-launch cost (launch, ramp, tail), which a larger
# matrix amortizes, rather than the kernel's steady rate. --threads: the CPU's reference
# quantization of the input, before anything is timed.
threads=$(nproc)
echo "== 4x taller"
$bench --backend cuda --op matvec --format all --rows $((4 * rows)) --cols "$cols" \
    --reps "$reps" --warmup 20 --dist gaussian --threads "$threads" | tee "$out/bench-tall.txt" ||
    status=1
echo "== matmul, n = 512 (prefill): f16 tensor-core GEMM after an f16 decode of the weights"
$bench --backend cuda --op matmul --batch 512 --format all --rows "$rows" --cols "$cols" \
    --reps 50 --warmup 5 --threads "$threads" | tee "$out/bench-matmul.txt" || status=1
echo "== bench (the table)"
$bench --backend cuda --op matvec --format all --rows "$rows" --cols "$cols" --reps "$reps" \
    --warmup 20 --threads "$threads" | tee "$out/bench.txt" || status=1
exit $status
