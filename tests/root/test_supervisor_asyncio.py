"""Supervision on the caller's asyncio loop (issue 16): ``await Supervisor.serve()`` against
the blocking ``Supervisor.run()``, and the supervisor -> worker message paths (``ask``/``tell``).

Every test drives tests/root/asyncio_embed.py (a program embedding a Supervisor that serves a
management socket next to the supervision) with each driver: ``run()``, ``serve()`` on
asyncio's loop and on uvloop's; the async drivers also run an application task (a ticker)
on the same loop, and answer the management socket from an asyncio server task on it.

1. frames from pfinject are counted exactly (per worker, against the steering hash) while the
   application's task ticks on the shared loop;
2. a SIGKILLed worker comes back (same id, "ready again") and counts go on; kills past
   ``restart_burst`` end supervision with status 1, naming the worker;
3. SIGINT to the whole process group and SIGTERM stop cleanly: ``on_stop`` ran once in each
   worker, exit 0, no worker left, the signal wakeup fd given back;
4. ``ask()`` (``request()`` under run()) to all workers gets exactly one reply from each, to
   one worker exactly one; ``tell()`` reaches exactly the workers named; ``request_stop()``
   from a management command ends supervision cleanly;
5. cancelling the task awaiting ``serve()`` stops the workers cleanly; a removed interface
   ends supervision with ``InterfaceGoneError`` after every ``on_stop`` ran, as under run().
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from pfrps.cliutil import wait_ready
from pfrps.hashing import expected_counts
from pfrps.inject.macs import random_macs
from pfrps.topology import TwoNodeTopology
from tests.helpers import PY, last_json
from tests.root.conftest import inject

pytestmark = pytest.mark.root

EMBED = str(Path(__file__).with_name("asyncio_embed.py"))
ROOT = str(Path(__file__).resolve().parents[2])
DRIVERS = ("run", "asyncio", "uvloop")


@pytest.fixture(scope="module")
def topo():
    """injector <-veth-> node, names as-*-<random> (this part's prefix), always removed."""
    t = TwoNodeTopology.unique(prefix="as").create()
    try:
        yield t
    finally:
        t.destroy()


class Embed:
    """The embedding program in the node namespace (its own session, so killpg reaches it
    and its workers only), ready once its workers and management socket are up."""

    def __init__(self, topo, tmp: Path, workers: int, driver: str, *extra: str) -> None:
        self.tmp = tmp
        r, w = os.pipe()
        env = {**os.environ, "PYTHONPATH": ROOT}
        self.proc = topo.popen(topo.node, [PY, EMBED, topo.node_if, str(workers), driver, str(tmp), str(w), *extra],
                               pass_fds=(w,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env=env)
        os.close(w)
        self.ready = wait_ready(r, 120)
        self.out = self.err = ""

    def call(self, **req) -> dict:
        """One management command over the unix socket; its JSON answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(str(self.tmp / "mgmt.sock"))
            s.sendall(json.dumps(req).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                assert chunk, f"no answer to {req}"
                data += chunk
        return json.loads(data)

    def until(self, pred, what: str, timeout: float = 30.0) -> dict:
        """Poll ``status`` until ``pred(status)``; the status that satisfied it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.call(op="status")
            if pred(st):
                return st
            time.sleep(0.01)
        pytest.fail(f"timed out waiting for {what}: {st}")

    def finish(self, timeout: float = 60) -> int:
        self.out, self.err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.out, self.err = self.proc.communicate()

    def stopped(self) -> list[int]:
        """Worker ids whose on_stop ran, one entry per run of on_stop."""
        return sorted(int(p.name.split("-")[1]) for p in self.tmp.glob("stop-*"))

    def tail(self) -> dict:
        """The upper-case result lines (``STATUS 0``, ``FAILED why``, ``CANCELLED``) as a dict."""
        return dict((*ln.split(" ", 1), "")[:2] for ln in self.out.splitlines() if ln.split(" ", 1)[0].isupper())


def gone(pids) -> bool:
    """None of ``pids`` exists any more (checked after the embedding program exited)."""
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
            return False
    return True


@pytest.mark.parametrize("driver", DRIVERS)
def test_frames_are_counted_exactly_while_the_app_shares_the_loop(topo, open_tmp, driver):
    n, seed, workers = 3000, 31, 4
    emb = Embed(topo, open_tmp, workers, driver, "--count", str(n), "--duration", "40")  # ends anyway
    try:
        assert emb.ready, emb.proc.communicate(timeout=30)
        first = emb.call(op="status")
        assert first["total"] == 0
        if driver != "run":  # the app's own task runs on the loop serve() supervises from
            emb.until(lambda st: st["ticks"] > first["ticks"], "the app task to tick")
        inject(topo, "-p", str(n), "--seed", str(seed))
        status = emb.finish()
    finally:
        emb.kill()
    assert status == 0, emb.err
    tail = emb.tail()
    assert tail["STATUS"] == "0" and tail["WAKEUP"] == "-1"
    snap = last_json(emb.out)
    assert sum(snap["frames"]) == n, snap  # (drops, if_rx_dropped say where missing ones went)
    assert snap["frames"] == expected_counts(random_macs(n, seed), workers, 0).tolist()
    assert emb.stopped() == list(range(workers))
    if driver != "run":
        assert int(tail["TICKS"]) > first["ticks"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_killed_worker_comes_back_and_counts_go_on(topo, open_tmp, driver):
    n, seed, workers = 2000, 32, 3
    emb = Embed(topo, open_tmp, workers, driver, "--count", str(n), "--duration", "40")  # ends anyway
    try:
        assert emb.ready, emb.proc.communicate(timeout=30)
        old = emb.call(op="status")["pids"][1]
        os.kill(old, signal.SIGKILL)
        emb.until(lambda st: st["pids"][1] not in (0, old) and all(st["ready"]), "worker 1 to be back")
        assert emb.call(op="ask", ids=[1], payload="id") == {"replies": {"1": "1"}}
        inject(topo, "-p", str(n), "--seed", str(seed))
        status = emb.finish()
    finally:
        emb.kill()
    assert status == 0, emb.err
    assert f"worker 1 (pid {old}) was killed by SIGKILL; restarting it on the same socket" in emb.err
    assert emb.err.count("worker 1 ready again after") == 1, emb.err
    snap = last_json(emb.out)
    assert snap["restarts"] == [0, 1, 0]
    assert sum(snap["frames"]) == n, snap
    assert snap["frames"] == expected_counts(random_macs(n, seed), workers, 0).tolist()
    assert emb.stopped() == list(range(workers))  # the killed one never ran on_stop


@pytest.mark.parametrize("driver", DRIVERS)
def test_kills_past_the_restart_burst_end_supervision_with_status_1(topo, open_tmp, driver):
    workers, burst = 3, 2
    emb = Embed(topo, open_tmp, workers, driver, "--burst", str(burst))
    killed = []
    try:
        assert emb.ready, emb.proc.communicate(timeout=30)
        pid = emb.call(op="status")["pids"][2]
        for k in range(burst + 1):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            if k < burst:  # the next one as soon as it exists (ready or not)
                st = emb.until(lambda st: st["pids"][2] not in (0, *killed), "worker 2 to be restarted")
                pid = st["pids"][2]
        status = emb.finish()
    finally:
        emb.kill()
    assert status == 1, emb.err
    tail = emb.tail()
    assert tail["STATUS"] == "1"
    assert tail["FAILED"].startswith(f"worker 2 (pid {killed[-1]}) was killed by SIGKILL")
    assert f"it died {burst + 1} times" in tail["FAILED"] and "giving up" in tail["FAILED"]
    assert emb.err.count("restarting it on the same socket") == burst, emb.err
    assert emb.stopped() == [0, 1]  # the others were stopped, on_stop ran once each
    assert "killing it" not in emb.err


@pytest.mark.parametrize("how", ["sigint-group", "sigterm"])
@pytest.mark.parametrize("driver", (*DRIVERS, "asyncio-outer", "uvloop-inner"))
def test_stop_signals_stop_cleanly(topo, open_tmp, driver, how):
    workers = 4
    emb = Embed(topo, open_tmp, workers, driver)
    try:
        assert emb.ready, emb.proc.communicate(timeout=30)
        pids = emb.until(lambda st: all(st["ready"]), "every worker ready")["pids"]
        if how == "sigint-group":
            os.killpg(emb.proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        else:
            emb.proc.send_signal(signal.SIGTERM)
        status = emb.finish()
    finally:
        emb.kill()
    assert status == 0, emb.err
    tail = emb.tail()
    assert tail["STATUS"] == "0" and tail["WAKEUP"] == "-1"
    assert emb.stopped() == list(range(workers))  # exactly one on_stop per worker
    assert "restarting" not in emb.err and "killing it" not in emb.err and "Traceback" not in emb.err, emb.err
    assert gone(pids)


@pytest.mark.parametrize("driver", DRIVERS)
def test_ask_and_tell_reach_exactly_the_workers_named(topo, open_tmp, driver):
    workers = 4
    emb = Embed(topo, open_tmp, workers, driver)
    try:
        assert emb.ready, emb.proc.communicate(timeout=30)
        assert emb.call(op="ask", ids=None, payload="id") == {"replies": {str(w): str(w) for w in range(workers)}}
        assert emb.call(op="ask", ids=[2], payload="id") == {"replies": {"2": "2"}}
        assert emb.call(op="tell", ids=[1, 3], payload="bump") == {"sent": [1, 3]}
        assert emb.call(op="tell", ids=[3], payload="bump") == {"sent": [3]}
        assert emb.call(op="tell", ids=None, payload="bump") == {"sent": [0, 1, 2, 3]}
        # one mailbox is one ordered queue: the counts are in before "told" is answered
        assert emb.call(op="ask", ids=None, payload="told") == {"replies": {"0": "1", "1": "2", "2": "1", "3": "3"}}
        assert emb.call(op="stop") == {"stopping": True}  # a management command ends supervision
        status = emb.finish()
    finally:
        emb.kill()
    assert status == 0, emb.err
    assert emb.tail()["STATUS"] == "0"
    assert emb.stopped() == list(range(workers))
    assert "mailbox is full" not in emb.err and "cannot answer" not in emb.err, emb.err


@pytest.mark.parametrize("driver", ("asyncio", "uvloop"))
def test_cancelling_the_serving_task_stops_the_workers(topo, open_tmp, driver):
    workers = 3
    emb = Embed(topo, open_tmp, workers, driver)
    try:
        assert emb.ready, emb.proc.communicate(timeout=30)
        pids = emb.until(lambda st: all(st["ready"]), "every worker ready")["pids"]
        assert emb.call(op="cancel") == {"cancelled": True}
        status = emb.finish()
    finally:
        emb.kill()
    assert status == 0, emb.err
    tail = emb.tail()
    assert "CANCELLED" in tail and tail["STATUS"] == "0" and tail["WAKEUP"] == "-1"
    assert emb.stopped() == list(range(workers))
    assert "killing it" not in emb.err and "Traceback" not in emb.err, emb.err
    assert gone(pids)


def _remove_node_if(t: TwoNodeTopology) -> None:
    from pyroute2 import IPRoute  # noqa: PLC0415

    with IPRoute(netns=t.node) as ipr:
        ipr.link("del", index=ipr.link_lookup(ifname=t.node_if)[0])


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_removed_interface_ends_supervision_with_its_error(open_tmp, driver):
    workers = 3
    t = TwoNodeTopology.unique(prefix="as").create()
    try:
        emb = Embed(t, open_tmp, workers, driver)
        try:
            assert emb.ready, emb.proc.communicate(timeout=30)
            pids = emb.until(lambda st: all(st["ready"]), "every worker ready")["pids"]
            _remove_node_if(t)
            status = emb.finish()
        finally:
            emb.kill()
    finally:
        t.destroy()
    assert status == 1, emb.err
    errors = [ln for ln in emb.err.splitlines() if ln.startswith("embed: error:")]
    assert len(errors) == 1 and "was removed" in errors[0], emb.err
    assert emb.stopped() == list(range(workers))
    assert "Traceback" not in emb.err, emb.err
    assert gone(pids)
