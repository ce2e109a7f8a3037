"""pfrps.bng.nd: Router Advertisement / Solicitation over PPP, cross-checked against scapy."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

import pytest
from scapy.layers.inet6 import (
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrHopByHop,
)

from pfrps.bng import nd

LL = nd.link_local(bytes.fromhex("5254000000000001"))
PEER = nd.link_local(bytes.fromhex("0211223344556677"))
P64 = IPv6Network("2001:db8:100:7::/64")
DNS = (IPv6Address("2001:db8::53"), IPv6Address("2001:db8::5353"))


def scapy_ra(src, dst, prefix, dns6=(), mtu=None, life=1800, valid=nd.VALID_LIFETIME, pref=nd.PREFERRED_LIFETIME,
             dns_life=nd.DNS_LIFETIME):
    p = (IPv6(src=str(src), dst=str(dst), hlim=255)
         / ICMPv6ND_RA(chlim=64, M=0, O=0, H=0, prf=0, P=0, routerlifetime=life, reachabletime=0, retranstimer=0)
         / ICMPv6NDOptPrefixInfo(prefixlen=prefix.prefixlen, L=0, A=1, validlifetime=valid,
                                 preferredlifetime=pref, prefix=str(prefix.network_address)))
    if mtu is not None:
        p = p / ICMPv6NDOptMTU(mtu=mtu)
    if dns6:
        p = p / ICMPv6NDOptRDNSS(lifetime=dns_life, dns=[str(a) for a in dns6])
    return bytes(p)


# (description, build_ra kwargs)
RA_CASES = [
    ("prefix only, to all nodes", dict(src_ll=LL, dst=nd.ALL_NODES, prefix=P64)),
    ("solicited, unicast to the peer", dict(src_ll=LL, dst=PEER, prefix=P64)),
    ("with MTU", dict(src_ll=LL, dst=nd.ALL_NODES, prefix=P64, mtu=1492)),
    ("with one DNS server", dict(src_ll=LL, dst=nd.ALL_NODES, prefix=P64, dns6=DNS[:1])),
    ("with MTU and two DNS servers", dict(src_ll=LL, dst=nd.ALL_NODES, prefix=P64, dns6=DNS, mtu=1492)),
    ("router lifetime 0 (leaving)", dict(src_ll=LL, dst=nd.ALL_NODES, prefix=P64, router_lifetime=0)),
    ("short lifetimes", dict(src_ll=LL, dst=nd.ALL_NODES, prefix=P64, valid_lifetime=3600,
                             preferred_lifetime=1800, dns_lifetime=600, dns6=DNS)),
    ("infinite lifetimes", dict(src_ll=LL, dst=nd.ALL_NODES, prefix=P64, valid_lifetime=0xFFFFFFFF,
                                preferred_lifetime=0xFFFFFFFF)),
]


@pytest.mark.parametrize("desc,kw", RA_CASES, ids=[c[0] for c in RA_CASES])
def test_ra_bytes_equal_scapys(desc, kw):
    ours = nd.build_ra(**kw)
    want = scapy_ra(kw["src_ll"], kw["dst"], kw["prefix"], kw.get("dns6", ()), kw.get("mtu"),
                    kw.get("router_lifetime", 1800), kw.get("valid_lifetime", nd.VALID_LIFETIME),
                    kw.get("preferred_lifetime", nd.PREFERRED_LIFETIME), kw.get("dns_lifetime", nd.DNS_LIFETIME))
    assert ours == want, desc


def test_scapy_dissects_our_ra_field_by_field():
    b = nd.build_ra(LL, nd.ALL_NODES, P64, DNS, 1492, 900)
    p = IPv6(b)
    assert (p.version, p.hlim, p.nh, p.plen, p.src, p.dst) == (6, 255, 58, len(b) - 40, str(LL), "ff02::1")
    ra = p[ICMPv6ND_RA]
    assert (ra.type, ra.code, ra.chlim, ra.M, ra.O, ra.routerlifetime, ra.reachabletime, ra.retranstimer) == \
        (134, 0, 64, 0, 0, 900, 0, 0)
    pio = p[ICMPv6NDOptPrefixInfo]
    assert (pio.len, pio.prefixlen, pio.L, pio.A, pio.prefix) == (4, 64, 0, 1, "2001:db8:100:7::")
    assert (pio.validlifetime, pio.preferredlifetime) == (nd.VALID_LIFETIME, nd.PREFERRED_LIFETIME)
    assert p[ICMPv6NDOptMTU].mtu == 1492
    rd = p[ICMPv6NDOptRDNSS]
    assert (rd.len, rd.lifetime, rd.dns) == (5, nd.DNS_LIFETIME, [str(a) for a in DNS])
    # scapy's own checksum of the same packet equals ours
    q = IPv6(b)
    del q[ICMPv6ND_RA].cksum
    assert IPv6(bytes(q))[ICMPv6ND_RA].cksum == ra.cksum
    assert nd.icmp6_checksum(LL.packed, nd.ALL_NODES.packed, b[40:]) == 0


def test_parse_ra_round_trip():
    r = nd.parse_ra(nd.build_ra(LL, PEER, P64, DNS, 1480, 600))
    assert r == nd.RouterAdvertisement(LL, PEER, 64, False, False, 600,
                                       ((P64, False, True, nd.VALID_LIFETIME, nd.PREFERRED_LIFETIME),),
                                       1480, DNS, nd.DNS_LIFETIME)
    assert nd.parse_ra(scapy_ra(LL, PEER, P64)).dns6 == ()
    bad = bytearray(nd.build_ra(LL, PEER, P64))
    bad[-1] ^= 1
    assert isinstance(nd.parse_ra(bytes(bad)), str)
    assert isinstance(nd.parse_ra(nd.build_rs(PEER)), str)


BAD_RA_ARGS = [
    ("global source", dict(src_ll=IPv6Address("2001:db8::1")), "not link-local"),
    ("router lifetime 9001", dict(router_lifetime=9001), "router lifetime"),
    ("preferred > valid", dict(valid_lifetime=10, preferred_lifetime=11), "lifetimes"),
    ("MTU 1279", dict(mtu=1279), "MTU 1279"),
    ("128 DNS servers", dict(dns6=[IPv6Address(i + 1) for i in range(128)]), "128 DNS"),
]


@pytest.mark.parametrize("desc,kw,word", BAD_RA_ARGS, ids=[c[0] for c in BAD_RA_ARGS])
def test_build_ra_rejects_bad_arguments(desc, kw, word):
    args = dict(src_ll=LL, dst=nd.ALL_NODES, prefix=P64) | kw
    with pytest.raises(ValueError, match=word):
        nd.build_ra(**args)


# -- Router Solicitation --------------------------------------------------------------------------
def _rs(**kw):
    ip = dict(src=str(PEER), dst="ff02::2", hlim=255) | kw.pop("ip", {})
    return bytes(IPv6(**ip) / ICMPv6ND_RS(**kw))


def _mutate(b, i, v):
    b = bytearray(b)
    b[i] = v
    return bytes(b)


GOOD_RS = _rs()
RS_CASES = [
    ("ours", nd.build_rs(PEER), True),
    ("scapy's", GOOD_RS, True),
    ("from the unspecified address", _rs(ip=dict(src="::")), True),
    ("with a Source Link-Layer option", bytes(IPv6(src=str(PEER), dst="ff02::2", hlim=255) / ICMPv6ND_RS()
                                              / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")), True),
    ("Ethernet padding past the payload length", GOOD_RS + bytes(6), True),
    ("unspecified source with a Source Link-Layer option (RFC 4861 6.1.1)",
     bytes(IPv6(src="::", dst="ff02::2", hlim=255) / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")),
     False),
    ("hop limit 64", _rs(ip=dict(hlim=64)), False),
    ("hop limit 254", _rs(ip=dict(hlim=254)), False),
    ("bad checksum", _rs(cksum=0x1234), False),
    ("code 1", _rs(code=1), False),
    ("an RA", nd.build_ra(LL, nd.ALL_NODES, P64), False),
    ("type 135 (NS)", _mutate(GOOD_RS, 40, 135), False),
    ("IPv4 version nibble", _mutate(GOOD_RS, 0, 0x45), False),
    ("behind a hop-by-hop header", bytes(IPv6(src=str(PEER), dst="ff02::2", hlim=255) / IPv6ExtHdrHopByHop()
                                         / ICMPv6ND_RS()), False),
    ("payload length past the end", GOOD_RS[:-1], False),
    ("ICMP shorter than 8 bytes", bytes(IPv6(src=str(PEER), dst="ff02::2", hlim=255, nh=58, plen=4)) + GOOD_RS[40:44],
     False),
    ("an option of length 0", bytes(IPv6(src=str(PEER), dst="ff02::2", hlim=255) / ICMPv6ND_RS()
                                    / ICMPv6NDOptSrcLLAddr(len=0)), False),
    ("an option past the end", bytes(IPv6(src=str(PEER), dst="ff02::2", hlim=255) / ICMPv6ND_RS()
                                     / ICMPv6NDOptSrcLLAddr(len=2)), False),
    ("empty", b"", False),
    ("39 bytes", GOOD_RS[:39], False),
]


@pytest.mark.parametrize("desc,packet,want", RS_CASES, ids=[c[0] for c in RS_CASES])
def test_parse_rs(desc, packet, want):
    assert nd.parse_rs(packet) is want, desc
    assert nd.parse_rs(memoryview(packet)) is want


def test_parse_rs_never_raises_on_prefixes_and_mutations():
    import random  # noqa: PLC0415

    rng = random.Random(4861)
    for cut in range(len(GOOD_RS)):
        assert nd.parse_rs(GOOD_RS[:cut]) is False
    hits = 0
    for _ in range(3000):
        b = bytearray(GOOD_RS)
        b[rng.randrange(len(b))] = rng.randrange(256)
        hits += nd.parse_rs(bytes(b))
    assert hits < 3000


# -- link-local addresses -------------------------------------------------------------------------
LL_CASES = [
    (bytes.fromhex("0211223344556677"), "fe80::211:2233:4455:6677"),
    (bytes.fromhex("0000000000000001"), "fe80::1"),
    (b"\xff" * 8, "fe80::ffff:ffff:ffff:ffff"),
]


@pytest.mark.parametrize("ifid,want", LL_CASES)
def test_link_local(ifid, want):
    a = nd.link_local(ifid)
    assert a == IPv6Address(want) and a.is_link_local and a in nd.LINK_LOCAL_PREFIX


@pytest.mark.parametrize("ifid,word", [(bytes(7), "7 bytes"), (bytes(9), "9 bytes"), (bytes(8), "all-zero")])
def test_link_local_rejects(ifid, word):
    with pytest.raises(ValueError, match=word):
        nd.link_local(ifid)


def test_checksum_rfc1071_example():
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (ones' complement), checksum 220d
    assert nd.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert nd.checksum(b"\x01") == ~0x0100 & 0xFFFF
