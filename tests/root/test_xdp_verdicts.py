"""case04/case05 programs through BPF_PROG_TEST_RUN, katran/cilium style: per row the input
frame, the expected verdict and the expected output bytes; then the stats map's per-action
counts equal the rows run. Every run happens in a fresh namespace of the test's own
(``tests.xdp_helpers``): redirecting and cloning programs would otherwise transmit into ours.
"""

from __future__ import annotations

import os
import random
import socket

import numpy as np
import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from pfrps import bpfsys
from pfrps.bpfload import CompiledModule, builtin_program
from pfrps.links import rx_packets
from pfrps.xdp.attach import BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_XDP
from pfrps.xdp.counters import XDP_ACTIONS, percpu_reader
from tests.xdp_helpers import NetnsBox, fresh_netns

pytestmark = pytest.mark.root

ABORTED, DROP, PASS, TX, REDIRECT = range(5)
TC_ACT_SHOT = 2
SENDER = "02:00:00:00:00:01"
NEXT_HOP = "02:00:00:00:01:02"    # 10.0.1.2 / fd00:1::2 behind veth1 (static neighbour)
UNKNOWN = "02:00:00:00:00:99"


def stats(mod: CompiledModule) -> list[int]:
    """Frames counted per XDP action slot, summed over CPUs."""
    return percpu_reader(mod.table("xdp_stats_map"), 5)()[:, 0].astype(int).tolist()


def expect_counts(rows) -> list[int]:
    counts = [0] * 5
    for row in rows:
        counts[row[2]] += 1
    return counts


def run_rows(box: NetnsBox, fd: int, rows, setup=None) -> list[tuple[int, bytes]]:
    """In a child inside ``box``: ``setup()`` (DEVMAP writes resolve there), then every row."""
    def child():
        if setup is not None:
            setup()
        return [bpfsys.prog_test_run_frame(fd, bytes(r[1])) for r in rows]
    return box.call(child)


def check_rows(rows, results) -> None:
    for (desc, frame, verdict, want), (got_verdict, got_out) in zip(rows, results):
        assert (desc, got_verdict) == (desc, verdict)
        assert (desc, got_out.hex()) == (desc, bytes(want).hex())


# -- fib ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fib_box():
    """veth0 (ingress, 10.0.0.1, fd00::1) and veth1 (egress, 10.0.1.1, fd00:1::1, static
    neighbours 10.0.1.2 / fd00:1::2 -> NEXT_HOP); blackhole/unreachable/prohibit routes;
    forwarding on."""
    with fresh_netns("xdp-verdicts", pairs=(("veth0", "peer0"), ("veth1", "peer1")), ipv6=True) as box:
        from pfrps.topology import _write_sysctl

        for knob in ("net/ipv4/conf/all/forwarding", "net/ipv6/conf/all/forwarding"):
            _write_sysctl(box.name, knob, "1")
        with box.ipr() as ipr:
            v0, v1 = box.ifindex("veth0"), box.ifindex("veth1")
            ipr.addr("add", index=v0, address="10.0.0.1", prefixlen=24)
            ipr.addr("add", index=v1, address="10.0.1.1", prefixlen=24)
            ipr.addr("add", index=v0, address="fd00::1", prefixlen=64)
            ipr.addr("add", index=v1, address="fd00:1::1", prefixlen=64)
            ipr.neigh("add", dst="10.0.1.2", lladdr=NEXT_HOP, ifindex=v1, state=0x80)
            ipr.neigh("add", dst="fd00:1::2", lladdr=NEXT_HOP, ifindex=v1, state=0x80, family=socket.AF_INET6)
            for dst, kind in (("10.9.0.0", "blackhole"), ("10.8.0.0", "unreachable"), ("10.7.0.0", "prohibit")):
                ipr.route("add", dst=dst, dst_len=16, type=kind)
        yield box


@pytest.fixture(scope="module")
def fib_prog():
    with CompiledModule(builtin_program("xdp_l3fwd_fib.bpf.c")) as mod:
        fd = mod.load("pfrps_fwd_fib", prog_type=BPF_PROG_TYPE_XDP)
        yield mod, fd
        os.close(fd)


def v4(dst: str, ttl: int = 64, src_mac: str = SENDER, dst_mac: str = "", **kw):
    return Ether(src=src_mac, dst=dst_mac or "02:00:00:00:00:fe") / IP(src="10.0.0.2", dst=dst, ttl=ttl, **kw) \
        / ICMP(id=7, seq=1) / (b"x" * 32)


def v6(dst: str, hlim: int = 64):
    return Ether(src=SENDER, dst="02:00:00:00:00:fe") / IPv6(src="fd00::2", dst=dst, hlim=hlim) \
        / UDP(sport=4000, dport=5000) / (b"y" * 16)


def forwarded(frame, egress_mac: str):
    """What the FIB program should emit: next hop's MAC, egress MAC as source, TTL/hlim - 1,
    the IPv4 checksum as scapy computes it from scratch."""
    out = frame.copy()
    out[Ether].dst, out[Ether].src = NEXT_HOP, egress_mac
    if IP in out:
        out[IP].ttl -= 1
        del out[IP].chksum
    else:
        out[IPv6].hlim -= 1
    return Ether(bytes(out))


def fib_rows(box: NetnsBox):
    egress = box.mac("veth1")
    rows = [
        ("IPv4 to 10.0.1.2: forwarded, TTL 63, checksum from scratch", v4("10.0.1.2"), REDIRECT,
         forwarded(v4("10.0.1.2"), egress)),
        ("IPv4 TTL 2: forwarded with TTL 1", v4("10.0.1.2", ttl=2), REDIRECT, forwarded(v4("10.0.1.2", ttl=2), egress)),
        ("IPv4 TTL 1: passes (the kernel sends time exceeded)", v4("10.0.1.2", ttl=1), PASS, v4("10.0.1.2", ttl=1)),
        ("IPv4 TTL 0: passes", v4("10.0.1.2", ttl=0), PASS, v4("10.0.1.2", ttl=0)),
        ("IPv4 with no neighbour yet (10.0.1.3): passes", v4("10.0.1.3"), PASS, v4("10.0.1.3")),
        ("IPv4 to a blackhole route: dropped", v4("10.9.0.1"), DROP, v4("10.9.0.1")),
        ("IPv4 to an unreachable route: dropped", v4("10.8.0.1"), DROP, v4("10.8.0.1")),
        ("IPv4 to a prohibit route: dropped", v4("10.7.0.1"), DROP, v4("10.7.0.1")),
        ("IPv6 to fd00:1::2: forwarded, hop limit 63", v6("fd00:1::2"), REDIRECT, forwarded(v6("fd00:1::2"), egress)),
        ("IPv6 hop limit 1: passes", v6("fd00:1::2", hlim=1), PASS, v6("fd00:1::2", hlim=1)),
        ("ARP: passes", Ether(src=SENDER, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.2", pdst="10.0.0.1"), PASS,
         Ether(src=SENDER, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.2", pdst="10.0.0.1")),
        ("Ethernet header only, IPv4 ethertype: passes", bytes(Ether(src=SENDER, type=0x0800)), PASS,
         bytes(Ether(src=SENDER, type=0x0800))),
        ("IPv4 header cut at 10 bytes: passes", bytes(v4("10.0.1.2"))[:24], PASS, bytes(v4("10.0.1.2"))[:24]),
        ("IPv6 header cut at 20 bytes: passes", bytes(v6("fd00:1::2"))[:34], PASS, bytes(v6("fd00:1::2"))[:34]),
    ]
    return rows


def test_fib_table(fib_box, fib_prog):
    mod, fd = fib_prog
    before = stats(mod)
    tx = mod.table("tx_port")
    rows = fib_rows(fib_box)
    v1 = fib_box.ifindex("veth1")

    def fill():
        tx[tx.Key(v1)] = tx.Leaf(v1)  # written inside the namespace: the ifindex is veth1's there
    check_rows(rows, run_rows(fib_box, fd, rows, setup=fill))
    got = np.subtract(stats(mod), before).tolist()
    assert got == expect_counts(rows)


def test_fib_checksum_matches_scapy_for_random_headers(fib_box, fib_prog):
    """300 random IPv4 headers (TOS, id, flags, TTL 2..255, source): the incremental checksum
    after the TTL decrement equals the one computed from scratch, every time."""
    mod, fd = fib_prog
    tx = mod.table("tx_port")
    v1 = fib_box.ifindex("veth1")
    rng = random.Random(7)
    frames = [v4("10.0.1.2", ttl=rng.randint(2, 255), tos=rng.randrange(0, 256, 4), id=rng.randrange(65536),
                 flags=rng.choice(["", "DF"])) for _ in range(300)]
    for f in frames:
        f[IP].src = f"10.0.0.{rng.randint(2, 254)}"
    rows = [("random", f, REDIRECT, forwarded(f, fib_box.mac("veth1"))) for f in frames]

    def fill():
        tx[tx.Key(v1)] = tx.Leaf(v1)
    check_rows(rows, run_rows(fib_box, fd, rows, setup=fill))


def test_fib_egress_not_in_devmap_passes(fib_box):
    """tx_port empty: the redirect_map miss returns XDP_PASS (its flags), never a silent drop."""
    with CompiledModule(builtin_program("xdp_l3fwd_fib.bpf.c")) as mod:
        fd = mod.load("pfrps_fwd_fib", prog_type=BPF_PROG_TYPE_XDP)
        try:
            rows = fib_rows(fib_box)[:1]
            (verdict, _out), = run_rows(fib_box, fd, rows)
            assert verdict == PASS
            assert stats(mod)[PASS] == 1
        finally:
            os.close(fd)


# -- hardcoded, map, pass ------------------------------------------------------------------------
@pytest.fixture
def box():
    with fresh_netns("xdp-verdicts", pairs=(("veth0", "peer0"), ("veth1", "peer1"))) as b:
        yield b


def with_dst(frame, mac: str):
    out = Ether(bytes(frame))
    out[Ether].dst = mac
    return out


def test_hardcoded_table(box):
    dst = "52:54:00:12:34:56"
    cflags = [f"-DL3FWD_IFINDEX={box.ifindex('veth1')}", "-DL3FWD_DST_MAC=0x525400123456ULL"]
    rows = [
        ("IPv4: h_dest rewritten, redirected", v4("10.0.1.2"), REDIRECT, with_dst(v4("10.0.1.2"), dst)),
        ("IPv6: the same, whatever the protocol", v6("fd00:1::2"), REDIRECT, with_dst(v6("fd00:1::2"), dst)),
        ("ARP broadcast: redirected too (hardcoded forwards everything)",
         Ether(src=SENDER, dst="ff:ff:ff:ff:ff:ff") / ARP(), REDIRECT, with_dst(Ether(src=SENDER) / ARP(), dst)),
        ("TTL 1: still redirected (no IP parsing in this mode)", v4("10.0.1.2", ttl=1), REDIRECT,
         with_dst(v4("10.0.1.2", ttl=1), dst)),
    ]
    with CompiledModule(builtin_program("xdp_l3fwd_hardcoded.bpf.c"), cflags) as mod:
        fd = mod.load("pfrps_fwd_hard", prog_type=BPF_PROG_TYPE_XDP)
        try:
            check_rows(rows, run_rows(box, fd, rows))
            assert stats(mod) == expect_counts(rows)
        finally:
            os.close(fd)


def test_map_table(box):
    dst = "52:54:00:aa:bb:cc"
    rows = [
        ("known source MAC: h_dest from the map, redirected to tx_port[0]", v4("10.0.1.2"), REDIRECT,
         with_dst(v4("10.0.1.2"), dst)),
        ("known source, IPv6", v6("fd00:1::2"), REDIRECT, with_dst(v6("fd00:1::2"), dst)),
        ("unknown source MAC: passes unchanged", v4("10.0.1.2", src_mac=UNKNOWN), PASS,
         v4("10.0.1.2", src_mac=UNKNOWN)),
        ("unknown source ARP: passes", Ether(src=UNKNOWN, dst="ff:ff:ff:ff:ff:ff") / ARP(), PASS,
         Ether(src=UNKNOWN, dst="ff:ff:ff:ff:ff:ff") / ARP()),
    ]
    with CompiledModule(builtin_program("xdp_l3fwd_map.bpf.c")) as mod:
        fd = mod.load("pfrps_fwd_map", prog_type=BPF_PROG_TYPE_XDP)
        try:
            params, tx = mod.table("redirect_params"), mod.table("tx_port")
            key, leaf = params.Key(), params.Leaf()
            key.addr[:] = list(bytes.fromhex(SENDER.replace(":", "")))
            leaf.addr[:] = list(bytes.fromhex(dst.replace(":", "")))
            params[key] = leaf
            v1 = box.ifindex("veth1")
            # tx_port not filled yet: a known source still passes (redirect_map's miss = its flags)
            (verdict, _), = run_rows(box, fd, rows[:1])
            assert verdict == PASS

            def fill():
                tx[tx.Key(0)] = tx.Leaf(v1)
            check_rows(rows, run_rows(box, fd, rows, setup=fill))
            counts = expect_counts(rows)
            counts[PASS] += 1
            assert stats(mod) == counts
        finally:
            os.close(fd)


def test_pass_table(box):
    rows = [("IPv4 passes unchanged", v4("10.0.1.2"), PASS, v4("10.0.1.2")),
            ("ARP passes unchanged", Ether(src=SENDER) / ARP(), PASS, Ether(src=SENDER) / ARP()),
            ("14-byte frame passes", bytes(Ether(src=SENDER, type=0x88b5)), PASS, bytes(Ether(src=SENDER, type=0x88b5)))]
    with CompiledModule(builtin_program("xdp_pass.bpf.c")) as mod:
        fd = mod.load("pfrps_xdp_pass", prog_type=BPF_PROG_TYPE_XDP)
        try:
            check_rows(rows, run_rows(box, fd, rows))
            assert stats(mod) == [0, 0, 3, 0, 0]
            # bytes counted too: the sum of the frame lengths
            table = percpu_reader(mod.table("xdp_stats_map"), 5)()
            assert int(table[PASS, 1]) == sum(len(bytes(r[1])) for r in rows)
        finally:
            os.close(fd)


# -- case05 -----------------------------------------------------------------------------------------
def test_xdp_broadcast_verdict(box):
    rows = [("ARP request: broadcast (XDP_REDIRECT), frame unchanged",
             Ether(src=SENDER, dst="ff:ff:ff:ff:ff:ff") / ARP(), REDIRECT,
             Ether(src=SENDER, dst="ff:ff:ff:ff:ff:ff") / ARP())]
    with CompiledModule(builtin_program("xdp_broadcast.bpf.c")) as mod:
        fd = mod.load("pfrps_xdp_bcast", prog_type=BPF_PROG_TYPE_XDP)
        try:
            ports = mod.table("bcast_ports")
            idx = [box.ifindex("veth0"), box.ifindex("veth1")]

            def fill():
                for slot, i in enumerate(idx):
                    ports[ports.Key(slot)] = ports.Leaf(i)
            check_rows(rows, run_rows(box, fd, rows, setup=fill))
            assert stats(mod) == [0, 0, 0, 0, 1]
        finally:
            os.close(fd)


def test_tc_broadcast_clones_to_named_ports_only():
    """Three named ports of four: one frame -> TC_ACT_SHOT, 3 clones, one frame more at each
    named port's peer and none at the unnamed one (test runs really transmit: fresh netns)."""
    pairs = tuple((f"p{i}", f"q{i}") for i in range(4))
    with fresh_netns("xdp-verdicts", pairs=pairs) as b, CompiledModule(builtin_program("tc_broadcast.bpf.c")) as mod:
        fd = mod.load("pfrps_tc_bcast", prog_type=BPF_PROG_TYPE_SCHED_CLS)
        try:
            ports = mod.table("bcast_ports")
            for slot, name in enumerate(("p0", "p1", "p2")):
                ports[ports.Key(slot)] = ports.Leaf(b.ifindex(name))
            frame = bytes(Ether(src=SENDER, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.2"))

            def rx():
                return {q: rx_packets(q, b.name) for _, q in pairs}
            before = rx()
            (verdict, out), = run_rows(b, fd, [("", frame)])
            after = rx()
            assert verdict == TC_ACT_SHOT
            assert out == frame
            assert {q: after[q] - before[q] for q in after} == {"q0": 1, "q1": 1, "q2": 1, "q3": 0}
            counts = stats(mod)
            assert counts[TC_ACT_SHOT] == 1 and counts[4] == 3  # 1 frame switched, 3 clones
        finally:
            os.close(fd)


def test_xdp_actions_are_the_map_keys():
    assert XDP_ACTIONS[REDIRECT] == "XDP_REDIRECT" and XDP_ACTIONS[PASS] == "XDP_PASS"
