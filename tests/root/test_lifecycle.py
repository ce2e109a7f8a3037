"""Start, stop, worker death and the no-unfiltered-window guarantee."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pfrps.inject.macs import random_macs
from pfrps.hashing import expected_counts
from tests.conftest import child_pids
from tests.helpers import PY, last_json
from tests.root.conftest import inject, start_pfrps

pytestmark = pytest.mark.root

LINE = re.compile(r"^(#\d+:\d{4,} )+\(total:(\d+) std_dev:\d+\.\d{6}\)$")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_prints_final_line_and_stops_workers(topo, sig):
    run = start_pfrps(topo, "-w", "4")
    assert run.ready
    workers = child_pids(run.proc.pid)
    assert len(workers) == 4
    inject(topo, "-p", "1000", "--seed", "11")
    run.proc.send_signal(sig)
    status, out, err = run.finish(timeout=10)
    assert status == 0, err
    last = out.strip().splitlines()[-1]
    m = LINE.match(last)
    assert m, last
    assert int(m.group(2)) == 1000
    assert "Traceback" not in err
    assert not [p for p in workers if Path(f"/proc/{p}").exists()]


def test_worker_names_in_ps(topo):
    run = start_pfrps(topo, "-w", "3")
    try:
        assert run.ready
        names = sorted(Path(f"/proc/{p}/comm").read_text().strip() for p in child_pids(run.proc.pid))
        assert names == ["pfrps-w0", "pfrps-w1", "pfrps-w2"]
        cmdlines = [Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0] for p in child_pids(run.proc.pid)]
        assert sorted(cmdlines) == [b"pfrps-w0", b"pfrps-w1", b"pfrps-w2"]
    finally:
        run.proc.send_signal(signal.SIGINT)
        run.finish(timeout=10)


@pytest.mark.parametrize("steering", ["filter", "fanout"])
def test_dead_worker_is_reported_and_replaced_on_same_steering(topo, steering):
    """The supervisor keeps the sockets, so a fanout group never compacts when a worker dies."""
    run = start_pfrps(topo, "-w", "4", "--json", "--steering", steering)
    try:
        assert run.ready
        kids = sorted(child_pids(run.proc.pid))
        victim = next(p for p in kids if Path(f"/proc/{p}/comm").read_text().strip() == "pfrps-w2")
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            now = child_pids(run.proc.pid)
            if len(now) == 4 and victim not in now:
                break
            time.sleep(0.02)
        assert len(child_pids(run.proc.pid)) == 4
        inject(topo, "-p", "2000", "--seed", "12")
    finally:
        run.proc.send_signal(signal.SIGINT)
    status, out, err = run.finish(timeout=10)
    assert status == 0
    assert f"worker 2 (pid {victim}) was killed by SIGKILL; restarting it on the same socket" in err
    snap = last_json(out)
    assert snap["restarts"] == [0, 0, 1, 0]
    assert snap["frames"] == expected_counts(random_macs(2000, 12), 4, 0).tolist()


@pytest.mark.parametrize("steering", ["filter", "fanout"])
def test_no_unfiltered_window_under_live_traffic(topo, steering):
    """Traffic flows before and while the workers start: no worker ever sees another's frame."""
    flood = topo.popen(topo.injector, [PY, "-m", "pfrps.inject", "-i", topo.injector_if, "-d", topo.node_mac,
                                       "-p", "60000", "--rate", "20000", "--seed", "13"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        res = topo.run(topo.node, [PY, "-m", "tests.root.misroute_probe", topo.node_if, "5", "2", "1.0", steering],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
    finally:
        flood.kill()
        flood.wait()
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["misrouted"] == [0, 0, 0, 0, 0]
    assert all(f > 0 for f in out["frames"]), out  # traffic really was flowing


def test_duration_stops_and_exit_zero(topo):
    t0 = time.monotonic()
    run = start_pfrps(topo, "-w", "2", "--duration", "1", "--interval", "0.25")
    assert run.ready
    status, out, err = run.finish(timeout=15)
    assert status == 0, err
    assert time.monotonic() - t0 < 10
    lines = out.strip().splitlines()
    assert len(lines) >= 4 and all(LINE.match(ln) for ln in lines)


def test_kernel_drops_are_reported_and_account_for_every_frame(topo):
    """recv mode, a 4 KiB receive buffer overflows: every frame is received or reported dropped."""
    run = start_pfrps(topo, "-w", "1", "--rx", "recv", "--rcvbuf", "4096", "--interval", "0.2")
    assert run.ready
    inject(topo, "-p", "20000", "--seed", "14", fast=True)
    run.proc.send_signal(signal.SIGINT)
    status, out, err = run.finish(timeout=10)
    assert status == 0, err
    last = out.strip().splitlines()[-1]
    m = re.search(r"\(total:(\d+) std_dev:[\d.]+\) drops #0:(\d+) \(total:(\d+)\)$", last)
    assert m, last
    received, dropped = int(m.group(1)), int(m.group(2))
    assert dropped > 0
    assert received + dropped == 20000


def test_ring_drops_and_freezes_are_reported(topo):
    """ring mode, one 4 KiB block: frames are received or reported dropped; the ring froze."""
    run = start_pfrps(topo, "-w", "1", "--ring-blocks", "1", "--ring-block-size", "4096", "--ring-frame-size", "256",
                      "--json", "--interval", "0.2")
    assert run.ready
    inject(topo, "-p", "20000", "--seed", "15", fast=True)
    run.proc.send_signal(signal.SIGINT)
    status, out, err = run.finish(timeout=10)
    assert status == 0, err
    snap = last_json(out)
    assert snap["drops"][0] > 0 and snap["freezes"][0] > 0
    assert snap["frames"][0] + snap["drops"][0] == 20000
