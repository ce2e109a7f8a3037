"""bpf/flow.h, the cloud-host programs' flow parser, field by field (bpf/flow_probe.bpf.c stores
what flow_parse() found), with each compile-time knob: 802.1Q and QinQ, IPv4 fragments, IPIP
inner addresses, IPv6, TCP/UDP ports, ICMP/ICMPv6 type/code/id, malformed headers, early stops."""

from __future__ import annotations

import ctypes
import ipaddress
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

from pfrps import bpfsys
from pfrps.bpfload import bpf_source_dir, import_bcc

pytestmark = pytest.mark.root

#: struct flow_probe_rec: rc, pad, struct flow (bpf/flow.h)
REC = struct.Struct("<iI16s16sBBBB4s4sHHHH4s")
FIELDS = ("rc", "pad", "saddr", "daddr", "family", "protocol", "fragment", "inner_protocol", "inner_saddr",
          "inner_daddr", "vlan", "outer_vlan", "l3_off", "h_proto", "l4")
_CACHE: dict = {}


def probe(knobs: tuple[str, ...]):
    if knobs not in _CACHE:
        bcc = import_bcc()
        b = bcc.BPF(src_file=str(bpf_source_dir() / "flow_probe.bpf.c").encode(),
                    cflags=[f"-I{bpf_source_dir()}", *(f"-D{k}" for k in knobs)])
        fd = bpfsys.register_loaded(b.load_func(b"flow_probe", bcc.BPF.XDP).fd)
        _CACHE[knobs] = (b, fd)
    return _CACHE[knobs]


@pytest.fixture(scope="module", autouse=True)
def _unload():
    yield
    for b, _fd in _CACHE.values():
        b.cleanup()
    _CACHE.clear()


def parse(frame: bytes, knobs: tuple[str, ...] = ()) -> dict:
    b, fd = probe(knobs)
    assert bpfsys.prog_test_run(fd, bytes(frame))[0] == 2  # XDP_PASS
    leaf = b[b"flow_probe_out"][ctypes.c_int(0)]
    raw = ctypes.string_at(ctypes.addressof(leaf), ctypes.sizeof(leaf))
    rec = dict(zip(FIELDS, REC.unpack(raw[:REC.size])))
    rec.pop("pad", None)
    fam = rec["family"]
    for k in ("saddr", "daddr"):
        rec[k] = str(ipaddress.ip_address(rec[k][:4] if fam == 2 else rec[k])) if fam else None
    for k in ("inner_saddr", "inner_daddr"):
        rec[k] = str(ipaddress.ip_address(rec[k])) if rec["inner_protocol"] else None
    rec["ports"] = struct.unpack("!HH", rec["l4"])
    rec["icmp"] = struct.unpack("!BBH", rec["l4"])
    return rec


E = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
V4 = IP(src="192.0.2.1", dst="198.51.100.7")
V6 = IPv6(src="fd00::1", dst="fd00::9")

TABLE = [
    # description, frame, knobs, expected fields
    ("untagged tcp", E / V4 / TCP(sport=3000, dport=443), (),
     dict(rc=0, family=2, protocol=6, saddr="192.0.2.1", daddr="198.51.100.7", ports=(3000, 443), vlan=0,
          l3_off=14, h_proto=0x0800)),
    ("802.1Q udp", E / Dot1Q(vlan=10, prio=3) / V4 / UDP(sport=53, dport=5353), (),
     dict(rc=0, vlan=10, outer_vlan=0, l3_off=18, protocol=17, ports=(53, 5353))),
    ("QinQ: outer 802.1ad and inner 802.1Q", E / Dot1AD(vlan=100) / Dot1Q(vlan=10) / V4 / UDP(sport=1, dport=2), (),
     dict(rc=0, vlan=10, outer_vlan=100, l3_off=22, ports=(1, 2))),
    ("QinQ with FLOW_QINQ=0: stops at the outer tag", E / Dot1AD(vlan=100) / Dot1Q(vlan=10) / V4, ("FLOW_QINQ=0",),
     dict(rc=1, vlan=0, outer_vlan=0, h_proto=0x88A8, family=0)),
    ("first IPv4 fragment: flagged, no ports", E / IP(src="192.0.2.1", dst="198.51.100.7", flags="MF") / UDP(sport=1, dport=2),
     (), dict(rc=0, fragment=1, protocol=17, ports=(0, 0))),
    ("later IPv4 fragment", E / IP(src="192.0.2.1", dst="198.51.100.7", proto=17, frag=185) / (b"x" * 20), (),
     dict(rc=0, fragment=1, ports=(0, 0))),
    ("IPIP: inner addresses and the inner transport", E / V4 / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=7, dport=8),
     (), dict(rc=0, protocol=4, inner_protocol=6, inner_saddr="10.0.0.1", inner_daddr="10.0.0.2", ports=(7, 8),
              saddr="192.0.2.1")),
    ("IPIP with FLOW_IPIP=0: outer header only", E / V4 / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=7, dport=8),
     ("FLOW_IPIP=0",), dict(rc=1, protocol=4, inner_protocol=0)),
    ("IPv6 tcp", E / V6 / TCP(sport=4000, dport=80), (),
     dict(rc=0, family=10, protocol=6, saddr="fd00::1", daddr="fd00::9", ports=(4000, 80))),
    ("IPv6 with FLOW_IPV6=0: not handled", E / V6 / TCP(sport=4000, dport=80), ("FLOW_IPV6=0",),
     dict(rc=1, family=0)),
    ("ICMP echo: type, code, id", E / V4 / ICMP(type=8, code=0, id=0x1234), (), dict(rc=0, protocol=1, icmp=(8, 0, 0x1234))),
    ("ICMP echo id 0 counts as 1 (as the seed)", E / V4 / ICMP(type=8, id=0), (), dict(rc=0, icmp=(8, 0, 1))),
    ("ICMP unreachable: no id", E / V4 / ICMP(type=3, code=1) / (b"\0" * 8), (), dict(rc=0, icmp=(3, 1, 0))),
    ("ICMPv6 echo request", E / V6 / ICMPv6EchoRequest(id=77), (), dict(rc=0, protocol=58, icmp=(128, 0, 77))),
    ("ARP: not handled", E / ARP(), (), dict(rc=1, h_proto=0x0806, family=0)),
    ("IPv4 header cut short: malformed", bytes(E / V4 / TCP())[:30], (), dict(rc=-1)),
    ("TCP header cut short: malformed", bytes(E / V4 / TCP())[:36], (), dict(rc=-1, family=2, protocol=6)),
    ("802.1Q tag cut short: malformed", bytes(E / Dot1Q(vlan=10))[:16], (), dict(rc=-1)),
    ("IPv4 IHL below 5: malformed", bytes(E / IP(ihl=4) / TCP()), (), dict(rc=-1)),
    ("FLOW_STOP_AT=3: addresses, no ports", E / V4 / TCP(sport=3000, dport=443), ("FLOW_STOP_AT=3",),
     dict(rc=0, family=2, saddr="192.0.2.1", ports=(0, 0))),
    ("FLOW_STOP_AT=2: tags only", E / Dot1Q(vlan=10) / V4 / TCP(sport=3000, dport=443), ("FLOW_STOP_AT=2",),
     dict(rc=0, vlan=10, l3_off=18, h_proto=0x0800, family=0)),
]


@pytest.mark.parametrize("desc,frame,knobs,want", TABLE, ids=[row[0] for row in TABLE])
def test_flow_parse(desc, frame, knobs, want):
    got = parse(bytes(frame), knobs)
    assert {k: got[k] for k in want} == want, desc
