#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Image locks (issue 13: never two writers on one image), against QEMU's own
tools: a qemu-io writer keeps cgloopfs out (mount, manifest, attach); an image
cgloopfs serves keeps QEMU writers out; two daemons; a block device served
read-write cannot be mounted and a mounted one cannot be served read-write;
the locks survive set-capacity with no window, go with detach and with a
SIGKILLed daemon; lock=off serves anyway. Every refusal leaves the image
byte for byte as it was.

What QEMU 7.2 locks (open file description locks, byte 100 + n holds
permission n, byte 200 + n refuses it to others; n: 0 consistent read,
1 write): `qemu-io -f raw IMG` holds 100 and 101 and refuses nothing;
`qemu-io -r` holds 100. cgloopfs locks like a VM's disk: 100, 101 (when
writable) and 201."""

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import check, check_eq  # noqa: E402

CGLOOPCTL = harness.CGLOOPCTL
MiB = 1 << 20
F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
WRITER_MSG = 'another process has "{}" open for writing (perhaps a virtual machine or ' \
             'another cgloopfs); use lock=off to override'


def need(tool):
    import shutil
    if shutil.which(tool) is None:
        raise harness.TestFailure(f"cannot run: {tool} is not installed "
                                  f"(scripts/install-deps.sh installs it)")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make(t, name, size=4 * MiB, seed=1):
    path = t.path(name)
    with open(path, "wb") as f:
        f.write(harness.pattern(size, seed))
    return path


def locked_bytes(path):
    """The bytes of 100..103 and 200..203 that some open file description locks."""
    out = []
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for base in (100, 200):
            for i in range(4):
                fl = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, base + i, 1, 0)
                r = fcntl.fcntl(fd, F_OFD_GETLK, fl)
                if struct.unpack("hhqqi4x", r)[0] != fcntl.F_UNLCK:
                    out.append(base + i)
    finally:
        os.close(fd)
    return out


def ctl(*args, check_rc=0):
    cmd = [CGLOOPCTL] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check_rc is not None and r.returncode != check_rc:
        raise harness.TestFailure(f"{cmd}: exit {r.returncode} (want {check_rc}); "
                                  f"stdout {r.stdout!r} stderr {r.stderr!r}")
    return r


def list_json(mnt):
    return {i["name"]: i for i in json.loads(ctl("--json", "list", "-O", "NAME,RO,LOCK",
                                                  "-m", mnt).stdout)["images"]}


def qemu_io(img, cmd, read_only=False):
    args = ["qemu-io", "-f", "raw"] + (["-r"] if read_only else []) + ["-c", cmd, img]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def check_qemu_refused(img, cmd="write 0 512", want='Failed to get "write" lock'):
    r = qemu_io(img, cmd)
    out = r.stdout + r.stderr
    check(r.returncode != 0 and want in out,
          f"qemu-io -c {cmd!r} {img}: exit {r.returncode}, want a refusal with {want!r}: {out!r}")


def hold_with_qemu(t, img, read_only=False):
    """Run `qemu-io -f raw [-r] IMG` in the background, holding the image as QEMU
    does, until the end of the test (its stdin is a pipe we keep open)."""
    need("qemu-io")
    args = ["qemu-io", "-f", "raw"] + (["-r"] if read_only else []) + [img]
    err_path = t.path(f"qemu-io-{len(os.listdir(t.tmp))}.stderr")
    with open(err_path, "wb") as err:
        p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=err, start_new_session=True)

    def stop():
        with contextlib.suppress(OSError):
            p.stdin.close()
        if p.poll() is None:
            p.kill()
        p.wait(10)
    t.defer(stop)
    want = [100] if read_only else [100, 101]
    if not harness.wait_for(lambda: locked_bytes(img) == want or p.poll() is not None, 10):
        raise harness.TestFailure(f"qemu-io never locked {img}: {locked_bytes(img)}")
    if p.poll() is not None:
        with open(err_path, errors="replace") as f:
            raise harness.TestFailure(f"qemu-io exited with {p.returncode}: {f.read()!r}")
    return p


def refuse_mount(t, args, must_contain, want_rc=1):
    return harness.run_daemon_expect_failure(t, args, want_rc, must_contain=must_contain)


def test_qemu_writer_keeps_cgloopfs_out(t):
    """qemu-io holds an image read-write: cgloopfs refuses to serve it read-write
    and, as a VM's read-only disk would be refused, read-only too; the message
    names the image and what holds it; the image is untouched."""
    img = make(t, "disk.img")
    before = sha256(img)
    hold_with_qemu(t, img)
    mnt = t.mkdir("mnt")
    msg = WRITER_MSG.format(img)
    refuse_mount(t, [img, mnt], ['image "disk.img": ' + msg])
    refuse_mount(t, ["-o", "ro", img, mnt], ['image "disk.img": ' + msg])
    refuse_mount(t, ["-o", "lock=on", img, mnt], ['image "disk.img": ' + msg])
    # A manifest: the conflict fails the whole mount, naming the image.
    free = make(t, "free.img", seed=2)
    man = t.write_manifest([{"name": "free", "path": free}, {"name": "vm", "path": img}])
    refuse_mount(t, [man, mnt], ['image "vm": ' + msg])
    check_eq(locked_bytes(free), [], "locks left on the other image of the manifest")
    # attach into a running mount.
    with t.mount(free, mnt=mnt) as m:
        r = ctl("attach", img, "-m", m.mnt, check_rc=1)
        check_eq(r.stderr.strip(), f'cgloopctl: attach: image "disk.img": {msg}',
                 "attach refusal")
        r = ctl("attach", "--read-only", "--name", "ro", img, "-m", m.mnt, check_rc=1)
        check(msg in r.stderr, f"attach -r: {r.stderr!r}")
        check_eq(sorted(list_json(m.mnt)), ["free.img"], "images after the refusals")
    check_eq(sha256(img), before, "the refused image")
    check_eq(locked_bytes(img), [100, 101], "qemu-io's locks after the refusals")


def test_qemu_reader_shares(t):
    """qemu-io -r shares everything (QEMU's raw read-only open refuses no one):
    cgloopfs serves the image read-write and read-only beside it."""
    img = make(t, "disk.img")
    hold_with_qemu(t, img, read_only=True)
    for opts in (None, "ro"):
        with t.mount(img, opts=opts) as m:
            check_eq(list_json(m.mnt)["disk.img"]["locked"], True, "LOCK")
            check_eq(locked_bytes(img), [100, 101, 201] if opts is None else [100, 201],
                     "locked bytes")
            with open(m.path("disk.img"), "rb") as f:
                check_eq(f.read(4096), harness.pattern(4 * MiB, 1)[:4096], "data")


def test_cgloopfs_keeps_qemu_writers_out(t):
    """An image cgloopfs serves read-write: qemu-io cannot open it for writing
    ("Failed to get "write" lock"), qemu-img info of a qcow2 image fails with
    "Failed to get shared "write" lock" (and works with -U), readers that share
    writes still read; after the unmount QEMU can write again."""
    need("qemu-img")
    img = make(t, "disk.img")
    qcow = t.path("vm.qcow2")
    harness.run(["qemu-img", "create", "-q", "-f", "qcow2", qcow, "8M"])
    before = sha256(img)
    man = t.write_manifest([{"name": "raw", "path": img}, {"name": "qcow", "path": qcow}])
    with t.mount(man) as m:
        check_eq(locked_bytes(img), [100, 101, 201], "cgloopfs's bytes (rw)")
        check_qemu_refused(img, "write 0 512")
        check_qemu_refused(img, "read 0 512")  # qemu-io opens read-write
        r = subprocess.run(["qemu-img", "info", qcow], capture_output=True, text=True)
        check(r.returncode != 0 and 'Failed to get shared "write" lock' in r.stderr,
              f"qemu-img info of a served qcow2: {r.returncode} {r.stderr!r}")
        harness.run(["qemu-img", "info", "-U", qcow])
        # QEMU's rules: a raw read-only open shares writes, as a VM's disk shares reads.
        check_eq(qemu_io(img, "read 0 512", read_only=True).returncode, 0, "qemu-io -r")
        harness.run(["qemu-img", "info", img])
        check_eq(sha256(img), before, "the image qemu-io was refused")
    check_eq(locked_bytes(img), [], "locks after the unmount")
    check_eq(qemu_io(img, "write 0 512").returncode, 0, "qemu-io write after the unmount")


def test_two_daemons(t):
    """A second read-write mount of an image fails; two read-only mounts work;
    a read-write one then fails beside them; an image attached to one mount
    cannot be attached to another; detach lets it go."""
    img = make(t, "disk.img")
    other = make(t, "other.img", seed=3)
    before = sha256(img)
    m2 = t.mkdir("second")
    with t.mount(img) as m:
        refuse_mount(t, [img, m2], ['image "disk.img": ' + WRITER_MSG.format(img)])
        refuse_mount(t, ["-o", "ro", img, m2], ['image "disk.img": ' + WRITER_MSG.format(img)])
        check(m.proc.poll() is None, "the first daemon died")
    with t.mount(img, opts="ro") as a, t.mount(img, opts="ro", mnt=m2):
        check_eq(locked_bytes(img), [100, 201], "two readers' bytes")
        msg = refuse_mount(t, [img, t.mkdir("third")], ['image "disk.img": another process'])
        check("lets no one else write to it" in msg and "lock=off" in msg, msg)
        check_eq(json.loads(ctl("--json", "list", "-O", "NAME,LOCK", "-m", a.mnt).stdout),
                 {"images": [{"name": "disk.img", "locked": True}]}, "list --json")
    check_eq(sha256(img), before, "the image after the refusals")
    # attach: one mount holds it, the other is refused, until the first detaches.
    with t.mount(img) as a, t.mount(other, mnt=m2) as b:
        r = ctl("attach", img, "-m", b.mnt, check_rc=1)
        check_eq(r.stderr.strip(),
                 f'cgloopctl: attach: image "disk.img": {WRITER_MSG.format(img)}', "attach")
        ctl("detach", "disk.img", "-m", a.mnt)
        check_eq(locked_bytes(img), [], "locks after detach")
        ctl("attach", img, "-m", b.mnt)
        check_eq(list_json(b.mnt)["disk.img"]["locked"], True, "LOCK after attach")
        r = ctl("attach", "--name", "again", img, "-m", a.mnt, check_rc=1)
        check(WRITER_MSG.format(img) in r.stderr, r.stderr)
    check_eq(sha256(img), before, "the image")


@harness.timeout(120)
def test_block_device_exclusive(t):
    """A loop device served read-write is claimed O_EXCL: mount(8) gets EBUSY.
    A device that is mounted is refused read-write (read-only still serves)."""
    need("mkfs.ext4")
    backing = t.path("fs.img")
    harness.make_sparse(backing, 64 * MiB)
    harness.run(["mkfs.ext4", "-F", "-q", backing], timeout=120)
    before = sha256(backing)
    with contextlib.ExitStack() as stack:
        dev = harness.losetup_attach(t, backing, defer=stack.callback)
        target = t.mkdir("target")
        stack.callback(harness.umount_path, target)
        with t.mount(dev) as m:
            check_eq(list_json(m.mnt)[os.path.basename(dev)]["locked"], True, "LOCK")
            r = subprocess.run(["mount", "-t", "ext4", dev, target], capture_output=True,
                               text=True, timeout=30)
            check(r.returncode != 0 and not harness.is_mounted(target),
                  f"mount of a device cgloopfs serves: exit {r.returncode} {r.stderr!r}")
            # mount(8) reports the EBUSY of its exclusive open as "already mounted or
            # mount point busy"; a direct O_EXCL open gets the errno itself.
            harness.expect_errno(errno_busy(), os.open, dev, os.O_RDONLY | os.O_EXCL)
        check_eq(sha256(backing), before, "the device's bytes after the refused mount")
        harness.run(["mount", "-t", "ext4", "-o", "ro", dev, target])
        refuse_mount(t, [dev, t.mkdir("mnt2")],
                           [f'image "{os.path.basename(dev)}": block device "{dev}" is in use',
                            "lock=off"])
        with t.mount(dev, opts="ro") as m:
            with open(m.path(os.path.basename(dev)), "rb") as f:
                check(len(f.read(4096)) == 4096, "read-only serving of a mounted device")
        harness.umount_path(target)
    check_eq(sha256(backing), before, "the device's bytes")


def errno_busy():
    import errno
    return errno.EBUSY


@harness.timeout(120)
def test_locks_survive_set_capacity(t):
    """set-capacity, again and again, while qemu-io keeps trying to write: it
    never gets in, so the locks had no window."""
    need("qemu-io")
    img = make(t, "disk.img", size=4 * MiB)
    prefix = harness.pattern(4 * MiB, 1)
    attempts, got_in = [0], []
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            r = qemu_io(img, "write -P 0x5a 0 512")
            attempts[0] += 1
            if r.returncode == 0:
                got_in.append(r.stdout)
    with t.mount(img) as m:
        th = threading.Thread(target=writer)
        th.start()
        try:
            for i in range(60):
                os.truncate(img, 4 * MiB + (i + 1) * 64 * 1024)
                r = json.loads(ctl("--json", "set-capacity", "disk.img", "-m", m.mnt).stdout)
                check_eq(r["size"], 4 * MiB + (i + 1) * 64 * 1024, "size after set-capacity")
                check_eq(locked_bytes(img), [100, 101, 201], "bytes after set-capacity")
        finally:
            stop.set()
            th.join(60)
        check(attempts[0] > 0, "qemu-io never ran")
        check(not got_in, f"qemu-io wrote {len(got_in)} of {attempts[0]} times")
    with open(img, "rb") as f:
        check_eq(f.read(4 * MiB), prefix, "the image")


def test_sigkill_frees_locks(t):
    """The kernel drops the locks with the daemon's descriptions: after SIGKILL
    qemu-io writes at once, without waiting for the dead mount to go."""
    img = make(t, "disk.img")
    with t.mount(img, expect_exit=None) as m:
        check_qemu_refused(img)
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(10)
        check_eq(locked_bytes(img), [], "locks after SIGKILL")
        check_eq(qemu_io(img, "write -P 0x11 0 512").returncode, 0, "qemu-io after SIGKILL")
        subprocess.run(["fusermount3", "-uz", m.mnt], capture_output=True)
        if harness.is_mounted(m.mnt):
            subprocess.run(["umount", "-l", m.mnt], capture_output=True)
    with open(img, "rb") as f:
        check_eq(f.read(512), b"\x11" * 512, "qemu-io's write")


def test_lock_off_serves_despite_a_holder(t):
    """lock=off (-o, manifest key, attach --lock) serves an image qemu-io holds,
    takes no lock and says so in list; a bad value is a usage error."""
    img = make(t, "disk.img")
    hold_with_qemu(t, img)
    with t.mount(img, opts="lock=off") as m:
        check_eq(list_json(m.mnt)["disk.img"]["locked"], "off", "LOCK with lock=off")
        check_eq(locked_bytes(img), [100, 101], "only qemu-io's locks")
        with open(m.path("disk.img"), "rb") as f:
            check_eq(f.read(4096), harness.pattern(4 * MiB, 1)[:4096], "data")
        r = ctl("list", "-O", "NAME,LOCK", "--raw", "-n", "-m", m.mnt)
        check_eq(r.stdout, "disk.img off\n", "list LOCK column")
    free = make(t, "free.img", seed=2)
    man = t.write_manifest([{"name": "vm", "path": img, "lock": "off"},
                            {"name": "free", "path": free}])
    with t.mount(man) as m:
        got = list_json(m.mnt)
        check_eq((got["vm"]["locked"], got["free"]["locked"]), ("off", True), "per image")
    with t.mount(free) as m:
        r = ctl("attach", "--lock=maybe", "--name", "x", img, "-m", m.mnt, check_rc=1)
        check('lock: "maybe": must be "auto", "on" or "off"' in r.stderr, r.stderr)
        ctl("attach", "--lock=auto", "--name", "x", img, "-m", m.mnt, check_rc=1)
        ctl("attach", "--lock=off", "--name", "again", img, "-m", m.mnt)
        check_eq(list_json(m.mnt)["again"]["locked"], "off", "attach --lock=off")
        # cgloopctl set lock=off: the default of images attached from now on.
        ctl("detach", "again", "-m", m.mnt)
        ctl("set", "lock=off", "-m", m.mnt)
        ctl("attach", "--name", "by-default", img, "-m", m.mnt)
        got = list_json(m.mnt)
        check_eq((got["by-default"]["locked"], got["free.img"]["locked"]), ("off", True),
                 "set lock=off: new images only")
        ctl("detach", "by-default", "-m", m.mnt)
        ctl("set", "lock=auto", "-m", m.mnt)
        r = ctl("attach", "--name", "y", img, "-m", m.mnt, check_rc=1)
        check("open for writing" in r.stderr, f"after set lock=auto: {r.stderr}")
    harness.run_daemon_expect_failure(t, ["-o", "lock=maybe", img, t.mkdir("m2")], 2,
                                      must_contain=['option "lock=maybe"'])


if __name__ == "__main__":
    harness.main()
