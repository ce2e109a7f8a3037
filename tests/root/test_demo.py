"""The README's first command, end to end and interrupted, in uniquely named namespaces."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

from pfrps.inject.macs import random_macs
from pfrps.hashing import expected_counts
from pfrps.topology import netns_exists, unique_suffix
from tests.conftest import child_pids
from tests.helpers import PY

pytestmark = pytest.mark.root


def demo_argv(*extra):
    sfx = unique_suffix()
    inj, node = f"demo-inj-{sfx}", f"demo-node-{sfx}"
    return [PY, "-m", "pfrps.demo", "--injector-ns", inj, "--node-ns", node, *extra], inj, node


def test_demo_runs_to_total_and_cleans_up():
    argv, inj, node = demo_argv("-w", "4", "-p", "3000", "--rate", "0", "--seed", "31")
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    want = expected_counts(random_macs(3000, 31), 4, 0)
    last = [ln for ln in res.stdout.splitlines() if ln.startswith("#")][-1]
    assert last.startswith(" ".join(f"#{i}:{c:04d}" for i, c in enumerate(want)) + " (total:3000 ")
    assert re.search(r"workers ready \d+\.\d+ s after launch", res.stdout)
    assert f"removed namespaces {inj} and {node}" in res.stdout
    assert not netns_exists(inj) and not netns_exists(node)


def test_demo_interrupted_removes_everything():
    argv, inj, node = demo_argv("-w", "2", "-p", "100000", "--rate", "2000")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # wait for the first stats line: traffic is flowing
            if line.startswith("#"):
                break
        kids = child_pids(proc.pid)
        assert kids
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "demo: interrupted" in err
    assert f"removed namespaces {inj} and {node}" in out
    assert not netns_exists(inj) and not netns_exists(node)
    assert not [p for p in kids if os.path.exists(f"/proc/{p}")]


def test_demo_refuses_existing_namespace():
    from pfrps.topology import TwoNodeTopology

    t = TwoNodeTopology.unique(prefix="demo-taken").create()
    try:
        res = subprocess.run([PY, "-m", "pfrps.demo", "--injector-ns", t.injector, "--node-ns", f"demo-node-{unique_suffix()}"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 2
        assert f"network namespace '{t.injector}' already exists" in res.stderr
        assert netns_exists(t.injector)  # someone else's namespace is left alone
    finally:
        t.destroy()
