"""The BNG data plane with real traffic, both programs attached natively and in generic mode::

    cli ns                      bng ns                                  inet ns
    cli0 <-veth-> acc0 [XDP bng_access]   up0 [XDP bng_uplink] <-veth-> inet0
                  (pool routes via acc0)  192.0.2.1/24 2001:db8:1::1/64   (192.0.2.2, 2001:db8:1::2:
                                                                          permanent neighbours)

Three PPPoE sessions (untagged, one 802.1Q tag, QinQ 0x88a8/0x8100). PF_PACKET sockets made
inside the namespaces (setns around socket(2)) send N IPv4 and N IPv6 packets per session
each way (PPPoE frames from cli0, plain IP from inet0), and N of each between two pairs of
sessions (hairpinned by bng_access, XDP_TX, back to cli0 re-encapsulated). Each side counts exactly the frames
that arrived (by a per-run marker in the payload) and compares them byte for byte with the
expected frames built with scapy (downstream VLAN tags stripped by the receiving kernel are
put back from PACKET_AUXDATA); then the per-session counters equal the frames sent, exactly.

Native mode: XDP_REDIRECT into a veth delivers only when the veth's peer has an XDP program
(the receive queue needs the NAPI context an XDP program gives it), so cli0 and inet0 carry
xdp_pass; generic mode needs nothing on the peers.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Network

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE

from pfrps.bng.dataplane import DataPlane, SessionCounters, SessionEntry, SessionKey
from pfrps.xdp.attach import Attachments
from pfrps.xdp.lab import Lab
from tests.bng_frames import hop

pytestmark = pytest.mark.root

N = 40                      # packets per session, family and direction
INET4, INET6 = "192.0.2.2", "2001:db8:1::2"
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
_AUX = struct.Struct("=IIIHHHH")


@dataclass(frozen=True)
class Sub:
    mac: str
    sid: int
    tags: tuple[tuple[int, int], ...]
    v4: str
    v6: str

    def key(self) -> SessionKey:
        vids = [v for _, v in self.tags] + [0, 0]
        return SessionKey(_mac(self.mac), self.sid, vids[0], vids[1])

    def addr6(self) -> str:
        return str(IPv6Network(self.v6)[0x42])


SUBS = (
    Sub("02:00:00:00:01:10", 0x0011, (), "10.100.0.10", "2001:db8:100:10::/64"),
    Sub("02:00:00:00:01:11", 0x0022, ((0x8100, 100),), "10.100.0.11", "2001:db8:100:11::/64"),
    Sub("02:00:00:00:01:12", 0x0033, ((0x88A8, 200), (0x8100, 300)), "10.100.0.12", "2001:db8:100:12::/64"),
)


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ns_packet_socket(ns: str, ifname: str, proto: int = ETH_P_ALL) -> socket.socket:
    """An AF_PACKET socket of namespace ``ns`` bound to ``ifname`` (made inside it)."""
    from pyroute2 import netns  # noqa: PLC0415

    netns.pushns(ns)
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
        try:
            s.bind((ifname, proto))
            if proto:
                s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
                s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        except BaseException:
            s.close()
            raise
    finally:
        netns.popns()
    return s


def receive(sock: socket.socket, marker: bytes, want: int, timeout: float = 10.0, quiet: float = 0.5) -> list[bytes]:
    """Frames containing ``marker`` until ``want`` arrived and ``quiet`` s passed without more
    (or ``timeout``), with a tag the kernel stripped (PACKET_AUXDATA) put back in place."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    quiet_end = None
    while True:
        now = time.monotonic()
        end = min(deadline, quiet_end) if quiet_end else deadline
        if now >= end or not select.select([sock], [], [], end - now)[0]:
            if quiet_end is None and len(got) < want and now < deadline:
                continue
            return got
        data, anc, _flags, addr = sock.recvmsg(65536, socket.CMSG_SPACE(_AUX.size))
        if addr[2] == PACKET_OUTGOING or marker not in data:
            continue
        for level, kind, raw in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(raw) >= _AUX.size:
                status, _len, _snap, _mac_off, _net, tci, tpid = _AUX.unpack_from(raw)
                if status & TP_STATUS_VLAN_VALID:
                    tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                    data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
        got.append(data)
        if len(got) >= want:
            quiet_end = time.monotonic() + quiet


def send_paced(sock: socket.socket, frames: list[bytes], burst: int = 16) -> None:
    """Send ``frames``, a short pause after every ``burst`` (a veth's ring holds 256)."""
    for i, f in enumerate(frames):
        sock.send(f)
        if i % burst == burst - 1:
            time.sleep(0.002)


def payload(marker: bytes, sub: int, fam: int, direction: str, i: int) -> bytes:
    return marker + f"|{direction}|{sub}|{fam}|{i:05d}|".encode() + b"p" * 24


def ip_packet(src: str, dst: str, data: bytes):
    if ":" in src:
        return IPv6(bytes(IPv6(src=src, dst=dst, hlim=64) / UDP(sport=4000, dport=5000) / data))
    return IP(bytes(IP(src=src, dst=dst, ttl=64, id=7) / UDP(sport=4000, dport=5000) / data))


def pppoe_frame(sub: Sub, dst: str, src: str, ip) -> bytes:
    """``sub``'s PPPoE session frame carrying ``ip`` (scapy)."""
    types = [t for t, _ in sub.tags] + [0x8864]
    p = Ether(dst=dst, src=src, type=types[0])
    for i, (tpid, vid) in enumerate(sub.tags):
        p = p / (Dot1AD if tpid == 0x88A8 else Dot1Q)(vlan=vid, type=types[i + 1])
    return bytes(p / PPPoE(sessionid=sub.sid) / PPP(proto=0x0021 if ip.version == 4 else 0x0057) / ip)


def plain_frame(dst: str, src: str, ip) -> bytes:
    return bytes(Ether(dst=dst, src=src, type=0x0800 if ip.version == 4 else 0x86DD) / ip)


@dataclass
class Env:
    lab: Lab
    cli: str
    bng: str
    inet: str
    dp: DataPlane
    macs: dict[str, str]
    generic: bool


@pytest.fixture(params=["native", "generic"])
def env(request):
    generic = request.param == "generic"
    lab = Lab(prefix="bng-dataplane")
    atts: list[Attachments] = []
    try:
        cli, bng, inet = lab.add_ns("cli"), lab.add_ns("bng", ipv6=True), lab.add_ns("inet")
        lab.veth(cli, "cli0", bng, "acc0")
        lab.veth(bng, "up0", inet, "inet0")
        for knob in ("net/ipv4/conf/all/forwarding", "net/ipv6/conf/all/forwarding"):
            lab.sysctl(bng, knob, "1")
        lab.addr(bng, "up0", "192.0.2.1/24")
        lab.addr(bng, "up0", "2001:db8:1::1/64")
        macs = {"acc0": lab.link(bng, "acc0")[1], "up0": lab.link(bng, "up0")[1],
                "cli0": lab.link(cli, "cli0")[1], "inet0": lab.link(inet, "inet0")[1]}
        lab.neigh(bng, "up0", INET4, macs["inet0"])
        lab.neigh(bng, "up0", INET6, macs["inet0"])
        with lab._ipr(bng) as ipr:  # the pools through the access interface, as pfrps-bng routes them
            acc = ipr.link_lookup(ifname="acc0")[0]
            ipr.route("add", dst="10.100.0.0", dst_len=24, oif=acc)
            ipr.route("add", dst="2001:db8:100::", dst_len=48, oif=acc, family=socket.AF_INET6)

        att = Attachments(netns=bng)
        atts.append(att)
        dp = DataPlane("acc0", "up0", generic=generic, max_sessions=1024)
        dp.load(att)
        dp.attach(att)
        if not generic:  # the redirect targets' peers need an XDP program in native mode
            pa = Attachments(netns=cli)
            atts.append(pa)
            fd = pa.load(pa.program("xdp_pass.bpf.c"), "pfrps_xdp_pass")
            pa.xdp("cli0", fd, False)
            pb = Attachments(netns=inet)
            atts.append(pb)
            pb.xdp("inet0", fd, False)
        for s in SUBS:
            tpids = [t for t, _ in s.tags] + [0, 0]
            dp.add(SessionEntry(s.key(), _mac(macs["acc0"]), tpids[0], tpids[1], IPv4Address(s.v4),
                                IPv6Network(s.v6), 1492))
        yield Env(lab, cli, bng, inet, dp, macs, generic)
    finally:
        for a in reversed(atts):
            a.close()
        lab.destroy()


def test_traffic_both_ways_counted_exactly(env):
    """N IPv4 + N IPv6 per session each way: every frame arrives once, rewritten exactly as
    expected; per-session counters and verdict counters equal the frames sent."""
    m = env.macs
    marker = b"BNG" + os.urandom(6).hex().encode()
    up_sent, up_want, down_sent, down_want = [], [], [], []
    sizes = {s.sid: [0, 0, 0, 0] for s in SUBS}
    for si, s in enumerate(SUBS):
        for fam in (4, 6):
            for i in range(N):
                src, dst = (s.v4, INET4) if fam == 4 else (s.addr6(), INET6)
                ip = ip_packet(src, dst, payload(marker, si, fam, "up", i))
                up_sent.append(pppoe_frame(s, m["acc0"], s.mac, ip))
                up_want.append(plain_frame(m["inet0"], m["up0"], hop(ip)))
                sizes[s.sid][0] += 1
                sizes[s.sid][1] += len(bytes(ip))
                ip = ip_packet(dst, src, payload(marker, si, fam, "down", i))
                down_sent.append(plain_frame(m["up0"], m["inet0"], ip))
                down_want.append(pppoe_frame(s, s.mac, m["acc0"], hop(ip)))
                sizes[s.sid][2] += 1
                sizes[s.sid][3] += len(bytes(ip))

    hair_sent, hair_want = [], []
    for a, b in ((SUBS[0], SUBS[2]), (SUBS[2], SUBS[1])):   # subscriber to subscriber (hairpin)
        for fam in (4, 6):
            for i in range(N):
                src, dst = (a.v4, b.v4) if fam == 4 else (a.addr6(), b.addr6())
                ip = ip_packet(src, dst, payload(marker, SUBS.index(a), fam, "hair", i))
                hair_sent.append(pppoe_frame(a, m["acc0"], a.mac, ip))
                hair_want.append(pppoe_frame(b, b.mac, m["acc0"], hop(ip)))
                sizes[a.sid][0] += 1
                sizes[a.sid][1] += len(bytes(ip))
                sizes[b.sid][2] += 1
                sizes[b.sid][3] += len(bytes(ip))

    tx_cli, tx_inet = ns_packet_socket(env.cli, "cli0", 0), ns_packet_socket(env.inet, "inet0", 0)
    rx_cli, rx_inet = ns_packet_socket(env.cli, "cli0"), ns_packet_socket(env.inet, "inet0")
    try:
        before = env.dp.stats()
        send_paced(tx_cli, up_sent)
        got_up = receive(rx_inet, marker + b"|up|", len(up_sent))
        send_paced(tx_inet, down_sent)
        got_down = receive(rx_cli, marker + b"|down|", len(down_sent))
        send_paced(tx_cli, hair_sent)
        got_hair = receive(rx_cli, marker + b"|hair|", len(hair_sent))
        after = env.dp.stats()
    finally:
        for s in (tx_cli, tx_inet, rx_cli, rx_inet):
            s.close()

    assert len(got_up) == len(up_sent) == 2 * N * len(SUBS)
    assert sorted(got_up) == sorted(up_want)
    assert len(got_down) == len(down_sent)
    assert sorted(got_down) == sorted(down_want)
    assert len(got_hair) == len(hair_sent)
    assert sorted(got_hair) == sorted(hair_want)
    for s in SUBS:
        assert env.dp.counters(s.key()) == SessionCounters(*sizes[s.sid]), s
    delta = {k: after[k] - before[k] for k in after}
    assert {k: v for k, v in delta.items() if v} == {
        "up_forwarded": len(up_sent), "down_forwarded": len(down_sent), "up_hairpin": len(hair_sent)}


def test_control_frames_reach_the_stack_and_removed_sessions_stop(env):
    """An LCP frame and a PADI still reach a packet socket on the access interface (the
    workers'), and once a session is removed its IPv4 is no longer forwarded (passed instead)."""
    m = env.macs
    marker = b"CTL" + os.urandom(6).hex().encode()
    s = SUBS[1]
    lcp = bytes(Ether(dst=m["acc0"], src=s.mac, type=0x8100) / Dot1Q(vlan=100, type=0x8864)
                / PPPoE(sessionid=s.sid) / PPP(proto=0xC021) / (b"\x09\x01\x00\x14" + marker + b"x" * 1))
    padi = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=s.mac, type=0x8863)) + b"\x11\x09\x00\x00\x00\x14" + marker + b"y"
    tx = ns_packet_socket(env.cli, "cli0", 0)
    rx_acc = ns_packet_socket(env.bng, "acc0")
    rx_inet = ns_packet_socket(env.inet, "inet0")
    try:
        before = env.dp.stats()
        send_paced(tx, [lcp, padi])
        got = receive(rx_acc, marker, 2)
        assert len(got) == 2
        after = env.dp.stats()
        assert after["up_to_stack"] - before["up_to_stack"] == 1
        assert after["up_discovery"] - before["up_discovery"] == 1

        assert env.dp.remove(s.key()) is True
        ip = ip_packet(s.v4, INET4, marker + b"gone")
        before = env.dp.stats()
        send_paced(tx, [pppoe_frame(s, m["acc0"], s.mac, ip)])
        assert receive(rx_acc, marker + b"gone", 1, timeout=3) != []    # passed to the stack
        assert receive(rx_inet, marker + b"gone", 1, timeout=0.5) == []  # never forwarded
        assert env.dp.stats()["up_no_session"] - before["up_no_session"] == 1
    finally:
        for sock in (tx, rx_acc, rx_inet):
            sock.close()


def test_first_packet_to_a_new_neighbour_goes_through_the_kernel(env):
    """To 192.0.2.3 (inet0's second address, no neighbour entry in the bng namespace yet): the
    first packet is decapsulated and handed to the kernel (FIB NO_NEIGH), which resolves the
    neighbour and forwards it; every later one takes the XDP fast path. All arrive, byte for
    byte the same either way."""
    m = env.macs
    env.lab.addr(env.inet, "inet0", "192.0.2.3/24")
    marker = b"NGH" + os.urandom(6).hex().encode()
    s = SUBS[2]
    ips = [ip_packet(s.v4, "192.0.2.3", payload(marker, 2, 4, "nb", i)) for i in range(N)]
    want = [plain_frame(m["inet0"], m["up0"], hop(ip)) for ip in ips]
    tx, rx = ns_packet_socket(env.cli, "cli0", 0), ns_packet_socket(env.inet, "inet0")
    try:
        before = env.dp.stats()
        send_paced(tx, [pppoe_frame(s, m["acc0"], s.mac, ips[0])])
        first = receive(rx, marker, 1, quiet=0.1)
        send_paced(tx, [pppoe_frame(s, m["acc0"], s.mac, ip) for ip in ips[1:]])
        rest = receive(rx, marker, N - 1)
        after = env.dp.stats()
    finally:
        tx.close()
        rx.close()
    assert first == want[:1]
    assert sorted(rest) == sorted(want[1:])
    delta = {k: after[k] - before[k] for k in after if after[k] != before[k] and k.startswith("up_")}
    assert delta == {"up_no_neigh": 1, "up_forwarded": N - 1}   # (the ARP reply counts down_other)
