#!/bin/sh
# test_cli.sh - the qfleet binary as a user meets it: real processes, real output, bad input.
#
# CTest runs it with the path of the built qfleet as $1. Each check runs the binary once and
# looks at its exit status, stdout and stderr. The bad-input checks hold the CLI to its
# contract: a usage error exits 2 (never 0, never a signal), says why on stderr, and nothing
# on stderr looks like a crash or a sanitizer report. JSON is validated with python3, else jq,
# else that check is skipped with a message. Ends with "N passed, N failed"; exits 1 on any
# failure. POSIX sh only: it also runs on the BSD and busybox shells of lab devices.

QF=${1:?usage: test_cli.sh PATH_TO_QFLEET}
if [ ! -x "$QF" ]; then
    echo "test_cli.sh: $QF is not an executable" >&2
    exit 1
fi

pass=0
fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qf_cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

ok() {
    pass=$((pass + 1))
    printf 'ok   %s\n' "$1"
}

bad() {
    fail=$((fail + 1))
    printf 'FAIL %s: %s\n' "$1" "$2"
    if [ -s "$tmp/err" ]; then
        sed 's/^/     stderr: /' "$tmp/err" | head -n 5
    fi
}

# qf ARGS...: runs qfleet, stdout in $tmp/out, stderr in $tmp/err, status in $rc.
qf() {
    "$QF" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

crash_text() {
    grep -Eq 'Segmentation|Aborted|core dumped|Sanitizer|runtime error|LeakSanitizer' "$tmp/err"
}

# expect_ok NAME ARGS...: exit 0, no crash text.
expect_ok() {
    name=$1
    shift
    qf "$@"
    if [ "$rc" -ne 0 ]; then
        bad "$name" "exit status $rc, expected 0"
    elif crash_text; then
        bad "$name" "crash or sanitizer text on stderr"
    else
        ok "$name"
    fi
}

# expect_usage NAME ARGS...: exit 2 (a usage error, below 128 so not a signal), at least one
# line on stderr, no crash text.
expect_usage() {
    name=$1
    shift
    qf "$@"
    if [ "$rc" -eq 0 ]; then
        bad "$name" "exit status 0, expected a usage error"
    elif [ "$rc" -ge 128 ]; then
        bad "$name" "exit status $rc: killed by a signal"
    elif crash_text; then
        bad "$name" "crash or sanitizer text on stderr"
    elif [ "$(wc -l <"$tmp/err")" -lt 1 ]; then
        bad "$name" "exit status $rc but nothing on stderr"
    elif [ "$rc" -ne 2 ]; then
        bad "$name" "exit status $rc, expected 2 (usage error)"
    else
        ok "$name"
    fi
}

# check NAME WHY CMD...: passes when CMD succeeds; otherwise fails, saying WHY.
check() {
    name=$1
    why=$2
    shift 2
    if "$@"; then ok "$name"; else bad "$name" "$why"; fi
}

# stdout_has NAME REGEX: the last command's stdout matches the extended regex.
stdout_has() {
    if grep -Eq "$2" "$tmp/out"; then
        ok "$1"
    else
        bad "$1" "stdout does not match /$2/"
    fi
}

if command -v python3 >/dev/null 2>&1; then
    json_tool=python3
elif command -v jq >/dev/null 2>&1; then
    json_tool=jq
else
    json_tool=
    echo "skip JSON checks: neither python3 nor jq is installed"
fi

# json_valid NAME FILE
json_valid() {
    case $json_tool in
    python3) python3 -m json.tool "$2" >/dev/null 2>&1 ;;
    jq) jq . "$2" >/dev/null 2>&1 ;;
    *) return 0 ;;
    esac
    if [ $? -eq 0 ]; then ok "$1"; else bad "$1" "not valid JSON"; fi
}

# json_expr NAME FILE PYTHON_EXPR JQ_EXPR: the document (d in Python, . in jq) satisfies the
# expression; Python gets has(obj, key...) for "obj has all these keys".
json_expr() {
    case $json_tool in
    python3)
        python3 -c "import json, sys
def has(o, *keys): return all(k in o for k in keys)
d = json.load(open(sys.argv[1]))
sys.exit(0 if ($3) else 1)" "$2" 2>"$tmp/err"
        ;;
    jq) jq -e "$4" "$2" >/dev/null 2>"$tmp/err" ;;
    *) return 0 ;;
    esac
    if [ $? -eq 0 ]; then ok "$1"; else bad "$1" "JSON does not satisfy: $3"; fi
}

# ---- top level ---------------------------------------------------------------------------

expect_ok "--help" --help
stdout_has "--help lists formats" '^  formats '
stdout_has "--help lists bench" '^  bench '
stdout_has "--help lists the fleet commands" '^  coordinator '
stdout_has "--help lists report" '^  report '
expect_ok "-h" -h
expect_ok "help" help
expect_ok "help bench" help bench
stdout_has "help bench prints bench usage" '^usage: qfleet bench'
expect_ok "--version" --version
stdout_has "--version names the version" '^qfleet [0-9]+\.[0-9]+\.[0-9]+'
stdout_has "--version names the commit" '^commit: +[0-9a-z]+(-dirty)?$'
stdout_has "--version names the compiler" '^compiler: '
expect_usage "no command"
expect_usage "unknown subcommand" frobnicate
check "unknown subcommand points to --help" "stderr lacks 'qfleet --help'" \
    grep -q "qfleet --help" "$tmp/err"
expect_usage "unknown top-level option" --frobnicate
for cmd in report compare; do   # each needs its options: a usage error, not a crash
    expect_usage "$cmd without its required options" "$cmd"
    expect_ok "$cmd --help" "$cmd" --help
    stdout_has "$cmd --help prints its usage" "^usage: qfleet $cmd"
done
# ---- the fleet commands: help, and bad input refused before anything starts ---------------

for cmd in run coordinator agent submit status cancel quantize dataset keygen; do
    expect_ok "$cmd --help" "$cmd" --help
    stdout_has "$cmd --help prints its usage" "^usage: qfleet $cmd"
done
expect_usage "run without a suite" run
expect_usage "run with a missing suite" run "$tmp/no-such-suite.yaml"
check "a missing suite is named" "stderr lacks the path" grep -q "no-such-suite.yaml" "$tmp/err"
printf 'name: bad\nformats: [q4_K]\nops: [matvec]\nshapes: [[4, 100]]\ndatasets: [synth:gaussian]\n' \
    >"$tmp/bad.yaml"
expect_usage "run with a suite whose shape does not fit" run "$tmp/bad.yaml"
check "the suite error names file, line and column" "stderr: $(cat "$tmp/err")" \
    grep -q "bad.yaml:[0-9][0-9]*:[0-9][0-9]*:" "$tmp/err"
printf 'name: [unclosed\n' >"$tmp/syntax.yaml"
expect_usage "run with a YAML syntax error" run "$tmp/syntax.yaml"
expect_usage "run --slots 0" run "$tmp/bad.yaml" --slots 0
expect_usage "submit without --to" submit "$tmp/bad.yaml"
expect_usage "status without --to" status
expect_usage "status --run abc" status --to tcp://127.0.0.1:1 --run abc --insecure
expect_usage "cancel without --run" cancel --to tcp://127.0.0.1:1 --insecure
expect_usage "coordinator --heartbeat-ms abc" coordinator --heartbeat-ms abc
expect_usage "coordinator --max-frame 1" coordinator --max-frame 1
expect_usage "coordinator with an extra argument" coordinator extra
expect_usage "agent without --connect" agent
expect_usage "agent with a bad endpoint" agent --connect nonsense
expect_usage "agent --slots 0" agent --connect tcp://127.0.0.1:1 --slots 0
expect_usage "bench --op fleet --agents 0" bench --op fleet --agents 0
expect_ok "bench --op fleet (small)" bench --op fleet --agents 3 --jobs 60 --json
json_valid "bench --op fleet --json is valid JSON" "$tmp/out"
qf coordinator --bind bogus://nowhere --db "$tmp/c.db" --insecure
check "coordinator with an unusable endpoint fails cleanly" "exit status $rc, expected 1" \
    [ "$rc" -eq 1 ]
qf status --to tcp://127.0.0.1:1 --insecure
check "status with nobody listening times out cleanly" "exit status $rc, expected 1" \
    [ "$rc" -eq 1 ]

# ---- security: plain TCP only on request; keygen ------------------------------------------

expect_usage "coordinator on tcp:// without keys or --insecure" coordinator \
    --bind tcp://127.0.0.1:0 --db "$tmp/c.db"
check "the refusal says how to fix it" "stderr lacks --insecure / --curve-secret" \
    grep -q -- "--insecure" "$tmp/err"
expect_usage "agent on tcp:// without keys or --insecure" agent \
    --connect tcp://127.0.0.1:1 --spool "$tmp/spool"
expect_usage "submit on tcp:// without keys or --insecure" submit "$tmp/bad.yaml" \
    --to tcp://127.0.0.1:1
expect_usage "status on tcp:// without keys or --insecure" status --to tcp://127.0.0.1:1
expect_usage "cancel on tcp:// without keys or --insecure" cancel --to tcp://127.0.0.1:1 --run 1
expect_usage "status with --insecure and keys" status --to tcp://127.0.0.1:1 --insecure \
    --curve-secret "$tmp/nope.secret" --server-key "$tmp/nope.pub"
expect_usage "keygen without BASE" keygen
expect_usage "keygen with two BASEs" keygen "$tmp/a" "$tmp/b"
mkdir "$tmp/keys"
expect_ok "keygen" keygen "$tmp/keys/lab"
fp=$(sed -n 's/^fingerprint //p' "$tmp/out")
check "keygen prints the fingerprint" "no 'fingerprint sha256:...' line" \
    grep -q '^fingerprint sha256:[0-9a-f]\{16\}$' "$tmp/out"
mode=$(ls -l "$tmp/keys/lab.secret" | cut -c1-10)
check "the secret file is mode 0600" "mode $mode" [ "$mode" = "-rw-------" ]
secret=$(sed -n 's/^secret-key = "\(.*\)"$/\1/p' "$tmp/keys/lab.secret")
lacks() { ! grep -qF "$1" "$2"; }
check "the .pub file holds no secret" "secret key found in lab.pub" \
    lacks "${secret:-no secret-key line in lab.secret}" "$tmp/keys/lab.pub"
expect_ok "keygen --fingerprint" keygen --fingerprint "$tmp/keys/lab.pub"
check "--fingerprint matches keygen's" "got $(cat "$tmp/out"), expected $fp" \
    grep -qF "$fp" "$tmp/out"
qf keygen "$tmp/keys/lab"
check "keygen keeps an existing pair" "exit status $rc, expected 1" [ "$rc" -eq 1 ]
expect_ok "keygen --force replaces it" keygen "$tmp/keys/lab" --force
check "the replaced key is a new one" "same fingerprint" lacks "$fp" "$tmp/out"
check "keygen leaves no temp file" "$(ls "$tmp/keys")" [ "$(ls "$tmp/keys" | wc -l)" -eq 2 ]
chmod 644 "$tmp/keys/lab.secret"
qf agent --connect tcp://127.0.0.1:1 --spool "$tmp/spool" --curve-secret "$tmp/keys/lab.secret" \
    --server-key "$tmp/keys/lab.pub"
check "a world-readable secret key is refused" "exit status $rc, expected 1 or 2" \
    [ "$rc" -eq 1 -o "$rc" -eq 2 ]
check "the refusal names the mode" "stderr: $(cat "$tmp/err")" grep -q "chmod 600" "$tmp/err"
chmod 600 "$tmp/keys/lab.secret"
expect_usage "coordinator --curve-secret without --allow" coordinator \
    --bind tcp://127.0.0.1:0 --db "$tmp/c.db" --curve-secret "$tmp/keys/lab.secret"
expect_usage "coordinator --max-result over --max-frame" coordinator --insecure \
    --max-frame 1M --max-result 2M
expect_usage "coordinator --max-agents 0" coordinator --insecure --max-agents 0
expect_usage "coordinator --max-run-jobs 200000" coordinator --insecure --max-run-jobs 200000
expect_usage "coordinator --error-budget x" coordinator --insecure --error-budget x
expect_usage "coordinator --max-db-size 10" coordinator --insecure --max-db-size 10

if [ -w /dev/full ]; then
    "$QF" formats >/dev/full 2>"$tmp/err"
    rc=$?
    check "a write error is reported" "exit status $rc, expected 1" [ "$rc" -eq 1 ]
fi

# ---- formats ------------------------------------------------------------------------------

expect_ok "formats --help" formats --help
stdout_has "formats --help prints usage" '^usage: qfleet formats'
expect_ok "formats" formats
cp "$tmp/out" "$tmp/formats.txt"
n=$(awk 'NR > 1 && NF > 0' "$tmp/formats.txt" | wc -l)
check "formats lists >= 16 formats" "$n listed" [ "$n" -ge 16 ]
# Column 6 is bpw for block formats (per-row formats print "8 + 32/K", three words).
for pair in q4_0=4.5 q4_1=5.0 q5_0=5.5 q8_0=8.5 q2_K=2.625 q3_K=3.4375 q4_K=4.5 q5_K=5.5 \
            q6_K=6.5625; do
    fmt=${pair%=*}
    want=${pair#*=}
    got=$(awk -v f="$fmt" '$1 == f { print $6 }' "$tmp/formats.txt")
    check "formats: $fmt is $want bpw" "got '$got'" [ "$got" = "$want" ]
done
check "formats marks activation-only formats" "no act-only row" \
    grep -q 'act-only' "$tmp/formats.txt"
check "formats: int8_pc bpw reads 8 + 32/K" "not in the int8_pc row" \
    grep -Eq '^int8_pc .*8 \+ 32/K' "$tmp/formats.txt"

expect_ok "formats --json" formats --json
cp "$tmp/out" "$tmp/formats.json"
json_valid "formats --json is valid JSON" "$tmp/formats.json"
json_expr "formats --json: >= 16 formats with every field" "$tmp/formats.json" \
    'len(d) >= 16 and all(has(f, "name", "weight", "family", "block_size", "bytes_per_block",
                                  "bpw", "activation", "kernels", "summary") for f in d)' \
    'length >= 16 and all(.[]; (["name", "weight", "family", "block_size", "bytes_per_block",
                                 "bpw", "activation", "kernels", "summary"] - keys) == [])'
json_expr "formats --json: q3_K is 3.4375 bpw, q4_K 4.5" "$tmp/formats.json" \
    '[f["bpw"] for f in d if f["name"] in ("q3_K", "q4_K")] == [3.4375, 4.5]' \
    '[.[] | select(.name == "q3_K" or .name == "q4_K") | .bpw] == [3.4375, 4.5]'
expect_usage "formats --bogus" formats --bogus
expect_usage "formats with an extra argument" formats extra

# ---- bench --------------------------------------------------------------------------------

expect_ok "bench --help" bench --help
stdout_has "bench --help prints usage" '^usage: qfleet bench'

expect_ok "bench q4_K quantize --json" \
    bench --format q4_K --op quantize --rows 64 --cols 512 --reps 3 --json
cp "$tmp/out" "$tmp/bench.json"
json_valid "bench --json is valid JSON" "$tmp/bench.json"
json_expr "bench --json: the identity" "$tmp/bench.json" \
    'has(d, "version", "commit", "dirty", "compiler", "host", "op", "rows", "cols", "threads",
            "reps", "warmup", "dist", "seed") and d["rows"] == 64 and d["cols"] == 512' \
    '(["version", "commit", "dirty", "compiler", "host", "op", "rows", "cols", "threads",
      "reps", "warmup", "dist", "seed"] - keys) == [] and .rows == 64 and .cols == 512'
# 64 rows of 512 weights in q4_K: 2 blocks of 144 bytes per row.
json_expr "bench --json: one q4_K result of 18432 bytes at 4.5 bpw" "$tmp/bench.json" \
    'len(d["results"]) == 1 and d["results"][0]["format"] == "q4_K" and
     d["results"][0]["op"] == "quantize" and d["results"][0]["bytes"] == 18432 and
     d["results"][0]["bpw"] == 4.5' \
    '(.results | length) == 1 and .results[0].format == "q4_K" and
     .results[0].op == "quantize" and .results[0].bytes == 18432 and .results[0].bpw == 4.5'
json_expr "bench --json: 3 raw samples and their summary" "$tmp/bench.json" \
    'len(d["results"][0]["samples_s"]) == 3 and all(x > 0 for x in d["results"][0]["samples_s"])
     and d["results"][0]["gbps"]["n"] == 3
     and has(d["results"][0]["gbps"], "median", "p10", "p90", "min", "max", "mean")' \
    '(.results[0].samples_s | length) == 3 and all(.results[0].samples_s[]; . > 0)
     and .results[0].gbps.n == 3
     and (["median", "p10", "p90", "min", "max", "mean"] - (.results[0].gbps | keys)) == []'
json_expr "bench --json: the tensor metrics" "$tmp/bench.json" \
    'has(d["results"][0]["metrics"], "rmse", "nmse", "snr_db", "max_abs", "cosine")' \
    '(["rmse", "nmse", "snr_db", "max_abs", "cosine"] - (.results[0].metrics | keys)) == []'

expect_ok "bench f32 --json" bench --format f32 --op dequantize --rows 4 --cols 64 --reps 2 --json
cp "$tmp/out" "$tmp/f32.json"
json_valid "bench f32 --json is valid JSON" "$tmp/f32.json"
json_expr "bench f32 --json: SNR of an exact round trip is null" "$tmp/f32.json" \
    'd["results"][0]["metrics"]["snr_db"] is None
     and d["results"][0]["metrics"]["cosine"] > 0.999999' \
    '.results[0].metrics.snr_db == null and .results[0].metrics.cosine > 0.999999'

expect_ok "bench table" bench --format q4_0 --op dequantize --rows 8 --cols 64 --reps 2 --warmup 0
stdout_has "bench prints a q4_0 row" '^q4_0 +dequantize +8x64 '
expect_ok "bench with uneven thread shares" \
    bench --format q8_0 --op matvec --rows 7 --cols 64 --threads 3 --reps 2
expect_ok "bench --format all" bench --format all --op matvec --rows 4 --cols 256 --reps 1
n=$(grep -Ec ' matvec +4x256 ' "$tmp/out")
check "bench --format all runs >= 16 formats" "$n result rows" [ "$n" -ge 16 ]
expect_ok "bench quantize of an activation format" \
    bench --format q8_K --op quantize --rows 2 --cols 256 --reps 1

expect_usage "bench unknown option" bench --bogus
expect_usage "bench --format nope" bench --format nope
expect_usage "bench --op nope" bench --op nope
expect_usage "bench --rows 0" bench --rows 0
expect_usage "bench --rows -5" bench --rows -5
expect_usage "bench --rows abc" bench --rows abc
expect_usage "bench --rows 12abc" bench --rows 12abc
expect_usage "bench --rows ''" bench --rows ''
expect_usage "bench --rows 99999999999999999999" bench --rows 99999999999999999999
expect_usage "bench --cols 100 with q4_K" bench --format q4_K --cols 100
expect_usage "bench --threads 0" bench --threads 0
expect_usage "bench --reps 0" bench --reps 0
expect_usage "bench --warmup -1" bench --warmup -1
expect_usage "bench missing option argument" bench --rows
expect_usage "bench --json=1" bench --json=1
expect_usage "bench --dist nope" bench --dist nope
expect_usage "bench matvec of an activation-only format" bench --format q8_1 --op matvec
expect_usage "bench shape over --max-mem" bench --format q4_0 --rows 1024 --cols 1024 --max-mem 1M
expect_usage "bench --max-mem junk" bench --max-mem 8X
expect_usage "bench extra argument" bench extra

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
