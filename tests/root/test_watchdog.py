"""Issue 17: the watchdog. A handler that never returns (a poison frame) gets its worker's stack
logged, the worker killed and restarted within the watchdog time plus 1 s; every other frame is
handed out exactly once, the poison frame counts ``interrupted`` once and is never handed out
again. A handler that is merely slow (1 s per frame) is never killed."""

from __future__ import annotations

import re
import signal
from collections import Counter

import numpy as np
import pytest

from pfrps.inject.macs import sequential_macs
from pfrps.hashing import worker_for
from pfrps.watchdog import TICK
from tests.root.conftest import inject
from tests.root.embed_helpers import handled, macs_bytes, start_embed, stopped


pytestmark = pytest.mark.root

BASE = "02:00:17:00:00:00"


@pytest.mark.parametrize("rx", ["ring", "recv"])
def test_poison_frame_worker_restarted_every_other_frame_once(topo, open_tmp, rx):
    watchdog, n, workers = 3.0, 200, 2
    macs = sequential_macs(n, BASE)
    poison = macs[57]
    pw = int(worker_for(poison[None, :], workers, 0)[0])
    run, ready = start_embed(topo, open_tmp, workers, rx, "fanout", watchdog=watchdog, mode="poison",
                             poison=bytes(poison).hex(":"))
    try:
        assert ready, run.err
        inject(topo, "-p", str(n), "--macs", "sequential", "--base", BASE)
        run.wait_for(lambda w: f"worker {pw} ready again" in w.err, watchdog + 30, "the restart")
        want = set(macs_bytes(macs)) - {bytes(poison)}
        run.wait_for(lambda w: sum(len(c) for c in handled(open_tmp).values()) >= len(want), 30,
                     "every other frame handled")
        run.wait_for(lambda w: w.last_json().get("interrupted", [0])[pw] == 1, 10, "interrupted counted")
        run.proc.send_signal(signal.SIGINT)
        status = run.finish()
    finally:
        run.kill()
    assert status == 0, run.err
    stuck = float(re.search(r"made no progress for (\d+\.\d) s", run.err).group(1))
    back = float(re.search(rf"worker {pw} ready again after (\d+\.\d+) s", run.err).group(1))
    took = stuck + back + TICK  # the first check that saw it stuck may be one tick late
    assert took <= watchdog + 1.0, f"ready again {took:.2f} s after the worker got stuck"
    got = handled(open_tmp)
    everything = Counter()
    for wid, c in got.items():
        everything.update(c)
        arr = np.frombuffer(b"".join(c), dtype=np.uint8).reshape(-1, 6)
        assert (worker_for(arr, workers, 0) == wid).all()
    assert set(everything) == want and max(everything.values()) == 1, "a frame lost or handed out twice"
    snap = run.last_json()
    assert snap["interrupted"][pw] == 1 and sum(snap["interrupted"]) == 1, snap
    assert snap["restarts"][pw] == 1 and sum(snap["restarts"]) == 1, snap
    assert re.search(rf"worker {pw} \(pid \d+\) made no progress for \d+\.\d s with frames waiting "
                     rf"\(watchdog 3 s\); its Python stack follows", run.err), run.err
    assert re.search(rf"worker {pw} \(pid \d+\) was killed by SIGKILL after it made no progress", run.err), run.err
    assert "in handler" in run.err  # faulthandler's stack: the spinning handler's frame
    assert "killing it" not in run.err  # SIGINT found nothing stuck
    assert set(stopped(open_tmp)) == set(range(workers))


def test_slow_handler_is_not_killed(topo, open_tmp):
    run, ready = start_embed(topo, open_tmp, 2, "ring", "fanout", watchdog=3.0, mode="slow")
    try:
        assert ready, run.err
        inject(topo, "-p", "10", "--macs", "sequential", "--base", BASE)
        run.wait_for(lambda w: sum(len(c) for c in handled(open_tmp).values()) >= 10, 60, "10 slow frames")
        run.proc.send_signal(signal.SIGINT)
        status = run.finish()
    finally:
        run.kill()
    assert status == 0, run.err
    snap = run.last_json()
    assert snap["restarts"] == [0, 0] and snap["interrupted"] == [0, 0], snap
    assert "no progress" not in run.err and "restarting" not in run.err, run.err
