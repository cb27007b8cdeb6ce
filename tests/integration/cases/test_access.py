#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Hostile input and access: geometry and offsets near 2^63 and 2^64 (manifests,
cgloopctl attach, I/O through the mount on windows that end at the last byte
a file can have; bytes outside the windows checksummed), and permissions
(allow_other brings default_permissions; nosuid,nodev; read and write bits
only; chmod/chown refused; other users get exactly what mode, owner and group
allow)."""

import errno
import hashlib
import json
import os
import select
import signal
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import check, check_bytes, check_eq, ctl, expect_errno, pattern  # noqa: E402

CGLOOPCTL = harness.CGLOOPCTL
MiB = 1 << 20
KiB = 1 << 10
TWO63 = 1 << 63
TWO64 = 1 << 64
OFF_MAX = TWO63 - 1          # the largest off_t, and the largest file tmpfs holds
NOBODY = 65534
# The kernel refuses a range whose end is not an off_t (EINVAL) or lies past
# the largest file (EFBIG) before the daemon sees it.
KERNEL_RANGE = (errno.EINVAL, errno.EFBIG)


def private_tmpfs(t, name="big"):
    """A small tmpfs of our own: it holds sparse files of 2^63 - 1 bytes."""
    d = t.mkdir(name)
    harness.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", d])
    t.defer(harness.umount_path, d)
    return d


def huge_file(path):
    with open(path, "wb") as f:
        f.truncate(OFF_MAX)
    return path


def sha(path, off, n):
    fd = os.open(path, os.O_RDONLY)
    try:
        return hashlib.sha256(harness.pread_all(fd, n, off)).hexdigest()
    finally:
        os.close(fd)


class Around:
    """Sentinel bytes written around windows of a backing file, and their checksums:
    check() fails if any of them changed."""

    def __init__(self, path, ranges):
        self.path = path
        self.ranges = ranges
        for i, (off, n) in enumerate(ranges):
            harness.file_pwrite(path, off, pattern(n, 1000 + i))
        self.sums = [sha(path, off, n) for off, n in ranges]

    def check(self, what):
        for (off, n), s in zip(self.ranges, self.sums):
            check_eq(sha(self.path, off, n), s,
                     f"{what}: bytes [{off}, {off + n}) outside the window")
        check_eq(os.stat(self.path).st_size, OFF_MAX, f"{what}: backing file size")


def io(fd, op, *args):
    """Run one I/O call; its result, or the errno it failed with."""
    try:
        if op == "pwrite":
            data, off = args
            return os.pwrite(fd, data, off)
        if op == "pread":
            n, off = args
            return os.pread(fd, n, off)
        if op == "fallocate":
            mode, off, n = args
            harness.fallocate(fd, mode, off, n)
            return 0
    except OSError as e:
        return errno.errorcode.get(e.errno, e.errno)
    raise ValueError(op)


def _norm(v):
    """An errno name as errno.errorcode spells it (EOPNOTSUPP is ENOTSUP there)."""
    if isinstance(v, str) and v.startswith("E") and hasattr(errno, v):
        return errno.errorcode[getattr(errno, v)]
    return v


def expect(fd, what, want, op, *args):
    got = io(fd, op, *args)
    want = tuple(map(_norm, want)) if isinstance(want, tuple) else _norm(want)
    if isinstance(want, tuple):
        check(got in want, f"{what}: {op} got {got!r}, want one of {want}")
    else:
        check_eq(got, want, f"{what}: {op}")
    return got


def names(*errs):
    return tuple(errno.errorcode[e] for e in errs)


@harness.timeout(60)
def test_windows_ending_near_2_63(t):
    """Three windows at the end of backing files of 2^63 - 1 bytes (sparse, on a
    tmpfs of our own): a 1 MiB window ending 100 bytes before the end, a window
    of the whole file (size_limit 2^63 - 1, so the exported size is 2^63 - 512),
    and a direct_io one. pread/pwrite/fallocate at and across their ends, at
    2^63 - 2, 2^63 - 1, and with lengths running past 2^63: each answered or
    refused as a loop device would, and no byte outside the windows changes."""
    big = private_tmpfs(t)
    tail_b, whole_b, dio_b = (huge_file(os.path.join(big, n)) for n in ("tail", "whole", "dio"))
    tail_off = OFF_MAX - MiB - 100
    dio_off = TWO63 - 2 * MiB
    whole_size = OFF_MAX & ~511
    around = [
        Around(tail_b, [(tail_off - 64 * KiB, 64 * KiB), (tail_off + MiB, 100)]),
        Around(whole_b, [(whole_size, OFF_MAX - whole_size)]),
        Around(dio_b, [(dio_off - 64 * KiB, 64 * KiB), (OFF_MAX - 511, 511)]),
    ]
    man = t.write_manifest([
        {"name": "tail.img", "path": tail_b, "offset": tail_off},
        {"name": "whole.img", "path": whole_b, "size_limit": str(OFF_MAX), "discard": True},
        {"name": "dio.img", "path": dio_b, "offset": str(dio_off), "direct_io": True,
         "discard": True},
    ])
    with t.mount(man) as m:
        sizes = {n: os.stat(m.path(n)).st_size for n in ("tail.img", "whole.img", "dio.img")}
        check_eq(sizes, {"tail.img": MiB, "whole.img": whole_size, "dio.img": 2 * MiB - 512},
                 "exported sizes")

        # tail.img: the whole window written and read back; the edges.
        fd = os.open(m.path("tail.img"), os.O_RDWR)
        try:
            data = pattern(MiB, 1)
            for off in range(0, MiB, 64 * KiB):
                check_eq(os.pwrite(fd, data[off:off + 64 * KiB], off), 64 * KiB, "fill")
            check_bytes(harness.pread_all(fd, MiB, 0), data, "tail.img read back")
            w = "tail.img"
            expect(fd, w, 100, "pwrite", b"E" * 4096, MiB - 100)
            expect(fd, w, "ENOSPC", "pwrite", b"F", MiB)
            expect(fd, w, "ENOSPC", "pwrite", b"F", TWO63 - 2)
            expect(fd, w, names(*KERNEL_RANGE), "pwrite", b"F", OFF_MAX)
            expect(fd, w, names(*KERNEL_RANGE), "pwrite", b"F" * 8192, TWO63 - 4096)
            expect(fd, w, b"E" * 10, "pread", 4096, MiB - 10)
            expect(fd, w, b"", "pread", 4096, MiB)
            expect(fd, w, b"", "pread", 1, TWO63 - 2)
            expect(fd, w, names(*KERNEL_RANGE), "pread", 4096, OFF_MAX)
            expect(fd, w, ("EINVAL",), "pread", 1, -1)
            expect(fd, w, "EOPNOTSUPP", "fallocate", harness.PUNCH, 0, 4096)
            expect(fd, w, "ENOSPC", "fallocate", 0, MiB - 4096, 8192)
            expect(fd, w, names(*KERNEL_RANGE), "fallocate", 0, TWO63 - 4096, 8192)
        finally:
            os.close(fd)
        check_bytes(harness.file_pread(tail_b, tail_off, MiB), data[:MiB - 100] + b"E" * 100,
                    "tail.img in the backing file")

        # whole.img: offsets right below 2^63 reach the daemon.
        fd = os.open(m.path("whole.img"), os.O_RDWR)
        try:
            w, s = "whole.img", whole_size
            last = pattern(4096, 2)
            expect(fd, w, 4096, "pwrite", last, s - 4096)
            expect(fd, w, last[-512:], "pread", 512, s - 512)
            expect(fd, w, "ENOSPC", "pwrite", b"G", s)
            expect(fd, w, "ENOSPC", "pwrite", b"G" * 100, s + 300)
            expect(fd, w, "ENOSPC", "pwrite", b"G", TWO63 - 2)
            expect(fd, w, names(*KERNEL_RANGE), "pwrite", b"G" * 4096, s - 100)
            expect(fd, w, names(*KERNEL_RANGE), "pwrite", b"G", OFF_MAX)
            expect(fd, w, b"", "pread", 100, s)
            expect(fd, w, b"", "pread", 1, TWO63 - 2)
            expect(fd, w, names(*KERNEL_RANGE), "pread", 4096, s - 10)
            # Punch the first of the last two blocks, zero the last 512 bytes.
            expect(fd, w, 0, "fallocate", harness.PUNCH, s - 8192, 4096)
            expect(fd, w, 0, "fallocate", harness.ZERO_KEEP, s - 512, 512)
            expect(fd, w, "EINVAL", "fallocate", harness.PUNCH, s, 256)
            expect(fd, w, "EINVAL", "fallocate", harness.PUNCH, s - 512, 768)
            expect(fd, w, names(*KERNEL_RANGE), "fallocate", harness.PUNCH, s - 4096, 8192)
            expect(fd, w, names(*KERNEL_RANGE), "fallocate", harness.PUNCH, TWO63 // 2,
                   TWO63 // 2)
        finally:
            os.close(fd)
        check_bytes(harness.file_pread(whole_b, s - 8192, 8192),
                    b"\0" * 4096 + last[:-512] + b"\0" * 512, "whole.img in the backing file")

        # dio.img: unaligned O_DIRECT backing I/O in the partial last blocks.
        fd = os.open(m.path("dio.img"), os.O_RDWR)
        try:
            w, s = "dio.img", sizes["dio.img"]
            a, b = pattern(300, 3), pattern(300, 4)
            expect(fd, w, 300, "pwrite", a, s - 300)
            expect(fd, w, 300, "pwrite", b, s - 1000)
            expect(fd, w, 10, "pwrite", b"H" * 100, s - 10)
            expect(fd, w, "ENOSPC", "pwrite", b"H", s)
            expect(fd, w, b[:300] + bytes(400) + a[:290] + b"H" * 10, "pread", 4096, s - 1000)
            expect(fd, w, 0, "fallocate", harness.PUNCH, s - 4096, 512)
            expect(fd, w, bytes(512), "pread", 512, s - 4096)
            expect(fd, w, "EINVAL", "fallocate", harness.PUNCH, s - 4096, 8192)
        finally:
            os.close(fd)
        check_bytes(harness.file_pread(dio_b, dio_off + s - 1000, 1000),
                    b + bytes(400) + a[:290] + b"H" * 10, "dio.img in the backing file")
        check_bytes(harness.read_direct(m.path("dio.img"), s - 4096, 4096)[-10:], b"H" * 10,
                    "O_DIRECT read of the exported file")
    for a in around:
        a.check(os.path.basename(a.path))


def test_geometry_near_2_64_is_refused(t):
    """Offsets and size limits at 2^63 and 2^64 - 1 (and the suffixed forms of
    2^63 and 2^64), in manifests and in cgloopctl attach: refused with one line
    naming the image and the setting, exit 1, nothing mounted or attached. An
    offset of 2^63 - 1 on a file of 2^63 - 1 bytes is past its end; 2^63 - 512
    leaves less than a sector. The largest accepted values mount and attach."""
    big = private_tmpfs(t)
    edge = huge_file(os.path.join(big, "edge"))
    mnt = t.mkdir("mnt")

    def refuse(lines, must):
        text = "[[image]]\nname = \"x\"\npath = " + json.dumps(edge) + "\n" + \
            "".join(ln + "\n" for ln in lines)
        man = t.write_manifest(text, name="bad.toml")
        msg = harness.run_daemon_expect_failure(t, [man, mnt], 1)
        for s in ['bad.toml:', 'image "x"'] + must:
            check(s in msg, f"{lines}: {msg!r} does not mention {s!r}")
        return msg

    refuse(['offset = "18446744073709551615"'], ["offset", "2^63 - 1"])
    refuse(['offset = "9223372036854775808"'], ["offset", "2^63 - 1"])
    refuse(['offset = "8388608TiB"'], ["offset", "2^63 - 1"])
    refuse(['offset = "16777216TiB"'], ["offset", "2^64 - 1"])
    refuse(['size_limit = "18446744073709551615"'], ["size_limit", "2^63 - 1"])
    refuse(['size_limit = "9223372036854775808"'], ["size_limit", "2^63 - 1"])
    refuse(['size_limit = "18446744073709551616"'], ["size_limit"])
    refuse([f"offset = {OFF_MAX}"], ["offset", "past the end"])
    refuse([f"offset = {OFF_MAX & ~511}"], ["size is 0"])
    refuse([f"offset = {OFF_MAX - 100}", f"size_limit = {OFF_MAX}"], ["size is 0"])

    ok = t.write_manifest([{"name": "x", "path": edge, "offset": OFF_MAX - 1023,
                            "size_limit": str(OFF_MAX)}])
    with t.mount(ok, mnt=mnt) as m:
        check_eq(os.stat(m.path("x")).st_size, 512, "the last full sector")
        harness.file_pwrite(m.path("x"), 500, b"z" * 12)
        check_eq(harness.file_pread(edge, OFF_MAX - 1023 + 500, 12), b"z" * 12, "last sector")
        mm = ["-m", m.mnt]
        for args, must in [
                (["--offset", str(TWO64 - 1)], ["offset", "2^63 - 1"]),
                (["--offset", str(TWO63)], ["offset", "2^63 - 1"]),
                (["--offset", "16777216TiB"], ["offset", "2^64 - 1"]),
                (["--offset", str(TWO64)], ["offset", "2^64 - 1"]),
                (["--offset", "-1"], ["offset"]),
                (["--sizelimit", str(TWO64 - 1)], ["size_limit", "2^63 - 1"]),
                (["--sizelimit", "8388608TiB"], ["size_limit", "2^63 - 1"]),
                (["--offset", str(OFF_MAX)], ["offset", "past the end"]),
                (["--offset", str(OFF_MAX - 511)], ["size is 0"])]:
            r = ctl("attach", "--name", "y", *args, edge, *mm, check_rc=None)
            check(r.returncode in (1, 2), f"attach {args}: exit {r.returncode}")
            lines = r.stderr.splitlines()
            check(lines and all(s in lines[0] for s in must),
                  f"attach {args}: {r.stderr!r} does not mention {must}")
        check_eq(sorted(os.listdir(m.mnt)), ["x"], "nothing attached")
        # The largest window the rules allow on this file, right at its end.
        ctl("attach", "--name", "y", "--offset", str(OFF_MAX - MiB - 100),
            "--sizelimit", str(OFF_MAX), huge_file(os.path.join(big, "edge2")), *mm)
        check_eq(os.stat(m.path("y")).st_size, MiB, "attached window")
        fd = os.open(m.path("y"), os.O_RDWR)
        try:
            expect(fd, "y", 5, "pwrite", b"12345" * 10, MiB - 5)
            expect(fd, "y", "ENOSPC", "pwrite", b"1", MiB)
            expect(fd, "y", b"12345", "pread", 100, MiB - 5)
        finally:
            os.close(fd)
        check_eq(harness.file_pread(os.path.join(big, "edge2"), OFF_MAX - 105, 105),
                 b"12345" + bytes(100), "attached window in the backing file")


# ---------------------------------------------------------------------------
# Permissions

def mount_options(mnt):
    """(per-mount options, super block options) of the mount at mnt."""
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            fields = left.split(" ")
            if harness._unescape(fields[4]) == os.path.realpath(mnt):
                found = (set(fields[5].split(",")), set(right.split(" ")[2].split(",")))
    check(found is not None, f"{mnt} is not mounted")
    return found


def run_ops(ops):
    """Each op is [kind, path, ...]; the result of each: the data read, the count
    written, "ok", or the errno name it failed with."""
    out = []
    for op in ops:
        kind, path = op[0], op[1]
        try:
            if kind == "read":
                fd = os.open(path, os.O_RDONLY)
                try:
                    r = os.pread(fd, op[2], 0).decode(errors="replace")
                finally:
                    os.close(fd)
            elif kind in ("write", "rdwr"):
                fd = os.open(path, os.O_WRONLY if kind == "write" else os.O_RDWR)
                try:
                    r = os.pwrite(fd, op[2].encode(), 0)
                finally:
                    os.close(fd)
            elif kind == "stat":
                st = os.stat(path)
                r = [oct(st.st_mode), st.st_uid, st.st_gid]
            elif kind == "list":
                r = sorted(os.listdir(path))
            elif kind == "chmod":
                os.chmod(path, op[2])
                r = "ok"
            elif kind == "chown":
                os.chown(path, op[2], op[3])
                r = "ok"
            elif kind == "exec":
                os.execv(path, [path])
            else:
                r = f"bad op {kind}"
        except OSError as e:
            r = errno.errorcode.get(e.errno, str(e.errno))
        out.append(r)
    return out


def as_user(uid, gid, ops, timeout=30):
    """run_ops(ops) in a forked child that has become uid:gid (no other groups)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            out = json.dumps(run_ops(ops)).encode()
            while out:
                out = out[os.write(wfd, out):]
        finally:
            os._exit(0)
    os.close(wfd)
    data = b""
    try:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([rfd], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                raise harness.TestFailure(f"uid {uid}: {ops} took more than {timeout} s")
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(rfd)
        os.waitpid(pid, 0)
    check(data, f"uid {uid}: no result for {ops}")
    return json.loads(data)


def test_mount_flags_nosuid_nodev_and_default_permissions(t):
    """The mount is nosuid,nodev whatever is asked (suid and dev are accepted and
    have no effect); allow_other always comes with default_permissions."""
    img = harness.make_image(t.path("a.img"), MiB)
    for opts, other in [(None, False), ("allow_other", True), ("suid,dev", False),
                        ("allow_other,suid,dev,exec", True)]:
        with t.mount(img, opts=opts) as m:
            per_mount, sb = mount_options(m.mnt)
            check({"nosuid", "nodev"} <= per_mount, f"-o {opts}: mount options {per_mount}")
            check_eq("allow_other" in sb, other, f"-o {opts}: allow_other in {sb}")
            check_eq("default_permissions" in sb, other,
                     f"-o {opts}: default_permissions in {sb}")
            check_eq(harness.mount_entry(m.mnt)[1], "fuse.cgloopfs", "type")


def test_exported_modes_have_read_write_bits_only(t):
    """Backing files with execute, setuid, setgid and sticky bits are exported with
    their read and write bits only (a single image, a directory, a manifest);
    a manifest or attach mode with other bits is refused naming the image and
    the mode; nobody, root included, can execute an exported file."""
    d = t.mkdir("imgs")
    modes = {"suid": 0o6777, "sticky": 0o1755, "exec": 0o0750, "plain": 0o0640}
    for name, mode in modes.items():
        harness.make_image(os.path.join(d, name), MiB)
        os.chmod(os.path.join(d, name), mode)
    want = {n: mode & 0o666 for n, mode in modes.items()}
    with t.mount(d, opts="allow_other") as m:
        got = {n: os.stat(m.path(n)).st_mode for n in modes}
        check_eq({n: stat.S_IMODE(v) for n, v in got.items()}, want, "directory source modes")
        check(all(stat.S_ISREG(v) for v in got.values()), "regular files")
        root = os.stat(m.mnt).st_mode
        check_eq(stat.S_IMODE(root), 0o755, "mount point mode")
        check_eq(as_user(0, 0, [["exec", m.path("suid")]]), ["EACCES"], "root executes")
        check_eq(as_user(NOBODY, NOBODY, [["exec", m.path("suid")]]), ["EACCES"],
                 "nobody executes")
        for mode in ("4660", "2660", "1660", "0760", "0670", "0661", "7777"):
            r = ctl("attach", "--name", "new", "--mode", mode, os.path.join(d, "plain"),
                    "-m", m.mnt, check_rc=1)
            check_eq(r.stderr, f'cgloopctl: attach: image "new": mode: "{mode}": {mode} has '
                               f'bits other than read and write (exported images are never '
                               f'executable, setuid, setgid or sticky)\n', f"attach --mode {mode}")
        for name in ("fresh1", "fresh2"):
            harness.make_image(t.path(name), MiB)
            os.chmod(t.path(name), 0o6777)
        ctl("attach", "--mode", "0604", t.path("fresh1"), "-m", m.mnt)
        ctl("attach", t.path("fresh2"), "-m", m.mnt)
        check_eq(stat.S_IMODE(os.stat(m.path("fresh1")).st_mode), 0o604, "attached mode")
        check_eq(stat.S_IMODE(os.stat(m.path("fresh2")).st_mode), 0o666,
                 "attached 06777 file")
    with t.mount(os.path.join(d, "suid")) as m:
        check_eq(stat.S_IMODE(os.stat(m.path("suid")).st_mode), 0o666, "single image mode")
    mnt = t.mkdir("mnt")
    for mode in ("4660", "2660", "1660", "0700", "0770"):
        man = t.write_manifest(f'[[image]]\nname = "m"\npath = "{d}/plain"\nmode = "{mode}"\n')
        msg = harness.run_daemon_expect_failure(t, [man, mnt], 1)
        check_eq(msg, f'cgloopfs: {man}:4: image "m": mode: "{mode}": {mode} has bits other '
                      f'than read and write (exported images are never executable, setuid, '
                      f'setgid or sticky)', f"manifest mode {mode}")


def test_chmod_and_chown_are_refused(t):
    """chmod, chown and fchmod on an image and on the mount point fail with EPERM,
    for root and for the owner of the file; nothing changes."""
    img = harness.make_image(t.path("a.img"), MiB)
    man = t.write_manifest([{"name": "a.img", "path": img, "mode": "0640"},
                            {"name": "theirs.img", "path": harness.make_image(
                                t.path("b.img"), MiB), "mode": "0600", "uid": NOBODY,
                             "gid": NOBODY}])
    with t.mount(man, opts="allow_other") as m:
        a = m.path("a.img")
        expect_errno(errno.EPERM, os.chmod, a, 0o666)
        expect_errno(errno.EPERM, os.chmod, a, 0o4640)
        expect_errno(errno.EPERM, os.chown, a, NOBODY, -1)
        expect_errno(errno.EPERM, os.chown, a, -1, NOBODY)
        expect_errno(errno.EPERM, os.chmod, m.mnt, 0o777)
        expect_errno(errno.EPERM, os.chown, m.mnt, NOBODY, NOBODY)
        fd = os.open(a, os.O_RDWR)
        try:
            expect_errno(errno.EPERM, os.fchmod, fd, 0o600)
            expect_errno(errno.EPERM, os.fchown, fd, NOBODY, NOBODY)
        finally:
            os.close(fd)
        theirs = m.path("theirs.img")
        check_eq(as_user(NOBODY, NOBODY, [["chmod", theirs, 0o666],
                                          ["chown", theirs, NOBODY, 0],
                                          ["chmod", a, 0o666]]),
                 ["EPERM", "EPERM", "EPERM"], "chmod/chown by the owner and by a stranger")
        st = os.stat(a)
        check_eq((stat.S_IMODE(st.st_mode), st.st_uid), (0o640, os.stat(img).st_uid),
                 "a.img unchanged")
        st = os.stat(theirs)
        check_eq((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid), (0o600, NOBODY, NOBODY),
                 "theirs.img unchanged")
        check_eq(stat.S_IMODE(os.stat(m.mnt).st_mode), 0o755, "mount point unchanged")


def test_other_users_get_what_mode_owner_and_group_allow(t):
    """With allow_other, uid 65534 (and a stranger, uid 65533) against images of
    mode 0644 root:root, 0600 root:root, 0600 owned by them, 0640 with their
    group, and a read-only image: each open is allowed or refused (EACCES)
    exactly as the mode, owner and group say; root's opens are not checked
    by mode but a read-only image is still EROFS; writes that are allowed land."""
    imgs = {n: harness.make_image(t.path(n + ".backing"), MiB, [(0, n.encode())])
            for n in ("public", "private", "theirs", "group", "ro")}
    man = t.write_manifest([
        {"name": "public", "path": imgs["public"], "mode": "0644", "uid": 0, "gid": 0},
        {"name": "private", "path": imgs["private"], "mode": "0600", "uid": 0, "gid": 0},
        {"name": "theirs", "path": imgs["theirs"], "mode": "0600", "uid": NOBODY,
         "gid": NOBODY},
        {"name": "group", "path": imgs["group"], "mode": "0640", "uid": 0, "gid": NOBODY},
        {"name": "ro", "path": imgs["ro"], "mode": "0666", "read_only": True},
    ])
    with t.mount(man, opts="allow_other") as m:
        p = m.path
        ops = [["list", m.mnt],
               ["read", p("public"), 6], ["write", p("public"), "x"],
               ["rdwr", p("public"), "x"],
               ["read", p("private"), 7], ["write", p("private"), "x"],
               ["read", p("theirs"), 6], ["rdwr", p("theirs"), "THEIRS"],
               ["read", p("theirs"), 6],
               ["read", p("group"), 5], ["write", p("group"), "x"],
               ["read", p("ro"), 2], ["write", p("ro"), "x"],
               ["stat", p("ro")]]
        got = as_user(NOBODY, NOBODY, ops)
        check_eq(got, [["group", "private", "public", "ro", "theirs"],
                       "public", "EACCES", "EACCES",
                       "EACCES", "EACCES",
                       "theirs", 6, "THEIRS",
                       "group", "EACCES",
                       "ro", "EACCES",
                       ["0o100444", 0, 0]], "uid 65534, gid 65534")
        stranger = as_user(NOBODY - 1, NOBODY - 1,
                           [["read", p("public"), 6], ["read", p("theirs"), 6],
                            ["read", p("group"), 5], ["rdwr", p("theirs"), "x"]])
        check_eq(stranger, ["public", "EACCES", "EACCES", "EACCES"], "uid 65533")
        as_root = as_user(0, 0, [["read", p("private"), 7], ["rdwr", p("theirs"), "ROOT"],
                                 ["write", p("ro"), "x"]])
        check_eq(as_root, ["private", 4, "EROFS"], "root")
    check_eq(harness.file_pread(imgs["theirs"], 0, 6), b"ROOTRS", "written by them, then root")
    for n in ("public", "private", "group", "ro"):
        check_eq(harness.file_pread(imgs[n], 0, len(n)), n.encode(), f"{n} unchanged")


def test_without_allow_other_other_users_are_kept_out(t):
    """Without allow_other only the user who mounted gets in: uid 65534 cannot even
    look at the mount point, whatever the files' modes."""
    img = harness.make_image(t.path("a.img"), MiB)
    man = t.write_manifest([{"name": "a.img", "path": img, "mode": "0666"}])
    with t.mount(man) as m:
        got = as_user(NOBODY, NOBODY, [["stat", m.mnt], ["list", m.mnt],
                                       ["read", m.path("a.img"), 1],
                                       ["write", m.path("a.img"), "x"]])
        check_eq(got, ["EACCES"] * 4, "uid 65534 without allow_other")
        check_eq(harness.file_pread(m.path("a.img"), 0, 1), b"\0", "root still reads")


if __name__ == "__main__":
    harness.main()
