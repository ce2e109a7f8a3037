"""--user drops workers to a user with no capabilities; --log-file and SIGHUP (issue 4)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from pfrps.inject.macs import random_macs
from pfrps.hashing import expected_counts
from pfrps.privileges import SUPERVISOR_CAPS
from tests.conftest import child_pids
from tests.helpers import last_json
from tests.root.conftest import inject, start_pfrps

pytestmark = pytest.mark.root


def status_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


def wait_for(cond, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_user_drops_worker_privileges(topo):
    run = start_pfrps(topo, "-w", "3", "--user", "nobody", "--json")
    try:
        assert run.ready
        kids = sorted(child_pids(run.proc.pid))
        assert len(kids) == 3
        for pid in kids:
            assert status_field(pid, "Uid").split()[:2] == ["65534", "65534"]
            assert int(status_field(pid, "CapEff"), 16) == 0
            assert status_field(pid, "NoNewPrivs") == "1"
        want_mask = sum(1 << c for c in SUPERVISOR_CAPS)
        assert int(status_field(run.proc.pid, "CapEff"), 16) == want_mask
        inject(topo, "-p", "900", "--seed", "21")
        os.kill(kids[0], signal.SIGKILL)  # a restarted worker drops privileges too
        assert wait_for(lambda: len(child_pids(run.proc.pid) - {kids[0]}) == 3)
        new = (child_pids(run.proc.pid) - set(kids)).pop()
        assert wait_for(lambda: status_field(new, "Uid").split()[0] == "65534")
        assert int(status_field(new, "CapEff"), 16) == 0
    finally:
        run.proc.send_signal(signal.SIGTERM)
    status, out, err = run.finish(timeout=10)
    assert status == 0, err
    assert last_json(out)["frames"] == expected_counts(random_macs(900, 21), 3, 0).tolist()


def test_unknown_user_is_bad_input(topo):
    from tests.root.test_bad_input import run_in_node
    from tests.helpers import assert_bad_input

    assert_bad_input(run_in_node(topo, ["-i", topo.node_if, "--user", "no-such-user-x"]), "pfrps",
                     "unknown user 'no-such-user-x'")


def test_sighup_reopens_rotated_log(topo, open_tmp):
    log_dir = open_tmp
    log = log_dir / "pfrps.log"
    run = start_pfrps(topo, "-w", "2", "--user", "nobody", "--log-file", str(log))
    try:
        assert run.ready
        assert "2 workers ready" in log.read_text()
        assert os.stat(log).st_uid == 65534
        workers = sorted(child_pids(run.proc.pid))
        assert len(workers) == 2
        log.rename(log_dir / "pfrps.log.1")
        run.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: log.exists() and os.stat(log).st_uid == 65534)
        # the workers reopen too, and none of them dies doing it
        assert wait_for(lambda: all(_logs_to(pid, log) for pid in workers))
        assert sorted(child_pids(run.proc.pid)) == workers
        os.kill(workers[0], signal.SIGKILL)
        assert wait_for(lambda: "was killed by SIGKILL" in log.read_text())
    finally:
        run.proc.send_signal(signal.SIGTERM)
    status, _, err = run.finish(timeout=10)
    assert status == 0, err
    new = log.read_text()
    assert new.count("was killed by SIGKILL") == 1
    assert "exited with status" not in new
    assert "was killed" not in (log_dir / "pfrps.log.1").read_text()


def _logs_to(pid: int, path: Path) -> bool:
    """True when process ``pid`` holds ``path`` (the new file, not the rotated one) open."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd) == str(path) for fd in fds.iterdir())
    except OSError:
        return False


def test_log_file_out_of_users_reach_is_bad_input(topo, tmp_path):
    from tests.helpers import assert_bad_input
    from tests.root.test_bad_input import run_in_node

    log = tmp_path / "pfrps.log"  # under pytest's 0700 /tmp/pytest-of-root
    line = assert_bad_input(run_in_node(topo, ["-i", topo.node_if, "--user", "nobody", "--log-file", str(log)]),
                            "pfrps", "--user nobody cannot reach --log-file", "not searchable",
                            "put the log file in a directory nobody can enter")
    assert "/tmp/pytest-of-root" in line
    assert not log.exists()
