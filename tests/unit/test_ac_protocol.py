"""pfrps.ac.protocol: the PPPoE parser, reply builders, AC-Cookie and session-id partition.

Frames are built with scapy's layers wherever they are well formed, and every parse and every
reply is cross-checked against scapy's own dissection.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scapy.layers.l2 import Ether
from scapy.layers.ppp import PPP, PPP_LCP_Echo, PPPoE, PPPoED, PPPoED_Tags, PPPoETag

from pfrps.ac import protocol as p
from pfrps.ac.protocol import Discovery, Malformed, Reason, Session, parse_frame

AC = bytes.fromhex("525400 84d7ff".replace(" ", ""))
HOST = bytes.fromhex("020000000001")
SECRET = bytes(range(32))

settings.register_profile("pfrps", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pfrps")


def mac(b: bytes) -> str:
    return b.hex(":")


def disc(code: int, tags=(), sid: int = 0, src: bytes = HOST, dst: bytes = p.BROADCAST) -> bytes:
    """A discovery frame built with scapy's layers."""
    pkt = Ether(dst=mac(dst), src=mac(src), type=0x8863) / PPPoED(code=code, sessionid=sid)
    if tags:
        pkt = pkt / PPPoED_Tags(tag_list=[PPPoETag(tag_type=t, tag_value=v) for t, v in tags])
    return bytes(pkt)


def sess(ppp_layers, sid: int = 0x1234, src: bytes = HOST, dst: bytes = AC) -> bytes:
    """A session frame built with scapy's layers."""
    return bytes(Ether(dst=mac(dst), src=mac(src), type=0x8864) / PPPoE(sessionid=sid) / ppp_layers)


def patch(frame: bytes, off: int, fmt: str, value: int) -> bytes:
    b = bytearray(frame)
    struct.pack_into(fmt, b, off, value)
    return bytes(b)


PADI_OK = disc(p.PADI, [(0x0101, b"internet"), (0x0103, b"\x01\x02\x03\x04")])
ECHO_REQ = sess(PPP(proto=0xC021) / PPP_LCP_Echo(code=9, id=7, magic_number=0xCAFEBABE, data=b"ping"))
S_TAG = b"\x88\xa8\x00\x0a"  # 802.1ad, VID 10
C_TAG = b"\x81\x00\x20\x64"  # 802.1Q, PCP 1, VID 100


def vlan(frame: bytes, tags: bytes) -> bytes:
    """``frame`` with raw VLAN ``tags`` after the source MAC, built with scapy's Dot1Q/Dot1AD layers."""
    from scapy.layers.l2 import Dot1AD, Dot1Q

    pkt = Ether(frame)
    inner = pkt.payload
    layers = []
    for i in range(0, len(tags), 4):
        tpid, tci = struct.unpack_from("!HH", tags, i)
        layers.append((tpid, tci))
    out = Ether(dst=pkt.dst, src=pkt.src, type=layers[0][0])
    for k, (_tpid, tci) in enumerate(layers):
        nxt = layers[k + 1][0] if k + 1 < len(layers) else pkt.type
        out = out / (Dot1AD if _tpid == 0x88A8 else Dot1Q)(prio=tci >> 13, dei=(tci >> 12) & 1, vlan=tci & 0xFFF,
                                                           type=nxt)
    return bytes(out / inner)


def big_padi(octets: int) -> bytes:
    """A PADI of ``octets`` octets, PPPoE header included (a Service-Name and a padding TAG)."""
    return disc(p.PADI, [(0x0101, b""), (0x7777, b"x" * (octets - 6 - 8))])

# (description, frame, expected): expected is a Reason, or a dict of fields the parse must have.
PARSE_CASES = [
    ("PADI with Service-Name and Host-Uniq", PADI_OK,
     {"type": Discovery, "code": p.PADI, "session_id": 0, "service_name": b"internet", "host_uniq": b"\x01\x02\x03\x04",
      "ac_cookie": None, "relay_session_id": None}),
    ("PADI asking for any service (empty Service-Name)", disc(p.PADI, [(0x0101, b"")]),
     {"type": Discovery, "service_name": b""}),
    ("Ethernet padding after LENGTH is ignored", PADI_OK + b"\x00" * 20,
     {"type": Discovery, "service_name": b"internet", "tags": ((0x0101, b"internet"), (0x0103, b"\x01\x02\x03\x04"))}),
    ("End-Of-List ends the TAG list", disc(p.PADI, [(0x0101, b"x"), (0x0000, b""), (0x0103, b"late")]),
     {"type": Discovery, "tags": ((0x0101, b"x"),), "host_uniq": None}),
    ("an unknown TAG is kept and ignored", disc(p.PADI, [(0x0101, b"x"), (0x7777, b"??")]),
     {"type": Discovery, "tags": ((0x0101, b"x"), (0x7777, b"??"))}),
    ("the first of repeated TAGs wins", disc(p.PADR, [(0x0101, b"s"), (0x0104, b"c1"), (0x0104, b"c2")], dst=AC),
     {"type": Discovery, "ac_cookie": b"c1"}),
    ("PADR with cookie and Relay-Session-Id",
     disc(p.PADR, [(0x0101, b"s"), (0x0104, b"C" * 16), (0x0110, b"relay")], dst=AC),
     {"type": Discovery, "code": p.PADR, "dst": AC, "ac_cookie": b"C" * 16, "relay_session_id": b"relay"}),
    ("PADT with a session id", disc(p.PADT, sid=0x0042, dst=AC), {"type": Discovery, "code": p.PADT, "session_id": 0x42}),
    ("PADO without Service-Name parses (only PADI/PADR need one)", disc(p.PADO, [(0x0102, b"other-ac")]),
     {"type": Discovery, "code": p.PADO}),
    ("LCP Echo-Request", ECHO_REQ,
     {"type": Session, "session_id": 0x1234, "protocol": 0xC021, "lcp_code": 9, "lcp_id": 7, "lcp_magic": 0xCAFEBABE,
      "lcp_data": b"ping"}),
    ("LCP Echo-Request with Ethernet padding", ECHO_REQ + b"\x00" * 30, {"type": Session, "lcp_data": b"ping"}),
    ("LCP Configure-Request", sess(PPP(proto=0xC021) / b"\x01\x05\x00\x04"),
     {"type": Session, "lcp_code": 1, "lcp_id": 5, "lcp_magic": None}),
    ("IPv4 in a session", sess(PPP(proto=0x0021) / (b"\x45" + b"\x00" * 19)), {"type": Session, "protocol": 0x0021}),
    ("802.1Q PADI", vlan(PADI_OK, C_TAG), {"type": Discovery, "code": p.PADI, "vlan": C_TAG, "service_name": b"internet",
                                            "host_uniq": b"\x01\x02\x03\x04"}),
    ("QinQ 0x88a8/0x8100 PADI", vlan(PADI_OK, S_TAG + C_TAG), {"type": Discovery, "vlan": S_TAG + C_TAG,
                                                                "service_name": b"internet"}),
    ("QinQ 0x8100/0x8100 LCP Echo-Request", vlan(ECHO_REQ, C_TAG + C_TAG),
     {"type": Session, "vlan": C_TAG + C_TAG, "session_id": 0x1234, "lcp_code": 9, "lcp_data": b"ping"}),
    ("untagged: vlan is empty", PADI_OK, {"type": Discovery, "vlan": b""}),
    ("a PADI of exactly 1484 octets (RFC 2516 5.1)", big_padi(1484), {"type": Discovery, "code": p.PADI}),
    ("a 1485-octet PADO is not a PADI: no size limit", patch(big_padi(1485), 15, "!B", p.PADO),
     {"type": Discovery, "code": p.PADO}),
    # malformed
    ("a PADI of 1485 octets", big_padi(1485), Reason.PADI_TOO_LONG),
    ("an 802.1Q PADI of 1485 octets", vlan(big_padi(1485), C_TAG), Reason.PADI_TOO_LONG),
    ("three VLAN tags", vlan(PADI_OK, S_TAG + C_TAG + C_TAG), Reason.VLAN_DEPTH),
    ("802.1Q IPv4", vlan(patch(PADI_OK, 12, "!H", 0x0800), C_TAG), Reason.NOT_PPPOE),
    ("802.1Q tag, then the frame ends", PADI_OK[:12] + C_TAG + b"\x88\x63", Reason.TRUNCATED_HEADER),
    ("QinQ, PPPoE header cut", vlan(PADI_OK, S_TAG + C_TAG)[:25], Reason.TRUNCATED_HEADER),
    ("802.1Q, LENGTH past the end", vlan(patch(PADI_OK, 18, "!H", 0xFFFF), C_TAG), Reason.LENGTH_PAST_END),
    ("802.1Q, version 2", vlan(patch(PADI_OK, 14, "!B", 0x21), C_TAG), Reason.BAD_VERSION_TYPE),
    ("empty frame", b"", Reason.TRUNCATED_HEADER),
    ("Ethernet header only", PADI_OK[:14], Reason.TRUNCATED_HEADER),
    ("PPPoE header cut", PADI_OK[:19], Reason.TRUNCATED_HEADER),
    ("IPv4 ethertype", patch(PADI_OK, 12, "!H", 0x0800), Reason.NOT_PPPOE),
    ("broadcast source MAC", disc(p.PADI, [(0x0101, b"")], src=p.BROADCAST), Reason.MULTICAST_SOURCE),
    ("multicast source MAC", disc(p.PADI, [(0x0101, b"")], src=bytes.fromhex("01005e000001")), Reason.MULTICAST_SOURCE),
    ("version 2", patch(PADI_OK, 14, "!B", 0x21), Reason.BAD_VERSION_TYPE),
    ("type 2", patch(PADI_OK, 14, "!B", 0x12), Reason.BAD_VERSION_TYPE),
    ("LENGTH one byte past the frame", patch(PADI_OK, 18, "!H", len(PADI_OK) - 20 + 1), Reason.LENGTH_PAST_END),
    ("LENGTH 0xffff", patch(PADI_OK, 18, "!H", 0xFFFF), Reason.LENGTH_PAST_END),
    ("TAG value runs off the end", patch(PADI_OK, 22, "!H", 100), Reason.TAG_PAST_END),
    ("TAG header cut (LENGTH ends inside it)", patch(PADI_OK, 18, "!H", 12 + 2), Reason.TAG_PAST_END),
    ("discovery code 0x00", patch(PADI_OK, 15, "!B", 0x00), Reason.UNKNOWN_CODE),
    ("discovery code PADQ 0x0c (RFC 5578, not served)", patch(PADI_OK, 15, "!B", 0x0C), Reason.UNKNOWN_CODE),
    ("session frame with code PADI", patch(ECHO_REQ, 15, "!B", 0x09), Reason.UNKNOWN_CODE),
    ("PADI with a session id", disc(p.PADI, [(0x0101, b"")], sid=1), Reason.BAD_SESSION_ID),
    ("PADR with a session id", disc(p.PADR, [(0x0101, b"")], sid=9, dst=AC), Reason.BAD_SESSION_ID),
    ("PADT with session id 0", disc(p.PADT, sid=0, dst=AC), Reason.BAD_SESSION_ID),
    ("session frame with session id 0", patch(ECHO_REQ, 16, "!H", 0), Reason.BAD_SESSION_ID),
    ("session frame with session id 0xffff", patch(ECHO_REQ, 16, "!H", 0xFFFF), Reason.BAD_SESSION_ID),
    ("PADI without Service-Name", disc(p.PADI, [(0x0103, b"hu")]), Reason.SERVICE_NAME_COUNT),
    ("PADR with two Service-Names", disc(p.PADR, [(0x0101, b"a"), (0x0101, b"b")], dst=AC), Reason.SERVICE_NAME_COUNT),
    ("session frame with one PPP byte", sess(b"\xc0"), Reason.TRUNCATED_PPP),
    ("LCP header cut", sess(b"\xc0\x21\x09\x01"), Reason.TRUNCATED_PPP),
    ("LCP length past the PPPoE payload", sess(b"\xc0\x21\x09\x01\x00\x20" + b"\x00" * 4), Reason.TRUNCATED_PPP),
    ("LCP length below 4", sess(b"\xc0\x21\x01\x01\x00\x03"), Reason.TRUNCATED_PPP),
    ("LCP Echo-Request without Magic-Number", sess(b"\xc0\x21\x09\x01\x00\x06\x00\x00"), Reason.TRUNCATED_PPP),
]


@pytest.mark.parametrize("desc,frame,expected", PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse_table(desc, frame, expected):
    res = parse_frame(frame)
    if isinstance(expected, Reason):
        assert isinstance(res, Malformed), desc
        assert res.reason is expected, (desc, res)
        assert res.detail
    else:
        expected = dict(expected)
        assert type(res) is expected.pop("type"), (desc, res)
        for k, v in expected.items():
            assert getattr(res, k) == v, (desc, k)


def test_parse_counts_a_stripped_tag():
    """With one tag stripped by the kernel (max_vlan=1), a frame may hold one more, not two."""
    assert parse_frame(vlan(PADI_OK, C_TAG), max_vlan=1).vlan == C_TAG
    assert parse_frame(vlan(PADI_OK, S_TAG + C_TAG), max_vlan=1).reason is Reason.VLAN_DEPTH
    assert parse_frame(vlan(PADI_OK, C_TAG), max_vlan=0).reason is Reason.VLAN_DEPTH


@pytest.mark.parametrize("tags", [C_TAG, S_TAG + C_TAG, C_TAG + C_TAG])
def test_with_vlan_puts_the_tags_back(tags):
    assert p.with_vlan(PADI_OK, tags) == vlan(PADI_OK, tags)
    assert p.with_vlan(PADI_OK, b"") == PADI_OK


def test_vlan_key_ignores_priority():
    assert p.vlan_key(C_TAG) == b"\x81\x00\x00\x64" == p.vlan_key(b"\x81\x00\xe0\x64")
    assert p.vlan_key(S_TAG + C_TAG) == S_TAG + b"\x81\x00\x00\x64" and p.vlan_key(b"") == b""


def test_parse_accepts_memoryview_and_bytearray():
    assert parse_frame(memoryview(PADI_OK)) == parse_frame(bytearray(PADI_OK)) == parse_frame(PADI_OK)


# -- cross-check against scapy's dissection -----------------------------------------------------
KNOWN_TAGS = [0x0101, 0x0102, 0x0103, 0x0104, 0x0105, 0x0110, 0x0120, 0x0201, 0x0202, 0x0203]
tag_values = st.binary(max_size=40)
tags_st = st.lists(st.tuples(st.one_of(st.sampled_from(KNOWN_TAGS), st.integers(1, 0xFFFF)), tag_values), max_size=8)
unicast = st.binary(min_size=6, max_size=6).map(lambda b: bytes([b[0] & 0xFE]) + b[1:])


@st.composite
def valid_discovery(draw):
    code = draw(st.sampled_from([p.PADI, p.PADO, p.PADR, p.PADS, p.PADT]))
    tags = [t for t in draw(tags_st) if t[0] != p.TAG_SERVICE_NAME]
    if code in (p.PADI, p.PADR):
        tags.insert(draw(st.integers(0, len(tags))), (p.TAG_SERVICE_NAME, draw(tag_values)))
    sid = 0 if code in (p.PADI, p.PADR) else draw(st.integers(1 if code == p.PADT else 0, 0xFFFF))
    frame = disc(code, tags, sid, src=draw(unicast), dst=draw(unicast))
    return frame + draw(st.binary(max_size=8)), tags  # trailing bytes: Ethernet padding


def scapy_view(frame: bytes) -> dict:
    """What scapy's dissector makes of a discovery frame."""
    pkt = Ether(frame)
    d = pkt[PPPoED]
    tags = [(t.tag_type, bytes(t.tag_value)) for t in pkt[PPPoED_Tags].tag_list] if PPPoED_Tags in pkt else []
    return {"dst": bytes.fromhex(pkt.dst.replace(":", "")), "src": bytes.fromhex(pkt.src.replace(":", "")),
            "code": d.code, "session_id": d.sessionid, "tags": tuple(tags)}


@given(valid_discovery())
def test_parse_agrees_with_scapy_on_valid_frames(case):
    frame, tags = case
    res = parse_frame(frame)
    assert type(res) is Discovery, res
    view = scapy_view(frame)
    for k, v in view.items():
        assert getattr(res, k) == v, k
    assert res.tags == tuple(tags)
    first = {t: v for t, v in reversed(tags)}
    assert res.host_uniq == first.get(p.TAG_HOST_UNIQ)
    assert res.ac_cookie == first.get(p.TAG_AC_COOKIE)
    assert res.relay_session_id == first.get(p.TAG_RELAY_SESSION_ID)


@given(st.binary(max_size=200))
def test_parse_random_bytes_never_raises(data):
    res = parse_frame(data)
    assert type(res) in (Discovery, Session, Malformed)
    if type(res) is Malformed:
        assert isinstance(res.reason, Reason)


@given(st.sampled_from([b"\x88\x63", b"\x88\x64"]), st.binary(min_size=12, max_size=12), st.binary(max_size=120))
def test_parse_random_pppoe_payloads(etype, macs, rest):
    """Random bytes behind a PPPoE ethertype: a verdict always, and scapy agrees on what parses."""
    frame = macs + etype + rest
    res = parse_frame(frame)
    assert type(res) in (Discovery, Session, Malformed)
    if type(res) is Discovery:
        view = scapy_view(frame)
        assert (res.code, res.session_id) == (view["code"], view["session_id"])
        assert res.tags == view["tags"][:len(res.tags)]  # scapy does not stop at End-Of-List
    elif type(res) is Session:
        pkt = Ether(frame)
        assert res.session_id == pkt[PPPoE].sessionid


@given(valid_discovery(), st.data())
def test_mutation_truncate(case, data):
    frame, _ = case
    length = struct.unpack_from("!H", frame, 18)[0]
    cut = data.draw(st.integers(0, 20 + length - 1))
    res = parse_frame(frame[:cut])
    assert type(res) is Malformed
    assert res.reason is (Reason.TRUNCATED_HEADER if cut < 20 else Reason.LENGTH_PAST_END)


@given(valid_discovery(), st.integers(1, 0x10000))
def test_mutation_length_past_end(case, extra):
    frame, _ = case
    length = len(frame) - 20 + extra
    assume(length <= 0xFFFF)
    res = parse_frame(patch(frame, 18, "!H", length))
    assert type(res) is Malformed and res.reason is Reason.LENGTH_PAST_END


@given(valid_discovery(), st.data())
def test_mutation_tag_runs_off_end(case, data):
    frame, tags = case
    assume(tags)
    i = data.draw(st.integers(0, len(tags) - 1))
    off = 20 + sum(4 + len(v) for _, v in tags[:i])  # tag i's header
    end = 20 + struct.unpack_from("!H", frame, 18)[0]
    new_len = data.draw(st.integers(end - (off + 4) + 1, 0xFFFF))
    res = parse_frame(patch(frame, off + 2, "!H", new_len))
    assert type(res) is Malformed and res.reason is Reason.TAG_PAST_END


@given(valid_discovery(), st.integers(0, 255).filter(lambda c: c not in p.CODE_NAMES))
def test_mutation_unknown_code(case, code):
    frame, _ = case
    res = parse_frame(patch(frame, 15, "!B", code))
    assert type(res) is Malformed and res.reason is Reason.UNKNOWN_CODE


@given(valid_discovery(), st.integers(0, 255))
def test_mutation_multicast_source(case, first):
    frame, _ = case
    res = parse_frame(patch(frame, 6, "!B", first | 1))
    assert type(res) is Malformed and res.reason is Reason.MULTICAST_SOURCE


@given(valid_discovery(), st.integers(0, 255).filter(lambda v: v != 0x11))
def test_mutation_version_type(case, vt):
    frame, _ = case
    res = parse_frame(patch(frame, 14, "!B", vt))
    assert type(res) is Malformed and res.reason is Reason.BAD_VERSION_TYPE


@given(valid_discovery(), st.data())
def test_mutation_any_byte_never_raises(case, data):
    frame, _ = case
    b = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        b[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
    assert type(parse_frame(bytes(b))) in (Discovery, Session, Malformed)


# -- AC-Cookie ----------------------------------------------------------------------------------
def test_cookie_is_hmac_sha256_prefix():
    import hashlib
    import hmac

    c = p.make_cookie(SECRET, HOST, b"internet")
    assert c == hmac.new(SECRET, bytes(8) + HOST + b"internet", hashlib.sha256).digest()[:16]
    assert len(c) == p.COOKIE_LEN
    c = p.make_cookie(SECRET, HOST, b"internet", window=0x1234)
    assert c == hmac.new(SECRET, (0x1234).to_bytes(8, "big") + HOST + b"internet", hashlib.sha256).digest()[:16]


@pytest.mark.parametrize("made,checked,ok", [
    (7, 7, True), (6, 7, True), (5, 7, False), (8, 7, False), (0, 1, True), (-1, 0, True), (0, 2, False),
])
def test_cookie_window(made, checked, ok):
    """A cookie verifies in its own window and the next one only (a window boundary between PADO
    and PADR does not fail the client; an old cookie cannot be replayed for long)."""
    assert p.verify_cookie(SECRET, HOST, b"s", p.make_cookie(SECRET, HOST, b"s", made), checked) is ok


@pytest.mark.parametrize("now,seconds,want", [(0.0, 60, 0), (59.999, 60, 0), (60.0, 60, 1), (125.0, 0.5, 250)])
def test_cookie_window_number(now, seconds, want):
    assert p.cookie_window(now, seconds) == want


@pytest.mark.parametrize("desc,mac_,service,cookie_of,ok", [
    ("the same MAC and service", HOST, b"internet", (SECRET, HOST, b"internet"), True),
    ("another MAC", bytes.fromhex("020000000002"), b"internet", (SECRET, HOST, b"internet"), False),
    ("another service", HOST, b"voip", (SECRET, HOST, b"internet"), False),
    ("another secret (a previous run)", HOST, b"internet", (b"\x01" * 32, HOST, b"internet"), False),
    ("empty service", HOST, b"", (SECRET, HOST, b""), True),
])
def test_cookie_verify(desc, mac_, service, cookie_of, ok):
    assert p.verify_cookie(SECRET, mac_, service, p.make_cookie(*cookie_of)) is ok, desc


@pytest.mark.parametrize("cookie", [None, b"", b"x" * 15, b"x" * 17, b"\x00" * 16])
def test_cookie_verify_rejects_junk(cookie):
    assert not p.verify_cookie(SECRET, HOST, b"internet", cookie)


def test_cookie_verify_rejects_truncated_good_cookie():
    good = p.make_cookie(SECRET, HOST, b"s")
    assert not p.verify_cookie(SECRET, HOST, b"s", good[:8])
    assert not p.verify_cookie(SECRET, HOST, b"s", good + b"\x00")


# -- session ids --------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 64, 1000, 1024])
def test_session_id_partition_is_exact(n):
    seen: set[int] = set()
    total = 0
    for w in range(n):
        ids = list(p.session_ids(w, n))
        assert len(ids) == p.session_id_capacity(w, n)
        assert all(p.session_id_owner(s, n) == w for s in ids)
        assert 0 not in ids and 0xFFFF not in ids
        assert seen.isdisjoint(ids)
        seen.update(ids)
        total += len(ids)
    assert seen == set(range(1, 0xFFFF)) and total == 0xFFFE


def test_session_id_partition_rejects_bad_worker():
    with pytest.raises(ValueError):
        p.session_ids(8, 8)


@pytest.mark.parametrize("w,n", [(0, 8), (5, 8), (0, 1), (3, 1000)])
def test_allocator_hands_out_its_partition_once(w, n):
    a = p.SessionIdAllocator(w, n, start=12345)
    got = [a.allocate() for _ in range(a.capacity)]
    assert len(set(got)) == a.capacity and set(got) == set(p.session_ids(w, n))
    assert a.allocate() is None and len(a) == a.capacity
    a.release(got[7])
    assert a.allocate() == got[7] and a.allocate() is None


def test_allocator_delays_reuse():
    a = p.SessionIdAllocator(1, 4)
    first = a.allocate()
    a.release(first)
    assert a.allocate() != first  # round-robin: the next id, not the one just freed


def test_allocators_of_different_workers_never_collide():
    n = 8
    allocs = [p.SessionIdAllocator(w, n, start=w * 97) for w in range(n)]
    ids = [a.allocate() for a in allocs for _ in range(500)]
    assert len(set(ids)) == len(ids)


# -- replies: struct == scapy, and what scapy dissects ------------------------------------------
opt_bytes = st.one_of(st.none(), st.binary(max_size=24))


def tags_of(frame: bytes) -> list[tuple[int, bytes]]:
    pkt = Ether(frame)
    return [(t.tag_type, bytes(t.tag_value)) for t in pkt[PPPoED_Tags].tag_list] if PPPoED_Tags in pkt else []


@given(unicast, st.binary(min_size=1, max_size=32), st.binary(max_size=32), opt_bytes, opt_bytes,
       st.lists(st.binary(min_size=1, max_size=16), max_size=3))
def test_pado(client, ac_name, service, host_uniq, relay, others):
    cookie = p.make_cookie(SECRET, client, service)
    frame = p.build_pado(client, AC, ac_name, service, cookie, host_uniq, relay, others)
    assert p.build_pado(client, AC, ac_name, service, cookie, host_uniq, relay, others, encoder="struct") == frame
    pkt = Ether(frame)
    assert pkt.dst == mac(client) and pkt.src == mac(AC) and pkt.type == 0x8863
    assert pkt[PPPoED].code == p.PADO and pkt[PPPoED].sessionid == 0 and pkt[PPPoED].len == len(frame) - 20
    tags = tags_of(frame)
    assert tags[0] == (p.TAG_AC_NAME, ac_name)
    assert tags[1] == (p.TAG_SERVICE_NAME, service)  # the requested one first, echoed
    assert [v for t, v in tags[2:] if t == p.TAG_SERVICE_NAME] == [s for s in others if s != service]
    cookies = [v for t, v in tags if t == p.TAG_AC_COOKIE]
    assert cookies == [cookie] and p.verify_cookie(SECRET, client, service, cookies[0])
    assert [v for t, v in tags if t == p.TAG_HOST_UNIQ] == ([] if host_uniq is None else [host_uniq])
    assert [v for t, v in tags if t == p.TAG_RELAY_SESSION_ID] == ([] if relay is None else [relay])
    assert parse_frame(frame).code == p.PADO


@given(unicast, st.integers(1, 0xFFFE), st.binary(max_size=32), opt_bytes, opt_bytes)
def test_pads(client, sid, service, host_uniq, relay):
    frame = p.build_pads(client, AC, sid, service, host_uniq, relay)
    assert p.build_pads(client, AC, sid, service, host_uniq, relay, encoder="struct") == frame
    pkt = Ether(frame)
    assert pkt[PPPoED].code == p.PADS and pkt[PPPoED].sessionid == sid and pkt.dst == mac(client)
    assert tags_of(frame) == ([(p.TAG_SERVICE_NAME, service)] + ([] if host_uniq is None else [(p.TAG_HOST_UNIQ, host_uniq)])
                              + ([] if relay is None else [(p.TAG_RELAY_SESSION_ID, relay)]))


@given(unicast, st.binary(max_size=32), st.sampled_from([p.TAG_SERVICE_NAME_ERROR, p.TAG_AC_SYSTEM_ERROR]),
       st.binary(max_size=32), opt_bytes, opt_bytes)
def test_pads_error(client, service, error_tag, message, host_uniq, relay):
    frame = p.build_pads_error(client, AC, service, error_tag, message, host_uniq, relay)
    assert p.build_pads_error(client, AC, service, error_tag, message, host_uniq, relay, encoder="struct") == frame
    pkt = Ether(frame)
    assert pkt[PPPoED].code == p.PADS and pkt[PPPoED].sessionid == 0
    tags = tags_of(frame)
    assert (error_tag, message) in tags and (p.TAG_SERVICE_NAME, service) in tags
    assert ((p.TAG_HOST_UNIQ, host_uniq) in tags) == (host_uniq is not None)
    assert ((p.TAG_RELAY_SESSION_ID, relay) in tags) == (relay is not None)


@given(unicast, st.integers(1, 0xFFFE), st.one_of(st.none(), st.binary(max_size=32)), opt_bytes, opt_bytes)
def test_padt(dst, sid, message, host_uniq, relay):
    frame = p.build_padt(dst, AC, sid, message, host_uniq, relay)
    assert p.build_padt(dst, AC, sid, message, host_uniq, relay, encoder="struct") == frame
    pkt = Ether(frame)
    assert pkt[PPPoED].code == p.PADT and pkt[PPPoED].sessionid == sid and pkt.dst == mac(dst)
    assert ((p.TAG_GENERIC_ERROR, message) in tags_of(frame)) == (message is not None)
    res = parse_frame(frame)
    assert type(res) is Discovery and res.code == p.PADT and res.session_id == sid


@given(unicast, st.integers(1, 0xFFFE), st.integers(0, 255), st.integers(0, 0xFFFFFFFF), st.binary(max_size=64))
def test_lcp_echo_reply(client, sid, ident, magic, data):
    frame = p.build_lcp_echo_reply(client, AC, sid, ident, magic, data)
    assert p.build_lcp_echo_reply(client, AC, sid, ident, magic, data, encoder="struct") == frame
    pkt = Ether(frame)
    assert pkt.type == 0x8864 and pkt[PPPoE].sessionid == sid and pkt[PPPoE].code == 0
    assert pkt[PPP].proto == 0xC021
    echo = pkt[PPP_LCP_Echo]
    assert (echo.code, echo.id, echo.magic_number, bytes(echo.data), echo.len) == (10, ident, magic, data, 8 + len(data))
    res = parse_frame(frame)
    assert type(res) is Session and (res.lcp_code, res.lcp_id, res.lcp_magic, res.lcp_data) == (10, ident, magic, data)


@given(unicast, st.binary(max_size=32), opt_bytes, opt_bytes)
def test_client_frames_struct_equals_scapy(client, service, host_uniq, relay):
    cookie = p.make_cookie(SECRET, client, service)
    assert p.build_padi(client, service, host_uniq, relay) == p.build_padi(client, service, host_uniq, relay, "struct")
    assert (p.build_padr(client, AC, service, cookie, host_uniq, relay)
            == p.build_padr(client, AC, service, cookie, host_uniq, relay, "struct"))
    padi = parse_frame(p.build_padi(client, service, host_uniq, relay))
    assert (padi.code, padi.dst, padi.service_name, padi.host_uniq) == (p.PADI, p.BROADCAST, service, host_uniq)


def test_unknown_encoder():
    with pytest.raises(ValueError):
        p.encode_discovery(HOST, AC, p.PADO, 0, [], encoder="nope")
