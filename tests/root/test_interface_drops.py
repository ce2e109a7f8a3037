"""Frames the interface drops before any packet socket sees them are reported (issue 2:
"a frame dropped must never go unreported"): ``if_rx_dropped``, from IFLA_STATS64.

A deterministic way to make the kernel count rx_dropped is a frame that no protocol handler
takes: with one ethertype the workers' sockets are bound to that ethertype only, so a frame of
another ethertype reaches no handler and ``__netif_receive_skb_core`` counts it as dropped.
With two ethertypes the sockets are bound to ETH_P_ALL and the steering program rejects the
frame instead, which the kernel does not count as a drop.
"""

from __future__ import annotations

import subprocess

import pytest

from pfrps.inject.macs import random_macs
from pfrps.hashing import expected_counts
from tests.helpers import PY, last_json
from tests.root.conftest import inject, run_until

pytestmark = pytest.mark.root

STRAY = 37
SEND_STRAY = """
import sys
from scapy.all import Ether, Raw, sendp
sendp(Ether(dst=sys.argv[2], src="02:00:00:00:00:01", type=0x88B5) / Raw(b"\\x00" * 46),
      iface=sys.argv[1], count=int(sys.argv[3]), verbose=False)
"""


def send_stray(topo, count: int) -> None:
    res = topo.run(topo.injector, [PY, "-c", SEND_STRAY, topo.injector_if, topo.node_mac, str(count)],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def stray_then_pppoe(topo, stray: int, frames: int, seed: int):
    def traffic() -> None:
        send_stray(topo, stray)
        inject(topo, "-p", str(frames), "--seed", str(seed))
    return traffic


@pytest.mark.parametrize("ethertypes, want", [("pppoe-discovery", STRAY), ("pppoe", 0)])
def test_if_rx_dropped_is_reported(topo, ethertypes, want):
    out = run_until(topo, 300, stray_then_pppoe(topo, STRAY, 300, 5), "-w", "3", "-e", ethertypes, "--json",
                    "--interval", "0.2")
    snap = last_json(out)
    assert snap["frames"] == expected_counts(random_macs(300, 5), 3, 0).tolist()
    assert snap["drops"] == [0, 0, 0]
    assert snap["if_rx_dropped"] == want


def test_stats_line_names_interface_drops(topo):
    """The expected line is spelled out here, not built with pfrps.stats.format_line (the
    function under test): the seed's format, population standard deviation, then the drops."""
    out = run_until(topo, 100, stray_then_pppoe(topo, 5, 100, 6), "-w", "2", "-e", "pppoe-discovery")
    a, b = (int(c) for c in expected_counts(random_macs(100, 6), 2, 0))
    std = abs(a - b) / 2  # population standard deviation of two values
    assert out.splitlines()[-1] == f"#0:{a:04d} #1:{b:04d} (total:100 std_dev:{std:.6f}) if_rx_dropped:5"
