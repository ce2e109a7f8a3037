"""pfrps-ac's state bounds end to end (issue 10, failure 6), in namespaces named ac-bounds-*.

Keepalive expiry by LCP echo, the per-worker session limit, one session per MAC (a new
Host-Uniq replaces, ids do not leak), cookies bound to a time window, the PADI size limit of
RFC 2516 5.1, and PADTs to unknown sessions through a token bucket. Each fails on an AC
without these bounds (it never probes or expires, opens a session per Host-Uniq and per PADR
until the id partition is gone, accepts any cookie of the run, answers a 1485-octet PADI and
reflects every junk session frame with a PADT).
"""

from __future__ import annotations

import time

import pytest
from scapy.layers.l2 import Ether
from scapy.layers.ppp import PPPoED

from pfrps.ac import protocol as p
from pfrps.hashing import worker_for
from pfrps.topology import TwoNodeTopology
from pfrps.testing.ac import AC_MAC, WORKERS, ACProcess, PPPoEClient, client_mac, is_disc, tag, totals

pytestmark = pytest.mark.root


@pytest.fixture
def topo():
    with TwoNodeTopology.unique(prefix="ac-bounds") as t:
        yield t


def ac_args(*args: str):
    """Start this test's AC with ``args``."""
    return pytest.mark.parametrize("ac_and_client", [args], indirect=True, ids=[" ".join(args)])


@pytest.fixture
def ac_and_client(request, topo):
    """An AC started with the arguments the test passes (``ac_args``), and a client; both stopped after."""
    ac = ACProcess(topo, *getattr(request, "param", ()))
    cl = PPPoEClient(topo)
    yield ac, cl
    rc, final = ac.stop()
    cl.close()
    assert rc == 0 and sum(final["handler_errors"]) == 0, "\n".join(ac.log)


def handshake(cl: PPPoEClient, mac: bytes, host_uniq: bytes = b"hu") -> bytes:
    """PADI/PADO/PADR; the PADS."""
    cl.send(p.build_padi(mac, b"internet", host_uniq))
    (pado,) = cl.expect(1, lambda f: is_disc(f, p.PADO, mac))
    cl.send(p.build_padr(mac, AC_MAC, b"internet", tag(pado, p.TAG_AC_COOKIE), host_uniq))
    (pads,) = cl.expect(1, lambda f: is_disc(f, p.PADS, mac))
    return pads


def sid_of(f: bytes) -> int:
    return Ether(f)[PPPoED].sessionid if is_disc(f, p.PADS) or is_disc(f, p.PADT) else Ether(f).sessionid


def is_echo(f: bytes, code: int, dst: bytes) -> bool:
    return f[:6] == dst and f[12:14] == b"\x88\x64" and f[20:22] == b"\xc0\x21" and f[22] == code


@ac_args("--echo-interval", "0.25", "--echo-misses", "2")
def test_silent_session_is_probed_then_expires_with_padt(ac_and_client):
    ac, cl = ac_and_client
    quiet, chatty = client_mac(1), client_mac(2)
    q_sid = sid_of(handshake(cl, quiet))
    c_sid = sid_of(handshake(cl, chatty))
    # the quiet client gets exactly 2 Echo-Requests, then a PADT; the chatty one answers each probe
    got_padt = False
    probes = {quiet: 0, chatty: 0}
    deadline = time.monotonic() + 10
    while not got_padt and time.monotonic() < deadline:
        (f,) = cl.expect(1, lambda f: is_echo(f, p.LCP_ECHO_REQUEST, quiet) or is_echo(f, p.LCP_ECHO_REQUEST, chatty)
                         or is_disc(f, p.PADT, quiet))
        if is_disc(f, p.PADT):
            got_padt = True
            assert sid_of(f) == q_sid and tag(f, p.TAG_GENERIC_ERROR) == b"keepalive timeout"
            continue
        assert Ether(f).sessionid == (q_sid if f[:6] == quiet else c_sid)
        probes[f[:6]] += 1
        if f[:6] == chatty:  # RFC 1661 5.8: answer with the same Identifier
            cl.send(p.build_lcp_echo_reply(AC_MAC, chatty, c_sid, f[23]))
    assert got_padt and probes[quiet] == 2
    snap = ac.wait_for(lambda s: totals(s)["expired"] == 1, "one expiry")
    assert totals(snap)["sessions"] == 1  # the chatty client's session lives on
    cl.send(p.build_lcp_echo_request(chatty, AC_MAC, c_sid, 77))
    cl.expect(1, lambda f: is_echo(f, p.LCP_ECHO_REPLY, chatty))


def owned_macs(worker: int, n: int, start: int = 100) -> list[bytes]:
    """``n`` client MACs that steering puts on ``worker``."""
    macs = [client_mac(i) for i in range(start, start + 64 * n)]
    owners = worker_for(b"".join(macs), WORKERS)
    return [m for m, w in zip(macs, owners) if w == worker][:n]


@ac_args("--max-sessions", "3")
def test_session_limit_per_worker_and_freed_ids_reused(ac_and_client):
    ac, cl = ac_and_client
    macs = owned_macs(2, 5)
    sids = [sid_of(handshake(cl, m)) for m in macs[:3]]
    assert all(s % WORKERS == 2 for s in sids) and len(set(sids)) == 3
    full = handshake(cl, macs[3])
    assert sid_of(full) == 0 and tag(full, p.TAG_AC_SYSTEM_ERROR) == b"session limit reached (3 on this worker)"
    other = owned_macs(1, 1)[0]  # another worker has room
    assert sid_of(handshake(cl, other)) % WORKERS == 1
    cl.send(p.build_padt(AC_MAC, macs[0], sids[0]))
    again = handshake(cl, macs[4])
    assert sid_of(again) not in (0, sids[1], sids[2])
    snap = ac.wait_for(lambda s: s["sessions"] == [0, 1, 3, 0], "3 + 1 sessions")
    assert totals(snap)["pads_error"] == 1


def test_new_host_uniq_replaces_the_session_so_ids_do_not_leak(ac_and_client):
    ac, cl = ac_and_client
    m = client_mac(5)
    first = sid_of(handshake(cl, m, b"boot-0"))
    for i in range(1, 40):  # a CPE that reboots 39 times
        handshake(cl, m, b"boot-%d" % i)
    snap = ac.wait_for(lambda s: totals(s)["replaced"] == 39, "39 replaced sessions")
    assert totals(snap)["sessions"] == 1 and totals(snap)["pads"] == 40
    cl.send(p.build_lcp_echo_request(m, AC_MAC, first, 1))
    (padt,) = cl.expect(1, lambda f: is_disc(f, p.PADT, m))
    assert sid_of(padt) == first


def wait_for_window(k: float, window: float) -> None:
    """Sleep until CLOCK_MONOTONIC (system-wide: the AC's clock too) enters window number ``k``."""
    while time.monotonic() // window < k:
        time.sleep(max(0.0, k * window - time.monotonic()) + 0.001)


@ac_args("--cookie-window", "0.4")
def test_cookie_is_good_for_its_window_and_the_next_only(ac_and_client):
    ac, cl = ac_and_client
    window = 0.4
    for delay, accepted in ((1, True), (2, False)):
        m = client_mac(10 + delay)
        w0 = time.monotonic() // window
        cl.send(p.build_padi(m, b"internet", b"u"))
        (pado,) = cl.expect(1, lambda f: is_disc(f, p.PADO, m))
        if time.monotonic() // window != w0:  # the PADO may come from the next window: that one counts
            w0 += 1
        wait_for_window(w0 + delay, window)
        cl.send(p.build_padr(m, AC_MAC, b"internet", tag(pado, p.TAG_AC_COOKIE), b"u"))
        if accepted:
            (pads,) = cl.expect(1, lambda f: is_disc(f, p.PADS, m))
            assert sid_of(pads) != 0
        else:
            cl.barrier(m)
    snap = ac.wait_for(lambda s: totals(s)["bad_cookie"] == 1, "one expired cookie")
    assert totals(snap)["pads"] == 1


def test_padi_over_1484_octets_is_malformed(ac_and_client):
    ac, cl = ac_and_client
    m = client_mac(20)
    for octets in (1485, 1494, 1484):
        cl.send(p.encode_discovery(p.BROADCAST, m, p.PADI, 0,
                                   [(p.TAG_SERVICE_NAME, b"internet"), (0x7777, bytes(octets - 6 - 12 - 4))], "struct"))
    (pado,) = cl.expect(1, lambda f: is_disc(f, p.PADO, m))  # only the 1484-octet one is answered
    cl.barrier(m)
    snap = ac.wait_for(lambda s: totals(s)["malformed"] == 2, "2 malformed PADIs")
    assert totals(snap)["pado"] == 2 and totals(snap)["padi"] == 2  # the 1484 one and the barrier


@ac_args("--padt-rate", "0.01", "--padt-burst", "10")
def test_padt_to_unknown_sessions_is_rate_limited(ac_and_client):
    ac, cl = ac_and_client
    m = owned_macs(3, 1)[0]
    cl.send(*(p.encode_session(AC_MAC, m, 0x1000 + i, b"\x00\x21" + bytes(20)) for i in range(300)))
    padts = cl.expect(10, lambda f: is_disc(f, p.PADT, m))
    assert sorted(sid_of(f) for f in padts) == [0x1000 + i for i in range(10)]
    cl.barrier(m)  # and not one more
    snap = ac.wait_for(lambda s: s["padt_ratelimited"][3] == 290, "290 PADTs not sent")
    assert totals(snap)["padt_tx"] == 10 and totals(snap)["ignored"] == 290
