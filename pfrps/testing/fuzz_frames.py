"""Seeded generator of random and mutated PPPoE frames, the kernel's view of them, and a plain handler.

Shared by the fuzz tests (``tests/unit/test_ac_fuzz.py``, ``tests/root/test_fuzz.py``: short
runs) and ``bench/fuzz.py`` (the 1,000,000-frame run). Rerun any of them with the same seed and
you get the same frames::

    .venv/bin/python -m pfrps.testing.fuzz_frames show --seed 7 --count 20     # print what it makes

:func:`generate` yields ``(kind, frame)``; the kinds (:data:`KINDS`):

=============  ====================================================================================
valid          well-formed PADI/PADR/PADT/PADO/PADS, LCP Echo-Request/-Reply, IPv4 in a session, from a
               pool of client MACs (PADRs carry a cookie from ``cookies`` when given, else junk)
mutated        a valid frame with 1-4 bytes overwritten (mostly within the first 40 bytes)
bad_tags       a valid discovery frame whose TAG list is corrupted (a TAG length past the end, a cut TAG
               header, a huge TAG)
bad_length     a valid frame with a random PPPoE LENGTH
truncated      a valid frame cut short
oversized      a PADI of 1485..1494 octets (RFC 2516 5.1: at most 1484), or a frame padded to the MTU
tagged         a valid or mutated frame behind 1-3 VLAN tags (0x8100, 0x88a8, sometimes 0x9100 or
               random TPIDs, random TCIs)
random         random bytes, half of them with a PPPoE ethertype
=============  ====================================================================================

:func:`kernel_view` is the Python reference of what a PF_PACKET socket steered by pfrps gets for a
frame sent on a veth: the kernel strips the outer 802.1Q/802.1ad tag into ``vlan_tci``
(``__netif_receive_skb_core`` -> ``skb_vlan_untag``, which drops a tagged frame of fewer than 20
bytes), then the steering program keeps the frame when its ethertype after up to two tags (the
stripped one counted) is wanted (``bpf/pfrps_parse.h``).

``python -m pfrps.testing.fuzz_frames plain -i IF -w N --ready-fd FD`` runs a plain pfrps handler
(not the AC) over the :class:`pfrps.Supervisor` API: it parses every frame, keeps a bounded
per-MAC table in ``ctx.storage`` and counts each frame ``served`` (PPPoE) or ``malformed``.

Over sockets (:func:`flood`, for the root fuzz test and ``bench.fuzz``): send the frames paced at
a rate into an :class:`pfrps.testing.ac.ACProcess` from a :class:`pfrps.testing.ac.PPPoEClient`,
and wait until every frame :func:`expected` predicts reached the workers.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import sys
import time
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from ..ac import protocol as p
from ..errors import LabError
from .ac import AC_MAC, totals
from ..cliutil import ArgumentParser

__all__ = ["KINDS", "AC_MAC", "OTHER_AC", "SERVICES", "MIN_SOCKET_FRAME", "MAX_SOCKET_FRAME", "pool_macs",
           "generate", "kernel_view", "rss_bytes", "fuzz_ac_direct", "PLAIN_COUNTERS", "PLAIN_TABLE",
           "plain_handler", "draw", "fit_socket", "received", "tx_socketpairs", "RATE", "WARMUP", "OFFERED", "fetch_cookies", "send_paced", "expected", "got", "flood", "main"]

KINDS = ("valid", "mutated", "bad_tags", "bad_length", "truncated", "oversized", "tagged", "random")
_WEIGHTS = (30, 15, 8, 8, 8, 5, 20, 6)
OTHER_AC = bytes.fromhex("52540000aaaa")
SERVICES = (b"internet", b"", b"voip", b"iptv")
#: Ethernet frame size limits for frames that go through a socket (veth, MTU 1500).
MIN_SOCKET_FRAME, MAX_SOCKET_FRAME = 14, 1514
_TPIDS = (p.ETH_P_8021Q, p.ETH_P_8021AD)


def pool_macs(n: int, seed: int = 0) -> list[bytes]:
    """``n`` distinct unicast, locally administered client MACs (``02:fz:...``), from ``seed``."""
    rng = random.Random(seed ^ 0xF022)
    out: dict[bytes, None] = {}
    while len(out) < n:
        out[bytes([0x02, 0xF2]) + rng.randbytes(4)] = None
    return list(out)


class _Gen:
    def __init__(self, seed: int, macs: Sequence[bytes], ac: bytes,
                 cookies: Optional[Mapping[tuple[bytes, bytes], bytes]], session_ids: Sequence[int],
                 live: Optional[Sequence[tuple[bytes, int, bytes]]] = None) -> None:
        self.r = random.Random(seed)
        self.macs = list(macs)
        self.ac = ac
        self.cookies = cookies or {}
        self.sids = list(session_ids) or [1]
        self.live = live if live is not None else ()

    def mac(self) -> bytes:
        r = self.r
        if r.random() < 0.9:
            return r.choice(self.macs)
        return bytes([r.randrange(256) & 0xFE | 0x02]) + r.randbytes(5)  # a stranger

    def sid(self) -> int:
        r = self.r
        return r.choice(self.sids) if r.random() < 0.7 else r.randrange(0x10000)

    def valid(self) -> bytes:
        r, ac = self.r, self.ac
        m = self.mac()
        service = r.choice(SERVICES)
        hu = r.randbytes(r.randrange(0, 12)) if r.random() < 0.8 else None
        relay = r.randbytes(r.randrange(1, 12)) if r.random() < 0.2 else None
        k = r.randrange(10)
        if 5 <= k <= 8 and self.live and r.random() < 0.5:  # on a session the AC granted
            m, sid, tags = self.live[r.randrange(len(self.live))]
            if k == 5:
                f = p.build_padt(ac, m, sid, None, None, encoder="struct")
            elif k == 6:
                f = p.build_lcp_echo_request(m, ac, sid, r.randrange(256), 0, r.randbytes(r.randrange(8)), "struct")
            elif k == 7:
                f = p.build_lcp_echo_reply(ac, m, sid, r.randrange(256), 0, encoder="struct")
            else:
                f = p.encode_session(ac, m, sid, b"\x00\x21" + r.randbytes(r.randrange(20, 60)))
            return p.with_vlan(f, tags)
        if k < 3:
            return p.build_padi(m, service, hu, relay, encoder="struct")
        if k < 5:
            cookie = self.cookies.get((m, service)) if r.random() < 0.8 else None
            if cookie is None:
                cookie = r.randbytes(r.choice((16, 16, 0, 8, 20)))
            return p.build_padr(m, ac if r.random() < 0.95 else OTHER_AC, service, cookie, hu, relay, encoder="struct")
        if k == 5:
            return p.build_padt(ac, m, self.sid() or 1, r.choice((None, b"bye")), hu, encoder="struct")
        if k == 6:
            return p.build_lcp_echo_request(m, ac, self.sid() or 1, r.randrange(256), r.randrange(1 << 32),
                                            r.randbytes(r.randrange(0, 16)), encoder="struct")
        if k == 7:
            return p.build_lcp_echo_reply(ac, m, self.sid() or 1, r.randrange(256), r.randrange(1 << 32),
                                          encoder="struct")
        if k == 8:
            return p.encode_session(ac, m, self.sid() or 1, b"\x00\x21" + r.randbytes(r.randrange(20, 60)))
        code = r.choice((p.PADO, p.PADS))
        return p.encode_discovery(m, OTHER_AC, code, self.sid() if code == p.PADS else 0,
                                  [(p.TAG_AC_NAME, b"other"), (p.TAG_SERVICE_NAME, service)], "struct")

    def mutated(self) -> bytes:
        r = self.r
        b = bytearray(self.valid())
        for _ in range(r.randrange(1, 5)):
            i = r.randrange(min(len(b), 40)) if r.random() < 0.8 else r.randrange(len(b))
            b[i] = r.randrange(256)
        return bytes(b)

    def bad_tags(self) -> bytes:
        r = self.r
        m = self.mac()
        tags = [(p.TAG_SERVICE_NAME, r.choice(SERVICES)), (p.TAG_HOST_UNIQ, r.randbytes(r.randrange(8)))]
        f = bytearray(p.encode_discovery(r.choice((p.BROADCAST, self.ac)), m, r.choice((p.PADI, p.PADR, p.PADT)),
                                         0, tags, "struct"))
        k = r.randrange(3)
        if k == 0:    # a TAG length past the end
            struct.pack_into("!H", f, 22, r.randrange(len(f) - 23, 0x10000))
        elif k == 1:  # LENGTH ends inside a TAG header
            struct.pack_into("!H", f, 18, r.randrange(1, 4))
        else:         # the second TAG's length runs off
            off = 24 + struct.unpack_from("!H", f, 22)[0] + 2
            if off + 2 <= len(f):
                struct.pack_into("!H", f, off, 0xFFFF)
        return bytes(f)

    def bad_length(self) -> bytes:
        r = self.r
        f = bytearray(self.valid())
        struct.pack_into("!H", f, 18, r.randrange(0x10000) if r.random() < 0.5 else r.randrange(64))
        return bytes(f)

    def truncated(self) -> bytes:
        f = self.valid()
        return f[:self.r.randrange(0, len(f))]

    def oversized(self) -> bytes:
        r = self.r
        if r.random() < 0.6:  # PADI of 1485..1494 octets: TAGs of 4 + 0 (Service-Name) + 4 + filler
            octets = r.randrange(p.MAX_PADI + 1, p.MAX_PAYLOAD + 1)
            return p.encode_discovery(p.BROADCAST, self.mac(), p.PADI, 0,
                                      [(p.TAG_SERVICE_NAME, b""), (0x7777, bytes(octets - 6 - 8))], "struct")
        f = self.valid()
        return f + r.randbytes(MAX_SOCKET_FRAME - len(f)) if len(f) < MAX_SOCKET_FRAME else f

    def tagged(self) -> bytes:
        r = self.r
        f = self.valid() if r.random() < 0.8 else self.mutated()
        n = r.choice((1, 1, 2, 2, 2, 3))
        tags = b""
        for _ in range(n):
            x = r.random()
            tpid = r.choice(_TPIDS) if x < 0.9 else (0x9100 if x < 0.95 else r.randrange(0x10000))
            tags += struct.pack("!HH", tpid, r.randrange(0x10000))
        return p.with_vlan(f, tags)

    def random(self) -> bytes:
        r = self.r
        f = bytearray(r.randbytes(r.randrange(0, 120)))
        if len(f) >= 15 and r.random() < 0.5:
            f[12:14] = r.choice((b"\x88\x63", b"\x88\x64"))
            f[14] = 0x11 if r.random() < 0.5 else f[14]
        return bytes(f)


def generate(seed: int, count: int, ac: bytes = AC_MAC, macs: Optional[Sequence[bytes]] = None,
             cookies: Optional[Mapping[tuple[bytes, bytes], bytes]] = None, session_ids: Sequence[int] = (),
             socket_safe: bool = False, live: Optional[Sequence[tuple[bytes, int, bytes]]] = None,
             ) -> Iterator[tuple[str, bytes]]:
    """``count`` frames from ``seed``: ``(kind, frame bytes)``, the same sequence for the same arguments.

    Args:
        seed: the random seed.
        count: frames to make.
        ac: the AC's MAC (the destination of most unicast frames).
        macs: the client pool (default: 64 from :func:`pool_macs`); 10% of frames come from others.
        cookies: ``{(client MAC, Service-Name): AC-Cookie}`` for PADRs that should pass.
        session_ids: session ids that session frames and PADTs mostly use (default: random).
        socket_safe: keep every frame within ``14..1514`` bytes, what a veth takes from a packet
            socket (shorter ones would fail with EINVAL, longer with EMSGSIZE).
        live: ``(client MAC, session id, raw VLAN tags)`` of sessions the AC granted, a sequence the
            caller may grow while iterating (from the PADSs it sees): half the session-stage frames
            and PADTs then go to them, so the paths of known sessions are fuzzed too.
    """
    g = _Gen(seed, macs if macs is not None else pool_macs(64, seed), ac, cookies, session_ids, live)
    yield from draw(g, KINDS, _WEIGHTS, count, socket_safe)


def draw(gen, kinds: Sequence[str], weights: Sequence[int], count: int,
         socket_safe: bool = False) -> Iterator[tuple[str, bytes]]:
    """``count`` ``(kind, frame)`` pairs from generator object ``gen``: each time a kind drawn
    from ``kinds`` with ``weights`` by ``gen.r`` (a :class:`random.Random`), then ``gen.<kind>()``
    makes the frame (:func:`fit_socket` applied with ``socket_safe``)."""
    makers = [getattr(gen, k) for k in kinds]
    choices = gen.r.choices
    for _ in range(count):
        i = choices(range(len(kinds)), weights)[0]
        f = makers[i]()
        yield kinds[i], (fit_socket(f) if socket_safe else f)


def fit_socket(f: bytes) -> bytes:
    """``f`` padded with zeros to :data:`MIN_SOCKET_FRAME` and cut at :data:`MAX_SOCKET_FRAME`
    bytes: a frame a packet socket can send on a veth (MTU 1500)."""
    if len(f) < MIN_SOCKET_FRAME:
        f = f + bytes(MIN_SOCKET_FRAME - len(f))
    return f[:MAX_SOCKET_FRAME]


def received(pairs: Sequence[tuple[socket.socket, socket.socket]]) -> Iterator[bytes]:
    """Every frame waiting on the ``rx`` ends of :func:`tx_socketpairs` ``pairs``, worker by
    worker, until each is empty (what the handlers transmitted so far)."""
    for _tx, rx in pairs:
        while True:
            try:
                yield rx.recv(65536)
            except BlockingIOError:
                break


def tx_socketpairs(workers: int, sndbuf: int) -> list[tuple[socket.socket, socket.socket]]:
    """``(tx, rx)`` datagram socketpairs, one per worker: give ``tx`` to a
    :class:`pfrps.worker.WorkerContext` as its transmit socket and read what the handler sent
    from ``rx`` (non-blocking); ``sndbuf`` is ``tx``'s SO_SNDBUF in bytes."""
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(workers)]
    for tx, rx in pairs:
        rx.setblocking(False)
        tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    return pairs


def kernel_view(frame: bytes, ethertypes: Sequence[int] = (p.ETH_P_PPP_DISC, p.ETH_P_PPP_SES),
                max_tags: int = 2) -> Optional[tuple[bytes, Optional[int]]]:
    """What a pfrps worker's packet socket gets when ``frame`` arrives on a veth: ``(frame as
    seen, vlan_tci or None)``, or None when the kernel or the steering program drops it.

    ``ethertypes`` empty means every ethertype (``-e all``). Mirrors ``skb_vlan_untag`` (the
    outer 0x8100/0x88a8 tag goes to ``vlan_tci``; a tagged frame under 20 bytes is freed),
    ``eth_type_trans`` (an ethertype below 0x600 is a length, never a match) and
    ``pfrps_ethertype_ok`` in bpf/pfrps_parse.h.
    """
    n = len(frame)
    if n < 14:
        return None
    etype = (frame[12] << 8) | frame[13]
    tci = None
    if etype in _TPIDS:
        if n < 20:
            return None
        tci = (frame[14] << 8) | frame[15]
        frame = frame[:12] + frame[16:]
        etype = (frame[12] << 8) | frame[13]
    if not ethertypes:
        return frame, tci
    tags = 0 if tci is None else 1
    off = 12
    while True:
        if etype >= 0x600 and etype in ethertypes:
            return frame, tci
        if etype not in _TPIDS or tags >= max_tags or len(frame) < off + 6:
            return None
        etype = (frame[off + 4] << 8) | frame[off + 5]
        off += 4
        tags += 1


# -- the AC's handler, called directly (no sockets to a network) -------------------------------
def rss_bytes(pid: str = "self") -> int:
    """Resident set size of process ``pid`` (``VmRSS`` in /proc/PID/status, proc(5)), bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for process {pid}")


def fuzz_ac_direct(seed: int, count: int, workers: int = 2, frame_seconds: float = 0.001,
                   warmup: int = 10_000, **bounds) -> dict:
    """Feed ``count`` frames of :func:`generate` to :class:`pfrps.ac.server.AccessConcentrator`
    workers in this process, as the kernel would hand them over (:func:`kernel_view` with every
    ethertype: the handler also gets what steering would have dropped), steered by mac_hash.

    Every worker has a real :class:`pfrps.worker.WorkerContext` (transmit into a socketpair
    that is drained and whose every reply must parse as PPPoE) and a simulated clock that moves
    ``frame_seconds`` per frame; the keepalive sweep runs every ``echo_interval`` of it. PADRs
    carry valid cookies for the client pool 80% of the time, so sessions open, are replaced,
    expire and hit the limit. ``bounds`` go to :class:`pfrps.ac.server.ACConfig`.

    Returns a dict: ``frames`` handed over, ``exceptions`` (handler raised; first ``tracebacks``),
    ``bad_replies``, ``replies``, per-outcome and per-counter totals, ``outcomes_add_up``,
    ``rss_after_warmup``/``rss_half``/``rss_end`` (bytes: after ``warmup`` frames, half-way, at the
    end) and the largest session table seen, plus seconds.
    """
    import collections  # noqa: PLC0415
    import traceback  # noqa: PLC0415
    from types import SimpleNamespace  # noqa: PLC0415

    from pfrps.ac.server import AC_COUNTERS, AC_GAUGES, AccessConcentrator, ACConfig  # noqa: PLC0415
    from pfrps.hashing import worker_for  # noqa: PLC0415
    from pfrps.stats import SharedCounters  # noqa: PLC0415
    from pfrps.worker import WorkerContext  # noqa: PLC0415

    secret = random.Random(seed).randbytes(32)
    now = [1_000_000.0]
    bounds.setdefault("cookie_window", 1e9)  # the pool's cookies stay good; expiry is unit-tested
    ac = AccessConcentrator(ACConfig(AC_MAC, b"fuzz-ac", (b"internet", b"voip"), secret, **bounds), workers,
                            clock=lambda: now[0])
    window = p.cookie_window(now[0], ac.config.cookie_window)
    macs = pool_macs(256, seed)
    cookies = {(m, sv): p.make_cookie(secret, m, sv, window) for m in macs for sv in SERVICES}
    counters = SharedCounters(workers, AC_COUNTERS, AC_GAUGES)
    pairs = tx_socketpairs(workers, 1 << 20)
    ctxs = [WorkerContext(w, workers, 1, pairs[w][0], counters, loop=None) for w in range(workers)]
    for c in ctxs:
        ac.on_start(c)
        c.storage["ac"].ids = p.SessionIdAllocator(c.worker_id, workers, 0)  # ids the frames below use
    # the ids the workers hand out first (allocators start at 0): session frames hit live sessions
    sids = [s for w in range(workers) for s in list(p.session_ids(w, workers))[:max(64, ac.config.max_sessions)]]
    res = {"frames": 0, "exceptions": 0, "tracebacks": [], "bad_replies": 0, "replies": 0, "largest_table": 0}
    interval = ac.config.echo_interval
    next_sweep = now[0] + interval if interval else float("inf")

    live: collections.deque = collections.deque(maxlen=2048)

    def drain() -> None:
        for f in received(pairs):
            res["replies"] += 1
            m = p.parse_frame(f)
            if type(m) is p.Malformed:
                res["bad_replies"] += 1
            elif type(m) is p.Discovery and m.code == p.PADS and m.session_id:
                live.append((m.dst, m.session_id, m.vlan))

    t0 = time.monotonic()
    batch: list[bytes] = []
    gen = generate(seed, count, AC_MAC, macs, cookies, sids, live=live)
    done = 0
    while done < count:
        batch = [kf[1] for _i, kf in zip(range(4096), gen)]
        views = [kernel_view(f, ()) for f in batch]
        srcs = b"".join((v[0] + bytes(12))[6:12] for v in views if v is not None)
        owners = iter(worker_for(srcs, workers).tolist()) if srcs else iter(())
        for v in views:
            done += 1
            now[0] += frame_seconds
            if now[0] >= next_sweep:
                for c in ctxs:
                    ac.sweep(c)
                next_sweep += interval
            if v is None:
                continue
            frame, tci = v
            ctx = ctxs[next(owners)]
            res["frames"] += 1
            try:
                ac.handle(memoryview(frame), SimpleNamespace(vlan_tci=tci), ctx)
            except Exception:  # noqa: BLE001  (what the fuzz looks for: any exception at all)
                res["exceptions"] += 1
                if len(res["tracebacks"]) < 3:
                    res["tracebacks"].append(traceback.format_exc())
        drain()
        res["largest_table"] = max(res["largest_table"], *(len(c.storage["ac"].sessions) for c in ctxs))
        if done <= warmup < done + 4096:
            res["rss_after_warmup"] = rss_bytes()
        if done <= count // 2 < done + 4096:
            res["rss_half"] = rss_bytes()
    res.setdefault("rss_after_warmup", rss_bytes())
    res.setdefault("rss_half", res["rss_after_warmup"])
    res["seconds"] = time.monotonic() - t0
    res["rss_end"] = rss_bytes()
    snap = counters.array.view("i8")
    totals = {n: int(snap[:, counters.column(n)].sum()) for n in AC_COUNTERS + AC_GAUGES}
    res["counters"] = totals
    res["outcomes_add_up"] = totals["served"] + totals["ignored"] + totals["malformed"] == res["frames"]
    res["state"] = {"sessions": sum(len(c.storage["ac"].sessions) for c in ctxs),
                    "by_uniq": sum(len(c.storage["ac"].by_uniq) for c in ctxs),
                    "by_mac": sum(len(c.storage["ac"].by_mac) for c in ctxs),
                    "ids_in_use": sum(len(c.storage["ac"].ids) for c in ctxs)}
    for c in ctxs:
        ac.on_stop(c)
    drain()
    res["sessions_after_stop"] = int(snap[:, counters.column("sessions")].sum())
    for tx, rx in pairs:
        tx.close()
        rx.close()
    return res


# -- a plain pfrps handler (not the AC) ----------------------------------------------------------
PLAIN_COUNTERS = ("served", "malformed", "ignored")
#: per-worker source-MAC table entries the plain handler keeps (oldest evicted beyond it)
PLAIN_TABLE = 4096


def plain_handler(frame, meta, ctx) -> None:
    """Count ``frame`` as ``served`` (parses as PPPoE) or ``malformed`` and bump its source MAC's
    entry in a per-worker table of at most :data:`PLAIN_TABLE` MACs (frames)."""
    msg = p.parse_frame(frame, p.MAX_VLAN_TAGS - (meta.vlan_tci is not None))
    if type(msg) is p.Malformed:
        ctx.count("malformed")
        return
    table = ctx.storage
    key = bytes(frame[6:12])
    seen = table.pop(key, 0)
    if len(table) >= PLAIN_TABLE:
        del table[next(iter(table))]
    table[key] = seen + 1
    ctx.count("served")


def _plain(args: argparse.Namespace) -> int:
    from .. import Supervisor, SupervisorConfig  # noqa: PLC0415
    from ..cliutil import signal_ready  # noqa: PLC0415
    from ..stats import dumps  # noqa: PLC0415

    sup = Supervisor(SupervisorConfig(args.interface, args.workers, app_counters=PLAIN_COUNTERS),
                     handler=plain_handler)
    try:
        sup.start()
        print(f"fuzz_frames: plain handler on {args.interface}, {args.workers} workers", file=sys.stderr, flush=True)
        signal_ready(args.ready_fd)
        return sup.run(lambda: print(dumps(sup.snapshot()), flush=True), interval=args.interval,
                       duration=args.duration)
    finally:
        sup.close()


def _show(args: argparse.Namespace) -> int:
    for kind, f in generate(args.seed, args.count, socket_safe=args.socket_safe):
        print(json.dumps({"kind": kind, "len": len(f), "hex": f[:48].hex()}))
    return 0


# -- over sockets: a paced flood into a running AC or plain handler ------------------------------
#: frames/s :func:`send_paced` sends at by default: paced, so the veth backlog never overflows on a
#: shared machine
RATE = 10_000.0
#: frames :func:`flood` sends before it takes each worker's resident memory as the baseline
WARMUP = 2_000


#: the services pfrps-ac is started with in the socket runs (every one of :data:`SERVICES` but iptv)
OFFERED = tuple(s for s in SERVICES if s != b"iptv")


def fetch_cookies(cl, macs: Sequence[bytes], services: Sequence[bytes] = OFFERED) -> dict[tuple[bytes, bytes], bytes]:
    """Real AC-Cookies for the client pool, so fuzzed PADRs open sessions too: a PADI from every
    MAC for every service, sent on :class:`pfrps.testing.ac.PPPoEClient` ``cl``; ``{(mac,
    service): cookie}`` from the PADOs (the AC must offer ``services``).

    Raises:
        LabError: a PADO did not come.
    """
    from .ac import is_disc, tag  # noqa: PLC0415

    cl.send(*(p.build_padi(m, s, b"c") for m in macs for s in services))
    cookies = {}
    for f in cl.expect(len(macs) * len(services), lambda f: is_disc(f, p.PADO)):
        cookies[(f[:6], tag(f, p.TAG_SERVICE_NAME))] = tag(f, p.TAG_AC_COOKIE)
    return cookies


def send_paced(cl, frames: Sequence[bytes], rate: float = RATE) -> None:
    """Send ``frames`` on :class:`pfrps.testing.ac.PPPoEClient` ``cl`` at about ``rate`` frames/s,
    100 at a time."""
    t0 = time.monotonic()
    for i in range(0, len(frames), 100):
        cl.send(*frames[i:i + 100])
        ahead = t0 + (i + 100) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)  # pacing the sender, not waiting for readiness


def expected(frames: Sequence[bytes]) -> tuple[int, int, int]:
    """(frames the workers get, of which malformed, frames the interface counts in rx_dropped)
    per the :func:`kernel_view` reference and the parser.

    rx_dropped: a frame whose outer tag the kernel stripped is, after the packet sockets had it,
    offered to the protocol handlers of its inner ethertype; with no VLAN device and no PPPoE
    module none takes it and ``__netif_receive_skb_core`` counts it dropped. So every tagged
    frame that survived ``skb_vlan_untag`` (20 bytes or more) shows in ``if_rx_dropped``.
    """
    delivered = malformed = stripped = 0
    for f in frames:
        stripped += len(f) >= 20 and f[12:14] in (b"\x81\x00", b"\x88\xa8")
        v = kernel_view(f)
        if v is not None:
            delivered += 1
            frame, tci = v
            malformed += type(p.parse_frame(frame, p.MAX_VLAN_TAGS - (tci is not None))) is p.Malformed
    return delivered, malformed, stripped


def got(snap: dict) -> int:
    """Frames that reached the workers' rings: handed to the handler, or dropped by a full ring
    (PACKET_STATISTICS, reported as ``drops``: on a shared 2-CPU machine a worker may lag)."""
    t = totals(snap)
    return t["frames"] + t["drops"]


def flood(proc, cl, frames: Sequence[bytes], before: int, rate: float = RATE,
          warmup: int = WARMUP) -> tuple[dict, dict[int, int]]:
    """Send ``frames`` from ``cl`` into :class:`pfrps.testing.ac.ACProcess` ``proc`` at ``rate``
    frames/s: ``warmup`` frames, then each worker's resident memory is taken, then the rest; wait
    until every frame :func:`expected` predicts arrived (``before``: frames the workers had
    already got). Returns the final snapshot and each worker pid's RSS growth (bytes).

    Raises:
        LabError: the frames never all arrived, or a worker was replaced meanwhile.
    """
    want_warm = expected(frames[:warmup])[0]
    want = expected(frames)[0]
    send_paced(cl, frames[:warmup], rate)
    proc.wait_for(lambda s: got(s) == before + want_warm, f"{before + want_warm} frames", timeout=30)
    base = {pid: rss_bytes(str(pid)) for pid in proc.worker_pids().values()}
    send_paced(cl, frames[warmup:], rate)
    last = proc.wait_for(lambda s: got(s) >= before + want, f"{before + want} frames",
                         timeout=60 + len(frames) / rate)
    # drop counters are read once per stats interval (0.05 s): a snapshot a few intervals later
    snap = proc.wait_for(lambda s: s["time"] >= last["time"] + 0.3, "a later snapshot", timeout=10)
    end = {pid: rss_bytes(str(pid)) for pid in proc.worker_pids().values()}
    if set(end) != set(base):
        raise LabError(f"a worker was replaced during the flood: pids {sorted(base)} -> {sorted(end)}")
    return snap, {pid: end[pid] - base[pid] for pid in base}


def show_parser(prog: str, description: str, show: Callable[[argparse.Namespace], int],
                more_examples: str = "") -> tuple[ArgumentParser, Any]:
    """The command line of a frame generator: a parser with a ``show --seed N --count K
    [--socket-safe]`` subcommand calling ``show(args)``; returns ``(parser, subparsers)`` for
    more subcommands."""
    ap = ArgumentParser(prog=prog, description=description,
                        epilog=f"examples:\n  {prog} show --seed 7 --count 20\n{more_examples}",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("show", help="print frames as JSON lines")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--count", type=int, default=20)
    s.add_argument("--socket-safe", action="store_true")
    s.set_defaults(fn=show)
    return ap, sub


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``show`` the frames of a seed, or run the ``plain`` handler (for the root fuzz test)."""
    ap, sub = show_parser("python -m pfrps.testing.fuzz_frames", __doc__.split("\n")[0], _show,
                          "  python -m pfrps.testing.fuzz_frames plain -i enp1s0 -w 4 --duration 60\n")
    pl = sub.add_parser("plain", help="run the plain handler on an interface (JSON snapshot lines on stdout)")
    pl.add_argument("-i", "--interface", required=True)
    pl.add_argument("-w", "--workers", type=int, default=2)
    pl.add_argument("--interval", type=float, default=0.1)
    pl.add_argument("--duration", type=float, default=120.0)
    pl.add_argument("--ready-fd", type=int)
    pl.set_defaults(fn=_plain)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())

