"""The two-node topology fixture of the supervision tests, with namespaces named px10s-*
(this part's prefix) so that parallel runs of other parts never collide with them."""

from __future__ import annotations

import pytest

from pfrps.topology import TwoNodeTopology


@pytest.fixture(scope="module")
def topo():
    """injector(eno1) <-veth-> node(enp1s0, 52:54:00:84:d7:ff), names px10s-*-<random>, always removed."""
    t = TwoNodeTopology.unique(prefix="px10s").create()
    try:
        yield t
    finally:
        t.destroy()
