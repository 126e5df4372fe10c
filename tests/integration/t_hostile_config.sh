#!/usr/bin/env bash
# t_hostile_config — hostile configuration (docs/ARCHITECTURE.md §3, exit codes): every
# usage or configuration error exits 2 with exactly ONE line on stderr that
# names the key, the flag or file:line; nothing on stdout. The expected
# lines are written here from the contract and config.c's message formats,
# and the line numbers from the fixtures. Then repeated flags and the
# precedence rules, read back with --print-config (last occurrence wins;
# CLI > environment > file > default; -X > [kafka.properties]).
#
# Unreadable file: the suite runs as root, which can read a chmod 000 file,
# so "unreadable" is tested with a directory path (fopen succeeds, read
# fails with EISDIR) and a nonexistent path.
#
# Every case runs even when an earlier one fails; the failures are listed at
# the end (so one daemon bug does not hide the others).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin

unset CAMJOIN_BROKERS CAMJOIN_TOPIC CAMJOIN_GROUP CAMJOIN_PG CAMJOIN_REFERENCE
CAMJOIN=$CAMJOIN_BIN/camjoin
REF=(--reference "$CAMERAS_CSV")
# For the checks that only the full start performs (Kafka properties, HTTP
# address): Kafka and PostgreSQL unreachable, so a configuration error that
# slips through shows up as exit 1 instead of 2.
START=("${REF[@]}" --brokers 127.0.0.1:1 --pg "postgresql://postgres@127.0.0.1:1/x")
FAILURES=()
n=0 n_ok=0

# expect NAME RC EXPECTED CMD...: runs CMD (timeout 30 s); asserts the exit
# code, and for RC 2 exactly one stderr line equal to "camjoin: EXPECTED" and
# an empty stdout. EXPECTED starting with "~" is an extended regex instead
# (for librdkafka's own wording after the part camjoin controls).
expect() {
    local name=$1 want_rc=$2 want=$3 rc=0 lines got ok=1
    shift 3
    n=$((n + 1))
    timeout 30 "$@" >"$CJ_TMP/c.out" 2>"$CJ_TMP/c.err" </dev/null || rc=$?
    lines=$(grep -c '' "$CJ_TMP/c.err" || true)
    got=$(head -n 1 "$CJ_TMP/c.err")
    if [[ $rc -ne $want_rc ]]; then
        ok=0
    elif [[ $want_rc -eq 2 ]]; then
        if [[ $lines -ne 1 || -s "$CJ_TMP/c.out" ]]; then ok=0; fi
        if [[ $want == "~"* ]]; then
            [[ $got =~ ${want:1} ]] || ok=0
        else
            [[ $got == "camjoin: $want" ]] || ok=0
        fi
    fi
    if ((ok)); then
        n_ok=$((n_ok + 1))
        printf '  ok  %-46s exit %d  %s\n' "$name" "$rc" "$(cut -c1-100 <<<"$got")"
    else
        local desc="'camjoin: $want'"
        [[ $want == "~"* ]] && desc="a line matching /${want:1}/"
        [[ $want_rc -ne 2 ]] && desc="(any output)"
        FAILURES+=("$name: expected exit $want_rc and $desc; got exit $rc, $lines stderr line(s): $(head -c 400 "$CJ_TMP/c.err" | tr '\n' '|') stdout: $(head -c 100 "$CJ_TMP/c.out")")
        printf '  FAIL %-45s exit %d  %s\n' "$name" "$rc" "$(head -c 300 "$CJ_TMP/c.err" | tr '\n' '|')"
    fi
}
conf() {  # NAME LINES...: writes $CJ_TMP/NAME.conf, one argument a line
    local f=$CJ_TMP/$1.conf
    shift
    printf '%s\n' "$@" >"$f"
}

echo "configuration file errors: FILE:LINE: key: problem"
conf unknown '# comment on line 1' '[kafka]' 'topic = t' '' '[batch]' 'max_rowz = 5'
expect "unknown key" 2 "$CJ_TMP/unknown.conf:6: unknown key \"batch.max_rowz\"" \
    "$CAMJOIN" -c "$CJ_TMP/unknown.conf" --check-config "${REF[@]}"
conf section '[kafka]' 'topic = t' '[nonsense]' 'x = 1'
expect "unknown section" 2 "$CJ_TMP/section.conf:4: unknown section [nonsense]" \
    "$CAMJOIN" -c "$CJ_TMP/section.conf" --check-config "${REF[@]}"
conf outside 'topic = t'
expect "key outside any section" 2 "$CJ_TMP/outside.conf:1: key \"topic\" is outside any [section]" \
    "$CAMJOIN" -c "$CJ_TMP/outside.conf" --check-config "${REF[@]}"
conf syntax '[kafka]' '; a comment' 'topic t'
expect "syntax error" 2 "$CJ_TMP/syntax.conf:3: syntax error (expected [section] or name = value)" \
    "$CAMJOIN" -c "$CJ_TMP/syntax.conf" --check-config "${REF[@]}"
conf dur '[dedup]' 'window = 10 minutes'
expect "bad duration" 2 "$CJ_TMP/dur.conf:2: dedup.window: bad duration \"10 minutes\" (use e.g. 250ms, 10s, 10m, 2h)" \
    "$CAMJOIN" -c "$CJ_TMP/dur.conf" --check-config "${REF[@]}"
conf negdur '[postgres]' 'retry_max = -5s'
expect "negative duration" 2 "$CJ_TMP/negdur.conf:2: postgres.retry_max: bad duration \"-5s\" (use e.g. 250ms, 10s, 10m, 2h)" \
    "$CAMJOIN" -c "$CJ_TMP/negdur.conf" --check-config "${REF[@]}"
conf zerowin '[dedup]' 'window = 0'
expect "duration out of range" 2 "$CJ_TMP/zerowin.conf:2: dedup.window: must be between 1ms and 24h, got \"0\"" \
    "$CAMJOIN" -c "$CJ_TMP/zerowin.conf" --check-config "${REF[@]}"
conf num '[batch]' 'max_rows = 12abc'
expect "bad number" 2 "$CJ_TMP/num.conf:2: batch.max_rows: bad integer \"12abc\"" \
    "$CAMJOIN" -c "$CJ_TMP/num.conf" --check-config "${REF[@]}"
conf overflow '[batch]' 'max_buffered = 99999999999999999999'
expect "number overflowing int64" 2 "$CJ_TMP/overflow.conf:2: batch.max_buffered: bad integer \"99999999999999999999\"" \
    "$CAMJOIN" -c "$CJ_TMP/overflow.conf" --check-config "${REF[@]}"
conf range '[batch]' 'max_rows = 0'
expect "number out of range" 2 "$CJ_TMP/range.conf:2: batch.max_rows: must be between 1 and 10000000, got \"0\"" \
    "$CAMJOIN" -c "$CJ_TMP/range.conf" --check-config "${REF[@]}"
conf size '[event]' 'max_message_bytes = 1 MiB'
expect "bad size" 2 "$CJ_TMP/size.conf:2: event.max_message_bytes: bad size \"1 MiB\" (use e.g. 1048576, 512KiB, 1MiB, 2G)" \
    "$CAMJOIN" -c "$CJ_TMP/size.conf" --check-config "${REF[@]}"
conf smallsize '[event]' 'max_message_bytes = 100'
expect "size out of range" 2 "$CJ_TMP/smallsize.conf:2: event.max_message_bytes: must be between 1KiB and 1GiB, got \"100\"" \
    "$CAMJOIN" -c "$CJ_TMP/smallsize.conf" --check-config "${REF[@]}"
conf enum '[join]' 'on_miss = ignore'
expect "bad enum value" 2 "$CJ_TMP/enum.conf:2: join.on_miss: bad value \"ignore\" (one of: keep, drop, dead-letter)" \
    "$CAMJOIN" -c "$CJ_TMP/enum.conf" --check-config "${REF[@]}"
conf empty '[kafka]' 'brokers ='
expect "empty required string" 2 "$CJ_TMP/empty.conf:2: kafka.brokers: must not be empty" \
    "$CAMJOIN" -c "$CJ_TMP/empty.conf" --check-config "${REF[@]}"
# a line longer than inih's 64 KiB limit must be reported at ITS line (2)
{ printf '[kafka]\ntopic = '; head -c 70000 /dev/zero | tr '\0' t; printf '\n'; } >"$CJ_TMP/long.conf"
expect "line longer than 64 KiB" 2 "~^camjoin: $CJ_TMP/long\\.conf:2: " \
    "$CAMJOIN" -c "$CJ_TMP/long.conf" --check-config "${REF[@]}"
expect "config path is a directory" 2 "$CJ_TMP: cannot read: Is a directory" \
    "$CAMJOIN" -c "$CJ_TMP" --check-config "${REF[@]}"
expect "config file does not exist" 2 "$CJ_TMP/absent.conf: cannot open: No such file or directory" \
    "$CAMJOIN" -c "$CJ_TMP/absent.conf" --check-config "${REF[@]}"

echo "command line and environment errors: the flag or variable"
expect "--set unknown key" 2 '--set: unknown key "nope.key"' "$CAMJOIN" --set nope.key=1 --check-config "${REF[@]}"
expect "--set without =" 2 '--set: expected key=value, got "batch.max_rows"' \
    "$CAMJOIN" --set batch.max_rows --check-config "${REF[@]}"
expect "--set bad number" 2 '--set: batch.max_rows: bad integer "x"' \
    "$CAMJOIN" --set batch.max_rows=x --check-config "${REF[@]}"
expect "--set bad duration" 2 '--set: batch.max_wait: bad duration "5 s" (use e.g. 250ms, 10s, 10m, 2h)' \
    "$CAMJOIN" --set "batch.max_wait=5 s" --check-config "${REF[@]}"
expect "flag without its value (last)" 2 '--topic: requires a value' "$CAMJOIN" --check-config "${REF[@]}" --topic
expect "flag followed by another flag" 2 '--topic: requires a value' "$CAMJOIN" --topic --group g --check-config "${REF[@]}"
expect "value given to a switch" 2 '--until-end: takes no value' "$CAMJOIN" --until-end=yes --check-config "${REF[@]}"
expect "unknown long option" 2 'unknown option --frobnicate (see --help)' "$CAMJOIN" --frobnicate=1 --check-config "${REF[@]}"
expect "unknown short option" 2 'unknown option -Q (see --help)' "$CAMJOIN" -Q --check-config "${REF[@]}"
expect "stray argument" 2 'unexpected argument "stray" (see --help)' "$CAMJOIN" --check-config "${REF[@]}" stray
expect "empty --table" 2 '--table: must not be empty' "$CAMJOIN" --table '' --check-config "${REF[@]}"
expect "bad --replay-from" 2 '--replay-from: bad spec "2:abc" (use earliest, latest, OFFSET, P:OFFSET[,P:OFFSET...], @RFC3339, @EPOCH_MS or @-DURATION)' \
    "$CAMJOIN" --replay-from 2:abc --check-config "${REF[@]}"
expect "bad --replay-from time" 2 '--replay-from: bad spec "@2024-13-01T00:00:00Z" (use earliest, latest, OFFSET, P:OFFSET[,P:OFFSET...], @RFC3339, @EPOCH_MS or @-DURATION)' \
    "$CAMJOIN" --replay-from @2024-13-01T00:00:00Z --check-config "${REF[@]}"
expect "empty environment variable" 2 'CAMJOIN_BROKERS: must not be empty' \
    env CAMJOIN_BROKERS= "$CAMJOIN" --check-config "${REF[@]}"
expect "-X without =" 2 '-X: expected key=value, got "novalue"' "$CAMJOIN" -X novalue --check-config "${REF[@]}"
expect "-X with an empty key" 2 '-X: expected key=value, got "=v"' "$CAMJOIN" -X =v --check-config "${REF[@]}"

echo "Kafka properties (checked by librdkafka): the property is named"
expect "-X unknown property" 2 'kafka property no.such.prop=1: No such configuration property: "no.such.prop"' \
    "$CAMJOIN" "${START[@]}" -X no.such.prop=1
expect "-X bad value" 2 'kafka property session.timeout.ms=abc: Invalid value for configuration property "session.timeout.ms"' \
    "$CAMJOIN" "${START[@]}" -X session.timeout.ms=abc
expect "-X eager and cooperative assignors mixed (refused)" 2 \
    'kafka property partition.assignment.strategy=range,cooperative-sticky: eager (range, roundrobin) and cooperative assignors cannot be mixed' \
    "$CAMJOIN" "${START[@]}" -X partition.assignment.strategy=range,cooperative-sticky
conf kprops '[kafka.properties]' 'no.such.prop = 1'
expect "[kafka.properties] unknown property" 2 '~^camjoin: (.*kprops\.conf:2: )?kafka property no\.such\.prop=1: No such configuration property' \
    "$CAMJOIN" -c "$CJ_TMP/kprops.conf" "${START[@]}"
# --check-config promises "validate the configuration" (exit 2 if invalid):
# it must catch what a real start would reject as a configuration error.
expect "--check-config with -X unknown property" 2 '~^camjoin: .*no\.such\.prop' \
    "$CAMJOIN" --check-config "${REF[@]}" -X no.such.prop=1
expect "--check-config with mixed assignors" 2 '~^camjoin: .*cannot be mixed' \
    "$CAMJOIN" --check-config "${REF[@]}" -X partition.assignment.strategy=roundrobin,cooperative-sticky
expect "--check-config with a cooperative assignor (supported)" 0 '~^configuration ok' \
    "$CAMJOIN" --check-config "${REF[@]}" -X partition.assignment.strategy=cooperative-sticky
expect "--http without a port (daemon start)" 2 'http.listen: expected PORT, :PORT, HOST:PORT or [ADDR]:PORT (e.g. 127.0.0.1:9464), got "notanaddr"' \
    "$CAMJOIN" "${START[@]}" --http notanaddr
expect "--check-config with --http without a port" 2 '~^camjoin: (--http|http\.listen).*notanaddr' \
    "$CAMJOIN" --check-config "${REF[@]}" --http notanaddr

echo "repeated flags and precedence (read back with --print-config)"
# pc SECTION KEY CMD...: the value of KEY in [SECTION] of --print-config's INI
pc() {
    local sec=$1 key=$2 out
    shift 2
    # --print-config validates like --check-config: the reference CSV must load
    out=$("$@" "${REF[@]}" --print-config 2>"$CJ_TMP/pc.err") || { echo "exit $?: $(cat "$CJ_TMP/pc.err")"; return; }
    awk -v sec="$sec" -v k="$key" '
        /^\[/ { cur = substr($0, 2, length($0) - 2); next }
        cur == sec && $1 == k { sub(/^[^=]*= ?/, ""); print; exit }' <<<"$out"
}
same() {  # NAME EXPECTED ACTUAL: like assert_eq, but recorded
    n=$((n + 1))
    if [[ "$2" == "$3" ]]; then
        n_ok=$((n_ok + 1))
        printf '  ok  %-58s %s\n' "$1" "$3"
    else
        FAILURES+=("$1: expected '$2', got '$3'")
        printf '  FAIL %-57s expected %s, got %s\n' "$1" "$2" "$3"
    fi
}
conf prec '[kafka]' 'topic = from-file' 'group = from-file' '[kafka.properties]' 'client.id = from-file'
conf other '[kafka]' 'topic = other-file'
same "--topic twice: the last wins" b "$(pc kafka topic "$CAMJOIN" --topic a --topic b)"
same "--set twice: the last wins" 7 "$(pc batch max_rows "$CAMJOIN" --set batch.max_rows=5 --set batch.max_rows=7)"
same "-X twice: the last wins" 2 "$(pc kafka.properties fetch.wait.max.ms "$CAMJOIN" -X fetch.wait.max.ms=1 -X fetch.wait.max.ms=2)"
same "--set vs flag for one key: the last wins" "via-set" \
    "$(pc kafka topic "$CAMJOIN" --topic via-flag --set kafka.topic=via-set)"
same "-c twice: the last file is read" other-file "$(pc kafka topic "$CAMJOIN" -c "$CJ_TMP/unknown.conf" -c "$CJ_TMP/other.conf")"
same "file only" from-file "$(pc kafka topic "$CAMJOIN" -c "$CJ_TMP/prec.conf")"
same "environment > file" from-env "$(pc kafka topic env CAMJOIN_TOPIC=from-env "$CAMJOIN" -c "$CJ_TMP/prec.conf")"
same "CLI > environment > file" from-cli \
    "$(pc kafka topic env CAMJOIN_TOPIC=from-env "$CAMJOIN" -c "$CJ_TMP/prec.conf" --topic from-cli)"
same "file value kept for keys not overridden" from-file \
    "$(pc kafka group env CAMJOIN_TOPIC=from-env "$CAMJOIN" -c "$CJ_TMP/prec.conf" --topic from-cli)"
same "-X > [kafka.properties], even before -c" from-cli \
    "$(pc kafka.properties client.id "$CAMJOIN" -X client.id=from-cli -c "$CJ_TMP/prec.conf")"
conf semi '[kafka]' 'topic = a;b # not a comment'
same "';' and '#' inside a value are kept" "a;b # not a comment" "$(pc kafka topic "$CAMJOIN" -c "$CJ_TMP/semi.conf")"
expect "an invalid earlier occurrence is still an error" 2 '--set: batch.max_rows: bad integer "abc"' \
    "$CAMJOIN" --set batch.max_rows=abc --set batch.max_rows=5 --check-config "${REF[@]}"
expect "--until-end with --replay-from latest" 0 "" \
    "$CAMJOIN" --until-end --replay-from latest --check-config "${REF[@]}"

echo "secrets never printed by --print-config (each secret a unique token)"
# libpq keywords password and sslpassword (the client key's passphrase), in
# keyword form (also quoted, with blanks around '=') and URI form (userinfo
# and query); librdkafka properties holding passwords, secrets and an inline
# private key. Every other part of the value must survive.
"$CAMJOIN" --print-config "${REF[@]}" \
    --pg "host=db.example user=camjoin password = 'Tok1 en' sslpassword=Tok2" \
    -X sasl.password=Tok3 -X ssl.key.password=Tok4 -X ssl.keystore.password=Tok5 \
    -X ssl.key.pem=Tok7 -X client.id=visible-id \
    >"$CJ_TMP/secrets1.ini" 2>&1 || true
# a secret property this librdkafka refuses (OAuth/OIDC is not in Debian's
# 2.0.2 build): exit 2, and the error line does not echo the value either
rc=0
"$CAMJOIN" --print-config "${REF[@]}" -X sasl.oauthbearer.client.secret=Tok6 \
    >"$CJ_TMP/secrets3.ini" 2>&1 || rc=$?
same "a refused secret property: exit status" 2 "$rc"
"$CAMJOIN" --print-config "${REF[@]}" \
    --pg "postgresql://camjoin:Tok8@db.example:5432/camjoin?sslmode=verify-full&password=Tok9&sslpassword=TokA" \
    >"$CJ_TMP/secrets2.ini" 2>&1 || true
for t in "Tok1 en" Tok2 Tok3 Tok4 Tok5 Tok6 Tok7 Tok8 Tok9 TokA; do
    same "secret '$t' absent from --print-config" 0 "$(cat "$CJ_TMP"/secrets[123].ini | grep -cF -- "$t" || true)"
done
same "the rest of a keyword conninfo is kept" "host=db.example user=camjoin password = ****" \
    "$(sed -nE 's/^conninfo = (.*password = [^ ]*).*/\1/p' "$CJ_TMP/secrets1.ini")"
same "the rest of a URI conninfo is kept" "postgresql://camjoin:****@db.example:5432/camjoin?sslmode=verify-full&password=****" \
    "$(sed -nE 's/^conninfo = (.*password=[^&]*).*/\1/p' "$CJ_TMP/secrets2.ini" | sed 's/&sslpassword.*//')"
same "a non-secret Kafka property is shown" "visible-id" "$(pc kafka.properties client.id "$CAMJOIN" -X client.id=visible-id)"
# A malformed conninfo: libpq's parse error quotes the whole URI, password
# included; camjoin must not pass that on to stderr (the journal). It is
# also a configuration error, so --check-config must report it (exit 2).
timeout 30 "$CAMJOIN" "${REF[@]}" --brokers 127.0.0.1:1 --pg 'postgresql://camjoin:TokB@[::1/camjoin' \
    >/dev/null 2>"$CJ_TMP/badpg.err" </dev/null || true
same "malformed URI: password absent from the error" 0 "$(grep -cF TokB "$CJ_TMP/badpg.err" || true)"
expect "--check-config with a malformed conninfo" 2 '~^camjoin: (--pg|postgres\.conninfo)' \
    "$CAMJOIN" --check-config "${REF[@]}" --pg "host=db password='unterminated"

echo "FIGURES hostile_config: cases=$n passed=$n_ok failed=${#FAILURES[@]}"
if ((${#FAILURES[@]})); then
    printf 'FAILED: %s\n' "${FAILURES[@]}" >&2
    fail "${#FAILURES[@]} of $n configuration cases failed (listed above)"
fi
echo "PASS: t_hostile_config ($n cases)"
