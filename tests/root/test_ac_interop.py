"""pfrps-ac against standard PPPoE clients (issue 4: "must interoperate with standard PPPoE
client implementations").

Two clients from Debian, both user space, so they run without the kernel's PPP support:
rp-pppoe's ``pppoe`` (package ``pppoe``: ``-A`` lists offers, ``-d`` does the whole discovery
PADI/PADO/PADR/PADS and prints ``session:ac-mac``, ``-e ... -k`` sends PADT, ``-H`` picks the
client's source MAC) and pppd's ``pppoe-discovery`` (package ``ppp``). ``tools/setup-host.sh``
installs both.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pfrps.hashing import worker_for
from pfrps.topology import TwoNodeTopology
from pfrps.testing.ac import AC_NAME, WORKERS, ACProcess, client_mac, totals

pytestmark = pytest.mark.root

SERVICE = "internet"
CLIENTS = 8
ENDED = 3


@pytest.fixture
def topo():
    with TwoNodeTopology.unique(prefix="ac-interop") as t:
        yield t


def client(topo, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    assert shutil.which(argv[0]), f"{argv[0]} missing: tools/setup-host.sh installs it"
    return topo.run(topo.injector, list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    timeout=timeout)


def assert_offer(out: str, topo) -> None:
    """rp-pppoe's and pppoe-discovery's offer listing: AC-Name, Service-Name, cookie, AC MAC."""
    lines = [ln.strip() for ln in out.splitlines()]
    assert lines[0] == f"Access-Concentrator: {AC_NAME.decode()}", out
    assert lines[1] == f"Service-Name: {SERVICE}", out
    assert lines[2].startswith("Got a cookie: ") and len(lines[2].split(":", 1)[1].split()) == 16, out
    assert lines[3] == f"AC-Ethernet-Address: {topo.node_mac}", out


def test_standard_clients(topo):
    ac = ACProcess(topo, "--service-name", SERVICE)
    try:
        # offers: rp-pppoe -A and pppd's pppoe-discovery, each one PADI -> one PADO
        res = client(topo, "pppoe", "-I", topo.injector_if, "-A", "-S", SERVICE)
        assert res.returncode == 0, res.stderr
        assert_offer(res.stdout, topo)
        res = client(topo, "pppoe-discovery", "-I", topo.injector_if, "-S", SERVICE, "-U", "-t", "1", "-a", "1")
        assert res.returncode == 0, res.stderr
        assert_offer(res.stdout, topo)
        # an unoffered service gets no PADO: the client times out
        res = client(topo, "pppoe-discovery", "-I", topo.injector_if, "-S", "no-such-service", "-t", "1", "-a", "1")
        assert res.returncode == 1 and "Timeout waiting for PADO" in res.stderr, res

        # full discovery from CLIENTS source MACs (-H); each session lands on the MAC's worker
        macs = [client_mac(0x100 + i) for i in range(CLIENTS)]
        sessions = {}
        for mac in macs:
            text = ":".join(f"{b:02x}" for b in mac)
            res = client(topo, "pppoe", "-I", topo.injector_if, "-d", "-S", SERVICE, "-U", "-H", text)
            assert res.returncode == 0, res.stderr
            sid, ac_mac = res.stdout.strip().split(":", 1)
            assert ac_mac == topo.node_mac
            sessions[text] = int(sid)
        assert len(set(sessions.values())) == CLIENTS
        owners = worker_for(macs, WORKERS, 0).tolist()
        assert [sid % WORKERS for sid in sessions.values()] == owners  # ids partitioned as w + kN
        snap = ac.wait_for(lambda s: sum(s["sessions"]) == CLIENTS, f"{CLIENTS} sessions")
        assert snap["sessions"] == [owners.count(w) for w in range(WORKERS)]

        # rp-pppoe's PADT (-e session:mac -k, from the session's own MAC) ends ENDED sessions
        for text in list(sessions)[:ENDED]:
            res = client(topo, "pppoe", "-I", topo.injector_if, "-H", text, "-e", f"{sessions[text]}:{topo.node_mac}",
                         "-k")
            assert res.returncode == 0, res.stderr
        ac.wait_for(lambda s: sum(s["sessions"]) == CLIENTS - ENDED, f"{CLIENTS - ENDED} sessions")
    finally:
        rc, snap = ac.stop()
    assert rc == 0
    t = totals(snap)
    # -A, pppoe-discovery, the unoffered service, and one PADI per -d client
    assert (t["padi"], t["pado"], t["padr"], t["pads"]) == (3 + CLIENTS, 2 + CLIENTS, CLIENTS, CLIENTS)
    assert t["padt_rx"] == ENDED
    assert t["padt_tx"] == CLIENTS - ENDED  # the AC ends the rest when it stops (RFC 2516 5.5)
    assert t["pads_error"] == t["bad_cookie"] == t["malformed"] == 0
