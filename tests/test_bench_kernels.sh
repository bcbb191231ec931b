#!/bin/sh
# test_bench_kernels.sh - `qfleet bench --op kernels` as a user runs it, on a small shape.
#
# CTest runs it with the path of the built qfleet as $1 (and QF_GGML_DIR in the environment).
# Checks: without --vs-ggml the table has our columns and every data row a finite number in
# each (nothing NaN, inf or empty), --json parses and holds positive medians; with --vs-ggml
# (when ggml's libraries are there: else SKIPPED loudly, or a failure under QF_REQUIRE_GGML=1)
# the ggml columns are finite for GGUF formats, '-' for ours alone, the graph path is named,
# and our matvec agrees with ggml's; a missing ggml folder is a usage error naming the folder
# and how to fetch it. A few seconds: 256x1024, 3 repetitions, a 256 KiB "LLC".

QF=${1:?usage: test_bench_kernels.sh PATH_TO_QFLEET}
pass=0
fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qf_bk.XXXXXX") || exit 1
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

SMALL="--op kernels --shapes 256x1024 --threads 1,2 --reps 3 --heavy-reps 1 --mm-n 8
       --llc 256K --format q4_0,q4_K,int8_pc"

# bench ARGS...: runs qfleet bench, stdout in $tmp/out, stderr in $tmp/err, status in $rc.
bench() {
    # shellcheck disable=SC2086
    "$QF" bench "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# check_table NAME NCOLS DASHES: the header names our columns; 6 data rows (3 formats x 2
# thread counts) of NCOLS fields; every field after the first four a finite number, except the
# graph path (repack or plain) and, for int8_pc (no ggml type, no matmul asked), '-' in the
# fields listed in DASHES (1-based field numbers).
check_table() {
    name=$1 ncols=$2 dashes=$3
    if [ "$rc" -ne 0 ]; then
        bad "$name" "exit status $rc"
        return
    fi
    if ! grep -q '^shape .*DRAM .*ours .*%DRAM .*q ours .*mm ours' "$tmp/out"; then
        bad "$name" "header lacks DRAM / ours / %DRAM / q ours / mm ours"
        return
    fi
    why=$(awk -v n="$ncols" -v dashes="$dashes" '
        BEGIN { k = split(dashes, d, " "); for (i = 1; i <= k; i++) dash[d[i]] = 1 }
        /^#/ || /^shape/ { next }
        {
            rows++
            if (NF != n) { print "row " rows " has " NF " fields, expected " n; failed = 1; exit }
            for (i = 5; i <= NF; i++) {
                if ($i == "repack" || $i == "plain") continue
                if ($i == "-" && $2 == "int8_pc" && dash[i]) continue
                if ($i !~ /^[0-9]+(\.[0-9]+)?$/) {
                    print "row " rows " (" $2 ") field " i " is \"" $i "\""
                    failed = 1
                    exit
                }
            }
        }
        END { if (!failed && rows != 6) print rows " data rows, expected 6" }' "$tmp/out")
    if [ -n "$why" ]; then
        bad "$name" "$why"
    else
        ok "$name"
    fi
}

# 1. Ours alone: shape format thr ws DRAM ours %DRAM q-ours mm-ours = 9 fields.
# shellcheck disable=SC2086
bench $SMALL
check_table "ours alone: columns and finite numbers" 9 "9"

# 2. The same as JSON: parses, every row has positive DRAM and ours medians.
if command -v python3 >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    bench $SMALL --json
    if [ "$rc" -ne 0 ]; then
        bad "json" "exit status $rc"
    elif python3 - "$tmp/out" >"$tmp/why" 2>&1 <<'EOF'
import json, math, sys
d = json.load(open(sys.argv[1]))
assert len(d["results"]) == 6, len(d["results"])
for r in d["results"]:
    for k in ("dram_gbps", "ours_gbps", "quantize_ours_gbps"):
        v = r["median"][k]
        assert v is not None and math.isfinite(v) and v > 0, (r["format"], k, v)
    assert len(r["samples"]["ours_gbps"]) == 3, r["samples"]["ours_gbps"]
    assert r["ggml_graph_path"] is None
EOF
    then
        ok "json: six rows, positive medians, raw samples"
    else
        bad "json" "$(tail -n 1 "$tmp/why")"
    fi
else
    echo "SKIPPED json: no python3"
fi

# 3. A missing ggml folder with --vs-ggml: usage error naming the folder and the fetch.
bench --op kernels --vs-ggml --ggml-dir "$tmp/no-ggml-here" --shapes 256x1024
if [ "$rc" -eq 2 ] && grep -q "$tmp/no-ggml-here" "$tmp/err" &&
   grep -q 'fetch-ggml.sh' "$tmp/err" && grep -q 'make ggml' "$tmp/err"; then
    ok "missing ggml folder: exit 2, names it and how to fetch it"
else
    bad "missing ggml folder" "exit $rc, expected 2 and a message naming the folder"
fi

# 4. Beside ggml: 18 fields (ours' 9 plus vecdot, ours/vd, graph, path, ours/gr, q ggml, q x,
#    mm ggml, mm x); int8_pc has '-' in all of ggml's and in the matmul ones.
if [ -f "${QF_GGML_DIR:-/nonexistent}/libggml-base.so" ]; then
    # shellcheck disable=SC2086
    bench $SMALL --vs-ggml
    check_table "vs ggml: columns and finite numbers" 18 "8 9 10 11 12 14 15 16 17 18"
    if [ "$rc" -eq 0 ] && grep -q '^# ggml: .*libggml-cpu-' "$tmp/out" &&
       awk '$2 == "q4_0" && ($11 == "repack" || $11 == "plain") { n++ } END { exit n != 2 }' \
           "$tmp/out"; then
        ok "vs ggml: names the CPU variant and the graph path"
    else
        bad "vs ggml: variant and path" "no '# ggml:' line or no path for q4_0"
    fi
    # shellcheck disable=SC2086
    bench $SMALL --vs-ggml --json --threads 1
    if [ "$rc" -eq 0 ] && command -v python3 >/dev/null 2>&1 &&
       python3 - "$tmp/out" >"$tmp/why" 2>&1 <<'EOF'
import json, math, sys
d = json.load(open(sys.argv[1]))
for r in d["results"]:
    if r["format"] == "int8_pc":
        assert r["nmse_vs_ggml"] is None
        continue
    # same bytes, same activations: only the float summation order may differ
    assert r["nmse_vs_ggml"] is not None and r["nmse_vs_ggml"] < 1e-6, r
    for k in ("ggml_vec_dot_gbps", "ggml_graph_gbps", "quantize_ggml_gbps"):
        v = r["median"][k]
        assert v is not None and math.isfinite(v) and v > 0, (r["format"], k, v)
EOF
    then
        ok "vs ggml json: our matvec agrees with ggml's, ggml medians positive"
    else
        bad "vs ggml json" "$(tail -n 1 "$tmp/why" 2>/dev/null)"
    fi
elif [ "${QF_REQUIRE_GGML:-0}" = 1 ]; then
    fail=$((fail + 1))
    echo "FAIL ggml required (QF_REQUIRE_GGML=1) but '${QF_GGML_DIR:-}' has no libggml-base.so"
else
    echo "*** SKIPPED --vs-ggml checks: '${QF_GGML_DIR:-}' has no libggml-base.so (make ggml)"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
