"""Fixtures for root tests: a uniquely named two-node topology, always removed."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from typing import Callable

import pytest

from pfrps.cliutil import wait_ready
from pfrps.topology import TwoNodeTopology
from tests.helpers import PY, last_json


#: Tests check where frames go, not speed: pacing keeps a loaded CI machine from overflowing the
#: veth's backlog (netdev_max_backlog), which drops frames before any packet socket sees them.
TEST_RATE = "20000"


def module_prefix(request) -> str:
    """A namespace-name prefix saying what the requesting test module tests: ``test_link_events``
    -> ``link-events``."""
    return request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")


@pytest.fixture(scope="module")
def topo(request):
    """injector(eno1) <-veth-> node(enp1s0, 52:54:00:84:d7:ff), namespaces named after the test
    module (``link-events-inj-<random>``, ...), always removed."""
    t = TwoNodeTopology.unique(prefix=module_prefix(request)).create()
    try:
        yield t
    finally:
        t.destroy()


@dataclass
class Run:
    proc: subprocess.Popen
    ready: bool

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def stop(self, timeout: float = 30) -> None:
        """SIGINT it when it is still running and wait (for a ``finally:`` after a failed check;
        its output is dropped)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.communicate(timeout=timeout)


def start_pfrps(topo: TwoNodeTopology, *args: str, module: str = "pfrps", timeout: float = 180) -> Run:
    """Start ``python -m <module> -i enp1s0 args --ready-fd`` in the node namespace; wait for READY."""
    r, w = os.pipe()
    proc = topo.popen(topo.node, [PY, "-m", module, "-i", topo.node_if, *args, "--ready-fd", str(w)],
                      pass_fds=(w,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(w)
    return Run(proc, wait_ready(r, timeout))


def inject(topo: TwoNodeTopology, *args: str, fast: bool = False) -> subprocess.CompletedProcess:
    """pfinject from the injector namespace, paced at TEST_RATE unless ``fast`` or a --rate is given."""
    if not fast and "--rate" not in args:
        args = (*args, "--rate", TEST_RATE)
    res = topo.run(topo.injector, [PY, "-m", "pfrps.inject", "-i", topo.injector_if, "-d", topo.node_mac, *args],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res


def run_until(topo: TwoNodeTopology, frames: int, traffic: Callable[[], None], *pfrps_args: str) -> str:
    """Start pfrps with ``-c frames``, call ``traffic()`` once it is ready, and return its
    stdout after it stopped by itself (exit status 0 asserted)."""
    run = start_pfrps(topo, *pfrps_args, "-c", str(frames), "--duration", "20")
    try:
        assert run.ready, run.proc.communicate(timeout=30)
        traffic()
        status, out, err = run.finish(timeout=60)
    finally:
        run.stop()
    assert status == 0, err
    return out


def steer(topo: TwoNodeTopology, frames: int, seed: int, *pfrps_args: str, inject_args=()) -> dict:
    """Run pfrps until it has seen ``frames`` frames from ``pfinject --seed``; return its final JSON."""
    out = run_until(topo, frames, lambda: inject(topo, "-p", str(frames), "--seed", str(seed), *inject_args),
                    *pfrps_args, "--json")
    return last_json(out)
