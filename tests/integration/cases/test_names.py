#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Which container is this: `cgloopctl workers` and `stats` name each cgroup's
systemd unit and machine (UNIT and MACHINE columns, JSON keys "unit" and
"machine"; "-" where systemd named nothing), and text from outside cannot forge
their output: cgroup paths, image names and backing file paths holding a tab,
ESC, a backslash spelling an escape, a C1 control or invalid UTF-8 reach tables
and --raw escaped (no raw control byte, every escape decodes back to the exact
bytes) and JSON exactly (invalid UTF-8 as PEP 383 surrogates). Two cgroups that
share a path (removed and made again) differ in CGROUP-ID.

This host is not managed by systemd (libsystemd names nothing): the names come
from the paths, which the tests lay out as systemd does, below the test's own
cgroup. On a systemd host libsystemd says nothing of them either (a cgroup
under the root of the tree, outside every unit), so the same names come out."""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import MiB, check, check_eq, ctl, ctl_mount  # noqa: E402

CGLOOPCTL = harness.CGLOOPCTL


def ctl_bytes(*args):
    """`cgloopctl ARGS` -> its stdout as bytes (exit 0 required)."""
    cmd = [CGLOOPCTL] + [os.fsencode(a) if isinstance(a, str) else a for a in args]
    r = subprocess.run(cmd, capture_output=True, timeout=30)
    check_eq(r.returncode, 0, f"{cmd}: exit status (stderr {r.stderr!r})")
    return r.stdout


def check_terminal_safe(out, what):
    """No control byte but the line ends, valid UTF-8, no C1 control character."""
    bad = [b for b in out if (b < 0x20 and b != 0x0a) or b == 0x7f]
    check(not bad, f"{what}: raw control bytes {bad} in {out!r}")
    try:
        text = out.decode("utf-8")
    except UnicodeDecodeError as e:
        raise harness.TestFailure(f"{what}: not valid UTF-8 ({e}): {out!r}")
    check(not any(0x80 <= ord(c) <= 0x9f for c in text), f"{what}: a C1 control: {text!r}")


ESCAPES = {"\\": 0x5c, "t": 9, "n": 10, "r": 13, "a": 7, "b": 8, "v": 11, "f": 12}


def unescape(field):
    """The bytes a table or --raw cell stands for, as cgloopctl(8) documents it."""
    out = bytearray()
    i = 0
    while i < len(field):
        c = field[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        e = field[i + 1]
        if e == "x":
            out.append(int(field[i + 2:i + 4], 16))
            i += 4
        else:
            check(e in ESCAPES, f"unknown escape \\{e} in {field!r}")
            out.append(ESCAPES[e])
            i += 2
    return bytes(out)


def raw_rows(out):
    return [line.split(" ") for line in out.decode().splitlines()]


def write_from(cg, kid, f, off=0):
    cg.run(kid, ["dd", "if=/dev/zero", f"of={f}", "bs=4k", "count=1", f"seek={off}",
                 "conv=notrunc,fsync", "status=none"])


def by_cgroup(entries):
    out = {}
    for e in entries:
        out.setdefault(e["cgroup"], []).append(e)
    return out


# --------------------------------------------------------------------------
# tests

@harness.timeout(60)
def test_units_and_machines_by_name(t):
    """A cgroup laid out as systemd names them shows its unit and machine in workers
    and stats (table, --raw, JSON, -O); a plain cgroup and the root queue show "-"."""
    img = t.path("a.img")
    harness.make_sparse(img, 16 * MiB)
    cg = t.cgroup()
    cg.child("test.slice")
    scope = cg.child("test.slice/foo.scope")
    cg.child("machine.slice")
    # As systemd-machined (and libvirt) name a machine's scope: "-" escaped as \x2d.
    vm = cg.child("machine.slice/machine-web\\x2d1.scope")
    plain = cg.child("plain")
    want = {cg.rel(scope): ("foo.scope", "-"),
            cg.rel(vm): ("machine-web\\x2d1.scope", "web-1"),
            cg.rel(plain): ("-", "-")}
    with t.mount(img, opts="idle_timeout=60") as m:
        f = m.path("a.img")
        for i, kid in enumerate((scope, vm, plain)):
            write_from(cg, kid, f, i)
        workers = by_cgroup(ctl_mount(m.mnt, "workers"))
        stats = by_cgroup(ctl_mount(m.mnt, "stats")["cgroups"])
        for rel, (unit, machine) in want.items():
            for what, got in (("workers", workers), ("stats", stats)):
                check(rel in got, f"{what}: no {rel}: {sorted(got)}")
                check_eq((got[rel][0]["unit"], got[rel][0]["machine"]), (unit, machine),
                         f"{what} {rel}: unit, machine")
        root = [w for w in ctl_mount(m.mnt, "workers") if w["root"]]
        check_eq((root[0]["unit"], root[0]["machine"]), ("-", "-"), "root queue's names")

        # The tables: the columns by default, and what -O picks.
        heads = ctl("workers", m.mnt).stdout.splitlines()[0].split()
        check_eq(heads[:5], ["CGROUP", "CGROUP-ID", "UNIT", "MACHINE", "STATE"], "workers heads")
        heads = ctl("stats", m.mnt).stdout.splitlines()[0].split()
        check_eq(heads[:5], ["CGROUP", "CGROUP-ID", "UNIT", "MACHINE", "WORKER"], "stats heads")
        for cmd in ("workers", "stats"):
            rows = raw_rows(ctl_bytes(cmd, "--raw", "-n", "-O", "cgroup,unit,machine", m.mnt))
            got = {unescape(r[0]).decode(): (r[1], r[2]) for r in rows}
            for rel, names in want.items():
                check_eq(got.get(rel), names, f"{cmd} --raw: {rel}")
            table = ctl(cmd, "-O", "UNIT,machine,cgroup", m.mnt).stdout.splitlines()
            check_eq(table[0].split(), ["UNIT", "MACHINE", "CGROUP"], f"{cmd} -O heads")
            # UNIT as systemd spells it; the path's backslash doubled in CGROUP.
            line = [x for x in table if x.endswith("machine-web\\\\x2d1.scope")]
            check_eq(len(line), 1, f"{cmd}: the machine's line in {table}")
            check_eq(line[0].split()[:2], ["machine-web\\x2d1.scope", "web-1"],
                     f"{cmd}: the machine's unit and name")
        js = ctl_mount(m.mnt, "stats", "-O", "cgroup,unit,machine")["cgroups"]
        check(all(set(s) == {"cgroup", "unit", "machine"} for s in js),
              f"stats --json -O keys: {js}")
        js = ctl_mount(m.mnt, "workers", "-O", "unit")
        check(all(set(w) == {"unit"} for w in js), f"workers --json -O keys: {js}")
        r = ctl("workers", "-O", "cgroup,colour", m.mnt, check_rc=2)
        check('workers: unknown column "COLOUR"' in r.stderr, f"refusal: {r.stderr!r}")


UNSAFE = [
    # (cgroup name, how tables show it)
    ("tab\there", "tab\\there"),
    ("esc\x1b[2Jred", "esc\\x1b[2Jred"),
    ("esc\\x1b[2Jred", "esc\\\\x1b[2Jred"),  # spells the escape of the one above
    ("back\\slash", "back\\\\slash"),
    ("c1\u009bcsi", "c1\\xc2\\x9bcsi"),  # CSI as a C1 control, valid UTF-8
    ("bad\udcff\udcfeutf8", "bad\\xff\\xfeutf8"),  # bytes ff fe: invalid UTF-8
]


@harness.timeout(90)
def test_cgroup_paths_cannot_forge_output(t):
    """Cgroups named with a tab, ESC, a spelled escape, a backslash, a C1 control and
    invalid UTF-8 (the kernel refuses a newline): workers and stats tables and --raw
    hold no raw control byte and show each escaped as documented, decoding back to
    the path's bytes; JSON gives the exact bytes. A cgroup removed and made again is
    a second line with the same path and another CGROUP-ID."""
    img = t.path("a.img")
    harness.make_sparse(img, 16 * MiB)
    cg = t.cgroup()
    try:
        os.mkdir(os.path.join(cg.path, "new\nline"))
        raise harness.TestFailure("the kernel took a cgroup name with a newline: test it")
    except OSError:
        pass
    kids = [cg.child(name) for name, _ in UNSAFE]
    again = cg.child("again")
    with t.mount(img, opts="idle_timeout=60") as m:
        f = m.path("a.img")
        for i, kid in enumerate(kids):
            write_from(cg, kid, f, i)
        write_from(cg, again, f, 100)
        # The same path again: another cgroup (a runtime removed and made it again).
        for _ in range(100):  # a worker living in it may take a moment to leave
            try:
                os.rmdir(again)
                break
            except OSError:
                time.sleep(0.05)
        os.mkdir(again)
        write_from(cg, again, f, 101)

        want = {cg.rel(k): os.path.dirname(cg.rel(k)) + "/" + shown
                for k, (_, shown) in zip(kids, UNSAFE)}
        for cmd in ("workers", "stats"):
            js = ctl_mount(m.mnt, cmd)
            entries = js if cmd == "workers" else js["cgroups"]
            got = by_cgroup(entries)
            for rel in want:  # str with PEP 383 surrogates: the path's exact bytes
                check(rel in got, f"{cmd} --json: no {rel!r} in {sorted(got)}")
            twice = got.get(cg.rel(again), [])
            check_eq(len(twice), 2, f"{cmd}: entries for the cgroup made twice")
            check(twice[0]["cgroup_id"] != twice[1]["cgroup_id"], f"{cmd}: ids {twice}")
            # The JSON text itself: UTF-8, invalid bytes as lone surrogates.
            text = ctl_bytes("--json", cmd, "-m", m.mnt)
            check(b"bad\\udcff\\udcfeutf8" in text, f"{cmd} --json: no \\udcNN in {text!r}")
            check_terminal_safe(text, f"{cmd} --json")

            table = ctl_bytes(cmd, m.mnt)
            check_terminal_safe(table, f"{cmd} table")
            shown = table.decode()
            for rel, esc in want.items():
                check(re.search(r"(^|\n)" + re.escape(esc) + " ", shown),
                      f"{cmd} table: no line for {rel!r} shown as {esc!r}:\n{shown}")
            raw = ctl_bytes(cmd, "--raw", "-n", "-O", "cgroup,cgroup-id", m.mnt)
            check_terminal_safe(raw, f"{cmd} --raw")
            rows = raw_rows(raw)
            check(all(len(r) == 2 for r in rows), f"{cmd} --raw: a cell held a space: {rows}")
            paths = [unescape(r[0]) for r in rows]
            for rel in want:
                check(os.fsencode(rel) in paths, f"{cmd} --raw: {rel!r} not among {paths}")
            ids = [r[1] for r in rows if unescape(r[0]) == os.fsencode(cg.rel(again))]
            check_eq(len(set(ids)), 2, f"{cmd} --raw: CGROUP-IDs of the cgroup made twice")


@harness.timeout(60)
def test_image_names_and_paths_cannot_forge_output(t):
    """An image attached from a path with a tab, ESC, a backslash and invalid UTF-8,
    under a name with a backslash and invalid UTF-8 (names refuse control
    characters): list's table and --raw hold no raw control byte and decode back to
    the exact bytes, list --json gives them exactly, and detach finds the name. A
    name in other UTF-8 stays as it is, aligned; a refusal quoting a path is escaped."""
    base = t.path("a.img")
    harness.make_sparse(base, 16 * MiB)
    d = t.mkdir("dir\twith\x1b[1mesc\\x1b\udcff")
    path = os.path.join(d, "b\\\udcfe.img")
    harness.make_sparse(path, 4 * MiB)
    name = "n\\x07\udcfe"
    with t.mount(base) as m:
        ctl("attach", "--name", name, path, "-m", m.mnt)
        images = {i["name"]: i for i in ctl_mount(m.mnt, "list")["images"]}
        check(name in images, f"list --json: no {name!r} in {sorted(images)}")
        check_eq(images[name]["back-file"], path, "list --json: the backing file, exactly")
        text = ctl_bytes("--json", "list", "-m", m.mnt)
        check_terminal_safe(text, "list --json")
        table = ctl_bytes("list", m.mnt)
        check_terminal_safe(table, "list table")
        check("n\\\\x07\\xfe" in table.decode() and
              "dir\\twith\\x1b[1mesc\\\\x1b\\xff/b\\\\\\xfe.img" in table.decode(),
              f"list table: the name and path escaped as documented:\n{table.decode()}")
        raw = ctl_bytes("list", "--raw", "-n", "-O", "name,back-file", m.mnt)
        check_terminal_safe(raw, "list --raw")
        got = {unescape(r[0]): unescape(r[1]) for r in raw_rows(raw)}
        check_eq(got.get(os.fsencode(name)), os.fsencode(path), "list --raw, decoded")
        # Valid UTF-8 stays, and the columns still line up (by characters).
        other = t.path("c.img")
        harness.make_sparse(other, 1 * MiB)
        ctl("attach", "--name", "caf\u00e9.img", other, "-m", m.mnt)
        lines = ctl("list", "-O", "name,size", m.mnt).stdout.splitlines()
        check(any(x.startswith("caf\u00e9.img ") for x in lines), f"list: {lines}")
        check_eq(len({len(x) for x in lines}), 1, f"line lengths in characters {lines}")
        # A refusal quoting a path from outside reaches the terminal escaped.
        gone = os.path.join(d, "no\x1b[31mne\udcff")
        r = ctl("attach", "--name", "gone.img", gone, "-m", m.mnt, check_rc=1)
        err = os.fsencode(r.stderr)
        check_terminal_safe(err.rstrip(b"\n"), "attach's refusal")
        check("no\\x1b[31mne\\xff" in r.stderr, f"the path, escaped: {r.stderr!r}")
        ctl("detach", name, "-m", m.mnt)
        names = [i["name"] for i in ctl_mount(m.mnt, "list")["images"]]
        check(name not in names, f"still listed after detach: {names}")


if __name__ == "__main__":
    harness.main()
