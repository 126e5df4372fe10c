# shellcheck shell=bash
# bench/lib.sh — what bench/run.sh and the peers' runners (bench/peers/*/run.sh)
# measure with, sourced after tests/integration/lib.sh (whose PG_DIR, CJ_TMP,
# CAMJOIN_PIDS and fail it uses):
#   bench_produce TOPIC COUNT MALFORMED_RATIO [GEN_ARGS...]
#       the benchmarks' one backlog workload, pre-produced: seed 7, 5 %
#       duplicates, 1 % unknown cameras (camjoin-gen; summary in
#       $CJ_TMP/produce.json)
#   log_field FILE MSG KEY    logfmt value of KEY in the last line with MSG
#   proc_cpu_s PID            user+system CPU seconds of PID so far
#   proc_rss_kb PID / proc_hwm_kib PID   resident set now / at its peak
#   pg_cpu_start / pg_cpu_stop
#       CPU seconds of the PostgreSQL cluster (every child of the postmaster,
#       backends included) in between. A sampler records each child's
#       utime+stime every 0.25 s (one awk per sample, ~1 % of a core), so a
#       backend that exits is counted up to its last sample: the figure is a
#       lower bound. The sampler is on CAMJOIN_PIDS until pg_cpu_stop, so the
#       harness's EXIT trap stops it on any failure.
#   peer_rollup_trigger
#       keeps camera_events_minute for a peer with a statement-level AFTER
#       INSERT trigger (camjoin_rollup() handles INSERT): the peers do the
#       rollup work camjoin does, as earlier camjoins did it. camjoin adds
#       its batches' groups itself, and drops this trigger when it starts.

bench_produce() {  # TOPIC COUNT MALFORMED_RATIO [GEN_ARGS...]
    gen produce --topic "$1" --count "$2" --seed 7 --dup-ratio 0.05 \
        --unknown-camera-ratio 0.01 --malformed-ratio "$3" -X linger.ms=20 "${@:4}"
}
log_field() {  # FILE MSG KEY
    grep -F "$2" "$1" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$3=//p" | tr -d '"'
}
proc_cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }
proc_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
proc_hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

pg_cpu_start() {
    local pm
    pm=$(head -n 1 "$PG_DIR/data/postmaster.pid")
    [[ -r "/proc/$pm/task/$pm/children" ]] || fail "/proc/PID/task/PID/children is missing"
    (
        while :; do
            # shellcheck disable=SC2046
            awk '{ print FILENAME, $14 + $15 }' $(sed -E 's|([0-9]+)|/proc/\1/stat|g' \
                "/proc/$pm/task/$pm/children") 2>/dev/null
            sleep 0.25
        done
    ) >"$CJ_TMP/pgcpu.txt" &
    PG_CPU_SAMPLER=$!
    CAMJOIN_PIDS+=("$PG_CPU_SAMPLER")
    sleep 0.5
}
pg_cpu_stop() {  # prints the CPU seconds since pg_cpu_start
    kill "$PG_CPU_SAMPLER" 2>/dev/null || true
    wait "$PG_CPU_SAMPLER" 2>/dev/null || true
    forget_pid "$PG_CPU_SAMPLER"
    awk -v hz="$(getconf CLK_TCK)" '{ if (!($1 in first)) first[$1] = $2; last[$1] = $2 }
         END { for (p in last) s += last[p] - first[p]; printf "%.2f\n", s / hz }' "$CJ_TMP/pgcpu.txt"
}

peer_rollup_trigger() {
    psql_val "CREATE TRIGGER camjoin_rollup_insert AFTER INSERT ON camera_events
              REFERENCING NEW TABLE AS camjoin_new
              FOR EACH STATEMENT EXECUTE FUNCTION camjoin_rollup()" >/dev/null
}
