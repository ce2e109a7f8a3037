"""``pfrps-xdp lab router`` (alias ``case04``): each mode in native and generic XDP, real pings through a router
namespace, exact counts (N echo requests, N replies; the stats map's REDIRECT count equals the
frames sent that way), nothing attached and no namespace left afterwards."""

from __future__ import annotations

import re
import signal
import subprocess

import pytest

from pfrps.xdp.lab import read_until
from tests.conftest import netns_names
from tests.helpers import PY, run_cli

pytestmark = pytest.mark.root

N = 4


@pytest.mark.parametrize("generic", [False, True], ids=["native", "generic"])
@pytest.mark.parametrize("mode", ["hardcoded", "map", "fib"])
def test_router_lab(mode, generic):
    before = netns_names()
    res = run_cli("pfrps.xdp", ["lab", "router", "--mode", mode, "--prefix", "router-lab", "--count", str(N),
                                *(["--generic"] if generic else [])], timeout=180)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert "FAIL" not in out
    assert f"PASS IPv4 echo uno -> dos: {N} requests, {N} replies" in out
    want = [4 * N] if mode == "fib" else [N, N]  # fib: N v4 + N v6 requests and replies, one instance
    assert f"PASS stats map REDIRECT count: XDP_REDIRECT {want}, frames sent that way {want}" in out
    if mode == "fib":
        assert f"PASS IPv6 echo uno -> dos: {N} requests, {N} replies" in out
        assert "PASS IPv4 TTL 63" in out and "PASS IPv6 hop limit 63" in out
        assert re.search(rf"PASS source MAC is the router's: {N} echo replies", out)
    assert re.search(r"PASS router kernel forwarded nothing: ForwDatagrams (\d+) -> \1,", out)
    assert "PASS SIGTERM detached everything: exit status [0" in out
    assert re.search(r"lab: (\d+)/\1 checks passed", out)
    assert not {n for n in netns_names() - before if n.startswith("router-lab-")}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_lab_removes_everything(sig):
    """A signal while the checks run: the lab stops taking steps, ends its pfrps-xdp processes
    (which detach), removes every namespace, says so and exits 1. Run by its seed alias
    ``case04`` (the lab is ``router``): the alias still works end to end."""
    before = netns_names()
    proc = subprocess.Popen([PY, "-m", "pfrps.xdp", "lab", "case04", "--mode", "fib", "--prefix", "router-lab-int"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, lines = read_until(proc.stdout, "lab: fib mode", 120)  # pfrps-xdp attached in the router
        assert ready, lines
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        out = "\n".join(lines) + out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err
    assert "(interrupted); removed 3 namespaces" in out
    assert "Traceback" not in err
    assert not {n for n in netns_names() - before if n.startswith("router-lab-int-")}
