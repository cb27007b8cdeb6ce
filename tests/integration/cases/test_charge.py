#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""charge=cgroup: a cgroup's I/O through the mount is charged to that cgroup.

Each cgroup worker is a process in the caller's cgroups (v2, and every v1
hierarchy on a hybrid host such as this one), which does the backing I/O and
answers the kernel. The cases check where that process lives, that the
caller's io limit, memory and CPU accounting see its I/O, and what happens
when it is killed, cannot be made, or its cgroup empties. Each property case
also runs with charge=none, where it must not hold (so the case would fail
on a build without charging).
"""
import contextlib
import os
import re
import signal
import subprocess
import time

import harness
from harness import MiB, check, check_eq, ctl_mount

# The v1 controllers a container runtime puts a container in, where this host has them.
V1_CONTROLLERS = ("blkio", "memory", "cpuacct", "cpu", "pids", "freezer")


def v1_mounts():
    """{controller: mount point} of the cgroup v1 hierarchies mounted here."""
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            r = right.split(" ")
            if r[0] != "cgroup" or len(r) < 3:
                continue
            mp = harness._unescape(left.split(" ")[4])
            for opt in r[2].split(","):
                if opt in V1_CONTROLLERS:
                    out.setdefault(opt, mp)
    return out


class Group:
    """A cgroup v2 child of the test's cgroup plus, on a hybrid host, a child of
    the same name in each v1 hierarchy: where a container runtime would put a
    container. Processes started with popen()/run() join all of them before exec."""

    def __init__(self, t, cg, name):
        self.cg = cg
        self.v2 = cg.child(name)
        self.v1 = {}
        for ctrl, mp in v1_mounts().items():
            d = os.path.join(mp, os.path.basename(cg.path), name)
            if d in self.v1.values():
                continue  # cpu,cpuacct mounted together
            os.makedirs(d, exist_ok=True)
            self.v1[ctrl] = d
            t.defer(self._remove, d)

    def _remove(self, d):
        for _ in range(200):
            with contextlib.suppress(FileNotFoundError):
                for pid in open(os.path.join(d, "cgroup.procs")).read().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(d))

    def _enter(self):
        dirs = [self.v2] + list(self.v1.values())

        def enter():
            for d in dirs:
                fd = os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)
        return enter

    def popen(self, cmd, **kw):
        p = subprocess.Popen(cmd, preexec_fn=self._enter(), **kw)
        self.cg._started.append(p)
        return p

    def run(self, cmd, timeout=120, **kw):
        kw.setdefault("capture_output", True)
        r = subprocess.run(cmd, preexec_fn=self._enter(), timeout=timeout, **kw)
        check(r.returncode == 0, f"{cmd}: exit {r.returncode}: {r.stderr!r}")
        return r

    def file(self, ctrl, name):
        return os.path.join(self.v1[ctrl], name) if ctrl in self.v1 else None

    def memory_bytes(self):
        f = self.file("memory", "memory.usage_in_bytes")
        return int(open(f or os.path.join(self.v2, "memory.current")).read())

    def cpu_ns(self):
        f = self.file("cpuacct", "cpuacct.usage")
        if f:
            return int(open(f).read())
        for line in open(os.path.join(self.v2, "cpu.stat")):
            if line.startswith("usage_usec"):
                return int(line.split()[1]) * 1000
        return 0

    def rel(self):
        return self.cg.rel(self.v2)


def worker_of(mnt, group):
    for w in ctl_mount(mnt, "workers"):
        if w["cgroup"] == group.rel():
            return w
    return None


def proc_cgroups(pid):
    """{hierarchy controllers: path} of a process."""
    out = {}
    for line in open(f"/proc/{pid}/cgroup"):
        _, ctrls, path = line.rstrip("\n").split(":", 2)
        out[ctrls] = path
    return out


def process_cpu_ns(pid):
    """CPU time of a process's live threads, in ns (schedstat: finer than clock ticks)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            total += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
    return total


def write_random(path, mib):
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(MiB))


def memcg_bytes(pid):
    """The memory charged to the memory cgroup of process `pid` (v1 or v2)."""
    for line in open(f"/proc/{pid}/cgroup"):
        _, ctrls, path = line.rstrip("\n").split(":", 2)
        if "memory" in ctrls.split(","):
            mp = v1_mounts()["memory"]
            return int(open(os.path.join(mp + path, "memory.usage_in_bytes")).read())
    return int(open(os.path.join(harness.cgroup2_root() + path, "memory.current")).read())


def device_number(path):
    st = os.stat(path)
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def drop_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed_dd(group, args, timeout=120):
    t0 = time.monotonic()
    group.run(["dd", "status=none"] + args, timeout=timeout)
    return time.monotonic() - t0


@harness.timeout(60)
def test_worker_process_lives_in_the_callers_cgroups(t):
    """The worker is a process of its own, in every cgroup of the caller while it
    serves, out of them when idle (so they can be removed at once), with no
    capabilities; with charge=none it is the daemon's threads."""
    img = t.path("p.img")
    harness.make_sparse(img, 16 * MiB)
    cg = t.cgroup()
    for charge in ("cgroup", "none"):
        a = Group(t, cg, f"a-{charge}")
        with t.mount(img, opts=f"charge={charge}") as m:
            f = m.path("p.img")
            # Reads, a pause, then reads without end.
            reader = a.popen(["sh", "-c", f"dd if={f} of=/dev/null bs=64k count=4 status=none; "
                              f"sleep 0.5; while :; do dd if={f} of=/dev/null bs=4k "
                              "iflag=direct status=none; done"])
            check(harness.wait_for(lambda: worker_of(m.mnt, a), 10), "no worker")
            w = worker_of(m.mnt, a)
            if charge == "none":
                check(w["pid"] == 0 and not w["charged"], f"charge=none: {w}")
            else:
                check(w["pid"] > 0 and w["charged"], f"charge=cgroup: {w}")
                mine = proc_cgroups(reader.pid)
                daemons = proc_cgroups(m.pid)
                # Idle (the pause): out of A's cgroups, in the daemon's.
                time.sleep(0.2)
                check_eq(proc_cgroups(w["pid"]), daemons,
                         "the idle worker's cgroups are the daemon's")
                # Serving: in A's, every hierarchy.
                check(harness.wait_for(lambda: proc_cgroups(w["pid"]) == mine, 5, 0.01),
                      f"the serving worker's cgroups are not the caller's: "
                      f"{proc_cgroups(w['pid'])} vs {mine}")
                status = open(f"/proc/{w['pid']}/status").read()
                check("CapEff:\t0000000000000000" in status, "the worker has capabilities")
                check(re.search(r"NoNewPrivs:\s+1", status), "no_new_privs not set")
                check(os.stat(f"/proc/{w['pid']}").st_uid == 0, "proc owner")
                # The daemon's own threads did none of the reading.
                check(w["pid"] != m.pid, "the worker is the daemon")
            reader.kill()
            reader.wait()


def io_limit(group, kind, dev, bps):
    """Limit the group's reads or writes of device `dev` to `bps` bytes/s: blkio on
    a hybrid host, io.max on a pure v2 one."""
    f = group.file("blkio", f"blkio.throttle.{kind}_bps_device")
    if f:
        with open(f, "w") as fh:
            fh.write(f"{dev} {bps}")
        return
    with open(os.path.join(group.v2, "io.max"), "w") as fh:
        fh.write(f"{dev} {'rbps' if kind == 'read' else 'wbps'}={bps}")


def enable_v2_controllers(cg):
    """On a pure v2 host, the io, memory and cpu controllers for the test's children."""
    if v1_mounts():
        return
    root = cg.root
    rel = os.path.relpath(cg.path, root).split(os.sep)
    d = root
    for part in rel:
        with contextlib.suppress(OSError):
            with open(os.path.join(d, "cgroup.subtree_control"), "w") as f:
                f.write("+io +memory +cpu +pids")
        d = os.path.join(d, part)
    with contextlib.suppress(OSError):
        with open(os.path.join(d, "cgroup.subtree_control"), "w") as f:
            f.write("+io +memory +cpu +pids")


@harness.timeout(150)
def test_io_limits_hold_through_the_mount(t):
    """A's 10 MiB/s read (and write) limit on the backing device holds for its I/O
    through the mount, while B on the same mount runs unthrottled; with charge=none
    A is not throttled at all."""
    backing = t.path("dev.img")
    harness.make_sparse(backing, 256 * MiB)
    dev = harness.losetup_attach(t, backing)
    manifest = t.write_manifest([{"name": "d.img", "path": dev, "direct_io": True}])
    cg = t.cgroup()
    enable_v2_controllers(cg)
    limit = 10 * MiB
    size_mib = 24
    for charge in ("cgroup", "none"):
        a, b = Group(t, cg, f"a-{charge}"), Group(t, cg, f"b-{charge}")
        io_limit(a, "read", device_number(dev), limit)
        io_limit(a, "write", device_number(dev), limit)
        with t.mount(manifest, opts=f"charge={charge}") as m:
            f = m.path("d.img")
            for kind in ("read", "write"):
                if kind == "read":
                    a_args = [f"if={f}", "of=/dev/null", "iflag=direct", "bs=1M",
                              f"count={size_mib}"]
                    b_args = [f"if={f}", "of=/dev/null", "iflag=direct", "bs=1M", "count=96",
                              "skip=128"]
                else:
                    a_args = ["if=/dev/zero", f"of={f}", "oflag=direct", "bs=1M",
                              f"count={size_mib}", "seek=32", "conv=notrunc"]
                    b_args = ["if=/dev/zero", f"of={f}", "oflag=direct", "bs=1M", "count=96",
                              "seek=128", "conv=notrunc"]
                pa = a.popen(["dd", "status=none"] + a_args)
                t0 = time.monotonic()
                b_seconds = timed_dd(b, b_args)
                pa.wait(120)
                a_seconds = time.monotonic() - t0
                check_eq(pa.returncode, 0, f"A's {kind}")
                a_rate = size_mib * MiB / a_seconds
                b_rate = 96 * MiB / b_seconds
                print(f"# charge={charge} {kind}: A {a_rate / MiB:.1f} MiB/s (limit 10), "
                      f"B {b_rate / MiB:.1f} MiB/s", flush=True)
                if charge == "cgroup":
                    check(a_rate <= 1.15 * limit, f"{kind}: A ran at {a_rate / MiB:.1f} MiB/s")
                    check(b_rate >= 10 * a_rate,
                          f"{kind}: B {b_rate / MiB:.1f} MiB/s is not 10x A's")
                else:
                    check(a_rate > 1.5 * limit,
                          f"charge=none {kind}: A throttled to {a_rate / MiB:.1f} MiB/s")


@harness.timeout(120)
def test_page_cache_is_charged_to_the_reader(t):
    """A buffered image: A reads 128 MiB through the mount; A's memory cgroup grows
    by at least 100 MiB and the daemon's does not. Under a 64 MiB limit A's read
    still completes (its page cache is reclaimed inside its limit)."""
    img = t.path("mem.img")
    write_random(img, 128)
    cg = t.cgroup()
    enable_v2_controllers(cg)
    for charge in ("cgroup", "none"):
        a = Group(t, cg, f"a-{charge}")
        with t.mount(img, opts=f"charge={charge}") as m:
            drop_cache(img)
            before, daemon_before = a.memory_bytes(), memcg_bytes(m.pid)
            a.run(["dd", f"if={m.path('mem.img')}", "of=/dev/null", "bs=1M", "status=none"])
            grown = a.memory_bytes() - before
            daemon_grown = memcg_bytes(m.pid) - daemon_before
            print(f"# charge={charge}: A's memory grew by {grown / MiB:.0f} MiB, the daemon's "
                  f"cgroup's by {daemon_grown / MiB:.0f} MiB", flush=True)
            if charge == "cgroup":
                check(grown >= 100 * MiB, f"A's memory grew by {grown / MiB:.0f} MiB only")
                check(daemon_grown < 50 * MiB,
                      f"the daemon's memory cgroup grew by {daemon_grown / MiB:.0f} MiB")
            else:
                check(grown < 50 * MiB, f"charge=none: A's memory grew {grown / MiB:.0f} MiB")
    # Under a limit: the read completes inside it.
    small = Group(t, cg, "small")
    limit_file = small.file("memory", "memory.limit_in_bytes") or \
        os.path.join(small.v2, "memory.max")
    with open(limit_file, "w") as f:
        f.write(str(64 * MiB))
    with t.mount(img, opts="charge=cgroup") as m:
        drop_cache(img)
        small.run(["dd", f"if={m.path('mem.img')}", "of=/dev/null", "bs=1M", "status=none"])
        peak_file = small.file("memory", "memory.max_usage_in_bytes") or \
            os.path.join(small.v2, "memory.peak")
        if os.path.exists(peak_file):
            peak = int(open(peak_file).read())
            check(peak <= 64 * MiB, f"peak {peak} over the limit")


@harness.timeout(120)
def test_cpu_is_charged_to_the_caller(t):
    """The CPU time of A's reads is spent in good part in A's worker process,
    which A's CPU accounting counts; with charge=none there is no such process
    and the daemon does the copies."""
    img = t.path("cpu.img")
    write_random(img, 64)
    cg = t.cgroup()
    enable_v2_controllers(cg)
    for charge in ("cgroup", "none"):
        a = Group(t, cg, f"a-{charge}")
        with t.mount(img, opts=f"charge={charge}") as m:
            f = m.path("cpu.img")
            holder = a.popen(["sleep", "60"])  # keeps A's worker process
            a.run(["dd", f"if={f}", "of=/dev/null", "bs=1M", "status=none"])  # warm
            w = worker_of(m.mnt, a)
            worker_pid = w["pid"] if w and w["charged"] else None
            a_before, d_before = a.cpu_ns(), process_cpu_ns(m.pid)
            w_before = process_cpu_ns(worker_pid) if worker_pid else 0
            a.run(["sh", "-c", f"for i in $(seq 16); do dd if={f} of=/dev/null "
                   "bs=1M status=none; done"])
            a_cpu = a.cpu_ns() - a_before
            d_cpu = process_cpu_ns(m.pid) - d_before
            w_cpu = (process_cpu_ns(worker_pid) - w_before) if worker_pid else 0
            holder.kill()
            holder.wait()
            print(f"# charge={charge}: A {a_cpu / 1e6:.0f} ms CPU (its worker process "
                  f"{w_cpu / 1e6:.0f} ms), daemon {d_cpu / 1e6:.0f} ms", flush=True)
            # The worker process did a good part of the work (the copies; the daemon
            # still reads each request and hands it over), and its time is A's.
            holds = w_cpu > 0.5 * d_cpu and a_cpu >= 0.9 * w_cpu
            if charge == "cgroup":
                check(holds, f"the worker process used {w_cpu / 1e6:.0f} ms, the daemon "
                      f"{d_cpu / 1e6:.0f} ms, A was charged {a_cpu / 1e6:.0f} ms")
            else:
                check(not holds, "charge=none: the CPU was charged to A")


@harness.timeout(90)
def test_killed_worker_process(t):
    """The worker process is killed while A's read is stuck in it: the read is
    answered EIO within a second, B (on the same mount) notices nothing, the
    daemon lives on, and A's next read gets a new worker process."""
    gate = harness.Gate(t, 64 * MiB, 32 * MiB)
    cg = t.cgroup()
    a, b = Group(t, cg, "a"), Group(t, cg, "b")
    with t.mount(gate.disk, opts="request_timeout=60,charge=cgroup") as m:
        f = m.path("disk")
        # A process that stays in A: its worker process stays with it.
        holder = a.popen(["sleep", "60"])
        a.run(["dd", f"if={f}", "of=/dev/null", "bs=64k", "count=1", "status=none"])
        first = worker_of(m.mnt, a)
        check(first and first["charged"], f"no charged worker: {first}")
        with gate.held():
            stuck = a.popen(["dd", f"if={f}", "of=/dev/null", "bs=64k", "count=1",
                             f"skip={40 * 16}", "iflag=direct", "status=none"],
                            stderr=subprocess.PIPE)
            harness.wait_arrived(m.mnt, a.rel(), 1)
            time.sleep(0.2)
            t0 = time.monotonic()
            os.kill(first["pid"], signal.SIGKILL)
            stuck.wait(10)
            took = time.monotonic() - t0
            err = stuck.stderr.read().decode()
            print(f"# the stuck read was answered {took:.2f} s after the kill: {err.strip()}")
            check(took < 1.0, f"answered after {took:.2f} s")
            check(stuck.returncode != 0 and "Input/output error" in err,
                  f"rc {stuck.returncode}: {err!r}")
            # B meanwhile: served.
            b.run(["dd", f"if={f}", "of=/dev/null", "bs=64k", "count=64", "status=none"],
                  timeout=10)
        check(m.proc.poll() is None, "the daemon died")
        a.run(["dd", f"if={f}", "of=/dev/null", "bs=64k", "count=4", "status=none"])
        second = worker_of(m.mnt, a)
        check(second["charged"] and second["pid"] not in (0, first["pid"]),
              f"no new worker process: {first} -> {second}")
        holder.kill()
        holder.wait()


@harness.timeout(60)
def test_a_worker_process_that_cannot_be_made(t):
    """A at its pids.max: its worker process cannot be made, so A is served by the
    daemon's threads (uncharged, shown so), logged once; its I/O works."""
    img = t.path("pm.img")
    harness.make_sparse(img, 16 * MiB)
    cg = t.cgroup()
    enable_v2_controllers(cg)
    a = Group(t, cg, "a")
    pids_max = a.file("pids", "pids.max") or os.path.join(a.v2, "pids.max")
    with t.mount(img, opts="charge=cgroup",
                 allow_stderr=r"cannot serve cgroup .* from a process in its cgroups") as m:
        f = m.path("pm.img")
        # A shell and its dd, nothing more: no room for a worker process.
        r = subprocess.run(["sh", "-c", f"echo 2 > {pids_max}; for i in 1 2 3; do "
                            f"dd if={f} of=/dev/null bs=64k count=4 status=none || exit 1; "
                            "done"], preexec_fn=a._enter(), capture_output=True, text=True,
                           timeout=30)
        check_eq(r.returncode, 0, f"A's reads: {r.stderr}")
        w = worker_of(m.mnt, a)
        check(w and not w["charged"] and w["served"] >= 12, f"worker {w}")
        with open(pids_max, "w") as fh:
            fh.write("max")
    log = m.stderr()
    check_eq(len(re.findall("cannot serve cgroup", log)), 1, f"logged once: {log!r}")


@harness.timeout(60)
def test_worker_process_leaves_with_its_cgroup(t):
    """The worker process never outlives the other members of its cgroup: when A's
    last process exits, it goes, and A's cgroups can be removed; a reaped worker's
    process goes; and when the daemon is killed, every worker process goes."""
    img = t.path("l.img")
    harness.make_sparse(img, 16 * MiB)
    cg = t.cgroup()
    a = Group(t, cg, "a")
    with t.mount(img, opts="idle_timeout=2,charge=cgroup") as m:
        f = m.path("l.img")
        a.run(["dd", f"if={f}", "of=/dev/null", "bs=64k", "count=4", "status=none"])
        pid = worker_of(m.mnt, a)["pid"]
        check(harness.wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 2),
              "the worker process outlived its cgroup's last process")
        took = cg.remove(a.v2)
        print(f"# A's cgroup removed {took * 1000:.1f} ms after its last process exited")
        # Reaped: the process goes with the worker.
        b = Group(t, cg, "b")
        holder = b.popen(["sh", "-c", f"dd if={f} of=/dev/null bs=64k count=4 status=none; "
                          "exec sleep 60"])
        check(harness.wait_for(lambda: worker_of(m.mnt, b), 10), "no worker for B")
        bpid = worker_of(m.mnt, b)["pid"]
        check(harness.wait_for(lambda: worker_of(m.mnt, b) is None, 10), "B's worker not reaped")
        check(harness.wait_for(lambda: not os.path.exists(f"/proc/{bpid}"), 2),
              "the reaped worker's process lives on")
        # The daemon killed: its worker processes go too.
        holder.kill()
        holder.wait()
        c = Group(t, cg, "c")
        holder = c.popen(["sh", "-c", f"dd if={f} of=/dev/null bs=64k count=4 status=none; "
                          "exec sleep 60"])
        check(harness.wait_for(lambda: worker_of(m.mnt, c), 10), "no worker for C")
        cpid = worker_of(m.mnt, c)["pid"]
        m.expect_exit = None
        m.allow_stderr = re.compile(".*")
        os.kill(m.pid, signal.SIGKILL)
        check(harness.wait_for(lambda: not os.path.exists(f"/proc/{cpid}"), 2),
              "a worker process outlived the daemon")
        holder.kill()
        holder.wait()


if __name__ == "__main__":
    harness.main()
