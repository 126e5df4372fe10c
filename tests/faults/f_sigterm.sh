#!/usr/bin/env bash
# f_sigterm — graceful restarts mid-stream re-deliver nothing
# (docs/ARCHITECTURE.md §1 Shutdown: stop fetching, flush, commit, close, exit 0).
#
# camjoin-gen produces events with known ids (--manifest) while camjoin is
# stopped with SIGTERM at random moments (seeded RNG, seed printed: a random
# 0-2.5 s after the run's first commit) and restarted, for as long as the
# generator produces (at least CYCLES stops, all mid-stream); the run that
# sees the stream end finishes the topic and is stopped the same way.
# Checks, besides the exact end state of assert_final_state (no id lost, no
# duplicate row, dead letters once each, offsets = partition ends):
#   - every run exits 0 and its final log line `msg="stopped" ... rows=R
#     inserted=I` has R - I = 0: after a clean stop the next run starts at
#     the committed offsets, so ON CONFLICT never has anything to reject;
#   - right after each stop, sum(next_offset) = the sum of `consumed` over
#     the runs so far (everything consumed was committed before exit 0);
#   - over all runs: sum(inserted) = unique valid ids, sum(consumed) = sent,
#     sum(duplicates) = the generator's duplicates, sum(dead_letters) =
#     malformed messages.
# Recovery time = restart -> first commit past the previous run's offsets.
#
# Sizes: default 4 restarts / 20k events; FAULTS_SCALE=full: 10 restarts /
# 60k events (4 partitions, also under the mock's retention). F_SIGTERM_CYCLES,
# F_SIGTERM_EVENTS and F_SIGTERM_SEED (a number, or "random") override them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
need_bin camjoin camjoin-gen

fault_param CYCLES F_SIGTERM_CYCLES 4 10
fault_param EVENTS F_SIGTERM_EVENTS 20000 60000
PARTS=4
fault_seed F_SIGTERM_SEED 1515
echo "f_sigterm: seed $SEED (rerun with F_SIGTERM_SEED=$SEED), $CYCLES restarts, $EVENTS events"

TOPIC=sigterm-events GROUP=sigterm-ft
# A clean stop leaves the group, so a restart is assigned in ~3-4 s; one
# cycle is that plus up to 2.5 s. The generator runs 7 s per cycle (+6 s).
DURATION=$((CYCLES * 7 + 6))
RATE=$(((EVENTS + DURATION - 1) / DURATION))
DURATION=$(((EVENTS + RATE - 1) / RATE))
EVENTS=$((RATE * DURATION))

fault_setup
RANDOM=$SEED   # after the setup (free_port draws from the same RNG)

camjoin_start run1 "${CJ_ARGS[@]}"
wait_progress "$TOPIC" "$GROUP" 0 30 "$CAMJOIN_PID"
gen_start sigterm --topic "$TOPIC" --rate "$RATE" --duration "$DURATION" --seed 1616 \
    --dup-ratio 0.10 --unknown-camera-ratio 0.02 --malformed-ratio 0.01 \
    --manifest "$CJ_TMP/sigterm.manifest.csv"

recoveries=()
stops=0 c=1 last=0 measured=0
sum_consumed=0 sum_rows=0 sum_inserted=0 sum_dups=0 sum_dead=0 redelivered=0
while :; do
    before=$(_offsets_sum "$TOPIC" "$GROUP")
    if ((c > 1)); then
        t0=$(now_s)
        camjoin_start "run$c" "${CJ_ARGS[@]}"
    fi
    if kill -0 "${GEN_PIDS[sigterm]}" 2>/dev/null; then
        wait_new_commit "$TOPIC" "$GROUP" "$before" "${t0:-$(now_s)}" 60 "$CAMJOIN_PID"
        measured=1
        ((c == 1)) || recoveries+=("$RECOVERY_S")
        delay_ms=$((RANDOM % 2500))
        sleep "$(awk -v m="$delay_ms" 'BEGIN { printf "%.3f", m / 1000 }')"
    fi
    if ! kill -0 "${GEN_PIDS[sigterm]}" 2>/dev/null; then
        # The stream has ended: this run finishes the topic, then stops.
        gen_wait sigterm
        sent=$(json_get "$CJ_TMP/sigterm.json" sent)
        log "generator: $(cat "$CJ_TMP/sigterm.json")"
        if ((!measured && before < sent)); then
            wait_new_commit "$TOPIC" "$GROUP" "$before" "${t0:-$(now_s)}" 60 "$CAMJOIN_PID"
            ((c == 1)) || recoveries+=("$RECOVERY_S")
        fi
        wait_offsets "$TOPIC" "$GROUP" "$sent" 120 "$CAMJOIN_PID"
        last=1
    fi
    log_file=$CJ_TMP/run$c.log
    camjoin_stop "$CAMJOIN_PID"
    assert_eq "run $c: exit code after SIGTERM" 0 "$CAMJOIN_RC"
    consumed=$(stopped_field "$log_file" consumed) rows=$(stopped_field "$log_file" rows)
    inserted=$(stopped_field "$log_file" inserted) dups=$(stopped_field "$log_file" duplicates)
    dead=$(stopped_field "$log_file" dead_letters)
    assert_eq "run $c: rows - inserted (re-delivered rows)" 0 $((rows - inserted))
    sum_consumed=$((sum_consumed + consumed)) sum_rows=$((sum_rows + rows))
    sum_inserted=$((sum_inserted + inserted)) sum_dups=$((sum_dups + dups))
    sum_dead=$((sum_dead + dead)) redelivered=$((redelivered + rows - inserted))
    assert_eq "run $c: sum(next_offset) = messages consumed by runs 1-$c" \
        "$sum_consumed" "$(_offsets_sum "$TOPIC" "$GROUP")"
    echo "    run $c: $( ((c == 1)) || echo "recovery ${RECOVERY_S:-n/a} s, ")consumed=$consumed rows=$rows inserted=$inserted duplicates=$dups dead_letters=$dead"
    ((last)) && break
    stops=$((stops + 1)) c=$((c + 1)) RECOVERY_S="" measured=0
done
((stops >= CYCLES)) ||
    fail "only $stops SIGTERM restarts happened while the generator was producing; $CYCLES needed (raise F_SIGTERM_EVENTS or lower F_SIGTERM_CYCLES)"

echo "totals over the $c runs"
assert_eq "generator sent the planned number of events" "$EVENTS" "$sent"
assert_eq "sum(inserted) = unique valid ids" "$(json_get "$CJ_TMP/sigterm.json" valid_new)" "$sum_inserted"
assert_eq "sum(rows) - sum(inserted)" 0 $((sum_rows - sum_inserted))
assert_eq "sum(consumed) = sent" "$sent" "$sum_consumed"
assert_eq "sum(duplicates) = generator duplicates" "$(json_get "$CJ_TMP/sigterm.json" duplicates)" "$sum_dups"
assert_eq "sum(dead_letters) = malformed" "$(json_get "$CJ_TMP/sigterm.json" malformed)" "$sum_dead"

load_manifest "$CJ_TMP/sigterm.manifest.csv"
load_messages "$TOPIC"
fault_figures "$TOPIC"
malformed=$(json_get "$CJ_TMP/sigterm.json" malformed)
p50=$(stats_pct 50 "${recoveries[@]}") rmax=$(stats_max "${recoveries[@]}")
echo "    recovery times (s), restart -> first commit: ${recoveries[*]}"
SUMMARY="FIGURES f_sigterm: events=$sent cycles=$stops runs=$c lost=$F_LOST duplicate_rows=$F_DUP_ROWS redelivered_rows=$redelivered dead_letters=$F_DEAD/$malformed (missing=$F_DEAD_MISSING extra=$F_DEAD_EXTRA) recovery_p50=${p50}s recovery_max=${rmax}s n=${#recoveries[@]} seed=$SEED"
echo "$SUMMARY"
assert_eq "lost valid ids" 0 "$F_LOST"
assert_eq "duplicate rows (count(*) - count(DISTINCT (event_id, event_ts)))" 0 "$F_DUP_ROWS"
assert_eq "count(*) = unique valid ids" "$(json_get "$CJ_TMP/sigterm.json" valid_new)" "$F_ROWS"
assert_eq "malformed messages without their dead letter" 0 "$F_DEAD_MISSING"
assert_eq "dead letters stored more than once" 0 "$F_DEAD_EXTRA"
assert_final_state "$CJ_TMP/sigterm.json" "$CJ_TMP/sigterm.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"
echo "PASS: f_sigterm ($sent events, $stops SIGTERM restarts, seed $SEED)"
