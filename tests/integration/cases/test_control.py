#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The control plane, losetup-style: list (golden table, raw and JSON), attach
(--show, settings, every refusal with its message), detach (open, --lazy,
--all), set-capacity after the backing file grows and shrinks, get/set, the
manifest round trip, attach/detach racing with readers, and authorization."""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import check, check_eq, ctl, ctl_json  # noqa: E402

CGLOOPCTL = harness.CGLOOPCTL
MiB = 1 << 20
SESSION_THREADS = 4  # src/fuse/session.cpp, session_threads


def refused(args, message, rc=1):
    """cgloopctl ARGS must fail with exit `rc` and exactly this one stderr line."""
    r = ctl(*args, check_rc=rc)
    lines = r.stderr.splitlines()
    check_eq(lines[0] if lines else "", f"cgloopctl: {message}", f"message of {args}")
    if rc == 1:
        check_eq(len(lines), 1, f"lines of {args}")
    check_eq(r.stdout, "", f"stdout of {args}")


def filled(path, size, byte):
    with open(path, "wb") as f:
        f.write(bytes([byte]) * size)


def test_list_golden_outputs(t):
    """The table, --raw, --noheadings, --output and --json, byte for byte."""
    a, b = t.path("a.img"), t.path("b.img")
    harness.make_sparse(a, 8 * MiB)
    harness.make_sparse(b, 4 * MiB + 1000)
    man = t.write_manifest(f"""
[[image]]
name = "alpha"
path = "{a}"
offset = "1MiB"
size_limit = "2MiB"
read_only = true

[[image]]
name = "beta"
path = "{b}"
block_size = 4096
discard = true
""")
    with t.mount(man) as m:
        w = max(len(a), len(b), len("BACK-FILE"))
        want = (
            f"NAME   {'BACK-FILE':<{w}}   OFFSET  SIZELIMIT     SIZE  RO  DIO  LOG-SEC  DISCARD  OPEN  LOCK\n"
            f"alpha  {a:<{w}}  1048576    2097152  2097152   1    0      512        0     0     1\n"
            f"beta   {b:<{w}}        0          0  4194816   0    0     4096        1     0     1\n")
        got = ctl("list", m.mnt).stdout
        if got != want:
            raise harness.TestFailure(f"list table:\n{got}want:\n{want}")
        # Without headings, as libsmartcols does, only the cells set the widths.
        check_eq(ctl("list", "--noheadings", m.mnt).stdout,
                 f"alpha  {a}  1048576  2097152  2097152  1  0   512  0  0  1\n"
                 f"beta   {b}        0        0  4194816  0  0  4096  1  0  1\n",
                 "list --noheadings")
        check_eq(ctl("list", "--raw", "-O", "name,size,ro,back-file", m.mnt).stdout,
                 f"NAME SIZE RO BACK-FILE\nalpha 2097152 1 {a}\nbeta 4194816 0 {b}\n",
                 "list --raw --output")
        got = ctl_json("list", m.mnt)
        check_eq(got, {"images": [
            {"name": "alpha", "back-file": a, "offset": 1048576, "sizelimit": 2097152,
             "size": 2097152, "ro": True, "dio": False, "log-sec": 512, "discard": False,
             "open": 0, "locked": True},
            {"name": "beta", "back-file": b, "offset": 0, "sizelimit": 0, "size": 4194816,
             "ro": False, "dio": False, "log-sec": 4096, "discard": True, "open": 0,
             "locked": True}]},
            "list --json")
        check_eq(ctl_json("list", "-O", "NAME,OPEN", m.mnt),
                 {"images": [{"name": "alpha", "open": 0}, {"name": "beta", "open": 0}]},
                 "list --json --output")
        fd = os.open(m.path("beta"), os.O_RDONLY)
        try:
            check_eq(ctl("list", "--raw", "-n", "-O", "name,open", m.mnt).stdout,
                     "alpha 0\nbeta 1\n", "OPEN counts handles")
        finally:
            os.close(fd)
        refused(["list", "-O", "name,colour", m.mnt], 'list: unknown column "COLOUR"', rc=2)


def test_attach_show_and_settings(t):
    """attach --show prints the new file's path; it appears at once with its size,
    data, mode and owner, and writes land in the window."""
    img = t.path("disk.img")
    filled(img, 6 * MiB, 0x5A)
    link = t.path("link-to-disk")
    os.symlink(img, link)
    solo = t.path("solo.img")
    harness.make_sparse(solo, MiB)
    with t.mount(solo) as m:
        r = ctl("attach", "--show", "--name", "win", "--offset", "1MiB", "--sizelimit",
                "3MiB", "--mode", "0640", "--uid", "1234", "--gid", "4321", "--sector-size",
                "4096", link, "-m", m.mnt)
        check_eq(r.stdout, os.path.join(m.mnt, "win") + "\n", "attach --show")
        st = os.stat(m.path("win"))
        check_eq(st.st_size, 3 * MiB, "size")
        check_eq(stat.S_IMODE(st.st_mode), 0o640, "mode")
        check_eq((st.st_uid, st.st_gid), (1234, 4321), "owner")
        check_eq(st.st_blksize, 4096, "block size")
        with open(m.path("win"), "r+b") as f:
            check_eq(f.read(16), b"\x5a" * 16, "data")
            f.seek(3 * MiB - 4)
            f.write(b"abcd")
            f.flush()
            os.fsync(f.fileno())
        with open(img, "rb") as f:
            f.seek(4 * MiB - 4)
            check_eq(f.read(8), b"abcd\x5a\x5a\x5a\x5a", "write at the window's end")
        # The symlink was followed once: the image is the file it led to.
        lst = {i["name"]: i for i in ctl_json("list", m.mnt)["images"]}
        check_eq(lst["win"]["back-file"], img, "back-file is the resolved path")
        # A relative path is taken from cgloopctl's working directory.
        r = subprocess.run([CGLOOPCTL, "attach", "--show", "disk.img", "-m", m.mnt],
                           cwd=t.tmp, capture_output=True, text=True)
        check(r.returncode == 1 and "overlaps" in r.stderr,
              f"the same file read-write twice: {r.returncode} {r.stderr!r}")
        r = subprocess.run([CGLOOPCTL, "attach", "--show", "-r", "--name", "ro", "disk.img",
                            "-m", m.mnt], cwd=t.tmp, capture_output=True, text=True)
        check_eq(r.returncode, 1, "a read-only view of a writable window still overlaps")
        r = subprocess.run([CGLOOPCTL, "attach", "--show", "--name", "head", "--sizelimit",
                            "1MiB", "disk.img", "-m", m.mnt], cwd=t.tmp, capture_output=True,
                           text=True)
        check_eq((r.returncode, r.stdout), (0, m.path("head") + "\n"),
                 "a window beside the first")
        check_eq(sorted(os.listdir(m.mnt)), ["head", "solo.img", "win"], "listing")


def test_attach_refusals_name_the_culprit(t):
    """Every refused attach exits 1 with one line naming the image and the setting."""
    img = t.path("ok.img")
    harness.make_sparse(img, 4 * MiB)
    small = t.path("small.img")
    harness.make_sparse(small, 100)
    fifo = t.path("fifo")
    os.mkfifo(fifo)
    d = t.mkdir("adir")
    with t.mount(img) as m:
        mm = ["-m", m.mnt]
        cases = [
            ([t.path("missing.img")],
             f'attach: image "missing.img": path "{t.path("missing.img")}": '
             f'No such file or directory'),
            ([d], f'attach: image "adir": path "{d}": is a directory'),
            ([fifo], f'attach: image "fifo": path "{fifo}": not a regular file or block device'),
            (["--offset", "5MiB", "--name", "far", img],
             f'attach: image "far": offset: 5242880 is past the end of "{img}" (4194304 bytes)'),
            ([small], f'attach: image "small.img": size is 0: "{small}" has 100 bytes, '
                      f'offset 0, size_limit 0 (an image needs at least 512 bytes)'),
            (["--offset", "1Q", img],
             'attach: image "ok.img": offset: "1Q": unknown size suffix "Q" (use K, M, G, T, '
             'P, KiB, MiB, GiB, TiB, PiB, KB, MB, GB, TB or PB)'),
            (["--sizelimit", "99999999999999999999", img],
             'attach: image "ok.img": size_limit: "99999999999999999999": too large (more than '
             '2^64 - 1 bytes)'),
            (["--sector-size", "1000", "--name", "s", img],
             'attach: image "s": block_size: 1000 is not a power of two in 512..4096'),
            (["--mode", "0755", "--name", "x", img],
             'attach: image "x": mode: "0755": 0755 has bits other than read and write '
             '(exported images are never executable, setuid, setgid or sticky)'),
            (["--name", "a/b", img],
             'attach: image "a/b": name: the name contains \'/\' (it must be a single path '
             'component)'),
            (["--name", "..", img], 'attach: image "..": name: ".." is not a file name'),
            (["--name", "ok.img", "--offset", "2MiB", img],
             'attach: image "ok.img": name: "ok.img" is already attached'),
            (["--name", "again", img],
             f'attach: image "again": path "{img}": its window overlaps that of image '
             f'"ok.img" on the same file, and one of them is writable'),
            (["/dev/null"], 'attach: image "null": path "/dev/null": not a regular file or '
                            'block device'),
            (["--name", "loop", m.path("ok.img")],
             f'attach: image "loop": path "{m.path("ok.img")}": is inside this cgloopfs mount'),
        ]
        for args, message in cases:
            t0 = time.monotonic()
            refused(["attach"] + args + mm, message)
            check(time.monotonic() - t0 < 5, f"attach {args} took too long")
        refused(["attach", "--direct-io=maybe", img] + mm,
                'attach: --direct-io takes on or off, not "maybe"', rc=2)
        refused(["attach"] + mm, "attach: expected IMAGE", rc=2)
        refused(["attach", "--frob", img] + mm, 'unknown option "--frob" (or it needs a value)',
                rc=2)
        check_eq(os.listdir(m.mnt), ["ok.img"], "nothing was attached")


def test_detach_open_lazy_all_and_reattach(t):
    """detach is refused while open; --lazy hides the file at once and frees it on
    the last close; an old handle keeps its own image; a reattached name is a new
    file to the kernel."""
    a, b, c = t.path("a.img"), t.path("b.img"), t.path("c.img")
    filled(a, 2 * MiB, ord("a"))
    filled(b, 2 * MiB, ord("b"))
    filled(c, 2 * MiB, ord("c"))
    with t.mount(c) as m:
        mm = ["-m", m.mnt]
        ctl("attach", "--name", "x.img", a, *mm)
        x = m.path("x.img")
        ino_a = os.stat(x).st_ino
        fd = os.open(x, os.O_RDONLY)
        try:
            refused(["detach", "x.img"] + mm,
                    'detach: image "x.img" is open (close it first, or use --lazy to detach '
                    'it on last close)')
            check(os.path.exists(x), "refused detach removed it")
            ctl("detach", "--lazy", "x.img", *mm)
            check(not os.path.exists(x), "still visible after detach --lazy")
            check_eq(os.listdir(m.mnt), ["c.img"], "listing after the lazy detach")
            ctl("attach", "--name", "x.img", b, *mm)
            check(os.stat(x).st_ino != ino_a, "the reattached name kept the old inode number")
            with open(x, "rb") as f:
                check_eq(f.read(4), b"bbbb", "the new x.img")
            # The old handle still reads its own image, never the new one.
            check_eq(os.pread(fd, 4, MiB), b"aaaa", "old handle after reattach")
            check_eq(os.fstat(fd).st_size, 2 * MiB, "fstat of the old handle")
        finally:
            os.close(fd)
        refused(["detach", "nope"] + mm, 'detach: image "nope": no such image')
        refused(["detach"] + mm, "detach: give one NAME, or --all", rc=2)
        ctl("detach", "x.img", *mm)
        check(not os.path.exists(x), "x.img still there")
        ctl("detach", "--all", *mm)
        check_eq(os.listdir(m.mnt), [], "detach --all")
        check_eq(ctl_json("list", m.mnt), {"images": []}, "empty list")


def test_backing_held_by_descriptor_and_block_devices(t):
    """The backing file is held by descriptor: renaming or removing its path changes
    nothing. A block device (a loop device here) is a backing file like any other."""
    img = t.path("held.img")
    filled(img, 2 * MiB, 0x33)
    dev_backing = t.path("dev-backing.img")
    filled(dev_backing, 4 * MiB, 0x44)
    solo = t.path("solo.img")
    harness.make_sparse(solo, MiB)
    with t.mount(solo) as m:
        mm = ["-m", m.mnt]
        ctl("attach", img, *mm)
        os.rename(img, t.path("moved.img"))
        with open(m.path("held.img"), "r+b") as f:
            check_eq(f.read(4), b"\x33" * 4, "read after the rename")
            f.write(b"new!")
        os.unlink(t.path("moved.img"))
        with open(m.path("held.img"), "rb") as f:
            check_eq(f.read(8), b"\x33" * 4 + b"new!", "read after the unlink")
        ctl("detach", "held.img", *mm)
        dev = harness.losetup_attach(t, dev_backing)
        ctl("attach", "--name", "blk", "--offset", "1MiB", dev, *mm)
        check_eq(os.stat(m.path("blk")).st_size, 3 * MiB, "size of a block device window")
        with open(m.path("blk"), "rb") as f:
            check_eq(f.read(4), b"\x44" * 4, "data through a block device")
        ctl("detach", "blk", *mm)


def test_set_capacity_follows_the_backing_file(t):
    """set-capacity after the backing file grows and after it shrinks: the size and
    the end of the window follow; reads past the new end are EOF, never foreign bytes."""
    img = t.path("g.img")
    filled(img, 2 * MiB, 0x11)
    solo = t.path("solo.img")
    harness.make_sparse(solo, MiB)
    with t.mount(solo) as m:
        mm = ["-m", m.mnt]
        ctl("attach", "--offset", "4096", img, *mm)
        f = m.path("g.img")
        check_eq(os.stat(f).st_size, 2 * MiB - 4096, "size before")
        with open(img, "ab") as b:
            b.write(b"\x22" * (2 * MiB))
        check_eq(os.stat(f).st_size, 2 * MiB - 4096, "size before set-capacity")
        check_eq(ctl("set-capacity", "g.img", *mm).stdout, "", "set-capacity is quiet")
        check_eq(os.stat(f).st_size, 4 * MiB - 4096, "size after growing")
        fd = os.open(f, os.O_RDONLY)
        try:
            check_eq(os.pread(fd, 4, 3 * MiB), b"\x22" * 4, "read in the grown part")
            os.truncate(img, MiB + 1000)
            ctl("set-capacity", "g.img", *mm)
            check_eq(os.fstat(fd).st_size, MiB - 4096 + 512, "size after shrinking")
            check_eq(os.pread(fd, 4096, MiB), b"", "read past the new end")
            tail = os.pread(fd, 8192, MiB - 4096 - 512)
            check_eq(tail, b"\x11" * 1024, "the last bytes, then EOF")
        finally:
            os.close(fd)
        refused(["set-capacity", "nope"] + mm, 'set-capacity: image "nope": no such image')


def test_get_and_set_runtime_settings(t):
    img = t.path("s.img")
    harness.make_sparse(img, MiB)
    with t.mount(img, opts="idle_timeout=30,max_workers=8,worker_depth=2") as m:
        check_eq(ctl_json("get", m.mnt),
                 {"idle_timeout": 30, "max_workers": 8, "worker_depth": 2, "lock": "auto",
                  "charge": "cgroup"},
                 "get")
        check_eq(ctl("get", m.mnt).stdout,
                 "charge:        cgroup\nidle_timeout:  30\nlock:          auto\nmax_workers:   8\n"
                 "worker_depth:  2\n",
                 "get table")
        ctl("set", "idle_timeout=5", "worker_depth=3", "-m", m.mnt)
        check_eq(ctl_json("get", m.mnt),
                 {"idle_timeout": 5, "max_workers": 8, "worker_depth": 3, "lock": "auto",
                  "charge": "cgroup"},
                 "after set")
        ctl("set", "charge=none", "-m", m.mnt)
        check_eq(ctl_json("get", m.mnt)["charge"], "none", "after set charge=none")
        refused(["set", "charge=daemon", "-m", m.mnt],
                'set: option "charge=daemon": must be "cgroup" or "none"')
        ctl("set", "lock=off", "-m", m.mnt)
        check_eq(ctl_json("get", m.mnt)["lock"], "off", "after set lock=off")
        refused(["set", "lock=maybe", "-m", m.mnt],
                'set: option "lock=maybe": must be "auto", "on" or "off"')
        refused(["set", "idle_timeout=0", "-m", m.mnt],
                'set: option "idle_timeout=0": out of range (1..86400)')
        refused(["set", "max_workers=lots", "-m", m.mnt],
                'set: option "max_workers=lots": not a number')
        refused(["set", "colour=blue", "-m", m.mnt],
                'set: "colour" is not a setting (idle_timeout, max_workers, worker_depth, charge, lock)')
        refused(["set", "idle_timeout", "-m", m.mnt], 'set: "idle_timeout" is not KEY=VALUE',
                rc=2)
        check_eq(ctl_json("get", m.mnt)["idle_timeout"], 5, "refused sets change nothing")


def test_manifest_round_trip(t):
    """list --manifest, given to cgloopfs, reproduces the images exactly."""
    a, b = t.path("a.img"), t.path("b.img")
    harness.make_sparse(a, 8 * MiB)
    harness.make_sparse(b, 3 * MiB)
    solo = t.path("solo.img")
    harness.make_sparse(solo, MiB)
    with t.mount(solo) as m:
        mm = ["-m", m.mnt]
        ctl("attach", "--name", "one", "--offset", "1MiB", "--sizelimit", "2MiB", "-r",
            "--sector-size", "4096", a, *mm)
        ctl("attach", "--name", "two", "--offset", "4MiB", "--discard", "--mode", "0600",
            "--uid", "7", "--gid", "8", a, *mm)
        ctl("attach", "--name", "three", "--direct-io", b, *mm)
        text = ctl("list", "--manifest", *mm).stdout
        first = ctl_json("list", m.mnt)["images"]
    man = t.path("round.toml")
    with open(man, "w") as f:
        f.write(text)
    with t.mount(man) as m2:
        again = ctl_json("list", m2.mnt)["images"]
        check_eq(again, first, "the images from the manifest")
        for name in ("one", "two", "three", "solo.img"):
            s1 = os.stat(m2.path(name))
            check(stat.S_ISREG(s1.st_mode), f"{name} missing")
        check_eq(stat.S_IMODE(os.stat(m2.path("two")).st_mode), 0o600, "mode kept")
        check_eq(ctl("list", "--manifest", m2.mnt).stdout, text, "manifest of the manifest")


def test_manifest_refuses_what_toml_cannot_hold(t):
    """An image whose path is not UTF-8 (attached, served, listed as JSON with PEP 383
    escapes): list --manifest refuses, naming it, rather than write a manifest whose
    path reads back as another file (byte FF written as U+00FF, which is C3 BF)."""
    solo = t.path("solo.img")
    harness.make_sparse(solo, MiB)
    bad = os.fsdecode(os.fsencode(t.path("")) + b"bad\xff.img")
    harness.make_sparse(bad, MiB)
    with t.mount(solo) as m:
        ctl("attach", bad, "-m", m.mnt)
        r = ctl("list", "--manifest", "-m", m.mnt, check_rc=1)
        check_eq(r.stdout, "", "what list --manifest printed")
        check(r'image "bad\udcff.img": its name is not valid UTF-8' in r.stderr,
              f"the refusal: {r.stderr!r}")


@harness.timeout(120)
def test_attach_detach_racing_with_readers(t):
    """Attach/detach of one name, alternating between two backing files, racing with
    open/read/close and readdir for a while: no crash or deadlock, every handle reads
    only its own image, and the daemon's fds and threads stay bounded."""
    a, b = t.path("a.img"), t.path("b.img")
    filled(a, MiB, ord("a"))
    filled(b, MiB, ord("b"))
    solo = t.path("solo.img")
    harness.make_sparse(solo, MiB)
    # At least 10 s and 60 attach/detach rounds, at most 90 s. The rounds start
    # two cgloopctl each, which under sanitizers take most of a second with the
    # readers running (60 rounds took 83 s there): 20 rounds then.
    seconds, rounds, most = 10, 20 if harness.sanitized() else 60, 90
    with t.mount(solo) as m:
        mm = ["-m", m.mnt]
        x = m.path("x.img")
        # A read first: the worker of this process's cgroup and, with charge=cgroup,
        # its worker process (the daemon's socket and pidfd of it, and of the host
        # maker) are there before the count.
        fd = os.open(m.path("solo.img"), os.O_RDONLY)
        os.pread(fd, 4096, 0)
        os.close(fd)
        base_fds = len(os.listdir(f"/proc/{m.pid}/fd"))
        base_threads = int([ln for ln in open(f"/proc/{m.pid}/status")
                            if ln.startswith("Threads:")][0].split()[1])
        start = time.monotonic()
        done = threading.Event()
        errors = []
        counts = {"opens": 0, "enoent": 0, "attaches": 0}

        def reader():
            while not done.is_set() and not errors:
                try:
                    fd = os.open(x, os.O_RDONLY)
                except FileNotFoundError:
                    counts["enoent"] += 1
                    continue
                except OSError as e:
                    errors.append(f"open: {e}")
                    return
                try:
                    counts["opens"] += 1
                    first = os.pread(fd, 1, 0)
                    for off in (4096, MiB // 2, MiB - 512):
                        got = os.pread(fd, 512, off)
                        if got != first * 512:
                            errors.append(f"a handle that read {first!r} then read "
                                          f"{got[:8]!r}... at {off}")
                            return
                except OSError as e:
                    errors.append(f"read: {e}")
                    return
                finally:
                    os.close(fd)

        def lister():
            while not done.is_set() and not errors:
                try:
                    names = os.listdir(m.mnt)
                except OSError as e:
                    errors.append(f"readdir: {e}")
                    return
                if not set(names) <= {"x.img", "solo.img"}:
                    errors.append(f"listing {names}")

        threads = [threading.Thread(target=reader) for _ in range(3)]
        threads.append(threading.Thread(target=lister))
        for th in threads:
            th.start()
        try:
            i = 0
            while not errors:
                elapsed = time.monotonic() - start
                if elapsed > most or (elapsed > seconds and counts["attaches"] >= rounds):
                    break
                src = a if i % 2 == 0 else b
                r = ctl("attach", "--name", "x.img", src, *mm, check_rc=None)
                if r.returncode != 0:
                    errors.append(f"attach: {r.stderr}")
                    break
                counts["attaches"] += 1
                time.sleep(0.01)
                r = ctl("detach", "--lazy", "x.img", *mm, check_rc=None)
                if r.returncode != 0:
                    errors.append(f"detach: {r.stderr}")
                    break
                i += 1
        finally:
            done.set()
            for th in threads:
                th.join(30)
        check(not errors, "; ".join(errors[:5]))
        check(counts["opens"] > 50 and counts["attaches"] >= rounds, f"too little happened: {counts}")
        # Every handle is closed: the detached images are freed. What may remain are
        # pidfds of the readers (threads that have ended now): each session thread
        # keeps the callers it resolved until its next new caller
        # (src/cgroup/resolver.cpp), so at most every reader in every session thread.
        fds = len(os.listdir(f"/proc/{m.pid}/fd"))
        pidfd_bound = SESSION_THREADS * len(threads)
        check(fds <= base_fds + pidfd_bound,
              f"daemon fds grew from {base_fds} to {fds}, more than {pidfd_bound} pidfds "
              f"of ended readers")
        backing = [os.readlink(f"/proc/{m.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{m.pid}/fd")]
        check_eq(sum(1 for p in backing if p in (a, b)), 0,
                 "backing files of detached images still open")
        threads_now = int([ln for ln in open(f"/proc/{m.pid}/status")
                           if ln.startswith("Threads:")][0].split()[1])
        check(threads_now <= base_threads + 8,
              f"daemon threads grew from {base_threads} to {threads_now}")
        check_eq(ctl_json("status", m.mnt)["open_handles"], 0, "open handles at the end")


def test_authorization_and_socket_modes(t):
    """Another uid is refused for every command; the socket file and its directory
    are not open to others."""
    img = t.path("p.img")
    harness.make_sparse(img, MiB)
    with t.mount(img) as m:
        sock = json.loads(ctl("--json", "status", m.mnt).stdout) and None
        sock = os.getxattr(m.mnt, "user.cgloopfs.control").decode()
        st = os.stat(sock)
        check_eq(stat.S_IMODE(st.st_mode), 0o600, "socket mode")
        check_eq(stat.S_IMODE(os.stat(os.path.dirname(sock)).st_mode), 0o700,
                 "socket directory mode")
        for args in (["list"], ["list", "--manifest"], ["attach", img], ["detach", "p.img"],
                     ["set-capacity", "p.img"], ["get"], ["set", "idle_timeout=5"],
                     ["workers"], ["stats"], ["status"]):
            r = ctl("--socket", sock, *args, check_rc=1, user=65534)
            check("permission denied" in r.stderr.lower(),
                  f"uid 65534 {args}: {r.stderr!r}")
        check_eq([i["name"] for i in ctl_json("list", m.mnt)["images"]], ["p.img"],
                 "nothing changed")
    r = ctl("list", m.mnt, check_rc=1)
    check_eq(r.stderr, f'cgloopctl: "{m.mnt}" is not a cgloopfs mount point\n',
             "a mount point without a daemon")


def test_a_dead_daemon_is_reported_clearly(t):
    """After the daemon is killed, every command says so in one line (no errno soup)."""
    img = t.path("d.img")
    harness.make_sparse(img, MiB)
    m = t.mount(img, expect_exit=None)
    with m:
        check_eq(len(ctl_json("list", m.mnt)["images"]), 1, "alive")
        sock = os.getxattr(m.mnt, "user.cgloopfs.control").decode()
        # A killed daemon cannot remove its socket; the next one on this mount point
        # replaces it. This test removes it itself.
        t.defer(lambda: os.path.exists(sock) and os.unlink(sock))
        os.kill(m.pid, 9)
        m.proc.wait(10)
        for args in (["list", m.mnt], ["workers", m.mnt], ["-m", m.mnt, "detach", "d.img"]):
            r = ctl(*args, check_rc=1)
            check_eq(r.stderr, f"cgloopctl: the cgloopfs daemon of \"{m.mnt}\" is gone (the "
                               f"mount is dead; unmount it with: umount -l {m.mnt})\n",
                     f"{args} with a dead daemon")


def test_a_stopped_daemon_is_reported_within_the_timeout(t):
    """With the daemon stopped (SIGSTOP, or stuck), cgloopctl given the mount point gives
    up after 10 s with one line, as it does on a silent socket, rather than wait in the
    mount for ever (a FUSE request waits for a fatal signal: Ctrl-C would not end it)."""
    img = t.path("s.img")
    harness.make_sparse(img, MiB)
    with t.mount(img) as m:
        check_eq(len(ctl_json("list", m.mnt)["images"]), 1, "alive")
        os.kill(m.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            r = ctl("list", m.mnt, check_rc=1, timeout=30)
            took = time.monotonic() - t0
        finally:
            os.kill(m.pid, signal.SIGCONT)
        check_eq(r.stderr, f"cgloopctl: the cgloopfs daemon of \"{m.mnt}\" did not answer "
                           "within 10 s (stopped or stuck?)\n", "with the daemon stopped")
        check(took < 15, f"cgloopctl took {took:.1f} s")
        check_eq(len(ctl_json("list", m.mnt)["images"]), 1, "alive again")


def test_an_exiting_daemon_leaves_another_daemons_socket(t):
    """A daemon removes only the control socket it made: when its path has come to
    name another daemon's socket, that daemon stays reachable after the first exits."""
    a, b = t.path("a.img"), t.path("b.img")
    harness.make_sparse(a, MiB)
    harness.make_sparse(b, MiB)
    sock = t.path("run", "ctl.sock")
    with t.mount(a, opts=f"control={sock}") as ma:
        check_eq([i["name"] for i in ctl_json("--socket", sock, "list")["images"]],
                 ["a.img"], "A answers on its socket")
        # Someone removes A's socket file; B then starts with the same path.
        os.unlink(sock)
        with t.mount(b, opts=f"control={sock}") as mb:
            check_eq([i["name"] for i in ctl_json("--socket", sock, "list")["images"]],
                     ["b.img"], "the path names B's socket")
            harness.fusermount_unmount(ma.mnt)
            check_eq(ma.wait_exit(), 0, "A's exit status")
            check(os.path.exists(sock), "A's exit removed B's control socket")
            check_eq([i["name"] for i in ctl_json("--socket", sock, "list")["images"]],
                     ["b.img"], "B through its socket after A exited")
            check_eq([i["name"] for i in ctl_json("list", mb.mnt)["images"]], ["b.img"],
                     "B through its mount point after A exited")
        check(not os.path.exists(sock), "B removed its own socket when it exited")


if __name__ == "__main__":
    harness.main()
