"""The worker process: one steered PF_PACKET socket, a uvloop event loop, a frame handler.

A worker is forked by :class:`pfrps.supervisor.Supervisor`, which owns the socket (so the
socket, its steering program and anything queued on it survive a worker restart). The worker
reads its socket when it is readable, in batches, counts every frame in its row of the shared
counters, and hands each frame to the handler as a zero-copy view.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import socket
import time
from typing import Any, Awaitable, Callable, Optional, Union

import setproctitle
import uvloop

from .linkwatch import RxGuard
from .logs import reopen_log_files
from .receive import FrameMeta, RecvReceiver
from .stats import Col, SharedCounters
from .watchdog import Heartbeat, install_stack_dump

__all__ = ["FrameMeta", "WorkerContext", "Handler", "RecvReceiver", "run_worker", "STOP_SIGNALS",
           "DRAIN_SECONDS", "reset_signals_in_child", "MAILBOX_MAX"]

log = logging.getLogger("pfrps.worker")

#: Signals the supervisor blocks around ``fork``; a worker unblocks them only once its own
#: handlers are in place (so a stop signal is never lost to, or run by, the supervisor's).
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGHUP, signal.SIGINT})
#: The final drain after SIGTERM ends after this many seconds even under sustained load, so
#: ``on_stop`` always runs before the supervisor's 2 s grace ends.
DRAIN_SECONDS = 0.5
#: Largest mailbox message, bytes (supervisor -> worker and the worker's reply, each).
MAILBOX_MAX = 60 * 1024


def reset_signals_in_child() -> None:
    """In a freshly forked worker, with :data:`STOP_SIGNALS` still blocked: drop every handler
    inherited from the supervisor (Python handlers and its wakeup fd). SIGINT is ignored for
    good: Ctrl-C in a terminal signals the whole process group, and only the supervisor
    decides when workers stop (it sends SIGTERM). See signal(7), sigprocmask(2)."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a pending SIGINT is discarded (signal(7))
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)

class WorkerContext:
    """What a handler sees of its worker.

    Attributes:
        worker_id: this worker's id, 0..worker_count-1 (stable across restarts).
        worker_count: N.
        ifindex: the interface's index.
        loop: the worker's event loop (uvloop), for timers and tasks.
        storage: worker-local dict; the steering guarantees that one source MAC always lands
            on the same worker, so per-subscriber state can live here with no lock.
        log: a logger named ``pfrps.w<id>``.
        maps, programs: ``{name: fd}`` of the BPF maps and programs the supervisor loaded before
            the fork (``SupervisorConfig.bpf_objects``); the same fds after a restart.
    """

    def __init__(self, worker_id: int, worker_count: int, ifindex: int, sock: socket.socket,
                 counters: SharedCounters, loop: asyncio.AbstractEventLoop) -> None:
        self.worker_id = worker_id
        self.worker_count = worker_count
        self.ifindex = ifindex
        self.loop = loop
        self.storage: dict[Any, Any] = {}
        self.log = logging.getLogger(f"pfrps.w{worker_id}")
        self._sock = sock
        self._row = counters.row(worker_id)
        self._counters = counters
        self.maps: dict[str, int] = {}
        self.programs: dict[str, int] = {}

    def transmit(self, frame) -> bool:
        """Send one whole Ethernet frame (bytes-like, 14..MTU+14 bytes) out of the interface.

        Returns True when the kernel took it; False (counted as a TX error) when the socket's
        send buffer is full or the kernel refused it.
        """
        try:
            self._sock.send(frame, socket.MSG_DONTWAIT)
        except OSError:
            self._row[Col.TX_ERRORS] += 1
            return False
        self._row[Col.TX_FRAMES] += 1
        return True

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` (may be negative, for gauges) to application counter or gauge ``name``.

        Raises:
            KeyError: the supervisor was not given that name in ``app_counters``/``app_gauges``.
        """
        col = self._counters.column(name)
        if n >= 0:
            self._row[col] += n
        else:
            self._counters.add(self.worker_id, col, n)

    def observe(self, name: str, value: float) -> None:
        """Count ``value`` (seconds, for a latency) in application histogram ``name``
        (``SupervisorConfig.app_histograms``; exposed as ``<app_name>_<name>`` by ``--metrics``).

        Raises:
            KeyError: the supervisor was not given that name in ``app_histograms``.
        """
        self._counters.histograms.observe(self.worker_id, name, value)


#: A frame handler: ``handler(frame: memoryview, meta: FrameMeta, ctx: WorkerContext)``.
#: It may be a coroutine function; it then runs as a task on the worker's loop and gets a
#: ``bytes`` copy of the frame (the receive buffer is reused after the call returns).
Handler = Callable[[memoryview, FrameMeta, WorkerContext], Union[None, Awaitable[None]]]


def _set_process_name(name: str) -> None:
    setproctitle.setproctitle(name)
    try:
        import ctypes  # noqa: PLC0415

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except OSError:
        pass


def run_worker(worker_id: int, worker_count: int, ifindex: int, sock: socket.socket,
               counters: SharedCounters, ready_fd: int, handler: Optional[Handler] = None,
               on_start: Optional[Callable[[WorkerContext], Any]] = None,
               on_stop: Optional[Callable[[WorkerContext], Any]] = None,
               receiver_factory: Optional[Callable[[socket.socket], Any]] = None,
               cpus: Optional[list[int]] = None, bpf: Any = None, mailbox: Optional[socket.socket] = None,
               on_message: Optional[Callable[["WorkerContext", bytes], Any]] = None) -> int:
    """Body of a worker process; returns its exit status.

    Runs the uvloop event loop until SIGTERM, then reads what is still queued (for at most
    :data:`DRAIN_SECONDS`), calls ``on_stop`` and returns 0. SIGINT is ignored (see
    :func:`reset_signals_in_child`); :data:`STOP_SIGNALS` are unblocked once the loop's handlers
    are in place, so a SIGTERM sent during start-up still runs ``on_stop``. Writes its id
    (4 bytes) to ``ready_fd`` once the loop is running and ``on_start`` has returned: that is
    the supervisor's readiness signal.

    ``bpf`` (a :class:`pfrps.bpfobjects.LoadedBpf`) gives ``ctx.maps``/``ctx.programs``;
    ``mailbox`` is the worker's end of its SOCK_SEQPACKET mailbox: each message (a 4-byte
    request id, then the payload) is handed to ``on_message(ctx, payload)``, whose return value
    (bytes, None for b"", or an awaitable of either) goes back with the same id.
    """
    _set_process_name(f"pfrps-w{worker_id}")
    if cpus:
        os.sched_setaffinity(0, {cpus[worker_id % len(cpus)]})
    reset_signals_in_child()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    ctx = WorkerContext(worker_id, worker_count, ifindex, sock, counters, loop)
    if bpf is not None:
        ctx.maps, ctx.programs = dict(bpf.maps), dict(bpf.programs)
    row = counters.row(worker_id)
    is_async = handler is not None and inspect.iscoroutinefunction(handler)
    receiver = receiver_factory(sock) if receiver_factory else RecvReceiver(sock, timestamps=handler is not None)
    # Link events and the watchdog (pfrps.linkwatch, pfrps.watchdog): the loop waits on an epoll
    # fd, so a link going down (POLLERR) never stops the reader; the heartbeat shows progress.
    heartbeat = Heartbeat(counters, worker_id)
    receiver = RxGuard(receiver, sock, row, Col.SOCKET_ERRORS, heartbeat.beat)
    install_stack_dump()

    def on_frame(frame: memoryview, meta: FrameMeta) -> None:
        try:
            if is_async:
                task = loop.create_task(handler(bytes(frame), meta, ctx))
                task.add_done_callback(on_task_done)
            else:
                handler(frame, meta, ctx)
        except Exception:
            row[Col.HANDLER_ERRORS] += 1
            ctx.log.exception("handler raised; frame dropped, worker continues")

    def on_task_done(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            row[Col.HANDLER_ERRORS] += 1
            ctx.log.error("handler raised: %r", task.exception())

    # per-frame heartbeat: the ring's read position in ring mode (receiver_factory), else wrapped
    cb = (on_frame if receiver_factory else heartbeat.wrap(on_frame)) if handler is not None else None

    def on_readable() -> int:
        frames, nbytes, truncated = receiver.poll(cb, ifindex)
        if frames:
            row[Col.FRAMES] += frames
            row[Col.BYTES] += nbytes
            if truncated:
                row[Col.TRUNCATED] += truncated
        return frames

    def reply(rid: bytes, res: Any) -> None:
        try:
            mailbox.send(rid + (res or b"")[:MAILBOX_MAX], socket.MSG_DONTWAIT)
        except OSError as exc:
            ctx.log.warning("cannot answer the supervisor: %s", exc.strerror)

    async def answer_later(rid: bytes, aw: Awaitable) -> None:
        reply(rid, await aw)

    def on_mail() -> None:
        try:
            msg = mailbox.recv(MAILBOX_MAX + 4, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        if len(msg) < 4:
            return
        rid, payload = msg[:4], msg[4:]
        try:
            res = on_message(ctx, payload) if on_message is not None else None
        except Exception:  # noqa: BLE001  (an application bug must not kill the worker)
            row[Col.HANDLER_ERRORS] += 1
            ctx.log.exception("on_message raised")
            res = b""
        if inspect.isawaitable(res):
            loop.create_task(answer_later(rid, res))
        else:
            reply(rid, res)

    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, reopen_log_files)

    async def main() -> None:
        # Unblocked only now that the loop runs: uvloop sets its signal wakeup fd when it starts
        # running, and a SIGTERM delivered before that (one sent right after the fork) was lost,
        # leaving the worker to be SIGKILLed. Pending ones now run the loop's handlers.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        if on_start is not None:
            res = on_start(ctx)
            if inspect.isawaitable(res):
                await res
        loop.add_reader(receiver.fileno(), on_readable)
        if mailbox is not None:
            loop.add_reader(mailbox.fileno(), on_mail)
        os.write(ready_fd, worker_id.to_bytes(4, "little"))
        await stopping.wait()
        loop.remove_reader(receiver.fileno())
        deadline = time.monotonic() + DRAIN_SECONDS
        while on_readable() and time.monotonic() < deadline:  # what is queued belongs to this run
            pass
        if on_stop is not None:
            res = on_stop(ctx)
            if inspect.isawaitable(res):
                await res

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return 0

