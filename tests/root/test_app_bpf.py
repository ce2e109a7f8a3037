"""The embedding API's BPF objects and worker mailboxes (issue 14, item 7).

An application declares a BPF program and its map in ``SupervisorConfig.bpf_objects``: the
supervisor loads and attaches it before the fork, every worker finds the same map in
``ctx.maps`` (the same kernel map id, read from /proc/self/fdinfo), a worker killed with SIGKILL
comes back with the same map, and after the run nothing is attached or loaded. Mailboxes carry
a request to each worker's ``on_message`` and its reply back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from pfrps.cliutil import wait_ready
from pfrps.xdp.attach import xdp_attached
from tests.helpers import PY

pytestmark = pytest.mark.root

EMBED = r"""
import json, os, sys, time
from pfrps import Supervisor, SupervisorConfig
from pfrps.bpfobjects import BpfAttach, BpfObject

ifname, ready_fd = sys.argv[1], int(sys.argv[2])

def map_id(fd):
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("map_id:"):
                return int(line.split()[1])

def on_message(ctx, payload):
    req = json.loads(payload)
    if req["op"] == "die":
        os._exit(3)
    return json.dumps({"worker": ctx.worker_id, "pid": os.getpid(), "echo": req.get("n"),
                       "map_id": map_id(ctx.maps["xdp_stats_map"]),
                       "prog": sorted(ctx.programs)}).encode()

obj = BpfObject("xdp_sink.bpf.c", maps=("xdp_stats_map",),
                attach=(BpfAttach("pfrps_xdp_sink", ifname, generic=True),))
sup = Supervisor(SupervisorConfig(ifname, workers=3, bpf_objects=(obj,), mailboxes=True), on_message=on_message)
try:
    sup.start()
    print("SUPMAP", map_id(sup.bpf.maps["xdp_stats_map"]), flush=True)
    first = sup.request(range(3), json.dumps({"op": "ask", "n": 1}).encode())
    print("FIRST", json.dumps({w: json.loads(r) for w, r in first.items()}), flush=True)
    sup.request([1], json.dumps({"op": "die"}).encode(), timeout=0.5)   # worker 1 exits: restarted
    old_pid, deadline = sup.slots[1].pid, time.monotonic() + 20
    while time.monotonic() < deadline and not (sup.slots[1].ready and sup.slots[1].pid not in (0, old_pid)):
        sup._turn(0.05)
    again = sup.request(range(3), json.dumps({"op": "ask", "n": 2}).encode())
    print("AGAIN", json.dumps({w: json.loads(r) for w, r in again.items()}), flush=True)
    os.write(ready_fd, b"READY\n")
    os.close(ready_fd)
    status = sup.run(lambda: None, interval=0.2, duration=60)
finally:
    sup.close()
print("STATUS", status, flush=True)
"""


def test_bpf_objects_and_mailboxes_survive_a_worker_restart(topo):
    r, w = os.pipe()
    proc = topo.popen(topo.node, [PY, "-c", EMBED, topo.node_if, str(w)], pass_fds=(w,),
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(w)
    try:
        ready = wait_ready(r, 90)
        ifindex = int(topo.run(topo.node, [PY, "-c", f"import socket; print(socket.if_nametoindex({topo.node_if!r}))"],
                               stdout=subprocess.PIPE, text=True).stdout)
        attached = xdp_attached(ifindex, topo.node)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert ready, err
    assert proc.returncode == 0, err
    lines = {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] for ln in out.splitlines() if " " in ln}
    sup_map = int(lines["SUPMAP"])
    first, again = json.loads(lines["FIRST"]), json.loads(lines["AGAIN"])
    assert sorted(first) == sorted(again) == ["0", "1", "2"]
    for wid in "012":
        assert first[wid]["worker"] == int(wid) and first[wid]["echo"] == 1 and again[wid]["echo"] == 2
        assert first[wid]["map_id"] == again[wid]["map_id"] == sup_map
        assert first[wid]["prog"] == ["pfrps_xdp_sink"]
    assert again["1"]["pid"] != first["1"]["pid"], "worker 1 was not restarted"
    assert again["0"]["pid"] == first["0"]["pid"] and again["2"]["pid"] == first["2"]["pid"]
    assert attached is not None and attached[1] == "generic", attached
    assert "worker 1" in err and "restarting" in err, err
    assert "STATUS 0" in out
    assert xdp_attached(ifindex, topo.node) is None, "the XDP program outlived the supervisor"
