"""The pfrps-bng fuzz corpus (tests/bng_fuzz_frames.py): seeded, every kind, and each kind is what it
says (valid frames cross-checked with scapy's dissectors)."""

from __future__ import annotations

import json
import struct
from collections import Counter

import pytest
from scapy.layers.l2 import Ether
from scapy.layers.ppp import PPP, PPPoE

from pfrps.ac import protocol as p
from pfrps.bng import auth
from tests import bng_fuzz_frames as bf

N = 4000


@pytest.fixture(scope="module")
def corpus():
    return list(bf.generate(14, N))


def options(data: bytes):
    """A reference RFC 1661 option walk: list of (type, value), or 'short' / 'overrun'."""
    out, off = [], 0
    while off < len(data):
        if len(data) - off < 2:
            return "overrun"
        t, n = data[off], data[off + 1]
        if n < 2:
            return "short"
        if off + n > len(data):
            return "overrun"
        out.append((t, data[off + 2:off + n]))
        off += n
    return out


def session(frame):
    """The frame's PPPoE session (VLAN tags, ids, PPP bytes within LENGTH): a lenient walk, since
    pfrps.ac's parse_frame already rejects some bad LCP lengths."""
    base = bf._pppoe_offset(frame)
    vt, code, sid, length = struct.unpack_from("!BBHH", frame, base)
    assert frame[base - 2:base] == b"\x88\x64" and vt == 0x11 and code == 0 and base + 6 + length <= len(frame)
    ppp = frame[base + 6:base + 6 + length]
    return p.Session(frame[:6], frame[6:12], sid, struct.unpack_from("!H", ppp)[0], ppp, vlan=frame[12:base - 2])


def control(m):
    """(code, identifier, Length field, data within Length) of a session's control packet."""
    code, ident, length = struct.unpack_from("!BBH", m.ppp, 2)
    return code, ident, length, m.ppp[6:2 + length]


def test_the_generator_is_seeded_and_makes_every_kind(corpus):
    assert corpus == list(bf.generate(14, N)) and corpus != list(bf.generate(15, N))
    assert {k for k, _ in corpus} == set(bf.KINDS)
    safe = [f for _, f in bf.generate(14, N, socket_safe=True)]
    assert min(map(len, safe)) >= 14 and max(map(len, safe)) <= 1514


def test_valid_frames_cover_every_protocol_and_vlan_depth(corpus):
    protos, depths = Counter(), Counter()
    for kind, f in corpus:
        if kind == "valid":
            m = session(f)
            protos[m.protocol] += 1
            depths[len(m.vlan) // 4] += 1
    assert set(protos) == set(bf.CONTROL_PROTOCOLS) | {bf.PPP_IPV6}
    assert set(depths) == {0, 1, 2}


def test_valid_frames_are_well_formed_and_scapy_agrees(corpus):
    codes = Counter()
    for kind, f in corpus:
        if kind != "valid":
            continue
        m = session(f)
        assert isinstance(p.parse_frame(f), p.Session), "pfrps.ac's parser takes it too"
        s = Ether(f)
        assert s[PPPoE].sessionid == m.session_id and s[PPP].proto == m.protocol
        if m.protocol == bf.PPP_IPV6:
            from pfrps.bng.nd import parse_rs  # noqa: PLC0415

            assert parse_rs(m.ppp[2:])
            continue
        code, ident, length, data = control(m)
        assert length == len(m.ppp) - 2, "Length covers the packet exactly"
        codes[(m.protocol, code)] += 1
        if m.protocol in bf.NCP and code <= 4:
            opts = options(data)
            assert isinstance(opts, list)
            assert len({t for t, _ in opts}) == len(opts), "valid Configure-* carry each option once"
        elif m.protocol == bf.PPP_PAP:
            r = auth.parse_pap(m.ppp[2:]) if code == 1 else auth.parse_pap_reply(m.ppp[2:])
            assert not isinstance(r, str), r
        elif m.protocol == bf.PPP_CHAP:
            parse = {1: auth.parse_chap_challenge, 2: auth.parse_chap_response}.get(code, auth.parse_chap_result)
            assert not isinstance(parse(m.ppp[2:]), str)
            if code == 2:  # scapy's CHAP dissector reads the same value and name
                r = auth.parse_chap_response(m.ppp[2:])
                assert (s.value, s.optional_name) == (r.value, r.name)
        if m.protocol == bf.PPP_LCP:  # scapy's LCP dissector reads the same code, id and length
            assert (s[PPP].payload.code, s[PPP].payload.id, s[PPP].payload.len) == (code, ident, length)
    for want in [(bf.PPP_LCP, c) for c in range(1, 12)] + [(bf.PPP_PAP, 1), (bf.PPP_CHAP, 2), (bf.PPP_IPCP, 1),
                                                          (bf.PPP_IPV6CP, 1), (bf.PPP_IPCP, 7)]:
        assert codes[want] > 0, f"no valid {want}"


def test_each_malformed_kind_is_what_it_says(corpus):
    seen = Counter()
    for kind, f in corpus:
        m = p.parse_frame(f)
        if kind == "bad_length":
            m = session(f)
            assert control(m)[2] != len(m.ppp) - 2
        elif kind in ("short_option", "option_overrun"):
            m = session(f)
            code, _i, length, data = control(m)
            assert m.protocol in bf.NCP and 1 <= code <= 4 and length == len(m.ppp) - 2
            assert options(data) == {"short_option": "short", "option_overrun": "overrun"}[kind]
        elif kind == "unknown_code":
            m = session(f)
            assert not 1 <= control(m)[0] <= bf._MAX_CODE[m.protocol]
        elif kind == "repeated_option":
            m = session(f)
            code, _i, _l, data = control(m)
            opts = options(data)
            assert code == 1 and isinstance(opts, list)
            types = Counter(t for t, _ in opts)
            assert max(types.values()) == 2
        elif kind == "truncated":
            if isinstance(m, p.Session) and len(m.ppp) >= 6:
                assert struct.unpack_from("!H", m.ppp, 4)[0] != len(m.ppp) - 2 or m.protocol == bf.PPP_IPV6
        elif kind == "bad_pppoe":
            if isinstance(m, p.Session):
                assert len(m.ppp) < 6 or struct.unpack_from("!H", m.ppp, 4)[0] != len(m.ppp) - 2 \
                    or m.protocol == bf.PPP_IPV6
        elif kind == "unknown_protocol":
            m = session(f)
            assert m.protocol not in bf.CONTROL_PROTOCOLS + (bf.PPP_IPV6, 0x0021)
        seen[kind] += 1
    assert set(seen) == set(bf.KINDS)


def test_live_sessions_get_half_the_frames():
    live = [(bytes.fromhex("02aa00000001"), 77, b"\x81\x00\x00\x0a")]
    hits = 0
    for _kind, f in bf.generate(3, 2000, live=live):
        m = p.parse_frame(f)
        hits += isinstance(m, p.Session) and m.src == live[0][0] and m.session_id == 77 and m.vlan == live[0][2]
    assert 700 < hits < 1100


def test_show_prints_json_lines(capsys):
    assert bf.main(["show", "--seed", "7", "--count", "30"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 30 and all(x["kind"] in bf.KINDS and x["len"] > 0 for x in lines)
