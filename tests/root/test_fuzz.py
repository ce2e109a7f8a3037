"""Fuzzing over real sockets: 20,000 seeded frames from pfrps/testing/fuzz_frames.py sent on the veth
into pfrps-ac and into a plain pfrps handler (namespaces ac-fuzz-*). The 1,000,000-frame run is
bench/fuzz.py.

Checked, exactly: the frames the workers got equal what :func:`pfrps.testing.fuzz_frames.kernel_view`
predicts (the kernel strips the outer VLAN tag, steering looks through two tags for a PPPoE
ethertype), the malformed count equals the frames the parser rejects, served + ignored +
malformed add up to the frames delivered, no handler error, no restart, no loss the counters do
not report (a ring that overflowed on this shared machine counts ``drops``; the interface's
rx_dropped holds tagged frames only, see :func:`pfrps.testing.fuzz_frames.expected`), and each
worker's resident memory grew by less than :data:`RSS_BOUND` from the end of the warm-up to the
end of the flood.
"""

from __future__ import annotations

import pytest

from pfrps.testing.ac import AC_MAC, ACProcess, PPPoEClient, totals
from pfrps.testing.fuzz_frames import OFFERED, expected, fetch_cookies, flood, generate, pool_macs
from pfrps.topology import TwoNodeTopology
from tests.helpers import PY

pytestmark = pytest.mark.root

FRAMES = 20_000
SEED = 1010
#: resident memory growth allowed per worker after the warm-up, bytes (measured: 8-90 KiB)
RSS_BOUND = 4 << 20


@pytest.fixture(scope="module")
def topo():
    with TwoNodeTopology.unique(prefix="ac-fuzz") as t:
        yield t


def check_losses(snap: dict, want: int, want_malformed: int, want_rx_dropped: int, before: int = 0) -> None:
    """Every predicted frame accounted for: handled, or dropped by a ring and counted so."""
    t = totals(snap)
    assert t["frames"] + t["drops"] == before + want
    if t["drops"] == 0:
        assert t["malformed"] == want_malformed
    else:  # which frames a full ring dropped is not known: at most that many fewer
        assert want_malformed - t["drops"] <= t["malformed"] <= want_malformed
    # Only tagged frames may show as interface drops (see expected); fewer when a kernel protocol
    # handler (/proc/net/ptype: IPv4, ARP, IPv6, LLC) took the frame behind the tag.
    assert snap["if_rx_dropped"] <= want_rx_dropped
    assert t["handler_errors"] == 0 and t["restarts"] == 0


def test_fuzz_pfrps_ac(topo):
    macs = pool_macs(32, SEED)
    ac = ACProcess(topo, "--service-name", "internet", "--service-name", "voip", "--cookie-window", "3600", "--max-sessions", "64", "--padt-rate", "200",
                   "--padt-burst", "50", "--echo-interval", "0.2", "--echo-misses", "2")
    cl = PPPoEClient(topo)
    try:
        # real cookies for the pool, so fuzzed PADRs open sessions too (iptv is not offered)
        cookies = fetch_cookies(cl, macs)
        assert len(cookies) == len(macs) * len(OFFERED)
        frames = [f for _k, f in generate(SEED, FRAMES, AC_MAC, macs, cookies, socket_safe=True)]
        want, want_malformed, want_rx_dropped = expected(frames)
        before = len(cookies)
        snap, growth = flood(ac, cl, frames, before)
        t = totals(snap)
        check_losses(snap, want, want_malformed, want_rx_dropped, before)
        assert t["served"] + t["ignored"] + t["malformed"] == t["frames"]
        for name in ("pads", "pads_error", "padt_tx", "padt_rx", "tagged", "bad_cookie", "replaced", "expired"):
            assert t[name] > 0, f"the fuzz never reached {name}"
        assert max(snap["sessions"]) <= 64
        assert all(g < RSS_BOUND for g in growth.values()), growth
    finally:
        rc, final = ac.stop()
        cl.close()
    assert rc == 0 and sum(final["sessions"]) == 0
    assert not [ln for ln in ac.log if "Traceback" in ln or "error" in ln.lower()], ac.log


def test_fuzz_plain_handler(topo):
    """The same kind of flood through a plain handler on the pfrps API (pfrps/testing/fuzz_frames.py plain)."""
    proc = ACProcess(topo, argv=[PY, "-m", "pfrps.testing.fuzz_frames", "plain", "-i", topo.node_if, "-w", "4",
                                 "--interval", "0.05"])
    cl = PPPoEClient(topo)
    try:
        frames = [f for _k, f in generate(SEED + 1, FRAMES, AC_MAC, socket_safe=True)]
        want, want_malformed, want_rx_dropped = expected(frames)
        snap, growth = flood(proc, cl, frames, 0)
        t = totals(snap)
        check_losses(snap, want, want_malformed, want_rx_dropped)
        assert t["served"] + t["malformed"] == t["frames"] and t["ignored"] == 0  # the tagged frames only: nothing lost
        assert all(g < RSS_BOUND for g in growth.values()), growth
    finally:
        rc, _final = proc.stop()
        cl.close()
    assert rc == 0
    assert not [ln for ln in proc.log if "Traceback" in ln], proc.log
