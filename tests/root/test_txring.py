"""pfinject's PACKET_TX_RING sender: byte-exact frames, exact counts, pacing, refused frames.

Frames are captured on the node side with a plain AF_PACKET socket (no pfrps involved).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from pfrps.cliutil import wait_ready
from pfrps.inject.frames import build_template, fill_frames
from pfrps.inject.macs import mac_set, random_macs
from pfrps.topology import TwoNodeTopology

pytestmark = pytest.mark.root

PY = sys.executable
FRAME = 148
CLOSING = re.compile(r"^pfinject: sent (\d+) frames \((\d+) bytes\) in ([0-9.]+) s: (\d+) frames/s$", re.M)

CAPTURE = r"""
import json, os, socket, sys
n, ifname, path, ready_fd = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8863))
s.setsockopt(socket.SOL_SOCKET, 33, 256 << 20)  # SO_RCVBUFFORCE: hold the whole run
s.bind((ifname, 0x8863))
os.write(ready_fd, b"READY\n")
os.close(ready_fd)
s.settimeout(20)
frames = [s.recv(4096) for _ in range(n)]
s.settimeout(0.5)
extra = 0
try:
    while True:
        s.recv(4096)
        extra += 1
except socket.timeout:
    pass
with open(path, "wb") as f:
    f.write(b"".join(frames))
print(json.dumps({"lengths": sorted({len(x) for x in frames}), "extra": extra}))
"""


@pytest.fixture
def topo():
    with TwoNodeTopology.unique(prefix="txring") as t:
        yield t


def capture(topo, n: int, path) -> subprocess.Popen:
    r, w = os.pipe()
    proc = topo.popen(topo.node, [PY, "-c", CAPTURE, str(n), topo.node_if, str(path), str(w)],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=(w,))
    os.close(w)
    assert wait_ready(r, 30), proc.communicate(timeout=5)
    return proc


def pfinject(topo, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    res = topo.run(topo.injector, [PY, "-m", "pfrps.inject", "-i", topo.injector_if, "-d", topo.node_mac, *args],
                   timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert res.returncode == 0, res.stderr
    return res


def captured(proc: subprocess.Popen, path) -> np.ndarray:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    info = json.loads(out.strip().splitlines()[-1])
    assert info["lengths"] == [FRAME]
    assert info["extra"] == 0, "more frames arrived than were sent"
    return np.fromfile(path, dtype=np.uint8).reshape(-1, FRAME)


@pytest.mark.parametrize("extra", [
    (),                                            # defaults: 256-frame bursts, 4096 slots
    ("--burst", "7", "--ring-frames", "16"),       # tiny ring: wraps and reclaims slots all the time
    ("--burst", "1000", "--qdisc-bypass"),
])
def test_ring_frames_arrive_byte_exact_in_order(topo, tmp_path, extra):
    n, seed = 20000, 3
    path = tmp_path / "frames.bin"
    cap = capture(topo, n, path)
    res = pfinject(topo, "-p", str(n), "--seed", str(seed), "--tx", "ring", *extra)
    m = CLOSING.search(res.stdout)
    assert m and int(m[1]) == n and int(m[2]) == n * FRAME
    got = captured(cap, path)
    want = fill_frames(build_template(topo.node_mac), random_macs(n, seed))
    assert got.shape == want.shape
    assert np.array_equal(got[:8], want[:8])
    assert np.array_equal(got, want)  # one sender, one veth: order is kept too


def test_ring_with_two_processes_sends_the_same_frames(topo, tmp_path):
    n = 20000
    path = tmp_path / "frames.bin"
    cap = capture(topo, n, path)
    pfinject(topo, "-p", str(n), "--macs", "sequential", "--procs", "2")
    got = captured(cap, path)
    want = fill_frames(build_template(topo.node_mac), mac_set("sequential", n))
    key = lambda a: np.sort(a.view(np.dtype((np.void, FRAME))).ravel())  # noqa: E731
    assert np.array_equal(key(got), key(want))


@pytest.mark.parametrize("tx, count, rate", [("ring", 20000, 40000.0), ("ring", 300, 1000.0),
                                             ("send", 20000, 40000.0)])
def test_rate_is_held_within_5_percent(topo, tx, count, rate):
    res = pfinject(topo, "-p", str(count), "--tx", tx, "--rate", f"{rate:.0f}")
    m = CLOSING.search(res.stdout)
    assert m, res.stdout
    assert abs(int(m[4]) - rate) <= 0.05 * rate
    assert abs(float(m[3]) - count / rate) <= 0.05 * count / rate


REFUSED = r"""
import sys
import numpy as np
from pfrps.inject.txring import TxRing
from pfrps.errors import PfrpsError
with TxRing(sys.argv[1], b"\x52\x54\x00\x84\xd7\xff\x02\x00\x00\x00\x00\x01\x88\x63" + bytes(2000)) as ring:
    try:
        ring.send_macs(np.zeros((4, 6), np.uint8))
    except PfrpsError as exc:
        print(exc.one_line())
        sys.exit(3)
print("sent")
"""


def test_a_frame_above_the_mtu_is_reported_not_hung(topo):
    res = topo.run(topo.injector, [PY, "-c", REFUSED, topo.injector_if], timeout=60,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert res.returncode == 3, (res.stdout, res.stderr)
    assert "WRONG_FORMAT" in res.stdout


def test_bad_ring_options_are_usage_errors(topo):
    for args in (["--burst", "0"], ["--ring-frames", "0"], ["--procs", "0"], ["--tx", "mmap"]):
        res = topo.run(topo.injector, [PY, "-m", "pfrps.inject", "-i", topo.injector_if, "-d", topo.node_mac,
                                       "-p", "10", *args], timeout=60,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert res.returncode == 2, args
        assert res.stderr.count("\n") == 1 and "pfinject: error:" in res.stderr, res.stderr
