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
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from . import packet
from .config import (DEFAULT_ETHERTYPES, MAX_WORKERS, RESTART_BURST, RESTART_WINDOW, RX_MODES,  # noqa: F401
                     STEERING_MODES, SupervisorConfig, check_privileges, parse_cpus)
from .errors import UsageError, WorkerError
from .hashing import alg_name
from .links import check_interface, rx_dropped
from .privileges import drop_to_user, keep_only_caps, lookup_user
from .stats import Col, SharedCounters, format_line, snapshot
from .steering import SteeredSockets, open_steered
from .bpfobjects import LoadedBpf
from .linkwatch import InterfaceGoneError, LinkEvent, LinkWatch
from .watchdog import DUMP_WAIT, STACK_SIGNAL, Watchdog, heartbeat_parity_fix
from .worker import MAILBOX_MAX, STOP_SIGNALS, Handler, WorkerContext, run_worker

__all__ = ["SupervisorConfig", "Supervisor", "MAX_WORKERS", "STEERING_MODES", "check_privileges", "parse_cpus"]

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
    started: float = 0.0
    ready: bool = False
    deaths: list[float] = field(default_factory=list)
    restart_at: Optional[float] = None


def restart_delay(deaths_in_window: int) -> float:
    """Seconds to wait before restarting a worker that died ``deaths_in_window`` times in the
    window (this death included): 0 for the first, then 0.1, 0.2, 0.4 ... at most 2 s."""
    first, step, cap = RESTART_BACKOFF
    if deaths_in_window <= 1:
        return first
    return min(step * 2 ** (deaths_in_window - 2), cap)


class Supervisor:
    """Run N steered workers on one interface.

    Args:
        config: a :class:`SupervisorConfig`.
        handler: called for every frame in the worker (see :data:`pfrps.worker.Handler`);
            None just counts frames.
        on_start, on_stop: called in each worker with its :class:`WorkerContext`, after the
            socket exists and before frames flow / after the last frame (also when the worker
            is stopped during start-up or by Ctrl-C to the process group).

    Use :meth:`start` then :meth:`run` (or :meth:`serve`, which does both), and :meth:`close`
    in a ``finally``; or use it as a context manager.

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
        self.steered = SteeredSockets()
        self.slots: list[_Slot] = []
        self.ifindex = 0
        self.if_rx_dropped = 0
        self._if_rx_dropped0 = 0
        self.ready_seconds = 0.0
        self.started_at = 0.0
        self._ready_r = self._ready_w = -1
        self._sig_r = self._sig_w = -1
        self._sel: Optional[selectors.BaseSelector] = None
        self._signals: list[int] = []
        self._stopping = False
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup = -1
        self._on_hup: Optional[Callable[[], None]] = None
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
        link = check_interface(cfg.interface)
        self.ifindex = link.ifindex
        if cfg.steering in ("filter", "fanout") or cfg.ethertypes:
            check_privileges()
        try:
            if cfg.metrics is not None:  # bound now: a bad address or a port in use fails before any fork
                from .metrics import open_endpoint  # noqa: PLC0415

                self.metrics_endpoint = open_endpoint(cfg)
            _raise_fd_limit(cfg.workers)
            self.steered = open_steered(cfg)
            if cfg.bpf_objects:
                self.bpf = LoadedBpf.open(tuple(cfg.bpf_objects))
            if cfg.mailboxes:
                self.mailboxes = [socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                                  for _ in range(cfg.workers)]
            self.slots = [_Slot(i) for i in range(cfg.workers)]
            self._if_rx_dropped0 = rx_dropped(self.ifindex)
            self.counters = SharedCounters(cfg.workers, cfg.app_counters, cfg.app_gauges, cfg.app_histograms)
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

    def ring_bytes_per_worker(self) -> int:
        """Memory of one worker's receive ring (ring mode) or socket buffer (recv mode), bytes."""
        cfg = self.config
        bs, blocks = cfg.ring_geometry()
        return bs * blocks if cfg.rx == "ring" else cfg.rcvbuf

    def _install_signals(self) -> None:
        def on_signal(signum, _frame):
            self._signals.append(signum)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, on_signal)
        self._old_wakeup = signal.set_wakeup_fd(self._sig_w, warn_on_full_buffer=False)

    def _restore_signals(self) -> None:
        if self._old_handlers:
            signal.set_wakeup_fd(self._old_wakeup)
            for sig, old in self._old_handlers.items():
                signal.signal(sig, old)
            self._old_handlers.clear()

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
        slot.started = time.monotonic()
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
            for i, other in enumerate(self.steered.socks):
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
            receiver_factory = None
            if self.steered.rings:
                from .receive import RingReceiver  # noqa: PLC0415

                ring = self.steered.rings[wid]
                receiver_factory = lambda sock: RingReceiver(ring)  # noqa: E731
            status = run_worker(
                wid, self.config.workers, self.ifindex, sock, self.counters,
                self._ready_w, self.handler, self.on_start, self.on_stop, receiver_factory,
                self.config.cpus, bpf=self.bpf, mailbox=mailbox, on_message=self.on_message,
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
        """Wait up to ``max_wait`` seconds for readiness, signals and worker deaths and handle
        them: stop signals first (True returned, deaths left for :meth:`stop`), then SIGHUP,
        then deaths, then restarts that are due."""
        now = time.monotonic()
        due = [s.restart_at for s in self.slots if s.restart_at is not None]
        wait = max(min([max_wait, *(t - now for t in due),
                        *((self.watchdog.due_in(now),) if self.watchdog else ())]), 0.0)
        dead = []
        for key, _ in self._sel.select(wait):
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
            lost = self.steered.rings[slot.worker_id].take_interrupted()
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
        """Read every socket's PACKET_STATISTICS and add drops/freezes to the shared counters;
        read the interface's receive drops since start into ``if_rx_dropped`` (frames)."""
        self.if_rx_dropped = max(rx_dropped(self.ifindex) - self._if_rx_dropped0, 0)
        arr = self.counters.array
        v3 = bool(self.steered.rings)
        for wid, sock in enumerate(self.steered.socks):
            st = packet.read_stats(sock, v3)
            row = arr[wid]
            row[Col.KERNEL_PACKETS] += st.packets
            row[Col.KERNEL_DROPS] += st.drops
            row[Col.FREEZES] += st.freeze_q_cnt

    def line(self) -> str:
        """The current stats line (see :func:`pfrps.stats.format_line`)."""
        arr = self.counters.array
        return format_line(arr[:, Col.FRAMES], arr[:, Col.KERNEL_DROPS], arr[:, Col.FREEZES],
                           arr[:, Col.TRUNCATED], self.if_rx_dropped, arr[:, Col.INTERRUPTED],
                           *((self.links.state(), self.links.flaps()) if self.links else ()))

    def snapshot(self) -> dict:
        """Every counter as a dict (the ``--json`` line); with ``link`` (``up``/``down``/``removed``),
        ``link_flaps`` and ``links`` (per interface) from :mod:`pfrps.linkwatch`."""
        out = snapshot(self.counters, time.monotonic() - self.started_at, self.if_rx_dropped)
        if self.links is not None:
            out.update(self.links.as_json())
        return out

    def total(self) -> int:
        """Frames received so far, all workers."""
        return int(self.counters.array[:, Col.FRAMES].sum())

    def run(self, emit: Callable[[], None], interval: float = 1.0, duration: Optional[float] = None,
            count: Optional[int] = None, on_hup: Optional[Callable[[], None]] = None) -> int:
        """Supervise until SIGINT/SIGTERM, ``duration`` seconds, or ``count`` frames.

        Calls ``emit()`` every ``interval`` seconds and once more after the workers stopped.
        Restarts workers that die (same id, same socket, with backoff) and logs each with its
        cause. SIGHUP calls ``on_hup()`` and is passed on to the workers (which reopen log files).

        Returns:
            0, or 1 when a worker kept dying (:attr:`failed` says which and why).

        Raises:
            pfrps.linkwatch.InterfaceGoneError: the interface was removed; every worker was
                stopped (``on_stop`` ran) and ``emit()`` called once more first.
        """
        self._on_hup = on_hup
        self._in_run = True
        start = time.monotonic()
        next_tick = start + interval
        check_every = min(interval, 0.05) if count else interval
        try:
            while not self._stopping:
                now = time.monotonic()
                if duration is not None and now - start >= duration:
                    break
                if count is not None and self.total() >= count:
                    break
                if now >= next_tick:
                    self.poll_stats()
                    emit()
                    next_tick += interval * max(1, int((now - next_tick) // interval) + 1)
                wait = min(next_tick, now + check_every) - now
                if duration is not None:
                    wait = min(wait, start + duration - now)
                if self._turn(max(wait, 0.0)):
                    break
        finally:
            self._on_hup = None
            self._in_run = False
        self.stop()
        self.poll_stats()
        emit()
        if self.link_error is not None:
            raise self.link_error
        return 1 if self.failed else 0

    def serve(self, emit: Callable[[], None], **kwargs) -> int:
        """:meth:`start`, then :meth:`run` with ``kwargs``, then :meth:`close`."""
        try:
            self.start()
            return self.run(emit, **kwargs)
        finally:
            self.close()

    # -- link events and the watchdog (pfrps.linkwatch, pfrps.watchdog) ---------------------------
    def _start_watchers(self) -> None:
        cfg = self.config
        self.links = LinkWatch([(cfg.interface, self.ifindex)], self.on_link_event)
        self.add_reader(self.links.fileno(), self._on_link_readable)
        if cfg.watchdog > 0:
            self.watchdog = Watchdog(cfg.watchdog, [s.fileno() for s in self.steered.socks], self.counters,
                                     self.steered.rings)

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
        application's management socket, a timer fd ...). The callback must not block."""
        self._sel.register(fd, selectors.EVENT_READ, callback)

    def remove_reader(self, fd: int) -> None:
        """Stop watching ``fd`` (see :meth:`add_reader`); unknown fds are ignored."""
        if self._sel is not None:
            try:
                self._sel.unregister(fd)
            except KeyError:
                pass

    def request(self, worker_ids: Sequence[int], payload: bytes, timeout: float = 2.0) -> dict[int, bytes]:
        """Send ``payload`` (at most :data:`MAILBOX_MAX` bytes) to each worker's ``on_message``
        and collect the replies for up to ``timeout`` seconds.

        Needs ``SupervisorConfig(mailboxes=True)``. A message to a worker that is down waits
        in its mailbox for the restarted worker; a reply that comes after ``timeout`` is
        discarded. Blocks the supervision loop for at most ``timeout`` seconds.

        Returns:
            ``{worker id: reply}`` for the workers that answered in time.

        Raises:
            UsageError: mailboxes are off, a worker id is out of range, or the payload is too big.
        """
        if not self.mailboxes:
            raise UsageError("this supervisor has no worker mailboxes", hint="use SupervisorConfig(mailboxes=True)")
        if len(payload) > MAILBOX_MAX:
            raise UsageError(f"a mailbox message of {len(payload)} bytes is too big",
                             hint=f"send at most {MAILBOX_MAX} bytes")
        self._request_id = (self._request_id + 1) & 0xFFFFFFFF
        rid = self._request_id.to_bytes(4, "little")
        waiting = {}
        for wid in worker_ids:
            if not 0 <= wid < len(self.mailboxes):
                raise UsageError(f"no worker {wid}", hint=f"pick 0..{len(self.mailboxes) - 1}")
            sup_end = self.mailboxes[wid][0]
            try:
                sup_end.send(rid + payload, socket.MSG_DONTWAIT)
            except BlockingIOError:
                log.warning("worker %d's mailbox is full; message dropped", wid)
                continue
            waiting[sup_end.fileno()] = wid
        replies: dict[int, bytes] = {}
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            for fd in waiting:
                sel.register(fd, selectors.EVENT_READ)
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                for key, _ in sel.select(left):
                    wid = waiting.get(key.fd)
                    if wid is None:
                        continue
                    try:
                        msg = self.mailboxes[wid][0].recv(MAILBOX_MAX + 4, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        continue
                    if msg[:4] == rid:  # else: a late reply to an earlier request
                        replies[wid] = msg[4:]
                        del waiting[key.fd]
                        sel.unregister(key.fd)
        return replies

    # -- stopping -----------------------------------------------------------------------------
    def stop(self, grace: Optional[float] = None) -> None:
        """SIGTERM every worker, wait up to ``grace`` seconds (default :data:`STOP_GRACE`, or
        :data:`STOP_GRACE_PER_WORKER` per worker when that is longer; each worker drains for at
        most :data:`pfrps.worker.DRAIN_SECONDS`, then runs ``on_stop``), then SIGKILL what is left."""
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
        deadline = time.monotonic() + grace
        while self._sel is not None and any(s.pid for s in self.slots):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in self._sel.select(left):
                if key.data == "ready":
                    self._read_ready()
                elif key.data == "signal":
                    self._drain_signals()
                elif isinstance(key.data, _Slot):
                    self._reap(key.data)
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
        self.steered.close()
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
        return (f"steering {cfg.interface} (ifindex {self.ifindex}) across {cfg.workers} workers: "
                f"steering {cfg.steering}, hash {alg_name(cfg.hash_alg)}, ethertypes {et}, rx {cfg.rx}{prog}")


#: prctl(2) option: the signal a process gets when the thread that forked it exits.
PR_SET_PDEATHSIG = 1


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
