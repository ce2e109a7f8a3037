"""Benchmark: one Prometheus scrape of 1,024 workers' counters (``--metrics``, issue 18).

A :class:`pfrps.stats.SharedCounters` of 1,024 rows is filled with counts of a busy run (no
worker processes are needed: the endpoint reads only the shared memory) and served exactly as
the supervisor serves it (:class:`pfrps.metrics.MetricsEndpoint` with the supervisor's
:class:`pfrps.metrics.PfrpsCollector`); the bench then times HTTP GETs of ``/metrics`` from
sending the request to the last byte of the answer, with the headers Prometheus 2.42 sends
(``Accept: application/openmetrics-text...``, ``Accept-Encoding: gzip``), so the figure
includes prometheus_client's encoding and compression. Rows: pfrps's own counters, and the
same plus pfrps-ac's 17 counters and 1 gauge.

Server and client run in a private network namespace (``unshare --net``, loopback only), so
nothing is sent on the host's interfaces. Target: median under 50 ms for pfrps at 1,024
workers.

Standalone: ``python -m bench.metrics [--workers N] [--scrapes K]`` (as root) prints the table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time
from typing import Optional, Sequence

from . import common
from .common import Row, summary
from pfrps.cliutil import ArgumentParser

NAME = "metrics"
TITLE = "Metrics scrape (HTTP GET /metrics) at 1,024 workers"
WORKERS = 1024
TARGET_MS = 50.0
#: What Prometheus 2.42 (Debian 12) sends with every scrape.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
              "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/2.42.0",
}


def _fill(counters, seed: int = 7) -> None:
    """Counts of a long, busy run: frames ~1e9 per worker, bytes x148, a few drops and restarts."""
    import numpy as np  # noqa: PLC0415

    from pfrps.stats import Col  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    arr = counters.array
    arr[:] = rng.integers(0, 1000, size=arr.shape, dtype=np.uint64)
    arr[:, Col.FRAMES] = rng.integers(10**8, 10**9, size=arr.shape[0], dtype=np.uint64)
    arr[:, Col.BYTES] = arr[:, Col.FRAMES] * np.uint64(148)


def measure(workers: int, scrapes: int, app: bool) -> dict:
    """Serve a filled SharedCounters of ``workers`` rows and time ``scrapes`` GETs (ms)."""
    from pfrps.ac.server import AC_COUNTERS, AC_GAUGES  # noqa: PLC0415
    from pfrps.metrics import MetricsEndpoint, PfrpsCollector  # noqa: PLC0415
    from pfrps.stats import SharedCounters  # noqa: PLC0415

    counters = SharedCounters(workers, AC_COUNTERS if app else (), AC_GAUGES if app else ())
    _fill(counters)
    endpoint = MetricsEndpoint("127.0.0.1", 0)
    try:
        endpoint.serve(PfrpsCollector(counters, "enp1s0", "pfrps_ac" if app else "", if_rx_dropped=lambda: 0,
                                      workers_ready=lambda: workers, link_up=lambda: True))
        port = endpoint.address[1]
        times, size, raw = [], 0, 0
        for i in range(scrapes + 1):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            t0 = time.perf_counter()
            conn.request("GET", "/metrics", headers=PROMETHEUS_HEADERS)
            resp = conn.getresponse()
            body = resp.read()
            dt = time.perf_counter() - t0
            conn.close()
            if resp.status != 200:
                raise common.HarnessError(f"GET /metrics answered {resp.status}")
            if i:  # the first one warms up imports and caches
                times.append(dt * 1000)
            size = len(body)
        import gzip  # noqa: PLC0415

        text = gzip.decompress(body) if resp.getheader("Content-Encoding") == "gzip" else body
        raw = len(text)
        samples = sum(1 for ln in text.splitlines() if ln and not ln.startswith(b"#"))
        return {"workers": workers, "app": app, "ms": times, "bytes": size, "raw_bytes": raw, "samples": samples,
                "content_type": resp.getheader("Content-Type")}
    finally:
        endpoint.close()
        counters.close()


def _inner(workers: int, scrapes: int) -> list[dict]:
    """Run in the private namespace: bring loopback up, measure both variants."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    return [measure(workers, scrapes, app=False), measure(workers, scrapes, app=True)]


def _run_isolated(workers: int, scrapes: int) -> list[dict]:
    res = subprocess.run(["unshare", "--net", common.PY, "-m", "bench.metrics", "--inner", "--workers", str(workers),
                          "--scrapes", str(scrapes)], capture_output=True, text=True, cwd=common.REPO, timeout=600)
    if res.returncode != 0:
        raise common.HarnessError(f"metrics bench failed: {res.stderr.strip()[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run(ctx) -> dict:
    scrapes = 10 if ctx.quick else 30
    reps = max(ctx.reps or (1 if ctx.quick else 3), 1)
    results: list[list[dict]] = [_run_isolated(WORKERS, scrapes) for _ in range(reps)]
    rows = []
    data = {"workers": WORKERS, "scrapes": scrapes, "reps": reps, "runs": results}
    for k, label in ((0, "pfrps"), (1, "pfrps-ac (pfrps + 17 counters, 1 gauge)")):
        # one figure per rep: that rep's median; the row's median is over reps
        per_rep = [common.median(r[k]["ms"]) for r in results]
        first = results[0][k]
        note = (f"{first['samples']:,} samples, {first['raw_bytes'] / 1024:.0f} KiB "
                f"({first['bytes'] / 1024:.0f} KiB gzip), {first['content_type'].split(';')[0]}; "
                f"{scrapes} scrapes per run")
        if k == 0:
            med = common.median(per_rep)
            rows.append(Row(f"target: scrape of {WORKERS:,} workers' counters, {label}", "ms", summary(per_rep),
                            target=f"< {TARGET_MS:g} ms", passed=med < TARGET_MS, note=note))
        else:
            rows.append(Row(f"scrape of {WORKERS:,} workers' counters, {label}", "ms", summary(per_rep), note=note))
    return {
        "name": NAME, "title": TITLE, "rows": rows, "plots": [], "data": data,
        "method": (f"A SharedCounters of {WORKERS:,} rows filled with a busy run's counts, served by "
                   "pfrps.metrics.MetricsEndpoint (prometheus_client's WSGI app, the supervisor's collector) in a "
                   "private network namespace; time from sending GET /metrics with Prometheus 2.42's headers "
                   "(OpenMetrics, gzip) to the last byte; median of the scrapes of each run, then of the runs."),
    }


def _plot(path, data) -> None:  # no plot: a table is enough
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = ArgumentParser(prog="python -m bench.metrics", description=TITLE)
    p.add_argument("--workers", type=int, default=WORKERS)
    p.add_argument("--scrapes", type=int, default=30)
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.inner:
        print(json.dumps(_inner(args.workers, args.scrapes)))
        return 0
    for r in _run_isolated(args.workers, args.scrapes):
        print(f"{'pfrps-ac' if r['app'] else 'pfrps'}: {r['workers']} workers, {r['samples']} samples, "
              f"{r['raw_bytes'] / 1024:.0f} KiB ({r['bytes'] / 1024:.0f} KiB sent, {r['content_type']}): "
              f"median {common.median(r['ms']):.1f} ms, min {min(r['ms']):.1f}, max {max(r['ms']):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
