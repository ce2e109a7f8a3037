"""The handler functions :mod:`bench.handler` measures, in a module of their own so that every
receiver (:mod:`bench.handler_serve`) and the micro-benchmark (:mod:`bench.handler_micro`) call
the same code: ``handler(frame, meta, ctx)`` as pfrps calls it."""

from __future__ import annotations

import struct

#: Application counters of handler (b).
COUNTERS = ("discovery", "session", "malformed", "other")
_PPPOE = struct.Struct("!BBHH")


def handler_noop(frame, meta, ctx) -> None:
    """Handler (a): does nothing."""


def handler_parse_count(frame, meta, ctx) -> None:
    """Handler (b): parse the Ethernet header (one 802.1Q tag allowed) and the PPPoE header,
    count the frame as discovery, session, malformed or other with ``ctx.count``."""
    et = frame[12] << 8 | frame[13]
    off = 14
    if et == 0x8100:
        et = frame[16] << 8 | frame[17]
        off = 18
    if et != 0x8863 and et != 0x8864:
        ctx.count("other")
        return
    vt, _code, _sid, plen = _PPPOE.unpack_from(frame, off)
    if vt != 0x11 or plen > len(frame) - off - 6:
        ctx.count("malformed")
        return
    ctx.count("discovery" if et == 0x8863 else "session")
