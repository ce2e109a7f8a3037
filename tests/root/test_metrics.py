"""``--metrics`` checked by a real Prometheus server (Debian's ``prometheus``), in the node namespace.

The module starts ``/usr/bin/prometheus`` in the topology's node namespace with a generated
configuration (scrape every second: job ``pfrps`` on 127.0.0.1:PFRPS_PORT, job ``pfrps-ac`` on
127.0.0.1:AC_PORT) and its storage under pytest's tmp_path, waits until ``/-/ready`` answers,
and queries it through its HTTP API (``/api/v1/query``) from this process with a socket made
inside the namespace (``pyroute2.netns.pushns``: the socket keeps its namespace). pfrps and
pfrps-ac run in the same namespace, frames come from pfinject in the injector's. Prometheus is
stopped and its directory removed at the end of the module. Waits are bounded polls, no fixed
sleeps.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest

from pfrps.ac import protocol as p
from tests.helpers import PY, assert_bad_input, last_json
from tests.root.conftest import start_pfrps
from pfrps.testing.ac import AC_MAC, ACProcess, PPPoEClient, client_mac, is_disc, tag
from pfrps.testing.procs import worker_pids

pytestmark = pytest.mark.root

PROMETHEUS = "/usr/bin/prometheus"
PFRPS_PORT = 9464
AC_PORT = 9465
EMBED_PORT = 9466
WORKERS = 4
WAIT = 30.0  # seconds any one Prometheus condition may take (scrapes are 1 s apart)


def ns_socket(ns: str, host: str, port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP connection made inside namespace ``ns``."""
    from pyroute2 import netns

    netns.pushns(ns)
    try:
        return socket.create_connection((host, port), timeout=timeout)
    finally:
        netns.popns()


def ns_get(ns: str, port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET http://127.0.0.1:port/path inside ``ns``: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.sock = ns_socket(ns, "127.0.0.1", port, timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def ns_free_port(ns: str) -> int:
    from pyroute2 import netns

    netns.pushns(ns)
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    finally:
        netns.popns()


@dataclass
class Prometheus:
    ns: str
    port: int
    proc: subprocess.Popen
    log: Path

    def api(self, path: str, **params: str) -> object:
        status, body = ns_get(self.ns, self.port, f"/api/v1/{path}?{urllib.parse.urlencode(params)}")
        doc = json.loads(body)
        assert status == 200 and doc["status"] == "success", (status, doc)
        return doc["data"]

    def query(self, expr: str) -> dict[tuple, float]:
        """An instant query: ``{tuple(sorted labels without __name__): value}``."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(r["value"][1])
                for r in data["result"]}

    def scalar(self, expr: str) -> Optional[float]:
        """The value of a query that returns at most one series (None when it returns none)."""
        res = self.query(expr)
        assert len(res) <= 1, res
        return next(iter(res.values()), None)

    def per_worker(self, expr: str) -> dict[int, float]:
        return {int(dict(k)["worker"]): v for k, v in self.query(expr).items()}

    def wait(self, what: str, cond: Callable[[], object], timeout: float = WAIT) -> object:
        """Poll ``cond()`` until it returns something truthy; fail naming ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            got = cond()
            if got:
                return got
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus never showed {what} within {timeout:.0f} s; log:\n{self.log.read_text()[-3000:]}")
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.2)


@pytest.fixture(scope="module")
def node(topo):
    """The node namespace with its loopback up (pfrps's endpoint and Prometheus listen there)."""
    from pyroute2 import IPRoute

    with IPRoute(netns=topo.node, flags=0) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    return topo


@pytest.fixture(scope="module")
def prometheus(node, tmp_path_factory):
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail(f"{PROMETHEUS} is missing: tools/setup-host.sh installs Debian's prometheus")
    d = tmp_path_factory.mktemp("prometheus")
    port = ns_free_port(node.node)
    config = d / "prometheus.yml"
    config.write_text(f"""\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pfrps
    static_configs:
      - targets: ["127.0.0.1:{PFRPS_PORT}"]
  - job_name: pfrps-ac
    static_configs:
      - targets: ["127.0.0.1:{AC_PORT}"]
  - job_name: embed
    static_configs:
      - targets: ["127.0.0.1:{EMBED_PORT}"]
""")
    log = d / "prometheus.log"
    with open(log, "w") as out:
        proc = node.popen(node.node, [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={d / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                          stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    prom = Prometheus(node.node, port, proc, log)
    try:
        def ready() -> bool:
            try:
                return ns_get(node.node, port, "/-/ready")[0] == 200
            except OSError:  # not listening yet
                return False

        prom.wait("/-/ready", ready, timeout=60)
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def test_prometheus_scrapes_pfrps(node, prometheus):
    """Frames, rate during a burst, per-worker values against pfrps's own counters, a worker
    restart that resets nothing, and the endpoint gone with the process."""
    prom, n = prometheus, 12_000
    job = '{job="pfrps"}'
    run = start_pfrps(node, "-w", str(WORKERS), "--json", "--metrics", f"127.0.0.1:{PFRPS_PORT}",
                      "--duration", "300")
    inj = None
    try:
        assert run.ready, run.proc.communicate(timeout=30)
        prom.wait("the pfrps target up", lambda: prom.scalar(f'up{job}') == 1)
        assert prom.scalar(f"pfrps_workers{job}") == WORKERS
        assert prom.scalar(f"pfrps_link_up{job}") == 1
        assert prom.scalar(f"pfrps_workers_ready{job}") == WORKERS
        assert prom.per_worker(f"pfrps_frames_total{job}") == {w: 0 for w in range(WORKERS)}
        meta = prom.api("metadata", metric="pfrps_frames_total")["pfrps_frames_total"][0]
        assert meta["type"] == "counter" and "(frames;" in meta["help"], meta
        assert prom.api("metadata", metric="pfrps_kernel_drops_total")["pfrps_kernel_drops_total"][0]["type"] == "counter"

        # a paced burst of n frames (~6 s): the rate is seen while it is still being sent
        inj = node.popen(node.injector, [PY, "-m", "pfrps.inject", "-i", node.injector_if, "-d", node.node_mac,
                                         "-p", str(n), "--seed", "18", "--rate", "2000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        rate = prom.wait("a non-zero frame rate during the burst",
                         lambda: prom.scalar(f"sum(rate(pfrps_frames_total{job}[3s]))") or inj.poll() is not None)
        assert inj.poll() is None and rate is not True and rate > 0, "the burst ended before Prometheus saw a rate"
        out, err = inj.communicate(timeout=60)
        assert inj.returncode == 0, err

        # every frame sent is scraped, summed over the workers
        prom.wait(f"sum(pfrps_frames_total) == {n}", lambda: prom.scalar(f"sum(pfrps_frames_total{job})") == n)
        frames = prom.per_worker(f"pfrps_frames_total{job}")
        assert sorted(frames) == list(range(WORKERS)) and all(frames.values()), frames

        # a worker killed and restarted: its counter goes on, Prometheus sees no reset
        victim = 1
        os.kill(worker_pids(run.proc.pid)[victim], signal.SIGKILL)
        prom.wait("the restart counted", lambda: prom.per_worker(f"pfrps_worker_restarts_total{job}").get(victim) == 1)
        prom.wait("every worker ready again", lambda: prom.scalar(f"pfrps_workers_ready{job}") == WORKERS)
        assert prom.per_worker(f"pfrps_frames_total{job}") == frames
        assert prom.scalar(f"sum(resets(pfrps_frames_total{job}[5m]))") == 0
        assert prom.scalar(f"sum(pfrps_kernel_drops_total{job})") == 0
    finally:
        if inj is not None and inj.poll() is None:
            inj.kill()
            inj.communicate()
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGINT)
        status, out, err = run.finish(timeout=60)
    assert status == 0, err
    assert "Prometheus metrics on http://127.0.0.1:9464/metrics" in err
    final = last_json(out)
    # Prometheus's per-worker values are pfrps's own (the per-second line's --json form)
    assert final["frames"] == [int(frames[w]) for w in range(WORKERS)]
    assert final["restarts"] == [int(v) for _, v in sorted(prom.per_worker(f"pfrps_worker_restarts_total{job}").items())]
    assert final["total"] == n
    # the endpoint went away with the process
    with pytest.raises(ConnectionRefusedError):
        ns_socket(node.node, "127.0.0.1", PFRPS_PORT).close()


def test_prometheus_scrapes_pfrps_ac(node, prometheus):
    """pfrps-ac's own counters and gauge (pfrps_ac_*), by name, HELP and value."""
    prom, n, k = prometheus, 12, 5
    job = '{job="pfrps-ac"}'
    ac = ACProcess(node, "--service-name", "internet", "--metrics", f"127.0.0.1:{AC_PORT}")
    cl = PPPoEClient(node)
    try:
        prom.wait("the pfrps-ac target up", lambda: prom.scalar(f'up{job}') == 1)
        macs = [client_mac(0x1800 + i) for i in range(n)]
        cl.send(*(p.build_padi(m, b"internet", b"m") for m in macs))
        pados = {f[:6]: f for f in cl.expect(n, lambda f: is_disc(f, p.PADO))}
        cl.send(*(p.build_padr(m, AC_MAC, b"internet", tag(pados[m], p.TAG_AC_COOKIE), b"m") for m in macs[:k]))
        cl.expect(k, lambda f: is_disc(f, p.PADS))
        prom.wait(f"{n} PADIs, {k} sessions",
                  lambda: (prom.scalar(f"sum(pfrps_ac_padi_total{job})") == n
                           and prom.scalar(f"sum(pfrps_ac_sessions{job})") == k))
        assert prom.scalar(f"sum(pfrps_ac_pado_total{job})") == n
        assert prom.scalar(f"sum(pfrps_ac_pads_total{job})") == k
        assert prom.scalar(f"sum(pfrps_frames_total{job})") == n + k
        meta = prom.api("metadata", metric="pfrps_ac_padi_total")["pfrps_ac_padi_total"][0]
        assert meta["type"] == "counter" and meta["help"].startswith("PADI frames received"), meta
        assert prom.api("metadata", metric="pfrps_ac_sessions")["pfrps_ac_sessions"][0]["type"] == "gauge"
        sessions = prom.per_worker(f"pfrps_ac_sessions{job}")
        padi = prom.per_worker(f"pfrps_ac_padi_total{job}")
        # the same per worker as the AC's own counters (its --json line), traffic being over
        snap = ac.wait_for(lambda s: sum(s["padi"]) == n and sum(s["sessions"]) == k, "the handshakes")
        assert snap["padi"] == [int(padi[w]) for w in range(len(snap["padi"]))]
        assert snap["sessions"] == [int(sessions[w]) for w in range(len(snap["sessions"]))]
    finally:
        cl.close()
        rc, final = ac.stop()
    assert rc == 0
    assert "Prometheus metrics on http://127.0.0.1:9465/metrics" in "\n".join(ac.log)
    assert final["padi"] == snap["padi"]  # sessions are closed (PADT) at shutdown, counters stay


#: An application embedding the supervisor: a counter and a histogram fed by its handler.
EMBED = """
import sys
from pfrps import Supervisor, SupervisorConfig

def handler(frame, meta, ctx):
    ctx.count("seen")
    ctx.observe("handle_seconds", 0.002)   # always the (0.001, 0.01] bucket

cfg = SupervisorConfig(sys.argv[1], workers=2, app_counters=("seen",), app_name="pfrps_embed",
                       app_histograms={"handle_seconds": (0.001, 0.01)}, metrics=("127.0.0.1", int(sys.argv[2])))
sup = Supervisor(cfg, handler=handler)
try:
    sup.start()
    print("READY", flush=True)
    sys.exit(sup.run(lambda: None, interval=0.5))
finally:
    sup.close()
"""


def test_prometheus_scrapes_an_application_histogram(node, prometheus):
    """SupervisorConfig(metrics=, app_name=, app_histograms=) and ctx.observe, end to end."""
    prom, n = prometheus, 300
    job = '{job="embed"}'
    proc = node.popen(node.node, [PY, "-c", EMBED, node.node_if, str(EMBED_PORT)], stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "READY", proc.communicate(timeout=30)
        res = node.run(node.injector, [PY, "-m", "pfrps.inject", "-i", node.injector_if, "-d", node.node_mac,
                                       "-p", str(n), "--rate", "20000"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        prom.wait(f"{n} observations", lambda: prom.scalar(f"sum(pfrps_embed_handle_seconds_count{job})") == n)
        buckets = {dict(k)["le"]: v for k, v in prom.query(
            f"sum by (le) (pfrps_embed_handle_seconds_bucket{job})").items()}
        assert buckets == {"0.001": 0, "0.01": n, "+Inf": n}
        assert prom.scalar(f"sum(pfrps_embed_handle_seconds_sum{job})") == pytest.approx(0.002 * n)
        assert prom.scalar(f"sum(pfrps_embed_seen_total{job})") == n
        assert prom.scalar(f"histogram_quantile(0.5, sum by (le) (pfrps_embed_handle_seconds_bucket{job}))") \
            == pytest.approx(0.0055, rel=0.01)  # linear within (0.001, 0.01]
        meta = prom.api("metadata", metric="pfrps_embed_handle_seconds")["pfrps_embed_handle_seconds"][0]
        assert meta["type"] == "histogram", meta
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


@pytest.mark.parametrize("module, prog", [("pfrps", "pfrps"), ("pfrps.ac", "pfrps-ac")])
def test_port_in_use_is_one_line_exit_2(node, prometheus, module, prog):
    """Prometheus holds its port: the tool says so in one line, exit 2, and no worker was forked."""
    extra = ["--ac-name", "x"] if module == "pfrps.ac" else []
    res = node.run(node.node, [PY, "-m", module, "-i", node.node_if, "-w", "2", *extra,
                               "--metrics", f"127.0.0.1:{prometheus.port}", "--duration", "30"],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    line = assert_bad_input(res, prog, f"127.0.0.1:{prometheus.port}: the port is in use")
    assert "--metrics" in line
    assert res.stdout == ""


@pytest.mark.parametrize("addr, needle", [
    ("192.0.2.1:9464", "192.0.2.1 is not an address of this host"),  # TEST-NET-1: bind fails, nothing is sent
    ("[::1]:9464", "::1 is not an address of this host"),            # IPv6 is off in the test namespaces
    ("127.0.0.1:99999", "out of range 1..65535"),
    ("9464", "names only a port"),
])
def test_bad_metrics_address_is_one_line_exit_2(node, addr, needle):
    res = node.run(node.node, [PY, "-m", "pfrps", "-i", node.node_if, "-w", "2", "--metrics", addr,
                               "--duration", "30"],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert_bad_input(res, "pfrps", needle)
