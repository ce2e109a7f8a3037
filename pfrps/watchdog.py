"""The worker watchdog: a handler that never returns must not silence its shard for ever.

Progress is one 64-bit heartbeat word per worker in the shared counters (``Col.HEARTBEAT``):
the worker adds 2 after every read of its socket (:class:`pfrps.linkwatch.RxGuard`) and, in
recv mode, 1 when it hands a frame to the handler and 1 when the handler returns (odd: in the
handler), each change one aligned store (about 0.1 us per frame). In ring mode the ring's read
position word (:mod:`pfrps.receive`) already changes at every frame and carries the "in the
handler" bit, so it is the per-frame heartbeat there, at no cost. The supervisor (:class:`Watchdog`, every :data:`TICK` s) calls a
worker *stuck* when it has frames waiting (its socket is readable: queued frames in recv mode,
a block handed to user space in ring mode; or the heartbeat is odd: a frame is in the handler)
and its heartbeat has not changed for ``SupervisorConfig.watchdog`` seconds (default 10; 0
turns the watchdog off). A stuck worker gets SIGUSR1, which makes it write its Python stack to
its log (:mod:`faulthandler`, installed by :func:`install_stack_dump`), then SIGKILL; it is
restarted like any dead worker (restart burst and backoff apply), and the log says which worker
and why. The frame it was stuck on counts as ``interrupted`` and is never handed out again: in
ring mode the read position moved past it before the handler was called (:mod:`pfrps.receive`),
in recv mode it was read off the socket; so a poison frame cannot kill a worker twice.

A handler that is merely slow makes progress at every frame and is never killed; an idle
worker (nothing waiting) is never stuck however long its heartbeat stays still.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import select
import signal
import sys
import time
from typing import Callable, Optional, Sequence

from .stats import Col, SharedCounters

__all__ = ["Heartbeat", "Watchdog", "install_stack_dump", "DEFAULT_WATCHDOG", "TICK", "STACK_SIGNAL"]

log = logging.getLogger("pfrps")

#: Seconds without progress, with frames waiting, after which a worker is killed (0: off).
DEFAULT_WATCHDOG = 10.0
#: Seconds between the supervisor's checks (at most this much later than the limit).
TICK = 0.2
#: The signal that makes a worker dump its Python stack (faulthandler) before it is killed.
STACK_SIGNAL = signal.SIGUSR1
#: Seconds the supervisor waits after the stack signal before SIGKILL.
DUMP_WAIT = 0.1


def install_stack_dump() -> None:
    """In a worker: on :data:`STACK_SIGNAL`, write every thread's Python stack to the log's
    stream (the ``--log-file`` or stderr), from a C signal handler, so even a handler spinning
    in a loop shows where it is."""
    stream = sys.stderr
    for handler in logging.getLogger().handlers:
        s = getattr(handler, "stream", None)
        if s is not None and hasattr(s, "fileno"):
            stream = s
            break
    try:
        # A dup of the stream's fd: faulthandler keeps the fd number, and the log handler closes
        # its stream when SIGHUP reopens a rotated file (the number could then be reused).
        fd = os.dup(stream.fileno())
        faulthandler.register(STACK_SIGNAL, file=fd, all_threads=True, chain=False)
    except (ValueError, OSError, RuntimeError, AttributeError):
        pass


class Heartbeat:
    """A worker's side of the heartbeat word (see the module docstring)."""

    def __init__(self, counters: SharedCounters, worker_id: int) -> None:
        self._w = counters.words()
        self._i = worker_id * counters.columns + int(Col.HEARTBEAT)

    def beat(self) -> None:
        """Progress outside the handler (+2: the parity says "not in the handler")."""
        self._w[self._i] += 2

    def wrap(self, on_frame: Callable) -> Callable:
        """``on_frame`` with the heartbeat odd while it runs (recv mode; see the module docstring)."""
        w, i = self._w, self._i

        def beating(frame, meta):
            w[i] += 1
            on_frame(frame, meta)
            w[i] += 1
        return beating


class Watchdog:
    """The supervisor's side: which workers are stuck.

    Args:
        seconds: the limit (> 0).
        fds: each worker's socket fd, by worker id (the supervisor owns them); or a sequence of
            fds per worker (one socket per interface): frames waiting on any of them count.
        counters: the shared counters (heartbeats read from ``Col.HEARTBEAT``).
        rings: each worker's :class:`pfrps.receive.RxRing` in ring mode (its read position is
            progress too), or a sequence of rings per worker, or empty.
    """

    def __init__(self, seconds: float, fds: Sequence[int], counters: SharedCounters, rings: Sequence = ()) -> None:
        self.seconds = seconds
        self.counters = counters
        self.rings = [r if isinstance(r, (list, tuple)) else (r,) for r in rings]
        self._fd_worker = {fd: wid for wid, f in enumerate(fds) for fd in (f if isinstance(f, (list, tuple)) else (f,))}
        self._poll = select.poll()
        for fd in self._fd_worker:
            self._poll.register(fd, select.POLLIN)
        n = len(fds)
        self._last: list[Optional[tuple[int, int]]] = [None] * n
        self._since: list[Optional[float]] = [None] * n
        self.next_check = time.monotonic() + TICK
        #: worker id -> why the watchdog killed it (read once by the supervisor's reaper).
        self.reasons: dict[int, str] = {}

    def due_in(self, now: float) -> float:
        """Seconds until the next check."""
        return max(self.next_check - now, 0.0)

    def check(self, now: float, alive: Sequence[bool]) -> list[tuple[int, float]]:
        """``[(worker id, seconds without progress)]`` of the stuck workers among the ``alive``
        ones (running and ready); resets the clock of the others."""
        if now < self.next_check:
            return []
        self.next_check = now + TICK
        beats = self.counters.array[:, Col.HEARTBEAT].tolist()
        if self.rings:
            beats = [(hb, tuple(ring.read_position() for ring in rs)) for hb, rs in zip(beats, self.rings)]
        else:
            beats = [(hb, (0,)) for hb in beats]
        waiting = {self._fd_worker[fd] for fd, _ev in self._poll.poll(0)}
        stuck = []
        for wid, hb in enumerate(beats):
            busy = wid in waiting or hb[0] & 1 or any(pos & 1 for pos in hb[1])
            if not alive[wid] or hb != self._last[wid] or not busy:
                self._last[wid] = hb
                self._since[wid] = None
                continue
            if self._since[wid] is None:
                self._since[wid] = now
            elif now - self._since[wid] >= self.seconds:
                stuck.append((wid, now - self._since[wid]))
        return stuck

    def forget(self, wid: int) -> bool:
        """After worker ``wid`` died: make its heartbeat even again for the next incarnation and
        reset its clock. Returns True when it died inside the handler (heartbeat odd)."""
        arr = self.counters.array
        hb = int(arr[wid, Col.HEARTBEAT])
        if hb & 1:
            arr[wid, Col.HEARTBEAT] = hb + 1
        self._last[wid] = None
        self._since[wid] = None
        return bool(hb & 1)


def heartbeat_parity_fix(counters: SharedCounters, wid: int) -> bool:
    """Without a watchdog: the same as :meth:`Watchdog.forget` for the heartbeat word."""
    arr = counters.array
    hb = int(arr[wid, Col.HEARTBEAT])
    if hb & 1:
        arr[wid, Col.HEARTBEAT] = hb + 1
    return bool(hb & 1)
