"""bng_access and bng_uplink through BPF_PROG_TEST_RUN, katran/cilium style: per row the
input frame, the expected verdict, the expected output frame (or None: not compared) and the
verdict counter it must bump; afterwards every ``bng_stats`` slot and every session's counters
equal what the rows predict, exactly.

Inputs are built byte by byte; the expected encapsulated frames with scapy
(Ether/Dot1AD/Dot1Q/PPPoE/PPP/IP), so the two encodings check each other. Every run happens in
a forked child inside a fresh namespace of the test's own (``bngv-<random>``): a redirect, a
FIB lookup and the interface indexes are that namespace's, never the host's.

The namespace: acc0 (access), up0 (uplink, 192.0.2.1/24 2001:db8:1::1/64, permanent
neighbours .2/::2), sm0 (MTU 1280, 198.51.100.1/24 2001:db8:2::1/64, neighbours .2/::2), a
route for the pool 10.100.0.0/24 through acc0 (as pfrps-bng adds), a blackhole 10.9.0.0/16,
forwarding on; a second access port acc1 (MAC ACC1_MAC; the DataPlane has ``("acc0", "acc1")``,
bng_config names acc0) with two sessions (S5, S6) whose access_ifindex is acc1's, while S0..S4
have 0 (= acc0). Access rows run with the test run's ingress interface acc0
(``xdp_md.ingress_ifindex``), the acc1 rows with acc1, uplink rows with the namespace's lo.
BPF_PROG_TEST_RUN reports XDP_REDIRECT but not its target: the last test runs the cross-port
cases in live-frame mode and sees on which veth peer each frame arrives.
"""

from __future__ import annotations

import collections
import ctypes
import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Network

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6ND_RS, IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE

from pfrps import bpfsys
from pfrps.bng.dataplane import (
    LAYOUTS, MAP_NAMES, STATS, BngSession, DataPlane, SessionCounters, SessionEntry, SessionKey,
)
from pfrps.bpfload import CompiledModule, builtin_program
from pfrps.topology import _write_sysctl
from pfrps.xdp.attach import Attachments
from tests.bng_frames import hop
from tests.xdp_helpers import fresh_netns

pytestmark = pytest.mark.root

DROP, PASS, TX, REDIRECT = 1, 2, 3, 4
AC_MAC = "02:00:00:00:0a:01"
ACC1_MAC = "02:00:00:00:0a:11"     # acc1's own MAC: its sessions' ac_mac (as pfrps-bng's port MACs)
NEXT_HOP = "02:00:00:00:0b:02"     # 192.0.2.2 / 2001:db8:1::2 behind up0 (the Internet router)
SMALL_HOP = "02:00:00:00:0b:03"    # 198.51.100.2 / 2001:db8:2::2 behind sm0 (MTU 1280)
INET4, INET6 = "192.0.2.2", "2001:db8:1::2"


@dataclass(frozen=True)
class Sub:
    mac: str
    sid: int
    tags: tuple[tuple[int, int], ...]
    v4: str | None
    v6: str | None          # the /64
    mru: int = 1492
    port: str = "acc0"      # acc1: a session of the second access port (its access_ifindex)
    ac: str = AC_MAC        # our MAC towards it (upstream dst, downstream src)

    @property
    def key(self) -> SessionKey:
        vids = [v for _, v in self.tags] + [0, 0]
        return SessionKey(bytes.fromhex(self.mac.replace(":", "")), self.sid, vids[0], vids[1])

    def entry(self, access_ifindex: int = 0) -> SessionEntry:
        tpids = [t for t, _ in self.tags] + [0, 0]
        return SessionEntry(self.key, bytes.fromhex(self.ac.replace(":", "")), tpids[0], tpids[1],
                            IPv4Address(self.v4) if self.v4 else None,
                            IPv6Network(self.v6) if self.v6 else None, self.mru, access_ifindex=access_ifindex)

    def addr6(self, host: int = 1) -> str:
        return str(IPv6Network(self.v6)[host])


SUBS = [
    Sub("02:00:00:00:00:10", 0x0001, (), "10.100.0.10", "2001:db8:100:10::/64"),
    Sub("02:00:00:00:00:11", 0x0002, ((0x8100, 100),), "10.100.0.11", "2001:db8:100:11::/64"),
    Sub("02:00:00:00:00:12", 0x1234, ((0x88A8, 200), (0x8100, 300)), "10.100.0.12", "2001:db8:100:12::/64",
        mru=1400),
    Sub("02:00:00:00:00:13", 0xFFFE, ((0x8100, 201), (0x8100, 4094)), "10.100.0.13", "2001:db8:100:13::/64"),
    Sub("02:00:00:00:00:14", 0x0005, (), None, None),   # LCP up, no IPCP/IPv6CP yet
    # on the second access port acc1 (access_ifindex = acc1's; S0..S4 have 0 = acc0, bng_config's)
    Sub("02:00:00:00:00:15", 0x0006, (), "10.100.0.15", "2001:db8:100:15::/64", port="acc1", ac=ACC1_MAC),
    Sub("02:00:00:00:00:16", 0x0007, ((0x8100, 150),), "10.100.0.16", "2001:db8:100:16::/64", port="acc1",
        ac=ACC1_MAC),
]
S0, S1, S2, S3, S4, S5, S6 = SUBS


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


# -- frame builders ------------------------------------------------------------------------------
def ip4(src: str, dst: str, ttl: int = 64, size: int = 0, **kw) -> IP:
    """An IPv4/UDP packet, ``size`` bytes in all when given."""
    p = IP(src=src, dst=dst, ttl=ttl, id=0x4242, **kw) / UDP(sport=4000, dport=5000)
    pad = max(size - len(p), 0) if size else 16
    return IP(bytes(p / (b"u" * pad)))


def ip6(src: str, dst: str, hlim: int = 64, size: int = 0) -> IPv6:
    p = IPv6(src=src, dst=dst, hlim=hlim) / UDP(sport=4000, dport=5000)
    pad = max(size - len(p), 0) if size else 16
    return IPv6(bytes(p / (b"v" * pad)))


def pppoe_in(sub: Sub, payload: bytes, proto: int = 0x0021, *, tags=None, src: str | None = None,
             sid: int | None = None, ver_type: int = 0x11, code: int = 0, length: int | None = None,
             pad: bytes = b"") -> bytes:
    """An upstream PPPoE session frame, byte by byte (the program's view of the wire)."""
    tags = sub.tags if tags is None else tags
    h = mac(sub.ac) + mac(src or sub.mac)
    for tpid, vid in tags:
        h += struct.pack("!HH", tpid, vid)
    h += struct.pack("!HBBHHH", 0x8864, ver_type, code, sub.sid if sid is None else sid,
                     len(payload) + 2 if length is None else length, proto)
    return h + bytes(payload) + pad


def pppoe_out(sub: Sub, ip, pad: bytes = b"") -> bytes:
    """The downstream frame bng_uplink must emit for ``ip`` (already TTL-decremented), by scapy."""
    proto = 0x0021 if ip.version == 4 else 0x0057
    types = [t for t, _ in sub.tags] + [0x8864]
    p = Ether(dst=sub.mac, src=sub.ac, type=types[0])
    for i, (tpid, vid) in enumerate(sub.tags):
        p = p / (Dot1AD if tpid == 0x88A8 else Dot1Q)(vlan=vid, type=types[i + 1])
    return bytes(p / PPPoE(sessionid=sub.sid) / PPP(proto=proto) / ip) + pad


def plain(dst: str, src: str, ip, pad: bytes = b"") -> bytes:
    return bytes(Ether(dst=dst, src=src, type=0x0800 if ip.version == 4 else 0x86DD) / ip) + pad


def ip_len(ip) -> int:
    return len(bytes(ip))


# -- the namespace, the programs, the sessions ---------------------------------------------------
@pytest.fixture(scope="module")
def env():
    pairs = (("acc0", "accp"), ("up0", "upp"), ("sm0", "smp"), ("acc1", "acc1p"))
    with fresh_netns("bng-verdicts", pairs=pairs, ipv6=True, macs={"acc1": ACC1_MAC}) as box:
        for knob in ("net/ipv4/conf/all/forwarding", "net/ipv6/conf/all/forwarding"):
            _write_sysctl(box.name, knob, "1")
        with box.ipr() as ipr:
            up, sm, acc = box.ifindex("up0"), box.ifindex("sm0"), box.ifindex("acc0")
            ipr.link("set", index=sm, mtu=1280)
            for idx, a4, a6 in ((up, "192.0.2.1", "2001:db8:1::1"), (sm, "198.51.100.1", "2001:db8:2::1")):
                ipr.addr("add", index=idx, address=a4, prefixlen=24)
                ipr.addr("add", index=idx, address=a6, prefixlen=64)
            for idx, a4, a6, lladdr in ((up, INET4, INET6, NEXT_HOP), (sm, "198.51.100.2", "2001:db8:2::2", SMALL_HOP)):
                ipr.neigh("add", dst=a4, lladdr=lladdr, ifindex=idx, state=0x80)
                ipr.neigh("add", dst=a6, lladdr=lladdr, ifindex=idx, state=0x80, family=socket.AF_INET6)
            ipr.route("add", dst="10.100.0.0", dst_len=24, oif=acc)
            ipr.route("add", dst="10.9.0.0", dst_len=16, type="blackhole")
        att = Attachments(netns=box.name)
        try:
            dp = DataPlane(("acc0", "acc1"), "up0")
            dp.load(att)
            for s in SUBS:
                dp.add(s.entry(box.ifindex(s.port) if s.port != "acc0" else 0))
            yield box, dp
        finally:
            att.close()


def access_rows(box):
    acc_mac, up_mac = box.mac("acc0"), box.mac("up0")

    def fwd(ip):
        return plain(NEXT_HOP, up_mac, hop(ip))

    def kernel(sub, ip, pad=b""):
        return plain(acc_mac, sub.mac, ip, pad)

    rows = []
    # (description, frame, verdict, expected output or None, stat, session counted up or None, bytes
    #  [, session counted down (hairpin)])
    for sub, what in ((S0, "untagged"), (S1, "one 802.1Q tag"), (S2, "QinQ 0x88a8/0x8100"),
                      (S3, "QinQ 0x8100/0x8100")):
        p4 = ip4(sub.v4, INET4)
        p6 = ip6(sub.addr6(), INET6)
        rows.append((f"{what}: IPv4 decapsulated, routed to up0, TTL 63", pppoe_in(sub, bytes(p4)), REDIRECT,
                     fwd(p4), "up_forwarded", sub, ip_len(p4)))
        rows.append((f"{what}: IPv6 decapsulated, routed to up0, hop limit 63", pppoe_in(sub, bytes(p6), 0x0057),
                     REDIRECT, fwd(p6), "up_forwarded", sub, ip_len(p6)))
    p = ip4(S0.v4, INET4, options=b"\x01\x01\x01\x00")
    rows.append(("IPv4 with options (IHL 6) forwarded whole", pppoe_in(S0, bytes(p)), REDIRECT, fwd(p),
                 "up_forwarded", S0, ip_len(p)))
    p = IP(bytes(IP(src=S0.v4, dst=INET4, id=1) / UDP(sport=1, dport=2)))
    rows.append(("a 28-byte IPv4 packet in a padded 60-byte frame: forwarded, padding kept",
                 pppoe_in(S0, bytes(p), pad=bytes(10)), REDIRECT, fwd(p) + bytes(10), "up_forwarded", S0, 28))
    # anti-spoofing
    p = ip4("10.100.0.99", INET4)
    rows.append(("IPv4 from another address: dropped", pppoe_in(S0, bytes(p)), DROP, None, "up_spoofed", None, 0))
    p = ip4(S1.v4, INET4)
    rows.append(("IPv4 from another session's address: dropped", pppoe_in(S0, bytes(p)), DROP, None,
                 "up_spoofed", None, 0))
    p = ip6("2001:db8:100:99::1", INET6)
    rows.append(("IPv6 from another /64: dropped", pppoe_in(S1, bytes(p), 0x0057), DROP, None, "up_spoofed", None, 0))
    p = ip4("0.0.0.0", INET4)
    rows.append(("IPv4 (even from 0.0.0.0) on a session without IPCP: dropped", pppoe_in(S4, bytes(p)), DROP, None,
                 "up_spoofed", None, 0))
    p = ip6("2001:db8:100:10::1", INET6)
    rows.append(("IPv6 on a session without IPv6CP: dropped", pppoe_in(S4, bytes(p), 0x0057), DROP, None,
                 "up_spoofed", None, 0))
    # control and unknown: intact to the stack
    f = pppoe_in(S0, bytes(ip4(S0.v4, INET4)), sid=0x0099)
    rows.append(("unknown session id: passed intact (the worker sends PADT)", f, PASS, f, "up_no_session", None, 0))
    f = pppoe_in(S0, bytes(ip4(S0.v4, INET4)), src="02:00:00:00:00:99")
    rows.append(("unknown MAC: passed intact", f, PASS, f, "up_no_session", None, 0))
    f = pppoe_in(S1, bytes(ip4(S1.v4, INET4)), tags=())
    rows.append(("S1's MAC and id without its VLAN: passed (not its session)", f, PASS, f, "up_no_session", None, 0))
    f = pppoe_in(S2, bytes(ip4(S2.v4, INET4)), tags=((0x8100, 200), (0x8100, 300)))
    rows.append(("S2's VLAN ids under 0x8100 instead of 0x88a8: passed", f, PASS, f, "up_no_session", None, 0))
    f = pppoe_in(S0, bytes(ip4(S0.v4, INET4)))
    f = mac("02:00:00:00:0a:02") + f[6:]
    rows.append(("a session frame to another AC's MAC: passed", f, PASS, f, "up_no_session", None, 0))
    f = pppoe_in(S1, bytes(ip4(S1.v4, INET4)), tags=((0x8100, 101),))
    rows.append(("S1 on another VLAN: passed", f, PASS, f, "up_no_session", None, 0))
    f = pppoe_in(S0, b"\x09\x01\x00\x08\x11\x22\x33\x44", proto=0xC021)
    rows.append(("LCP Echo-Request: passed intact", f, PASS, f, "up_to_stack", None, 0))
    f = pppoe_in(S2, b"\x01\x01\x00\x0a\x03\x06\x00\x00\x00\x00", proto=0x8021)
    rows.append(("IPCP Configure-Request (QinQ): passed intact", f, PASS, f, "up_to_stack", None, 0))
    f = pppoe_in(S0, b"\x01\x05\x00\x04", proto=0xC023)
    rows.append(("PAP: passed intact", f, PASS, f, "up_to_stack", None, 0))
    rs = IPv6(src="fe80::1", dst="ff02::2", hlim=255) / ICMPv6ND_RS()
    f = pppoe_in(S1, bytes(rs), 0x0057)
    rows.append(("IPv6 Router Solicitation from fe80::: passed intact", f, PASS, f, "up_to_stack", None, 0))
    ns = IPv6(src=S0.addr6(), dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt="2001:db8:100:10::99")
    f = pppoe_in(S0, bytes(ns), 0x0057)
    rows.append(("IPv6 ND to a multicast group from the global address: passed", f, PASS, f, "up_to_stack",
                 None, 0))
    ns = IPv6(src=S0.addr6(), dst="fe80::1", hlim=255) / ICMPv6ND_NS(tgt="fe80::1")
    f = pppoe_in(S0, bytes(ns), 0x0057)
    rows.append(("IPv6 to a link-local destination: passed", f, PASS, f, "up_to_stack", None, 0))
    f = bytes(Ether(src=S0.mac, dst="ff:ff:ff:ff:ff:ff", type=0x8863)) + b"\x11\x09\x00\x00\x00\x04\x01\x01\x00\x00"
    rows.append(("PADI (discovery 0x8863): passed", f, PASS, f, "up_discovery", None, 0))
    f = pppoe_in(S1, b"", tags=S1.tags)[:12] + b"\x81\x00\x00\x64\x88\x63" + b"\x11\x09\x00\x00\x00\x00"
    rows.append(("PADI on a VLAN: passed", f, PASS, f, "up_discovery", None, 0))
    f = bytes(Ether(src=S0.mac, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.100.0.10", pdst="10.100.0.1"))
    rows.append(("ARP: passed", f, PASS, f, "up_other", None, 0))
    f = plain(AC_MAC, S0.mac, ip4(S0.v4, INET4))
    rows.append(("plain IPv4 (not PPPoE): passed", f, PASS, f, "up_other", None, 0))
    f = pppoe_in(S3, bytes(ip4(S3.v4, INET4)), tags=((0x88A8, 1), (0x8100, 2), (0x8100, 3)))
    rows.append(("three tags: passed", f, PASS, f, "up_other", None, 0))
    # decapsulated to the kernel
    p = ip4(S0.v4, INET4, ttl=1)
    rows.append(("IPv4 TTL 1: decapsulated to the kernel (time exceeded)", pppoe_in(S0, bytes(p)), PASS,
                 kernel(S0, p), "up_ttl", S0, ip_len(p)))
    p = ip6(S2.addr6(), INET6, hlim=1)
    rows.append(("IPv6 hop limit 1 (QinQ): decapsulated to the kernel", pppoe_in(S2, bytes(p), 0x0057), PASS,
                 kernel(S2, p), "up_ttl", S2, ip_len(p)))
    p = ip4(S1.v4, "192.0.2.3")
    rows.append(("IPv4 to a next hop with no neighbour: decapsulated to the kernel (it resolves)",
                 pppoe_in(S1, bytes(p)), PASS, kernel(S1, p), "up_no_neigh", S1, ip_len(p)))
    p = ip6(S3.addr6(), "2001:db8:1::3")
    rows.append(("IPv6 with no neighbour (QinQ 0x8100): decapsulated to the kernel", pppoe_in(S3, bytes(p), 0x0057),
                 PASS, kernel(S3, p), "up_no_neigh", S3, ip_len(p)))
    p = ip4(S0.v4, "198.51.100.2", size=1400)
    rows.append(("IPv4 of 1400 bytes to a 1280-MTU egress: decapsulated to the kernel (fragments / ICMP)",
                 pppoe_in(S0, bytes(p)), PASS, kernel(S0, p), "up_frag_needed", S0, 1400))
    p = ip6(S1.addr6(), "2001:db8:2::2", size=1400)
    rows.append(("IPv6 of 1400 bytes to a 1280-MTU egress: decapsulated to the kernel (packet too big)",
                 pppoe_in(S1, bytes(p), 0x0057), PASS, kernel(S1, p), "up_frag_needed", S1, 1400))
    p = ip4(S0.v4, "198.51.100.2", size=1280)
    rows.append(("IPv4 of exactly 1280 bytes to the 1280-MTU egress: forwarded", pppoe_in(S0, bytes(p)), REDIRECT,
                 plain(SMALL_HOP, box.mac("sm0"), hop(p)), "up_forwarded", S0, 1280))
    p = ip4(S0.v4, "10.9.0.1")
    rows.append(("IPv4 to a blackhole: dropped", pppoe_in(S0, bytes(p)), DROP, None, "up_no_route", S0, ip_len(p)))
    p = ip4(S0.v4, "10.100.0.99")
    rows.append(("IPv4 to a pool address of no session (the FIB says acc0): dropped", pppoe_in(S0, bytes(p)), DROP,
                 None, "up_no_route", S0, ip_len(p)))
    # hairpin: subscriber to subscriber, re-encapsulated for the receiver, XDP_TX
    for a, b, fam, what in ((S0, S2, 4, "untagged -> QinQ 0x88a8 (head 8 bytes back)"),
                            (S2, S0, 6, "QinQ -> untagged (head 8 bytes on)"),
                            (S1, S3, 4, "one tag -> QinQ 0x8100"), (S3, S1, 6, "QinQ -> one tag"),
                            (S1, S1, 4, "to its own address")):
        p = ip4(a.v4, b.v4) if fam == 4 else ip6(a.addr6(), b.addr6(7))
        rows.append((f"hairpin IPv{fam} {what}", pppoe_in(a, bytes(p), 0x0021 if fam == 4 else 0x0057), TX,
                     pppoe_out(b, hop(p)), "up_hairpin", a, ip_len(p), b))
    # several access ports: a receiver on acc1 is redirected there (bpf_redirect, not XDP_TX)
    for a, b, fam, what in ((S0, S5, 4, "untagged -> untagged on acc1"),
                            (S2, S6, 6, "QinQ -> one tag on acc1 (head 4 bytes on)")):
        p = ip4(a.v4, b.v4) if fam == 4 else ip6(a.addr6(), b.addr6(7))
        rows.append((f"hairpin IPv{fam} {what}: redirected to acc1, acc1's MAC as source",
                     pppoe_in(a, bytes(p), 0x0021 if fam == 4 else 0x0057), REDIRECT, pppoe_out(b, hop(p)),
                     "up_hairpin", a, ip_len(p), b))
    f = pppoe_in(S5, bytes(ip4(S5.v4, INET4)))
    rows.append(("an acc1 session's frame arriving on acc0: passed intact (not its port)", f, PASS, f,
                 "up_no_session", None, 0))
    f = pppoe_in(S6, bytes(ip6(S6.addr6(), INET6)), 0x0057)
    rows.append(("an acc1 session's IPv6 (tagged) arriving on acc0: passed intact", f, PASS, f, "up_no_session",
                 None, 0))
    p = ip4(S0.v4, S2.v4, size=1401)
    rows.append(("hairpin over the receiver's MRU (1400): dropped", pppoe_in(S0, bytes(p)), DROP, None,
                 "down_too_big", S0, 1401))
    p = ip4(S0.v4, S2.v4, ttl=1)
    rows.append(("hairpin with TTL 1: decapsulated to the kernel", pppoe_in(S0, bytes(p)), PASS, kernel(S0, p),
                 "up_ttl", S0, ip_len(p)))
    p = ip6(S0.addr6(), "3fff::1")
    rows.append(("IPv6 with no route: dropped", pppoe_in(S0, bytes(p), 0x0057), DROP, None, "up_no_route", S0,
                 ip_len(p)))
    # malformed and short: never read past the end, passed
    good = pppoe_in(S0, bytes(ip4(S0.v4, INET4)))
    rows.append(("PPPoE ver/type 0x12: passed", pppoe_in(S0, bytes(ip4(S0.v4, INET4)), ver_type=0x12), PASS, None,
                 "up_malformed", None, 0))
    rows.append(("PPPoE code 0x09 on 0x8864: passed", pppoe_in(S0, bytes(ip4(S0.v4, INET4)), code=0x09), PASS, None,
                 "up_malformed", None, 0))
    f = pppoe_in(S0, bytes(ip4(S0.v4, INET4)), length=len(bytes(ip4(S0.v4, INET4))) + 3)
    rows.append(("PPPoE length one byte past the frame: passed", f, PASS, f, "up_malformed", None, 0))
    f = pppoe_in(S0, bytes(ip4(S0.v4, INET4)), length=1)
    rows.append(("PPPoE length 1 (no room for the protocol): passed", f, PASS, f, "up_malformed", None, 0))
    p = bytes(ip4(S0.v4, INET4))
    f = pppoe_in(S0, p[:30], length=32)
    rows.append(("IPv4 total length past the PPPoE payload: passed", f, PASS, f, "up_malformed", None, 0))
    f = pppoe_in(S0, p[:19], length=21)
    rows.append(("IPv4 header cut at 19 bytes: passed", f, PASS, f, "up_malformed", None, 0))
    p6 = bytes(ip6(S0.addr6(), INET6))
    f = pppoe_in(S0, p6[:39], 0x0057, length=41)
    rows.append(("IPv6 header cut at 39 bytes: passed", f, PASS, f, "up_malformed", None, 0))
    f = pppoe_in(S0, b"\x45" + bytes(19))
    rows.append(("IPv4 with total length 0: passed", f, PASS, f, "up_malformed", None, 0))
    f = pppoe_in(S0, b"\x65" + p[1:])
    rows.append(("version 6 in an IPv4 PPP frame: passed", f, PASS, f, "up_malformed", None, 0))
    for cut, stat in ((14, "up_malformed"), (19, "up_malformed"), (21, "up_malformed")):
        rows.append((f"untagged PPPoE frame cut at {cut} bytes: passed", good[:cut], PASS, good[:cut], stat, None, 0))
    qq = pppoe_in(S2, bytes(ip4(S2.v4, INET4)))
    for cut, stat in ((15, "up_other"), (17, "up_other"), (21, "up_other"), (22, "up_malformed"),
                      (29, "up_malformed")):
        rows.append((f"QinQ frame cut at {cut} bytes: passed", qq[:cut], PASS, qq[:cut], stat, None, 0))
    rows.append(("an Ethernet header alone (0x8864): passed", good[:12] + b"\x88\x64", PASS, None, "up_malformed",
                 None, 0))
    return rows


def acc1_rows(box):
    """bng_access rows arriving on the second access port acc1 (test run ingress_ifindex)."""
    up_mac = box.mac("up0")

    def fwd(ip):
        return plain(NEXT_HOP, up_mac, hop(ip))

    def kernel(sub, ip):  # a non-primary port's session: the frame's own dst (acc1's MAC) kept
        return plain(ACC1_MAC, sub.mac, ip)

    rows = []
    p = ip4(S5.v4, INET4)
    rows.append(("acc1 untagged: IPv4 decapsulated, routed to up0", pppoe_in(S5, bytes(p)), REDIRECT, fwd(p),
                 "up_forwarded", S5, ip_len(p)))
    p = ip6(S6.addr6(), INET6)
    rows.append(("acc1 one tag: IPv6 decapsulated, routed to up0", pppoe_in(S6, bytes(p), 0x0057), REDIRECT,
                 fwd(p), "up_forwarded", S6, ip_len(p)))
    # hairpin from acc1: to acc0's sessions (access_ifindex 0 = bng_config's port) redirected
    # to acc0; between two acc1 sessions XDP_TX (back out of acc1)
    for a, b, fam, verdict, what in ((S5, S0, 4, REDIRECT, "acc1 -> acc0 (port 0): redirected to acc0"),
                                     (S6, S2, 6, REDIRECT, "acc1 one tag -> acc0 QinQ: redirected to acc0"),
                                     (S5, S6, 4, TX, "acc1 -> acc1: XDP_TX"),
                                     (S6, S5, 6, TX, "acc1 one tag -> acc1 untagged: XDP_TX")):
        p = ip4(a.v4, b.v4) if fam == 4 else ip6(a.addr6(), b.addr6(7))
        rows.append((f"hairpin IPv{fam} {what}", pppoe_in(a, bytes(p), 0x0021 if fam == 4 else 0x0057), verdict,
                     pppoe_out(b, hop(p)), "up_hairpin", a, ip_len(p), b))
    p = ip4(S5.v4, INET4, ttl=1)
    rows.append(("acc1 IPv4 TTL 1: decapsulated to the kernel, dst acc1's MAC", pppoe_in(S5, bytes(p)), PASS,
                 kernel(S5, p), "up_ttl", S5, ip_len(p)))
    p = ip6(S6.addr6(), INET6, hlim=1)
    rows.append(("acc1 IPv6 hop limit 1 (one tag): decapsulated to the kernel, dst acc1's MAC",
                 pppoe_in(S6, bytes(p), 0x0057), PASS, kernel(S6, p), "up_ttl", S6, ip_len(p)))
    p = ip4(S5.v4, "192.0.2.3")
    rows.append(("acc1 IPv4 with no neighbour: decapsulated to the kernel, dst acc1's MAC", pppoe_in(S5, bytes(p)),
                 PASS, kernel(S5, p), "up_no_neigh", S5, ip_len(p)))
    p = ip4(S5.v4, "10.100.0.99")
    rows.append(("acc1 IPv4 to a pool address of no session: dropped", pppoe_in(S5, bytes(p)), DROP, None,
                 "up_no_route", S5, ip_len(p)))
    p = ip4(S0.v4, INET4)
    rows.append(("acc1 IPv4 from S0's address: dropped", pppoe_in(S5, bytes(p)), DROP, None, "up_spoofed", None, 0))
    f = pppoe_in(S0, bytes(ip4(S0.v4, INET4)))
    rows.append(("an acc0 (port 0) session's frame arriving on acc1: passed intact (not its port)", f, PASS, f,
                 "up_no_session", None, 0))
    f = pppoe_in(S2, bytes(ip6(S2.addr6(), INET6)), 0x0057)
    rows.append(("an acc0 QinQ session's IPv6 arriving on acc1: passed intact", f, PASS, f, "up_no_session",
                 None, 0))
    f = mac(AC_MAC) + pppoe_in(S5, bytes(ip4(S5.v4, INET4)))[6:]
    rows.append(("an acc1 session's frame to acc0's AC MAC: passed (not its ac_mac)", f, PASS, f, "up_no_session",
                 None, 0))
    return rows


def uplink_rows(box):
    up_mac = box.mac("up0")

    def down(ip, pad=b""):
        return plain(up_mac, NEXT_HOP, ip, pad)

    rows = []
    for sub, what in ((S0, "untagged"), (S1, "one 802.1Q tag 100"), (S2, "QinQ 0x88a8 200 / 0x8100 300"),
                      (S3, "QinQ 0x8100 201 / 0x8100 4094")):
        p4 = ip4(INET4, sub.v4)
        p6 = ip6(INET6, sub.addr6(0x1234))
        rows.append((f"IPv4 to {what}: encapsulated, TTL 63", down(p4), REDIRECT, pppoe_out(sub, hop(p4)),
                     "down_forwarded", sub, ip_len(p4)))
        rows.append((f"IPv6 to {what}: encapsulated, hop limit 63", down(p6), REDIRECT, pppoe_out(sub, hop(p6)),
                     "down_forwarded", sub, ip_len(p6)))
    p = IP(bytes(IP(src=INET4, dst=S1.v4, id=1) / UDP(sport=1, dport=2)))
    rows.append(("a 28-byte IPv4 packet in a padded frame: padding carried, PPPoE length 30", down(p, bytes(18)),
                 REDIRECT, pppoe_out(S1, hop(p), bytes(18)), "down_forwarded", S1, 28))
    p = ip4(INET4, S2.v4, size=1400)
    rows.append(("IPv4 of exactly S2's MRU (1400): encapsulated", down(p), REDIRECT, pppoe_out(S2, hop(p)),
                 "down_forwarded", S2, 1400))
    p = ip4(INET4, S2.v4, size=1401)
    rows.append(("IPv4 one byte over S2's MRU: dropped", down(p), DROP, None, "down_too_big", None, 0))
    p = ip6(INET6, S2.addr6(), size=1401)
    rows.append(("IPv6 one byte over S2's MRU: dropped", down(p), DROP, None, "down_too_big", None, 0))
    p = ip4(INET4, S0.v4, size=1493)
    rows.append(("IPv4 over the default MRU 1492: dropped", down(p), DROP, None, "down_too_big", None, 0))
    # sessions of acc1: redirected there (their access_ifindex), acc1's MAC as source
    p = ip4(INET4, S5.v4)
    rows.append(("IPv4 to an acc1 session (untagged): encapsulated, redirected to acc1", down(p), REDIRECT,
                 pppoe_out(S5, hop(p)), "down_forwarded", S5, ip_len(p)))
    p = ip6(INET6, S6.addr6(0x99))
    rows.append(("IPv6 to an acc1 session (one tag 150): encapsulated, redirected to acc1", down(p), REDIRECT,
                 pppoe_out(S6, hop(p)), "down_forwarded", S6, ip_len(p)))
    p = ip4(INET4, S0.v4, ttl=1)
    rows.append(("IPv4 TTL 1: passed (the kernel sends time exceeded)", down(p), PASS, down(p), "down_ttl", None, 0))
    p = ip6(INET6, S3.addr6(), hlim=1)
    rows.append(("IPv6 hop limit 1: passed", down(p), PASS, down(p), "down_ttl", None, 0))
    p = ip4(INET4, "10.100.0.99")
    rows.append(("IPv4 to no subscriber: passed", down(p), PASS, down(p), "down_no_session", None, 0))
    p = ip6(INET6, "2001:db8:100:99::1")
    rows.append(("IPv6 to no subscriber's /64: passed", down(p), PASS, down(p), "down_no_session", None, 0))
    p = ip4(INET4, "192.0.2.1")
    rows.append(("IPv4 to the BNG itself: passed", down(p), PASS, down(p), "down_no_session", None, 0))
    f = bytes(Ether(src=NEXT_HOP, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=INET4, pdst="192.0.2.1"))
    rows.append(("ARP: passed", f, PASS, f, "down_other", None, 0))
    f = bytes(Ether(src=NEXT_HOP, dst=up_mac) / Dot1Q(vlan=5) / ip4(INET4, S0.v4))
    rows.append(("VLAN-tagged IPv4 on the uplink: passed", f, PASS, f, "down_other", None, 0))
    whole = down(ip4(INET4, S0.v4))
    rows.append(("IPv4 header cut at 19 bytes: passed", whole[:33], PASS, whole[:33], "down_malformed", None, 0))
    rows.append(("IPv4 total length past the frame: passed", whole[:-1], PASS, whole[:-1], "down_malformed", None, 0))
    whole6 = down(ip6(INET6, S0.addr6()))
    rows.append(("IPv6 header cut at 39 bytes: passed", whole6[:53], PASS, whole6[:53], "down_malformed", None, 0))
    rows.append(("IPv6 payload length past the frame: passed", whole6[:-1], PASS, whole6[:-1], "down_malformed",
                 None, 0))
    f = whole[:14] + b"\x46\x00\x00\x14" + whole[18:]
    rows.append(("IPv4 with IHL 6 and total length 20: passed", f, PASS, f, "down_malformed", None, 0))
    rows.append(("an Ethernet header alone: passed", whole[:14], PASS, whole[:14], "down_malformed", None, 0))
    return rows


def run(box, fd: int, rows, ingress: str | None = None) -> list[tuple[int, bytes]]:
    """Every row's frame through ``fd`` in the namespace, arriving on ``ingress`` (None: lo)."""
    ifindex = box.ifindex(ingress) if ingress else 0

    def child():
        return [bpfsys.prog_test_run_frame(fd, bytes(r[1]), ingress_ifindex=ifindex) for r in rows]
    return box.call(child)


@pytest.fixture(scope="module")
def outcome(env):
    box, dp = env
    acc, acc1, upl = access_rows(box), acc1_rows(box), uplink_rows(box)
    before = dp.stats()
    res_acc = run(box, dp.programs["pfrps_bng_access"], acc, "acc0")
    res_acc1 = run(box, dp.programs["pfrps_bng_access"], acc1, "acc1")
    res_up = run(box, dp.programs["pfrps_bng_uplink"], upl)
    after = dp.stats()
    return {"access": (acc, res_acc), "access1": (acc1, res_acc1), "uplink": (upl, res_up),
            "stats": {k: after[k] - before[k] for k in after},
            "counters": {s: dp.counters(s.key) for s in SUBS}}


def _check(rows, results, i):
    desc, frame, verdict, want, *_ = rows[i]
    got_verdict, got = results[i]
    assert got_verdict == verdict, desc
    if want is not None:
        if got != bytes(want):
            assert Ether(got).show(dump=True) == Ether(bytes(want)).show(dump=True), desc
        assert got.hex() == bytes(want).hex(), desc


class _Macs:
    """Stand-in for the namespace when counting rows at collection time."""

    @staticmethod
    def mac(_ifname: str) -> str:
        return "02:00:00:00:00:00"


N_ACCESS = len(access_rows(_Macs))
N_ACCESS1 = len(acc1_rows(_Macs))
N_UPLINK = len(uplink_rows(_Macs))


@pytest.mark.parametrize("i", range(N_ACCESS))
def test_access_row(outcome, i):
    rows, results = outcome["access"]
    assert len(rows) == N_ACCESS
    _check(rows, results, i)


@pytest.mark.parametrize("i", range(N_ACCESS1))
def test_access1_row(outcome, i):
    """Frames arriving on the second access port acc1."""
    rows, results = outcome["access1"]
    assert len(rows) == N_ACCESS1
    _check(rows, results, i)


@pytest.mark.parametrize("i", range(N_UPLINK))
def test_uplink_row(outcome, i):
    rows, results = outcome["uplink"]
    assert len(rows) == N_UPLINK
    _check(rows, results, i)


def test_stats_exact(outcome):
    """Every bng_stats slot moved by exactly the rows that name it."""
    want = collections.Counter(r[4] for r in outcome["access"][0] + outcome["access1"][0] + outcome["uplink"][0])
    assert outcome["stats"] == {name: want.get(name, 0) for name in STATS}


def test_session_counters_exact(outcome):
    """up: every IP packet that passed the source check; down: every one encapsulated."""
    want = {s: [0, 0, 0, 0] for s in SUBS}
    upstream = outcome["access"][0] + outcome["access1"][0]
    for r in upstream:
        if r[5] is not None:
            want[r[5]][0] += 1
            want[r[5]][1] += r[6]
    for r in outcome["uplink"][0]:
        if r[5] is not None:
            want[r[5]][2] += 1
            want[r[5]][3] += r[6]
    for r in upstream:
        if len(r) > 7:  # hairpin: the receiver counts it down
            want[r[7]][2] += 1
            want[r[7]][3] += r[6]
    assert outcome["counters"] == {s: SessionCounters(*w) for s, w in want.items()}
    assert outcome["counters"][S4] == SessionCounters()


# -- layouts and table management ----------------------------------------------------------------
def _layout(ctype):
    """(size, [(name, offset, size)]) of a ctypes type (arrays: their element's size)."""
    fields = [(n, getattr(ctype, n).offset, getattr(ctype, n).size) for n, *_ in getattr(ctype, "_fields_", [])]
    return ctypes.sizeof(ctype), fields


def test_layouts_equal_what_bcc_compiled():
    """The ctypes mirrors of dataplane.py have the sizes and offsets of bpf/bng.h as compiled."""
    with CompiledModule(builtin_program("bng_access.bpf.c"), ["-DBNG_MAX_SESSIONS=4"]) as mod:
        for name in MAP_NAMES:
            table = mod.table(name)
            key, leaf = table.Key, table.Leaf
            if name in ("bng_counters", "bng_stats"):
                leaf = leaf._type_  # per-CPU: bcc's Leaf is an array of one CPU's value
            want_key, want_leaf = LAYOUTS[name]
            assert _layout(want_key) == _layout(key), name
            assert _layout(want_leaf) == _layout(leaf), name
    assert ctypes.sizeof(BngSession) == 176


def test_entries_round_trip_and_remap(env):
    """add/lookup/entries round-trip every field; a changed address moves its mapping; remove
    cleans every map; a forked worker with only the fds (from_fds) writes the same table."""
    box, dp = env
    key = SessionKey(b"\x02\x00\x00\x00\x00\x77", 0x0777, 12, 34)
    e = SessionEntry(key, mac(AC_MAC), 0x88A8, 0x8100, IPv4Address("10.100.0.77"),
                     IPv6Network("2001:db8:100:77::/64"), 1480, flags=3, start_ns=123456789, local_magic=0xDEADBEEF,
                     peer_magic=0x01020304, user=b"alice@isp", peer_ifid=bytes(range(8)), worker=3, auth=2)
    dp.add(e)
    try:
        assert dp.lookup(key) == e
        assert e in list(dp.entries())
        assert dp.ipv4_owner(IPv4Address("10.100.0.77")) == key
        assert dp.ipv6_owner(IPv6Network("2001:db8:100:77::/64")) == key
        e2 = SessionEntry(key, mac(AC_MAC), 0x88A8, 0x8100, IPv4Address("10.100.0.78"), None, 1480)
        dp.add(e2)
        assert dp.ipv4_owner(IPv4Address("10.100.0.77")) is None
        assert dp.ipv6_owner(IPv6Network("2001:db8:100:77::/64")) is None
        assert dp.ipv4_owner(IPv4Address("10.100.0.78")) == key
        assert dp.counters(key) == SessionCounters()
    finally:
        assert dp.remove(key) is True
    assert dp.remove(key) is False
    assert dp.lookup(key) is None
    assert dp.ipv4_owner(IPv4Address("10.100.0.78")) is None
    assert dp.counters(key) == SessionCounters()

    maps = dict(dp.maps)
    k2 = SessionKey(b"\x02\x00\x00\x00\x00\x78", 9)

    def worker():
        from pfrps.bng.dataplane import DataPlane as DP  # noqa: PLC0415
        w = DP.from_fds(maps)
        w.add(SessionEntry(k2, mac(AC_MAC), ipv4=IPv4Address("10.100.0.79")))
        return sorted(w.stats()) == sorted(STATS)
    assert box.call(worker)
    try:
        got = dp.lookup(k2)
        assert got is not None and got.ipv4 == IPv4Address("10.100.0.79") and got.outer_tpid == 0
        assert dp.ipv4_owner(IPv4Address("10.100.0.79")) == k2
    finally:
        dp.remove(k2)


def test_default_tpids_and_bad_entries():
    e = SessionEntry(SessionKey(b"\x02" * 6, 1, 10, 20), b"\x02" * 6)
    assert (e.outer_tpid, e.inner_tpid) == (0x8100, 0x8100)
    e = SessionEntry(SessionKey(b"\x02" * 6, 1, 10), b"\x02" * 6)
    assert (e.outer_tpid, e.inner_tpid) == (0x8100, 0)
    from pfrps.errors import UsageError
    with pytest.raises(UsageError):
        SessionEntry(SessionKey(b"\x02" * 6, 1), b"\x02" * 6, ipv6_prefix=IPv6Network("2001:db8::/48")).pack()
    with pytest.raises(UsageError):
        SessionEntry(SessionKey(b"\x02" * 5, 1), b"\x02" * 6).key.pack()
    with pytest.raises(UsageError):
        SessionEntry(SessionKey(b"\x02" * 6, 1), b"\x02" * 6, outer_tpid=0x9100).pack()
    assert SessionKey.unpack(SessionKey(b"\x01\x02\x03\x04\x05\x06", 0xABCD, 4094, 1).pack()) == \
        SessionKey(b"\x01\x02\x03\x04\x05\x06", 0xABCD, 4094, 1)
    assert SessionKey(b"\x01\x02\x03\x04\x05\x06", 0xABCD).pack()[6:8] == b"\xab\xcd"


def test_supervisor_bpf_objects_share_one_table(env):
    """DataPlane.bpf_objects() as a supervisor loads them (pfrps.bpfobjects.LoadedBpf, in the
    namespace, generic mode): bng_config is written by the access object's setup, the uplink
    program is relocated onto the access program's maps (a session written through
    from_fds(maps) is encapsulated by it), everything detached and closed afterwards."""
    box, _ = env
    acc_if, up_if, acc_mac = box.ifindex("acc0"), box.ifindex("up0"), box.mac("acc0")
    p = ip4(INET4, "10.100.0.200")
    frame_in = plain(box.mac("up0"), NEXT_HOP, p)
    sub = Sub("02:00:00:00:00:20", 0x0020, ((0x8100, 7),), "10.100.0.200", None)
    want = pppoe_out(sub, hop(p))

    def child():
        from pfrps.bpfobjects import LoadedBpf  # noqa: PLC0415
        from pfrps.xdp.attach import xdp_attached  # noqa: PLC0415

        dp = DataPlane("acc0", "up0", generic=True, max_sessions=16)
        loaded = LoadedBpf.open(dp.bpf_objects())
        try:
            dp.bind(loaded.maps)
            worker = DataPlane.from_fds(loaded.maps)
            worker.add(sub.entry())
            res = bpfsys.prog_test_run_frame(loaded.programs["pfrps_bng_uplink"], frame_in)
            attached = (xdp_attached(acc_if) is not None, xdp_attached(up_if) is not None)
            return dp.config(), res, attached, dp.stats()["down_forwarded"], dp.counters(sub.key)
        finally:
            loaded.close()

    config, (verdict, out), attached, forwarded, counters = box.call(child)
    assert config == (acc_if, up_if, mac(acc_mac))
    assert attached == (True, True)
    assert verdict == REDIRECT
    assert out.hex() == want.hex()
    assert forwarded == 1
    assert counters == SessionCounters(0, 0, 1, ip_len(p))
    with box.ipr() as ipr:  # detached once closed
        for idx in (acc_if, up_if):
            xdp = ipr.get_links(idx)[0].get_attr("IFLA_XDP")
            assert not (xdp and xdp.get_attr("IFLA_XDP_ATTACHED")), idx


def test_cross_port_frames_leave_by_the_session_port(env):
    """The redirect targets, observed (BPF_PROG_TEST_RUN only reports XDP_REDIRECT): the same
    programs in live-frame mode (BPF_F_TEST_XDP_LIVE_FRAMES: XDP_TX and XDP_REDIRECT really
    transmit; XDP_TX out of the run's ingress interface), one frame per case, each arriving on
    the peer of the receiving session's port (accp for acc0, acc1p for acc1) exactly once and
    nowhere else; untagged ones byte for byte (the receiving kernel takes VLAN tags off)."""
    from pfrps.bng.topology import _enable_gro  # noqa: PLC0415

    box, dp = env
    for peer in ("accp", "acc1p"):
        _enable_gro(box.name, peer)  # native XDP redirect into a veth needs NAPI on its peer
    acc_fd, up_fd = dp.programs["pfrps_bng_access"], dp.programs["pfrps_bng_uplink"]

    def pkt(src, dst, n):
        marker = b"xp-cross-port-%02d" % n
        return IP(bytes(IP(src=src, dst=dst, ttl=64) / UDP(sport=4000, dport=5000) / marker)), marker

    cases = []  # (description, fd, ingress, frame, marker, peer it must arrive on, frame or None)
    p, m = pkt(S0.v4, S5.v4, 0)
    cases.append(("hairpin acc0 S0 -> acc1 S5", acc_fd, "acc0", pppoe_in(S0, bytes(p)), m, "acc1p",
                  pppoe_out(S5, hop(p))))
    p, m = pkt(S5.v4, S0.v4, 1)
    cases.append(("hairpin acc1 S5 -> acc0 S0 (access_ifindex 0)", acc_fd, "acc1", pppoe_in(S5, bytes(p)), m, "accp",
                  pppoe_out(S0, hop(p))))
    p, m = pkt(S5.v4, S6.v4, 2)
    cases.append(("hairpin acc1 S5 -> acc1 S6 (XDP_TX)", acc_fd, "acc1", pppoe_in(S5, bytes(p)), m, "acc1p", None))
    p, m = pkt(INET4, S5.v4, 3)
    cases.append(("downstream to acc1's S5", up_fd, "up0", plain(box.mac("up0"), NEXT_HOP, p), m, "acc1p",
                  pppoe_out(S5, hop(p))))
    p, m = pkt(INET4, S0.v4, 4)
    cases.append(("downstream to acc0's S0", up_fd, "up0", plain(box.mac("up0"), NEXT_HOP, p), m, "accp",
                  pppoe_out(S0, hop(p))))
    runs = [(fd, box.ifindex(ingress), frame) for _, fd, ingress, frame, *_ in cases]
    markers = [c[4] for c in cases]

    def child():
        import select  # noqa: PLC0415

        socks = {}
        for peer in ("accp", "acc1p"):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            s.bind((peer, 0x0003))
            s.setblocking(False)
            socks[peer] = s
        for fd, ifindex, frame in runs:
            bpfsys.prog_test_run_live(fd, frame, 1, ingress_ifindex=ifindex)
        got = []  # (marker, peer, frame)
        pending = set(markers)
        while True:
            ready, _, _ = select.select(list(socks.values()), [], [], 0 if not pending else 10)
            if not ready:
                break
            for peer, s in socks.items():
                while True:
                    try:
                        data, addr = s.recvfrom(65536)
                    except BlockingIOError:
                        break
                    if addr[2] == 4:  # PACKET_OUTGOING: the peer's own (IPv6 ND, MLD)
                        continue
                    for mk in markers:
                        if mk in data:
                            got.append((mk, peer, data))
                            pending.discard(mk)
        for s in socks.values():
            s.close()
        return got

    got = box.call(child)
    for desc, _, _, _, mk, peer, want in cases:
        seen = [(p_, f) for m_, p_, f in got if m_ == mk]
        assert [p_ for p_, _ in seen] == [peer], desc
        if want is not None:
            assert seen[0][1].hex() == want.hex(), desc
