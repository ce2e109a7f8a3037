"""pfrps.bng.radius codec and logic without sockets: TR-101 parsing, Acct-Session-Id, the
RFC 5176 authenticator check, option parsing, and the client's packets, retransmission,
failover and accounting queue over a fake transport (nothing is sent anywhere)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import struct
from ipaddress import IPv4Address, IPv6Network

import pytest
from pyrad import packet as rp

from pfrps.bng import radius as r
from pfrps.bng.auth import AuthRequest, chap_md5
from pfrps.errors import UsageError

SECRET = b"unit-secret"
LINE = r.LineInfo("acc0:100", "02:00:00:00:00:01", b"circ", b"rem", 1000, 20000)


# -- TR-101 ------------------------------------------------------------------------------------------
def _tag(*subopts: tuple[int, bytes], vendor: int = 3561) -> bytes:
    return struct.pack("!I", vendor) + b"".join(bytes([t, len(v)]) + v for t, v in subopts)


def test_tr101_full():
    tag = _tag((1, b"dslam 1/1/1:100"), (2, b"remote"), (0x81, struct.pack("!I", 1024)),
               (0x82, struct.pack("!I", 16384)), (0x85, struct.pack("!I", 2000)), (0x90, b"\x01\x01\x01"),
               (0x42, b"??"))
    got = r.parse_tr101(tag)
    assert got == {"circuit_id": b"dslam 1/1/1:100", "remote_id": b"remote", "rate_up": 1024, "rate_down": 16384,
                   "attainable_rate_up": 2000, "access_loop_encapsulation": b"\x01\x01\x01", "unknown": {0x42: b"??"}}
    line = r.tr101_line(tag, "acc0", "02:00:00:00:00:01")
    assert (line.circuit_id, line.remote_id, line.rate_up, line.rate_down) == (b"dslam 1/1/1:100", b"remote", 1024, 16384)


@pytest.mark.parametrize("tag", [b"", b"\x00\x00\x0d", _tag((1, b"x"), vendor=9), b"\x00\x00\x00\x00"])
def test_tr101_not_ours(tag):
    assert r.parse_tr101(tag) == {}


def test_tr101_malformed_keeps_the_good_part():
    got = r.parse_tr101(_tag((1, b"circ")) + b"\x02\x09abc")
    assert got["circuit_id"] == b"circ" and "runs past" in got["malformed"]
    got = r.parse_tr101(_tag((1, b"circ"), (0x81, b"\x00\x01")))
    assert got["circuit_id"] == b"circ" and "want 4" in got["malformed"] and "rate_up" not in got
    got = r.parse_tr101(_tag((1, b"c")) + b"\x02")
    assert "cut" in got["malformed"]
    assert r.tr101_line(None, "a", "b") == r.LineInfo("a", "b")


# -- Acct-Session-Id -----------------------------------------------------------------------------------
def test_acct_session_id_unique_across_workers_and_runs():
    boots = [r.new_boot_id() for _ in range(50)]
    assert len(set(boots)) == 50 and all(0 <= b < 1 << 48 for b in boots)
    ids = {r.acct_session_id(w, b, c) for b in boots[:5] for w in range(8) for c in range(200)}
    assert len(ids) == 5 * 8 * 200
    assert all(len(i) == 26 and i.isalnum() and i.upper() == i for i in ids)
    # fixed-width fields: no two (worker, counter) pairs can spell the same id
    assert r.acct_session_id(1, 0x65F0A1B2C3D4, 7) == "65F0A1B2C3D4" "0001" "0000000007"
    assert r.acct_session_id(0x11, 1, 0x1) != r.acct_session_id(0x1, 1, 0x11)


@pytest.mark.parametrize("args", [(-1, 1, 1), (1 << 16, 1, 1), (0, 1 << 48, 1), (0, 1, 1 << 40), (0, -1, 0)])
def test_acct_session_id_range(args):
    with pytest.raises(ValueError):
        r.acct_session_id(*args)


# -- configuration -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, want", [
    ("192.0.2.1", ("192.0.2.1", 1812)), ("192.0.2.1:1645", ("192.0.2.1", 1645)),
    ("[2001:db8::1]:1812", ("2001:db8::1", 1812)), ("2001:db8::1", ("2001:db8::1", 1812)),
    ("[::1]", ("::1", 1812)), (" 10.0.0.1 ", ("10.0.0.1", 1812)),
])
def test_parse_server(text, want):
    assert r.parse_server(text) == want


@pytest.mark.parametrize("text, needle", [
    ("radius.example.net", "not an IPv4 or IPv6 address"), ("192.0.2.1:0", "port"), ("192.0.2.1:65535", "port"),
    ("192.0.2.1:x", "port"), ("[2001:db8::1", "brackets"), ("[::1]x", "brackets"), ("[::1]:", "port"),
    ("", "not an IPv4"), ("300.1.1.1", "not an IPv4"),
])
def test_parse_server_bad(text, needle):
    with pytest.raises(UsageError) as e:
        r.parse_server(text)
    line = e.value.one_line()
    assert needle in line and "\n" not in line and e.value.hint


def test_load_secret(tmp_path):
    p = tmp_path / "secret"
    p.write_bytes(b"  s3cret \nsecond line\n")
    assert r.load_secret(p) == b"s3cret"
    p.write_bytes(b"\n")
    with pytest.raises(UsageError, match="empty"):
        r.load_secret(p)
    with pytest.raises(UsageError, match="secret-file") as e:
        r.load_secret(tmp_path / "missing")
    assert e.value.hint


@pytest.mark.parametrize("kw, needle", [
    (dict(servers=()), "no RADIUS server"), (dict(secret=b""), "secret"), (dict(timeout=0), "radius-timeout"),
    (dict(retries=-1), "radius-retries"), (dict(acct_interim=0), "acct-interim"), (dict(coa_port=0), "coa-port"),
    (dict(nas_identifier=""), "nas-identifier"),
])
def test_config_bad(kw, needle):
    args = dict(servers=(("192.0.2.1", 1812),), secret=SECRET) | kw
    with pytest.raises(UsageError, match=needle):
        r.RadiusConfig(**args)


def test_dictionary_is_package_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r.dictionary.cache_clear()
    d = r.dictionary()
    assert d.attributes["Agent-Circuit-Id"].vendor == "ADSL-Forum" and d.attributes["Agent-Circuit-Id"].code == 1
    assert d.attributes["Actual-Data-Rate-Downstream"].code == 130
    assert d.attributes["Delegated-IPv6-Prefix"].code == 123 and d.attributes["Error-Cause"].code == 101
    assert not d.skipped_attributes


# -- the RFC 5176 authenticator and the dynamic authorization server -------------------------------------
def _coa_request(code=rp.DisconnectRequest, secret=SECRET, ident=5, message_authenticator=False, **attrs):
    pkt = rp.CoAPacket(code, id=ident, secret=secret, dict=r.dictionary())
    for k, v in attrs.items():
        pkt[k.replace("_", "-")] = v
    if message_authenticator:
        pkt.add_message_authenticator()
    return pkt.RequestPacket()


def test_request_authenticator():
    raw = _coa_request(Acct_Session_Id="S1")
    code, ident, length = struct.unpack_from("!BBH", raw)
    want = hashlib.md5(raw[:4] + bytes(16) + raw[20:] + SECRET).digest()
    assert raw[4:20] == want == r.request_authenticator(raw, SECRET)
    assert r.request_authenticator(raw + b"padding", SECRET) == want      # past Length: ignored
    assert r.request_authenticator(raw, b"other") != want


class _S:
    def __init__(self, sid, user, ip, mac):
        self.sid, self.user, self.ip, self.mac, self.ended, self.changes = sid, user, ip, mac, False, {}


def _server(sessions, **cfg):
    c = r.RadiusConfig(servers=(("192.0.2.1", 1812),), secret=SECRET, nas_identifier="bng1",
                       nas_ip=IPv4Address("192.0.2.10"), **cfg)

    def lookup(keys):
        return [s for s in sessions if r.session_matches(keys, acct_session_id=s.sid, user=s.user, ipv4=s.ip,
                                                         calling_station_id=s.mac)]

    def disc(found, keys):
        for s in found:
            s.ended = True

    def coa(found, changes):
        for s in found:
            s.changes = changes
    return r.DynAuthServer(c, {"192.0.2.99": SECRET, "2001:db8::99": SECRET}, lookup, disc, coa)


def _decode(raw, request, secret=SECRET):
    reply = rp.CoAPacket(packet=raw, secret=secret, dict=r.dictionary())
    req = rp.CoAPacket(packet=request, secret=secret, dict=r.dictionary())
    assert req.VerifyReply(reply, raw), "reply authenticator"
    return reply


def test_dynauth_disconnect_ack_nak_and_drops():
    sessions = [_S("S1", b"alice", IPv4Address("100.64.0.1"), "02:00:00:00:00:01")]
    srv = _server(sessions)
    src = ("192.0.2.99", 40000)
    req = _coa_request(Acct_Session_Id="S1", message_authenticator=True)
    ack = _decode(srv.handle(req, src), req)
    assert ack.code == rp.DisconnectACK and sessions[0].ended and ack.message_authenticator
    # a retransmission gets the same answer, the session is not looked up again
    assert srv.handle(req, src) == srv.handle(req, src) and srv.counters["duplicates"] == 2
    req2 = _coa_request(ident=6, Acct_Session_Id="S9")
    nak = _decode(srv.handle(req2, src), req2)
    assert nak.code == rp.DisconnectNAK and nak[101] == [struct.pack("!I", 503)]
    # bad secret, tampered packet, unknown client, wrong code, short: dropped and counted
    assert srv.handle(_coa_request(secret=b"wrong", Acct_Session_Id="S1"), src) is None
    tampered = bytearray(_coa_request(ident=7, Acct_Session_Id="S1"))
    tampered[-1] ^= 1
    assert srv.handle(bytes(tampered), src) is None
    assert srv.handle(req, ("192.0.2.98", 40000)) is None
    assert srv.handle(b"\x01" + req[1:], src) is None and srv.handle(req[:19], src) is None
    c = srv.counters
    assert (c["bad_authenticator"], c["unknown_client"], c["malformed"], c["acks"], c["naks"]) == (2, 1, 2, 1, 1), c


def test_dynauth_bad_message_authenticator_dropped():
    srv = _server([_S("S1", b"alice", None, "m")])
    raw = bytearray(_coa_request(Acct_Session_Id="S1", message_authenticator=True))
    # Message-Authenticator is the first attribute: flip a bit of its value, then fix the
    # Request Authenticator so only the HMAC is wrong
    raw[22] ^= 0xFF
    raw[4:20] = r.request_authenticator(bytes(raw), SECRET)
    assert srv.handle(bytes(raw), ("192.0.2.99", 1)) is None and srv.counters["bad_authenticator"] == 1


def test_dynauth_coa_and_error_causes():
    s = _S("S1", b"alice", IPv4Address("100.64.0.1"), "02:00:00:00:00:01")
    srv = _server([s])
    src = ("::ffff:192.0.2.99", 1, 0, 0)                         # a dual-stack listener's view
    cases = [
        (dict(User_Name="alice", Session_Timeout=60, Idle_Timeout=10), rp.CoAACK, None),
        (dict(Calling_Station_Id="02:00:00:00:00:01", Framed_IP_Address="100.64.0.1"), rp.CoAACK, None),
        (dict(User_Name="alice", Framed_IP_Address="100.64.0.2"), rp.CoANAK, 503),   # all must match
        (dict(User_Name="alice", Filter_Id="gold"), rp.CoANAK, 401),
        (dict(User_Name="alice", Service_Type="Authorize-Only"), rp.CoANAK, 405),
        (dict(Session_Timeout=5), rp.CoANAK, 402),
        (dict(User_Name="alice", NAS_Identifier="other"), rp.CoANAK, 403),
        (dict(User_Name="alice", NAS_IP_Address="192.0.2.11"), rp.CoANAK, 403),
        (dict(User_Name="alice", NAS_Identifier="bng1", NAS_IP_Address="192.0.2.10"), rp.CoAACK, None),
    ]
    for ident, (attrs, code, cause) in enumerate(cases):
        req = _coa_request(rp.CoARequest, ident=ident, **attrs)
        rep = _decode(srv.handle(req, src), req)
        assert rep.code == code, attrs
        assert (rep[101] if cause else []) == ([struct.pack("!I", cause)] if cause else []), attrs
        if ident == 0:
            assert s.changes == {"session_timeout": 60, "idle_timeout": 10}
    assert srv.counters["coas"] == len(cases)


def test_session_matches():
    kw = dict(acct_session_id="S1", user=b"u", ipv4=IPv4Address("10.0.0.1"), calling_station_id="02:AA:00:00:00:01")
    assert r.session_matches({"acct_session_id": "S1"}, **kw)
    assert r.session_matches({"calling_station_id": "02:aa:00:00:00:01", "user_name": b"u"}, **kw)
    assert not r.session_matches({"user_name": b"u", "framed_ip": IPv4Address("10.0.0.2")}, **kw)
    assert not r.session_matches({}, **kw)


# -- the client over a fake transport ---------------------------------------------------------------------
class FakeTransport:
    def __init__(self):
        self.sent: list[tuple[bytes, tuple]] = []

    def sendto(self, data, addr):
        self.sent.append((bytes(data), addr))

    def close(self):
        pass

    def get_extra_info(self, name):
        return ("0.0.0.0", 1)


@pytest.fixture
def loop():
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def _client(loop, servers=(("192.0.2.1", 1812),), **kw):
    kw.setdefault("timeout", 0.05)
    kw.setdefault("retries", 1)
    cfg = r.RadiusConfig(servers=servers, secret=SECRET, nas_identifier="bng1", nas_ip=IPv4Address("192.0.2.10"), **kw)
    c = r.RadiusClient(cfg, loop)
    c._transport = FakeTransport()
    return c


def _run(loop, seconds):
    loop.run_until_complete(asyncio.sleep(seconds))


def test_access_request_pap_attributes(loop):
    c = _client(loop)
    got = []
    c.authenticate(AuthRequest("pap", b"alice", password=b"pw" * 20), LINE, got.append, acct_session_id="S1")
    (raw, addr), = c._transport.sent
    assert addr == ("192.0.2.1", 1812)
    pkt = rp.AuthPacket(packet=raw, secret=SECRET, dict=r.dictionary())
    assert pkt.code == rp.AccessRequest and list(pkt.keys())[0] == "Message-Authenticator"
    assert pkt.verify_message_authenticator()
    assert pkt.PwDecrypt(pkt["User-Password"][0]) == "pw" * 20
    assert pkt["User-Name"] == ["alice"] and pkt["NAS-Identifier"] == ["bng1"] and pkt["NAS-IP-Address"] == ["192.0.2.10"]
    assert pkt["NAS-Port-Type"] == ["Virtual"] and pkt["Service-Type"] == ["Framed-User"] and pkt["Framed-Protocol"] == ["PPP"]
    assert pkt["NAS-Port-Id"] == ["acc0:100"] and pkt["Calling-Station-Id"] == ["02:00:00:00:00:01"]
    assert pkt["Agent-Circuit-Id"] == [b"circ"] and pkt["Agent-Remote-Id"] == [b"rem"]
    assert pkt["Actual-Data-Rate-Upstream"] == [1000] and pkt["Actual-Data-Rate-Downstream"] == [20000]
    assert pkt["Acct-Session-Id"] == ["S1"]
    # the Access-Accept, signed by the "server"
    req = rp.AuthPacket(packet=raw, secret=SECRET, dict=r.dictionary())
    acc = req.CreateReply()
    acc["Framed-IP-Address"] = "100.64.1.1"
    acc["Framed-IPv6-Prefix"] = "2001:db8:5::/64"
    acc["Session-Timeout"] = 99
    acc["Reply-Message"] = "welcome"
    acc.AddAttribute("Class", b"c1")
    acc.AddAttribute("Class", b"c2")
    forged = bytearray(acc.ReplyPacket())
    forged[-1] ^= 1
    c._on_datagram(bytes(forged), ("192.0.2.1", 1812))
    assert not got and c.counters["bad_replies"] == 1
    c._on_datagram(acc.ReplyPacket(), ("192.0.2.1", 1812))
    res, = got
    assert res.ok and res.ipv4 == IPv4Address("100.64.1.1") and res.ipv6_prefix == IPv6Network("2001:db8:5::/64")
    assert res.session_timeout == 99 and res.message == b"welcome" and res.class_ == (b"c1", b"c2")
    c._on_datagram(acc.ReplyPacket(), ("192.0.2.1", 1812))          # late duplicate: ignored
    assert len(got) == 1 and c.counters["bad_replies"] == 2 and c.counters["accepts"] == 1


def test_access_request_chap_and_nas_selects(loop):
    c = _client(loop)
    got = []
    ch = bytes(range(16))
    c.authenticate(AuthRequest("chap", b"bob", chap_id=9, challenge=ch, response=chap_md5(9, b"pw", ch)), LINE, got.append)
    (raw, _), = c._transport.sent
    pkt = rp.AuthPacket(packet=raw, secret=SECRET, dict=r.dictionary())
    assert pkt.VerifyChapPasswd(b"pw") and pkt["CHAP-Challenge"] == [ch]
    acc = pkt.CreateReply()
    acc["Framed-IP-Address"] = "255.255.255.254"               # "NAS selects": the pool
    c._on_datagram(acc.ReplyPacket(), ("192.0.2.1", 1812))
    assert got[0].ok and got[0].ipv4 is None


def test_unencodable_request_answers_reject(loop):
    c = _client(loop)
    got = []
    c.authenticate(AuthRequest("pap", b"alice", password=b"x" * 129), LINE, got.append)
    _run(loop, 0.01)
    assert got == [r.RadiusAuthResult(False)] and c.counters["local_errors"] == 1 and not c._transport.sent


def test_retransmit_failover_and_give_up(loop):
    c = _client(loop, servers=(("192.0.2.1", 1812), ("192.0.2.2", 1645)), retries=2, dead_time=60)
    got = []
    h = c.authenticate(AuthRequest("pap", b"alice", password=b"pw"), LINE, got.append)
    _run(loop, 0.5)
    sent = c._transport.sent
    assert [a for _, a in sent] == [("192.0.2.1", 1812)] * 3 + [("192.0.2.2", 1645)] * 3
    assert len({d for d, _ in sent[:3]}) == 1 and len({d for d, _ in sent[3:]}) == 1
    assert sent[0][0][1] == sent[1][0][1]
    assert got and not got[0].ok and got[0].timed_out and not h.pending
    cn = c.counters
    assert (cn["retransmits"], cn["timeouts"], cn["failovers"], cn["auth_timeouts"]) == (4, 2, 1, 1)


def test_dead_server_skipped_and_cancel(loop):
    c = _client(loop, servers=(("192.0.2.1", 1812), ("192.0.2.2", 1812)), retries=0, dead_time=60)
    got = []
    c.authenticate(AuthRequest("pap", b"a", password=b"p"), LINE, got.append)
    _run(loop, 0.08)                                            # server 1 timed out: failover
    h = c.authenticate(AuthRequest("pap", b"b", password=b"p"), LINE, got.append)
    assert c._transport.sent[-1][1] == ("192.0.2.2", 1812)       # the dead one is skipped
    h.cancel()
    _run(loop, 0.2)
    assert len(got) == 1 and not h.pending


def test_identifiers_per_destination(loop):
    c = _client(loop, timeout=5)
    for i in range(300):
        c.authenticate(AuthRequest("pap", b"u%d" % i, password=b"p"), LINE, lambda res: None)
    idents = [d[1] for d, _ in c._transport.sent]
    assert len(idents) == 256 and len(set(idents)) == 256 and c.counters["id_waits"] == 44
    c.close()


def test_accounting_gigawords_and_queue(loop):
    c = _client(loop, acct_queue_max=3, acct_backoff=0.05)
    rec = r.AcctRecord("S1", b"alice", LINE, session_time=12, input_octets=7 * 2**32 + 9, output_octets=2**32,
                       input_packets=2**32 + 1, output_packets=3, ipv4=IPv4Address("100.64.0.1"),
                       delegated_prefix=IPv6Network("2001:db8:100::/56"), terminate_cause="Admin-Reset", class_=(b"k",))
    assert c.account("stop", rec)
    (raw, addr), = c._transport.sent
    assert addr == ("192.0.2.1", 1813)
    pkt = rp.AcctPacket(packet=raw, secret=SECRET, dict=r.dictionary())
    assert pkt.VerifyAcctRequest()
    assert (pkt["Acct-Input-Octets"], pkt["Acct-Input-Gigawords"]) == ([9], [7])
    assert (pkt["Acct-Output-Octets"], pkt["Acct-Output-Gigawords"]) == ([0], [1])
    assert (pkt["Acct-Input-Packets"], pkt["Acct-Output-Packets"]) == ([1], [3])
    assert pkt["Acct-Terminate-Cause"] == ["Admin-Reset"] and pkt["Acct-Status-Type"] == ["Stop"]
    assert pkt["Acct-Session-Time"] == [12] and pkt["Class"] == [b"k"] and pkt["Acct-Delay-Time"] == [0]
    assert pkt["Delegated-IPv6-Prefix"] == ["2001:db8:100::/56"] and pkt["Framed-IP-Address"] == ["100.64.0.1"]
    # no answer: retried, requeued, sent again with a new Identifier and a later Acct-Delay-Time
    _run(loop, 1.2)
    ids = {d[1] for d, _ in c._transport.sent}
    assert c.counters["acct_requeued"] >= 2 and len(ids) >= 2
    last = rp.AcctPacket(packet=c._transport.sent[-1][0], secret=SECRET, dict=r.dictionary())
    assert last["Acct-Delay-Time"][0] >= 1
    # queue of 3: two interims fill it, a third record evicts the oldest interim
    assert c.account("interim", r.AcctRecord("S1", b"alice", input_octets=1))
    assert c.account("interim", r.AcctRecord("S1", b"alice", input_octets=2))
    assert c.account("start", r.AcctRecord("S2", b"bob"))
    assert c.counters["acct_overflow"] == 1 and c.counters["acct_queued"] == 3
    assert c.account("stop", r.AcctRecord("S2", b"bob")) and c.counters["acct_overflow"] == 2   # evicts interim 2
    assert not c.account("stop", r.AcctRecord("S3", b"carol")) and c.counters["acct_overflow"] == 3  # no interim left
    assert sorted(q.status for q in c._acct_live.values()) == ["start", "stop", "stop"]
    with pytest.raises(ValueError):
        c.account("stop", r.AcctRecord("S3", b"x", terminate_cause="Bored"))
    with pytest.raises(ValueError):
        c.account("pause", r.AcctRecord("S3", b"x"))
    assert c.close() == c.counters["acct_queued"]


def test_interim_timer(loop):
    c = _client(loop, timeout=5)
    n = itertools.count(1)

    def rec():
        i = next(n)
        return r.AcctRecord("S1", b"a", session_time=i) if i <= 3 else None
    t = c.start_interim(rec, 0.02)
    _run(loop, 0.2)
    assert c.counters["acct_requests"] == 3 and t.handle is None
    with pytest.raises(ValueError):
        c.start_interim(rec, 0)


def test_accounting_answer_and_drain(loop):
    c = _client(loop, timeout=5)
    assert c.account("start", r.AcctRecord("S1", b"a"))
    (raw, addr), = c._transport.sent
    req = rp.AcctPacket(packet=raw, secret=SECRET, dict=r.dictionary())
    resp = req.CreateReply()

    async def answer_later():
        await asyncio.sleep(0.02)
        c._on_datagram(resp.ReplyPacket(), addr)
    loop.call_soon(lambda: loop.create_task(answer_later()))
    assert loop.run_until_complete(c.drain(2.0))
    assert c.counters["acct_responses"] == 1 and c.counters["acct_queued"] == 0 and c.close() == 0


def test_octets_sent_verbatim(loop):
    """Values that look like pyrad's hex notation (``0x...``) are sent as they are."""
    c = _client(loop, timeout=5)
    line = r.LineInfo("p", "m", b"0x1234", b"0xabcd" * 60)
    c.authenticate(AuthRequest("pap", b"u", password=b"p"), line, lambda res: None)
    assert c.account("start", r.AcctRecord("S1", b"u", line, class_=(b"0xff", b"plain")))
    (auth_raw, _), (acct_raw, _) = c._transport.sent
    for raw in (auth_raw, acct_raw):
        pkt = rp.Packet(packet=raw, dict=r.dictionary())
        assert pkt["Agent-Circuit-Id"] == [b"0x1234"]
        assert pkt["Agent-Remote-Id"] == [(b"0xabcd" * 60)[:247]]
    assert rp.Packet(packet=acct_raw, dict=r.dictionary())["Class"] == [b"0xff", b"plain"]


# -- command-line options -----------------------------------------------------------------------------
def _parse(argv):
    from pfrps.cliutil import ArgumentParser

    p = ArgumentParser(prog="pfrps-bng")
    r.add_radius_arguments(p)
    return p.parse_args(argv)


def test_cli_options(tmp_path):
    sec = tmp_path / "secret"
    sec.write_text("s3cret\n")
    args = _parse(["--radius", "192.0.2.1", "--radius", "[2001:db8::2]:1645", "--radius-secret-file", str(sec),
                   "--radius-timeout", "1.5", "--radius-retries", "2", "--acct-interim", "300",
                   "--nas-identifier", "bng-7", "--coa-port", "3800"])
    cfg = r.radius_config(args, nas_ip=IPv4Address("192.0.2.10"))
    assert cfg == r.RadiusConfig(servers=(("192.0.2.1", 1812), ("2001:db8::2", 1645)), secret=b"s3cret", timeout=1.5,
                                 retries=2, nas_identifier="bng-7", nas_ip=IPv4Address("192.0.2.10"),
                                 acct_interim=300.0, coa_port=3800)
    assert r.dynauth_clients(cfg) == {"192.0.2.1": b"s3cret", "2001:db8::2": b"s3cret"}
    defaults = r.radius_config(_parse(["--radius", "192.0.2.1", "--radius-secret-file", str(sec)]))
    assert (defaults.timeout, defaults.retries, defaults.coa_port, defaults.acct_interim) == (3.0, 3, 3799, None)
    assert r.radius_config(_parse([])) is None


@pytest.mark.parametrize("argv, needle", [
    (["--radius", "radius.example"], "not an IPv4 or IPv6 address"),
    (["--radius", "192.0.2.1:99999"], "port"),
    (["--radius-timeout", "0"], "above 0"),
    (["--radius-retries", "-1"], "out of range"),
    (["--coa-port", "70000"], "out of range"),
])
def test_cli_bad_options(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        _parse(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and needle in err and err.startswith("pfrps-bng: error: ")


@pytest.mark.parametrize("argv, needle", [
    (["--radius", "192.0.2.1"], "needs --radius-secret-file"),
    (["--radius-secret-file", "x"], "without --radius"),
    (["--acct-interim", "60"], "without --radius"),
    (["--radius", "192.0.2.1", "--radius-secret-file", "/nonexistent/secret"], "secret-file"),
])
def test_cli_bad_combinations(argv, needle):
    with pytest.raises(UsageError, match=needle) as e:
        r.radius_config(_parse(argv))
    assert e.value.hint


def test_dynauth_async_callbacks(loop):
    """lookup / on_disconnect returning awaitables (a listener in the supervisor asking the
    owning worker): answered when they complete; a retransmission meanwhile is dropped."""
    sessions = {"S1": _S("S1", b"alice", None, "m")}
    cfg = r.RadiusConfig(servers=(("192.0.2.1", 1812),), secret=SECRET)

    async def lookup(keys):
        await asyncio.sleep(0.02)
        s = sessions.get(keys.get("acct_session_id"))
        return [s] if s else []

    async def disc(found, keys):
        await asyncio.sleep(0.02)
        for s in found:
            s.ended = True
    srv = r.DynAuthServer(cfg, {"192.0.2.99": SECRET}, lookup, disc, lambda f, c: None)
    sent = []
    src = ("192.0.2.99", 1)

    async def scenario():
        req = _coa_request(Acct_Session_Id="S1")
        req2 = _coa_request(ident=9, Acct_Session_Id="S7")
        assert srv.handle(req, src, lambda rep, a: sent.append((rep, req))) is None
        assert srv.handle(req, src, lambda rep, a: sent.append((rep, req))) is None       # in progress
        assert srv.handle(req2, src, lambda rep, a: sent.append((rep, req2))) is None
        await asyncio.sleep(0.2)
        assert srv.handle(req, src) == sent[0][0] or srv.handle(req, src) == sent[1][0]  # cached now
    loop.run_until_complete(scenario())
    codes = sorted(_decode(rep, req).code for rep, req in sent)
    assert codes == [rp.DisconnectACK, rp.DisconnectNAK] and sessions["S1"].ended
    assert srv.counters["duplicates"] >= 2 and srv.counters["acks"] == srv.counters["naks"] == 1
    srv.close()
