#!/usr/bin/env bash
# The test command, from a fresh Debian 12 machine (as root, or with the
# packages of .ci/run installed): bash scripts/test.sh
#
#  1. installs the missing packages (scripts/deps.sh) and fetches the Apache
#     Kafka broker from Maven Central into ~/.cache/camjoin (once);
#  2. build/: Release with -Werror, every unit and integration test (ctest:
#     the integration tests share one real broker, a ctest fixture);
#  3. build-asan/: the same tests under ASan+UBSan (LeakSanitizer on);
#  4. build-debug/: the Debug build with -Werror (compiled, not run), so
#     every build type is warning-free;
#  5. t_rerun with the daemon under valgrind memcheck;
#  6. the fault suite (tests/faults) on real brokers, one and three nodes,
#     two scenarios at a time (FAULTS_JOBS);
#  7. the libFuzzer targets, FUZZ_SECONDS (60) each.
# Prints the minutes each stage took; exits non-zero if anything failed.
# CAMJOIN_KAFKA=mock runs everything that can against librdkafka's mock
# cluster instead (a quick offline run; the real-broker tests are skipped).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh
deps_install test

failed=0 t_all=$(date +%s) t_stage=$(date +%s) times=()
stage_done() {  # NAME: records how long the stage took
    local now
    now=$(date +%s)
    times+=("$(printf '%-34s %4d s' "$1" $((now - t_stage)))")
    t_stage=$now
}

echo "=== Apache Kafka: bash tests/kafka/kafka.sh fetch"
[[ ${CAMJOIN_KAFKA:-real} == mock ]] || bash tests/kafka/kafka.sh fetch
stage_done "packages and Kafka"

run_suite() {  # BUILD_DIR CMAKE_ARGS...: configure, build, ctest
    local dir=$1
    shift
    echo "=== $dir: configure and build ($*)"
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j2
    echo "=== $dir: ctest"
    ctest --test-dir "$dir" --output-on-failure -j2 || failed=1
}

run_suite build -DCMAKE_BUILD_TYPE=Release -DCAMJOIN_WERROR=ON
stage_done "build/ (Release -Werror) + ctest"

export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-asan -DCAMJOIN_SANITIZE=ON -DCAMJOIN_WERROR=ON
unset ASAN_OPTIONS UBSAN_OPTIONS
stage_done "build-asan/ (ASan+UBSan) + ctest"

echo "=== build-debug: configure and build (Debug -Werror)"
cmake -S . -B build-debug -DCMAKE_BUILD_TYPE=Debug -DCAMJOIN_WERROR=ON >/dev/null
cmake --build build-debug -j2 >/dev/null || { echo "=== build-debug failed" >&2; failed=1; }
stage_done "build-debug/ (Debug -Werror)"

# One integration run with the daemon under valgrind memcheck: any memory
# error or definite leak makes camjoin exit 97 and the test fail.
echo "=== valgrind: integration t_rerun with camjoin under memcheck"
CAMJOIN_BIN=$PWD/build CAMJOIN_SRC=$PWD \
CAMJOIN_WRAPPER="valgrind -q --error-exitcode=97 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite" \
    bash tests/integration/t_rerun.sh || failed=1
stage_done "valgrind t_rerun"

# Fault injection (tests/faults): crashes, restarts, outages, rebalances.
echo "=== faults: tests/faults/run.sh (FAULTS_SCALE=${FAULTS_SCALE:-ci})"
CAMJOIN_BIN=$PWD/build CAMJOIN_SRC=$PWD bash tests/faults/run.sh || failed=1
stage_done "faults"

# libFuzzer targets, FUZZ_SECONDS (60) each over the committed corpora.
echo "=== fuzz: tests/fuzz/run.sh (${FUZZ_SECONDS:-60} s per target)"
bash tests/fuzz/run.sh || failed=1
stage_done "fuzz"

echo "=== where the time went"
printf '  %s\n' "${times[@]}"
printf '  %-34s %4d s\n' total $(($(date +%s) - t_all))
if [[ $failed -ne 0 ]]; then
    echo "=== FAILED: see the output above" >&2
    exit 1
fi
echo "=== all tests passed (build/, build-asan/, build-debug/, valgrind, faults, fuzz)"
