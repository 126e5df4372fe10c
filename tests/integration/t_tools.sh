#!/usr/bin/env bash
# t_tools.sh — camjoin-mock-kafka and camjoin-gen checked against each other
# and against kcat: the generator's summary line must equal what its manifest
# says and what a plain Kafka consumer reads back, exactly.
#
# Why the mock: the mock is one of the tools under test (its control
# commands, its shutdown), the one CAMJOIN_KAFKA=mock and f_request_errors
# rely on. The generator is checked on a real broker by every other test.
#
# Env: CAMJOIN_BIN (build dir with the binaries), CAMJOIN_SRC (source tree).
set -euo pipefail
export LC_ALL=C

: "${CAMJOIN_BIN:?set CAMJOIN_BIN to the build directory}"
: "${CAMJOIN_SRC:?set CAMJOIN_SRC to the source directory}"
MOCK="$CAMJOIN_BIN/camjoin-mock-kafka"
GEN="$CAMJOIN_BIN/camjoin-gen"
CAMERAS="$CAMJOIN_SRC/config/cameras.csv"

tmp=$(mktemp -d)
mock_pid=
cleanup() {
    if [ -n "$mock_pid" ]; then
        kill "$mock_pid" 2>/dev/null || true
        wait "$mock_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "t_tools: FAIL: $*" >&2
    for f in mock.err gen.err; do
        [ -s "$tmp/$f" ] && { echo "--- $f (tail)" >&2; tail -n 20 "$tmp/$f" >&2; }
    done
    exit 1
}
expect_eq() { # what actual expected
    [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}
command -v kcat >/dev/null || fail "kcat is not installed"

# ---- mock broker: 3 brokers, topic of 4 partitions, control fifo on stdin ----
mkfifo "$tmp/ctl"
exec 3<>"$tmp/ctl" # read-write: opening does not block, and no EOF while we hold it
"$MOCK" --brokers 3 --topic events --partitions 4 <"$tmp/ctl" >"$tmp/mock.out" 2>"$tmp/mock.err" &
mock_pid=$!
for _ in $(seq 100); do
    [ -n "$(head -n 1 "$tmp/mock.out")" ] && break
    kill -0 "$mock_pid" 2>/dev/null || fail "camjoin-mock-kafka exited at startup"
    sleep 0.1
done
BOOT=$(head -n 1 "$tmp/mock.out")
[[ "$BOOT" =~ ^127\.0\.0\.1:[0-9]+(,127\.0\.0\.1:[0-9]+){2}$ ]] || fail "bootstrap line '$BOOT'"

# ctl COMMAND PATTERN: send one command, wait for its one-line answer.
ctl() {
    local before answer
    before=$(wc -l <"$tmp/mock.out")
    printf '%s\n' "$1" >&3
    for _ in $(seq 100); do
        [ "$(wc -l <"$tmp/mock.out")" -gt "$before" ] && break
        sleep 0.05
    done
    answer=$(sed -n "$((before + 1))p" "$tmp/mock.out")
    # shellcheck disable=SC2053
    [[ "$answer" == $2 ]] || fail "mock command '$1' answered '$answer', expected '$2'"
}
ctl "broker-down 2" "ok"
ctl "broker-up 2" "ok"
ctl "broker-down 4" "error: *"
ctl "frobnicate" "error: unknown command*"
ctl "topic-create extra 2" "ok"
ctl "topic-create extra 2" "error: *"
ctl "request-errors 0 6" "error: *"
meta=$(kcat -b "$BOOT" -L)
grep -q 'topic "events" with 4 partitions' <<<"$meta" || fail "events topic metadata: $meta"
grep -q 'topic "extra" with 2 partitions' <<<"$meta" || fail "extra topic metadata: $meta"

# ---- generator, with faults: broker 2 down at start, 3 Produce errors ------
ctl "request-errors 0 6 3" "ok" # NOT_LEADER_FOR_PARTITION x3 on Produce
ctl "broker-down 2" "ok"
"$GEN" --brokers "$BOOT" --topic events --count 2000 --seed 7 --dup-ratio 0.1 \
    --malformed-ratio 0.05 --unknown-camera-ratio 0.02 --cameras "$CAMERAS" \
    --manifest "$tmp/M.csv" >"$tmp/summary.json" 2>"$tmp/gen.err" &
gen_pid=$!
sleep 1
ctl "broker-up 2" "ok"
gen_rc=0
wait "$gen_pid" || gen_rc=$?
expect_eq "camjoin-gen exit status" "$gen_rc" 0
expect_eq "summary lines" "$(wc -l <"$tmp/summary.json")" 1
S=$(cat "$tmp/summary.json")
[[ "$S" =~ ^\{\"sent\":[0-9]+,\"valid_new\":[0-9]+,\"duplicates\":[0-9]+,\"malformed\":[0-9]+,\"unknown_camera\":[0-9]+,\"malformed_by_reason\":\{.*\},\"elapsed_s\":[0-9]+\.[0-9]{3},\"rate\":[0-9]+\}$ ]] ||
    fail "summary format: $S"
num() { grep -o "\"$1\":[0-9]*" <<<"$S" | awk -F: '{ print $NF }'; }
sent=$(num sent) valid=$(num valid_new) dups=$(num duplicates)
bad=$(num malformed) unknown=$(num unknown_camera)
expect_eq "sent" "$sent" 2000
expect_eq "sent = valid_new + duplicates + malformed" "$((valid + dups + bad))" "$sent"
# The ratios must have done something, or the checks below prove little.
for v in valid dups bad unknown; do [ "${!v}" -gt 0 ] || fail "summary $v is 0: $S"; done

# ---- summary vs manifest ----------------------------------------------------
M="$tmp/M.csv"
expect_eq "manifest header" "$(head -n 1 "$M")" "seq,kind,event_id,camera_id,reason"
expect_eq "manifest rows" "$(tail -n +2 "$M" | wc -l)" "$sent"
expect_eq "manifest seq" "$(tail -n +2 "$M" | awk -F, '$1 != NR - 1' | wc -l)" 0
mcount() { tail -n +2 "$M" | awk -F, "$1" | wc -l; }
expect_eq "manifest valid" "$(mcount '$2 == "valid"')" "$valid"
expect_eq "manifest distinct valid ids" "$(tail -n +2 "$M" | awk -F, '$2 == "valid" { print $3 }' | sort -u | wc -l)" "$valid"
expect_eq "manifest duplicates" "$(mcount '$2 == "duplicate"')" "$dups"
expect_eq "manifest malformed" "$(mcount '$2 == "malformed"')" "$bad"
expect_eq "manifest unknown cameras" "$(mcount '$2 == "valid" && $4 ~ /^unknown-cam-/')" "$unknown"
expect_eq "manifest duplicates re-send earlier ids" \
    "$(tail -n +2 "$M" | awk -F, '$2 == "valid" { seen[$3] = 1 } $2 == "duplicate" && !seen[$3]' | wc -l)" 0
# A re-send picks one of the last 1000 valid events (ids count up from 0).
read -r min_back max_back < <(tail -n +2 "$M" | awk -F, '$2 == "valid" { n++ }
    $2 == "duplicate" { split($3, a, "-"); b = n - 1 - a[3]
                        if (min == "" || b < min) min = b; if (b > max) max = b }
    END { print min, max }')
[ "$min_back" -ge 0 ] && [ "$max_back" -lt 1000 ] && [ "$max_back" -ge 500 ] ||
    fail "re-sends reach back $min_back..$max_back valid events, expected within 0..999 and beyond 500"
expect_eq "manifest ids" "$(mcount '($2 == "malformed") != ($3 ~ /^bad-7-[0-9]+$/) || ($2 != "malformed" && $3 !~ /^ev-7-[0-9]+$/)')" 0
reasons="invalid_json not_object missing_field:event_ts missing_field:camera_id bad_type:confidence
bad_value:confidence bad_value:event_ts bad_type:object_count empty duplicate_key"
for r in $reasons; do
    expect_eq "manifest reason $r" "$(mcount "\$5 == \"$r\"")" "$(num "$r")"
done

# ---- summary and manifest vs what a consumer reads -------------------------
C="$tmp/consumed.tsv"
kcat -b "$BOOT" -t events -C -e -q -o beginning -f '%k\t%s\n' >"$C"
expect_eq "consumed messages" "$(wc -l <"$C")" "$sent"
expect_eq "consumed keys = manifest ids" \
    "$(cut -f1 "$C" | sort | md5sum)" "$(tail -n +2 "$M" | cut -d, -f3 | sort | md5sum)"
awk -F'\t' '$1 ~ /^ev-7-/' "$C" >"$tmp/ev.tsv"
ev() { cat "$tmp/ev.tsv"; }
expect_eq "consumed distinct event ids" "$(ev | cut -f1 | sort -u | wc -l)" "$valid"
expect_eq "consumed event messages" "$(ev | wc -l)" "$((valid + dups))"
expect_eq "re-sends are byte-identical" "$(ev | sort -u | wc -l)" "$valid"
expect_eq "value event_id = key" "$(ev | awk -F'\t' 'index($2, "{\"event_id\":\"" $1 "\",") != 1' | wc -l)" 0
expect_eq "consumed (id,camera) = manifest" \
    "$(ev | sed -E 's/^([^\t]*)\t.*"camera_id":"([^"]*)".*/\1,\2/' | sort -u | md5sum)" \
    "$(tail -n +2 "$M" | awk -F, '$2 == "valid" { print $3 "," $4 }' | sort | md5sum)"
expect_eq "consumed unknown cameras" "$(ev | sort -u | grep -c '"camera_id":"unknown-cam-')" "$unknown"
for form in '"event_ts":"[0-9T:.-]*Z"' '"event_ts":"[0-9T:.-]*[+-][0-9][0-9]:[0-9][0-9]"' '"event_ts":[0-9]{13},'; do
    grep -Eq "$form" "$tmp/ev.tsv" || fail "no event_ts of the form $form"
done

# Each malformed message has the shape its manifest reason says.
awk -F, 'NR > 1 && $2 == "malformed" { print $3 "\t" $5 }' "$M" | sort >"$tmp/reasons"
awk -F'\t' '$1 ~ /^bad-7-/' "$C" | sort | join -t $'\t' "$tmp/reasons" - >"$tmp/bad.tsv"
expect_eq "malformed joined" "$(wc -l <"$tmp/bad.tsv")" "$bad"
shape_mismatch=$(awk -F'\t' '
    function has(s) { return index($3, s) > 0 }
    $2 == "invalid_json"            { ok = $3 == "{\"event_id\": \"x\"" }
    $2 == "not_object"              { ok = $3 == "[1,2]" }
    $2 == "empty"                   { ok = $3 == "" }
    $2 == "missing_field:event_ts"  { ok = !has("\"event_ts\"") && has("\"camera_id\"") }
    $2 == "missing_field:camera_id" { ok = !has("\"camera_id\"") && has("\"event_ts\"") }
    $2 == "bad_type:confidence"     { ok = has(",\"confidence\":\"high\"}") }
    $2 == "bad_value:confidence"    { ok = has(",\"confidence\":1.5}") }
    $2 == "bad_value:event_ts"      { ok = has("\"event_ts\":\"2026-13-01T00:00:00Z\"") }
    $2 == "bad_type:object_count"   { ok = has(",\"object_count\":1.5}") }
    $2 == "duplicate_key"           { ok = has("\"event_type\":\"person\",\"event_type\":\"vehicle\"}") }
    !ok { print; n++ } END { exit n > 0 }' "$tmp/bad.tsv") || fail "malformed shapes: $shape_mismatch"

# ---- determinism, usage errors, unreachable broker --------------------------
"$GEN" --brokers "$BOOT" --topic again --count 2000 --seed 7 --dup-ratio 0.1 \
    --malformed-ratio 0.05 --unknown-camera-ratio 0.02 --cameras "$CAMERAS" \
    --manifest "$tmp/M2.csv" >/dev/null 2>"$tmp/gen.err" || fail "second camjoin-gen run"
cmp -s "$M" "$tmp/M2.csv" || fail "same seed gave a different manifest"

rc=0
"$GEN" --brokers "$BOOT" --topic events --count 1 --dup-ratio 2 2>"$tmp/gen.err" || rc=$?
expect_eq "usage error exit status" "$rc" 2
grep -q -- '--dup-ratio' "$tmp/gen.err" || fail "usage error does not name --dup-ratio"

rc=0
"$GEN" --brokers 127.0.0.1:1 --topic events --count 3 --cameras "$CAMERAS" \
    -X message.timeout.ms=1000 >"$tmp/summary2.json" 2>"$tmp/gen.err" || rc=$?
expect_eq "unreachable broker exit status" "$rc" 1
grep -q '"sent":3,' "$tmp/summary2.json" || fail "no summary after failed deliveries"

# ---- mock shutdown on SIGTERM -------------------------------------------------
kill -TERM "$mock_pid"
rc=0
wait "$mock_pid" || rc=$?
mock_pid=
expect_eq "camjoin-mock-kafka exit status after SIGTERM" "$rc" 0
echo "t_tools: ok ($sent messages: $valid valid, $dups duplicates, $bad malformed, $unknown unknown cameras)"
