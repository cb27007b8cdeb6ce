#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The bash completions of completions/: each is sourced from the source tree
into bash with bash-completion's own helpers, its function is called the way
readline calls it (COMP_WORDS split at COMP_WORDBREAKS, COMP_CWORD, COMP_LINE,
COMP_POINT), and COMPREPLY is checked: commands, options and their values,
files, and the mount points and image names of a real mount of the built
cgloopfs."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import (  # noqa: E402
    CGLOOPFS, SRC_ROOT, TestFailure, check, check_eq, make_image, mountinfo, run)

CGLOOPCTL = os.path.abspath(os.environ.get(
    "CGLOOPCTL", os.path.join(os.path.dirname(CGLOOPFS), "cgloopctl")))
COMPLETIONS = os.path.join(SRC_ROOT, "completions")
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"

# Sources bash-completion and one completion file, calls its function with the
# words given as arguments (the last one is being completed, the cursor at the
# end of the line), and prints {"reply": COMPREPLY, "compopt": [...]} as JSON
# (through python3, so any byte of a candidate survives). compopt works only
# while readline runs a completion; here a stand-in records what was asked.
DRIVER = r'''
set -u
bc=$1 file=$2 func=$3 line=$4
shift 4
source "$bc" || exit 90
source "$file" || exit 91
if [[ $func == --wordbreaks ]]; then printf '%s' "$COMP_WORDBREAKS"; exit 0; fi
__opts=()
compopt() { local a; for a; do [[ $a == [-+]o ]] || __opts+=("$a"); done; }
COMP_LINE=$line
COMP_POINT=${#line}
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_TYPE=9 COMP_KEY=9
COMPREPLY=()
"$func" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]:-}"
printf '%s\0' "${#__opts[@]}" "${__opts[@]}" "${COMPREPLY[@]}"
'''

_wordbreaks = None


def wordbreaks():
    global _wordbreaks
    if _wordbreaks is None:
        r = run(["bash", "-c", DRIVER, "driver", BASH_COMPLETION,
                 os.path.join(COMPLETIONS, "cgloopctl"), "--wordbreaks", ""])
        _wordbreaks = r.stdout
        check(" " in _wordbreaks and "=" in _wordbreaks, f"COMP_WORDBREAKS {_wordbreaks!r}")
    return _wordbreaks


def comp_words(line):
    """COMP_WORDS as bash makes them for readline's completion: blanks separate
    words, a run of other COMP_WORDBREAKS characters is a word of its own, quotes
    and backslashes keep what they quote in the word."""
    breaks = wordbreaks()
    words, cur, i, pending = [], "", 0, False

    def flush():
        nonlocal cur, pending
        if pending:
            words.append(cur)
        cur, pending = "", False

    while i < len(line):
        c = line[i]
        if c in " \t\n":
            flush()
            i += 1
        elif c == "\\" and i + 1 < len(line):
            cur += line[i:i + 2]
            pending = True
            i += 2
        elif c in "\"'":
            j = line.find(c, i + 1)
            j = len(line) - 1 if j < 0 else j
            cur += line[i:j + 1]
            pending = True
            i = j + 1
        elif c in breaks:
            flush()
            j = i
            while j < len(line) and line[j] in breaks and line[j] not in " \t\n\"'":
                j += 1
            words.append(line[i:j])
            i = j
        else:
            cur += c
            pending = True
            i += 1
    flush()
    if not line or line[-1] in " \t\n":
        words.append("")
    return words


def as_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def complete(line, prog="cgloopctl", cwd=None, env=None, preexec=None):
    """(COMPREPLY, compopt options) for the cursor at the end of `line`; the first
    word of the line is replaced by the built program (unless it is a path)."""
    # The line as typed with the built program's path, so that COMP_LINE and
    # COMP_WORDS agree (bash-completion finds the current word from both).
    first = line.split(" ", 1)[0]
    if first in ("cgloopctl", "cgloopfs"):
        line = (CGLOOPCTL if first == "cgloopctl" else CGLOOPFS) + line[len(first):]
    words = comp_words(line)
    func = "_" + prog
    r = run(["bash", "-c", DRIVER, "driver", BASH_COMPLETION,
             os.path.join(COMPLETIONS, prog), func, line] + words,
            cwd=cwd, env=env, check_rc=False, text=False, preexec_fn=preexec)
    check(r.returncode == 0, f"{line!r}: the driver exited {r.returncode}: "
          f"{r.stderr.decode(errors='replace')}")
    check(not r.stderr, f"{line!r}: the completion wrote to stderr: "
          f"{r.stderr.decode(errors='replace')}")
    parts = r.stdout.decode().split("\0")[:-1]
    n = int(parts[0])
    return parts[1 + n:], parts[1:1 + n]


def expect(line, want, prog="cgloopctl", cwd=None, nospace=None, env=None, preexec=None):
    got, opts = complete(line, prog, cwd, env, preexec)
    check_eq(sorted(got), sorted(want), f"candidates for {line!r}")
    if nospace is not None:
        check_eq("nospace" in opts, nospace, f"nospace for {line!r} (compopt {opts})")
    return got


def help_commands():
    """The commands `cgloopctl --help` lists: what the completion must offer."""
    out = run([CGLOOPCTL, "--help"]).stdout.splitlines()
    start = out.index("Commands:") + 1
    cmds = []
    for ln in out[start:]:
        if not ln.startswith("  "):
            break
        cmds.append(ln.split()[0])
    check(len(cmds) >= 9, f"cgloopctl --help lists {cmds}")
    return cmds


GLOBAL_LONG = ["--mount", "--socket", "--json", "--help", "--version"]
GLOBAL_SHORT = ["-m", "-s", "-J", "-h", "-V"]


# --------------------------------------------------------------------------
# Loading

def test_bash_completion_loads_them_by_name(t):
    # bash-completion loads completions/NAME when NAME is first completed; the
    # user directory stands in for the installed one.
    user = t.mkdir("user")
    os.symlink(COMPLETIONS, os.path.join(user, "completions"))
    for prog in ("cgloopctl", "cgloopfs"):
        r = run(["bash", "-c", f'source {BASH_COMPLETION}; __load_completion {prog} && '
                 f'complete -p {prog}'],
                env=dict(os.environ, BASH_COMPLETION_USER_DIR=user))
        check_eq(r.stdout.strip(), f"complete -F _{prog} {prog}", f"{prog} loaded")
        check_eq(r.stderr, "", f"{prog}: stderr while loading")
    r = run(["bash", "-n", os.path.join(COMPLETIONS, "cgloopctl"),
             os.path.join(COMPLETIONS, "cgloopfs")])


# --------------------------------------------------------------------------
# cgloopctl: commands and options

def test_cgloopctl_commands_come_from_help(t):
    cmds = help_commands()
    expect("cgloopctl ", cmds, nospace=False)
    expect("cgloopctl s", [c for c in cmds if c.startswith("s")])
    check_eq(sorted(c for c in cmds if c.startswith("s")),
             ["set", "set-capacity", "stats", "status"], "commands starting with s")
    expect("cgloopctl de", ["detach"])
    # After the global options and their values.
    expect("cgloopctl -m /srv/x --json wo", ["workers"])
    expect("cgloopctl --mount=/srv/x st", ["stats", "status"])


def test_cgloopctl_without_the_program_uses_its_list(t):
    expect("/nonexistent/cgloopctl ",
           ["list", "attach", "detach", "set-capacity", "get", "set", "workers", "stats",
            "status", "top"])
    expect("/nonexistent/cgloopctl --", GLOBAL_LONG)


def test_cgloopctl_options(t):
    expect("cgloopctl --", GLOBAL_LONG)
    expect("cgloopctl -", GLOBAL_LONG + GLOBAL_SHORT)
    expect("cgloopctl list --", GLOBAL_LONG + ["--output", "--noheadings", "--raw",
                                               "--manifest"])
    expect("cgloopctl detach -", GLOBAL_LONG + GLOBAL_SHORT +
           ["-a", "--all", "-l", "--lazy"])
    got = expect("cgloopctl attach --", GLOBAL_LONG + [
        "--name", "--offset", "--sizelimit", "--read-only", "--direct-io", "--direct-io=",
        "--sector-size", "--discard", "--mode", "--uid", "--gid", "--lock", "--show"])
    check("--direct-io=" in got, "attach --direct-io= offered")
    expect("cgloopctl attach --dir", ["--direct-io", "--direct-io="])
    expect("cgloopctl attach --s", ["--sizelimit", "--sector-size", "--show", "--socket"])
    expect("cgloopctl attach --sh", ["--show"], nospace=False)
    # Global options after the command are options of the command line too.
    expect("cgloopctl list --js", ["--json"])


def test_cgloopctl_option_values(t):
    expect("cgloopctl attach --direct-io=", ["on", "off"])
    expect("cgloopctl attach --direct-io=of", ["off"])
    expect("cgloopctl attach -b ", ["512", "1024", "2048", "4096"])
    expect("cgloopctl attach --sector-size 2", ["2048"])
    expect("cgloopctl attach --offset ", [])
    expect("cgloopctl attach --mode ", [])
    expect("cgloopctl attach --lock ", ["auto", "on", "off"])
    expect("cgloopctl attach --lock o", ["on", "off"])
    expect("cgloopctl stats --format ", ["table", "json", "prometheus"])
    expect("cgloopctl stats --format p", ["prometheus"])
    # -O: a comma-separated list, in the case it is typed in.
    expect("cgloopctl list -O ", ["NAME", "BACK-FILE", "OFFSET", "SIZELIMIT", "SIZE", "RO",
                                  "DIO", "LOG-SEC", "DISCARD", "OPEN", "LOCK", "MODE", "UID",
                                  "GID"],
           nospace=True)
    expect("cgloopctl list -O name,s", ["name,size", "name,sizelimit"])
    expect("cgloopctl list --output NAME,BACK", ["NAME,BACK-FILE"])
    # set KEY=VALUE...: the keys not given yet.
    expect("cgloopctl set ", ["idle_timeout=", "max_workers=", "worker_depth=", "charge=", "lock="],
           nospace=True)
    expect("cgloopctl -m /srv/x set idle_timeout=30 ", ["max_workers=", "worker_depth=", "charge=", "lock="])
    expect("cgloopctl set idle_timeout=3", [])


def test_cgloopctl_top_options_and_orders(t):
    expect("cgloopctl top --", GLOBAL_LONG + ["--delay", "--iterations", "--batch", "--order"])
    expect("cgloopctl top -", GLOBAL_LONG + GLOBAL_SHORT +
           ["-d", "--delay", "-n", "--iterations", "-b", "--batch", "-o", "--order"])
    # The words --order takes: those the program lists when given a wrong one.
    r = run([CGLOOPCTL, "top", "-o", "nosuchcolumn"], check_rc=False)
    check(r.returncode == 2 and "(one of: " in r.stderr, f"top -o nosuchcolumn: {r.stderr!r}")
    words = r.stderr.split("(one of: ")[1].split(")")[0].split(", ")
    check(len(words) >= 10, f"order words {words}")
    expect("cgloopctl top -o ", words)
    expect("cgloopctl top --order r", ["reads", "read"])
    expect("cgloopctl top --order=w", ["writes", "written"])
    expect("cgloopctl -m /srv/x top -b -o ", words)
    # -d and -n take numbers: nothing to offer; -b takes no value (attach's -b does).
    expect("cgloopctl top -d ", [])
    expect("cgloopctl top -n ", [])
    expect("cgloopctl top --iterations ", [])


def test_cgloopctl_attach_completes_files(t):
    d = t.mkdir("files")
    for name in ("a.img", "b.img", "notes.toml"):
        make_image(os.path.join(d, name), 4096)
    os.mkdir(os.path.join(d, "sub"))
    expect("cgloopctl attach ", ["a.img", "b.img", "notes.toml", "sub"], cwd=d)
    expect("cgloopctl -m /srv/x attach --name x -r --offset 1M a", ["a.img"], cwd=d)
    # One IMAGE only.
    expect("cgloopctl attach a.img ", [], cwd=d)


# --------------------------------------------------------------------------
# cgloopfs

def test_cgloopfs_options(t):
    expect("cgloopfs -", ["-f", "--foreground", "-d", "--debug", "-h", "--help", "-V",
                          "--version", "-o"], prog="cgloopfs")
    expect("cgloopfs --f", ["--foreground"], prog="cgloopfs")


def test_cgloopfs_mount_options_come_from_help(t):
    got, opts = complete("cgloopfs -o ", prog="cgloopfs")
    check("nospace" in opts, f"-o: compopt {opts}")
    want = {"idle_timeout=", "max_workers=", "worker_depth=", "request_timeout=",
            "max_queued=", "dispatch=", "cache=", "control=", "ro", "rw", "allow_other",
            "default_permissions", "auto_unmount", "fsname=", "noexec", "noatime",
            "nofail", "_netdev", "defaults"}
    check_eq(sorted(want - set(got)), [], "mount options not offered")
    check_eq(len(got), len(set(got)), "each mount option once")
    # Every key=VALUE of the help is offered as key=.
    helped = set()
    for ln in run([CGLOOPFS, "--help"]).stdout.splitlines():
        if ln.startswith("  ") and not ln.startswith("   ") and "=" in ln.split()[0] \
                and not ln.split()[0].startswith("-"):
            helped.add(ln.split()[0].split("=")[0] + "=")
    check(helped and helped <= set(got), f"help's keys {sorted(helped - set(got))} missing")
    expect("cgloopfs -o idle", ["idle_timeout="], prog="cgloopfs", nospace=True)
    expect("cgloopfs -o metr", ["metrics="], prog="cgloopfs", nospace=True)


def test_cgloopfs_mount_option_values(t):
    expect("cgloopfs -o dispatch=", ["cgroup", "single"], prog="cgloopfs")
    expect("cgloopfs -o dispatch=s", ["single"], prog="cgloopfs")
    expect("cgloopfs -o cache=", ["direct", "kernel"], prog="cgloopfs")
    expect("cgloopfs -o idle_timeout=", [], prog="cgloopfs")
    expect("cgloopfs -o max_workers=8,cache=k", ["kernel"], prog="cgloopfs")
    # The last item of a list, as readline inserts it (after the last '=').
    expect("cgloopfs -o idle_timeout=30,ca", ["30,cache="], prog="cgloopfs")
    expect("cgloopfs -o ro,max", ["ro,max_workers=", "ro,max_queued="], prog="cgloopfs")
    expect("cgloopfs -o ro,allow_other,a", ["ro,allow_other,auto_unmount",
                                           "ro,allow_other,atime", "ro,allow_other,async",
                                           "ro,allow_other,auto"], prog="cgloopfs")
    # An option already given is not offered again.
    expect("cgloopfs -o dispatch=single,d", ["single,dev", "single,default_permissions",
                                            "single,defaults", "single,dirsync",
                                            "single,diratime"], prog="cgloopfs")
    # -oOPTS, as libfuse takes it.
    expect("cgloopfs -odispatch=c", ["cgroup"], prog="cgloopfs")
    # control= is a path.
    d = t.mkdir("sockdir")
    os.mkdir(os.path.join(d, "run"))
    expect("cgloopfs -o control=r", ["run"], prog="cgloopfs", cwd=d)


def test_cgloopfs_without_the_program_uses_its_lists(t):
    expect("/nonexistent/cgloopfs --f", ["--foreground"], prog="cgloopfs")
    expect("/nonexistent/cgloopfs -o dispatch=", ["cgroup", "single"], prog="cgloopfs")
    expect("/nonexistent/cgloopfs -o ro,cache=k", ["kernel"], prog="cgloopfs")
    expect("/nonexistent/cgloopfs -o max_w", ["max_workers="], prog="cgloopfs")


def test_cgloopfs_operands(t):
    d = t.mkdir("src")
    make_image(os.path.join(d, "disk.img"), 4096)
    os.mkdir(os.path.join(d, "mnt"))
    expect("cgloopfs ", ["disk.img", "mnt"], prog="cgloopfs", cwd=d)
    expect("cgloopfs -f -o ro disk.img ", ["mnt"], prog="cgloopfs", cwd=d)
    expect("cgloopfs disk.img mnt ", [], prog="cgloopfs", cwd=d)


# --------------------------------------------------------------------------
# A live mount: its mount point and its images

def cgloopfs_mount_points():
    return [m for m, fstype, _ in mountinfo() if fstype == "fuse.cgloopfs"]


def shell_quote(s):
    """printf %q of a name made of letters, digits, '.', '-', '/' and blanks."""
    return s.replace(" ", "\\ ")


def test_live_mount_points_and_image_names(t):
    imgs = t.mkdir("images")
    make_image(os.path.join(imgs, "rootfs.img"), 1 << 20)
    make_image(os.path.join(imgs, "disk one.img"), 1 << 20)
    make_image(os.path.join(imgs, "data.img"), 1 << 20)
    # A blank in the mount point: mountinfo writes it as \040.
    with t.mount(imgs, mnt=t.path("mnt point")) as m:
        mnt = m.mnt
        q = shell_quote(mnt)
        # -m: every cgloopfs mount (other tests' too), ours among them.
        got, _ = complete("cgloopctl -m ")
        check(q in got, f"-m: {q!r} not in {got}")
        check_eq(sorted(got), sorted(shell_quote(p) for p in cgloopfs_mount_points()),
                 "-m: the cgloopfs mount points")
        # Our temporary directory is ours alone.
        expect(f"cgloopctl -m {t.tmp}/", [q])
        expect(f"cgloopctl --mount {t.tmp}/mn", [q])
        expect(f"cgloopctl list {t.tmp}/", [q])
        expect(f"cgloopctl status {t.tmp}/", [q])
        expect(f"cgloopctl top {t.tmp}/", [q])
        # top's -n and -o take a value, its -b none; list's -n none.
        expect(f"cgloopctl top -b -n 3 -o reads -d 0.5 {t.tmp}/", [q])
        expect(f"cgloopctl list -n {t.tmp}/", [q])
        expect(f"cgloopctl top {q} ", [])
        # Image names, from "cgloopctl list" of that mount.
        names = ["data.img", "disk\\ one.img", "rootfs.img"]
        expect(f"cgloopctl -m {q} detach ", names)
        expect(f"cgloopctl --mount={q} detach d", ["data.img", "disk\\ one.img"])
        expect(f"cgloopctl -m {q} set-capacity r", ["rootfs.img"])
        expect(f"cgloopctl set-capacity -m {q} --json ", names)
        expect(f"cgloopctl -m {q} detach --lazy ", names)
        expect(f"cgloopctl -m {q} detach --all ", [])
        expect(f"cgloopctl -m {q} detach rootfs.img ", [])
        # A name attached at run time is there at once.
        run([CGLOOPCTL, "-m", mnt, "attach", "--name", "extra.img",
             make_image(t.path("extra-backing.img"), 1 << 20)])
        expect(f"cgloopctl -m {q} detach e", ["extra.img"])



def test_names_of_a_mount_the_user_may_not_control(t):
    # A user other than the one who mounted may not use the control socket;
    # with allow_other they still see the files: those are offered.
    imgs = t.mkdir("images")
    make_image(os.path.join(imgs, "a.img"), 1 << 20)
    make_image(os.path.join(imgs, "b c.img"), 1 << 20)
    with t.mount(imgs, opts="allow_other") as m:
        r = run([CGLOOPCTL, "-m", m.mnt, "list"], check_rc=False, preexec_fn=as_nobody)
        check(r.returncode != 0, f"cgloopctl list as nobody worked: {r.stdout}")
        expect(f"cgloopctl -m {m.mnt} detach ", ["a.img", "b\\ c.img"], preexec=as_nobody)


def test_a_daemon_that_does_not_answer_holds_up_no_tab(t):
    # A control socket that takes the connection and never answers: the
    # completion gives up after 2 s and offers nothing (it does not fall back
    # to reading a directory, which on a stuck mount could hang too).
    sock_path = t.path("stuck.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    t.defer(srv.close)
    srv.bind(sock_path)
    srv.listen(8)
    t0 = time.monotonic()
    expect(f"cgloopctl -s {sock_path} detach ", [])
    dt = time.monotonic() - t0
    check(dt < 6, f"the completion took {dt:.1f} s")


def test_no_mount_no_names(t):
    # Nothing is mounted at a fresh directory: no names, no error output.
    d = t.mkdir("empty")
    expect(f"cgloopctl -m {d} detach ", [])
    expect(f"cgloopctl -m {t.tmp}/nonexistent set-capacity x", [])


if __name__ == "__main__":
    harness.main()
