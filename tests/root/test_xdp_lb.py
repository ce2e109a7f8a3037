"""pfrps-xdp lb with real TCP, in NATIVE mode on veth (generic mode never verifies a checksum,
so a wrong one would pass there): the seed's testbed with three backends (h2, h3, h4).

40 connections complete with data both ways and land where the Maglev table predicts; removing
a backend (SIGHUP with a shorter --backend-file) keeps every established connection alive,
including those on the removed backend, and moves exactly the new flows the new table moves
(about 1/3); no TCP checksum errors on the client or the backends; `lab lb` passes.
"""

from __future__ import annotations

import argparse
import json
import select
import subprocess
import time
from collections import Counter

import pytest

from pfrps.xdp.attach import resolve_ifindex, xdp_attached
from pfrps.xdp.lb_lab import PORT, VIP, LbLab, backend_roles, predict_roles, snmp_counters
from tests.helpers import PY

pytestmark = pytest.mark.root

N = 40


class Topo:
    def __init__(self, lab: LbLab, lb: subprocess.Popen, pool) -> None:
        self.lab, self.lb, self.pool = lab, lb, pool
        self.roles = backend_roles(lab.bed)

    def hold(self, sport: int, count: int = N) -> subprocess.Popen:
        return self.lab.popen(self.lab.ns("client"), [PY, "-m", "pfrps.xdp.lb_traffic", "hold", "--vip", VIP,
                                                      "--port", str(PORT), "--sport", str(sport), "--count",
                                                      str(count)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def read_round(proc: subprocess.Popen, timeout: float = 60) -> dict[int, str | None]:
    assert select.select([proc.stdout], [], [], timeout)[0], "no round from the client"
    line = proc.stdout.readline()
    return {int(k): v for k, v in json.loads(line)["served"].items()}


def wait_stderr(proc: subprocess.Popen, needle: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([proc.stderr], [], [], deadline - time.monotonic())[0]:
            break
        line = proc.stderr.readline()
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} not logged within {timeout} s")


@pytest.fixture(scope="module")
def topo(tmp_path_factory):
    pool = tmp_path_factory.mktemp("lb") / "pool"
    lab = LbLab(prefix="lb-lab", out=open("/dev/null", "w"))
    try:
        lab.build(argparse.Namespace(backends=3, generic=False, connections=N))
        roles = backend_roles(lab.bed)
        pool.write_text("".join(f"{lab.bed[r][1]}\n" for r in roles))
        for r in roles:
            lab.server(r)
        lab.start_xdp(lab.ns("br"), "pass", "-i", "veth7")
        lb = lab.start_xdp(lab.ns("lb"), "lb", "-i", "veth6", "--vip", VIP, "--port", str(PORT),
                           "--backend-file", str(pool), "--interval", "10")
        yield Topo(lab, lb, pool)
    finally:
        lab.destroy()
        lab.out.close()


def test_native_mode(topo):
    mode = topo.lab.call(topo.lab.ns("lb"), lambda: xdp_attached(resolve_ifindex("veth6")))
    assert mode is not None and mode[1] == "native"


def test_connections_split_as_maglev_predicts_and_survive_a_backend_removal(topo):
    sports = list(range(40000, 40000 + N))
    held = topo.hold(sports[0])
    try:
        first = read_round(held)
        assert all(first.values()), first
        want = predict_roles(topo.lab.bed, topo.roles, sports)
        assert [first[p] for p in sports] == want
        assert all(Counter(want)[r] > 0 for r in topo.roles)

        # Remove h3: rewrite the pool, SIGHUP, wait for the reload's log line.
        kept = [r for r in topo.roles if r != "h3"]
        topo.pool.write_text("".join(f"{topo.lab.bed[r][1]}\n" for r in kept))
        topo.lb.send_signal(1)  # SIGHUP
        wait_stderr(topo.lb, "SIGHUP: 2 backends")

        held.stdin.write("again\n")
        held.stdin.flush()
        second = read_round(held)
        assert second == first  # every established connection alive, on its backend (h3's too)
    finally:
        held.stdin.close()
        held.wait(timeout=30)

    # New connections (new 5-tuples): exactly the ones the new table moves change backend.
    new_sports = list(range(41000, 41000 + N))
    fresh = topo.hold(new_sports[0])
    try:
        got = read_round(fresh)
    finally:
        fresh.stdin.close()
        fresh.wait(timeout=30)
    before = predict_roles(topo.lab.bed, topo.roles, new_sports)
    after = predict_roles(topo.lab.bed, kept, new_sports)
    assert [got[p] for p in new_sports] == after
    moved = [p for p, b, a in zip(new_sports, before, after) if b != a]
    assert moved == [p for p, b in zip(new_sports, before) if b == "h3"]  # only h3's flows moved
    assert 0.15 <= len(moved) / N <= 0.5, len(moved)  # about 1/3 of new flows


def test_a_bad_reload_keeps_the_backends(topo):
    """SIGHUP with a malformed pool file: one error line, the previous set stays in force."""
    good = topo.pool.read_text()
    topo.pool.write_text(good + "10.0.0.300\n")
    try:
        topo.lb.send_signal(1)
        line = wait_stderr(topo.lb, "SIGHUP: backends unchanged")
        assert "10.0.0.300" in line and "not an IPv4 address" in line
    finally:
        topo.pool.write_text(good)
    kept = [r for r in topo.roles if r != "h3"]
    sports = list(range(42000, 42010))
    proc = topo.hold(sports[0], len(sports))
    try:
        got = read_round(proc)
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert [got[p] for p in sports] == predict_roles(topo.lab.bed, kept, sports)


def test_no_tcp_checksum_errors(topo):
    for role in ("client", *topo.roles):
        snmp = topo.lab.call(topo.lab.ns(role), snmp_counters)
        assert snmp["Tcp"]["InCsumErrors"] == 0, role
        assert snmp["Tcp"]["InSegs"] > 0, role


def test_per_backend_counters_add_up_to_xdp_tx(topo):
    status, out, err = topo.lab.stop_xdp(topo.lb)
    assert status == 0, err
    final = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")][-1]
    per = final["backends"]
    assert set(per) == {topo.lab.bed[r][1] for r in topo.roles}
    assert per["10.0.0.3"]["in_maglev_table"] is False
    total = sum(c["to_backend_packets"] + c["to_client_packets"] for c in per.values())
    assert total == final["XDP_TX"]["rx_packets"]
    assert all(c["to_backend_packets"] > 0 and c["to_client_packets"] > 0 for c in per.values())
    assert "detached everything" in err
    assert topo.lab.call(topo.lab.ns("lb"), lambda: xdp_attached(resolve_ifindex("veth6"))) is None


def test_lab_lb_prints_all_pass():
    res = subprocess.run([PY, "-m", "pfrps.xdp", "lab", "lb", "--prefix", "lb-lab-cli"], capture_output=True,
                         text=True, timeout=300)
    checks = [ln for ln in res.stdout.splitlines() if ln.startswith(("PASS", "FAIL"))]
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(checks) == 7 and all(c.startswith("PASS") for c in checks), checks
    assert "removed 5 namespaces" in res.stdout
