"""Seeded generator of PPPoE session frames carrying PPP control packets, valid and malformed, for
fuzzing pfrps-bng (its handler directly, or through a veth). Same seed, same frames::

    .venv/bin/python -m tests.bng_fuzz_frames show --seed 7 --count 20     # print what it makes

:func:`generate` yields ``(kind, frame)``: one Ethernet frame (ethertype 0x8864, PPPoE CODE 0)
with a PPP frame of LCP (0xc021), PAP (0xc023), CHAP (0xc223), IPCP (0x8021) or IPv6CP (0x8057),
or (a few) an IPv6 Router Solicitation (0x0057) or an unknown protocol; every frame is behind
0, 1 or 2 VLAN tags (0x8100 C-tag, 0x88a8/0x8100 outer S-tag). The kinds (:data:`KINDS`):

================  ==================================================================================
valid             a well-formed packet: LCP Configure-Request/-Ack/-Nak/-Reject (MRU, ACCM, Auth-
                  Protocol PAP or CHAP-MD5, Magic-Number, PFC, ACFC, now and then an option we do not
                  know), Terminate-Request/-Ack, Code-Reject, Protocol-Reject, Echo-Request/-Reply,
                  Discard-Request; PAP Authenticate-Request (Ack/Nak now and then); CHAP Response
                  (Challenge/Success/Failure now and then); IPCP (IP-Address, DNS 129/131, IP-
                  Compression) and IPv6CP (Interface-Identifier) Configure-*/Terminate-*/Code-Reject;
                  an IPv6 Router Solicitation
bad_length        a valid control packet whose Length field is wrong: under 4, past the end, cutting
                  an option or a PAP/CHAP field, or random
short_option      a Configure-* packet with an option of length 0 or 1 (RFC 1661 6: at least 2)
option_overrun    a Configure-* packet whose last option's length runs past the packet's end
unknown_code      a control packet with a code the protocol does not define (0, LCP 12-255, IPCP and
                  IPv6CP 8-255, PAP 0/4-255, CHAP 0/5-255): the peer must Code-Reject it
repeated_option   a Configure-Request with one option twice (MRU, Magic-Number, Auth-Protocol, IP-
                  Address, Interface-Identifier ...), the two values differing
truncated         a valid frame cut short: either the PPPoE LENGTH kept (so it runs past the end) or
                  fixed up to the cut (so the PPP packet itself is short)
mutated           a valid frame with 1-4 bytes overwritten, mostly in the PPP packet
bad_pppoe         a valid PPP packet in a bad PPPoE header: VER/TYPE not 1, CODE not 0, session id 0 or
                  0xffff, LENGTH wrong
unknown_protocol  a PPP protocol the BNG does not run (CCP, ECP, MPLSCP, BCP, random): Protocol-Reject
================  ==================================================================================

Frames go from a pool of client MACs (:func:`pfrps.testing.fuzz_frames.pool_macs`; 10% from strangers)
to ``ac``, on ``session_ids`` (or random ones), or, for half the frames when ``live`` is given,
on the ``(MAC, session id, raw VLAN tags)`` of sessions the BNG granted, so the paths of known
sessions are fuzzed too. Frames are built with :mod:`struct` (not with ``pfrps.bng.ppp``: the
corpus must not share the code it tests); ``tests/unit/test_bng_fuzz.py`` checks the valid ones
against scapy's dissectors.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
from typing import Iterator, Optional, Sequence

from pfrps.ac import protocol as p
from pfrps.testing.fuzz_frames import AC_MAC, draw, pool_macs, show_parser

__all__ = ["KINDS", "WEIGHTS", "AC_MAC", "PPP_LCP", "PPP_PAP", "PPP_CHAP", "PPP_IPCP", "PPP_IPV6CP", "PPP_IPV6",
           "CONTROL_PROTOCOLS", "UNKNOWN_PROTOCOLS", "ppp_packet", "generate", "describe", "main"]

KINDS = ("valid", "bad_length", "short_option", "option_overrun", "unknown_code", "repeated_option",
         "truncated", "mutated", "bad_pppoe", "unknown_protocol")
WEIGHTS = (30, 8, 8, 8, 8, 8, 8, 12, 5, 5)

PPP_LCP, PPP_PAP, PPP_CHAP, PPP_IPCP, PPP_IPV6CP, PPP_IPV6 = 0xC021, 0xC023, 0xC223, 0x8021, 0x8057, 0x0057
CONTROL_PROTOCOLS = (PPP_LCP, PPP_PAP, PPP_CHAP, PPP_IPCP, PPP_IPV6CP)
NCP = (PPP_LCP, PPP_IPCP, PPP_IPV6CP)  # the protocols with RFC 1661 Configure-* packets and options
#: protocols no BNG layer runs: CCP, ECP, MPLSCP, BCP, IPXCP, LQR, CBCP
UNKNOWN_PROTOCOLS = (0x80FD, 0x8053, 0x8281, 0x8031, 0x802B, 0xC025, 0xC029)
_NAMES = {PPP_LCP: "LCP", PPP_PAP: "PAP", PPP_CHAP: "CHAP", PPP_IPCP: "IPCP", PPP_IPV6CP: "IPv6CP",
          PPP_IPV6: "IPv6"}
#: the highest code each control protocol defines (RFC 1661 5, RFC 1332 2, RFC 5072 3, RFC 1334, RFC 1994)
_MAX_CODE = {PPP_LCP: 11, PPP_IPCP: 7, PPP_IPV6CP: 7, PPP_PAP: 3, PPP_CHAP: 4}
CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ, TERM_REQ, TERM_ACK, CODE_REJ = 1, 2, 3, 4, 5, 6, 7
PROTO_REJ, ECHO_REQ, ECHO_REP, DISCARD_REQ = 8, 9, 10, 11


def ppp_packet(code: int, ident: int, data: bytes) -> bytes:
    """An RFC 1661 control packet (also PAP/CHAP): ``Code | Identifier | Length | data``."""
    return struct.pack("!BBH", code, ident, 4 + len(data)) + data


def _opts(opts: Sequence[tuple[int, bytes]]) -> bytes:
    return b"".join(struct.pack("!BB", t, 2 + len(v)) + v for t, v in opts)


def _pppoe_offset(frame: bytes) -> int:
    """Offset of the PPPoE header in a frame this module built (after the VLAN tags)."""
    off = 12
    while frame[off:off + 2] in (b"\x81\x00", b"\x88\xa8"):
        off += 4
    return off + 2


class _Gen:
    def __init__(self, seed: int, macs: Sequence[bytes], ac: bytes, session_ids: Sequence[int],
                 live: Optional[Sequence[tuple[bytes, int, bytes]]]) -> None:
        self.r = random.Random(seed)
        self.macs = list(macs)
        self.ac = ac
        self.sids = list(session_ids)
        self.live = live if live is not None else ()

    # -- addressing ------------------------------------------------------------------------------
    def _where(self) -> tuple[bytes, int, bytes]:
        """(client MAC, session id, raw VLAN tags)."""
        r = self.r
        if self.live and r.random() < 0.5:
            return self.live[r.randrange(len(self.live))]
        mac = r.choice(self.macs) if r.random() < 0.9 else bytes([r.randrange(256) & 0xFE | 0x02]) + r.randbytes(5)
        sid = r.choice(self.sids) if self.sids and r.random() < 0.7 else r.randrange(1, 0xFFFF)
        return mac, sid, self._vlan()

    def _vlan(self) -> bytes:
        r = self.r
        n = r.choices((0, 1, 2), (60, 25, 15))[0]
        if n == 0:
            return b""
        inner = struct.pack("!HH", p.ETH_P_8021Q, r.randrange(1, 4095) | r.randrange(8) << 13)
        if n == 1:
            return inner
        outer = r.choice((p.ETH_P_8021AD, p.ETH_P_8021AD, p.ETH_P_8021Q))
        return struct.pack("!HH", outer, r.randrange(1, 4095)) + inner

    def _frame(self, proto: int, packet: bytes) -> bytes:
        mac, sid, vlan = self._where()
        return p.with_vlan(p.encode_session(self.ac, mac, sid, struct.pack("!H", proto) + packet), vlan)

    # -- option values ---------------------------------------------------------------------------
    def _lcp_opt(self, t: Optional[int] = None) -> tuple[int, bytes]:
        r = self.r
        t = t if t is not None else r.choice((1, 1, 3, 3, 5, 5, 5, 2, 7, 8, 13, 17, 19))
        if t == 1:
            return 1, struct.pack("!H", r.choice((1492, 1492, 1500, 1480, 576, 64, 65535, r.randrange(0x10000))))
        if t == 2:
            return 2, r.randbytes(4)
        if t == 3:
            return 3, r.choice((b"\xc0\x23", b"\xc2\x23\x05", b"\xc2\x23\x80", b"\xc2\x23\x81", b"\xc2\x27"))
        if t == 5:
            return 5, r.randbytes(4)
        if t in (7, 8):
            return t, b""
        return t, r.randbytes(r.randrange(0, 8))  # Callback, MRRU, Endpoint-Discriminator ...

    def _ipcp_opt(self, t: Optional[int] = None) -> tuple[int, bytes]:
        r = self.r
        t = t if t is not None else r.choice((3, 3, 3, 129, 131, 2, 1, 130, 132))
        if t in (3, 129, 130, 131, 132):
            return t, r.choice((bytes(4), r.randbytes(4)))
        if t == 2:
            return 2, b"\x00\x2d\x0f\x01"  # Van Jacobson, max slot 15, compress slot id
        return 1, r.randbytes(8)          # IP-Addresses (deprecated, RFC 1332 3.1)

    def _ipv6cp_opt(self, t: Optional[int] = None) -> tuple[int, bytes]:
        r = self.r
        t = t if t is not None else r.choice((1, 1, 1, 2))
        if t == 1:
            return 1, r.choice((r.randbytes(8), bytes(8)))
        return 2, b"\x00\x4f" + r.randbytes(r.randrange(0, 4))  # IPv6-Compression-Protocol

    def _opt(self, proto: int, t: Optional[int] = None) -> tuple[int, bytes]:
        return {PPP_LCP: self._lcp_opt, PPP_IPCP: self._ipcp_opt, PPP_IPV6CP: self._ipv6cp_opt}[proto](t)

    def _options(self, proto: int) -> list[tuple[int, bytes]]:
        seen: dict[int, bytes] = {}
        for _ in range(self.r.randrange(0, 5)):
            t, v = self._opt(proto)
            seen.setdefault(t, v)
        return list(seen.items())

    # -- valid packets -----------------------------------------------------------------------------
    def _configure(self, proto: int) -> tuple[int, bytes]:
        r = self.r
        return proto, ppp_packet(r.choice((CONF_REQ, CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ)), r.randrange(256),
                                 _opts(self._options(proto)))

    def _control(self, proto: int) -> tuple[int, bytes]:
        """A valid packet of ``proto``."""
        r = self.r
        ident = r.randrange(256)
        if proto in NCP:
            k = r.randrange(10)
            if k < 6:
                return self._configure(proto)
            if k < 8:
                return proto, ppp_packet(r.choice((TERM_REQ, TERM_ACK)), ident, r.randbytes(r.randrange(0, 8)))
            if proto != PPP_LCP or k == 8:
                inner = ppp_packet(r.randrange(12, 256), r.randrange(256), r.randbytes(r.randrange(0, 8)))
                return proto, ppp_packet(CODE_REJ, ident, inner)
            code = r.choice((PROTO_REJ, ECHO_REQ, ECHO_REQ, ECHO_REP, DISCARD_REQ))
            if code == PROTO_REJ:
                return proto, ppp_packet(code, ident, struct.pack("!H", r.choice(UNKNOWN_PROTOCOLS)) + r.randbytes(6))
            return proto, ppp_packet(code, ident, r.randbytes(4) + r.randbytes(r.randrange(0, 12)))
        user = r.choice((b"alice", b"bob", b"", b"user@realm.example", r.randbytes(r.randrange(1, 40))))
        if proto == PPP_PAP:
            if r.random() < 0.85:
                pw = r.randbytes(r.randrange(0, 24))
                return proto, ppp_packet(1, ident, bytes([len(user)]) + user + bytes([len(pw)]) + pw)
            msg = r.randbytes(r.randrange(0, 12))
            return proto, ppp_packet(r.choice((2, 3)), ident, bytes([len(msg)]) + msg)
        x = r.random()
        if x < 0.8:  # Response (from a client), or a Challenge (the wrong way round)
            value = r.randbytes(16) if r.random() < 0.9 else r.randbytes(r.randrange(1, 40))
            return proto, ppp_packet(2 if x < 0.7 else 1, ident, bytes([len(value)]) + value + user)
        return proto, ppp_packet(r.choice((3, 4)), ident, r.randbytes(r.randrange(0, 12)))

    def _rs(self) -> tuple[int, bytes]:
        r = self.r
        src = b"\xfe\x80" + bytes(6) + r.randbytes(8) if r.random() < 0.9 else bytes(16)
        dst = b"\xff\x02" + bytes(13) + b"\x02"
        icmp = bytearray(struct.pack("!BBHI", 133, 0, 0, 0))
        pseudo = src + dst + struct.pack("!I3xB", len(icmp), 58)
        data = pseudo + bytes(icmp)
        s = sum(struct.unpack(f"!{len(data) // 2}H", data))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        struct.pack_into("!H", icmp, 2, ~s & 0xFFFF)
        return PPP_IPV6, struct.pack("!IHBB16s16s", 6 << 28, len(icmp), 58, 255, src, dst) + bytes(icmp)

    def _valid_packet(self) -> tuple[int, bytes]:
        r = self.r
        if r.random() < 0.05:
            return self._rs()
        return self._control(r.choices(CONTROL_PROTOCOLS, (40, 15, 15, 20, 10))[0])

    # -- the kinds ----------------------------------------------------------------------------------
    def valid(self) -> bytes:
        return self._frame(*self._valid_packet())

    def bad_length(self) -> bytes:
        r = self.r
        proto, pkt = self._control(r.choice(CONTROL_PROTOCOLS))
        n = len(pkt)
        choices = [r.randrange(0, 4), n + r.randrange(1, 20), r.randrange(0x10000)]
        if n > 4:
            choices.append(r.randrange(4, n))  # cuts an option or a PAP/CHAP field
        pkt = pkt[:2] + struct.pack("!H", r.choice(choices)) + pkt[4:]
        return self._frame(proto, pkt)

    def _ncp(self) -> int:
        return self.r.choices(NCP, (50, 30, 20))[0]

    def short_option(self) -> bytes:
        r = self.r
        proto = self._ncp()
        opts = _opts(self._options(proto))
        bad = bytes([r.randrange(1, 32), r.choice((0, 1))])
        cut = r.choice((0, len(opts))) if opts else 0
        data = opts[:cut] + bad + opts[cut:] if r.random() < 0.5 else opts + bad + r.randbytes(r.randrange(0, 6))
        return self._frame(proto, ppp_packet(r.choice((CONF_REQ, CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ)),
                                             r.randrange(256), data))

    def option_overrun(self) -> bytes:
        r = self.r
        proto = self._ncp()
        t, v = self._opt(proto)
        opts = _opts(self._options(proto))
        last = struct.pack("!BB", t, 2 + len(v) + r.randrange(1, 40)) + v  # claims more than is there
        if r.random() < 0.3:
            last = last[:1]  # or only the type octet is left
        return self._frame(proto, ppp_packet(r.choice((CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ)), r.randrange(256),
                                             opts + last))

    def unknown_code(self) -> bytes:
        r = self.r
        proto = r.choice(CONTROL_PROTOCOLS)
        code = r.choice((0, r.randrange(_MAX_CODE[proto] + 1, 256), _MAX_CODE[proto] + 1))
        return self._frame(proto, ppp_packet(code, r.randrange(256), r.randbytes(r.randrange(0, 16))))

    def repeated_option(self) -> bytes:
        r = self.r
        proto = self._ncp()
        t = {PPP_LCP: r.choice((1, 3, 5, 2, 7)), PPP_IPCP: r.choice((3, 129, 131)), PPP_IPV6CP: 1}[proto]
        a = self._opt(proto, t)
        b = self._opt(proto, t)
        while b == a and t not in (7, 8):
            b = self._opt(proto, t)
        opts = self._options(proto)
        opts = [o for o in opts if o[0] != t]
        opts.insert(r.randrange(len(opts) + 1), a)
        opts.insert(r.randrange(len(opts) + 1), b)
        return self._frame(proto, ppp_packet(CONF_REQ, r.randrange(256), _opts(opts)))

    def truncated(self) -> bytes:
        r = self.r
        f = self.valid()
        base = _pppoe_offset(f)  # the PPPoE header
        if r.random() < 0.5:
            return f[:r.randrange(0, len(f))]  # LENGTH now runs past the end (or less than a header)
        keep = r.randrange(0, len(f) - base - 6)  # PPP bytes kept, LENGTH fixed up
        b = bytearray(f[:base + 6 + keep])
        struct.pack_into("!H", b, base + 4, keep)
        return bytes(b)

    def mutated(self) -> bytes:
        r = self.r
        b = bytearray(self.valid())
        base = _pppoe_offset(b)
        for _ in range(r.randrange(1, 5)):
            i = r.randrange(base + 6, len(b)) if r.random() < 0.85 and len(b) > base + 6 else r.randrange(len(b))
            b[i] = r.randrange(256)
        return bytes(b)

    def bad_pppoe(self) -> bytes:
        r = self.r
        b = bytearray(self.valid())
        base = _pppoe_offset(b)
        k = r.randrange(4)
        if k == 0:
            b[base] = r.choice((0x10, 0x01, 0x22, 0x12, 0x21))
        elif k == 1:
            b[base + 1] = r.choice((p.PADI, p.PADT, p.PADS, r.randrange(1, 256)))
        elif k == 2:
            struct.pack_into("!H", b, base + 2, r.choice((0, 0xFFFF)))
        else:
            struct.pack_into("!H", b, base + 4, r.choice((0, 1, r.randrange(0x10000))))
        return bytes(b)

    def unknown_protocol(self) -> bytes:
        r = self.r
        proto = r.choice(UNKNOWN_PROTOCOLS) if r.random() < 0.7 else r.randrange(0x10000) | 0x0001
        while proto in CONTROL_PROTOCOLS or proto in (PPP_IPV6, 0x0021):
            proto = r.randrange(0x10000) | 0x0001
        return self._frame(proto, ppp_packet(CONF_REQ, r.randrange(256), r.randbytes(r.randrange(0, 16))))


def generate(seed: int, count: int, ac: bytes = AC_MAC, macs: Optional[Sequence[bytes]] = None,
             session_ids: Sequence[int] = (), socket_safe: bool = False,
             live: Optional[Sequence[tuple[bytes, int, bytes]]] = None) -> Iterator[tuple[str, bytes]]:
    """``count`` frames from ``seed``: ``(kind, frame bytes)``, the same sequence for the same arguments.

    Args:
        seed: the random seed.
        count: frames to make.
        ac: the BNG's MAC (the destination of every frame).
        macs: the client pool (default: 64 from :func:`pfrps.testing.fuzz_frames.pool_macs`); 10% of
            frames come from others.
        session_ids: session ids that frames mostly use (default: random ids 1..0xfffe).
        socket_safe: keep every frame within ``14..1514`` bytes (what a veth takes from a packet
            socket).
        live: ``(client MAC, session id, raw VLAN tags)`` of sessions the BNG granted, a
            sequence the caller may grow while iterating: half the frames then go to them.
    """
    g = _Gen(seed, macs if macs is not None else pool_macs(64, seed), ac, session_ids, live)
    yield from draw(g, KINDS, WEIGHTS, count, socket_safe)


def describe(frame: bytes) -> dict:
    """A short JSON-able description: VLAN tags, session id, PPP protocol name, control code, or
    the reason :func:`pfrps.ac.protocol.parse_frame` gives for a malformed frame."""
    m = p.parse_frame(frame)
    if isinstance(m, p.Malformed):
        return {"malformed": m.reason.value}
    if isinstance(m, p.Discovery):
        return {"discovery": m.code}
    d = {"vlans": len(m.vlan) // 4, "sid": m.session_id, "proto": _NAMES.get(m.protocol, f"0x{m.protocol:04x}")}
    if len(m.ppp) >= 3 and m.protocol != PPP_IPV6:
        d["code"] = m.ppp[2]
    return d


def _show(args: argparse.Namespace) -> int:
    for kind, f in generate(args.seed, args.count, socket_safe=args.socket_safe):
        print(json.dumps({"kind": kind, "len": len(f), **describe(f), "hex": f[:48].hex()}))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``show`` the frames of a seed as JSON lines."""
    ap, _ = show_parser("python -m tests.bng_fuzz_frames", __doc__.split("\n")[0], _show)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
