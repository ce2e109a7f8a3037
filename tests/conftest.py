"""Shared pytest set-up.

* ``@pytest.mark.root`` tests need root, BPF and network namespaces. Outside CI they skip when
  not root; under CI (``CI`` set) any skipped test fails the run.
* A session fixture asserts that after the suite no BPF program pfrps loaded during it is
  still loaded (a registry of program ids every pfrps process of the session appends to:
  ``pfrps.bpfsys.REGISTRY_ENV``) and that no network namespace, root-namespace link or child
  process was added.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
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


#: Every BPF program a pfrps process of this test session loads is recorded here
#: (``pfrps.bpfsys.REGISTRY_ENV``, inherited by every process the suite starts).
REGISTRY = Path(tempfile.gettempdir(), f"pfrps-bpf-registry-{os.getpid()}")
REGISTRY_ENV = "PFRPS_BPF_REGISTRY"


def loaded_program_ids() -> set[int]:
    """Ids of every BPF program loaded on the machine now (``bpftool prog show``)."""
    if not IS_ROOT or not shutil.which("bpftool"):
        return set()
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, timeout=30).stdout
    return {p["id"] for p in json.loads(out or "[]")}


def bpf_program_ids() -> set[int]:
    """Ids of the BPF programs pfrps loaded during this test session that are still loaded.

    Only programs in the session's registry count, so other tools' programs on the machine,
    and another engineer's pfrps run at the same time, can never fail the suite; ids are not
    reused while a program lives, so a listed id that still exists is a leak of this run."""
    try:
        registered = {int(x) for x in REGISTRY.read_text().split()}
    except FileNotFoundError:
        registered = set()
    return registered & loaded_program_ids()


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


def settled_leaks(leaks, deadline: float = 10.0) -> set[int]:
    """``leaks()`` once it is empty, or what it still returns after ``deadline`` seconds.

    A removed namespace's devices, and the XDP/TC programs they carry, are released by the
    kernel's netns clean-up work queue (net/core/net_namespace.c: cleanup_net) after the
    namespace's last reference is gone, so a program can outlive the test that detached it by a
    few milliseconds; a program still loaded after the deadline is a leak."""
    end = time.monotonic() + deadline
    found = leaks()
    while found and time.monotonic() < end:
        time.sleep(0.05)
        found = leaks()
    return found


#: Every namespace a pfrps process of this test session creates is recorded here
#: (``pfrps.topology.NETNS_REGISTRY_ENV``), so only the suite's own count as leaks.
NETNS_REGISTRY = Path(tempfile.gettempdir(), f"pfrps-netns-registry-{os.getpid()}")


def suite_netns() -> set[str]:
    """Namespaces this test session created (the registry) that still exist."""
    try:
        made = set(NETNS_REGISTRY.read_text().split())
    except FileNotFoundError:
        made = set()
    return made & netns_names()


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """After the whole suite: no BPF program, netns, link or child process it made was left over
    (programs and namespaces count only when this session's processes created them: another
    program's, or another engineer's test run's, never fail the suite)."""
    from pfrps.topology import NETNS_REGISTRY_ENV  # noqa: PLC0415

    REGISTRY.unlink(missing_ok=True)
    NETNS_REGISTRY.unlink(missing_ok=True)
    os.environ[REGISTRY_ENV] = str(REGISTRY)
    os.environ[NETNS_REGISTRY_ENV] = str(NETNS_REGISTRY)
    before = (bpf_program_ids(), netns_names(), root_links())
    yield
    leaked_progs = settled_leaks(lambda: bpf_program_ids() - before[0])
    leaked_ns = suite_netns()
    leaked_links = root_links() - before[2]
    leaked_kids = child_pids()
    REGISTRY.unlink(missing_ok=True)
    NETNS_REGISTRY.unlink(missing_ok=True)
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
