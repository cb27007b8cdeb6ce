#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""cgloopfs as a system tool: --help and the man pages, the installed tree, the
systemd unit and sd_notify, mount(8) and fstab through the installed helper."""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import (  # noqa: E402
    BUILD_DIR, CGLOOPCTL, CGLOOPFS, SRC_ROOT, TestFailure, check, check_eq, make_image, pattern,
    run, timeout)

MiB = 1024 * 1024
TOOLS = os.path.join(SRC_ROOT, "tests", "tools")
MAN_SRC = os.path.join(SRC_ROOT, "man")
PAGES = ["cgloopfs.8", "cgloopctl.8", "cgloopfs.toml.5"]


def need(tool):
    path = shutil.which(tool)
    if path is None:
        raise TestFailure(f"cannot run: {tool} is not installed")
    return path


# --------------------------------------------------------------------------
# --help and the man pages

def test_help_follows_the_rules(t):
    r = run(["sh", os.path.join(TOOLS, "check-help.sh"), CGLOOPFS, CGLOOPCTL], check_rc=False)
    check_eq(r.returncode, 0, f"check-help.sh:\n{r.stdout}{r.stderr}")
    check(re.search(r"\(([1-9]\d*) commands\): 0 problem", r.stdout),
          f"check-help.sh checked no cgloopctl command: {r.stdout!r}")


def test_help_check_catches_bad_help(t):
    # A program that gets every rule wrong: check-help.sh must say so.
    stub = t.path("stub")
    with open(stub, "w") as f:
        f.write("#!/bin/sh\n"
                "case \"$1\" in\n"
                "--help|-h) echo 'Usage: stub'; printf '%090d\\n' 0; echo oops >&2; exit 0;;\n"
                "--version) echo 'stub 1.0'; exit 0;;\n"
                "*) echo 'bad option'; exit 1;;\n"
                "esac\n")
    os.chmod(stub, 0o755)
    r = run(["sh", os.path.join(TOOLS, "check-help.sh"), stub, stub], check_rc=False)
    check_eq(r.returncode, 1, f"check-help.sh on a bad program: {r.stdout}")
    for want in ("wrote to stderr", "wider than 80 columns", "exit status 1, want 2",
                 "wrote to stdout", "no message on stderr", "no Commands: section"):
        check(want in r.stdout, f"check-help.sh did not report {want!r}:\n{r.stdout}")


def check_man_options(man_dir):
    return run([sys.executable, os.path.join(TOOLS, "check-man-options.py"),
                "--cgloopfs", CGLOOPFS, "--cgloopctl", CGLOOPCTL,
                "--man-dir", man_dir, "--src-dir", SRC_ROOT], check_rc=False)


def test_man_pages_match_help(t):
    r = check_man_options(MAN_SRC)
    check_eq(r.returncode, 0, f"check-man-options.py:\n{r.stdout}{r.stderr}")


def edit(path, old, new):
    with open(path) as f:
        text = f.read()
    check(old in text, f"{path}: {old!r} not found (the test needs updating)")
    with open(path, "w") as f:
        f.write(text.replace(old, new, 1))


def test_man_drift_is_caught(t):
    man = t.path("man")
    shutil.copytree(MAN_SRC, man)
    ctl = os.path.join(man, "cgloopctl.8.scd")
    fs = os.path.join(man, "cgloopfs.8.scd")
    toml = os.path.join(man, "cgloopfs.toml.5.scd")
    edit(ctl, "*--show*\n\tPrint the path of the new file.\n", "")
    edit(ctl, "\n## stats\n", "\n## statistics\n")
    edit(fs, "# MOUNT OPTIONS\n", "*-x*, *--extra*\n\tNot an option.\n\n# MOUNT OPTIONS\n")
    edit(fs, "Default 64, range 1..4096", "Default 32, range 1..4096")
    edit(fs, "*nofail*, ", "*nosuchflag*, ")
    edit(toml, "*discard* (boolean", "*discards* (boolean")
    r = check_man_options(man)
    check_eq(r.returncode, 1, f"check-man-options.py on edited pages:\n{r.stdout}")
    for want in ("cgloopctl attach: --show is in --help but not in cgloopctl.8",
                 "cgloopctl commands: stats is in --help but not in",
                 "cgloopctl commands: statistics is in cgloopctl.8 COMMANDS but not in --help",
                 "cgloopfs: --extra is in cgloopfs.8 OPTIONS but not in --help",
                 "cgloopfs: -x is in cgloopfs.8 OPTIONS but not in --help",
                 "cgloopfs -o max_workers: --help says default 64",
                 "cgloopfs -o nofail: accepted (mount_option_table) but not in",
                 "cgloopfs -o nosuchflag: cgloopfs.8 says it is accepted",
                 "manifest key discard: in image_setting_names but not in",
                 "manifest key discards: in cgloopfs.toml.5 KEYS but not in"):
        check(want in r.stdout, f"check-man-options.py did not report {want!r}:\n{r.stdout}")


def test_man_pages_render_cleanly(t):
    need("groff")
    need("man")
    for page in PAGES:
        path = os.path.join(BUILD_DIR, "man", page)
        check(os.path.isfile(path), f"{path} was not built (scdoc missing?)")
        r = run(["groff", "-man", "-ww", "-z", path], check_rc=False)
        check(r.returncode == 0 and not r.stderr.strip(),
              f"groff -man -ww -z {page}: exit {r.returncode}\n{r.stderr}")
        env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
        r = run(["man", "--warnings", "-l", path], check_rc=False, env=env)
        check(r.returncode == 0 and not r.stderr.strip(),
              f"man --warnings -l {page}: exit {r.returncode}\n{r.stderr}")
        text = r.stdout
        wide = [ln for ln in text.splitlines() if len(ln) > 80]
        check(not wide, f"man -l {page} at 80 columns has wider lines: {wide}")
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"):
            check(re.search(rf"^{section}$", text, re.M), f"{page}: no {section} section")
        for section in ("EXIT STATUS", "EXAMPLES", "FILES") if page.endswith(".8") else ():
            check(re.search(rf"^{section}$", text, re.M), f"{page}: no {section} section")


def scd_literal_after(page, heading):
    """The first ``` block after `# heading` in a man page's source."""
    with open(os.path.join(MAN_SRC, page + ".scd")) as f:
        text = f.read()
    m = re.search(rf"^# {re.escape(heading)}\n.*?^```\n(.*?)^```", text, re.M | re.S)
    check(m, f"{page}: no ``` block under {heading}")
    return m.group(1)


def test_manifest_example_of_the_man_page_mounts(t):
    example = scd_literal_after("cgloopfs.toml.5", "EXAMPLE")
    rootfs = make_image(t.path("rootfs.img"), 600 * MiB, [(MiB, b"rootfs-start")])
    make_image(t.path("scratch.img"), 4 * MiB)
    check('path = "/var/lib/images/rootfs.img"' in example, "the example's rootfs path changed")
    text = example.replace('"/var/lib/images/rootfs.img"', json.dumps(rootfs))
    manifest = t.write_manifest(text)
    with t.mount(manifest) as m:
        check_eq(sorted(os.listdir(m.path())), ["rootfs.img", "scratch.img"], "files")
        st = os.stat(m.path("rootfs.img"))
        check_eq(st.st_size, 512 * MiB, "rootfs.img size (size_limit)")
        check_eq(harness.file_pread(m.path("rootfs.img"), 0, 12), b"rootfs-start", "offset")
        harness.expect_errno(30, os.open, m.path("rootfs.img"), os.O_WRONLY)  # EROFS
        st = os.stat(m.path("scratch.img"))
        check_eq((st.st_size, st.st_mode & 0o777, st.st_uid, st.st_gid, st.st_blksize),
                 (4 * MiB, 0o660, 1000, 1000, 4096), "scratch.img size, mode, owner, block size")


# --------------------------------------------------------------------------
# meson install

class Installed:
    def __init__(self, dest, o):
        self.dest = dest
        self.prefix = o["prefix"]

        def under_prefix(d):
            return d if d.startswith("/") else os.path.join(self.prefix, d)
        self.bindir = under_prefix(o["bindir"])
        self.sbindir = under_prefix(o["sbindir"])
        self.mandir = under_prefix(o["mandir"])
        self.datadir = under_prefix(o["datadir"])
        self.unitdir = o.get("systemdsystemunitdir", "")
        if not self.unitdir:
            r = subprocess.run(["pkg-config", f"--define-variable=rootprefix={self.prefix}",
                                "--variable=systemdsystemunitdir", "systemd"],
                               capture_output=True, text=True)
            self.unitdir = r.stdout.strip() if r.returncode == 0 and r.stdout.strip() \
                else os.path.join(self.prefix, "lib", "systemd", "system")

    def path(self, directory, *parts):
        """The file installed as directory/parts, in the DESTDIR tree."""
        return os.path.join(self.dest + directory, *parts)


def install(t):
    meson = need("meson")
    check(os.path.isfile(os.path.join(BUILD_DIR, "build.ninja")),
          f"{BUILD_DIR} is not a meson build directory")
    dest = t.path("destdir")
    run([meson, "install", "-C", BUILD_DIR, "--destdir", dest, "--no-rebuild", "--quiet"],
        timeout=120)
    r = run([meson, "introspect", "--buildoptions", BUILD_DIR])
    return Installed(dest, {o["name"]: o["value"] for o in json.loads(r.stdout)})


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def test_install_tree(t):
    inst = install(t)
    for prog, built in (("cgloopfs", CGLOOPFS), ("cgloopctl", CGLOOPCTL)):
        p = inst.path(inst.bindir, prog)
        check(os.path.isfile(p) and os.access(p, os.X_OK), f"{p} is not installed executable")
        r = run([p, "--version"])
        check_eq(r.stdout, run([built, "--version"]).stdout, f"installed {prog} --version")
    helper = inst.path(inst.sbindir, "mount.fuse.cgloopfs")
    check(os.path.islink(helper), f"{helper} is not a symlink")
    target = os.readlink(helper)
    check(os.path.basename(target) == "mount.fuse3" and os.path.isabs(target),
          f"{helper} -> {target}, want an absolute path to mount.fuse3")
    check(os.access(target, os.X_OK), f"{helper} -> {target}, which is not executable here")
    for page in PAGES:
        p = inst.path(inst.mandir, "man" + page.rsplit(".", 1)[1], page)
        check(os.path.isfile(p), f"{p} is not installed")
        check(same_file(p, os.path.join(BUILD_DIR, "man", page)), f"{p} differs from the build's")
    unit = inst.path(inst.unitdir, "cgloopfs@.service")
    check(os.path.isfile(unit), f"{unit} is not installed")
    with open(unit) as f:
        text = f.read()
    check(f"ExecStart={inst.bindir}/cgloopfs -f " in text,
          f"the unit does not run {inst.bindir}/cgloopfs -f")
    check("@BINDIR@" not in text, "the unit still has @BINDIR@")
    # Nothing else: every installed file is one of these.
    completions = inst.path(inst.datadir, "bash-completion", "completions")
    want = {inst.path(inst.bindir, "cgloopfs"), inst.path(inst.bindir, "cgloopctl"), helper,
            unit} | {inst.path(inst.mandir, "man" + p.rsplit(".", 1)[1], p) for p in PAGES} \
        | {os.path.join(completions, p) for p in ("cgloopctl", "cgloopfs")}
    got = set()
    for top, _, files in os.walk(inst.dest):
        got |= {os.path.join(top, f) for f in files}
    check_eq(sorted(got - want), [], "unexpected installed files")


# --------------------------------------------------------------------------
# The systemd unit

NAMESPACING = ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateMounts",
               "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
               "ProtectControlGroups", "ProtectProc", "ProcSubset", "ReadOnlyPaths",
               "ReadWritePaths", "InaccessiblePaths", "ExecPaths", "NoExecPaths",
               "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths", "PrivateUsers",
               "MountAPIVFS", "RootDirectory", "RootImage", "ProtectClock", "ProtectHostname",
               "PrivateNetwork", "PrivateIPC", "NetworkNamespacePath", "MountFlags")


def unit_settings(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"([A-Za-z]+)=(.*)$", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def test_unit_verifies(t):
    need("systemd-analyze")
    inst = install(t)
    with open(inst.path(inst.unitdir, "cgloopfs@.service")) as f:
        text = f.read()
    s = unit_settings(text)
    check_eq(s.get("Type"), ["notify"], "Type=")
    # The mount must be seen by the host: no setting may give the service its own
    # mount namespace.
    check_eq(sorted(set(s) & set(NAMESPACING)), [], "settings that make a mount namespace")
    check("CAP_SYS_ADMIN" in " ".join(s.get("CapabilityBoundingSet", [])),
          "CapabilityBoundingSet= without CAP_SYS_ADMIN: it cannot mount")
    check("/dev/fuse rw" in s.get("DeviceAllow", []), "DeviceAllow=/dev/fuse rw missing")
    # systemd-analyze verify wants the ExecStart binary to exist: the installed one,
    # in the DESTDIR tree. Documentation= is checked against the installed pages.
    units = t.mkdir("units")
    with open(os.path.join(units, "cgloopfs@.service"), "w") as f:
        f.write(text.replace(f"{inst.bindir}/cgloopfs", inst.path(inst.bindir, "cgloopfs")))
    env = dict(os.environ, MANPATH=inst.path(inst.mandir), SYSTEMD_LOG_LEVEL="info")
    for instance in ("images", r"web\x2d1"):
        unit = os.path.join(units, f"cgloopfs@{instance}.service")
        r = run(["systemd-analyze", "verify", unit], check_rc=False, env=env)
        check(r.returncode == 0 and not (r.stdout + r.stderr).strip(),
              f"systemd-analyze verify cgloopfs@{instance}.service: exit {r.returncode}\n"
              f"{r.stdout}{r.stderr}")


def syscall_filter(groups):
    """The system calls a SystemCallFilter= allow list of names and @groups allows."""
    r = run(["systemd-analyze", "syscall-filter", "--no-pager"])
    sets, current = {}, None
    for line in r.stdout.splitlines():
        if line.startswith("@"):
            current = sets.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())

    def expand(name, seen):
        if not name.startswith("@"):
            return {name}
        check(name in sets, f"systemd-analyze syscall-filter knows no {name}")
        if name in seen:
            return set()
        seen.add(name)
        out = set()
        for x in sets[name]:
            out |= expand(x, seen)
        return out
    allowed = set()
    for g in groups:
        allowed |= expand(g, set())
    return allowed


# capability(7) numbers, for the ones a unit may name.
CAPS = {"cap_chown": 0, "cap_dac_override": 1, "cap_dac_read_search": 2, "cap_fowner": 3,
        "cap_fsetid": 4, "cap_kill": 5, "cap_setgid": 6, "cap_setuid": 7, "cap_setpcap": 8,
        "cap_net_bind_service": 10, "cap_net_admin": 12, "cap_ipc_lock": 14,
        "cap_sys_chroot": 18, "cap_sys_ptrace": 19, "cap_sys_admin": 21,
        "cap_sys_nice": 23, "cap_sys_resource": 24, "cap_mknod": 27}


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def kill_pid(pid):
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


IO_SCRIPT = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"x" * 65536, 4096)
os.fsync(fd)
assert os.pread(fd, 65536, 4096) == b"x" * 65536
import ctypes  # punch a hole through the image (discard = true)
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
assert libc.fallocate(fd, 3, 4096, 4096) == 0, ctypes.get_errno()
os.close(fd)
"""


@timeout(60)
def test_unit_sandbox_lets_the_daemon_work(t):
    """Run the daemon as the unit's sandbox would (its capability bounding set,
    no new privileges) under strace, do I/O and every control command, and check
    that every system call it made is in the unit's SystemCallFilter= and every
    socket in RestrictAddressFamilies=."""
    strace = need("strace")
    setpriv = need("setpriv")
    need("systemd-analyze")
    with open(os.path.join(SRC_ROOT, "systemd", "cgloopfs@.service.in")) as f:
        s = unit_settings(f.read())
    check_eq(s.get("NoNewPrivileges"), ["yes"], "NoNewPrivileges=")
    caps = s["CapabilityBoundingSet"][0].split()
    groups = " ".join(s["SystemCallFilter"]).split()
    families = set(" ".join(s["RestrictAddressFamilies"]).split())
    allowed = syscall_filter(groups)

    # A backing file of another user, mode 0600: reading it needs CAP_DAC_OVERRIDE.
    backing = make_image(t.path("a.img"), 4 * MiB, [(0, pattern(4096, 1))])
    os.chown(backing, 1000, 1000)
    os.chmod(backing, 0o600)
    extra = make_image(t.path("b.img"), MiB)
    manifest = t.write_manifest([{"name": "a.img", "path": backing, "discard": True}])
    mnt = t.mkdir("mnt")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    t.defer(notify.close)
    notify.bind(t.path("notify.sock"))
    trace = t.path("trace")
    bounding = "-all," + ",".join("+" + c.lower().removeprefix("cap_") for c in caps)
    cmd = [strace, "-f", "-qq", "-o", trace, setpriv, "--no-new-privs", "--bounding-set",
           bounding, CGLOOPFS, "-f", "-o", "idle_timeout=1", manifest, mnt]
    err = open(t.path("daemon.stderr"), "w+")
    t.defer(err.close)
    env = dict(os.environ, NOTIFY_SOCKET=t.path("notify.sock"))
    # LeakSanitizer cannot work under ptrace (sanitizer builds).
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "detect_leaks=0"]))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env)
    t.defer(harness.kill_daemons_for, mnt)  # should strace be killed, its tracee lives on
    t.defer(lambda: proc.poll() is None and (kill_pid(proc.pid), proc.wait(10)))
    t.defer(harness.fusermount_unmount, mnt)
    if not harness.wait_for(lambda: harness.is_mounted(mnt) or proc.poll() is not None, 20):
        raise TestFailure("no mount after 20 s under strace")
    err.seek(0)
    check(harness.is_mounted(mnt), f"not mounted (exit {proc.poll()}): {err.read()}")
    daemon = (children_of(proc.pid) or [None])[0]
    check(daemon is not None, "cannot find the daemon under strace")
    t.defer(kill_pid, daemon)
    def capbnd_of(pid):
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"^CapBnd:\s*(\w+)", f.read(), re.M).group(1), 16)
    # A capability this machine's bounding set lacks cannot be kept either.
    check_eq(capbnd_of(daemon), sum(1 << CAPS[c.lower()] for c in caps) & capbnd_of("self"),
             "the daemon's bounding set")

    cg = t.cgroup()
    child = cg.child("io")
    cg.run(child, [sys.executable, "-c", IO_SCRIPT, os.path.join(mnt, "a.img")])
    ctl = [CGLOOPCTL, "-m", mnt]
    for args in (["list"], ["workers"], ["stats"], ["status"], ["get"],
                 ["set", "worker_depth=2"], ["attach", "--name", "b", extra],
                 ["set-capacity", "b"], ["detach", "b"], ["list", "--manifest"]):
        run(ctl + args)
    time.sleep(2.5)  # the idle worker is reaped (idle_timeout=1)
    os.kill(daemon, signal.SIGTERM)
    try:
        rc = proc.wait(20)
    except subprocess.TimeoutExpired:
        raise TestFailure("the daemon did not exit 20 s after SIGTERM under strace")
    err.seek(0)
    check_eq(rc, 0, f"exit status under the unit's sandbox; stderr: {err.read()}")

    with open(trace) as f:
        lines = f.read().splitlines()
    start = next((i for i, ln in enumerate(lines)
                  if re.match(rf'\d+\s+execve\("{re.escape(CGLOOPFS)}"', ln)), None)
    check(start is not None, f"no execve of {CGLOOPFS} in the trace")
    made, bad_sockets = set(), set()
    for ln in lines[start + 1:]:
        m = re.match(r"\d+\s+(?:<\.\.\. )?([a-z_0-9]+)(?:\(| resumed>)", ln)
        if m:
            made.add(m.group(1))
        m = re.match(r"\d+\s+socket(?:pair)?\((AF_\w+)", ln)
        if m and m.group(1) not in families:
            bad_sockets.add(m.group(1))
    check(len(made) > 20, f"too few system calls in the trace: {sorted(made)}")
    check_eq(sorted(made - allowed), [],
             f"system calls outside SystemCallFilter={' '.join(groups)}")
    check_eq(sorted(bad_sockets), [], "socket families outside RestrictAddressFamilies=")


def test_sd_notify_ready_status_stopping(t):
    path = t.path("notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    t.defer(sock.close)
    sock.bind(path)
    messages = []

    def wait_message(pred, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for m in messages:
                if pred(m):
                    return m
            sock.settimeout(max(0.01, end - time.monotonic()))
            with contextlib.suppress(socket.timeout):
                messages.append(sock.recv(4096).decode())
        return next((m for m in messages if pred(m)), None)

    images = [{"name": n, "path": make_image(t.path(n), MiB)} for n in ("a.img", "b.img")]
    manifest = t.write_manifest(images)
    cg = t.cgroup()
    child = cg.child("io")
    with t.mount(manifest, env=dict(os.environ, NOTIFY_SOCKET=path)) as m:
        ready = wait_message(lambda x: "READY=1" in x.split("\n"), 10)
        check(ready, f"no READY=1 from the daemon: {messages}")
        status = re.search(r"^STATUS=(.*)$", ready, re.M)
        check(status, f"READY=1 came without STATUS=: {ready!r}")
        check_eq(status.group(1),
                 f"Serving 2 images on {m.mnt}; 0 cgroup workers live, 0 busy", "STATUS=")
        # I/O from a cgroup of ours: its worker shows up within a few seconds.
        cg.run(child, ["dd", f"if={m.path('a.img')}", "of=/dev/null", "bs=4k", "count=8"])
        live = wait_message(lambda x: "1 cgroup worker live" in x, 10)
        check(live, f"no STATUS= with the cgroup's worker within 10 s: {messages}")
    stopping = wait_message(lambda x: "STOPPING=1" in x.split("\n"), 10)
    check(stopping, f"no STOPPING=1 after the unmount: {messages}")
    check(messages.index(stopping) == len(messages) - 1, f"messages after STOPPING=1: {messages}")


# --------------------------------------------------------------------------
# mount(8) and fstab, through the installed tree

# Runs in a private mount namespace (unshare --mount), where the installed
# tree is where the system looks: mount(8) finds helpers only in /sbin, and it
# clears PATH before it runs one, so mount.fuse3's /bin/sh finds `cgloopfs`
# only in its default search path (/usr/local/sbin:/usr/local/bin:...). So:
# /usr/local/bin is the DESTDIR's bindir, /usr/local/sbin is empty, and /sbin
# holds only the installed mount.fuse.cgloopfs and mount.fuse3 (no generic
# mount.fuse: a mount that works went through our helper name). Every mount is
# undone and every daemon ended here; the test checks that none is left.
IN_NAMESPACE = r"""
import json, os, signal, subprocess, time
from harness import alive, daemons_for, mount_entry
spec = json.loads(sys.argv[1])
out = {"errors": [], "cases": []}
started = []

def entry(mnt):
    e = mount_entry(mnt)
    return list(e[1:]) if e else None

try:
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    for src, dst in spec["binds"]:
        subprocess.run(["mount", "--bind", src, dst], check=True)
    for c in spec["cases"]:
        res = {"name": c["name"]}
        out["cases"].append(res)
        mnt = c["mnt"]
        r = subprocess.run(c["argv"], capture_output=True, text=True, timeout=30)
        res["rc"], res["stderr"] = r.returncode, r.stderr
        res["entry"] = entry(mnt)
        pids = daemons_for(mnt)
        started += pids
        res["daemons"] = len(pids)
        if pids:
            res["exe"] = os.readlink(f"/proc/{pids[0]}/exe")
        if res["entry"]:
            res["listing"] = sorted(os.listdir(mnt))
            with open(os.path.join(mnt, c["file"]), "rb") as f:
                res["head"] = f.read(64).hex()
            r = subprocess.run(c["ctl"] + ["-m", mnt, "--json", "get"],
                               capture_output=True, text=True)
            res["get"] = json.loads(r.stdout) if r.returncode == 0 else r.stderr
            r = subprocess.run(["umount", mnt], capture_output=True, text=True)
            res["umount_rc"], res["umount_stderr"] = r.returncode, r.stderr
            res["entry_after_umount"] = entry(mnt)
            end = time.monotonic() + 10
            while any(alive(p) for p in pids) and time.monotonic() < end:
                time.sleep(0.05)
            res["alive_after_umount"] = [p for p in pids if alive(p)]
except Exception as e:
    out["errors"].append(repr(e))
finally:
    for c in spec["cases"]:
        if entry(c["mnt"]):
            subprocess.run(["umount", "-l", c["mnt"]])
    for p in started:
        if alive(p):
            os.kill(p, signal.SIGKILL)
print(json.dumps(out))
"""


@timeout(120)
def test_mount_and_fstab_through_the_installed_helper(t):
    need("unshare")
    inst = install(t)
    sbin = os.path.realpath("/sbin")
    helper = inst.path(inst.sbindir, "mount.fuse.cgloopfs")
    fuse3 = os.readlink(helper)
    orig_sbin = t.mkdir("orig-sbin")
    new_sbin = t.mkdir("sbin")
    os.symlink(os.path.join(orig_sbin, os.path.basename(fuse3)),
               os.path.join(new_sbin, os.path.basename(fuse3)))
    os.symlink(fuse3, os.path.join(new_sbin, "mount.fuse.cgloopfs"))
    binds = [[sbin, orig_sbin], [new_sbin, sbin],
             [inst.path(inst.bindir), "/usr/local/bin"]]
    if os.path.isdir("/usr/local/sbin"):
        binds.append([t.mkdir("empty"), "/usr/local/sbin"])

    data = pattern(64, 3)
    backing = make_image(t.path("disk.img"), 2 * MiB, [(MiB, data)])
    manifest = t.write_manifest([{"name": "one.img", "path": backing, "offset": "1MiB"}])
    mnts = [t.mkdir(f"mnt{i}") for i in range(4)]
    t.defer(harness.kill_daemons_for, *mnts)
    fstab = t.path("fstab")
    with open(fstab, "w") as f:
        f.write("# a temporary fstab\n"
                f"{manifest} {mnts[1]} fuse.cgloopfs max_workers=8,allow_other,noauto,nofail 0 0\n"
                f"{backing} {mnts[2]} fuse.cgloopfs noauto,bogus_opt 0 0\n")
    ctl = [CGLOOPCTL]
    cases = [
        {"name": "mount -t", "mnt": mnts[0], "file": "one.img", "ctl": ctl,
         "argv": ["mount", "-t", "fuse.cgloopfs", manifest, mnts[0], "-o",
                  "idle_timeout=5,nofail,_netdev,noatime"]},
        {"name": "fstab", "mnt": mnts[1], "file": "one.img", "ctl": ctl,
         "argv": ["mount", "--fstab", fstab, mnts[1]]},
        {"name": "fstab, unknown option", "mnt": mnts[2], "file": "", "ctl": ctl,
         "argv": ["mount", "--fstab", fstab, mnts[2]]},
        {"name": "mount -t, unknown option", "mnt": mnts[3], "file": "", "ctl": ctl,
         "argv": ["mount", "-t", "fuse.cgloopfs", backing, mnts[3], "-o", "noatime,nosuch=1"]},
    ]
    spec = {"binds": binds, "cases": cases}
    res = harness.run_in_mount_namespace(IN_NAMESPACE, spec, timeout=100)
    check(not res["errors"], f"in the namespace: {res['errors']}")
    check_eq(len(res["cases"]), len(cases), "cases run")
    got = {c["name"]: c for c in res["cases"]}

    for name, want in (("mount -t", {"idle_timeout": 5}), ("fstab", {"max_workers": 8})):
        c = got[name]
        check_eq(c["rc"], 0, f"{name}: mount status ({c['stderr']!r})")
        check_eq(c["entry"], ["fuse.cgloopfs", manifest], f"{name}: type and source")
        check_eq(c["daemons"], 1, f"{name}: daemons")
        check_eq(c["exe"], "/usr/local/bin/cgloopfs", f"{name}: the daemon run")
        check_eq(c["listing"], ["one.img"], f"{name}: readdir")
        check_eq(bytes.fromhex(c["head"]), data, f"{name}: data at the offset")
        check(isinstance(c["get"], dict), f"{name}: cgloopctl get: {c['get']!r}")
        for k, v in want.items():
            check_eq(c["get"].get(k), v, f"{name}: {k} from the options")
        check_eq(c["umount_rc"], 0, f"{name}: umount ({c['umount_stderr']!r})")
        check_eq(c["entry_after_umount"], None, f"{name}: mounted after umount")
        check_eq(c["alive_after_umount"], [], f"{name}: daemon alive 10 s after umount")

    for name, option in (("fstab, unknown option", "bogus_opt"),
                         ("mount -t, unknown option", "nosuch")):
        c = got[name]
        check(c["rc"] != 0, f"{name}: mount succeeded")
        check(c["entry"] is None, f"{name}: left a mount")
        check_eq(c["daemons"], 0, f"{name}: daemons left")
        check(f'unknown option "{option}' in c["stderr"],
              f"{name}: stderr {c['stderr']!r} does not name {option}")
    check_eq([p for m in mnts for p in harness.daemons_for(m)], [], "daemons left")


if __name__ == "__main__":
    harness.main()
