#!/usr/bin/env bash
# render_report.sh - index.html as a browser sees it: headless Chromium (Debian's chromium).
#
# usage: render_report.sh QFLEET_BINARY
#
# Makes a real store (two `qfleet run`s of a tiny suite as two commits, so the history charts
# are drawn too), writes the report, and opens index.html from disk in headless Chromium:
#   1. --dump-dom: the rendered DOM must hold the chapter's table and at least one SVG chart;
#   2. Chromium's log (--enable-logging=stderr) must hold no console message: the page has no
#      script, so any CONSOLE line is an error (a blocked load, a CSP violation, bad markup);
#   3. --screenshot: a PNG of the page, kept as report-screenshot.png in the current folder
#      (the CTest build folder) for people and CI artifacts.
# The console check is proved able to fail first: a control page with a load its CSP blocks
# must produce a CONSOLE line, or the test fails (a Chromium that logs nothing checks nothing).
#
# Chromium runs with a fresh --user-data-dir and without sandbox, GPU, first-run, background
# networking, QUIC, component updates or sync: nothing leaves the machine.
# Exit 77 (CTest: skipped) when chromium is not installed, unless QF_REQUIRE_CHROMIUM=1 (CI),
# where its absence is a failure.
set -euo pipefail

qfleet=${1:?usage: render_report.sh QFLEET_BINARY}
browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $browser ]]; then
    if [[ ${QF_REQUIRE_CHROMIUM:-} == 1 ]]; then
        echo "render_report: FAIL: chromium is not installed and QF_REQUIRE_CHROMIUM=1" >&2
        exit 1
    fi
    echo "SKIP render_report: chromium is not installed (apt-get install chromium)"
    exit 77
fi

dir=$(mktemp -d /tmp/qf-test-render-XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail() { echo "render_report: FAIL: $*" >&2; exit 1; }

# headless Chromium on one page: chrome ACTION_FLAG URL (stdout: what the action prints,
# Chromium's log in $dir/chrome.log). A timeout: a hung browser must not hang the test.
chrome() {
    rm -rf "$dir/profile"
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --disable-quic --disable-component-update \
        --disable-sync --user-data-dir="$dir/profile" --enable-logging=stderr --v=0 \
        --window-size=1280,2000 "$@" 2>"$dir/chrome.log"
}

cat >"$dir/tiny.yaml" <<'EOF'
name: render
baseline: f16
repetitions: 5
warmup: 1
timeout: 60s
datasets: [synth:student-t]
formats: [f16, q8_0, q4_0, q4_K]
ops: [quantize, matvec]
shapes: [64x1024]
EOF
for commit in aaaa0001 bbbb0002 cccc0003; do
    "$qfleet" run "$dir/tiny.yaml" --db "$dir/runs.db" --commit "$commit" >/dev/null 2>&1 ||
        fail "qfleet run --commit $commit failed"
done
"$qfleet" report --db "$dir/runs.db" --out "$dir/out" 2>"$dir/report.log" ||
    fail "qfleet report failed: $(cat "$dir/report.log")"
page="file://$dir/out/index.html"

# the control: a page whose CSP blocks an image must log a console message
cat >"$dir/control.html" <<'EOF'
<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy"
content="default-src 'none'"></head><body><img src="blocked.png" alt=""></body></html>
EOF
chrome --dump-dom "file://$dir/control.html" >/dev/null || fail "chromium failed on the control page"
grep -q 'CONSOLE' "$dir/chrome.log" ||
    fail "the control page logged no console message: the console check would see nothing"

chrome --dump-dom "$page" >"$dir/dom.html" || fail "chromium --dump-dom failed: $(tail -5 "$dir/chrome.log")"
if grep 'CONSOLE' "$dir/chrome.log"; then
    fail "index.html logged console messages (above)"
fi
grep -q '<table class="chapter">' "$dir/dom.html" || fail "no chapter table in the rendered DOM"
charts=$(grep -o '<svg class="chart"' "$dir/dom.html" | wc -l)
(( charts >= 1 )) || fail "no SVG chart in the rendered DOM"
grep -q 'History across commits' "$dir/dom.html" || fail "no history section for 3 commits"

chrome --screenshot="$dir/shot.png" "$page" >/dev/null || fail "chromium --screenshot failed"
[[ $(head -c 8 "$dir/shot.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] ||
    fail "the screenshot is not a PNG"
size=$(stat -c %s "$dir/shot.png")
(( size > 20000 )) || fail "the screenshot is only $size bytes: a blank page?"
cp "$dir/shot.png" report-screenshot.png
echo "render_report: ok: $charts SVG charts, no console messages, screenshot $size bytes" \
     "-> $(pwd)/report-screenshot.png"
