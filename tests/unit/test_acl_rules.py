"""The per-VM ACL rule syntax (seed 003's `[-][ipv4,|ipv6,]proto=tcp,addr=...,dport=25,sport=...`),
its map layouts, and the reference decision order of bpf/acl.h."""

from __future__ import annotations

import ipaddress

import pytest

from pfrps.errors import UsageError
from pfrps.xdp.acl import ACL_KEY, ACL_VAL, AF_INET, AF_INET6, AclRule, Flow, decide, format_rule, parse_rule

IP = ipaddress.ip_address

VALID = [
    # text, delete, protocol, dport, sport, family, addr
    ("proto=tcp,dport=25", False, 6, 25, 0, 0, None),
    ("-proto=tcp,dport=25", True, 6, 25, 0, 0, None),
    ("ipv4,proto=udp,addr=10.9.9.9,dport=53", False, 17, 53, 0, AF_INET, "10.9.9.9"),
    ("ipv6,proto=tcp,addr=::,dport=80", False, 6, 80, 0, AF_INET6, "::"),
    ("proto=udp,sport=123", False, 17, 0, 123, 0, None),
    ("proto=icmp", False, 1, 0, 0, 0, None),
    ("proto=ipv6-icmp", False, 58, 0, 0, 0, None),
    ("proto=47", False, 47, 0, 0, 0, None),
    ("addr=fd00::9,proto=tcp", False, 6, 0, 0, AF_INET6, "fd00::9"),
]


@pytest.mark.parametrize("text,delete,proto,dport,sport,family,addr", VALID)
def test_valid_rules(text, delete, proto, dport, sport, family, addr):
    got_delete, rule = parse_rule(text)
    assert got_delete is delete
    assert (rule.protocol, rule.dport, rule.sport, rule.family) == (proto, dport, sport, family)
    assert rule.addr == (IP(addr) if addr else None)
    assert parse_rule(format_rule(rule)) == (False, rule)  # show prints what add takes


MALFORMED = [
    ("proto=tcp,dport=abc", "'dport=abc'"),
    ("proto=tcp,dport=70000", "'dport=70000'"),
    ("proto=tcp,dport=0", "'dport=0'"),
    ("proto=tcp,colour=red", "'colour=red'"),
    ("proto=nosuchproto", "'proto=nosuchproto'"),
    ("proto=300", "'proto=300'"),
    ("proto=tcp,addr=10.0.0.300", "'addr=10.0.0.300'"),
    ("ipv6,proto=tcp,addr=10.0.0.1", "'addr=10.0.0.1'"),
    ("addr=10.0.0.1,ipv6,proto=tcp", "'ipv6'"),
    ("proto=icmp,dport=3", "'dport=3'"),
    ("proto=tcp,proto=udp", "'proto=udp'"),
    ("dport=25", "no proto="),
    ("-", "empty ACL rule"),
    ("", "empty ACL rule"),
    ("proto=tcp,,dport=25", "token ''"),
]


@pytest.mark.parametrize("text,names", MALFORMED)
def test_malformed_rules_name_the_token(text, names):
    with pytest.raises(UsageError) as info:
        parse_rule(text)
    line = info.value.one_line()
    assert names in line and "\n" not in line
    assert info.value.exit_status == 2


def test_key_and_value_layout():
    _, rule = parse_rule("ipv4,proto=udp,addr=10.9.9.9,dport=53,sport=1024")
    assert ACL_KEY.size == 8 and ACL_VAL.size == 20
    assert rule.key(7) == bytes([7, 0, 0, 0, 0, 53, 17, 0])  # ifindex LE, port BE, protocol, pad
    assert rule.value() == bytes([10, 9, 9, 9]) + bytes(12) + bytes([AF_INET, 1, 4, 0])
    assert AclRule.unpack(rule.key(7), rule.value()) == (7, rule)
    _, six = parse_rule("ipv6,proto=tcp,addr=fd00::9,dport=80")
    assert six.value()[:16] == IP("fd00::9").packed and six.value()[16:18] == bytes([AF_INET6, 1])
    assert AclRule.unpack(six.key(1), six.value()) == (1, six)


def flow(proto=6, sport=3000, dport=25, src="192.0.2.1", dst="10.1.0.1", frag=False):
    fam = AF_INET6 if ":" in src else AF_INET
    return Flow(fam, proto, IP(src), IP(dst), sport, dport, frag)


RULES = [parse_rule(r)[1] for r in ("proto=tcp,dport=25", "ipv4,proto=udp,addr=192.0.2.1,dport=53",
                                     "proto=udp,sport=123", "proto=icmp", "proto=tcp,dport=22,sport=1000")]
DECISIONS = [
    # description, flow, to the VM?, dropped?
    ("port rule", flow(), True, True),
    ("port rule, other port", flow(dport=26), True, False),
    ("address rule: the source of traffic to the VM", flow(17, dport=53), True, True),
    ("address rule: another source", flow(17, dport=53, src="192.0.2.2"), True, False),
    ("address rule: from the VM the peer is the destination", flow(17, dport=53, src="10.1.0.1", dst="192.0.2.1"),
     False, True),
    ("address rule: IPv6 never matches an ipv4 rule", flow(17, dport=53, src="fd00::1", dst="fd00::2"), True, False),
    ("any-port rule with sport", flow(17, sport=123, dport=9), True, True),
    ("any-port rule, other sport", flow(17, sport=124, dport=9), True, False),
    ("port rule misses on the address, any-port rule hits", flow(17, sport=123, dport=53, src="192.0.2.9"), True, True),
    ("protocol without ports", flow(1, 0, 0), True, True),
    ("dport and sport both needed", flow(dport=22, sport=1000), True, True),
    ("dport without the sport", flow(dport=22, sport=1001), True, False),
    ("fragment: no ports, only any-port rules", flow(17, 0, 0, frag=True), True, False),
]


@pytest.mark.parametrize("desc,fl,to_vm,dropped", DECISIONS, ids=[d[0] for d in DECISIONS])
def test_decision_order(desc, fl, to_vm, dropped):
    assert decide(RULES, fl, from_vm=not to_vm) is dropped
