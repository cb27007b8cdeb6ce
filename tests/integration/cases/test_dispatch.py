#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Per-cgroup dispatch for real: attribution, isolation (with a backing store
that stalls on purpose, and dispatch=single showing the failure), parallelism
within a cgroup, reaping, the worker cap, churn bounds, shutdown with stalled
requests, and the control socket's defences."""

import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import (  # noqa: E402
    MiB, Gate, check, check_eq, ctl_mount, daemon_rss_kib, daemon_threads, expected_pattern,
    finish_io, run_io, start_io, stats_by_path, wait_arrived, workers_by_path)

CGLOOPCTL = harness.CGLOOPCTL


# --------------------------------------------------------------------------
# tests

def test_attribution_three_cgroups(t):
    """I/O from three cgroups makes three workers, and stats gives each its bytes exactly."""
    img = t.path("a.img")
    harness.make_sparse(img, 64 * MiB)
    cg = t.cgroup()
    kids = [cg.child(n) for n in ("one", "two", "three")]
    plan = {  # child: (bytes written, bytes read)
        kids[0]: (3 * MiB, 1 * MiB),
        kids[1]: (1 * MiB + 4096, 5 * MiB),
        kids[2]: (512 * 1024, 2 * MiB + 512),
    }
    with t.mount(img) as m:
        f = m.path("a.img")
        for i, (kid, (w, r)) in enumerate(plan.items()):
            check(run_io(cg, kid, f, "write", i * 16 * MiB, w, seed=i)["ok"], "write failed")
            check(run_io(cg, kid, f, "read", i * 16 * MiB, r)["ok"], "read failed")
        workers = workers_by_path(m.mnt)
        stats = stats_by_path(m.mnt)
        for kid, (w, r) in plan.items():
            rel = cg.rel(kid)
            check(rel in workers, f"no worker for {rel}: {sorted(workers)}")
            s = stats.get(rel)
            check(s is not None, f"no stats for {rel}")
            check_eq(s["bytes_written"], w, f"{rel} bytes_written")
            check_eq(s["bytes_read"], r, f"{rel} bytes_read")
            check_eq(s["errors"], 0, f"{rel} errors")
        check_eq(len([p for p in workers if p.startswith("/" + cg.name)]), 3, "workers")
        # And the data each one wrote is where it should be.
        with open(img, "rb") as b:
            for i, (kid, (w, r)) in enumerate(plan.items()):
                b.seek(i * 16 * MiB)
                harness.check_bytes(b.read(w), expected_pattern(i * 16 * MiB, w, i),
                                    f"data of {cg.rel(kid)}")


def _isolation(t, dispatch, stalled_op):
    """Cgroup A floods stalled requests (reads or writes past the gate); cgroup B then
    reads and writes the same image below the gate. Returns B's result (or None when
    B did not finish while the gate was closed) and checks everything completes once
    the gate opens."""
    depth = 2
    gate = Gate(t, 64 * MiB, 32 * MiB)
    cg = t.cgroup()
    a, b = cg.child("a"), cg.child("b")
    with t.mount(gate.disk, opts=f"dispatch={dispatch},worker_depth={depth}") as m:
        f = m.path("disk")
        with gate.held():
            # Four stalled requests from A: more than the depth of a worker (and of
            # the single queue), all in one cgroup.
            stalled = [start_io(cg, a, f, stalled_op, 40 * MiB + i * MiB, 4096, seed=7)
                       for i in range(4)]
            wait_arrived(m.mnt, cg.rel(a) if dispatch == "cgroup" else None, 4)
            time.sleep(0.2)
            t0 = time.monotonic()
            pb_w = start_io(cg, b, f, "write", 1 * MiB, 64 * 1024, seed=3)
            pb_r = start_io(cg, b, f, "read", 2 * MiB, 64 * 1024)
            done = harness.wait_for(lambda: pb_w.poll() is not None and
                                    pb_r.poll() is not None, 3.0, 0.01)
            b_time = time.monotonic() - t0 if done else None
            for p in stalled:
                check(p.poll() is None,
                      f"a stalled {stalled_op} of A finished with the gate closed")
        rb_w, rb_r = finish_io(pb_w), finish_io(pb_r)
        check(rb_w["ok"] and rb_r["ok"], f"B failed: {rb_w} {rb_r}")
        for p in stalled:
            r = finish_io(p)
            check(r["ok"], f"A's {stalled_op} failed after the gate opened: {r}")
        with open(gate.backing, "rb") as bk:
            bk.seek(1 * MiB)
            harness.check_bytes(bk.read(64 * 1024), expected_pattern(1 * MiB, 64 * 1024, 3),
                                "B's write")
            if stalled_op == "write":
                for i in range(4):
                    bk.seek(40 * MiB + i * MiB)
                    harness.check_bytes(bk.read(4096),
                                        expected_pattern(40 * MiB + i * MiB, 4096, 7),
                                        "A's write")
    return b_time


@harness.timeout(60)
def test_isolation_stalled_reads(t):
    """While A's reads are stalled, B's reads and writes to the same image go on."""
    b_time = _isolation(t, "cgroup", "read")
    check(b_time is not None and b_time < 2.0,
          f"B took {b_time} s while A's reads were stalled (want prompt)")


@harness.timeout(60)
def test_isolation_stalled_writes(t):
    """While A's writes are stalled, B's reads and writes to the same image go on
    (parallel direct writes: no inode lock between them)."""
    b_time = _isolation(t, "cgroup", "write")
    check(b_time is not None and b_time < 2.0,
          f"B took {b_time} s while A's writes were stalled (want prompt)")


@harness.timeout(60)
def test_single_queue_is_held_up_by_stalled_reads(t):
    """dispatch=single: the same scene holds B up, so the isolation tests can fail."""
    b_time = _isolation(t, "single", "read")
    check(b_time is None, f"B finished in {b_time} s under dispatch=single: the test "
                          f"cannot tell isolation from luck")


@harness.timeout(60)
def test_single_queue_is_held_up_by_stalled_writes(t):
    b_time = _isolation(t, "single", "write")
    check(b_time is None, f"B finished in {b_time} s under dispatch=single")


@harness.timeout(60)
def test_reused_pid_in_another_cgroup_is_attributed_to_it(t):
    """A caller's tid reused by a process of another cgroup (forced through
    ns_last_pid) is attributed to the new cgroup: nothing about a dead thread is
    trusted."""
    img = t.path("p.img")
    harness.make_sparse(img, 16 * MiB)
    cg = t.cgroup()
    a, b = cg.child("a"), cg.child("b")
    with t.mount(img) as m:
        f = m.path("p.img")
        p1 = start_io(cg, a, f, "read", 0, 2 * MiB, chunk=4096)
        pid = p1.pid
        check(finish_io(p1)["ok"], "first read")
        p2 = None
        for _ in range(50):
            with open("/proc/sys/kernel/ns_last_pid", "w") as nl:
                nl.write(str(pid - 1))
            p2 = start_io(cg, b, f, "read", 0, 1 * MiB, chunk=4096)
            if p2.pid == pid:
                break
            finish_io(p2)
            p2 = None
        check(p2 is not None, f"could not get pid {pid} again")
        check(finish_io(p2)["ok"], "second read")
        stats = stats_by_path(m.mnt)
        check_eq(stats[cg.rel(a)]["bytes_read"], 2 * MiB, "bytes read by the first owner")
        check_eq(stats[cg.rel(b)]["bytes_read"], 1 * MiB,
                 "bytes read by the pid's second owner (another cgroup)")


@harness.timeout(60)
def test_parallel_requests_within_a_cgroup(t):
    """worker_depth=3: three stalled requests of one cgroup are in flight at once, on
    three threads of the daemon (charge=none) or in the cgroup's worker process, whose
    threads the daemon does not need (charge=cgroup)."""
    gate = Gate(t, 64 * MiB, 32 * MiB)
    cg = t.cgroup()
    for charge in ("none", "cgroup"):
        a = cg.child("a-" + charge)
        with t.mount(gate.disk, opts=f"worker_depth=3,charge={charge}") as m:
            with gate.held():
                ps = [start_io(cg, a, m.path("disk"), "read", 40 * MiB + i * MiB, 4096)
                      for i in range(5)]
                wait_arrived(m.mnt, cg.rel(a), 5)
                w = workers_by_path(m.mnt)[cg.rel(a)]
                check_eq(w["in_flight"], 3, "in flight (the depth)")
                check_eq(w["queued"], 2, "queued behind them")
                check_eq(w["charged"], charge == "cgroup", "charged")
                check_eq(w["threads"], 3 if charge == "none" else 1, "the daemon's threads")
                check_eq(w["state"], "active", "state")
            for p in ps:
                check(finish_io(p)["ok"], "a read failed")


@harness.timeout(90)
def test_reaping_and_racing_requests(t):
    """idle_timeout=1: the worker goes after its cgroup goes quiet and comes back on the
    next request; requests racing with reaping are never lost."""
    img = t.path("r.img")
    harness.make_sparse(img, 16 * MiB)
    cg = t.cgroup()
    a = cg.child("a")
    with t.mount(img, opts="idle_timeout=1") as m:
        f = m.path("r.img")
        rel = cg.rel(a)
        check(run_io(cg, a, f, "write", 0, 4096, seed=1)["ok"], "write")
        check(rel in workers_by_path(m.mnt), "no worker after I/O")
        check(harness.wait_for(lambda: rel not in workers_by_path(m.mnt), 5, 0.1),
              "the worker was not reaped within 5 s of an idle_timeout of 1 s")
        check(ctl_mount(m.mnt, "stats")["workers_reaped"] >= 1, "workers_reaped not counted")
        check(run_io(cg, a, f, "read", 0, 4096)["ok"], "read after reaping")
        check(rel in workers_by_path(m.mnt), "no new worker after reaping")
        # One long-lived process in the cgroup issues requests spaced around the
        # idle timeout, so some land while the reaper decides.
        prog = r"""
import os, random, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
random.seed(5)
for i in range(12):
    time.sleep(random.uniform(0.85, 1.35))
    data = bytes([i + 1]) * 4096
    t0 = time.monotonic()
    assert os.pwrite(fd, data, i * 4096) == 4096
    assert os.pread(fd, 4096, i * 4096) == data
    assert time.monotonic() - t0 < 2.0, "a request took too long"
print("ok", flush=True)
"""
        r = cg.run(a, [sys.executable, "-c", prog, f], timeout=60)
        check_eq(r.stdout.strip(), "ok", "racing requests")
        s = stats_by_path(m.mnt)[rel]
        check_eq(s["errors"], 0, "errors")
        check(ctl_mount(m.mnt, "stats")["workers_reaped"] >= 2, "no reaping happened during the race")
    with open(img, "rb") as b:
        for i in range(12):
            b.seek(i * 4096)
            harness.check_bytes(b.read(4096), bytes([i + 1]) * 4096, f"block {i}")


@harness.timeout(60)
def test_worker_cap_sends_the_rest_to_the_root_queue(t):
    """max_workers=2 and five cgroups doing I/O: two workers, the rest served by the root
    queue, every byte right, no errors."""
    img = t.path("c.img")
    harness.make_sparse(img, 64 * MiB)
    cg = t.cgroup()
    kids = [cg.child(f"k{i}") for i in range(5)]
    with t.mount(img, opts="max_workers=2,idle_timeout=60") as m:
        f = m.path("c.img")
        ps = [start_io(cg, k, f, "write", i * 8 * MiB, 2 * MiB, seed=i) for i, k in enumerate(kids)]
        for p in ps:
            check(finish_io(p)["ok"], "a write failed")
        ps = [start_io(cg, k, f, "read", i * 8 * MiB, 2 * MiB) for i, k in enumerate(kids)]
        for p in ps:
            check(finish_io(p)["ok"], "a read failed")
        workers = [w for w in ctl_mount(m.mnt, "workers") if not w["root"]]
        check_eq(len(workers), 2, "per-cgroup workers")
        st = ctl_mount(m.mnt, "stats")
        check(st["root_fallbacks"] > 0, "nothing went to the root queue")
        check(all(s["errors"] == 0 for s in st["cgroups"]), f"errors: {st}")
        for s in st["cgroups"]:
            ops = s["reads"] + s["writes"] + s["syncs"] + s["discards"]
            in_buckets = sum(n for _, n in s["latency_buckets"])
            check(in_buckets >= ops, f"{s['cgroup']}: {ops} requests, {in_buckets} in the histogram")
            uppers = [u for u, _ in s["latency_buckets"]]
            check_eq(uppers, sorted(set(uppers)), "bucket bounds ascending")
            check(s["queued"] >= 0 and s["in_flight"] >= 0, "queued and in_flight present")
        root = [w for w in ctl_mount(m.mnt, "workers") if w["root"]][0]
        check(root["served"] > 0, "the root queue served nothing")
    with open(img, "rb") as b:
        for i in range(5):
            b.seek(i * 8 * MiB)
            harness.check_bytes(b.read(2 * MiB), expected_pattern(i * 8 * MiB, 2 * MiB, i),
                                f"cgroup k{i}")


def root_threads(mnt):
    return [w for w in ctl_mount(mnt, "workers") if w["root"]][0]["threads"]


@harness.timeout(120)
def test_churn_keeps_threads_and_memory_bounded(t):
    """Hundreds of short-lived cgroups, one after another: threads and memory stay
    bounded and drop back once the workers are reaped."""
    img = t.path("ch.img")
    harness.make_sparse(img, 16 * MiB)
    cg = t.cgroup()
    with t.mount(img, opts="idle_timeout=1,max_workers=32,worker_depth=2",
                 env=harness.small_quarantine_env()) as m:
        f = m.path("ch.img")
        # Warm up: the root queue, the reaper, the pools.
        kid = cg.child("warm")
        cg.run(kid, ["dd", f"if={f}", "of=/dev/null", "bs=64k", "count=16", "status=none"])
        check(harness.wait_for(lambda: not workers_by_path(m.mnt), 5, 0.1), "warm-up worker")
        base_threads = daemon_threads(m.pid)
        base_root = root_threads(m.mnt)
        base_rss = daemon_rss_kib(m.pid)
        peak_threads = base_threads
        n = 300
        for i in range(n):
            kid = cg.child(f"c{i}")
            cg.run(kid, ["dd", f"if=/dev/zero", f"of={f}", "bs=64k", "count=2",
                         f"seek={i % 100}", "conv=notrunc", "status=none"])
            cg.remove(kid)
            if i % 10 == 0:
                peak_threads = max(peak_threads, daemon_threads(m.pid))
        peak_threads = max(peak_threads, daemon_threads(m.pid))
        # The cap bounds the threads: 32 workers of at most 2 threads, the root queue's
        # second thread, a reaped worker still being joined, plus the fixed ones.
        check(peak_threads <= base_threads + 32 * 2 + 3,
              f"threads peaked at {peak_threads} (baseline {base_threads})")
        check(harness.wait_for(lambda: not workers_by_path(m.mnt), 10, 0.2),
              f"workers not reaped: {list(workers_by_path(m.mnt))[:5]}")
        # Every worker's threads went with it. The root queue keeps the threads it
        # made (at most worker_depth): a second one when two of the requests the cap
        # sent it came at once.
        def others():
            return daemon_threads(m.pid) - root_threads(m.mnt)
        check(harness.wait_for(lambda: others() <= base_threads - base_root, 5, 0.1),
              f"threads did not drop back: {others()} > {base_threads - base_root} "
              "besides the root queue's")
        check(root_threads(m.mnt) <= 2, f"the root queue has {root_threads(m.mnt)} threads")
        rss = daemon_rss_kib(m.pid)
        check(rss <= base_rss + 32 * 1024,
              f"memory grew from {base_rss} KiB to {rss} KiB after {n} cgroups")
        st = ctl_mount(m.mnt, "stats")
        # Each cgroup got a worker, or (the cap reached) the root queue.
        check(st["workers_created"] >= 32, f"only {st['workers_created']} workers made")
        check(st["workers_created"] >= n or st["root_fallbacks"] > 0,
              f"{n} cgroups, {st['workers_created']} workers, no root fallbacks")
        print(f"# churn: threads base {base_threads} peak {peak_threads}, the root "
              f"queue's {base_root} -> {root_threads(m.mnt)}, rss {base_rss} -> {rss} KiB")


def outputs_after_sigterm(procs, t0, within, m):
    """harness.outputs_within() of SIGTERM to the daemon of `m`."""
    return harness.outputs_within(procs, t0, within, "SIGTERM",
                                  lambda: f"\n(daemon exited: {m.proc.poll() is not None})")


@harness.timeout(90)
def test_sigterm_with_stalled_and_queued_requests(t):
    """SIGTERM while requests are stalled in backing I/O and more are queued behind
    them: within the grace period every caller gets an answer and the mount is gone.
    The daemon's threads stuck in the backing store's kernel requests cannot die
    before it answers (not even with SIGKILL); once it moves, the daemon exits 0."""
    gate = Gate(t, 64 * MiB, 32 * MiB)
    cg = t.cgroup()
    a = cg.child("a")
    m = t.mount(gate.disk, opts="worker_depth=2", expect_exit=0,
                allow_stderr=r"answered with EIO")
    with m, gate.held():
        ps = [start_io(cg, a, m.path("disk"), op, 40 * MiB + i * MiB, 4096, seed=2)
              for i, op in enumerate(["read", "write", "read", "write", "read"])]
        wait_arrived(m.mnt, cg.rel(a), 5)
        check_eq(workers_by_path(m.mnt)[cg.rel(a)]["queued"], 3, "queued")
        t0 = time.monotonic()
        m.signal(signal.SIGTERM)
        results = [json.loads(out) for out in outputs_after_sigterm(ps, t0, 15, m)]
        answered = time.monotonic() - t0
        check(answered < 12, f"callers answered only after {answered:.1f} s")
        check(all(not r["ok"] and r["errno"] == 5 for r in results),
              f"stalled and queued callers should get EIO: {results}")
        check(harness.wait_for(lambda: not harness.is_mounted(m.mnt), 5, 0.05),
              "still mounted after the grace period")
        gate.open()
        rc = m.wait_exit(15)
        check_eq(rc, 0, "exit status")
        print(f"# SIGTERM with stalled requests: callers answered after {answered:.1f} s")
    check("answered with EIO" in m.stderr(), "the stuck requests were not reported")


# Opens and closes a file until an open fails (the mount is gone) or the time is up.
OPEN_CLOSE_PROG = r"""
import json, os, sys, time
path, end = sys.argv[1], time.monotonic() + float(sys.argv[2])
n, err = 0, 0
while time.monotonic() < end:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        err = e.errno
        break
    try:
        os.close(fd)
    except OSError:
        pass
    n += 1
print(json.dumps({"opens": n, "errno": err}), flush=True)
"""


@harness.timeout(90)
def test_sigterm_leaves_no_caller_hanging(t):
    """SIGTERM while requests are stalled in two cgroups' worker processes: A, which
    then empties (its worker process leaves), and C, which lives on; meanwhile B's
    callers open and close the file without a pause, and one keeps it open. Every
    caller is answered: those that come as the daemon stops reading /dev/fuse
    (libfuse drops a request it reads once the session is marked ended: a close so
    caught hung until the stalled store moved), and a read on the file kept open,
    made after the daemon exited, fails at once (ENOTCONN, as when any FUSE file
    system's daemon is gone) rather than hanging while the worker processes, stuck
    in the store, held the connection (A's waiting in its leaving, C's after it
    ended)."""
    gate = Gate(t, 64 * MiB, 32 * MiB)
    cg = t.cgroup()
    a, b, c = cg.child("a"), cg.child("b"), cg.child("c")
    m = t.mount(gate.disk, opts="worker_depth=2", expect_exit=0,
                allow_stderr=r"answered with EIO")
    with m, gate.held():
        cg.popen(c, ["sleep", "60"])
        stalled = [start_io(cg, g, m.path("disk"), "read", 40 * MiB + i * MiB, 4096)
                   for g in (a, c) for i in range(2)]
        wait_arrived(m.mnt, cg.rel(a), 2)
        wait_arrived(m.mnt, cg.rel(c), 2)
        holder = harness.Holder(lambda cmd, **kw: cg.popen(b, cmd, **kw), m.path("disk"))
        check(holder.read(10)["ok"], "a read before SIGTERM failed")
        loopers = [cg.popen(b, [sys.executable, "-c", OPEN_CLOSE_PROG, m.path("disk"), "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for _ in range(8)]
        time.sleep(0.5)
        hosts = [w["pid"] for w in workers_by_path(m.mnt).values() if w.get("pid")]
        t0 = time.monotonic()
        m.signal(signal.SIGTERM)
        outs = outputs_after_sigterm(stalled + loopers, t0, 15, m)
        check(all(not json.loads(o)["ok"] for o in outs[:4]), "a stalled read succeeded")
        check_eq(m.wait_exit(20), 0, "exit status")
        t1 = time.monotonic()
        r = holder.read(5, lambda: "\nthe worker processes:\n"
                        + "\n".join(harness.where_blocked(p) for p in hosts))
        check(not r["ok"] and r["errno"] in (errno.ENOTCONN, errno.ECONNABORTED),
              f"a read after the daemon exited: {r}, want ENOTCONN")
        print(f"# a read after the daemon exited failed after {time.monotonic() - t1:.2f} s")
        holder.close()


@harness.timeout(90)
def test_lazy_unmount_with_stalled_requests(t):
    """umount -l while requests are stalled: the mount goes at once; when the backing
    store moves again every request completes (writes land) and the daemon exits 0."""
    gate = Gate(t, 64 * MiB, 32 * MiB)
    cg = t.cgroup()
    a = cg.child("a")
    with t.mount(gate.disk, opts="worker_depth=2") as m:
        with gate.held():
            ps = [start_io(cg, a, m.path("disk"), "write", 40 * MiB + i * MiB, 4096, seed=4)
                  for i in range(4)]
            wait_arrived(m.mnt, cg.rel(a), 4)
            harness.run(["umount", "-l", m.mnt])
            check(not harness.is_mounted(m.mnt), "still mounted after umount -l")
            time.sleep(0.5)
        for p in ps:
            check(finish_io(p)["ok"], "a stalled write failed")
        rc = m.wait_exit(15)
        check_eq(rc, 0, "exit status after the last close")
    with open(gate.backing, "rb") as b:
        for i in range(4):
            b.seek(40 * MiB + i * MiB)
            harness.check_bytes(b.read(4096), expected_pattern(40 * MiB + i * MiB, 4096, 4),
                                "a write made during the lazy unmount")


def _raw_exchange(path, payload, read=True):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    try:
        s.sendall(payload)
        if not read:
            return b""
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


@harness.timeout(60)
def test_control_socket_defences(t):
    """Garbage, truncated, oversized and wrong-version messages get an error reply and
    the daemon keeps serving; another uid is refused."""
    img = t.path("s.img")
    harness.make_sparse(img, 1 * MiB)
    sockdir = t.mkdir("ctl", mode=0o755)
    sock = os.path.join(sockdir, "c.sock")
    with t.mount(img, opts=f"control={sock}") as m:
        st = os.stat(sock)
        check(stat.S_ISSOCK(st.st_mode), "not a socket")
        check_eq(stat.S_IMODE(st.st_mode), 0o600, "socket mode")
        good = json.dumps({"version": 1, "command": "status"}).encode() + b"\n"
        cases = {
            "garbage": b"\x00\xff garbage\n",
            "not an object": b"[1,2,3]\n",
            "no version": b'{"command": "status"}\n',
            "wrong version": b'{"version": 99, "command": "status"}\n',
            "unknown command": b'{"version": 1, "command": "launch"}\n',
            "bad args": b'{"version": 1, "command": "status", "args": 5}\n',
            "oversized": b'{"version": 1, "command": "' + b"x" * (100 * 1024) + b'"}\n',
        }
        for what, payload in cases.items():
            reply = _raw_exchange(sock, payload)
            check(reply, f"{what}: no reply")
            r = json.loads(reply)
            check(r.get("ok") is False and r.get("error"), f"{what}: reply {r}")
        # Truncated: half a message, then the client goes away.
        _raw_exchange(sock, good[:10], read=False)
        # Still serving, through cgloopctl finding the socket from the mount point.
        r = json.loads(_raw_exchange(sock, good))
        check(r["ok"] and r["result"]["images"] == 1, f"status after garbage: {r}")
        check_eq(ctl_mount(m.mnt, "status")["images"], 1, "status via the mount point")
        # Another uid: the socket file itself keeps it out...
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            CGLOOPCTL, "--socket", sock, "workers"],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 1 and "permission denied" in r.stderr.lower(),
              f"uid 65534 via the socket file: {r.returncode} {r.stderr!r}")
        # ...and with the file opened up, SO_PEERCRED still does.
        os.chmod(sock, 0o666)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            CGLOOPCTL, "--socket", sock, "workers"],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 1 and "uid 65534" in r.stderr,
              f"uid 65534 past the file mode: {r.returncode} {r.stderr!r}")
        check_eq(ctl_mount(m.mnt, "status")["images"], 1, "status at the end")
    check(not os.path.exists(sock), "the socket was not removed at exit")


def test_cgloopctl_tables_and_errors(t):
    """The human tables have their columns; a missing daemon is reported clearly."""
    img = t.path("h.img")
    harness.make_sparse(img, 4 * MiB)
    cg = t.cgroup()
    a = cg.child("a")
    with t.mount(img, opts="charge=cgroup") as m:
        # A process that stays in the cgroup: a charged worker process stays with it.
        holder = cg.popen(a, ["sleep", "60"])
        run_io(cg, a, m.path("h.img"), "write", 0, 65536)
        r = ctl_mount(m.mnt, "workers", json_out=False)
        lines = r.stdout.splitlines()
        check(lines[0].split() == ["CGROUP", "CGROUP-ID", "UNIT", "MACHINE", "STATE", "QUEUED",
                                   "INFLIGHT", "THREADS", "PID", "CHARGED", "SERVED", "IDLE"],
              f"header {lines[0]!r}")
        check(any(ln.startswith("(root queue)") for ln in lines), "no root queue row")
        row = [ln.split() for ln in lines if ln.startswith(cg.rel(a))]
        check(len(row) == 1, "no row for the cgroup")
        # charge=cgroup: its worker is a process, shown with its pid.
        check(row[0][8].isdigit() and row[0][9] == "yes", f"row {row[0]}")
        r = ctl_mount(m.mnt, "stats", json_out=False)
        check("P99" in r.stdout.splitlines()[0], "stats header")
        holder.kill()
        holder.wait()
    r = subprocess.run([CGLOOPCTL, "workers", m.mnt], capture_output=True, text=True)
    check(r.returncode == 1 and "not a cgloopfs mount point" in r.stderr,
          f"unmounted: {r.returncode} {r.stderr!r}")
    r = subprocess.run([CGLOOPCTL, "frobnicate"], capture_output=True, text=True)
    check(r.returncode == 2 and "unknown command" in r.stderr, f"usage: {r.stderr!r}")


if __name__ == "__main__":
    harness.main()
