#!/usr/bin/env bash
# f_kill9 — exactly-once through repeated `kill -9` (docs/ARCHITECTURE.md §3 Semantics).
#
# camjoin-gen produces events with known ids (--manifest) while camjoin runs;
# camjoin is killed with SIGKILL at random moments (a seeded RNG decides each
# moment, so a run can be repeated: the seed is printed) and restarted each
# time, for as long as the generator produces (at least CYCLES kills, all
# mid-stream; the run that sees the stream end is not killed and finishes
# the topic). Most kills land a random 0-2.5 s after the run's first commit (in the
# middle of COPY, INSERT, COMMIT or the wait for the next batch); about one
# in four lands 0.3-4 s after the start, before any commit (group join,
# assignment, dedup warm-up). Afterwards the table must be exactly the
# manifest: no valid id lost, no duplicate row, each malformed message once
# in camjoin_dead_letters, camjoin_offsets = every partition's end offset
# (assert_final_state, lib.sh).
#
# Recovery time of a cycle = restart → first commit past the offsets the
# killed run left (sum(next_offset) in camjoin_offsets, polled every 50 ms).
# A killed member stays in the group until its session times out (6 s,
# lib.sh camjoin_args), so recovery includes that rebalance wait.
#
# Sizes: default 6 cycles / 40k events / 4 partitions; FAULTS_SCALE=full:
# 20 cycles / 200k events / 10 partitions (each partition also stays under
# the mock's ~30k-event retention, for CAMJOIN_KAFKA=mock runs, so every row
# can be checked against its message). F_KILL9_CYCLES, F_KILL9_EVENTS, F_KILL9_PARTS and F_KILL9_SEED
# (a number, or "random") override them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
need_bin camjoin camjoin-gen

fault_param CYCLES F_KILL9_CYCLES 6 20
fault_param EVENTS F_KILL9_EVENTS 40000 200000
fault_param PARTS F_KILL9_PARTS 4 10
fault_seed F_KILL9_SEED 4242
echo "f_kill9: seed $SEED (rerun with F_KILL9_SEED=$SEED), $CYCLES cycles, $EVENTS events, $PARTS partitions"

TOPIC=kill9-events GROUP=kill9-ft
# Kills go on for as long as the generator produces, and there must be at
# least CYCLES of them. One cycle takes ~10-16 s (rebalance wait + up to
# 2.5 s; early kills ~1-4 s), so the generator runs 12 s per cycle (+10 s).
DURATION=$((CYCLES * 12 + 10))
RATE=$(((EVENTS + DURATION - 1) / DURATION))
DURATION=$(((EVENTS + RATE - 1) / RATE))
EVENTS=$((RATE * DURATION))

fault_setup
# Seeds bash's RNG (after the setup, whose free_port also draws from it): the
# same seed gives the same kill schedule.
RANDOM=$SEED

# ts_epoch LOG MSG: epoch seconds of the first `msg="MSG"` line of LOG
ts_epoch() {
    local ts
    ts=$(grep -m1 "msg=\"$2\"" "$1" | sed -nE 's/^ts=([^ ]+) .*/\1/p')
    [[ -n "$ts" ]] && date -d "$ts" +%s.%N || echo ""
}

camjoin_start run1 "${CJ_ARGS[@]}"
wait_progress "$TOPIC" "$GROUP" 0 30 "$CAMJOIN_PID"   # schema created
# linger.ms=100 keeps the data set identical to the mock runs (there, with
# the default 5 ms linger, 1-event record batches were served at only ~600
# events/s and filled the mock's 5 MiB retention sooner). 100 ms gives ~8
# events a batch at full size.
gen_start kill9 --topic "$TOPIC" --rate "$RATE" --duration "$DURATION" --seed 9009 \
    --dup-ratio 0.10 --unknown-camera-ratio 0.02 --malformed-ratio 0.01 \
    -X linger.ms=100 --manifest "$CJ_TMP/kill9.manifest.csv"

recoveries=() rebalances=()
kills=0 early=0 c=1
while :; do
    before=$(_offsets_sum "$TOPIC" "$GROUP")
    if ((c > 1)); then
        t0=$(now_s)
        camjoin_start "run$c" "${CJ_ARGS[@]}"
    fi
    if ((c > 1 && RANDOM % 4 == 0)); then
        # early kill: before the run's first commit
        delay_ms=$((300 + RANDOM % 3700))
        sleep "$(awk -v m="$delay_ms" 'BEGIN { printf "%.3f", m / 1000 }')"
        kind="early (${delay_ms} ms after start)"
    else
        wait_new_commit "$TOPIC" "$GROUP" "$before" "${t0:-$(now_s)}" 90 "$CAMJOIN_PID"
        kind="first commit"
        if ((c > 1)); then
            recoveries+=("$RECOVERY_S")
            assigned=$(ts_epoch "$CJ_TMP/run$c.log" "partitions assigned")
            rebalances+=("$(awk -v a="$t0" -v b="$assigned" 'BEGIN { printf "%.2f", b - a }')")
            kind="recovery ${RECOVERY_S} s (assigned after ${rebalances[-1]} s)"
        fi
        delay_ms=$((RANDOM % 2500))
        sleep "$(awk -v m="$delay_ms" 'BEGIN { printf "%.3f", m / 1000 }')"
        kind="$kind, kill ${delay_ms} ms later"
    fi
    # The stream has ended: this run is the last one, it finishes the topic.
    kill -0 "${GEN_PIDS[kill9]}" 2>/dev/null || break
    kill -KILL "$CAMJOIN_PID"
    camjoin_wait "$CAMJOIN_PID" 10 2>/dev/null   # (no "Killed" job notice)
    assert_eq "cycle $c: camjoin killed by SIGKILL (exit code)" 137 "$CAMJOIN_RC"
    kills=$((kills + 1))
    [[ $kind == early* ]] && early=$((early + 1))
    after=$(_offsets_sum "$TOPIC" "$GROUP")
    ((after >= before)) || fail "cycle $c: committed offsets went back from $before to $after"
    echo "    cycle $c: $kind; committed $before -> $after"
    c=$((c + 1))
done
final_pid=$CAMJOIN_PID
[[ $kind == early* ]] && kind="started" || kind=${kind%%, kill*}
echo "    run $c (not killed): $kind; the generator has finished"
((kills >= CYCLES)) ||
    fail "only $kills kill -9 cycles happened while the generator was producing; $CYCLES needed (the machine is slower than the sizing assumes: raise F_KILL9_EVENTS or lower F_KILL9_CYCLES)"

gen_wait kill9
sent=$(json_get "$CJ_TMP/kill9.json" sent)
log "generator: $(cat "$CJ_TMP/kill9.json")"
assert_eq "generator sent the planned number of events" "$EVENTS" "$sent"
wait_offsets "$TOPIC" "$GROUP" "$sent" $((EVENTS / 500 > 180 ? EVENTS / 500 : 180)) "$final_pid"
camjoin_stop "$final_pid"
assert_eq "final run: exit code after SIGTERM" 0 "$CAMJOIN_RC"

load_manifest "$CJ_TMP/kill9.manifest.csv"
load_messages "$TOPIC"
fault_figures "$TOPIC"
malformed=$(json_get "$CJ_TMP/kill9.json" malformed)
p50=$(stats_pct 50 "${recoveries[@]}") rmax=$(stats_max "${recoveries[@]}")
echo "    recovery times (s), restart -> first commit: ${recoveries[*]}"
echo "    of which restart -> partitions assigned (group rebalance): ${rebalances[*]}"
SUMMARY="FIGURES f_kill9: events=$sent cycles=$kills (early=$early) runs=$c lost=$F_LOST duplicate_rows=$F_DUP_ROWS dead_letters=$F_DEAD/$malformed (missing=$F_DEAD_MISSING extra=$F_DEAD_EXTRA) recovery_p50=${p50}s recovery_max=${rmax}s n=${#recoveries[@]} rebalance_p50=$(stats_pct 50 "${rebalances[@]}")s seed=$SEED"
echo "$SUMMARY"
assert_eq "lost valid ids" 0 "$F_LOST"
assert_eq "duplicate rows (count(*) - count(DISTINCT (event_id, event_ts)))" 0 "$F_DUP_ROWS"
assert_eq "count(*) = unique valid ids" "$(json_get "$CJ_TMP/kill9.json" valid_new)" "$F_ROWS"
assert_eq "malformed messages without their dead letter" 0 "$F_DEAD_MISSING"
assert_eq "dead letters stored more than once" 0 "$F_DEAD_EXTRA"
assert_final_state "$CJ_TMP/kill9.json" "$CJ_TMP/kill9.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"
echo "PASS: f_kill9 ($sent events, $kills kill -9 cycles, seed $SEED)"
