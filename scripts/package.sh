#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Build the Debian package of this tree and check it for real:
#   1. copy the tree (git's files, no build directories) to a temporary
#      directory and run "dpkg-buildpackage -us -uc -b -Jauto" there, so nothing is
#      written beside the checkout;
#   2. lintian on the .deb and the .changes: no error, no warning;
#   3. the package's dependencies: Depends names every library the programs
#      link (as dpkg-shlibdeps computes it) and fuse3 (mount.fuse3);
#   4. apt-get install ./cgloopfs_VERSION_ARCH.deb, the installed files are
#      exactly the expected ones, nothing was enabled or started;
#   5. mount a sample image with "mount -t fuse.cgloopfs" through the installed
#      helper and daemon, read it, "cgloopctl list" shows it, unmount;
#   6. apt-get remove, then purge: every file the package put there is gone,
#      and nothing named cgloopfs/cgloopctl is left on the system.
# Everything it made (mount, daemon, package, files) is undone on exit, also
# on failure. Ends with "N passed, N failed"; with CGL_RESULTS_DIR set it also
# writes $CGL_RESULTS_DIR/package.json as the mount tests do.
#
#   sudo ./scripts/package.sh               # all of it (as root, Debian 12)
#   ./scripts/package.sh --build-only [DIR] # 1-3 only; the .deb is copied to
#                                           # DIR (default: the current one)
# CGL_KEEP_TMP=1 keeps the temporary directory.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
build_only=0
out_dir=$(pwd)
case ${1-} in
--build-only)
    build_only=1
    [ $# -ge 2 ] && out_dir=$(cd "$2" && pwd)
    ;;
"") ;;
*)
    echo "usage: $0 [--build-only [DIR]]" >&2
    exit 2
    ;;
esac

passed=0 failed=0 cases=""
start=$(date +%s)
case_start=$start

# pass NAME / fail NAME MESSAGE: count a check and say so.
record() {
    local status=$1 name=$2 msg=${3-} now
    now=$(date +%s)
    if [ "$status" = pass ]; then
        passed=$((passed + 1))
        echo "PASS $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name: $msg"
    fi
    cases="$cases$(python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "status": sys.argv[2], "seconds": int(sys.argv[3]), **({"error": sys.argv[4]} if sys.argv[4] else {})}))' \
        "$name" "$status" "$((now - case_start))" "$msg"),"
    case_start=$now
}
pass() { record pass "$1"; }
fail() { record fail "$1" "$2"; }
# check NAME COMMAND...: pass when COMMAND succeeds; its output is shown on failure.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        pass "$name"
    else
        fail "$name" "$(printf '%s' "$out" | tail -20)"
    fi
}

finish() {
    local rc=$1
    echo "package: $(($(date +%s) - start)) s" >&2
    if [ -n "${CGL_RESULTS_DIR-}" ]; then
        mkdir -p "$CGL_RESULTS_DIR"
        printf '{"module": "package", "passed": %d, "failed": %d, "seconds": %d, "cases": [%s]}\n' \
            "$passed" "$failed" "$(($(date +%s) - start))" "${cases%,}" >"$CGL_RESULTS_DIR/package.json"
    fi
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ] && [ "$rc" -eq 0 ]
}

# ---------------------------------------------------------------------------
# Before anything: a cgloopfs package already here would be replaced and then
# purged; refuse instead.
pkg=cgloopfs
version=$(sed -n "s/^  version: '\(.*\)',$/\1/p" "$top/meson.build" | head -1)
arch=$(dpkg --print-architecture)
deb_name=${pkg}_${version}_$arch.deb
if [ "$build_only" -eq 1 ]; then
    # The build dependencies, where this may install them.
    if [ "$(id -u)" -eq 0 ]; then
        "$top/scripts/install-deps.sh" || {
            fail preconditions "install-deps.sh failed"
            finish 1
            exit 1
        }
    fi
else
    if [ "$(id -u)" -ne 0 ]; then
        echo "package.sh: installs, mounts and purges the package: run it as root" \
            "(or with --build-only)" >&2
        fail preconditions "not root"
        finish 1
        exit 1
    fi
    state=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)
    case $state in
    "" | un*) ;;
    *)
        echo "package.sh: a $pkg package is already on this system (dpkg status '$state')." \
            "Remove it (apt-get purge $pkg) and run again; this script does not touch it." >&2
        fail preconditions "$pkg already installed (dpkg status '$state')"
        finish 1
        exit 1
        ;;
    esac
    "$top/scripts/install-deps.sh" || {
        fail preconditions "install-deps.sh failed"
        finish 1
        exit 1
    }
fi

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/cgloopfs-package.XXXXXX")
chmod 755 "$tmp"
installed=0 mnt="" daemon_pid=""
cleanup() {
    set +e
    if [ -n "$mnt" ] && mountpoint -q "$mnt"; then
        umount "$mnt" 2>/dev/null || { sleep 1; umount "$mnt" 2>/dev/null; } ||
            umount -l "$mnt"
    fi
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        sleep 2
        kill "$daemon_pid" 2>/dev/null
    fi
    if [ "$installed" -eq 1 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "$pkg" >/dev/null 2>&1 ||
            dpkg --purge "$pkg" >/dev/null 2>&1
    fi
    if [ -n "${CGL_KEEP_TMP-}" ]; then
        echo "package.sh: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---------------------------------------------------------------------------
# 1. Build, from a copy of the tree.
src=$tmp/$pkg-$version
mkdir -p "$src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Committed and new files alike (not ignored ones); deleted ones are not there.
    (cd "$top" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -cf -) | tar -xf - -C "$src"
else
    (cd "$top" && tar --exclude='./build*' --exclude='./subprojects/*/' -cf - .) | tar -xf - -C "$src"
fi
echo "package.sh: building in $src (log: $tmp/build.log)" >&2
if (cd "$src" && dpkg-buildpackage -us -uc -b -Jauto) >"$tmp/build.log" 2>&1 &&
    [ -f "$tmp/$deb_name" ]; then
    pass build
else
    fail build "dpkg-buildpackage failed or made no $deb_name: $(tail -30 "$tmp/build.log")"
    finish 1
    exit 1
fi
deb=$tmp/$deb_name
changes=$tmp/${pkg}_${version}_$arch.changes

# 2. lintian: nothing at error or warning level (the overrides in
# debian/cgloopfs.lintian-overrides say why each is there).
# (As root it says so on stderr, which is no finding.)
# TMPDIR: lintian leaves its mldbm-elf-* scratch files behind; ours is removed.
lintian_out=$(TMPDIR="$tmp" lintian --fail-on error,warning --display-info "$deb" "$changes" 2>&1)
lintian_rc=$?
lintian_out=$(printf '%s\n' "$lintian_out" | grep -v '^running with root privileges is not recommended!$')
echo "lintian: ${lintian_out:-(nothing to report)}" >&2
if [ $lintian_rc -eq 0 ] && ! printf '%s\n' "$lintian_out" | grep -q '^[EW]: '; then
    pass lintian
else
    fail lintian "$lintian_out"
fi

# 3. Depends: fuse3, and the package of every library the programs link
# (dpkg-shlibdeps, from the built tree).
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends" >&2
shlibs=$(cd "$src" && dpkg-shlibdeps -O -e debian/$pkg/usr/bin/cgloopfs \
    -e debian/$pkg/usr/bin/cgloopctl 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
deps_ok() {
    [ -n "$shlibs" ] || { echo "dpkg-shlibdeps computed nothing"; return 1; }
    local d missing=""
    for d in $(printf '%s' "$shlibs" | tr ',' '\n' | sed 's/^ *//; s/ .*//'); do
        case ", $depends," in *", $d "* | *", $d,"*) ;; *) missing="$missing $d" ;; esac
    done
    case ", $depends," in *", fuse3,"* | *", fuse3 "*) ;; *) missing="$missing fuse3" ;; esac
    [ -z "$missing" ] || { echo "Depends lacks:$missing (shlibs: $shlibs)"; return 1; }
    # And each library a program needs (NEEDED) is in a package of Depends.
    local lib path owner p
    for lib in $(objdump -p "$src/debian/$pkg/usr/bin/cgloopfs" "$src/debian/$pkg/usr/bin/cgloopctl" |
        awk '$1 == "NEEDED" {print $2}' | sort -u); do
        path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|64bit|\(libc6,x86-64/ {print $NF; exit}')
        [ -n "$path" ] || path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
        # dpkg knows a file by the path its package names (/lib or /usr/lib).
        owner=""
        for p in "$(readlink -f "$path")" "$path" "${path#/usr}" "/usr${path#/usr}"; do
            owner=$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1)
            [ -n "$owner" ] && break
        done
        case ", $depends," in
        *", $owner "* | *", $owner,"*) ;;
        *) echo "$lib ($path, package '$owner') is not in Depends"; return 1 ;;
        esac
    done
}
check depends deps_ok

if [ "$build_only" -eq 1 ]; then
    cp "$deb" "$out_dir/" && echo "package.sh: $out_dir/$deb_name" >&2
    finish 0
    exit
fi

# ---------------------------------------------------------------------------
# 4. Install, as a user would.
expected_files="/usr/bin/cgloopctl
/usr/bin/cgloopfs
/usr/lib/systemd/system/cgloopfs@.service
/usr/sbin/mount.fuse.cgloopfs
/usr/share/bash-completion/completions/cgloopctl
/usr/share/bash-completion/completions/cgloopfs
/usr/share/doc/cgloopfs/changelog.gz
/usr/share/doc/cgloopfs/copyright
/usr/share/man/man5/cgloopfs.toml.5.gz
/usr/share/man/man8/cgloopctl.8.gz
/usr/share/man/man8/cgloopfs.8.gz
/usr/share/man/man8/mount.fuse.cgloopfs.8.gz"

# What the package will put on the system, and which of those paths exist
# now (directories like /usr/bin): afterwards only those may be left.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' | grep -v '^/\?$' |
    sort >"$tmp/contents"
while IFS= read -r p; do [ -e "$p" ] || [ -L "$p" ] && echo "$p"; done <"$tmp/contents" \
    >"$tmp/existing-before"
# Anything named after the package, anywhere it could be put.
name_scan() {
    find /etc /usr /var/lib /var/cache /var/log /opt -xdev \
        \( -name '*cgloopfs*' -o -name '*cgloopctl*' \) 2>/dev/null | sort
}
name_scan >"$tmp/names-before"

install_log=$tmp/install.log
installed=1
if DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$deb" \
    >"$install_log" 2>&1 && [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg")" = "ii " ]; then
    pass install
else
    fail install "$(tail -20 "$install_log")"
    finish 1
    exit 1
fi

files_ok() {
    local got
    got=$(dpkg -L "$pkg" | while IFS= read -r p; do [ -d "$p" ] && [ ! -L "$p" ] || echo "$p"; done | sort)
    [ "$got" = "$expected_files" ] || {
        echo "installed files differ from the expected ones:"
        diff <(echo "$expected_files") <(echo "$got")
        return 1
    }
    local p
    for p in $got; do [ -e "$p" ] || { echo "$p is listed but not there"; return 1; }; done
}
check installed-files files_ok

programs_ok() {
    local p
    for p in /usr/bin/cgloopfs /usr/bin/cgloopctl; do
        "$p" --version | grep -q "$version" || { echo "$p --version: not $version"; return 1; }
    done
    [ "$(readlink /usr/sbin/mount.fuse.cgloopfs)" = /sbin/mount.fuse3 ] ||
        { echo "mount.fuse.cgloopfs -> $(readlink /usr/sbin/mount.fuse.cgloopfs)"; return 1; }
    [ -x "$(readlink -f /usr/sbin/mount.fuse.cgloopfs)" ] || { echo "mount.fuse3 missing"; return 1; }
    [ "$(man -w cgloopfs 2>/dev/null)" = /usr/share/man/man8/cgloopfs.8.gz ] ||
        { echo "man -w cgloopfs: $(man -w cgloopfs 2>&1)"; return 1; }
    [ "$(man -w cgloopfs.toml 2>/dev/null)" = /usr/share/man/man5/cgloopfs.toml.5.gz ] ||
        { echo "man -w cgloopfs.toml: $(man -w cgloopfs.toml 2>&1)"; return 1; }
    # bash-completion finds the installed completions by name.
    local p c
    for p in cgloopctl cgloopfs; do
        c=$(bash -c ". /usr/share/bash-completion/bash_completion; __load_completion $p && complete -p $p" 2>&1)
        [ "$c" = "complete -F _$p $p" ] || { echo "completion of $p: $c"; return 1; }
    done
}
check installed-programs programs_ok

# A template unit: nothing enabled, started or linked by the maintainer scripts.
unit_ok() {
    local links
    links=$(find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
        -name 'cgloopfs*' 2>/dev/null)
    [ -z "$links" ] || { echo "enabled at install: $links"; return 1; }
    if [ -d /run/systemd/system ]; then
        [ -z "$(systemctl list-units --all --no-legend 'cgloopfs@*' 2>/dev/null)" ] ||
            { echo "units running: $(systemctl list-units --all --no-legend 'cgloopfs@*')"; return 1; }
    fi
    if grep -l 'cgloopfs@' /var/lib/dpkg/info/$pkg.post* /var/lib/dpkg/info/$pkg.pre* 2>/dev/null; then
        echo "maintainer scripts name the unit"
        return 1
    fi
    return 0
}
check unit-not-enabled unit_ok

# ---------------------------------------------------------------------------
# 5. Mount a sample image through mount(8), the installed helper and daemon.
mkdir -p "$tmp/images" "$tmp/mnt"
mnt=$tmp/mnt
img=$tmp/images/sample.img
head -c 4M /dev/urandom >"$img"
mount_ok() {
    local out
    out=$(mount -t fuse.cgloopfs "$img" "$mnt" -o idle_timeout=30 2>&1) || {
        echo "mount: $out"
        return 1
    }
    mountpoint -q "$mnt" || { echo "not mounted"; return 1; }
    awk -v m="$mnt" '$5 == m {found = ($0 ~ / - fuse\.cgloopfs /)} END {exit !found}' \
        /proc/self/mountinfo || { echo "$mnt is not fuse.cgloopfs in mountinfo"; return 1; }
    # The daemon serving it is the installed one.
    local p
    for p in $(pgrep -x cgloopfs); do
        if tr '\0' '\n' <"/proc/$p/cmdline" | grep -qxF "$mnt"; then
            daemon_pid=$p
        fi
    done
    [ -n "$daemon_pid" ] || { echo "no cgloopfs process names $mnt"; return 1; }
    [ "$(readlink "/proc/$daemon_pid/exe")" = /usr/bin/cgloopfs ] ||
        { echo "the daemon is $(readlink "/proc/$daemon_pid/exe"), not /usr/bin/cgloopfs"; return 1; }
    cmp "$img" "$mnt/sample.img" || { echo "the mounted image differs from the file"; return 1; }
}
check mount mount_ok

list_ok() {
    local out
    out=$(/usr/bin/cgloopctl list "$mnt" 2>&1) || { echo "cgloopctl list: $out"; return 1; }
    echo "$out" | awk -v f="$img" '$1 == "sample.img" && $2 == f {ok = 1} END {exit !ok}' ||
        { echo "cgloopctl list shows no sample.img of $img:"; echo "$out"; return 1; }
    out=$(/usr/bin/cgloopctl -m "$mnt" list --raw --noheadings -O NAME,SIZE 2>&1)
    [ "$out" = "sample.img 4194304" ] || { echo "cgloopctl list --raw: $out"; return 1; }
}
check cgloopctl-list list_ok

umount_ok() {
    umount "$mnt" || return 1
    local _
    for _ in $(seq 50); do
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.1
    done
    ! kill -0 "$daemon_pid" 2>/dev/null || { echo "daemon $daemon_pid still running"; return 1; }
    ! mountpoint -q "$mnt" || { echo "still mounted"; return 1; }
    daemon_pid=""
}
check umount umount_ok

# ---------------------------------------------------------------------------
# 6. Remove, then purge: nothing the package put there is left.
left_over() {
    # Paths of the package that were not there before and are there now.
    local p
    while IFS= read -r p; do
        if { [ -e "$p" ] || [ -L "$p" ]; } && ! grep -qxF "$p" "$tmp/existing-before"; then
            echo "left: $p"
        fi
    done <"$tmp/contents"
    name_scan | comm -13 "$tmp/names-before" - | sed 's/^/left: /'
}
remove_ok() {
    DEBIAN_FRONTEND=noninteractive apt-get remove -y "$pkg" >"$tmp/remove.log" 2>&1 ||
        { tail -20 "$tmp/remove.log"; return 1; }
    local state left
    state=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)
    # No conffiles, no maintainer scripts: removing leaves nothing, not even "rc".
    case $state in "" | un*) ;; *) echo "dpkg status after remove: '$state'"; return 1 ;; esac
    left=$(left_over)
    [ -z "$left" ] || { echo "$left"; return 1; }
}
check remove remove_ok

# The package has no conffiles and no maintainer scripts, so "remove" leaves
# nothing for "purge" (apt-get purge of a package it no longer knows fails):
# dpkg --purge finishes what may be left, then a second install is purged at
# once with apt-get purge.
after_remove_ok() {
    dpkg --purge "$pkg" >"$tmp/purge.log" 2>&1 || { tail -20 "$tmp/purge.log"; return 1; }
    installed=0
    local left
    left=$(left_over)
    [ -z "$left" ] || { echo "$left"; return 1; }
}
check purge-after-remove after_remove_ok

purge_ok() {
    installed=1
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$deb" \
        >"$tmp/install2.log" 2>&1 || { tail -20 "$tmp/install2.log"; return 1; }
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg")" = "ii " ] ||
        { echo "not installed the second time"; return 1; }
    DEBIAN_FRONTEND=noninteractive apt-get purge -y "$pkg" >"$tmp/purge2.log" 2>&1 ||
        { tail -20 "$tmp/purge2.log"; return 1; }
    local state left
    state=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)
    case $state in "" | un*) ;; *) echo "dpkg status after purge: '$state'"; return 1 ;; esac
    installed=0
    left=$(left_over)
    [ -z "$left" ] || { echo "$left"; return 1; }
}
check install-and-purge purge_ok

finish 0
