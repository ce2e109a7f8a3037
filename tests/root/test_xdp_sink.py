"""bpf/xdp_sink.bpf.c (the XDP benchmarks' receiver) through BPF_PROG_TEST_RUN, katran style:
input frame, expected verdict, expected output bytes (the sink never rewrites); then the stats
map's per-action counts equal the rows. The sink neither redirects nor clones, so the runs
transmit nothing.
"""

from __future__ import annotations

import os

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

from pfrps import bpfsys
from pfrps.bpfload import CompiledModule, builtin_program
from pfrps.xdp.attach import BPF_PROG_TYPE_XDP
from pfrps.xdp.counters import percpu_reader

pytestmark = pytest.mark.root

DROP, PASS = 1, 2
ETH = Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")
V4 = ETH / IP(src="10.0.0.2", dst="10.0.1.2")
PAD = b"\x41" * 18

ROWS = [
    ("UDP to port 9: dropped (delivered)", V4 / UDP(sport=40000, dport=9) / PAD, DROP),
    ("UDP to port 9, IPv4 options (IHL 6): dropped", ETH / IP(src="10.0.0.2", dst="10.0.1.2",
                                                           options=b"\x01\x01\x01\x00") / UDP(dport=9) / PAD, DROP),
    ("UDP to port 9000: passes (not the sink's port)", V4 / UDP(sport=40000, dport=9000) / PAD, PASS),
    ("UDP from port 9 to 40000: passes", V4 / UDP(sport=9, dport=40000) / PAD, PASS),
    ("ICMP echo: passes", V4 / ICMP() / PAD, PASS),
    ("ARP request: passes", ETH / ARP(pdst="10.0.1.2"), PASS),
    ("IPv6 UDP to port 9: passes (IPv4 only)", ETH / IPv6(dst="fd00:1::2") / UDP(dport=9) / PAD, PASS),
    ("IPv4 fragment at offset 8 with UDP-looking bytes: passes", ETH / IP(dst="10.0.1.2", proto=17, frag=1)
     / bytes(UDP(dport=9) / PAD), PASS),
    ("IPv4 header cut short: passes", bytes(V4 / UDP(dport=9))[:30], PASS),
    ("UDP header cut short: passes", bytes(V4 / UDP(dport=9))[:38], PASS),
    ("802.1Q VLAN 10, UDP to port 9: dropped (tag skipped)",
     ETH / Dot1Q(vlan=10) / IP(src="10.0.0.2", dst="10.0.1.2") / UDP(dport=9) / PAD, DROP),
    ("802.1ad S-tag, UDP to port 9: dropped", ETH / Dot1AD(vlan=20) / IP(dst="10.0.1.2") / UDP(dport=9) / PAD, DROP),
    ("802.1Q VLAN 10, UDP to port 9000: passes", ETH / Dot1Q(vlan=10) / IP(dst="10.0.1.2") / UDP(dport=9000) / PAD,
     PASS),
    ("802.1Q VLAN 10, ARP: passes", ETH / Dot1Q(vlan=10) / ARP(pdst="10.0.1.2"), PASS),
    ("QinQ (802.1ad + 802.1Q), UDP to port 9: passes (one tag skipped only)",
     ETH / Dot1AD(vlan=20) / Dot1Q(vlan=10) / IP(dst="10.0.1.2") / UDP(dport=9) / PAD, PASS),
    ("802.1Q tag cut short: passes", bytes(ETH / Dot1Q(vlan=10) / IP() / UDP(dport=9))[:16], PASS),
    ("802.1Q VLAN 10, IPv4 header cut short: passes", bytes(ETH / Dot1Q(vlan=10) / IP() / UDP(dport=9))[:34], PASS),
    ("802.1Q VLAN 10, UDP header cut short: passes", bytes(ETH / Dot1Q(vlan=10) / IP() / UDP(dport=9))[:42], PASS),
]

#: -DSINK_SKIP_VLAN=0: tagged frames pass, untagged ones are still dropped
NO_VLAN_ROWS = [
    ("SINK_SKIP_VLAN=0: 802.1Q VLAN 10, UDP to port 9: passes",
     ETH / Dot1Q(vlan=10) / IP(dst="10.0.1.2") / UDP(dport=9) / PAD, PASS),
    ("SINK_SKIP_VLAN=0: untagged UDP to port 9: dropped", V4 / UDP(dport=9) / PAD, DROP),
]


@pytest.fixture(scope="module")
def sink():
    with CompiledModule(builtin_program("xdp_sink.bpf.c"), ["-DSINK_UDP_DPORT=9"]) as mod:
        fd = mod.load("pfrps_xdp_sink", prog_type=BPF_PROG_TYPE_XDP)
        try:
            yield mod, fd
        finally:
            os.close(fd)


def test_sink_rows_and_counts(sink):
    mod, fd = sink
    for desc, frame, verdict in ROWS:
        got_verdict, got_out = bpfsys.prog_test_run_frame(fd, bytes(frame))
        assert (desc, got_verdict) == (desc, verdict)
        assert (desc, got_out.hex()) == (desc, bytes(frame).hex())
    counts = percpu_reader(mod.table("xdp_stats_map"), 5)()[:, 0].astype(int).tolist()
    assert counts == [0, sum(r[2] == DROP for r in ROWS), sum(r[2] == PASS for r in ROWS), 0, 0]


#: -DSINK_PROTO=6: the LB benchmark's connection-setup figure counts TCP SYNs to its port
TCP_ROWS = [
    ("SINK_PROTO=6: TCP SYN to port 8080: dropped (delivered)",
     V4 / TCP(sport=40000, dport=8080, flags="S"), DROP),
    ("SINK_PROTO=6: TCP to port 8081: passes", V4 / TCP(sport=40000, dport=8081, flags="S"), PASS),
    ("SINK_PROTO=6: UDP to port 8080: passes (not TCP)", V4 / UDP(sport=40000, dport=8080) / PAD, PASS),
]


@pytest.mark.parametrize("cflags,rows", [(["-DSINK_UDP_DPORT=9", "-DSINK_SKIP_VLAN=0"], NO_VLAN_ROWS),
                                          (["-DSINK_UDP_DPORT=8080", "-DSINK_PROTO=6"], TCP_ROWS)],
                         ids=["no-vlan-skip", "tcp"])
def test_sink_variants(cflags, rows):
    """The compile-time knobs: each row's verdict, the frame unchanged."""
    with CompiledModule(builtin_program("xdp_sink.bpf.c"), cflags) as mod:
        fd = mod.load("pfrps_xdp_sink", prog_type=BPF_PROG_TYPE_XDP)
        try:
            for desc, frame, verdict in rows:
                got_verdict, got_out = bpfsys.prog_test_run_frame(fd, bytes(frame))
                assert (desc, got_verdict, got_out.hex()) == (desc, verdict, bytes(frame).hex())
        finally:
            os.close(fd)


def _generator(frame: bytes, words: int, *knobs: str):
    """bpf/xdp_l2fwd_gen.bpf.c for ``frame`` in drop mode (-DGEN_DROP=1: nothing is
    redirected, so a test run transmits nothing); (module, fd)."""
    cflags = [f"-DGEN_WORDS={words}", "-DGEN_DROP=1", *knobs,
              *(f"-DGEN_W{i}={int.from_bytes(frame[8 * i:8 * i + 8], 'little'):#x}ULL" for i in range(words))]
    mod = CompiledModule(builtin_program("xdp_l2fwd_gen.bpf.c"), cflags)
    return mod, mod.load("xdp_l2fwd_gen", prog_type=BPF_PROG_TYPE_XDP)


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_generator_flows_keep_checksums(proto):
    """The generator's random source ports and addresses (GEN_FLOWS, GEN_SADDR_FLOWS) come out
    with IPv4 and UDP/TCP checksums equal to scapy's from scratch, 200 frames in a row."""
    l4 = UDP(sport=40000, dport=9000) / PAD if proto == "udp" else TCP(sport=1024, dport=8080, flags="S")
    frame = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")
                  / IP(src="10.1.0.1", dst="10.0.0.10", flags="DF") / l4)
    frame = frame + b"\0" * (64 - len(frame))  # room for the 8 restored words
    mod, fd = _generator(frame, 7 if proto == "tcp" else 6, "-DGEN_FLOWS=60000", "-DGEN_SADDR_FLOWS=65000",
                         f"-DGEN_TCP={int(proto == 'tcp')}")
    seen = set()
    try:
        for _ in range(200):
            verdict, out = bpfsys.prog_test_run_frame(fd, frame)
            assert verdict == DROP
            pkt = Ether(out)
            ip, l4got = pkt[IP], pkt[IP].payload
            seen.add((ip.src, l4got.sport))
            assert ip.dst == "10.0.0.10" and l4got.dport == (9000 if proto == "udp" else 8080)
            assert ip.src.startswith("10.1.")
            want = Ether(out)
            del want[IP].chksum
            del want[IP].payload.chksum
            want = Ether(bytes(want))
            assert (ip.chksum, l4got.chksum) == (want[IP].chksum, want[IP].payload.chksum)
    finally:
        os.close(fd)
        mod.close()
    assert len(seen) >= 190  # random tuples: a repeat among 200 of 3.9e9 is rare
