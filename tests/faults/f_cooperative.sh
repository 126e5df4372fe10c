#!/usr/bin/env bash
# f_cooperative — cooperative rebalancing (partition.assignment.strategy=
# cooperative-sticky) on a real broker: members join and leave one by one
# while events flow, and only the partitions that move stop.
#
#   c1 alone; c2 joins; c3 joins; c3 leaves (SIGTERM); c2 leaves (SIGTERM);
#   c4 joins; then c4 becomes a zombie: SIGSTOPped with a write transaction
#   open, kept stopped until c1 owns every partition, then SIGCONTed. The
#   stored-offset fence must stop one side (`offsets moved by another
#   consumer`), as with eager assignors (f_rebalance).
#
# For every join and leave, each member that stays is asked for its
# partitions (its /metrics) before the change and after the group settled:
# the partitions it had both times are "unmoved", the others "moved". From
# the rows' ingested_at (the commit's transaction start), the longest pause
# of each partition in [change, settled] is computed, the window's edges
# counting as rows. Two checks per change: no member that stays revoked or
# re-positioned an unmoved partition (its log), and every unmoved partition
# had rows committed during the longest pause of a moved one (that one
# waited for the handover: revoke, commit, release, join, positioning).
# With an eager assignor every partition is revoked and stops for the whole
# rebalance, so both checks would fail.
#
# End state: exact against the manifest (0 lost, 0 duplicate rows, each
# malformed message once as a dead letter, offsets at the partitions' ends),
# and no row rejected by ON CONFLICT (the dedup window missed no retry).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
need_real_kafka
need_bin camjoin camjoin-gen
command -v curl >/dev/null || fail "curl is needed (camjoin /metrics)"

TOPIC=coop-events GROUP=coop
fault_param PARTS - 6 12
fault_param RATE F_COOPERATIVE_RATE 1000 2500
fault_param DURATION F_COOPERATIVE_DURATION 80   # the sequence takes ~45 s
fault_param SEED F_COOPERATIVE_SEED 7007

fault_setup
CJ_ARGS+=(-X partition.assignment.strategy=cooperative-sticky)

declare -A PID=() PORT=()
start() {  # NAME
    PORT[$1]=$(free_port)
    camjoin_start "$1" "${CJ_ARGS[@]}" --http "127.0.0.1:${PORT[$1]}"
    PID[$1]=$CAMJOIN_PID
    log "$1 started (pid ${PID[$1]}, http ${PORT[$1]})"
}
owned() {  # NAME: its active partitions, one per line, sorted
    curl -fsS "http://127.0.0.1:${PORT[$1]}/metrics" 2>/dev/null |
        sed -nE 's/^camjoin_partition_committed_offset\{partition="([0-9]+)"\}.*/\1/p' | sort -n
}
still_producing() {
    kill -0 "${GEN_PIDS[co]}" 2>/dev/null ||
        fail "the generator had already finished at the $1; make F_COOPERATIVE_DURATION longer"
}
# settle NAME...: until the named members own all PARTS partitions, each at
# least one, twice in a row 0.5 s apart; then until the next commit.
settled() {  # NAME...: one poll of settle's; sets the caller's ok and desc
    local n a total=0
    desc=""
    for n in "$@"; do
        kill -0 "${PID[$n]}" 2>/dev/null || fail "$n (pid ${PID[$n]}) exited"
        a=$(owned "$n" | wc -l)
        ((a >= 1)) || total=-100
        total=$((total + a))
        desc+="$n=$a "
    done
    if ((total == PARTS)); then ok=$((ok + 1)); else ok=0; fi
    ((ok >= 2))
}
settle() {
    local ok=0 desc="" before
    wait_for -i 0.5 60 -- settled "$@" ||
        fail "the group did not settle on $* owning $PARTS partitions within 60 s ($desc)"
    before=$(_offsets_sum "$TOPIC" "$GROUP")
    wait_new_commit "$TOPIC" "$GROUP" "$before" "$(now_s)" 60 "${PID[$1]}"
    log "settled: $desc"
}
# pauses A B PARTITIONS...: "PARTITION SECONDS START EPOCH" = the longest
# pause between rows of each partition in [A, B] (epoch seconds), the edges
# counting, and when it began (UTC time of day, and epoch seconds)
pauses() {
    local a=$1 b=$2 list
    shift 2
    list=$(IFS=,; echo "$*")
    psql -XAtq -F' ' -c "
        WITH t AS (
            SELECT kafka_partition AS p, ingested_at AS at FROM camera_events
             WHERE kafka_partition IN ($list)
               AND ingested_at BETWEEN to_timestamp($a) AND to_timestamp($b)
            UNION SELECT p, to_timestamp($a) FROM unnest(ARRAY[$list]) p
            UNION SELECT p, to_timestamp($b) FROM unnest(ARRAY[$list]) p),
        g AS (SELECT p, at, at - lag(at) OVER (PARTITION BY p ORDER BY at) AS gap FROM t)
        SELECT DISTINCT ON (p) p, round(extract(epoch FROM gap)::numeric, 3),
               to_char((at - gap) AT TIME ZONE 'UTC', 'HH24:MI:SS.MS'),
               extract(epoch FROM at - gap)
          FROM g WHERE gap IS NOT NULL ORDER BY p, gap DESC"
}
declare -A BEFORE=()
snapshot() {  # NAME...: the partitions of each member before a change
    local n
    for n in "$@"; do BEFORE[$n]=$(owned "$n" | paste -sd' ' -); done
}
FIG=() UNMOVED_MAX=() MOVED_MIN=()
# check_flow LABEL T_CHANGE STAYING...: after settle
check_flow() {
    local label=$1 t0=$2 t1 n p unmoved=() moved=() now_set
    shift 2
    t1=$(now_s)
    for n in "$@"; do
        now_set=" $(owned "$n" | paste -sd' ' -) "
        for p in ${BEFORE[$n]:-}; do
            [[ "$now_set" == *" $p "* ]] && unmoved+=("$p")
        done
    done
    for ((p = 0; p < PARTS; p++)); do
        [[ " ${unmoved[*]} " == *" $p "* ]] || moved+=("$p")
    done
    ((${#unmoved[@]} > 0)) || fail "$label: no partition stayed with its member (cooperative-sticky keeps them)"
    ((${#moved[@]} > 0)) || fail "$label: no partition moved"
    local um mm
    pauses "$t0" "$t1" "${unmoved[@]}" >"$CJ_TMP/unmoved.pauses"
    pauses "$t0" "$t1" "${moved[@]}" >"$CJ_TMP/moved.pauses"
    um=$(awk '$2 > m { m = $2 } END { printf "%.3f", m }' "$CJ_TMP/unmoved.pauses")
    mm=$(awk 'NR == 1 || $2 < m { m = $2 } END { printf "%.3f", m }' "$CJ_TMP/moved.pauses")
    log "$label: unmoved ${unmoved[*]}: longest pause ${um} s; moved ${moved[*]}: shortest longest pause ${mm} s"
    log "$label: longest pause per partition (partition, s, from): unmoved $(cut -d' ' -f1-3 "$CJ_TMP/unmoved.pauses" | paste -sd';'); moved $(cut -d' ' -f1-3 "$CJ_TMP/moved.pauses" | paste -sd';')"
    # the mechanism, exactly: no member that stays revoked or re-positioned
    # an unmoved partition during the change
    local iso0 iso1 touched=""
    iso0=$(date -u -d "@$t0" +%Y-%m-%dT%H:%M:%S.%3NZ)
    iso1=$(date -u -d "@$t1" +%Y-%m-%dT%H:%M:%S.%3NZ)
    for n in "$@"; do
        touched+=$(awk -v a="ts=$iso0" -v b="ts=$iso1" '$1 >= a && $1 <= b' "$CJ_TMP/$n.log" |
            sed -nE 's/.*msg="partitions revoked".* partitions=([0-9,]*).*/\1/p; s/.*msg="partition positioned" partition=([0-9]+) .*/\1/p' |
            tr ',' '\n' | grep . | tr '\n' ' ')
    done
    for p in "${unmoved[@]}"; do
        [[ " $touched " == *" $p "* ]] &&
            fail "$label: unmoved partition $p was revoked or re-positioned by its member (partitions touched: $touched)"
    done
    printf '  ok  %-58s %s\n' "$label: unmoved partitions neither revoked nor re-positioned" "${unmoved[*]}"
    # the flow: while the moved partition with the longest pause waited for
    # its new owner, every unmoved partition had rows committed
    local from len epoch missing=()
    read -r _ len from epoch < <(sort -k2,2gr "$CJ_TMP/moved.pauses" | head -n 1)
    for p in "${unmoved[@]}"; do
        [[ $(psql_val "SELECT count(*) FROM camera_events WHERE kafka_partition = $p
                AND ingested_at > to_timestamp($epoch)
                AND ingested_at < to_timestamp($epoch) + interval '$len s'") -gt 0 ]] ||
            missing+=("$p")
    done
    ((${#missing[@]} == 0)) ||
        fail "$label: unmoved partitions ${missing[*]} had no rows while moved partitions waited ($len s from $from UTC)"
    printf '  ok  %-58s %s\n' "$label: unmoved rows during the handover" "${len} s from $from UTC"
    FIG+=("$label=${um}/${mm}")
    UNMOVED_MAX+=("$um")
    MOVED_MIN+=("$mm")
}

# ---- c1 alone
start c1
wait_progress "$TOPIC" "$GROUP" 0 30 "${PID[c1]}"
gen_start co --topic "$TOPIC" --rate "$RATE" --duration "$DURATION" --seed "$SEED" \
    --dup-ratio 0.10 --unknown-camera-ratio 0.02 --malformed-ratio 0.01 \
    --manifest "$CJ_TMP/co.manifest.csv"
settle c1

# ---- joining one by one
still_producing "join of c2"
snapshot c1; t=$(now_s); start c2; settle c1 c2; check_flow "c2 joins" "$t" c1
still_producing "join of c3"
snapshot c1 c2; t=$(now_s); start c3; settle c1 c2 c3; check_flow "c3 joins" "$t" c1 c2

# ---- leaving one by one
still_producing "SIGTERM of c3"
snapshot c1 c2; t=$(now_s); camjoin_stop "${PID[c3]}"
assert_eq "c3: exit code after SIGTERM" 0 "$CAMJOIN_RC"
settle c1 c2; check_flow "c3 leaves" "$t" c1 c2
still_producing "SIGTERM of c2"
snapshot c1; t=$(now_s); camjoin_stop "${PID[c2]}"
assert_eq "c2: exit code after SIGTERM" 0 "$CAMJOIN_RC"
settle c1; check_flow "c2 leaves" "$t" c1

# ---- the zombie: c4 joins, then is stopped with a write transaction open
still_producing "join of c4"
snapshot c1; t=$(now_s); start c4; settle c1 c4; check_flow "c4 joins" "$t" c1
still_producing "SIGSTOP of c4"
zstate="" attempts=0
RANDOM=$SEED
while ((attempts < 40)); do
    attempts=$((attempts + 1))
    kill -STOP "${PID[c4]}"
    sleep 0.3
    zstate=$(pg_backend_state "${PID[c4]}" | grep -E '^(active|idle in transaction)\|' | head -n 1 || true)
    [[ -z "$zstate" ]] || break
    kill -CONT "${PID[c4]}"
    sleep "0.$((100 + RANDOM % 400))"
done
[[ -n "$zstate" ]] || fail "c4 never had a write transaction open in $attempts SIGSTOPs"
log "c4 stopped with its transaction open (attempt $attempts): $zstate"
owns_all() { [[ "$(owned "$1" | wc -l)" == "$PARTS" ]]; }
wait_for -i 0.2 60 -- owns_all c1 ||
    fail "c1 did not take over all $PARTS partitions within 60 s of SIGSTOP"
log "c1 owns all $PARTS partitions"
sleep 2 # c1 commits on c4's former partitions meanwhile
still_producing "SIGCONT of c4"
kill -CONT "${PID[c4]}"
settle c1 c4

gen_wait co
sent=$(json_get "$CJ_TMP/co.json" sent)
assert_eq "messages sent = rate x duration" "$((RATE * DURATION))" "$sent"
wait_offsets "$TOPIC" "$GROUP" "$sent" 120 "${PID[c1]}"
for n in c1 c4; do
    camjoin_stop "${PID[$n]}"
    assert_eq "$n: exit code after SIGTERM" 0 "$CAMJOIN_RC"
done

fence=$(cat "$CJ_TMP"/c1.log "$CJ_TMP"/c4.log | grep -c 'offsets moved by another consumer: batch rolled back' || true)
((fence >= 1)) ||
    fail "c4 was stopped with a transaction open ($zstate) and c1 took its partitions, but no side logged 'offsets moved by another consumer'"
printf '  ok  %-58s %s\n' "fenced commits (zombie + survivor) >= 1" "$fence"
assert_eq "camjoin error-level log lines (other than librdkafka's)" 0 \
    "$(cat "$CJ_TMP"/c[1-4].log | grep 'level=error' | grep -vc 'msg="librdkafka"' || true)"
released=$(cat "$CJ_TMP"/c[1-4].log | grep -c 'msg="revoked partitions released"' || true)
((released >= 2)) || fail "expected the joins to release partitions cooperatively; 'revoked partitions released' logged $released times"

load_manifest "$CJ_TMP/co.manifest.csv"
load_messages "$TOPIC"
psql_val "ANALYZE manifest" >/dev/null
fault_figures "$TOPIC"
rejected=0
for n in c1 c2 c3 c4; do
    r=$(stopped_field "$CJ_TMP/$n.log" rows)
    i=$(stopped_field "$CJ_TMP/$n.log" inserted)
    rejected=$((rejected + r - i))
done
echo "FIGURES f_cooperative: runs=4 events=$sent lost=$F_LOST duplicate_rows=$F_DUP_ROWS" \
     "dead_letters=$F_DEAD/$(json_get "$CJ_TMP/co.json" malformed)" \
     "dead_letters_missing=$F_DEAD_MISSING dead_letters_extra=$F_DEAD_EXTRA fenced=$fence" \
     "released=$released unmoved_pause_max_s=$(stats_max "${UNMOVED_MAX[@]}")" \
     "moved_pause_min_s=$(printf '%s\n' "${MOVED_MIN[@]}" | sort -g | head -n 1)" \
     "pauses_unmoved/moved_s=${FIG[*]// /_}" "on_conflict_rejected=$rejected"
assert_eq "rows rejected by ON CONFLICT (retries the dedup window missed)" 0 "$rejected"
assert_final_state "$CJ_TMP/co.json" "$CJ_TMP/co.manifest.csv" "$TOPIC" "$GROUP" "$PARTS"
echo "PASS: f_cooperative ($sent messages; 1->2->3->2->1->2 members one by one, zombie fenced)"
