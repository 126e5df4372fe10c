#!/usr/bin/env bash
# The test command: builds with -Werror into build/ and runs every test
# (unit + integration) with ctest; then builds with ASan+UBSan into
# build-asan/ and runs every test again under the sanitizers. Exits non-zero
# if any build or any test fails. Run from anywhere: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

failed=0
run_suite() {  # BUILD_DIR CMAKE_ARGS...: configure, build, ctest
    local dir=$1
    shift
    echo "=== $dir: configure and build ($*)"
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j2
    echo "=== $dir: ctest"
    ctest --test-dir "$dir" --output-on-failure -j2 || failed=1
}

run_suite build -DCAMJOIN_WERROR=ON

export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-asan -DCAMJOIN_SANITIZE=ON -DCAMJOIN_WERROR=ON
unset ASAN_OPTIONS UBSAN_OPTIONS

# One integration run with the daemon under valgrind memcheck: any memory
# error or definite leak makes camjoin exit 97 and the test fail.
echo "=== valgrind: integration t_rerun with camjoin under memcheck"
CAMJOIN_BIN=$PWD/build CAMJOIN_SRC=$PWD \
CAMJOIN_WRAPPER="valgrind -q --error-exitcode=97 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite" \
    bash tests/integration/t_rerun.sh || failed=1

# Fault injection (tests/faults): crashes, restarts, outages, rebalances.
if [[ -f tests/faults/run.sh ]]; then
    echo "=== faults: tests/faults/run.sh (FAULTS_SCALE=${FAULTS_SCALE:-ci})"
    CAMJOIN_BIN=$PWD/build CAMJOIN_SRC=$PWD bash tests/faults/run.sh || failed=1
fi

# libFuzzer targets, FUZZ_SECONDS (60) each over the committed corpora.
echo "=== fuzz: tests/fuzz/run.sh (${FUZZ_SECONDS:-60} s per target)"
bash tests/fuzz/run.sh || failed=1

if [[ $failed -ne 0 ]]; then
    echo "=== FAILED: see the ctest output above" >&2
    exit 1
fi
echo "=== all tests passed (build/, build-asan/, valgrind, faults, fuzz)"
