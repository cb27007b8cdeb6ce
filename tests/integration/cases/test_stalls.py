#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Stalls and killability, with a backing store that stalls on purpose
(gatefs): a killed caller exits within about two seconds, an interrupted
write that had not started never reaches the backing file, request_timeout
turns a stalled request into EIO for its caller alone (also under the
kernel's own FUSE request timeout), and stalled writeback, RELEASE and many
stalled asynchronous requests hold up nobody else."""

import errno
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import (  # noqa: E402
    MiB, Gate, check, check_eq, ctl_mount, finish_io, start_io, wait_arrived, workers_by_path)

KERNEL_TIMEOUT = "/proc/sys/fs/fuse/default_request_timeout"


def killed_within(p, limit):
    """SIGKILL `p`; seconds until it is gone (fails past `limit`)."""
    t0 = time.monotonic()
    p.kill()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        raise harness.TestFailure("a killed caller is still blocked after 10 s")
    took = time.monotonic() - t0
    check(took <= limit, f"a killed caller took {took:.2f} s to exit (limit {limit} s)")
    return took


def stalled_scene(t):
    """gatefs over a 64 MiB file (I/O past 32 MiB waits while the gate is closed),
    and a test cgroup with children a and b."""
    gate = Gate(t, 64 * MiB, 32 * MiB)
    cg = t.cgroup()
    return gate, cg, cg.child("a"), cg.child("b")


def totals(mnt):
    return ctl_mount(mnt, "stats")


def b_io_works(cg, b, f, limit=2.0):
    """Cgroup B writes and reads below the gate, within `limit` seconds."""
    t0 = time.monotonic()
    w = finish_io(start_io(cg, b, f, "write", 1 * MiB, 64 * 1024, seed=5), timeout=limit + 5)
    r = finish_io(start_io(cg, b, f, "read", 2 * MiB, 64 * 1024), timeout=limit + 5)
    took = time.monotonic() - t0
    check(w["ok"] and r["ok"], f"B's I/O failed: {w} {r}")
    check(took < limit, f"B's I/O took {took:.2f} s while A was stalled")
    return took


@harness.timeout(90)
def test_killed_reader_and_writer_exit_within_two_seconds(t):
    gate, cg, a, b = stalled_scene(t)
    with t.mount(gate.disk) as m:
        f = m.path("disk")
        with gate.held():
            reader = start_io(cg, a, f, "read", 40 * MiB, 4096)
            writer = start_io(cg, a, f, "write", 41 * MiB, 4096, seed=9)
            wait_arrived(m.mnt, cg.rel(a), 2)
            time.sleep(0.3)
            check(reader.poll() is None and writer.poll() is None,
                  "A's I/O finished with the gate closed")
            r_took = killed_within(reader, 2.5)
            w_took = killed_within(writer, 2.5)
            print(f"# " + f"killed reader exited in {r_took:.2f} s, writer in {w_took:.2f} s")
            check(totals(m.mnt)["interrupted"] >= 1,
                  f"the running write was not answered EINTR: {totals(m.mnt)}")
            # The stuck worker threads hold up nobody else.
            b_io_works(cg, b, f)
        # The late completions are dropped without a second answer; the daemon serves on.
        check(harness.wait_for(lambda: workers_by_path(m.mnt)[cg.rel(a)]["in_flight"] == 0,
                               10), "A's stalled requests never finished after the gate opened")
        check(m.proc.poll() is None, "the daemon died")
        r = finish_io(start_io(cg, a, f, "read", 40 * MiB, 4096))
        check(r["ok"], f"A's read after the gate opened: {r}")


@harness.timeout(90)
def test_interrupted_queued_write_never_reaches_the_backing_file(t):
    """worker_depth=1: A's stalled read holds the worker's only thread; A's write
    below the gate waits in the queue; the writer is killed; once the gate opens
    the write must not run."""
    gate = Gate(t, 64 * MiB, 32 * MiB)
    cg = t.cgroup()
    a = cg.child("a")
    with t.mount(gate.disk, opts="worker_depth=1") as m:
        f = m.path("disk")
        with gate.held():
            reader = start_io(cg, a, f, "read", 40 * MiB, 4096)
            wait_arrived(m.mnt, cg.rel(a), 1)
            writer = start_io(cg, a, f, "write", 5 * MiB, 64 * 1024, seed=11)
            wait_arrived(m.mnt, cg.rel(a), 2)
            check_eq(workers_by_path(m.mnt)[cg.rel(a)]["queued"], 1, "the write is queued")
            killed_within(writer, 1.0)
        check(finish_io(reader)["ok"], "A's read after the gate opened")
        check(harness.wait_for(lambda: workers_by_path(m.mnt)[cg.rel(a)]["queued"] == 0, 5),
              "the interrupted write is still queued")
        time.sleep(0.3)
        with open(gate.backing, "rb") as bk:
            bk.seek(5 * MiB)
            harness.check_bytes(bk.read(64 * 1024), bytes(64 * 1024),
                                "backing file where the interrupted write would have gone")


def start_signalled(cg, child, path, mode, off, *args):
    p = cg.popen(child, [sys.executable, "-c", harness.SIGNALLED_IO, path, str(off), mode,
                         *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 text=True)
    if mode != "loop":
        check_eq(p.stdout.readline().strip(), "ready", "the signalled I/O program")
    return p


@harness.timeout(120)
def test_signals_a_caller_handles_never_fail_its_io(t):
    """A caller that catches a signal (SIGALRM every 300 us, SA_RESTART), as programs with
    timers or SIGCHLD handlers do, sees its reads and writes succeed as on a regular file
    or a loop device: the kernel sends the daemon an interrupt for any signal, but only a
    caller that is being killed may be answered EINTR. Its own cgroup's worker (a process
    with charge=cgroup, threads with charge=none) and the root queue's."""
    img = t.path("sig.img")
    harness.make_sparse(img, 16 * MiB)
    cg = t.cgroup()
    a = cg.child("a")
    for opts in ("charge=cgroup", "charge=none"):
        with t.mount(img, opts=opts) as m:
            f = m.path("sig.img")
            for where, child in (("its cgroup's worker", a), ("the root queue", None)):
                if child is None:
                    p = subprocess.Popen([sys.executable, "-c", harness.SIGNALLED_IO, f, "0",
                                          "loop", "1500", str(128 * 1024)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True, start_new_session=True)
                    t.defer(lambda p=p: p.poll() is None and (p.kill(), p.wait()))
                else:
                    p = start_signalled(cg, child, f, "loop", 0, 1500, 128 * 1024)
                r = harness.finish_io(p, 60)
                print(f"# {opts}, {where}: {r}", flush=True)
                check(r["signals"] >= 100, f"too few signals came during the I/O: {r}")
                check_eq(r["eintr"], 0, f"{opts}, {where}: calls that failed with EINTR")
                check_eq(r["errors"], {}, f"{opts}, {where}: other errors")
                check_eq((r["short"], r["mismatch"]), (0, 0),
                         f"{opts}, {where}: short calls, data read back wrong")
                check_eq(r["ok"], 3000, f"{opts}, {where}: calls that did all")


@harness.timeout(90)
def test_a_signal_does_not_end_a_stalled_request_and_a_kill_still_does(t):
    """A's read and write wait on a stalled backing store; each gets a signal it
    catches (SIGUSR1). Neither is answered: both still wait after the daemon's one-second
    interrupt grace. The writer is then killed: it exits within 2.5 s (the daemon looks
    again at callers it left waiting and finds this one dying). Once the store goes on,
    the read completes with all its bytes."""
    gate, cg, a, b = stalled_scene(t)
    with t.mount(gate.disk) as m:
        f = m.path("disk")
        with gate.held():
            reader = start_signalled(cg, a, f, "read", 40 * MiB, 64 * 1024)
            writer = start_signalled(cg, a, f, "write", 41 * MiB, 64 * 1024)
            wait_arrived(m.mnt, cg.rel(a), 2)
            time.sleep(0.3)
            reader.send_signal(signal.SIGUSR1)
            writer.send_signal(signal.SIGUSR1)
            time.sleep(1.6)
            for who, p in (("read", reader), ("write", writer)):
                if p.poll() is not None:
                    raise harness.TestFailure(f"a caught signal ended a stalled {who}: "
                                              f"{p.stdout.read().strip()}")
            took = killed_within(writer, 2.5)
            print(f"# the signalled writer, killed, exited in {took:.2f} s", flush=True)
            b_io_works(cg, b, f)
        r = harness.finish_io(reader, 30)
        check_eq((r["value"], r["eintr"], r["signals"]), (64 * 1024, 0, 1),
                 f"the signalled read once the store went on: {r}")
        check(m.proc.poll() is None, "the daemon died")


def _timeout_case(t, opts, want_s, kernel_timeout=None):
    gate, cg, a, b = stalled_scene(t)
    if kernel_timeout is not None:
        with open(KERNEL_TIMEOUT) as f:
            old = f.read().strip()
        t.defer(lambda: open(KERNEL_TIMEOUT, "w").write(old))
        with open(KERNEL_TIMEOUT, "w") as f:
            f.write(str(kernel_timeout))
    with t.mount(gate.disk, opts=opts) as m:
        if kernel_timeout is not None:
            # The connection takes the kernel's timeout when it is made: put it back now.
            with open(KERNEL_TIMEOUT, "w") as f:
                f.write(old)
        f = m.path("disk")
        with gate.held():
            t0 = time.monotonic()
            reader = start_io(cg, a, f, "read", 40 * MiB, 4096)
            writer = start_io(cg, a, f, "write", 41 * MiB, 4096, seed=9)
            wait_arrived(m.mnt, cg.rel(a), 2)
            b_io_works(cg, b, f)
            rr, rw = finish_io(reader, timeout=want_s + 10), finish_io(writer, timeout=want_s + 10)
            took = time.monotonic() - t0
            check(not rr["ok"] and rr["errno"] == errno.EIO, f"stalled read: {rr}")
            check(not rw["ok"] and rw["errno"] == errno.EIO, f"stalled write: {rw}")
            check(want_s - 0.5 <= took <= want_s + 2.5,
                  f"answered after {took:.2f} s, want about {want_s} s")
            print(f"# " + f"stalled read and write answered EIO after {took:.2f} s")
            check(totals(m.mnt)["timeouts"] >= 2, f"timeouts not counted: {totals(m.mnt)}")
            # ... and counted for A, the cgroup whose requests they were (metrics export it).
            per = harness.stats_by_path(m.mnt)
            check(per[cg.rel(a)]["timeouts"] >= 2 and per[cg.rel(b)]["timeouts"] == 0,
                  f"timeouts per cgroup: A {per[cg.rel(a)]['timeouts']}, "
                  f"B {per[cg.rel(b)]['timeouts']}")
            # Everyone else, and the connection, go on.
            b_io_works(cg, b, f)
        check(harness.wait_for(lambda: workers_by_path(m.mnt)[cg.rel(a)]["in_flight"] == 0,
                               10), "A's stalled requests never finished after the gate opened")
        r = finish_io(start_io(cg, a, f, "read", 40 * MiB, 4096))
        check(r["ok"], f"A's read after the gate opened: {r}")
        check(m.proc.poll() is None, "the daemon died")
        return m


@harness.timeout(90)
def test_request_timeout_answers_eio_to_the_stalled_caller_only(t):
    _timeout_case(t, "request_timeout=2", 2)


@harness.timeout(90)
def test_request_timeout_stays_under_the_kernels_fuse_timeout(t):
    """With fs.fuse.default_request_timeout=8 the kernel would abort the whole
    connection after 8 s; the daemon answers at 4 s instead (half of it)."""
    if not os.path.exists(KERNEL_TIMEOUT):
        raise harness.TestFailure(f"{KERNEL_TIMEOUT} is missing: this kernel has no "
                                  "FUSE request timeout")
    m = _timeout_case(t, None, 4, kernel_timeout=8)
    check("request_timeout lowered from 30 to 4 s" in m.stderr(),
          f"no note of the lowered timeout: {m.stderr()!r}")


# Maps the image shared, dirties pages past the gate, then waits (mapping kept)
# until stdin closes; the kernel writes those pages back later, with no caller.
MMAP_PROG = r"""
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 8 << 20, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=40 << 20)
for i in range(0, 8 << 20, 4096):
    m[i:i + 4] = b"dirt"
print("dirty", flush=True)
sys.stdin.read()
"""


@harness.timeout(90)
def test_stalled_writeback_and_release_hold_up_nobody(t):
    """cache=kernel, worker_depth=1: A's dirty mapped pages past the gate are
    written back by the kernel's flusher (no caller cgroup). They are served by
    the opener's (A's) worker, so the shared root queue stays free: a process in
    the root cgroup still reads, closing the file does not wait for the
    writeback (FOPEN_NOFLUSH), and B opens, closes, reads and writes another
    image (on this very file the kernel itself orders B's cached writes after
    the inode's writeback)."""
    gate, cg, a, b = stalled_scene(t)
    root = harness.cgroup2_root()
    other = t.path("other.img")
    harness.make_sparse(other, 64 * MiB)
    manifest = t.write_manifest([{"name": "disk", "path": gate.disk},
                                 {"name": "other", "path": other}])
    with t.mount(manifest, opts="cache=kernel,worker_depth=1") as m:
        f = m.path("disk")
        # Dirty the pages with the gate open (the page faults read them first).
        dirtier = cg.popen(a, [sys.executable, "-c", MMAP_PROG, f], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
        t.defer(dirtier.kill)
        check_eq(dirtier.stdout.readline().strip(), "dirty", "the mapping was dirtied")
        with gate.held():
            syncer = threading.Thread(target=lambda: os.system(f"sync -f {f}"), daemon=True)
            syncer.start()
            # The writeback (no caller cgroup) queues to the opener's worker, and stalls.
            wait_arrived(m.mnt, cg.rel(a), 1)
            # A process in the root cgroup is served by the root queue.
            prog = ("import os,sys; open('/proc/self/cgroup'); "
                    f"fd=os.open({f!r}, os.O_RDONLY|os.O_DIRECT); "
                    "import mmap; b=mmap.mmap(-1, 4096); "
                    "print(os.preadv(fd, [b], 8 << 20))")

            def into_root():
                with open(os.path.join(root, "cgroup.procs"), "w") as p:
                    p.write(str(os.getpid()))
            t0 = time.monotonic()
            r = subprocess.run([sys.executable, "-c", prog], preexec_fn=into_root,
                               capture_output=True, text=True, timeout=20)
            took = time.monotonic() - t0
            check(r.returncode == 0, f"root-cgroup read failed: {r.stderr}")
            check(took < 2, f"a root-cgroup read took {took:.2f} s during stalled writeback")
            # B opens and closes (RELEASE) and reads, quickly.
            t0 = time.monotonic()
            for _ in range(20):
                os.close(os.open(f, os.O_RDONLY))
            b_io_works(cg, b, m.path("other"))
            check(time.monotonic() - t0 < 3, "opens, closes and B's I/O were held up")
            w = workers_by_path(m.mnt)[cg.rel(a)]
            check(w["in_flight"] + w["queued"] >= 1, f"A's writeback is no longer stalled: {w}")
        syncer.join(20)
        check(not syncer.is_alive(), "sync never finished after the gate opened")
        check(harness.wait_for(lambda: workers_by_path(m.mnt)[cg.rel(a)]["in_flight"] == 0,
                               10), "A's writeback never finished after the gate opened")
        dirtier.stdin.close()
        dirtier.wait(10)
        with open(gate.backing, "rb") as bk:
            bk.seek(40 * MiB)
            check_eq(bk.read(4), b"dirt", "written-back bytes")


AIO_FIO = ["fio", "--name=flood", "--ioengine=libaio", "--iodepth=256", "--direct=1",
           "--rw=randread", "--bs=4k", "--size=16M", "--offset=40M", "--number_ios=256",
           "--output=/dev/null"]


@harness.timeout(90)
def test_many_stalled_async_requests_hold_up_nobody(t):
    """A has 256 stalled libaio reads in flight, beyond the kernel's limit on
    background requests; B's reads and writes go on."""
    gate, cg, a, b = stalled_scene(t)
    with t.mount(gate.disk) as m:
        f = m.path("disk")
        with gate.held():
            flood = cg.popen(a, AIO_FIO + ["--filename=" + f], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
            t.defer(lambda: flood.poll() is None and flood.kill())
            wait_arrived(m.mnt, cg.rel(a), 32)
            time.sleep(0.5)
            w = workers_by_path(m.mnt)[cg.rel(a)]
            print(f"# " + f"A: {w['queued']} queued, {w['in_flight']} in flight")
            check(flood.poll() is None, "A's flood finished with the gate closed")
            b_io_works(cg, b, f)
        _, err = flood.communicate(timeout=30)
        check(flood.returncode == 0, f"A's flood failed after the gate opened: {err}")


if __name__ == "__main__":
    harness.main()
