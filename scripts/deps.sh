# shellcheck shell=bash
# deps.sh — installs the project's Debian packages that are missing, for
# scripts/demo.sh and scripts/test.sh (source it, then call deps_install).
# The one package list is PACKAGES in .ci/run: the build and test tools,
# PostgreSQL 15, kcat, and the JDK and Maven that fetch and run the Apache
# Kafka broker of the tests (tests/kafka/kafka.sh). apt runs only when
# something is missing, and only as root; otherwise the missing packages
# are named and the script exits 1.
deps_install() {  # WHO (the script's name, for messages)
    local root p missing=()
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    eval "$(grep '^PACKAGES=' "$root/.ci/run")"
    for p in $PACKAGES; do
        [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
    done
    ((${#missing[@]} > 0)) || return 0
    if [[ $EUID -ne 0 ]]; then
        echo "$1: missing packages (install them as root): ${missing[*]}" >&2
        exit 1
    fi
    echo "== $1: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}
