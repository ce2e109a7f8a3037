"""Fault injection: ring workers SIGKILLed at random points under load (issue 10, failure 5).

A supervisor embedded in a small script (:data:`SCRIPT`) runs W ring workers whose handler
appends each frame's source MAC (6 bytes, unique per frame: ``pfinject --macs sequential``)
to its worker's file with one O_APPEND ``write``. While ``pfinject`` sends, a killer SIGKILLs a
random live worker every ``kill_gap`` seconds (uniform in [0.5, 1.5] x gap). Afterwards every
recorded frame is compared with what was sent: duplicates (a frame handled twice) must be 0,
and frames never recorded must be covered by what the counters report (kernel drops while a
worker was down and its ring full, ``interrupted``: a frame whose handler a kill cut short,
and the interface's own drops).

Shared by the short run in the suite (tests/root/test_fault_injection.py) and the long one,
``python -m bench.fault`` (which writes ``bench/results/fault.json``). Errors are
:class:`pfrps.errors.LabError`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

from pfrps.cliutil import wait_ready
from pfrps.errors import LabError
from pfrps.testing.procs import worker_pids
from pfrps.topology import TwoNodeTopology

__all__ = ["BASE_MAC", "SCRIPT", "fault_run"]

PY = sys.executable
REPO = Path(__file__).resolve().parents[2]
#: The first source MAC ``pfinject --macs sequential`` sends; frame i carries BASE_MAC + i.
BASE_MAC = "02:00:5a:00:00:00"

#: The supervisor under test, run as ``python -c SCRIPT IFNAME WORKERS OUTDIR READY_FD``: ring
#: workers append each frame's source MAC to ``OUTDIR/w<id>``; it writes ``READY`` on READY_FD
#: once started and prints its JSON snapshot every 0.1 s until SIGTERM.
SCRIPT = r"""
import json, os, sys
from pfrps import Supervisor, SupervisorConfig

ifname, workers, outdir, ready_fd = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

def on_start(ctx):
    ctx.storage["fd"] = os.open(f"{outdir}/w{ctx.worker_id}", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

def handler(frame, meta, ctx):
    os.write(ctx.storage["fd"], frame[6:12])

sup = Supervisor(SupervisorConfig(ifname, workers=workers, rx="ring", restart_burst=1 << 30, restart_window=0.3),
                 handler=handler, on_start=on_start)
try:
    sup.start()
    os.write(ready_fd, b"READY\n")
    os.close(ready_fd)
    status = sup.run(lambda: print(json.dumps(sup.snapshot()), flush=True), interval=0.1)
finally:
    sup.close()
sys.exit(status)
"""


def _mac_ints(n: int) -> set[int]:
    """The ``n`` source MACs sent, as 48-bit integers from :data:`BASE_MAC` up."""
    base = int(BASE_MAC.replace(":", ""), 16)
    return set(range(base, base + n))


def fault_run(topo: TwoNodeTopology, frames: int, workers: int = 4, rate: int = 20000,
              kill_gap: float = 0.03, seed: int = 1, settle: float = 20.0) -> dict:
    """One fault-injection run in ``topo``; returns its figures (see the module docstring).

    ``frames`` to send at ``rate`` frames/s to ``workers`` ring workers; a SIGKILL every
    ``kill_gap`` seconds on average (schedule and victims from ``random.Random(seed)``); after
    pfinject ends, up to ``settle`` seconds for every frame to be recorded or counted.

    Keys: ``frames`` sent, ``workers``, ``rate``, ``kill_gap``, ``kills``, ``recorded`` (frames in
    the files), ``duplicates``, ``foreign`` (recorded, never sent), ``missing`` (sent, never
    recorded), ``drops``, ``interrupted``, ``if_rx_dropped``, ``unexplained`` (missing minus what
    the counters report, floored at 0), ``restarts``, ``seconds``, ``exit`` (the supervisor's
    status), ``stderr_tail`` (its last 400 characters of stderr).

    Raises :class:`~pfrps.errors.LabError` when the supervisor is not ready in 60 s or
    pfinject fails.
    """
    rng = random.Random(seed)
    outdir = Path(tempfile.mkdtemp(prefix="pfrps-fault-", dir="/tmp"))
    r, w = os.pipe()
    proc = topo.popen(topo.node, [PY, "-c", SCRIPT, topo.node_if, str(workers), str(outdir), str(w)],
                      pass_fds=(w,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    os.close(w)
    lines: list[str] = []
    errs: list[str] = []
    pumps = [threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True),
             threading.Thread(target=lambda: errs.extend(proc.stderr), daemon=True)]
    for t in pumps:
        t.start()
    kills = 0
    t0 = time.monotonic()
    try:
        ready_fd, r = r, -1
        if not wait_ready(ready_fd, 60):
            raise LabError(f"the fault-injection supervisor never got ready: {''.join(errs)[-800:]}")
        inj = topo.popen(topo.injector, [PY, "-m", "pfrps.inject", "-i", topo.injector_if, "-d", topo.node_mac,
                                         "-p", str(frames), "--rate", str(rate), "--macs", "sequential",
                                         "--base", BASE_MAC], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         cwd=REPO)
        while inj.poll() is None:
            time.sleep(kill_gap * rng.uniform(0.5, 1.5))  # the kill schedule: random points in time
            live = list(worker_pids(proc.pid).values())
            if live:
                try:
                    os.kill(rng.choice(live), signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
        if inj.returncode:
            raise LabError(f"pfinject failed: {inj.stderr.read()[-400:]}")
        # Wait until every frame is recorded or accounted for by the counters (or settle ends).
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            snap = _last(lines)
            recorded = sum(p.stat().st_size for p in outdir.iterdir()) // 6
            if snap and recorded + sum(snap["drops"]) + sum(snap["interrupted"]) + snap["if_rx_dropped"] >= frames:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if r >= 0:
            os.close(r)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for t in pumps:
            t.join(timeout=5)
    seconds = time.monotonic() - t0
    snap = _last(lines) or {}
    data = b"".join(p.read_bytes() for p in sorted(outdir.iterdir()))
    for p in outdir.iterdir():
        p.unlink()
    outdir.rmdir()
    got = [int.from_bytes(data[i:i + 6], "big") for i in range(0, len(data) - 5, 6)]
    sent = _mac_ints(frames)
    uniq = set(got)
    missing = len(sent - uniq)
    reported = sum(snap.get("drops", [])) + sum(snap.get("interrupted", [])) + snap.get("if_rx_dropped", 0)
    return {
        "frames": frames, "workers": workers, "rate": rate, "kill_gap": kill_gap, "kills": kills,
        "recorded": len(got), "duplicates": len(got) - len(uniq), "foreign": len(uniq - sent),
        "missing": missing, "drops": sum(snap.get("drops", [])), "interrupted": sum(snap.get("interrupted", [])),
        "if_rx_dropped": snap.get("if_rx_dropped", 0), "unexplained": max(missing - reported, 0),
        "restarts": sum(snap.get("restarts", [])), "seconds": round(seconds, 2), "exit": proc.returncode,
        "stderr_tail": "".join(errs)[-400:],
    }


def _last(lines: list[str]) -> Optional[dict]:
    """The last JSON snapshot line of the supervisor's stdout, None before the first."""
    for line in reversed(list(lines)):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None
