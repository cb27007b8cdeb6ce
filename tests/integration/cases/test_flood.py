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
import harness  # noqa: E402
from harness import MiB, check, ctl_mount, daemon_rss_kib  # noqa: E402

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
                    peak["parked"] = max(peak["parked"], ctl_mount(m.mnt, "stats")["queued_write_buffers"])
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
        st = ctl_mount(m.mnt, "stats")
        check(st["max_queued_write_buffers"] == max_queued_mib,
              f"max_queued_write_buffers {st['max_queued_write_buffers']}, "
              f"want {max_queued_mib}")
        light_stats = [c for c in st["cgroups"] if c["cgroup"] == cg.rel(b)]
        check(light_stats, f"no statistics for the light cgroup {cg.rel(b)}: {st['cgroups']}")
        return {"peak": peak, "p99_ms": p99_ms, "max_ms": lj["clat_ns"]["max"] / 1e6,
                "light_ios": lj["total_ios"], "light_stats": light_stats[0]}


@harness.timeout(120)
def test_flood_within_the_default_max_queued(t):
    """256M is room for the whole flood: the light cgroup never waits behind it.

    "Never waits" as the daemon can show it: a session thread waits only when the
    parked write buffers fill max_queued, and 200 writers of 1 MiB never fill 256 (so
    no request of the light cgroup sat unread behind the flood); every light read was
    served by the light cgroup's own worker, without error; and no single light read
    took as long as a wait behind the flood would (its slowest stays under 1 s while
    the flood runs for 6 s)."""
    r = flood(t, 256)
    check(r["peak"]["parked"] < 256,
          f"the parked write buffers reached the cap ({r['peak']['parked']} of 256): "
          f"session threads waited")
    ls = r["light_stats"]
    check(ls["reads"] >= r["light_ios"],
          f"the light cgroup's worker served {ls['reads']} reads, fio did {r['light_ios']}")
    check(ls["errors"] == 0, f"the light cgroup had {ls['errors']} errors")
    check(r["max_ms"] < 1000, f"a light read took {r['max_ms']:.0f} ms: it waited")


@harness.timeout(120)
def test_flood_with_a_small_max_queued_is_bounded(t):
    """16M: the cap is reached and holds; every request still completes."""
    peak = flood(t, 16)["peak"]
    check(peak["parked"] >= 8, f"the flood never filled the queue (peak {peak['parked']})")


if __name__ == "__main__":
    harness.main()
