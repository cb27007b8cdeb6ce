#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Ending a mount: SIGTERM and SIGINT with I/O in flight, umount(8), and the
mount(8) helper path (mount -t fuse.cgloopfs)."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import (  # noqa: E402
    check, check_bytes, check_eq, file_pread, is_mounted, make_image, pattern, wait_for)

MiB = 1024 * 1024
BLOCK = 4096

READER = r"""
import os, sys
path = sys.argv[1]
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
passes = 0
try:
    while True:
        pos = 0
        while pos < size:
            b = os.pread(fd, 65536, pos)
            if not b:
                break
            pos += len(b)
        passes += 1
        if passes == 1:
            print("ready", flush=True)
except OSError as e:
    print(f"stopped after {passes} passes: {e}", flush=True)
"""

WRITER = r"""
import os, sys, random
path, count = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_WRONLY)
try:
    for i in range(count):
        data = random.Random(i).randbytes(4096)
        if os.pwrite(fd, data, i * 4096) != 4096:
            print("short", flush=True)
            break
        print(i, flush=True)
except OSError as e:
    print(f"error {e}", flush=True)
"""


def start(args, **kw):
    return subprocess.Popen([sys.executable, "-c"] + args, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def finish(p, timeout=15):
    """Collect a helper's output; a helper still blocked is killed (it is ours)."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise harness.TestFailure(f"helper pid {p.pid} hung after the daemon ended: {err}")
    return out, err


def signal_with_io_in_flight(t, sig):
    size = 16 * MiB
    backing = make_image(t.path("img"), size, [(size - BLOCK, pattern(BLOCK, 99))])
    with t.mount(backing) as m:
        reader = start([READER, m.path("img")])
        writer = None
        first = ""
        try:
            line = reader.stdout.readline()
            check(line.strip() == "ready", f"reader said {line!r}")
            writer = start([WRITER, m.path("img"), str(size // BLOCK - 1)])
            # The writer's first acknowledged block, not a fixed sleep: on a
            # loaded machine the interpreter alone takes over a second to start.
            first = writer.stdout.readline()
            check(first.strip() == "0", f"the writer's first write: {first!r}")
            time.sleep(0.05)  # let both run against the mount
            check(reader.poll() is None and writer.poll() is None,
                  "the reader or writer ended before the signal")
            m.signal(sig)
            rc = m.wait_exit(10)
            check_eq(rc, 0, f"daemon exit status after {signal.Signals(sig).name}")
            check(not is_mounted(m.path()), "mount still present after the signal")
        finally:
            rout, _ = finish(reader)
            wout, _ = finish(writer) if writer else ("", "")
            wout = first + wout
    acked = [int(x) for x in wout.split() if x.isdigit()]
    check(acked, f"the writer got nothing done: {wout!r}")
    data = file_pread(backing, 0, size)
    for i in acked:
        check_bytes(data[i * BLOCK:(i + 1) * BLOCK], pattern(BLOCK, i),
                    f"acknowledged block {i} of {len(acked)}")
    check_bytes(data[size - BLOCK:], pattern(BLOCK, 99), "last block (never written)")
    check_eq(os.path.getsize(backing), size, "backing size")


def test_sigterm_with_io_in_flight(t):
    signal_with_io_in_flight(t, signal.SIGTERM)


def test_sigint_with_io_in_flight(t):
    signal_with_io_in_flight(t, signal.SIGINT)


def test_umount_ends_daemon(t):
    backing = make_image(t.path("img"), 4 * MiB)
    with t.mount(backing) as m:
        harness.file_pwrite(m.path("img"), 5, b"hello")
        harness.run(["umount", m.path()])
        check_eq(m.wait_exit(10), 0, "daemon exit status after umount")
        check(not is_mounted(m.path()), "still mounted after umount")
    check_eq(file_pread(backing, 5, 5), b"hello", "data written before umount")


def test_fusermount_with_idle_reader_open(t):
    """fusermount3 -u while a file is open and idle: EBUSY, the daemon keeps serving;
    once the file is closed the unmount works and the daemon exits 0."""
    backing = make_image(t.path("img"), MiB, [(0, pattern(4096, 3))])
    with t.mount(backing) as m:
        fd = os.open(m.path("img"), os.O_RDONLY)
        try:
            r = harness.run(["fusermount3", "-u", m.path()], check_rc=False)
            if r.returncode == 0:
                wait_for(lambda: not is_mounted(m.path()), 2)
            else:
                check(is_mounted(m.path()), "unmount failed but the mount is gone")
                check_bytes(os.pread(fd, 4096, 0), pattern(4096, 3), "read after EBUSY")
        finally:
            os.close(fd)


# mount(8) (util-linux 2.38) drops PATH from the environment before it runs
# mount.fuse3, whose /bin/sh then finds `cgloopfs` only in the default search
# path (/usr/local/sbin:...:/bin), as an installed binary would be. So that
# the build tree is tested without touching the host, mount(8) runs in a
# private mount namespace (unshare -m) where /usr/local/sbin is a directory
# holding only a `cgloopfs` symlink to the binary under test. The FUSE mount
# lives in that namespace; the script below does the checks there and cleans
# up after itself; the test then checks that no daemon is left.
IN_NAMESPACE = r"""
import json, os, subprocess, time
from harness import alive, daemons_for, mount_entry
spec = json.loads(sys.argv[1])
mnt = spec["mnt"]
out = {"errors": []}

def fail(msg):
    out["errors"].append(msg)

def mounted():
    e = mount_entry(mnt)
    return e[1] if e else None

subprocess.run(["mount", "--make-rprivate", "/"], check=True)
subprocess.run(["mount", "--bind", spec["helper_dir"], "/usr/local/sbin"], check=True)
pids = []
try:
    r = subprocess.run(["mount", "-t", "fuse.cgloopfs", spec["source"], mnt, "-o",
                        spec["opts"]], capture_output=True, text=True, timeout=30)
    out["mount_rc"], out["mount_stderr"] = r.returncode, r.stderr
    out["fstype"] = mounted()
    pids = daemons_for(mnt)
    out["daemons"] = pids
    if spec["good"] and out["fstype"]:
        path = os.path.join(mnt, spec["file"])
        out["listing"] = os.listdir(mnt)
        out["size"] = os.stat(path).st_size
        fd = os.open(path, os.O_RDWR)
        try:
            out["head"] = os.pread(fd, 64, 0).hex()
            out["wrote"] = os.pwrite(fd, spec["write"].encode(), spec["write_at"])
        finally:
            os.close(fd)
        r = subprocess.run(["umount", mnt], capture_output=True, text=True)
        out["umount_rc"], out["umount_stderr"] = r.returncode, r.stderr
        out["mounted_after_umount"] = mounted()
        end = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < end:
            time.sleep(0.05)
        out["alive_after_umount"] = [p for p in pids if alive(p)]
except Exception as e:
    fail(repr(e))
finally:
    if mounted():
        subprocess.run(["umount", "-l", mnt])
    for p in pids:
        if alive(p):
            os.kill(p, 9)
print(json.dumps(out))
"""


def mount_in_namespace(t, source, opts, good, file="", write=b"", write_at=0):
    helper_dir = t.mkdir("helper-bin")
    os.symlink(harness.CGLOOPFS, os.path.join(helper_dir, "cgloopfs"))
    mnt = t.mkdir("mnt")
    spec = {"mnt": mnt, "source": source, "opts": opts, "good": good, "file": file,
            "write": write.decode(), "write_at": write_at, "helper_dir": helper_dir}
    t.defer(harness.kill_daemons_for, mnt)
    res = harness.run_in_mount_namespace(IN_NAMESPACE, spec, timeout=60)
    check(not res["errors"], f"in the namespace: {res['errors']}")
    check(not harness.daemons_for(mnt), f"daemons left for {mnt}: {harness.daemons_for(mnt)}")
    return res


def test_mount_helper(t):
    data = pattern(MiB, 8)
    backing = make_image(t.path("disk.img"), 2 * MiB, [(0, data)])
    res = mount_in_namespace(t, backing, "idle_timeout=5", True, file="disk.img",
                             write=b"via mount(8)", write_at=MiB + 3)
    check_eq(res["mount_rc"], 0, f"mount status ({res['mount_stderr']!r})")
    check_eq(res["fstype"], "fuse.cgloopfs", "file system type")
    check_eq(len(res["daemons"]), 1, "daemons serving the mount")
    check_eq(res["listing"], ["disk.img"], "readdir")
    check_eq(res["size"], 2 * MiB, "size")
    check_eq(bytes.fromhex(res["head"]), data[:64], "data read")
    check_eq(res["wrote"], 12, "bytes written")
    check_eq(res["umount_rc"], 0, f"umount status ({res['umount_stderr']!r})")
    check_eq(res["mounted_after_umount"], None, "mounted after umount")
    check_eq(res["alive_after_umount"], [], "daemons alive 10 s after umount")
    check_eq(file_pread(backing, MiB + 3, 12), b"via mount(8)", "data written via mount(8)")


def test_mount_helper_manifest_and_options(t):
    backing = make_image(t.path("disk.img"), 2 * MiB, [(MiB, pattern(64, 4))])
    manifest = t.write_manifest([{"name": "one", "path": backing, "offset": "1MiB"}])
    res = mount_in_namespace(t, manifest, "noatime,idle_timeout=2,dispatch=single,"
                             "max_workers=3,nodev,nosuid", True, file="one", write=b"x",
                             write_at=0)
    check_eq(res["mount_rc"], 0, f"mount status ({res['mount_stderr']!r})")
    check_eq(res["listing"], ["one"], "readdir")
    check_eq(res["size"], MiB, "size")
    check_eq(bytes.fromhex(res["head"]), pattern(64, 4), "data read at the offset")
    check_eq(file_pread(backing, MiB, 64), b"x" + pattern(64, 4)[1:], "data written")
    check_eq(res["alive_after_umount"], [], "daemons alive 10 s after umount")


def test_mount_helper_bad_option(t):
    backing = make_image(t.path("disk.img"), MiB)
    for opts in ("idle_timeout=0", "dispatch=x", "bogus"):
        res = mount_in_namespace(t, backing, opts, False)
        check(res["mount_rc"] != 0, f"mount -o {opts}: exit 0")
        check(res["fstype"] is None, f"mount -o {opts}: left a mount")
        check(not res["daemons"], f"mount -o {opts}: daemon left: {res['daemons']}")
        check(opts.split("=")[0] in res["mount_stderr"],
              f"mount -o {opts}: stderr {res['mount_stderr']!r} does not name the option")
        os.unlink(t.path("helper-bin", "cgloopfs"))


if __name__ == "__main__":
    harness.main()
