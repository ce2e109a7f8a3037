"""``pfrps-xdp lab switch`` (alias ``case05``): the TC switch and the XDP one (native and generic): an ARP request
from the gateway reaches uno and dos through the switch namespace, the reply comes back, with
exact frame counts at every host and in the stats map."""

from __future__ import annotations

import re

import pytest

from tests.conftest import netns_names
from tests.helpers import run_cli

pytestmark = pytest.mark.root

N = 3


@pytest.mark.parametrize("flavour", [[], ["--xdp"], ["--xdp", "--generic"]], ids=["tc", "xdp-native", "xdp-generic"])
def test_switch_lab(flavour):
    before = netns_names()
    res = run_cli("pfrps.xdp", ["lab", "switch", "--prefix", "switch-lab", "--count", str(N), *flavour], timeout=180)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert "FAIL" not in out
    assert "PASS no switch, no reply: 0 replies" in out
    assert f"PASS ARP reply comes back: {N} requests from gateway for 10.0.0.2, {N} replies" in out
    assert f"PASS request reaches uno: uno received {N} frames" in out
    assert f"PASS request reaches dos: dos received {2 * N} frames" in out
    assert f"PASS gateway gets only the replies: gateway received {N} frames" in out
    if flavour:
        assert f"PASS stats map REDIRECT count: XDP_REDIRECT {2 * N}, frames switched {2 * N}" in out
    else:
        assert f"PASS stats map counts: {2 * N} frames switched (want {2 * N}), {4 * N} clones" in out
    assert "PASS SIGTERM detached everything: exit status 0, XDP/tcx/clsact still on nothing" in out
    assert re.search(r"lab: 7/7 checks passed", out)
    assert not {n for n in netns_names() - before if n.startswith("switch-lab-")}
