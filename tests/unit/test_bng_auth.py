"""pfrps.bng.auth: PAP (RFC 1334) and CHAP-MD5 (RFC 1994) codec, cross-checked against scapy."""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address

import pytest
from scapy.layers.ppp import PPP, PPP_CHAP, PPP_CHAP_ChallengeResponse, PPP_PAP_Request, PPP_PAP_Response

from pfrps.bng import auth as a

CH = bytes(range(16))


# -- building: our bytes == scapy's bytes ----------------------------------------------------------
BUILD_CASES = [
    ("PAP request", a.build_pap_request(7, b"alice", b"s3cret"),
     PPP_PAP_Request(id=7, username=b"alice", password=b"s3cret")),
    ("PAP request, empty user and password", a.build_pap_request(0, b"", b""),
     PPP_PAP_Request(id=0, username=b"", password=b"")),
    ("PAP request, 255-byte fields", a.build_pap_request(255, b"u" * 255, b"p" * 255),
     PPP_PAP_Request(id=255, username=b"u" * 255, password=b"p" * 255)),
    ("PAP ack", a.build_pap_reply(True, 7, b"Login ok"), PPP_PAP_Response(code=2, id=7, message=b"Login ok")),
    ("PAP nak, empty message", a.build_pap_reply(False, 9, b""), PPP_PAP_Response(code=3, id=9, message=b"")),
    ("CHAP challenge", a.build_chap_challenge(3, CH, b"pfrps-bng"),
     PPP_CHAP_ChallengeResponse(code=1, id=3, value=CH, optional_name=b"pfrps-bng")),
    ("CHAP challenge, no name", a.build_chap_challenge(4, b"\x01", b""),
     PPP_CHAP_ChallengeResponse(code=1, id=4, value=b"\x01", optional_name=b"")),
    ("CHAP response", a.build_chap_response(3, a.chap_md5(3, b"pw", CH), b"alice"),
     PPP_CHAP_ChallengeResponse(code=2, id=3, value=a.chap_md5(3, b"pw", CH), optional_name=b"alice")),
    ("CHAP success", a.build_chap_result(True, 3, b"Access granted"), PPP_CHAP(code=3, id=3, data=b"Access granted")),
    ("CHAP failure, empty", a.build_chap_result(False, 200, b""), PPP_CHAP(code=4, id=200, data=b"")),
]


@pytest.mark.parametrize("desc,ours,theirs", BUILD_CASES, ids=[c[0] for c in BUILD_CASES])
def test_builders_match_scapy(desc, ours, theirs):
    assert ours == bytes(theirs), desc


def test_scapy_dissects_our_packets_behind_a_ppp_header():
    p = PPP(b"\xc0\x23" + a.build_pap_request(5, b"bob", b"pw"))
    assert (p[PPP_PAP_Request].id, p.username, p.password, p.len) == (5, b"bob", b"pw", 11)
    p = PPP(b"\xc2\x23" + a.build_chap_response(6, b"v" * 16, b"bob"))
    assert (p[PPP_CHAP_ChallengeResponse].code, p.id, p.value, p.optional_name) == (2, 6, b"v" * 16, b"bob")
    p = PPP(b"\xc0\x23" + a.build_pap_reply(False, 1, b"no"))
    assert (p[PPP_PAP_Response].code, p.msg_len, p.message) == (3, 2, b"no")


# -- parsing: scapy's bytes -> our tuples -----------------------------------------------------------
PARSE_CASES = [
    ("PAP request", a.parse_pap, bytes(PPP_PAP_Request(id=1, username=b"u", password=b"p")),
     a.PapRequest(1, b"u", b"p")),
    ("PAP request + Ethernet padding past Length", a.parse_pap,
     bytes(PPP_PAP_Request(id=1, username=b"u", password=b"p")) + bytes(10), a.PapRequest(1, b"u", b"p")),
    ("PAP request, empty fields", a.parse_pap, b"\x01\x02\x00\x06\x00\x00", a.PapRequest(2, b"", b"")),
    ("PAP request, bytes after the password within Length (pppd tolerates)", a.parse_pap,
     b"\x01\x02\x00\x09\x01u\x01pX", a.PapRequest(2, b"u", b"p")),
    ("PAP ack", a.parse_pap_reply, bytes(PPP_PAP_Response(code=2, id=4, message=b"hi")), a.PapReply(True, 4, b"hi")),
    ("PAP nak", a.parse_pap_reply, bytes(PPP_PAP_Response(code=3, id=4, message=b"")), a.PapReply(False, 4, b"")),
    ("CHAP challenge", a.parse_chap_challenge,
     bytes(PPP_CHAP_ChallengeResponse(code=1, id=9, value=CH, optional_name=b"ac")), a.ChapChallenge(9, CH, b"ac")),
    ("CHAP response", a.parse_chap_response,
     bytes(PPP_CHAP_ChallengeResponse(code=2, id=9, value=CH, optional_name=b"alice")),
     a.ChapResponse(9, CH, b"alice")),
    ("CHAP response, no name", a.parse_chap_response, b"\x02\x09\x00\x06\x01\xaa", a.ChapResponse(9, b"\xaa", b"")),
    ("CHAP success", a.parse_chap_result, bytes(PPP_CHAP(code=3, id=1, data=b"ok")), a.ChapResult(True, 1, b"ok")),
    ("CHAP failure", a.parse_chap_result, bytes(PPP_CHAP(code=4, id=1, data=b"")), a.ChapResult(False, 1, b"")),
]


@pytest.mark.parametrize("desc,fn,info,want", PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse(desc, fn, info, want):
    assert fn(info) == want, desc
    assert fn(memoryview(info)) == want, "bytes-like input"


# (description, parser, packet, a word the reason must contain)
MALFORMED = [
    ("empty", a.parse_pap, b"", "need 4"),
    ("3 bytes", a.parse_pap, b"\x01\x01\x00", "need 4"),
    ("PAP code 2 to the request parser", a.parse_pap, b"\x02\x01\x00\x05\x00", "code 2"),
    ("PAP unknown code 9", a.parse_pap, b"\x09\x01\x00\x04", "code 9"),
    ("Length 3", a.parse_pap, b"\x01\x01\x00\x03\x00\x00", "under"),
    ("Length past the end", a.parse_pap, b"\x01\x01\x00\x10\x00\x00", "past"),
    ("no Peer-ID Length", a.parse_pap, b"\x01\x01\x00\x04", "Peer-ID Length"),
    ("Peer-ID past Length", a.parse_pap, b"\x01\x01\x00\x07\x05ab", "Peer-ID Length 5"),
    ("no Passwd-Length", a.parse_pap, b"\x01\x01\x00\x06\x01u", "Passwd-Length"),
    ("Password past Length (bytes beyond are padding)", a.parse_pap, b"\x01\x01\x00\x08\x01u\x03pwd",
     "Passwd-Length 3"),
    ("PAP reply: no Msg-Length", a.parse_pap_reply, b"\x02\x01\x00\x04", "Msg-Length"),
    ("PAP reply: Msg-Length past Length", a.parse_pap_reply, b"\x03\x01\x00\x06\x05ab", "Msg-Length 5"),
    ("PAP reply: code 1", a.parse_pap_reply, b"\x01\x01\x00\x05\x00", "code 1"),
    ("CHAP response: code 1", a.parse_chap_response, b"\x01\x01\x00\x06\x01x", "code 1"),
    ("CHAP response: no Value-Size", a.parse_chap_response, b"\x02\x01\x00\x04", "Value-Size"),
    ("CHAP response: Value-Size 0", a.parse_chap_response, b"\x02\x01\x00\x05\x00", "Value-Size 0"),
    ("CHAP response: Value past Length", a.parse_chap_response, b"\x02\x01\x00\x06\x10" + bytes(16), "Value-Size 16"),
    ("CHAP response: Length past the end", a.parse_chap_response, b"\x02\x01\x01\x00\x01x", "past"),
    ("CHAP challenge: code 2", a.parse_chap_challenge, b"\x02\x01\x00\x06\x01x", "code 2"),
    ("CHAP result: code 2", a.parse_chap_result, b"\x02\x01\x00\x04", "code 2"),
    ("CHAP result: Length 2", a.parse_chap_result, b"\x03\x01\x00\x02", "under"),
]


@pytest.mark.parametrize("desc,fn,info,word", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_gives_a_reason(desc, fn, info, word):
    r = fn(info)
    assert isinstance(r, str) and word in r, (desc, r)


def test_parsers_never_raise_on_any_prefix_or_mutation():
    import random  # noqa: PLC0415

    rng = random.Random(1994)
    good = [a.build_pap_request(1, b"user", b"pw"), a.build_pap_reply(True, 1, b"m"),
            a.build_chap_challenge(1, CH, b"n"), a.build_chap_response(1, CH, b"n"), a.build_chap_result(True, 1, b"m")]
    parsers = (a.parse_pap, a.parse_pap_reply, a.parse_chap_challenge, a.parse_chap_response, a.parse_chap_result)
    for g in good:
        for cut in range(len(g) + 1):
            for fn in parsers:
                assert isinstance(fn(g[:cut]), (str, tuple))
        for _ in range(300):
            b = bytearray(g)
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            for fn in parsers:
                assert isinstance(fn(bytes(b)), (str, tuple))


# -- CHAP-MD5 -------------------------------------------------------------------------------------
MD5_CASES = [
    # (identifier, secret, challenge, expected digest hex): MD5(id || secret || challenge), RFC 1994 4.1
    (1, b"secret", bytes(16), "7570c653cdf4755ccffcaa80f29268d1"),
    (0, b"", b"\x01", hashlib.md5(b"\x00\x01").hexdigest()),
    (255, b"pw", CH, hashlib.md5(b"\xffpw" + CH).hexdigest()),
]


@pytest.mark.parametrize("ident,secret,challenge,want", MD5_CASES)
def test_chap_md5(ident, secret, challenge, want):
    assert a.chap_md5(ident, secret, challenge).hex() == want
    assert len(a.chap_md5(ident, secret, challenge)) == a.MD5_LEN


def test_chap_round_trip_client_to_server():
    ch = a.parse_chap_challenge(a.build_chap_challenge(42, CH, b"bng"))
    resp = a.build_chap_response(ch.identifier, a.chap_md5(ch.identifier, b"pw", ch.value), b"alice")
    r = a.parse_chap_response(resp)
    assert r == a.ChapResponse(42, a.chap_md5(42, b"pw", CH), b"alice")


# -- bad arguments ---------------------------------------------------------------------------------
BAD_ARGS = [
    ("identifier 256", lambda: a.build_pap_reply(True, 256, b""), "identifier"),
    ("identifier -1", lambda: a.build_chap_result(True, -1, b""), "identifier"),
    ("PAP message of 256 bytes", lambda: a.build_pap_reply(False, 1, b"m" * 256), "Message"),
    ("PAP user of 256 bytes", lambda: a.build_pap_request(1, b"u" * 256, b""), "Peer-ID"),
    ("empty challenge", lambda: a.build_chap_challenge(1, b"", b"n"), "Value"),
    ("challenge of 256 bytes", lambda: a.build_chap_challenge(1, bytes(256), b"n"), "Value"),
    ("CHAP message past 65535", lambda: a.build_chap_result(True, 1, bytes(65532)), "Length"),
    ("chap_md5 identifier 300", lambda: a.chap_md5(300, b"", b""), "identifier"),
    ("unknown method", lambda: a.AuthRequest("mschap", b"u"), "method"),
]


@pytest.mark.parametrize("desc,call,word", BAD_ARGS, ids=[c[0] for c in BAD_ARGS])
def test_bad_arguments_raise_value_error(desc, call, word):
    with pytest.raises(ValueError, match=word):
        call()


def test_request_and_result_types():
    r = a.AuthRequest("pap", b"alice", password=b"hunter2")
    assert b"hunter2" not in repr(r).encode() and "alice" in repr(r)
    c = a.AuthRequest("chap", b"alice", chap_id=1, challenge=CH, response=b"r" * 16)
    assert (c.chap_id, c.challenge, c.password) == (1, CH, None)
    with pytest.raises(AttributeError):
        c.user = b"mallory"  # frozen
    assert a.AuthResult(False) == a.AuthResult(False, b"", None)
    assert a.AuthResult(True, b"ok", IPv4Address("10.0.0.9")).ipv4 == IPv4Address("10.0.0.9")
