"""Several interfaces per run (issue 16), without a network: the configuration's checks,
``WorkerContext.transmit``'s port choice, the AC's per-port MAC, the watchdog over every socket
of a worker."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import pytest

from pfrps.ac import protocol as p
from pfrps.ac.server import AC_COUNTERS, AC_GAUGES, ACConfig, AccessConcentrator
from pfrps.config import SupervisorConfig
from pfrps.errors import UsageError
from pfrps.stats import Col, SharedCounters
from pfrps.watchdog import Watchdog
from pfrps.worker import _RX_PORT, WorkerContext


def test_interfaces_default_to_the_primary_and_the_primary_to_the_first():
    assert SupervisorConfig("eth1").interfaces == ("eth1",)
    cfg = SupervisorConfig(interfaces=("eth1", "eth2"), workers=2, rx="recv")
    assert cfg.interface == "eth1" and cfg.interfaces == ("eth1", "eth2")
    cfg.validate()


@pytest.mark.parametrize("kwargs, needle", [
    ({"interfaces": ("eth1", "eth2", "eth1")}, "eth1 is given more than once"),
    ({"interfaces": ()}, "no interface given"),
    ({"interface": "eth2", "interfaces": ("eth1", "eth2")}, "is not the first"),
])
def test_bad_interface_lists_are_one_line_usage_errors(kwargs, needle):
    with pytest.raises(UsageError) as err:
        SupervisorConfig(workers=2, rx="recv", **kwargs).validate()
    assert needle in err.value.one_line() and "\n" not in err.value.one_line()


def test_ring_default_memory_is_shared_by_every_ring():
    one = SupervisorConfig("eth1", workers=128)
    two = SupervisorConfig(interfaces=("eth1", "eth2"), workers=128)
    (bs1, n1), (bs2, n2) = one.ring_geometry(), two.ring_geometry()
    assert bs1 == bs2 and bs2 * n2 * 128 * 2 <= 256 << 20 and n2 * 2 == n1


def _ctx(ports=2):
    counters = SharedCounters(1)
    port_counters = SharedCounters(ports)
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(ports)]
    ifx = [10 + k for k in range(ports)]
    ctx = WorkerContext(0, 1, ifx[0], pairs[0][0], counters, None,
                        [(ifx[k], pairs[k][0]) for k in range(1, ports)],
                        [port_counters.row(k) for k in range(ports)])
    for _, peer in pairs:
        peer.setblocking(False)
    return ctx, pairs, ifx, port_counters


def _got(pairs) -> list[list[bytes]]:
    out = []
    for _, peer in pairs:
        frames = []
        while True:
            try:
                frames.append(peer.recv(100))
            except BlockingIOError:
                break
        out.append(frames)
    return out


def test_transmit_answers_out_of_the_port_being_handled_else_the_primary():
    ctx, pairs, ifx, pc = _ctx()
    assert ctx.ifindex == 10 and ctx.ifindexes == (10, 11) and ctx.rx_ifindex is None
    assert ctx.transmit(b"a")                       # outside frame handling: the primary
    token = _RX_PORT.set(11)                        # what the worker does around port 11's read
    try:
        assert ctx.rx_ifindex == 11
        assert ctx.transmit(b"b")                   # the port of the frame being handled
        assert ctx.transmit(b"c", 10)               # or the one named
    finally:
        _RX_PORT.reset(token)
    assert ctx.transmit(b"d", 11)
    assert _got(pairs) == [[b"a", b"c"], [b"b", b"d"]]
    assert pc.array[:, Col.TX_FRAMES].tolist() == [2, 2]
    with pytest.raises(UsageError, match="ifindex 99 is not one of this worker's ports"):
        ctx.transmit(b"e", 99)


def test_one_port_context_is_unchanged():
    counters = SharedCounters(1)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ctx = WorkerContext(0, 1, 7, a, counters, None)
    assert ctx.ifindexes == (7,) and ctx.transmit(b"x") and ctx.transmit(b"y", 7)
    assert b.recv(10) == b"x" and b.recv(10) == b"y"
    with pytest.raises(UsageError):
        ctx.transmit(b"z", 8)


def test_ac_replies_from_the_mac_of_the_receiving_port():
    mac1, mac2 = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    ac = AccessConcentrator(ACConfig(mac1, b"ac", port_macs={10: mac1, 11: mac2}), 1)
    ctx, pairs, _ifx, _pc = _ctx()
    ctx._counters = SharedCounters(1, AC_COUNTERS, AC_GAUGES)
    ctx._row = ctx._counters.row(0)
    ac.on_start(ctx)
    host = bytes.fromhex("02aa00000001")
    meta = SimpleNamespace(vlan_tci=None)
    for port in (10, 11):
        token = _RX_PORT.set(port)
        try:
            ac.handle(memoryview(p.build_padi(host, b"", b"x")), meta, ctx)
        finally:
            _RX_PORT.reset(token)
    (one,), (two,) = _got(pairs)
    assert one[6:12] == mac1 and two[6:12] == mac2 and one[:6] == two[:6] == host


def test_watchdog_sees_frames_waiting_on_any_socket_of_a_worker():
    c = SharedCounters(2)
    pairs = [[socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(2)] for _ in range(2)]
    wd = Watchdog(0.5, [[s[0].fileno() for s in w] for w in pairs], c)
    pairs[1][1][1].send(b"waiting on worker 1's second port")
    now = time.monotonic() + 1
    assert wd.check(now, [True, True]) == []        # first look: the heartbeats
    assert wd.check(now + 1, [True, True]) == []    # unchanged, frames waiting: the clock starts
    stuck = wd.check(now + 2, [True, True])
    assert [w for w, _ in stuck] == [1]             # worker 0 has nothing waiting: never stuck


def test_ac_session_keeps_its_port_for_keepalive_and_padt():
    """A session opened on port 11 gets its Echo-Requests (a timer, outside any frame handling)
    and its PADT at stop out of port 11, from port 11's MAC; its frames on port 10 are not its."""
    mac1, mac2, secret = bytes.fromhex("020000000001"), bytes.fromhex("020000000002"), bytes(32)
    clock = SimpleNamespace(now=1000.0)
    ac = AccessConcentrator(ACConfig(mac1, b"ac", secret=secret, echo_interval=30.0,
                                     port_macs={10: mac1, 11: mac2}), 1, clock=lambda: clock.now)
    ctx, pairs, _ifx, _pc = _ctx()
    ctx._counters = SharedCounters(1, AC_COUNTERS, AC_GAUGES)
    ctx._row = ctx._counters.row(0)
    ac.on_start(ctx)
    host = bytes.fromhex("02aa00000001")
    cookie = p.make_cookie(secret, host, b"", p.cookie_window(clock.now, 60.0))
    token = _RX_PORT.set(11)
    try:
        ac.handle(memoryview(p.build_padr(host, mac2, b"", cookie, b"u")), SimpleNamespace(vlan_tci=None), ctx)
    finally:
        _RX_PORT.reset(token)
    (), (pads,) = _got(pairs)
    assert p.parse_frame(pads).code == p.PADS and pads[6:12] == mac2
    clock.now += 31
    ac.sweep(ctx)                                   # the keepalive timer: no frame being handled
    ac.on_stop(ctx)
    (), (echo, padt) = _got(pairs)
    assert echo[6:12] == padt[6:12] == mac2 and echo[:6] == padt[:6] == host
    assert p.parse_frame(padt).code == p.PADT


@pytest.mark.parametrize("ifindex,port", [(10, "acc0"), (11, "acc1"), (None, "acc0")])
def test_bng_nas_port_id_names_the_port_the_session_came_in_on(ifindex, port):
    """RADIUS NAS-Port-Id (RFC 2869 5.17) is ``<port>:<outer VID>:<inner VID>`` of the session's own
    access port; a session with no port (one access port) names the first."""
    from pfrps.bng.server import Subscriber

    cfg = SimpleNamespace(access="acc0", access_names={10: "acc0", 11: "acc1"})
    sub = SimpleNamespace(bng=SimpleNamespace(cfg=cfg), line_tag=None,
                          acs=SimpleNamespace(vlan=b"", ifindex=ifindex, mac=bytes.fromhex("02aa00000001")))
    line = Subscriber.line_info(sub)
    assert line.nas_port_id == f"{port}:0:0"
    assert line.calling_station_id == "02-AA-00-00-00-01"
