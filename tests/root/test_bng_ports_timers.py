"""``pfrps-bng -i acc0 -i acc1``: timer-driven and administrative PPP control frames leave by the
session's own port, from that port's MAC, end to end (issue 16), exact counts.

Topology: the two-port BNG of :mod:`tests.root.test_bng_multi_interface` (``tp-sub-*`` sub0 --
acc0 ``tp-bng-*`` up0 -- inet0 ``tp-inet-*``, plus ``tp-sub2-*`` sub1 -- acc1), one scaled client
per port with its own subscribers, and a raw ``PF_PACKET`` sniffer on each subscriber interface
that logs every PPPoE Discovery frame and every LCP frame (direction, source and destination
MAC, session id, code). The BNG runs with a short ``--echo-interval``, so during the hold its
keepalive timer (worker loop, no frame being handled: no "receiving port" to fall back on) sends
each silent session LCP Echo-Requests. Then one session of port 2 is ended with
``pfrps-bng terminate`` (LCP Terminate-Request, Terminate-Ack, PADT) and the BNG is stopped
(Terminate-Request and PADT to every remaining session). Every one of these frames must reach
only its own session's subscriber port, from that port's BNG MAC.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter
from ipaddress import IPv4Address

import pytest

from pfrps.bng import lab
from pfrps.bng.session import PPPConfig
from pfrps.bng.topology import ACCESS_MAC, BngTopology
from tests.helpers import PY
from tests.root.bng_ports import ACC2, ACC2_MAC, SUB2, two_port_topology
from tests.root.bng_ports import client as _client

pytestmark = pytest.mark.root

PER_PORT = 6          # subscribers per access port
ECHO_INTERVAL = 0.5   # --echo-interval, seconds
MIN_ECHOES = 2        # Echo-Requests every session must see during the hold

# One line per PPPoE Discovery frame and per LCP session frame seen on an interface, both ways:
# {"out": sent by this host, "src", "dst", "disc": Discovery code or null, "sid",
#  "lcp": LCP code or null}. READY on the fd once the socket is bound; SIGINT ends it.
_SNIFF = r"""
import json, os, select, signal, socket, sys
ifname, fd = sys.argv[1], int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind((ifname, 0))
stop = []
signal.signal(signal.SIGINT, lambda *a: stop.append(1))
os.write(fd, b"READY\n")
os.close(fd)
while True:
    try:
        r, _, _ = select.select([s], [], [], 0.1)
    except InterruptedError:
        r = []
    if not r and stop:
        break
    while True:
        try:
            f, addr = s.recvfrom(2048, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        if len(f) < 22:
            continue
        et = int.from_bytes(f[12:14], "big")
        sid = int.from_bytes(f[16:18], "big")
        rec = {"out": addr[2] == socket.PACKET_OUTGOING, "src": f[6:12].hex(":"), "dst": f[0:6].hex(":"), "sid": sid,
               "disc": None, "lcp": None}
        if et == 0x8863:
            rec["disc"] = f[15]
        elif et == 0x8864 and len(f) >= 21 and f[20:22] == b"\xc0\x21":
            rec["lcp"] = f[22] if len(f) > 22 else None
        else:
            continue
        print(json.dumps(rec), flush=True)
"""

ECHO_REQ, ECHO_REP, TERM_REQ, PADT = 9, 10, 5, 0xA7


class Sniffer:
    """A :data:`_SNIFF` process in a subscriber namespace and the frames it has logged so far."""

    def __init__(self, topo: BngTopology, ns: str, ifname: str) -> None:
        self.proc = lab._start(topo, ns, [PY, "-c", _SNIFF, ifname], 30)
        self.frames: list[dict] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.proc.stdout:
            with self._lock:
                self.frames.append(json.loads(line))

    def seen(self, out: bool = False, **match) -> list[dict]:
        """Frames so far in one direction (``out``: sent by the subscriber) matching ``match``."""
        with self._lock:
            return [f for f in self.frames if f["out"] == out and all(f[k] == v for k, v in match.items())]

    def finish(self) -> int:
        """SIGINT, wait; its exit status (every line read)."""
        if self.proc.proc.poll() is None:
            self.proc.proc.send_signal(signal.SIGINT)
        status = self.proc.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        return status


def _wait_for(cond, timeout: float = 60.0) -> bool:
    """Poll ``cond()`` until true (no fixed sleep); False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


topo = two_port_topology("tp")  # the two-port topology of test_bng_multi_interface, ``tp`` prefix


@pytest.mark.parametrize("paused", [False, True], ids=["acked", "restart-timer"])
def test_keepalive_terminate_and_stop_frames_leave_by_the_sessions_own_port(topo, tmp_path, paused):
    """Echo-Requests (keepalive timer), ``pfrps-bng terminate`` (Terminate-Request, then PADT: at
    the Terminate-Ack, or, with port 2's client stopped (``paused``), after the PPP restart timer
    sent ``max_terminate`` of them) and the stop's Terminate-Request + PADT: each frame on its
    session's port only, from that port's MAC; the sniffers' totals equal the BNG's counters."""
    n = PER_PORT
    max_terminate = PPPConfig(local_ipv4=IPv4Address("192.0.2.1")).max_terminate
    ports = [(ACCESS_MAC, "acc0"), (ACC2_MAC, ACC2)]
    sniffers = [Sniffer(topo, topo.sub, topo.injector_if), Sniffer(topo, topo.sub2, SUB2)]
    b = None
    clients: list[lab.Proc] = []
    try:
        assert all(s.proc.ready for s in sniffers)
        secrets = lab.write_secrets(tmp_path / "secrets", 2 * n)
        # misses: a stopped client's sessions outlive the restart timer (2 x 3 s) by far
        b = lab.start_bng(topo, secrets, "-i", ACC2, "--echo-interval", str(ECHO_INTERVAL), "--echo-misses", "60",
                          "--json", workers=2)
        assert b.ready, b.finish()[2]
        clients = [_client(topo, topo.sub, topo.injector_if, n, 1, 1), _client(topo, topo.sub2, SUB2, n, n + 1, 2)]
        assert all(c.ready for c in clients)

        # show sessions names each session's port
        shown = lab.show_sessions(topo)["sessions"]
        assert Counter(s["interface"] for s in shown) == {"acc0": n, ACC2: n}
        keys = [{(s["mac"], s["session_id"]) for s in shown if s["interface"] == name} for _, name in ports]

        def strays() -> list[dict]:
            """Frames that reached a port not their session's, or came from another port's MAC."""
            return [f for i, (mac, _) in enumerate(ports) for f in sniffers[i].seen()
                    if f["src"] != mac or f["dst"] not in {m for m, _ in keys[i]}]

        # the hold: the keepalive timer probes every (silent) session, each out of its own port
        def echoes(i: int) -> Counter:
            return Counter((f["dst"], f["sid"]) for f in sniffers[i].seen(lcp=ECHO_REQ))
        assert _wait_for(lambda: strays() or all(echoes(i)[k] >= MIN_ECHOES for i in (0, 1) for k in keys[i])), \
            [echoes(0), echoes(1)]
        assert not strays(), strays()

        # pfrps-bng terminate: one session of port 2
        k2 = mac2, sid2 = sorted(keys[1])[0]
        if paused:
            clients[1].proc.send_signal(signal.SIGSTOP)  # no Terminate-Ack: the restart timer runs out
        res = topo.run(topo.bng, [PY, "-m", "pfrps.bng", "terminate", "--mac", mac2], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
        assert res.returncode == 0 and "terminated 1 session" in res.stdout, res.stdout + res.stderr
        assert _wait_for(lambda: strays() or sniffers[1].seen(disc=PADT)), sniffers[1].seen()
        assert not strays(), strays()
        got = [(f["dst"], f["sid"], f["src"], f["disc"] or f["lcp"])
               for f in sniffers[1].seen() if f["disc"] == PADT or f["lcp"] == TERM_REQ]
        term_reqs = max_terminate if paused else 1
        assert got == [(mac2, sid2, ACC2_MAC, TERM_REQ)] * term_reqs + [(mac2, sid2, ACC2_MAC, PADT)]
        assert not [f for f in sniffers[0].seen() if f["disc"] == PADT or f["lcp"] == TERM_REQ]
        if paused:
            clients[1].proc.send_signal(signal.SIGCONT)
        assert len(lab.show_sessions(topo)["sessions"]) == 2 * n - 1

        # the BNG stops with sessions up: Terminate-Request and PADT to each, out of its own port
        status, out, err = b.finish(signal.SIGTERM)
        assert status == 0 and "Traceback" not in err, err
        assert _wait_for(lambda: strays() or [len({(f["dst"], f["sid"]) for f in s.seen(disc=PADT)})
                                              for s in sniffers] == [n, n]), [s.seen(disc=PADT) for s in sniffers]
        assert not strays(), strays()
        results = []
        for c in clients:
            cst, cout, cerr = c.finish()
            assert cst == 0, cerr
            results.append(json.loads(cout))
        assert [s.finish() for s in sniffers] == [0, 0]
    finally:
        for p in [*clients, *(s.proc for s in sniffers)] + ([b] if b is not None else []):
            if p.proc.poll() is None:  # only after a failure above
                p.proc.kill()
                p.proc.wait(timeout=30)

    last = json.loads(out.strip().splitlines()[-1])  # the BNG's final counters
    echo_tx, padt_tx = sum(last["echo_tx"]), sum(last["padt_tx"])
    seen_echo, seen_padt = [], []
    for i, ((port_mac, _), sniffer, res) in enumerate(zip(ports, sniffers, results)):
        assert res["up"] == n and res["failed"] == 0, res["failed_by_reason"]
        assert {r["ac_mac"] for r in res["records"]} == {port_mac}  # the PADO came from this port
        assert {(r["mac"], r["session_id"]) for r in res["records"]} == keys[i]
        # every frame the BNG sent here: from this port's MAC, to this port's sessions only
        inbound = sniffer.seen()
        assert {f["src"] for f in inbound} == {port_mac}, Counter(f["src"] for f in inbound)
        assert {(f["dst"], f["sid"]) for f in inbound if f["sid"]} == keys[i]
        req = Counter((f["dst"], f["sid"]) for f in inbound if f["lcp"] == ECHO_REQ)
        rep = Counter((f["src"], f["sid"]) for f in sniffer.seen(out=True, lcp=ECHO_REP))
        assert set(req) == keys[i] and min(req.values()) >= MIN_ECHOES, req
        assert sum(rep.values()) == res["stats"]["echo_replies"]  # the client answered what we saw
        for k in keys[i]:  # each answered (the terminated session: those before its Terminate-Request)
            assert rep[k] == req[k] or (k == k2 and rep[k] < req[k]), (k, req[k], rep[k])
        term = Counter((f["dst"], f["sid"]) for f in inbound if f["lcp"] == TERM_REQ)
        padt = Counter((f["dst"], f["sid"]) for f in inbound if f["disc"] == PADT)
        # one Terminate-Request and one PADT each (the BNG's stop), the terminated one's above;
        # the paused client's late answers for it draw PADTs for an unknown session (port 2 too)
        assert term == Counter(keys[i]) + (Counter({k2: term_reqs - 1}) if i else Counter()), term
        assert {k: v for k, v in padt.items() if k != k2} == dict.fromkeys(keys[i] - {k2}, 1), padt
        assert padt[k2] == (0 if i == 0 else 1) or (paused and i == 1 and padt[k2] >= 1), padt
        seen_echo.append(sum(req.values()))
        seen_padt.append(sum(padt.values()))
        print(f"port {i + 1}: Echo-Requests per session {sorted(req.values())}, Echo-Replies {sorted(rep.values())}, "
              f"client echo_replies {res['stats']['echo_replies']}, Terminate-Requests {sum(term.values())}, "
              f"PADTs {sum(padt.values())}")
    print(f"Echo-Requests seen per port {seen_echo}, BNG echo_tx {echo_tx}; PADTs seen {seen_padt}, "
          f"BNG padt_tx {padt_tx}")
    assert sum(seen_echo) == echo_tx  # none lost, none elsewhere
    assert sum(seen_padt) == padt_tx
