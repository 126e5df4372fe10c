#!/usr/bin/env bash
# f_commit_kill — the PostgreSQL backend killed at random times while events
# flow (docs/ARCHITECTURE.md §5: "a connection lost during COMMIT leaves the outcome
# unknown"). A seeded loop runs pg_terminate_backend() on camjoin's backend
# every 100-500 ms (random); camjoin must reconnect by itself (same PID),
# resolve every lost transaction from the stored offsets (it logs
# `unknown commit outcome resolved: committed` or `... not committed,
# retrying`) and end exact: rows = the manifest's valid ids, no duplicates,
# each malformed message once in camjoin_dead_letters, offsets at the
# partitions' ends. The test fails if no termination ever hit a transaction
# in flight (the path must be exercised).
#
# Both outcomes are exercised. Terminations at random times almost always
# land before the COMMIT is durable ("not committed"). For "committed", a
# middle phase sets synchronous_standby_names to a standby that does not
# exist: every COMMIT is then durable locally but waits for replication, and
# the termination that ends the wait closes the connection before the client
# hears the result (PostgreSQL: "The transaction has already committed
# locally ..."), which is exactly an unknown outcome of a committed batch.
# The phase starts once camjoin has committed since the last termination
# (the killer holds off meanwhile), and in it the killer terminates only a
# backend whose COMMIT waits for the standby: a reconnecting camjoin's
# session setup also commits, and killing that one instead would leave no
# batch COMMIT in the phase at all.
#
# Sizes: FAULTS_SCALE=full (or F_COMMIT_KILL_RATE / _DURATION) for more.
# Figures: one `FIGURES f_commit_kill ...` line.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
need_bin camjoin camjoin-gen

# The end-state check reads the whole topic back, so every partition must
# keep what was produced: nothing deleted by retention (under
# CAMJOIN_KAFKA=mock: under ~30k events a partition, tools/README.md).
TOPIC=commitkill-events GROUP=commitkill
fault_param PARTS - 4 8
fault_param RATE F_COMMIT_KILL_RATE 3000 4000
fault_param DURATION F_COMMIT_KILL_DURATION 25 45   # 75k (full: 180k, 22.5k a partition); the phases need ~15 s
fault_param SEED F_COMMIT_KILL_SEED 4004
fault_param SYNC_PHASE F_COMMIT_KILL_SYNC_PHASE 4   # seconds of the "committed" phase
total=$((RATE * DURATION))

fault_setup

camjoin_start cj "${CJ_ARGS[@]}"
CJ=$CAMJOIN_PID
wait_progress "$TOPIC" "$GROUP" 0 30 "$CJ"   # schema created, offsets table exists
gen_start ck --topic "$TOPIC" --rate "$RATE" --duration "$DURATION" --seed "$SEED" \
    --dup-ratio 0.05 --unknown-camera-ratio 0.02 --malformed-ratio 0.01 \
    --manifest "$CJ_TMP/ck.manifest.csv"
GEN=${GEN_PIDS[ck]}
wait_progress "$TOPIC" "$GROUP" 1 30 "$CJ"   # first commit: the pipeline is flowing

# recovered: one poll of the killer's recovery measure (below; before and
# t0 are the killer's); also true once the sync-replication phase began:
# that commit waits for the next termination, which the wait must not hold
# back.
recovered() {
    local after
    after=$(_offsets_sum "$TOPIC" "$GROUP" 2>/dev/null) || after=$before
    if ((after > before)); then
        awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "R %.3f\n", b - a }' >>"$CJ_TMP/kills.txt"
        return 0
    fi
    [[ -e "$CJ_TMP/syncrep.on" ]]
}

# The killer: while the generator runs, sleep 100-500 ms (bash RANDOM seeded
# with SEED), terminate camjoin's backend(s) and log one line per
# termination: "<epoch> <state>" where state is the backend's state at that
# moment (active / idle in transaction / idle). After a termination of a
# non-idle backend it also measures the recovery: the time until the stored
# offsets advance again (the next COMMIT, over a new connection), appended as
# "R <seconds>". It stops on its own when the generator or this script ends.
killer() {
    local states s t0 before
    RANDOM=$SEED
    local which
    while kill -0 "$GEN" 2>/dev/null && kill -0 $$ 2>/dev/null; do
        sleep "0.$(printf '%03d' $((100 + RANDOM % 400)))"
        [[ ! -e "$CJ_TMP/killer.hold" ]] || continue
        which="application_name = 'camjoin'"
        [[ ! -e "$CJ_TMP/syncrep.on" ]] || which+=" AND wait_event = 'SyncRep' AND query = 'COMMIT'"
        before=$(_offsets_sum "$TOPIC" "$GROUP" 2>/dev/null) || continue
        t0=$(now_s)
        states=$(psql -XAtq -F'|' -c "SELECT state, pg_terminate_backend(pid) FROM pg_stat_activity
                                      WHERE $which" 2>/dev/null) || continue
        while IFS='|' read -r s _; do
            [[ -n "$s" ]] && printf '%s %s\n' "$t0" "$s" >>"$CJ_TMP/kills.txt"
        done <<<"$states"
        grep -qv '^idle$' <<<"$states" || continue
        [[ -n "$states" ]] || continue
        # recovery is measured outside the sync-replication phase only (there
        # the next commit waits for the next termination)
        [[ ! -e "$CJ_TMP/syncrep.on" ]] || continue
        wait_for -i 0.02 -p "$GEN" 20 -- recovered || true
    done
}
: >"$CJ_TMP/kills.txt"
killer &
KILLER=$!

# Middle phase: COMMITs wait for a standby that never comes (see above).
sleep "$(awk -v d="$DURATION" 'BEGIN { printf "%.1f", d / 3 }')"
kill -0 "$GEN" 2>/dev/null || fail "the generator finished before the sync-replication phase"
touch "$CJ_TMP/killer.hold"
sleep 1   # a termination under way ends
before=$(_offsets_sum "$TOPIC" "$GROUP")
committed_since() { (($(_offsets_sum "$TOPIC" "$GROUP") > before)); }
wait_for -i 0.05 -p "$CJ" 30 -- committed_since || fail "camjoin did not commit within 30 s of the killer's pause"
touch "$CJ_TMP/syncrep.on"
log "sync-replication phase: every COMMIT waits until its backend is terminated"
psql_val "ALTER SYSTEM SET synchronous_standby_names = 'camjoin_fault_no_such_standby'" >/dev/null
psql_val "SELECT pg_reload_conf()" >/dev/null
rm -f "$CJ_TMP/killer.hold"
sleep "$SYNC_PHASE"
psql_val "ALTER SYSTEM RESET synchronous_standby_names" >/dev/null
psql_val "SELECT pg_reload_conf()" >/dev/null
rm -f "$CJ_TMP/syncrep.on"
log "sync-replication phase over"
kill -0 "$GEN" 2>/dev/null || fail "the generator finished during the sync-replication phase: make DURATION longer"

gen_wait ck
wait "$KILLER" || true   # ends with the generator (at most one recovery wait later)
sent=$(json_get "$CJ_TMP/ck.json" sent)
log "generator: $(cat "$CJ_TMP/ck.json")"
assert_eq "messages sent = rate x duration" "$total" "$sent"
wait_offsets "$TOPIC" "$GROUP" "$sent" 120 "$CJ"
kill -0 "$CJ" 2>/dev/null || fail "camjoin (pid $CJ) is gone: it must survive the terminations by itself"
camjoin_stop "$CJ"
assert_eq "camjoin exit code after SIGTERM (same process all along)" 0 "$CAMJOIN_RC"

kills=$(grep -vc '^R ' "$CJ_TMP/kills.txt" || true)
hit=$(grep -v '^R ' "$CJ_TMP/kills.txt" | grep -vc ' idle$' || true)
mapfile -t rec < <(sed -n 's/^R //p' "$CJ_TMP/kills.txt")
res_yes=$(grep -c 'unknown commit outcome resolved: committed' "$CJ_TMP/cj.log" || true)
res_no=$(grep -c 'unknown commit outcome resolved: not committed, retrying' "$CJ_TMP/cj.log" || true)
lost_conn=$(grep -c 'postgres unavailable, retrying' "$CJ_TMP/cj.log" || true)
echo "terminations: $kills ($hit of a non-idle backend); camjoin saw $lost_conn lost connections;" \
     "resolved: committed $res_yes, not committed $res_no"

echo "the unknown-outcome path was exercised"
((kills >= 1)) || fail "no backend was ever terminated (killer found no 'camjoin' backend)"
((res_yes + res_no >= 1)) ||
    fail "no 'unknown commit outcome resolved' line after $kills terminations: the path was not exercised (raise the rate)"
printf '  ok  %-58s %s\n' "terminations of a transaction in flight, resolved" "$((res_yes + res_no))"
((res_yes >= 1)) ||
    fail "no 'unknown commit outcome resolved: committed' line: the sync-replication phase did not exercise it"
printf '  ok  %-58s %s\n' "... of which resolved as committed (>= 1)" "$res_yes"
((res_no >= 1)) ||
    fail "no 'unknown commit outcome resolved: not committed, retrying' line: that path was not exercised"
printf '  ok  %-58s %s\n' "... of which resolved as not committed (>= 1)" "$res_no"
((res_yes + res_no <= kills)) ||
    fail "more resolutions ($((res_yes + res_no))) than terminations ($kills)"
printf '  ok  %-58s %s\n' "resolutions <= terminations" "$((res_yes + res_no)) <= $kills"
assert_eq "camjoin error-level log lines" 0 \
    "$(grep -c 'level=error' "$CJ_TMP/cj.log" || true)"

log "checking the end state"
starts=$(kafka_start_offsets "$TOPIC" "$PARTS" | tr '\n' ' ')
tr ' ' '\n' <<<"$starts" | grep . | grep -qv ':0$' &&
    fail "retention dropped messages (log start offsets: $starts): the topic can no longer be checked; use a smaller size or more partitions"
load_manifest "$CJ_TMP/ck.manifest.csv"
load_messages "$TOPIC"
# fault_figures looks messages up by key: index it (45k rows, else ~1 min)
psql_val "ANALYZE manifest" >/dev/null
fault_figures "$TOPIC"
malformed=$(json_get "$CJ_TMP/ck.json" malformed)
rec_ms=()
for r in "${rec[@]}"; do rec_ms+=("$(awk -v r="$r" 'BEGIN { printf "%d", r * 1000 }')"); done
echo "FIGURES f_commit_kill: runs=1 events=$sent terminations=$kills nonidle_at_kill=$hit" \
     "resolved_committed=$res_yes resolved_not_committed=$res_no lost=$F_LOST" \
     "duplicate_rows=$F_DUP_ROWS dead_letters=$F_DEAD/$malformed" \
     "dead_letters_missing=$F_DEAD_MISSING dead_letters_extra=$F_DEAD_EXTRA" \
     "recovery_p50_ms=$(stats_pct 50 "${rec_ms[@]}") recovery_max_ms=$(stats_max "${rec_ms[@]}")" \
     "recovery_samples=${#rec_ms[@]}"

log "figures done"
assert_final_state "$CJ_TMP/ck.json" "$CJ_TMP/ck.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"
echo "PASS: f_commit_kill ($sent messages, $kills terminations, $((res_yes + res_no)) unknown outcomes resolved)"
