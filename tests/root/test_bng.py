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
from pfrps.bng.topology import BngTopology
from tests.helpers import PY

pytestmark = pytest.mark.root

POOL4 = "100.64.0.0/16"
POOL6 = "2001:db8:100::/40"


@pytest.fixture(scope="module")
def topo():
    t = BngTopology(prefix="bngt").create()
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


def _bng(topo, tmp_path, count, *args, workers=4, **kw):
    secrets = lab.write_secrets(tmp_path / "secrets", count, **kw)
    b = lab.start_bng(topo, secrets, "--dns", "192.0.2.53", *args, workers=workers)
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
        sent = lab.send_downstream(topo, [s["ipv4"] for s in sessions], k)
        assert sent == count * k
        # the client's global IPv6 addresses (prefix from the RA + its interface id) come after
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
    assert Counter(r["rx_packets"] for r in res["records"]) == {k: count}
    got = json.loads(sink.finish()[1])
    assert (got["ipv4"], got["ipv6"]) == (count * k, count * k)
    after = lab.show_sessions(topo)
    assert after["sessions"] == [] and after["dataplane_entries"] == 0
    out = _finish_bng(b)
    last = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1]) if out.startswith("{") else None
    assert last is None or last["dataplane"]["down_forwarded"] == count * k


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
