"""pfrps-xdp lb bad input: one line naming the problem and the fix, exit status 2, no
traceback, nothing attached and no program left loaded."""

from __future__ import annotations

import json
import subprocess

import pytest

from pfrps.xdp.attach import resolve_ifindex, xdp_attached
from pfrps.xdp.lab import Lab
from tests.helpers import PY, assert_bad_input

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def ns():
    """lb0 (10.0.0.10/24) <-veth-> peer0 (10.0.0.2/24, answers ARP) in a namespace of its own."""
    lab = Lab(prefix="lb-bad-input")
    try:
        name = lab.add_ns("bad")
        peer = lab.add_ns("peer")
        lab.veth(name, "lb0", peer, "peer0")
        lab.addr(name, "lb0", "10.0.0.10/24")
        lab.addr(peer, "peer0", "10.0.0.2/24")
        yield lab, name
    finally:
        lab.destroy()


def lb_programs() -> list[int]:
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, timeout=30).stdout
    return [p["id"] for p in json.loads(out or "[]") if p.get("name") == "pfrps_xdp_lb"]


CASES = [
    ("VIP not on the interface", ["--vip", "10.0.0.99", "--backend", "10.0.0.2"],
     ["VIP 10.0.0.99 is not an address of lb0 (it has 10.0.0.10)", "ip addr add 10.0.0.99/24 dev lb0"]),
    ("no backend", ["--vip", "10.0.0.10"], ["no backend given", "--backend IP[@MAC]"]),
    ("unresolvable backend MAC", ["--vip", "10.0.0.10", "--backend", "10.0.0.77", "--resolve-timeout", "0.5"],
     ["cannot resolve the MAC of backend 10.0.0.77 on lb0", "--backend 10.0.0.77@MAC"]),
    ("backend off the link", ["--vip", "10.0.0.10", "--backend", "192.0.2.7"],
     ["backend 192.0.2.7 is not on lb0's link"]),
    ("malformed backend", ["--vip", "10.0.0.10", "--backend", "10.0.0.300"],
     ["backend '10.0.0.300' is not an IPv4 address"]),
    ("malformed backend MAC", ["--vip", "10.0.0.10", "--backend", "10.0.0.2@zz:00"], ["malformed MAC"]),
    ("backend twice", ["--vip", "10.0.0.10", "--backend", "10.0.0.2@02:00:00:00:00:02", "--backend", "10.0.0.2"],
     ["backend 10.0.0.2 is given twice"]),
    ("Maglev table size not a prime", ["--vip", "10.0.0.10", "--backend", "10.0.0.2@02:00:00:00:00:02",
                                       "--ring-size", "65536"], ["Maglev table size 65536 is not a prime"]),
    ("port out of range", ["--vip", "10.0.0.10", "--backend", "10.0.0.2@02:00:00:00:00:02", "--port", "70000"],
     ["port 70000 is out of range"]),
    ("missing backend file", ["--vip", "10.0.0.10", "--backend-file", "/nonexistent/pool"],
     ["cannot read backend file '/nonexistent/pool'"]),
]


@pytest.mark.parametrize("args,needles", [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(ns, args, needles):
    lab, name = ns
    before = lb_programs()
    res = lab.run(name, [PY, "-m", "pfrps.xdp", "lb", "-i", "lb0", *args], timeout=60)
    assert_bad_input(res, "pfrps-xdp", *needles)
    assert lab.call(name, lambda: xdp_attached(resolve_ifindex("lb0"))) is None
    assert lb_programs() == before


def test_missing_interface(ns):
    lab, name = ns
    res = lab.run(name, [PY, "-m", "pfrps.xdp", "lb", "-i", "nosuch0", "--vip", "10.0.0.10", "--backend",
                         "10.0.0.2"], timeout=60)
    assert_bad_input(res, "pfrps-xdp", "interface 'nosuch0' not found")


def test_resolvable_backend_starts_and_detaches(ns):
    """The counter-case: 10.0.0.2 answers ARP, so the same command runs, then detaches on exit."""
    lab, name = ns
    res = lab.run(name, [PY, "-m", "pfrps.xdp", "lb", "-i", "lb0", "--vip", "10.0.0.10", "--backend",
                         "10.0.0.2", "--generic", "--duration", "0.3", "--json"], timeout=60)
    assert res.returncode == 0, res.stderr
    assert "10.0.0.2@" in res.stderr  # resolved through the neighbour table
    last = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1])
    assert set(last["backends"]) == {"10.0.0.2"}
    assert lab.call(name, lambda: xdp_attached(resolve_ifindex("lb0"))) is None
