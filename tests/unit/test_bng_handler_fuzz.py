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

from collections import Counter
from types import SimpleNamespace

from pfrps.ac import protocol as p
from pfrps.hashing import worker_for
from pfrps.testing.fuzz_frames import pool_macs, received
from tests.bng_fake import WORKERS, FakeLoop, make_bng
from tests.bng_fuzz_frames import AC_MAC, generate


def _meta(frame: bytes):
    """What the kernel hands a worker: the outer tag stripped into vlan_tci."""
    if frame[12:14] in (b"\x81\x00", b"\x88\xa8"):
        tpid = int.from_bytes(frame[12:14], "big")
        return frame[:12] + frame[16:], SimpleNamespace(vlan_tci=int.from_bytes(frame[14:16], "big"), vlan_tpid=tpid)
    return frame, SimpleNamespace(vlan_tci=None, vlan_tpid=None)


def test_20000_fuzzed_ppp_frames_through_the_bng_handler():
    loop = FakeLoop()
    bng, ctxs, pairs = make_bng(loop)
    macs = pool_macs(64, 11)
    replies = Counter()
    bad: list = []

    def drain() -> None:
        for f in received(pairs):
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
