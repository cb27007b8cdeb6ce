#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Faults from the backing store, from real fault sources: nbdkit (its ddrescue
filter for bad sectors on one byte range, the error filter for failing writes,
the pause filter for a backing store that stops, the log filter to see what
reached it, the full plugin) served as a file through nbdfuse, a small tmpfs
that runs out of space, and backing files that shrink, grow, are renamed or
unlinked underneath.

Each nbdkit runs in the foreground as our child (killed by pid at the end);
each nbdfuse mount lives under the test's temporary directory and is unmounted
at the end, before its nbdkit stops."""

import calendar
import errno
import hashlib
import json
import os
import random
import re
import select
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import check, check_eq, ctl_mount  # noqa: E402

CGLOOPCTL = harness.CGLOOPCTL
KiB = 1 << 10
MiB = 1 << 20

# The daemon's rate-limited I/O error lines (src/fuse/request.cpp: 10 per 5 s).
IO_ERROR_LINE = r'image "[^"]+": (read|write|fsync|fallocate) at \d+: '
LOG_BURST, LOG_INTERVAL = 10, 5


# --------------------------------------------------------------------------
# helpers

def stats_of(mnt, cgroup_path):
    """The `cgloopctl stats` entry of one cgroup (zeros if it was never seen)."""
    for s in ctl_mount(mnt, "stats")["cgroups"]:
        if s["cgroup"] == cgroup_path:
            return s
    return {"reads": 0, "writes": 0, "syncs": 0, "errors": 0}


def size_of(mnt, name):
    for img in ctl_mount(mnt, "list")["images"]:
        if img["name"] == name:
            return img["size"]
    raise harness.TestFailure(f"{name} is not in cgloopctl list")


def sha(b):
    return hashlib.sha256(b).hexdigest()


def io_error_lines(m):
    pat = re.compile(IO_ERROR_LINE)
    return [ln for ln in m.stderr().splitlines() if pat.search(ln)]


# A child that runs a list of I/O operations (JSON in argv[1]) on the mount and
# prints one JSON result per operation: {"ok": count, "sha": ...} or {"errno": NAME}.
# "repeat": N runs a read N times and reports how many ended in each outcome.
PROBE = r'''
import errno, hashlib, json, os, random, sys
fds = {}
def fd_for(path, write):
    key = (path, write)
    if key not in fds:
        fds[key] = os.open(path, os.O_RDWR if write else os.O_RDONLY)
    return fds[key]
def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))
out = []
for o in json.loads(sys.argv[1]):
    try:
        if o["op"] == "read" and o.get("repeat"):
            counts = {}
            for _ in range(o["repeat"]):
                try:
                    os.pread(fd_for(o["path"], False), o["len"], o["off"])
                    k = "ok"
                except OSError as e:
                    k = name(e)
                counts[k] = counts.get(k, 0) + 1
            out.append({"counts": counts})
        elif o["op"] == "read":
            b = os.pread(fd_for(o["path"], False), o["len"], o["off"])
            out.append({"ok": len(b), "sha": hashlib.sha256(b).hexdigest()})
        elif o["op"] == "write":
            data = random.Random(o["seed"]).randbytes(o["len"])
            out.append({"ok": os.pwrite(fd_for(o["path"], True), data, o["off"])})
        elif o["op"] in ("fsync", "fdatasync"):
            getattr(os, o["op"])(fd_for(o["path"], o.get("write", True)))
            out.append({"ok": 0})
        else:
            raise SystemExit("unknown op " + o["op"])
    except OSError as e:
        out.append({"errno": name(e)})
print(json.dumps(out))
'''


def probe(cg, child, ops, timeout=60):
    r = cg.run(child, [sys.executable, "-c", PROBE, json.dumps(ops)], timeout=timeout)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    check_eq(len(res), len(ops), "probe results")
    return res


def seeded(seed, n):
    return random.Random(seed).randbytes(n)


class Nbd:
    """nbdkit (foreground, our child) serving `plugin` through `filters` on a Unix
    socket, and nbdfuse presenting it as the file <dir>/disk. At the end of the
    test nbdfuse is unmounted and nbdkit is stopped, by pid."""

    def __init__(self, t, name, plugin, filters=(), params=(), log=False, connections=1):
        self.t = t
        self.dir = t.mkdir(name)
        self.sock = t.path(f"{name}.sock")
        self.log = t.path(f"{name}.nbdlog") if log else None
        self.out = t.path(f"{name}.nbdkit.out")
        self.pidfile = t.path(f"{name}.nbdkit.pid")
        cmd = ["nbdkit", "-f", "--exit-with-parent", "-U", self.sock, "-P", self.pidfile]
        cmd += [f"--filter={f}" for f in filters] + list(plugin) + list(params)
        if log:
            cmd.append(f"logfile={self.log}")
        with open(self.out, "wb") as out:
            # The cache filter keeps its (unlinked) file in $TMPDIR: ours. The log
            # filter's times are local: UTC, whatever the machine's zone.
            self.server = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True,
                                           env=dict(os.environ, TMPDIR=t.tmp, TZ="UTC"))
        t.defer(self._stop_server)
        if not harness.wait_for(lambda: os.path.exists(self.pidfile) or
                                self.server.poll() is not None, 10):
            raise harness.TestFailure(f"nbdkit not ready after 10 s: {self._output()}")
        check(self.server.poll() is None, f"nbdkit exited: {self._output()}")

        self.fuse_out = t.path(f"{name}.nbdfuse.out")
        fuse_pidfile = t.path(f"{name}.nbdfuse.pid")
        with open(self.fuse_out, "wb") as out:
            self.fuse = subprocess.Popen(
                ["nbdfuse", "-C", str(connections), "-P", fuse_pidfile,
                 os.path.join(self.dir, "disk"), "--unix", self.sock],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        t.defer(self._unmount)
        if not harness.wait_for(lambda: os.path.exists(fuse_pidfile) or
                                self.fuse.poll() is not None, 10):
            raise harness.TestFailure("nbdfuse not ready after 10 s")
        check(self.fuse.poll() is None and harness.is_mounted(self.dir),
              f"nbdfuse did not mount {self.dir}")
        self.path = os.path.join(self.dir, "disk")

    def _output(self):
        try:
            with open(self.out, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def _unmount(self):
        note = harness.fusermount_unmount(self.dir)
        try:
            self.fuse.wait(10)
        except subprocess.TimeoutExpired:
            self.fuse.kill()
            self.fuse.wait(5)
            raise harness.TestFailure(f"nbdfuse pid {self.fuse.pid} did not exit after the "
                                      f"unmount ({note})")

    def _stop_server(self):
        if self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(5)

    # -- the log filter's file: "connection=N Write id=I offset=0x.. count=0x.. ..."
    # then "connection=N ...Write id=I return=0" (or "return=-1 error=EIO").
    def transactions(self):
        """[(action, id, fields, result)] in the order they entered the log; result is
        None while the request has not left it, else "ok" or the error name."""
        out, by_id = [], {}
        with open(self.log, errors="replace") as f:
            for line in f:
                words = line.split()
                if len(words) < 4 or not words[2].startswith("connection="):
                    continue
                act, rest = words[3], words[4:]
                fields = dict(w.split("=", 1) for w in rest if "=" in w)
                key = (words[2], fields.get("id"))
                if act.startswith("..."):
                    if key in by_id:
                        res = "ok" if fields.get("return") == "0" else \
                            fields.get("error", "fail")
                        out[by_id[key]] = out[by_id[key]][:3] + (res,)
                    continue
                by_id[key] = len(out)
                out.append((act, fields.get("id"), fields, None))
        return out

    def count(self, action):
        return sum(1 for a, *_ in self.transactions() if a == action)


class PauseControl:
    """The nbdkit pause filter's control socket: 'p' pauses (answered 'P' once the
    requests in progress are done), 'r' resumes ('R')."""

    def __init__(self, path):
        self.path = path
        self.paused = False

    def _send(self, cmd, want):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(self.path)
            s.sendall(cmd)
            check_eq(s.recv(1), want, f"pause filter's answer to {cmd!r}")

    def pause(self):
        self._send(b"p", b"P")
        self.paused = True

    def resume(self):
        if self.paused:
            self._send(b"r", b"R")
            self.paused = False


def mount_tmpfs(t, name, size):
    d = t.mkdir(name)
    harness.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", d])
    t.defer(harness.umount_path, d)
    return d


# --------------------------------------------------------------------------
# Read EIO on one byte range

def test_read_eio_on_one_range_only(t):
    """nbdkit's ddrescue filter makes [1 MiB, 1 MiB + 64 KiB) of the backing file
    bad. Through a buffered and a direct-I/O image on it, exactly the requests that
    touch the range fail with EIO (one byte in is enough; one byte short of it is
    not); every other range reads the right bytes, also from another cgroup at the
    same time and from another image; the errors are counted for the cgroup that
    had them and no other; hundreds of failing reads make a bounded number of log
    lines."""
    size, bad, bad_len = 4 * MiB, 1 * MiB, 64 * KiB
    data_path = t.path("data.img")
    data = seeded(7, size)
    with open(data_path, "wb") as f:
        f.write(data)
    mapfile = t.path("bad.map")
    with open(mapfile, "w") as f:
        f.write("# Mapfile. Created by GNU ddrescue version 1.27\n"
                "# current_pos  current_status  current_pass\n"
                "0x00000000     +               1\n"
                "#      pos        size  status\n"
                f"0x{0:08x}  0x{bad:08x}  +\n"
                f"0x{bad:08x}  0x{bad_len:08x}  -\n"
                f"0x{bad + bad_len:08x}  0x{size - bad - bad_len:08x}  +\n")
    nbd = Nbd(t, "nbd", ["file", data_path], filters=["ddrescue"],
              params=[f"ddrescue-mapfile={mapfile}"])
    other = t.path("other.img")
    other_data = seeded(8, MiB)
    with open(other, "wb") as f:
        f.write(other_data)
    manifest = t.write_manifest([
        {"name": "bad.img", "path": nbd.path, "read_only": True},
        {"name": "bad-dio.img", "path": nbd.path, "read_only": True, "direct_io": True},
        {"name": "other.img", "path": other},
    ])
    cg = t.cgroup()
    a, b = cg.child("a"), cg.child("b")
    end = bad + bad_len
    # (offset, length, fails?)
    cases = [
        (0, 4096, False), (bad - 4096, 4096, False), (bad - 512, 512, False),
        (bad - 100, 100, False), (bad - 1, 1, False), (end, 4096, False),
        (end, 100, False), (end, 64 * KiB, False), (3 * MiB, 128 * KiB, False),
        (bad - 1, 2, True), (bad, 1, True), (bad + 5000, 512, True), (end - 1, 1, True),
        (end - 4096, 8192, True), (bad - 64 * KiB, 256 * KiB, True),
        (bad + bad_len // 2, MiB, True),
    ]
    with t.mount(manifest, allow_stderr=IO_ERROR_LINE) as m:
        ops, want = [], []
        for name in ("bad.img", "bad-dio.img"):
            for off, n, fails in cases:
                ops.append({"op": "read", "path": m.path(name), "off": off, "len": n})
                want.append((name, off, n, fails))
        good_ops = [{"op": "read", "path": m.path("other.img"), "off": 0, "len": MiB}]
        good_ops += [op for op, w in zip(ops, want) if not w[3]] * 3

        # cgroup b reads only good ranges while a hits the bad one.
        results_b = {}
        reader = threading.Thread(target=lambda: results_b.update(r=probe(cg, b, good_ops)))
        t_first = time.monotonic()
        reader.start()
        res = probe(cg, a, ops)
        reader.join(60)
        check(not reader.is_alive(), "cgroup b's reads did not finish")

        for (name, off, n, fails), r in zip(want, res):
            what = f"{name}: read of {n} at {off}"
            if fails:
                check_eq(r, {"errno": "EIO"}, what)
            else:
                check_eq(r.get("ok"), n, f"{what}: result {r}")
                check(r["sha"] == sha(data[off:off + n]), f"{what}: wrong bytes")
        check_eq(results_b["r"][0], {"ok": MiB, "sha": sha(other_data)}, "other.img")
        for op, r in zip(good_ops[1:], results_b["r"][1:]):
            check(r.get("sha") == sha(data[op["off"]:op["off"] + op["len"]]),
                  f"cgroup b: read of {op['len']} at {op['off']}: {r}")

        expected_errors = 2 * sum(1 for c in cases if c[2])
        sa, sb = stats_of(m.mnt, cg.rel(a)), stats_of(m.mnt, cg.rel(b))
        check_eq(sa["errors"], expected_errors, "errors counted for cgroup a")
        check(sa["reads"] >= len(ops), f"reads counted for cgroup a: {sa['reads']}")
        check_eq(sb["errors"], 0, "errors counted for cgroup b")
        check(sb["reads"] >= len(good_ops), f"reads counted for cgroup b: {sb['reads']}")
        table = ctl_mount(m.mnt, "stats", json_out=False).stdout.splitlines()
        col = table[0].split().index("ERRORS")
        shown = {ln.split()[0]: ln.split()[col] for ln in table[1:] if ln.strip()}
        check_eq(shown.get(cg.rel(a)), str(expected_errors),
                 f"ERRORS of {cg.rel(a)} in cgloopctl stats")
        check_eq(shown.get(cg.rel(b)), "0", f"ERRORS of {cg.rel(b)} in cgloopctl stats")

        # A read larger than one request (1 MiB): the requests before the bad
        # range are served, so it is short (their bytes, correct) or fails.
        fd = os.open(m.path("bad.img"), os.O_RDONLY)
        try:
            got = os.pread(fd, size, 0)
            check(0 < len(got) <= bad and got == data[:len(got)],
                  f"a read of the whole image returned {len(got)} bytes "
                  f"(correct: {got == data[:len(got)]})")
        except OSError as e:
            check_eq(e.errno, errno.EIO, "a read of the whole image")
        finally:
            os.close(fd)

        # Hundreds of failing reads: the log stays bounded (the daemon logs at most
        # LOG_BURST lines per LOG_INTERVAL s), the stats count every one.
        flood = 400
        res = probe(cg, a, [{"op": "read", "path": m.path("bad.img"), "off": bad,
                             "len": 4096, "repeat": flood}])
        check_eq(res[0]["counts"], {"EIO": flood}, "the flood's outcomes")
        failures = stats_of(m.mnt, cg.rel(a))["errors"]
        check(failures >= expected_errors + flood, f"errors after the flood: {failures}")
        elapsed = time.monotonic() - t_first
        time.sleep(0.2)
        lines = len(io_error_lines(m))
        windows = int(elapsed // LOG_INTERVAL) + 2
        check(1 <= lines <= LOG_BURST * windows,
              f"{failures} failing reads in {elapsed:.1f} s logged {lines} lines "
              f"(at most {LOG_BURST} per {LOG_INTERVAL} s)")
        print(f"# {failures} failing reads in {elapsed:.2f} s: {lines} log lines", flush=True)

        # The next line logged after the burst says how many were held back.
        time.sleep(LOG_INTERVAL + 0.2)
        probe(cg, a, [{"op": "read", "path": m.path("bad.img"), "off": bad, "len": 4096,
                       "repeat": 1}])
        time.sleep(0.2)
        last = io_error_lines(m)[-1]
        held = re.search(r"\((\d+) similar message\(s\) suppressed\)", last)
        check(held and int(held.group(1)) >= flood - lines,
              f"the line after the burst does not count the {flood - lines} held back: {last!r}")

        # And everything else still works.
        check_eq(harness.file_pread(m.path("other.img"), 0, 4096), other_data[:4096],
                 "other.img after the flood")
        check_eq(harness.file_pread(m.path("bad.img"), end, 4096), data[end:end + 4096],
                 "bad.img past the bad range after the flood")


# --------------------------------------------------------------------------
# Write EIO

def test_write_eio_fails_the_writer_and_the_next_fsync(t):
    """nbdkit's error filter fails every write while a trigger file exists. The
    writer gets EIO (or a short count), never success, through a buffered and a
    direct-I/O image; each failed write reaches the backing store a bounded number
    of times (the log filter counts them); the next fsync reports the failure,
    once; bytes fsynced before are intact, and once the fault is gone writes and
    fsync work again and reach the store, flushed."""
    trigger = t.path("fail-writes")
    nbd = Nbd(t, "nbd", ["memory", "8M"], filters=["log", "error"], log=True,
              params=["error-pwrite-rate=1", f"error-pwrite-file={trigger}"])
    manifest = t.write_manifest([
        {"name": "w.img", "path": nbd.path, "size_limit": "4MiB"},
        {"name": "wd.img", "path": nbd.path, "offset": "4MiB", "direct_io": True},
    ])
    cg = t.cgroup()
    a = cg.child("a")
    chunk = 64 * KiB
    with t.mount(manifest, allow_stderr=IO_ERROR_LINE) as m:
        figures = []
        for name in ("w.img", "wd.img"):
            f = m.path(name)
            base = [{"op": "write", "path": f, "off": i * chunk, "len": chunk, "seed": i}
                    for i in range(8)]
            res = probe(cg, a, base + [{"op": "fsync", "path": f}])
            check(all(r == {"ok": chunk} for r in res[:-1]), f"{name}: first writes: {res}")
            check_eq(res[-1], {"ok": 0}, f"{name}: first fsync")

            open(trigger, "w").close()
            writes_before = nbd.count("Write")
            errors_before = stats_of(m.mnt, cg.rel(a))["errors"]
            failing = [{"op": "write", "path": f, "off": i * chunk, "len": chunk,
                        "seed": 100 + i} for i in range(20)]
            failing.append({"op": "write", "path": f, "off": 3 * chunk + 7, "len": 10,
                            "seed": 99})  # unaligned: a read-modify-write with dio
            res = probe(cg, a, failing + [{"op": "fsync", "path": f},
                                          {"op": "fsync", "path": f}])
            for op, r in zip(failing, res):
                check(r.get("errno") == "EIO" or 0 <= r.get("ok", -1) < op["len"],
                      f"{name}: a write of {op['len']} at {op['off']} while the backing "
                      f"store fails writes: {r}")
            check_eq(res[-2], {"errno": "EIO"}, f"{name}: fsync after the failed writes")
            check_eq(res[-1], {"ok": 0}, f"{name}: the second fsync (the error is "
                     f"reported once)")
            attempts = nbd.count("Write") - writes_before
            check(len(failing) <= attempts <= 2 * len(failing),
                  f"{name}: {len(failing)} failed writes made {attempts} attempts on the "
                  f"backing store")
            figures.append(f"{name}: {len(failing)} failed writes -> {attempts} NBD writes")
            failed = sum(1 for r in res if "errno" in r)
            check_eq(stats_of(m.mnt, cg.rel(a))["errors"] - errors_before, failed,
                     f"{name}: errors counted")
            os.unlink(trigger)

            # What was fsynced before the fault is all there.
            got = harness.file_pread(f, 0, 8 * chunk)
            check(got == b"".join(seeded(i, chunk) for i in range(8)),
                  f"{name}: the data fsynced before the fault changed")

            # The fault is gone: writes and fsync work, and reach the store.
            flushes = nbd.count("Flush")
            res = probe(cg, a, failing[:4] + [{"op": "fsync", "path": f}])
            check(all(r == {"ok": chunk} for r in res[:4]), f"{name}: writes after: {res}")
            check_eq(res[4], {"ok": 0}, f"{name}: fsync after the fault is gone")
            check(nbd.count("Flush") > flushes, f"{name}: fsync did not flush the store")
            check_eq(harness.file_pread(f, 0, chunk), seeded(100, chunk),
                     f"{name}: a write after the fault")
        tx = nbd.transactions()
        check(all(res == "ok" for act, _, _, res in tx if act == "Flush"),
              "a flush failed")
        t.notes.append("figures: " + "; ".join(figures))
        print("# " + "; ".join(figures), flush=True)


# --------------------------------------------------------------------------
# ENOSPC

def test_enospc_from_the_backing_fs_passes_through(t):
    """A sparse 8 MiB backing file on a 2 MiB tmpfs: writes through a buffered and a
    direct-I/O image fail with ENOSPC (never EIO) once the tmpfs is full, the next
    fsync says ENOSPC once; after space is freed the same writes work and every
    acknowledged byte reads back. nbdkit's full plugin behind nbdfuse: ENOSPC too."""
    small = mount_tmpfs(t, "small", "2M")
    backing = harness.make_sparse(os.path.join(small, "backing.img"), 8 * MiB)
    fillers = []
    for i in range(2):
        p = os.path.join(small, f"filler{i}")
        with open(p, "wb") as f:
            f.write(b"\xff" * (512 * KiB))
        fillers.append(p)
    full = Nbd(t, "full", ["full", "1M"])
    other = harness.make_image(t.path("other.img"), MiB, [(0, b"other")])
    manifest = t.write_manifest([
        {"name": "s.img", "path": backing, "size_limit": "4MiB"},
        {"name": "sd.img", "path": backing, "offset": "4MiB", "direct_io": True},
        {"name": "full.img", "path": full.path},
        {"name": "other.img", "path": other},
    ])
    cg = t.cgroup()
    a = cg.child("a")
    chunk = 128 * KiB
    with t.mount(manifest, allow_stderr=IO_ERROR_LINE) as m:
        for name, filler in (("s.img", fillers[0]), ("sd.img", fillers[1])):
            f = m.path(name)
            ops = [{"op": "write", "path": f, "off": i * chunk, "len": chunk, "seed": i}
                   for i in range(4 * MiB // chunk)]
            res = probe(cg, a, ops + [{"op": "fsync", "path": f},
                                      {"op": "fsync", "path": f}])
            landed = {}
            first_err = None
            for op, r in zip(ops, res):
                if "ok" in r:
                    check(0 < r["ok"] <= chunk, f"{name}: write result {r}")
                    landed[op["off"]] = r["ok"]
                else:
                    check_eq(r, {"errno": "ENOSPC"}, f"{name}: write at {op['off']}")
                    first_err = op if first_err is None else first_err
            check(first_err is not None, f"{name}: 4 MiB fit in a full 2 MiB tmpfs")
            check_eq(res[-2], {"errno": "ENOSPC"}, f"{name}: fsync after ENOSPC")
            check_eq(res[-1], {"ok": 0}, f"{name}: second fsync")

            os.unlink(filler)  # free space: the same write works now
            res = probe(cg, a, [first_err, {"op": "fsync", "path": f}])
            check_eq(res, [{"ok": chunk}, {"ok": 0}], f"{name}: write after freeing space")
            landed[first_err["off"]] = chunk
            for off, n in landed.items():
                check(harness.file_pread(f, off, n) == seeded(off // chunk, chunk)[:n],
                      f"{name}: bytes acknowledged at {off} are not there")
        # The full plugin: every write fails with ENOSPC, reads are zeros.
        res = probe(cg, a, [{"op": "write", "path": m.path("full.img"), "off": 0,
                             "len": 4096, "seed": 1},
                            {"op": "read", "path": m.path("full.img"), "off": 0,
                             "len": 4096}])
        check_eq(res[0], {"errno": "ENOSPC"}, "write to nbdkit's full plugin")
        check_eq(res[1], {"ok": 4096, "sha": sha(bytes(4096))}, "read of the full plugin")
        check_eq(harness.file_pread(m.path("other.img"), 0, 5), b"other", "other.img")


# --------------------------------------------------------------------------
# fsync durability

FSYNC_CHILD = r'''
import os, sys, time, random
path, offs = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
fd = os.open(path, os.O_RDWR)
for i, off in enumerate(offs):
    n = os.pwrite(fd, random.Random(off).randbytes(65536), off)
    assert n == 65536, n
print("written", flush=True)
for line in sys.stdin:
    op = line.strip()
    if not op:
        break
    try:
        if op == "fsync-ro":
            rfd = os.open(path, os.O_RDONLY)
            os.fsync(rfd)
            os.close(rfd)
        else:
            getattr(os, op)(fd)
        print(f"{op} ok {time.time():.6f}", flush=True)
    except OSError as e:
        print(f"{op} errno {e.errno}", flush=True)
'''


def _readline(proc, timeout):
    """A line from proc.stdout within timeout, else None."""
    r, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if r else None


def _covered(tx, begin, end):
    """Do the successful Writes of the store's log cover [begin, end)?"""
    spans = sorted((int(fl["offset"], 16), int(fl["offset"], 16) + int(fl["count"], 16))
                   for act, _, fl, res in tx if act == "Write" and res == "ok")
    pos = begin
    for b, e in spans:
        if b <= pos < e:
            pos = e
    return pos >= end


def _log_time(line):
    """The time of a log filter line ("YYYY-MM-DD HH:MM:SS.ffffff ...", UTC)."""
    day, clock = line.split()[:2]
    whole, frac = clock.split(".")
    return calendar.timegm(time.strptime(f"{day} {whole}", "%Y-%m-%d %H:%M:%S")) + \
        float("0." + frac)


def test_fsync_waits_for_the_flush_of_a_paused_store(t):
    """The store: nbdkit's cache filter in writeback mode (writes stay in it until a
    flush), then the pause filter, then the log filter (so the log shows what
    reached the disk), then the memory plugin. The pause filter does not hold
    flushes (nbdkit 1.32), but the cache's write-back on a flush goes through it.

    With the disk paused, fsync of a buffered and of a direct-I/O image does not
    return and nothing has reached the disk; another image keeps working. After
    resuming, fsync returns 0 and the log has the writes covering every byte
    written and after them a flush that succeeded, logged before fsync returned.
    Every further fsync and fdatasync (also of a read-only descriptor) reaches the
    store as a new flush: none was answered ENOSYS (the kernel would stop sending
    them)."""
    ctl_sock = t.path("pause.ctl")
    nbd = Nbd(t, "nbd", ["memory", "8M"], filters=["cache", "pause", "log"], log=True,
              params=["cache=writeback", f"pause-control={ctl_sock}"])
    pause = PauseControl(ctl_sock)
    other = harness.make_image(t.path("other.img"), MiB, [(4096, b"still here")])
    manifest = t.write_manifest([
        {"name": "f.img", "path": nbd.path, "size_limit": "4MiB"},
        {"name": "fd.img", "path": nbd.path, "offset": "4MiB", "direct_io": True},
        {"name": "other.img", "path": other},
    ])
    cg = t.cgroup()
    a = cg.child("a")
    hold = 1.5
    with t.mount(manifest) as m:
        for name, base in (("f.img", 0), ("fd.img", 4 * MiB)):
            offs = [0, 256 * KiB, 1 * MiB + 4096]
            proc = cg.popen(a, [sys.executable, "-c", FSYNC_CHILD, m.path(name),
                                ",".join(map(str, offs))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                check_eq(_readline(proc, 20), "written", f"{name}: the writer")
                tx_before = len(nbd.transactions())
                flushes = nbd.count("Flush")
                for off in offs:
                    check(not _covered(nbd.transactions(), base + off, base + off + 65536),
                          f"{name}: the write at {off} reached the disk before any flush "
                          f"(is the cache in writeback mode?)")

                pause.pause()
                try:
                    proc.stdin.write("fsync\n")
                    proc.stdin.flush()
                    early = _readline(proc, hold)
                    check(early is None, f"{name}: fsync returned ({early!r}) while the "
                          f"disk was paused")
                    check_eq(nbd.count("Flush"), flushes,
                             f"{name}: flushes that reached the paused disk")
                    check_eq(harness.file_pread(m.path("other.img"), 4096, 10),
                             b"still here", "another image while the disk is paused")
                finally:
                    pause.resume()
                line = _readline(proc, 20)
                check(line is not None and line.startswith("fsync ok"),
                      f"{name}: fsync after resuming: {line!r}")
                returned = float(line.split()[2])
                tx = nbd.transactions()
                new = tx[tx_before:]
                for off in offs:
                    check(_covered(new, base + off, base + off + 65536),
                          f"{name}: the write at {off} did not reach the disk for fsync")
                last_write = max(i for i, (act, *_) in enumerate(new) if act == "Write")
                flush_at = [i for i, (act, _, _, res) in enumerate(new)
                            if act == "Flush" and res == "ok"]
                check(flush_at, f"{name}: no flush reached the disk for fsync")
                check(flush_at[-1] > last_write,
                      f"{name}: no flush after the last write reached the disk")
                with open(nbd.log) as f:
                    leave = [ln for ln in f if "...Flush" in ln and "return=0" in ln]
                stamp = _log_time(leave[-1])
                check(stamp <= returned + 0.001,
                      f"{name}: fsync returned at {returned:.6f}, before the flush ended "
                      f"at {stamp:.6f}")

                # Every further sync reaches the store: none was answered ENOSYS.
                for op in ("fsync", "fdatasync", "fsync-ro", "fsync"):
                    before = nbd.count("Flush")
                    proc.stdin.write(op + "\n")
                    proc.stdin.flush()
                    line = _readline(proc, 20)
                    check(line is not None and line.startswith(f"{op} ok"),
                          f"{name}: {op}: {line!r}")
                    check(nbd.count("Flush") > before, f"{name}: {op} did not reach the "
                          f"store as a flush")
                proc.stdin.write("\n")
                proc.stdin.flush()
                check_eq(proc.wait(20), 0, f"{name}: the writer's exit status")
            finally:
                pause.resume()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
                proc.stdin.close()
                proc.stdout.close()
            for off in offs:
                check_eq(harness.file_pread(nbd.path, base + off, 65536),
                         seeded(off, 65536), f"{name}: the bytes at {off} in the store")


# --------------------------------------------------------------------------
# The backing file changes underneath

def _expect_bytes(path, off, want, what):
    got = harness.file_pread(path, off, len(want))
    harness.check_bytes(got, want, what)


def test_backing_file_shrinks_and_grows_underneath(t):
    """Backing files on a tmpfs shrink and grow under a buffered and a direct-I/O
    image, with a reader running all the while: every byte read is the file's own
    byte or zero, never anything else; until set-capacity the size stays and
    reads past the backing file's end are zeros, a write there stays inside the
    window; set-capacity follows (rounded down to 512), also to 0 when the file
    shrinks before the offset and back. The daemon survives all of it."""
    fs = mount_tmpfs(t, "fs", "64M")
    size = 4 * MiB
    pat = seeded(11, size)
    paths = {}
    for name in ("b.img", "d.img"):
        p = os.path.join(fs, name)
        with open(p, "wb") as f:
            f.write(pat)
        paths[name] = p
    manifest = t.write_manifest([
        {"name": "b.img", "path": paths["b.img"], "offset": 4096, "size_limit": "3MiB"},
        {"name": "d.img", "path": paths["d.img"], "offset": 4096, "size_limit": "3MiB",
         "direct_io": True},
    ])
    win_off, win = 4096, 3 * MiB
    with t.mount(manifest) as m:
        for name in ("b.img", "d.img"):
            f, backing = m.path(name), paths[name]
            stop = threading.Event()
            bad, reads = [], [0]

            def reader():
                fd = os.open(f, os.O_RDONLY)
                rng = random.Random(1)
                try:
                    while not stop.is_set():
                        off = rng.randrange(0, win - 65536)
                        got = os.pread(fd, 65536, off)
                        reads[0] += 1
                        own = pat[win_off + off:win_off + off + len(got)]
                        for i in range(0, len(got), 512):
                            g = got[i:i + 512]
                            if g != own[i:i + 512] and g.count(0) != len(g):
                                for j, (x, y) in enumerate(zip(g, own[i:i + 512])):
                                    if x != y and x != 0:
                                        bad.append((off + i + j, x, y))
                                        return
                except OSError as e:
                    bad.append(("error", e))
                finally:
                    os.close(fd)
            th = threading.Thread(target=reader)
            th.start()
            try:
                for cut in (2 * MiB + 1000, MiB + 333, 3 * MiB + 4096, 512 * KiB, size):
                    os.truncate(backing, cut)
                    time.sleep(0.1)
            finally:
                stop.set()
                th.join(30)
            check(not bad, f"{name}: foreign bytes or an error while the backing file "
                  f"changed: {bad[:3]}")
            check(reads[0] > 10, f"{name}: only {reads[0]} reads during the changes")
            # The last truncate regrew it: what was cut is zeros now.
            check_eq(os.stat(f).st_size, win, f"{name}: size before set-capacity")
            _expect_bytes(f, 0, pat[win_off:512 * KiB], f"{name}: the part never cut")
            _expect_bytes(f, 512 * KiB - win_off, bytes(win - 512 * KiB + win_off),
                          f"{name}: the part cut and regrown")

            # Shrink underneath: the size stays until set-capacity, reads past the
            # backing end are zeros, a write there does not pass the window's end.
            with open(backing, "wb") as b:
                b.write(pat)
            cut = MiB + 1000
            os.truncate(backing, cut)
            check_eq(os.stat(f).st_size, win, f"{name}: size before set-capacity")
            _expect_bytes(f, cut - win_off - 8, pat[cut - 8:cut] + bytes(4096),
                          f"{name}: around the backing file's new end")
            _expect_bytes(f, win - 4096, bytes(4096), f"{name}: the window's last block")
            harness.file_pwrite(f, win - 100, b"w" * 100)
            check_eq(os.stat(backing).st_size, win_off + win,
                     f"{name}: the backing file after a write at the window's end")
            _expect_bytes(f, cut - win_off, bytes(win - 100 - (cut - win_off)) + b"w" * 100,
                          f"{name}: from the cut to the window's end")
            harness.expect_errno(errno.ENOSPC, harness.file_pwrite, f, win, b"x")
            check_eq(os.stat(backing).st_size, win_off + win,
                     f"{name}: a write past the window grew the backing file")

            os.truncate(backing, MiB + 1000)
            check_eq(ctl_mount(m.mnt, "set-capacity", name)["size"],
                     (MiB + 1000 - win_off) // 512 * 512, f"{name}: set-capacity (shrunk)")
            new = (MiB + 1000 - win_off) // 512 * 512
            check_eq(os.stat(f).st_size, new, f"{name}: size after set-capacity")
            check_eq(harness.file_pread(f, new, 4096), b"", f"{name}: read at the new end")
            harness.expect_errno(errno.ENOSPC, harness.file_pwrite, f, new, b"x")
            check_eq(os.stat(backing).st_size, MiB + 1000, f"{name}: backing size")

            # Shrunk to before the offset: size 0, nothing read or written.
            os.truncate(backing, 1000)
            check_eq(ctl_mount(m.mnt, "set-capacity", name)["size"], 0, f"{name}: size 0")
            check_eq(harness.file_pread(f, 0, 4096), b"", f"{name}: read of size 0")
            harness.expect_errno(errno.ENOSPC, harness.file_pwrite, f, 0, b"x")
            check_eq(os.stat(backing).st_size, 1000, f"{name}: backing size at size 0")

            # Grown back past the window: the limit again; the new part is zeros.
            os.truncate(backing, 8 * MiB)
            check_eq(ctl_mount(m.mnt, "set-capacity", name)["size"], win, f"{name}: regrown")
            check_eq(size_of(m.mnt, name), win, f"{name}: size in cgloopctl list")
            _expect_bytes(f, 0, bytes(win), f"{name}: the regrown window (it was all cut)")
            harness.file_pwrite(f, 2 * MiB, b"back")
            _expect_bytes(f, 2 * MiB, b"back", f"{name}: a write after growing")


def test_reads_racing_truncates_get_bytes_or_zeros_never_an_error(t):
    """Large reads (served without a copy in the daemon) racing truncates of the
    backing file: every read succeeds, whole, with the file's own bytes or zeros,
    as the loop driver gives. Three readers of 64 KiB to 1 MiB at random offsets
    (cache=direct: each read reaches the daemon) while the backing file is cut
    at random places in its second half and written back, for 3 s. (Answering from the image's mapping,
    a truncate between the size check and the kernel's copy failed the copy and
    the kernel ended the read with EIO.)"""
    fs = mount_tmpfs(t, "fs", "64M")
    size = 8 * MiB
    pat = seeded(12, size)
    backing = os.path.join(fs, "r.img")
    with open(backing, "wb") as f:
        f.write(pat)
    with t.mount(backing, opts="cache=direct") as m:
        path = m.path("r.img")
        stop = threading.Event()
        bad, reads = [], [0]

        def reader(seed):
            rng = random.Random(seed)
            fd = os.open(path, os.O_RDONLY)
            try:
                while not stop.is_set():
                    n = rng.choice((64 * KiB, 256 * KiB, MiB))
                    off = rng.randrange(0, size - n + 1, 4096)
                    got = os.pread(fd, n, off)
                    reads[0] += 1
                    if len(got) != n:
                        bad.append(("short", off, n, len(got)))
                        return
                    for i in range(0, n, 4096):
                        g, own = got[i:i + 4096], pat[off + i:off + i + 4096]
                        if g == own or g.count(0) == len(g):
                            continue
                        # A block the cut splits, or one being written back.
                        for j, (x, y) in enumerate(zip(g, own)):
                            if x != y and x != 0:
                                bad.append(("foreign bytes", off + i + j))
                                return
            except OSError as e:
                bad.append(("error", e))
            finally:
                os.close(fd)

        threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
        for th in threads:
            th.start()
        cuts = 0
        rng = random.Random(5)
        bfd = os.open(backing, os.O_WRONLY)
        t.defer(os.close, bfd)
        try:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not bad:
                # Cut, then write the bytes back: what is read is in memory again
                # (a hole would be read with pread, not from the mapping).
                cut = rng.randrange(size // 2, size)
                os.ftruncate(bfd, cut)
                os.pwrite(bfd, pat[cut:], cut)
                cuts += 1
        finally:
            stop.set()
            for th in threads:
                th.join(30)
        print(f"# {reads[0]} reads during {cuts} cuts", flush=True)
        check(not bad, f"a read that raced a truncate: {bad[:3]}")
        check(reads[0] > 50, f"only {reads[0]} reads during the cuts")
        check(cuts > 50, f"only {cuts} cuts")


def test_set_capacity_clears_the_kernel_cache(t):
    """cache=kernel: the whole image is cached, the backing file shrinks and grows
    back (the cut part is zeros now); after set-capacity nothing stale comes from the
    kernel's page cache: the regrown part reads as zeros."""
    fs = mount_tmpfs(t, "fs", "16M")
    pat = seeded(12, 2 * MiB)
    backing = os.path.join(fs, "k.img")
    with open(backing, "wb") as f:
        f.write(pat)
    with t.mount(backing, opts="cache=kernel") as m:
        f = m.path("k.img")
        check(harness.read_whole(f) == pat, "first read")
        os.truncate(backing, MiB)
        ctl_mount(m.mnt, "set-capacity", "k.img")
        check_eq(os.stat(f).st_size, MiB, "size after shrinking")
        os.truncate(backing, 2 * MiB)
        ctl_mount(m.mnt, "set-capacity", "k.img")
        check_eq(os.stat(f).st_size, 2 * MiB, "size after growing back")
        got = harness.read_whole(f)
        harness.check_bytes(got, pat[:MiB] + bytes(MiB), "after the shrink and regrow")


def test_backing_file_renamed_or_unlinked_underneath(t):
    """The backing file is held by descriptor: after it is renamed and another file
    (other bytes, another size) put at its path, reads show the held file's bytes,
    writes land in it and not in the newcomer, set-capacity reads the held file's
    size; after it is unlinked, I/O and set-capacity (following an ftruncate through
    a descriptor kept open) still work on it."""
    fs = mount_tmpfs(t, "fs", "32M")
    held = os.path.join(fs, "h.img")
    pat = seeded(13, 2 * MiB)
    with open(held, "wb") as f:
        f.write(pat)
    newcomer = seeded(14, 6 * MiB)
    with t.mount(held) as m:
        f = m.path("h.img")
        keep = os.open(held, os.O_RDWR)
        try:
            moved = os.path.join(fs, "moved.img")
            os.rename(held, moved)
            with open(held, "wb") as n:
                n.write(newcomer)
            _expect_bytes(f, 0, pat, "the held file after the rename")
            harness.file_pwrite(f, 4096, b"held!")
            _expect_bytes(moved, 4096, b"held!", "a write after the rename")
            check(harness.read_whole(held) == newcomer, "the newcomer was written")
            check_eq(ctl_mount(m.mnt, "set-capacity", "h.img")["size"], 2 * MiB,
                     "set-capacity after the rename (the held file's size)")

            os.unlink(moved)
            harness.file_pwrite(f, 8192, b"unlinked!")
            _expect_bytes(f, 8192, b"unlinked!", "I/O after the unlink")
            check_eq(os.pread(keep, 9, 8192), b"unlinked!", "in the unlinked file")
            os.ftruncate(keep, MiB + 4000)
            check_eq(ctl_mount(m.mnt, "set-capacity", "h.img")["size"], MiB + 3584,
                     "set-capacity of the unlinked file")
            check_eq(harness.file_pread(f, MiB + 3584, 4096), b"",
                     "read at the end of the unlinked file")
            _expect_bytes(f, MiB, pat[MiB:MiB + 3584], "the unlinked file's last bytes")
            check(harness.read_whole(held) == newcomer, "the newcomer was touched")
            check_eq(ctl_mount(m.mnt, "list")["images"][0]["size"], MiB + 3584, "listed size")
        finally:
            os.close(keep)


if __name__ == "__main__":
    harness.main()
