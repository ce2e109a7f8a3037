"""pfrps-bng against Debian's pppd in QEMU (issue 14's acceptance): ``python -m pfrps.qemu.bng``.

The injector guest's kernel has PPP (the host's has not): pppd with its PPPoE plugin dials
pfrps-bng in the node guest, once with PAP and once with CHAP in one boot. Each dial: the IPCP
address inside the pool, a global IPv6 address (IPv6CP, then SLAAC from the BNG's RA) inside the
session's /64 of the IPv6 pool, 3/3 replies to ``ping`` and ``ping -6`` through the BNG to the
node's uplink side (a namespace behind a veth pair), ``show sessions`` listing exactly that
session, and after pppd's hang-up no session and no data-plane entry. The data plane runs in
native XDP on virtio-net. About 3-5 minutes under TCG with the image cached; the image is built
first when the cache has none (the same image as tests/root/test_qemu.py).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

import pytest

from pfrps.qemu.bng_guest import POOL4, POOL6, USERS
from pfrps.qemu.cli import PREFIX
from tests.helpers import PY, assert_bad_input
from tests.root.test_qemu import interrupt_while_booting, run_dir  # noqa: F401  (run_dir: a fixture, used by name)

pytestmark = [pytest.mark.root, pytest.mark.qemu]


def bng_cli(run_dir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "pfrps.qemu.bng", "--run-dir", str(run_dir), *args], capture_output=True,
                          text=True, timeout=timeout)


def host_links() -> set[str]:
    """Root-namespace links named like this runner's (its taps live in its own namespace; other
    engineers' runs may add links of their own meanwhile, which never count)."""
    return {p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(PREFIX)}


def _one(items: list, what: str):
    assert len(items) == 1, f"{what}: {items}"
    return items[0]


def test_pppd_dials_pfrps_bng_pap_and_chap(run_dir, tmp_path):  # noqa: F811
    links = host_links()
    report = tmp_path / "report.json"
    res = bng_cli(run_dir, "--timeout", "480", "--report", str(report))
    rep = json.loads(report.read_text()) if report.is_file() else {}
    # on failure: the failed checks and the errors first (pfrps-bng's, the guest kernel's verifier
    # verdict), then the output's tail
    failed = [ln for ln in res.stdout.splitlines() if "FAILED" in ln or "error" in ln
              or (ln.startswith("  verifier| ") and not ln[12:13].isdigit())]
    assert res.returncode == 0, "\n".join(failed) + "\n...\n" + res.stdout[-8000:] + res.stderr[-2000:]
    node, inj = rep["node"], rep["injector"]
    assert node["ok"] and inj["ok"], [c for c in node["checks"] + inj["checks"] if not c["ok"]]
    checks = {c["name"]: c for c in node["checks"]}
    assert checks["native-xdp"]["ok"] and [p["mode"] for p in node["xdp"]["enp1s0"]] == ["driver"]
    assert checks["server-exit"]["ok"] and node["server_status"] == 0 and checks["xdp-detached"]["ok"]
    assert sorted(inj["dials"]) == sorted(node["dials"]) == ["chap", "pap"]
    for method, dial in inj["dials"].items():
        ndial = node["dials"][method]
        user = USERS[method][0]
        # IPCP: exactly one address on ppp0, the one pppd logged, inside the pool
        addr4 = _one(dial["ipv4"], f"{method}: IPv4 on ppp0").split("/")[0]
        assert dial["pppd"]["local"] == addr4 and ipaddress.ip_address(addr4) in ipaddress.ip_network(POOL4)
        assert dial["pppd"]["auth"] == method.upper(), dial["pppd"]
        # show sessions: exactly this session, this user, this address
        session = _one(ndial["sessions"], f"{method}: show sessions")
        assert session["user"] == user and session["ipv4"] == addr4, session
        # IPv6CP + RA: a global address inside the session's /64, a /64 of the pool
        addr6 = ipaddress.ip_interface(_one(dial["ipv6"], f"{method}: global IPv6 on ppp0"))
        prefix = ipaddress.ip_network(session["ipv6_prefix"])
        assert prefix.prefixlen == 64 and prefix.subnet_of(ipaddress.ip_network(POOL6)), prefix
        assert addr6.ip in prefix, (str(addr6), str(prefix))
        # through the BNG, both families, every reply, and in its XDP data plane: the session's
        # counters (the node's kernel has no PPP, so nothing else could carry them)
        assert dial["ping4"] == [3, 3] and dial["ping6"] == [3, 3], (dial["ping4"], dial["ping6"])
        assert session["up_packets"] >= 6 and session["down_packets"] >= 6, session
        # the data plane had the session, and has nothing left after the hang-up
        assert sum(ndial["entries_up"].values()) > 0, ndial["entries_up"]
        assert dial["pppd_status"] == 5, dial["log"][-20:]  # 5: ended by a signal (SIGTERM)
        assert ndial["sessions_after"] == [] and sum(ndial["entries_after"].values()) == 0, \
            (ndial["sessions_after"], ndial["entries_after"])
    out = res.stdout
    assert "injector: check ppp-modules: OK" in out and "node: check inet-namespace: OK" in out
    assert "qemu: node status 0, injector status 0; times" in out
    # nothing left on the host: no link (the run_dir fixture checks QEMU processes, namespaces and
    # the run folder)
    assert host_links() <= links, host_links() - links


def test_interrupted_run_leaves_nothing(run_dir):  # noqa: F811
    """Ctrl-C while the guests boot: both stopped, exit 130; the run_dir fixture checks that no
    QEMU process, namespace or run folder is left."""
    links = host_links()
    rc, err = interrupt_while_booting("-m", "pfrps.qemu.bng", "--run-dir", str(run_dir), "--link", "tap")
    assert rc == 130 and "qemu: interrupted; both guests stopped" in err, err
    assert host_links() <= links


@pytest.mark.parametrize("argv,needle", [(["-w", "0"], "worker count 0 is out of range 1..64"),
                                         (["--auth", "mschap"], "--auth 'mschap': use pap, chap"),
                                         (["--server", "radius"], "invalid choice: 'radius'")])
def test_bad_arguments_one_line_exit_2(argv, needle, run_dir):  # noqa: F811
    res = bng_cli(run_dir, *argv, timeout=60)
    assert_bad_input(res, "pfrps-qemu-bng", needle)


def test_report_in_a_missing_folder_refused(run_dir, tmp_path):  # noqa: F811
    res = bng_cli(run_dir, "--report", str(tmp_path / "nope" / "r.json"), timeout=60)
    assert_bad_input(res, "qemu", "--report", "no folder")


def test_helpers_parse_what_the_guests_see():
    """The parsing the guests do, on lines pppd 2.4.9, ping and pfrps-bng printed in a run."""
    from pfrps.qemu.bng import bng_argv
    from pfrps.qemu.bng_guest import parse_ping, parse_pppd_addresses, pppd_argv, session_list
    from pfrps.qemu.machine import NODE_MAC, GuestSpec, guest_argv

    log = ["PPP session is 45009", "CHAP authentication succeeded: Access granted",
           "local  IP address 100.64.0.4", "remote IP address 198.51.100.1", "primary   DNS address 192.0.2.53",
           "local  LL address fe80::c4ce:8b95:cce5:3e19", "remote LL address fe80::90fc:3db6:a86b:58c7"]
    assert parse_pppd_addresses(log) == {
        "session": 45009, "auth": "CHAP", "local": "100.64.0.4", "remote": "198.51.100.1", "dns": ["192.0.2.53"],
        "local_ll": "fe80::c4ce:8b95:cce5:3e19", "remote_ll": "fe80::90fc:3db6:a86b:58c7"}
    assert parse_ping("3 packets transmitted, 3 received, 0% packet loss, time 1003ms") == (3, 3)
    assert parse_ping("ping: connect: Network is unreachable") == (0, 0)
    doc = '{"sessions": [{"user": "user1", "ipv4": "100.64.0.2"}], "workers_missing": []}'
    assert session_list(doc) == [{"user": "user1", "ipv4": "100.64.0.2"}]
    assert session_list('{"sessions": []}') == [] and session_list("") == []
    pap, chap = pppd_argv("eno1", "pap"), pppd_argv("eno1", "chap")
    assert pap[:4] == ["pppd", "plugin", "pppoe.so", "eno1"] and "refuse-chap" in pap and "refuse-pap" not in pap
    assert "refuse-pap" in chap and "refuse-chap" not in chap and "+ipv6" in chap and "nodetach" in chap
    spec = GuestSpec("node", NODE_MAC, "enp1s0", sock=Path("/r/n.sock"), peer_sock=Path("/r/i.sock"))
    argv = bng_argv(guest_argv(spec, Path("/k"), Path("/i"), Path("/r.img"), Path("/src"), Path("/res")))
    append = argv[argv.index("-append") + 1].split()
    assert "pfrps.script=pfrps/qemu/files/bng-run" in append and "pfrps.script=pfrps/qemu/files/guest-run" not in append
