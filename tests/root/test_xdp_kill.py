"""Issue 17: attachments die with their owner. Every attaching pfrps-xdp subcommand, SIGKILLed
once it is running, leaves nothing attached (no XDP program, no tcx program, no clsact) and none
of its programs loaded; the same command then starts again at once (no `ip link set dev X xdp
off` by hand) and stops cleanly."""

from __future__ import annotations

import selectors
import signal
import subprocess
import time

import pytest

from tests.conftest import bpf_program_ids, settled_leaks
from tests.helpers import PY
from tests.xdp_helpers import fresh_netns

pytestmark = pytest.mark.root

MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"

COMMANDS = {
    "l3fwd-fib": ["l3fwd", "--mode", "fib", "-i", "xa", "-i", "xb"],
    "l3fwd-map": ["l3fwd", "--mode", "map", "-i", "xa", "-r", "xb", "--src-mac", MAC_A, "--dest-mac", MAC_B],
    "l3fwd-hardcoded": ["l3fwd", "--mode", "hardcoded", "-i", "xa", "-r", "xb", "--dest-mac", MAC_B],
    "pass": ["pass", "-i", "xa", "-i", "xb"],
    "pass-generic": ["pass", "-i", "xa", "--generic"],
    "broadcast-tc": ["broadcast", "-i", "xa", "-i", "xb", "-i", "xc"],
    "broadcast-xdp": ["broadcast", "--xdp", "-i", "xa", "-i", "xb", "-i", "xc"],
    "lb": ["lb", "-i", "xa", "--vip", "10.0.0.10", "--backend", f"10.0.0.2@{MAC_B}"],
}


def _state() -> dict:
    """In the namespace: per interface, its XDP mode (None: no program), how many tcx programs
    it has, and its qdisc kinds."""
    from pyroute2 import IPRoute

    from pfrps import bpfsys
    from pfrps.xdp.attach import xdp_attached

    with IPRoute() as ipr:
        out = {}
        for link in ipr.get_links():
            xdp = xdp_attached(link["index"])
            tcx = bpfsys.prog_query(link["index"], bpfsys.BPF_TCX_INGRESS) + \
                bpfsys.prog_query(link["index"], bpfsys.BPF_TCX_EGRESS)
            out[link.get_attr("IFLA_IFNAME")] = (xdp[1] if xdp else None, len(tcx),
                                                 sorted(q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(link["index"])))
        return out


def _start(ns: str, argv: list[str], prefix: tuple[str, ...] | list[str] = ()) -> tuple[subprocess.Popen, str]:
    """Start ``pfrps-xdp argv`` in ``ns``; return it once its start-up line (printed after
    everything is attached) came, with the stderr read so far. ``prefix`` runs it through another
    command first (nsenter into a mount namespace)."""
    proc = subprocess.Popen([*prefix, "ip", "netns", "exec", ns, PY, "-m", "pfrps.xdp", *argv, "--interval", "60"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    err = ""
    deadline = time.monotonic() + 90
    try:
        while "Hit Ctrl-C to end." not in err:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            line = proc.stderr.readline()
            if not line:
                break
            err += line
    finally:
        sel.close()
    if "Hit Ctrl-C to end." not in err:
        proc.kill()
        rest = proc.communicate(timeout=30)[1]
        pytest.fail(f"pfrps-xdp {' '.join(argv)} did not start: {err}{rest}")
    return proc, err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_sigkill_leaves_nothing_and_the_command_starts_again(name):
    argv = COMMANDS[name]
    before = bpf_program_ids()
    with fresh_netns("xdp-kill", pairs=(("xa", "pa"), ("xb", "pb"), ("xc", "pc"))) as box:
        with box.ipr() as ipr:
            ipr.addr("add", index=box.ifindex("xa"), address="10.0.0.10", prefixlen=24)
        idle = box.call(_state)
        proc, err = _start(box.name, argv)
        running = box.call(_state)
        assert running != idle, running  # something was attached
        assert "through netlink" not in err, err  # this kernel has XDP and tcx links
        proc.kill()
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        proc.stderr.close()
        assert box.call(_state) == idle  # nothing attached any more, at once
        assert not settled_leaks(lambda: bpf_program_ids() - before), "programs left loaded"
        again, _err = _start(box.name, argv)  # at once: no busy interface
        assert box.call(_state) == running
        again.send_signal(signal.SIGTERM)
        _out, rest = again.communicate(timeout=60)
        assert again.returncode == 0, rest
        assert box.call(_state) == idle
    assert not settled_leaks(lambda: bpf_program_ids() - before)


def test_l2fwd_sigkill_leaves_only_its_pins_and_starts_again(tmp_path):
    """l2fwd's uplink programs are on links held by the process: gone with it. What it pins on
    purpose (maps, the two ACL programs, the VM ports' links) stays in its directory until the
    next l2fwd of the namespace starts, which removes the dead instance's pins at once (its VM
    port programs detach with them), or until `rm -r` of the directory."""
    bpffs = tmp_path / "bpffs"
    bpffs.mkdir()
    before = bpf_program_ids()
    argv = ["l2fwd", "-i", "xa", "-i", "xb", "--bpffs", str(bpffs), "--vm", f"1,pc,{MAC_A},vlan=10"]
    with fresh_netns("xdp-kill", pairs=(("xa", "pa"), ("xb", "pb"), ("xc", "pc"))) as box:
        # a private mount namespace (made after the netns, so it sees its name) with a bpffs
        holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                   f"mount -t bpf bpf {bpffs} && echo up && exec sleep 600"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "up"
            idle = box.call(_state)
            enter = ["nsenter", "-t", str(holder.pid), "-m"]
            proc, _err = _start(box.name, argv, prefix=enter)
            running = box.call(_state)
            assert running["xa"][0] and running["xb"][0] and running["pc"][0], running
            proc.kill()
            proc.wait(timeout=30)
            proc.stderr.close()
            after = box.call(_state)
            assert after["xa"] == idle["xa"] and after["xb"] == idle["xb"]  # the uplinks: at once
            assert after["pc"] == running["pc"]  # the VM port's pinned link: on purpose, until the next start
            again, err = _start(box.name, argv, prefix=enter)
            assert "removing the stale pins of a dead instance" in err, err
            assert box.call(_state) == running
            again.send_signal(signal.SIGTERM)
            _out, rest = again.communicate(timeout=60)
            assert again.returncode == 0, rest
            assert box.call(_state) == idle
            left = subprocess.run([*enter, "find", f"{bpffs}/pfrps-xdp", "-mindepth", "1"], capture_output=True, text=True)
            assert left.stdout.strip() == "", left.stdout  # no pin left
        finally:
            holder.kill()
            holder.wait()
    assert not settled_leaks(lambda: bpf_program_ids() - before)
