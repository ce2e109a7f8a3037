"""``pfrps-xdp`` on interfaces of a fresh namespace: bad input (one line, exit 2, nothing
attached), a busy interface named and never replaced, no privileges, and every subcommand
leaving no XDP program, clsact qdisc, BPF program or process behind after SIGTERM/SIGINT."""

from __future__ import annotations

import json
import re
import signal
import subprocess

import pytest

from pfrps.topology import _enter_netns
from tests.helpers import PY, assert_bad_input
from pfrps.xdp.lab import read_until
from tests.xdp_helpers import NetnsBox, fresh_netns

pytestmark = pytest.mark.root

PROG = "pfrps-xdp"
MAC_A, MAC_B = "02:00:00:00:0a:01", "02:00:00:00:0b:01"


@pytest.fixture(scope="module")
def box():
    with fresh_netns("xdp-cli", pairs=(("veth0", "peer0"), ("veth1", "peer1"), ("veth2", "peer2"))) as b:
        yield b


def run(box: NetnsBox, *args: str, prefix=(), timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, PY, "-m", "pfrps.xdp", *args], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=lambda: _enter_netns(box.name))


def start(box: NetnsBox, *args: str) -> subprocess.Popen:
    """Start pfrps-xdp in the namespace and return once its startup line says it is attached."""
    proc = subprocess.Popen([PY, "-m", "pfrps.xdp", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: _enter_netns(box.name))
    ready, seen = read_until(proc.stderr, "Hit Ctrl-C to end.", 60)
    assert ready, (seen, proc.poll())
    return proc


def state(box: NetnsBox) -> dict:
    """What is attached in the namespace: XDP program ids per link, and whether it has a TC hook
    in use (a clsact qdisc, or tcx programs: TC programs are attached through tcx links)."""
    def probe():
        from pyroute2 import IPRoute

        from pfrps import bpfsys
        from pfrps.xdp.attach import xdp_attached

        with IPRoute() as ipr:
            out = {}
            for link in ipr.get_links():
                name, idx = link.get_attr("IFLA_IFNAME"), link["index"]
                qdiscs = [q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(idx)]
                tcx = bpfsys.prog_query(idx, bpfsys.BPF_TCX_INGRESS) + bpfsys.prog_query(idx, bpfsys.BPF_TCX_EGRESS)
                out[name] = (xdp_attached(idx), "clsact" in qdiscs or bool(tcx))
        return out
    return box.call(probe)


def clean(box: NetnsBox) -> bool:
    return all(x is None and not clsact for x, clsact in state(box).values())


def loaded(prog_id: int) -> bool:
    """True while program ``prog_id`` is loaded (``bpftool prog show id``)."""
    return subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True,
                          timeout=30).returncode == 0


BAD = [
    ("unknown interface", ("pass", "-i", "nope0"), ("interface 'nope0' not found", "ip link")),
    ("invalid interface name", ("pass", "-i", "a/b"), ("invalid interface name", "-i")),
    ("malformed --src-mac", ("l3fwd", "--mode", "map", "-i", "veth0", "-r", "veth1", "--src-mac", "02:00:zz:00:00:01",
                             "--dest-mac", MAC_B), ("malformed MAC address '02:00:zz:00:00:01'", "six hex octets")),
    ("malformed --dest-mac", ("l3fwd", "--mode", "hardcoded", "-i", "veth0", "-r", "veth1", "--dest-mac", "02:00:00"),
     ("malformed MAC address", "52:54:00:84:d7:ff")),
    ("-r missing in hardcoded mode", ("l3fwd", "--mode", "hardcoded", "-i", "veth0", "--dest-mac", MAC_B),
     ("--mode hardcoded needs -r OUT_DEV", "add -r OUT_DEV")),
    ("-r missing in map mode", ("l3fwd", "--mode", "map", "-i", "veth0", "--src-mac", MAC_A, "--dest-mac", MAC_B),
     ("--mode map needs -r OUT_DEV", "add -r OUT_DEV")),
    ("unknown -r device", ("l3fwd", "--mode", "hardcoded", "-i", "veth0", "-r", "nope1", "--dest-mac", MAC_B),
     ("interface 'nope1' not found",)),
    ("unpaired MACs in map mode", ("l3fwd", "--mode", "map", "-i", "veth0", "-r", "veth1", "--src-mac", MAC_A),
     ("--src-mac/--dest-mac pairs", "one --dest-mac per --src-mac")),
    ("-r in fib mode", ("l3fwd", "--mode", "fib", "-i", "veth0", "-r", "veth1"), ("--mode fib takes only -i", "drop -r")),
    ("two -i in map mode", ("l3fwd", "--mode", "map", "-i", "veth0", "-i", "veth1", "-r", "veth2", "--src-mac", MAC_A,
                            "--dest-mac", MAC_B), ("-i takes exactly one device",)),
    ("one broadcast port", ("broadcast", "-i", "veth0"), ("at least two ports", "-i")),
    ("--generic on the TC switch", ("broadcast", "-i", "veth0", "-i", "veth1", "--generic"),
     ("--generic applies to XDP only", "add --xdp")),
    ("native XDP on lo", ("pass", "-i", "lo"), ("lo's driver has no native XDP", "--generic")),
]


@pytest.mark.parametrize("desc,args,needles", BAD, ids=[b[0] for b in BAD])
def test_bad_input(box, desc, args, needles):
    res = run(box, *args)
    assert_bad_input(res, PROG, *needles)
    assert clean(box)


def test_busy_interface_is_named_and_kept(box):
    """A second pfrps-xdp on an interface that carries XDP says which program and keeps it."""
    first = start(box, "pass", "-i", "veth0", "--generic")
    try:
        prog_id, mode = state(box)["veth0"][0]
        assert mode == "generic"
        for extra in ((), ("--generic",)):
            res = run(box, "pass", "-i", "veth1", "-i", "veth0", *extra)
            line = assert_bad_input(res, PROG, f"veth0 already carries XDP program {prog_id} (pfrps_xdp_pass) "
                                               "in generic mode", "detach it first")
            assert "xdpgeneric off" in line
            st = state(box)
            assert st["veth0"][0] == (prog_id, "generic")  # never replaced
            assert st["veth1"][0] is None                  # the half-done attach was undone
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
    assert clean(box)


@pytest.mark.parametrize("prefix,who", [
    (("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"), "uid 65534"),
    (("setpriv", "--bounding-set", "-bpf,-net_admin,-sys_admin"), "uid 0"),
], ids=["nobody", "root-without-caps"])
def test_no_privileges(box, prefix, who):
    res = run(box, "pass", "-i", "veth0", prefix=prefix)
    line = assert_bad_input(res, PROG, "needs CAP_BPF and CAP_NET_ADMIN", "run it as root")
    assert who in line
    assert clean(box)


LIFECYCLE = [
    ("pass native", ("pass", "-i", "veth0", "-i", "veth1")),
    ("pass generic", ("pass", "-i", "veth0", "--generic")),
    ("l3fwd fib", ("l3fwd", "--mode", "fib", "-i", "veth0", "-i", "veth1")),
    ("l3fwd map generic", ("l3fwd", "--mode", "map", "-i", "veth0", "-r", "veth1", "--src-mac", MAC_A,
                           "--dest-mac", MAC_B, "--src-mac", MAC_B, "--dest-mac", MAC_A, "--generic")),
    ("l3fwd hardcoded", ("l3fwd", "--mode", "hardcoded", "-i", "veth1", "-r", "veth0", "--dest-mac", MAC_A)),
    ("broadcast tc", ("broadcast", "-i", "veth0", "-i", "veth1", "-i", "veth2")),
    ("broadcast xdp", ("broadcast", "-i", "veth0", "-i", "veth1", "--xdp")),
]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("desc,args", LIFECYCLE, ids=[c[0] for c in LIFECYCLE])
def test_nothing_left_after_signal(box, desc, args, sig):
    proc = start(box, *args, "--interval", "0.2", "--json")
    try:
        st = state(box)
        attached = {n for n, (x, clsact) in st.items() if x is not None or clsact}
        devs = {args[i + 1] for i, a in enumerate(args) if a == "-i"}
        assert attached == devs
        xdp_ids = {x[0] for x, _ in st.values() if x is not None}
        assert len(xdp_ids) == (0 if desc == "broadcast tc" else 1)  # one program on every device
        assert all(loaded(i) for i in xdp_ids)
        proc.send_signal(sig)
        proc.send_signal(sig)  # a second signal must not cut the detach short
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert re.search(rf"{PROG}: SIG(TERM|INT): detached everything", err)
    assert json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])["period"] >= 0
    assert clean(box)
    assert not any(loaded(i) for i in xdp_ids)  # gone with its process: nothing else held it


def test_duration_ends_the_run_and_prints_the_seed_lines(box):
    res = run(box, "pass", "-i", "veth0", "--duration", "0.5", "--interval", "0.2")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) % 5 == 0 and len(lines) >= 10  # two samples or more, five actions each
    assert [ln.split()[0] for ln in lines[:5]] == ["XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"]
    assert all(re.search(r" pkts \(\s*[\d,]+ pps\)\s+[\d,]+ Kbytes \(\s*[\d,]+ Mbits/s\) period:\d+\.\d{6}$", ln)
               for ln in lines)
    assert "--duration: detached everything" in res.stderr
    assert clean(box)


def test_existing_clsact_is_kept(box):
    """A clsact qdisc that was there before the TC switch stays after it (only ours is removed)."""
    def add_clsact():
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            ipr.tc("add", "clsact", ipr.link_lookup(ifname="veth2")[0])
    def del_clsact():
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            ipr.tc("del", "clsact", ipr.link_lookup(ifname="veth2")[0])
    box.call(add_clsact)
    try:
        res = run(box, "broadcast", "-i", "veth0", "-i", "veth2", "--duration", "0.3", "--interval", "0.2")
        assert res.returncode == 0, res.stderr
        st = state(box)
        assert st["veth2"][1] and not st["veth0"][1]
    finally:
        box.call(del_clsact)
    assert clean(box)


def test_help_has_examples():
    res = subprocess.run([PY, "-m", "pfrps.xdp", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "examples:" in res.stdout
    for sub in ("l3fwd", "pass", "broadcast", "lab"):
        r = subprocess.run([PY, "-m", "pfrps.xdp", sub, "--help"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "examples:" in r.stdout, sub

