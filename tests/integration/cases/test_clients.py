#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Real clients nobody here wrote: ext4 on a loop device over an exported file,
and fio's verify mode."""

import contextlib
import hashlib
import os
import random
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import (  # noqa: E402
    check, check_eq, losetup_attach, losetup_detach, make_image, run, timeout, umount_path)

MiB = 1024 * 1024


def need(tool):
    if shutil.which(tool) is None:
        raise harness.TestFailure(f"cannot run: {tool} is not installed")


def write_tree(root, seed):
    """Files of assorted sizes in a few directories; returns {relative path: sha256}."""
    rng = random.Random(seed)
    sums = {}
    for d in ("", "a", "a/b", "c"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
        for i in range(6):
            size = rng.choice([0, 1, 511, 4096, 65537, 1 * MiB + 3, 5 * MiB])
            data = rng.randbytes(size)
            rel = os.path.join(d, f"f{i}.bin")
            with open(os.path.join(root, rel), "wb") as f:
                f.write(data)
            sums[rel] = hashlib.sha256(data).hexdigest()
    return sums


def check_tree(root, sums):
    for rel, want in sums.items():
        with open(os.path.join(root, rel), "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        check_eq(got, want, f"sha256 of {rel}")


def loop_mount(t, stack, image, target):
    """Loop-attach image and mount it; undone by `stack` even when the test fails,
    before the cgloopfs mount below it goes away."""
    dev = losetup_attach(t, image, defer=stack.callback)
    run(["mount", "-t", "ext4", dev, target])
    stack.callback(umount_path, target)
    return dev


def loop_umount(dev, target, image):
    run(["umount", target])
    losetup_detach(dev, image)
    r = run(["losetup", "--list", "--noheadings", "-O", "NAME"], check_rc=False)
    check(dev not in r.stdout.split(), f"{dev} still attached")


@timeout(240)
def test_ext4_on_loop_over_exported_file(t):
    for tool in ("mkfs.ext4", "losetup", "e2fsck"):
        need(tool)
    backing = make_image(t.path("disk.img"), 256 * MiB)
    manifest = t.write_manifest([{"name": "disk", "path": backing, "discard": True}])
    target = t.mkdir("ext")
    with t.mount(manifest) as m, contextlib.ExitStack() as stack:
        img = m.path("disk")
        run(["mkfs.ext4", "-F", "-q", img], timeout=120)

        dev = loop_mount(t, stack, img, target)
        sums = write_tree(target, 1)
        run(["sync", "-f", target])
        loop_umount(dev, target, img)

        # Attach again (detaching dropped the device's cache): the data comes back
        # through the mount.
        dev = loop_mount(t, stack, img, target)
        check_tree(target, sums)
        more = write_tree(os.path.join(target, "more"), 2)
        os.remove(os.path.join(target, "a", "f0.bin"))
        del sums["a/f0.bin"]
        run(["fstrim", target], check_rc=False)  # discard through loop -> FUSE
        loop_umount(dev, target, img)

        r = run(["e2fsck", "-fn", img], check_rc=False, timeout=120)
        check_eq(r.returncode, 0, f"e2fsck -fn on the exported file:\n{r.stdout}{r.stderr}")

        dev = loop_mount(t, stack, img, target)
        check_tree(target, sums)
        check_tree(os.path.join(target, "more"), more)
        loop_umount(dev, target, img)

        fd = os.open(img, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    # The backing file itself holds the same clean file system.
    r = run(["e2fsck", "-fn", backing], check_rc=False, timeout=120)
    check_eq(r.returncode, 0, f"e2fsck -fn on the backing file:\n{r.stdout}{r.stderr}")
    check_eq(os.path.getsize(backing), 256 * MiB, "backing size")


def fio(args, cwd, timeout_s=240):
    r = run(["fio", "--verify_state_save=0", *args], check_rc=False, timeout=timeout_s,
            cwd=cwd)
    check_eq(r.returncode, 0, f"fio {' '.join(args)}:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r


def fio_verify(t, direct_io, jobs, region):
    need("fio")
    off = 1 * MiB
    size = jobs * region
    backing = make_image(t.path("fio.img"), off + size + 4096,
                         [(0, harness.pattern(off, 5)), (off + size, harness.pattern(4096, 6))])
    manifest = t.write_manifest([{"name": "img", "path": backing, "offset": off,
                                  "size_limit": size, "direct_io": direct_io}])
    common = [f"--numjobs={jobs}", f"--size={region}", f"--offset_increment={region}",
              "--bs=4k", "--ioengine=psync", "--direct=1", "--verify=crc32c",
              "--randrepeat=1", "--group_reporting"]
    with t.mount(manifest) as m:
        img = m.path("img")
        # Random writes with verification at the end of each job...
        fio(["--name=write", f"--filename={img}", "--rw=randwrite", "--fsync_on_close=1",
             "--verify_fatal=1", *common], t.tmp)
        # ...then a separate pass that only reads back and verifies.
        fio(["--name=write", f"--filename={img}", "--rw=randwrite", "--verify_only",
             "--verify_fatal=1", *common], t.tmp)
        exported = hash_range(img, 0, size)
    # The backing file holds the same bytes at the window's offset. (fio cannot
    # verify there itself: its block headers carry the offset in the exported file.)
    check_eq(hash_range(backing, off, size), exported, "sha256 of the backing window")
    check_eq(harness.file_pread(backing, 0, off), harness.pattern(off, 5), "before the window")
    check_eq(harness.file_pread(backing, off + size, 8192), harness.pattern(4096, 6),
             "after the window")


def hash_range(path, off, n):
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = off
        while pos < off + n:
            b = os.pread(fd, min(MiB, off + n - pos), pos)
            check(b, f"{path}: unexpected end of file at {pos}")
            h.update(b)
            pos += len(b)
    finally:
        os.close(fd)
    return h.hexdigest()


@timeout(240)
def test_fio_verify_randwrite(t):
    fio_verify(t, direct_io=False, jobs=3, region=64 * MiB)


@timeout(240)
def test_fio_verify_randwrite_direct_io(t):
    fio_verify(t, direct_io=True, jobs=3, region=16 * MiB)


if __name__ == "__main__":
    harness.main()
