#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What the mount shows: owner and mode of exported files, the three kinds of
SOURCE, directory listings, and read-only images."""

import os
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import (  # noqa: E402
    PUNCH, ZERO_KEEP, check, check_bytes, check_eq, expect_errno, fallocate, file_pread,
    make_image, pattern)
from errno import EBADF, EPERM, EROFS  # noqa: E402

MiB = 1024 * 1024


def test_configured_mode_uid_gid(t):
    backing = make_image(t.path("b.img"), MiB)
    os.chmod(backing, 0o600)
    other = make_image(t.path("c.img"), MiB)  # two writable windows may not share bytes
    manifest = t.write_manifest([
        {"name": "conf", "path": backing, "mode": "0640", "uid": 1234, "gid": 4321},
        {"name": "conf-int", "path": other, "mode": 0o604, "uid": "77", "gid": 0},
    ])
    with t.mount(manifest) as m:
        st = os.stat(m.path("conf"))
        check(stat.S_ISREG(st.st_mode), f"not a regular file: {st.st_mode:o}")
        check_eq(stat.S_IMODE(st.st_mode), 0o640, "mode")
        check_eq(st.st_uid, 1234, "uid")
        check_eq(st.st_gid, 4321, "gid")
        st = os.stat(m.path("conf-int"))
        check_eq(stat.S_IMODE(st.st_mode), 0o604, "mode given as an integer")
        check_eq((st.st_uid, st.st_gid), (77, 0), "uid, gid")
        root = os.stat(m.path())
        check(stat.S_ISDIR(root.st_mode), "the mount root is not a directory")


def test_block_size_is_reported(t):
    # One backing file each: writable windows of one file may not overlap.
    def backing(name):
        return make_image(t.path(name + ".img"), MiB)
    manifest = t.write_manifest([{"name": f"bs{bs}", "path": backing(f"bs{bs}"), "block_size": bs}
                                 for bs in (512, 1024, 2048, 4096)]
                                + [{"name": "default", "path": backing("default")},
                                   {"name": "suffix", "path": backing("suffix"),
                                    "block_size": "4K"}])
    with t.mount(manifest) as m:
        for bs in (512, 1024, 2048, 4096):
            check_eq(os.stat(m.path(f"bs{bs}")).st_blksize, bs, f"st_blksize of bs{bs}")
        check_eq(os.stat(m.path("default")).st_blksize, 512, "default st_blksize")
        check_eq(os.stat(m.path("suffix")).st_blksize, 4096, "st_blksize of \"4K\"")


def test_default_mode_and_owner_follow_backing_file(t):
    cases = {"rw.img": (0o660, 100, 200), "exec.img": (0o755, 0, 0),
             "odd.img": (0o751, 65534, 65534), "none.img": (0o000, 5, 6),
             "setuid.img": (0o4777, 1, 1)}
    t.mkdir("imgs")
    for name, (mode, uid, gid) in cases.items():
        p = make_image(t.path("imgs", name), MiB)
        os.chown(p, uid, gid)
        os.chmod(p, mode)
    with t.mount(t.path("imgs")) as m:
        for name, (mode, uid, gid) in cases.items():
            st = os.stat(m.path(name))
            check_eq(stat.S_IMODE(st.st_mode), mode & 0o666,
                     f"{name}: mode (backing {mode:o}: its rw bits, never exec/setuid)")
            check_eq((st.st_uid, st.st_gid), (uid, gid), f"{name}: owner")
            check(not st.st_mode & 0o7111, f"{name}: exec or special bits {st.st_mode:o}")


def test_directory_source_exposes_each_regular_file(t):
    d = t.mkdir("dir")
    files = {"alpha.img": MiB, "beta": 4096, "gamma disk.raw": 3 * 512, "delta.toml": 2048}
    for name, size in files.items():
        make_image(os.path.join(d, name), size, [(0, pattern(64, name))])
    os.mkdir(os.path.join(d, "subdir"))
    os.symlink("/nonexistent/target", os.path.join(d, "dangling"))
    os.mkfifo(os.path.join(d, "fifo"))
    with t.mount(d) as m:
        names = sorted(os.listdir(m.path()))
        check_eq(names, sorted(files), "readdir of the mount")
        with os.scandir(m.path()) as it:
            for e in it:
                check(e.is_file(follow_symlinks=False), f"{e.name} is not a regular file")
        for name, size in files.items():
            check_eq(os.stat(m.path(name)).st_size, size, f"{name}: size")
            check_bytes(file_pread(m.path(name), 0, 64), pattern(64, name), f"{name}: data")
        expect_errno(2, os.stat, m.path("subdir"))
        expect_errno(2, os.stat, m.path("fifo"))
        expect_errno(2, os.stat, m.path("nothere"))


def test_single_image_source_is_exposed_by_basename(t):
    d = t.mkdir("some", "where")
    img = make_image(os.path.join(d, "disk-01.img"), 2 * MiB, [(MiB, pattern(100, 9))])
    with t.mount(img) as m:
        check_eq(os.listdir(m.path()), ["disk-01.img"], "readdir")
        check_eq(os.stat(m.path("disk-01.img")).st_size, 2 * MiB, "size")
        check_bytes(file_pread(m.path("disk-01.img"), MiB, 100), pattern(100, 9), "data")
    # A relative SOURCE and mount point work as well.
    old = os.getcwd()
    os.chdir(d)
    try:
        with t.mount("disk-01.img", mnt=t.path("relmnt")) as m:
            check_eq(os.listdir(m.path()), ["disk-01.img"], "readdir (relative source)")
    finally:
        os.chdir(old)


def test_manifest_names_and_readdir(t):
    b = make_image(t.path("b.img"), MiB)
    names = ["zeta", "alpha", "with space", "ünïcode.img", "x" * 255]
    # Read-only: windows of one file may overlap when none of them writes.
    manifest = t.write_manifest([{"name": n, "path": b, "offset": i * 4096, "read_only": True}
                                 for i, n in enumerate(names)])
    with t.mount(manifest) as m:
        check_eq(sorted(os.listdir(m.path())), sorted(names), "readdir")
        for i, n in enumerate(names):
            check_eq(os.stat(m.path(n)).st_size, MiB - i * 4096, f"{n}: size")
        # Nothing can be created, removed or renamed in the mount.
        expect_errno((EPERM, 13), os.open, m.path("new"), os.O_CREAT | os.O_WRONLY, 0o644)
        expect_errno((EPERM, 13), os.unlink, m.path("zeta"))
        expect_errno((EPERM, 13), os.rename, m.path("zeta"), m.path("eta"))
        expect_errno((EPERM, 13), os.mkdir, m.path("d"))


def check_read_only_refusals(t, path, backing, data):
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC, os.O_RDWR | os.O_APPEND):
        expect_errno(EROFS, os.open, path, flags)
    expect_errno(EROFS, os.truncate, path, 0)
    expect_errno(EROFS, os.truncate, path, 4096)
    st = os.stat(path)
    check(not st.st_mode & 0o222, f"write bits on a read-only image: {st.st_mode:o}")
    fd = os.open(path, os.O_RDONLY)
    try:
        check_bytes(os.pread(fd, len(data), 0), data, "read from a read-only image")
        # discard needs a writable descriptor: the only one there is refuses it
        for mode in (PUNCH, ZERO_KEEP):
            expect_errno((EBADF, EROFS), fallocate, fd, mode, 0, 4096)
        expect_errno(EBADF, os.pwrite, fd, b"x", 0)
    finally:
        os.close(fd)
    check_bytes(file_pread(backing, 0, len(data)), data, "backing after refused writes")
    check_eq(os.path.getsize(backing), MiB, "backing size")


def test_read_only_image_refuses_writes_truncation_discard(t):
    data = pattern(MiB, 5)
    backing = make_image(t.path("ro.img"), MiB, [(0, data)])
    os.chmod(backing, 0o644)
    # Another file: a writable window may not overlap the read-only one.
    other = make_image(t.path("rw.img"), MiB)
    manifest = t.write_manifest([{"name": "ro", "path": backing, "read_only": True,
                                  "discard": True},
                                 {"name": "rw", "path": other, "discard": True,
                                  "offset": 512}])
    with t.mount(manifest) as m:
        check_read_only_refusals(t, m.path("ro"), backing, data)
        # The other image of the same mount stays writable.
        fd = os.open(m.path("rw"), os.O_RDWR)
        try:
            check_eq(os.pwrite(fd, b"hello", 0), 5, "write to the writable image")
        finally:
            os.close(fd)
        check_eq(file_pread(other, 512, 5), b"hello", "writable image data")


def test_read_only_mount_option(t):
    data = pattern(MiB, 6)
    backing = make_image(t.path("img"), MiB, [(0, data)])
    manifest = t.write_manifest([{"name": "img", "path": backing, "discard": True}])
    with t.mount(manifest, opts="ro") as m:
        e = harness.mount_entry(m.path())
        check(e is not None, "not mounted")
        check_read_only_refusals(t, m.path("img"), backing, data)
    # -o ro with a single image SOURCE, among other options.
    with t.mount(backing, opts="idle_timeout=3,ro") as m:
        check_bytes(harness.read_whole(m.path("img")), data, "read-only single image")
        expect_errno(EROFS, os.open, m.path("img"), os.O_WRONLY)


if __name__ == "__main__":
    harness.main()
