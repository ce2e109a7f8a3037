"""scapy helpers the BNG data-plane tests share (tests/root/test_bng_dataplane.py,
tests/root/test_bng_verdicts.py)."""

from __future__ import annotations

from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6


def hop(ip):
    """``ip`` (a scapy IP or IPv6 packet) after a router: TTL / hop limit - 1, the IPv4 header
    checksum computed from scratch; a new packet, ``ip`` is left as it is."""
    out = ip.copy()
    if out.version == 4:
        out.ttl -= 1
        del out.chksum
        return IP(bytes(out))
    out.hlim -= 1
    return IPv6(bytes(out))
