"""./run qemu end to end (issue 9): two QEMU guests, exact per-worker counts, native XDP.

The first test builds the guest image when the cache has none (about 2.5 min on a fresh CI
machine) and runs the whole two-guest demo at 2000 frames (about 2 min under TCG on 2 cores);
the others are cheap: a second run refused, a run interrupted, a run timed out. Each uses its
own --run-dir, and after each no QEMU process, namespace, tap or socket file is left.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pfrps.inject.macs import random_macs
from pfrps.hashing import expected_counts
from pfrps.qemu.cli import PREFIX, RunLock, sweep_stale
from pfrps.qemu.guest import parse_seed_line
from tests.helpers import PY, assert_bad_input

pytestmark = [pytest.mark.root, pytest.mark.qemu]

FRAMES = 2000
WORKERS = 4
SEED = 7


def qemu_pids() -> set[int]:
    """QEMU processes of any ./run qemu (``-name <guest>,process=pfrps-qemu-<guest>``)."""
    pids = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if b"process=pfrps-qemu-" in (d / "cmdline").read_bytes():
                    pids.add(int(d.name))
            except OSError:
                pass
    return pids


def our_netns() -> set[str]:
    d = Path("/var/run/netns")
    return {n.name for n in d.iterdir() if n.name.startswith(f"{PREFIX}-")} if d.is_dir() else set()


@pytest.fixture
def run_dir(tmp_path):
    """A private --run-dir; afterwards no QEMU guest, namespace, socket or run folder is left."""
    d = tmp_path / "run"
    before, ns_before = qemu_pids(), our_netns()
    yield d
    assert qemu_pids() <= before, "a QEMU guest outlived the run"
    assert our_netns() <= ns_before, "a namespace outlived the run"
    left = [p.name for p in d.iterdir()] if d.is_dir() else []
    assert left == [], f"left in {d}: {left}"


def qemu_cli(run_dir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "pfrps.qemu", "--run-dir", str(run_dir), *args], capture_output=True,
                          text=True, timeout=timeout)


def interrupt_while_booting(*argv: str) -> tuple[int, str]:
    """Start ``PY *argv`` (a QEMU runner), send it SIGINT once it printed ``qemu: booting node and
    injector`` (both QEMU guests started), and return its exit status and stderr; the runner is
    always reaped."""
    proc = subprocess.Popen([PY, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("qemu: booting node and injector"):
                break
        assert len(qemu_pids()) >= 2
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=60)
    return proc.returncode, err


def seed_lines(out: str) -> list[tuple[list[int], int]]:
    return [p for p in map(parse_seed_line, out.splitlines()) if p]


def test_two_guests_exact_counts_and_native_xdp(run_dir):
    res = qemu_cli(run_dir, "-w", str(WORKERS), "-p", str(FRAMES), "-a", "mac_jhash", "--seed", str(SEED))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    out = res.stdout
    assert "node: booted" in out and "injector: booted" in out
    assert re.search(r"^node\$ pfrps -i enp1s0 -w 4 -a 1 .*-c 2000", out, re.M)
    assert "injector$ pfinject -i eno1 -d 52:54:00:84:d7:ff -p 2000" in out
    # phase 1: the seed's lines up to total:2000, each worker exactly what the reference predicts
    lines = seed_lines(out)
    finals = [ln for ln in lines if ln[1] == FRAMES]
    assert len(finals) == 2, lines
    want1 = expected_counts(random_macs(FRAMES, SEED), WORKERS, "mac_jhash").tolist()
    want2 = expected_counts(random_macs(FRAMES, SEED + 1), WORKERS, "mac_jhash").tolist()
    assert finals[0][0] == want1 and finals[1][0] == want2
    # phase 2: native XDP counted exactly the frames sent, and so did pfrps behind it
    m = re.search(r"^xdp: (\w+): (\w+) mode on enp1s0; XDP counted (\d+) PPPoE frames \(\+(\d+) others\), "
                  r"pfrps total:(\d+), sent (\d+)$", out, re.M)
    assert m, out[-3000:]
    assert m.groups()[:3] == ("OK", "native", str(FRAMES)) and m.group(5) == m.group(6) == str(FRAMES)
    assert "node: XDP attached to enp1s0 in native mode (IFLA_XDP_ATTACHED)" in out
    assert re.search(r"^qemu: node status 0, injector status 0; times \((tcg|kvm)\)", out, re.M)


def test_second_run_refused_naming_the_first(run_dir):
    lock = RunLock(run_dir / "lock").acquire()
    try:
        res = qemu_cli(run_dir, "-p", "10", timeout=60)
    finally:
        lock.release()
    assert_bad_input(res, "qemu", f"another ./run qemu is running (pid {os.getpid()}", f"kill {os.getpid()}")


def test_interrupted_run_leaves_nothing(run_dir):
    rc, err = interrupt_while_booting("-m", "pfrps.qemu", "--run-dir", str(run_dir), "-p", "10")
    assert rc == 130 and "qemu: interrupted; both guests stopped" in err


def test_timeout_kills_both_and_shows_serial_lines(run_dir):
    res = qemu_cli(run_dir, "-p", "10", "--timeout", "30", timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    assert ("qemu: error: the guests did not finish within 30 s (node and injector still running); "
            "both were killed") in res.stderr
    assert "qemu: last serial lines of node:" in res.stderr and "qemu: last serial lines of injector:" in res.stderr
    assert "  node| " in res.stderr and "  injector| " in res.stderr  # the guests' consoles had lines
    assert "Traceback" not in res.stderr


def test_runner_killed_guests_die_and_next_run_sweeps(run_dir):
    """SIGKILL leaves the runner no clean-up: the guests still die (PR_SET_PDEATHSIG) and the
    next run removes the folder with the socket files (sweep_stale, under the lock)."""
    proc = subprocess.Popen([PY, "-m", "pfrps.qemu", "--run-dir", str(run_dir), "-p", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("qemu: booting node and injector"):
                break
        guests = qemu_pids()
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    deadline = time.monotonic() + 30
    while guests & qemu_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not guests & qemu_pids()
    left = [p.name for p in run_dir.glob(f"{PREFIX}-*")]
    assert len(left) == 1
    assert sweep_stale(run_dir) == left and not list(run_dir.glob(f"{PREFIX}-*"))
    (run_dir / "lock").unlink(missing_ok=True)  # the killed run could not remove it (nobody holds it)
