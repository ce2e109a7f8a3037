"""pfrps-bng against a real FreeRADIUS (issue 15): authentication (accept, Framed-IP-Address,
reject with Reply-Message, server down and failover), accounting (Start, Interim-Update, Stop
with octets equal to the bytes sent through the data plane) and RFC 5176 Disconnect / CoA by
each key, sent with radclient.

FreeRADIUS runs in the lab's Internet-side namespace (198.51.100.2), the BNG reaches it over its
uplink (NAS-IP-Address 198.51.100.1), radclient sends from there to the BNG's port 3799.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter

import pytest

from pfrps.bng import lab
from pfrps.bng.topology import BngTopology
from pfrps.bng.freeradius import FreeRadius, RadUser, radclient

pytestmark = pytest.mark.root

SECRET = "s3cret-for-tests"
N = 8


@pytest.fixture(scope="module")
def topo():
    t = BngTopology(prefix="bng-radius").create()
    try:
        yield t
    finally:
        t.destroy()


@pytest.fixture(scope="module")
def radius(topo, tmp_path_factory):
    users = [RadUser(f"user{i}", f"pass{i}", reply=[("Acct-Interim-Interval", "2")]) for i in range(1, N + 1)]
    users += [RadUser("fixed1", "fixedpass", reply=[("Framed-IP-Address", "100.64.200.7"),
                                                    ("Session-Timeout", "3600"), ("Idle-Timeout", "600")]),
              RadUser("blocked", reject=True, reply=[("Reply-Message", "account suspended")]),
              RadUser("dnsuser", "dnspass", reply=[("MS-Primary-DNS-Server", "203.0.113.53"),
                                                   ("MS-Secondary-DNS-Server", "203.0.113.54")])]
    srv = FreeRadius(topo.inet, tmp_path_factory.mktemp("rad") / "conf", {"198.51.100.1": SECRET}, users,
                     address="198.51.100.2").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def secret_file(tmp_path):
    f = tmp_path / "radius-secret"
    f.write_text(SECRET + "\n")
    return f


def _bng(topo, tmp_path, secret_file, *args):
    empty = tmp_path / "no-local-users"
    empty.write_text("# every user is RADIUS's\n")
    b = lab.start_bng(topo, empty, "--radius-secret-file", str(secret_file), "--json", "--radius-timeout", "0.5",
                      *args)
    assert b.ready, b.finish()[2]
    return b


def _last(out: str) -> dict:
    return json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])


def _finish(b) -> dict:
    status, out, err = b.finish(signal.SIGTERM)
    assert status == 0, err
    assert "Traceback" not in err, err
    return _last(out)


def test_accept_fixed_address_and_reject_with_reply_message(topo, radius, tmp_path, secret_file):
    b = _bng(topo, tmp_path, secret_file, "--radius", "198.51.100.2")
    try:
        ok = lab.start_client(topo, 3)
        fixed = lab.start_client(topo, 1, "--user", "fixed1", "--password", "fixedpass", "--seed", "3")
        blocked = lab.start_client(topo, 1, "--user", "blocked", "--password", "x", "--seed", "4",
                                   "--setup-timeout", "20")
        shown = lab.show_sessions(topo)
        results = [json.loads(c.finish()[1]) for c in (ok, fixed, blocked)]
    finally:
        last = _finish(b)
    assert results[0]["up"] == 3 and results[1]["up"] == 1
    assert results[1]["records"][0]["ipv4"] == "100.64.200.7"
    rec = results[2]["records"][0]
    assert results[2]["failed"] == 1 and rec["failure"] == "auth-failed"
    assert "account suspended" in (rec["failure_detail"] or ""), rec
    by_user = {s["user"]: s for s in shown["sessions"]}
    assert sorted(by_user) == ["fixed1", "user1", "user2", "user3"]
    assert by_user["fixed1"]["session_timeout"] == 3600 and by_user["fixed1"]["idle_timeout"] == 600
    assert sum(last["radius_accept"]) == 4 and sum(last["radius_reject"]) == 1
    out = radius.output()
    for attr in ("NAS-Identifier = \"pfrps-bng\"", "NAS-IP-Address = 198.51.100.1", "Framed-Protocol = PPP",
                 "Service-Type = Framed-User", "NAS-Port-Type = Virtual", "Calling-Station-Id"):
        assert attr in out, attr


def test_server_down_fails_over_and_counts_it(topo, radius, tmp_path, secret_file):
    # 198.51.100.3 answers nothing (no such host on the uplink): every request times out there
    b = _bng(topo, tmp_path, secret_file, "--radius", "198.51.100.3", "--radius", "198.51.100.2",
             "--radius-retries", "1")
    try:
        client = lab.start_client(topo, 4, "--setup-timeout", "60")
        res = json.loads(client.finish()[1])
    finally:
        last = _finish(b)
    assert res["up"] == 4 and res["failed"] == 0
    assert sum(last["radius_failovers"]) >= 1 and sum(last["radius_timeouts"]) >= 1
    assert sum(last["radius_retransmits"]) >= 1 and sum(last["radius_accept"]) == 4


def test_accounting_start_interim_stop_with_exact_octets(topo, radius, tmp_path, secret_file):
    count, k = 3, 20
    sink = lab.start_sink(topo)
    before = len(radius.detail_records())
    b = _bng(topo, tmp_path, secret_file, "--radius", "198.51.100.2")
    try:
        client = lab.start_client(topo, count, "--traffic", str(k), "--dst4", lab.DST4)
        assert client.ready
        shown = lab.show_sessions(topo)
        lab.send_downstream(topo, [s["ipv4"] for s in shown["sessions"]], k, size=200)
        time.sleep(4.5)  # two Interim-Updates (the users file says Acct-Interim-Interval 2)
        client.finish()
        records = radius.wait_detail(before + 2 * count + count, timeout=15)[before:]
    finally:
        last = _finish(b)
        sink.finish()
    ids = {s["acct_session_id"]: s for s in shown["sessions"]}
    kinds = Counter((r["Acct-Status-Type"], r["Acct-Session-Id"].strip('"')) for r in records)
    for sid in ids:
        assert kinds[("Start", sid)] == 1 and kinds[("Stop", sid)] == 1, kinds
        assert kinds[("Interim-Update", sid)] >= 1, kinds
    assert len(ids) == count and len(set(ids)) == count
    for r in records:
        if r["Acct-Status-Type"] == "Stop":
            assert int(r["Acct-Input-Octets"]) == k * 100 and int(r["Acct-Input-Packets"]) == k, r
            assert int(r["Acct-Output-Octets"]) == k * 200 and int(r["Acct-Output-Packets"]) == k, r
            assert r["Acct-Terminate-Cause"] == "User-Request", r
    assert sum(last["acct_start"]) == count and sum(last["acct_stop"]) == count


def test_disconnect_and_coa_by_each_key(topo, radius, tmp_path, secret_file):
    b = _bng(topo, tmp_path, secret_file, "--radius", "198.51.100.2")
    before = len(radius.detail_records())
    try:
        client = lab.start_client(topo, 5)
        assert client.ready
        s = {x["user"]: x for x in lab.show_sessions(topo)["sessions"]}
        dae = "198.51.100.1:3799"
        keys = [("Acct-Session-Id", s["user1"]["acct_session_id"]), ("User-Name", "user2"),
                ("Framed-IP-Address", s["user3"]["ipv4"]),
                ("Calling-Station-Id", s["user4"]["mac"].replace(":", "-").upper())]
        replies = [radclient(topo.inet, dae, SECRET, "disconnect", [kv]) for kv in keys]
        unknown = radclient(topo.inet, dae, SECRET, "disconnect", [("User-Name", "nobody")])
        coa = radclient(topo.inet, dae, SECRET, "coa", [("User-Name", "user5"), ("Session-Timeout", "1")])
        coa_unknown = radclient(topo.inet, dae, SECRET, "coa", [("User-Name", "nobody"), ("Session-Timeout", "9")])
        bad = radclient(topo.inet, dae, "wrong-secret", "disconnect", [("User-Name", "user5")], timeout=0.5)
        time.sleep(2.0)  # user5's new Session-Timeout (1 s from its start) has run out
        left = lab.show_sessions(topo)["sessions"]
        client.finish()
        records = radius.wait_detail(before + 10, timeout=15)[before:]
    finally:
        last = _finish(b)
    assert [r.code for r in replies] == ["Disconnect-ACK"] * 4, [r.output for r in replies]
    assert unknown.code == "Disconnect-NAK" and unknown.attrs.get("Error-Cause") == "Session-Context-Not-Found"
    assert coa.code == "CoA-ACK"
    assert coa_unknown.code == "CoA-NAK" and coa_unknown.attrs.get("Error-Cause") == "Session-Context-Not-Found"
    assert bad.code is None  # dropped: bad authenticator
    assert left == []
    stops = {r["User-Name"].strip('"'): r["Acct-Terminate-Cause"] for r in records if r["Acct-Status-Type"] == "Stop"}
    assert stops == {"user1": "Admin-Reset", "user2": "Admin-Reset", "user3": "Admin-Reset", "user4": "Admin-Reset",
                     "user5": "Session-Timeout"}, stops
    assert sum(last["coa_applied"]) == 1 and sum(last["session_timeouts"]) == 1


def test_tr101_line_ids_reach_radius_and_show_sessions(topo, radius, tmp_path, secret_file):
    b = _bng(topo, tmp_path, secret_file, "--radius", "198.51.100.2")
    before = len(radius.detail_records())
    try:
        client = lab.start_client(topo, 2, "--circuit-id", "olt1 eth 1/1/{i}:100", "--remote-id", "cpe-{i}")
        shown = {s["user"]: s for s in lab.show_sessions(topo)["sessions"]}
        client.finish()
        records = radius.wait_detail(before + 4, timeout=15)[before:]
    finally:
        _finish(b)
    assert (shown["user1"]["circuit_id"], shown["user1"]["remote_id"]) == ("olt1 eth 1/1/1:100", "cpe-1")
    assert (shown["user2"]["circuit_id"], shown["user2"]["remote_id"]) == ("olt1 eth 1/1/2:100", "cpe-2")
    agent = [ln.strip() for ln in radius.output().splitlines() if "Agent-Circuit-Id" in ln]
    assert any(f"0x{b'olt1 eth 1/1/1:100'.hex()}" in ln for ln in agent), agent[:4]  # Debian's dictionary: octets
    starts = [r for r in records if r["Acct-Status-Type"] == "Start"]
    assert sorted(r["ADSL-Agent-Remote-Id"] for r in starts) == [f"0x{b'cpe-1'.hex()}", f"0x{b'cpe-2'.hex()}"]
    assert all(r["NAS-Port-Id"].strip('"') == "acc0:0:0" for r in starts)


def test_worker_restart_keeps_accounting_continuous(topo, radius, tmp_path, secret_file):
    """SIGKILL the worker holding user1's session: its replacement restores the session with its
    Acct-Session-Id and interim timer; no second Start, Interim-Updates go on, one Stop at the
    real end with every octet the data plane counted (before and after the kill)."""
    import os

    k = 10
    b = _bng(topo, tmp_path, secret_file, "--radius", "198.51.100.2")
    before = len(radius.detail_records())
    sink = lab.start_sink(topo)
    try:
        client = lab.start_client(topo, 4, "--traffic", str(k), "--dst4", lab.DST4)
        shown = {s["user"]: s for s in lab.show_sessions(topo)["sessions"]}
        wid = shown["user1"]["worker"]
        pid = lab.worker_pid(b.proc.pid, wid)
        os.kill(pid, signal.SIGKILL)
        lab.wait_restarted(b.proc.pid, wid, pid)
        lab.send_downstream(topo, [s["ipv4"] for s in shown.values()], k)   # after the kill
        time.sleep(4.5)
        after = {s["user"]: s for s in lab.show_sessions(topo)["sessions"]}
        client.finish()
        records = radius.wait_detail(before + 4 + 4 + 8, timeout=20)[before:]
    finally:
        last = _finish(b)
        sink.finish()
    assert {u: s["acct_session_id"] for u, s in after.items()} == {u: s["acct_session_id"] for u, s in shown.items()}
    mine = shown["user1"]["acct_session_id"]
    kinds = Counter((r["Acct-Status-Type"], r["Acct-Session-Id"].strip('"')) for r in records)
    for s in shown.values():
        sid = s["acct_session_id"]
        assert kinds[("Start", sid)] == 1 and kinds[("Stop", sid)] == 1, kinds
        assert kinds[("Interim-Update", sid)] >= 2, kinds
    stop = next(r for r in records if r["Acct-Status-Type"] == "Stop" and r["Acct-Session-Id"].strip('"') == mine)
    assert (int(stop["Acct-Input-Octets"]), int(stop["Acct-Output-Octets"])) == (k * 100, k * 100), stop
    assert stop["Acct-Terminate-Cause"] == "User-Request"
    assert last["restarts"][wid] == 1 and last["restored"][wid] >= 1


def test_dns_servers_from_the_access_accept_win_over_dns(topo, radius, tmp_path, secret_file):
    b = _bng(topo, tmp_path, secret_file, "--radius", "198.51.100.2", "--dns", "192.0.2.53")
    try:
        mine = lab.start_client(topo, 1, "--user", "dnsuser", "--password", "dnspass", "--dns", "--seed", "5")
        other = lab.start_client(topo, 1, "--dns", "--seed", "6")
        recs = [json.loads(c.finish()[1])["records"][0] for c in (mine, other)]
    finally:
        _finish(b)
    assert recs[0]["dns"] == ["203.0.113.53", "203.0.113.54"], recs[0]
    assert recs[1]["dns"] == ["192.0.2.53"], recs[1]


def test_coa_by_each_key_changes_the_timeouts(topo, radius, tmp_path, secret_file):
    b = _bng(topo, tmp_path, secret_file, "--radius", "198.51.100.2")
    try:
        client = lab.start_client(topo, 4)
        assert client.ready
        s = {x["user"]: x for x in lab.show_sessions(topo)["sessions"]}
        keys = {"user1": ("Acct-Session-Id", s["user1"]["acct_session_id"]), "user2": ("User-Name", "user2"),
                "user3": ("Framed-IP-Address", s["user3"]["ipv4"]),
                "user4": ("Calling-Station-Id", s["user4"]["mac"].replace(":", "-").upper())}
        replies = {u: radclient(topo.inet, "198.51.100.1:3799", SECRET, "coa",
                                [kv, ("Idle-Timeout", str(600 + i)), ("Session-Timeout", str(7200 + i))])
                   for i, (u, kv) in enumerate(sorted(keys.items()))}
        after = {x["user"]: x for x in lab.show_sessions(topo)["sessions"]}
        client.finish()
    finally:
        last = _finish(b)
    assert {u: r.code for u, r in replies.items()} == dict.fromkeys(keys, "CoA-ACK")
    for i, u in enumerate(sorted(keys)):
        assert (after[u]["idle_timeout"], after[u]["session_timeout"]) == (600 + i, 7200 + i), after[u]
    assert sum(last["coa_applied"]) == 4
