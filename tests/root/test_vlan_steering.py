"""Steering of tagged PPPoE: pfinject --vlan/--qinq into pfrps, exact per-worker counts (namespaces vlan-steering-*).

On receive the kernel strips the outer tag; for QinQ the frame still holds the C-tag, so the
socket's ethertype is 0x8100 and the steering program must look behind it (bpf/pfrps_parse.h).
The source MAC, at offset 6 whatever the tags, decides the worker: the counts are the ones
pfrps.hashing predicts for untagged frames. Fails on steering that reads one tag only (QinQ:
nothing delivered).
"""

from __future__ import annotations

import pytest

from pfrps.inject.macs import random_macs
from pfrps.hashing import expected_counts
from pfrps.topology import TwoNodeTopology
from tests.root.conftest import steer

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def topo():
    with TwoNodeTopology.unique(prefix="vlan-steering") as t:
        yield t


@pytest.mark.parametrize("steering,tags", [("fanout", ("--qinq", "10:100")), ("filter", ("--qinq", "10:100")),
                                           ("fanout", ("--vlan", "100"))])
def test_tagged_pppoe_is_steered_by_source_mac(topo, steering, tags):
    frames, seed, workers = 4000, 8021, 4
    snap = steer(topo, frames, seed, "-w", str(workers), "--steering", steering, inject_args=tags)
    assert snap["frames"] == expected_counts(random_macs(frames, seed), workers, 0).tolist()
    assert sum(snap["drops"]) == 0 and sum(snap["truncated"]) == 0
    # a tagged frame is 4 (802.1Q) or 8 (QinQ) bytes longer on the wire; the stripped outer tag
    # is not in the bytes the socket counts
    assert sum(snap["bytes"]) == frames * (148 + 4 * (len(tags[1].split(":")) - 1))
