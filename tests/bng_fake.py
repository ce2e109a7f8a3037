"""A BNG's workers in the test process: a simulated event loop and two real WorkerContexts
(transmit into socketpairs), for handler-level tests without sockets or namespaces."""

from __future__ import annotations

import heapq
import itertools
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from types import SimpleNamespace

from pfrps.ac.server import ACConfig
from pfrps.bng.secrets import Secrets, parse_text
from pfrps.bng.server import BNG, BNG_COUNTERS, BNG_GAUGES, BNGConfig
from pfrps.bng.session import PPPConfig
from pfrps.stats import SharedCounters
from pfrps.testing.fuzz_frames import tx_socketpairs
from pfrps.worker import WorkerContext
from tests.bng_fuzz_frames import AC_MAC

__all__ = ["WORKERS", "FakeLoop", "make_bng"]

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


def make_bng(loop: FakeLoop, **ac) -> tuple[BNG, list, list]:
    """Two BNG workers in this process (no data plane) on real WorkerContexts whose frames go
    into socketpairs: ``(bng, contexts, [(tx, rx) per worker])``."""
    secrets = Secrets(parse_text(b"".join(b"user%d * pass%d\n" % (i, i) for i in range(64))))
    cfg = BNGConfig(ac=ACConfig(AC_MAC, b"fuzz-bng", (), b"k" * 32, **{"echo_interval": 5.0, "cookie_window": 1e9, **ac}),
                    ppp=PPPConfig(local_ipv4=IPv4Address("198.51.100.1"), dns4=(IPv4Address("192.0.2.53"),)),
                    pools4=(IPv4Network("100.64.0.0/24"),), pool6=IPv6Network("2001:db8:100::/56"),
                    secrets=secrets, dataplane=False)
    bng = BNG(cfg, WORKERS, clock=lambda: loop.now)
    counters = SharedCounters(WORKERS, BNG_COUNTERS, BNG_GAUGES)
    pairs = tx_socketpairs(WORKERS, 1 << 22)
    ctxs = [WorkerContext(w, WORKERS, 1, pairs[w][0], counters, loop=loop) for w in range(WORKERS)]
    for c in ctxs:
        bng.on_start(c)
    return bng, ctxs, pairs


