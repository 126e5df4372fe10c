#!/usr/bin/env bash
# t_install — `cmake --install` puts every file in its FHS place, and what it
# installs works:
#
#   1. DESTDIR=$tmp cmake --install $CAMJOIN_BIN: the sorted list of installed
#      files, with their modes, equals the list written below for the prefix
#      the build was configured with (CMakeCache.txt; the default
#      GNUInstallDirs directories are assumed). The rules, restated here
#      independently of CMakeLists.txt: the config file goes to
#      SYSCONFDIR/camjoin, SYSCONFDIR being /etc for prefix /usr, /etc/opt/X
#      for /opt/X, else PREFIX/etc; the unit to systemd.pc's
#      systemdsystemunitdir for prefix /usr, else PREFIX/lib/systemd/system.
#      Only share/doc/camjoin/docs/ is listed from the source tree's docs/,
#      whose files come and go with the project.
#   2. the installed camjoin runs (--version; --print-config of the installed
#      camjoin.conf);
#   3. the installed unit's ExecStart is the installed binary with -c the
#      installed camjoin.conf;
#   4. the installed man page renders with `groff -man -Tutf8 -ww -z` without
#      a warning, and `man -l` shows it; it is byte for byte what
#      camjoin-gen-man prints;
#   5. every key that `camjoin --print-config` prints and every long flag
#      that `camjoin --help` shows appears in the rendered page (both lists
#      are parsed from those outputs, not written here).
#
# Then a second tree is configured with prefix /usr and built (camjoin, the
# tools and the page only: CAMJOIN_TESTS=OFF; some 15 s on 2 cores), and its
# install is checked the same way (steps 1-4): /etc, not /usr/etc, and
# systemd's unit directory. T_INSTALL_USR=0 skips it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_bin camjoin camjoin-gen-man
for tool in groff man; do command -v "$tool" >/dev/null || fail "$tool not found"; done
export LC_ALL=C

cache_var() { sed -n "s/^$2:[A-Z]*=//p" "$1/CMakeCache.txt"; }

# expected_files PREFIX: "MODE PATH" lines, sorted, as find prints them
expected_files() {
    local p=${1#/} etc unitdir doc f
    case $1 in
        /usr) etc=etc ;;
        /opt/*) etc=etc/$p ;;
        *) etc=$p/etc ;;
    esac
    if [[ $1 == /usr ]]; then
        unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
        unitdir=${unitdir:-/usr/lib/systemd/system}
        unitdir=${unitdir#/}
    else
        unitdir=$p/lib/systemd/system
    fi
    doc=$p/share/doc/camjoin
    {
        cat <<EOF
755 $p/bin/camjoin
755 $p/bin/camjoin-gen
755 $p/bin/camjoin-mock-kafka
644 $etc/camjoin/camjoin.conf
644 $unitdir/camjoin.service
644 $p/share/camjoin/cameras.csv
644 $p/share/camjoin/roles.sql
644 $p/share/camjoin/schema.sql
644 $p/share/man/man1/camjoin.1
644 $doc/README.md
EOF
        for f in "$CAMJOIN_SRC"/docs/*; do echo "644 $doc/docs/${f##*/}"; done
    } | sort -k2
}

# check_install BUILD_DIR: steps 1-4 for one build tree
check_install() {
    local bin=$1 prefix root unit exec_start conf
    prefix=$(cache_var "$bin" CMAKE_INSTALL_PREFIX)
    root=$CJ_TMP/root-${prefix//\//_}
    echo "install of $bin (prefix $prefix) into DESTDIR=$root"
    DESTDIR=$root cmake --install "$bin" >"$CJ_TMP/install.log" 2>&1 ||
        fail "cmake --install failed: $(tail -n 5 "$CJ_TMP/install.log")"
    assert_eq "installed files (mode path)" "$(expected_files "$prefix")" \
        "$(cd "$root" && find . -type f -printf '%m %P\n' | sort -k2)"
    assert_eq "symlinks and other non-files" "" "$(cd "$root" && find . ! -type f ! -type d)"

    assert_eq "installed camjoin --version, first line" \
        "camjoin $(cache_var "$bin" CMAKE_PROJECT_VERSION)" "$("$root$prefix/bin/camjoin" --version | head -n 1)"
    assert_eq "installed camjoin --version, the libraries it runs with" \
        "librdkafka libpq libuv jansson" \
        "$("$root$prefix/bin/camjoin" --version | sed -n '2,$p' | awk '{ print $1 }' | paste -sd' ')"

    unit=$(find "$root" -name camjoin.service)
    conf=$(find "$root" -path '*/camjoin/camjoin.conf' -printf '/%P\n')
    exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
    assert_eq "unit ExecStart" "$prefix/bin/camjoin -c $conf" "$exec_start"
    [[ -x "$root${exec_start%% *}" ]] || fail "ExecStart binary $root${exec_start%% *} is not executable"
    # --print-config validates, reference CSV included: the installed sample
    "$root$prefix/bin/camjoin" -c "$root$conf" --reference "$root$prefix/share/camjoin/cameras.csv" \
        --print-config >"$CJ_TMP/conf.out" 2>&1 ||
        fail "the installed camjoin.conf does not parse: $(head -c 300 "$CJ_TMP/conf.out")"
    assert_eq "installed camjoin.conf = config/camjoin.conf" "" \
        "$(cmp "$root$conf" "$CAMJOIN_SRC/config/camjoin.conf" 2>&1)"

    local page=$root$prefix/share/man/man1/camjoin.1
    assert_eq "groff -man -Tutf8 -ww -z warnings" "" "$(groff -man -Tutf8 -ww -z "$page" 2>&1)"
    man -l "$page" >"$CJ_TMP/man.txt" 2>"$CJ_TMP/man.err" || fail "man -l failed: $(cat "$CJ_TMP/man.err")"
    assert_eq "man -l stderr" "" "$(cat "$CJ_TMP/man.err")"
    grep -q '^NAME' "$CJ_TMP/man.txt" || fail "man -l output has no NAME section"
    assert_eq "installed camjoin.1 = camjoin-gen-man output" "" \
        "$(cmp "$page" <("$bin/camjoin-gen-man") 2>&1)"
    PAGE=$page ROOT=$root PREFIX=$prefix
}

check_install "$CAMJOIN_BIN"

echo "man page against --print-config and --help"
groff -man -Tascii -P-cbou "$PAGE" >"$CJ_TMP/page.txt" 2>/dev/null
keys=$("$ROOT$PREFIX/bin/camjoin" --reference "$ROOT$PREFIX/share/camjoin/cameras.csv" --print-config |
    awk '/^\[/ { sec = substr($0, 2, length($0) - 2); next }
         / = / || / =$/ { if (sec != "kafka.properties") print sec "." $1 }')
flags=$("$ROOT$PREFIX/bin/camjoin" --help | grep -o -E -- '--[a-z][a-z-]*' | sort -u)
(($(wc -l <<<"$keys") >= 10)) || fail "only $(wc -l <<<"$keys") keys parsed from --print-config: $keys"
(($(wc -l <<<"$flags") >= 10)) || fail "only $(wc -l <<<"$flags") flags parsed from --help: $flags"
missing=""
for w in $keys $flags; do
    grep -q -F -w -- "$w" "$CJ_TMP/page.txt" || missing+=" $w"
done
assert_eq "keys ($(wc -l <<<"$keys")) and long flags ($(wc -l <<<"$flags")) missing from the page" "" "$missing"
# each key has its own entry: a line holding the key alone, under CONFIGURATION
sed -n '/^CONFIGURATION/,/^ENVIRONMENT/p' "$CJ_TMP/page.txt" >"$CJ_TMP/page-conf.txt"
missing=""
for w in $keys; do
    grep -q -x -F -- "       $w" "$CJ_TMP/page-conf.txt" || missing+=" $w"
done
assert_eq "keys without an entry in CONFIGURATION" "" "$missing"

if [[ "${T_INSTALL_USR:-1}" == 1 ]]; then
    echo "second tree, prefix /usr"
    cmake -S "$CAMJOIN_SRC" -B "$CJ_TMP/build-usr" -DCMAKE_INSTALL_PREFIX=/usr -DCAMJOIN_TESTS=OFF \
        >"$CJ_TMP/usr-build.log" 2>&1 || fail "configure failed: $(tail -n 5 "$CJ_TMP/usr-build.log")"
    cmake --build "$CJ_TMP/build-usr" -j2 >>"$CJ_TMP/usr-build.log" 2>&1 ||
        fail "build failed: $(tail -n 5 "$CJ_TMP/usr-build.log")"
    check_install "$CJ_TMP/build-usr"
fi
echo "PASS: t_install"
