#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Check that every C++ source of the project is formatted as .clang-format says.

Runs `clang-format --dry-run --Werror` on each .cpp and .hpp under src/,
tests/ and bench/ and prints the files it would change, with the first
lines of the change. `ninja -C BUILD clang-format` formats them.
Usage: check-format.py [SOURCE_ROOT] [CLANG_FORMAT]
"""
import difflib
import os
import subprocess
import sys


def sources(root):
    for top in ("src", "tests", "bench"):
        for d, dirs, files in os.walk(os.path.join(root, top)):
            dirs[:] = sorted(x for x in dirs if x != "corpus")
            for f in sorted(files):
                if f.endswith((".cpp", ".hpp")):
                    yield os.path.join(d, f)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    tool = sys.argv[2] if len(sys.argv) > 2 else "clang-format"
    files = list(sources(root))
    if not files:
        print(f"check-format: no sources under {root}")
        return 1
    # One run over every file: quick when all is well (the usual case).
    r = subprocess.run([tool, "--style=file", "--dry-run", "--Werror"] + files,
                       capture_output=True, text=True)
    if r.returncode == 0:
        print(f"check-format: {len(files)} files, all formatted")
        return 0
    bad = 0
    for path in files:
        with open(path) as f:
            text = f.read()
        r = subprocess.run([tool, "--style=file", path], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"check-format: {tool} failed on {path}: {r.stderr.strip()}")
            return 1
        if r.stdout != text:
            bad += 1
            rel = os.path.relpath(path, root)
            diff = list(difflib.unified_diff(text.splitlines(), r.stdout.splitlines(),
                                             rel, rel + " (formatted)", lineterm="", n=0))
            print("\n".join(diff[:12]))
    print(f"check-format: {len(files)} files, {bad} not formatted"
          + (" (ninja -C BUILD clang-format fixes them)" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
