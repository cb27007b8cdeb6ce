#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The whole test suite, as CI runs it: install what is needed, build with
# warnings as errors (plain and with address+undefined sanitizers), run the
# unit and mount tests of both builds, and end with "N passed, N failed".
# Run as root from a clone: sudo ./scripts/test.sh
set -u
cd "$(dirname "$0")/.."
top=$(pwd)

./scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

status=0
builds=""
run_build() {
    label=$1; dir=$2; shift 2
    results="$top/$dir-results"
    builds="$builds $label:$top/$dir:$results"
    rm -f "$dir/meson-logs/testlog.json"
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" --wrap-mode=nofallback -Dwerror=true "$@" >"$dir.setup.log" 2>&1 ||
            { cat "$dir.setup.log"; echo "$label: meson setup failed" >&2; return 1; }
    fi
    ninja -C "$dir" >"$dir.build.log" 2>&1 ||
        { tail -50 "$dir.build.log"; echo "$label: build failed" >&2; return 1; }
    rm -rf "$results"; mkdir -p "$results"
    CGL_RESULTS_DIR="$results" meson test -C "$dir" --print-errorlogs \
        --timeout-multiplier "${CGL_TIMEOUT_MULTIPLIER:-1}" >"$dir.test.log" 2>&1 || status=1
    tail -15 "$dir.test.log"
}

run_build plain build-ci || status=1
# Sanitizers slow the mount tests down; give them more time.
CGL_TIMEOUT_MULTIPLIER=2 run_build asan build-asan -Db_sanitize=address,undefined -Db_lundef=false || status=1

# shellcheck disable=SC2086
python3 scripts/summarize.py $builds || status=1
exit $status
