"""``pfrps-bng`` end to end with the scaled client, in three namespaces, exact counts (issue 14).

Every test: the BNG in its namespace, the project's scaled PPPoE client on the subscribers' side,
a discard server on the Internet side; then sessions up, addresses unique and inside the pools,
data-plane entries equal to the sessions, per-session counters equal to the frames sent each
way, and after the end no session, no entry, exit status 0.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

import pytest

from pfrps.bng import lab
from pfrps.bng.topology import ACCESS_MAC, BngTopology
from tests.helpers import PY

pytestmark = pytest.mark.root

POOL4 = "100.64.0.0/16"
POOL6 = "2001:db8:100::/40"


@pytest.fixture(scope="module")
def topo():
    t = BngTopology(prefix="bng-e2e").create()
    try:
        yield t
    finally:
        t.destroy()


@pytest.fixture
def sink(topo):
    s = lab.start_sink(topo)
    assert s.ready
    yield s
    if s.proc.poll() is None:
        s.finish()


_STARTED: list = []


@pytest.fixture(autouse=True)
def _no_bng_outlives_its_test():
    """A test that fails half-way must not leave its pfrps-bng running for the next one."""
    yield
    while _STARTED:
        b = _STARTED.pop()
        if b.proc.poll() is None:
            b.finish(signal.SIGKILL, 30)


def _bng(topo, tmp_path, count, *args, workers=4, **kw):
    secrets = lab.write_secrets(tmp_path / "secrets", count, **kw)
    b = lab.start_bng(topo, secrets, "--dns", "192.0.2.53", *args, workers=workers)
    _STARTED.append(b)
    assert b.ready, b.finish()[2]
    return b


def _finish_bng(b) -> str:
    status, out, err = b.finish(signal.SIGTERM)
    assert status == 0, err
    assert "Traceback" not in err, err
    return out


def _check_sessions(shown: dict, records: list[dict], count: int, ipv6: bool) -> None:
    sessions = shown["sessions"]
    assert len(sessions) == count
    assert shown["dataplane_entries"] == count
    assert shown["workers_missing"] == []
    v4 = [s["ipv4"] for s in sessions]
    assert len(set(v4)) == count and all(ip_address(a) in IPv4Network(POOL4) for a in v4)
    by_mac = {s["mac"]: s for s in sessions}
    for r in records:
        s = by_mac[r["mac"]]
        assert s["ipv4"] == r["ipv4"] and s["session_id"] == r["session_id"] and s["user"] == r["user"]
    if ipv6:
        v6 = [s["ipv6_prefix"] for s in sessions]
        assert len(set(v6)) == count and all(ip_network(p).subnet_of(IPv6Network(POOL6)) for p in v6)
        for r in records:
            assert ip_address(r["ipv6"]) in ip_network(by_mac[r["mac"]]["ipv6_prefix"])


@pytest.mark.parametrize("generic", [False, True], ids=["native", "generic"])
def test_sessions_and_traffic_both_ways_exact(topo, sink, tmp_path, generic):
    count, k = 400, 5
    b = _bng(topo, tmp_path, count, *(["--generic"] if generic else []))
    client = lab.start_client(topo, count, "--ipv6", "--dns", "--traffic", str(k), "--dst4", lab.DST4,
                              "--dst6", lab.DST6)
    try:
        assert client.ready
        shown = lab.show_sessions(topo)
        sessions = shown["sessions"]
        # the clients' global IPv6 addresses: the RA's /64 and the IPv6CP interface identifier
        v6 = [str(ip_network(s["ipv6_prefix"])[int(s["peer_ifid"], 16)]) for s in sessions]
        sent = lab.send_downstream(topo, [s["ipv4"] for s in sessions] + v6, k)
        assert sent == 2 * count * k
        status, out, err = client.finish()
        assert status == 0, err
        res = json.loads(out)
    finally:
        if client.proc.poll() is None:
            client.finish(signal.SIGKILL)
    assert res["up"] == count and res["failed"] == 0, res["failed_by_reason"]
    _check_sessions(shown, res["records"], count, ipv6=True)
    for s in shown["sessions"]:
        # shown before the downstream burst: k IPv4 + k IPv6 up, nothing down yet
        assert (s["up_packets"], s["down_packets"]) == (2 * k, 0), s
    assert Counter(r["rx_packets"] for r in res["records"]) == {2 * k: count}
    by_mac = {s["mac"]: s for s in shown["sessions"]}
    assert all(str(ip_network(by_mac[r["mac"]]["ipv6_prefix"])[int(by_mac[r["mac"]]["peer_ifid"], 16)]) == r["ipv6"]
               for r in res["records"])
    got = json.loads(sink.finish()[1])
    assert (got["ipv4"], got["ipv6"]) == (count * k, count * k)
    after = lab.show_sessions(topo)
    assert after["sessions"] == [] and after["dataplane_entries"] == 0
    out = _finish_bng(b)
    assert f"down:{2 * count * k}" in out.splitlines()[-1], out.splitlines()[-1]


def test_per_session_counters_count_every_downstream_frame(topo, sink, tmp_path):
    count, k = 50, 7
    b = _bng(topo, tmp_path, count, "--json")
    client = lab.start_client(topo, count, "--ipv6")
    try:
        assert client.ready
        sessions = lab.show_sessions(topo)["sessions"]
        lab.send_downstream(topo, [s["ipv4"] for s in sessions], k)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            shown = lab.show_sessions(topo)
            if all(s["down_packets"] == k for s in shown["sessions"]):
                break
            time.sleep(0.1)
        assert Counter(s["down_packets"] for s in shown["sessions"]) == {k: count}
        assert Counter(s["down_bytes"] for s in shown["sessions"]) == {k * 100: count}
        assert Counter(s["up_packets"] for s in shown["sessions"]) == {0: count}
        status, out, _ = client.finish()
        res = json.loads(out)
    finally:
        if client.proc.poll() is None:
            client.finish(signal.SIGKILL)
    assert status == 0 and res["up"] == count
    assert Counter(r["rx_packets"] for r in res["records"]) == {k: count}
    out = _finish_bng(b)
    last = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    assert last["dataplane"]["down_forwarded"] == count * k
    assert sum(last["session_setups"]) == count and sum(last["sessions_up"]) == 0


@pytest.mark.parametrize("layout", ["qinq:0x88a8:10-13:100-199", "qinq:0x8100:20:300-399", "q:42"])
def test_tagged_chap_sessions(topo, sink, tmp_path, layout):
    count, k = 100, 3
    b = _bng(topo, tmp_path, count, "--auth", "chap")
    client = lab.start_client(topo, count, "--auth", "chap", "--vlan", layout, "--traffic", str(k),
                              "--dst4", lab.DST4)
    try:
        assert client.ready
        shown = lab.show_sessions(topo)
        lab.send_downstream(topo, [s["ipv4"] for s in shown["sessions"]], k)
        status, out, err = client.finish()
        res = json.loads(out)
    finally:
        if client.proc.poll() is None:
            client.finish(signal.SIGKILL)
    assert status == 0, err
    assert res["up"] == count and res["failed"] == 0, res["failed_by_reason"]
    _check_sessions(shown, res["records"], count, ipv6=False)
    tags = 2 if layout.startswith("qinq") else 1
    for s in shown["sessions"]:
        assert len(s["vlan"]) == tags and s["up_packets"] == k
    if layout.startswith("qinq:0x88a8"):
        assert {tuple(s["vlan_tpids"]) for s in shown["sessions"]} == {("0x88a8", "0x8100")}
    assert Counter(r["rx_packets"] for r in res["records"]) == {k: count}
    assert json.loads(sink.finish()[1])["ipv4"] == count * k
    _finish_bng(b)


def test_wrong_password_fails_and_leaves_nothing(topo, tmp_path):
    b = _bng(topo, tmp_path, 20, "--json")
    client = lab.start_client(topo, 20, "--password", "wrong{i}", "--setup-timeout", "20")
    try:
        assert client.ready
        status, out, _ = client.finish()
        res = json.loads(out)
        shown = lab.show_sessions(topo)
    finally:
        if client.proc.poll() is None:
            client.finish(signal.SIGKILL)
    assert res["up"] == 0 and res["failed"] == 20, res
    assert list(res["failed_by_reason"]) == ["auth-failed"], res["failed_by_reason"]
    assert shown["sessions"] == [] and shown["dataplane_entries"] == 0
    last = json.loads([ln for ln in _finish_bng(b).splitlines() if ln.startswith("{")][-1])
    assert sum(last["auth_fail"]) == 20 and sum(last["session_setups"]) == 0


def test_terminate_by_user_mac_and_ip(topo, tmp_path):
    b = _bng(topo, tmp_path, 6)
    client = lab.start_client(topo, 6)
    try:
        assert client.ready
        sessions = {s["user"]: s for s in lab.show_sessions(topo)["sessions"]}
        assert len(sessions) == 6
        for argv in (["--user", "user1"], ["--mac", sessions["user2"]["mac"]], ["--ip", sessions["user3"]["ipv4"]]):
            res = topo.run(topo.bng, [PY, "-m", "pfrps.bng", "terminate", *argv], stdout=-1, stderr=-1, text=True)
            assert res.returncode == 0 and "terminated 1 session" in res.stdout, (res.stdout, res.stderr)
        res = topo.run(topo.bng, [PY, "-m", "pfrps.bng", "terminate", "--user", "nobody"], stdout=-1, stderr=-1,
                       text=True)
        assert res.returncode == 1 and "terminated 0 sessions" in res.stdout
        left = lab.show_sessions(topo)
        assert sorted(s["user"] for s in left["sessions"]) == ["user4", "user5", "user6"]
        assert left["dataplane_entries"] == 3
        status, out, _ = client.finish()
        res = json.loads(out)
    finally:
        if client.proc.poll() is None:
            client.finish(signal.SIGKILL)
    by_user = {r["user"]: r for r in res["records"]}
    assert [by_user[u]["failure"] for u in ("user1", "user2", "user3")] == ["terminated-by-server"] * 3
    _finish_bng(b)


def test_sigterm_ends_every_session_with_terminate_and_padt(topo, tmp_path):
    count = 200
    b = _bng(topo, tmp_path, count)
    client = lab.start_client(topo, count)
    try:
        assert client.ready
        assert len(lab.show_sessions(topo)["sessions"]) == count
        _finish_bng(b)
        time.sleep(0.5)  # the client has had the Terminate-Requests and PADTs; now end it
        status, out, _ = client.finish()
        res = json.loads(out)
    finally:
        if client.proc.poll() is None:
            client.finish(signal.SIGKILL)
    assert Counter(r["failure"] for r in res["records"]) == {"terminated-by-server": count}
    routes = topo.run(topo.bng, ["ip", "route"], stdout=-1, text=True).stdout
    assert "100.64.0.0/16" not in routes


_FUZZ_SENDER = r"""
import json, socket, sys
from pfrps.testing.fuzz_frames import pool_macs
from tests.bng_fuzz_frames import generate
ac, seed, count = bytes.fromhex(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
live = [(bytes.fromhex(m), sid, b"") for m, sid in json.loads(sys.argv[4])]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("sub0", 0))
kinds = {}
for kind, frame in generate(seed, count, ac, [m for m, _, _ in live] + pool_macs(16, seed), socket_safe=True, live=live):
    s.send(frame)
    kinds[kind] = kinds.get(kind, 0) + 1
print(json.dumps(kinds))
"""


def test_fuzzed_ppp_frames_through_the_veth(topo, tmp_path):
    """5,000 seeded LCP/PAP/CHAP/IPCP/IPv6CP frames (valid, malformed, hostile; half on live
    sessions) through the veth: no handler error, no worker restart, and the BNG still sets up
    a fresh batch of subscribers completely afterwards."""
    b = _bng(topo, tmp_path, 100, "--json")
    client = lab.start_client(topo, 50)
    try:
        assert client.ready
        live = [(s["mac"].replace(":", ""), s["session_id"]) for s in lab.show_sessions(topo)["sessions"]]
        res = topo.run(topo.sub, [PY, "-c", _FUZZ_SENDER, ACCESS_MAC.replace(":", ""), "7", "5000",
                                  json.dumps(live)], stdout=-1, stderr=-1, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert sum(json.loads(res.stdout).values()) == 5000
        client.finish()
        fresh = lab.start_client(topo, 50, "--seed", "2", "--first", "51")
        assert fresh.ready
        status, out, _ = fresh.finish()
        assert json.loads(out)["up"] == 50 and status == 0
    finally:
        if client.proc.poll() is None:
            client.finish(signal.SIGKILL)
    out = _finish_bng(b)
    last = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    assert sum(last["restarts"]) == 0 and sum(last["handler_errors"]) == 0
    assert sum(last["malformed"]) > 0 and sum(last["session_setups"]) == 100


_STREAM = r"""
import socket, sys, time
addrs, rate, seconds = sys.argv[3:], float(sys.argv[1]), float(sys.argv[2])
socks = {a: socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for a in addrs}
sent, t0 = 0, time.monotonic()
while time.monotonic() - t0 < seconds:
    for a in addrs:
        socks[a].sendto(bytes(72), (a, 9))
        sent += 1
    time.sleep(max(0.0, t0 + sent / rate - time.monotonic()))
print(sent)
"""


@pytest.mark.parametrize("kills", [1, 3], ids=["one-kill", "burst-of-3-in-a-second"])
def test_killed_worker_keeps_every_session_and_frame(topo, tmp_path, kills):
    """SIGKILL a worker (once, or three times within a second) while traffic flows to every
    subscriber: its replacement rebuilds its sessions from the session table, so no session is
    dropped, the data plane never stops (every datagram sent arrives) and the sessions answer
    keepalive and management afterwards as before."""
    count = 200
    b = _bng(topo, tmp_path, count, "--json", "--echo-interval", "2", "--echo-misses", "2")
    client = lab.start_client(topo, count)
    stream = None
    try:
        assert client.ready
        before = lab.show_sessions(topo)
        mine = sorted(s["mac"] for s in before["sessions"] if s["worker"] == 1)
        assert before["dataplane_entries"] == count and 0 < len(mine) < count
        targets = [s["ipv4"] for s in before["sessions"]]
        stream = topo.popen(topo.inet, [PY, "-c", _STREAM, "2000", "4", *targets], stdout=-1, stderr=-1, text=True)
        time.sleep(1.0)  # traffic is flowing when the worker dies
        pid = lab.worker_pid(b.proc.pid, 1)
        for _ in range(kills):
            os.kill(pid, signal.SIGKILL)
            pid = lab.wait_restarted(b.proc.pid, 1, pid)
        sent = int(stream.communicate(timeout=60)[0])
        time.sleep(5.0)  # two keepalive rounds after the restarts: the restored sessions answer them
        after = lab.show_sessions(topo)
        status, out, _ = client.finish()
        res = json.loads(out)
    finally:
        if stream is not None and stream.poll() is None:
            stream.kill()
        if client.proc.poll() is None:
            client.finish(signal.SIGKILL)
    assert after["workers_missing"] == [] and after["dataplane_entries"] == count
    strip = lambda ss: sorted((s["mac"], s["session_id"], s["ipv4"], s["ipv6_prefix"], s["user"]) for s in ss)  # noqa: E731
    assert strip(after["sessions"]) == strip(before["sessions"])
    assert res["up"] == count and Counter(r["failure"] for r in res["records"]) == {None: count}
    assert sum(r["rx_packets"] for r in res["records"]) == sent
    out = _finish_bng(b)
    last = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    assert last["restarts"][1] == kills and last["dp_stale"][1] == 0
    # each process that got as far as on_start restored all of them (a burst may kill one before)
    assert last["restored"][1] % len(mine) == 0 and len(mine) <= last["restored"][1] <= len(mine) * kills
    assert sum(last["expired"]) == 0


_SCRAPE = r"""
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
"""


def test_metrics_endpoint_counts_sessions(topo, tmp_path):
    count = 30
    b = _bng(topo, tmp_path, count, "--metrics", "127.0.0.1:9464")
    client = lab.start_client(topo, count)
    try:
        assert client.ready
        text = topo.run(topo.bng, [PY, "-c", _SCRAPE, "http://127.0.0.1:9464/metrics"], stdout=-1, stderr=-1,
                        text=True).stdout
    finally:
        if client.proc.poll() is None:
            client.finish()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            samples[name] = samples.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    assert samples["pfrps_bng_sessions_up"] == count
    assert samples["pfrps_bng_session_setups_total"] == count
    assert samples["pfrps_bng_session_setup_seconds_count"] == count
    assert samples["pfrps_bng_auth_ok_total"] == count
    assert "# HELP pfrps_bng_sessions_up Sessions with IPCP or IPv6CP open" in text
    _finish_bng(b)


def test_worker_killed_mid_negotiation_only_its_sessions_redial(topo, tmp_path):
    """SIGKILL a worker while 1,000 subscribers set up: the sessions it was still negotiating get
    PADT (or time out) and the client redials them; every other session comes up once; all 1,000
    are up in the end."""
    count, workers = 1000, 4
    b = _bng(topo, tmp_path, count, "--json", workers=workers)
    proc = topo.popen(topo.sub, [PY, "-m", "pfrps.bng.client", "-i", topo.injector_if, "-n", str(count), "--json",
                                 "--quiet", "--redial", "3", "--restart", "1", "--rate", "200"],
                      stdout=-1, stderr=-1, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(lab.show_sessions(topo)["sessions"]) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)  # set-up is under way
        for _ in range(3):  # three kills a second apart, each with a few sessions mid-negotiation
            pid = lab.worker_pid(b.proc.pid, 2)
            os.kill(pid, signal.SIGKILL)
            lab.wait_restarted(b.proc.pid, 2, pid)
            time.sleep(1.0)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    res = json.loads(out)
    assert res["up"] == count and res["failed"] == 0, res["failed_by_reason"]
    from pfrps.hashing import worker_for
    redialed = [r for r in res["records"] if r["redials"]]
    owners = set(worker_for([bytes.fromhex(r["mac"].replace(":", "")) for r in redialed], workers).tolist())
    assert owners <= {2}, owners
    assert len(redialed) >= 1 and res["stats"]["redials"] >= len(redialed)
    _finish_bng(b)


def test_sigkilled_bng_leaves_no_worker_and_no_xdp(topo, tmp_path):
    """SIGKILL the supervisor: its workers die with it (PR_SET_PDEATHSIG), so nothing keeps the
    BPF links of the data plane: XDP is off both interfaces and the programs are unloaded."""
    from pfrps.xdp.attach import resolve_ifindex, xdp_attached

    b = _bng(topo, tmp_path, 4)
    client = lab.start_client(topo, 4)
    try:
        assert client.ready
        workers = [lab.worker_pid(b.proc.pid, w) for w in range(4)]
        assert all(workers)
        b.proc.send_signal(signal.SIGKILL)
        b.proc.communicate(timeout=30)
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{p}") for p in workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(os.path.exists(f"/proc/{p}") for p in workers)
        idx = {n: resolve_ifindex(n, topo.bng) for n in (topo.access, topo.uplink)}
        deadline = time.monotonic() + 10
        while any(xdp_attached(i, topo.bng) for i in idx.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [xdp_attached(i, topo.bng) for i in idx.values()] == [None, None]
    finally:
        if client.proc.poll() is None:
            client.finish(signal.SIGKILL)
    # a new BNG takes over the routes the killed one left (they carry its protocol number)
    routes = topo.run(topo.bng, ["ip", "route", "show", "proto", "245"], stdout=-1, text=True).stdout
    assert "100.64.0.0/16 dev acc0" in routes
    b2 = _bng(topo, tmp_path, 4)
    _finish_bng(b2)
    assert topo.run(topo.bng, ["ip", "route", "show", "proto", "245"], stdout=-1, text=True).stdout == ""
