"""Layouts shared by bpf/cloud.h and pfrps.xdp.cloud_maps, the bond hash reference, and the
parsing of the entries pfrps-xdp l2fwd takes at start."""

from __future__ import annotations

import argparse
import ipaddress
import re

import pytest

from pfrps.bpfload import bpf_source_dir
from pfrps.errors import UsageError
from pfrps.xdp import cloud
from pfrps.xdp.cloud_maps import COUNTERS, DEVMAP_VAL, FDB_KEY, VM_INFO, VmInfo, bond_hash, format_mac, parse_mac
from pfrps.xdp.acl import ACL_KEY, ACL_VAL

IP = ipaddress.ip_address


def test_layouts_match_the_c_header():
    text = (bpf_source_dir() / "cloud.h").read_text()
    sizes = dict(re.findall(r"_Static_assert\(sizeof\(struct (\w+)\) == (\d+)", text))
    assert {k: int(v) for k, v in sizes.items()} == {
        "fdb_key": FDB_KEY.size, "cloud_devmap_val": DEVMAP_VAL.size, "vm_info": VM_INFO.size,
        "acl_key": ACL_KEY.size, "acl_val": ACL_VAL.size}
    enum = text[text.index("enum cloud_counter"):text.index("CLOUD_N_COUNTERS")]
    assert len(re.findall(r"^\s+CLOUD_\w+", enum, re.M)) == len(COUNTERS)


def test_bond_hash_by_hand():
    # ports 0x1234, 0x5678 -> LE u32 0x78563412; ^ 10.0.0.1 (0x0100000a) ^ 10.0.0.2 (0x0200000a)
    # = 0x7b563412; ^= >>16 -> 0x7b564f44; ^= >>8 -> 0x7b2d190b; >>1 -> 0x3d968c85
    h = bond_hash(0x1234, 0x5678, IP("10.0.0.1"), IP("10.0.0.2"), 2 ** 32)
    assert h == 0x3D968C85
    assert bond_hash(0x1234, 0x5678, IP("10.0.0.1"), IP("10.0.0.2"), 2) == 1
    assert bond_hash(0x1234, 0x5678, IP("10.0.0.2"), IP("10.0.0.1"), 2) == 1  # symmetric in the addresses
    # IPv6: each address folds to the xor of its words
    a, b = IP("fd00::1"), IP("fd00::2")
    assert bond_hash(1, 2, a, b, 2 ** 32) == bond_hash(1, 2, IP("0.0.0.1"), IP("0.0.0.2"), 2 ** 32)


def test_bond_hash_spreads_flows():
    legs = [bond_hash(10000 + i, 80, IP("10.1.0.1"), IP("10.9.0.1"), 2) for i in range(1000)]
    assert 400 < legs.count(0) < 600


def test_vm_info_round_trip():
    vm = VmInfo(9, parse_mac("52:54:00:00:00:09"), 100, IP("10.1.0.9"), IP("fd00::9"))
    raw = vm.pack()
    assert len(raw) == 32 and raw[10:12] == (100).to_bytes(2, "big")
    assert VmInfo.unpack(raw) == vm
    assert VmInfo.unpack(VmInfo(1, bytes(6)).pack()) == VmInfo(1, bytes(6))


@pytest.mark.parametrize("text", ["52:54:00:00:00", "52:54:00:00:00:zz", "5254.0000.0001", "", "1:2:3:4:5:666"])
def test_bad_macs(text):
    with pytest.raises(UsageError, match="not a MAC address"):
        parse_mac(text)


def test_mac_round_trip():
    assert format_mac(parse_mac("52:54:0:a:B:ff")) == "52:54:00:0a:0b:ff"


def args(**kw):
    base = dict(vm=[], fdb=[], acl_to_vm=[], acl_from_vm=[], config=None)
    return argparse.Namespace(**{**base, **kw})


def test_start_entries_in_order():
    got = cloud._start_entries(args(fdb=["52:54:00:00:00:01,10,tap1,noacl"], acl_to_vm=["tap1:proto=tcp,dport=25"],
                                    vm=["1,tap1,52:54:00:00:00:01,vlan=10,4=10.1.0.1"]))
    assert [(n, a) for n, a, _ in got] == [("vm", "add"), ("fdb", "add"), ("acl", "add")]
    vm, fdb, acl = (ns for _, _, ns in got)
    assert (vm.vmid, vm.dev, vm.vlan, vm.v4, vm.v6) == (1, "tap1", 10, "10.1.0.1", None)
    assert (fdb.mac, fdb.vlan, fdb.dev, fdb.no_acl) == ("52:54:00:00:00:01", 10, "tap1", True)
    assert (acl.dev, acl.to_vm, acl.rule) == ("tap1", True, "proto=tcp,dport=25")


@pytest.mark.parametrize("kw,words", [
    (dict(vm=["x,tap1,52:54:00:00:00:01"]), "bad --vm"),
    (dict(vm=["1,tap1,52:54:00:00:00:01,colour=red"]), "bad --vm"),
    (dict(fdb=["52:54:00:00:00:01,ten,tap1"]), "bad --fdb"),
    (dict(fdb=["52:54:00:00:00:01,10"]), "bad --fdb"),
    (dict(acl_to_vm=["proto=tcp,dport=25"]), "bad ACL option"),
    (dict(acl_from_vm=["tap1:proto=tcp,dport=x"]), "'dport=x'"),
])
def test_bad_start_entries(kw, words):
    with pytest.raises(UsageError) as info:
        cloud._start_entries(args(**kw))
    assert words in info.value.one_line()


def test_config_file(tmp_path):
    conf = tmp_path / "host.conf"
    conf.write_text("# comment\n\nvm add --id 2 --dev tap2 --mac 52:54:00:00:00:02 -4 10.2.0.1\n"
                    "acl add --dev tap2 --from-vm proto=udp,dport=53  # no DNS\n"
                    "fdb add --mac 52:54:00:00:00:02 --vlan 20 --dev tap2\n")
    got = cloud._start_entries(args(config=str(conf)))
    assert [n for n, _, _ in got] == ["vm", "fdb", "acl"]
    conf.write_text("vm add --id 2 --dev tap2 --mac 52:54:00:00:00:02\nacl add --dev tap2 --to-vm proto=tcp,dport=x\n")
    with pytest.raises(UsageError, match=r"host.conf:2: malformed ACL rule .*'dport=x'"):
        cloud._start_entries(args(config=str(conf)))
    conf.write_text("fdb add --vlan 20 --dev tap2\n")
    with pytest.raises(UsageError, match=r"host.conf:1: .*--mac"):
        cloud._start_entries(args(config=str(conf)))
    with pytest.raises(UsageError, match="cannot read --config"):
        cloud._start_entries(args(config=str(tmp_path / "missing.conf")))
