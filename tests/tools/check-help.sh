#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# check-help.sh CGLOOPFS CGLOOPCTL
#
# systemd's rules for --help (tools/check-help.sh there), for cgloopfs,
# cgloopctl and every cgloopctl command: --help (and -h) exits 0 and prints
# something on stdout and nothing on stderr, in lines of at most 80 columns;
# an unknown option exits 2 with a message naming it on stderr and nothing on
# stdout. Also: --version, and usage errors without an option. Prints one line
# per problem and exits 1 if there is any.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 CGLOOPFS CGLOOPCTL" >&2
    exit 2
fi
cgloopfs=$1
cgloopctl=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0
checks=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# run NAME ARGS...: run with stdout/stderr to $tmp/out, $tmp/err; status in $rc.
run() {
    "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    rc=$?
    checks=$((checks + 1))
}

check_help() { # what, command...
    what=$1
    shift
    for opt in --help -h; do
        run "$@" "$opt"
        [ "$rc" -eq 0 ] || fail "$what $opt: exit status $rc, want 0"
        [ -s "$tmp/out" ] || fail "$what $opt: nothing on stdout"
        [ -s "$tmp/err" ] && fail "$what $opt: wrote to stderr: $(head -3 "$tmp/err")"
        wide=$(awk 'length > 80 { printf "%d: %s\n", length, $0 }' "$tmp/out")
        [ -n "$wide" ] && fail "$what $opt: lines wider than 80 columns: $wide"
        grep -q "$(printf '\t')" "$tmp/out" && fail "$what $opt: a tab in the output"
        grep -q '^Usage: ' "$tmp/out" || fail "$what $opt: no 'Usage: ' line"
        [ "$opt" = --help ] && cp "$tmp/out" "$tmp/help"
    done
    cmp -s "$tmp/out" "$tmp/help" || fail "$what: -h and --help differ"
}

check_unknown() { # what, command...
    what=$1
    shift
    for bad in --no-such-option -Y; do
        run "$@" "$bad"
        [ "$rc" -eq 2 ] || fail "$what $bad: exit status $rc, want 2"
        [ -s "$tmp/out" ] && fail "$what $bad: wrote to stdout: $(head -3 "$tmp/out")"
        if [ ! -s "$tmp/err" ]; then
            fail "$what $bad: no message on stderr"
        elif ! grep -q -e "$bad" "$tmp/err"; then
            fail "$what $bad: the message does not name the option: $(head -3 "$tmp/err")"
        fi
    done
}

check_usage_error() { # what, command...
    what=$1
    shift
    run "$@"
    [ "$rc" -eq 2 ] || fail "$what: exit status $rc, want 2"
    [ -s "$tmp/err" ] || fail "$what: no message on stderr"
    [ -s "$tmp/out" ] && fail "$what: wrote to stdout: $(head -3 "$tmp/out")"
}

check_version() { # what, command...
    what=$1
    shift
    run "$@" --version
    [ "$rc" -eq 0 ] || fail "$what --version: exit status $rc, want 0"
    grep -q '[0-9]\.[0-9]' "$tmp/out" || fail "$what --version: no version on stdout"
    [ -s "$tmp/err" ] && fail "$what --version: wrote to stderr"
}

for prog in "$cgloopfs" "$cgloopctl"; do
    [ -x "$prog" ] || { echo "FAIL: $prog is not an executable"; exit 1; }
done

check_help cgloopfs "$cgloopfs"
check_unknown cgloopfs "$cgloopfs"
check_version cgloopfs "$cgloopfs"
check_usage_error "cgloopfs (no operands)" "$cgloopfs"
check_usage_error "cgloopfs -o no_such_option" "$cgloopfs" -o no_such_option /nonexistent /nonexistent
grep -q no_such_option "$tmp/err" || fail "cgloopfs -o no_such_option: the message does not name it"

check_help cgloopctl "$cgloopctl"
check_unknown cgloopctl "$cgloopctl"
check_version cgloopctl "$cgloopctl"
check_usage_error "cgloopctl (no command)" "$cgloopctl"
check_usage_error "cgloopctl no-such-command" "$cgloopctl" no-such-command
grep -q no-such-command "$tmp/err" || fail "cgloopctl no-such-command: the message does not name it"

# The commands, from the Commands: section of cgloopctl --help.
"$cgloopctl" --help | awk '/^Commands:/ { on = 1; next } on && /^$/ { exit }
    on && /^  [a-z]/ { print $1 }' >"$tmp/commands"
[ -s "$tmp/commands" ] || fail "cgloopctl --help: no Commands: section"
ncommands=0
while read -r cmd; do
    ncommands=$((ncommands + 1))
    check_help "cgloopctl $cmd" "$cgloopctl" "$cmd"
    grep -q "^Usage: cgloopctl $cmd " "$tmp/help" ||
        fail "cgloopctl $cmd --help: the usage line does not name the command"
    check_unknown "cgloopctl $cmd" "$cgloopctl" "$cmd"
done <"$tmp/commands"

echo "$checks runs of cgloopfs and cgloopctl ($ncommands commands): $fails problem(s)"
[ "$fails" -eq 0 ]
