"""The supervisor -> worker message paths and the signal hand-over of ``Supervisor.serve``,
without root: a Supervisor that is not started, given mailbox pairs whose worker ends are
answered by fake workers (each message: a 4-byte request id, then the payload; each answer:
the same id, then ``b"<worker id>:<payload>"``).

The real paths, with forked workers, are in tests/root/test_supervisor_asyncio.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading

import pytest

from pfrps import Supervisor, SupervisorConfig
from pfrps.errors import UsageError
from pfrps.worker import MAILBOX_MAX

WORKERS = 3


@pytest.fixture
def sup():
    s = Supervisor(SupervisorConfig("lo", workers=WORKERS, mailboxes=True))
    s.mailboxes = [socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(WORKERS)]
    try:
        yield s
    finally:
        for pair in s.mailboxes:
            for end in pair:
                end.close()


def answer(worker_end: socket.socket, wid: int, silent: bool = False) -> list[bytes]:
    """Answer every message waiting at ``worker_end`` like a worker; returns the payloads."""
    got = []
    while True:
        try:
            msg = worker_end.recv(MAILBOX_MAX + 4, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return got
        got.append(msg[4:])
        if not silent:
            worker_end.send(msg[:4] + f"{wid}:".encode() + msg[4:])


def fake_workers(loop: asyncio.AbstractEventLoop, sup: Supervisor, silent=()) -> dict[int, list[bytes]]:
    """Loop readers answering every mailbox (``silent`` ids read but never answer)."""
    seen: dict[int, list[bytes]] = {w: [] for w in range(WORKERS)}
    for wid, (_, worker_end) in enumerate(sup.mailboxes):
        loop.add_reader(worker_end.fileno(), lambda w=wid, e=worker_end: seen[w].extend(answer(e, w, w in silent)))
    return seen


def test_ask_all_one_and_concurrently_outside_serve(sup):
    async def main():
        seen = fake_workers(asyncio.get_running_loop(), sup)
        everyone = await sup.ask(None, b"hi", timeout=5)
        one = await sup.ask([1], b"one", timeout=5)
        a, b = await asyncio.gather(sup.ask([0, 2], b"a", timeout=5), sup.ask([2, 0, 2], b"b", timeout=5))
        return seen, everyone, one, a, b

    seen, everyone, one, a, b = asyncio.run(main())
    assert everyone == {0: b"0:hi", 1: b"1:hi", 2: b"2:hi"} and list(everyone) == [0, 1, 2]
    assert one == {1: b"1:one"}
    assert a == {0: b"0:a", 2: b"2:a"} and b == {0: b"0:b", 2: b"2:b"}  # each its own replies, ids once
    assert seen == {0: [b"hi", b"a", b"b"], 1: [b"hi", b"one"], 2: [b"hi", b"a", b"b"]}
    assert sup._pending == {} and sup._mail_watch == {}  # nothing left watched


def test_ask_returns_who_answered_in_time(sup):
    async def main():
        fake_workers(asyncio.get_running_loop(), sup, silent={1})
        return await sup.ask(None, b"x", timeout=0.2)

    assert asyncio.run(main()) == {0: b"0:x", 2: b"2:x"}


def test_tell_reaches_exactly_the_workers_named_and_its_answers_are_dropped(sup):
    async def main():
        seen = fake_workers(asyncio.get_running_loop(), sup)
        assert sup.tell([2, 0], b"t1") == [2, 0]
        assert sup.tell(None, b"t2") == [0, 1, 2]
        after = await sup.ask(None, b"q", timeout=5)  # the tells' answers come first: dropped
        return seen, after

    seen, after = asyncio.run(main())
    assert seen == {0: [b"t1", b"t2", b"q"], 1: [b"t2", b"q"], 2: [b"t1", b"t2", b"q"]}
    assert after == {0: b"0:q", 1: b"1:q", 2: b"2:q"}


def test_request_blocks_until_every_reply(sup):
    stop = threading.Event()

    def workers():
        while not stop.is_set():
            for wid, (_, worker_end) in enumerate(sup.mailboxes):
                answer(worker_end, wid)
            stop.wait(0.001)

    t = threading.Thread(target=workers)
    t.start()
    try:
        sup.tell([1], b"before")
        assert sup.request(None, b"r", timeout=5) == {0: b"0:r", 1: b"1:r", 2: b"2:r"}
        assert sup.request(range(2), b"s", timeout=5) == {0: b"0:s", 1: b"1:s"}
    finally:
        stop.set()
        t.join()


@pytest.mark.parametrize("ids,payload,needle", [
    ([3], b"x", "no worker 3"),
    ([-1], b"x", "no worker -1"),
    (["0"], b"x", "no worker '0'"),
    (None, b"x" * (MAILBOX_MAX + 1), "too big"),
])
def test_bad_messages_raise_usage_error_and_send_nothing(sup, ids, payload, needle):
    with pytest.raises(UsageError, match=needle):
        sup.tell([0, *ids] if ids else ids, payload)
    assert answer(sup.mailboxes[0][1], 0, silent=True) == []  # worker 0 got nothing either


def test_no_mailboxes_is_a_usage_error():
    s = Supervisor(SupervisorConfig("lo", workers=1))
    with pytest.raises(UsageError, match="no worker mailboxes"):
        s.tell(None, b"x")
    with pytest.raises(UsageError, match="no worker mailboxes"):
        asyncio.run(s.ask(None, b"x"))


def test_run_and_serve_before_start_are_usage_errors():
    s = Supervisor(SupervisorConfig("lo", workers=1))
    with pytest.raises(UsageError, match="not started"):
        s.run(lambda: None)
    with pytest.raises(UsageError, match="not started"):
        asyncio.run(s.serve(lambda: None))


def test_the_wakeup_fd_goes_back_only_while_it_is_the_supervisors():
    """start()'s signal wakeup fd is given back to what was before it, unless an event loop
    took it since (it keeps it); one that gives the supervisor's back later is caught too."""
    s = Supervisor(SupervisorConfig("lo", workers=1))
    s._sig_r, s._sig_w = os.pipe()
    other_r, other_w = os.pipe()
    os.set_blocking(s._sig_w, False)
    os.set_blocking(other_w, False)
    before = signal.set_wakeup_fd(-1)
    try:
        s._install_signals()
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
        signal.set_wakeup_fd(other_w)  # a loop takes it (uvloop starts, asyncio add_signal_handler)
        s._restore_signals()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert signal.set_wakeup_fd(s._sig_w) == other_w  # kept; now the loop gives ours back
        s._restore_signals()
        assert signal.set_wakeup_fd(-1) == -1  # what was before start()
        s._restore_signals()  # idempotent
        assert signal.set_wakeup_fd(-1) == -1
    finally:
        signal.set_wakeup_fd(before)
        for fd in (s._sig_r, s._sig_w, other_r, other_w):
            os.close(fd)
