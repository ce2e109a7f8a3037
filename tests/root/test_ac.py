"""pfrps-ac end to end: the AC in the node namespace, a scapy-built PPPoE client in the injector's.

The AC runs as ``python -m pfrps.ac`` (readiness through ``--ready-fd``, counters through
``--json`` lines); the client is an AF_PACKET socket opened inside the injector namespace
(``pyroute2.netns.pushns``/``popns``: the socket keeps its namespace). Frames are built with
:mod:`pfrps.ac.protocol`'s scapy encoder and every reply is dissected with scapy.

"Nothing was sent" is proven without sleeping: frames of one MAC reach one worker in order,
so after the frame under test the client sends a PADI from the same MAC and waits for its
PADO; anything the AC sent for the first frame arrives before it and is caught.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Callable, Optional

import pytest
from scapy.layers.l2 import Ether
from scapy.layers.ppp import PPP, PPP_LCP_Echo, PPPoE, PPPoED, PPPoED_Tags

from pfrps.ac import protocol as p
from pfrps.hashing import worker_for
from pfrps.topology import TwoNodeTopology

pytestmark = pytest.mark.root

AC_MAC = bytes.fromhex("52540084d7ff")
AC_NAME = b"hC-test-ac"
WORKERS = 4
TIMEOUT = 10.0
ETH_P_ALL = 0x0003
SOL_PACKET, PACKET_AUXDATA, PACKET_IGNORE_OUTGOING = 263, 8, 23
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
_AUX = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata (linux/if_packet.h)


def client_mac(i: int) -> bytes:
    return bytes([0x02, 0x00, 0xAC, 0x00, i >> 8, i & 0xFF])


class ACProcess:
    """``python -m pfrps.ac`` in the node namespace, with its JSON snapshots and log collected.

    ``argv`` runs another program instead (``--ready-fd FD`` is appended), e.g. the plain
    handler of tests/fuzz_frames.py.
    """

    def __init__(self, topo: TwoNodeTopology, *args: str, argv: Optional[list[str]] = None) -> None:
        r, w = os.pipe()
        if argv is None:
            argv = [sys.executable, "-m", "pfrps.ac", "-i", topo.node_if, "-w", str(WORKERS), "--ac-name",
                    AC_NAME.decode(), "--json", "--interval", "0.05", *args]
        argv = [*argv, "--ready-fd", str(w)]
        try:
            self.proc = topo.popen(topo.node, argv, pass_fds=(w,), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        finally:
            os.close(w)
        self.snapshots: list[dict] = []
        self.log: list[str] = []
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True)]
        for t in self._threads:
            t.start()
        try:
            ready, _, _ = select.select([r], [], [], 60)
            data = os.read(r, 64) if ready else b""
        finally:
            os.close(r)
        if data != b"READY\n":
            self.proc.kill()
            self.proc.wait()
            for t in self._threads:
                t.join(5)
            pytest.fail(f"{argv[2]} did not get ready (exit {self.proc.returncode}):\n" + "\n".join(self.log))

    def _read(self, stream, is_json: bool) -> None:
        for line in stream:
            with self._cond:
                if is_json:
                    self.snapshots.append(json.loads(line))
                else:
                    self.log.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pred: Callable[[dict], bool], what: str, timeout: float = TIMEOUT) -> dict:
        """The first snapshot (from now on) for which ``pred`` holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = len(self.snapshots)
            while True:
                if len(self.snapshots) > seen:
                    seen = len(self.snapshots)
                    if pred(self.snapshots[-1]):
                        return self.snapshots[-1]
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    last = self.snapshots[-1] if self.snapshots else None
                    pytest.fail(f"counters never showed {what}; last snapshot {last}")
                self._cond.wait(left)

    def worker_pids(self) -> list[int]:
        """The worker processes (children of the supervisor, proc(5) ``task/TID/children``)."""
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return [int(x) for x in f.read().split()]

    def stop(self) -> tuple[int, dict]:
        """SIGTERM; the exit status and the final snapshot."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(15)
        for t in self._threads:
            t.join(5)
        return rc, self.snapshots[-1]


class Client:
    """A PPPoE host side: one AF_PACKET socket on the injector's interface."""

    def __init__(self, topo: TwoNodeTopology) -> None:
        from pyroute2 import netns

        netns.pushns(topo.injector)
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            self.sock.bind((topo.injector_if, ETH_P_ALL))
        finally:
            netns.popns()
        self.stray: list[bytes] = []  # frames from the AC that no expect() asked for

    def send(self, *frames: bytes) -> None:
        for f in frames:
            self.sock.send(f)

    def expect(self, n: int, match: Callable[[bytes], bool], timeout: float = TIMEOUT) -> list[bytes]:
        """The next ``n`` frames from the AC that ``match``; others go to :attr:`stray`."""
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                pytest.fail(f"got {len(got)} of {n} expected frames; stray: {[Ether(f).summary() for f in self.stray]}")
            f = self.recv()
            if f[6:12] != AC_MAC or ethertype(f) not in (b"\x88\x63", b"\x88\x64"):
                continue
            (got if match(f) else self.stray).append(f)
        return got

    def recv(self) -> bytes:
        """One frame as it was on the wire: the VLAN tag the kernel stripped on receive
        (``tpacket_auxdata``) put back in front of any tag still in the frame."""
        f, anc, _flags, _addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(_AUX.size))
        for level, kind, data in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, _len, _snap, _mac, _net, tci, tpid = _AUX.unpack_from(data)
                if status & TP_STATUS_VLAN_VALID:
                    tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else p.ETH_P_8021Q
                    f = p.with_vlan(f, struct.pack("!HH", tpid, tci))
        return f

    def barrier(self, mac: bytes) -> None:
        """Prove every frame ``mac`` sent so far was handled: its worker answers this PADI last."""
        self.send(p.build_padi(mac, b"internet", b"barrier"))
        self.expect(1, lambda f: is_disc(f, p.PADO, mac) and tag(f, p.TAG_HOST_UNIQ) == b"barrier")
        self.assert_no_stray()

    def assert_no_stray(self) -> None:
        assert not self.stray, f"unexpected frames from the AC: {[Ether(f).summary() for f in self.stray]}"

    def close(self) -> None:
        self.sock.close()


def ethertype(f: bytes) -> bytes:
    """The ethertype after any VLAN tags."""
    off = 12
    while f[off:off + 2] in (b"\x81\x00", b"\x88\xa8"):
        off += 4
    return f[off:off + 2]


def is_disc(f: bytes, code: int, dst: Optional[bytes] = None) -> bool:
    return f[12:14] == b"\x88\x63" and f[15] == code and (dst is None or f[:6] == dst)


def tags(f: bytes) -> list[tuple[int, bytes]]:
    """TAGs as scapy dissects them."""
    pkt = Ether(f)
    return [(t.tag_type, bytes(t.tag_value)) for t in pkt[PPPoED_Tags].tag_list] if PPPoED_Tags in pkt else []


def tag(f: bytes, t: int) -> Optional[bytes]:
    return next((v for k, v in tags(f) if k == t), None)


@pytest.fixture
def topo():
    with TwoNodeTopology.unique(prefix="hC") as t:
        yield t


def totals(snap: dict) -> dict:
    return {k: sum(v) for k, v in snap.items() if isinstance(v, list)}


@pytest.mark.parametrize("steering", ["filter", "fanout"])
def test_ac_end_to_end(topo, steering):
    n, k = 48, 10
    macs = [client_mac(i) for i in range(n)]
    owner = {m: int(w) for m, w in zip(macs, worker_for(b"".join(macs), WORKERS))}
    assert set(owner.values()) == set(range(WORKERS))
    # a one-hour cookie window: no window boundary between the PADIs of step 2
    ac = ACProcess(topo, "--service-name", "internet", "--service-name", "voip", "--steering", steering,
                   "--cookie-window", "3600")
    cl = Client(topo)
    try:
        # 1. PADI from every client -> PADO with AC-Name, Service-Name, cookie, Host-Uniq, Relay-Session-Id
        relay = {m: (b"relay-%d" % i if i % 2 else None) for i, m in enumerate(macs)}
        cl.send(*(p.build_padi(m, b"internet", b"hu-%d" % i, relay[m]) for i, m in enumerate(macs)))
        pados = {f[:6]: f for f in cl.expect(n, lambda f: is_disc(f, p.PADO))}
        assert set(pados) == set(macs)
        cookies = {}
        for i, m in enumerate(macs):
            pkt = Ether(pados[m])
            assert pkt.src == AC_MAC.hex(":") and pkt[PPPoED].sessionid == 0
            t = tags(pados[m])
            assert t[0] == (p.TAG_AC_NAME, AC_NAME)
            assert t[1] == (p.TAG_SERVICE_NAME, b"internet") and (p.TAG_SERVICE_NAME, b"voip") in t
            cookies[m] = tag(pados[m], p.TAG_AC_COOKIE)
            assert cookies[m] is not None and len(cookies[m]) == 16
            assert tag(pados[m], p.TAG_HOST_UNIQ) == b"hu-%d" % i
            assert tag(pados[m], p.TAG_RELAY_SESSION_ID) == relay[m]
        assert len(set(cookies.values())) == n

        # 2. the cookie is stateless and deterministic: the same PADI gets the same cookie
        cl.send(p.build_padi(macs[0], b"internet", b"again"))
        (again,) = cl.expect(1, lambda f: is_disc(f, p.PADO, macs[0]))
        assert tag(again, p.TAG_AC_COOKIE) == cookies[macs[0]]

        # 3. PADR -> PADS; session ids unique and in the owning worker's partition
        cl.send(*(p.build_padr(m, AC_MAC, b"internet", cookies[m], b"hu-%d" % i, relay[m]) for i, m in enumerate(macs)))
        padss = {f[:6]: f for f in cl.expect(n, lambda f: is_disc(f, p.PADS))}
        sid = {m: Ether(padss[m])[PPPoED].sessionid for m in macs}
        assert len(set(sid.values())) == n and 0 not in sid.values() and 0xFFFF not in sid.values()
        for i, m in enumerate(macs):
            assert sid[m] % WORKERS == owner[m], "session id outside the owning worker's partition"
            assert tag(padss[m], p.TAG_HOST_UNIQ) == b"hu-%d" % i
            assert tag(padss[m], p.TAG_RELAY_SESSION_ID) == relay[m]
            assert tag(padss[m], p.TAG_SERVICE_NAME) == b"internet"

        # 4. a retransmitted PADR (same MAC, same Host-Uniq) gets the same session
        cl.send(p.build_padr(macs[0], AC_MAC, b"internet", cookies[macs[0]], b"hu-0"))
        (dup,) = cl.expect(1, lambda f: is_disc(f, p.PADS, macs[0]))
        assert Ether(dup)[PPPoED].sessionid == sid[macs[0]]

        # 5. a PADR with a bad cookie gets nothing
        x = client_mac(1000)
        cl.send(p.build_padr(x, AC_MAC, b"internet", cookies[macs[0]], b"x"))
        cl.barrier(x)

        # 6. a PADR for an unknown service gets PADS with Service-Name-Error and session id 0
        y = client_mac(1001)
        cl.send(p.build_padr(y, AC_MAC, b"iptv", bytes(16), b"y"))
        (err,) = cl.expect(1, lambda f: is_disc(f, p.PADS, y))
        assert Ether(err)[PPPoED].sessionid == 0
        assert tag(err, p.TAG_SERVICE_NAME_ERROR) is not None and tag(err, p.TAG_HOST_UNIQ) == b"y"

        # 7. a PADI for an unknown service gets no PADO (RFC 2516 5.2)
        cl.send(p.build_padi(y, b"iptv"))
        cl.barrier(y)

        # 8. LCP Echo-Request on every session -> Echo-Reply: same id and data, magic 0
        cl.send(*(p.build_lcp_echo_request(m, AC_MAC, sid[m], i, 0x5EED0000 + i, b"ka-%d" % i)
                  for i, m in enumerate(macs)))
        for f in cl.expect(n, lambda f: f[12:14] == b"\x88\x64" and f[20:22] == b"\xc0\x21" and f[22] == p.LCP_ECHO_REPLY):
            m = f[:6]
            i = macs.index(m)
            pkt = Ether(f)
            e = pkt[PPP_LCP_Echo]
            assert pkt[PPPoE].sessionid == sid[m] and pkt[PPP].proto == p.PPP_LCP
            assert (e.id, e.magic_number, bytes(e.data)) == (i, 0, b"ka-%d" % i)

        # 9. frames on unknown sessions -> PADT with that session id
        cl.send(p.build_lcp_echo_request(macs[1], AC_MAC, sid[macs[2]], 1))  # another client's session id
        (padt,) = cl.expect(1, lambda f: is_disc(f, p.PADT, macs[1]))
        assert Ether(padt)[PPPoED].sessionid == sid[macs[2]]
        cl.send(p.encode_session(AC_MAC, x, 0x0BAD, b"\x00\x21" + bytes(20)))  # IPv4 from a stranger
        (padt,) = cl.expect(1, lambda f: is_disc(f, p.PADT, x))
        assert Ether(padt)[PPPoED].sessionid == 0x0BAD

        # 10. PADT from k clients ends their sessions; the gauge comes down; their ids are dead
        cl.send(*(p.build_padt(AC_MAC, m, sid[m]) for m in macs[:k]))
        ac.wait_for(lambda s: sum(s["sessions"]) == n - k and sum(s["padt_rx"]) == k, f"{n - k} sessions")
        cl.send(p.build_lcp_echo_request(macs[0], AC_MAC, sid[macs[0]], 99))
        (padt,) = cl.expect(1, lambda f: is_disc(f, p.PADT, macs[0]))
        assert Ether(padt)[PPPoED].sessionid == sid[macs[0]]

        # 11. malformed frames are counted, not answered
        good = p.build_padi(x, b"internet")
        cl.send(good[:18], good[:14] + b"\x21" + good[15:], p.build_padi(bytes.fromhex("01005e0000fe"), b""))
        cl.barrier(x)

        # 12. exact counters, all workers
        # padi: n (1) + again (2) + barrier x (5) + unknown service + barrier y (7) + barrier x (11);
        # the multicast-source PADI of 11 counts as malformed. pado: the same less the unknown service.
        # Outcomes: served = PADOs + PADSs (incl. the error) + PADTs received + echoes + PADTs sent;
        # ignored = the unoffered PADI + the bad cookie; they and malformed add up to the frames handled.
        expect = {"padi": n + 5, "pado": n + 4, "padr": n + 3, "pads": n + 1, "pads_error": 1, "bad_cookie": 1,
                  "ignored": 2, "echo": n, "padt_tx": 3, "padt_rx": k, "sessions": n - k, "malformed": 3,
                  "served": 3 * n + k + 9, "handler_errors": 0, "tx_errors": 0, "drops": 0, "restarts": 0}
        snap = ac.wait_for(lambda s: {c: totals(s)[c] for c in expect} == expect, f"exactly {expect}")
        assert totals(snap)["frames"] == expect["served"] + expect["ignored"] + expect["malformed"]
        per_worker = [0] * WORKERS
        for m in macs[k:]:
            per_worker[owner[m]] += 1
        assert snap["sessions"] == per_worker
        cl.assert_no_stray()
    finally:
        rc, final = ac.stop()
        cl_frames = cl.expect(n - k, lambda f: is_disc(f, p.PADT)) if rc == 0 else []
        cl.close()
    # 13. shutdown: every worker sends PADT for each of its sessions and the gauge reaches 0
    assert rc == 0, "\n".join(ac.log)
    assert sorted(Ether(f)[PPPoED].sessionid for f in cl_frames) == sorted(sid[m] for m in macs[k:])
    assert sum(final["sessions"]) == 0 and sum(final["padt_tx"]) == 3 + n - k
    assert sum(final["handler_errors"]) == 0
    assert not [ln for ln in ac.log if "error" in ln or "Traceback" in ln], ac.log


def test_ac_any_service(topo):
    """Without --service-name the AC serves whatever Service-Name is asked (RFC 2516: empty = any);
    one MAC holds a session per service with --sessions-per-mac 2."""
    ac = ACProcess(topo, "--sessions-per-mac", "2")
    cl = Client(topo)
    try:
        m = client_mac(7)
        for service in (b"", b"anything-at-all"):
            cl.send(p.build_padi(m, service, b"u"))
            (pado,) = cl.expect(1, lambda f: is_disc(f, p.PADO, m))
            assert [v for t, v in tags(pado) if t == p.TAG_SERVICE_NAME] == [service]
            cl.send(p.build_padr(m, AC_MAC, service, tag(pado, p.TAG_AC_COOKIE), service + b"u"))
            (pads,) = cl.expect(1, lambda f: is_disc(f, p.PADS, m))
            assert Ether(pads)[PPPoED].sessionid != 0
        ac.wait_for(lambda s: sum(s["sessions"]) == 2 and sum(s["pads"]) == 2, "2 sessions")
        cl.assert_no_stray()
    finally:
        rc, final = ac.stop()
        cl.close()
    assert rc == 0 and sum(final["sessions"]) == 0
