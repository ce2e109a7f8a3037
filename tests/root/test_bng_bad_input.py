"""``pfrps-bng`` bad input: one line naming the problem and the fix, exit status 2, nothing left
(no XDP program on either interface, no pool route, no management socket, sysctls untouched)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pfrps.bng.topology import BngTopology
from tests.helpers import PY, assert_bad_input

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def bngtopo():
    t = BngTopology(prefix="bng-bad-input").create()
    try:
        from pyroute2 import IPRoute

        with IPRoute(netns=t.bng, flags=0) as ipr:  # an interface without any address
            ipr.link("add", ifname="bare0", kind="veth", peer={"ifname": "bare1"})
            for name in ("bare0", "bare1"):
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
        yield t
    finally:
        t.destroy()


@pytest.fixture
def secrets(tmp_path) -> Path:
    f = tmp_path / "pap-secrets"
    f.write_text('# client server secret addresses\nuser1 * pass1\n"user two" * "pass 2" 100.64.0.9\n')
    return f


def state(t: BngTopology) -> tuple:
    """What a run could leave behind in the BNG namespace."""
    def out(argv):
        return t.run(t.bng, argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    routes = [r for r in (out(["ip", "route"]) + out(["ip", "-6", "route"])).splitlines() if not r.startswith("fe80::")]
    links = out(["ip", "-d", "link"])
    socks = [ln for ln in Path("/proc/net/unix").read_text().splitlines() if "pfrps-bng" in ln]
    fwd = out(["sysctl", "-n", "net.ipv4.ip_forward", "net.ipv4.conf.up0.proxy_arp"])
    return routes, "prog/xdp" in links or "xdpgeneric" in links, socks, fwd


def run_bng(t: BngTopology, *args: str) -> subprocess.CompletedProcess:
    return t.run(t.bng, [PY, "-m", "pfrps.bng", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 text=True, timeout=120)


CASES = [
    ("overlapping pools", ["--pool", "100.64.0.0/16", "--pool", "100.64.8.0/24"], ["100.64.0.0/16", "100.64.8.0/24"]),
    ("pool smaller than the worker count", ["--pool", "100.64.0.0/30", "-w", "4"], ["100.64.0.0/30", "4"]),
    ("not a network", ["--pool", "100.64.0.1/16"], ["--pool"]),
    ("IPv6 pool longer than /64", ["--pool", "100.64.0.0/16", "--ipv6-pool", "2001:db8::/80"], ["/64"]),
    ("same access and uplink", ["--pool", "100.64.0.0/16", "--uplink-override", "acc0"], ["both"]),
    ("uplink without an address", ["--pool", "100.64.0.0/16", "--uplink-override", "bare0"], ["bare0", "address"]),
    ("missing access interface", ["--pool", "100.64.0.0/16", "--access-override", "nosuch0"], ["nosuch0"]),
    ("bad --auth", ["--pool", "100.64.0.0/16", "--auth", "eap"], ["--auth"]),
    ("bad --dns", ["--pool", "100.64.0.0/16", "--dns", "resolver"], ["--dns"]),
]


@pytest.mark.parametrize("desc,args,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_arguments(bngtopo, secrets, desc, args, needles):
    before = state(bngtopo)
    access, uplink, rest = "acc0", "up0", []
    it = iter(args)
    for a in it:
        if a == "--uplink-override":
            uplink = next(it)
        elif a == "--access-override":
            access = next(it)
        else:
            rest.append(a)
    res = run_bng(bngtopo, "-i", access, "--uplink", uplink, "-w", "2", "--secrets", str(secrets), *rest)
    assert_bad_input(res, "pfrps-bng", *needles)
    assert state(bngtopo) == before, desc


SECRETS_CASES = [
    ("unterminated quote", 'user1 * "pass1\n', ["unterminated quote"]),
    ("two fields", "user1 *\nuser2 * pass2\n", ["need at least 3"]),
    ("a bad address", "user1 * pass1 not-an-address\n", ["not-an-address"]),
]


@pytest.mark.parametrize("desc,text,needles", SECRETS_CASES, ids=[c[0] for c in SECRETS_CASES])
def test_malformed_secrets_name_the_line(bngtopo, tmp_path, desc, text, needles):
    f = tmp_path / "chap-secrets"
    f.write_text("# header\n" + text)
    before = state(bngtopo)
    res = run_bng(bngtopo, "-i", "acc0", "--uplink", "up0", "-w", "2", "--pool", "100.64.0.0/16", "--secrets", str(f))
    assert_bad_input(res, "pfrps-bng", f"{f}:2:", *needles)  # file:line (the header is line 1)
    assert state(bngtopo) == before, desc


def test_unreadable_secrets(bngtopo, tmp_path):
    missing = tmp_path / "nope"
    res = run_bng(bngtopo, "-i", "acc0", "--uplink", "up0", "--pool", "100.64.0.0/16", "--secrets", str(missing))
    assert_bad_input(res, "pfrps-bng", str(missing))


def test_no_authentication_source(bngtopo):
    res = run_bng(bngtopo, "-i", "acc0", "--uplink", "up0", "--pool", "100.64.0.0/16")
    assert_bad_input(res, "pfrps-bng", "--secrets", "--radius")


def test_radius_without_a_secret_file(bngtopo, secrets):
    res = run_bng(bngtopo, "-i", "acc0", "--uplink", "up0", "--pool", "100.64.0.0/16", "--radius", "198.51.100.2")
    assert_bad_input(res, "pfrps-bng", "--radius-secret-file")


def test_management_without_a_bng(bngtopo):
    for argv in (["show", "sessions"], ["terminate", "--user", "x"]):
        assert_bad_input(run_bng(bngtopo, *argv), "pfrps-bng", "no pfrps-bng")
    assert_bad_input(run_bng(bngtopo, "terminate"), "pfrps-bng terminate")
    assert_bad_input(run_bng(bngtopo, "terminate", "--mac", "zz"), "pfrps-bng", "--mac")
