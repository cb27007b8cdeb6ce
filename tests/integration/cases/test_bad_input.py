#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Bad input is refused before mounting: nonzero exit (2 for usage errors, 1 for
bad images), one clear message naming the image and the setting, no mount."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import make_image, run_daemon_expect_failure  # noqa: E402

MiB = 1024 * 1024
USAGE = 2
BAD_IMAGE = 1


class Collector:
    """Runs many sub-cases and fails once at the end, listing every failure."""

    def __init__(self):
        self.failures = []
        self.count = 0

    def case(self, label, fn, *args, **kwargs):
        self.count += 1
        try:
            return fn(*args, **kwargs)
        except AssertionError as e:
            self.failures.append(f"[{label}] {e}")
        return None

    def done(self):
        if self.failures:
            raise harness.TestFailure(f"{len(self.failures)} of {self.count} sub-cases "
                                      "failed:\n  " + "\n  ".join(self.failures))


def setup(t):
    mnt = t.mkdir("mnt")
    img = make_image(t.path("a.img"), MiB)
    return mnt, img


def refuse_manifest(t, mnt, text, must_contain, want_rc=BAD_IMAGE, name="m.toml"):
    path = t.write_manifest(text, name=name)
    return run_daemon_expect_failure(t, [path, mnt], want_rc,
                                     must_contain=[f"{name}:"] + list(must_contain))


def image_with(setting_lines, name="x", path="a.img"):
    head = "[[image]]\n"
    if name is not None:
        head += f'name = "{name}"\n'
    if path is not None:
        head += f'path = "{path}"\n'
    return head + "".join(line + "\n" for line in setting_lines)


def test_missing_backing_file(t):
    mnt, _ = setup(t)
    c = Collector()
    c.case("manifest", refuse_manifest, t, mnt, image_with([], name="gone", path="missing.img"),
           ['image "gone"', "path", "missing.img", "No such file"])
    c.case("single source", run_daemon_expect_failure, t, [t.path("nothere.img"), mnt],
           BAD_IMAGE, must_contain=["nothere.img", "No such file"])
    c.case("second image missing", refuse_manifest, t, mnt,
           image_with([], name="ok") + image_with([], name="bad", path="nope/b.img"),
           ['image "bad"', "path", "nope/b.img"])
    c.case("no path", refuse_manifest, t, mnt, image_with([], name="nopath", path=None),
           ['image "nopath"', "path"])
    c.case("path is a directory", refuse_manifest, t, mnt,
           image_with([], name="dir", path="mnt"), ['image "dir"', "path", "directory"])
    c.done()


def test_unreadable_backing_file(t):
    """The daemon runs as nobody against root-owned 0600 images."""
    mnt = t.mkdir("mnt")
    os.chown(mnt, 65534, 65534)
    secret = make_image(t.path("secret.img"), MiB)
    os.chmod(secret, 0o600)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

    def as_nobody(args, want, must):
        cmd = nobody + [harness.CGLOOPFS, "-f"] + args
        r = harness.subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        try:
            harness.check(r.returncode == want,
                          f"{cmd}: exit {r.returncode}, want {want}; stderr {r.stderr!r}")
            lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
            harness.check(len(lines) == 1, f"{cmd}: want one message line, got {lines!r}")
            for s in must:
                harness.check(s in lines[0], f"{cmd}: message {lines[0]!r} lacks {s!r}")
        finally:
            if harness.is_mounted(mnt):
                harness.fusermount_unmount(mnt)
                raise harness.TestFailure(f"{cmd}: left a mount")

    c = Collector()
    c.case("single image", as_nobody, [secret, mnt], BAD_IMAGE,
           ['"secret.img"', "path", "Permission denied"])
    m1 = t.write_manifest(image_with(["read_only = true"], name="ro-secret",
                                     path=secret), name="ro.toml")
    os.chmod(m1, 0o644)
    c.case("read-only image", as_nobody, [m1, mnt], BAD_IMAGE,
           ["ro.toml:", 'image "ro-secret"', "path", "Permission denied"])
    m2 = t.write_manifest(image_with([], name="rw-secret", path=secret), name="rw.toml")
    os.chmod(m2, 0o644)
    c.case("read-write image", as_nobody, [m2, mnt], BAD_IMAGE,
           ["rw.toml:", 'image "rw-secret"', "path", "Permission denied"])
    # Readable but not writable: the message says to set read_only.
    os.chmod(secret, 0o644)
    c.case("not writable", as_nobody, [m2, mnt], BAD_IMAGE,
           ['image "rw-secret"', "path", "read_only"])
    unreadable_manifest = t.write_manifest(image_with([], name="x", path=secret),
                                           name="private.toml")
    os.chmod(unreadable_manifest, 0o600)
    c.case("unreadable manifest", as_nobody, [unreadable_manifest, mnt], BAD_IMAGE,
           ["private.toml", "Permission denied"])
    c.done()


def test_offset_past_end_and_size_zero(t):
    mnt, _ = setup(t)
    make_image(t.path("empty.img"), 0)
    make_image(t.path("tiny.img"), 511)
    c = Collector()
    for label, lines, must in [
            ("offset past the end", ['offset = "2MiB"'], ["offset", "past the end"]),
            ("offset at the end", ["offset = 1048576"], ["offset"]),
            ("offset 1 past the end", ["offset = 1048577"], ["offset"]),
            ("size_limit below 512", ["size_limit = 100"], ["size"]),
            ("511 bytes left after the offset", ["offset = 1048065"], ["size"]),
            ("size_limit 511", ["size_limit = 511"], ["size"])]:
        c.case(label, refuse_manifest, t, mnt, image_with(lines), ['image "x"'] + must)
    c.case("empty backing file", refuse_manifest, t, mnt,
           image_with([], path="empty.img"), ['image "x"', "size"])
    c.case("511-byte backing file", refuse_manifest, t, mnt,
           image_with([], path="tiny.img"), ['image "x"', "size"])
    c.case("single empty image", run_daemon_expect_failure, t, [t.path("empty.img"), mnt],
           BAD_IMAGE, must_contain=["empty.img", "size"])
    d = t.mkdir("d")
    make_image(os.path.join(d, "big"), MiB)
    make_image(os.path.join(d, "small"), 511)
    c.case("directory with a 511-byte file", run_daemon_expect_failure, t, [d, mnt],
           BAD_IMAGE, must_contain=['"small"', "size"])
    c.done()


def test_bad_numbers(t):
    mnt, _ = setup(t)
    c = Collector()
    cases = [
        ('offset = "12Q"', ["offset", "12Q"]),
        ('offset = "99999999999999999999"', ["offset", "99999999999999999999"]),
        ('size_limit = "99999999999999999999"', ["size_limit", "99999999999999999999"]),
        ('size_limit = "17179869184GiB"', ["size_limit"]),   # 2^64 bytes
        ('offset = "16777216TiB"', ["offset"]),              # 2^64 bytes
        ('offset = "9223372036854775808"', ["offset"]),      # 2^63: not an off_t
        ('offset = "-1"', ["offset"]),
        ("offset = -1", ["offset"]),
        ('offset = ""', ["offset"]),
        ('offset = "1.5M"', ["offset"]),
        ("offset = 1.5", ["offset"]),
        ('offset = " 1M"', ["offset"]),
        ('offset = "0x10"', ["offset"]),
        ("size_limit = true", ["size_limit"]),
        ("block_size = 1000", ["block_size"]),
        ("block_size = 256", ["block_size"]),
        ("block_size = 8192", ["block_size"]),
        ('block_size = "99999999999999999999"', ["block_size"]),
        ("uid = 99999999999", ["uid"]),
        ("uid = -1", ["uid"]),
        ('uid = "4294967296"', ["uid"]),
        ('uid = "root"', ["uid"]),
        ("gid = 4294967295", ["gid"]),
        ("gid = -5", ["gid"]),
        ('mode = "0755"', ["mode"]),
        ('mode = "4666"', ["mode"]),
        ('mode = "999"', ["mode"]),
        ('mode = "rw-r--r--"', ["mode"]),
        ('mode = "077777777777777777777777"', ["mode"]),
        ("mode = 511", ["mode"]),                            # 0777
        ('read_only = "yes"', ["read_only"]),
        ("discard = 1", ["discard"]),
        ('direct_io = "true"', ["direct_io"]),
    ]
    for line, must in cases:
        c.case(line, refuse_manifest, t, mnt, image_with([line]), ['image "x"'] + must)
    # The same settings in [defaults] are refused as well.
    c.case("[defaults] offset", refuse_manifest, t, mnt,
           '[defaults]\noffset = "99999999999999999999"\n\n' + image_with([]),
           ["offset", "99999999999999999999"])
    # An integer TOML itself cannot hold is a malformed manifest, with its line.
    c.case("bare 20-digit integer", refuse_manifest, t, mnt,
           image_with(["offset = 99999999999999999999"]), ["m.toml:4"])
    c.done()


def test_duplicate_names(t):
    mnt, img = setup(t)
    make_image(t.path("sub.img"), MiB)
    os.mkdir(t.path("other"))
    make_image(t.path("other", "a.img"), MiB)
    c = Collector()
    c.case("same name twice", refuse_manifest, t, mnt,
           image_with([], name="dup") + image_with([], name="dup"),
           ['image "dup"', "name", "twice"])
    c.case("same name, different files", refuse_manifest, t, mnt,
           image_with([], name="dup") + image_with([], name="u", path="sub.img")
           + image_with([], name="dup", path="sub.img"), ['image "dup"', "name"])
    c.case("same basename by default", refuse_manifest, t, mnt,
           image_with([], name=None) + image_with([], name=None, path="other/a.img"),
           ['image "a.img"', "name"])
    c.case("explicit name equals a default one", refuse_manifest, t, mnt,
           image_with([], name=None) + image_with([], name="a.img", path="sub.img"),
           ['image "a.img"', "name"])
    c.done()


def test_unsafe_names(t):
    mnt, _ = setup(t)
    c = Collector()
    for label, toml_name in [("slash", "a/b"), ("leading slash", "/abs"),
                             ("trailing slash", "dir/"), ("dot dot", ".."), ("dot", "."),
                             ("empty", ""), ("tab", "a\\tb"),
                             ("too long", "n" * 256)]:
        c.case(label, refuse_manifest, t, mnt, image_with([], name=toml_name), ["name"])
    c.done()


def test_unsafe_names_nul_and_control_characters(t):
    """The refused name must not break the message: a NUL ("\\u0000") once cut it
    short (it ended after `image "a`), a newline split it in two lines and an escape
    sequence reached the terminal raw. Fixed in 1c0740b (printable names)."""
    mnt, _ = setup(t)
    c = Collector()

    def refuse_clean(t, mnt, text, must):
        msg = refuse_manifest(t, mnt, text, must)
        harness.check(not any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in msg),
                      f"raw control characters in the message {msg!r}")
    c.case("NUL (\\u0000)", refuse_clean, t, mnt, image_with([], name="a\\u0000b"),
           ["name", "NUL"])
    c.case("only NUL", refuse_clean, t, mnt, image_with([], name="\\u0000"),
           ["name", "NUL"])
    c.case("newline", refuse_clean, t, mnt, image_with([], name="a\\nb"),
           ["name", "control character"])
    c.case("escape sequence", refuse_clean, t, mnt, image_with([], name="a\\u001b[2Jb"),
           ["name", "control character"])
    c.done()


def test_malformed_manifest(t):
    mnt, _ = setup(t)
    c = Collector()
    for label, text, line in [
            ("unclosed table header", '[[image]\nname = "x"\npath = "a.img"\n', 1),
            ("value missing", '[[image]]\nname = "x"\npath =\n', 3),
            ("unterminated string", '[[image]]\nname = "x\npath = "a.img"\n', 2),
            ("garbage line", '[[image]]\nname = "x"\npath = "a.img"\n\n%%%\n', 5),
            ("duplicate key", '[[image]]\nname = "x"\npath = "a.img"\nname = "y"\n', 4)]:
        c.case(label, refuse_manifest, t, mnt, text, [f"m.toml:{line}"])
    for label, text, must in [
            ("unknown setting", image_with(["ofset = 4096"]), ["m.toml:4", "ofset"]),
            ("unknown top-level key", 'images = 1\n' + image_with([]), ["m.toml:1", "images"]),
            ("image is not an array of tables", 'image = 5\n', ["m.toml:1", "image"]),
            ("defaults is not a table", 'defaults = 5\n' + image_with([]),
             ["m.toml:1", "defaults"]),
            ("name in [defaults]", '[defaults]\nname = "x"\n' + image_with([]),
             ["m.toml:2", "name"])]:
        c.case(label, refuse_manifest, t, mnt, text, must)
    c.case("missing manifest", run_daemon_expect_failure, t, [t.path("none.toml"), mnt],
           BAD_IMAGE, must_contain=["none.toml", "No such file"])
    c.done()


def test_malformed_manifest_nul_byte_has_line(t):
    """KNOWN src BUG (fails at the time of writing): a raw NUL byte in the manifest is
    reported as "m.toml: malformed manifest: contains a NUL byte", without the line
    number every malformed manifest must carry (parse_manifest() in
    src/config/manifest.cpp checks for NUL before parsing and drops the position)."""
    mnt, _ = setup(t)
    refuse_manifest(t, mnt, '[[image]]\nname = "x"\npath = "a.img"\x00\n', ["m.toml:3"])


def test_bad_mount_options(t):
    mnt, img = setup(t)
    c = Collector()
    for opts, must in [
            ("bogus", ["bogus"]),
            ("bogus=1", ["bogus"]),
            ("idle_timeout=0", ["idle_timeout"]),
            ("idle_timeout=abc", ["idle_timeout"]),
            ("idle_timeout=-1", ["idle_timeout"]),
            ("idle_timeout=86401", ["idle_timeout"]),
            ("idle_timeout=99999999999999999999", ["idle_timeout"]),
            ("idle_timeout", ["idle_timeout"]),
            ("idle_timeout=", ["idle_timeout"]),
            ("dispatch=x", ["dispatch"]),
            ("dispatch=", ["dispatch"]),
            ("cache=foo", ["cache"]),
            ("max_workers=0", ["max_workers"]),
            ("max_workers=4097", ["max_workers"]),
            ("worker_depth=0", ["worker_depth"]),
            ("worker_depth=65", ["worker_depth"]),
            ("control=relative/path", ["control"]),
            ("ro=1", ["ro"]),
            ("rw,idle_timeout=5,dispatch=single,nosuchthing", ["nosuchthing"])]:
        c.case(f"-o {opts}", run_daemon_expect_failure, t, ["-o", opts, img, mnt], USAGE,
               must_contain=must)
    c.done()


def test_usage_errors(t):
    mnt, img = setup(t)
    c = Collector()
    for label, args, must in [
            ("no operands", [], []),
            ("no mount point", [img], []),
            ("extra operand", [img, mnt, t.path("x")], []),
            ("unknown flag", ["--bogus", img, mnt], ["bogus"]),
            ("unknown short flag", ["-x", img, mnt], []),
            ("-o without a value", [img, mnt, "-o"], ["-o"])]:
        c.case(label, run_daemon_expect_failure, t, args, USAGE, must_contain=must, mnt=mnt)
    c.case("missing mount point", run_daemon_expect_failure, t, [img, t.path("nomnt")],
           BAD_IMAGE, must_contain=["nomnt"])
    c.case("mount point is a file", run_daemon_expect_failure, t, [img, img],
           BAD_IMAGE, must_contain=["a.img"], mnt=mnt)
    c.done()


if __name__ == "__main__":
    harness.main()
