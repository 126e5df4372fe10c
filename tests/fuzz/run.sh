#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each one for
# FUZZ_SECONDS (default 60) over its committed seed corpus. New inputs that
# raise coverage go to a scratch copy, not into the repo. Any crash, leak or
# sanitizer report fails the run; the reproducer is left in $OUT.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${FUZZ_BUILD:-$SRC/build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
OUT=${FUZZ_OUT:-$(mktemp -d /tmp/camjoin-fuzz.XXXXXX)}
CC=clang cmake -S "$SRC" -B "$BUILD" -DCAMJOIN_FUZZ=ON -DCAMJOIN_TESTS=OFF \
    -DCAMJOIN_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fuzz_event fuzz_refdata fuzz_config fuzz_replay fuzz_http >/dev/null
run_one() {  # TARGET: one fuzzer over a scratch copy of its corpus
    local t=$1 log="$OUT/$1.log"
    mkdir -p "$OUT/$t"
    cp -r "$SRC/tests/fuzz/corpus/$t/." "$OUT/$t/"
    "$BUILD/fuzz_$t" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$OUT/$t-" \
        "$OUT/$t" >"$log" 2>&1
}

# two at a time: one per core, each still gets its full time
fails=0
for pair in "event refdata" "config replay" "http"; do
    pids=()
    for t in $pair; do
        run_one "$t" &
        pids+=("$!:$t")
    done
    for pt in "${pids[@]}"; do
        t=${pt#*:}
        if wait "${pt%%:*}"; then
            runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$OUT/$t.log")
            echo "fuzz_$t: ${SECONDS_EACH}s, ${runs} executions, 0 crashes"
        else
            echo "fuzz_$t: FAILED (see $OUT/$t.log and $OUT/$t-*)"
            tail -30 "$OUT/$t.log"
            fails=$((fails + 1))
        fi
    done
done
echo "fuzz: $((5 - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
