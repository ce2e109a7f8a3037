"""The handler path with real workers on a veth: the async bound's refusals are counted
exactly (``async_refused``), and ``ctx.transmit_many`` sends exactly K frames, in order, that a
receiver in the other namespace sees. (The ring reader's resync count has no deterministic
kernel trigger; tests/unit/test_handler_path.py drives it with a hand-built ring.)
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pfrps.cliutil import wait_ready
from pfrps.topology import TwoNodeTopology
from tests.helpers import PY
from tests.root.conftest import inject

pytestmark = pytest.mark.root

#: A one-worker Supervisor in the node namespace; argv: mode ifname K ready_fd.
#: ``async``: an async handler that never finishes, at most K tasks in flight; stops after
#: ``frames`` frames and prints the final snapshot. ``tx``: on its first frame the handler sends
#: K numbered frames back to the frame's source with ctx.transmit_many; stops after 1 frame.
WORKER = r"""
import asyncio, json, os, sys
from pfrps.cliutil import signal_ready
from pfrps.config import SupervisorConfig
from pfrps.supervisor import Supervisor

mode, ifname, k, ready_fd, frames = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

async def stuck(frame, meta, ctx):
    await asyncio.Event().wait()

def reply(frame, meta, ctx):
    src, dst = bytes(frame[0:6]), bytes(frame[6:12])
    ctx.transmit_many([dst + src + b"\x88\x63" + i.to_bytes(4, "big") + bytes(46) for i in range(k)])

cfg = SupervisorConfig(interface=ifname, workers=1, rx="ring", watchdog=0,
                       max_async_tasks=k if mode == "async" else 1024)
sup = Supervisor(cfg, handler=stuck if mode == "async" else reply)
sup.start()
signal_ready(ready_fd)
sup.run(lambda: None, interval=0.05, count=frames, duration=60)
print(json.dumps(sup.snapshot()))
sup.close()
"""

CAPTURE = r"""
import json, os, socket, sys
n, ifname, ready_fd = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8863))
s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: hold the whole burst
s.bind((ifname, 0x8863))
os.write(ready_fd, b"READY\n")
os.close(ready_fd)
s.settimeout(30)
seqs = []
while len(seqs) < n:
    f = s.recv(4096)
    if f[12:14] == b"\x88\x63" and f[0:6] == bytes.fromhex("020000000001"):
        seqs.append(int.from_bytes(f[14:18], "big"))
s.settimeout(0.5)
extra = 0
try:
    while True:
        f = s.recv(4096)
        extra += f[0:6] == bytes.fromhex("020000000001")
except socket.timeout:
    pass
print(json.dumps({"seqs": seqs, "extra": extra}))
"""


@pytest.fixture(scope="module")
def topo():
    with TwoNodeTopology.unique(prefix="hp") as t:
        yield t


def start(topo, ns: str, script: str, *args: str) -> subprocess.Popen:
    r, w = os.pipe()
    proc = topo.popen(ns, [PY, "-c", script, *args, str(w)] if script is CAPTURE else
                      [PY, "-c", script, args[0], args[1], args[2], str(w), args[3]],
                      pass_fds=(w,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(w)
    if not wait_ready(r, 180):
        proc.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"not ready: {err[-2000:]}")
    return proc


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def test_async_refusals_are_counted_exactly(topo):
    bound, frames = 10, 50
    worker = start(topo, topo.node, WORKER, "async", topo.node_if, str(bound), str(frames))
    try:
        inject(topo, "-p", str(frames), "--seed", "3")
        snap = finish(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert snap["total"] == frames
    assert snap["async_refused"] == [frames - bound]
    assert snap["handler_errors"] == [0] and snap["resync_skipped"] == [0]


def test_transmit_many_sends_exactly_k_frames_in_order(topo):
    k = 1000
    cap = start(topo, topo.injector, CAPTURE, str(k), topo.injector_if)
    worker = start(topo, topo.node, WORKER, "tx", topo.node_if, str(k), "1")
    try:
        inject(topo, "-p", "1", "--macs", "sequential", "--base", "02:00:00:00:00:01")
        snap = finish(worker)
        got = finish(cap)
    finally:
        for p in (worker, cap):
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert snap["total"] == 1
    assert snap["tx_frames"] == [k] and snap["tx_errors"] == [0]
    assert got["seqs"] == list(range(k)) and got["extra"] == 0
