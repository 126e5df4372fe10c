#!/usr/bin/env bash
# run.sh — runs every fault scenario, tests/faults/f_*.sh, in name order
# (or only the scripts named as arguments), FAULTS_JOBS (2) at a time: each
# has its own PostgreSQL, brokers, topics and ports, and mostly waits (for
# a broker, a timeout, a rebalance), so two share the 2 cores of CI without
# slowing each other down much; FAULTS_JOBS=1 runs them one after the other.
#
# For each script, as it ends, it prints its figure lines (each scenario prints one line
# starting "FIGURES <name>:" — "SUMMARY" is accepted too; a script printing
# none is represented by its last output line) and PASS/FAIL with the elapsed time; a failing script's output
# tail follows; a script that needs a real broker under CAMJOIN_KAFKA=mock
# (exit 77) is reported as SKIP. Then one final line: "N passed, M failed,
# K skipped". Exit status is 0 only when every script passed or was skipped
# (and at least one passed).
#
# The scripts take their sizes from the environment: FAULTS_SCALE=full for
# the large runs (the default is the CI size), CAMJOIN_BIN for the build to
# test. Full outputs are kept in $FAULTS_LOG_DIR (default: a fresh
# /tmp/camjoin-faults.XXXXXX, printed at the start).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log_dir=${FAULTS_LOG_DIR:-$(mktemp -d /tmp/camjoin-faults.XXXXXX)}
mkdir -p "$log_dir"

if (($#)); then
    scripts=()
    for a in "$@"; do
        [[ -f "$a" ]] && scripts+=("$a") || scripts+=("$here/$(basename "$a" .sh).sh")
    done
else
    shopt -s nullglob
    scripts=("$here"/f_*.sh)
fi
echo "fault scenarios: ${#scripts[@]} script(s), scale ${FAULTS_SCALE:-default}, logs in $log_dir"

jobs_max=${FAULTS_JOBS:-2}
[[ $jobs_max =~ ^[1-9][0-9]*$ ]] || { echo "FAULTS_JOBS must be a positive integer, got '$jobs_max'" >&2; exit 2; }
passed=0 failed=0 skipped=0 failed_names=()
declare -A name_of=() start_of=()
report() {  # PID RC: the figures and the verdict of the script that ran as PID
    local name=${name_of[$1]} rc=$2 secs out
    out=$log_dir/$name.out
    secs=$(($(date +%s) - start_of[$1]))
    unset "name_of[$1]" "start_of[$1]"
    if grep -Eq '^(FIGURES|SUMMARY) ' "$out"; then
        grep -E '^(FIGURES|SUMMARY) ' "$out"
    else
        echo "  (no FIGURES line) $(grep -v '^[[:space:]]*$' "$out" | tail -n 1)"
    fi
    if ((rc == 0)); then
        echo "PASS $name (${secs} s)"
        passed=$((passed + 1))
    elif ((rc == 77)); then  # need_real_kafka under CAMJOIN_KAFKA=mock
        echo "SKIP $name: $(tail -n 1 "$out")"
        skipped=$((skipped + 1))
    else
        echo "FAIL $name (exit $rc, ${secs} s); last lines of $out:"
        tail -n 40 "$out" | sed 's/^/    | /'
        failed=$((failed + 1)) failed_names+=("$name")
    fi
}
reap() {  # waits for one running script and reports it
    local pid rc=0
    wait -n -p pid || rc=$?
    report "$pid" "$rc"
}
for s in "${scripts[@]}"; do
    name=$(basename "$s" .sh)
    if [[ ! -f "$s" ]]; then
        echo "FAIL $name: no such script ($s)"
        failed=$((failed + 1)) failed_names+=("$name")
        continue
    fi
    while ((${#name_of[@]} >= jobs_max)); do reap; done
    bash "$s" >"$log_dir/$name.out" 2>&1 </dev/null &
    name_of[$!]=$name start_of[$!]=$(date +%s)
done
while ((${#name_of[@]} > 0)); do reap; done

echo "$passed passed, $failed failed${failed_names[*]:+ (${failed_names[*]})}, $skipped skipped"
((failed == 0 && passed > 0))
