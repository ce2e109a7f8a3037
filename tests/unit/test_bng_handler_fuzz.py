"""Fuzzing pfrps-bng's handler directly (no sockets): the seeded PPP corpus of
``tests/bng_fuzz_frames.py`` against two BNG workers whose sessions are live.

Sessions are opened the way a client opens them (PADR with a valid cookie -> PADS -> our LCP
Configure-Request), then half the corpus goes to those sessions (every PPP layer sees valid,
malformed and hostile packets), the other half to unknown sessions and strangers. A simulated
clock moves 1 ms per frame and fires the engine's timers (restart, authentication, RA) and the
keepalive sweep. Asserted: the handler never raises, every frame counts exactly one outcome,
every frame the BNG sent parses as PPPoE from its MAC, and after ``on_stop`` no session, no
pool address and no subscriber is left.
"""

from __future__ import annotations

import heapq
import itertools
import socket
from collections import Counter
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from types import SimpleNamespace

from pfrps.ac import protocol as p
from pfrps.ac.server import ACConfig
from pfrps.bng.secrets import Secrets, parse_text
from pfrps.bng.server import BNG, BNG_COUNTERS, BNG_GAUGES, BNGConfig
from pfrps.bng.session import PPPConfig
from pfrps.hashing import worker_for
from pfrps.stats import SharedCounters
from pfrps.worker import WorkerContext
from tests.bng_fuzz_frames import AC_MAC, generate
from tests.fuzz_frames import pool_macs

WORKERS = 2


class FakeLoop:
    """call_later on a simulated clock (``now``); :meth:`advance` runs what is due, in order."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._q: list = []
        self._seq = itertools.count()

    def call_later(self, delay, cb, *args):
        h = SimpleNamespace(cancelled=False)
        h.cancel = lambda: setattr(h, "cancelled", True)
        heapq.heappush(self._q, (self.now + delay, next(self._seq), h, cb, args))
        return h

    def advance(self, dt: float) -> None:
        self.now += dt
        while self._q and self._q[0][0] <= self.now:
            _, _, h, cb, args = heapq.heappop(self._q)
            if not h.cancelled:
                cb(*args)


def _bng(loop: FakeLoop) -> tuple[BNG, list, list]:
    secrets = Secrets(parse_text(b"".join(b"user%d * pass%d\n" % (i, i) for i in range(64))))
    cfg = BNGConfig(ac=ACConfig(AC_MAC, b"fuzz-bng", (), b"k" * 32, echo_interval=5.0, cookie_window=1e9),
                    ppp=PPPConfig(local_ipv4=IPv4Address("198.51.100.1"), dns4=(IPv4Address("192.0.2.53"),)),
                    pools4=(IPv4Network("100.64.0.0/24"),), pool6=IPv6Network("2001:db8:100::/56"),
                    secrets=secrets, dataplane=False)
    bng = BNG(cfg, WORKERS, clock=lambda: loop.now)
    counters = SharedCounters(WORKERS, BNG_COUNTERS, BNG_GAUGES)
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(WORKERS)]
    for tx, rx in pairs:
        rx.setblocking(False)
        tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    ctxs = [WorkerContext(w, WORKERS, 1, pairs[w][0], counters, loop=loop) for w in range(WORKERS)]
    for c in ctxs:
        bng.on_start(c)
    return bng, ctxs, pairs


def _meta(frame: bytes):
    """What the kernel hands a worker: the outer tag stripped into vlan_tci."""
    if frame[12:14] in (b"\x81\x00", b"\x88\xa8"):
        tpid = int.from_bytes(frame[12:14], "big")
        return frame[:12] + frame[16:], SimpleNamespace(vlan_tci=int.from_bytes(frame[14:16], "big"), vlan_tpid=tpid)
    return frame, SimpleNamespace(vlan_tci=None, vlan_tpid=None)


def test_20000_fuzzed_ppp_frames_through_the_bng_handler():
    loop = FakeLoop()
    bng, ctxs, pairs = _bng(loop)
    macs = pool_macs(64, 11)
    replies = Counter()
    bad: list = []

    def drain() -> None:
        for _tx, rx in pairs:
            while True:
                try:
                    f = rx.recv(65536)
                except BlockingIOError:
                    break
                m = p.parse_frame(f)
                if type(m) is p.Malformed or m.src != AC_MAC:
                    bad.append(f.hex())
                replies[type(m).__name__] += 1

    def hand(frame: bytes) -> None:
        f, meta = _meta(frame)
        src = f[6:12] if len(f) >= 12 else bytes(6)  # a runt: any worker (the kernel never delivers it)
        ctx = ctxs[int(worker_for([src], WORKERS, 0)[0])]
        bng.handle(memoryview(f), meta, ctx)

    # open a session for each pool MAC the way a client does (PADR with a valid cookie)
    window = p.cookie_window(loop.now, 1e9)
    for mac in macs:
        cookie = p.make_cookie(b"k" * 32, mac, b"internet", window)
        hand(p.build_padr(mac, AC_MAC, b"internet", cookie, host_uniq=mac, encoder="struct"))
    drain()
    live = [(mac, sid, acs.vlan) for c in ctxs for (mac, sid), acs in c.storage["ac"].sessions.items()]
    assert len(live) == len(macs)
    handled = len(macs)
    for kind, frame in generate(7, 20_000, AC_MAC, macs, live=live):
        hand(frame)
        handled += 1
        loop.advance(0.001)
        if handled % 256 == 0:
            drain()
    loop.advance(60.0)  # every timer and keepalive sweep runs out
    drain()
    snap = {name: sum(int(c._row[ctxs[0]._counters.column(name)]) for c in ctxs) for name in ("served", "ignored", "malformed")}
    assert snap["served"] + snap["ignored"] + snap["malformed"] == handled, snap
    assert bad == [], bad[:3]
    assert replies["Session"] > 1000 and replies["Discovery"] >= len(macs)
    for c in ctxs:
        bng.on_stop(c)
    drain()
    for c in ctxs:
        assert c.storage["ac"].sessions == {}
        assert c.storage["bng"].subs == {}
        assert c.storage["bng"].pool4.in_use == 0
        assert int(c._row[c._counters.column("sessions")]) == 0
