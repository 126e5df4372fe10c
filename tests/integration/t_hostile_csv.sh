#!/usr/bin/env bash
# t_hostile_csv — bad reference CSV files (Dataset B, docs/ARCHITECTURE.md §3):
#
#   1. at startup, every bad file → exit 2 and exactly ONE line on stderr,
#      "camjoin: FILE:LINE: reason" (the line is the offending record's first
#      line, counted independently here from the fixture);
#   2. SIGHUP while running (reference.watch off): a broken file keeps the old table (events
#      produced after the failed reload still join with the OLD site values),
#      the failure is logged (level=error, "reference reload failed", naming
#      file:line) and counted in /metrics; a missing file is a second failure;
#      then a good file in which a camera moved to another site is swapped in
#      (camjoin_reference_reloads_total 1) and events produced after it get
#      the new site, while an untouched camera keeps its values;
#   3. reference.watch (on by default), no signal: a good file renamed over
#      the CSV is loaded within the debounce, and a rewrite in place (two
#      chunks 100 ms apart) is loaded once, whole; rows produced after each
#      change join with the table of that change;
#   4. a 1M-row CSV (T_HOSTILE_CSV_ROWS) loads with --check-config; the time
#      it takes is reported.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin
for tool in kcat curl; do command -v "$tool" >/dev/null || fail "$tool not found"; done

CAMJOIN=$CAMJOIN_BIN/camjoin
BIG_ROWS=${T_HOSTILE_CSV_ROWS:-1000000}
HDR='camera_id,site_id,site_name,zone,latitude,longitude'
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }'; }

# ------------------------------------------------------ 1. startup errors
echo "startup: each bad CSV → exit 2, one line naming file:line"
n_cases=0
# bad_csv NAME EXPECTED: the fixture is on stdin; stderr must be exactly the
# one line "camjoin: <file><EXPECTED>", EXPECTED being ":LINE: reason" (or
# ": reason" where no line applies: an empty file).
bad_csv() {
    local name=$1 expected=$2 f rc=0 lines
    n_cases=$((n_cases + 1))
    f=$CJ_TMP/bad-$n_cases.csv
    cat >"$f"
    timeout 30 "$CAMJOIN" --check-config --reference "$f" >"$CJ_TMP/bad.out" 2>"$CJ_TMP/bad.err" </dev/null || rc=$?
    [[ $rc -eq 2 ]] || fail "$name: exit $rc, expected 2; stderr: $(head -c 500 "$CJ_TMP/bad.err")"
    lines=$(grep -c '' "$CJ_TMP/bad.err" || true)
    [[ $lines -eq 1 ]] || fail "$name: $lines lines on stderr, expected 1: $(head -c 500 "$CJ_TMP/bad.err")"
    assert_eq "$name" "camjoin: $f$expected" "$(cat "$CJ_TMP/bad.err")"
    [[ ! -s "$CJ_TMP/bad.out" ]] || fail "$name: unexpected stdout: $(head -c 200 "$CJ_TMP/bad.out")"
}
bad_csv "empty file" ": empty file (no header)" </dev/null
bad_csv "blank lines only" ": empty file (no header)" <<<$'\n\n'
bad_csv "no header (data on line 1)" ':1: missing column "camera_id"' <<<$'cam-1,s1,Site,z,1,2\ncam-2,s1,Site,z,1,2'
bad_csv "missing column zone" ':1: missing column "zone"' <<<$'camera_id,site_id,site_name,latitude,longitude\ncam-1,s1,Site,1,2'
bad_csv "duplicate column" ':1: duplicate column "site_id"' <<<"$HDR,site_id"
bad_csv "duplicate camera_id" ':4: duplicate camera_id "cam-1" (first on line 2)' \
    <<<"$HDR"$'\ncam-1,s1,Site,z,1,2\ncam-2,s1,Site,z,1,2\ncam-1,s2,Other,z,3,4'
bad_csv "duplicate camera_id, CRLF and a multi-line field" ':5: duplicate camera_id "cam-2" (first on line 4)' \
    < <(printf '%s\r\n' "$HDR" 'cam-1,s1,"Site' 'on two lines",z,1,2' 'cam-2,s1,Site,z,1,2' 'cam-2,s1,Site,z,1,2')
bad_csv "unterminated quote" ':3: unterminated quoted field' <<<"$HDR"$'\ncam-1,s1,Site,z,1,2\ncam-2,s1,"Site two,z,1,2\ncam-3,s1,Site,z,1,2'
bad_csv "quote inside an unquoted field" ':2: misplaced quote (inside an unquoted field, or text after a closing quote)' \
    <<<"$HDR"$'\ncam-1,s1,Si"te,z,1,2'
bad_csv "latitude out of range" ':3: bad latitude "91"' <<<"$HDR"$'\ncam-1,s1,Site,z,90,180\ncam-2,s1,Site,z,91,2'
bad_csv "longitude out of range" ':2: bad longitude "-180.5"' <<<"$HDR"$'\ncam-1,s1,Site,z,0,-180.5'
bad_csv "latitude not a number" ':2: bad latitude "north"' <<<"$HDR"$'\ncam-1,s1,Site,z,north,2'
bad_csv "latitude NaN" ':2: bad latitude "nan"' <<<"$HDR"$'\ncam-1,s1,Site,z,nan,2'
bad_csv "longitude infinite" ':2: bad longitude "1e999"' <<<"$HDR"$'\ncam-1,s1,Site,z,1,1e999'
bad_csv "latitude in hex" ':2: bad latitude "0x10"' <<<"$HDR"$'\ncam-1,s1,Site,z,0x10,2'
bad_csv "too few fields" ':3: expected 6 fields, got 5' <<<"$HDR"$'\ncam-1,s1,Site,z,1,2\ncam-2,s1,Site,z,1'
bad_csv "too many fields" ':2: expected 6 fields, got 7' <<<"$HDR"$'\ncam-1,s1,Site,z,1,2,extra'
bad_csv "empty camera_id" ':2: empty camera_id' <<<"$HDR"$'\n,s1,Site,z,1,2'
bad_csv "invalid UTF-8" ':3: invalid UTF-8' < <(printf '%s\n' "$HDR" 'cam-1,s1,Site,z,1,2'; printf 'cam-2,s1,Caf\xe9,z,1,2\n')
bad_csv "NUL byte" ':2: NUL byte' < <(printf '%s\n' "$HDR"; printf 'cam-1,s1,Si\0te,z,1,2\n')

# A directory and a nonexistent path (a chmod 000 file is no test when the
# suite runs as root, which reads anything).
rc=0
"$CAMJOIN" --check-config --reference "$CJ_TMP" >/dev/null 2>"$CJ_TMP/bad.err" || rc=$?
assert_eq "directory as reference: exit code" 2 "$rc"
assert_eq "directory as reference: message" "camjoin: $CJ_TMP: read error: Is a directory" "$(cat "$CJ_TMP/bad.err")"
rc=0
"$CAMJOIN" --check-config --reference "$CJ_TMP/absent.csv" >/dev/null 2>"$CJ_TMP/bad.err" || rc=$?
assert_eq "nonexistent reference: exit code" 2 "$rc"
assert_eq "nonexistent reference: message" "camjoin: $CJ_TMP/absent.csv: cannot open: No such file or directory" \
    "$(cat "$CJ_TMP/bad.err")"
# The daemon itself (not only --check-config) refuses a bad file before it
# touches Kafka or PostgreSQL (both unreachable here): exit 2, not 1.
printf '%s\n' "$HDR" 'cam-1,s1,Site,z,1,2' 'cam-1,s1,Site,z,1,2' >"$CJ_TMP/dup.csv"
rc=0
"$CAMJOIN" --brokers 127.0.0.1:1 --pg postgresql://postgres@127.0.0.1:1/x \
    --reference "$CJ_TMP/dup.csv" >/dev/null 2>"$CJ_TMP/bad.err" </dev/null || rc=$?
assert_eq "daemon start with a bad CSV: exit code" 2 "$rc"
assert_eq "daemon start with a bad CSV: message" \
    "camjoin: $CJ_TMP/dup.csv:3: duplicate camera_id \"cam-1\" (first on line 2)" "$(cat "$CJ_TMP/bad.err")"
# Accepted: a BOM, CRLF, reordered and extra columns, blank coordinates (NULL).
printf '\xef\xbb\xbf%s\r\n' 'zone,extra,longitude,camera_id,latitude,site_name,site_id' \
    'z,x,2.5,cam-1,1.5,"Site, ""one""",s1' 'z,x,,cam-2,,Site two,s2' >"$CJ_TMP/ok.csv"
assert_eq "accepted: BOM, CRLF, column order, blank coordinates" \
    "configuration ok; reference table $CJ_TMP/ok.csv: 2 cameras" \
    "$("$CAMJOIN" --check-config --reference "$CJ_TMP/ok.csv" 2>&1)"
echo "FIGURES hostile_csv_startup: bad_files=$((n_cases + 2)) exit2_one_line=$((n_cases + 2))"

# ------------------------------------------------------------ 2. SIGHUP
echo "SIGHUP: a broken file keeps the old table; a good one is swapped in"
TOPIC=hostile-csv GROUP=hostile-csv-it
ORIG_CSV=$CAMERAS_CSV
LIVE=$CJ_TMP/live.csv
NEW=$CJ_TMP/new.csv
MOVED=cam-0001 KEPT=cam-0002
cp "$ORIG_CSV" "$LIVE"
# the good new file: MOVED goes to another site, every other row unchanged
awk -F, -v OFS=, -v cam="$MOVED" \
    '$1 == cam { print cam, "site-77", "\"Moved, Site 77\"", "moved-zone", "10.5", "-20.25"; next } { print }' \
    "$ORIG_CSV" >"$NEW"
assert_eq "the new file moves exactly one camera" 1 "$(diff "$ORIG_CSV" "$NEW" | grep -c '^>')"

pg_start
kafka_start "$TOPIC" 1
HTTP_PORT=$(free_port)
CAMERAS_CSV=$LIVE
camjoin_args "$TOPIC" "$GROUP"
# SIGHUP alone here: the file watch (section 3) would reload on each mv too
camjoin_start reload "${CJ_ARGS[@]}" --http "127.0.0.1:$HTTP_PORT" --set reference.watch=off
pid=$CAMJOIN_PID
wait_progress "$TOPIC" "$GROUP" 0 30 "$pid"

produced=0
produce_phase() {  # PHASE N: N events, alternating the moved and the kept camera
    local i cam
    for ((i = 0; i < $2; i++)); do
        if ((i % 2)); then cam=$KEPT; else cam=$MOVED; fi
        printf '%s-%d\t{"event_id":"%s-%d","camera_id":"%s","event_ts":"2024-05-01T10:00:00Z","event_type":"motion"}\n' \
            "$1" "$i" "$1" "$i" "$cam"
    done | kcat -b "$KAFKA_BROKERS" -P -t "$TOPIC" -K $'\t' 2>"$CJ_TMP/kcat.err" ||
        fail "kcat produce: $(cat "$CJ_TMP/kcat.err")"
    produced=$((produced + $2))
    wait_offsets "$TOPIC" "$GROUP" "$produced" 30 "$pid"
}
metric() { curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
RELOAD_LOG=$CJ_TMP/reload.log
log_has() { (($(grep -c -- "$1" "$RELOAD_LOG" || true) >= $2)); }
wait_log() {  # PATTERN COUNT: until the daemon's log has COUNT matching lines
    local rc=0
    wait_for -p "$pid" 10 -- log_has "$1" "$2" || rc=$?
    ((rc != 2)) || fail "camjoin exited while waiting for '$1'"
    ((rc == 0)) || fail "camjoin did not log '$1' ($2 times) within 10 s"
}
PHASE_N=${T_HOSTILE_CSV_EVENTS:-200}

produce_phase before "$PHASE_N"
assert_eq "metrics before any reload: reloads/failures" "0/0" \
    "$(metric camjoin_reference_reloads_total)/$(metric camjoin_reference_reload_failures_total)"

# broken: a duplicate camera_id on line 402 (replaced atomically, as an
# operator's deploy tool would do)
{ cat "$ORIG_CSV"; sed -n 2p "$ORIG_CSV"; } >"$CJ_TMP/broken.csv"
dup_line=$(grep -c '' "$CJ_TMP/broken.csv")
mv "$CJ_TMP/broken.csv" "$LIVE"
t0=$(now_s)
kill -HUP "$pid"
wait_log 'reference reload failed' 1
grep 'reference reload failed' "$CJ_TMP/reload.log" | head -n 1 >"$CJ_TMP/reload-fail.line"
grep -q 'level=error' "$CJ_TMP/reload-fail.line" || fail "reload failure not logged at level=error: $(cat "$CJ_TMP/reload-fail.line")"
grep -qF "$LIVE:$dup_line: duplicate camera_id \\\"$MOVED\\\" (first on line 2)" "$CJ_TMP/reload-fail.line" ||
    fail "reload failure does not name $LIVE:$dup_line and the reason: $(cat "$CJ_TMP/reload-fail.line")"
echo "  ok  reload failure logged: $(cut -c1-160 "$CJ_TMP/reload-fail.line")"
assert_eq "metrics after a broken file: reloads/failures" "0/1" \
    "$(metric camjoin_reference_reloads_total)/$(metric camjoin_reference_reload_failures_total)"
produce_phase broken "$PHASE_N"

rm -f "$LIVE"
kill -HUP "$pid"
wait_log 'reference reload failed' 2
grep -q "$LIVE: cannot open: No such file or directory" <(grep 'reference reload failed' "$CJ_TMP/reload.log" | tail -n 1) ||
    fail "missing-file reload failure not named: $(grep 'reference reload failed' "$CJ_TMP/reload.log" | tail -n 1)"
assert_eq "metrics after a missing file: reloads/failures" "0/2" \
    "$(metric camjoin_reference_reloads_total)/$(metric camjoin_reference_reload_failures_total)"
produce_phase missing "$PHASE_N"

cp "$NEW" "$CJ_TMP/new.tmp" && mv "$CJ_TMP/new.tmp" "$LIVE"
kill -HUP "$pid"
wait_log 'reference table reloaded' 1
assert_eq "metrics after a good file: reloads/failures" "1/2" \
    "$(metric camjoin_reference_reloads_total)/$(metric camjoin_reference_reload_failures_total)"
produce_phase after "$PHASE_N"
camjoin_stop "$pid"
assert_eq "camjoin exit code after SIGTERM" 0 "$CAMJOIN_RC"

# expectations: the reference rows read by psql from the two files
CAMERAS_CSV=$ORIG_CSV load_cameras
psql_val "ALTER TABLE ref_cameras RENAME TO ref_old" >/dev/null
CAMERAS_CSV=$NEW load_cameras
# site_differs PHASE REFTABLE: rows of PHASE whose join columns differ from REFTABLE
site_differs() {
    psql_val "SELECT count(*) FROM camera_events e LEFT JOIN $2 r USING (camera_id)
              WHERE e.event_id LIKE '$1-%'
                AND (r.camera_id IS NULL OR e.site_id IS DISTINCT FROM r.site_id
                     OR e.site_name IS DISTINCT FROM r.site_name OR e.zone IS DISTINCT FROM r.zone
                     OR e.latitude IS DISTINCT FROM r.latitude OR e.longitude IS DISTINCT FROM r.longitude)"
}
assert_eq "rows = events produced" "$produced" "$(psql_val "SELECT count(*) FROM camera_events")"
assert_eq "dead letters" 0 "$(psql_val "SELECT count(*) FROM camjoin_dead_letters")"
for phase in before broken missing; do
    assert_eq "$phase-*: rows joined with the OLD table" 0 "$(site_differs "$phase" ref_old)"
done
assert_eq "after-*: rows joined with the NEW table" 0 "$(site_differs after ref_cameras)"
assert_eq "after-*: $MOVED rows carry the new site" "$((PHASE_N / 2 + PHASE_N % 2))|site-77|Moved, Site 77" \
    "$(psql_val "SELECT count(*) || '|' || min(site_id) || '|' || min(site_name) FROM camera_events
                 WHERE event_id LIKE 'after-%' AND camera_id = '$MOVED'")"
assert_eq "old and new site of $MOVED differ (the test can tell them apart)" t \
    "$(psql_val "SELECT o.site_id <> n.site_id FROM ref_old o JOIN ref_cameras n USING (camera_id) WHERE camera_id = '$MOVED'")"
echo "FIGURES hostile_csv_reload: events=$produced reloads_ok=1 reload_failures=2 rows_with_wrong_site=0 lost=$((produced - $(psql_val "SELECT count(*) FROM camera_events")))"

# ------------------------------------------ 3. reference.watch, no signal
echo "reference.watch: the file renamed over, then rewritten in place, is reloaded by itself"
TOPIC=hostile-csv-watch GROUP=hostile-csv-watch-it
kafka_start "$TOPIC" 1
cp "$ORIG_CSV" "$LIVE"
camjoin_args "$TOPIC" "$GROUP"
camjoin_start watch "${CJ_ARGS[@]}" --http "127.0.0.1:$HTTP_PORT"
pid=$CAMJOIN_PID
RELOAD_LOG=$CJ_TMP/watch.log
wait_progress "$TOPIC" "$GROUP" 0 30 "$pid"
produced=0
produce_phase wbefore "$PHASE_N"
cp "$NEW" "$CJ_TMP/new.tmp" && mv "$CJ_TMP/new.tmp" "$LIVE"   # a deploy tool's rename
wait_log 'reference table reloaded' 1
produce_phase wrenamed "$PHASE_N"
# an editor's rewrite in place: truncated, then written in two chunks 100 ms
# apart; the debounce (500 ms) makes it one load, of the whole file
head -n 200 "$ORIG_CSV" >"$LIVE"
sleep 0.1
tail -n +201 "$ORIG_CSV" >>"$LIVE"
wait_log 'reference table reloaded' 2
produce_phase wrewritten "$PHASE_N"
sleep 1   # a third, spurious load would show by now
assert_eq "loads: one per change" 2 "$(grep -c 'reference table reloaded' "$RELOAD_LOG")"
assert_eq "rows of the last load" "rows=$(awk 'NR > 1 && NF' "$ORIG_CSV" | wc -l)" \
    "$(grep 'reference table reloaded' "$RELOAD_LOG" | tail -n 1 | grep -o 'rows=[0-9]*')"
assert_eq "metrics: reloads/failures" "2/0" \
    "$(metric camjoin_reference_reloads_total)/$(metric camjoin_reference_reload_failures_total)"
camjoin_stop "$pid"
assert_eq "camjoin exit code after SIGTERM" 0 "$CAMJOIN_RC"
assert_eq "wbefore-*: rows joined with the original table" 0 "$(site_differs wbefore ref_old)"
assert_eq "wrenamed-*: rows joined with the renamed-over file" 0 "$(site_differs wrenamed ref_cameras)"
assert_eq "wrewritten-*: rows joined with the file rewritten in place" 0 "$(site_differs wrewritten ref_old)"
assert_eq "rows = events produced" "$produced" \
    "$(psql_val "SELECT count(*) FROM camera_events WHERE event_id LIKE 'w%'")"
echo "FIGURES hostile_csv_watch: events=$produced reloads_ok=2 rows_with_wrong_site=0"

# ------------------------------------------------------ 4. a 1M-row CSV
echo "a $BIG_ROWS-row CSV with --check-config"
awk -v n="$BIG_ROWS" 'BEGIN {
    print "camera_id,site_id,site_name,zone,latitude,longitude"
    for (i = 0; i < n; i++)
        printf "cam-%07d,site-%04d,\"Site %d, Building %d\",zone-%d,%.6f,%.6f\n",
               i, i % 5000, i % 5000, i % 7, i % 13, (i % 1799000) / 10000.0 - 89.95, (i % 3599000) / 10000.0 - 179.95
}' >"$CJ_TMP/big.csv"
big_mb=$(awk -v b="$(stat -c %s "$CJ_TMP/big.csv")" 'BEGIN { printf "%.1f", b / 1048576 }')
t0=$(now_s)
rc=0
/usr/bin/time -f '%M' -o "$CJ_TMP/big.rss" "$CAMJOIN" --check-config --reference "$CJ_TMP/big.csv" \
    >"$CJ_TMP/big.out" 2>"$CJ_TMP/big.err" || rc=$?
load_s=$(elapsed "$t0")
assert_eq "$BIG_ROWS-row CSV: exit code" 0 "$rc"
assert_eq "$BIG_ROWS-row CSV: camera count" \
    "configuration ok; reference table $CJ_TMP/big.csv: $BIG_ROWS cameras" "$(cat "$CJ_TMP/big.out")"
# and the same file with one duplicate appended at its last line
{ cat "$CJ_TMP/big.csv"; echo 'cam-0000000,x,x,x,,'; } >"$CJ_TMP/big-dup.csv"
rc=0
"$CAMJOIN" --check-config --reference "$CJ_TMP/big-dup.csv" >/dev/null 2>"$CJ_TMP/big.err" || rc=$?
assert_eq "$BIG_ROWS-row CSV + duplicate: exit 2, last line named" \
    "2 camjoin: $CJ_TMP/big-dup.csv:$((BIG_ROWS + 2)): duplicate camera_id \"cam-0000000\" (first on line 2)" \
    "$rc $(cat "$CJ_TMP/big.err")"
echo "FIGURES hostile_csv_big: rows=$BIG_ROWS size_mb=$big_mb check_config_s=$load_s max_rss_kb=$(cat "$CJ_TMP/big.rss")"
rm -f "$CJ_TMP/big.csv" "$CJ_TMP/big-dup.csv"
echo "PASS: t_hostile_csv ($((n_cases + 2)) bad files, 3 reloads by SIGHUP, 2 by the watch, $BIG_ROWS-row file in ${load_s} s)"
