"""pfrps.bng.radius against a real FreeRADIUS (Debian's 3.2) in a network namespace.

Everything runs inside one namespace ``rad-<random>`` made here (loopback only; nothing is sent
outside it) and always removed: FreeRADIUS and radclient as child processes entered into it
(setns before exec), the client and the dynamic authorization server of this process on
sockets created while this (single) thread is inside the namespace (pyroute2 pushns/popns);
the sockets stay in the namespace afterwards. The tests drive a uvloop loop, as a worker does.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from pfrps.bng.auth import AuthRequest, chap_md5
from pfrps.bng.radius import (AcctRecord, DynAuthServer, LineInfo, RadiusClient, RadiusConfig,
                              acct_session_id, new_boot_id, session_matches)
from pfrps.topology import create_netns, remove_netns, unique_suffix
from pfrps.bng.freeradius import FreeRadius, RadUser, freeradius_version, radclient_finish, radclient_start

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which("freeradius") or not shutil.which("radclient"),
                                 reason="needs Debian's freeradius and freeradius-utils (./run setup)")]

SECRET = "rad-test-secret"
LO = "127.0.0.1"
USERS = [
    RadUser("alice", "alicepw", reply=[
        ("Framed-IP-Address", "100.64.7.7"), ("Session-Timeout", "3600"), ("Idle-Timeout", "600"),
        ("Acct-Interim-Interval", "300"), ("Class", "0x616c6963652d636c617373"),
        ("Framed-IPv6-Prefix", "2001:db8:1:2::/64"), ("Delegated-IPv6-Prefix", "2001:db8:100::/56"),
        ("DNS-Server-IPv6-Address", "2001:db8::53"), ("MS-Primary-DNS-Server", "192.0.2.53"),
        ("MS-Secondary-DNS-Server", "192.0.2.54")]),
    RadUser("bob", "bobpw"),
    RadUser("carol", "carolpw", reply=[("Framed-IP-Address", "100.64.8.8")]),
    RadUser("blocked", reject=True, reply=[("Reply-Message", "account suspended")]),
]
LINE = LineInfo("acc0:100:200", "02:00:00:00:00:01", b"dslam1 atm 1/1:100.33", b"remote-7", 1024, 16000)


@contextmanager
def in_netns(name: str):
    """This thread inside namespace ``name`` for the sockets created in the block."""
    from pyroute2 import netns  # noqa: PLC0415

    netns.pushns(name)
    try:
        yield
    finally:
        netns.popns()


@pytest.fixture(scope="module")
def ns():
    name = f"rad-{unique_suffix()}"
    create_netns(name, ipv6=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=30)
        yield name
    finally:
        remove_netns(name)


@pytest.fixture(scope="module")
def radius(ns):
    """FreeRADIUS on 127.0.0.1:1812/1813 of the namespace."""
    work = Path(tempfile.mkdtemp(prefix="pfrps-radius-")) / "raddb"
    server = FreeRadius(ns, work, {LO: SECRET}, USERS)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(work.parent, ignore_errors=True)
    assert not work.exists()


@pytest.fixture
def loop():
    import uvloop  # noqa: PLC0415

    lp = uvloop.new_event_loop()
    try:
        yield lp
    finally:
        lp.close()


def config(*servers: tuple[str, int], **kw) -> RadiusConfig:
    kw.setdefault("timeout", 0.3)
    kw.setdefault("retries", 2)
    return RadiusConfig(servers=servers, secret=SECRET.encode(), nas_identifier="bng-test",
                        nas_ip=IPv4Address("192.0.2.1"), **kw)


def started(loop, ns: str, cfg: RadiusConfig) -> RadiusClient:
    client = RadiusClient(cfg, loop)
    with in_netns(ns):
        loop.run_until_complete(client.start())
    return client


def wait_for(loop, predicate, timeout: float = 10.0) -> bool:
    async def poll():
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                return False
            await asyncio.sleep(0.01)
        return True
    return loop.run_until_complete(poll())


def auth(loop, client: RadiusClient, req: AuthRequest, line: LineInfo = LINE, timeout: float = 15.0):
    results = []
    client.authenticate(req, line, results.append)
    assert wait_for(loop, lambda: results, timeout), client.counters
    assert len(results) == 1
    return results[0]


def pap(user: str, password: str) -> AuthRequest:
    return AuthRequest("pap", user.encode(), password=password.encode())


def chap(user: str, password: str, ident: int = 7, challenge: bytes = bytes(range(16))) -> AuthRequest:
    return AuthRequest("chap", user.encode(), chap_id=ident, challenge=challenge,
                       response=chap_md5(ident, password.encode(), challenge))


def test_freeradius_version():
    assert freeradius_version().startswith("FreeRADIUS Version 3."), freeradius_version()


# -- authentication ----------------------------------------------------------------------------------
def test_pap_accept_with_framed_ip(ns, radius, loop):
    client = started(loop, ns, config((LO, 1812)))
    try:
        res = auth(loop, client, pap("alice", "alicepw"))
    finally:
        client.close()
    assert res.ok and not res.timed_out
    assert res.ipv4 == IPv4Address("100.64.7.7")             # wins over the pool
    assert res.session_timeout == 3600 and res.idle_timeout == 600 and res.interim == 300
    assert res.class_ == (b"alice-class",)
    assert res.ipv6_prefix == IPv6Network("2001:db8:1:2::/64")
    assert res.delegated_prefix == IPv6Network("2001:db8:100::/56")
    assert res.dns6 == (IPv6Address("2001:db8::53"),)
    assert res.dns4 == (IPv4Address("192.0.2.53"), IPv4Address("192.0.2.54"))
    assert res.server == (LO, 1812)
    assert client.counters["accepts"] == 1 and client.counters["timeouts"] == 0
    # what FreeRADIUS received (its -X output): the attributes of RFC 2865/2869 and TR-101
    out = radius.output()
    for needle in ('User-Name = "alice"', 'NAS-Identifier = "bng-test"', "NAS-IP-Address = 192.0.2.1",
                   "NAS-Port-Type = Virtual", 'NAS-Port-Id = "acc0:100:200"',
                   'Calling-Station-Id = "02:00:00:00:00:01"', "Service-Type = Framed-User",
                   "Framed-Protocol = PPP", "Message-Authenticator = 0x",
                   "ADSL-Agent-Circuit-Id = 0x" + b"dslam1 atm 1/1:100.33".hex(),
                   "ADSL-Agent-Remote-Id = 0x" + b"remote-7".hex(),
                   "Actual-Data-Rate-Upstream = 1024", "Actual-Data-Rate-Downstream = 16000"):
        assert needle in out, needle


def test_pap_pool_user_and_reject_with_reply_message(ns, radius, loop):
    client = started(loop, ns, config((LO, 1812)))
    try:
        ok = auth(loop, client, pap("bob", "bobpw"))
        wrong = auth(loop, client, pap("bob", "nope"))
        blocked = auth(loop, client, pap("blocked", "whatever"))
    finally:
        client.close()
    assert ok.ok and ok.ipv4 is None and ok.session_timeout is None     # no fixed address: the pool
    assert not wrong.ok and wrong.message == b"Authentication failed" and not wrong.timed_out
    assert not blocked.ok and blocked.message == b"account suspended"
    assert client.counters["accepts"] == 1 and client.counters["rejects"] == 2


def test_chap_accept_and_reject(ns, radius, loop):
    client = started(loop, ns, config((LO, 1812)))
    try:
        ok = auth(loop, client, chap("carol", "carolpw"))
        bad = auth(loop, client, chap("carol", "wrong", ident=9, challenge=b"\x55" * 16))
    finally:
        client.close()
    assert ok.ok and ok.ipv4 == IPv4Address("100.64.8.8")
    assert not bad.ok and bad.message == b"Authentication failed"
    assert "CHAP-Challenge = 0x" + bytes(range(16)).hex() in radius.output()


def test_many_waiting_sessions_do_not_block(ns, radius, loop):
    """300 Access-Requests at once from one worker's loop (more than the 256 Identifiers of one
    destination): all answered, some waited for an Identifier, none blocked the loop."""
    client = started(loop, ns, config((LO, 1812), timeout=2.0))
    results = []
    try:
        for i in range(300):
            client.authenticate(pap("alice" if i % 2 else "bob", "alicepw" if i % 2 else "bobpw"), LINE, results.append)
        assert wait_for(loop, lambda: len(results) == 300, 60), client.counters
    finally:
        client.close()
    assert all(r.ok for r in results)
    assert client.counters["id_waits"] > 0
    assert client.counters["accepts"] == 300


def test_server_down_timeout_and_failover(ns, radius, loop):
    """The first server swallows requests: 1 + retries identical transmissions, a timeout, a
    failover to the second, which answers; the next request skips the dead server."""
    with in_netns(ns):
        hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hole.bind((LO, 1912))
    hole.setblocking(False)
    client = started(loop, ns, config((LO, 1912), (LO, 1812), timeout=0.3, retries=2, dead_time=60))
    ticks = []

    def tick():                                   # the worker's other subscribers: a 10 ms timer
        ticks.append(time.monotonic())
        if len(ticks) < 1000:
            loop.call_later(0.01, tick)
    try:
        loop.call_soon(tick)
        t0 = time.monotonic()
        res = auth(loop, client, pap("alice", "alicepw"))
        took = time.monotonic() - t0
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        res2 = auth(loop, client, pap("bob", "bobpw"))
    finally:
        client.close()
    got = []
    while True:
        try:
            got.append(hole.recv(4096))
        except BlockingIOError:
            break
    hole.close()
    assert res.ok and res.ipv4 == IPv4Address("100.64.7.7") and res.server == (LO, 1812)
    assert res2.ok and res2.server == (LO, 1812)
    assert len(got) == 3 and len(set(got)) == 1, got        # retransmitted unchanged
    assert took >= 0.9 - 0.05
    assert len(ticks) > 40 and max(gaps) < 0.2, (len(ticks), max(gaps))   # the loop never waited on RADIUS
    c = client.counters
    assert (c["timeouts"], c["failovers"], c["retransmits"], c["auth_timeouts"]) == (1, 1, 2, 0), c


def test_ipv6_and_mixed_servers(ns, radius, loop):
    """One dual-stack socket for IPv4 and IPv6 servers: failover from a silent IPv4 server to an
    IPv6 one and from a silent IPv6 server to an IPv4 one (answers come from IPv4-mapped
    addresses then)."""
    work = Path(tempfile.mkdtemp(prefix="pfrps-radius-")) / "raddb"
    v6 = FreeRadius(ns, work, {"::1": SECRET}, USERS, address="::1", auth_port=3812, acct_port=3813)
    try:
        v6.start()
        a = started(loop, ns, config((LO, 1922), ("::1", 3812), timeout=0.1, retries=0))
        b = started(loop, ns, config(("::1", 1924), (LO, 1812), timeout=0.1, retries=0))
        try:
            ra = auth(loop, a, pap("alice", "alicepw"))
            rb = auth(loop, b, chap("carol", "carolpw"))
            sid = acct_session_id(9, new_boot_id(), 9)
            assert a.account("start", _record(sid))
            assert wait_for(loop, lambda: a.counters["acct_responses"] == 1), a.counters
        finally:
            a.close()
            b.close()
        assert _of(v6.wait_detail(1), sid)
    finally:
        v6.stop()
        shutil.rmtree(work.parent, ignore_errors=True)
    assert ra.ok and ra.server == ("::1", 3812) and ra.ipv4 == IPv4Address("100.64.7.7")
    assert rb.ok and rb.server == (LO, 1812) and rb.ipv4 == IPv4Address("100.64.8.8")
    assert a.counters["failovers"] >= 1 and b.counters["failovers"] == 1
    assert a.counters["bad_replies"] == b.counters["bad_replies"] == 0


def test_no_server_answers(ns, loop):
    client = started(loop, ns, config((LO, 1914), (LO, 1916), timeout=0.1, retries=1))
    try:
        res = auth(loop, client, pap("alice", "alicepw"))
    finally:
        client.close()
    assert not res.ok and res.timed_out
    c = client.counters
    assert (c["timeouts"], c["failovers"], c["retransmits"], c["auth_timeouts"]) == (2, 1, 2, 1), c


# -- accounting --------------------------------------------------------------------------------------
def _record(sid: str, **kw) -> AcctRecord:
    return AcctRecord(session_id=sid, user=b"alice", line=LINE, ipv4=IPv4Address("100.64.7.7"),
                      ipv6_prefix=IPv6Network("2001:db8:1:2::/64"), class_=(b"alice-class",), **kw)


def _of(records, sid):
    return [r for r in records if r.get("Acct-Session-Id") == sid]


def test_accounting_start_interim_stop(ns, radius, loop):
    sid = acct_session_id(3, new_boot_id(), 1)
    big = 5 * 2**32 + 1234                        # above 2^32: Gigawords 5, Octets 1234
    client = started(loop, ns, config((LO, 1812)))
    try:
        assert client.account("start", _record(sid))
        assert client.account("interim", _record(sid, session_time=30, input_octets=1000, output_octets=2000,
                                                  input_packets=10, output_packets=20))
        assert client.account("stop", _record(sid, session_time=61, input_octets=big, output_octets=3 * 2**32,
                                              input_packets=2**32 + 5, output_packets=77,
                                              terminate_cause="Lost-Carrier"))
        assert wait_for(loop, lambda: client.counters["acct_responses"] == 3), client.counters
    finally:
        client.close()
    recs = _of(radius.wait_detail(3), sid)
    assert [r["Acct-Status-Type"] for r in recs] == ["Start", "Interim-Update", "Stop"], recs
    start, interim, stop = recs
    assert start["User-Name"] == "alice" and start["Framed-IP-Address"] == "100.64.7.7"
    assert start["NAS-Identifier"] == "bng-test" and start["Calling-Station-Id"] == "02:00:00:00:00:01"
    assert start["Class"] == "0x" + b"alice-class".hex()
    assert start["Framed-IPv6-Prefix"] == "2001:db8:1:2::/64"
    assert start["ADSL-Agent-Circuit-Id"] == "0x" + b"dslam1 atm 1/1:100.33".hex()
    assert start["Actual-Data-Rate-Downstream"] == "16000"
    assert "Acct-Input-Octets" not in start
    assert (interim["Acct-Input-Octets"], interim["Acct-Output-Octets"]) == ("1000", "2000")
    assert (interim["Acct-Input-Packets"], interim["Acct-Output-Packets"], interim["Acct-Session-Time"]) == ("10", "20", "30")
    assert (stop["Acct-Input-Octets"], stop["Acct-Input-Gigawords"]) == ("1234", "5")
    assert (stop["Acct-Output-Octets"], stop["Acct-Output-Gigawords"]) == ("0", "3")
    assert (stop["Acct-Input-Packets"], stop["Acct-Output-Packets"]) == ("5", "77")
    assert stop["Acct-Session-Time"] == "61" and stop["Acct-Terminate-Cause"] == "Lost-Carrier"
    assert stop["Acct-Delay-Time"] == "0"


def test_interim_timer(ns, radius, loop):
    sid = acct_session_id(4, new_boot_id(), 2)
    client = started(loop, ns, config((LO, 1812)))
    ticks = []

    def record():
        ticks.append(1)
        return _record(sid, session_time=len(ticks), input_octets=100 * len(ticks)) if len(ticks) <= 3 else None
    try:
        timer = client.start_interim(record, 0.2)
        assert wait_for(loop, lambda: client.counters["acct_responses"] == 3 and len(ticks) == 4), client.counters
        timer.cancel()
    finally:
        client.close()
    recs = _of(radius.wait_detail(1), sid)
    assert [r["Acct-Input-Octets"] for r in recs] == ["100", "200", "300"]


def test_accounting_retried_while_server_away_and_overflow(ns, loop):
    """Records queued while no server answers are sent once one starts; Acct-Delay-Time grows;
    a full queue drops the oldest Interim-Update first (counted)."""
    sid = acct_session_id(5, new_boot_id(), 3)
    client = started(loop, ns, config((LO, 2812), timeout=0.1, retries=1, acct_backoff=0.2, acct_queue_max=4))
    work = Path(tempfile.mkdtemp(prefix="pfrps-radius-")) / "raddb"
    late = FreeRadius(ns, work, {LO: SECRET}, USERS, auth_port=2812, acct_port=2813)
    try:
        assert client.account("start", _record(sid))
        assert client.account("interim", _record(sid, session_time=1, input_octets=1))
        assert client.account("interim", _record(sid, session_time=2, input_octets=2))
        assert client.account("interim", _record(sid, session_time=3, input_octets=3))
        assert wait_for(loop, lambda: client.counters["acct_requeued"] >= 4)
        # full (4): the oldest queued Interim-Update goes, the Stop stays
        assert client.account("stop", _record(sid, session_time=4, input_octets=4, terminate_cause="User-Request"))
        assert client.counters["acct_overflow"] == 1 and client.counters["acct_queued"] == 4
        wait_for(loop, lambda: False, 1.2)                   # the server is away a while longer
        late.start()
        assert wait_for(loop, lambda: client.counters["acct_queued"] == 0, 15), client.counters
        recs = _of(late.wait_detail(4), sid)
    finally:
        client.close()
        late.stop()
        shutil.rmtree(work.parent, ignore_errors=True)
    # every record arrives (in whatever order the retries happened to land)
    assert sorted((r["Acct-Status-Type"], r.get("Acct-Input-Octets", "")) for r in recs) == [
        ("Interim-Update", "2"), ("Interim-Update", "3"), ("Start", ""), ("Stop", "4")], recs
    assert all(int(r["Acct-Delay-Time"]) >= 1 for r in recs), recs
    assert client.counters["acct_responses"] == 4 and client.counters["timeouts"] >= 4


# -- dynamic authorization ---------------------------------------------------------------------------
class _Session:
    def __init__(self, sid, user, ipv4, mac):
        self.sid, self.user, self.ipv4, self.mac = sid, user, ipv4, mac
        self.ended = False
        self.session_timeout = None
        self.idle_timeout = None


def _dynauth(loop, ns, port, clients=None):
    sessions = [_Session("S1", b"alice", IPv4Address("100.64.7.7"), "02:00:00:00:00:01"),
                _Session("S2", b"bob", IPv4Address("100.64.0.9"), "02:00:00:00:00:02")]

    def lookup(keys):
        return [s for s in sessions if not s.ended and session_matches(
            keys, acct_session_id=s.sid, user=s.user, ipv4=s.ipv4, calling_station_id=s.mac)]

    def on_disconnect(found, keys):
        for s in found:
            s.ended = True

    def on_coa(found, changes):
        for s in found:
            s.session_timeout = changes.get("session_timeout", s.session_timeout)
            s.idle_timeout = changes.get("idle_timeout", s.idle_timeout)

    cfg = config((LO, 1812), coa_port=port)
    server = DynAuthServer(cfg, clients or {LO: SECRET.encode()}, lookup, on_disconnect, on_coa)
    with in_netns(ns):
        loop.run_until_complete(server.start(LO))
    return server, sessions


def _radclient(loop, ns, port, code, attrs, secret=SECRET, timeout=1.0, retries=1):
    proc = radclient_start(ns, f"{LO}:{port}", secret, code, attrs, timeout=timeout, retries=retries)
    assert wait_for(loop, lambda: proc.poll() is not None, 30)
    return radclient_finish(proc)


def test_disconnect_request(ns, loop):
    server, sessions = _dynauth(loop, ns, 3799)
    try:
        ack = _radclient(loop, ns, 3799, "disconnect", {"Acct-Session-Id": "S1", "NAS-Identifier": "bng-test"})
        again = _radclient(loop, ns, 3799, "disconnect", {"Acct-Session-Id": "S1"})
        nak = _radclient(loop, ns, 3799, "disconnect", {"User-Name": "nobody"})
        by_ip = _radclient(loop, ns, 3799, "disconnect", {"Framed-IP-Address": "100.64.0.9",
                                                          "Calling-Station-Id": "02:00:00:00:00:02"})
        wrong_nas = _radclient(loop, ns, 3799, "disconnect", {"User-Name": "alice", "NAS-Identifier": "other"})
    finally:
        server.close()
    assert ack.code == "Disconnect-ACK", ack.output
    assert sessions[0].ended
    assert again.code == "Disconnect-NAK" and again.attrs.get("Error-Cause") == "Session-Context-Not-Found", again.output
    assert nak.code == "Disconnect-NAK" and nak.attrs.get("Error-Cause") == "Session-Context-Not-Found", nak.output
    assert by_ip.code == "Disconnect-ACK" and sessions[1].ended, by_ip.output
    assert wrong_nas.code == "Disconnect-NAK" and wrong_nas.attrs.get("Error-Cause") == "NAS-Identification-Mismatch"
    c = server.counters
    assert (c["disconnects"], c["acks"], c["naks"], c["bad_authenticator"]) == (5, 2, 3, 0), c


def test_coa_request(ns, loop):
    server, sessions = _dynauth(loop, ns, 3800)
    try:
        ack = _radclient(loop, ns, 3800, "coa", {"User-Name": "alice", "Session-Timeout": "120", "Idle-Timeout": "30"})
        nak = _radclient(loop, ns, 3800, "coa", {"Acct-Session-Id": "nope", "Session-Timeout": "5"})
        unsupported = _radclient(loop, ns, 3800, "coa", {"User-Name": "alice", "Filter-Id": "gold"})
    finally:
        server.close()
    assert ack.code == "CoA-ACK", ack.output
    assert (sessions[0].session_timeout, sessions[0].idle_timeout) == (120, 30)
    assert sessions[1].session_timeout is None
    assert nak.code == "CoA-NAK" and nak.attrs.get("Error-Cause") == "Session-Context-Not-Found", nak.output
    assert unsupported.code == "CoA-NAK" and unsupported.attrs.get("Error-Cause") == "Unsupported-Attribute"
    assert server.counters["coas"] == 3


def test_bad_secret_and_unknown_client_dropped(ns, loop):
    server, sessions = _dynauth(loop, ns, 3801)
    try:
        bad = _radclient(loop, ns, 3801, "disconnect", {"Acct-Session-Id": "S1"}, secret="wrong-secret",
                         timeout=0.3, retries=2)
    finally:
        server.close()
    assert bad.code is None, bad.output
    assert not sessions[0].ended
    assert server.counters["bad_authenticator"] == 2 and server.counters["acks"] == server.counters["naks"] == 0

    stranger, sessions = _dynauth(loop, ns, 3802, clients={"127.0.0.9": SECRET.encode()})
    try:
        none = _radclient(loop, ns, 3802, "disconnect", {"Acct-Session-Id": "S1"}, timeout=0.3, retries=1)
    finally:
        stranger.close()
    assert none.code is None and not sessions[0].ended
    assert stranger.counters["unknown_client"] == 1 and stranger.counters["requests"] == 0
