#!/usr/bin/env bash
# t_startup_errors — exit codes and messages of the CLI contract (docs/ARCHITECTURE.md §3):
# 2 + one line naming the flag / key / file:line for usage and configuration
# errors (a librdkafka property camjoin owns, given with -X, included; and
# --print-config validates like --check-config), 0 for -h, --help,
# --version, --check-config and --print-config. Exit 1 (a permanent
# PostgreSQL failure) and the wait for a PostgreSQL that is down:
# t_startup_wait.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin

kafka_start startup-errors 1
CAMJOIN="$CAMJOIN_BIN/camjoin"
VERSION=$(sed -nE 's/^project\(camjoin VERSION ([0-9.]+).*/\1/p' "$CAMJOIN_SRC/CMakeLists.txt")
[[ -n "$VERSION" ]] || fail "cannot read the project version from CMakeLists.txt"

# Fixtures; the line numbers in the expectations below are the lines of the
# offending entries in these files.
BAD_KEY_CONF=$CJ_TMP/bad-key.conf
printf '%s\n' '# unknown key on line 4' '[kafka]' 'topic = camera-events' 'no_such_key = 1' \
    >"$BAD_KEY_CONF"
BAD_VALUE_CONF=$CJ_TMP/bad-value.conf
printf '%s\n' '[dedup]' 'window = 10m' '' '[batch]' 'max_rows = lots' >"$BAD_VALUE_CONF"
BAD_SECTION_CONF=$CJ_TMP/bad-section.conf
printf '%s\n' '[kafka]' 'topic = t' '[nonsense]' 'x = 1' >"$BAD_SECTION_CONF"
DUP_CSV=$CJ_TMP/dup-cameras.csv
printf '%s\n' 'camera_id,site_id,site_name,zone,latitude,longitude' \
    'cam-1,s1,Site one,a,1.5,2.5' 'cam-2,s1,Site one,b,1.5,2.5' 'cam-1,s2,Site two,c,3,4' \
    >"$DUP_CSV"
BAD_LAT_CSV=$CJ_TMP/bad-lat.csv
printf '%s\n' 'camera_id,site_id,site_name,zone,latitude,longitude' \
    'cam-1,s1,Site one,a,1.5,2.5' 'cam-2,s1,Site one,b,91.0,2.5' >"$BAD_LAT_CSV"

# A run that would otherwise succeed: every case below breaks exactly one thing.
BASE=(--brokers "$KAFKA_BROKERS" --topic startup-errors --group startup-errors
      --reference "$CAMERAS_CSV" --pg "postgresql://postgres@127.0.0.1:1/x")

n=0
# check NAME EXPECTED_RC LINES REGEX ARGS...: runs camjoin ARGS (timeout 60);
# asserts the exit code, that stderr has exactly LINES lines ("-" = any), and
# that the last stderr line (all of stdout when EXPECTED_RC is 0) matches the
# extended REGEX.
check() {
    local name=$1 want_rc=$2 want_lines=$3 regex=$4 rc=0 stream lines
    shift 4
    n=$((n + 1))
    timeout 60 "$CAMJOIN" "$@" >"$CJ_TMP/case$n.out" 2>"$CJ_TMP/case$n.stderr" </dev/null || rc=$?
    stream=$CJ_TMP/case$n.out
    if [[ $want_rc -ne 0 ]]; then
        stream=$CJ_TMP/case$n.last
        tail -n 1 "$CJ_TMP/case$n.stderr" >"$stream"
    fi
    if [[ $rc -ne $want_rc ]]; then
        fail "$name: camjoin $* exited $rc, expected $want_rc; stderr: $(head -c 2000 "$CJ_TMP/case$n.stderr")"
    fi
    lines=$(grep -c '' "$CJ_TMP/case$n.stderr" || true)
    if [[ "$want_lines" != - && "$lines" != "$want_lines" ]]; then
        fail "$name: expected $want_lines line(s) on stderr, got $lines: $(head -c 2000 "$CJ_TMP/case$n.stderr")"
    fi
    grep -Eq -- "$regex" "$stream" ||
        fail "$name: output does not match /$regex/: $(head -c 2000 "$stream")"
    printf '  ok  %-44s exit %d  %s\n' "$name" "$rc" "$(grep -Em1 -- "$regex" "$stream" | cut -c1-110)"
}

echo "configuration and usage errors: exit 2, one line naming the source"
check "config file: unknown key" 2 1 "$BAD_KEY_CONF:4" -c "$BAD_KEY_CONF" "${BASE[@]}"
check "config file: bad integer value" 2 1 "$BAD_VALUE_CONF:5" -c "$BAD_VALUE_CONF" "${BASE[@]}"
check "config file: unknown section" 2 1 "$BAD_SECTION_CONF:[34]" -c "$BAD_SECTION_CONF" "${BASE[@]}"
check "config file: missing" 2 1 "$CJ_TMP/absent.conf" -c "$CJ_TMP/absent.conf" "${BASE[@]}"
check "reference: nonexistent file" 2 1 "/nonexistent.csv" "${BASE[@]}" --reference /nonexistent.csv
check "reference: duplicate camera_id" 2 1 "$DUP_CSV:4" "${BASE[@]}" --reference "$DUP_CSV"
check "reference: latitude out of range" 2 1 "$BAD_LAT_CSV:3" "${BASE[@]}" --reference "$BAD_LAT_CSV"
check "unknown option" 2 1 "--no-such-flag" "${BASE[@]}" --no-such-flag
check "bad --replay-from spec" 2 1 "replay" "${BASE[@]}" --replay-from yesterday-ish
check "bad -X kafka property" 2 1 "no\.such\.property" "${BASE[@]}" -X no.such.property=1
check "-X group.id (camjoin's)" 2 1 \
    "^camjoin: -X group\.id: set by camjoin; use --group \(kafka\.group\)" "${BASE[@]}" -X group.id=g2
check "-X bootstrap.servers (camjoin's)" 2 1 \
    "^camjoin: -X bootstrap\.servers: set by camjoin; use --brokers" "${BASE[@]}" -X bootstrap.servers=h:1
check "--print-config, bad reference CSV" 2 1 "$BAD_LAT_CSV:3" "${BASE[@]}" --reference "$BAD_LAT_CSV" \
    --print-config
check "--http, malformed" 2 1 "http\.listen: expected PORT, :PORT, HOST:PORT" "${BASE[@]}" \
    --http ::1:9464 --check-config

echo "informational runs: exit 0"
check "--version" 0 0 "$VERSION" --version
check "--help" 0 0 "--until-end" --help
cp "$CJ_TMP/case$n.out" "$CJ_TMP/help.out"
check "-h" 0 0 "--until-end" -h
cmp -s "$CJ_TMP/help.out" "$CJ_TMP/case$n.out" || fail "-h does not print --help's text"
for flag in -c --brokers --topic --group --pg --reference --table -X --replay-from --until-end \
    --http --check-config --print-config -v --verbose --version --help; do
    grep -Eq -- "(^|[^[:alnum:]-])$flag([^[:alnum:]-]|$)" "$CJ_TMP/case$n.out" ||
        fail "--help does not mention $flag"
done
echo "  ok  --help mentions all 17 contract flags"
check "--check-config, shipped camjoin.conf" 0 0 "ok" \
    -c "$CAMJOIN_SRC/config/camjoin.conf" --reference "$CAMERAS_CSV" --check-config
check "--print-config" 0 0 "^\[kafka\]" -c "$CAMJOIN_SRC/config/camjoin.conf" "${BASE[@]}" \
    -X client.id=printed --print-config
cp "$CJ_TMP/case$n.out" "$CJ_TMP/printed.conf"
grep -q '^conninfo = postgresql://postgres@127.0.0.1:1/x' "$CJ_TMP/printed.conf" ||
    fail "--print-config does not show the --pg value: $(grep -i conninfo "$CJ_TMP/printed.conf")"
check "--print-config output parses back" 0 0 "ok" -c "$CJ_TMP/printed.conf" --check-config

echo "PASS: $n startup cases"
