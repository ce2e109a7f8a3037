"""Every worker gets exactly the frames the reference hash predicts (issue 2 and 3)."""

from __future__ import annotations

import pytest

from pfrps.inject.frames import FRAME_LEN
from pfrps.inject.macs import random_macs
from pfrps.hashing import expected_counts
from tests.helpers import last_json
from tests.root.conftest import inject, start_pfrps, steer

pytestmark = pytest.mark.root

FRAMES = 3000


@pytest.mark.parametrize("steering", ["filter", "fanout"])
@pytest.mark.parametrize("workers", [1, 3, 8, 64])
@pytest.mark.parametrize("alg", ["mac_hash", "mac_jhash", "jhash_oaat"])
def test_each_worker_gets_predicted_frames(topo, alg, workers, steering):
    seed = 1000 + workers
    snap = steer(topo, FRAMES, seed, "-w", str(workers), "-a", alg, "--steering", steering)
    want = expected_counts(random_macs(FRAMES, seed), workers, alg)
    # on a machine loaded enough for a ring to freeze, say so rather than only "counts differ"
    lost = {k: snap[k] for k in ("total", "if_rx_dropped")} | {k: sum(snap[k]) for k in ("drops", "freezes")}
    assert snap["frames"] == want.tolist(), lost
    assert snap["total"] == FRAMES
    # no frame truncated: full length delivered, every byte counted
    assert snap["truncated"] == [0] * workers
    assert snap["bytes"] == (want * FRAME_LEN).tolist()
    assert snap["drops"] == [0] * workers


def test_sequential_macs_mac_hash_round_robin(topo):
    """mac_hash keeps MAC bytes 2..5, so consecutive MACs go round-robin: exactly FRAMES/N each."""
    snap = steer(topo, 800, 0, "-w", "8", "-a", "mac_hash", inject_args=("--macs", "sequential"))
    assert snap["frames"] == [100] * 8


def test_all_ethertypes_and_single_ethertype(topo):
    """-e all accepts PPPoE too; -e 0x8864 (session only) makes pfrps see none of the discovery frames."""
    snap = steer(topo, 500, 5, "-w", "2", "-e", "all")
    assert snap["frames"] == expected_counts(random_macs(500, 5), 2, 0).tolist()
    run = start_pfrps(topo, "-w", "2", "-e", "0x8864", "--json", "--duration", "1.5")
    assert run.ready
    inject(topo, "-p", "300", "--seed", "6")
    status, out, _ = run.finish()
    assert status == 0 and last_json(out)["frames"] == [0, 0]
