"""``pfrps --rx ring`` (TPACKET_V3) end to end: exact per-worker counts, handler frames, restarts.

Each test builds its own two-namespace topology with unique names and destroys it (which also
ends every process started in it), so nothing outlives the test.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from pfrps import cliutil
from pfrps.inject.macs import random_macs
from pfrps.testing.procs import worker_pids
from pfrps.hashing import expected_counts, parse_hash_alg
from pfrps.topology import TwoNodeTopology

pytestmark = pytest.mark.root

PY = sys.executable
FRAME = 148


@pytest.fixture
def topo():
    with TwoNodeTopology.unique(prefix="ring") as t:
        yield t


def wait_ready(proc: subprocess.Popen, fd: int, timeout: float = 60.0) -> None:
    """Wait for ``READY`` on the --ready-fd pipe (read end ``fd``, :func:`pfrps.cliutil.wait_ready`),
    then close it; kill ``proc`` and fail with its stderr when it did not come."""
    if not cliutil.wait_ready(fd, timeout):
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"pfrps did not become ready; stderr:\n{err}")


def start_pfrps(topo: TwoNodeTopology, *args: str) -> subprocess.Popen:
    r, w = os.pipe()
    proc = topo.popen(topo.node, [PY, "-m", "pfrps", "-i", topo.node_if, "--ready-fd", str(w), *args],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=(w,))
    os.close(w)
    wait_ready(proc, r)
    return proc


def inject(topo: TwoNodeTopology, count: int, seed: int, *extra: str) -> str:
    res = topo.run(topo.injector, [PY, "-m", "pfrps.inject", "-i", topo.injector_if, "-d", topo.node_mac,
                                   "-p", str(count), "--seed", str(seed), *extra],
                   timeout=120, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert res.returncode == 0, res.stderr
    assert f"pfinject: sent {count} frames ({count * FRAME} bytes) in " in res.stdout
    return res.stdout


def final_snapshot(proc: subprocess.Popen, timeout: float = 60.0) -> dict:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, err = proc.communicate()
        pytest.fail(f"pfrps did not stop after its -c count; stdout tail:\n{out[-2000:]}\nstderr:\n{err}")
    assert proc.returncode == 0, err
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert lines, f"no JSON line; stderr:\n{err}"
    return json.loads(lines[-1])


@pytest.mark.parametrize("steering, alg", [("filter", "mac_hash"), ("filter", "mac_jhash"),
                                           ("fanout", "jhash_oaat")])
def test_ring_counts_are_exact(topo, steering, alg):
    n, seed, workers = 30000, 11, 3
    proc = start_pfrps(topo, "-w", str(workers), "--rx", "ring", "--steering", steering, "-a", alg,
                       "-c", str(n), "--json", "--interval", "0.2")
    inject(topo, n, seed)
    snap = final_snapshot(proc)
    want = expected_counts(random_macs(n, seed), workers, parse_hash_alg(alg)).tolist()
    assert snap["total"] == n
    assert snap["frames"] == want
    assert snap["bytes"] == [FRAME * f for f in want]
    assert snap["truncated"] == [0] * workers
    assert snap["drops"] == [0] * workers
    assert snap["restarts"] == [0] * workers


HANDLER_SCRIPT = r"""
import json, os, sys, time
from pfrps.config import SupervisorConfig
from pfrps.supervisor import Supervisor

n, ifname, node_mac, ready_fd = int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3]), int(sys.argv[4])

def handler(frame, meta, ctx):
    assert isinstance(frame, memoryview)
    b = bytes(frame)
    ok = (len(b) == 148 and meta.length == 148 and meta.vlan_tci is None and meta.ifindex == ctx.ifindex
          and b[:6] == node_mac and b[6] == 0x02 and b[12:16] == b"\x88\x63\x11\x00"
          and int.from_bytes(b[8:12], "big") % ctx.worker_count == ctx.worker_id   # mac_hash steering
          and abs(meta.timestamp - time.time()) < 30)
    ctx.count("ok" if ok else "bad")

sup = Supervisor(SupervisorConfig(interface=ifname, workers=3, rx="ring", app_counters=("ok", "bad")),
                 handler=handler)
try:
    sup.start()
    os.write(ready_fd, b"READY\n")
    os.close(ready_fd)
    status = sup.run(lambda: None, interval=0.1, count=n, duration=60)
    print(json.dumps(sup.snapshot()), flush=True)
finally:
    sup.close()
sys.exit(status)
"""


def test_ring_handler_gets_every_frame_intact(topo):
    n, seed = 20000, 5
    r, w = os.pipe()
    proc = topo.popen(topo.node, [PY, "-c", HANDLER_SCRIPT, str(n), topo.node_if,
                                  topo.node_mac.replace(":", ""), str(w)],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=(w,))
    os.close(w)
    wait_ready(proc, r)
    inject(topo, n, seed)
    snap = final_snapshot(proc)
    want = expected_counts(random_macs(n, seed), 3, 0).tolist()
    assert snap["frames"] == want
    assert snap["ok"] == want
    assert snap["bad"] == [0, 0, 0]
    assert snap["handler_errors"] == [0, 0, 0]


def test_restarted_worker_continues_where_the_dead_one_stopped(topo):
    n1, n2, workers = 12000, 9000, 3
    proc = start_pfrps(topo, "-w", str(workers), "--rx", "ring", "-c", str(n1 + n2), "--json", "--interval", "0.05")
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        try:
            for line in proc.stdout:
                lines.put(line)
        except (ValueError, OSError):  # the topology closed the pipe while tearing down
            pass

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def wait_for(pred, timeout=30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line.startswith("{"):
                snap = json.loads(line)
                if pred(snap):
                    return snap
        pytest.fail("pfrps never reported the expected state")

    inject(topo, n1, 1)
    wait_for(lambda s: s["total"] == n1)
    victim = worker_pids(proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda s: s["restarts"][0] == 1)
    assert victim not in worker_pids(proc.pid).values()
    inject(topo, n2, 2)  # read by the new worker 0 from where the dead one stopped
    snap = wait_for(lambda s: s["total"] >= n1 + n2, timeout=20)
    assert proc.wait(timeout=30) == 0
    want = (expected_counts(random_macs(n1, 1), workers, 0) + expected_counts(random_macs(n2, 2), workers, 0))
    assert snap["frames"] == want.tolist()
    assert snap["restarts"] == [1, 0, 0]
    assert snap["drops"] == [0] * workers
    assert proc.returncode == 0
