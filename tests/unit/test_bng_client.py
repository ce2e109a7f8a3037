"""pfrps.bng.client: frame builders against scapy's dissection, the per-subscriber state machine
driven with canned server frames (exact expected frames, built with scapy), an end-to-end run
against a throwaway in-memory fake server, and the command line's bad-input lines."""

from __future__ import annotations

import hashlib
import ipaddress
import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6ND_RS, IPv6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import (PPP, PPP_CHAP, PPP_CHAP_ChallengeResponse, PPP_IPCP, PPP_IPCP_Option_DNS1,
                              PPP_IPCP_Option_DNS2, PPP_IPCP_Option_IPAddress, PPP_LCP_Auth_Protocol_Option,
                              PPP_LCP_Configure, PPP_LCP_Echo, PPP_LCP_Magic_Number_Option, PPP_LCP_MRU_Option,
                              PPP_LCP_Terminate, PPP_PAP_Request, PPP_PAP_Response, PPPoE, PPPoED,
                              PPPoED_Tags, PPPoETag)

from pfrps.bng import client as c
from pfrps.bng.client import ClientConfig, Engine, VlanLayout, parse_vlan, subscriber_mac

AC = bytes.fromhex("5254000000aa")
SID = 0x0123
COOKIE = b"C" * 16


def m(b: bytes) -> str:
    return b.hex(":")


class Rand:
    """Deterministic random bytes: call k (1, 2, ...) returns bytes([k]) * n."""

    def __init__(self) -> None:
        self.k = 0

    def __call__(self, n: int) -> bytes:
        self.k += 1
        return bytes([self.k]) * n


def engine(**kw) -> Engine:
    cfg = ClientConfig(interface="x", **kw)
    e = Engine(cfg, Rand())
    e.now = 100.0
    return e


def take(e: Engine) -> list[bytes]:
    out, e.out = e.out, []
    return out


# -- scapy-built server frames -----------------------------------------------------------------
def s_disc(sub, code, tags, sid=0):
    return bytes(Ether(dst=m(sub.mac), src=m(AC), type=0x8863) / PPPoED(code=code, sessionid=sid)
                 / PPPoED_Tags(tag_list=[PPPoETag(tag_type=t, tag_value=v) for t, v in tags]))


def s_ses(sub, layer):
    return bytes(Ether(dst=m(sub.mac), src=m(AC), type=0x8864) / PPPoE(sessionid=SID) / layer)


def c_ses(sub, layer):
    """What the client must send on the session."""
    return bytes(Ether(dst=m(AC), src=m(sub.mac), type=0x8864) / PPPoE(sessionid=SID) / layer)


def lcp_conf(code, ident, opts):
    return PPP(proto=0xC021) / PPP_LCP_Configure(code=code, id=ident, options=opts)


def ipcp(code, ident, opts):
    return PPP(proto=0x8021) / PPP_IPCP(code=code, id=ident, options=opts)


def to_session(e: Engine, **kw):
    """Start subscriber 0 and take it through discovery; returns the Sub and the LCP Configure-Request."""
    sub = e.start_subscriber(0)
    take(e)
    e.receive(s_disc(sub, 0x07, [(0x0102, b"bng"), (0x0101, b""), (0x0104, COOKIE), (0x0103, sub.host_uniq)]))
    take(e)
    e.receive(s_disc(sub, 0x65, [(0x0101, b""), (0x0103, sub.host_uniq)], sid=SID))
    return sub, take(e)


def open_lcp(e: Engine, sub, auth_opt):
    """Server Configure-Request (MRU 1492, auth, magic) and Configure-Ack of ours; returns the
    frames the client sent in reply to each."""
    e.receive(s_ses(sub, lcp_conf(1, 0x41, [PPP_LCP_MRU_Option(max_recv_unit=1492), auth_opt,
                                            PPP_LCP_Magic_Number_Option(magic_number=0xAABBCCDD)])))
    ack = take(e)
    e.receive(s_ses(sub, lcp_conf(2, sub.lcp.ident, [PPP_LCP_MRU_Option(max_recv_unit=1492),
                                                     PPP_LCP_Magic_Number_Option(magic_number=sub.magic)])))
    return ack, take(e)


PAP_OPT = PPP_LCP_Auth_Protocol_Option(auth_protocol=0xC023)
CHAP_OPT = PPP_LCP_Auth_Protocol_Option(auth_protocol=0xC223, algorithm=5)


# =============================================================================================
# Frame builders against scapy's dissection
# =============================================================================================
def test_padi_and_padr_frames_dissect_as_pppoed():
    e = engine()
    sub = e.start_subscriber(0)
    (padi,) = take(e)
    assert padi == bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=m(sub.mac), type=0x8863) / PPPoED(code=0x09)
                         / PPPoED_Tags(tag_list=[PPPoETag(tag_type=0x0101, tag_value=b""),
                                                 PPPoETag(tag_type=0x0103, tag_value=sub.host_uniq)]))
    d = Ether(padi)
    assert d[PPPoED].code == 0x09 and d[PPPoED].len == 4 + 4 + 8
    assert sub.host_uniq == b"\x01" * 4 + struct.pack("!I", 1)  # nonce (first random call) + index
    # PADR echoes AC-Cookie and Relay-Session-Id (RFC 2516 5.3)
    e.receive(s_disc(sub, 0x07, [(0x0102, b"bng"), (0x0101, b""), (0x0104, COOKIE), (0x0103, sub.host_uniq),
                                 (0x0110, b"relay")]))
    (padr,) = take(e)
    d = Ether(padr)
    assert d.dst == m(AC) and d[PPPoED].code == 0x19 and d[PPPoED].sessionid == 0
    assert [(t.tag_type, t.tag_value) for t in d[PPPoED_Tags].tag_list] == [
        (0x0101, b""), (0x0103, sub.host_uniq), (0x0104, COOKIE), (0x0110, b"relay")]


def test_qinq_and_dot1q_tags_dissect():
    e = engine(vlan=parse_vlan("qinq:0x88a8:10-11:100-102"), count=8)
    subs = [e.start_subscriber(k) for k in range(4)]
    frames = take(e)
    assert [s.vids for s in subs] == [(10, 100), (10, 101), (10, 102), (11, 100)]
    d = Ether(frames[3])
    assert d.type == 0x88A8 and d[Dot1AD].vlan == 11 and d[Dot1Q].vlan == 100 and d[PPPoED].code == 0x09
    e = engine(vlan=parse_vlan("qinq:0x8100:7:9"))
    e.start_subscriber(0)
    d = Ether(take(e)[0])
    assert d.type == 0x8100 and d[Dot1Q].vlan == 7 and d[Dot1Q].payload.vlan == 9
    e = engine(vlan=parse_vlan("q:42"))
    e.start_subscriber(0)
    d = Ether(take(e)[0])
    assert d.type == 0x8100 and d[Dot1Q].vlan == 42 and d[Dot1Q].type == 0x8863


def test_lcp_configure_request_dissects():
    e = engine()
    sub, (req,) = to_session(e)
    assert sub.magic == 0x02020202  # second random call
    d = Ether(req)
    assert d[PPPoE].sessionid == SID and d[PPPoE].len == 2 + 4 + 4 + 6 and d[PPP].proto == 0xC021
    lcp = d[PPP_LCP_Configure]
    assert lcp.code == 1 and lcp.id == sub.lcp.ident
    assert lcp.options[0].max_recv_unit == 1492 and lcp.options[1].magic_number == 0x02020202
    assert req == c_ses(sub, lcp_conf(1, sub.lcp.ident, [PPP_LCP_MRU_Option(max_recv_unit=1492),
                                                         PPP_LCP_Magic_Number_Option(magic_number=0x02020202)]))


def test_pap_request_dissects():
    pkt = c.build_session(AC, b"\x02" * 6, SID, 0xC023, c.pap_request(7, b"user5", b"pass5"))
    d = Ether(pkt)
    r = d[PPP_PAP_Request]
    assert (r.code, r.id, r.username, r.password, r.len) == (1, 7, b"user5", b"pass5", 4 + 1 + 5 + 1 + 5)


def test_chap_response_dissects():
    pkt = c.build_session(AC, b"\x02" * 6, SID, 0xC223, c.chap_response(9, b"secret", b"\x11" * 16, b"alice"))
    r = Ether(pkt)[PPP_CHAP_ChallengeResponse]
    assert (r.code, r.id, r.value_size, r.optional_name) == (2, 9, 16, b"alice")
    assert r.value == hashlib.md5(b"\x09secret" + b"\x11" * 16).digest()


def test_ipcp_request_dissects():
    info = c.cp_packet(1, 3, c.encode_options([(3, bytes(4)), (129, bytes(4)), (131, bytes(4))]))
    d = Ether(c.build_session(AC, b"\x02" * 6, SID, 0x8021, info))[PPP_IPCP]
    assert d.code == 1 and d.id == 3
    assert [type(o) for o in d.options] == [PPP_IPCP_Option_IPAddress, PPP_IPCP_Option_DNS1, PPP_IPCP_Option_DNS2]
    assert d.options[0].data == "0.0.0.0"


def test_router_solicitation_and_udp_checksums():
    ifid = bytes.fromhex("0211223344556677")
    rs = IPv6(c.router_solicitation(ifid))
    assert rs.src == "fe80::211:2233:4455:6677" and rs.dst == "ff02::2" and rs.hlim == 255
    assert ICMPv6ND_RS in rs
    ck = rs[ICMPv6ND_RS].cksum
    del rs[ICMPv6ND_RS].cksum
    assert IPv6(bytes(rs))[ICMPv6ND_RS].cksum == ck
    p4 = IP(c.ipv4_udp(bytes([100, 64, 0, 1]), bytes([198, 51, 100, 1]), 100))
    assert p4.len == 100 and p4[UDP].len == 80
    ck4 = p4.chksum
    del p4.chksum
    assert IP(bytes(p4)).chksum == ck4
    src6 = ipaddress.IPv6Address("2001:db8:1::1").packed
    p6 = IPv6(c.ipv6_udp(src6, ipaddress.IPv6Address("2001:db8::1").packed, 120))
    assert p6.plen == 80
    ck6 = p6[UDP].chksum
    del p6[UDP].chksum
    assert IPv6(bytes(p6))[UDP].chksum == ck6


def test_parse_router_advertisement():
    from scapy.layers.inet6 import ICMPv6ND_RA, ICMPv6NDOptPrefixInfo, ICMPv6NDOptRDNSS
    ra = bytes(IPv6(src="fe80::1", dst="ff02::1", hlim=255) / ICMPv6ND_RA()
               / ICMPv6NDOptPrefixInfo(prefix="2001:db8:5:6::", prefixlen=64, L=1, A=1)
               / ICMPv6NDOptRDNSS(dns=["2001:db8::53"]))
    prefix, plen, dns, router = c.parse_router_advertisement(ra)
    assert ipaddress.IPv6Address(prefix) == ipaddress.IPv6Address("2001:db8:5:6::") and plen == 64
    assert dns == [ipaddress.IPv6Address("2001:db8::53").packed]
    bad = bytearray(ra)
    bad[-1] ^= 1
    assert c.parse_router_advertisement(bytes(bad)) is None  # checksum
    assert c.parse_router_advertisement(bytes(IPv6(src="fe80::1", dst="ff02::1", hlim=64) / ICMPv6ND_RA()
                                              / ICMPv6NDOptPrefixInfo(prefix="2001:db8::"))) is None


def test_subscriber_macs_are_unique_local_unicast():
    macs = {subscriber_mac(7, i) for i in range(20000)}
    assert len(macs) == 20000
    assert all(x[0] == 0x02 and x[1] == 7 for x in macs)
    assert subscriber_mac(1, 5) != subscriber_mac(2, 5)


def test_parse_vlan_errors():
    from pfrps.errors import UsageError
    assert parse_vlan("none") == VlanLayout()
    assert parse_vlan("q:100-199").vids(150) == (150,)
    for bad in ("q", "q:0", "q:5000", "q:9-3", "qinq:0x9100:1:2", "qinq:0x88a8:1", "vlan:3", "q:x"):
        with pytest.raises(UsageError):
            parse_vlan(bad)


# =============================================================================================
# The state machine with canned server frames
# =============================================================================================
def test_full_pap_session_exact_frames():
    e = engine(dns=True)
    sub, (lcp_req,) = to_session(e)
    assert e.in_setup == 1 and sub.state == "session"
    ack, after_ack = open_lcp(e, sub, PAP_OPT)
    # our Configure-Ack copies the server's options exactly
    assert ack == [c_ses(sub, lcp_conf(2, 0x41, [PPP_LCP_MRU_Option(max_recv_unit=1492), PAP_OPT,
                                                 PPP_LCP_Magic_Number_Option(magic_number=0xAABBCCDD)]))]
    assert sub.lcp.state == c.OPENED
    # LCP Opened both ways -> PAP Authenticate-Request
    assert after_ack == [c_ses(sub, PPP(proto=0xC023) / PPP_PAP_Request(id=sub.auth_id, username=b"user1",
                                                                          password=b"pass1"))]
    # PAP Ack -> IPCP Configure-Request 0.0.0.0 + DNS
    e.receive(s_ses(sub, PPP(proto=0xC023) / PPP_PAP_Response(code=2, id=sub.auth_id, message="ok")))
    (ipcp_req,) = take(e)
    zero = [PPP_IPCP_Option_IPAddress(data="0.0.0.0"), PPP_IPCP_Option_DNS1(data="0.0.0.0"),
            PPP_IPCP_Option_DNS2(data="0.0.0.0")]
    assert ipcp_req == c_ses(sub, ipcp(1, sub.ipcp.ident, zero))
    # the server's IPCP request is acked as is
    e.receive(s_ses(sub, ipcp(1, 0x51, [PPP_IPCP_Option_IPAddress(data="100.64.0.1")])))
    assert take(e) == [c_ses(sub, ipcp(2, 0x51, [PPP_IPCP_Option_IPAddress(data="100.64.0.1")]))]
    # Nak with the address and DNS -> a new request with them
    first_id = sub.ipcp.ident
    e.receive(s_ses(sub, ipcp(3, first_id, [PPP_IPCP_Option_IPAddress(data="100.64.7.9"),
                                            PPP_IPCP_Option_DNS1(data="192.0.2.53"),
                                            PPP_IPCP_Option_DNS2(data="192.0.2.54")])))
    (req2,) = take(e)
    granted = [PPP_IPCP_Option_IPAddress(data="100.64.7.9"), PPP_IPCP_Option_DNS1(data="192.0.2.53"),
               PPP_IPCP_Option_DNS2(data="192.0.2.54")]
    assert sub.ipcp.ident != first_id
    assert req2 == c_ses(sub, ipcp(1, sub.ipcp.ident, granted))
    e.now += 0.25
    e.receive(s_ses(sub, ipcp(2, sub.ipcp.ident, granted)))
    assert take(e) == []
    assert sub.state == "up" and e.up == 1 and e.in_setup == 0
    rec = e.record(sub)
    assert (rec.ipv4, rec.dns, rec.peer_ipv4, rec.session_id, rec.ac_mac, rec.user, rec.setup_seconds) == (
        "100.64.7.9", ["192.0.2.53", "192.0.2.54"], "100.64.0.1", SID, m(AC), "user1", 0.25)
    # keepalive: Echo-Reply with our magic and the request's data
    e.receive(s_ses(sub, PPP(proto=0xC021) / PPP_LCP_Echo(code=9, id=0x77, magic_number=0xAABBCCDD, data=b"hi")))
    assert take(e) == [c_ses(sub, PPP(proto=0xC021) / PPP_LCP_Echo(code=10, id=0x77, magic_number=sub.magic,
                                                                   data=b"hi"))]
    # our teardown: Terminate-Request, Terminate-Ack -> PADT
    assert e.terminate(sub)
    (treq,) = take(e)
    assert treq == c_ses(sub, PPP(proto=0xC021) / PPP_LCP_Terminate(code=5, id=sub.lcp.ident, data=b"User request"))
    e.receive(s_ses(sub, PPP(proto=0xC021) / PPP_LCP_Terminate(code=6, id=sub.lcp.ident)))
    assert take(e) == [bytes(Ether(dst=m(AC), src=m(sub.mac), type=0x8863) / PPPoED(code=0xA7, sessionid=SID))]
    assert sub.state == "terminated" and e.closing == 0 and e.up == 0


def test_chap_session_and_auth_protocol_nak():
    e = engine(auth="chap", user="u{i}", password="s{i}")
    sub, _ = to_session(e)
    # the server asks PAP: Nak with CHAP-MD5 (RFC 1661 6.2)
    e.receive(s_ses(sub, lcp_conf(1, 0x41, [PAP_OPT, PPP_LCP_Magic_Number_Option(magic_number=5)])))
    assert take(e) == [c_ses(sub, lcp_conf(3, 0x41, [CHAP_OPT]))]
    ack, after = open_lcp(e, sub, CHAP_OPT)
    assert ack[0] == c_ses(sub, lcp_conf(2, 0x41, [PPP_LCP_MRU_Option(max_recv_unit=1492), CHAP_OPT,
                                                   PPP_LCP_Magic_Number_Option(magic_number=0xAABBCCDD)]))
    assert after == []  # CHAP: the client waits for the Challenge
    chal = b"\x5a" * 16
    e.receive(s_ses(sub, PPP(proto=0xC223) / PPP_CHAP_ChallengeResponse(code=1, id=0x33, value=chal,
                                                                         optional_name=b"bng")))
    (resp,) = take(e)
    want = hashlib.md5(b"\x33" + b"s1" + chal).digest()
    assert resp == c_ses(sub, PPP(proto=0xC223) / PPP_CHAP_ChallengeResponse(code=2, id=0x33, value=want,
                                                                              optional_name=b"u1"))
    e.receive(s_ses(sub, PPP(proto=0xC223) / PPP_CHAP(code=3, id=0x33, data=b"welcome")))
    (ipcp_req,) = take(e)
    assert Ether(ipcp_req)[PPP_IPCP].options[0].data == "0.0.0.0"
    assert sub.phase == "ncp"


def test_chap_failure_records_message_and_closes():
    e = engine(auth="chap")
    sub, _ = to_session(e)
    open_lcp(e, sub, CHAP_OPT)
    e.receive(s_ses(sub, PPP(proto=0xC223) / PPP_CHAP_ChallengeResponse(code=1, id=1, value=b"x" * 8)))
    take(e)
    e.receive(s_ses(sub, PPP(proto=0xC223) / PPP_CHAP(code=4, id=1, data=b"bad secret")))
    (treq,) = take(e)
    assert Ether(treq)[PPP_LCP_Terminate].code == 5
    assert (sub.state, sub.failure, sub.detail) == ("failed", "auth-failed", "CHAP Failure: bad secret")
    assert e.failed == 1 and e.in_setup == 0
    e.receive(s_ses(sub, PPP(proto=0xC021) / PPP_LCP_Terminate(code=6, id=sub.lcp.ident)))
    assert Ether(take(e)[0])[PPPoED].code == 0xA7


def test_ipcp_reject_of_secondary_dns_keeps_primary():
    e = engine(dns=True)
    sub, _ = to_session(e)
    open_lcp(e, sub, PAP_OPT)
    e.receive(s_ses(sub, PPP(proto=0xC023) / PPP_PAP_Response(code=2, id=sub.auth_id)))
    take(e)
    e.receive(s_ses(sub, ipcp(4, sub.ipcp.ident, [PPP_IPCP_Option_DNS2(data="0.0.0.0")])))
    (req,) = take(e)
    assert req == c_ses(sub, ipcp(1, sub.ipcp.ident, [PPP_IPCP_Option_IPAddress(data="0.0.0.0"),
                                                      PPP_IPCP_Option_DNS1(data="0.0.0.0")]))
    granted = [PPP_IPCP_Option_IPAddress(data="100.64.0.2"), PPP_IPCP_Option_DNS1(data="192.0.2.53")]
    e.receive(s_ses(sub, ipcp(3, sub.ipcp.ident, granted)))
    (req,) = take(e)
    assert req == c_ses(sub, ipcp(1, sub.ipcp.ident, granted))
    e.receive(s_ses(sub, ipcp(2, sub.ipcp.ident, granted)))
    e.receive(s_ses(sub, ipcp(1, 1, [PPP_IPCP_Option_IPAddress(data="100.64.0.1")])))
    take(e)
    assert sub.state == "up" and e.record(sub).dns == ["192.0.2.53"]


def test_pap_nak_fails_with_message():
    e = engine()
    sub, _ = to_session(e)
    open_lcp(e, sub, PAP_OPT)
    e.receive(s_ses(sub, PPP(proto=0xC023) / PPP_PAP_Response(code=3, id=sub.auth_id, message="no such user")))
    assert (sub.failure, sub.detail) == ("auth-failed", "PAP Authenticate-Nak: no such user")


def test_server_terminate_after_up_is_acked():
    e = engine()
    sub, _ = to_session(e)
    open_lcp(e, sub, PAP_OPT)
    e.receive(s_ses(sub, PPP(proto=0xC023) / PPP_PAP_Response(code=2, id=sub.auth_id)))
    take(e)
    e.receive(s_ses(sub, ipcp(1, 1, [PPP_IPCP_Option_IPAddress(data="100.64.0.1")])))
    e.receive(s_ses(sub, ipcp(3, sub.ipcp.ident, [PPP_IPCP_Option_IPAddress(data="100.64.0.2")])))
    e.receive(s_ses(sub, ipcp(2, sub.ipcp.ident, [PPP_IPCP_Option_IPAddress(data="100.64.0.2")])))
    take(e)
    assert sub.state == "up"
    e.receive(s_ses(sub, PPP(proto=0xC021) / PPP_LCP_Terminate(code=5, id=0x99, data=b"admin")))
    assert take(e) == [c_ses(sub, PPP(proto=0xC021) / PPP_LCP_Terminate(code=6, id=0x99))]
    assert (sub.state, sub.failure, sub.detail) == ("down", "terminated-by-server", "LCP Terminate-Request: admin")
    assert e.up == 0 and e.failed == 0
    # the server's PADT ends it; nothing more is sent
    e.receive(s_disc(sub, 0xA7, [], sid=SID))
    e.now += 10
    e.tick()
    assert take(e) == []


def test_server_terminate_without_padt_gets_our_padt_after_restart_timer():
    e = engine()
    sub, _ = to_session(e)
    open_lcp(e, sub, PAP_OPT)
    e.receive(s_ses(sub, PPP(proto=0xC021) / PPP_LCP_Terminate(code=5, id=3)))
    assert len(take(e)) == 2  # Terminate-Ack, then PADT (the set-up failed)
    assert (sub.state, sub.failure) == ("failed", "terminated-by-server")
    assert "during auth" in sub.detail


def test_padt_during_setup_and_pads_error():
    e = engine(count=2)
    sub, _ = to_session(e)
    e.receive(s_disc(sub, 0xA7, [(0x0203, b"bye")], sid=SID))
    assert (sub.state, sub.failure, sub.detail) == ("failed", "padt", "PADT from the server: bye during lcp")
    assert take(e) == []
    sub2 = e.start_subscriber(1)
    take(e)
    e.receive(s_disc(sub2, 0x07, [(0x0102, b"bng"), (0x0101, b""), (0x0103, sub2.host_uniq)]))
    take(e)
    e.receive(s_disc(sub2, 0x65, [(0x0101, b""), (0x0202, b"out of sessions"), (0x0103, sub2.host_uniq)]))
    assert (sub2.failure, sub2.detail) == ("pads-error", "AC-System-Error: out of sessions")
    assert e.failed == 2 and e.in_setup == 0


def test_ac_name_selection_and_foreign_host_uniq():
    e = engine(ac_name=b"right")
    sub = e.start_subscriber(0)
    take(e)
    e.receive(s_disc(sub, 0x07, [(0x0102, b"wrong"), (0x0101, b""), (0x0103, sub.host_uniq)]))
    e.receive(s_disc(sub, 0x07, [(0x0102, b"right"), (0x0101, b""), (0x0103, b"other")]))
    assert take(e) == []
    e.receive(s_disc(sub, 0x07, [(0x0102, b"right"), (0x0101, b""), (0x0103, sub.host_uniq)]))
    assert Ether(take(e)[0])[PPPoED].code == 0x19 and sub.ac_name == b"right"


def test_retransmission_and_timeouts():
    e = engine(discovery_timeout=1.0, discovery_tries=3)
    sub = e.start_subscriber(0)
    take(e)
    for dt, n in ((1.0, 1), (2.0, 1), (4.0, 0)):
        e.now += dt
        e.tick()
        assert len(take(e)) == n
    assert (sub.failure, sub.detail) == ("timeout:padi", "no PADO after 3 PADIs")
    # LCP: max-configure requests then failure with PADT
    e = engine(max_configure=3, restart=1.0)
    sub, _ = to_session(e)
    e.now += 1.0
    e.tick()
    e.now += 1.0
    e.tick()
    assert [Ether(f)[PPP_LCP_Configure].code for f in take(e)] == [1, 1]
    e.now += 1.0
    e.tick()
    (padt,) = take(e)
    assert Ether(padt)[PPPoED].code == 0xA7 and sub.failure == "timeout:lcp"


def test_lcp_mru_nak_and_reject_handling():
    e = engine()
    sub, _ = to_session(e)
    # server asks MRU 1500 and an unknown option: reject first (RFC 1661: Reject before Nak)
    e.receive(s_ses(sub, lcp_conf(1, 5, [PPP_LCP_MRU_Option(max_recv_unit=1500)])))
    assert take(e) == [c_ses(sub, lcp_conf(3, 5, [PPP_LCP_MRU_Option(max_recv_unit=1492)]))]
    e.receive(s_ses(sub, PPP(proto=0xC021) / (b"\x01\x06\x00\x08\x07\x02\x08\x02")))  # PFC, ACFC
    assert take(e) == [c_ses(sub, PPP(proto=0xC021) / b"\x04\x06\x00\x08\x07\x02\x08\x02")]
    # our request Nak'd to a smaller MRU, then our magic rejected
    e.receive(s_ses(sub, lcp_conf(3, sub.lcp.ident, [PPP_LCP_MRU_Option(max_recv_unit=1400)])))
    (req,) = take(e)
    assert Ether(req)[PPP_LCP_Configure].options[0].max_recv_unit == 1400
    e.receive(s_ses(sub, lcp_conf(4, sub.lcp.ident, [PPP_LCP_Magic_Number_Option(magic_number=sub.magic)])))
    (req,) = take(e)
    assert [type(o) for o in Ether(req)[PPP_LCP_Configure].options] == [PPP_LCP_MRU_Option]


def test_ipv6cp_nak_and_router_advertisement():
    from scapy.layers.inet6 import ICMPv6ND_RA, ICMPv6NDOptPrefixInfo
    e = engine(ipv6=True)
    sub, _ = to_session(e)
    open_lcp(e, sub, PAP_OPT)
    e.receive(s_ses(sub, PPP(proto=0xC023) / PPP_PAP_Response(code=2, id=sub.auth_id)))
    frames = take(e)
    assert [Ether(f)[PPP].proto for f in frames] == [0x8021, 0x8057]
    v6req = bytes(Ether(frames[1])[PPP].payload)
    assert v6req[0] == 1 and v6req[4:6] == b"\x01\x0a" and v6req[6:14] == sub.ifid
    ipc = [PPP_IPCP_Option_IPAddress(data="100.64.0.9")]
    e.receive(s_ses(sub, ipcp(3, sub.ipcp.ident, ipc)))
    e.receive(s_ses(sub, ipcp(2, sub.ipcp.ident, ipc)))
    e.receive(s_ses(sub, ipcp(1, 9, [PPP_IPCP_Option_IPAddress(data="100.64.0.1")])))
    take(e)
    assert sub.state == "session"  # IPv6 not done yet
    nak_ifid = bytes.fromhex("1122334455667788")
    e.receive(s_ses(sub, PPP(proto=0x8057) / (bytes([3, sub.v6cp.ident, 0, 14, 1, 10]) + nak_ifid)))
    (req,) = take(e)
    assert bytes(Ether(req)[PPP].payload)[6:14] == nak_ifid and sub.ifid == nak_ifid
    e.receive(s_ses(sub, PPP(proto=0x8057) / (bytes([2, sub.v6cp.ident, 0, 14, 1, 10]) + nak_ifid)))
    peer = bytes.fromhex("0000000000000001")
    e.receive(s_ses(sub, PPP(proto=0x8057) / (bytes([1, 0x21, 0, 14, 1, 10]) + peer)))
    ack, rs = take(e)
    assert bytes(Ether(ack)[PPP].payload) == bytes([2, 0x21, 0, 14, 1, 10]) + peer
    d = Ether(rs)
    assert d[PPP].proto == 0x57 and d[IPv6].src == "fe80::1122:3344:5566:7788" and ICMPv6ND_RS in d
    ra = IPv6(src="fe80::1", dst="fe80::1122:3344:5566:7788", hlim=255) / ICMPv6ND_RA() / ICMPv6NDOptPrefixInfo(
        prefix="2001:db8:0:42::", prefixlen=64)
    e.receive(s_ses(sub, PPP(proto=0x57) / ra))
    assert sub.state == "up"
    rec = e.record(sub)
    assert (rec.ipv6_prefix, rec.ipv6, rec.peer_ifid) == ("2001:db8:0:42::/64", "2001:db8:0:42:1122:3344:5566:7788",
                                                          "0000000000000001")


def test_vlan_mismatch_and_stripped_outer_tag():
    e = engine(vlan=parse_vlan("qinq:0x88a8:10:20"))
    sub = e.start_subscriber(0)
    take(e)
    pado = bytes(Ether(dst=m(sub.mac), src=m(AC)) / Dot1AD(vlan=10) / Dot1Q(vlan=20, type=0x8863)
                 / PPPoED(code=0x07) / PPPoED_Tags(tag_list=[PPPoETag(tag_type=0x0102, tag_value=b"a"),
                                                             PPPoETag(tag_type=0x0101, tag_value=b""),
                                                             PPPoETag(tag_type=0x0103, tag_value=sub.host_uniq)]))
    wrong = pado.replace(b"\x81\x00\x00\x14", b"\x81\x00\x00\x15")
    e.receive(wrong)
    assert e.stats["vlan_mismatch"] == 1 and take(e) == []
    # the kernel stripped the outer tag: it comes as metadata
    e.receive(pado[:12] + pado[16:], vlan_tci=10, vlan_tpid=0x88A8)
    (padr,) = take(e)
    d = Ether(padr)
    assert d[Dot1AD].vlan == 10 and d[Dot1Q].vlan == 20 and d[PPPoED].code == 0x19


# =============================================================================================
# End to end against a throwaway in-memory fake server (not a BNG: just enough to answer)
# =============================================================================================
class FakeServer:
    """Answers every client frame at once: PADO/PADS, LCP (asks PAP or CHAP), auth, IPCP with a Nak
    of the address, IPv6CP, an RA after the RS, echo; counts data frames per session."""

    def __init__(self, auth="pap", drop_every=0):
        self.auth = auth
        self.sessions = {}     # sid -> dict
        self.next_sid = 1
        self.drop_every = drop_every
        self.seen = 0
        self.data = {}

    def hdr(self, dst, vlan, et):
        return dst + AC + vlan + struct.pack("!H", et)

    def ses(self, s, proto, payload):
        return self.hdr(s["mac"], s["vlan"], 0x8864) + struct.pack("!BBHHH", 0x11, 0, s["sid"], len(payload) + 2,
                                                                   proto) + payload

    def handle(self, f: bytes) -> list[bytes]:
        self.seen += 1
        if self.drop_every and self.seen % self.drop_every == 0:
            return []
        off = 12
        while f[off:off + 2] in (b"\x81\x00", b"\x88\xa8"):
            off += 4
        vlan, et = f[12:off], struct.unpack_from("!H", f, off)[0]
        off += 2
        _vt, code, sid, ln = struct.unpack_from("!BBHH", f, off)
        body = f[off + 6:off + 6 + ln]
        mac = f[6:12]
        if et == 0x8863:
            tags = []
            o = 0
            while o < len(body):
                t, n = struct.unpack_from("!HH", body, o)
                tags.append((t, body[o + 4:o + 4 + n]))
                o += 4 + n
            td = dict(tags)

            def disc(code2, sid2, tg):
                b = b"".join(struct.pack("!HH", t, len(v)) + v for t, v in tg)
                return self.hdr(mac, vlan, 0x8863) + struct.pack("!BBHH", 0x11, code2, sid2, len(b)) + b
            if code == 0x09:
                return [disc(0x07, 0, [(0x0102, b"fake"), (0x0101, b""), (0x0104, mac[::-1]), (0x0103, td[0x0103])])]
            if code == 0x19:
                assert td[0x0104] == mac[::-1]
                s = dict(sid=self.next_sid, mac=mac, vlan=vlan, lcp_id=0)
                self.next_sid += 1
                self.sessions[s["sid"]] = s
                self.data[s["sid"]] = 0
                lcp_opts = b"\x01\x04\x05\xd4" + (b"\x03\x04\xc0\x23" if self.auth == "pap" else b"\x03\x05\xc2\x23\x05") \
                    + b"\x05\x06\x12\x34\x56\x78"
                return [disc(0x65, s["sid"], [(0x0101, b""), (0x0103, td[0x0103])]),
                        self.ses(s, 0xC021, c.cp_packet(1, 1, lcp_opts))]
            if code == 0xA7:
                self.sessions.pop(sid, None)
            return []
        s = self.sessions.get(sid)
        if s is None:
            return []
        proto = struct.unpack_from("!H", body)[0]
        info = body[2:]
        if proto in (0x0021, 0x0057) and not (proto == 0x0057 and info[6] == 58):
            self.data[sid] += 1
            return [self.ses(s, proto, info)]  # echo the data back downstream
        code, ident = info[0], info[1]
        data = info[4:]
        if proto == 0xC021:
            if code == 1:
                return [self.ses(s, 0xC021, c.cp_packet(2, ident, data))]
            if code == 2:
                if self.auth == "chap":
                    s["chal"] = bytes(range(16))
                    return [self.ses(s, 0xC223, c.cp_packet(1, 7, b"\x10" + s["chal"] + b"fake"))]
                return []
            if code == 5:
                self.sessions.pop(sid)
                return [self.ses(s, 0xC021, c.cp_packet(6, ident))]
            return []
        if proto == 0xC023:
            user = data[1:1 + data[0]]
            pw = data[2 + data[0]:2 + data[0] + data[1 + data[0]]]
            ok = pw == b"pass" + user[4:]
            s["i"] = int(user[4:])
            out = [self.ses(s, 0xC023, c.cp_packet(2 if ok else 3, ident, b"\x02ok" if ok else b"\x03bad"))]
            if ok:
                out.append(self.ses(s, 0x8021, c.cp_packet(1, 1, b"\x03\x06\x64\x40\x00\x01")))
            return out
        if proto == 0xC223:
            name = data[17:]
            s["i"] = int(name[4:])
            ok = data[1:17] == hashlib.md5(bytes([ident]) + b"pass" + name[4:] + s["chal"]).digest()
            out = [self.ses(s, 0xC223, c.cp_packet(3 if ok else 4, ident, b"hi"))]
            if ok:
                out.append(self.ses(s, 0x8021, c.cp_packet(1, 1, b"\x03\x06\x64\x40\x00\x01")))
            return out
        if proto == 0x8021:
            if code == 1:
                if data[2:6] == b"\0\0\0\0":
                    return [self.ses(s, 0x8021, c.cp_packet(3, ident, b"\x03\x06" + struct.pack("!I", 0x64400000 + s["sid"] + 1)))]
                return [self.ses(s, 0x8021, c.cp_packet(2, ident, data))]
            return []
        if proto == 0x8057:
            if code == 1:
                return [self.ses(s, 0x8057, c.cp_packet(2, ident, data)),
                        self.ses(s, 0x8057, c.cp_packet(1, 3, b"\x01\x0a" + b"\x00" * 7 + b"\x01"))]
            return []
        if proto == 0x0057:  # the RS
            from scapy.layers.inet6 import ICMPv6ND_RA, ICMPv6NDOptPrefixInfo
            ra = bytes(IPv6(src="fe80::1", dst="ff02::1", hlim=255) / ICMPv6ND_RA() / ICMPv6NDOptPrefixInfo(
                prefix=f"2001:db8:{sid:x}::", prefixlen=64))
            return [self.ses(s, 0x0057, ra)]
        return []


class MemoryTransport:
    def __init__(self, server):
        self.server = server
        self.queue = []
        self.sent = 0

    def send(self, frames):
        self.sent += len(frames)
        for f in frames:
            self.queue.extend(self.server.handle(bytes(f)))

    def poll(self, handler, budget=4096):
        q, self.queue = self.queue, []
        for f in q:
            handler(f, None, None)
        return len(q)

    def wait(self, timeout):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("auth,ipv6,vlan", [("pap", False, "none"), ("chap", True, "qinq:0x88a8:5-6:100-149"),
                                             ("pap", True, "q:7")])
def test_end_to_end_with_fake_server(auth, ipv6, vlan):
    srv = FakeServer(auth)
    cfg = ClientConfig(interface="mem", count=300, window=64, auth=auth, ipv6=ipv6, vlan=parse_vlan(vlan))
    progress = []
    cl = c.Client(cfg, transport=MemoryTransport(srv), progress=progress.append)
    res = cl.run()
    assert (res.up, res.failed) == (300, 0), res.failed_by_reason
    assert len(srv.sessions) == 300 and res.setup_rate > 0
    recs = {r.index: r for r in res.records}
    assert recs[1].ipv4 == f"100.64.0.{recs[1].session_id + 1}"
    if ipv6:
        assert recs[5].ipv6_prefix == f"2001:db8:{recs[5].session_id:x}::/64"
    tr = cl.send_traffic(3, 100, settle=0.01)
    fams = 2 if ipv6 else 1
    assert tr.sent_packets == 300 * 3 * fams and tr.rx_packets == 300 * 3 * fams
    assert all(srv.data[r.session_id] == 3 * fams for r in res.records)
    assert all(v["rx_packets"] == 3 * fams for v in tr.per_session.values())
    down = cl.terminate_all()
    assert down.terminated == 300 and down.no_terminate_ack == 0 and not srv.sessions


def test_end_to_end_with_losses_and_rate():
    srv = FakeServer("pap", drop_every=7)
    cfg = ClientConfig(interface="mem", count=60, window=20, rate=2000, restart=0.05, discovery_timeout=0.05)
    cl = c.Client(cfg, transport=MemoryTransport(srv))
    res = cl.run()
    assert res.up == 60, res.failed_by_reason
    assert res.stats["padi_retx"] + res.stats["padr_retx"] + res.stats["lcp_retx"] + res.stats["auth_retx"] \
        + res.stats["ncp_retx"] > 0


def test_engine_cpu_cost_per_session_in_memory():
    """Client-side protocol work only (the fake server's time excluded): well under 100 us/session."""
    import time
    srv = FakeServer("pap")
    frames_in = []

    class Timed(MemoryTransport):
        def send(self, frames):
            for f in frames:
                frames_in.extend(self.server.handle(f))

        def poll(self, handler, budget=4096):
            q = frames_in[:]
            frames_in.clear()
            for f in q:
                handler(f, None, None)
            return len(q)
    cfg = ClientConfig(interface="mem", count=2000, window=500)
    cl = c.Client(cfg, transport=Timed(srv))
    t0 = time.process_time()
    res = cl.run()
    total = time.process_time() - t0
    assert res.up == 2000
    # Reported, not asserted hard (shared CPUs): total includes the fake server.
    print(f"client+fake server: {total * 1e6 / 2000:.1f} us/session")


def test_stop_during_setup_closes_half_open_sessions():
    """Ctrl-C (Client.stop) in the middle of set-up: terminate_all ends the up sessions and gives the
    half-open ones a Terminate-Request / PADT; nothing is left on the server."""
    srv = FakeServer("pap")
    orig = srv.handle

    def no_ipcp_ack(f):  # IPCP never completes: sessions stay in set-up
        out = orig(f)
        return [r for r in out if not (r[12:14] == b"\x88\x64" and r[20:22] == b"\x80\x21" and r[22] == 3)]
    srv.handle = no_ipcp_ack
    cfg = ClientConfig(interface="mem", count=50, window=10)
    cl = c.Client(cfg, transport=MemoryTransport(srv))
    calls = []

    def progress(p):
        calls.append(p)
        cl.stop = True
    cl.progress = progress
    res = cl.run()
    assert res.interrupted and res.up == 0
    cl.stop = False
    down = cl.terminate_all()
    assert down.terminated == 0
    recs = cl.records()
    assert {r.state for r in recs} == {"failed"} and {r.failure for r in recs} == {"interrupted"}
    assert not srv.sessions


def test_lcp_renegotiation_after_up_goes_back_to_setup():
    e = engine()
    sub, _ = to_session(e)
    open_lcp(e, sub, PAP_OPT)
    e.receive(s_ses(sub, PPP(proto=0xC023) / PPP_PAP_Response(code=2, id=sub.auth_id)))
    take(e)
    ipc = [PPP_IPCP_Option_IPAddress(data="100.64.0.2")]
    e.receive(s_ses(sub, ipcp(3, sub.ipcp.ident, ipc)))
    e.receive(s_ses(sub, ipcp(2, sub.ipcp.ident, ipc)))
    e.receive(s_ses(sub, ipcp(1, 1, [PPP_IPCP_Option_IPAddress(data="100.64.0.1")])))
    take(e)
    assert sub.state == "up" and e.up == 1
    # RFC 1661: a Configure-Request in Opened: tld, scr, sca -> Ack-Sent; authentication again
    e.receive(s_ses(sub, lcp_conf(1, 0x50, [PAP_OPT])))
    req, ack = take(e)
    assert Ether(req)[PPP_LCP_Configure].code == 1 and ack == c_ses(sub, lcp_conf(2, 0x50, [PAP_OPT]))
    assert (sub.state, e.up, e.in_setup, sub.lcp.state) == ("session", 0, 1, c.ACK_SENT)
    e.receive(s_ses(sub, PPP(proto=0xC021) / (bytes([2, sub.lcp.ident]) + bytes(Ether(req)[PPP].payload)[2:])))
    (pap,) = take(e)
    assert Ether(pap)[PPP_PAP_Request].username == b"user1"


def test_unknown_protocol_is_protocol_rejected_and_unknown_code_rejected():
    e = engine()
    sub, _ = to_session(e)
    open_lcp(e, sub, PAP_OPT)
    e.receive(s_ses(sub, PPP(proto=0x80FD) / b"\x01\x01\x00\x04"))  # CCP
    (pr,) = take(e)
    assert bytes(Ether(pr)[PPP].payload)[0] == 8 and bytes(Ether(pr)[PPP].payload)[4:6] == b"\x80\xfd"
    e.receive(s_ses(sub, PPP(proto=0xC021) / b"\x20\x07\x00\x04"))
    (cr,) = take(e)
    assert bytes(Ether(cr)[PPP].payload)[0] == 7 and bytes(Ether(cr)[PPP].payload)[4:] == b"\x20\x07\x00\x04"


# =============================================================================================
# The command line
# =============================================================================================
@pytest.mark.parametrize("argv,needle", [
    ([], "the following arguments are required: -i/--interface"),
    (["-i", "x", "-n", "0"], "count 0 is out of range"),
    (["-i", "x", "-n", "ten"], "count must be an integer"),
    (["-i", "x", "--auth", "mschap"], "invalid choice"),
    (["-i", "x", "--window", "0"], "window 0 is out of range"),
    (["-i", "x", "--rate", "-5"], "rate -5 is out of range"),
    (["-i", "x", "--hold", "soon"], "hold must be a number"),
    (["-i", "x", "--seed", "300"], "seed 300 is out of range"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, argv, needle):
    with pytest.raises(SystemExit) as exc:
        c.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pfrps-bng-client: error: ") and needle in err, err


@pytest.mark.parametrize("argv,needle", [
    (["-i", "lo", "--vlan", "q:5000"], "VID '5000' is outside 1..4094"),
    (["-i", "lo", "--vlan", "qinq:0x9100:1:2"], "outer TPID '0x9100' is neither"),
    (["-i", "lo", "--vlan", "stacked"], "VLAN layout 'stacked' not understood"),
    (["-i", "lo", "--user", "u" * 300], "at most 255"),
    (["-i", "lo", "--dst4", "::1"], "--dst4 '::1' is not an IPv4 address"),
    (["-i", "nosuch0"], "interface 'nosuch0' not found"),
])
def test_usage_errors_exit_2_with_one_line(capsys, argv, needle):
    assert c.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pfrps-bng-client: error: ") and needle in err, err


def test_help_has_examples():
    text = c.build_parser().format_help()
    assert "examples:" in text and "pfrps-bng-client -i veth1" in text
