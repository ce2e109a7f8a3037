"""The worker process: one steered PF_PACKET socket, a uvloop event loop, a frame handler.

A worker is forked by :class:`pfrps.supervisor.Supervisor`, which owns the socket (so the
socket, its steering program and anything queued on it survive a worker restart). The worker
reads its socket when it is readable, in batches, counts every frame in its row of the shared
counters, and hands each frame to the handler as a zero-copy view.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
import signal
import socket
import time
from typing import Any, Awaitable, Callable, Optional, Sequence, Union

import setproctitle
import uvloop

from .errors import UsageError
from .kernel import PR_SET_NAME
from .linkwatch import RxGuard
from .logs import reopen_log_files
from .receive import FrameMeta, Receiver, RecvReceiver
from .stats import U64_MASK, Col, SharedCounters
from .watchdog import Heartbeat, install_stack_dump

__all__ = ["FrameMeta", "WorkerContext", "Handler", "RecvReceiver", "run_worker", "STOP_SIGNALS",
           "DRAIN_SECONDS", "reset_signals_in_child", "MAILBOX_MAX", "DEFAULT_MAX_ASYNC_TASKS",
           "frame_dispatcher"]

log = logging.getLogger("pfrps.worker")

#: Signals the supervisor blocks around ``fork``; a worker unblocks them only once its own
#: handlers are in place (so a stop signal is never lost to, or run by, the supervisor's).
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGHUP, signal.SIGINT})
#: The final drain after SIGTERM ends after this many seconds even under sustained load, so
#: ``on_stop`` always runs before the supervisor's 2 s grace ends.
DRAIN_SECONDS = 0.5
#: Largest mailbox message, bytes (supervisor -> worker and the worker's reply, each).
MAILBOX_MAX = 60 * 1024
#: Async handler tasks a worker keeps in flight at most (``SupervisorConfig.max_async_tasks``);
#: frames arriving beyond it are counted in ``Col.ASYNC_REFUSED`` and not handled.
DEFAULT_MAX_ASYNC_TASKS = 1024


def reset_signals_in_child() -> None:
    """In a freshly forked worker, with :data:`STOP_SIGNALS` still blocked: drop every handler
    inherited from the supervisor (Python handlers and its wakeup fd). SIGINT is ignored for
    good: Ctrl-C in a terminal signals the whole process group, and only the supervisor
    decides when workers stop (it sends SIGTERM). See signal(7), sigprocmask(2)."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a pending SIGINT is discarded (signal(7))
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)


#: The ifindex of the port whose frames the worker is handling right now (None outside a read):
#: set around each port's read, so a task or timer a handler creates keeps that port (asyncio
#: copies the context at ``create_task``/``call_later``). :meth:`WorkerContext.transmit` uses it.
_RX_PORT: contextvars.ContextVar[Optional[int]] = contextvars.ContextVar("pfrps_rx_port", default=None)


class WorkerContext:
    """What a handler sees of its worker.

    Attributes:
        worker_id: this worker's id, 0..worker_count-1 (stable across restarts).
        worker_count: N.
        ifindex: the primary interface's index (the first ``-i``).
        ifindexes: every interface's index, the primary first (one socket each; several with
            ``-i`` repeated: ``meta.ifindex`` says which port a frame came in on).
        loop: the worker's event loop (uvloop), for timers and tasks.
        storage: worker-local dict; the steering guarantees that one source MAC always lands
            on the same worker, so per-subscriber state can live here with no lock.
        log: a logger named ``pfrps.w<id>``.
        maps, programs: ``{name: fd}`` of the BPF maps and programs the supervisor loaded before
            the fork (``SupervisorConfig.bpf_objects``); the same fds after a restart.
    """

    def __init__(self, worker_id: int, worker_count: int, ifindex: int, sock: socket.socket,
                 counters: SharedCounters, loop: asyncio.AbstractEventLoop,
                 ports: Sequence[tuple[int, socket.socket]] = (), port_rows: Sequence[Any] = ()) -> None:
        self.worker_id = worker_id
        self.worker_count = worker_count
        self.ifindex = ifindex
        #: ``{ifindex: socket}`` of every port, the primary first (``ports`` adds the others).
        self._socks = {ifindex: sock, **dict(ports)}
        self.ifindexes = tuple(self._socks)
        #: ``{ifindex: row}`` of the per-interface counters (frames, bytes, tx), when kept.
        self._port_rows = dict(zip(self.ifindexes, port_rows))
        self.loop = loop
        self.storage: dict[Any, Any] = {}
        self.log = logging.getLogger(f"pfrps.w{worker_id}")
        self._sock = sock
        self._row = counters.row(worker_id)
        self._counters = counters
        self.maps: dict[str, int] = {}
        self.programs: dict[str, int] = {}
        self._tx_batch = None  # the SendBatch of transmit_many, made on first use

    @property
    def rx_ifindex(self) -> Optional[int]:
        """The ifindex of the port whose frame is being handled (also in tasks and timers the
        handler started), or None outside frame handling."""
        return _RX_PORT.get()

    def transmit(self, frame, ifindex: Optional[int] = None) -> bool:
        """Send one whole Ethernet frame (bytes-like, 14..MTU+14 bytes) out of a port.

        Args:
            frame: the frame.
            ifindex: the port (one of :attr:`ifindexes`); None: the port of the frame being
                handled (:attr:`rx_ifindex`, so a reply leaves by the port the request came in
                on), else the primary.

        Returns True when the kernel took it; False (counted as a TX error) when the socket's
        send buffer is full or the kernel refused it.

        Raises:
            UsageError: ``ifindex`` is not one of this worker's ports.
        """
        sock, prow = self._tx_port(ifindex)
        try:
            sock.send(frame, socket.MSG_DONTWAIT)
        except OSError:
            self._row[Col.TX_ERRORS] += 1
            if prow is not None:
                prow[Col.TX_ERRORS] += 1
            return False
        self._row[Col.TX_FRAMES] += 1
        if prow is not None:
            prow[Col.TX_FRAMES] += 1
        return True

    def transmit_many(self, frames, ifindex: Optional[int] = None) -> int:
        """Send whole Ethernet frames (an iterable of bytes-like, 14..MTU+14 bytes each) out of
        a port, in order, with one ``sendmmsg(2)`` per 256 frames (:class:`pfrps.txbatch.SendBatch`)
        instead of one ``send`` each.

        Args:
            frames: the frames.
            ifindex: the port, as for :meth:`transmit`.

        Returns:
            How many frames the kernel took; the others are counted as TX errors (send buffer
            full, or a frame it refused), the sent ones as TX frames.

        Raises:
            UsageError: ``ifindex`` is not one of this worker's ports.
        """
        from .txbatch import SendBatch  # noqa: PLC0415

        sock, prow = self._tx_port(ifindex)
        batch = self._tx_batch
        if batch is None:
            batch = self._tx_batch = SendBatch()
        sent, failed = batch.send(sock, frames)
        for r in (self._row, prow):
            if r is not None:
                if sent:
                    r[Col.TX_FRAMES] += sent
                if failed:
                    r[Col.TX_ERRORS] += failed
        return sent

    def _tx_port(self, ifindex: Optional[int]) -> tuple[socket.socket, Any]:
        """``(socket, per-port counter row or None)`` of the port to send on (see :meth:`transmit`).

        Raises:
            UsageError: ``ifindex`` is not one of this worker's ports.
        """
        socks, port_rows = self._socks, self._port_rows
        if len(socks) > 1:
            port = ifindex if ifindex is not None else _RX_PORT.get()
            if port is None:
                return self._sock, port_rows.get(self.ifindex)
            sock = socks.get(port)
            if sock is None:
                raise UsageError(f"ifindex {port} is not one of this worker's ports {list(socks)}",
                                 hint="transmit on an ifindex from ctx.ifindexes")
            return sock, port_rows.get(port)
        if ifindex is not None and ifindex != self.ifindex:
            raise UsageError(f"ifindex {ifindex} is not this worker's port {self.ifindex}",
                             hint="transmit on an ifindex from ctx.ifindexes")
        return self._sock, port_rows.get(self.ifindex)

    #: Per-instance, set on first use by :meth:`_word_of`: column name -> index in ``_words``.
    _word_index: dict = {}
    _words: Any = None

    def _word_of(self, name: str) -> int:
        """Resolve counter ``name`` to its word in the shared counters (once per name).

        Raises:
            KeyError: unknown name.
        """
        if "_word_index" not in self.__dict__:
            self._word_index = {}
            self._words = self._counters.words()
        i = self._word_index[name] = self._counters.word_index(self.worker_id, name)
        return i

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` (may be negative, for gauges) to application counter or gauge ``name``.

        The name is resolved to its shared-memory word once; then each call is a dict lookup and
        one 8-byte store (bench/handler_micro.py: ``ctx_count``). For the cheapest path bind the
        name once with :meth:`counter`.

        Raises:
            KeyError: the supervisor was not given that name in ``app_counters``/``app_gauges``.
        """
        try:
            i = self._word_index[name]
        except KeyError:
            i = self._word_of(name)
        w = self._words
        if n >= 0:
            w[i] += n
        else:
            w[i] = (w[i] + n) & U64_MASK

    def counter(self, name: str) -> Callable[..., None]:
        """A bound incrementer of application counter or gauge ``name``: ``add = ctx.counter("padi")``
        once (in ``on_start``), then ``add()`` or ``add(n)`` (n may be negative for a gauge) per
        event, the same as ``ctx.count(name, n)`` without the name lookup.

        Raises:
            KeyError: the supervisor was not given that name in ``app_counters``/``app_gauges``.
        """
        i = self._word_of(name)
        w = self._words

        def add(n: int = 1) -> None:
            if n >= 0:
                w[i] += n
            else:
                w[i] = (w[i] + n) & U64_MASK
        add.__name__ = add.__qualname__ = f"count_{name}"
        return add

    def observe(self, name: str, value: float) -> None:
        """Count ``value`` (seconds, for a latency) in application histogram ``name``
        (``SupervisorConfig.app_histograms``; exposed as ``<app_name>_<name>`` by ``--metrics``).

        Raises:
            KeyError: the supervisor was not given that name in ``app_histograms``.
            ValueError: ``value`` is NaN.
        """
        self._counters.histograms.observe(self.worker_id, name, value)


#: A frame handler: ``handler(frame: memoryview, meta: FrameMeta, ctx: WorkerContext)``.
#: ``frame`` is valid only during the call: it is released when the handler returns (a kept
#: view raises ``ValueError``; copy what you keep: ``bytes(frame[6:12])``). It may be a
#: coroutine function; it then runs as a task on the worker's loop and gets a ``bytes`` copy
#: of the frame, with at most ``SupervisorConfig.max_async_tasks`` tasks in flight.
Handler = Callable[[memoryview, FrameMeta, WorkerContext], Union[None, Awaitable[None]]]


def frame_dispatcher(handler: Handler, ctx: WorkerContext, row: Any,
                     max_async_tasks: int = DEFAULT_MAX_ASYNC_TASKS) -> Callable[[memoryview, FrameMeta], None]:
    """The worker's per-frame callable ``on_frame(frame, meta)`` for ``handler``, chosen once.

    A plain handler is called as ``handler(frame, meta, ctx)``; an exception it raises is
    logged and counted (``row[Col.HANDLER_ERRORS]``), and the worker goes on. A coroutine
    function runs as a task on ``ctx.loop`` with a ``bytes`` copy of the frame; while
    ``max_async_tasks`` of its tasks are unfinished a new frame gets no task and is counted in
    ``Col.ASYNC_REFUSED`` (a handler slower than the arrival rate would otherwise pile up tasks
    without bound); a task's exception is logged and counted like a plain handler's.

    Args:
        handler: the frame handler.
        ctx: the worker's context (passed to the handler; ``ctx.loop`` runs async handlers).
        row: the worker's counter row (``SharedCounters.row``).
        max_async_tasks: tasks in flight at most (async handlers), 1 or more.
    """
    log = ctx.log

    if not inspect.iscoroutinefunction(handler):
        def on_frame(frame: memoryview, meta: FrameMeta) -> None:
            try:
                handler(frame, meta, ctx)
            except Exception:  # noqa: BLE001  (an application bug must not stop the worker)
                row[Col.HANDLER_ERRORS] += 1
                log.exception("handler raised; frame dropped, worker continues")
        return on_frame

    create_task = ctx.loop.create_task
    in_flight = [0]

    def on_task_done(task: asyncio.Task) -> None:
        in_flight[0] -= 1
        if not task.cancelled() and task.exception() is not None:
            row[Col.HANDLER_ERRORS] += 1
            log.error("handler raised: %r", task.exception())

    def on_frame_async(frame: memoryview, meta: FrameMeta) -> None:
        if in_flight[0] >= max_async_tasks:
            row[Col.ASYNC_REFUSED] += 1
            return
        try:
            task = create_task(handler(bytes(frame), meta, ctx))
        except Exception:  # noqa: BLE001
            row[Col.HANDLER_ERRORS] += 1
            log.exception("handler raised; frame dropped, worker continues")
            return
        in_flight[0] += 1
        task.add_done_callback(on_task_done)
    on_frame_async.in_flight = lambda: in_flight[0]  # type: ignore[attr-defined]  # for tests
    return on_frame_async


def _set_process_name(name: str) -> None:
    setproctitle.setproctitle(name)
    try:
        import ctypes  # noqa: PLC0415

        ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except OSError:
        pass


def run_worker(worker_id: int, worker_count: int, ifindex: int, sock: socket.socket,
               counters: SharedCounters, ready_fd: int, handler: Optional[Handler] = None,
               on_start: Optional[Callable[[WorkerContext], Any]] = None,
               on_stop: Optional[Callable[[WorkerContext], Any]] = None,
               receiver_factory: Optional[Callable[[socket.socket], Receiver]] = None,
               cpus: Optional[list[int]] = None, bpf: Any = None, mailbox: Optional[socket.socket] = None,
               on_message: Optional[Callable[["WorkerContext", bytes], Any]] = None,
               ports: Sequence[tuple[int, socket.socket, Optional[Callable[[socket.socket], Receiver]]]] = (),
               port_counters: Optional[SharedCounters] = None,
               max_async_tasks: int = DEFAULT_MAX_ASYNC_TASKS) -> int:
    """Body of a worker process; returns its exit status.

    ``ifindex``/``sock``/``receiver_factory`` are the primary port; ``ports`` adds one
    ``(ifindex, socket, receiver factory or None)`` per other interface (``-i`` repeated): the
    worker reads each port's socket with its own loop reader, hands frames to the handler with
    that port's ``meta.ifindex``, and ``ctx.transmit`` answers out of that port.
    ``port_counters`` (rows ``worker_id * ports + k``, :class:`Col` columns) gets each port's
    frames, bytes, truncated, tx frames and tx errors, when given.

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
    ``max_async_tasks`` bounds a coroutine handler's tasks in flight (:func:`frame_dispatcher`).
    Ring blocks a :class:`pfrps.receive.RingReceiver` skipped on a resync are added to
    ``Col.RESYNC_SKIPPED`` after each read.
    """
    _set_process_name(f"pfrps-w{worker_id}")
    if cpus:
        os.sched_setaffinity(0, {cpus[worker_id % len(cpus)]})
    reset_signals_in_child()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    all_ports = [(ifindex, sock, receiver_factory), *ports]
    port_rows = ([port_counters.row(worker_id * len(all_ports) + k) for k in range(len(all_ports))]
                 if port_counters is not None else [None] * len(all_ports))
    ctx = WorkerContext(worker_id, worker_count, ifindex, sock, counters, loop,
                        [(p[0], p[1]) for p in ports], [r for r in port_rows if r is not None])
    if bpf is not None:
        ctx.maps, ctx.programs = dict(bpf.maps), dict(bpf.programs)
    row = counters.row(worker_id)
    # Link events and the watchdog (pfrps.linkwatch, pfrps.watchdog): the loop waits on an epoll
    # fd, so a link going down (POLLERR) never stops the reader; the heartbeat shows progress.
    heartbeat = Heartbeat(counters, worker_id)
    # One guarded receiver per port: (ifindex, receiver, per-port counter row or None).
    readers = [(ifx, RxGuard(fac(s) if fac else RecvReceiver(s, timestamps=handler is not None), s, row,
                             Col.SOCKET_ERRORS, heartbeat.beat), prow)
               for (ifx, s, fac), prow in zip(all_ports, port_rows)]
    receiver = readers[0][1]
    multi_port = len(readers) > 1
    install_stack_dump()

    # The per-frame callable, chosen once (sync or async handler: frame_dispatcher); the
    # per-frame heartbeat is the ring's read position in ring mode (receiver_factory), else wrapped.
    on_frame = frame_dispatcher(handler, ctx, row, max_async_tasks) if handler is not None else None
    cb = (on_frame if receiver_factory else heartbeat.wrap(on_frame)) if on_frame is not None else None

    def on_readable(receiver=receiver, ifindex=ifindex, prow=port_rows[0]) -> int:
        token = _RX_PORT.set(ifindex) if multi_port else None  # ctx.transmit answers out of this port
        try:
            frames, nbytes, truncated = receiver.poll(cb, ifindex)
        finally:
            if token is not None:
                _RX_PORT.reset(token)
        raw = receiver.receiver
        skipped = getattr(raw, "resync_skipped", 0)  # ring blocks skipped on a resync (RingReceiver)
        if skipped:
            row[Col.RESYNC_SKIPPED] += skipped
            raw.resync_skipped = 0
        if frames:
            row[Col.FRAMES] += frames
            row[Col.BYTES] += nbytes
            if truncated:
                row[Col.TRUNCATED] += truncated
            if prow is not None:
                prow[Col.FRAMES] += frames
                prow[Col.BYTES] += nbytes
                prow[Col.TRUNCATED] += truncated
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
        for ifx, rcv, prow in readers:
            loop.add_reader(rcv.fileno(), on_readable, rcv, ifx, prow)
        if mailbox is not None:
            loop.add_reader(mailbox.fileno(), on_mail)
        os.write(ready_fd, worker_id.to_bytes(4, "little"))
        await stopping.wait()
        for _ifx, rcv, _prow in readers:
            loop.remove_reader(rcv.fileno())
        deadline = time.monotonic() + DRAIN_SECONDS
        while sum([on_readable(rcv, ifx, prow) for ifx, rcv, prow in readers]) \
                and time.monotonic() < deadline:  # what is queued belongs to this run
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

