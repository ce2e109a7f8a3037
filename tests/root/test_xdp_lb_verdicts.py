"""xdp_lb through BPF_PROG_TEST_RUN, katran/cilium style: (description, input frame, expected
verdict, expected output frame), in a fresh network namespace of the test's own.

Every expected frame is built with scapy from scratch (checksums computed by scapy), so the
program's incremental IPv4/TCP/UDP checksum updates must equal them byte for byte. The rows
run in order on one program: the reply rows use the flows the earlier rows created.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from pfrps import bpfsys
from pfrps.xdp import maglev
from pfrps.xdp.lab import Lab, call_in_netns
from pfrps.xdp.lb_backends import Backend
from pfrps.xdp.lb_maps import LoadBalancer
from pfrps.xdp.runner import stats_table

pytestmark = pytest.mark.root

XDP_DROP, XDP_PASS, XDP_TX = 1, 2, 3
VIP, LB_MAC = "10.0.0.10", "de:ad:be:ef:00:06"
CLIENT, CLIENT_MAC = "10.0.0.1", "de:ad:be:ef:00:00"
BACKENDS = [Backend("10.0.0.2", "de:ad:be:ef:00:02"), Backend("10.0.0.3", "de:ad:be:ef:00:03"),
            Backend("10.0.0.4", "de:ad:be:ef:00:04")]
MAC_OF = {b.ip: b.mac for b in BACKENDS}
RING = 251


def lb_predict(src: str, sport: int, dport: int, proto: int) -> str:
    table = maglev.maglev_table([b.ip for b in BACKENDS], RING)
    i = maglev.lookup(table, maglev.flow_hash(src, VIP, sport, dport, proto))[0]
    return BACKENDS[i].ip


def frame(src_mac, dst_mac, src, dst, l4, options=None) -> bytes:
    ip = IP(src=src, dst=dst, id=7, ttl=64, options=options) if options else IP(src=src, dst=dst, id=7, ttl=64)
    return bytes(Ether(src=src_mac, dst=dst_mac) / ip / l4)


def tcp(sport, dport, flags="S", payload=b""):
    return TCP(sport=sport, dport=dport, flags=flags, seq=1000, window=512) / payload


def udp(sport, dport, payload=b"q" * 20, chksum=None):
    return UDP(sport=sport, dport=dport, chksum=chksum) / payload if chksum is not None \
        else UDP(sport=sport, dport=dport) / payload


# A second client whose 5-tuple with the same source port lands on the same backend as the
# first: its NAT source port must differ (the backend would otherwise see one flow).
B1 = lb_predict(CLIENT, 40000, 8080, 6)
CLIENT2 = next(f"10.0.1.{i}" for i in range(1, 255) if lb_predict(f"10.0.1.{i}", 40000, 8080, 6) == B1)
NAT2 = next(p for p in [1024 + (int(maglev.flow_hash(CLIENT2, VIP, 40000, 8080, 6)[0]) + i * 7919) % 64512
                        for i in range(1, 8)])
B_UDP = lb_predict(CLIENT, 5353, 8080, 17)
B_OPT = lb_predict(CLIENT, 40001, 8080, 6)
CLIENT2_MAC = "02:00:00:00:01:02"

ARP_REQ = bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CLIENT, pdst=VIP, hwsrc=CLIENT_MAC))
PING = frame(CLIENT_MAC, LB_MAC, CLIENT, VIP, ICMP() / b"ping")
SYN = frame(CLIENT_MAC, LB_MAC, CLIENT, VIP, tcp(40000, 8080))
RST_FRAG = bytes(Ether(src=CLIENT_MAC, dst=LB_MAC) / IP(src=CLIENT, dst=VIP, flags="MF") / tcp(40009, 8080))

CASES = [
    ("ARP request for the VIP passes to the LB's stack", ARP_REQ, XDP_PASS, ARP_REQ),
    ("ICMP echo to the VIP passes (ping works)", PING, XDP_PASS, PING),
    ("TCP SYN client -> VIP:8080 goes to the Maglev backend, from the VIP, same source port",
     SYN, XDP_TX, frame(LB_MAC, MAC_OF[B1], VIP, B1, tcp(40000, 8080))),
    ("the same client's next segment keeps the backend (flow table)",
     frame(CLIENT_MAC, LB_MAC, CLIENT, VIP, tcp(40000, 8080, "A", b"GET / HTTP/1.0\r\n\r\n")), XDP_TX,
     frame(LB_MAC, MAC_OF[B1], VIP, B1, tcp(40000, 8080, "A", b"GET / HTTP/1.0\r\n\r\n"))),
    ("the backend's SYN-ACK goes back to the client, from the VIP",
     frame(MAC_OF[B1], LB_MAC, B1, VIP, tcp(8080, 40000, "SA")), XDP_TX,
     frame(LB_MAC, CLIENT_MAC, VIP, CLIENT, tcp(8080, 40000, "SA"))),
    ("a second client, same source port, same backend: another NAT source port",
     frame(CLIENT2_MAC, LB_MAC, CLIENT2, VIP, tcp(40000, 8080)), XDP_TX,
     frame(LB_MAC, MAC_OF[B1], VIP, B1, tcp(NAT2, 8080))),
    ("the backend's reply to that NAT port reaches the second client on its own port",
     frame(MAC_OF[B1], LB_MAC, B1, VIP, tcp(8080, NAT2, "SA", b"x" * 33)), XDP_TX,
     frame(LB_MAC, CLIENT2_MAC, VIP, CLIENT2, tcp(8080, 40000, "SA", b"x" * 33))),
    ("UDP client -> VIP:8080: UDP checksum updated",
     frame(CLIENT_MAC, LB_MAC, CLIENT, VIP, udp(5353, 8080)), XDP_TX,
     frame(LB_MAC, MAC_OF[B_UDP], VIP, B_UDP, udp(5353, 8080))),
    ("UDP reply with no checksum (0) stays without one",
     frame(MAC_OF[B_UDP], LB_MAC, B_UDP, VIP, udp(8080, 5353, chksum=0)), XDP_TX,
     frame(LB_MAC, CLIENT_MAC, VIP, CLIENT, udp(8080, 5353, chksum=0))),
    ("IPv4 with options (IHL 6): ports found after them, header checksum right",
     frame(CLIENT_MAC, LB_MAC, CLIENT, VIP, tcp(40001, 8080), options=b"\x01\x01\x01\x00"), XDP_TX,
     frame(LB_MAC, MAC_OF[B_OPT], VIP, B_OPT, tcp(40001, 8080), options=b"\x01\x01\x01\x00")),
    ("TCP to a port the VIP does not balance passes",
     frame(CLIENT_MAC, LB_MAC, CLIENT, VIP, tcp(40002, 22)), XDP_PASS,
     frame(CLIENT_MAC, LB_MAC, CLIENT, VIP, tcp(40002, 22))),
    ("TCP to another address passes",
     frame(CLIENT_MAC, LB_MAC, CLIENT, "10.0.0.99", tcp(40003, 8080)), XDP_PASS,
     frame(CLIENT_MAC, LB_MAC, CLIENT, "10.0.0.99", tcp(40003, 8080))),
    ("a frame to another MAC passes",
     frame(CLIENT_MAC, "02:00:00:00:00:99", CLIENT, VIP, tcp(40004, 8080)), XDP_PASS,
     frame(CLIENT_MAC, "02:00:00:00:00:99", CLIENT, VIP, tcp(40004, 8080))),
    ("a fragment (MF) passes: no ports to hash", RST_FRAG, XDP_PASS, RST_FRAG),
    ("a TCP header cut short passes", SYN[:14 + 20 + 12], XDP_PASS, SYN[:14 + 20 + 12]),
    ("a new flow from a backend's own address passes (no loop through the LB)",
     frame(MAC_OF["10.0.0.3"], LB_MAC, "10.0.0.3", VIP, tcp(41000, 8080)), XDP_PASS,
     frame(MAC_OF["10.0.0.3"], LB_MAC, "10.0.0.3", VIP, tcp(41000, 8080))),
]


@pytest.fixture(scope="module")
def outcome():
    """The program (3 backends, port 8080, Maglev table of 251) run on every row, in order,
    plus its counters afterwards."""
    with LoadBalancer(VIP, LB_MAC, ports=(8080,), ring_size=RING) as lb:
        lb.set_backends(BACKENDS)

        def run_all():
            return [bpfsys.prog_test_run_frame(lb.prog_fd, f) for _, f, _, _ in CASES]
        lab = Lab(prefix="lb-verdicts")  # XDP_TX does not transmit under a plain test run; if it did,
        try:                      # it would only reach this empty namespace
            results = call_in_netns(lab.add_ns("run"), run_all)
        finally:
            lab.destroy()
        counters = lb.backend_counters().totals()
        actions = stats_table(lb.mod).totals()
    return {"rows": results, "counters": counters, "actions": actions}


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0] for c in CASES])
def test_verdict_and_output(outcome, i):
    desc, frame_in, want_verdict, want_out = CASES[i]
    verdict, out = outcome["rows"][i]
    assert verdict == want_verdict, desc
    if out != want_out:  # show the difference field by field
        assert Ether(out).show(dump=True) == Ether(want_out).show(dump=True), desc
    assert out == want_out, desc


def test_backend_and_action_counters(outcome):
    """Frames each backend slot saw in each direction, and XDP actions, exactly."""
    c = outcome["counters"]
    to_b = {ip: row["to_backend_packets"] for ip, row in c.items()}
    to_c = {ip: row["to_client_packets"] for ip, row in c.items()}
    want_to_b = {b.ip: 0 for b in BACKENDS}
    want_to_c = dict(want_to_b)
    for _, f, verdict, out in CASES:
        if verdict == XDP_TX and Ether(out)[IP].dst in want_to_b:
            want_to_b[Ether(out)[IP].dst] += 1  # a client's packet, counted at its backend
        elif verdict == XDP_TX:
            want_to_c[Ether(f)[IP].src] += 1    # a backend's reply, counted at that backend
    assert sum(want_to_b.values()) == 5 and sum(want_to_c.values()) == 3
    assert to_b == want_to_b
    assert to_c == want_to_c
    n_tx = sum(1 for c in CASES if c[2] == XDP_TX)
    n_pass = sum(1 for c in CASES if c[2] == XDP_PASS)
    assert outcome["actions"]["XDP_TX"]["rx_packets"] == n_tx
    assert outcome["actions"]["XDP_PASS"]["rx_packets"] == n_pass
    assert outcome["actions"]["XDP_DROP"]["rx_packets"] == 0
