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
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin-mock-kafka camjoin-gen
GEN="$CAMJOIN_BIN/camjoin-gen"
CAMERAS="$CAMJOIN_SRC/config/cameras.csv"
# on failure lib.sh's EXIT trap prints gen.err and the mock's kafka.err
command -v kcat >/dev/null || fail "kcat is not installed"

# ---- mock broker: 3 brokers, topic of 4 partitions, control fifo on stdin ----
kafka_start_mock events 4 --brokers 3
BOOT=$KAFKA_BROKERS
[[ "$BOOT" =~ ^127\.0\.0\.1:[0-9]+(,127\.0\.0\.1:[0-9]+){2}$ ]] || fail "bootstrap line '$BOOT'"

# ctl COMMAND PATTERN: send one command, wait for its one-line answer.
# (kafka_ctl takes only "ok"; here the error answers are checked too.)
ctl() {
    local before answer
    before=$(wc -l <"$CJ_TMP/kafka.out")
    printf '%s\n' "$1" >&"$KAFKA_FD"
    wait_for -i 0.05 5 -- lines_over "$CJ_TMP/kafka.out" "$before" || true
    answer=$(sed -n "$((before + 1))p" "$CJ_TMP/kafka.out")
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
    --manifest "$CJ_TMP/M.csv" >"$CJ_TMP/summary.json" 2>"$CJ_TMP/gen.err" &
gen_pid=$!
sleep 1
ctl "broker-up 2" "ok"
gen_rc=0
wait "$gen_pid" || gen_rc=$?
assert_eq "camjoin-gen exit status" 0 "$gen_rc"
assert_eq "summary lines" 1 "$(wc -l <"$CJ_TMP/summary.json")"
S=$(cat "$CJ_TMP/summary.json")
[[ "$S" =~ ^\{\"sent\":[0-9]+,\"valid_new\":[0-9]+,\"duplicates\":[0-9]+,\"malformed\":[0-9]+,\"unknown_camera\":[0-9]+,\"malformed_by_reason\":\{.*\},\"elapsed_s\":[0-9]+\.[0-9]{3},\"rate\":[0-9]+\}$ ]] ||
    fail "summary format: $S"
num() { grep -o "\"$1\":[0-9]*" <<<"$S" | awk -F: '{ print $NF }'; }
sent=$(num sent) valid=$(num valid_new) dups=$(num duplicates)
bad=$(num malformed) unknown=$(num unknown_camera)
assert_eq "sent" 2000 "$sent"
assert_eq "sent = valid_new + duplicates + malformed" "$sent" "$((valid + dups + bad))"
# The ratios must have done something, or the checks below prove little.
for v in valid dups bad unknown; do [ "${!v}" -gt 0 ] || fail "summary $v is 0: $S"; done

# ---- summary vs manifest ----------------------------------------------------
M="$CJ_TMP/M.csv"
assert_eq "manifest header" "seq,kind,event_id,camera_id,reason" "$(head -n 1 "$M")"
assert_eq "manifest rows" "$sent" "$(tail -n +2 "$M" | wc -l)"
assert_eq "manifest seq" 0 "$(tail -n +2 "$M" | awk -F, '$1 != NR - 1' | wc -l)"
mcount() { tail -n +2 "$M" | awk -F, "$1" | wc -l; }
assert_eq "manifest valid" "$valid" "$(mcount '$2 == "valid"')"
assert_eq "manifest distinct valid ids" "$valid" "$(tail -n +2 "$M" | awk -F, '$2 == "valid" { print $3 }' | sort -u | wc -l)"
assert_eq "manifest duplicates" "$dups" "$(mcount '$2 == "duplicate"')"
assert_eq "manifest malformed" "$bad" "$(mcount '$2 == "malformed"')"
assert_eq "manifest unknown cameras" "$unknown" "$(mcount '$2 == "valid" && $4 ~ /^unknown-cam-/')"
assert_eq "manifest duplicates re-send earlier ids" 0 \
    "$(tail -n +2 "$M" | awk -F, '$2 == "valid" { seen[$3] = 1 } $2 == "duplicate" && !seen[$3]' | wc -l)"
# A re-send picks one of the last 1000 valid events (ids count up from 0).
read -r min_back max_back < <(tail -n +2 "$M" | awk -F, '$2 == "valid" { n++ }
    $2 == "duplicate" { split($3, a, "-"); b = n - 1 - a[3]
                        if (min == "" || b < min) min = b; if (b > max) max = b }
    END { print min, max }')
[ "$min_back" -ge 0 ] && [ "$max_back" -lt 1000 ] && [ "$max_back" -ge 500 ] ||
    fail "re-sends reach back $min_back..$max_back valid events, expected within 0..999 and beyond 500"
assert_eq "manifest ids" 0 "$(mcount '($2 == "malformed") != ($3 ~ /^bad-7-[0-9]+$/) || ($2 != "malformed" && $3 !~ /^ev-7-[0-9]+$/)')"
reasons="invalid_json not_object missing_field:event_ts missing_field:camera_id bad_type:confidence
bad_value:confidence bad_value:event_ts bad_type:object_count empty duplicate_key"
for r in $reasons; do
    assert_eq "manifest reason $r" "$(num "$r")" "$(mcount "\$5 == \"$r\"")"
done

# ---- summary and manifest vs what a consumer reads -------------------------
C="$CJ_TMP/consumed.tsv"
kcat -b "$BOOT" -t events -C -e -q -o beginning -f '%k\t%s\n' >"$C"
assert_eq "consumed messages" "$sent" "$(wc -l <"$C")"
assert_eq "consumed keys = manifest ids" \
    "$(tail -n +2 "$M" | cut -d, -f3 | sort | md5sum)" "$(cut -f1 "$C" | sort | md5sum)"
awk -F'\t' '$1 ~ /^ev-7-/' "$C" >"$CJ_TMP/ev.tsv"
ev() { cat "$CJ_TMP/ev.tsv"; }
assert_eq "consumed distinct event ids" "$valid" "$(ev | cut -f1 | sort -u | wc -l)"
assert_eq "consumed event messages" "$((valid + dups))" "$(ev | wc -l)"
assert_eq "re-sends are byte-identical" "$valid" "$(ev | sort -u | wc -l)"
assert_eq "value event_id = key" 0 "$(ev | awk -F'\t' 'index($2, "{\"event_id\":\"" $1 "\",") != 1' | wc -l)"
assert_eq "consumed (id,camera) = manifest" \
    "$(tail -n +2 "$M" | awk -F, '$2 == "valid" { print $3 "," $4 }' | sort | md5sum)" \
    "$(ev | sed -E 's/^([^\t]*)\t.*"camera_id":"([^"]*)".*/\1,\2/' | sort -u | md5sum)"
assert_eq "consumed unknown cameras" "$unknown" "$(ev | sort -u | grep -c '"camera_id":"unknown-cam-')"
for form in '"event_ts":"[0-9T:.-]*Z"' '"event_ts":"[0-9T:.-]*[+-][0-9][0-9]:[0-9][0-9]"' '"event_ts":[0-9]{13},'; do
    grep -Eq "$form" "$CJ_TMP/ev.tsv" || fail "no event_ts of the form $form"
done

# Each malformed message has the shape its manifest reason says.
awk -F, 'NR > 1 && $2 == "malformed" { print $3 "\t" $5 }' "$M" | sort >"$CJ_TMP/reasons"
awk -F'\t' '$1 ~ /^bad-7-/' "$C" | sort | join -t $'\t' "$CJ_TMP/reasons" - >"$CJ_TMP/bad.tsv"
assert_eq "malformed joined" "$bad" "$(wc -l <"$CJ_TMP/bad.tsv")"
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
    !ok { print; n++ } END { exit n > 0 }' "$CJ_TMP/bad.tsv") || fail "malformed shapes: $shape_mismatch"

# ---- determinism, usage errors, unreachable broker --------------------------
"$GEN" --brokers "$BOOT" --topic again --count 2000 --seed 7 --dup-ratio 0.1 \
    --malformed-ratio 0.05 --unknown-camera-ratio 0.02 --cameras "$CAMERAS" \
    --manifest "$CJ_TMP/M2.csv" >/dev/null 2>"$CJ_TMP/gen.err" || fail "second camjoin-gen run"
cmp -s "$M" "$CJ_TMP/M2.csv" || fail "same seed gave a different manifest"

# --ts-text: the same draws (the same manifest), and each event_ts that would
# have been epoch milliseconds is an RFC 3339 "Z" string instead
"$GEN" --brokers "$BOOT" --topic text --count 2000 --seed 7 --dup-ratio 0.1 \
    --malformed-ratio 0.05 --unknown-camera-ratio 0.02 --cameras "$CAMERAS" --ts-text \
    --manifest "$CJ_TMP/M3.csv" >/dev/null 2>"$CJ_TMP/gen.err" || fail "camjoin-gen --ts-text run"
cmp -s "$M" "$CJ_TMP/M3.csv" || fail "--ts-text gave a different manifest"
kcat -b "$BOOT" -t text -C -e -q -o beginning -f '%k\t%s\n' >"$CJ_TMP/text.tsv"
ZFORM='"event_ts":"[0-9T:.-]*Z"' NFORM='"event_ts":[0-9]{13}[,}]'
assert_eq "--ts-text: messages" "$sent" "$(wc -l <"$CJ_TMP/text.tsv")"
assert_eq "--ts-text: event_ts numbers" 0 "$(grep -Ec "$NFORM" "$CJ_TMP/text.tsv" || true)"
assert_eq "--ts-text: Z strings = Z strings + numbers without it" \
    "$(($(grep -Ec "$ZFORM" "$C") + $(grep -Ec "$NFORM" "$C")))" "$(grep -Ec "$ZFORM" "$CJ_TMP/text.tsv")"

rc=0
"$GEN" --brokers "$BOOT" --topic events --count 1 --dup-ratio 2 2>"$CJ_TMP/gen.err" || rc=$?
assert_eq "usage error exit status" 2 "$rc"
grep -q -- '--dup-ratio' "$CJ_TMP/gen.err" || fail "usage error does not name --dup-ratio"

rc=0
"$GEN" --brokers 127.0.0.1:1 --topic events --count 3 --cameras "$CAMERAS" \
    -X message.timeout.ms=1000 >"$CJ_TMP/summary2.json" 2>"$CJ_TMP/gen.err" || rc=$?
assert_eq "unreachable broker exit status" 1 "$rc"
grep -q '"sent":3,' "$CJ_TMP/summary2.json" || fail "no summary after failed deliveries"

# ---- mock shutdown on SIGTERM -------------------------------------------------
kill -TERM "$KAFKA_MOCK_PID"
rc=0
wait "$KAFKA_MOCK_PID" || rc=$?
KAFKA_MOCK_PID=
assert_eq "camjoin-mock-kafka exit status after SIGTERM" 0 "$rc"
echo "t_tools: ok ($sent messages: $valid valid, $dups duplicates, $bad malformed, $unknown unknown cameras)"
