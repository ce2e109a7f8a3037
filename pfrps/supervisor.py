"""The supervisor: worker processes over sockets it owns (processes only).

:func:`pfrps.steering.open_steered` opens one steered PF_PACKET socket per worker; the
supervisor keeps them open for the whole run and forks N worker processes over them. Owning
the sockets means a worker that dies is replaced on the *same* socket: its steering (filter
program or fanout group membership) never changes, and frames that arrive meanwhile wait in
the socket. It reads ``PACKET_STATISTICS`` (which resets on read, so it must have one reader)
and accumulates kernel drops into the shared counters.

Processes and signals:

* Each worker is watched through its own pidfd (``os.pidfd_open``, Linux 5.3+) in the
  supervisor's selector, and only those pids are reaped (``waitpid(pid)``): an embedding
  program's own children keep their exit status (no SIGCHLD handler, no ``waitpid(-1)``).
* SIGINT, SIGTERM and SIGHUP are blocked around ``fork`` (``pthread_sigmask``); a worker unblocks
  them once its own handlers are in place, and ignores SIGINT for good, so Ctrl-C (SIGINT to
  the whole process group) reaches the supervisor only, which stops every worker with SIGTERM.
* Stop signals are handled before worker deaths in every turn of the loop, and deaths while
  stopping are never restarts.
* A death (before ready or after) counts toward ``restart_burst`` deaths in
  ``restart_window`` seconds; restarts back off (0, 0.1, 0.2, 0.4 s ...); past the burst
  the supervisor stops the other workers cleanly and reports the worker and the cause
  (:meth:`Supervisor.run` returns 1; :meth:`Supervisor.start` raises :class:`WorkerError`).

Two drivers run the same turn (:meth:`Supervisor._handle`): :meth:`Supervisor.run`, a blocking
loop on the supervisor's selector (an epoll fd), and ``await`` :meth:`Supervisor.serve`, on the
caller's running asyncio/uvloop loop, which watches that epoll fd, owns the three signals
while it runs (``loop.add_signal_handler``) and wakes on a timer for emits, restarts and the
watchdog. Worker mailboxes: :meth:`Supervisor.request` (blocking), :meth:`Supervisor.ask`
(awaitable) and :meth:`Supervisor.tell` (one-way), to one worker, some, or all.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import resource
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from . import packet
from .config import SupervisorConfig, check_privileges
from .errors import UsageError, WorkerError
from .hashing import alg_name
from .kernel import PR_SET_PDEATHSIG
from .links import check_interface, rx_dropped
from .privileges import drop_to_user, keep_only_caps, lookup_user
from .stats import Col, SharedCounters, format_line, snapshot
from .steering import SteeredSockets, open_steered_all
from .bpfobjects import LoadedBpf
from .linkwatch import InterfaceGoneError, LinkEvent, LinkWatch
from .watchdog import DUMP_WAIT, STACK_SIGNAL, Watchdog, heartbeat_parity_fix
from .worker import MAILBOX_MAX, STOP_SIGNALS, Handler, WorkerContext, run_worker

__all__ = ["Supervisor"]

log = logging.getLogger("pfrps")

#: Seconds of delay before the k-th restart within the window: 0, then doubling from 0.1, at most 2.
RESTART_BACKOFF = (0.0, 0.1, 2.0)
#: Seconds stopping workers get (drain, on_stop) before SIGKILL: STOP_GRACE, or
#: STOP_GRACE_PER_WORKER x N when larger (each exit costs CPU time; 1024 workers on 2 CPUs
#: need several seconds just to be scheduled once).
STOP_GRACE = 2.0
STOP_GRACE_PER_WORKER = 0.015


@dataclass
class _Slot:
    worker_id: int
    pid: int = 0
    pidfd: int = -1
    ready: bool = False
    deaths: list[float] = field(default_factory=list)
    restart_at: Optional[float] = None


@dataclass
class _Pending:
    """Replies awaited under one request id (:meth:`Supervisor.request`/:meth:`Supervisor.ask`):
    the worker ids yet to answer, ``{worker id: reply}`` so far, and the future :meth:`ask`
    awaits (None for :meth:`request`), done when every worker answered."""
    waiting: set[int]
    replies: dict[int, bytes] = field(default_factory=dict)
    done: Optional[asyncio.Future] = None


class _Pace:
    """The schedule :meth:`Supervisor.run` and :meth:`Supervisor.serve` share: ``emit()`` every
    ``interval`` seconds; the end after ``duration`` seconds or ``count`` frames (checked every
    50 ms at most then), or when the supervisor is stopping."""

    def __init__(self, interval: float, duration: Optional[float], count: Optional[int]) -> None:
        self.interval, self.duration, self.count = interval, duration, count
        self.start = time.monotonic()
        self.next_tick = self.start + interval
        self.check_every = min(interval, 0.05) if count else interval

    def next_wait(self, sup: "Supervisor", emit: Callable[[], None]) -> Optional[float]:
        """Emit if due (stats polled first); seconds until the next check (>= 0), or None
        when supervision ends."""
        if sup._stopping:
            return None
        now = time.monotonic()
        if self.duration is not None and now - self.start >= self.duration:
            return None
        if self.count is not None and sup.total() >= self.count:
            return None
        if now >= self.next_tick:
            sup.poll_stats()
            emit()
            self.next_tick += self.interval * max(1, int((now - self.next_tick) // self.interval) + 1)
        wait = min(self.next_tick, now + self.check_every) - now
        if self.duration is not None:
            wait = min(wait, self.start + self.duration - now)
        return max(wait, 0.0)


def restart_delay(deaths_in_window: int) -> float:
    """Seconds to wait before restarting a worker that died ``deaths_in_window`` times in the
    window (this death included): 0 for the first, then 0.1, 0.2, 0.4 ... at most 2 s."""
    first, step, cap = RESTART_BACKOFF
    if deaths_in_window <= 1:
        return first
    return min(step * 2 ** (deaths_in_window - 2), cap)


class Supervisor:
    """Run N steered workers on one interface, or on several (``config.interfaces``: every
    worker reads one socket per interface, :meth:`port_figures` has the per-interface counts).

    Args:
        config: a :class:`SupervisorConfig`.
        handler: called for every frame in the worker (see :data:`pfrps.worker.Handler`);
            None just counts frames.
        on_start, on_stop: called in each worker with its :class:`WorkerContext`, after the
            socket exists and before frames flow / after the last frame (also when the worker
            is stopped during start-up or by Ctrl-C to the process group).

    Use :meth:`start`, then :meth:`run` (a blocking loop of its own) or ``await``
    :meth:`serve` (the same supervision on the caller's running asyncio/uvloop loop), and
    :meth:`close` in a ``finally``; or use it as a context manager. With ``mailboxes=True``,
    :meth:`request` (blocking), :meth:`ask` (awaitable) and :meth:`tell` (one-way) reach one
    worker or all.

    Raises (from :meth:`start`):
        UsageError and subclasses: bad configuration, missing interface, privileges, bcc,
            kernel headers, a ``-b`` file that does not compile, too low a file limit.
        PfrpsError: the kernel refused a program or socket option.
        WorkerError: workers not ready in time, or one kept dying (past ``restart_burst``).
        KeyboardInterrupt: SIGINT or SIGTERM arrived during start-up (everything is released).
        pfrps.linkwatch.InterfaceGoneError: the interface was removed during start-up (from
            :meth:`run`: while running, after the workers stopped).

    Link events (down, up, removed) are logged, shown in :meth:`line`/:meth:`snapshot` and
    passed to ``on_link_event(LinkEvent)``; workers survive a flap on the same sockets
    (:mod:`pfrps.linkwatch`). A worker stuck in a handler is killed and restarted after
    ``config.watchdog`` seconds (:mod:`pfrps.watchdog`).
    """

    def __init__(self, config: SupervisorConfig, handler: Optional[Handler] = None,
                 on_start: Optional[Callable[[WorkerContext], Any]] = None,
                 on_stop: Optional[Callable[[WorkerContext], Any]] = None,
                 on_message: Optional[Callable[[WorkerContext, bytes], Any]] = None,
                 on_link_event: Optional[Callable[[LinkEvent], Any]] = None) -> None:
        self.config = config
        #: Called in the supervisor with every :class:`pfrps.linkwatch.LinkEvent` (link down, up,
        #: removed) of the interface, after pfrps logged it; must not block.
        self.on_link_event = on_link_event
        #: :class:`pfrps.linkwatch.LinkWatch` (netlink) and :class:`pfrps.watchdog.Watchdog`, from start().
        self.links: Optional[LinkWatch] = None
        self.watchdog: Optional[Watchdog] = None
        #: Set when the interface was removed; :meth:`run` raises it after stopping the workers.
        self.link_error: Optional[InterfaceGoneError] = None
        self._in_run = False
        self.handler = handler
        self.on_start = on_start
        self.on_stop = on_stop
        self.on_message = on_message
        #: BPF objects of ``config.bpf_objects``, loaded before the fork (:mod:`pfrps.bpfobjects`).
        self.bpf: Optional[LoadedBpf] = None
        #: Per worker: (the supervisor's end, the worker's end) of its mailbox (SOCK_SEQPACKET).
        self.mailboxes: list[tuple[socket.socket, socket.socket]] = []
        self._request_id = 0
        self._pid = 0  # the supervisor's pid, set by start()
        self.counters: Optional[SharedCounters] = None
        #: The ``/metrics`` endpoint (:class:`pfrps.metrics.MetricsEndpoint`) of ``config.metrics``:
        #: bound first thing in start(), served once every worker is ready, closed in close().
        self.metrics_endpoint = None
        #: One :class:`SteeredSockets` per interface, the primary first (:attr:`steered`).
        self.ports: list[SteeredSockets] = []
        self.slots: list[_Slot] = []
        #: The primary interface's index, and every interface's (the primary first).
        self.ifindex = 0
        self.ifindexes: list[int] = []
        #: Receive drops of all interfaces since start (frames), and per interface.
        self.if_rx_dropped = 0
        self.if_rx_dropped_per: list[int] = []
        self._if_rx_dropped0: list[int] = []
        #: With several interfaces, per worker per interface counters (row ``worker * len(ports)
        #: + k``, :class:`Col` columns: frames, bytes, truncated, tx; kernel packets/drops/freezes
        #: of that socket); None with one (its figures are the workers' own counters).
        self.port_counters: Optional[SharedCounters] = None
        self.ready_seconds = 0.0
        self.started_at = 0.0
        self._ready_r = self._ready_w = -1
        self._sig_r = self._sig_w = -1
        self._sel: Optional[selectors.BaseSelector] = None
        self._signals: list[int] = []
        self._stopping = False
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup = -1
        self._wakeup_set = False  # the wakeup fd was set to _sig_w and not given back yet
        self._on_hup: Optional[Callable[[], None]] = None
        #: Replies awaited by request()/ask(), by request id (4 bytes); see _read_mail().
        self._pending: dict[bytes, _Pending] = {}
        #: serve()'s loop while it runs, the future its wait ends with, and the mailbox fds
        #: that ask() outside serve() watches with loop readers (fd -> asks).
        self._serve_loop: Optional[asyncio.AbstractEventLoop] = None
        self._wake: Optional[asyncio.Future] = None
        self._mail_watch: dict[int, int] = {}
        self.failed: Optional[str] = None
        self._user: Optional[tuple[int, int]] = None

    # -- start-up -----------------------------------------------------------------------------
    def start(self) -> float:
        """Check, compile, open the sockets, fork the workers and wait until all are ready.

        Returns:
            Seconds from the call to every worker ready.
        """
        t0 = time.monotonic()
        self._pid = os.getpid()
        cfg = self.config
        cfg.validate()
        self.ifindexes = [check_interface(name).ifindex for name in cfg.interfaces]
        self.ifindex = self.ifindexes[0]
        if cfg.steering in ("filter", "fanout") or cfg.ethertypes:
            check_privileges()
        try:
            if cfg.metrics is not None:  # bound now: a bad address or a port in use fails before any fork
                from .metrics import open_endpoint  # noqa: PLC0415

                self.metrics_endpoint = open_endpoint(cfg)
            _raise_fd_limit(cfg.workers * len(cfg.interfaces))
            self.ports = open_steered_all(cfg)
            if cfg.bpf_objects:
                self.bpf = LoadedBpf.open(tuple(cfg.bpf_objects))
            if cfg.mailboxes:
                self.mailboxes = [socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                                  for _ in range(cfg.workers)]
            self.slots = [_Slot(i) for i in range(cfg.workers)]
            self._if_rx_dropped0 = [rx_dropped(i) for i in self.ifindexes]
            self.counters = SharedCounters(cfg.workers, cfg.app_counters, cfg.app_gauges, cfg.app_histograms)
            if len(self.ports) > 1:
                self.port_counters = SharedCounters(cfg.workers * len(self.ports))
            self._ready_r, self._ready_w = os.pipe()
            self._sig_r, self._sig_w = os.pipe()
            os.set_blocking(self._sig_w, False)
            os.set_blocking(self._sig_r, False)
            self._sel = selectors.DefaultSelector()
            self._sel.register(self._ready_r, selectors.EVENT_READ, "ready")
            self._sel.register(self._sig_r, selectors.EVENT_READ, "signal")
            self._install_signals()
            self._start_watchers()
            self._user = lookup_user(cfg.user) if cfg.user else None
            if self._user is not None:
                keep_only_caps(cfg.supervisor_caps)
            self.started_at = time.monotonic()
            for slot in self.slots:
                self._spawn(slot)
            self._wait_ready(timeout=30.0 + 0.05 * cfg.workers)
            if self.metrics_endpoint is not None:  # served from here on: the first forks are done
                from .metrics import supervisor_collector  # noqa: PLC0415

                self.metrics_endpoint.serve(supervisor_collector(self))
        except BaseException:
            self.close()
            raise
        self.ready_seconds = time.monotonic() - t0
        return self.ready_seconds

    @property
    def steered(self) -> SteeredSockets:
        """The primary interface's sockets (``ports[0]``; empty before :meth:`start` and after
        :meth:`close`)."""
        return self.ports[0] if self.ports else SteeredSockets()

    def ring_bytes_per_worker(self) -> int:
        """Memory of one worker's receive rings (ring mode) or socket buffers (recv mode), one
        per interface, bytes."""
        cfg = self.config
        bs, blocks = cfg.ring_geometry()
        return (bs * blocks if cfg.rx == "ring" else cfg.rcvbuf) * len(cfg.interfaces)

    def _install_signals(self) -> None:
        def on_signal(signum, _frame):
            self._signals.append(signum)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, on_signal)
        self._old_wakeup = signal.set_wakeup_fd(self._sig_w, warn_on_full_buffer=False)
        self._wakeup_set = True

    def _restore_signals(self) -> None:
        """Give back SIGINT, SIGTERM and SIGHUP: the handlers :meth:`_install_signals` replaced,
        and the signal wakeup fd, but that only while it is still the supervisor's pipe: an
        event loop that took it since (uvloop when it starts running, asyncio's
        ``add_signal_handler``) keeps it; one that gives it back later (uvloop when it stops)
        is caught by the next call (:meth:`close`). Idempotent; main thread only."""
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers.clear()
        if self._wakeup_set:
            current = signal.set_wakeup_fd(-1)
            if current == self._sig_w:
                signal.set_wakeup_fd(self._old_wakeup)
                self._wakeup_set = False
            else:
                signal.set_wakeup_fd(current, warn_on_full_buffer=False)

    def _spawn(self, slot: _Slot) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        slot.restart_at = None
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:  # worker; STOP_SIGNALS stay blocked until run_worker's handlers exist
                self._child(slot)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        slot.pid = pid
        try:
            slot.pidfd = os.pidfd_open(pid)
        except OSError as exc:
            raise WorkerError(f"cannot watch worker {slot.worker_id} (pid {pid}): pidfd_open: {exc.strerror}",
                              code=exc.errno or errno.ENOSYS,
                              hint="pfrps needs Linux 5.3+ (pidfd_open) and a free file descriptor") from None
        self._sel.register(slot.pidfd, selectors.EVENT_READ, slot)
        slot.ready = False

    def _child(self, slot: _Slot) -> None:
        """The forked worker's side of :meth:`_spawn`; never returns."""
        status = 1
        try:
            _die_with_parent(self._pid)
            signal.set_wakeup_fd(-1)
            for fd in (self._ready_r, self._sig_r, self._sig_w):
                os.close(fd)
            for other in self.slots:
                if other.pidfd >= 0:
                    os.close(other.pidfd)
            wid = slot.worker_id
            sock = self.steered.socks[wid]
            for port in self.ports:
                for i, other in enumerate(port.socks):
                    if i != wid:
                        other.close()
            if self.bpf is not None:  # the attachments live and die with the supervisor only
                for fd in self.bpf.link_fds():
                    os.close(fd)
            mailbox = None
            for i, (sup_end, worker_end) in enumerate(self.mailboxes):
                sup_end.close()
                if i == wid:
                    mailbox = worker_end
                else:
                    worker_end.close()
            if self._user is not None:
                drop_to_user(*self._user)
            factories = [None] * len(self.ports)
            if self.steered.rings:
                from .receive import RingReceiver  # noqa: PLC0415

                factories = [lambda _sock, ring=port.rings[wid]: RingReceiver(ring) for port in self.ports]
            receiver_factory = factories[0]
            extra = [(ifx, port.socks[wid], fac)
                     for ifx, port, fac in zip(self.ifindexes[1:], self.ports[1:], factories[1:])]
            status = run_worker(
                wid, self.config.workers, self.ifindex, sock, self.counters,
                self._ready_w, self.handler, self.on_start, self.on_stop, receiver_factory,
                self.config.cpus, bpf=self.bpf, mailbox=mailbox, on_message=self.on_message,
                ports=extra, port_counters=self.port_counters,
                max_async_tasks=self.config.max_async_tasks,
            )
        except BaseException:  # noqa: BLE001  (a worker must never return into the supervisor)
            logging.getLogger(f"pfrps.w{slot.worker_id}").exception("worker failed")
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(status)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(s.ready for s in self.slots):
            left = deadline - time.monotonic()
            if left <= 0:
                late = [s.worker_id for s in self.slots if not s.ready]
                raise WorkerError(f"workers {late[:8]} not ready after {timeout:.0f} s", code=errno.ETIMEDOUT,
                                  hint="see the workers' log lines above; a slow on_start delays readiness")
            if self._turn(left):
                raise KeyboardInterrupt
            if self.failed:
                raise WorkerError(self.failed, code=errno.ECHILD,
                                  hint="see the worker's log lines above for why it died")

    def _read_ready(self) -> list[_Slot]:
        data = os.read(self._ready_r, 4 * 1024)
        became = []
        for off in range(0, len(data) - 3, 4):
            wid = int.from_bytes(data[off:off + 4], "little")
            if 0 <= wid < len(self.slots):
                self.slots[wid].ready = True
                became.append(self.slots[wid])
        return became

    def _drain_signals(self) -> None:
        try:
            while os.read(self._sig_r, 512):
                pass
        except BlockingIOError:
            pass

    # -- one turn of the loop -----------------------------------------------------------------
    def _turn(self, max_wait: float) -> bool:
        """One turn of the blocking loop (:meth:`run`, :meth:`_wait_ready`): wait up to
        ``max_wait`` seconds (less when a restart or the watchdog is due) in the selector, then
        :meth:`_handle` what it reported. True: a stop signal came."""
        return self._handle(self._sel.select(self._turn_wait(max_wait)))

    def _turn_wait(self, max_wait: float) -> float:
        """``max_wait`` seconds, shortened to the next due restart or watchdog check (>= 0)."""
        now = time.monotonic()
        due = [s.restart_at for s in self.slots if s.restart_at is not None]
        return max(min([max_wait, *(t - now for t in due),
                        *((self.watchdog.due_in(now),) if self.watchdog else ())]), 0.0)

    def _handle(self, events: list) -> bool:
        """Handle a selector result (``[(key, mask)]``) and what is due, the body of a turn of
        both drivers (:meth:`run`, :meth:`serve`): readiness, signals, reader callbacks; then
        stop signals first (True returned, deaths left for :meth:`stop`), then SIGHUP, then
        deaths, then the watchdog and the restarts that are due."""
        dead = []
        for key, _ in events:
            if key.data == "ready":
                for slot in self._read_ready():
                    if slot.deaths:
                        log.info("worker %d ready again after %.3f s", slot.worker_id,
                                 time.monotonic() - slot.deaths[-1])
            elif key.data == "signal":
                self._drain_signals()
            elif callable(key.data):
                key.data()
            else:
                dead.append(key.data)
        sigs, self._signals = self._signals, []
        if signal.SIGINT in sigs or signal.SIGTERM in sigs:
            return True
        if signal.SIGHUP in sigs:
            if self._on_hup is not None:
                self._on_hup()
            for slot in self.slots:
                if slot.pid:
                    try:
                        os.kill(slot.pid, signal.SIGHUP)
                    except ProcessLookupError:
                        pass
        for slot in dead:
            self._reap(slot)
        self._watch_tick()
        if not self._stopping:
            now = time.monotonic()
            for slot in self.slots:
                if slot.restart_at is not None and slot.restart_at <= now:
                    self._spawn(slot)
        return False

    def _reap(self, slot: _Slot) -> Optional[str]:
        """Collect ``slot``'s worker if it exited; decide its restart. Returns its cause or None."""
        if not slot.pid:
            return None
        try:
            pid, status = os.waitpid(slot.pid, os.WNOHANG)
        except ChildProcessError:  # someone else reaped it (an embedding program's waitpid(-1))
            pid, status = slot.pid, 0
        if pid == 0:
            return None
        self._sel.unregister(slot.pidfd)
        os.close(slot.pidfd)
        slot.pidfd = -1
        slot.pid = 0
        cause = _describe_status(status)
        if self.steered.rings:
            lost = sum(port.rings[slot.worker_id].take_interrupted() for port in self.ports)
            if lost:
                self.counters.row(slot.worker_id)[Col.INTERRUPTED] += lost
        cause += self._after_death(slot.worker_id)
        if self._stopping:
            return cause
        cfg = self.config
        now = time.monotonic()
        when = "" if slot.ready else " before it was ready"
        slot.deaths = [t for t in slot.deaths if now - t < cfg.restart_window] + [now]
        if len(slot.deaths) > cfg.restart_burst:
            self.failed = (f"worker {slot.worker_id} (pid {pid}) {cause}{when}; it died {len(slot.deaths)} times "
                           f"in {cfg.restart_window:g} s, giving up")
            log.error("%s; stopping", self.failed)
            self._stopping = True
            return cause
        self.counters.row(slot.worker_id)[Col.RESTARTS] += 1
        self.counters.reset_gauges(slot.worker_id)
        delay = restart_delay(len(slot.deaths))
        log.warning("worker %d (pid %d) %s; restarting it on the same socket%s%s", slot.worker_id, pid, cause,
                    f" in {delay:.2f} s" if delay else "", f" (it died{when})" if when else "")
        slot.ready = False
        slot.restart_at = now + delay
        return cause

    # -- running ------------------------------------------------------------------------------
    def poll_stats(self) -> None:
        """Read every socket's PACKET_STATISTICS (every worker, every interface) and add
        drops/freezes to the shared counters (and to the per-interface ones); read each
        interface's receive drops since start into ``if_rx_dropped_per`` and their sum into
        ``if_rx_dropped`` (frames)."""
        self.if_rx_dropped_per = [max(rx_dropped(ifx) - base, 0)
                                  for ifx, base in zip(self.ifindexes, self._if_rx_dropped0)]
        self.if_rx_dropped = sum(self.if_rx_dropped_per)
        arr = self.counters.array
        parr = self.port_counters.array if self.port_counters is not None else None
        nports = len(self.ports)
        v3 = bool(self.steered.rings)
        for k, port in enumerate(self.ports):
            for wid, sock in enumerate(port.socks):
                st = packet.read_stats(sock, v3)
                for row in (arr[wid],) if parr is None else (arr[wid], parr[wid * nports + k]):
                    row[Col.KERNEL_PACKETS] += st.packets
                    row[Col.KERNEL_DROPS] += st.drops
                    row[Col.FREEZES] += st.freeze_q_cnt

    def port_figures(self) -> dict[str, dict]:
        """Per-interface figures: ``{ifname: {"ifindex", "total", "frames", "bytes", "drops",
        "freezes", "truncated", "tx_frames", "tx_errors", "if_rx_dropped"}}``; the lists have one
        entry per worker (frames/bytes that worker read from that interface; drops and freezes
        of its socket there, PACKET_STATISTICS as of the last :meth:`poll_stats`)."""
        out: dict[str, dict] = {}
        counters = self.port_counters if self.port_counters is not None else self.counters
        if counters is None or not self.ports:
            return out
        nports = len(self.ports)
        arr = counters.array.copy()
        for k, name in enumerate(self.config.interfaces[:nports]):
            rows = arr[k::nports]
            out[name] = {
                "ifindex": self.ifindexes[k],
                "total": int(rows[:, Col.FRAMES].sum()),
                "frames": rows[:, Col.FRAMES].tolist(),
                "bytes": rows[:, Col.BYTES].tolist(),
                "drops": rows[:, Col.KERNEL_DROPS].tolist(),
                "freezes": rows[:, Col.FREEZES].tolist(),
                "truncated": rows[:, Col.TRUNCATED].tolist(),
                "tx_frames": rows[:, Col.TX_FRAMES].tolist(),
                "tx_errors": rows[:, Col.TX_ERRORS].tolist(),
                "if_rx_dropped": self.if_rx_dropped_per[k] if k < len(self.if_rx_dropped_per) else 0,
            }
        return out

    def line(self) -> str:
        """The current stats line (see :func:`pfrps.stats.format_line`)."""
        arr = self.counters.array
        return format_line(arr[:, Col.FRAMES], arr[:, Col.KERNEL_DROPS], arr[:, Col.FREEZES],
                           arr[:, Col.TRUNCATED], self.if_rx_dropped, arr[:, Col.INTERRUPTED],
                           *((self.links.state(), self.links.flaps()) if self.links else ()),
                           resync_skipped=arr[:, Col.RESYNC_SKIPPED]) + self._port_line()

    def _port_line(self) -> str:
        """With several interfaces: `` [eth1 #0:12 #1:5 total:17] [eth2 ... drops:N if_rx_dropped:N
        link:down]`` (frames per worker from each interface; drops and link only when not nothing)."""
        if len(self.ports) < 2:
            return ""
        parts = []
        for k, (name, fig) in enumerate(self.port_figures().items()):
            text = " ".join(f"#{w}:{n}" for w, n in enumerate(fig["frames"]))
            text += f" total:{fig['total']}"
            if any(fig["drops"]):
                text += f" drops:{sum(fig['drops'])}"
            if fig["if_rx_dropped"]:
                text += f" if_rx_dropped:{fig['if_rx_dropped']}"
            if self.links is not None and k < len(self.ifindexes) and self.ifindexes[k] in self.links.links:
                state = self.links.state(self.ifindexes[k])
                if state != "up":
                    text += f" link:{state}"
            parts.append(f"[{name} {text}]")
        return " " + " ".join(parts)

    def snapshot(self) -> dict:
        """Every counter as a dict (the ``--json`` line); with ``link`` (``up``/``down``/``removed``),
        ``link_flaps`` and ``links`` (per interface) from :mod:`pfrps.linkwatch`."""
        out = snapshot(self.counters, time.monotonic() - self.started_at, self.if_rx_dropped)
        if self.links is not None:
            out.update(self.links.as_json())
        out["interfaces"] = self.port_figures()
        return out

    def total(self) -> int:
        """Frames received so far, all workers."""
        return int(self.counters.array[:, Col.FRAMES].sum())

    def run(self, emit: Callable[[], None], interval: float = 1.0, duration: Optional[float] = None,
            count: Optional[int] = None, on_hup: Optional[Callable[[], None]] = None) -> int:
        """Supervise in a blocking loop (the supervisor's own selector) until SIGINT/SIGTERM,
        :meth:`request_stop`, ``duration`` seconds, or ``count`` frames. :meth:`serve` does the
        same on a running asyncio loop.

        Calls ``emit()`` every ``interval`` seconds and once more after the workers stopped.
        Restarts workers that die (same id, same socket, with backoff) and logs each with its
        cause. SIGHUP calls ``on_hup()`` and is passed on to the workers (which reopen log files).
        :meth:`add_reader` callbacks run from this loop, which also reads the workers' mailbox
        replies (those to :meth:`tell`, and late ones to :meth:`request`, are dropped).

        Returns:
            0, or 1 when a worker kept dying (:attr:`failed` says which and why).

        Raises:
            UsageError: called before :meth:`start`, or while run()/serve() already runs.
            pfrps.linkwatch.InterfaceGoneError: the interface was removed; every worker was
                stopped (``on_stop`` ran) and ``emit()`` called once more first.
        """
        pace = self._begin_run(on_hup, interval, duration, count)
        try:
            while (wait := pace.next_wait(self, emit)) is not None:
                if self._turn(wait):
                    break
        finally:
            self._end_run()
        self.stop()
        return self._finish_run(emit)

    async def serve(self, emit: Callable[[], None], interval: float = 1.0, duration: Optional[float] = None,
                    count: Optional[int] = None, on_hup: Optional[Callable[[], None]] = None) -> int:
        """:meth:`run` on the caller's running event loop (asyncio's or uvloop's), so that the
        application's own tasks (a management API, a RADIUS client) share the loop with the
        supervision: ``rc = await sup.serve(emit)`` in a task, after :meth:`start`.

        Same arguments, return value, errors, restarts, watchdog and end as :meth:`run` (stop:
        SIGTERM to every worker, ``on_stop`` runs in each, SIGKILL after the grace of
        :meth:`stop`; then ``emit()`` once more), without blocking the loop: the loop watches
        the supervisor's selector (an epoll fd holding the ready pipe, each worker's pidfd, the
        link watch, the mailboxes and the :meth:`add_reader` fds) and a timer wakes it for the
        emits, restarts and watchdog checks. ``emit``, ``on_hup`` and the reader callbacks run
        on the loop and must not block; a watchdog kill blocks it for 0.1 s (the stack dump).

        Signals: while it runs SIGINT, SIGTERM and SIGHUP are the loop's
        (``loop.add_signal_handler``: handlers the application set on the loop for these three
        are replaced); all three are removed when it returns. The loop must run in the main
        thread. :meth:`start` stays synchronous: call it before the loop runs, or from a
        coroutine (it then blocks the loop while it forks and waits for the workers; its
        netlink calls run off the loop, :func:`pfrps.links.outside_running_loop`); call
        :meth:`close` after serve() returned. Cancelling the awaiting task stops the workers
        the same way (no last ``emit()``) and raises CancelledError.

        Returns:
            0, or 1 when a worker kept dying (:attr:`failed` says which and why).

        Raises:
            UsageError: called before :meth:`start`, or while run()/serve() already runs.
            RuntimeError: no running loop; ValueError: the loop is not in the main thread.
            pfrps.linkwatch.InterfaceGoneError: as :meth:`run`.
        """
        loop = asyncio.get_running_loop()
        pace = self._begin_run(on_hup, interval, duration, count)
        sel_fd = self._sel.fileno()
        added: list[int] = []
        try:
            self._serve_loop = loop
            self._restore_signals()  # the loop's from here on (its own handlers and wakeup fd)
            loop.add_reader(sel_fd, self._wakeup)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, self._on_loop_signal, sig)
                added.append(sig)
            while (wait := pace.next_wait(self, emit)) is not None:
                await self._sleep(self._turn_wait(wait))
                if self._handle(self._sel.select(0)):
                    break
        finally:
            self._end_run()
            try:
                await self._stop_async()
            finally:
                for sig in added:
                    loop.remove_signal_handler(sig)
                loop.remove_reader(sel_fd)
                self._serve_loop = None
        return self._finish_run(emit)

    def request_stop(self) -> None:
        """End :meth:`run`/:meth:`serve` as SIGTERM does (the workers are stopped cleanly): for
        a management command, from a reader callback, ``emit``, ``on_hup`` or a task on
        serve()'s loop. Takes effect at the next turn of the loop."""
        self._signals.append(signal.SIGTERM)
        self._wakeup()

    def _begin_run(self, on_hup: Optional[Callable[[], None]], interval: float, duration: Optional[float],
                   count: Optional[int]) -> _Pace:
        """Start of both drivers: checks, the SIGHUP hook, and the mailboxes in the selector.

        Raises:
            UsageError: not started, or a driver already runs.
        """
        if self._sel is None:
            raise UsageError("the supervisor is not started", hint="call start() before run() or serve()")
        if self._in_run:
            raise UsageError("the supervisor is already supervising",
                             hint="call run() or serve() once, and again only after it returned")
        self._on_hup = on_hup
        self._in_run = True
        for wid, (sup_end, _) in enumerate(self.mailboxes):
            self._sel.register(sup_end.fileno(), selectors.EVENT_READ, functools.partial(self._read_mail, wid))
        return _Pace(interval, duration, count)

    def _end_run(self) -> None:
        for sup_end, _ in self.mailboxes:
            self.remove_reader(sup_end.fileno())
        self._on_hup = None
        self._in_run = False

    def _finish_run(self, emit: Callable[[], None]) -> int:
        """After the workers stopped: the last stats and ``emit()``; the exit status or the
        interface error."""
        self.poll_stats()
        emit()
        if self.link_error is not None:
            raise self.link_error
        return 1 if self.failed else 0

    def _on_loop_signal(self, signum: int) -> None:
        self._signals.append(signum)
        self._wakeup()

    def _wakeup(self) -> None:
        """End :meth:`_sleep` (the selector has events, a signal came, or time is up)."""
        fut = self._wake
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _sleep(self, seconds: float) -> None:
        """serve()'s wait: until the selector has events, a signal came, or ``seconds`` passed;
        yields to the loop's other tasks at least once."""
        if seconds <= 0 or self._signals:
            await asyncio.sleep(0)
            return
        loop = self._serve_loop
        self._wake = fut = loop.create_future()
        timer = loop.call_later(seconds, self._wakeup)
        try:
            await fut
        finally:
            timer.cancel()
            self._wake = None

    # -- link events and the watchdog (pfrps.linkwatch, pfrps.watchdog) ---------------------------
    def _start_watchers(self) -> None:
        cfg = self.config
        self.links = LinkWatch(list(zip(cfg.interfaces, self.ifindexes)), self.on_link_event)
        self.add_reader(self.links.fileno(), self._on_link_readable)
        if cfg.watchdog > 0:  # a worker is stuck when any of its sockets waits and it makes no progress
            self.watchdog = Watchdog(cfg.watchdog, [[p.socks[w].fileno() for p in self.ports] for w in range(cfg.workers)],
                                     self.counters, [[p.rings[w] for p in self.ports] for w in range(cfg.workers)]
                                     if self.steered.rings else ())

    def _close_watchers(self) -> None:
        if self.links is not None:
            self.remove_reader(self.links.fileno())
            self.links.close()
            self.links = None
        self.watchdog = None

    def _on_link_readable(self) -> None:
        """Link messages: logged and passed on by :meth:`LinkWatch.read`; the interface removed
        stops the run (raised now during start-up, by :meth:`run` once the workers stopped)."""
        try:
            self.links.read()
        except InterfaceGoneError as exc:
            self.link_error = exc
            self._stopping = True
            for s in self.slots:
                s.restart_at = None
            if not self._in_run:
                raise

    def _watch_tick(self) -> None:
        """Kill the workers the watchdog finds stuck (their stack dumped to the log first)."""
        wd = self.watchdog
        if wd is None or self._stopping:
            return
        stuck = wd.check(time.monotonic(), [bool(s.pid) and s.ready for s in self.slots])
        for wid, stalled in stuck:
            slot = self.slots[wid]
            why = (f"made no progress for {stalled:.1f} s with frames waiting "
                   f"(watchdog {self.config.watchdog:g} s)")
            log.error("worker %d (pid %d) %s; its Python stack follows, then it is killed", wid, slot.pid, why)
            wd.reasons[wid] = why
            try:
                os.kill(slot.pid, STACK_SIGNAL)
                time.sleep(DUMP_WAIT)
                os.kill(slot.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _after_death(self, wid: int) -> str:
        """Heartbeat bookkeeping when worker ``wid`` died: in recv mode a death inside the
        handler counts that frame ``interrupted`` (ring mode counts it from the read position);
        returns the watchdog's reason to add to the cause, if it killed the worker."""
        wd = self.watchdog
        in_handler = wd.forget(wid) if wd is not None else heartbeat_parity_fix(self.counters, wid)
        if in_handler and not self.steered.rings:
            self.counters.row(wid)[Col.INTERRUPTED] += 1
        why = wd.reasons.pop(wid, "") if wd is not None else ""
        return f" after it {why}" if why else ""

    # -- the application's control plane ---------------------------------------------------------
    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback()`` from the supervision loop whenever ``fd`` is readable (an
        application's management socket, a timer fd ...), with :meth:`run` and with
        :meth:`serve` alike (under serve() an application may as well use ``loop.add_reader``).
        The callback must not block.

        Raises:
            UsageError: before :meth:`start` or after :meth:`close`.
            KeyError: ``fd`` is watched already.
        """
        if self._sel is None:
            raise UsageError("the supervisor is not started", hint="call add_reader() after start()")
        self._sel.register(fd, selectors.EVENT_READ, callback)

    def remove_reader(self, fd: int) -> None:
        """Stop watching ``fd`` (see :meth:`add_reader`); unknown fds are ignored."""
        if self._sel is not None:
            try:
                self._sel.unregister(fd)
            except KeyError:
                pass

    # Worker mailboxes (SupervisorConfig(mailboxes=True)): one SOCK_SEQPACKET pair per worker;
    # each message is a 4-byte request id, then the payload; the worker's on_message(ctx,
    # payload) answers every message with the same id. request() (blocking) and ask() (async)
    # wait for the answers; tell() does not, and its answers are read and dropped.
    def request(self, worker_ids: Optional[Iterable[int]], payload: bytes,
                timeout: float = 2.0) -> dict[int, bytes]:
        """Send ``payload`` (bytes, at most :data:`MAILBOX_MAX`) to ``on_message(ctx, payload)``
        of each worker in ``worker_ids`` (None: all) and collect the replies for up to
        ``timeout`` seconds, blocking (for :meth:`run`'s callbacks, or before/after it; under
        :meth:`serve` use :meth:`ask`, which does not block the loop).

        Needs ``SupervisorConfig(mailboxes=True)``. A message to a worker that is down waits
        in its mailbox for the restarted worker; a reply that comes after ``timeout`` is
        discarded.

        Returns:
            ``{worker id: reply bytes}`` for the workers that answered in time.

        Raises:
            UsageError: mailboxes are off, a worker id is out of range, or the payload is too big.
        """
        rid, sent = self._post(worker_ids, payload)
        pending = self._pending[rid] = _Pending(set(sent))
        deadline = time.monotonic() + timeout
        try:
            with selectors.DefaultSelector() as sel:
                for wid in sent:
                    sel.register(self.mailboxes[wid][0].fileno(), selectors.EVENT_READ, wid)
                while pending.waiting:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    for key, _ in sel.select(left):
                        self._read_mail(key.data)
                        if key.data not in pending.waiting:
                            sel.unregister(key.fd)
        finally:
            del self._pending[rid]
        return dict(sorted(pending.replies.items()))

    async def ask(self, worker_ids: Optional[Iterable[int]], payload: bytes,
                  timeout: float = 2.0) -> dict[int, bytes]:
        """:meth:`request` for the running event loop: send ``payload`` (bytes, at most
        :data:`MAILBOX_MAX`) to ``on_message(ctx, payload)`` of each worker in ``worker_ids``
        (None: all) and await their replies for up to ``timeout`` seconds, the loop running
        meanwhile (under :meth:`serve` the replies are read from its selector; otherwise, say
        between :meth:`start` and serve(), through loop readers on the mailboxes). Several
        asks, to the same workers too, may be pending at once.

        Returns:
            ``{worker id: reply bytes}`` for the workers that answered in time (a worker that
            is down, or whose mailbox was full, is missing).

        Raises:
            UsageError: mailboxes are off, a worker id is out of range, or the payload is too big.
            RuntimeError: no running loop.
        """
        loop = asyncio.get_running_loop()
        rid, sent = self._post(worker_ids, payload)
        pending = self._pending[rid] = _Pending(set(sent), done=loop.create_future())
        watched: list[int] = []
        try:
            if self._serve_loop is not loop:  # else serve() reads the mailboxes
                for wid in sent:
                    self._watch_mail(loop, wid, +1)
                    watched.append(wid)
            if pending.waiting:
                try:
                    await asyncio.wait_for(pending.done, timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            del self._pending[rid]
            for wid in watched:
                self._watch_mail(loop, wid, -1)
        return dict(sorted(pending.replies.items()))

    def tell(self, worker_ids: Optional[Iterable[int]], payload: bytes) -> list[int]:
        """Hand ``payload`` (bytes, at most :data:`MAILBOX_MAX`) to ``on_message(ctx, payload)``
        of each worker in ``worker_ids`` (None: all) without waiting for anything: from
        :meth:`run`'s callbacks or a task under :meth:`serve` alike. A worker that is down gets
        it when restarted; its reply is read and dropped by run()/serve().

        Returns:
            The worker ids it was queued for, in order (a full mailbox drops it: logged).

        Raises:
            UsageError: mailboxes are off, a worker id is out of range, or the payload is too big.
        """
        return self._post(worker_ids, payload)[1]

    def _post(self, worker_ids: Optional[Iterable[int]], payload: bytes) -> tuple[bytes, list[int]]:
        """Queue ``payload`` under a new request id in each named mailbox (every id checked
        before any is sent); returns (the id, the worker ids it was queued for).

        Raises:
            UsageError: mailboxes are off, a worker id is out of range, or the payload is too big.
        """
        if not self.mailboxes:
            raise UsageError("this supervisor has no worker mailboxes", hint="use SupervisorConfig(mailboxes=True)")
        if len(payload) > MAILBOX_MAX:
            raise UsageError(f"a mailbox message of {len(payload)} bytes is too big",
                             hint=f"send at most {MAILBOX_MAX} bytes")
        n = len(self.mailboxes)
        ids = list(range(n)) if worker_ids is None else list(dict.fromkeys(worker_ids))
        for wid in ids:
            if not (isinstance(wid, int) and 0 <= wid < n):
                raise UsageError(f"no worker {wid!r}", hint=f"pick 0..{n - 1}, or None for all")
        self._request_id = (self._request_id + 1) & 0xFFFFFFFF
        rid = self._request_id.to_bytes(4, "little")
        sent = []
        for wid in ids:
            try:
                self.mailboxes[wid][0].send(rid + payload, socket.MSG_DONTWAIT)
            except BlockingIOError:
                log.warning("worker %d's mailbox is full; message dropped", wid)
                continue
            sent.append(wid)
        return rid, sent

    def _read_mail(self, wid: int) -> None:
        """Read every reply waiting in worker ``wid``'s mailbox; hand each to the request or ask
        awaiting it, drop the others (answers to :meth:`tell`, late replies)."""
        sup_end = self.mailboxes[wid][0]
        while True:
            try:
                msg = sup_end.recv(MAILBOX_MAX + 4, socket.MSG_DONTWAIT)
            except OSError:  # nothing more (EAGAIN), or the mailbox was closed
                return
            if not msg:
                return
            pending = self._pending.get(msg[:4])
            if pending is not None and wid in pending.waiting:
                pending.waiting.discard(wid)
                pending.replies[wid] = msg[4:]
                if not pending.waiting and pending.done is not None and not pending.done.done():
                    pending.done.set_result(None)

    def _watch_mail(self, loop: asyncio.AbstractEventLoop, wid: int, delta: int) -> None:
        """A loop reader on worker ``wid``'s mailbox while at least one :meth:`ask` outside
        :meth:`serve` waits for it (``delta`` +1: one more, -1: one less)."""
        fd = self.mailboxes[wid][0].fileno()
        n = self._mail_watch.get(fd, 0) + delta
        if n > 0:
            if n == 1 and delta > 0:
                loop.add_reader(fd, self._read_mail, wid)
            self._mail_watch[fd] = n
        else:
            self._mail_watch.pop(fd, None)
            loop.remove_reader(fd)

    # -- stopping -----------------------------------------------------------------------------
    def stop(self, grace: Optional[float] = None) -> None:
        """SIGTERM every worker, wait up to ``grace`` seconds (default :data:`STOP_GRACE`, or
        :data:`STOP_GRACE_PER_WORKER` per worker when that is longer; each worker drains for at
        most :data:`pfrps.worker.DRAIN_SECONDS`, then runs ``on_stop``), then SIGKILL what is left.
        Blocking; :meth:`run` and :meth:`serve` end with it (serve() with the same steps
        awaited), so only call it outside them (:meth:`request_stop` ends them)."""
        grace = self._terminate(grace)
        deadline = time.monotonic() + grace
        while self._sel is not None and any(s.pid for s in self.slots):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._stop_events(self._sel.select(left))
        self._kill_left(grace)

    async def _stop_async(self, grace: Optional[float] = None) -> None:
        """:meth:`stop` for :meth:`serve`: the grace awaited on its loop."""
        grace = self._terminate(grace)
        deadline = time.monotonic() + grace
        while self._sel is not None and any(s.pid for s in self.slots):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await self._sleep(left)
            self._stop_events(self._sel.select(0))
        self._kill_left(grace)

    def _terminate(self, grace: Optional[float]) -> float:
        """No more restarts; SIGTERM every worker. Returns the grace, seconds (see :meth:`stop`)."""
        if grace is None:
            grace = max(STOP_GRACE, STOP_GRACE_PER_WORKER * len(self.slots))
        self._stopping = True
        for s in self.slots:
            s.restart_at = None
            if s.pid:
                try:
                    os.kill(s.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        return grace

    def _stop_events(self, events: list) -> None:
        """While stopping: readiness and the signal pipe drained, deaths reaped (no restarts)."""
        for key, _ in events:
            if key.data == "ready":
                self._read_ready()
            elif key.data == "signal":
                self._drain_signals()
            elif isinstance(key.data, _Slot):
                self._reap(key.data)

    def _kill_left(self, grace: float) -> None:
        """SIGKILL and reap every worker still there after the grace."""
        self._signals.clear()
        for s in self.slots:
            if s.pid:
                log.warning("worker %d (pid %d) did not stop in %.1f s; killing it", s.worker_id, s.pid, grace)
                try:
                    os.kill(s.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    os.waitpid(s.pid, 0)
                except ChildProcessError:
                    pass
                if s.pidfd >= 0:
                    self._sel.unregister(s.pidfd)
                    os.close(s.pidfd)
                s.pid, s.pidfd = 0, -1

    def close(self) -> None:
        """Stop the workers and release every socket, ring, pipe and program (idempotent)."""
        if any(s.pid for s in self.slots):
            self.stop()
        if self.metrics_endpoint is not None:  # before the counters it reads are unmapped
            self.metrics_endpoint.close()
            self.metrics_endpoint = None
        self._close_watchers()
        for port in self.ports:
            port.close()
        self.ports = []
        if self.port_counters is not None:
            self.port_counters.close()
            self.port_counters = None
        for pair in self.mailboxes:
            for end in pair:
                end.close()
        self.mailboxes.clear()
        if self.bpf is not None:
            self.bpf.close()
            self.bpf = None
        self.slots.clear()
        self._restore_signals()
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        for fd in (self._ready_r, self._ready_w, self._sig_r, self._sig_w):
            if fd >= 0:
                os.close(fd)
        self._ready_r = self._ready_w = self._sig_r = self._sig_w = -1
        if self.counters is not None:
            self.counters.close()
            self.counters = None

    def __enter__(self) -> "Supervisor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        """One line naming what is steered and how (the start-up line)."""
        cfg = self.config
        et = ",".join(f"0x{e:04x}" for e in cfg.ethertypes) if cfg.ethertypes else "all"
        prog = f", program {cfg.program}" if cfg.program else ""
        ports = ", ".join(f"{name} (ifindex {ifx})" for name, ifx in zip(cfg.interfaces, self.ifindexes)) \
            or f"{cfg.interface} (ifindex {self.ifindex})"
        rings = ""
        if len(cfg.interfaces) > 1:
            per = self.ring_bytes_per_worker() // len(cfg.interfaces)
            rings = (f", {cfg.workers} x {len(cfg.interfaces)} {'rings' if cfg.rx == 'ring' else 'socket buffers'}"
                     f" of {per} bytes ({per * cfg.workers * len(cfg.interfaces)} bytes in all)")
        return (f"steering {ports} across {cfg.workers} workers: "
                f"steering {cfg.steering}, hash {alg_name(cfg.hash_alg)}, ethertypes {et}, rx {cfg.rx}{prog}{rings}")


def _die_with_parent(parent: int) -> None:
    """A worker gets SIGKILL when its supervisor dies, however it dies (prctl(2)
    PR_SET_PDEATHSIG), so no worker outlives a SIGKILLed supervisor (with its sockets, maps and
    the BPF links of the attachments). A supervisor that died before the call: exit at once."""
    import ctypes  # noqa: PLC0415

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _raise_fd_limit(workers: int) -> None:
    """Make room for a socket and a pidfd per worker (RLIMIT_NOFILE's soft limit, up to the hard one).

    Raises:
        UsageError: the hard limit is too low.
    """
    need = 2 * workers + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise UsageError(f"{workers} workers need about {need} file descriptors; this process may open {hard}",
                             code=errno.EMFILE, hint=f"raise the limit (ulimit -n {need}) or use fewer workers")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"was killed by {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
