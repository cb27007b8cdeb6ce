# SPDX-License-Identifier: GPL-2.0-or-later
"""A small test harness for cgloopfs integration tests that really mount.

Standard library only. A case module defines `test_*(t)` functions and ends with

    if __name__ == "__main__":
        harness.main()

Every test runs in order, each with a fresh temporary directory (`t.tmp`) and
its own clean-up stack (`t.defer`). Nothing is skipped: a test that cannot run
(no /dev/fuse, no fusermount3, no writable cgroup2) fails.

Environment:
  CGLOOPFS         the daemon binary (set by meson test; else the build directory
                   inside this checkout, see find_build_dir()); CGLOOPCTL, GATEFS
                   and CGLOAD likewise
  CGL_RESULTS_DIR  if set, <dir>/<module>.json gets {"passed", "failed", "cases"}
  CGL_TEST_FILTER  run only tests whose name contains this string
  CGL_KEEP_TMP     keep the temporary directories (for debugging)
"""

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import inspect
import itertools
import json
import mmap
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

# --------------------------------------------------------------------------
# Configuration

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(os.path.dirname(HERE))

DEFAULT_TIMEOUT = 90          # seconds per test (SIGALRM)
MOUNT_WAIT = 10.0             # seconds for a mount to appear
EXIT_WAIT = 10.0              # seconds for the daemon to exit after unmount
BAD_STDERR = re.compile(r"error|warning|fatal|abort|Sanitizer|runtime error", re.I)

TMP_BASE = "/var/tmp" if os.path.isdir("/var/tmp") else "/tmp"


def find_build_dir():
    """The build directory of THIS checkout, or None.

    `meson test` sets CGLOOPFS (and CGLOOPCTL, GATEFS, CGLOAD) to its own
    build's programs: that build wins. Run by hand, the harness takes a meson
    build directory directly inside the checkout that holds a built daemon
    ("build" first, else the one built last). It never looks outside the
    checkout: a daemon from another tree would test other code."""
    p = os.environ.get("CGLOOPFS")
    if p:
        return os.path.dirname(os.path.dirname(os.path.abspath(p)))  # BUILD/src/cgloopfs
    found = []
    for d in sorted(os.listdir(SRC_ROOT)):
        b = os.path.join(SRC_ROOT, d)
        daemon = os.path.join(b, "src", "cgloopfs")
        if os.path.isdir(os.path.join(b, "meson-private")) and os.access(daemon, os.X_OK):
            found.append((d != "build", -os.stat(daemon).st_mtime, b))
    return min(found)[2] if found else None


BUILD_DIR = find_build_dir()
# Without a build, the names still point into the checkout (the preflight fails every
# test with NO_BUILD, saying so).
_BUILD = BUILD_DIR or os.path.join(SRC_ROOT, "build")
NO_BUILD = (f"a build of this checkout: CGLOOPFS is not set and no meson build directory "
            f"in {SRC_ROOT} holds src/cgloopfs (meson setup build && ninja -C build)")


def build_program(env, *parts):
    """A program of the build: $env when set (by meson), else its place in BUILD_DIR."""
    p = os.environ.get(env)
    return os.path.abspath(p) if p else os.path.join(_BUILD, *parts)


CGLOOPFS = build_program("CGLOOPFS", "src", "cgloopfs")
CGLOOPCTL = build_program("CGLOOPCTL", "src", "cgloopctl")
GATEFS = build_program("GATEFS", "tests", "tools", "gatefs")
CGLOAD = build_program("CGLOAD", "tests", "tools", "cgload")

KiB = 1 << 10
MiB = 1 << 20


class TestFailure(AssertionError):
    pass


class Terminated(BaseException):
    """SIGTERM/SIGHUP (meson's timeout): unwind so every clean-up runs."""


class TestTimeout(Exception):
    pass


# --------------------------------------------------------------------------
# Small assertion helpers

def check(cond, msg="check failed"):
    if not cond:
        raise TestFailure(msg)


def check_eq(got, want, what="value"):
    if got != want:
        raise TestFailure(f"{what}: got {short(got)}, want {short(want)}")


def short(v, limit=200):
    r = repr(v)
    return r if len(r) <= limit else r[:limit] + f"... ({len(r)} chars)"


def first_difference(a, b):
    """Index of the first differing byte (or the shorter length), None if equal."""
    if a == b:
        return None
    n = min(len(a), len(b))
    step = 4096
    for base in range(0, n, step):
        if a[base:base + step] != b[base:base + step]:
            for i in range(base, min(base + step, n)):
                if a[i] != b[i]:
                    return i
    return n


def check_bytes(got, want, what="data"):
    i = first_difference(got, want)
    if i is not None:
        raise TestFailure(
            f"{what}: differs at byte {i} (len got {len(got)}, want {len(want)}); "
            f"got {bytes(got[i:i + 16]).hex()} want {bytes(want[i:i + 16]).hex()}")


def expect_errno(err, fn, *args, **kwargs):
    """Call fn and require it to fail with OSError errno `err` (or one of a tuple)."""
    errs = err if isinstance(err, tuple) else (err,)
    try:
        r = fn(*args, **kwargs)
    except OSError as e:
        if e.errno not in errs:
            names = "/".join(errno.errorcode.get(x, str(x)) for x in errs)
            raise TestFailure(f"{getattr(fn, '__name__', fn)}: failed with "
                              f"{errno.errorcode.get(e.errno, e.errno)} ({e}), want {names}")
        return e
    names = "/".join(errno.errorcode.get(x, str(x)) for x in errs)
    raise TestFailure(f"{getattr(fn, '__name__', fn)}: succeeded ({short(r)}), want {names}")


# --------------------------------------------------------------------------
# Files and I/O

def pattern(n, seed):
    """Deterministic pseudo-random bytes."""
    return random.Random(seed).randbytes(n)


def make_sparse(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def make_image(path, size, sentinels=()):
    """A sparse image of `size` bytes with (offset, bytes) sentinels written in."""
    make_sparse(path, size)
    fd = os.open(path, os.O_WRONLY)
    try:
        for off, data in sentinels:
            pwrite_all(fd, data, off)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def pwrite_all(fd, data, off):
    done = 0
    while done < len(data):
        n = os.pwrite(fd, data[done:], off + done)
        if n <= 0:
            raise TestFailure(f"pwrite returned {n} at {off + done}")
        done += n
    return done


def pread_all(fd, n, off):
    """Read up to n bytes (less only at end of file)."""
    out = bytearray()
    while len(out) < n:
        b = os.pread(fd, n - len(out), off + len(out))
        if not b:
            break
        out += b
    return bytes(out)


def file_pread(path, off, n):
    fd = os.open(path, os.O_RDONLY)
    try:
        return pread_all(fd, n, off)
    finally:
        os.close(fd)


def file_pwrite(path, off, data, flags=0):
    fd = os.open(path, os.O_WRONLY | flags)
    try:
        return pwrite_all(fd, data, off)
    finally:
        os.close(fd)


def read_whole(path):
    with open(path, "rb") as f:
        return f.read()


_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.fallocate.restype = ctypes.c_int

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
PUNCH = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
ZERO = FALLOC_FL_ZERO_RANGE
ZERO_KEEP = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE


def fallocate(fd, mode, off, length):
    if _libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"fallocate(mode={mode:#x}, {off}, {length}): {os.strerror(e)}")


def _aligned(n):
    size = max(mmap.PAGESIZE, (n + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE)
    return mmap.mmap(-1, size)


def read_direct(path, off, n):
    """O_DIRECT read through a page-aligned buffer; off and n must suit the device."""
    buf = _aligned(n)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        with memoryview(buf) as mv, mv[:n] as view:
            got = os.preadv(fd, [view], off)
        return bytes(buf[:got])
    finally:
        os.close(fd)
        buf.close()


def write_direct(path, off, data):
    buf = _aligned(len(data))
    buf[:len(data)] = data
    fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
    try:
        with memoryview(buf) as mv, mv[:len(data)] as view:
            return os.pwritev(fd, [view], off)
    finally:
        os.close(fd)
        buf.close()


def drop_caches():
    subprocess.run(["sync"], check=False)
    with contextlib.suppress(OSError):
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")


# --------------------------------------------------------------------------
# Manifests

def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string for these values
    raise TypeError(f"no TOML for {v!r}")


def manifest_text(images, defaults=None):
    """TOML for [defaults] and [[image]] tables given as dicts (order kept)."""
    out = []
    if defaults:
        out.append("[defaults]")
        out += [f"{k} = {toml_value(v)}" for k, v in defaults.items()]
        out.append("")
    for img in images:
        out.append("[[image]]")
        out += [f"{k} = {toml_value(v)}" for k, v in img.items()]
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------
# Mount table

def _unescape(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mountinfo():
    """[(mount point, fstype, source)] from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            fields = left.split(" ")
            rfields = right.split(" ")
            out.append((_unescape(fields[4]), rfields[0],
                        _unescape(rfields[1]) if len(rfields) > 1 else ""))
    return out


def mount_entry(path):
    """The mountinfo entry mounted exactly at path (the last one), or None."""
    path = os.path.realpath(path)
    found = None
    for e in mountinfo():
        if e[0] == path:
            found = e
    return found


def is_mounted(path):
    return mount_entry(path) is not None


def mounts_under(directory):
    d = os.path.realpath(directory).rstrip("/") + "/"
    return [e[0] for e in mountinfo() if (e[0] + "/").startswith(d)]


def processes_naming(program, mnt):
    """Pids of `program` processes whose command line names this (unique) mount point."""
    mnt = os.path.realpath(mnt)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == program and \
                any(os.path.realpath(a) == mnt for a in argv[1:] if a.startswith("/")):
            pids.append(int(d))
    return pids


def daemons_for(mnt):
    """Pids of cgloopfs processes whose command line names this (unique) mount point."""
    return processes_naming("cgloopfs", mnt)


def alive(pid):
    """Is pid running (not a zombie)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def kill_daemons_for(*mnts):
    """Safety net: daemons whose command line names our unique mount points are ours;
    kill any still running and fail the test if there were some."""
    pids = [p for m in mnts for p in daemons_for(m) if alive(p)]
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    if pids:
        raise TestFailure(f"killed leftover daemons {pids}")


def run_in_mount_namespace(script, spec, timeout):
    """Run the Python `script` with json `spec` as argv[1] in a private mount
    namespace (unshare --mount), with this module importable as `harness`; the
    script prints a JSON result as its last line, which is returned."""
    prelude = f"import sys\nsys.path.insert(0, {HERE!r})\nimport harness\n"
    r = run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c",
             prelude + script, json.dumps(spec)], timeout=timeout)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise TestFailure(f"no result from the namespace: {r.stdout!r} {r.stderr!r}")


def wait_for(pred, timeout, interval=0.02):
    end = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(interval)


def stop(p, timeout=10):
    """SIGKILL a process started in a session of its own and everything in its
    process group, and reap it. Killing only a shell loop leaves its current
    command running, holding files open under a mount the test is about to end."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout)
    # The group outlives its leader while a member lives.
    if not wait_for(lambda: not _group_alive(p.pid), timeout, 0.01):
        raise TestFailure(f"process group {p.pid} lives on after SIGKILL")


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a member runs as another user: the group lives


def fusermount_unmount(mnt, tries=10):
    """fusermount3 -u with retries, then -uz. Returns a note on what happened."""
    for _ in range(tries):
        if not is_mounted(mnt):
            return None
        r = subprocess.run(["fusermount3", "-u", mnt], capture_output=True, text=True)
        if r.returncode == 0 and wait_for(lambda: not is_mounted(mnt), 2):
            return None
        time.sleep(0.2)
    if is_mounted(mnt):
        subprocess.run(["fusermount3", "-uz", mnt], capture_output=True)
        if is_mounted(mnt):
            subprocess.run(["umount", "-l", mnt], capture_output=True)
        return f"{mnt} stayed busy: lazily unmounted"
    return None


def run(cmd, check_rc=True, timeout=120, **kw):
    """subprocess.run with captured text output; fails the test on a bad exit."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    r = subprocess.run(cmd, timeout=timeout, **kw)
    if check_rc and r.returncode != 0:
        raise TestFailure(f"{' '.join(map(str, cmd))}: exit {r.returncode}\n"
                          f"stdout: {r.stdout}\nstderr: {r.stderr}")
    return r


def rmdir_when_free(path, timeout=5):
    """rmdir a cgroup (of any hierarchy) as a container runtime does, retrying while
    it is busy; returns the seconds it took."""
    t0 = time.monotonic()
    while True:
        try:
            os.rmdir(path)
            return time.monotonic() - t0
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() - t0 > timeout:
                raise
            time.sleep(0.002)


# --------------------------------------------------------------------------
# Test context

class Context:
    """What a test gets: a fresh temporary directory and a clean-up stack."""

    def __init__(self, name, tmp):
        self.name = name
        self.tmp = tmp
        self._cleanups = []
        self.notes = []

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def mkdir(self, *parts, mode=0o755):
        p = self.path(*parts)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        return p

    def defer(self, fn, *args, **kwargs):
        """Run fn(*args) at the end of the test, last deferred first, even on failure."""
        self._cleanups.append((fn, args, kwargs))

    def run_cleanups(self):
        errors = []
        while self._cleanups:
            fn, args, kwargs = self._cleanups.pop()
            try:
                fn(*args, **kwargs)
            except Exception as e:  # keep cleaning up
                errors.append(f"cleanup {getattr(fn, '__name__', fn)}: "
                              f"{''.join(traceback.format_exception_only(e)).strip()}")
        return errors

    def mount(self, source, **kw):
        return Mount(self, source, **kw)

    def cgroup(self):
        return Cgroup(self)

    def write_manifest(self, text, name="m.toml"):
        """Write a manifest (text, or a list of image dicts) into the temp dir."""
        if not isinstance(text, str):
            text = manifest_text(text)
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p


# --------------------------------------------------------------------------
# Mount

_active_mounts = []


class Mount:
    """Runs `cgloopfs -f [-o opts] SOURCE MNT`, waits for the mount, and on exit
    unmounts, requires exit status 0 and a clean stderr.

    allow_stderr: a regex; stderr lines matching it are not held against the
    daemon. expect_exit: the exit status required at the end (None: any).
    """

    _count = itertools.count()

    def __init__(self, t, source, opts=None, mnt=None, allow_stderr=None, expect_exit=0,
                 extra_args=(), preexec=None, env=None):
        self.t = t
        self.source = source
        self.opts = opts
        self.mnt = mnt or t.path(f"mnt{next(Mount._count)}")
        self.allow_stderr = re.compile(allow_stderr, re.I) if allow_stderr else None
        self.expect_exit = expect_exit
        self.extra_args = list(extra_args)
        self.preexec = preexec
        self.env = env
        self.proc = None
        self.stderr_path = None
        self.stdout_path = None

    # -- use
    def path(self, name=""):
        return os.path.join(self.mnt, name) if name else self.mnt

    @property
    def pid(self):
        return self.proc.pid

    def stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def argv(self):
        a = [CGLOOPFS, "-f"] + self.extra_args
        if self.opts:
            a += ["-o", self.opts]
        return a + [self.source, self.mnt]

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=EXIT_WAIT):
        """Wait for the daemon to end by itself; returns its exit status."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"daemon pid {self.proc.pid} still running after {timeout} s")

    # -- context manager
    def __enter__(self):
        for tool, p in (("/dev/fuse", "/dev/fuse"), ("daemon", CGLOOPFS)):
            if not os.path.exists(p):
                raise TestFailure(f"cannot run: {tool} {p} is missing")
        if shutil.which("fusermount3") is None:
            raise TestFailure("cannot run: fusermount3 is not installed")
        os.makedirs(self.mnt, exist_ok=True)
        if is_mounted(self.mnt):
            raise TestFailure(f"{self.mnt} is already a mount point")
        n = next(Mount._count)
        self.stderr_path = self.t.path(f"daemon{n}.stderr")
        self.stdout_path = self.t.path(f"daemon{n}.stdout")
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, preexec_fn=self.preexec, env=self.env,
                                         start_new_session=True)
        _active_mounts.append(self)
        try:
            end = time.monotonic() + MOUNT_WAIT
            while True:
                e = mount_entry(self.mnt)
                if e is not None and e[1].startswith("fuse"):
                    break
                if self.proc.poll() is not None:
                    raise TestFailure(f"daemon exited with {self.proc.returncode} before "
                                      f"mounting; stderr:\n{self.stderr()}")
                if time.monotonic() > end:
                    raise TestFailure(f"no mount at {self.mnt} after {MOUNT_WAIT} s; "
                                      f"stderr:\n{self.stderr()}")
                time.sleep(0.02)
        except BaseException:
            self._teardown(failing=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        problems = self._teardown(failing=exc_type is not None)
        if problems and exc_type is None:
            raise TestFailure("; ".join(problems))
        if problems:
            self.t.notes.extend(problems)
        return False

    def _teardown(self, failing):
        problems = []
        if self in _active_mounts:
            _active_mounts.remove(self)
        note = fusermount_unmount(self.mnt, tries=3 if failing else 10)
        if note:
            problems.append(note)
        if self.proc is None:
            return problems
        try:
            # Lazily unmounted with files still open: the daemon cannot see the end.
            rc = self.proc.wait(2 if note else EXIT_WAIT)
        except subprocess.TimeoutExpired:
            rc = None
            if not note:
                problems.append(f"daemon pid {self.proc.pid} did not exit within "
                                f"{EXIT_WAIT} s of the unmount")
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    problems.append(f"daemon pid {self.proc.pid} survives "
                                    f"{signal.Signals(sig).name}")
        if rc is not None and self.expect_exit is not None and rc != self.expect_exit:
            problems.append(f"daemon exit status {rc}, want {self.expect_exit}")
        bad = [ln for ln in self.stderr().splitlines()
               if BAD_STDERR.search(ln) and not (self.allow_stderr and
                                                 self.allow_stderr.search(ln))]
        if bad:
            problems.append("daemon stderr: " + " | ".join(bad[:10]))
        if is_mounted(self.mnt):
            problems.append(f"{self.mnt} is still mounted")
        if problems or failing:
            err = self.stderr().strip()
            if err:
                self.t.notes.append(f"daemon stderr ({self.mnt}):\n{err[-4000:]}")
        return problems


# --------------------------------------------------------------------------
# Failing runs (bad input): the daemon must exit nonzero and mount nothing

def run_daemon_expect_failure(t, args, want_rc, must_contain=(), timeout=10, mnt=None,
                              preexec=None, one_line=True):
    """Run `cgloopfs -f ARGS` (ARGS ends with the mount point, or pass mnt), require exit
    status want_rc, every string of must_contain in the error message, and no mount."""
    mnt = mnt or args[-1]
    cmd = [CGLOOPFS, "-f"] + list(args)
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=preexec,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        fusermount_unmount(mnt)
        p.kill()
        out, err = p.communicate()
        raise TestFailure(f"{cmd}: still running after {timeout} s (mounted: it must "
                          f"refuse); stderr: {err}")
    finally:
        if is_mounted(mnt):
            fusermount_unmount(mnt)
            raise TestFailure(f"{cmd}: left a mount at {mnt}")
    check(p.returncode == want_rc,
          f"{cmd}: exit status {p.returncode}, want {want_rc}; stderr: {err!r}")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    check(lines, f"{cmd}: no message on stderr")
    msg_lines = [ln for ln in lines if not ln.startswith("Try '")]
    if one_line:
        check(len(msg_lines) == 1, f"{cmd}: want one message line, got {lines!r}")
    msg = msg_lines[0] if msg_lines else lines[0]
    for s in must_contain:
        check(s in msg, f"{cmd}: message {msg!r} does not mention {s!r}")
    check(not mounts_under(mnt), f"{cmd}: something is mounted under {mnt}")
    return msg


# --------------------------------------------------------------------------
# Cgroups

def cgroup2_root():
    """The cgroup2 mount point, from /proc/self/mountinfo (None if there is none)."""
    for mnt, fstype, _ in mountinfo():
        if fstype == "cgroup2":
            return mnt
    return None


def cgroup_of(pid):
    """The cgroup v2 path ("/a/b") of a process, or None."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        return None
    return None


class Cgroup:
    """A per-test parent cgroup `cgloopfs-test-<pid>-<n>` with children.

    Processes started with popen()/run() move themselves into a child before
    exec. Clean-up kills what is left in these cgroups (only our processes can be
    there) and removes them, children first. Registered on the test's stack.
    """

    _count = itertools.count()

    def __init__(self, t):
        root = cgroup2_root()
        if root is None:
            raise TestFailure("cannot run: no cgroup2 mount in /proc/self/mountinfo")
        self.root = root
        self.name = f"cgloopfs-test-{os.getpid()}-{next(Cgroup._count)}"
        self.path = os.path.join(root, self.name)
        self.children = []
        self._started = []
        try:
            os.mkdir(self.path)
        except OSError as e:
            raise TestFailure(f"cannot run: cgroup2 at {root} is not writable: {e}")
        t.defer(self.cleanup)

    def child(self, name):
        p = os.path.join(self.path, name)
        os.mkdir(p)
        self.children.append(p)
        return p

    def remove(self, child_path, timeout=5):
        """rmdir a child as a container runtime does: retrying while it is busy.
        A charged worker (charge=cgroup) leaves a cgroup when its other members
        are gone, which it learns a moment after they go. Returns the seconds
        it took."""
        took = rmdir_when_free(child_path, timeout)
        self.children.remove(child_path)
        return took

    def rel(self, child_path):
        """The path as /proc/PID/cgroup shows it."""
        return "/" + os.path.relpath(child_path, self.root)

    def _preexec(self, child_path):
        procs = os.path.join(child_path, "cgroup.procs")

        def enter():
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
        return enter

    def popen(self, child_path, cmd, **kw):
        """Start cmd in the child cgroup, in a process group of its own: stop() ends
        it together with what it started (the dd of a shell loop)."""
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(cmd, preexec_fn=self._preexec(child_path), **kw)
        self._started.append(p)
        return p

    def run(self, child_path, cmd, timeout=60, check_rc=True, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        r = subprocess.run(cmd, preexec_fn=self._preexec(child_path), timeout=timeout, **kw)
        if check_rc and r.returncode != 0:
            raise TestFailure(f"{cmd} in {child_path}: exit {r.returncode}\n{r.stderr}")
        return r

    @staticmethod
    def procs(path):
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    @staticmethod
    def populated(path):
        try:
            with open(os.path.join(path, "cgroup.events")) as f:
                return "populated 1" in f.read()
        except OSError:
            return False

    def _subtree(self):
        """Every cgroup below ours (also ones a test made itself), deepest first."""
        dirs = []
        for top, subdirs, _ in os.walk(self.path, topdown=False):
            dirs += [os.path.join(top, d) for d in subdirs]
        return dirs

    def cleanup(self):
        errors = []
        if not os.path.isdir(self.path):
            return
        if self.populated(self.path) or self.procs(self.path):
            # cgroup.kill takes the whole subtree; only our processes can be there.
            kill = os.path.join(self.path, "cgroup.kill")
            if os.path.exists(kill):
                with contextlib.suppress(OSError):
                    with open(kill, "w") as f:
                        f.write("1")
            else:  # older kernels
                for p in self._subtree() + [self.path]:
                    for pid in self.procs(p):
                        with contextlib.suppress(OSError):
                            os.kill(pid, signal.SIGKILL)
        for p in self._started:  # reap our children: zombies keep a cgroup busy
            with contextlib.suppress(Exception):
                p.wait(10)
        # A process blocked in a FUSE request dies only once it is answered.
        if not wait_for(lambda: not self.populated(self.path), 15, 0.05):
            errors.append(f"{self.path}: processes left: "
                          f"{[(p, self.procs(p)) for p in self._subtree() + [self.path]]}")
        for p in self._subtree() + [self.path]:
            for _ in range(50):
                try:
                    os.rmdir(p)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                errors.append(f"cannot remove {p}")
        if errors:
            raise TestFailure("; ".join(errors))


# --------------------------------------------------------------------------
# cgloopctl, and what the daemon says about its workers

def ctl(*args, check_rc=0, user=None, timeout=30):
    """Run `cgloopctl ARGS` (as uid/gid `user` when given); require exit status
    `check_rc` (None: any). Returns the CompletedProcess (text stdout, stderr)."""
    cmd = [CGLOOPCTL] + [str(a) for a in args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check_rc is not None and r.returncode != check_rc:
        raise TestFailure(f"{cmd}: exit {r.returncode} (want {check_rc}); "
                          f"stdout {r.stdout!r} stderr {r.stderr!r}")
    return r


def ctl_json(*args, **kw):
    """`cgloopctl --json ARGS`, parsed."""
    return json.loads(ctl("--json", *args, **kw).stdout)


def ctl_mount(mnt, *args, json_out=True, check_rc=True):
    """`cgloopctl [--json] ARGS -m MNT`: the parsed JSON (json_out, and it succeeded),
    else the CompletedProcess. check_rc=False accepts any exit status."""
    r = ctl(*(["--json"] if json_out else []), *args, "-m", mnt,
            check_rc=0 if check_rc else None)
    return json.loads(r.stdout) if json_out and r.returncode == 0 else r


def workers_by_path(mnt):
    return {w["cgroup"]: w for w in ctl_mount(mnt, "workers") if not w["root"]}


def stats_by_path(mnt):
    return {s["cgroup"]: s for s in ctl_mount(mnt, "stats")["cgroups"]}


@functools.lru_cache(maxsize=None)
def sanitized():
    """Is the daemon built with AddressSanitizer? gcc links its runtime as a shared
    library, clang into the program: its entry point is there either way."""
    with open(CGLOOPFS, "rb") as f:
        return b"__asan_init" in f.read()


def small_quarantine_env():
    """For a daemon whose memory a test measures. AddressSanitizer keeps freed memory
    in a quarantine (256 MiB by default), so RSS would only grow: the daemon gets a
    1 MiB one (still catching a use after free of anything freed recently). None (the
    test's environment) for a build without it."""
    if not sanitized():
        return None
    env = dict(os.environ)
    opts = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + \
        "quarantine_size_mb=1:thread_local_quarantine_size_kb=16"
    return env


def daemon_threads(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise TestFailure(f"no Threads: line for pid {pid}")


def daemon_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise TestFailure(f"no VmRSS: line for pid {pid}")


def where_blocked(pid):
    """Where a process waits, for a failure message: each thread's kernel stack
    (the FUSE request it waits for shows as fuse_... frames), or why not."""
    out = []
    try:
        tids = sorted(os.listdir(f"/proc/{pid}/task"), key=int)
    except OSError as e:
        return f"pid {pid}: {e.strerror}"
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{pid}/task/{tid}/stack") as f:
                frames = [ln.split()[-1].split("+")[0] for ln in f if ln.strip()]
        except OSError as e:
            out.append(f"pid {pid} thread {tid}: {e.strerror}")
            continue
        out.append(f"pid {pid} thread {tid} ({state}): {' < '.join(frames[:8])}")
    return "\n".join(out)


def outputs_within(procs, t0, within, event, also=lambda: ""):
    """The stdout of each process, all ended within `within` s of `event` (at t0);
    if one is not, fail with where each one still blocked waits (and `also()`)."""
    outs = []
    for i, p in enumerate(procs):
        try:
            outs.append(p.communicate(timeout=max(within - (time.monotonic() - t0), 0.1))[0])
        except subprocess.TimeoutExpired:
            blocked = [where_blocked(q.pid) for q in procs if q.poll() is None]
            raise TestFailure(
                f"caller {i} is still blocked {time.monotonic() - t0:.1f} s after {event}; "
                "where the blocked callers wait:\n" + "\n".join(blocked) + also()) from None
    return outs


# Opens a file, says so, and reads 4 KiB at 0 from it each time a line comes on stdin.
HOLD_PROG = r"""
import json, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("open", flush=True)
for line in sys.stdin:
    try:
        out = {"ok": len(os.pread(fd, 4096, 0)) == 4096}
    except OSError as e:
        out = {"ok": False, "errno": e.errno}
    print(json.dumps(out), flush=True)
"""


class Holder:
    """A process, started with `popen` (a cgroup's), that keeps `path` open and
    reads from it when asked: what a file still open sees, say after its daemon
    went."""

    def __init__(self, popen, path):
        self.p = popen([sys.executable, "-c", HOLD_PROG, path], stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, text=True)
        check_eq(self.p.stdout.readline().strip(), "open", "the holder's open")

    def read(self, timeout, also=lambda: ""):
        """{"ok": ...} or {"ok": False, "errno": N}; fails, saying where it waits (and
        `also()`), when the read is unanswered after `timeout` s."""
        self.p.stdin.write("\n")
        self.p.stdin.flush()
        got = []
        reader = threading.Thread(target=lambda: got.append(self.p.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        if not got:
            raise TestFailure(f"a read on a file kept open is unanswered after {timeout} s; "
                              f"where it waits:\n{where_blocked(self.p.pid)}{also()}")
        return json.loads(got[0])

    def close(self):
        self.p.stdin.close()
        check_eq(self.p.wait(5), 0, "the holder's exit status")


def fuse_holders():
    """[(pid, comm, state)] of the processes with /dev/fuse open: what keeps a
    connection alive (fusermount3's auto_unmount waits for it to end). Each thread's
    descriptors are looked at: those of a killed process whose main thread is gone
    stay with its threads still stuck in the kernel."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            for tid in os.listdir(f"/proc/{pid}/task"):
                fds = f"/proc/{pid}/task/{tid}/fd"
                if any(_readlink(f"{fds}/{fd}") == "/dev/fuse" for fd in os.listdir(fds)):
                    out.append((int(pid), stat[stat.index("(") + 1:stat.rindex(")")],
                                stat[stat.rindex(")") + 2]))
                    break
        except OSError:
            continue
    return out


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def fusectl(t):
    """Where fusectl is mounted (systemd mounts it at /sys/fs/fuse/connections).
    Where it is mounted nowhere, it is mounted on a directory of the test's until
    the test ends."""
    for mnt, fstype, _ in mountinfo():
        if fstype == "fusectl":
            return mnt
    where = t.mkdir("fusectl")
    run(["mount", "-t", "fusectl", "fusectl", where])
    t.defer(run, ["umount", "-l", where])
    return where


# A small program run inside a cgroup: does I/O on one file and prints JSON.
IO_PROG = r"""
import json, os, sys, time
path, op, off, size, chunk, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
fd = os.open(path, os.O_RDWR if op == "write" else os.O_RDONLY)
t0 = time.monotonic()
out = {"ok": True}
try:
    done = 0
    while done < size:
        n = min(chunk, size - done)
        if op == "write":
            data = bytes(((seed + off + done + i) * 31) & 0xff for i in range(min(n, 256))) * ((n + 255) // 256)
            w = os.pwrite(fd, data[:n], off + done)
            assert w == n, ("short write", w, n)
        else:
            b = os.pread(fd, n, off + done)
            assert len(b) == n, ("short read", len(b), n)
            out.setdefault("digest", 0)
            out["digest"] = (out["digest"] * 1000003 + hash(b)) & 0xffffffff
        done += n
except OSError as e:
    out = {"ok": False, "errno": e.errno}
out["seconds"] = time.monotonic() - t0
print(json.dumps(out), flush=True)
"""


# Direct I/O through libc (ctypes), so that an EINTR is seen as the caller sees it
# (Python's own os.pread retries it), by a caller that catches SIGALRM and
# SIGUSR1 with SA_RESTART. "loop N SIZE": N writes, each read back, of SIZE
# bytes at OFF + (i % 16) * SIZE, with a SIGALRM every 300 us. "read SIZE" /
# "write SIZE": one request at OFF, after printing "ready". Prints one JSON
# line: ok (calls that did all), eintr, errors (other errnos), short, mismatch
# (read back wrong), signals (handled), value (of a single call).
SIGNALLED_IO = r"""
import ctypes, errno, json, mmap, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
for name in ("pread", "pwrite"):
    fn = getattr(libc, name)
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
    fn.restype = ctypes.c_ssize_t
path, off, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = {"ok": 0, "eintr": 0, "errors": {}, "short": 0, "mismatch": 0, "signals": 0}
def on_signal(sig, frame):
    out["signals"] += 1
for s in (signal.SIGALRM, signal.SIGUSR1):
    signal.signal(s, on_signal)
    signal.siginterrupt(s, False)
def call(fn, buf, size, pos):
    r = fn(fd, ctypes.addressof(ctypes.c_char.from_buffer(buf)), size, pos)
    if r < 0:
        e = ctypes.get_errno()
        if e == errno.EINTR:
            out["eintr"] += 1
        else:
            out["errors"][str(e)] = out["errors"].get(str(e), 0) + 1
    elif r != size:
        out["short"] += 1
    else:
        out["ok"] += 1
    return r
fd = os.open(path, os.O_RDWR | os.O_DIRECT)
if mode == "loop":
    count, size = int(sys.argv[4]), int(sys.argv[5])
    wbuf, rbuf = mmap.mmap(-1, size), mmap.mmap(-1, size)
    signal.setitimer(signal.ITIMER_REAL, 0.0003, 0.0003)
    for i in range(count):
        wbuf[:] = bytes([i % 251 + 1]) * size
        pos = off + (i % 16) * size
        if call(libc.pwrite, wbuf, size, pos) == size and \
                call(libc.pread, rbuf, size, pos) == size and rbuf[:] != wbuf[:]:
            out["mismatch"] += 1
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
else:
    size = int(sys.argv[4])
    buf = mmap.mmap(-1, size)
    buf[:] = b"s" * size
    print("ready", flush=True)
    out["value"] = call(libc.pwrite if mode == "write" else libc.pread, buf, size, off)
print(json.dumps(out), flush=True)
"""


def expected_pattern(off, size, seed):
    row = bytes(((seed + off + i) * 31) & 0xff for i in range(256))
    return (row * ((size + 255) // 256))[:size]


def start_io(cg, child, path, op, off, size, chunk=64 * 1024, seed=0):
    return cg.popen(child, [sys.executable, "-c", IO_PROG, path, op, str(off), str(size),
                            str(chunk), str(seed)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_io(p, timeout=30):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise TestFailure(f"I/O program still blocked after {timeout} s")
    check(p.returncode == 0, f"I/O program failed: {err}")
    return json.loads(out)


def run_io(cg, child, path, op, off, size, chunk=64 * 1024, seed=0, timeout=30):
    return finish_io(start_io(cg, child, path, op, off, size, chunk, seed), timeout)


class Gate:
    """gatefs over a backing file: I/O at or past `gate_offset` waits while the
    gate is closed. Cleanup opens the gate and unmounts gatefs after everything
    registered later (the cgloopfs mount) is gone."""

    def __init__(self, t, size, gate_offset):
        check(os.access(GATEFS, os.X_OK), f"cannot run: gatefs {GATEFS} is missing")
        self.backing = t.path("gate-backing.img")
        make_sparse(self.backing, size)
        self.mnt = t.mkdir("gatefs")
        self.gate_file = t.path("GATE")
        self.gate_offset = gate_offset
        self.err = open(t.path("gatefs.stderr"), "wb")
        self.proc = subprocess.Popen([GATEFS, self.backing, self.mnt, str(gate_offset),
                                      self.gate_file], stdin=subprocess.DEVNULL,
                                     stderr=self.err, stdout=self.err, start_new_session=True)
        t.defer(self.cleanup)
        check(wait_for(lambda: is_mounted(self.mnt) or
                               self.proc.poll() is not None, 10),
              "gatefs did not mount")
        check(self.proc.poll() is None, "gatefs exited")
        self.disk = os.path.join(self.mnt, "disk")

    def close(self):
        open(self.gate_file, "w").close()

    def held(self):
        """`with gate.held():` the gate is closed inside, and open again on the way out
        (also when the test fails, so nothing stays stuck behind it)."""
        gate = self

        class Held:
            def __enter__(self):
                gate.close()
                return gate

            def __exit__(self, *exc):
                gate.open()
                return False
        return Held()

    def open(self):
        if os.path.exists(self.gate_file):
            os.unlink(self.gate_file)

    def cleanup(self):
        self.open()
        fusermount_unmount(self.mnt)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.err.close()


def wait_arrived(mnt, path, n, timeout=10):
    """Wait until `n` requests of cgroup `path` (None: the root queue) are queued or
    in flight."""
    def arrived():
        for w in ctl_mount(mnt, "workers"):
            if (path is None and w["root"]) or (path is not None and w["cgroup"] == path):
                return w["in_flight"] + w["queued"] >= n
        return False
    check(wait_for(arrived, timeout, interval=0.05),
          f"{path or 'the root queue'} never had {n} requests: {ctl_mount(mnt, 'workers')}")


# --------------------------------------------------------------------------
# Loop devices

def losetup_attach(t, path, extra=(), defer=None):
    """Attach path to a free loop device; detached at the end of the test (or by
    `defer`, e.g. an ExitStack's callback, to undo it before a mount goes away)."""
    r = run(["losetup", "--find", "--show", *extra, path])
    dev = r.stdout.strip()
    check(dev.startswith("/dev/loop"), f"losetup printed {dev!r}")
    (defer or t.defer)(losetup_detach, dev, path)
    return dev


def losetup_detach(dev, path=None):
    """Detach dev if it is still attached (to path, when given)."""
    r = subprocess.run(["losetup", "--list", "--noheadings", "-O", "NAME,BACK-FILE"],
                       capture_output=True, text=True)
    for line in r.stdout.splitlines():
        parts = line.split(None, 1)
        if parts and parts[0] == dev and (path is None or len(parts) < 2 or
                                          os.path.realpath(path) in parts[1] or
                                          "(deleted)" in parts[1]):
            for _ in range(20):
                if subprocess.run(["losetup", "-d", dev], capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)


def umount_path(path, lazy_fallback=True):
    if not is_mounted(path):
        return
    for _ in range(10):
        if subprocess.run(["umount", path], capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    if lazy_fallback:
        subprocess.run(["umount", "-l", path], capture_output=True)


# --------------------------------------------------------------------------
# Runner

def timeout(seconds):
    """Decorator: this test may take up to `seconds`."""
    def deco(fn):
        fn.timeout = seconds
        return fn
    return deco


def _on_term(signum, frame):
    raise Terminated(f"signal {signum}")


def _on_alarm(signum, frame):
    raise TestTimeout("the test ran past its time limit")


_TERM_SIGNALS = {signal.SIGTERM, signal.SIGHUP, signal.SIGALRM}
WATCHDOG_GRACE = 15


def _watchdog_fire(name):
    """The test is stuck past its limit, most likely in a syscall on a mount whose
    daemon does not answer (SIGALRM cannot get it out). Ending our daemons makes
    every pending request fail, so the test unwinds and cleans up."""
    print(f"# watchdog: {name} is stuck; ending its daemons", flush=True)
    for m in list(_active_mounts):
        with contextlib.suppress(Exception):
            subprocess.run(["fusermount3", "-uz", m.mnt], capture_output=True, timeout=10)
        with contextlib.suppress(Exception):
            if m.proc and m.proc.poll() is None:
                m.proc.kill()


def _emergency_cleanup():
    for m in list(_active_mounts):
        with contextlib.suppress(Exception):
            m._teardown(failing=True)


def _preflight():
    missing = []
    if BUILD_DIR is None:
        missing.append(NO_BUILD)
    elif not os.access(CGLOOPFS, os.X_OK):
        missing.append(f"the daemon {CGLOOPFS}")
    if not os.path.exists("/dev/fuse"):
        missing.append("/dev/fuse")
    if shutil.which("fusermount3") is None:
        missing.append("fusermount3")
    if os.geteuid() != 0:
        missing.append("root")
    return missing


def main(module=None):
    module = module or sys.modules["__main__"]
    modname = os.path.splitext(os.path.basename(module.__file__))[0]
    tests = [(name, fn) for name, fn in vars(module).items()
             if name.startswith("test_") and inspect.isfunction(fn)
             and fn.__module__ == module.__name__]
    tests.sort(key=lambda nf: nf[1].__code__.co_firstlineno)
    filt = os.environ.get("CGL_TEST_FILTER")
    if filt:
        tests = [(n, f) for n, f in tests if filt in n]

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)
    signal.signal(signal.SIGALRM, _on_alarm)

    missing = _preflight()
    results = []
    start_all = time.monotonic()
    print(f"# {modname}: {len(tests)} tests, daemon {CGLOOPFS}", flush=True)
    terminated = False
    for i, (name, fn) in enumerate(tests):
        if terminated:
            results.append({"name": name, "status": "fail", "seconds": 0,
                            "error": "not run: the run was terminated"})
            print(f"FAIL {name} (not run: terminated)", flush=True)
            continue
        tmp = tempfile.mkdtemp(prefix=f"cgl-{os.getpid()}-{i}-", dir=TMP_BASE)
        os.chmod(tmp, 0o755)
        t = Context(name, tmp)
        t0 = time.monotonic()
        err = None
        limit = getattr(fn, "timeout", DEFAULT_TIMEOUT)
        watchdog = threading.Timer(limit + WATCHDOG_GRACE, _watchdog_fire, args=(name,))
        watchdog.daemon = True
        try:
            try:
                if missing:
                    raise TestFailure("cannot run: missing " + ", ".join(missing))
                signal.alarm(limit)
                watchdog.start()
                try:
                    fn(t)
                finally:
                    signal.alarm(0)
                    watchdog.cancel()
            finally:
                # No SIGTERM in the middle of the clean-up: it is raised after it.
                signal.pthread_sigmask(signal.SIG_BLOCK, _TERM_SIGNALS)
                try:
                    cleanup_errors = t.run_cleanups()
                    left = mounts_under(tmp)
                    for m in reversed(left):
                        fusermount_unmount(m, tries=3)
                        umount_path(m)
                    if left:
                        cleanup_errors.append(f"mounts left behind: {left}")
                finally:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, _TERM_SIGNALS)
                if cleanup_errors:
                    raise TestFailure("; ".join(cleanup_errors))
        except Terminated as e:
            terminated = True
            err = f"terminated ({e})\n" + traceback.format_exc()
        except BaseException:
            err = traceback.format_exc()
        finally:
            signal.alarm(0)
            if not os.environ.get("CGL_KEEP_TMP") and not mounts_under(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
        dt = time.monotonic() - t0
        if err is None:
            print(f"PASS {name} ({dt:.1f} s)", flush=True)
            results.append({"name": name, "status": "pass", "seconds": round(dt, 3)})
        else:
            if t.notes:
                err += "\n" + "\n".join(t.notes)
            print(f"FAIL {name} ({dt:.1f} s)\n{err}", flush=True)
            results.append({"name": name, "status": "fail", "seconds": round(dt, 3),
                            "error": err})
    _emergency_cleanup()

    passed = sum(1 for r in results if r["status"] == "pass")
    failed = len(results) - passed
    out_dir = os.environ.get("CGL_RESULTS_DIR")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, f"{modname}.json"), "w") as f:
            json.dump({"module": modname, "passed": passed, "failed": failed,
                       "seconds": round(time.monotonic() - start_all, 3),
                       "cases": results}, f, indent=1)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed or not tests else 0)
