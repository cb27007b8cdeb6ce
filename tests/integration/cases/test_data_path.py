#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The data path through a real mount: the window, its edges, discard, fsync,
direct_io with unaligned requests, writes from a child cgroup."""

import os
import random
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import (  # noqa: E402
    PUNCH, ZERO, ZERO_KEEP, check, check_bytes, check_eq, expect_errno, fallocate,
    file_pread, make_image, pattern, pread_all, pwrite_all, read_direct, timeout)
from errno import EINVAL, ENOSPC, EOPNOTSUPP  # noqa: E402

KiB = 1024
MiB = 1024 * 1024

# A window that starts at an odd offset and ends before the end of the backing file.
OFF = 12345
WIN = 1 * MiB
TAIL = 8192 + 77
HEAD_DATA = pattern(OFF, 1)
TAIL_DATA = pattern(TAIL, 2)
WIN_DATA = pattern(WIN, 3)


def windowed_image(t, name="win", **settings):
    """A backing file: sentinel head, window filled with a pattern, sentinel tail;
    and a manifest exposing the window. Returns (manifest, backing path)."""
    backing = t.path("backing.img")
    make_image(backing, OFF + WIN + TAIL,
               [(0, HEAD_DATA), (OFF, WIN_DATA), (OFF + WIN, TAIL_DATA)])
    img = {"name": name, "path": backing, "offset": OFF, "size_limit": "1MiB"}
    img.update(settings)
    return t.write_manifest([img]), backing


def check_outside_window(backing, what):
    check_eq(os.path.getsize(backing), OFF + WIN + TAIL, f"{what}: backing file size")
    check_bytes(file_pread(backing, 0, OFF), HEAD_DATA, f"{what}: bytes before the offset")
    check_bytes(file_pread(backing, OFF + WIN, TAIL + 100), TAIL_DATA,
                f"{what}: bytes after the window")


def check_window(m, backing, model, what):
    check_bytes(harness.read_whole(m.path("win")), model, f"{what}: read through the mount")
    check_bytes(file_pread(backing, OFF, WIN), model, f"{what}: backing file at the offset")
    check_outside_window(backing, what)


def check_pattern_lands(t, opts):
    manifest, backing = windowed_image(t)
    model = bytearray(WIN_DATA)
    with t.mount(manifest, opts=opts) as m:
        check_eq(os.stat(m.path("win")).st_size, WIN, "exported size")
        fd = os.open(m.path("win"), os.O_RDWR)
        try:
            writes = [(0, 1), (1, 4096), (511, 2), (4095, 8193), (100000, 300 * KiB),
                      (WIN - 1000, 1000), (WIN - 1, 1), (WIN // 2, 1 * MiB // 4)]
            for i, (pos, n) in enumerate(writes):
                data = pattern(n, 100 + i)
                check_eq(os.pwrite(fd, data, pos), n, f"pwrite({pos}, {n})")
                model[pos:pos + n] = data
                check_bytes(pread_all(fd, n, pos), data, f"read back ({pos}, {n})")
            os.fsync(fd)
        finally:
            os.close(fd)
        check_window(m, backing, model, "after writes")
    check_bytes(file_pread(backing, OFF, WIN), model, "backing after unmount")
    check_outside_window(backing, "after unmount")


def test_pattern_lands_in_backing_at_offset(t):
    check_pattern_lands(t, None)


def test_pattern_lands_cache_kernel(t):
    check_pattern_lands(t, "cache=kernel")


def test_pattern_lands_dispatch_single(t):
    check_pattern_lands(t, "dispatch=single,worker_depth=1")


def test_discard_punch_and_zero_within_window(t):
    manifest, backing = windowed_image(t, discard=True)
    model = bytearray(WIN_DATA)
    with t.mount(manifest) as m:
        fd = os.open(m.path("win"), os.O_RDWR)
        try:
            ops = [(PUNCH, 0, 8192),                 # the head of the window
                   (PUNCH, 40960 + 100, 5000),       # unaligned, inside
                   (ZERO_KEEP, 200000, 3 * 4096 + 1),
                   (ZERO, 300001, 999),
                   (PUNCH, WIN - 4096 - 3, 4096 + 3),  # the very end of the window
                   (ZERO_KEEP, WIN - 700, 700)]
            for mode, pos, n in ops:
                fallocate(fd, mode, pos, n)
                model[pos:pos + n] = bytes(n)
                lo, hi = max(0, pos - 10), min(WIN, pos + n + 10)
                check_bytes(pread_all(fd, hi - lo, lo), bytes(model[lo:hi]),
                            f"read around fallocate({mode:#x}, {pos}, {n})")
            os.fsync(fd)
        finally:
            os.close(fd)
        check_window(m, backing, model, "after punch/zero")


def test_discard_outside_window_is_refused(t):
    manifest, backing = windowed_image(t, discard=True)
    model = bytes(WIN_DATA)
    with t.mount(manifest) as m:
        fd = os.open(m.path("win"), os.O_RDWR)
        try:
            for mode in (PUNCH, ZERO, ZERO_KEEP):
                for pos, n in ((WIN - 4096, 8192),    # crosses the end
                               (WIN - 1, 2),
                               (WIN, 4096),           # at the end
                               (WIN + MiB, 4096),     # far past it
                               (0, WIN + 512)):       # all of it and more
                    expect_errno(EINVAL, fallocate, fd, mode, pos, n)
        finally:
            os.close(fd)
        check_window(m, backing, model, "after refused punch/zero")


def test_discard_off_is_refused(t):
    manifest, backing = windowed_image(t)  # discard defaults to false
    with t.mount(manifest) as m:
        fd = os.open(m.path("win"), os.O_RDWR)
        try:
            for mode in (PUNCH, ZERO, ZERO_KEEP):
                expect_errno(EOPNOTSUPP, fallocate, fd, mode, 4096, 4096)
        finally:
            os.close(fd)
        check_window(m, backing, WIN_DATA, "after refused discard")


def test_reads_at_and_past_the_end(t):
    manifest, backing = windowed_image(t)
    with t.mount(manifest) as m:
        fd = os.open(m.path("win"), os.O_RDONLY)
        try:
            check_bytes(os.pread(fd, 4096, WIN - 100), WIN_DATA[-100:], "read crossing the end")
            check_eq(os.pread(fd, 4096, WIN), b"", "read at the end")
            check_eq(os.pread(fd, 1, WIN), b"", "1-byte read at the end")
            check_eq(os.pread(fd, 4096, WIN + 1), b"", "read past the end")
            check_eq(os.pread(fd, 4096, WIN + 10 * MiB), b"", "read far past the end")
            check_bytes(os.pread(fd, 1, WIN - 1), WIN_DATA[-1:], "last byte")
            os.lseek(fd, WIN - 10, os.SEEK_SET)
            check_bytes(os.read(fd, 100), WIN_DATA[-10:], "sequential read to EOF")
            check_eq(os.read(fd, 100), b"", "sequential read at EOF")
        finally:
            os.close(fd)
        check_bytes(harness.read_whole(m.path("win")), WIN_DATA, "whole file")
        check_outside_window(backing, "after reads")


def test_large_reads_and_a_backing_file_that_shrinks(t):
    """Reads of 32 KiB and more are answered from a mapping of the backing file:
    right bytes at an unaligned offset; past a shrunken file's end, zeros (never
    stale or foreign bytes) and a daemon that lives on."""
    manifest, backing = windowed_image(t)
    with t.mount(manifest) as m:
        fd = os.open(m.path("win"), os.O_RDONLY)
        try:
            check_bytes(os.pread(fd, WIN, 0), WIN_DATA, "1 MiB read of the whole window")
            for off, n in ((777, 65536), (4095, 32768), (WIN - 40000, 65536),
                           (12345, 300000)):
                check_bytes(os.pread(fd, n, off), WIN_DATA[off:off + n], f"read {n} at {off}")
            cut = WIN // 2
            os.truncate(backing, OFF + cut)
            a = cut - 100000
            got = os.pread(fd, 262144, a)
            check_eq(len(got), 262144, "read across the shrunken end: full length")
            check_bytes(got, WIN_DATA[a:cut] + bytes(262144 - (cut - a)),
                        "read across the shrunken end: data, then zeros")
            check_bytes(os.pread(fd, 65536, cut + 4096), bytes(65536),
                        "read past the shrunken end: zeros")
            check(m.proc.poll() is None, "the daemon lives on")
            with open(backing, "r+b") as f:
                f.truncate(OFF + WIN + TAIL)
                f.seek(OFF + cut)
                f.write(WIN_DATA[cut:])
            check_bytes(os.pread(fd, WIN, 0), WIN_DATA, "after the file grew back")
        finally:
            os.close(fd)


def test_reading_holes_of_a_tmpfs_image_allocates_nothing(t):
    """Large reads come from a mapping of the backing file, but on tmpfs a hole read
    through a mapping would be filled with new memory: holes are read as zeros
    without allocating anything; written ranges still read back right."""
    img = os.path.join("/dev/shm", f"cgl-holes-{os.getpid()}.img")
    t.defer(lambda: os.path.exists(img) and os.unlink(img))
    harness.make_sparse(img, 64 * MiB)
    with t.mount(img) as m:
        f = m.path(os.path.basename(img))
        fd = os.open(f, os.O_RDWR)
        try:
            for off in range(0, 64 * MiB, MiB):
                check_bytes(os.pread(fd, MiB, off), bytes(MiB), f"hole at {off}")
            check(os.stat(img).st_blocks == 0,
                  f"reading holes allocated {os.stat(img).st_blocks * 512} bytes")
            data = pattern(2 * MiB, 5)
            pwrite_all(fd, data, 8 * MiB)
            check_bytes(os.pread(fd, 2 * MiB, 8 * MiB), data, "written range")
            check_bytes(os.pread(fd, MiB, 8 * MiB + 512 * 1024), data[512 * 1024:][:MiB],
                        "written range, unaligned")
            got = os.pread(fd, MiB, 10 * MiB - 4096)
            check_bytes(got, data[-4096:] + bytes(MiB - 4096), "data then a hole")
            check(os.stat(img).st_blocks * 512 <= 2 * MiB + 64 * 1024,
                  f"the image holds {os.stat(img).st_blocks * 512} bytes after a 2 MiB write")
        finally:
            os.close(fd)


def check_writes_at_end(t, opts):
    manifest, backing = windowed_image(t)
    model = bytearray(WIN_DATA)
    with t.mount(manifest, opts=opts) as m:
        fd = os.open(m.path("win"), os.O_WRONLY)
        try:
            data = pattern(4096, 7)
            n = os.pwrite(fd, data, WIN - 100)
            check_eq(n, 100, "write crossing the end is short")
            model[WIN - 100:] = data[:100]
            expect_errno(ENOSPC, os.pwrite, fd, data, WIN)
            expect_errno(ENOSPC, os.pwrite, fd, b"x", WIN)
            expect_errno(ENOSPC, os.pwrite, fd, data, WIN + 1)
            expect_errno(ENOSPC, os.pwrite, fd, data, WIN + 100 * MiB)
            os.lseek(fd, 0, os.SEEK_END)
            expect_errno(ENOSPC, os.write, fd, b"append")
            os.fsync(fd)
        finally:
            os.close(fd)
        check_eq(os.stat(m.path("win")).st_size, WIN, "exported size after writes")
        fd = os.open(m.path("win"), os.O_WRONLY | os.O_APPEND)
        try:
            expect_errno(ENOSPC, os.write, fd, b"more")
        finally:
            os.close(fd)
        check_window(m, backing, model, "after writes at the end")


def test_writes_at_and_past_the_end(t):
    check_writes_at_end(t, None)


def test_writes_at_and_past_the_end_cache_kernel(t):
    check_writes_at_end(t, "cache=kernel")


def check_direct_write_crossing_end(t, opts):
    """An O_DIRECT write that crosses the end of the window is short: the bytes
    inside the window land, none outside, and write(2) returns their count."""
    manifest, backing = windowed_image(t)
    model = bytearray(WIN_DATA)
    with t.mount(manifest, opts=opts) as m:
        for pos, n in ((WIN - 4096, 3 * 4096), (WIN - 512, 4096), (WIN - 64 * KiB, 256 * KiB)):
            data = pattern(n, pos % 251)
            got = harness.write_direct(m.path("win"), pos, data)
            check_eq(got, WIN - pos, f"O_DIRECT pwrite({pos}, {n}) crossing the end")
            model[pos:] = data[:WIN - pos]
            check_bytes(harness.read_direct(m.path("win"), pos - 4096, 4096 + WIN - pos),
                        bytes(model[pos - 4096:]), f"O_DIRECT read back ({pos}, {n})")
        check_window(m, backing, model, "after O_DIRECT writes crossing the end")


def test_direct_write_crossing_the_end_is_short(t):
    check_direct_write_crossing_end(t, None)


def test_direct_write_crossing_the_end_is_short_cache_kernel(t):
    check_direct_write_crossing_end(t, "cache=kernel")


def test_exported_size_rounding(t):
    def backing(name, size):
        p = t.path(name)
        make_image(p, size, [(size - 1, b"\xff")])
        return p
    cases = [
        ({"path": backing("a", MiB + 1000)}, MiB + 512),
        ({"path": backing("b", MiB), "offset": 1000}, (MiB - 1000) // 512 * 512),
        ({"path": backing("c", MiB), "size_limit": 1000}, 512),
        ({"path": backing("d", MiB), "offset": "4KiB", "size_limit": "8M"}, MiB - 4 * KiB),
        ({"path": backing("e", MiB), "offset": 512, "size_limit": "100K"}, 100 * KiB),
        ({"path": backing("f", 3 * MiB + 100), "offset": "1M", "size_limit": "2MiB"}, 2 * MiB),
        ({"path": backing("g", 3 * MiB + 100), "offset": "1MiB", "size_limit": 0},
         2 * MiB),
        ({"path": backing("h", 600), "offset": 0}, 512),
        ({"path": backing("i", 5000), "offset": 3, "size_limit": 4999}, 4096 + 512),
    ]
    images = []
    for i, (img, _) in enumerate(cases):
        images.append(dict(name=f"img{i}", **img))
    manifest = t.write_manifest(images)
    with t.mount(manifest) as m:
        for i, (img, want) in enumerate(cases):
            p = m.path(f"img{i}")
            check_eq(os.stat(p).st_size, want, f"size of {img}")
            check_eq(len(harness.read_whole(p)), want, f"bytes readable from {img}")
    with t.mount(t.path("h")) as m:
        check_eq(os.stat(m.path("h")).st_size, 512, "single image of 600 bytes")


def check_fsync_direct(t, direct_io):
    backing = t.path("backing.img")
    make_image(backing, 8 * MiB)
    manifest = t.write_manifest([{"name": "img", "path": backing, "offset": "1MiB",
                                  "direct_io": direct_io}])
    with t.mount(manifest) as m:
        for i, (pos, n) in enumerate(((8192, 64 * KiB), (1 * MiB + 513, 5000),
                                      (7 * MiB - 4096, 4096))):
            data = pattern(n, 40 + i)
            fd = os.open(m.path("img"), os.O_WRONLY)
            try:
                check_eq(os.pwrite(fd, data, pos), n, "pwrite")
                if i % 2:
                    os.fdatasync(fd)
                else:
                    os.fsync(fd)
            finally:
                os.close(fd)
            a0 = (MiB + pos) // 4096 * 4096
            a1 = (MiB + pos + n + 4095) // 4096 * 4096
            got = read_direct(backing, a0, a1 - a0)
            check_bytes(got[MiB + pos - a0:MiB + pos - a0 + n], data,
                        f"O_DIRECT read of the backing file after fsync ({pos}, {n})")


def test_fsync_then_direct_read_of_backing(t):
    check_fsync_direct(t, direct_io=False)


def test_fsync_then_direct_read_of_backing_direct_io(t):
    check_fsync_direct(t, direct_io=True)


@timeout(120)
def test_direct_io_unaligned_requests(t):
    # The window starts mid-block and the backing file ends mid-block, so head,
    # tail and last-block paths all get used.
    off = 3 * 4096 + 777
    size = 256 * KiB + 512
    tail = 700
    backing = t.path("backing.img")
    head_data, win_data, tail_data = pattern(off, 11), pattern(size, 12), pattern(tail, 13)
    make_image(backing, off + size + tail,
               [(0, head_data), (off, win_data), (off + size, tail_data)])
    manifest = t.write_manifest([{"name": "dio", "path": backing, "offset": off,
                                  "size_limit": size, "direct_io": True,
                                  "discard": True}])
    model = bytearray(win_data)
    rng = random.Random(2024)
    with t.mount(manifest) as m:
        check_eq(os.stat(m.path("dio")).st_size, size, "exported size")
        fd = os.open(m.path("dio"), os.O_RDWR)
        try:
            for step in range(600):
                kind = rng.random()
                pos = rng.randrange(0, size)
                n = rng.choice([1, 2, 3, 511, 513, 4095, 4097, rng.randrange(1, 20000)])
                if kind < 0.45:
                    data = rng.randbytes(n)
                    got = os.pwrite(fd, data, pos)
                    want = min(n, size - pos)
                    check_eq(got, want, f"step {step}: pwrite({pos}, {n})")
                    model[pos:pos + want] = data[:want]
                elif kind < 0.5:
                    n = min(n, size - pos)
                    fallocate(fd, PUNCH if step % 2 else ZERO_KEEP, pos, n)
                    model[pos:pos + n] = bytes(n)
                else:
                    check_bytes(os.pread(fd, n, pos), bytes(model[pos:pos + n]),
                                f"step {step}: pread({pos}, {n})")
            os.fsync(fd)
        finally:
            os.close(fd)
        check_bytes(harness.read_whole(m.path("dio")), model, "whole image")
        check_bytes(file_pread(backing, off, size), model, "backing window")
        check_bytes(file_pread(backing, 0, off), head_data, "bytes before the offset")
        check_bytes(file_pread(backing, off + size, tail + 10), tail_data,
                    "bytes after the window")
        check_eq(os.path.getsize(backing), off + size + tail, "backing size")


@timeout(120)
def test_direct_io_concurrent_writes_share_blocks(t):
    """Threads write interleaved, disjoint small pieces of the same blocks: a
    read-modify-write that is not serialized would lose some of them."""
    backing = t.path("backing.img")
    off = 1000
    make_image(backing, off + 64 * KiB + 1000, [(0, pattern(off, 21))])
    manifest = t.write_manifest([{"name": "dio", "path": backing, "offset": off,
                                  "size_limit": "64KiB", "direct_io": True}])
    piece, nthreads, rounds = 100, 8, 40
    model = bytearray(64 * KiB)
    plans = []
    for th in range(nthreads):
        plan = []
        for r in range(rounds):
            pos = (r * nthreads + th) * piece
            if pos + piece <= len(model):
                data = pattern(piece, 1000 * th + r)
                plan.append((pos, data))
                model[pos:pos + piece] = data
        plans.append(plan)
    with t.mount(manifest) as m:
        errors = []

        def worker(plan):
            try:
                fd = os.open(m.path("dio"), os.O_WRONLY)
                try:
                    for pos, data in plan:
                        pwrite_all(fd, data, pos)
                finally:
                    os.close(fd)
            except Exception as e:
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(p,)) for p in plans]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        check(not errors, f"writers failed: {errors}")
        check_bytes(harness.read_whole(m.path("dio")), model, "image after concurrent writes")
        check_bytes(file_pread(backing, off, 64 * KiB), model, "backing after concurrent writes")
        check_bytes(file_pread(backing, 0, off), pattern(off, 21), "bytes before the offset")


WRITER = r"""
import os, sys, random
path, pos, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = random.Random(seed).randbytes(n)
fd = os.open(path, os.O_WRONLY)
done = 0
while done < n:
    done += os.pwrite(fd, data[done:], pos + done)
os.fsync(fd)
os.close(fd)
print(open("/proc/self/cgroup").read())
"""


def test_writes_from_child_cgroups_land(t):
    manifest, backing = windowed_image(t)
    model = bytearray(WIN_DATA)
    cg = t.cgroup()
    kids = [cg.child("a"), cg.child("b"), cg.child("c")]
    with t.mount(manifest) as m:
        procs = []
        for i, kid in enumerate(kids):
            pos, n = i * 300 * KiB + 7, 200 * KiB + i
            model[pos:pos + n] = pattern(n, 500 + i)
            procs.append((kid, cg.popen(kid, [sys.executable, "-c", WRITER, m.path("win"),
                                              str(pos), str(n), str(500 + i)],
                                        stdout=harness.subprocess.PIPE,
                                        stderr=harness.subprocess.PIPE, text=True)))
        for kid, p in procs:
            out, err = p.communicate(timeout=60)
            check_eq(p.returncode, 0, f"writer in {kid}: exit status ({err})")
            check(f"0::{cg.rel(kid)}" in out, f"writer ran in {out!r}, want {cg.rel(kid)}")
        check_window(m, backing, model, "after writes from child cgroups")


if __name__ == "__main__":
    harness.main()
