#!/bin/sh
# test_bench_model.sh - `qfleet bench --op model` as a user runs it, on the tiny llama model.
#
# CTest runs it with the path of the built qfleet as $1, the source tree as $2 (and
# QF_GGML_DIR in the environment). The tiny checkpoint (tests/make_tiny_llama.py) is converted
# to q4_0 GGUF by the real `qfleet quantize`; then, with short runs (pp 32, tg 8, 2 reps):
# ours alone prints one row per thread count with finite, positive pp and tg; with --vs-llama
# (when libllama is there: else SKIPPED loudly, or a failure under QF_REQUIRE_GGML=1) the
# llama.cpp columns and ratios are finite and positive too; a missing model file fails (exit 1)
# naming it, no model and a bad --reps are usage errors (exit 2). Seconds, not a timed test;
# exits 77 (skipped) without python3.

QF=${1:?usage: test_bench_model.sh PATH_TO_QFLEET SOURCE_DIR}
SRC=${2:?usage: test_bench_model.sh PATH_TO_QFLEET SOURCE_DIR}
pass=0
fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qf_bm.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

ok() {
    pass=$((pass + 1))
    printf 'ok   %s\n' "$1"
}

bad() {
    fail=$((fail + 1))
    printf 'FAIL %s: %s\n' "$1" "$2"
    sed 's/^/     stdout: /' "$tmp/out" | head -n 20
    sed 's/^/     stderr: /' "$tmp/err" | head -n 5
}

bench() {
    "$QF" bench --op model "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# check_rows NAME NFIELDS ROWS: ROWS data rows of NFIELDS fields, fields 3.. positive numbers.
check_rows() {
    name=$1 nf=$2 want=$3
    if [ "$rc" -ne 0 ]; then
        bad "$name" "exit status $rc"
        return
    fi
    why=$(awk -v n="$nf" -v want="$want" '
        /^#/ || /^model/ { next }
        {
            rows++
            if (NF != n) { print "row " rows " has " NF " fields, expected " n; failed = 1; exit }
            for (i = 3; i <= NF; i++)
                if ($i !~ /^[0-9]+(\.[0-9]+)?$/ || $i + 0 <= 0) {
                    print "row " rows " field " i " is \"" $i "\""; failed = 1; exit
                }
        }
        END { if (!failed && rows != want) print rows " data rows, expected " want }' "$tmp/out")
    if [ -n "$why" ]; then
        bad "$name" "$why"
    else
        ok "$name"
    fi
}

if ! command -v python3 >/dev/null 2>&1; then
    echo "*** SKIPPED: no python3 to generate the tiny model"
    exit 77
fi
python3 "$SRC/tests/make_tiny_llama.py" "$tmp/tiny" >/dev/null || exit 1
"$QF" quantize "$tmp/tiny" "$tmp/tiny-q4_0.gguf" --type q4_0 >/dev/null 2>"$tmp/err" || {
    cat "$tmp/err"
    exit 1
}
SHORT="--pp 32 --tg 8 --reps 2"

# 1. Ours alone: model thr pp_ours tg_ours.
# shellcheck disable=SC2086
bench "$tmp/tiny-q4_0.gguf" $SHORT --threads 1,2
check_rows "ours alone, 2 thread counts" 4 2

# 2. Next to llama.cpp: model thr pp_ours pp_llama ratio tg_ours tg_llama ratio.
lib=$(ls "${QF_GGML_DIR:-/nonexistent}"/libllama.so "${QF_GGML_DIR:-/nonexistent}"/libllama.v*.so \
      2>/dev/null | head -n 1)
if [ -n "$lib" ]; then
    # shellcheck disable=SC2086
    bench "$tmp/tiny-q4_0.gguf" $SHORT --vs-llama
    check_rows "--vs-llama" 8 1
elif [ "${QF_REQUIRE_GGML:-0}" = 1 ]; then
    fail=$((fail + 1))
    echo "FAIL --vs-llama: libllama required (QF_REQUIRE_GGML=1) but not in '${QF_GGML_DIR:-}'"
else
    echo "*** SKIPPED --vs-llama: no libllama in '${QF_GGML_DIR:-}' (make ggml)"
fi

# 3. Errors.
bench "$tmp/missing.gguf" $SHORT
if [ "$rc" -eq 1 ] && grep -q "missing.gguf" "$tmp/err"; then ok "missing model"; else
    bad "missing model" "exit $rc, expected 1 and the file named"; fi
bench
if [ "$rc" -eq 2 ]; then ok "no model: usage"; else bad "no model: usage" "exit $rc"; fi
bench "$tmp/tiny-q4_0.gguf" --reps 0
if [ "$rc" -eq 2 ] && grep -q -- "--reps" "$tmp/err"; then ok "--reps 0: usage"; else
    bad "--reps 0: usage" "exit $rc"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
