"""Supervision under what users and faults do to it (issue 10, failures 1-3).

1. Ctrl-C in a terminal signals the whole process group: workers must not stop by themselves
   (no "restarting" of workers that exited normally), every worker's ``on_stop`` runs, exit 0;
   also for SIGINT to the supervisor alone and SIGTERM, and for Ctrl-C during start-up.
2. Deaths before ready count toward the restart burst with backoff: two kills of worker 0
   50 ms apart do not take the supervisor down; a worker that always dies makes it stop
   cleanly, naming the worker and the cause, exit 1.
3. An embedding program's own children keep their exit status (no waitpid(-1) reaper).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pfrps.inject.macs import random_macs
from pfrps.cliutil import wait_ready
from pfrps.hashing import expected_counts
from tests.conftest import child_pids
from tests.helpers import PY, last_json
from tests.root.conftest import inject, start_pfrps


pytestmark = pytest.mark.root

EMBED = r"""
import os, subprocess, sys
from pathlib import Path
from pfrps import Supervisor, SupervisorConfig
from pfrps.errors import PfrpsError

ifname, workers, mode, outdir, ready_fd = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), int(sys.argv[5])

def on_start(ctx):
    if mode == "crash" and ctx.worker_id == 1:
        raise RuntimeError("worker 1 cannot start")

def on_stop(ctx):
    (outdir / f"stop-{ctx.worker_id}-{os.getpid()}").write_text("")

calls = []
def emit():
    calls.append(1)
    if mode == "child" and len(calls) == 1:
        calls.append(subprocess.Popen(["sh", "-c", "exit 3"]))
    if mode == "child" and len(calls) == 6:
        print("CHILD", calls[1].wait(), flush=True)

sup = Supervisor(SupervisorConfig(ifname, workers=workers), on_start=on_start, on_stop=on_stop)
try:
    try:
        sup.start()
    except PfrpsError as exc:
        sys.exit(exc.report("embed"))
    os.write(ready_fd, b"READY\n")
    os.close(ready_fd)
    status = sup.run(emit, interval=0.1, duration=0.8 if mode == "child" else 60)
finally:
    sup.close()
print("STATUS", status, flush=True)
sys.exit(status)
"""


def start_embed(topo, tmp: Path, workers: int, mode: str = "plain", new_session: bool = False):
    r, w = os.pipe()
    proc = topo.popen(topo.node, [PY, "-c", EMBED, topo.node_if, str(workers), mode, str(tmp), str(w)],
                      pass_fds=(w,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                      start_new_session=new_session)
    os.close(w)
    return proc, wait_ready(r, 60)


def stopped_workers(tmp: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in tmp.glob("stop-*"))


@pytest.mark.parametrize("how", ["sigint-group", "sigint", "sigterm"])
def test_stop_signals_run_every_on_stop_and_restart_nothing(topo, open_tmp, how):
    workers = 16
    proc, ready = start_embed(topo, open_tmp, workers, new_session=True)
    load = None
    try:
        assert ready, proc.communicate(timeout=30)
        # under load, as a user would stop it: frames keep arriving while the workers drain
        load = topo.popen(topo.injector, [PY, "-m", "pfrps.inject", "-i", topo.injector_if, "-d", topo.node_mac,
                                          "-p", "200000", "--rate", "40000", "--seed", "21"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # the scenario: half a second into the flood
        if how == "sigint-group":
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        else:
            proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if load is not None:
            load.kill()
            load.wait()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "STATUS 0" in out
    assert "restarting" not in err, err
    assert "killing it" not in err, err
    assert stopped_workers(open_tmp) == list(range(workers))


def test_ctrl_c_during_start_up_exits_cleanly(topo):
    r, w = os.pipe()
    proc = topo.popen(topo.node, [PY, "-m", "pfrps", "-i", topo.node_if, "-w", "16", "--ready-fd", str(w)],
                      pass_fds=(w,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                      start_new_session=True)
    os.close(w)
    try:
        deadline = time.monotonic() + 60
        while not child_pids(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.002)
        assert child_pids(proc.pid), "no worker was ever forked"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(r)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "before it was ready" not in err, err
    assert "Traceback" not in err, err
    assert "interrupted during start-up" in err


def _pid_of(sup_pid: int, name: str, not_pid: int = 0, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in child_pids(sup_pid):
            try:
                if pid != not_pid and Path(f"/proc/{pid}/comm").read_text().strip() == name:
                    return pid
            except OSError:
                continue
        time.sleep(0.001)
    pytest.fail(f"no {name} under pid {sup_pid}")


def test_two_kills_in_a_row_do_not_take_the_supervisor_down(topo):
    n, seed, workers = 2000, 22, 4
    run = start_pfrps(topo, "-w", str(workers), "--json", "-c", str(n), "--duration", "30")
    try:
        assert run.ready
        first = _pid_of(run.proc.pid, "pfrps-w0")
        os.kill(first, signal.SIGKILL)
        second = _pid_of(run.proc.pid, "pfrps-w0", not_pid=first)
        os.kill(second, signal.SIGKILL)  # as soon as it exists: before it is ready
        _pid_of(run.proc.pid, "pfrps-w0", not_pid=second)
        inject(topo, "-p", str(n), "--seed", str(seed))  # waits in worker 0's socket meanwhile
        status, out, err = run.finish(timeout=60)
    finally:
        run.stop()
    assert status == 0, err
    assert f"worker 0 (pid {first}) was killed by SIGKILL; restarting it" in err
    assert f"worker 0 (pid {second}) was killed by SIGKILL; restarting it" in err
    snap = last_json(out)
    assert snap["restarts"] == [2, 0, 0, 0]
    assert snap["frames"] == expected_counts(random_macs(n, seed), workers, 0).tolist()


def test_a_worker_that_always_dies_stops_the_supervisor_cleanly(topo, open_tmp):
    proc, ready = start_embed(topo, open_tmp, 3, mode="crash")
    out, err = proc.communicate(timeout=60)
    assert not ready
    assert proc.returncode == 1, err
    lines = [ln for ln in err.splitlines() if ln.startswith("embed: error:")]
    assert len(lines) == 1, err
    assert "worker 1" in lines[0] and "exited with status 1" in lines[0] and "giving up" in lines[0]
    assert err.count("restarting it") == 5  # RESTART_BURST restarts, then it gives up
    assert stopped_workers(open_tmp) == [0, 2]  # the others were stopped, not killed


def test_an_embedding_programs_children_keep_their_exit_status(topo, open_tmp):
    proc, ready = start_embed(topo, open_tmp, 2, mode="child")
    out, err = proc.communicate(timeout=60)
    assert ready, err
    assert proc.returncode == 0, err
    assert "CHILD 3" in out, (out, err)
