#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# run-fuzzer.sh FUZZER SEED_DIR WORK_DIR [libFuzzer options...]
#
# One time-boxed libFuzzer run, as the 'fuzz' test suite does it: new inputs
# go to WORK_DIR/corpus (the seed directory in the source tree is only read),
# a crashing input to WORK_DIR/artifacts. Runs CGL_FUZZ_SECONDS (30) seconds;
# exits 0 when the fuzzer found nothing, 1 otherwise (never 77, which meson
# would count as a skip).
set -eu
[ $# -ge 3 ] || { echo "usage: $0 FUZZER SEED_DIR WORK_DIR [OPTIONS...]" >&2; exit 2; }
fuzzer=$1 seeds=$2 work=$3
shift 3
seconds=${CGL_FUZZ_SECONDS:-30}
mkdir -p "$work/corpus" "$work/artifacts"
rm -f "$work"/artifacts/*
# ASan: no leak left unreported, no UBSan report without a stack.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}${UBSAN_OPTIONS:+:}print_stacktrace=1:halt_on_error=1"
set +e
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$@" "$work/corpus" "$seeds"
rc=$?
set -e
echo "corpus: $(find "$seeds" -type f | wc -l) seeds, $(find "$work/corpus" -type f | wc -l) grown inputs"
if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
    echo "FUZZ FAILURE (exit $rc); inputs in $work/artifacts:" >&2
    ls -l "$work/artifacts" >&2
    exit 1
fi
exit 0
