#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Prometheus metrics for real: -o metrics=127.0.0.1:PORT serves /metrics (and
nothing else), Debian's prometheus server scrapes it and has each cgroup's
series with the bytes the test moved (also for a cgroup whose name needs
escaping and holds invalid UTF-8), promtool accepts both the endpoint and
`cgloopctl stats --format=prometheus`, which show the same series; a bad
address or a port in use stops the daemon before it mounts."""

import ctypes
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import MiB, check, check_eq, ctl, run_io  # noqa: E402

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def die_with_parent():
    """In the child before exec: SIGKILL when the test process dies, whatever kills it."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, method="GET", headers=None):
    """(status, headers, body bytes) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def unescape_label(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(s[i + 1], "\\" + s[i + 1]))
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def parse_exposition(text):
    """{(name, frozenset of (label, value)): value} of the text format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        labels = {}
        if "{" in line:
            name, rest = line.split("{", 1)
            i = 0
            while rest[i] != "}":
                eq = rest.index("=", i)
                key = rest[i:eq].lstrip(",")
                j = eq + 2  # past ="
                val = []
                while rest[j] != '"':
                    val.append(rest[j:j + 2] if rest[j] == "\\" else rest[j])
                    j += 2 if rest[j] == "\\" else 1
                labels[key] = unescape_label("".join(val))
                i = j + 1
            value = rest[i + 1:].strip()
        else:
            name, value = line.split(" ", 1)
        out[(name, frozenset(labels.items()))] = float(value)
    return out


def series(parsed, name, **labels):
    """The values of `name` whose labels include `labels`."""
    want = set(labels.items())
    return [v for (n, ls), v in parsed.items() if n == name and want <= set(ls)]


def promtool_check(text, what):
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, f"promtool check metrics ({what}): exit {r.returncode}: "
          f"{r.stdout}{r.stderr}")
    check_eq(r.stdout + r.stderr, "", f"promtool's complaints about {what}")


class PrometheusServer:
    """Debian's prometheus, scraping `target` every second, with its own config and
    storage in the test's temp dir; stopped by pid at clean-up."""

    def __init__(self, t, target):
        self.port = free_port()
        cfg = t.path("prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: cgloopfs\n    static_configs:\n"
                    f"      - targets: ['{target}']\n")
        self.log = open(t.path("prometheus.log"), "w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={t.path('tsdb')}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent)
        t.defer(self.stop)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()

    def query(self, promql):
        """The instant vector of `promql`: [(labels dict, float value)]; [] while
        the server is not up yet."""
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": promql}))
        try:
            status, _, body = http_get(url)
        except (urllib.error.URLError, ConnectionError, OSError):
            return []
        if status != 200:
            return []
        data = json.loads(body)["data"]["result"]
        return [(r["metric"], float(r["value"][1])) for r in data]


# --------------------------------------------------------------------------
# tests

@harness.timeout(120)
def test_prometheus_scrapes_each_cgroup(t):
    """Two cgroups (and one whose name needs escaping) do I/O; Prometheus's HTTP API
    then has their byte counters with the exact figures, and promtool accepts the
    endpoint and `cgloopctl stats --format=prometheus`, which hold the same series."""
    img = t.path("a.img")
    harness.make_sparse(img, 64 * MiB)
    cg = t.cgroup()
    alpha, beta = cg.child("alpha"), cg.child("beta")
    # Quote, backslash, a UTF-8 letter and a byte that is no UTF-8 at all.
    weird_name = b'we"ird\\x-\xc3\xa9-\xff'
    weird = os.path.join(cg.path, os.fsdecode(weird_name))
    os.mkdir(weird)
    cg.children.append(weird)
    weird_label = "/" + cg.name + "/" + weird_name.decode("utf-8", "replace")
    plan = {  # cgroup: (bytes written, bytes read)
        alpha: (0, 3 * MiB),
        beta: (1 * MiB, 2 * MiB + 4096),
        weird: (0, 192 * 1024),
    }
    port = free_port()
    with t.mount(img, opts=f"metrics=127.0.0.1:{port}") as m:
        f = m.path("a.img")
        for i, (kid, (w, r)) in enumerate(plan.items()):
            if w:
                check(run_io(cg, kid, f, "write", i * 8 * MiB, w, seed=i)["ok"], "write")
            check(run_io(cg, kid, f, "read", i * 8 * MiB, r)["ok"], "read failed")

        status, headers, body = http_get(f"http://127.0.0.1:{port}/metrics")
        check_eq(status, 200, "GET /metrics")
        check(headers.get("Content-Type", "").startswith("text/plain"),
              f"Content-Type {headers.get('Content-Type')}")
        text = body.decode("utf-8")  # must be UTF-8, whatever the cgroup names hold
        check('we\\"ird\\\\x-\u00e9-\ufffd' in text,
              "the weird cgroup's label is not escaped as the exposition format says")
        promtool_check(text, "/metrics")
        cli = ctl("stats", "--format=prometheus", "-m", m.mnt).stdout
        promtool_check(cli, "cgloopctl stats --format=prometheus")

        got, got_cli = parse_exposition(text), parse_exposition(cli)
        # The same series (but prometheus-cpp's own exposer_* ones) in both.
        ours = {k for k in got if not k[0].startswith("exposer_")}
        check_eq(sorted(map(str, ours)), sorted(map(str, got_cli)), "series of both outputs")
        for kid, (w, r) in plan.items():
            rel = weird_label if kid == weird else cg.rel(kid)
            for src, parsed in (("/metrics", got), ("cgloopctl", got_cli)):
                check_eq(series(parsed, "cgloopfs_cgroup_bytes_total", cgroup=rel, op="read"),
                         [float(r)], f"{src}: {rel} bytes read")
                check_eq(series(parsed, "cgloopfs_cgroup_bytes_total", cgroup=rel,
                                op="write"), [float(w)], f"{src}: {rel} bytes written")
                check_eq(series(parsed, "cgloopfs_cgroup_worker", cgroup=rel), [1.0],
                         f"{src}: {rel} has a worker")
                reqs = series(parsed, "cgloopfs_cgroup_requests_total", cgroup=rel,
                              op="read")
                count = series(parsed, "cgloopfs_cgroup_request_duration_seconds_count",
                               cgroup=rel)
                inf = series(parsed, "cgloopfs_cgroup_request_duration_seconds_bucket",
                             cgroup=rel, le="+Inf")
                writes = series(parsed, "cgloopfs_cgroup_requests_total", cgroup=rel,
                                op="write")
                check(reqs and reqs[0] >= r // (64 * 1024), f"{src}: {rel} reads {reqs}")
                check_eq(count, [reqs[0] + writes[0]], f"{src}: {rel} histogram count")
                check_eq(inf, count, f"{src}: {rel} +Inf bucket")
        check_eq(series(got, "cgloopfs_workers"), [3.0], "cgloopfs_workers")
        check_eq(series(got, "cgloopfs_image_size_bytes", image="a.img"), [64.0 * MiB],
                 "image size")

        prom = PrometheusServer(t, f"127.0.0.1:{port}")
        want = {(weird_label if kid == weird else cg.rel(kid)): float(r)
                for kid, (w, r) in plan.items()}
        q = f'cgloopfs_cgroup_bytes_total{{op="read",cgroup=~"/{cg.name}/.*"}}'
        seen = {}

        def scraped():
            seen.clear()
            seen.update({lbl["cgroup"]: v for lbl, v in prom.query(q)})
            return seen == want
        if not harness.wait_for(scraped, 45, 0.5):
            with open(t.path("prometheus.log")) as log:
                raise harness.TestFailure(f"Prometheus has {seen}, want {want}; "
                                          f"up: {prom.query('up')}; log: {log.read()[-2000:]}")
        for lbl, v in prom.query(f'up{{instance="127.0.0.1:{port}"}}'):
            check_eq(v, 1.0, "Prometheus's up for the endpoint")
        # Its histogram_quantile works on what it stored: a finite, positive p99.
        p99 = prom.query("histogram_quantile(0.99, cgloopfs_cgroup_request_duration_seconds_"
                         f'bucket{{cgroup="{cg.rel(alpha)}"}})')
        check(len(p99) == 1 and 0 < p99[0][1] <= 10, f"p99 of alpha: {p99}")
        prom.stop()


def test_endpoint_serves_metrics_only(t):
    """GET /metrics (also with a query string, gzip, HTTP keep-alive) is served;
    every other path is 404 (no listing), every other method 405."""
    img = t.path("a.img")
    harness.make_sparse(img, 4 * MiB)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with t.mount(img, opts=f"metrics=127.0.0.1:{port}") as m:
        with open(m.path("a.img"), "rb") as f:
            f.read(4096)
        for path in ("/metrics", "/metrics?name[]=x", "/%6detrics"):
            status, _, body = http_get(base + path)
            check_eq(status, 200, f"GET {path}")
            check(b"cgloopfs_cgroup_requests_total" in body, f"GET {path}: no figures")
        status, headers, body = http_get(base + "/metrics", headers={"Accept-Encoding": "gzip"})
        check_eq(status, 200, "GET /metrics, gzip")
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        check(b"cgloopfs_workers" in body, "gzip: no figures")
        for path in ("/", "/metrics/", "/metricsx", "/metrics/x", "/index.html", "/..",
                     "/etc/passwd", "/metrics/../../etc/passwd"):
            status, _, body = http_get(base + path)
            check_eq(status, 404, f"GET {path}")
            check(b"cgloopfs_" not in body and b"<a href" not in body.lower(),
                  f"GET {path}: {body[:200]!r}")
        for method in ("POST", "PUT", "DELETE", "HEAD"):
            status, headers, _ = http_get(base + "/metrics", method=method)
            check_eq(status, 405, f"{method} /metrics")
            check_eq(headers.get("Allow"), "GET", f"{method} /metrics: Allow")
        # Two requests on one connection (Prometheus keeps its connections).
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
            s.sendall(req + req)
            data = b""
            deadline = time.monotonic() + 10
            while data.count(b"HTTP/1.1 200") < 2 and time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            check_eq(data.count(b"HTTP/1.1 200"), 2, "answers on one connection")


def test_bad_address_and_port_in_use(t):
    """A bad value is a usage error naming the option; a port in use, or an address
    not on this host, stops the daemon before it mounts; [::1] is served where the
    HTTP server has IPv6, and refused at start-up, saying so, where it has none."""
    img = t.path("a.img")
    harness.make_sparse(img, 1 * MiB)
    mnt = t.mkdir("mnt")
    for value, why in (("localhost:9477", "not an IPv4 address"),
                       ("127.0.0.1", "must be ADDRESS:PORT"),
                       ("127.0.0.1:0", "port"),
                       ("127.0.0.1:65536", "port"),
                       ("::1:9477", "brackets"),
                       ("[::1]9477", "[IPv6 address]:PORT")):
        harness.run_daemon_expect_failure(t, ["-o", f"metrics={value}", img, mnt], 2,
                                          [f'option "metrics={value}"', why])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        harness.run_daemon_expect_failure(t, ["-o", f"metrics=127.0.0.1:{port}", img, mnt], 1,
                                          [f'option "metrics=127.0.0.1:{port}"', "in use"])
    # TEST-NET-1: no host has it.
    harness.run_daemon_expect_failure(t, ["-o", "metrics=192.0.2.1:9477", img, mnt], 1,
                                      ['option "metrics=192.0.2.1:9477"'])

    port = free_port()
    daemon = subprocess.Popen([harness.CGLOOPFS, "-f", "-o", f"metrics=[::1]:{port}", img, mnt],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        rc = daemon.wait(3)
    except subprocess.TimeoutExpired:
        rc = None
    try:
        if rc is None:  # running: it serves over IPv6
            status, _, body = http_get(f"http://[::1]:{port}/metrics")
            check_eq(status, 200, "GET http://[::1]/metrics")
            check(b"cgloopfs_workers" in body, "[::1]: no figures")
        else:
            err = daemon.stderr.read()
            check_eq(rc, 1, f"[::1]: exit status; stderr {err!r}")
            check(f'option "metrics=[::1]:{port}"' in err and "no IPv6" in err,
                  f"[::1]: message {err!r}")
            check(not harness.is_mounted(mnt), "[::1]: mounted anyway")
    finally:
        if daemon.poll() is None:
            os.kill(daemon.pid, signal.SIGTERM)
            daemon.wait(15)
        if harness.is_mounted(mnt):
            harness.fusermount_unmount(mnt)


if __name__ == "__main__":
    harness.main()
