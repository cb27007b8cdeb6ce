#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The cgloopfs benchmark: fio against the raw backing file, the kernel loop
device and cgloopfs (dispatch=cgroup with charge=cgroup, the default; with
charge=none, target "nocharge"; and dispatch=single), in one run, on the same
image, and a table of ratios against raw and against the loop device.

    ./bench/run.py [--disk] [--seconds N] [--repeat N] [--targets raw,loop,...]
                   [--jobs seqread,seqwrite,randread,randwrite] [--no-isolation] [--binary PATH]

Builds in release mode (build-bench/), makes a 1 GiB image on tmpfs (/dev/shm;
--disk: /var/tmp), and runs fio with O_DIRECT inside a child cgroup of its own,
so dispatch=cgroup serves it from a per-cgroup worker. Each cgroup is also made
in the cgroup v1 cpu, cpuacct, blkio and memory hierarchies where the host has
them, and fio joins those too, as a container runtime would place it; with
charge=cgroup the worker process joins them as well. Targets cgroup/nocpu and
nocharge/nocpu run fio on those two mounts from a cgroup that is in no cpu
cgroup (v2, and v1 cpuacct, blkio and memory; where the v2 cgroups have a cpu
controller there is no such place, and they are left out): the worker
process's CPU is still the caller's, but not spent under a cpu cgroup's
weight against the daemon's threads. Run as root.

The isolation benchmark then runs, under dispatch=cgroup and dispatch=single:
cgroup B reads 4 KiB at random at 200 IOPS, alone and while cgroup A runs four
1 MiB sequential readers (then four writers, then four 4 KiB random readers
with ten times B's CPU weight: cpu.shares, or cpu.weight on cgroup v2, where
the host has them); B's p99 latency is reported. It
runs on the raw backing file too (A and B on it directly), and as "wakes":
B makes round trips through two other processes instead (bench/wake_chain,
200 a second), while A floods the raw file. A request through cgloopfs wakes
a sleeping thread or process three times (session thread, worker, caller);
"wakes" is what three wake-ups across processes cost on this machine, with
no I/O (on a virtual machine whose idle vCPUs halt, a lot).
--jobs "" runs the isolation benchmark only.
Everything it starts it stops; everything it makes it removes.

--repeat N runs every job on every target N times, the targets taking turns
(job 1 on each target, again, ...; each turn starts one target further on,
so that no target always follows the same one), and reports the median of each figure,
and as each ratio the median of the turns' ratios: on a small virtual
machine one run's figures drift by 20-40%.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

JOBS = {
    "seqread": dict(rw="read", bs="1M", iodepth=1, numjobs=1, unit="MiB/s"),
    "seqwrite": dict(rw="write", bs="1M", iodepth=1, numjobs=1, unit="MiB/s"),
    "randread": dict(rw="randread", bs="4k", iodepth=1, numjobs=4, unit="IOPS"),
    "randwrite": dict(rw="randwrite", bs="4k", iodepth=1, numjobs=4, unit="IOPS"),
}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def cgroup2_root():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            dash = parts.index("-")
            if parts[dash + 1] == "cgroup2":
                return parts[4]
    sys.exit("bench: no cgroup2 mount")


def build(target=None):
    """Build in release mode in build-bench/: everything, or only `target` (a path in it);
    returns the path of cgloopfs, or of `target`."""
    bdir = os.path.join(TOP, "build-bench")
    if not os.path.exists(os.path.join(bdir, "build.ninja")):
        sh(["meson", "setup", bdir, "-Dbuildtype=release", "-Dtests=false",
            "--wrap-mode=nofallback"], cwd=TOP, stdout=subprocess.DEVNULL)
    sh(["ninja", "-C", bdir] + ([target] if target else []), stdout=subprocess.DEVNULL)
    return os.path.join(bdir, target or os.path.join("src", "cgloopfs"))


def daemon_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fio_command(target, job, seconds, size, extra=()):
    spec = JOBS[job]
    return ["fio", "--name=" + job, "--filename=" + target, "--direct=1",
            "--ioengine=psync", "--rw=" + spec["rw"], "--bs=" + spec["bs"],
            "--numjobs=" + str(spec["numjobs"]), "--size=" + str(size),
            "--time_based", "--runtime=" + str(seconds), "--ramp_time=1",
            "--group_reporting", "--output-format=json", "--randrepeat=0", *extra]


V1_FOR_CHARGE = ("cpu", "cpuacct", "blkio", "memory")


def v1_dirs(cg, cpu=True):
    """The directories of a cgroup named as `cg` in this host's v1 hierarchies
    (cpu, cpuacct, blkio, memory), one per hierarchy; with cpu=False, not in the
    one that has the cpu controller."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            r = right.split()
            if len(r) < 3 or r[0] != "cgroup":
                continue
            opts = r[2].split(",")
            if not cpu and "cpu" in opts:
                continue
            if any(o in V1_FOR_CHARGE for o in opts):
                d = os.path.join(left.split()[4], os.path.basename(cg))
                if d not in out:
                    out.append(d)
    return out


def in_cgroup(cg):
    """A preexec_fn that moves the child into `cg` and into each v1 hierarchy's
    cgroup of that name that was made."""
    dirs = [cg] + [d for d in v1_dirs(cg) if os.path.isdir(d)]

    def enter():
        for d in dirs:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write("0")
    return enter


def fio_result(out, target):
    if out.returncode != 0:
        raise RuntimeError(f"fio failed on {target}: {out.stderr}")
    return json.loads(out.stdout[out.stdout.index("{"):])["jobs"][0]


def run_fio(cg, target, job, seconds, size, extra=(), tail=None):
    """(result, p99 in us); `tail`, a dict, also gets p99, p99.9 and max (us)."""
    spec = JOBS[job]
    out = subprocess.run(fio_command(target, job, seconds, size, extra), capture_output=True,
                         text=True, preexec_fn=in_cgroup(cg))
    j = fio_result(out, target)
    side = j["read"] if "read" in spec["rw"] else j["write"]
    if spec["unit"] == "MiB/s":
        value = side["bw_bytes"] / (1 << 20)
    else:
        value = side["iops"]
    pct = side["clat_ns"]["percentile"]
    p99 = pct.get("99.000000", 0) / 1000.0
    if tail is not None:
        tail.update(p99=p99, p999=pct.get("99.900000", 0) / 1000.0,
                    max=side["clat_ns"]["max"] / 1000.0)
    return value, p99


def run_wake_chain(cg, wake_chain, seconds, tail):
    """wake_chain in `cg`: round trips through two other processes, 200 a second;
    returns their p99 (us) and fills `tail` as run_fio() does."""
    out = subprocess.run([wake_chain, "2", "5000", str(seconds)], capture_output=True,
                         text=True, preexec_fn=in_cgroup(cg))
    if out.returncode != 0:
        raise RuntimeError(f"wake_chain failed: {out.stderr}")
    j = json.loads(out.stdout)
    tail.update(p99=j["p99"], p999=j["p999"], max=j["max"])
    return j["p99"]


FLOODS = {
    # name: (fio job, A's CPU weight over B's)
    "seqread": ("seqread", 1),
    "seqwrite": ("seqwrite", 1),
    "heavy": ("randread", 10),
}


def cpu_weight_files(cg):
    """(file, default value) for each CPU weight of `cg`: the v1 cpu hierarchy's cpu.shares,
    and the v2 cgroup's cpu.weight where its cpu controller is on."""
    out = []
    for d in [cg] + v1_dirs(cg):
        for name, default in (("cpu.shares", 1024), ("cpu.weight", 100)):
            if os.path.exists(os.path.join(d, name)):
                out.append((os.path.join(d, name), default))
    return out


def set_cpu_weight(cg, factor):
    for path, default in cpu_weight_files(cg):
        with open(path, "w") as f:
            f.write(str(default * factor))


def isolation(cg_a, cg_b, target, seconds, size, wake_chain=None):
    """B's p99 (us) at 200 random 4 KiB reads/s: alone, and under each of A's FLOODS
    (four sequential readers, four writers, four random readers at ten times B's CPU weight).
    With `wake_chain`, B runs that instead (round trips through two other processes,
    200 a second: the wake-ups a request through cgloopfs takes) while A uses `target`."""
    light = ("--rate_iops=200", "--numjobs=1")

    def light_p99(tail):
        if wake_chain:
            return run_wake_chain(cg_b, wake_chain, seconds, tail)
        return run_fio(cg_b, target, "randread", seconds, size, light, tail)[1]
    tails = {}
    tails["alone"] = {}
    out = {"alone": light_p99(tails["alone"]), "tails": tails}
    for flood, (job, weight) in FLOODS.items():
        set_cpu_weight(cg_a, weight)
        try:
            a = subprocess.Popen(fio_command(target, job, seconds + 3, size, ("--numjobs=4",)),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 preexec_fn=in_cgroup(cg_a))
            try:
                time.sleep(1.5)
                tails[flood] = {}
                out[flood] = light_p99(tails[flood])
            finally:
                so, se = a.communicate()
        finally:
            set_cpu_weight(cg_a, 1)
        fio_result(subprocess.CompletedProcess(a.args, a.returncode, so, se), target)
    return out


def median_isolation(runs):
    """isolation()'s figures, each the median of `runs`."""
    out = {"tails": {}}
    for k in ("alone", *FLOODS):
        out[k] = statistics.median(r[k] for r in runs)
        out["tails"][k] = {t: statistics.median(r["tails"][k][t] for r in runs)
                           for t in ("p99", "p999", "max")}
    return out


class Cgloopfs:
    def __init__(self, binary, image, opts, tmp):
        self.mnt = tempfile.mkdtemp(prefix="mnt-", dir=tmp)
        self.proc = subprocess.Popen([binary, "-f", "-o", opts, image, self.mnt],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(500):
            if os.path.ismount(self.mnt):
                break
            if self.proc.poll() is not None:
                raise RuntimeError("cgloopfs exited: " + self.proc.stderr.read().decode())
            time.sleep(0.01)
        self.file = os.path.join(self.mnt, os.path.basename(image))

    def close(self):
        subprocess.run(["fusermount3", "-u", self.mnt])
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.rmdir(self.mnt)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--disk", action="store_true", help="image on /var/tmp instead of tmpfs")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each job on each target N times, in turns; report medians")
    ap.add_argument("--size", default="1G")
    ap.add_argument("--jobs", default=",".join(JOBS))
    ap.add_argument("--targets", default="raw,loop,cgroup,nocharge,single,cgroup/nocpu,"
                    "nocharge/nocpu", help="TARGET/nocpu: fio without a cpu cgroup")
    ap.add_argument("--no-isolation", action="store_true", help="skip the isolation benchmark")
    ap.add_argument("--binary", help="a cgloopfs binary to measure instead of building one")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: run as root")
    for tool in ("fio", "losetup", "fusermount3"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (./scripts/install-deps.sh)")
    jobs = [j for j in args.jobs.split(",") if j]
    for j in jobs:
        if j not in JOBS:
            sys.exit(f"bench: unknown job \"{j}\" in --jobs (known: {', '.join(JOBS)})")
    targets = [t for t in args.targets.split(",") if t]
    for t in targets:
        base, slash, place = t.partition("/")
        if base not in ("raw", "loop", "cgroup", "nocharge", "single") or \
                (slash and place != "nocpu"):
            sys.exit(f"bench: unknown target \"{t}\" in --targets (known: raw, loop, cgroup, "
                     "nocharge, single, each also as TARGET/nocpu)")
    binary = os.path.abspath(args.binary) if args.binary else build()
    wake_chain = None if args.no_isolation else build("bench/wake_chain")
    base = "/var/tmp" if args.disk else "/dev/shm"
    tmp = tempfile.mkdtemp(prefix="cgloopfs-bench-", dir=base)
    image = os.path.join(tmp, "bench.img")
    cgroot = cgroup2_root()
    cg = os.path.join(cgroot, f"cgloopfs-bench-{os.getpid()}")
    cg_a, cg_b, cg_nocpu = cg + "-a", cg + "-b", cg + "-nocpu"
    cgroups = [cg, cg_a, cg_b, cg_nocpu]
    cgroups += [d for c in (cg, cg_a, cg_b) for d in v1_dirs(c)] + v1_dirs(cg_nocpu, cpu=False)
    for c in cgroups:
        os.mkdir(c)
    if os.path.exists(os.path.join(cg_nocpu, "cpu.weight")):
        # Pure cgroup v2 with the cpu controller on: every child cgroup has one.
        print("bench: the v2 cgroups have a cpu controller here; no .../nocpu targets",
              file=sys.stderr)
        targets = [t for t in targets if not t.endswith("/nocpu")]
    loopdev = None
    mounts = {}
    results = {}
    runs = {}  # (job, target): [(value, p99, cpu)], one per turn
    iso = {}
    try:
        sh(["fio", "--name=fill", "--filename=" + image, "--rw=write", "--bs=1M",
            "--size=" + args.size, "--output=/dev/null"])
        size = os.path.getsize(image)
        # "cgroup/nocpu": cgroup's file, from fio in cg_nocpu, which is in no cpu cgroup.
        bases = {t.partition("/")[0] for t in targets}
        files = {"raw": image}
        if "loop" in bases:
            loopdev = subprocess.run(["losetup", "--find", "--show", "--direct-io=on", image],
                                     capture_output=True, text=True, check=True).stdout.strip()
            files["loop"] = loopdev
        # Both daemons serve the same image (the same bytes for both), one at a
        # time: their image locks would refuse the second one, so they take
        # none (lock=off, where the binary measured knows it).
        help_text = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
        no_lock = ",lock=off" if "lock=" in help_text else ""
        charged = ",charge=cgroup" if "charge=" in help_text else ""
        daemons = [("cgroup", "dispatch=cgroup" + charged + no_lock)]
        if charged:
            daemons.append(("nocharge", "dispatch=cgroup,charge=none" + no_lock))
        daemons.append(("single", "dispatch=single" + no_lock))
        for name, opts in daemons:
            if name in bases:
                mounts[name] = Cgloopfs(binary, image, opts, tmp)
                files[name] = mounts[name].file
        for job in jobs:
            for turn in range(max(1, args.repeat)):
                # Each turn starts one target further on: what runs just before a
                # target (a loop device's leftovers, a daemon's) is not always the same.
                k = turn % len(targets)
                for target in targets[k:] + targets[:k]:
                    base, _, place = target.partition("/")
                    if base not in files:
                        continue
                    m = mounts.get(base)
                    cpu0 = daemon_cpu_seconds(m.proc.pid) if m else 0
                    t0 = time.monotonic()
                    value, p99 = run_fio(cg_nocpu if place == "nocpu" else cg, files[base], job,
                                         args.seconds, size)
                    cpu = (daemon_cpu_seconds(m.proc.pid) - cpu0) / \
                        (time.monotonic() - t0) if m else None
                    runs.setdefault((job, target), []).append((value, p99, cpu))
                    print(f"  {job:10} {target:14} {value:10.1f} {JOBS[job]['unit']:6} "
                          f"p99 {p99:9.1f} us", file=sys.stderr, flush=True)
        for key, rs in runs.items():
            cpus = [r[2] for r in rs if r[2] is not None]
            results[key] = (statistics.median(r[0] for r in rs),
                            statistics.median(r[1] for r in rs),
                            statistics.median(cpus) if cpus else None)
        if not args.no_isolation:
            isos = {}
            for _ in range(max(1, args.repeat)):
                for name in ("raw", "wakes", "cgroup", "nocharge", "single"):
                    if name == "wakes" and "raw" in files:
                        one = isolation(cg_a, cg_b, files["raw"], args.seconds, size,
                                        wake_chain)
                    elif name in files:
                        one = isolation(cg_a, cg_b, files[name], args.seconds, size)
                    else:
                        continue
                    isos.setdefault(name, []).append(one)
                    shown = {k: v for k, v in one.items() if k != "tails"}
                    print(f"  isolation {name:7} B p99 (us): {shown}", file=sys.stderr,
                          flush=True)
            iso = {name: median_isolation(rs) for name, rs in isos.items()}
    finally:
        for m in mounts.values():
            m.close()
        if loopdev:
            subprocess.run(["losetup", "-d", loopdev])
        shutil.rmtree(tmp, ignore_errors=True)
        for c in reversed(cgroups):
            for _ in range(100):  # a charged worker process leaves a moment after fio
                try:
                    os.rmdir(c)
                    break
                except OSError:
                    time.sleep(0.05)

    def ratio(job, target, base):
        """target's result over base's: with --repeat, the median of the turns' ratios
        (a turn runs the targets one after another)."""
        a, b = runs.get((job, target)), runs.get((job, base))
        if not a or not b or len(a) != len(b) or not all(r[0] for r in b):
            return None
        return statistics.median(x[0] / y[0] for x, y in zip(a, b))

    cpu_model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    print(f"# cgloopfs bench: {os.cpu_count()} CPUs ({cpu_model}), kernel {os.uname().release}, "
          f"image {args.size} on {'disk' if args.disk else 'tmpfs'}, {args.seconds} s per job, O_DIRECT"
          + (f", median of {args.repeat} runs each" if args.repeat > 1 else ""))
    if jobs:
        print()
        print("| job | target | result | p99 | daemon CPU | vs raw | vs loop |")
        print("|---|---|---|---|---|---|---|")
    for job in jobs:
        for target in targets:
            if (job, target) not in results:
                continue
            value, p99, cpu = results[(job, target)]
            unit = JOBS[job]["unit"]
            vr, vl = ratio(job, target, "raw"), ratio(job, target, "loop")
            vr = f"{vr:.2f}x" if vr is not None else "-"
            vl = f"{vl:.2f}x" if vl is not None else "-"
            c = f"{cpu * 100:.0f}%" if cpu is not None else "-"
            print(f"| {job} | {target} | {value:.0f} {unit} | {p99:.0f} us | {c} | {vr} | {vl} |")

    if iso:
        print()
        print("Isolation: cgroup B's p99 at 200 random 4 KiB reads/s, alone and while cgroup A "
              "runs four 1 MiB sequential readers or writers, or four 4 KiB random readers "
              "with ten times B's CPU weight")
        head = ("| daemon | B alone | B under A's reads | B under A's writes "
                "| B under A's random reads at 10x weight |")
        print()
        print(head)
        print("|---|---|---|---|---|")
        for name, r in iso.items():
            print(f"| {name} | " + " | ".join(f"{r[k]:.0f} us" for k in ("alone", *FLOODS)) +
                  " |")
        print()
        print("The same, p99 / p99.9 / max (us)")
        print()
        print(head)
        print("|---|---|---|---|---|")
        for name, r in iso.items():
            cells = ["{p99:.0f} / {p999:.0f} / {max:.0f}".format(**r["tails"][k])
                     for k in ("alone", *FLOODS)]
            print(f"| {name} | " + " | ".join(cells) + " |")

    checks = [("seq read 1 MiB vs raw", ratio("seqread", "cgroup", "raw"), 0.60),
              ("seq write 1 MiB vs raw", ratio("seqwrite", "cgroup", "raw"), 0.55),
              ("rand read 4 KiB x4 vs loop", ratio("randread", "cgroup", "loop"), 0.60),
              ("rand write 4 KiB x4 vs loop", ratio("randwrite", "cgroup", "loop"), 0.50)]
    for job in ("seqread", "seqwrite", "randread", "randwrite"):
        checks.append((f"{job}: cgroup vs single", ratio(job, "cgroup", "single"), 0.95))
    for job in ("seqread", "seqwrite", "randread", "randwrite"):
        checks.append((f"{job}: charge=cgroup vs charge=none", ratio(job, "cgroup", "nocharge"),
                       0.90))
        checks.append((f"{job}: charge=cgroup vs charge=none, no cpu cgroup",
                       ratio(job, "cgroup/nocpu", "nocharge/nocpu"), 0.90))
    rows = [(what, f"{v:.2f}x", f">= {want:.2f}x", "yes" if v >= want else "NO")
            for what, v, want in checks if v is not None]
    if "cgroup" in iso:
        c = iso["cgroup"]
        for flood in FLOODS:
            v = c[flood] / c["alone"]
            rows.append((f"B p99 under {flood} / alone", f"{v:.2f}x", "<= 2x",
                         "yes" if v <= 2 else "NO"))
            if "single" in iso:
                v = c[flood] / iso["single"][flood]
                rows.append((f"B p99 under {flood}, cgroup / single", f"{v:.2f}x", "<= 0.2x",
                             "yes" if v <= 0.2 else "NO"))
    if rows:
        print()
        print("| target | measured | wanted | met |")
        print("|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
