"""The cloud-host programs (seed 003) through BPF_PROG_TEST_RUN, katran/cilium style:
(description, input frame, expected verdict, expected output frame), in a fresh namespace.

xdp_l2fwd: VLAN popped on an FDB hit, everything else passed untouched. acl_vm_rx: each rule
shape decided as pfrps.xdp.acl.decide predicts. xdp_vmegress: VLAN pushed, the uplink the
bond hash picks (only that leg's DEVMAP entry present turns its frames into XDP_REDIRECT; the
others fall back to XDP_PASS). A test run without a context runs on the namespace's ``lo``
(ifindex 1), so vm_info and ACL entries for the receive-side programs are keyed by 1. The
devmap program acl_vm_tx cannot be test-run: tests/root/test_xdp_cloud.py covers it live.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

from pfrps import bpfsys
from pfrps.xdp.acl import AclRule, Flow, decide, parse_rule
from pfrps.xdp.cloud_maps import CloudMaps, CloudPrograms, VmInfo, bond_hash, parse_mac
from tests.xdp_helpers import fresh_netns, test_run_in

pytestmark = pytest.mark.root

XDP_DROP, XDP_PASS, XDP_REDIRECT = 1, 2, 4
LO = 1
MAC1, MAC2, MAC3, OTHER = "52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03", "02:00:5e:00:00:01"
VM_IP, FAR = "10.1.0.1", "10.9.9.9"


@pytest.fixture(scope="module")
def env():
    """A fresh namespace with a VM port (tap1) and an uplink (up0); maps and programs."""
    with fresh_netns("cloud-verdicts", pairs=(("tap1", "vm1"), ("up0", "sw0"))) as box:
        maps = CloudMaps.create()
        progs = CloudPrograms(maps, uplinks=2)
        try:
            yield box, maps, progs
        finally:
            progs.close()
            maps.close()


def run(box, fd, frame):
    return test_run_in(box, fd, frame)


# -- xdp_l2fwd --------------------------------------------------------------------------------------
def eth(dst=MAC1, src=OTHER):
    return Ether(dst=dst, src=src)


PAYLOAD = IP(src=FAR, dst=VM_IP, id=1) / UDP(sport=4000, dport=7000) / (b"x" * 18)
PAYLOAD6 = IPv6(src="fd00::9", dst="fd00::1") / TCP(sport=4000, dport=80)

L2FWD_TABLE = [
    # description, input frame, verdict, expected output frame
    ("VLAN 10 to vm1: tag popped, redirected", eth() / Dot1Q(vlan=10) / PAYLOAD, XDP_REDIRECT, eth() / PAYLOAD),
    ("VLAN 10 IPv6 to vm1, priority bits set", eth() / Dot1Q(vlan=10, prio=5) / PAYLOAD6, XDP_REDIRECT,
     eth() / PAYLOAD6),
    ("untagged to vm1: stack", eth() / PAYLOAD, XDP_PASS, None),
    ("VLAN 20 (not vm1's): stack", eth() / Dot1Q(vlan=20) / PAYLOAD, XDP_PASS, None),
    ("unknown MAC on VLAN 10: stack", eth(dst="52:54:00:00:00:99") / Dot1Q(vlan=10) / PAYLOAD, XDP_PASS, None),
    ("VLAN 0 (priority tag): stack", eth() / Dot1Q(vlan=0) / PAYLOAD, XDP_PASS, None),
    ("FDB hit, port not in the port map: stack, tag kept", eth(dst=MAC3) / Dot1Q(vlan=10) / PAYLOAD, XDP_PASS, None),
    ("QinQ outer tag: not l2fwd's, stack", eth() / Dot1AD(vlan=100) / Dot1Q(vlan=10) / PAYLOAD, XDP_PASS, None),
    ("802.1Q header cut short: drop", bytes(eth() / Dot1Q(vlan=10))[:16], XDP_DROP, None),
]


def test_l2fwd_table(env):
    box, maps, progs = env
    tap1, up0 = box.ifindex("tap1"), box.ifindex("up0")
    box.call(lambda: maps.port_add(tap1, progs.fds["acl_vm_tx"]))
    maps.fdb_add(parse_mac(MAC1), 10, tap1)
    maps.fdb_add(parse_mac(MAC3), 10, up0 + 100)  # an ifindex the port map does not hold
    before = maps.counter_dict()
    for desc, frame, verdict, out in L2FWD_TABLE:
        raw = bytes(frame)
        got, data = run(box, progs.fds["xdp_l2fwd"], raw)
        assert got == verdict, desc
        assert data == (bytes(out) if out is not None else raw), desc
    after = maps.counter_dict()
    delta = {k: after[k] - before[k] for k in after}
    assert delta["l2fwd_redirect"] == 2
    assert delta["l2fwd_untagged"] == 2  # untagged and QinQ
    assert delta["l2fwd_no_fdb"] == 4
    assert delta["malformed"] == 1


# -- acl_vm_rx --------------------------------------------------------------------------------------
RX_RULES = [
    "proto=tcp,dport=25",                     # a protocol and port
    "ipv4,proto=udp,addr=10.9.9.9,dport=53",  # ... to one address
    "proto=udp,sport=123",                    # any port, one source port
    "proto=icmp",                             # a whole protocol without ports
    "ipv6,proto=tcp,addr=::,dport=80",        # one family, any address
    "proto=tcp,addr=10.9.9.8",                # any port to one address
]


def vm_frame(l3l4, src=MAC1, dst=OTHER):
    return Ether(src=src, dst=dst) / l3l4


def ip4(dst=FAR):
    return IP(src=VM_IP, dst=dst, id=9)


def ip6():
    return IPv6(src="fd00::1", dst="fd00::9")


RX_TABLE = [
    # description, frame, verdict (acl_vm_rx leaves every frame as it was)
    ("tcp/25: rule proto=tcp,dport=25", vm_frame(ip4() / TCP(sport=3000, dport=25)), XDP_DROP),
    ("tcp/22: no rule", vm_frame(ip4() / TCP(sport=3000, dport=22)), XDP_PASS),
    ("udp/53 to 10.9.9.9: address rule", vm_frame(ip4() / UDP(sport=3000, dport=53)), XDP_DROP),
    ("udp/53 to 10.9.9.7: address differs", vm_frame(ip4("10.9.9.7") / UDP(sport=3000, dport=53)), XDP_PASS),
    ("udp/9999 from sport 123: any-port rule with sport", vm_frame(ip4() / UDP(sport=123, dport=9999)), XDP_DROP),
    ("udp/9999 from sport 124", vm_frame(ip4() / UDP(sport=124, dport=9999)), XDP_PASS),
    ("udp/53 from sport 123 to 10.9.9.7: port rule misses, any-port rule hits",
     vm_frame(ip4("10.9.9.7") / UDP(sport=123, dport=53)), XDP_DROP),
    ("icmp echo: protocol rule", vm_frame(ip4() / ICMP(type=8, id=77)), XDP_DROP),
    ("ipv6 tcp/80: family rule, any address", vm_frame(ip6() / TCP(sport=3000, dport=80)), XDP_DROP),
    ("ipv4 tcp/80: not the rule's family", vm_frame(ip4() / TCP(sport=3000, dport=80)), XDP_PASS),
    ("ipv6 udp/53: the udp/53 rule is ipv4", vm_frame(ip6() / UDP(sport=3000, dport=53)), XDP_PASS),
    ("tcp/443 to 10.9.9.8: any-port address rule", vm_frame(ip4("10.9.9.8") / TCP(sport=3000, dport=443)), XDP_DROP),
    ("non-first udp fragment: no ports, sport rule cannot match",
     vm_frame(IP(src=VM_IP, dst=FAR, proto=17, frag=100) / (b"f" * 24)), XDP_PASS),
    ("802.1Q-tagged tcp/25 from the VM: parsed through the tag",
     Ether(src=MAC1, dst=OTHER) / Dot1Q(vlan=10) / ip4() / TCP(sport=3000, dport=25), XDP_DROP),
    ("spoofed source MAC", vm_frame(ip4() / TCP(sport=3000, dport=22), src=MAC2), XDP_DROP),
    ("ARP from the VM: not IP", vm_frame(ARP(hwsrc=MAC1, psrc=VM_IP, pdst=FAR)), XDP_PASS),
    ("IPv4 header cut short: malformed", bytes(vm_frame(ip4() / TCP(sport=3000, dport=22)))[:30], XDP_DROP),
]


def _flow(frame: bytes) -> Flow | None:
    pkt = Ether(frame)
    for layer, fam in ((IP, 2), (IPv6, 10)):
        if layer in pkt:
            ip = pkt[layer]
            proto = ip.proto if layer is IP else ip.nh
            frag = layer is IP and (ip.frag or ip.flags.MF)
            l4 = ip.payload
            sport = dport = 0
            if not frag and proto in (6, 17):
                sport, dport = l4.sport, l4.dport
            return Flow(fam, proto, ipaddress.ip_address(ip.src), ipaddress.ip_address(ip.dst), sport, dport,
                        bool(frag))
    return None


def test_acl_vm_rx_table(env):
    box, maps, progs = env
    maps.vm_add(LO, VmInfo(7, parse_mac(MAC1), 0, ipaddress.IPv4Address(VM_IP)))
    rules = [parse_rule(r)[1] for r in RX_RULES]
    for rule in rules:
        maps.acl_add(False, LO, rule)
    try:
        before = maps.counter_dict()
        for desc, frame, verdict in RX_TABLE:
            raw = bytes(frame)
            got, data = run(box, progs.fds["acl_vm_rx"], raw)
            assert got == verdict, desc
            assert data == raw, desc
            flow = _flow(raw)
            if flow is not None and Ether(raw).src == MAC1 and len(raw) > 40:
                assert decide(rules, flow, from_vm=True) == (verdict == XDP_DROP), f"reference: {desc}"
        delta = {k: v - before[k] for k, v in maps.counter_dict().items()}
        assert delta["from_vm_acl_drop"] == 8
        assert delta["from_vm_spoof_drop"] == 1
        assert delta["malformed"] == 1
        assert delta["from_vm_pass"] == 7
        assert {r for _, r in maps.acls(False)} == set(rules)
    finally:
        for rule in rules:
            maps.acl_del(False, LO, rule)
        maps.vm_del(LO)


# -- xdp_vmegress -----------------------------------------------------------------------------------
def egress_flows():
    """(description, frame, sport, dport, saddr, daddr) of 24 flows: UDP, TCP, ICMP, IPv6."""
    out = []
    for i in range(12):
        f = vm_frame(ip4() / UDP(sport=2000 + 97 * i, dport=7000))
        out.append((f"udp sport {2000 + 97 * i}", f, 2000 + 97 * i, 7000, VM_IP, FAR))
    for i in range(6):
        f = vm_frame(ip4(f"10.9.{i}.1") / TCP(sport=40000 + i, dport=443))
        out.append((f"tcp to 10.9.{i}.1", f, 40000 + i, 443, VM_IP, f"10.9.{i}.1"))
    for i in range(3):
        f = vm_frame(ip4() / ICMP(type=8, code=0, id=100 + i))
        out.append((f"icmp echo id {100 + i}", f, 8 << 8, 100 + i, VM_IP, FAR))  # type/code, id
    for i in range(3):
        f = vm_frame(ip6() / UDP(sport=5000 + i, dport=53))
        out.append((f"ipv6 udp sport {5000 + i}", f, 5000 + i, 53, "fd00::1", "fd00::9"))
    return out


def push_tag(frame: bytes, vlan: int) -> bytes:
    pkt = Ether(frame)
    inner = pkt.payload
    return bytes(Ether(dst=pkt.dst, src=pkt.src) / Dot1Q(vlan=vlan) / inner)


@pytest.mark.parametrize("leg", [0, 1])
def test_vmegress_bond_hash_table(env, leg):
    box, maps, progs = env
    up0 = box.ifindex("up0")
    maps.vm_add(LO, VmInfo(7, parse_mac(MAC1), 10, ipaddress.IPv4Address(VM_IP)))

    def only_leg():
        for i in range(2):
            bpfsys.map_delete(maps.fds["uplinks"], struct.pack("<I", i))
        bpfsys.map_update(maps.fds["uplinks"], struct.pack("<I", leg), struct.pack("<I", up0))
    box.call(only_leg)
    try:
        flows = egress_flows()
        picked = [bond_hash(sp, dp, ipaddress.ip_address(s), ipaddress.ip_address(d), 2) for _, _, sp, dp, s, d in flows]
        assert 0 < picked.count(leg) < len(flows)  # the table exercises both legs
        before = maps.counter_dict()
        for (desc, frame, *_), want in zip(flows, picked):
            raw = bytes(frame)
            got, data = run(box, progs.fds["xdp_vmegress"], raw)
            assert got == (XDP_REDIRECT if want == leg else XDP_PASS), desc
            assert data == push_tag(raw, 10), desc
        bcast = bytes(vm_frame(ip4() / UDP(sport=1, dport=2), dst="ff:ff:ff:ff:ff:ff"))
        assert run(box, progs.fds["xdp_vmegress"], bcast) == (XDP_PASS, bcast)
        spoof = bytes(vm_frame(ip4() / UDP(sport=1, dport=2), src=MAC2))
        assert run(box, progs.fds["xdp_vmegress"], spoof)[0] == XDP_DROP
        delta = {k: v - before[k] for k, v in maps.counter_dict().items()}
        assert delta["egress_redirect"] == picked.count(leg)
        assert delta["egress_bcast"] == 1
        assert delta["from_vm_spoof_drop"] == 1
    finally:
        maps.vm_del(LO)


def test_vmegress_untagged_vm(env):
    """A VM without a VLAN: redirected as it came."""
    box, maps, progs = env
    up0 = box.ifindex("up0")
    maps.vm_add(LO, VmInfo(8, parse_mac(MAC1)))
    box.call(lambda: maps.set_uplinks([up0, up0]))
    try:
        raw = bytes(vm_frame(ip4() / UDP(sport=1234, dport=7000)))
        assert run(box, progs.fds["xdp_vmegress"], raw) == (XDP_REDIRECT, raw)
    finally:
        maps.vm_del(LO)


def test_rules_keyed_by_port(env):
    """A rule of another VM port never applies (the key carries the port's ifindex)."""
    box, maps, progs = env
    maps.vm_add(LO, VmInfo(7, parse_mac(MAC1)))
    rule = parse_rule("proto=tcp,dport=25")[1]
    maps.acl_add(False, box.ifindex("tap1"), rule)
    try:
        raw = bytes(vm_frame(ip4() / TCP(sport=3000, dport=25)))
        assert run(box, progs.fds["acl_vm_rx"], raw) == (XDP_PASS, raw)
        assert isinstance(rule, AclRule)
    finally:
        maps.acl_del(False, box.ifindex("tap1"), rule)
        maps.vm_del(LO)
