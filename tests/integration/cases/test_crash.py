#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Crash, restart and abort: SIGKILL of the daemon in the middle of writes,
round after round on one mount point (no acknowledged write lost, callers
get an error at once, the next daemon clears the dead mount and its stale
control socket); -o auto_unmount; fusectl abort under load (errors to the
callers, exit status 1, no spinning, nothing left behind); a second daemon
on a live mount point or control socket; PR_SET_IO_FLUSHER."""

import collections
import errno
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import check, check_eq, is_mounted, wait_for  # noqa: E402

CGLOOPCTL = harness.CGLOOPCTL
GATEFS = harness.GATEFS
MiB = 1 << 20
BLOCK = 4096
# What a caller may see once the daemon is gone: the request in flight when the
# connection went down fails with ECONNABORTED or EIO, later ones with ENOTCONN.
DEAD = (errno.ENOTCONN, errno.ECONNABORTED, errno.EIO)
RECOVERED = re.compile(r'mount point ".*": the cgloopfs daemon of the mount there is gone '
                       r'\(Transport endpoint is not connected\); lazily unmounted its dead mount')

# A writer: 4 KiB blocks, one after another from block `first`, each stamped
# with (round, writer, index). After each write returned (and, for "fsync",
# after fsync returned too) its index goes to the log, a file outside the
# mount. The first error ends it: "E errno monotonic-time" in the log.
WRITER = r"""
import json, mmap, os, sys, time
s = json.loads(sys.argv[1])
log = os.open(s["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
flags = os.O_WRONLY | (os.O_DIRECT if s["variant"] == "odirect" else 0)
buf = mmap.mmap(-1, 4096)
i = 0
try:
    fd = os.open(s["path"], flags)
    while i < s["count"]:
        head = f"r{s['round']} w{s['writer']} i{i} ".encode().ljust(64, b".")
        buf[:] = head + bytes([(s["round"] * 31 + s["writer"] * 7 + i) % 251 + 1]) * 4032
        n = os.pwritev(fd, [buf], (s["first"] + i) * 4096)
        if n != 4096:
            os.write(log, f"S {n}\n".encode())
            break
        if s["variant"] == "fsync":
            os.fsync(fd)
        os.write(log, f"{i}\n".encode())
        i += 1
    while True:  # all written: wait for the daemon to go, then report it
        os.fstat(fd)
        os.pread(fd, 512, 0)
        time.sleep(0.01)
except OSError as e:
    os.write(log, f"E {e.errno} {time.monotonic()}\n".encode())
"""

# Load for the abort test: reads or writes of 64 KiB at random places until an
# error, which is logged as "E errno monotonic-time"; every 50 requests "ok N".
LOAD = r"""
import json, os, random, sys, time
s = json.loads(sys.argv[1])
log = os.open(s["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
rng = random.Random(s["seed"])
data = rng.randbytes(65536)
n = 0
try:
    fd = os.open(s["path"], os.O_RDWR)
    size = os.fstat(fd).st_size
    while True:
        pos = rng.randrange(0, size // 65536) * 65536
        if s["write"]:
            os.pwrite(fd, data, pos)
        else:
            os.pread(fd, 65536, pos)
        n += 1
        if n % 50 == 0:
            os.write(log, f"ok {n}\n".encode())
except OSError as e:
    os.write(log, f"E {e.errno} {time.monotonic()}\n".encode())
"""


class Daemon:
    """`cgloopfs -f` on a mount point that may hold a dead mount already. The
    test kills it, or unmounts to end it; clean-up kills it if it still runs
    and lazily unmounts whatever is left on the mount point."""

    _count = 0

    def __init__(self, t, source, mnt, opts, wait=True, extra=()):
        Daemon._count += 1
        self.t = t
        self.mnt = mnt
        self.stderr_path = t.path(f"daemon-{Daemon._count}.stderr")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([harness.CGLOOPFS, "-f", *extra, "-o", opts, source,
                                          mnt], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         start_new_session=True)
        t.defer(self.cleanup)
        if wait:
            check(wait_for(self.serving, harness.MOUNT_WAIT) or False,
                  f"no live mount at {mnt}; exit {self.proc.poll()}; stderr: {self.stderr()}")

    @property
    def pid(self):
        return self.proc.pid

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def serving(self):
        if self.proc.poll() is not None:
            raise harness.TestFailure(f"daemon exited with {self.proc.returncode}; "
                                      f"stderr: {self.stderr()}")
        if not self.top_dev():
            return False
        try:
            os.statvfs(self.mnt)
            dev = os.stat(self.mnt).st_dev
        except OSError:
            return False  # still the dead mount of the previous daemon
        # What answered is a cgloopfs mount, not the directory under a dead one that
        # the new daemon took away between the two looks (it logs that just after).
        return dev == self.top_dev()

    def top_dev(self):
        """The device of the cgloopfs mount on top at the mount point, or None."""
        found = None
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                dash = fields.index("-")
                if harness._unescape(fields[4]) == os.path.realpath(self.mnt):
                    major, minor = map(int, fields[2].split(":"))
                    found = (os.makedev(major, minor)
                             if fields[dash + 1] == "fuse.cgloopfs" else None)
        return found

    def check_clean_stderr(self, allow=None):
        bad = [ln for ln in self.stderr().splitlines()
               if harness.BAD_STDERR.search(ln) and not (allow and re.search(allow, ln))]
        check(not bad, f"daemon stderr: {bad}")

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for _ in range(10):
            if not is_mounted(self.mnt):
                break
            subprocess.run(["umount", "-l", self.mnt], capture_output=True)


def cpu_seconds(pid):
    """utime + stime of a process (all its threads, live and ended)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_log(path):
    """(acknowledged indexes, (errno, time) of the error or None, short-write note)."""
    acks, err, short = [], None, None
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if not parts:
                    continue
                if parts[0] == "E":
                    err = (int(parts[1]), float(parts[2]))
                elif parts[0] == "S":
                    short = line.strip()
                elif parts[0] == "ok":
                    acks.append(int(parts[1]))
                else:
                    acks.append(int(parts[0]))
    except FileNotFoundError:
        pass
    return acks, err, short


def wait_exit(procs, timeout):
    """Wait for every process; the ones still running after `timeout` are returned."""
    end = time.monotonic() + timeout
    left = []
    for p in procs:
        try:
            p.wait(max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            left.append(p)
    return left


def errno_names(errs):
    return {errno.errorcode.get(e, str(e)): n for e, n in collections.Counter(errs).items()}


def connection_id(mnt):
    """The fusectl directory name of the FUSE mount at mnt: its kernel dev_t."""
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if harness._unescape(fields[4]) == os.path.realpath(mnt):
                major, minor = map(int, fields[2].split(":"))
                found = (major << 20) | minor
    check(found is not None, f"{mnt} is not mounted")
    return found


def abort_connection(conn):
    """echo 1 > /sys/fs/fuse/connections/CONN/abort. If fusectl is not mounted here,
    it is mounted in a private mount namespace only, so nothing global changes and
    nothing needs undoing. Returns how it was done."""
    for mnt, fstype, _ in harness.mountinfo():
        if fstype == "fusectl":
            with open(os.path.join(mnt, str(conn), "abort"), "w") as f:
                f.write("1")
            return f"through {mnt}"
    harness.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 "mount -t fusectl fusectl /sys/fs/fuse/connections && "
                 f"echo 1 > /sys/fs/fuse/connections/{conn}/abort"], timeout=20)
    return "through fusectl mounted in a private mount namespace"


@harness.timeout(85)
def test_sigkill_during_writes_loses_no_acknowledged_write(t):
    """Five rounds on one mount point: writers (O_DIRECT, and write+fsync; to a
    buffered and to a direct_io image) log each write that returned; the daemon
    is killed with SIGKILL in the middle. Every logged write is in the backing
    file; every writer gets ENOTCONN/ECONNABORTED/EIO within two seconds; the next
    daemon clears the dead mount and the stale control socket by itself."""
    rounds, per_writer = 5, 8192
    variants = [("buf.img", "odirect"), ("buf.img", "fsync"),
                ("dio.img", "odirect"), ("dio.img", "fsync")]
    backing = {"buf.img": t.path("buf.backing"), "dio.img": t.path("dio.backing")}
    for path in backing.values():
        harness.make_sparse(path, 2 * per_writer * BLOCK)
    man = t.write_manifest([{"name": "buf.img", "path": backing["buf.img"]},
                            {"name": "dio.img", "path": backing["dio.img"],
                             "direct_io": True}])
    mnt = t.mkdir("mnt")
    sock = t.path("ctl.sock")
    opts = f"control={sock}"
    t.defer(harness.kill_daemons_for, mnt)
    cg = t.cgroup()
    where = cg.child("writers")
    rng = random.Random(7)
    latencies, errs, acked = [], [], 0
    for rnd in range(rounds):
        d = Daemon(t, man, mnt, opts)
        if rnd > 0:
            check(RECOVERED.search(d.stderr()), f"round {rnd}: no recovery line in "
                                                f"{d.stderr()!r}")
        d.check_clean_stderr()
        writers, specs = [], []
        for w, (name, variant) in enumerate(variants):
            spec = {"path": os.path.join(mnt, name), "variant": variant, "round": rnd,
                    "writer": w, "first": (w % 2) * per_writer, "count": per_writer,
                    "log": t.path(f"log-{rnd}-{w}")}
            specs.append(spec)
            writers.append(cg.popen(where, [sys.executable, "-c", WRITER, json.dumps(spec)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        check(wait_for(lambda: all(len(read_log(s["log"])[0]) >= 20 for s in specs), 20),
              f"round {rnd}: writers did not get going: "
              f"{[read_log(s['log']) for s in specs]}")
        time.sleep(rng.uniform(0.1, 0.4))
        t_kill = time.monotonic()
        os.kill(d.pid, signal.SIGKILL)
        check_eq(d.proc.wait(10), -signal.SIGKILL, f"round {rnd}: daemon status")
        hung = wait_exit(writers, 10)
        check(not hung, f"round {rnd}: writers {[p.pid for p in hung]} still running 10 s "
                        f"after the daemon was killed")
        for s, p in zip(specs, writers):
            acks, err, short = read_log(s["log"])
            check(short is None, f"round {rnd} writer {s['writer']}: {short}")
            check(err is not None, f"round {rnd} writer {s['writer']}: no error logged; "
                                   f"stderr {p.stderr.read()!r}")
            check(err[0] in DEAD, f"round {rnd} writer {s['writer']}: "
                                  f"{errno.errorcode.get(err[0], err[0])}, want one of "
                                  f"ENOTCONN, ECONNABORTED, EIO")
            errs.append(err[0])
            latencies.append(err[1] - t_kill)
            check_eq(acks, list(range(len(acks))), f"round {rnd} writer {s['writer']}: log")
            acked += len(acks)
            # Every acknowledged block is in the backing file, whole.
            with open(backing[variants[s["writer"]][0]], "rb") as f:
                for i in acks:
                    f.seek((s["first"] + i) * BLOCK)
                    got = f.read(BLOCK)
                    head = f"r{rnd} w{s['writer']} i{i} ".encode().ljust(64, b".")
                    fill = bytes([(rnd * 31 + s["writer"] * 7 + i) % 251 + 1]) * 4032
                    if got != head + fill:
                        raise harness.TestFailure(
                            f"round {rnd} writer {s['writer']} ({variants[s['writer']]}): "
                            f"acknowledged block {i} is not in the backing file: "
                            f"{got[:64]!r}")
            p.stderr.close()
        e = harness.expect_errno(errno.ENOTCONN, os.statvfs, mnt)
        check(e is not None, "statvfs of the dead mount")
        check(os.path.exists(sock), f"round {rnd}: the killed daemon removed {sock}?")
    check(max(latencies) < 2.0, f"kill-to-error times {sorted(latencies)}")
    print(f"# {rounds} rounds, {acked} acknowledged writes checked; kill to caller error: "
          f"median {1000 * sorted(latencies)[len(latencies) // 2]:.1f} ms, "
          f"max {1000 * max(latencies):.1f} ms; errors {errno_names(errs)}", flush=True)

    # The last restart serves what was written, and a clean unmount leaves nothing.
    d = Daemon(t, man, mnt, opts)
    check(RECOVERED.search(d.stderr()), "last restart: no recovery line")
    s = specs[0]
    acks, _, _ = read_log(s["log"])
    got = harness.file_pread(os.path.join(mnt, "buf.img"), acks[-1] * BLOCK, BLOCK)
    check(got.startswith(f"r{rounds - 1} w0 i{acks[-1]} ".encode()),
          f"read back through the mount: {got[:64]!r}")
    check_eq(len([e for e in harness.mountinfo() if e[0] == os.path.realpath(mnt)]), 1,
             "mounts at the mount point")
    harness.run(["fusermount3", "-u", mnt])
    check_eq(d.proc.wait(10), 0, "exit status after the unmount")
    check(not is_mounted(mnt), "still mounted")
    check(not os.path.exists(sock), "control socket left behind")


def fusermount_watchers(mnt):
    """fusermount3 processes (the auto_unmount watcher) naming our mount point."""
    return [p for p in harness.processes_naming("fusermount3", mnt) if harness.alive(p)]


def test_auto_unmount_takes_the_dead_mount_away(t):
    """-o auto_unmount: with a file open and written, SIGKILL of the daemon; the
    mount goes away within a second or two, the open file fails with
    ENOTCONN/ECONNABORTED/EIO, the watcher ends, and a new daemon mounts there
    without finding anything to clear."""
    img = harness.make_image(t.path("a.img"), 4 * MiB)
    mnt = t.mkdir("mnt")
    t.defer(harness.kill_daemons_for, mnt)
    d = Daemon(t, img, mnt, f"auto_unmount,control={t.path('ctl.sock')}")
    watchers = fusermount_watchers(mnt)
    check(watchers, "no fusermount3 watcher for auto_unmount")
    fd = os.open(os.path.join(mnt, "a.img"), os.O_RDWR)
    try:
        check_eq(os.pwrite(fd, b"x" * BLOCK, 0), BLOCK, "write before the kill")
        t0 = time.monotonic()
        os.kill(d.pid, signal.SIGKILL)
        d.proc.wait(10)
        check(wait_for(lambda: not is_mounted(mnt), 5), "the mount is still there 5 s "
              f"after the daemon was killed; /dev/fuse held by {harness.fuse_holders()}")
        gone = time.monotonic() - t0
        harness.expect_errno(DEAD, os.pwrite, fd, b"y" * BLOCK, 0)
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    check(wait_for(lambda: not any(harness.alive(p) for p in watchers), 5),
          f"auto_unmount watcher {watchers} still running")
    check_eq(harness.file_pread(img, 0, BLOCK), b"x" * BLOCK, "the acknowledged write")
    print(f"# auto_unmount: mount gone {1000 * gone:.0f} ms after SIGKILL", flush=True)
    d2 = Daemon(t, img, mnt, f"control={t.path('ctl2.sock')}")
    check(not RECOVERED.search(d2.stderr()), "a dead mount was found after auto_unmount")
    harness.run(["fusermount3", "-u", mnt])
    check_eq(d2.proc.wait(10), 0, "exit status")
    d2.check_clean_stderr()


@harness.timeout(60)
def test_sigkill_with_requests_stuck_in_a_worker_process(t):
    """SIGKILL of the daemon while two of A's reads are stuck in the backing store,
    in A's worker process (charge=cgroup): they fail at once, as the connection
    ends, rather than hanging until the store moves. The worker process cannot end
    while its threads wait in the store, and its descriptors stay with them: it
    lets go of /dev/fuse when it finds the daemon gone (before, it kept the
    connection alive with no one to read it)."""
    gate = harness.Gate(t, 64 * MiB, 32 * MiB)
    cg = t.cgroup()
    a = cg.child("a")
    mnt = t.mkdir("mnt")
    t.defer(harness.kill_daemons_for, mnt)
    with gate.held():
        d = Daemon(t, gate.disk, mnt, f"worker_depth=2,control={t.path('ctl.sock')}")
        f = os.path.join(mnt, "disk")
        stalled = [harness.start_io(cg, a, f, "read", 40 * MiB + i * MiB, 4096)
                   for i in range(2)]
        harness.wait_arrived(mnt, cg.rel(a), 2)
        hosts = [w["pid"] for w in harness.workers_by_path(mnt).values() if w.get("pid")]
        check(hosts, "no worker process")
        os.kill(d.pid, signal.SIGKILL)
        d.proc.wait(10)
        outs = harness.outputs_within(
            stalled, time.monotonic(), 5, "the daemon was killed",
            lambda: f"\n/dev/fuse is held by {harness.fuse_holders()}; the worker process:\n"
            + "\n".join(harness.where_blocked(h) for h in hosts))
        for out in outs:
            r = json.loads(out)
            check(not r["ok"] and r["errno"] in DEAD,
                  f"a stuck read after the daemon was killed: {r}, want {DEAD}")


READ_FOREVER = r"""
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 65536)
while True:
    try:
        os.preadv(fd, [buf], 0)
    except OSError:
        pass
"""


def freeze_v2(path, frozen):
    with open(os.path.join(path, "cgroup.freeze"), "w") as f:
        f.write("1" if frozen else "0")


@harness.timeout(60)
def test_sigkill_with_a_frozen_worker_process(t):
    """SIGKILL of the daemon while A is frozen (cgroup.freeze, as `docker pause` does)
    with its worker process inside, holding /dev/fuse: the mount must not hang for
    everybody until A is thawed. The worker processes' maker, which lives on in the
    daemon's cgroup, ends the connection through fusectl when the daemon is gone:
    another caller's read fails at once and statfs answers."""
    img = t.path("fz.img")
    harness.make_sparse(img, 64 * MiB)
    cg = t.cgroup()
    a = cg.child("a")
    mnt = t.mkdir("mnt")
    t.defer(harness.kill_daemons_for, mnt)
    d = Daemon(t, img, mnt, f"control={t.path('ctl.sock')}")
    t.defer(freeze_v2, a, False)  # thawed first: the clean-up looks at the mount
    f = os.path.join(mnt, "fz.img")
    # One reader that never closes the file (a close steps the worker process out).
    cg.popen(a, [sys.executable, "-c", READ_FOREVER, f], stderr=subprocess.DEVNULL)
    host = 0
    for _ in range(200):
        w = harness.workers_by_path(mnt).get(cg.rel(a), {})
        host = w.get("pid") or 0
        if host:
            break
        time.sleep(0.02)
    check(host, "A has no worker process")
    # Frozen with A: the worker process is in A while it serves A's reads.
    for _ in range(50):
        freeze_v2(a, True)
        time.sleep(0.2)
        if host in harness.Cgroup.procs(a):
            break
        freeze_v2(a, False)
    else:
        raise harness.TestFailure("A's worker process was never in A when A was frozen")
    os.kill(d.pid, signal.SIGKILL)
    d.proc.wait(10)
    t0 = time.monotonic()
    r = subprocess.run(["timeout", "-s", "KILL", "8", "dd", f"if={f}", "of=/dev/null",
                        "bs=4k", "count=1", "iflag=direct", "status=none"],
                       capture_output=True, text=True)
    took = time.monotonic() - t0
    print(f"# another caller's read after the daemon was killed, A frozen: "
          f"exit {r.returncode} in {took:.2f} s ({r.stderr.strip()})", flush=True)
    check(r.returncode not in (0, -9, 137) and took < 3,
          f"a read of the mount with the daemon gone and A frozen: exit {r.returncode} "
          f"after {took:.1f} s")
    t0 = time.monotonic()
    r = subprocess.run(["timeout", "-s", "KILL", "8", "stat", "-f", mnt],
                       capture_output=True, text=True)
    took = time.monotonic() - t0
    check(r.returncode not in (-9, 137) and took < 3,
          f"statfs of the mount with the daemon gone and A frozen took {took:.1f} s")


@harness.timeout(60)
def test_fusectl_abort_under_load(t):
    """Readers and writers busy in two cgroups; the connection is aborted through
    fusectl. Every caller gets ENOTCONN/ECONNABORTED/EIO and ends; the daemon exits
    1 within a few seconds without burning CPU, says why, unmounts the dead mount
    and removes its control socket; the mount point takes a new daemon as is."""
    img = harness.make_image(t.path("a.img"), 64 * MiB)
    mnt = t.mkdir("mnt")
    sock = t.path("ctl.sock")
    t.defer(harness.kill_daemons_for, mnt)
    d = Daemon(t, img, mnt, f"control={sock}")
    cg = t.cgroup()
    load, logs = [], []
    for i in range(6):
        where = cg.child(f"load{i}") if i < 2 else cg.path
        spec = {"path": os.path.join(mnt, "a.img"), "write": i % 2 == 0, "seed": i,
                "log": t.path(f"load-{i}")}
        logs.append(spec["log"])
        load.append(cg.popen(where, [sys.executable, "-c", LOAD, json.dumps(spec)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    check(wait_for(lambda: all(read_log(p)[0] for p in logs), 20), "load did not start")
    time.sleep(0.3)
    conn = connection_id(mnt)
    cpu_before = cpu_seconds(d.pid)
    t0 = time.monotonic()
    how = abort_connection(conn)
    # Only the daemon is reaped between the two samples: the difference is its CPU.
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        rc = d.proc.wait(10)
    except subprocess.TimeoutExpired:
        raise harness.TestFailure(f"daemon still running 10 s after the abort, "
                                  f"{cpu_seconds(d.pid) - cpu_before:.2f} s CPU since")
    exited = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_total = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    cpu_after = max(0.0, cpu_total - cpu_before)
    check_eq(rc, 1, "daemon exit status after the abort")
    check(exited < 5, f"the daemon took {exited:.1f} s to exit")
    check(cpu_after < 0.5, f"the daemon used {cpu_after:.2f} s CPU after the abort")
    hung = wait_exit(load, 10)
    check(not hung, f"callers {[p.pid for p in hung]} still running after the abort")
    errs = []
    for p in logs:
        acks, err, _ = read_log(p)
        check(err is not None and err[0] in DEAD, f"{p}: {err}")
        errs.append(err[0])
    err = d.stderr()
    check(re.search(r'the FUSE connection of ".*" was aborted \(fusectl abort or a kernel '
                    r'request timeout\); unmounted it', err), f"stderr: {err!r}")
    # libfuse itself reports the aborted read of a session thread blocked in it.
    libfuse = "fuse: reading device: Software caused connection abort"
    check_eq(len([ln for ln in err.splitlines()
                  if harness.BAD_STDERR.search(ln) and ln != libfuse]), 1,
             f"error lines in {err!r}")
    check(not is_mounted(mnt), "the dead mount is left behind")
    check(not os.path.exists(sock), "the control socket is left behind")
    check(not harness.daemons_for(mnt), "a daemon is left behind")
    print(f"# abort ({how}): daemon exit 1 after {1000 * exited:.0f} ms, "
          f"{1000 * cpu_after:.0f} ms CPU after the abort; callers: {errno_names(errs)}",
          flush=True)
    d2 = Daemon(t, img, mnt, f"control={sock}")
    check(not RECOVERED.search(d2.stderr()), "a dead mount was found after the abort")
    harness.run(["fusermount3", "-u", mnt])
    check_eq(d2.proc.wait(10), 0, "exit status")


@harness.timeout(60)
def test_second_daemon_is_refused(t):
    """On a live mount point (with a control socket of its own), on a live control
    socket, on a mount whose daemon is stopped, and on a dead FUSE mount of
    another kind: refused with one line, exit 1, nothing mounted; the first
    daemon serves on."""
    img = harness.make_image(t.path("a.img"), MiB, [(0, b"first")])
    with t.mount(img, opts=f"control={t.path('ctl.sock')}") as m:
        mnt = os.path.realpath(m.mnt)
        msg = harness.run_daemon_expect_failure(
            t, ["-o", f"control={t.path('other.sock')}", img, mnt], 1, mnt=t.path("none"))
        check_eq(msg, f'cgloopfs: mount point "{mnt}": a running cgloopfs already serves it '
                      f'(unmount it first)', "second daemon on the mount point")
        check_eq([e[1] for e in harness.mountinfo() if e[0] == mnt], ["fuse.cgloopfs"],
                 "mounts at the mount point")
        check(not os.path.exists(t.path("other.sock")), "the refused daemon left a socket")

        # Another image: the first one's locks would refuse it before the socket.
        other = t.mkdir("other")
        img2 = harness.make_image(t.path("b.img"), MiB)
        msg = harness.run_daemon_expect_failure(
            t, ["-o", f"control={t.path('ctl.sock')}", img2, other], 1)
        check_eq(msg, f'cgloopfs: control socket "{t.path("ctl.sock")}": another cgloopfs is '
                      f'serving it', "second daemon on the control socket")

        # A stopped daemon: its mount does not answer; refused after the probe's limit.
        os.kill(m.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            msg = harness.run_daemon_expect_failure(
                t, ["-o", f"control={t.path('other.sock')}", img, mnt], 1,
                mnt=t.path("none"), timeout=20)
            took = time.monotonic() - t0
        finally:
            os.kill(m.pid, signal.SIGCONT)
        check_eq(msg, f'cgloopfs: mount point "{mnt}": the fuse.cgloopfs mount there does '
                      f'not answer (its daemon is stuck?)', "mount of a stopped daemon")
        check(2.5 < took < 10, f"refused after {took:.1f} s")
        check_eq(harness.file_pread(m.path("a.img"), 0, 5), b"first", "the first daemon")

    # A dead mount of another FUSE file system is not ours to clear.
    check(os.access(GATEFS, os.X_OK), f"cannot run: gatefs {GATEFS} is missing")
    backing = harness.make_sparse(t.path("gate.img"), MiB)
    gmnt = os.path.realpath(t.mkdir("gmnt"))
    g = subprocess.Popen([GATEFS, backing, gmnt, str(MiB), t.path("GATE")],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    t.defer(lambda: g.poll() is None and (g.kill(), g.wait(10)))
    t.defer(lambda: is_mounted(gmnt) and subprocess.run(["umount", "-l", gmnt]))
    check(wait_for(lambda: is_mounted(gmnt), 10), "gatefs did not mount")
    fstype = harness.mount_entry(gmnt)[1]
    g.kill()
    g.wait(10)
    msg = harness.run_daemon_expect_failure(t, [img, gmnt], 1, mnt=t.path("none"))
    check_eq(msg, f'cgloopfs: mount point "{gmnt}": a dead {fstype} mount is there (Transport '
                  f'endpoint is not connected); unmount it with: umount -l {gmnt}',
             "dead foreign mount")
    check_eq(harness.mount_entry(gmnt)[1], fstype, "the dead mount is left as it was")


PF_MEMALLOC_NOIO = 0x00080000
PF_LOCAL_THROTTLE = 0x00100000
CAP_SYS_RESOURCE = 24


def thread_flags(pid):
    """{tid: flags} from /proc/PID/task/TID/stat field 9."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                out[int(tid)] = int(f.read().rsplit(")", 1)[1].split()[6])
        except OSError:
            pass
    return out


def has_cap(pid, cap):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> cap & 1)
    return False


def status_json(mnt):
    r = harness.run([CGLOOPCTL, "--json", "status", mnt])
    return json.loads(r.stdout)


def test_io_flusher(t):
    """PR_SET_IO_FLUSHER: with CAP_SYS_RESOURCE every thread of the daemon carries
    PF_MEMALLOC_NOIO|PF_LOCAL_THROTTLE and status says io_flusher true; without
    it (dropped here with setpriv) none does, status says false, and -d logs why."""
    both = PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE
    img = harness.make_image(t.path("a.img"), MiB)
    with t.mount(img, opts=f"control={t.path('ctl.sock')}") as m:
        harness.file_pread(m.path("a.img"), 0, 4096)  # a worker thread too
        flags = thread_flags(m.pid)
        check(len(flags) >= 5, f"threads: {flags}")
        permitted = has_cap(m.pid, CAP_SYS_RESOURCE)
        if permitted:
            check(all(f & both == both for f in flags.values()),
                  f"threads without the flags: {[hex(f) for f in flags.values()]}")
        else:
            check(all(f & both == 0 for f in flags.values()), "flags without the capability?")
        check_eq(status_json(m.mnt)["io_flusher"], permitted, "status io_flusher")
        print(f"# CAP_SYS_RESOURCE {'available' if permitted else 'not available here'}: "
              f"io_flusher {permitted} on {len(flags)} threads", flush=True)

    drop = ["setpriv", "--inh-caps=-sys_resource", "--bounding-set=-sys_resource"]
    debug_ok = r"^(?!.*(Sanitizer|runtime error))"  # -d logs every request
    m = t.mount(img, opts=f"control={t.path('ctl2.sock')}", extra_args=["-d"],
                allow_stderr=debug_ok)
    m.argv = lambda: drop + [harness.CGLOOPFS, "-d", "-o", m.opts, m.source, m.mnt]
    with m:
        check(not has_cap(m.pid, CAP_SYS_RESOURCE), "setpriv did not drop CAP_SYS_RESOURCE")
        check_eq(harness.file_pread(m.path("a.img"), 0, 4), b"\0" * 4, "serves")
        flags = thread_flags(m.pid)
        check(all(f & both == 0 for f in flags.values()),
              f"flags without CAP_SYS_RESOURCE: {[hex(f) for f in flags.values()]}")
        check_eq(status_json(m.mnt)["io_flusher"], False, "status io_flusher")
        check("prctl(PR_SET_IO_FLUSHER): Operation not permitted, running without it"
              in m.stderr(), "no debug line about PR_SET_IO_FLUSHER")


if __name__ == "__main__":
    harness.main()
