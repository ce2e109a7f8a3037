"""Workers SIGKILLed at random points under load: zero duplicates, and no loss the counters do
not report (issue 10, failure 5). The short run; ``python -m bench.fault`` is the long one.
The deterministic kill-at-every-store check is tests/unit/test_ring_kill.py."""

from __future__ import annotations

import pytest

from pfrps.testing.fault import fault_run

pytestmark = pytest.mark.root


def test_random_kills_under_load_neither_duplicate_nor_silently_lose(topo):  # noqa: F811
    res = fault_run(topo, frames=40000, workers=4, rate=20000, kill_gap=0.03, seed=7)
    assert res["exit"] == 0, res["stderr_tail"]
    assert res["restarts"] >= 30, res  # many kills landed (a kill of a process already exiting does not count)
    assert res["restarts"] <= res["kills"], res
    assert res["duplicates"] == 0, res
    assert res["foreign"] == 0, res
    assert res["unexplained"] == 0, res
    assert res["recorded"] + res["missing"] == res["frames"], res
