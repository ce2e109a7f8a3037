"""Issue 17 units: rtnetlink link messages -> transitions (pfrps.linkwatch), the watchdog's
stuck/not-stuck decisions (pfrps.watchdog), the line's link part, the recv path's link errors."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from pfrps.linkwatch import (IFF_RUNNING, IFF_UP, RTM_DELLINK, RTM_NEWLINK, InterfaceGoneError, LinkWatch, RxGuard,
                             _Link, link_is_up)
from pfrps.receive import RecvReceiver
from pfrps.stats import Col, SharedCounters, format_line
from pfrps.watchdog import TICK, Heartbeat, Watchdog

UP = IFF_UP | IFF_RUNNING


def _msg(mtype: int, index: int, flags: int) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, flags, 0xFFFFFFFF)
    return struct.pack("=IHHII", 16 + len(body), mtype, 0, 0, 0) + body


def _watch(events=None) -> LinkWatch:
    w = LinkWatch.__new__(LinkWatch)  # no socket: feed _parse directly
    w.on_event = events.append if events is not None else None
    w.links = {7: _Link("n0", 7, True)}
    return w


def test_link_is_up_needs_up_and_running():
    assert link_is_up(UP) and not link_is_up(IFF_UP) and not link_is_up(IFF_RUNNING)


def test_transitions_flaps_and_removal():
    w = _watch()
    data = b"".join([_msg(RTM_NEWLINK, 7, UP), _msg(RTM_NEWLINK, 7, 0), _msg(RTM_NEWLINK, 7, IFF_UP),
                     _msg(RTM_NEWLINK, 9, 0), _msg(RTM_NEWLINK, 7, UP), _msg(RTM_NEWLINK, 7, 0),
                     _msg(RTM_NEWLINK, 7, UP)])
    evs = w._parse(data)
    assert [(e.kind, e.flaps) for e in evs] == [("down", 1), ("up", 1), ("down", 2), ("up", 2)]
    assert w.state() == "up" and w.flaps() == 2
    assert w.as_json() == {"link": "up", "link_flaps": 2, "links": {"n0": {"state": "up", "flaps": 2}}}
    gone = w._parse(_msg(RTM_DELLINK, 7, 0))
    assert [e.kind for e in gone] == ["removed"] and w.state() == "removed"
    assert w._parse(_msg(RTM_NEWLINK, 7, UP)) == []  # nothing after removal


def test_read_raises_interface_gone_after_the_hook():
    events = []
    w = _watch(events)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    w.sock = b
    b.setblocking(False)
    try:
        a.send(_msg(RTM_NEWLINK, 7, 0))
        a.send(_msg(RTM_DELLINK, 7, 0))
        with pytest.raises(InterfaceGoneError) as info:
            w.read()
        assert info.value.one_line() == "interface n0 (ifindex 7) was removed"
        assert info.value.exit_status == 1
        assert [e.kind for e in events] == ["removed"]  # the down that came with it is not an event
    finally:
        a.close()
        b.close()


def test_the_line_shows_link_state_only_when_it_matters():
    base = format_line([1, 2], link="up", link_flaps=0)
    assert "link" not in base
    assert format_line([1, 2], link="down", link_flaps=1).endswith(" link:down link_flaps:1")
    assert format_line([1, 2], link="up", link_flaps=3).endswith(" link:up link_flaps:3")


def test_watchdog_kills_only_a_worker_stuck_with_frames_waiting():
    c = SharedCounters(3)
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        wd = Watchdog(2.0, [p[0].fileno() for p in pairs], c)
        alive = [True, True, True]
        pairs[0][1].send(b"x")  # worker 0: frames waiting, no progress
        pairs[2][1].send(b"x")  # worker 2: frames waiting, but progressing
        c.array[1, Col.HEARTBEAT] = 1  # worker 1: in the handler (odd), nothing queued
        t = wd.next_check
        assert wd.check(t, alive) == []
        for k in range(1, 12):
            c.array[2, Col.HEARTBEAT] += 2
            stuck = wd.check(t + k * TICK, alive)
            if k * TICK < 2.0:
                assert stuck == [], (k, stuck)
        assert sorted(w for w, _s in stuck) == [0, 1]
        assert wd.forget(1) is True and c.array[1, Col.HEARTBEAT] == 2  # even again, was in the handler
        assert wd.forget(0) is False
        assert wd.check(t + 12 * TICK, [False, True, True]) == []  # clocks restarted
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_heartbeat_wrap_is_odd_inside_the_handler():
    c = SharedCounters(2)
    hb = Heartbeat(c, 1)
    seen = []
    hb.wrap(lambda f, m: seen.append(int(c.array[1, Col.HEARTBEAT])))(None, None)
    hb.beat()
    assert seen == [1] and c.array[1, Col.HEARTBEAT] == 4 and c.array[0, Col.HEARTBEAT] == 0


class _DownSocket:
    """A socket whose recvmsg_into reports the link going down after two frames."""

    def __init__(self):
        self.calls = 0

    def setsockopt(self, *a):
        pass

    def fileno(self):
        return 0

    def recvmsg_into(self, bufs, ancsize):
        self.calls += 1
        if self.calls <= 2:
            bufs[0][:14] = b"\x00" * 14
            return 14, [], 0, None
        if self.calls == 3:
            raise OSError(errno.ENETDOWN, "Network is down")
        raise BlockingIOError


def test_recv_path_counts_frames_read_before_the_link_error():
    rcv = RecvReceiver(_DownSocket())
    assert rcv.poll(None, 1) == (2, 28, 0)
    assert rcv.socket_errors == 1
    assert rcv.poll(None, 1) == (0, 0, 0)


def test_rx_guard_counts_the_receivers_errors():
    c = SharedCounters(1)
    a, b = socket.socketpair()
    try:
        inner = RecvReceiver(_DownSocket())
        inner.fileno = a.fileno
        guard = RxGuard(inner, a, c.row(0), Col.SOCKET_ERRORS, Heartbeat(c, 0).beat)
        assert guard.poll(None, 1)[0] == 2
        assert c.array[0, Col.SOCKET_ERRORS] == 1 and guard.errors == 1
        assert c.array[0, Col.HEARTBEAT] == 2
        guard.close()
    finally:
        a.close()
        b.close()
