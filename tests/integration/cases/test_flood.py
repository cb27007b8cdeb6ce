#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""One cgroup floods (200 parallel 1 MiB direct writers) while another reads
4 KiB at 200 IOPS: the daemon's memory stays within what max_queued allows,
every request is answered, and the light cgroup's p99 is reported."""

import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check  # noqa: E402
from test_dispatch import MiB, ctl, daemon_rss_kib  # noqa: E402

WRITERS = 200
# Besides the parked payloads: a 1 MiB read buffer per session thread (4),
# up to 16 spare buffers, and room for threads' stacks and allocator slack.
FIXED_MIB = 4 + 16 + 24


def fio(target, *args):
    return ["fio", "--filename=" + target, "--direct=1", "--ioengine=psync", "--time_based",
            "--output-format=json", "--group_reporting", *args]


def flood(t, max_queued_mib):
    img = os.path.join("/dev/shm", f"cgl-flood-{os.getpid()}.img")
    t.defer(lambda: os.path.exists(img) and os.unlink(img))
    harness.make_sparse(img, (WRITERS + 16) * MiB)
    cg = t.cgroup()
    a, b = cg.child("a"), cg.child("b")
    with t.mount(img, opts=f"max_queued={max_queued_mib}M") as m:
        f = m.path(os.path.basename(img))
        # Warm up B's worker, then take the baseline.
        cg.run(b, fio(f, "--name=warm", "--rw=randread", "--bs=4k", "--runtime=1",
                      "--size=16M"), capture_output=True, timeout=30)
        base = daemon_rss_kib(m.pid)
        peak = {"rss": base, "parked": 0}
        stop = threading.Event()

        def sample():
            n = 0
            while not stop.is_set():
                peak["rss"] = max(peak["rss"], daemon_rss_kib(m.pid))
                if n % 5 == 0:
                    peak["parked"] = max(peak["parked"], ctl(m.mnt, "stats")["queued_write_buffers"])
                n += 1
                time.sleep(0.02)
        sampler = threading.Thread(target=sample, daemon=True)
        heavy = cg.popen(a, fio(f, "--name=flood", "--thread", f"--numjobs={WRITERS}",
                                "--rw=write", "--bs=1M", "--size=1M", "--offset_increment=1M",
                                "--runtime=6"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t.defer(lambda: heavy.poll() is None and heavy.kill())
        sampler.start()
        try:
            time.sleep(1.5)
            light = cg.run(b, fio(f, "--name=light", "--rw=randread", "--bs=4k",
                                  "--rate_iops=200", "--runtime=3", "--size=16M"),
                           capture_output=True, text=True, timeout=60)
            out, err = heavy.communicate(timeout=60)
        finally:
            stop.set()
            sampler.join(5)
        check(heavy.returncode == 0, f"the flood failed: {err}")
        check(light.returncode == 0, f"the light reader failed: {light.stderr}")
        hj = json.loads(out[out.index("{"):])["jobs"][0]["write"]
        lj = json.loads(light.stdout[light.stdout.index("{"):])["jobs"][0]["read"]
        check(hj["io_bytes"] > 0 and lj["io_bytes"] > 0, "no I/O was done")
        p99_ms = lj["clat_ns"]["percentile"]["99.000000"] / 1e6
        grown = (peak["rss"] - base) / 1024
        print(f"# max_queued={max_queued_mib}M: flood {hj['bw_bytes'] / MiB:.0f} MiB/s; "
              f"light p99 {p99_ms:.2f} ms; peak parked buffers {peak['parked']}; "
              f"RSS {base / 1024:.1f} MiB -> peak {peak['rss'] / 1024:.1f} MiB "
              f"(+{grown:.1f})", flush=True)
        check(peak["parked"] <= max_queued_mib,
              f"{peak['parked']} parked buffers, cap {max_queued_mib}")
        check(grown <= max_queued_mib + FIXED_MIB,
              f"RSS grew {grown:.1f} MiB, cap {max_queued_mib} + {FIXED_MIB} MiB")
        check(p99_ms < 1000, f"the light reader's p99 was {p99_ms:.0f} ms")
        return peak, p99_ms


@harness.timeout(120)
def test_flood_within_the_default_max_queued(t):
    """256M is room for the whole flood: the light cgroup never waits behind it."""
    flood(t, 256)


@harness.timeout(120)
def test_flood_with_a_small_max_queued_is_bounded(t):
    """16M: the cap is reached and holds; every request still completes."""
    peak, _ = flood(t, 16)
    check(peak["parked"] >= 8, f"the flood never filled the queue (peak {peak['parked']})")


if __name__ == "__main__":
    harness.main()
