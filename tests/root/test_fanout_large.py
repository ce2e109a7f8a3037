"""Fanout groups above the kernel's default 256 members (issue 10, failure 4).

``struct fanout_args`` with ``max_num_members`` (Linux 5.11+) and a group id picked by the
kernel (PACKET_FANOUT_FLAG_UNIQUEID): every worker of 257 and of 1024 gets exactly the frames
``pfrps.hashing`` predicts, as the 64-worker test in test_steering.py shows for smaller N.
"""

from __future__ import annotations

import subprocess

import pytest

from pfrps.inject.frames import FRAME_LEN
from pfrps.inject.macs import random_macs
from pfrps.config import MAX_WORKERS, SupervisorConfig
from pfrps.hashing import expected_counts
from tests.helpers import PY
from tests.root.conftest import steer


pytestmark = pytest.mark.root


@pytest.mark.parametrize("workers,frames", [(257, 2570), (MAX_WORKERS, 3072)])
def test_each_of_many_workers_gets_predicted_frames(topo, workers, frames):
    seed = 4000 + workers
    snap = steer(topo, frames, seed, "-w", str(workers), "--steering", "fanout")
    want = expected_counts(random_macs(frames, seed), workers, 0)
    lost = {k: snap[k] for k in ("total", "if_rx_dropped")} | {k: sum(snap[k]) for k in ("drops", "freezes")}
    assert snap["frames"] == want.tolist(), lost
    assert snap["bytes"] == (want * FRAME_LEN).tolist()
    assert snap["drops"] == [0] * workers
    assert snap["restarts"] == [0] * workers


def test_ring_memory_stays_bounded_with_many_workers():
    """1024 rings of 4 MiB would be 4 GiB: above 64 workers the default shares 256 MiB."""
    for workers, per_worker in [(8, 4 << 20), (64, 4 << 20), (257, 63 << 14), (1024, 16 << 14)]:
        bs, blocks = SupervisorConfig("x", workers=workers).ring_geometry()
        assert bs * blocks == per_worker, workers
        assert bs * blocks * workers <= 256 << 20


GROUPS = r"""
import socket, sys
from pfrps import packet
from pfrps.kernel import PACKET_FANOUT_FLAG_UNIQUEID, PACKET_FANOUT_HASH
socks = [packet.open_rx_socket(sys.argv[1], None) for _ in range(3)]
a = packet.join_fanout(socks[0], 0, PACKET_FANOUT_HASH, PACKET_FANOUT_FLAG_UNIQUEID, max_members=300)
b = packet.join_fanout(socks[1], 0, PACKET_FANOUT_HASH, PACKET_FANOUT_FLAG_UNIQUEID, max_members=300)
c = packet.join_fanout(socks[2], a, PACKET_FANOUT_HASH, 0, max_members=300)
print(a, b, c)
"""


def test_the_kernel_picks_distinct_group_ids(topo):
    res = topo.run(topo.node, [PY, "-c", GROUPS, topo.node_if], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, text=True)
    assert res.returncode == 0, res.stderr
    a, b, c = (int(x) for x in res.stdout.split())
    assert a != b and c == a
