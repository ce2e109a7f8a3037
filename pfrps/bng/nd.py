"""Router Advertisement and Router Solicitation over a PPP link (IPv6 in PPP, protocol 0x0057).

After IPv6CP opens (RFC 5072), the link has only link-local addresses built from the
negotiated interface identifiers (:func:`link_local`, RFC 5072 section 5). The host then
configures a global address by SLAAC (RFC 4862) from the prefix in our Router Advertisement
(RFC 5072 section 5, RFC 4861 section 6). This module builds and parses those packets as whole
IPv6 packets (header included), as they travel in a PPP frame of protocol 0x0057.

Router Advertisement (:func:`build_ra`, RFC 4861 section 4.2)
    IPv6 hop limit 255; ICMPv6 type 134, code 0, checksum over the pseudo-header (RFC 4443
    2.3, RFC 8200 8.1); Cur Hop Limit 64; M=0 and O=0 (addresses by SLAAC, DNS from RDNSS, no
    DHCPv6); Reachable Time and Retrans Timer 0 (unspecified). Options, in this order:

    * Prefix Information (type 3, RFC 4861 4.6.2): A=1 (autonomous: SLAAC from this /64) and
      L=0. A PPP link has exactly one neighbour, the BNG, and no on-link destinations: with
      L=0 the host sends everything to its default router, which is what a point-to-point
      link does anyway, and no claim is made that other addresses of the prefix are on-link.
    * MTU (type 5, RFC 4861 4.6.4), when ``mtu`` is given (the negotiated PPP MRU).
    * Recursive DNS Server (type 25, RFC 8106 5.1), when ``dns6`` is not empty.

    No Source Link-Layer Address option: PPP has no link-layer addresses (RFC 4861 4.2:
    "MUST NOT be included" ... only when the link has addresses; RFC 5072 has none).
    The result is cross-checked against scapy's ``ICMPv6ND_RA`` / ``ICMPv6NDOptPrefixInfo`` /
    ``ICMPv6NDOptMTU`` / ``ICMPv6NDOptRDNSS`` in ``tests/unit/test_bng_nd.py``.

Router Solicitation (:func:`parse_rs`, RFC 4861 section 6.1.1 validity checks)
    Hop limit 255, next header 58 (no extension headers), ICMPv6 type 133, code 0, ICMP length
    at least 8, a valid checksum, every option of non-zero length and within the packet, and
    no Source Link-Layer Address option when the source is the unspecified address.
"""

from __future__ import annotations

import struct
from ipaddress import IPv6Address, IPv6Network
from typing import NamedTuple, Optional, Sequence, Union

__all__ = [
    "ALL_NODES", "ALL_ROUTERS", "LINK_LOCAL_PREFIX", "ICMPV6", "ND_RS", "ND_RA", "HOP_LIMIT",
    "OPT_SOURCE_LL", "OPT_PREFIX_INFO", "OPT_MTU", "OPT_RDNSS",
    "VALID_LIFETIME", "PREFERRED_LIFETIME", "DNS_LIFETIME", "CUR_HOP_LIMIT",
    "checksum", "icmp6_checksum", "link_local", "build_ra", "parse_rs", "build_rs",
    "RouterAdvertisement", "parse_ra",
]

ALL_NODES = IPv6Address("ff02::1")     # the destination of unsolicited RAs (RFC 4861 6.2.4)
ALL_ROUTERS = IPv6Address("ff02::2")   # the destination of RSs (RFC 4861 6.3.7)
LINK_LOCAL_PREFIX = IPv6Network("fe80::/64")
ICMPV6 = 58                            # IPv6 next header of ICMPv6
ND_RS, ND_RA = 133, 134                # ICMPv6 types (RFC 4861 4.1, 4.2)
HOP_LIMIT = 255                        # ND packets are sent and accepted only with 255 (RFC 4861 6.1)
OPT_SOURCE_LL, OPT_PREFIX_INFO, OPT_MTU, OPT_RDNSS = 1, 3, 5, 25
#: RFC 4861 6.2.1 defaults: AdvValidLifetime 30 days, AdvPreferredLifetime 7 days (seconds).
VALID_LIFETIME = 2_592_000
PREFERRED_LIFETIME = 604_800
#: RFC 8106 5.1: at least 3 * MaxRtrAdvInterval (600 s by default) by default (seconds).
DNS_LIFETIME = 1800
CUR_HOP_LIMIT = 64

_IP6 = struct.Struct("!IHBB16s16s")    # version/class/flow, payload length, next header, hop limit, src, dst
_RA = struct.Struct("!BBHBBHII")       # type, code, checksum, cur hop limit, flags, router lifetime, reachable, retrans
_PIO = struct.Struct("!BBBBIII16s")    # type, len, prefix length, flags, valid, preferred, reserved2, prefix
_MTU = struct.Struct("!BBHI")
_FLAG_L, _FLAG_A = 0x80, 0x40


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of
    ``data`` as big-endian 16-bit words (an odd length is padded with a zero byte)."""
    if len(data) & 1:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def icmp6_checksum(src: bytes, dst: bytes, icmp: bytes) -> int:
    """The ICMPv6 checksum of ``icmp`` (checksum field zero or not: a correct packet gives 0
    when its own checksum is included) over the IPv6 pseudo-header (RFC 8200 8.1)."""
    pseudo = src + dst + struct.pack("!I3xB", len(icmp), ICMPV6)
    return checksum(pseudo + icmp)


def link_local(ifid: bytes) -> IPv6Address:
    """The link-local address ``fe80::/64`` + ``ifid`` (RFC 5072 section 5, RFC 4291 2.5.6).

    Args:
        ifid: the 8-byte IPv6CP Interface-Identifier.

    Raises:
        ValueError: ``ifid`` is not 8 bytes, or all zeros (RFC 5072 4.1: never a valid identifier).
    """
    ifid = bytes(ifid)
    if len(ifid) != 8:
        raise ValueError(f"interface identifier of {len(ifid)} bytes, need 8")
    if ifid == bytes(8):
        raise ValueError("the all-zero interface identifier is not valid (RFC 5072 4.1)")
    return IPv6Address(b"\xfe\x80" + bytes(6) + ifid)


def _ipv6(src: IPv6Address, dst: IPv6Address, icmp: bytearray) -> bytes:
    s, d = src.packed, dst.packed
    struct.pack_into("!H", icmp, 2, icmp6_checksum(s, d, bytes(icmp)))
    return _IP6.pack(6 << 28, len(icmp), ICMPV6, HOP_LIMIT, s, d) + bytes(icmp)


def build_ra(src_ll: IPv6Address, dst: IPv6Address, prefix: IPv6Network, dns6: Sequence[IPv6Address] = (),
             mtu: Optional[int] = None, router_lifetime: int = 1800, *,
             valid_lifetime: int = VALID_LIFETIME, preferred_lifetime: int = PREFERRED_LIFETIME,
             dns_lifetime: int = DNS_LIFETIME) -> bytes:
    """A whole IPv6 packet carrying a Router Advertisement for ``prefix`` (see the module docstring).

    Args:
        src_ll: our link-local address (RFC 4861 4.2: the source MUST be link-local),
            e.g. ``link_local(our IPv6CP interface identifier)``.
        dst: ``ALL_NODES`` (unsolicited) or the soliciting host's link-local address.
        prefix: the subscriber's prefix; for SLAAC a /64 (RFC 4862 5.5.3 ignores other lengths
            on Ethernet-like links; RFC 5072 identifiers are 64 bits).
        dns6: recursive DNS servers (RFC 8106); none: no RDNSS option.
        mtu: the link MTU in bytes (1280..65535, RFC 8200 5), or None for no MTU option.
        router_lifetime: seconds, 0..9000 (RFC 4861 6.2.1 caps AdvDefaultLifetime at 9000);
            0 means "not a default router" (used when the session ends).
        valid_lifetime, preferred_lifetime: seconds of the Prefix Information option;
            0xffffffff is infinity; preferred must not exceed valid (RFC 4861 6.2.1).
        dns_lifetime: seconds of the RDNSS option (RFC 8106 5.1).

    Raises:
        ValueError: a source that is not link-local, an argument outside its range, more than
            127 DNS servers (the RDNSS Length octet).
    """
    if not src_ll.is_link_local:
        raise ValueError(f"RA source {src_ll} is not link-local (RFC 4861 4.2)")
    if not 0 <= router_lifetime <= 9000:
        raise ValueError(f"router lifetime {router_lifetime} s is outside 0..9000 (RFC 4861 6.2.1)")
    if not 0 <= preferred_lifetime <= valid_lifetime <= 0xFFFFFFFF:
        raise ValueError(f"lifetimes preferred {preferred_lifetime} s, valid {valid_lifetime} s: need "
                         "0 <= preferred <= valid <= 0xffffffff")
    if mtu is not None and not 1280 <= mtu <= 0xFFFF:
        raise ValueError(f"MTU {mtu} is outside 1280..65535 (RFC 8200 5)")
    if len(dns6) > 127:
        raise ValueError(f"{len(dns6)} DNS servers, at most 127 in one RDNSS option")
    if not 0 <= dns_lifetime <= 0xFFFFFFFF:
        raise ValueError(f"DNS lifetime {dns_lifetime} s is outside 0..0xffffffff")
    icmp = bytearray(_RA.pack(ND_RA, 0, 0, CUR_HOP_LIMIT, 0, router_lifetime, 0, 0))
    icmp += _PIO.pack(OPT_PREFIX_INFO, 4, prefix.prefixlen, _FLAG_A, valid_lifetime, preferred_lifetime, 0,
                      prefix.network_address.packed)
    if mtu is not None:
        icmp += _MTU.pack(OPT_MTU, 1, 0, mtu)
    if dns6:
        icmp += struct.pack("!BBHI", OPT_RDNSS, 1 + 2 * len(dns6), 0, dns_lifetime)
        icmp += b"".join(IPv6Address(a).packed for a in dns6)
    return _ipv6(src_ll, dst, icmp)


def build_rs(src: IPv6Address, dst: IPv6Address = ALL_ROUTERS) -> bytes:
    """A whole IPv6 packet carrying a Router Solicitation without options (client side, RFC 4861
    4.1: no Source Link-Layer Address option on PPP)."""
    return _ipv6(src, dst, bytearray(struct.pack("!BBHI", ND_RS, 0, 0, 0)))


def _icmp(packet: bytes, icmp_type: int) -> Optional[tuple[bytes, bytes, bytes]]:
    """``(src, dst, icmp message)`` of an IPv6 packet carrying an ND message of ``icmp_type``
    that passes the RFC 4861 validity checks common to RS and RA, else None."""
    n = len(packet)
    if n < 40:
        return None
    vtf, plen, nh, hlim, src, dst = _IP6.unpack_from(packet)
    if vtf >> 28 != 6 or nh != ICMPV6 or hlim != HOP_LIMIT or 40 + plen > n:
        return None
    icmp = packet[40:40 + plen]
    if len(icmp) < 8 or icmp[0] != icmp_type or icmp[1] != 0:
        return None
    if icmp6_checksum(src, dst, icmp) != 0:
        return None
    return src, dst, icmp


def _options(data: bytes) -> Optional[list[tuple[int, bytes]]]:
    """ND options ``(type, whole option bytes)``, or None when one has length 0 or runs past the end."""
    out = []
    off = 0
    while off < len(data):
        if len(data) - off < 2 or data[off + 1] == 0:
            return None
        end = off + 8 * data[off + 1]
        if end > len(data):
            return None
        out.append((data[off], data[off:end]))
        off = end
    return out


def parse_rs(packet: bytes) -> bool:
    """Is ``packet`` (a whole IPv6 packet, bytes-like) a valid Router Solicitation (RFC 4861
    6.1.1)? Never raises. Octets past the IPv6 Payload Length are ignored."""
    r = _icmp(bytes(packet), ND_RS)
    if r is None:
        return False
    src, _dst, icmp = r
    opts = _options(icmp[8:])
    if opts is None:
        return False
    return not (src == bytes(16) and any(t == OPT_SOURCE_LL for t, _ in opts))


class RouterAdvertisement(NamedTuple):
    """A parsed RA (client side, tests): the fields this BNG sends."""

    src: IPv6Address
    dst: IPv6Address
    cur_hop_limit: int
    managed: bool
    other: bool
    router_lifetime: int
    prefixes: tuple[tuple[IPv6Network, bool, bool, int, int], ...]  # (prefix, L, A, valid, preferred)
    mtu: Optional[int]
    dns6: tuple[IPv6Address, ...]
    dns_lifetime: Optional[int]


def parse_ra(packet: bytes) -> Union[RouterAdvertisement, str]:
    """Parse a Router Advertisement (a whole IPv6 packet); never raises; ``str`` = why it is not a
    valid one (RFC 4861 6.1.2: hop limit 255, link-local source, code 0, checksum, ICMP length
    at least 16, options of non-zero length)."""
    data = bytes(packet)
    r = _icmp(data, ND_RA)
    if r is None:
        return "not an IPv6 ICMPv6 type 134 code 0 packet with hop limit 255 and a valid checksum"
    src, dst, icmp = r
    if len(icmp) < 16:
        return f"RA of {len(icmp)} bytes, need 16"
    s = IPv6Address(src)
    if not s.is_link_local:
        return f"source {s} is not link-local"
    opts = _options(icmp[16:])
    if opts is None:
        return "an option of length 0 or past the end"
    _t, _c, _ck, chl, flags, life, _reach, _retrans = _RA.unpack_from(icmp)
    prefixes = []
    mtu = dns_life = None
    dns: list[IPv6Address] = []
    for t, o in opts:
        if t == OPT_PREFIX_INFO and len(o) == 32:
            _, _, plen, pflags, valid, pref, _, pfx = _PIO.unpack(o)
            if plen > 128:
                return f"prefix length {plen}"
            net = IPv6Network((int.from_bytes(pfx, "big") >> (128 - plen) << (128 - plen), plen)) if plen else \
                IPv6Network("::/0")
            prefixes.append((net, bool(pflags & _FLAG_L), bool(pflags & _FLAG_A), valid, pref))
        elif t == OPT_MTU and len(o) == 8:
            mtu = _MTU.unpack(o)[3]
        elif t == OPT_RDNSS and len(o) >= 24 and (len(o) - 8) % 16 == 0:
            dns_life = struct.unpack_from("!I", o, 4)[0]
            dns += [IPv6Address(o[i:i + 16]) for i in range(8, len(o), 16)]
    return RouterAdvertisement(s, IPv6Address(dst), chl, bool(flags & 0x80), bool(flags & 0x40), life,
                               tuple(prefixes), mtu, tuple(dns), dns_life)
