#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""cgloopctl top for real: two cgroups of a real mount do I/O at very
different rates (one reads with dd as fast as it can, the other writes 4 KiB
about a hundred times a second, under a name with an escape sequence in it),
and top shows it: in batch mode (the reader reads and does not write, the
writer the other way round, each order puts the right one first, the p99 is
there, the rates add up to what the daemon counted, the name is escaped), and
on a real terminal under tmux (header and both cgroups on the alternate
screen, a key changes the order and the marked column, the window shrinks
and the table with it, and q, Ctrl-C and SIGTERM each end it with the
terminal as it was). Bad operands and option values get clear messages."""

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import MiB, TestFailure, check, check_eq, ctl_mount, wait_for  # noqa: E402

CGLOOPCTL = harness.CGLOOPCTL

# The writer's name holds ESC [7m: shown raw it would turn the terminal to
# reverse video; escaped it reads writer\x1b[7mX.
WRITER = "writer\x1b[7mX"
WRITER_SHOWN = "writer\\x1b[7mX"

# The writer's pace: one 4 KiB write, then 10 ms of sleep (at most 100 a second).
WRITER_SCRIPT = r"""
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)
buf = b"w" * 4096
i = 0
while True:
    os.pwrite(fd, buf, (i % 256) * 4096)
    i += 1
    time.sleep(0.01)
"""


class Busy:
    """A reader and a writer, each in a cgroup of its own, doing I/O until stopped."""

    def __init__(self, t, m):
        self.cg = t.cgroup()
        self.reader_dir = self.cg.child("reader")
        self.writer_dir = self.cg.child(WRITER)
        self.reader = self.cg.rel(self.reader_dir)
        self.writer = self.cg.rel(self.writer_dir)
        self.writer_shown = self.writer.replace(WRITER, WRITER_SHOWN)  # as top shows it
        img = m.path("a.img")
        self.procs = [
            self.cg.popen(self.reader_dir, [
                "sh", "-c", 'while :; do dd if="$1" of=/dev/null bs=64k status=none || '
                'exit 1; done', "reader", img]),
            self.cg.popen(self.writer_dir, [sys.executable, "-c", WRITER_SCRIPT, img]),
        ]
        t.defer(self.stop)
        self.mnt = m.mnt
        # Both are under way once the daemon has counted requests of each.
        def going():
            s = {c["cgroup"]: c for c in ctl_mount(m.mnt, "stats")["cgroups"]}
            return (s.get(self.reader, {}).get("reads", 0) > 0
                    and s.get(self.writer, {}).get("writes", 0) > 0)
        check(wait_for(going, 20, 0.1), "the reader and the writer did not start")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        """Kill and reap both, the reader's dd too (before the unmount: they hold
        the image open)."""
        for p in self.procs:
            harness.stop(p)

    def check_alive(self):
        for p in self.procs:
            check(p.poll() is None, f"{p.args} ended early: exit {p.returncode}")


def image(t):
    return harness.make_sparse(t.path("a.img"), 16 * MiB)


def top(*args, timeout=60):
    return subprocess.run([CGLOOPCTL, "top", *args], capture_output=True, text=True,
                          timeout=timeout)


def parse_batch(out):
    """The tables of `top -b` output: a list of (title, {cgroup: {header: cell}}, [cgroups in
    order], header line)."""
    tables = []
    blocks = [b for b in out.split("\n\n") if b.strip()]
    for b in blocks:
        lines = b.splitlines()
        check(len(lines) >= 3, f"a short table: {b!r}")
        title, total, header = lines[0], lines[1], lines[2]
        check(title.startswith("cgloopctl top: "), f"title {title!r}")
        check(total.startswith("total: "), f"totals {total!r}")
        heads = header.split()
        check_eq(heads, ["CGROUP", "UNIT", "MACHINE", "R/S", "W/S", "RMiB/S", "WMiB/S",
                         "QUEUED", "INFLIGHT", "P99"], "columns")
        rows, order = {}, []
        for ln in lines[3:]:
            cells = ln.split()
            # "(root queue)" is the one cgroup name with a blank.
            if ln.startswith("(root queue)"):
                cells = ["(root queue)"] + cells[2:]
            check_eq(len(cells), len(heads), f"cells of {ln!r}")
            rows[cells[0]] = dict(zip(heads, cells))
            order.append(cells[0])
        tables.append((title, rows, order, header))
    return tables


# --------------------------------------------------------------------------
# Batch output

@harness.timeout(90)
def test_batch_shows_who_reads_and_who_writes(t):
    """-b -n 3 -d 0.5: three tables; the reader reads and does not write, the writer the
    other way round; -o reads and -o writes each put the right one first; p99 present;
    the writer's escape sequence is escaped; the output has no ESC at all."""
    img = image(t)
    with t.mount(img) as m, Busy(t, m) as busy:
        figures = {}
        for order, first in (("reads", busy.reader), ("writes", busy.writer_shown)):
            t0 = time.monotonic()
            r = top("-b", "-n", "3", "-d", "0.5", "-o", order, m.mnt)
            took = time.monotonic() - t0
            check_eq(r.returncode, 0, f"top -b exit status (stderr {r.stderr!r})")
            check_eq(r.stderr, "", "top -b stderr")
            check("\x1b" not in r.stdout, f"an ESC reached the output: {r.stdout!r}")
            tables = parse_batch(r.stdout)
            check_eq(len(tables), 3, f"tables of -n 3:\n{r.stdout}")
            # Three intervals of 0.5 s after a first reading: 1.5 s at least.
            check(took >= 1.4, f"-n 3 -d 0.5 took {took:.2f} s")
            for title, rows, ordered, _ in tables:
                check(f"order: {order}" in title, f"title {title!r}")
                check(busy.reader in rows and busy.writer_shown in rows,
                      f"both cgroups in {sorted(rows)}")
                rd = rows[busy.reader]
                wr = rows[busy.writer_shown]
                check(float(rd["R/S"]) > 0 and float(rd["RMiB/S"]) > 0, f"reader {rd}")
                check(float(rd["W/S"]) == 0 and float(rd["WMiB/S"]) == 0, f"reader {rd}")
                check(float(wr["W/S"]) > 0 and float(wr["WMiB/S"]) > 0, f"writer {wr}")
                check(float(wr["R/S"]) == 0 and float(wr["RMiB/S"]) == 0, f"writer {wr}")
                # The writer sleeps 10 ms after each write: at most 100 a second.
                check(float(wr["W/S"]) <= 120, f"writer W/S {wr['W/S']}")
                for who in (rd, wr):
                    check(re.fullmatch(r"[0-9.]+(us|ms|s)", who["P99"]), f"p99 of {who}")
                ours = [c for c in ordered if c in (busy.reader, busy.writer_shown)]
                check_eq(ours[0], first, f"first by {order}")
                figures.setdefault(order, []).append(
                    {"reader_rs": float(rd["R/S"]), "writer_ws": float(wr["W/S"])})
        busy.check_alive()
        print("# figures: " + json.dumps(figures), flush=True)


@harness.timeout(90)
def test_json_rates_add_up_to_the_daemons_counts(t):
    """--json: one object per interval, in io order; each rate x its interval is a whole
    count, and summed they are at most what the daemon counted meanwhile (and for the
    steady writer about its share of it); a reader's requests are its dd's 64 KiB, a
    writer's 4 KiB; the name is exact in JSON."""
    img = image(t)
    with t.mount(img) as m, Busy(t, m) as busy:
        t0 = time.monotonic()
        before = {c["cgroup"]: c for c in ctl_mount(m.mnt, "stats")["cgroups"]}
        r = subprocess.run([CGLOOPCTL, "--json", "top", "-n", "3", "-d", "0.5", m.mnt],
                           capture_output=True, text=True, timeout=60)
        after = {c["cgroup"]: c for c in ctl_mount(m.mnt, "stats")["cgroups"]}
        window = time.monotonic() - t0
        check_eq(r.returncode, 0, f"top --json exit status (stderr {r.stderr!r})")
        lines = r.stdout.splitlines()
        check_eq(len(lines), 3, f"lines of --json -n 3: {r.stdout!r}")
        covered = 0.0
        sums = {busy.reader: [0.0, 0.0, 0.0, 0.0], busy.writer: [0.0, 0.0, 0.0, 0.0]}
        for ln in lines:
            o = json.loads(ln)
            check_eq(o["order"], "io", "the default order")
            # Readings keep to a cadence of 0.5 s: a late one makes the next interval
            # shorter, the three together last 1.5 s or a little more.
            check(0 < o["interval"] <= 5, f"interval {o['interval']}")
            covered += o["interval"]
            rows = {c["cgroup"]: c for c in o["cgroups"]}
            check(busy.writer in rows, f"the writer's exact name in {sorted(rows)}")
            # io: bytes read + written, largest first.
            io = [c["read_bytes_per_s"] + c["written_bytes_per_s"] for c in o["cgroups"]]
            check_eq(io, sorted(io, reverse=True), "the io order")
            for who, s in sums.items():
                c = rows[who]
                check(c["latency_p99_us"] is not None and c["latency_p99_us"] > 0,
                      f"p99 of {who}: {c}")
                for i, k in enumerate(("reads_per_s", "writes_per_s", "read_bytes_per_s",
                                       "written_bytes_per_s")):
                    # A rate is a whole count over the interval it gives.
                    n = c[k] * o["interval"]
                    check(abs(n - round(n)) < 1e-6 * max(1, n), f"{who} {k} x interval = {n}")
                    s[i] += n
        check(1.45 <= covered <= 10, f"three intervals of 0.5 s took {covered:.2f} s")
        for who, s in sums.items():
            for i, k in enumerate(("reads", "writes", "bytes_read", "bytes_written")):
                counted = after[who][k] - before[who][k]
                # top's three intervals lie between the two stats readings.
                check(s[i] <= counted * 1.001 + 1e-6,
                      f"{who} {k}: top saw {s[i]:.1f}, the daemon counted {counted}")
        # The writer keeps its pace whatever the load (the reader's varies with the
        # machine's): it wrote in top's intervals about their share of the window.
        counted = after[busy.writer]["writes"] - before[busy.writer]["writes"]
        check(sums[busy.writer][1] >= counted * 0.5 * covered / window,
              f"the writer: top saw {sums[busy.writer][1]:.0f} writes in {covered:.2f} s of "
              f"{counted} counted in {window:.2f} s")
        rd, wr = sums[busy.reader], sums[busy.writer]
        check(rd[1] == 0 and rd[3] == 0, f"the reader wrote: {rd}")
        check(wr[0] == 0 and wr[2] == 0, f"the writer read: {wr}")
        # dd's 64 KiB, and a read of 0 bytes at the end of each pass over the 16 MiB
        # (256 + 1 a pass; an interval may hold more than its share of pass ends).
        check(60000 <= rd[2] / rd[0] <= 65536, f"bytes per read {rd[2] / rd[0]:.0f}")
        check(abs(wr[3] / wr[1] - 4096) < 1, f"bytes per write {wr[3] / wr[1]:.0f}")
        busy.check_alive()
        print("# figures: " + json.dumps({"reader_reads": rd[0], "writer_writes": wr[1]}),
              flush=True)


# --------------------------------------------------------------------------
# On a terminal: tmux

class Tmux:
    """A tmux server of our own, its socket in the test's temporary directory (-S:
    nothing is made under /tmp/tmux-UID), killed (only it) at the end of the test."""

    def __init__(self, t):
        self.exe = shutil.which("tmux")
        if not self.exe:
            raise TestFailure("cannot run: no tmux (scripts/install-deps.sh installs it)")
        self.sock = os.path.join(t.tmp, "tmux.sock")
        t.defer(self.kill)

    def __call__(self, *args, check_rc=True):
        r = subprocess.run([self.exe, "-S", self.sock, "-f", "/dev/null", *args],
                           capture_output=True, text=True, timeout=20)
        if check_rc and r.returncode != 0:
            raise TestFailure(f"tmux {args}: exit {r.returncode}: {r.stderr}")
        return r

    def kill(self):
        """Our server only; and its socket, which it may leave behind."""
        self("kill-server", check_rc=False)
        wait_for(lambda: self("has-session", check_rc=False).returncode != 0, 5, 0.05)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.sock)

    def start(self, name, command):
        self("new-session", "-d", "-x", "160", "-y", "40", "-s", name, command)

    def screen(self, name, escapes=False):
        return self("capture-pane", "-p", *(["-e"] if escapes else []), "-t", name).stdout

    def var(self, name, fmt):
        return self("display-message", "-p", "-t", name, fmt).stdout.strip()

    def wait_screen(self, name, pred, what, timeout=15):
        last = [""]

        def ok():
            last[0] = self.screen(name)
            return pred(last[0])
        if not wait_for(ok, timeout, 0.1):
            raise TestFailure(f"{what}; the screen:\n{last[0]}")
        return last[0]


def proc_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def shell_command(mnt):
    """What the pane runs: a mark, top, its exit status and the terminal's modes after."""
    return (f"echo BEFORE-TOP; {shlex.quote(CGLOOPCTL)} top -d 0.5 {shlex.quote(mnt)}; "
            f"echo EXIT=$?; "
            f"stty -a; echo END-OF-MODES; sleep 600")


def row_index(screen, cgroup):
    for i, ln in enumerate(screen.splitlines()):
        if ln.startswith(cgroup + " ") or ln.startswith("..." + cgroup[-20:]):
            return i
    return None


def marked_headers(line):
    """The words of a line (capture-pane -e) shown underlined."""
    marked, underline = [], False
    pos = 0
    for m in re.finditer(r"\x1b\[([0-9;]*)m", line + "\x1b[0m"):
        if underline:
            marked += line[pos:m.start()].split()
        for p in (m.group(1) or "0").split(";"):
            if p in ("", "0", "24"):
                underline = False
            elif p == "4":
                underline = True
        pos = m.end()
    return marked


def restored(tm, name, screen):
    """After top: the normal screen back (with what was on it), cursor on, modes back."""
    check_eq(tm.var(name, "#{alternate_on}"), "0", "alternate screen after top")
    check_eq(tm.var(name, "#{cursor_flag}"), "1", "cursor visible after top")
    check("BEFORE-TOP" in screen, f"the screen before top is not back:\n{screen}")
    modes = screen[screen.index("EXIT="):]
    check(re.search(r"(?<![-\w])icanon\b", modes), f"icanon not restored:\n{modes}")
    check(re.search(r"(?<![-\w])echo\b", modes), f"echo not restored:\n{modes}")
    check("CGROUP" not in screen, f"top's screen left behind:\n{screen}")


@harness.timeout(120)
def test_on_a_terminal_keys_resize_and_quit(t):
    """Under tmux: the header and both cgroups on the alternate screen, the order io with
    its columns marked; w sorts by writes (the writer first, W/S marked), > steps on;
    a narrower window gets a narrower table that still ends in P99; q exits 0 and the
    terminal is as it was (normal screen, cursor, icanon and echo)."""
    img = image(t)
    with t.mount(img) as m, Busy(t, m) as busy:
        tm = Tmux(t)
        reader = busy.reader
        writer = busy.writer_shown
        tm.start("top", shell_command(m.mnt))
        scr = tm.wait_screen(
            "top", lambda s: "CGROUP" in s and reader in s and writer in s and " R/S " in s
            and "total: waiting" not in s, "top did not show the header and both cgroups")
        check_eq(tm.var("top", "#{alternate_on}"), "1", "alternate screen while top runs")
        check("order: io" in scr, f"default order:\n{scr}")
        # The reader moves far more bytes than the writer: first by io.
        check(row_index(scr, reader) < row_index(scr, writer), f"io order:\n{scr}")
        header = next(ln for ln in tm.screen("top", True).splitlines() if "CGROUP" in ln)
        check_eq(marked_headers(header), ["RMiB/S", "WMiB/S"], "marked columns of io")
        # The writer's name reached the terminal escaped: no reverse video from it.
        check(WRITER_SHOWN in scr, f"escaped name:\n{scr}")

        tm("send-keys", "-t", "top", "w")
        scr = tm.wait_screen("top", lambda s: "order: writes" in s, "w did not sort by writes")
        check(row_index(scr, writer) < row_index(scr, reader), f"writes order:\n{scr}")
        header = next(ln for ln in tm.screen("top", True).splitlines() if "CGROUP" in ln)
        check_eq(marked_headers(header), ["W/S"], "marked column after w")
        tm("send-keys", "-t", "top", ">")
        tm.wait_screen("top", lambda s: re.search(r"order: read$", s, re.M),
                       "> did not step to the next column")

        # A narrower window: the table fits it, and its last column is still there.
        tm("resize-window", "-t", "top", "-x", "90", "-y", "30")
        scr = tm.wait_screen("top", lambda s: any(
            ln.startswith("CGROUP") and ln.rstrip().endswith("P99") and len(ln.rstrip()) <= 90
            for ln in s.splitlines()), "the table did not fit a 90-column window")
        check(all(len(ln) <= 90 for ln in scr.splitlines()), f"lines wider than 90:\n{scr}")

        tm("send-keys", "-t", "top", "q")
        scr = tm.wait_screen("top", lambda s: "END-OF-MODES" in s, "q did not end top")
        check("EXIT=0" in scr, f"exit status after q:\n{scr}")
        restored(tm, "top", scr)
        busy.check_alive()


def top_pid(tm, name):
    """The pid of cgloopctl in the pane (a child of its shell)."""
    shell = int(tm.var(name, "#{pane_pid}"))
    found = []

    def look():
        found.clear()
        with open(f"/proc/{shell}/task/{shell}/children") as f:
            for pid in f.read().split():
                with contextlib.suppress(OSError):
                    with open(f"/proc/{pid}/cmdline", "rb") as c:
                        if c.read().split(b"\0")[0] == CGLOOPCTL.encode():
                            found.append(int(pid))
        return found
    check(wait_for(look, 10, 0.05), "no cgloopctl in the pane")
    return found[0]


@harness.timeout(90)
def test_on_a_terminal_ctrl_c_and_sigterm_restore_it(t):
    """Ctrl-C ends top with status 0 (also after a SIGSTOP and SIGCONT from outside) and
    SIGTERM as the signal would (143 in the shell), each with the terminal as it was."""
    img = image(t)
    with t.mount(img) as m:
        tm = Tmux(t)
        for name, how, status in (("int", "C-c", "EXIT=0"), ("term", "TERM", "EXIT=143")):
            tm.start(name, shell_command(m.mnt))
            tm.wait_screen(name, lambda s: "CGROUP" in s and "(root queue)" in s,
                           f"{name}: top did not start")
            check_eq(tm.var(name, "#{alternate_on}"), "1", f"{name}: alternate screen")
            pid = top_pid(tm, name)
            if how == "TERM":
                os.kill(pid, signal.SIGTERM)
            else:
                # Stopped and continued from outside first: top takes the terminal
                # again and still gives back the modes it found at the start.
                os.kill(pid, signal.SIGSTOP)
                os.kill(pid, signal.SIGCONT)
                # Running again before the keys (on a loaded machine it was once seen
                # still stopped 15 s later: continued again, every 50 ms up to 2 s).
                for _ in range(40):
                    if proc_state(pid) != "T":
                        break
                    time.sleep(0.05)
                    os.kill(pid, signal.SIGCONT)
                check(proc_state(pid) != "T", f"{name}: top stays stopped after SIGCONT")
                tm("send-keys", "-t", name, "space")
                time.sleep(0.3)
                check_eq(tm.var(name, "#{alternate_on}"), "1", f"{name}: after SIGCONT")
                tm("send-keys", "-t", name, how)
            scr = tm.wait_screen(name, lambda s: "END-OF-MODES" in s, f"{name}: top did not end")
            check(status in scr, f"{name}: want {status}:\n{scr}")
            restored(tm, name, scr)


@harness.timeout(90)
def test_on_a_terminal_ctrl_z_gives_it_back_until_fg(t):
    """In an interactive bash: Ctrl-Z stops top with the normal screen and the cursor
    back; fg brings its screen back; q then leaves the terminal's modes as they were."""
    bash = shutil.which("bash")
    check(bash, "cannot run: no bash")
    img = image(t)
    with t.mount(img) as m:
        tm = Tmux(t)
        tm.start("job", f"{bash} --norc --noprofile -i")
        tm("send-keys", "-t", "job",
           f"echo BEFORE-TOP; {shlex.quote(CGLOOPCTL)} top -d 0.5 {shlex.quote(m.mnt)}", "Enter")
        tm.wait_screen("job", lambda s: "CGROUP" in s and "(root queue)" in s,
                       "top did not start")
        tm("send-keys", "-t", "job", "C-z")
        scr = tm.wait_screen("job", lambda s: "Stopped" in s, "Ctrl-Z did not stop top")
        check_eq(tm.var("job", "#{alternate_on}"), "0", "alternate screen while stopped")
        check_eq(tm.var("job", "#{cursor_flag}"), "1", "cursor while stopped")
        check("BEFORE-TOP" in scr and "CGROUP" not in scr, f"screen while stopped:\n{scr}")
        tm("send-keys", "-t", "job", "fg", "Enter")
        tm.wait_screen("job", lambda s: "CGROUP" in s and "(root queue)" in s,
                       "fg did not bring top's screen back")
        check_eq(tm.var("job", "#{alternate_on}"), "1", "alternate screen after fg")
        tm("send-keys", "-t", "job", "q")
        tm.wait_screen("job", lambda s: "BEFORE-TOP" in s, "q did not end top")
        tm("send-keys", "-t", "job", "echo EXIT=$?; stty -a; echo END-OF-MODES", "Enter")
        scr = tm.wait_screen("job", lambda s: "\nEND-OF-MODES" in s, "no modes after top")
        check("EXIT=0" in scr, f"exit status after fg and q:\n{scr}")
        restored(tm, "job", scr)


# --------------------------------------------------------------------------
# Errors

@harness.timeout(60)
def test_errors_are_clear(t):
    """Not a cgloopfs mount: exit 1 naming it. Bad -d, -n, -o: exit 2 naming the option
    and the value, checked before any daemon is looked for. A daemon that goes away
    while top runs: top ends with exit 1 and says so, rather than hanging."""
    d = t.mkdir("not-a-mount")
    r = top("-b", "-n", "1", d)
    check_eq(r.returncode, 1, f"top on a plain directory: {r.stderr!r}")
    check_eq(r.stderr.strip(), f'cgloopctl: "{d}" is not a cgloopfs mount point', "message")
    check_eq(r.stdout, "", "stdout")
    r = top("-b", t.path("nonexistent"))
    check_eq(r.returncode, 1, "top on a missing path")
    check("No such file or directory" in r.stderr, f"message {r.stderr!r}")
    bad = [
        (["-d", "0"], 'top: --delay: "0" is not a number of seconds from 0.01 to 86400'),
        (["-d", "abc"], 'top: --delay: "abc" is not a number of seconds from 0.01 to 86400'),
        (["--delay=-1"], 'top: --delay: "-1" is not a number of seconds from 0.01 to 86400'),
        (["-n", "0"], 'top: --iterations: "0" is not a whole number from 1 to 1000000000'),
        (["-n", "2x"], 'top: --iterations: "2x" is not a whole number from 1 to 1000000000'),
        (["-o", "size"], 'top: --order: unknown column "size"'),
        (["-d"], 'option "-d" needs a value'),
    ]
    img = harness.make_sparse(t.path("a.img"), 1 * MiB)
    with t.mount(img) as m:
        for args, want in bad:
            for where in ([m.mnt], [d]):  # the value is wrong whatever the mount point
                r = top(*args, *where) if args != ["-d"] else top(*where, *args)
                check_eq(r.returncode, 2, f"top {args} {where}: {r.stderr!r}")
                check(want in r.stderr, f"top {args}: {r.stderr!r} lacks {want!r}")
                check_eq(r.stdout, "", f"top {args}: stdout")
        # The daemon goes away under a running top.
        p = subprocess.Popen([CGLOOPCTL, "top", "-b", "-d", "0.2", m.mnt],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t.defer(lambda: p.poll() is None and (p.kill(), p.wait()))
        check(wait_for(lambda: p.poll() is None and os.path.exists(f"/proc/{p.pid}"), 5),
              "top did not start")
        time.sleep(0.5)
    out, err = p.communicate(timeout=20)
    check_eq(p.returncode, 1, f"top after the unmount: {err!r}")
    check(err.startswith("cgloopctl: ") and ("daemon" in err or "socket" in err),
          f"message after the unmount: {err!r}")
    check("cgloopctl top: " in out, f"top printed nothing before: {out!r}")


if __name__ == "__main__":
    harness.main()
