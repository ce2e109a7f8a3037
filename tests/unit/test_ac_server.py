"""pfrps.ac.server: the AC handler, driven frame by frame through a real WorkerContext.

The context's socket is one end of a Unix datagram socketpair, so ``ctx.transmit`` works as in
a worker and the replies are read from the other end; counters are real SharedCounters.
"""

from __future__ import annotations

import socket
import warnings
from types import SimpleNamespace

import pytest
from scapy.layers.l2 import Ether
from scapy.layers.ppp import PPP_LCP_Echo, PPPoED, PPPoED_Tags

from pfrps.ac import protocol as p
from pfrps.ac.server import AC_COUNTERS, AC_GAUGES, AccessConcentrator, ACConfig
from pfrps.stats import SharedCounters
from pfrps.worker import WorkerContext

AC = bytes.fromhex("52540084d7ff")
OTHER_AC = bytes.fromhex("52540000aaaa")
SECRET = b"s" * 32
SERVICES = (b"internet", b"voip")


def host(i: int) -> bytes:
    return bytes([0x02, 0, 0, 0, i >> 8, i & 0xFF])


OUTCOMES = ("served", "ignored", "malformed")


class Clock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Harness:
    """One worker of an AC, without sockets to a network; its clock stands still unless moved."""

    def __init__(self, services=SERVICES, workers=4, worker_id=0, encoder="struct", secret=SECRET,
                 max_frame=1514, ac: AccessConcentrator | None = None, counters: SharedCounters | None = None,
                 **bounds):
        self.counters = counters or SharedCounters(workers, AC_COUNTERS, AC_GAUGES)
        self.tx, self.rx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.rx.setblocking(False)
        self.clock = Clock()
        self.ac = ac or AccessConcentrator(ACConfig(AC, b"test-ac", services, secret, encoder, max_frame, **bounds),
                                           workers, clock=self.clock)
        self.worker_id = worker_id
        self.ctx = WorkerContext(worker_id, workers, 1, self.tx, self.counters, loop=None)
        self.ac.on_start(self.ctx)

    def send(self, frame: bytes, vlan: int | None = None, tpid: int | None = None) -> list[bytes]:
        """Handle one frame (``vlan``: a TCI the kernel stripped); exactly one outcome counter moves."""
        before = self.outcomes()
        meta = SimpleNamespace(vlan_tci=vlan) if tpid is None else SimpleNamespace(vlan_tci=vlan, vlan_tpid=tpid)
        self.ac.handle(memoryview(frame), meta, self.ctx)
        after = self.outcomes()
        assert sum(after) - sum(before) == 1 and all(a >= b for a, b in zip(after, before)), (before, after)
        return self.replies()

    def outcomes(self) -> list[int]:
        row = self.counters.array[self.worker_id].view("i8")
        return [int(row[self.counters.column(n)]) for n in OUTCOMES]

    def replies(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.rx.recv(65536))
            except BlockingIOError:
                return out

    def counts(self) -> dict[str, int]:
        row = self.counters.array[self.worker_id]
        row = row.view("i8")
        return {n: int(row[self.counters.column(n)]) for n in AC_COUNTERS + AC_GAUGES
                if row[self.counters.column(n)] and n != "served"}

    def handshake(self, mac: bytes, service=b"internet", host_uniq=b"hu") -> int:
        (pado,) = self.send(p.build_padi(mac, service, host_uniq, encoder="struct"))
        cookie = p.parse_frame(pado).ac_cookie
        (pads,) = self.send(p.build_padr(mac, AC, service, cookie, host_uniq, encoder="struct"))
        return p.parse_frame(pads).session_id

    def close(self) -> None:
        self.tx.close()
        self.rx.close()


@pytest.fixture
def h():
    harness = Harness()
    yield harness
    harness.close()


def cookie(mac: bytes, service: bytes) -> bytes:
    return p.make_cookie(SECRET, mac, service)


C = host(1)
# (description, frame, expected reply: None or (code, session id or "any"), counters after)
FRAME_CASES = [
    ("PADI broadcast -> PADO", p.build_padi(C, b"internet", b"hu"), (p.PADO, 0), {"padi": 1, "pado": 1}),
    ("PADI unicast to us -> PADO",
     p.encode_discovery(AC, C, p.PADI, 0, [(p.TAG_SERVICE_NAME, b"voip")]), (p.PADO, 0), {"padi": 1, "pado": 1}),
    ("PADI for any service -> PADO", p.build_padi(C, b""), (p.PADO, 0), {"padi": 1, "pado": 1}),
    ("PADI for an unoffered service -> nothing (RFC 2516 5.2)", p.build_padi(C, b"iptv"), None,
     {"padi": 1, "ignored": 1}),
    ("PADI unicast to another AC -> nothing",
     p.encode_discovery(OTHER_AC, C, p.PADI, 0, [(p.TAG_SERVICE_NAME, b"")]), None, {"padi": 1, "ignored": 1}),
    ("PADR for an unoffered service -> PADS Service-Name-Error",
     p.build_padr(C, AC, b"iptv", cookie(C, b"iptv")), (p.PADS, 0), {"padr": 1, "pads_error": 1}),
    ("PADR without AC-Cookie -> nothing", p.build_padr(C, AC, b"internet", None), None,
     {"padr": 1, "bad_cookie": 1, "ignored": 1}),
    ("PADR with another MAC's cookie -> nothing", p.build_padr(C, AC, b"internet", cookie(host(2), b"internet")),
     None, {"padr": 1, "bad_cookie": 1, "ignored": 1}),
    ("PADR with another service's cookie -> nothing", p.build_padr(C, AC, b"internet", cookie(C, b"voip")),
     None, {"padr": 1, "bad_cookie": 1, "ignored": 1}),
    ("PADR with a cookie of the previous window -> PADS",
     p.build_padr(C, AC, b"internet", p.make_cookie(SECRET, C, b"internet", -1), b"hu"), (p.PADS, "any"),
     {"padr": 1, "pads": 1, "sessions": 1}),
    ("PADR with a cookie two windows old -> nothing",
     p.build_padr(C, AC, b"internet", p.make_cookie(SECRET, C, b"internet", -2), b"hu"), None,
     {"padr": 1, "bad_cookie": 1, "ignored": 1}),
    ("PADR with a cookie of the next window -> nothing",
     p.build_padr(C, AC, b"internet", p.make_cookie(SECRET, C, b"internet", 1), b"hu"), None,
     {"padr": 1, "bad_cookie": 1, "ignored": 1}),
    ("PADI of 1485 octets -> malformed (RFC 2516 5.1)",
     p.encode_discovery(p.BROADCAST, C, p.PADI, 0, [(p.TAG_SERVICE_NAME, b""), (0x7777, b"x" * 1471)], "struct"),
     None, {"malformed": 1}),
    ("PADR with a good cookie -> PADS", p.build_padr(C, AC, b"internet", cookie(C, b"internet"), b"hu"),
     (p.PADS, "any"), {"padr": 1, "pads": 1, "sessions": 1}),
    ("PADR for any service -> PADS", p.build_padr(C, AC, b"", cookie(C, b"")), (p.PADS, "any"),
     {"padr": 1, "pads": 1, "sessions": 1}),
    ("PADR broadcast -> nothing", p.encode_discovery(p.BROADCAST, C, p.PADR, 0, [(p.TAG_SERVICE_NAME, b"internet")]),
     None, {"padr": 1, "ignored": 1}),
    ("PADT for no session -> nothing", p.build_padt(AC, C, 0x0100), None, {"padt_rx": 1}),
    ("PADT to another AC -> nothing", p.build_padt(OTHER_AC, C, 0x0100), None, {"ignored": 1}),
    ("LCP echo on an unknown session -> PADT", p.build_lcp_echo_request(C, AC, 0x0100, 1), (p.PADT, 0x0100),
     {"padt_tx": 1}),
    ("IPv4 on an unknown session -> PADT", p.encode_session(AC, C, 0x0077, b"\x00\x21" + b"\x45" * 20),
     (p.PADT, 0x0077), {"padt_tx": 1}),
    ("session frame to another AC -> nothing", p.build_lcp_echo_request(C, OTHER_AC, 0x0100, 1), None,
     {"ignored": 1}),
    ("PADO from another AC -> nothing", p.build_pado(C, OTHER_AC, b"x", b"", b"c" * 16), None, {"ignored": 1}),
    ("PADS from another AC -> nothing", p.build_pads(C, OTHER_AC, 5, b""), None, {"ignored": 1}),
    ("truncated frame -> malformed", p.build_padi(C, b"internet")[:17], None, {"malformed": 1}),
    ("multicast source -> malformed", p.build_padi(bytes.fromhex("01005e000001"), b""), None, {"malformed": 1}),
    ("IPv4 frame -> malformed", bytes(12) + b"\x08\x00" + bytes(40), None, {"malformed": 1}),
]


@pytest.mark.parametrize("desc,frame,reply,counts", FRAME_CASES, ids=[c[0] for c in FRAME_CASES])
def test_frame_table(h, desc, frame, reply, counts):
    out = h.send(frame)
    if reply is None:
        assert out == [], desc
    else:
        assert len(out) == 1, desc
        res = p.parse_frame(out[0])
        assert type(res) is p.Discovery and res.code == reply[0], (desc, res)
        assert res.dst == C and res.src == AC
        if reply[1] != "any":
            assert res.session_id == reply[1]
        else:
            assert res.session_id != 0 and res.session_id % 4 == h.worker_id
    assert h.counts() == counts, desc


S_TAG = b"\x88\xa8\x00\x0a"       # 802.1ad, VID 10
C_TAG = b"\x81\x00\x20\x64"       # 802.1Q, PCP 1, VID 100
C_TAG_PCP5 = b"\x81\x00\xa0\x64"  # the same VID, another priority


# (description, tags in the frame, TCI stripped by the kernel, its TPID from meta, tags the reply must carry)
VLAN_CASES = [
    ("802.1Q in the frame", C_TAG, None, None, C_TAG),
    ("QinQ 0x88a8/0x8100 in the frame", S_TAG + C_TAG, None, None, S_TAG + C_TAG),
    ("QinQ 0x8100/0x8100 in the frame", C_TAG + C_TAG, None, None, C_TAG + C_TAG),
    ("802.1Q stripped by the kernel: 0x8100 put back", b"", 0x2064, None, C_TAG),
    ("QinQ, S-tag stripped: 0x88a8 put back before the C-tag", C_TAG, 0x000A, None, S_TAG + C_TAG),
    ("0x8100/0x8100 with meta.vlan_tpid: the TPID the kernel reported", C_TAG, 0x2064, 0x8100, C_TAG + C_TAG),
]


@pytest.mark.parametrize("desc,tags,tci,tpid,want", VLAN_CASES, ids=[c[0] for c in VLAN_CASES])
def test_vlan_tagged_discovery_and_session_echo_the_tags(desc, tags, tci, tpid, want):
    h = Harness()
    try:
        tagit = lambda f: p.with_vlan(f, tags)  # noqa: E731
        (pado,) = h.send(tagit(p.build_padi(C, b"internet", b"hu", encoder="struct")), tci, tpid)
        assert pado[12:12 + len(want)] == want, desc
        untagged = pado[:12] + pado[12 + len(want):]
        d = p.parse_frame(untagged)
        assert d.code == p.PADO and d.dst == C and d.host_uniq == b"hu"
        (pads,) = h.send(tagit(p.build_padr(C, AC, b"internet", d.ac_cookie, b"hu", encoder="struct")), tci, tpid)
        assert pads[12:12 + len(want)] == want
        s = p.parse_frame(pads)
        assert s.code == p.PADS and s.vlan == want  # the tags on the wire, the stripped one put back
        sid = s.session_id
        (echo,) = h.send(tagit(p.build_lcp_echo_request(C, AC, sid, 5, data=b"d", encoder="struct")), tci, tpid)
        assert echo[12:12 + len(want)] == want and p.parse_frame(echo).lcp_code == p.LCP_ECHO_REPLY
        (padt,) = h.send(tagit(p.build_lcp_echo_request(C, AC, 0x0BAD, 1, encoder="struct")), tci, tpid)
        assert padt[12:12 + len(want)] == want and p.parse_frame(padt).code == p.PADT
        h.ac.on_stop(h.ctx)  # the shutdown PADT goes out on the session's VLANs
        (bye,) = h.replies()
        assert bye[12:12 + len(want)] == want and p.parse_frame(bye).session_id == sid
        assert h.counts() == {"padi": 1, "pado": 1, "padr": 1, "pads": 1, "echo": 1, "padt_tx": 2, "tagged": 4}
    finally:
        h.close()


def test_a_session_belongs_to_its_vlan(h):
    """The same MAC on another C-VLAN is another subscriber; another priority is the same one."""
    (pado,) = h.send(p.with_vlan(p.build_padi(C, b"internet", b"hu", encoder="struct"), S_TAG + C_TAG))
    cookie_ = p.parse_frame(pado).ac_cookie
    (pads,) = h.send(p.with_vlan(p.build_padr(C, AC, b"internet", cookie_, b"hu", encoder="struct"), S_TAG + C_TAG))
    sid = p.parse_frame(pads).session_id
    (echo,) = h.send(p.with_vlan(p.build_lcp_echo_request(C, AC, sid, 1, encoder="struct"), S_TAG + C_TAG_PCP5))
    assert p.parse_frame(echo).lcp_code == p.LCP_ECHO_REPLY
    (padt,) = h.send(p.with_vlan(p.build_lcp_echo_request(C, AC, sid, 2, encoder="struct"), S_TAG))
    assert p.parse_frame(padt).code == p.PADT
    # a PADR on another VLAN with the same Host-Uniq opens another session, not the first one
    (pads2,) = h.send(p.with_vlan(p.build_padr(C, AC, b"internet", cookie_, b"hu", encoder="struct"), C_TAG))
    assert p.parse_frame(pads2).session_id != sid and h.counts()["sessions"] == 2
    # a PADT for the first session from the other VLAN does not end it; from its own it does
    h.send(p.with_vlan(p.build_padt(AC, C, sid, encoder="struct"), C_TAG))
    assert h.counts()["sessions"] == 2
    h.send(p.with_vlan(p.build_padt(AC, C, sid, encoder="struct"), S_TAG + C_TAG_PCP5))
    assert h.counts()["sessions"] == 1


def test_three_tags_are_malformed(h):
    assert h.send(p.with_vlan(p.build_padi(C, b"internet", encoder="struct"), S_TAG + C_TAG + C_TAG)) == []
    assert h.send(p.with_vlan(p.build_padi(C, b"internet", encoder="struct"), S_TAG + C_TAG), vlan=7) == []
    assert h.counts() == {"malformed": 2}


def test_pado_contents(h):
    (pado,) = h.send(p.build_padi(C, b"voip", b"uniq-1", b"relay-7"))
    pkt = Ether(pado)
    tags = [(t.tag_type, bytes(t.tag_value)) for t in pkt[PPPoED_Tags].tag_list]
    assert tags == [(p.TAG_AC_NAME, b"test-ac"), (p.TAG_SERVICE_NAME, b"voip"), (p.TAG_SERVICE_NAME, b"internet"),
                    (p.TAG_AC_COOKIE, cookie(C, b"voip")), (p.TAG_HOST_UNIQ, b"uniq-1"),
                    (p.TAG_RELAY_SESSION_ID, b"relay-7")]


def test_pads_error_contents(h):
    (pads,) = h.send(p.build_padr(C, AC, b"iptv", None, b"u", b"r"))
    pkt = Ether(pads)
    assert pkt[PPPoED].sessionid == 0
    tags = [(t.tag_type, bytes(t.tag_value)) for t in pkt[PPPoED_Tags].tag_list]
    assert (p.TAG_SERVICE_NAME_ERROR, b"service not offered") in tags
    assert (p.TAG_HOST_UNIQ, b"u") in tags and (p.TAG_RELAY_SESSION_ID, b"r") in tags


def test_full_handshake_echoes_host_uniq_and_relay(h):
    (pado,) = h.send(p.build_padi(C, b"internet", b"hu-9", b"rel"))
    d = p.parse_frame(pado)
    (pads,) = h.send(p.build_padr(C, AC, b"internet", d.ac_cookie, b"hu-9", b"rel"))
    s = p.parse_frame(pads)
    assert s.code == p.PADS and s.session_id % 4 == 0 and s.session_id not in (0, 0xFFFF)
    assert (s.service_name, s.host_uniq, s.relay_session_id) == (b"internet", b"hu-9", b"rel")
    assert h.counts() == {"padi": 1, "pado": 1, "padr": 1, "pads": 1, "sessions": 1}


def test_repeated_padr_is_idempotent():
    h = Harness(sessions_per_mac=2)
    try:
        sid = h.handshake(C, host_uniq=b"A")
        padr = p.build_padr(C, AC, b"internet", cookie(C, b"internet"), b"A")
        for _ in range(3):
            (pads,) = h.send(padr)
            assert p.parse_frame(pads).session_id == sid
        other = h.handshake(C, host_uniq=b"B")  # another Host-Uniq from the same MAC: another session
        assert other != sid
        assert h.counts()["sessions"] == 2 and h.counts()["pads"] == 5
    finally:
        h.close()


def test_a_new_host_uniq_replaces_the_old_session_instead_of_leaking_an_id(h):
    """A client that restarts discovery with a fresh Host-Uniq 1000 times holds one id, not 1000."""
    first = h.handshake(C, host_uniq=b"hu-0")
    for i in range(1, 1000):
        h.handshake(C, host_uniq=b"hu-%d" % i)
    st = h.ctx.storage["ac"]
    assert len(st.sessions) == len(st.ids) == 1 and len(st.by_uniq) == 1 and len(st.by_mac) == 1
    c = h.counts()
    assert (c["sessions"], c["replaced"], c["pads"]) == (1, 999, 1000)
    (padt,) = h.send(p.build_lcp_echo_request(C, AC, first, 1))  # the first session is gone
    assert p.parse_frame(padt).code == p.PADT


def test_session_limit_per_worker_gives_ac_system_error_and_freed_ids_are_reused():
    h = Harness(max_sessions=3)
    try:
        sids = [h.handshake(host(i)) for i in range(3)]
        (pads,) = h.send(p.build_padr(host(9), AC, b"internet", cookie(host(9), b"internet"), b"x"))
        res = p.parse_frame(pads)
        assert res.code == p.PADS and res.session_id == 0
        assert dict(res.tags)[p.TAG_AC_SYSTEM_ERROR] == b"session limit reached (3 on this worker)"
        assert dict(res.tags)[p.TAG_HOST_UNIQ] == b"x"
        assert h.counts()["pads_error"] == 1 and h.counts()["sessions"] == 3
        h.send(p.build_padt(AC, host(1), sids[1]))
        assert h.handshake(host(9)) not in (0, sids[0], sids[2])
        assert h.counts()["sessions"] == 3
    finally:
        h.close()


def test_ids_freed_on_padt_are_reused_so_they_never_run_out():
    h = Harness(workers=1024, worker_id=5)  # a 64-id partition
    try:
        for i in range(64 * 20):  # 20 times the partition, each session ended by PADT
            sid = h.handshake(host(i))
            assert sid % 1024 == 5
            h.send(p.build_padt(AC, host(i), sid))
        assert h.counts().get("sessions", 0) == 0 and h.counts().get("pads_error", 0) == 0
    finally:
        h.close()


def test_keepalive_echo_then_expiry_with_padt():
    h = Harness(echo_interval=10.0, echo_misses=2)
    try:
        quiet = h.handshake(host(1))
        alive = h.handshake(host(2))
        h.clock.now = 5.0
        h.ac.sweep(h.ctx)  # nobody silent for an interval yet
        assert h.replies() == []
        for t in (10.0, 20.0):
            h.clock.now = t
            (echo,) = h.send(p.build_lcp_echo_request(host(2), AC, alive, 1))  # host 2 keeps talking
            h.ac.sweep(h.ctx)
            (probe,) = h.replies()
            m = p.parse_frame(probe)
            assert (m.dst, m.src, m.session_id, m.lcp_code, m.lcp_magic) == (host(1), AC, quiet, p.LCP_ECHO_REQUEST, 0)
        h.clock.now = 30.0
        h.send(p.build_lcp_echo_reply(AC, host(2), alive, 1))  # an Echo-Reply also counts as alive
        h.ac.sweep(h.ctx)
        (padt,) = h.replies()
        m = p.parse_frame(padt)
        assert (m.code, m.dst, m.session_id) == (p.PADT, host(1), quiet)
        assert dict(m.tags)[p.TAG_GENERIC_ERROR] == b"keepalive timeout"
        c = h.counts()
        assert (c["sessions"], c["expired"], c["echo_tx"], c["padt_tx"]) == (1, 1, 2, 1)
        h.clock.now = 45.0  # host 2 falls silent: probed at 45 and 55, gone at 65
        for t, want in ((45.0, p.LCP_ECHO_REQUEST), (55.0, p.LCP_ECHO_REQUEST), (65.0, p.PADT)):
            h.clock.now = t
            h.ac.sweep(h.ctx)
            (f,) = h.replies()
            m = p.parse_frame(f)
            assert (m.lcp_code if type(m) is p.Session else m.code) == want and m.dst == host(2)
        assert h.counts().get("sessions", 0) == 0 and h.counts()["expired"] == 2
        assert h.handshake(host(1)) != 0  # its id is free again; the PADR cookie is still in window
    finally:
        h.close()


def test_padt_for_unknown_sessions_is_rate_limited():
    h = Harness(padt_rate=10.0, padt_burst=5)
    try:
        junk = [p.build_lcp_echo_request(host(i), AC, 0x0100 + i, 1) for i in range(20)]
        sent = sum(len(h.send(f)) for f in junk)
        assert sent == 5 and h.counts()["padt_ratelimited"] == 15 and h.counts()["ignored"] == 15
        h.clock.now = 0.35  # 3.5 tokens refilled at 10/s
        assert sum(len(h.send(f)) for f in junk) == 3
        c = h.counts()
        assert (c["padt_tx"], c["padt_ratelimited"]) == (8, 32)
    finally:
        h.close()


def test_cookie_expires_after_two_windows():
    h = Harness(cookie_window=60.0)
    try:
        (pado,) = h.send(p.build_padi(C, b"internet", b"hu"))
        old = p.parse_frame(pado).ac_cookie
        h.clock.now = 119.9  # the next window: still good
        (pads,) = h.send(p.build_padr(C, AC, b"internet", old, b"hu"))
        assert p.parse_frame(pads).session_id != 0
        h.clock.now = 120.0  # two windows on: refused
        assert h.send(p.build_padr(host(2), AC, b"internet", cookie(host(2), b"internet"), b"hu")) == []
        assert h.counts()["bad_cookie"] == 1
    finally:
        h.close()


def test_echo_padt_and_gauge(h):
    sids = [h.handshake(host(i)) for i in range(1, 6)]
    assert len(set(sids)) == 5 and h.counts()["sessions"] == 5
    (rep,) = h.send(p.build_lcp_echo_request(host(1), AC, sids[0], 42, 0x11223344, b"keepalive"))
    echo = Ether(rep)[PPP_LCP_Echo]
    assert (echo.code, echo.id, echo.magic_number, bytes(echo.data)) == (10, 42, 0, b"keepalive")
    assert Ether(rep).dst == host(1).hex(":")
    # a known session id from the wrong MAC is not that session
    (padt,) = h.send(p.build_lcp_echo_request(host(2), AC, sids[0], 1))
    assert p.parse_frame(padt).code == p.PADT and p.parse_frame(padt).dst == host(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the gauge decrement must not warn
        for i, sid in enumerate(sids[:3], 1):
            assert h.send(p.build_padt(AC, host(i), sid)) == []
    assert h.counts()["sessions"] == 2 and h.counts()["padt_rx"] == 3
    (padt,) = h.send(p.build_lcp_echo_request(host(1), AC, sids[0], 2))  # that session is gone
    assert p.parse_frame(padt).session_id == sids[0]
    assert h.send(p.build_padt(AC, host(1), sids[0])) == []  # a second PADT changes nothing
    c = h.counts()
    assert (c["sessions"], c["padt_rx"], c["padt_tx"], c["echo"]) == (2, 4, 2, 1)


def test_non_echo_lcp_on_a_session_is_ignored(h):
    sid = h.handshake(C)
    assert h.send(p.encode_session(AC, C, sid, b"\xc0\x21\x01\x01\x00\x04")) == []
    assert h.counts()["ignored"] == 1


def test_on_stop_sends_padt_for_every_session(h):
    sids = {h.handshake(host(i)): host(i) for i in range(1, 4)}
    h.ac.on_stop(h.ctx)
    got = {p.parse_frame(f).session_id: p.parse_frame(f).dst for f in h.replies()}
    assert got == sids
    assert h.counts().get("sessions", 0) == 0 and h.counts()["padt_tx"] == 3


def test_restarted_worker_starts_from_zero_gauge_and_honours_old_cookies():
    first = Harness(worker_id=2)
    try:
        (pado,) = first.send(p.build_padi(C, b"internet", b"x"))
        for i in range(1, 4):
            first.handshake(host(i))
        assert first.counts()["sessions"] == 3
        # The worker is SIGKILLed: no on_stop. The supervisor zeroes its gauges and forks a new
        # one from the same parent (same AccessConcentrator, same counters).
        first.counters.reset_gauges(2)
        second = Harness(worker_id=2, ac=first.ac, counters=first.counters, workers=4)
        try:
            assert first.counts().get("sessions", 0) == 0
            # the PADO came from the dead process; the new one accepts its cookie
            (pads,) = second.send(p.build_padr(C, AC, b"internet", p.parse_frame(pado).ac_cookie, b"x"))
            assert p.parse_frame(pads).code == p.PADS and p.parse_frame(pads).session_id % 4 == 2
            assert second.counts()["sessions"] == 1
        finally:
            second.close()
    finally:
        first.close()


def test_out_of_session_ids_gives_ac_system_error():
    h = Harness(workers=1024, worker_id=5)  # 64 ids
    try:
        sids = [h.handshake(host(i)) for i in range(64)]
        assert len(set(sids)) == 64 and all(s % 1024 == 5 for s in sids)
        (pads,) = h.send(p.build_padr(host(99), AC, b"internet", cookie(host(99), b"internet")))
        res = p.parse_frame(pads)
        assert res.session_id == 0 and any(t == p.TAG_AC_SYSTEM_ERROR for t, _ in res.tags)
        h.send(p.build_padt(AC, host(0), sids[0]))
        assert h.handshake(host(99)) % 1024 == 5
    finally:
        h.close()


def test_any_service_ac():
    h = Harness(services=())
    try:
        (pado,) = h.send(p.build_padi(C, b"whatever"))
        tags = Ether(pado)[PPPoED_Tags].tag_list
        assert [bytes(t.tag_value) for t in tags if t.tag_type == p.TAG_SERVICE_NAME] == [b"whatever"]
        assert h.handshake(C, b"whatever") != 0
    finally:
        h.close()


def test_reply_too_big_for_the_mtu_is_not_sent():
    h = Harness(max_frame=100)
    try:
        assert h.send(p.build_padi(C, b"internet", b"u" * 60)) == []
        assert h.counts() == {"padi": 1, "ignored": 1}
    finally:
        h.close()


def test_scapy_and_struct_encoders_answer_identically():
    """Every reply the AC sends is the same bytes whichever encoder it uses."""
    a, b = Harness(encoder="struct"), Harness(encoder="scapy")
    try:
        for x in (a, b):  # the same session-id sequence in both
            x.ctx.storage["ac"].ids = p.SessionIdAllocator(0, 4, start=0)
        (pads,) = a.send(p.build_padr(C, AC, b"internet", cookie(C, b"internet"), b"hu", b"rel"))
        assert b.send(p.build_padr(C, AC, b"internet", cookie(C, b"internet"), b"hu", b"rel")) == [pads]
        sid = p.parse_frame(pads).session_id
        frames = [p.build_padi(C, b"internet", b"hu", b"rel"), p.build_padi(C, b""),
                  p.build_padr(C, AC, b"iptv", None, b"hu"), p.build_lcp_echo_request(C, AC, sid, 3, 7, b"abc"),
                  p.build_lcp_echo_request(C, AC, 0x0999, 3), p.build_padt(AC, C, 0x0999)]
        for f in frames:
            assert a.send(f) == b.send(f)
        a.ac.on_stop(a.ctx)
        b.ac.on_stop(b.ctx)
        assert a.replies() == b.replies() != []
        assert a.counts() == b.counts()
    finally:
        a.close()
        b.close()


def test_config_validation():
    with pytest.raises(ValueError):
        ACConfig(bytes.fromhex("01005e000001"), b"x")
    with pytest.raises(ValueError):
        ACConfig(AC, b"x", secret=b"short")
    with pytest.raises(ValueError):
        ACConfig(AC, b"x", encoder="fast")
