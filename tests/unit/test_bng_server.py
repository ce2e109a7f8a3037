"""The BNG handler without sockets: what goes out after PADS, RFC 4638 PPP-Max-Payload, and the
session's end (RFC 2516, RFC 1661, RFC 4638)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pfrps.ac import protocol as p
from pfrps.bng import ppp
from pfrps.hashing import worker_for
from tests.bng_fake import WORKERS, FakeLoop, make_bng
from tests.bng_fuzz_frames import AC_MAC

CLIENT = bytes.fromhex("020000000042")
NOTAG = SimpleNamespace(vlan_tci=None, vlan_tpid=None)


def _drain(pairs) -> list:
    out = []
    for _tx, rx in pairs:
        while True:
            try:
                out.append(rx.recv(65536))
            except BlockingIOError:
                break
    return out


def _padr(max_payload=None) -> bytes:
    cookie = p.make_cookie(b"k" * 32, CLIENT, b"internet", p.cookie_window(1000.0, 1e9))
    frame = p.build_padr(CLIENT, AC_MAC, b"internet", cookie, host_uniq=b"hu", encoder="struct")
    if max_payload is not None:  # append the PPP-Max-Payload TAG and fix the PPPoE LENGTH
        tag = p.TAG_PPP_MAX_PAYLOAD.to_bytes(2, "big") + b"\x00\x02" + max_payload.to_bytes(2, "big")
        body = frame[20:] + tag
        frame = frame[:18] + len(body).to_bytes(2, "big") + body
    return frame


def _lcp_mru(frames) -> int:
    for f in frames:
        m = p.parse_frame(f)
        if type(m) is p.Session and m.protocol == ppp.PPP_LCP and m.ppp[2] == ppp.CONF_REQ:
            opts = ppp.parse_options(m.ppp[6:])
            return next(int.from_bytes(v, "big") for t, v in opts if t == 1)
    raise AssertionError("no LCP Configure-Request")


# (description, access MTU (ACConfig.max_frame - 14), PPP-Max-Payload asked, granted, our LCP MRU)
CASES = [
    ("no tag, big MTU: nothing granted", 1508, None, None, 1492),
    ("1500 asked on a 1508 MTU: granted", 1508, 1500, 1500, 1500),
    ("9000 asked on a 1508 MTU: what fits", 1508, 9000, 1500, 1500),
    ("1500 asked on a 1500 MTU: refused (no tag)", 1500, 1500, None, 1492),
    ("1492 asked: nothing to grant", 1508, 1492, None, 1492),
]


@pytest.mark.parametrize("desc,mtu,asked,granted,mru", CASES, ids=[c[0] for c in CASES])
def test_rfc4638_ppp_max_payload(desc, mtu, asked, granted, mru):
    loop = FakeLoop()
    bng, ctxs, pairs = make_bng(loop, max_frame=14 + mtu, max_payload=max(mtu - 8, 0) if mtu > 1500 else 0)
    ctx = ctxs[int(worker_for([CLIENT], WORKERS)[0])]
    bng.handle(memoryview(_padr(asked)), NOTAG, ctx)
    out = _drain(pairs)
    pads = p.parse_frame(out[0])
    assert type(pads) is p.Discovery and pads.code == p.PADS, desc
    assert p.max_payload_of(pads.tags) == granted, desc
    assert _lcp_mru(out[1:]) == mru, desc


def test_pads_then_lcp_configure_request_from_the_ac_mac():
    loop = FakeLoop()
    bng, ctxs, pairs = make_bng(loop, echo_interval=0)  # no keepalive: only LCP's own timer ends it
    ctx = ctxs[int(worker_for([CLIENT], WORKERS)[0])]
    bng.handle(memoryview(_padr()), NOTAG, ctx)
    out = [p.parse_frame(f) for f in _drain(pairs)]
    assert [type(m).__name__ for m in out] == ["Discovery", "Session"]
    pads, lcp = out
    assert pads.src == lcp.src == AC_MAC and lcp.dst == CLIENT and lcp.session_id == pads.session_id
    assert lcp.protocol == ppp.PPP_LCP and lcp.ppp[2] == ppp.CONF_REQ
    opts = dict(ppp.parse_options(lcp.ppp[6:]))
    assert opts[1] == (1492).to_bytes(2, "big") and opts[3] == (0xC023).to_bytes(2, "big") and len(opts[5]) == 4
    # the restart timer: the same request again after 3 s, 10 in all (Max-Configure), then PADT
    for _ in range(12):
        loop.advance(3.001)
    again = [p.parse_frame(f) for f in _drain(pairs)]
    reqs = [m for m in again if type(m) is p.Session and m.ppp[2] == ppp.CONF_REQ]
    assert len(reqs) == 9
    assert any(type(m) is p.Discovery and m.code == p.PADT for m in again)
    assert ctx.storage["ac"].sessions == {} and ctx.storage["bng"].subs == {}


def test_retransmitted_padr_keeps_one_session_and_one_lcp():
    loop = FakeLoop()
    bng, ctxs, pairs = make_bng(loop)
    ctx = ctxs[int(worker_for([CLIENT], WORKERS)[0])]
    for _ in range(3):
        bng.handle(memoryview(_padr()), NOTAG, ctx)
    out = [p.parse_frame(f) for f in _drain(pairs)]
    assert [m.code for m in out if type(m) is p.Discovery] == [p.PADS] * 3
    assert len({m.session_id for m in out}) == 1
    assert sum(1 for m in out if type(m) is p.Session) == 1
    assert len(ctx.storage["bng"].subs) == 1


def test_no_keepalive_echo_request_outside_lcp_opened():
    """RFC 1661 5.8: Echo-Requests only in the LCP Opened state. A client that answers nothing
    after PADS gets the LCP Configure-Request 10 times (Max-Configure) and then PADT, and no
    Echo-Request from the keepalive (every 5 s here), although it stays silent for 30 s."""
    loop = FakeLoop()
    bng, ctxs, pairs = make_bng(loop)  # keepalive every 5 s, as for a session that is up
    ctx = ctxs[int(worker_for([CLIENT], WORKERS)[0])]
    bng.handle(memoryview(_padr()), NOTAG, ctx)
    for _ in range(12):
        loop.advance(3.001)
    out = [p.parse_frame(f) for f in _drain(pairs)]
    lcp = [m.ppp[2] for m in out if type(m) is p.Session and m.protocol == ppp.PPP_LCP]
    assert lcp.count(ppp.CONF_REQ) == 10
    assert ppp.ECHO_REQ not in lcp
    assert [m.code for m in out if type(m) is p.Discovery] == [p.PADS, p.PADT]
    assert ctx.storage["ac"].sessions == {}
