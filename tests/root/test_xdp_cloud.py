"""pfrps-xdp l2fwd live, in namespaces of the test's own: the cloud-host lab's checks with exact
counts (native and generic), the management commands against a running instance, and bad
input (one line, exit 2, nothing left attached or pinned)."""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pfrps.topology import _enter_netns
from pfrps.xdp.attach import xdp_attached
from pfrps.xdp.cloud_lab import CloudHostLab, private_bpffs
from tests.xdp_helpers import fresh_netns

pytestmark = pytest.mark.root

PY = sys.executable
MAC1 = "52:54:00:00:00:01"


@pytest.mark.parametrize("generic", [False, True], ids=["native", "generic"])
def test_lab_cloud_host(generic, capsys):
    lab = CloudHostLab(prefix="cloud-lab")
    status = lab.execute(argparse.Namespace(frames=50, generic=generic))
    out = capsys.readouterr().out
    names = [name for name, ok, _ in lab.results]
    assert names == ["to-vm untagged", "to-vm acl drop", "slow path", "from-vm spoof drop", "from-vm acl drop",
                     "egress bond hash", "fdb del", "clean exit"], out
    assert status == 0, out
    assert "50/50 frames tagged VLAN 10 reached vm1, 50 untagged" in out
    assert "to_vm_acl_drop +50" in out and "from_vm_spoof_drop +50" in out


@pytest.fixture(scope="module")
def bpffs():
    with private_bpffs("cloud-lab-bpffs-") as d:
        yield d


@pytest.fixture
def box():
    with fresh_netns("cloud-maps", pairs=(("up0", "sw0"), ("tap1", "vm1"))) as b:
        yield b


def xdp(box, dev):
    return xdp_attached(box.ifindex(dev), box.name)


def cmd(box, *argv, timeout=60):
    return subprocess.run([PY, "-m", "pfrps.xdp", *argv], preexec_fn=lambda: _enter_netns(box.name),
                          capture_output=True, text=True, timeout=timeout)


def start(box, *argv):
    """Start ``pfrps-xdp l2fwd argv`` in the box; return once its startup line is printed."""
    proc = subprocess.Popen([PY, "-m", "pfrps.xdp", "l2fwd", *argv], preexec_fn=lambda: _enter_netns(box.name),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fd, seen = proc.stderr.fileno(), b""
    deadline = time.monotonic() + 60
    while b"Hit Ctrl-C to end." not in seen and select.select([fd], [], [], max(deadline - time.monotonic(), 0))[0]:
        chunk = os.read(fd, 4096)  # not readline(): a buffered reader hides lines from select
        if not chunk:
            break
        seen += chunk
    assert proc.poll() is None and b"Hit Ctrl-C to end." in seen, seen.decode(errors="replace")
    return proc


def stop(proc):
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def test_management_commands(box, bpffs):
    proc = start(box, "-i", "up0", "--bpffs", bpffs, "--interval", "60")
    try:
        inst = list(Path(bpffs, "pfrps-xdp").iterdir())
        assert len(inst) == 1 and {p.name for p in inst[0].iterdir()} >= {"fdb", "ports", "vm_info", "prog_vm_rx"}
        r = cmd(box, "vm", "add", "--id", "3", "--dev", "tap1", "--mac", MAC1, "--vlan", "10", "-4", "10.1.0.1",
                "--bpffs", bpffs)
        assert r.returncode == 0, r.stderr
        assert xdp(box, "tap1") is not None  # xdp_vmegress on the VM port
        assert cmd(box, "fdb", "add", "--mac", MAC1, "--vlan", "10", "--dev", "tap1", "--bpffs", bpffs).returncode == 0
        assert cmd(box, "acl", "add", "--dev", "tap1", "--to-vm", "proto=tcp,dport=25", "--bpffs", bpffs).returncode == 0
        show = cmd(box, "fdb", "show", "--bpffs", bpffs).stdout.splitlines()
        assert len(show) == 1 and show[0].startswith(f"{MAC1} vlan 10 dev tap1") and "acl_prog none" not in show[0]
        assert cmd(box, "vm", "show", "--bpffs", bpffs).stdout.split()[:4] == ["vm", "3", "dev", "tap1"]
        assert cmd(box, "acl", "show", "--bpffs", bpffs).stdout.splitlines() == ["to-vm dev tap1 proto=tcp,dport=25"]
        # a rule that exists already, a rule to delete with the seed's leading '-'
        dup = cmd(box, "acl", "add", "--dev", "tap1", "--to-vm", "proto=tcp,dport=25", "--bpffs", bpffs)
        assert dup.returncode == 2 and len(dup.stderr.splitlines()) == 1 and "exists already" in dup.stderr
        assert cmd(box, "acl", "del", "--dev", "tap1", "--to-vm", "proto=tcp,dport=25", "--bpffs", bpffs).returncode == 0
        assert cmd(box, "acl", "show", "--bpffs", bpffs).stdout == ""
        assert cmd(box, "fdb", "del", "--mac", MAC1, "--vlan", "10", "--bpffs", bpffs).returncode == 0
        assert cmd(box, "fdb", "show", "--bpffs", bpffs).stdout == ""
        assert cmd(box, "vm", "del", "--dev", "tap1", "--bpffs", bpffs).returncode == 0
        assert xdp(box, "tap1") is None
        # a VM added and left: the instance detaches it on exit
        assert cmd(box, "vm", "add", "--id", "4", "--dev", "tap1", "--mac", MAC1, "--bpffs", bpffs).returncode == 0
    finally:
        status, _out, err = stop(proc)
    assert status == 0, err
    assert xdp(box, "up0") is None and xdp(box, "tap1") is None
    assert not list(Path(bpffs).glob("pfrps-xdp/*"))


def test_config_file_sets_everything_up(box, bpffs, tmp_path):
    conf = tmp_path / "host.conf"
    conf.write_text(f"# the whole datapath\nvm add --id 1 --dev tap1 --mac {MAC1} --vlan 10\n"
                    f"fdb add --mac {MAC1} --vlan 10 --dev tap1\n"
                    "acl add --dev tap1 --from-vm ipv4,proto=udp,addr=10.9.9.9,dport=53\n")
    proc = start(box, "-i", "up0", "--bpffs", bpffs, "--config", str(conf), "--vm-rx", "acl")
    try:
        assert cmd(box, "acl", "show", "--from-vm", "--bpffs", bpffs).stdout.splitlines() == \
            ["from-vm dev tap1 proto=udp,addr=10.9.9.9,dport=53"]
        assert len(cmd(box, "fdb", "show", "--bpffs", bpffs).stdout.splitlines()) == 1
        assert xdp(box, "tap1") is not None
    finally:
        status, _out, err = stop(proc)
    assert status == 0, err
    assert xdp(box, "tap1") is None and xdp(box, "up0") is None


def one_line_error(r, *words):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("pfrps-xdp: error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert "Traceback" not in r.stderr


def test_bad_input_at_start(box, bpffs):
    cases = [
        (("-i", "up0", "--acl-to-vm", "tap1:proto=tcp,dport=abc"), ("'dport=abc'",)),
        (("-i", "up0", "--acl-from-vm", "tap1:proto=tcp,color=red"), ("'color=red'",)),
        (("-i", "nosuch0",), ("nosuch0",)),
        (("-i", "up0", "--fdb", f"{MAC1},10,nosuch1"), ("fdb add", "nosuch1")),
        (("-i", "up0", "--vm", "1,tap1,52:54:00:zz:00:01"), ("not a MAC",)),
    ]
    for argv, words in cases:
        r = cmd(box, "l2fwd", *argv, "--bpffs", bpffs, "--duration", "5")
        one_line_error(r, *words)
        assert xdp(box, "up0") is None and xdp(box, "tap1") is None, argv
        assert not list(Path(bpffs).glob("pfrps-xdp/*")), argv
    one_line_error(cmd(box, "l2fwd", "-i", "up0", "--bpffs", tempfile.gettempdir(), "--duration", "5"),
                   "not a mounted bpffs", "mount -t bpf")


def test_management_bad_input(box, bpffs):
    r = cmd(box, "fdb", "show", "--bpffs", bpffs)
    one_line_error(r, "no running pfrps-xdp l2fwd instance", "pfrps-xdp l2fwd -i")
    one_line_error(cmd(box, "vm", "add", "--id", "1", "--dev", "tap1", "--mac", MAC1, "--bpffs", bpffs),
                   "no running")
    proc = start(box, "-i", "up0", "--bpffs", bpffs, "--interval", "60")
    try:
        one_line_error(cmd(box, "fdb", "add", "--mac", MAC1, "--vlan", "10", "--dev", "nosuch2", "--bpffs", bpffs),
                       "fdb add", "'nosuch2' not found")
        one_line_error(cmd(box, "acl", "add", "--dev", "tap1", "--to-vm", "proto=tcp,dport=70000", "--bpffs", bpffs),
                       "'dport=70000'")
        one_line_error(cmd(box, "fdb", "add", "--mac", MAC1, "--vlan", "4095", "--dev", "tap1", "--bpffs", bpffs),
                       "VLAN 4095")
        one_line_error(cmd(box, "fdb", "del", "--mac", MAC1, "--vlan", "10", "--bpffs", bpffs), "no FDB entry")
        assert cmd(box, "fdb", "show", "--bpffs", bpffs).stdout == ""
        assert xdp(box, "tap1") is None
        # a second instance in the same namespace is refused, the first one untouched
        one_line_error(cmd(box, "l2fwd", "-i", "tap1", "--bpffs", bpffs), "runs already")
        assert proc.poll() is None and xdp(box, "tap1") is None
    finally:
        status, _out, err = stop(proc)
    assert status == 0, err
    assert xdp(box, "up0") is None
