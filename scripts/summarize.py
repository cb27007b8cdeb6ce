#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Count test cases across meson test logs and print 'N passed, N failed'.

Each meson test is a doctest binary (its '[doctest] test cases:' line gives
the case counts) or an integration script (its JSON result file in the
results directory gives them). A meson test whose counts cannot be read
counts as one case, by its meson result. Skips count as failures: every
test must run on these machines.

A stage that is no meson run (scripts/package.sh) is given with an empty
build directory, LABEL::RESULTS_DIR: the JSON result files in RESULTS_DIR
are its counts, and a stage that wrote none failed.
"""
import json
import os
import re
import sys

DOCTEST = re.compile(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")


def error_line(error):
    """The last exception of a case's error: of a chained pair ("During handling of
    the above exception..."), the one the test failed with. The daemon's stderr,
    appended after the traceback, is not looked at."""
    text = error.split("\ndaemon stderr (", 1)[0]
    lines = [ln for ln in text.splitlines()
             if ln.strip() and not ln.startswith((" ", "Traceback", "During handling",
                                                  "The above exception"))]
    return lines[-1][:300] if lines else ""


def failed_cases(result, label):
    """Name each failed case of an integration result file, with the exception it
    ended with (CI shows only the end of the run's output)."""
    for c in result.get("cases", []):
        if c.get("status") != "pass":
            why = error_line(str(c.get("error", "")))
            print(f"{label}:   {result.get('module', '?')}.{c.get('name', '?')}: {why}",
                  file=sys.stderr)


def count_results(results_dir, label):
    """A stage without meson: every <name>.json its scripts wrote."""
    passed = failed = 0
    names = sorted(n for n in os.listdir(results_dir) if n.endswith(".json")) \
        if os.path.isdir(results_dir) else []
    if not names:
        print(f"{label}: no results in {results_dir}", file=sys.stderr)
        return 0, 1
    for n in names:
        r = {}
        try:
            with open(os.path.join(results_dir, n)) as rf:
                r = json.load(rf)
            p, f = int(r.get("passed", 0)), int(r.get("failed", 0))
        except (OSError, ValueError) as e:
            print(f"{label}: unreadable {n}: {e}", file=sys.stderr)
            p, f = 0, 1
        if f or not p:
            f = max(f, 1)
            print(f"{label}: FAILED {n[:-5]}", file=sys.stderr)
            failed_cases(r if isinstance(r, dict) else {}, label)
        passed += p
        failed += f
    return passed, failed


def count_build(build_dir, results_dir, label):
    if not build_dir:
        return count_results(results_dir, label)
    passed = failed = 0
    log = os.path.join(build_dir, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        print(f"{label}: no test log at {log}", file=sys.stderr)
        return 0, 1
    with open(log) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    for e in entries:
        name = e.get("name", "?")
        ok = e.get("result") in ("OK", "EXPECTEDFAIL")
        p = f = None
        r = {}
        m = DOCTEST.search(e.get("stdout") or "")
        if m:
            p, f = int(m.group(2)), int(m.group(3))
        else:
            base = name.split("/")[-1]
            rfile = os.path.join(results_dir, base + ".json")
            if results_dir and os.path.exists(rfile):
                with open(rfile) as rf:
                    r = json.load(rf)
                p, f = int(r.get("passed", 0)), int(r.get("failed", 0))
        if p is None:
            p, f = (1, 0) if ok else (0, 1)
        elif not ok and f == 0:
            f = 1  # the runner failed after its cases (crash, leak, sanitizer, timeout)
        if not ok or f:
            print(f"{label}: FAILED {name} ({e.get('result')})", file=sys.stderr)
            failed_cases(r, label)
        passed += p
        failed += f
    return passed, failed


def main():
    total_p = total_f = 0
    # Arguments: LABEL:BUILD_DIR:RESULTS_DIR ...
    for arg in sys.argv[1:]:
        label, build_dir, results_dir = arg.split(":", 2)
        p, f = count_build(build_dir, results_dir, label)
        print(f"{label}: {p} passed, {f} failed", file=sys.stderr)
        total_p += p
        total_f += f
    print(f"{total_p} passed, {total_f} failed")
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main())
