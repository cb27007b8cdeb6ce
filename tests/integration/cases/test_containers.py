#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Real containers (Debian's runc and crun) using an image through cgloopfs.

A busybox-static container reads and writes an image through a bind mount of
the cgloopfs mount until just before it exits. While it does, its charged
worker process lives in the container's cgroups; when it exits, the runtime
removes the container's cgroups at once, so the worker process must already be
gone (it never outlives the container's processes). Each runtime runs the
container 20 times in the foreground and 20 times with kill + delete (5 and 5
under AddressSanitizer): every run exits 0 with no error line and leaves no
cgroup behind. The runs that printed a
"will retry" warning (the runtime found a cgroup busy and tried again) are
counted and reported.

Debian 12's crun (1.8.1) refuses a hybrid host whose cgroup v2 hierarchy
offers any controller ("cgroups in hybrid mode not supported, drop all
controllers from cgroupv2"): it reads /sys/fs/cgroup/unified/cgroup.controllers
and wants it empty. On this host it lists hugetlb, which no cgroup there
enables. So crun runs in a mount namespace of its own where an empty file is
bound over that one file; nothing else changes, and crun makes, joins and
removes the container's cgroups in every hierarchy (v2 and v1) as it would.
"""
import json
import os
import shutil
import subprocess

import harness
from harness import MiB, check, check_eq, ctl_mount

RUNS = 20
# Under AddressSanitizer (CI's asan stage looks for memory errors, not for how
# often a runtime finds a cgroup busy): fewer runs.
SANITIZED_RUNS = 5


def make_bundle(t, runtime, name, mnt, script):
    """An OCI bundle: a busybox-static rootfs, the cgloopfs mount at /data."""
    busybox = shutil.which("busybox")
    check(busybox, "cannot run: busybox (busybox-static) is missing")
    bundle = t.mkdir(name)
    rootfs = os.path.join(bundle, "rootfs")
    for d in ("bin", "proc", "dev", "sys", "tmp", "data"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy(busybox, os.path.join(rootfs, "bin", "busybox"))
    for tool in ("sh", "dd", "sleep", "cat"):
        os.symlink("busybox", os.path.join(rootfs, "bin", tool))
    subprocess.run([runtime, "spec"], cwd=bundle, check=True)
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/sh", "-c", script]
    cfg["root"]["readonly"] = False
    cfg["mounts"].append({"destination": "/data", "type": "bind", "source": mnt,
                          "options": ["rbind", "rw"]})
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    return bundle


def cgroup_dirs(name):
    """Every cgroup directory named `name` in any hierarchy mounted here."""
    found = []
    for mp, fstype, _ in harness.mountinfo():
        if fstype not in ("cgroup", "cgroup2"):
            continue
        for top, dirs, _ in os.walk(mp):
            if name in dirs:
                found.append(os.path.join(top, name))
    return found


HYBRID_CONTROLLERS = "/sys/fs/cgroup/unified/cgroup.controllers"  # what crun reads


def crun_needs_mask():
    """Whether crun would refuse this host: hybrid (cgroup v2 at crun's
    /sys/fs/cgroup/unified) with a controller listed there."""
    hybrid = any(mp == os.path.dirname(HYBRID_CONTROLLERS) and fstype == "cgroup2"
                 for mp, fstype, _ in harness.mountinfo())
    if not hybrid:
        return False
    with open(HYBRID_CONTROLLERS) as f:
        return f.read().strip() != ""


def runtime_cmd(runtime, state):
    cmd = [runtime, "--root", state]
    if runtime == "crun" and crun_needs_mask():
        empty = os.path.join(state, "no-controllers")
        open(empty, "w").close()
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               'mount --bind "$0" ' + HYBRID_CONTROLLERS + ' && exec "$@"', empty] + cmd
    return cmd


def error_lines(text):
    """Lines of an error (runc: level=error; crun: "crun: ..." without "warning")."""
    return [ln for ln in text.splitlines()
            if "level=error" in ln or ln.lower().startswith("error") or
            (ln.startswith(("crun:", "runc:")) and "warn" not in ln.lower())]


def run_container(t, runtime, state, bundle, name, mode):
    """One container run; returns its stderr."""
    cmd = runtime_cmd(runtime, state)
    if mode == "foreground":
        r = subprocess.run(cmd + ["run", "--bundle", bundle, name], capture_output=True,
                           text=True, timeout=60)
        check_eq(r.returncode, 0, f"{runtime} run {name}: {r.stderr!r}")
        return r.stderr
    r = subprocess.run(cmd + ["run", "--detach", "--bundle", bundle, name],
                       capture_output=True, text=True, timeout=60)
    check_eq(r.returncode, 0, f"{runtime} run -d {name}: {r.stderr!r}")
    err = r.stderr
    # It does its I/O and exits; then the runtime is told to kill what is left and delete.
    for _ in range(600):
        s = subprocess.run(cmd + ["state", name], capture_output=True, text=True)
        if s.returncode != 0 or json.loads(s.stdout).get("status") == "stopped":
            break
        harness.time.sleep(0.01)
    k = subprocess.run(cmd + ["kill", name, "KILL"], capture_output=True, text=True)
    err += k.stderr if "not running" not in k.stderr and "stopped" not in k.stderr else ""
    d = subprocess.run(cmd + ["delete", "--force", name], capture_output=True, text=True,
                       timeout=60)
    check_eq(d.returncode, 0, f"{runtime} delete {name}: {d.stderr!r}")
    return err + d.stderr


def exercise(t, runtime):
    check(shutil.which(runtime), f"cannot run: {runtime} is missing")
    img = t.path("c.img")
    harness.make_sparse(img, 64 * MiB)
    state = t.mkdir(f"{runtime}-state")
    with t.mount(img, opts="charge=cgroup") as m:
        # I/O, a pause the test looks in, more I/O, and out.
        script = ("dd if=/data/c.img of=/dev/null bs=64k count=64 2>/dev/null && "
                  "dd if=/dev/zero of=/data/c.img bs=64k count=16 conv=notrunc 2>/dev/null && "
                  "if [ \"$PAUSE\" = 1 ]; then i=0; while [ $i -lt 200 ]; do "
                  "dd if=/data/c.img of=/dev/null bs=4k count=256 iflag=direct 2>/dev/null; "
                  "i=$((i+1)); done; fi; "
                  "dd if=/data/c.img of=/dev/null bs=64k count=64 2>/dev/null && "
                  "dd if=/dev/zero of=/data/c.img bs=64k count=16 seek=64 conv=notrunc "
                  "2>/dev/null")
        bundle = make_bundle(t, runtime, f"{runtime}-bundle", m.mnt, script)
        # One run with a pause: its worker process is in the container's cgroups.
        with open(os.path.join(bundle, "config.json")) as f:
            cfg = json.load(f)
        cfg["process"]["env"] = cfg["process"].get("env", []) + ["PAUSE=1"]
        paused = t.mkdir(f"{runtime}-paused")
        os.rename(os.path.join(bundle, "rootfs"), os.path.join(paused, "rootfs"))
        with open(os.path.join(paused, "config.json"), "w") as f:
            json.dump(cfg, f)
        name = f"cgl-{os.getpid()}-{runtime}-look"
        p = subprocess.Popen(runtime_cmd(runtime, state) + ["run", "--bundle", paused, name],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            def charged_worker():
                ws = [w for w in ctl_mount(m.mnt, "workers") if w["charged"]]
                return ws[0] if ws else None
            check(harness.wait_for(charged_worker, 20, 0.05), "no charged worker appeared")
            w = charged_worker()
            where = f"/proc/{w['pid']}/cgroup"

            # While the container reads, its worker process is in its cgroups (v2 and v1).
            def inside():
                return sum(name in line for line in open(where).read().splitlines())
            check(harness.wait_for(lambda: inside() >= 2, 20, 0.005),
                  f"the worker is not in the container's cgroups: {open(where).read()}")
            print(f"# {runtime}: worker {w['pid']} in {w['cgroup']}", flush=True)
        finally:
            out, err = p.communicate(timeout=60)
        check_eq(p.returncode, 0, f"{runtime} run (paused): {err!r}")
        os.rename(os.path.join(paused, "rootfs"), os.path.join(bundle, "rootfs"))
        retries = {}
        runs = SANITIZED_RUNS if harness.sanitized() else RUNS
        for mode in ("foreground", "kill-delete"):
            retries[mode] = 0
            for i in range(runs):
                name = f"cgl-{os.getpid()}-{runtime}-{mode}-{i}"
                err = run_container(t, runtime, state, bundle, name, mode)
                check(not error_lines(err), f"{runtime} {mode} run {i}: {err!r}")
                if "retry" in err:
                    if not any(retries.values()):
                        line = next(x for x in err.splitlines() if "retry" in x)
                        print(f"# the first retry warning ({mode} run {i}): {line}", flush=True)
                    retries[mode] += 1
                left = cgroup_dirs(name)
                check(not left, f"{runtime} {mode} run {i} left cgroups: {left}")
            print(f"# {runtime} {mode}: {runs} runs, {retries[mode]} printed a retry warning",
                  flush=True)
        st = ctl_mount(m.mnt, "stats")
        check(all(s["errors"] == 0 for s in st["cgroups"]), f"I/O errors: {st}")


@harness.timeout(300)
def test_runc(t):
    exercise(t, "runc")


@harness.timeout(300)
def test_crun(t):
    exercise(t, "crun")


if __name__ == "__main__":
    harness.main()
