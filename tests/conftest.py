"""Shared pytest set-up.

* ``@pytest.mark.root`` tests need root, BPF and network namespaces. Outside CI they skip when
  not root; under CI (``CI`` set) any skipped test fails the run.
* A session fixture records pfrps's BPF programs (by name), network namespaces, root-namespace
  links and child processes before the suite and asserts none were added after it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

IS_ROOT = os.geteuid() == 0
IN_CI = bool(os.environ.get("CI"))


def pytest_collection_modifyitems(config, items):
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root (BPF, PF_PACKET, network namespaces)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        reporter.write_line(f"CI: {skipped} test(s) skipped; a skip in CI is a failure", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


#: pfrps names every program it loads after its entry point, and every entry point starts with
#: this (pfrps.bpfsys.PROG_NAME_PREFIX; the kernel keeps 15 characters of the name).
PFRPS_PROG_PREFIX = "pfrps"


def bpf_program_ids() -> set[int]:
    """Ids of loaded BPF programs that are pfrps's own (``bpftool prog show``: the name starts
    with ``pfrps``), except those held only by live processes outside this test run (another
    engineer's pfrps running at the same time). Other tools' programs on the machine are never
    counted, whatever their type."""
    if not IS_ROOT or not shutil.which("bpftool"):
        return set()
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, timeout=30).stdout
    ours = child_pids() | {os.getpid()}
    ids = set()
    for p in json.loads(out or "[]"):
        if not str(p.get("name", "")).startswith(PFRPS_PROG_PREFIX):
            continue
        holders = {h["pid"] for h in p.get("pids", [])}
        if holders and not holders & ours:
            continue
        ids.add(p["id"])
    return ids


def netns_names() -> set[str]:
    d = Path("/var/run/netns")
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def root_links() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir()}


def child_pids(pid: int | None = None) -> set[int]:
    """Direct and indirect children of ``pid`` (default: this process)."""
    pid = pid or os.getpid()
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = {int(x) for x in (task / "children").read_text().split()}
            except OSError:
                continue
            new = kids - found
            found |= new
            todo.extend(new)
    return found


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """After the whole suite: no BPF program, netns, link or child process was left over."""
    before = (bpf_program_ids(), netns_names(), root_links())
    yield
    leaked_progs = bpf_program_ids() - before[0]
    leaked_ns = netns_names() - before[1]
    leaked_links = root_links() - before[2]
    leaked_kids = child_pids()
    assert not leaked_progs, f"BPF programs left loaded: {sorted(leaked_progs)}"
    assert not leaked_ns, f"network namespaces left: {sorted(leaked_ns)}"
    assert not leaked_links, f"links left in the root namespace: {sorted(leaked_links)}"
    assert not leaked_kids, f"child processes left running: {sorted(leaked_kids)}"


@pytest.fixture
def open_tmp():
    """A fresh directory under /tmp that every user can enter and write (mode 0777), removed
    afterwards; pytest's ``tmp_path`` sits below a 0700 directory that ``--user`` workers
    cannot reach."""
    import tempfile  # noqa: PLC0415

    d = tempfile.mkdtemp(prefix="pfrps-test-", dir="/tmp")
    os.chmod(d, 0o777)
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
