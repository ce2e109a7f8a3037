"""Issue 17: link down/up and a removed interface, in both receive paths and both steering modes.

* Three flaps under a paced load (200 frames/s): before each, a burst the workers are still
  handling (``busy``: 1 ms per burst frame) when the link goes down; after each "link up" line, a batch. Every frame of
  the bursts and batches is handed out exactly once, on the worker its MAC steers to; no frame
  of the background load twice; one log line per transition, the hook called, no traceback, no
  restart, no kill; ``link_flaps`` 3 and the line/JSON show it.
* The interface removed: one line naming it, exit 1 within 2 s, every worker's ``on_stop`` ran,
  nothing left running; also while a worker is being restarted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter

import numpy as np
import pytest

from pfrps.inject.macs import sequential_macs
from pfrps.hashing import worker_for
from pfrps.topology import TwoNodeTopology, netns_pids
from tests.helpers import PY
from tests.root.conftest import inject
from tests.root.embed_helpers import Watched, handled, link, macs_bytes, start_embed, stopped

pytestmark = pytest.mark.root

WORKERS = 4
MODES = [("ring", "fanout"), ("ring", "filter"), ("recv", "fanout"), ("recv", "filter")]


def _base(tag: int) -> str:
    return f"02:{tag:02x}:00:00:00:00"


@pytest.mark.parametrize("mode", ["plain", "busy"])
@pytest.mark.parametrize("rx,steering", MODES)
def test_three_flaps_every_frame_after_link_up_handed_out_once(topo, open_tmp, rx, steering, mode):
    run, ready = start_embed(topo, open_tmp, WORKERS, rx, steering, mode=mode)
    bg = None
    try:
        assert ready, run.finish() and run.err
        bg = topo.popen(topo.injector, [PY, "-m", "pfrps.inject", "-i", topo.injector_if, "-d", topo.node_mac,
                                        "-p", "100000", "--rate", "200", "--macs", "sequential", "--base", _base(0x40)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        exact: list[np.ndarray] = []
        for r in range(3):
            burst, batch = sequential_macs(400, _base(0x10 + r)), sequential_macs(1000, _base(0x20 + r))
            inject(topo, "-p", "400", "--macs", "sequential", "--base", _base(0x10 + r), "--rate", "50000")
            link(topo, "down")  # while the workers still handle the burst (busy mode)
            run.wait_for(lambda w, n=r + 1: w.err.count("enp1s0: link down") == n, 10, f"link down #{r + 1}")
            link(topo, "up")
            run.wait_for(lambda w, n=r + 1: w.err.count("enp1s0: link up; receiving again") == n, 10, f"link up #{r + 1}")
            inject(topo, "-p", "1000", "--macs", "sequential", "--base", _base(0x20 + r))
            exact += [burst, batch]
            if r == 1:  # the JSON follows the state
                run.wait_for(lambda w: w.last_json().get("link") == "up" and w.last_json().get("link_flaps") == 2,
                             10, "a JSON line with link up and 2 flaps")
        bg.kill()
        bg.wait()
        want = Counter(m for macs in exact for m in macs_bytes(macs))
        run.wait_for(lambda w: sum(sum(c[m] for m in want) for c in handled(open_tmp).values()) >= len(want),
                     60, "every burst and batch frame handled")
        run.proc.send_signal(signal.SIGINT)
        status = run.finish()
    finally:
        if bg is not None and bg.poll() is None:
            bg.kill()
            bg.wait()
        run.kill()
    assert status == 0, run.err
    got = handled(open_tmp)
    everything = Counter()
    for wid, c in got.items():
        everything.update(c)
        macs = np.frombuffer(b"".join(c), dtype=np.uint8).reshape(-1, 6)
        assert (worker_for(macs, WORKERS, 0) == wid).all(), f"worker {wid} got another worker's frame"
    assert max(everything.values()) == 1, "a frame was handed out twice"
    missing = [m.hex(":") for m in want if everything[m] != 1]
    assert not missing, f"{len(missing)} frames sent before the flap or after 'link up' never handed out"
    assert run.err.count("link down") == 3 and run.err.count("link up; receiving again") == 3, run.err
    assert "Traceback" not in run.err and "restarting" not in run.err and "killing" not in run.err, run.err
    assert run.out.count("EVENT down enp1s0") == 3 and run.out.count("EVENT up enp1s0") == 3, run.out
    snap = run.last_json()
    assert snap["link"] == "up" and snap["link_flaps"] == 3 and snap["restarts"] == [0] * WORKERS, snap
    assert sum(snap["socket_errors"]) >= WORKERS, snap  # each worker cleared its error
    assert stopped(open_tmp) == list(range(WORKERS))


def test_the_line_shows_the_link_state(topo):
    from tests.root.conftest import start_pfrps

    run = start_pfrps(topo, "-w", "2", "--interval", "0.2")
    try:
        assert run.ready
        watched = Watched(run.proc)
        link(topo, "down")
        watched.wait_for(lambda w: "link:down link_flaps:1" in w.out, 10, "a line with link:down")
        link(topo, "up")
        watched.wait_for(lambda w: "link:up link_flaps:1" in w.out, 10, "a line with link:up link_flaps:1")
        run.proc.send_signal(signal.SIGINT)
        assert watched.finish() == 0, watched.err
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
        link(topo, "up")


def _remove(t: TwoNodeTopology) -> float:
    subprocess.run(["ip", "-n", t.node, "link", "del", t.node_if], check=True)
    return time.monotonic()


@pytest.mark.parametrize("rx,steering", MODES)
def test_interface_removed_one_line_exit_1_nothing_left(open_tmp, rx, steering):
    t = TwoNodeTopology.unique(prefix="link-removed").create()
    try:
        r, w = os.pipe()
        proc = t.popen(t.node, [PY, "-m", "pfrps", "-i", t.node_if, "-w", str(WORKERS), "--rx", rx,
                                "--steering", steering, "--ready-fd", str(w)],
                       pass_fds=(w,), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(w)
        from pfrps.cliutil import wait_ready

        run = Watched(proc)
        try:
            assert wait_ready(r, 90)
            inject(t, "-p", "500", "--seed", "17")
            run.wait_for(lambda x: "(total:500 " in x.out, 10, "the 500 frames counted")
            removed_at = _remove(t)
            status = run.finish(timeout=30)
            took = time.monotonic() - removed_at
        finally:
            run.kill()
        assert status == 1, run.err
        after_start = run.err.split("Hit Ctrl-C to end.\n", 1)[1].splitlines()
        assert len(after_start) == 1 and after_start[0].startswith("pfrps: error: interface enp1s0 (ifindex ") \
            and after_start[0].endswith(") was removed"), run.err  # one line, nothing else
        assert took < 2.0, f"exit {took:.2f} s after the interface was removed"
        assert not netns_pids(t.node), "processes left in the node namespace"
    finally:
        t.destroy()


def test_interface_removed_while_a_worker_is_restarting(open_tmp):
    t = TwoNodeTopology.unique(prefix="link-removed").create()
    try:
        run, ready = start_embed(t, open_tmp, WORKERS, "ring", "fanout")
        try:
            assert ready, run.err
            from tests.conftest import child_pids

            victim = next(p for p in child_pids(run.proc.pid)
                          if open(f"/proc/{p}/comm").read().strip() == "pfrps-w1")
            os.kill(victim, signal.SIGKILL)
            run.wait_for(lambda w: "restarting it" in w.err, 10, "the restart")
            removed_at = _remove(t)  # the new worker 1 is starting, or just started
            status = run.finish(timeout=30)
            took = time.monotonic() - removed_at
        finally:
            run.kill()
        assert status == 1, run.err
        errors = [ln for ln in run.err.splitlines() if ln.startswith("embed: error:")]
        assert len(errors) == 1 and "interface enp1s0" in errors[0] and "was removed" in errors[0], run.err
        assert "Traceback" not in run.err and "killing it" not in run.err, run.err
        assert took < 2.0, f"exit {took:.2f} s after the interface was removed"
        assert {0, 2, 3} <= set(stopped(open_tmp)), stopped(open_tmp)  # every running worker's on_stop
        assert "EVENT removed enp1s0" in run.out and "link down" not in run.err
        assert not netns_pids(t.node)
    finally:
        t.destroy()
