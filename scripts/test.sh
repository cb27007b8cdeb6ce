#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The whole test suite, as CI runs it: install what is needed, build with
# warnings as errors and run the tests of each build, and end with
# "N passed, N failed":
#   plain  build-ci     gcc, optimized as shipped but without debug
#                       information (it took a third of the build time;
#                       assertions stay on): every unit, style and mount test
#   asan   build-asan   clang with address+undefined sanitizers; clang's
#                       -Wthread-safety also checks the lock annotations:
#                       every unit and mount test (not the style tests: they
#                       read the sources, not the build)
#   tsan   build-tsan   thread sanitizer: the dispatcher, request and payload
#                       pool unit tests and the control mount test (only what
#                       they need is built)
#   fuzz   build-fuzz   clang + libFuzzer: each harness of tests/fuzz for
#                       CGL_FUZZ_SECONDS (30), as many at once as there are
#                       CPUs; a finding fails it
#   package             scripts/package.sh: the .deb built, lintian clean,
#                       installed, mounted through mount(8), removed
# Run as root from a clone: sudo ./scripts/test.sh
set -u
cd "$(dirname "$0")/.." || exit 1
top=$(pwd)

./scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

status=0
builds=""
# run_build LABEL DIR [KEY=VALUE...] [MESON_SETUP_ARGS...]
#   CXX=      the compiler of a new build directory
#   TARGETS=  what ninja builds (default: everything)
#   TESTS=    what meson test runs: names, --suite X (default: every test)
#   UNDER=    a command meson test runs under, and so the tests (not meson
#             test's --wrapper, which would rename the log summarize.py reads)
#   TIMEOUT=  meson test --timeout-multiplier (1)
run_build() {
    label=$1; dir=$2; shift 2
    cxx="" targets="" tests="" under="" multiplier=1
    while [ $# -gt 0 ]; do
        case $1 in
        CXX=*) cxx=${1#CXX=} ;;
        TARGETS=*) targets=${1#TARGETS=} ;;
        TESTS=*) tests=${1#TESTS=} ;;
        UNDER=*) under=${1#UNDER=} ;;
        TIMEOUT=*) multiplier=${1#TIMEOUT=} ;;
        *) break ;;
        esac
        shift
    done
    results="$top/$dir-results"
    builds="$builds $label:$top/$dir:$results"
    rm -f "$dir/meson-logs/testlog.json"
    start=$(date +%s)
    if [ ! -f "$dir/build.ninja" ]; then
        (if [ -n "$cxx" ]; then CXX=$cxx; export CXX; fi
         meson setup "$dir" --wrap-mode=nofallback -Dwerror=true "$@") >"$dir.setup.log" 2>&1 ||
            { cat "$dir.setup.log"; echo "$label: meson setup failed" >&2; return 1; }
    fi
    # shellcheck disable=SC2086
    ninja -C "$dir" $targets >"$dir.build.log" 2>&1 ||
        { tail -50 "$dir.build.log"; echo "$label: build failed" >&2; return 1; }
    built=$(date +%s)
    rm -rf "$results"; mkdir -p "$results"
    # shellcheck disable=SC2086
    CGL_RESULTS_DIR="$results" $under meson test -C "$dir" --no-rebuild --print-errorlogs \
        --timeout-multiplier "$multiplier" $tests >"$dir.test.log" 2>&1 || status=1
    tail -15 "$dir.test.log"
    echo "$label: built in $((built - start)) s, tested in $(($(date +%s) - built)) s" >&2
}

run_build plain build-ci -Ddebug=false -Db_ndebug=false || status=1
# clang, whose -Wthread-safety (with -Werror) checks the lock annotations, and
# the sanitizers in one build: clang builds it in half the time gcc took, and
# a build of its own for those warnings is not needed. Sanitizers slow the
# mount tests down; give them more time. -O1 (what the sanitizers'
# documentation advises) and line tables only (-g1, enough for their
# reports).
run_build asan build-asan CXX=clang++ TIMEOUT=2 TESTS="--suite unit --suite mount" \
    -Doptimization=1 -Dcpp_args=-g1 -Db_sanitize=address,undefined -Db_lundef=false || status=1

# ThreadSanitizer, run without address randomization (setarch -R, for the test
# and the daemons it starts): gcc 12's libtsan dies with "unexpected memory
# mapping" when the kernel randomizes mmap with more bits than it expects
# (vm.mmap_rnd_bits above 28, as some kernels and distributions set now).
# Nothing on the system changes. Where personality() is not allowed (some
# containers), the tests run as they are.
tsan_under=""
if setarch -R true 2>/dev/null; then
    tsan_under="setarch -R"
else
    echo "tsan: setarch -R not permitted here; running with address randomization" >&2
fi
run_build tsan build-tsan TIMEOUT=2 UNDER="$tsan_under" \
    TARGETS="src/cgloopfs src/cgloopctl tests/tools/gatefs tests/unit/test_dispatcher tests/unit/test_request tests/unit/test_payload_pool" \
    TESTS="test_dispatcher test_request test_payload_pool mount/test_control" \
    -Doptimization=1 -Dcpp_args=-g1 -Db_sanitize=thread -Dman-pages=disabled || status=1

run_build fuzz build-fuzz CXX=clang++ \
    TARGETS="tests/fuzz/fuzz_manifest tests/fuzz/fuzz_mount_options tests/fuzz/fuzz_control_request tests/fuzz/fuzz_control_framing" \
    TESTS="--suite fuzz" \
    -Dfuzz=true -Dtests=false -Dman-pages=disabled || status=1

# The Debian package (scripts/package.sh): built from a copy of the tree,
# lintian, installed, a sample mounted through mount(8), removed and purged.
rm -rf build-package-results
CGL_RESULTS_DIR="$top/build-package-results" ./scripts/package.sh >build-package.log 2>&1 || status=1
tail -3 build-package.log
builds="$builds package::$top/build-package-results"

# shellcheck disable=SC2086
python3 scripts/summarize.py $builds || status=1
exit $status
