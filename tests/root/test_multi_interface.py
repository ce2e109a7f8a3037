"""Several interfaces per run (issue 16): ``pfrps -i enp1s0 -i enp2s0`` steers both ports across
the same workers, a source MAC on the same worker whichever port it comes in on, per-interface
figures in the JSON, replies out of the port the request came in on; pfrps-ac on two ports.

Topology: the usual two-node lab (``mi-inj-*`` -- ``mi-node-*``: eno1 -- enp1s0) plus a second
injector namespace joined to the same node (``mi-inj2-*``: eno2 -- enp2s0,
:meth:`pfrps.topology.TwoNodeTopology.add_port`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from pfrps.ac import protocol as p
from pfrps.hashing import expected_counts
from pfrps.inject.frames import FRAME_LEN
from pfrps.inject.macs import random_macs
from pfrps.links import link_stats
from pfrps.testing.ac import ACProcess, PPPoEClient, client_mac, is_disc
from pfrps.topology import TwoNodeTopology, unique_suffix
from tests.helpers import PY, assert_bad_input, last_json
from tests.root.conftest import TEST_RATE, start_pfrps

pytestmark = pytest.mark.root

NODE_IF2, NODE_MAC2, INJ_IF2 = "enp2s0", "52:54:00:84:d7:fe", "eno2"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def topo2():
    """Two access ports into one node namespace; ``t.port2`` is the second injector side."""
    t = TwoNodeTopology.unique(prefix="mi").create()
    try:
        inj2 = f"mi-inj2-{unique_suffix()}"
        t.add_port(inj2, INJ_IF2, NODE_IF2, NODE_MAC2)
        t.port2 = SimpleNamespace(injector=inj2, injector_if=INJ_IF2, node_mac=NODE_MAC2)
        yield t
    finally:
        t.destroy()


def _inject(topo, port, frames: int, seed: int) -> None:
    """pfinject ``frames`` frames (random MACs of ``seed``) on port 1 (``port`` None) or port 2."""
    ns, ifname, dst = (topo.injector, topo.injector_if, topo.node_mac) if port is None else \
        (port.injector, port.injector_if, port.node_mac)
    res = topo.run(ns, [PY, "-m", "pfrps.inject", "-i", ifname, "-d", dst, "-p", str(frames), "--seed", str(seed),
                        "--rate", TEST_RATE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("rx", ["ring", "recv"])
@pytest.mark.parametrize("steering", ["filter", "fanout"])
def test_two_ports_exact_counts(topo2, steering, rx):
    """Port 1 gets MAC set A, port 2 MAC set B then A again: per worker per port exact counts,
    the same MAC set gives the same per-worker figures on both ports."""
    n1, n2, workers = 900, 700, 3
    run = start_pfrps(topo2, "-i", NODE_IF2, "-w", str(workers), "--steering", steering, "--rx", rx, "--json",
                      "-c", str(n1 + n2 + n1), "--duration", "30")
    try:
        assert run.ready, run.proc.communicate(timeout=30)
        _inject(topo2, None, n1, 41)
        _inject(topo2, topo2.port2, n2, 42)
        _inject(topo2, topo2.port2, n1, 41)
        status, out, err = run.finish(timeout=60)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.communicate()
    assert status == 0, err
    snap = last_json(out)
    a = expected_counts(random_macs(n1, 41), workers, 0)
    b = expected_counts(random_macs(n2, 42), workers, 0)
    ports = snap["interfaces"]
    assert list(ports) == [topo2.node_if, NODE_IF2]
    one, two = ports[topo2.node_if], ports[NODE_IF2]
    assert one["frames"] == a.tolist(), snap
    assert two["frames"] == (a + b).tolist(), snap
    assert one["total"] == n1 and two["total"] == n1 + n2
    assert one["bytes"] == (a * FRAME_LEN).tolist() and two["bytes"] == ((a + b) * FRAME_LEN).tolist()
    assert snap["frames"] == (2 * a + b).tolist() and snap["total"] == 2 * n1 + n2
    assert one["drops"] == two["drops"] == [0] * workers
    assert one["ifindex"] != two["ifindex"]
    assert "enp1s0" in err and NODE_IF2 in err  # the describe line names both ports
    assert "Traceback" not in err and "worker failed" not in err, err


@pytest.mark.parametrize("rx", ["ring", "recv"])
def test_mapping_meta_ifindex_and_reply_port(topo2, rx):
    """An embedded Supervisor on both ports: every frame on the worker its MAC hashes to,
    ``meta.ifindex`` naming the port, each answer leaving by the port the frame came in on."""
    n1, n2, workers = 500, 400, 4
    rx1 = link_stats(topo2.injector_if, topo2.injector)["rx_packets"]
    rx2 = link_stats(INJ_IF2, topo2.port2.injector)["rx_packets"]
    proc = topo2.popen(topo2.node, [PY, "-m", "tests.root.multiport_probe", f"{topo2.node_if},{NODE_IF2}",
                                    str(workers), "0", "fanout", rx, str(n1 + n2)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
        _inject(topo2, None, n1, 51)
        _inject(topo2, topo2.port2, n2, 51)  # the same MACs on the other port
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "worker failed" not in err, err
    res = json.loads(out.strip().splitlines()[-1])
    want1 = expected_counts(random_macs(n1, 51), workers, 0)
    want2 = expected_counts(random_macs(n2, 51), workers, 0)
    assert res["misrouted"] == [0] * workers and res["badport"] == [0] * workers
    assert res["port0"] == want1.tolist() and res["port1"] == want2.tolist()
    ports = res["interfaces"]
    assert ports[topo2.node_if]["frames"] == want1.tolist() and ports[NODE_IF2]["frames"] == want2.tolist()
    # every answer went out of the port its frame came in on, and arrived on that side only
    assert ports[topo2.node_if]["tx_frames"] == want1.tolist() and ports[NODE_IF2]["tx_frames"] == want2.tolist()
    assert link_stats(topo2.injector_if, topo2.injector)["rx_packets"] - rx1 == n1
    assert link_stats(INJ_IF2, topo2.port2.injector)["rx_packets"] - rx2 == n2
    assert f"[{topo2.node_if} " in res["line"] and f"total:{n2}]" in res["line"]


def test_ac_two_ports_answers_out_of_the_receiving_port(topo2):
    """pfrps-ac -i enp1s0 -i enp2s0: a PADI on each port gets its PADO on that port only, from
    that port's MAC; a PADR to that MAC gets a PADS there."""
    n = 12
    ac = ACProcess(topo2, "-i", NODE_IF2, "--cookie-window", "3600")
    c1 = PPPoEClient(topo2)
    c2 = PPPoEClient(topo2.port2, ac_mac=bytes.fromhex(NODE_MAC2.replace(":", "")))
    mac1, mac2 = bytes.fromhex(topo2.node_mac.replace(":", "")), bytes.fromhex(NODE_MAC2.replace(":", ""))
    try:
        hosts1 = [client_mac(i) for i in range(n)]
        hosts2 = [client_mac(100 + i) for i in range(n)] + hosts1[:3]  # 3 MACs present on both ports
        c1.send(*(p.build_padi(m, b"", b"a%d" % i) for i, m in enumerate(hosts1)))
        c2.send(*(p.build_padi(m, b"", b"b%d" % i) for i, m in enumerate(hosts2)))
        pado1 = c1.expect(len(hosts1), lambda f: is_disc(f, p.PADO))
        pado2 = c2.expect(len(hosts2), lambda f: is_disc(f, p.PADO))
        assert sorted(f[:6] for f in pado1) == sorted(hosts1)
        assert sorted(f[:6] for f in pado2) == sorted(hosts2)
        assert {f[6:12] for f in pado1} == {mac1} and {f[6:12] for f in pado2} == {mac2}
        # nothing more: a probe PADI per port, and its PADO is the next frame there
        c1.send(p.build_padi(hosts1[0], b"", b"probe"))
        c2.send(p.build_padi(hosts2[0], b"", b"probe"))
        assert len(c1.expect(1, lambda f: is_disc(f, p.PADO))) == 1
        assert len(c2.expect(1, lambda f: is_disc(f, p.PADO))) == 1
        snap = ac.wait_for(lambda s: sum(s["pado"]) == 2 * n + 3 + 2, "every PADO counted")
        assert not any("Traceback" in ln or "worker failed" in ln for ln in ac.log), ac.log
        ports = snap["interfaces"]
        assert ports[topo2.node_if]["tx_frames"] and sum(ports[topo2.node_if]["tx_frames"]) == n + 1
        assert sum(ports[NODE_IF2]["tx_frames"]) == n + 3 + 1
        assert sum(ports[topo2.node_if]["frames"]) == n + 1 and sum(ports[NODE_IF2]["frames"]) == n + 3 + 1
    finally:
        c1.close()
        c2.close()
        rc, _ = ac.stop()
    assert rc == 0 and not any("Traceback" in ln or "worker failed" in ln for ln in ac.log), ac.log


def test_duplicate_and_missing_interface_are_bad_input(topo2):
    for argv, needle in (([topo2.node_if, topo2.node_if], "more than once"), ([topo2.node_if, "mi-nope0"], "mi-nope0")):
        args = [a for name in argv for a in ("-i", name)]
        res = topo2.run(topo2.node, [PY, "-m", "pfrps", *args, "-w", "2", "--duration", "1"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        assert_bad_input(res, "pfrps", needle)
        res = topo2.run(topo2.node, [PY, "-m", "pfrps.ac", *args, "-w", "2", "--ac-name", "x", "--duration", "1"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        assert_bad_input(res, "pfrps-ac", needle)


def test_metrics_per_interface_series(topo2):
    """--metrics with two ports: pfrps_port_frames_total{worker,interface} has each port's exact
    per-worker counts, pfrps_interface_drops and pfrps_link_up one sample per interface."""
    from prometheus_client.parser import text_string_to_metric_families
    from pyroute2 import IPRoute

    from tests.root.test_metrics import ns_free_port, ns_get

    with IPRoute(netns=topo2.node, flags=0) as ipr:  # the endpoint listens on the node's loopback
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    n1, n2, workers = 300, 200, 2
    port = ns_free_port(topo2.node)
    run = start_pfrps(topo2, "-i", NODE_IF2, "-w", str(workers), "--json", "--interval", "0.1",
                      "--metrics", f"127.0.0.1:{port}", "--duration", "60")
    try:
        assert run.ready, run.proc.communicate(timeout=30)
        _inject(topo2, None, n1, 61)
        _inject(topo2, topo2.port2, n2, 62)
        for line in run.proc.stdout:  # wait for the supervisor's figures to include every frame
            if line.startswith("{") and json.loads(line)["total"] == n1 + n2:
                break
        status, body = ns_get(topo2.node, port, "/metrics")
    finally:
        run.proc.terminate()
        _out, err = run.proc.communicate(timeout=30)
    assert "Traceback" not in err and "worker failed" not in err, err
    assert status == 200
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    got = {(s.labels["interface"], int(s.labels["worker"])): int(s.value) for s in fams["pfrps_port_frames"].samples
           if s.name == "pfrps_port_frames_total"}
    want1 = expected_counts(random_macs(n1, 61), workers, 0)
    want2 = expected_counts(random_macs(n2, 62), workers, 0)
    assert got == {**{(topo2.node_if, w): int(v) for w, v in enumerate(want1)},
                   **{(NODE_IF2, w): int(v) for w, v in enumerate(want2)}}
    assert {s.labels["interface"] for s in fams["pfrps_interface_drops"].samples} == {topo2.node_if, NODE_IF2}
    assert {(s.labels["interface"], s.value) for s in fams["pfrps_link_up"].samples} == \
        {(topo2.node_if, 1.0), (NODE_IF2, 1.0)}
