"""The supervisor: steered sockets, worker processes, statistics.

The supervisor compiles the steering program once, opens one PF_PACKET socket per worker
and keeps them open for the whole run, then forks N worker processes. Owning the sockets
means a worker that dies is replaced on the *same* socket: its steering (filter program or
fanout group membership) never changes, and frames that arrive meanwhile wait in the socket.
It reads ``PACKET_STATISTICS`` (which resets on read, so it must have one reader) and
accumulates kernel drops into the shared counters.

Steering modes:

``filter``
    The seed's design: each socket carries its own copy of ``bpf/rps_filter.bpf.c`` with its
    worker id; the kernel runs all N filters on every frame.
``fanout``
    One ``PACKET_FANOUT`` group of N sockets in ``PACKET_FANOUT_EBPF`` mode running
    ``bpf/rps_fanout.bpf.c`` once per frame (packet(7)); same worker for every frame as
    ``filter`` for the same N and hash.
``hash``
    The kernel's own ``PACKET_FANOUT_HASH`` (flow hash), for comparison only: it does not
    keep a source MAC on one worker.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from . import packet
from .bpfload import CompiledModule, SteeringOpts, builtin_program
from .errors import PfrpsError, PrivilegeError, UsageError, WorkerError
from .hashing import alg_name
from .links import check_interface, rx_dropped
from .privileges import SUPERVISOR_CAPS, drop_to_user, keep_only_caps, lookup_user
from .stats import Col, SharedCounters, format_line, snapshot
from .worker import Handler, WorkerContext, run_worker

__all__ = ["SupervisorConfig", "Supervisor", "MAX_WORKERS", "STEERING_MODES", "check_privileges"]

log = logging.getLogger("pfrps")

MAX_WORKERS = 1024
#: Default ring memory per worker, bytes (``--rx ring``).
RING_BYTES = 4 << 20
#: Up to this many workers the default ring uses 256 KiB blocks, above it 64 KiB blocks.
BIG_BLOCK_MAX_WORKERS = 16
STEERING_MODES = ("filter", "fanout", "hash")
RX_MODES = ("recv", "ring")
DEFAULT_ETHERTYPES = (packet.ETH_P_PPP_DISC, packet.ETH_P_PPP_SES)
#: A worker that dies this many times within RESTART_WINDOW seconds is not restarted again.
RESTART_BURST = 5
RESTART_WINDOW = 10.0

_CAP_NET_ADMIN, _CAP_NET_RAW, _CAP_SYS_ADMIN, _CAP_BPF = 12, 13, 21, 39


def check_privileges() -> None:
    """Require CAP_NET_RAW (PF_PACKET) and CAP_BPF or CAP_SYS_ADMIN (loading BPF programs).

    Raises:
        PrivilegeError: naming the missing capabilities.
    """
    try:
        text = Path("/proc/self/status").read_text()
        eff = int(next(ln.split()[1] for ln in text.splitlines() if ln.startswith("CapEff:")), 16)
    except (OSError, StopIteration, ValueError):
        eff = ~0 if os.geteuid() == 0 else 0
    missing = []
    if not eff >> _CAP_NET_RAW & 1:
        missing.append("CAP_NET_RAW")
    if not (eff >> _CAP_BPF & 1 or eff >> _CAP_SYS_ADMIN & 1):
        missing.append("CAP_BPF")
    if missing:
        raise PrivilegeError(
            f"missing capabilities {', '.join(missing)} (PF_PACKET sockets and BPF programs need them)",
            hint="run as root (sudo pfrps ...) or grant CAP_NET_RAW, CAP_NET_ADMIN and CAP_BPF",
        )


@dataclass
class SupervisorConfig:
    """What to steer and how.

    Attributes:
        interface: interface name (in the current network namespace).
        workers: N worker processes, 1..:data:`MAX_WORKERS`.
        hash_alg: 0 mac_hash, 1 mac_jhash, 2 jhash_oaat.
        ethertypes: ethertypes to receive (host order); empty = every frame.
        steering: one of :data:`STEERING_MODES` (default ``fanout``: its per-frame cost does not
            grow with N; see bench/RESULTS.md).
        program: a BPF C file replacing the built-in steering program (``-b``): with
            ``filter`` it defines ``pfrps_filter``, with ``fanout`` ``pfrps_fanout``; or None.
        rx: ``"ring"`` (TPACKET_V3 ring, block at a time, frames as views of the ring: the
            default) or ``"recv"`` (one syscall per frame, kept for comparison).
        rcvbuf: socket receive buffer, bytes (recv mode).
        ring_block_size, ring_blocks, ring_frame_size: TPACKET_V3 geometry (ring mode), bytes/count.
            ``None`` picks the default (:meth:`ring_geometry`): 4 MiB per worker, in 256 KiB
            blocks up to 16 workers and 64 KiB blocks above.
        cpus: CPUs to pin workers to (worker i on cpus[i % len]), or None.
        app_counters: names of extra per-worker counters for the handler (``ctx.count``).
        app_gauges: names of per-worker gauges (``ctx.count(name, -1)`` allowed), zeroed when a
            worker is restarted, since its replacement starts with empty ``ctx.storage``.
        user: once sockets and programs are in place, workers run as this user with no
            capabilities and the supervisor keeps only ``supervisor_caps`` (default CAP_SETUID,
            CAP_SETGID and CAP_KILL).
    """

    interface: str
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    hash_alg: int = 0
    ethertypes: tuple[int, ...] = DEFAULT_ETHERTYPES
    steering: str = "fanout"
    program: Optional[Path] = None
    rx: str = "ring"
    rcvbuf: int = 8 << 20
    ring_block_size: Optional[int] = None
    ring_blocks: Optional[int] = None
    ring_frame_size: int = 2048
    cpus: Optional[list[int]] = None
    app_counters: tuple[str, ...] = ()
    app_gauges: tuple[str, ...] = ()
    user: Optional[str] = None
    supervisor_caps: tuple[int, ...] = SUPERVISOR_CAPS

    def ring_geometry(self) -> tuple[int, int]:
        """``(block_size, blocks)`` of each worker's ring: the options, or the default.

        The default is :data:`RING_BYTES` (4 MiB) per worker. Its block size trades wake-ups
        against slack: a worker wakes once per retired block, and the kernel retires a block
        when full or 10 ms after opening it however empty, so at low per-worker rates the
        block count, not the bytes, bounds how long a worker may stay unscheduled before its
        ring freezes. Up to :data:`BIG_BLOCK_MAX_WORKERS` (16) workers: 16 x 256 KiB (2.7x fewer
        wake-ups than 64 KiB blocks at 8 workers, 1.6x the frames per CPU-second: bench/PROFILE.md);
        more workers: 64 x 64 KiB (4 x 1 MiB froze with 64 workers on 2 CPUs).
        """
        bs = self.ring_block_size
        if bs is None:
            bs = 256 << 10 if self.workers <= BIG_BLOCK_MAX_WORKERS else 64 << 10
        blocks = self.ring_blocks if self.ring_blocks is not None else max(1, RING_BYTES // bs)
        return bs, blocks

    def validate(self) -> None:
        """Raise :class:`UsageError` for values out of range (before anything is opened)."""
        if not 1 <= self.workers <= MAX_WORKERS:
            raise UsageError(f"worker count {self.workers} is out of range",
                             hint=f"use -w between 1 and {MAX_WORKERS}")
        if self.steering not in STEERING_MODES:
            raise UsageError(f"unknown steering mode {self.steering!r}", hint=f"use one of {', '.join(STEERING_MODES)}")
        if self.rx not in RX_MODES:
            raise UsageError(f"unknown receive mode {self.rx!r}", hint="use --rx ring or --rx recv")
        if self.user is not None:
            lookup_user(self.user)
        if self.rx == "ring":
            from .ring import check_geometry  # noqa: PLC0415

            check_geometry(*self.ring_geometry(), self.ring_frame_size)
        if self.program is not None and self.steering == "hash":
            raise UsageError("-b has no effect with --steering hash", hint="drop -b or use --steering filter/fanout")


@dataclass
class _Slot:
    worker_id: int
    sock: socket.socket
    pid: int = 0
    started: float = 0.0
    ready: bool = False
    deaths: list[float] = field(default_factory=list)


class Supervisor:
    """Run N steered workers on one interface.

    Args:
        config: a :class:`SupervisorConfig`.
        handler: called for every frame in the worker (see :data:`pfrps.worker.Handler`);
            None just counts frames.
        on_start, on_stop: called in each worker with its :class:`WorkerContext`, after the
            socket exists and before frames flow / after the last frame.

    Use :meth:`start` then :meth:`run` (or :meth:`serve`, which does both), and :meth:`close`
    in a ``finally``; or use it as a context manager.

    Raises (from :meth:`start`):
        UsageError and subclasses: bad configuration, missing interface, privileges, bcc,
            kernel headers, a ``-b`` file that does not compile.
        PfrpsError: the kernel refused a program or socket option.
        WorkerError: a worker did not become ready.
    """

    def __init__(self, config: SupervisorConfig, handler: Optional[Handler] = None,
                 on_start: Optional[Callable[[WorkerContext], Any]] = None,
                 on_stop: Optional[Callable[[WorkerContext], Any]] = None) -> None:
        self.config = config
        self.handler = handler
        self.on_start = on_start
        self.on_stop = on_stop
        self.counters: Optional[SharedCounters] = None
        self.slots: list[_Slot] = []
        self.ifindex = 0
        self.if_rx_dropped = 0
        self._if_rx_dropped0 = 0
        self.ready_seconds = 0.0
        self.started_at = 0.0
        self._ready_r = self._ready_w = -1
        self._sig_r = self._sig_w = -1
        self._signals: list[int] = []
        self._stopping = False
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup = -1
        self._fanout_keep: list[int] = []
        self._rings: list[Any] = []
        self._v3 = config.rx == "ring"
        self.failed: Optional[str] = None
        self._user: Optional[tuple[int, int]] = None

    # -- start-up -----------------------------------------------------------------------------
    def start(self) -> float:
        """Check, compile, open the sockets, fork the workers and wait until all are ready.

        Returns:
            Seconds from the call to every worker ready.
        """
        t0 = time.monotonic()
        cfg = self.config
        cfg.validate()
        link = check_interface(cfg.interface)
        self.ifindex = link.ifindex
        if cfg.steering in ("filter", "fanout") or cfg.ethertypes:
            check_privileges()
        try:
            self._open_sockets()
            self._if_rx_dropped0 = rx_dropped(self.ifindex)
            self.counters = SharedCounters(cfg.workers, cfg.app_counters, cfg.app_gauges)
            self._ready_r, self._ready_w = os.pipe()
            self._sig_r, self._sig_w = os.pipe()
            os.set_blocking(self._sig_w, False)
            os.set_blocking(self._sig_r, False)
            self._install_signals()
            self._user = lookup_user(cfg.user) if cfg.user else None
            if self._user is not None:
                keep_only_caps(cfg.supervisor_caps)
            self.started_at = time.monotonic()
            for slot in self.slots:
                self._spawn(slot)
            self._wait_ready(timeout=30.0 + 0.05 * cfg.workers)
        except BaseException:
            self.close()
            raise
        self.ready_seconds = time.monotonic() - t0
        return self.ready_seconds

    def _open_sockets(self) -> None:
        cfg = self.config
        n = cfg.workers
        proto = cfg.ethertypes[0] if len(cfg.ethertypes) == 1 else packet.ETH_P_ALL
        rcvbuf = cfg.rcvbuf if cfg.rx == "recv" else 0
        filter_src = cfg.program or builtin_program("rps_filter.bpf.c")
        if cfg.steering == "filter":
            with CompiledModule(filter_src) as mod:
                for i in range(n):
                    prog = self._load_filter(mod, SteeringOpts(i, n, cfg.hash_alg, cfg.ethertypes))
                    try:
                        self.slots.append(_Slot(i, packet.open_rx_socket(cfg.interface, prog, proto, rcvbuf)))
                    finally:
                        os.close(prog)
            self._setup_rings()
            return
        # fanout / hash: one group; members filter ethertypes only (worker_count 1 = accept all).
        # rps_fanout.bpf.c includes rps_filter.bpf.c: one compilation gives both programs.
        member_prog = fanout_prog = None
        want_member = bool(cfg.ethertypes) and len(cfg.ethertypes) > 1
        if cfg.steering == "fanout":
            with CompiledModule(cfg.program or builtin_program("rps_fanout.bpf.c")) as mod:
                mfd = mod.create_opts_map(SteeringOpts(0, n, cfg.hash_alg, cfg.ethertypes))
                try:
                    fanout_prog = mod.load("pfrps_fanout", {"pfrps_opts": mfd})
                finally:
                    os.close(mfd)
                if want_member and mod.has_function("pfrps_filter"):
                    member_prog = self._load_filter(mod, SteeringOpts(0, 1, cfg.hash_alg, cfg.ethertypes))
        if want_member and member_prog is None:
            with CompiledModule(builtin_program("rps_filter.bpf.c")) as mod:
                member_prog = self._load_filter(mod, SteeringOpts(0, 1, cfg.hash_alg, cfg.ethertypes))
        try:
            group = (os.getpid() ^ int(time.monotonic_ns())) & 0xFFFF
            mode = packet.PACKET_FANOUT_EBPF if fanout_prog is not None else packet.PACKET_FANOUT_HASH
            for i in range(n):
                sock = packet.open_rx_socket(cfg.interface, member_prog, proto, rcvbuf)
                self.slots.append(_Slot(i, sock))
                self._setup_ring(sock)
                try:
                    packet.join_fanout(sock, group, mode)
                except OSError as exc:
                    raise PfrpsError(f"cannot join fanout group {group}: {exc.strerror}",
                                     code=exc.errno or errno.EINVAL,
                                     hint="use --steering filter on kernels without PACKET_FANOUT_EBPF") from None
                if i == 0 and fanout_prog is not None:
                    packet.attach_fanout_program(sock, fanout_prog)
            # Frames that arrived while the group was growing were spread over fewer members.
            for slot in self.slots:
                self._drain_slot(slot)
        finally:
            for fd in (member_prog, fanout_prog):
                if fd is not None:
                    os.close(fd)

    def _load_filter(self, mod: CompiledModule, opts: SteeringOpts) -> int:
        mfd = mod.create_opts_map(opts)
        try:
            return mod.load("pfrps_filter", {"pfrps_opts": mfd})
        finally:
            os.close(mfd)

    def _setup_rings(self) -> None:
        for slot in self.slots:
            self._setup_ring(slot.sock)
        for slot in self.slots:
            self._drain_slot(slot)

    def _setup_ring(self, sock: socket.socket) -> None:
        if self.config.rx != "ring":
            return
        from .ring import RxRing  # noqa: PLC0415

        cfg = self.config
        self._rings.append(RxRing(sock, *cfg.ring_geometry(), cfg.ring_frame_size))

    def _drain_slot(self, slot: _Slot) -> None:
        if self._rings:
            ring = self._rings[slot.worker_id]
            ring.discard()
            ring.unmap()  # workers map their own ring; a mapped ring makes every fork slower
        else:
            packet.drain(slot.sock)
        packet.read_stats(slot.sock, self._v3)  # those frames are not this run's

    def ring_bytes_per_worker(self) -> int:
        """Memory of one worker's receive ring (ring mode) or socket buffer (recv mode), bytes."""
        cfg = self.config
        bs, blocks = cfg.ring_geometry()
        return bs * blocks if cfg.rx == "ring" else cfg.rcvbuf

    def _install_signals(self) -> None:
        def on_signal(signum, _frame):
            self._signals.append(signum)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
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
        pid = os.fork()
        if pid == 0:  # worker
            status = 1
            try:
                signal.set_wakeup_fd(-1)
                for fd in (self._ready_r, self._sig_r, self._sig_w):
                    os.close(fd)
                for other in self.slots:
                    if other is not slot:
                        other.sock.close()
                if self._user is not None:
                    drop_to_user(*self._user)
                receiver_factory = None
                if self._rings:
                    from .ring import RingReceiver  # noqa: PLC0415

                    ring = self._rings[slot.worker_id]
                    receiver_factory = lambda sock: RingReceiver(ring)  # noqa: E731
                status = run_worker(
                    slot.worker_id, self.config.workers, self.ifindex, slot.sock, self.counters,
                    self._ready_w, self.handler, self.on_start, self.on_stop, receiver_factory,
                    self.config.cpus,
                )
            except BaseException:  # noqa: BLE001  (a worker must never return into the supervisor)
                logging.getLogger(f"pfrps.w{slot.worker_id}").exception("worker failed")
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(status)
        slot.pid = pid
        slot.started = time.monotonic()
        slot.ready = False

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(self._ready_r, selectors.EVENT_READ)
        sel.register(self._sig_r, selectors.EVENT_READ)
        try:
            while not all(s.ready for s in self.slots):
                left = deadline - time.monotonic()
                if left <= 0:
                    late = [s.worker_id for s in self.slots if not s.ready]
                    raise WorkerError(f"workers {late[:8]} not ready after {timeout:.0f} s", code=errno.ETIMEDOUT)
                for key, _ in sel.select(left):
                    if key.fd == self._ready_r:
                        self._read_ready()
                    else:
                        self._drain_signals()
                        if signal.SIGCHLD in self._signals or any(s.pid == 0 for s in self.slots):
                            self._reap(starting=True)
                        if {signal.SIGINT, signal.SIGTERM} & set(self._signals):
                            raise KeyboardInterrupt
                self._signals = [s for s in self._signals if s != signal.SIGCHLD]
        finally:
            sel.close()

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

    # -- running ------------------------------------------------------------------------------
    def _reap(self, starting: bool = False) -> None:
        by_pid = {s.pid: s for s in self.slots if s.pid}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = by_pid.get(pid)
            if slot is None:
                continue
            slot.pid = 0
            cause = _describe_status(status)
            if self._stopping:
                continue
            if starting or not slot.ready:
                raise WorkerError(f"worker {slot.worker_id} (pid {pid}) {cause} before it was ready",
                                  hint="see the worker's traceback above")
            now = time.monotonic()
            slot.deaths = [t for t in slot.deaths if now - t < RESTART_WINDOW] + [now]
            if len(slot.deaths) > RESTART_BURST:
                self.failed = f"worker {slot.worker_id} died {len(slot.deaths)} times in {RESTART_WINDOW:.0f} s; giving up"
                log.error("%s", self.failed)
                self._stopping = True
                return
            self.counters.row(slot.worker_id)[Col.RESTARTS] += 1
            self.counters.reset_gauges(slot.worker_id)
            log.warning("worker %d (pid %d) %s; restarting it on the same socket", slot.worker_id, pid, cause)
            self._spawn(slot)

    def poll_stats(self) -> None:
        """Read every socket's PACKET_STATISTICS and add drops/freezes to the shared counters;
        read the interface's receive drops since start into ``if_rx_dropped`` (frames)."""
        self.if_rx_dropped = max(rx_dropped(self.ifindex) - self._if_rx_dropped0, 0)
        arr = self.counters.array
        for slot in self.slots:
            st = packet.read_stats(slot.sock, self._v3)
            row = arr[slot.worker_id]
            row[Col.KERNEL_PACKETS] += st.packets
            row[Col.KERNEL_DROPS] += st.drops
            row[Col.FREEZES] += st.freeze_q_cnt

    def line(self) -> str:
        """The current stats line (see :func:`pfrps.stats.format_line`)."""
        arr = self.counters.array
        return format_line(arr[:, Col.FRAMES], arr[:, Col.KERNEL_DROPS], arr[:, Col.FREEZES],
                           arr[:, Col.TRUNCATED], self.if_rx_dropped)

    def snapshot(self) -> dict:
        """Every counter as a dict (the ``--json`` line)."""
        return snapshot(self.counters, time.monotonic() - self.started_at, self.if_rx_dropped)

    def total(self) -> int:
        """Frames received so far, all workers."""
        return int(self.counters.array[:, Col.FRAMES].sum())

    def run(self, emit: Callable[[], None], interval: float = 1.0, duration: Optional[float] = None,
            count: Optional[int] = None, on_hup: Optional[Callable[[], None]] = None) -> int:
        """Supervise until SIGINT/SIGTERM, ``duration`` seconds, or ``count`` frames.

        Calls ``emit()`` every ``interval`` seconds and once more after the workers stopped.
        Restarts workers that die (same id, same socket) and logs each with its cause.
        SIGHUP calls ``on_hup()`` and is passed on to the workers (which reopen log files).

        Returns:
            0, or 1 when a worker kept dying.
        """
        sel = selectors.DefaultSelector()
        sel.register(self._ready_r, selectors.EVENT_READ)
        sel.register(self._sig_r, selectors.EVENT_READ)
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
                for key, _ in sel.select(max(wait, 0.0)):
                    if key.fd == self._ready_r:
                        for slot in self._read_ready():
                            if slot.deaths:
                                log.info("worker %d ready again after %.3f s", slot.worker_id,
                                         time.monotonic() - slot.deaths[-1])
                    else:
                        self._drain_signals()
                sigs, self._signals = self._signals, []
                if signal.SIGCHLD in sigs:
                    self._reap()
                if signal.SIGHUP in sigs:
                    if on_hup is not None:
                        on_hup()
                    for slot in self.slots:
                        if slot.pid:
                            try:
                                os.kill(slot.pid, signal.SIGHUP)
                            except ProcessLookupError:
                                pass
                if signal.SIGINT in sigs or signal.SIGTERM in sigs:
                    break
        finally:
            sel.close()
        self.stop()
        self.poll_stats()
        emit()
        return 1 if self.failed else 0

    def serve(self, emit: Callable[[], None], **kwargs) -> int:
        """:meth:`start`, then :meth:`run` with ``kwargs``, then :meth:`close`."""
        try:
            self.start()
            return self.run(emit, **kwargs)
        finally:
            self.close()

    # -- stopping -----------------------------------------------------------------------------
    def stop(self, grace: float = 2.0) -> None:
        """SIGTERM every worker, wait up to ``grace`` seconds, then SIGKILL what is left."""
        self._stopping = True
        live = [s for s in self.slots if s.pid]
        for s in live:
            try:
                os.kill(s.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while any(s.pid for s in self.slots):
            for s in self.slots:
                if not s.pid:
                    continue
                try:
                    pid, _ = os.waitpid(s.pid, os.WNOHANG)
                except ChildProcessError:
                    pid = s.pid
                if pid:
                    s.pid = 0
            if not any(s.pid for s in self.slots):
                break
            if time.monotonic() >= deadline:
                for s in self.slots:
                    if s.pid:
                        log.warning("worker %d (pid %d) did not stop in %.1f s; killing it", s.worker_id, s.pid, grace)
                        try:
                            os.kill(s.pid, signal.SIGKILL)
                            os.waitpid(s.pid, 0)
                        except (ProcessLookupError, ChildProcessError):
                            pass
                        s.pid = 0
                break
            time.sleep(0.005)

    def close(self) -> None:
        """Stop the workers and release every socket, ring, pipe and program (idempotent)."""
        if any(s.pid for s in self.slots):
            self.stop()
        for ring in self._rings:
            ring.close()
        self._rings.clear()
        _close_all([s.sock for s in self.slots])
        self.slots.clear()
        self._restore_signals()
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


def _close_all(socks: list[socket.socket]) -> None:
    """Close PF_PACKET sockets concurrently.

    Each close waits for an RCU grace period (``packet_release -> synchronize_net``) and, with a
    ring, frees it: 12-25 ms apiece, so 64 sockets closed one after the other took 0.8-1.6 s.
    ``close()`` releases the GIL, and concurrent waiters share grace periods.
    """
    if not socks:
        return
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    with ThreadPoolExecutor(max_workers=min(len(socks), 64), thread_name_prefix="pfrps-close") as pool:
        list(pool.map(lambda sock: sock.close(), socks))


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"was killed by {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def parse_cpus(text: str) -> list[int]:
    """Parse a CPU list such as ``0,2-3`` (``taskset -c`` syntax).

    Raises:
        UsageError: malformed, or a CPU this process may not run on.
    """
    cpus: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                cpus.extend(range(lo, hi + 1))
            else:
                cpus.append(int(part))
    except ValueError:
        raise UsageError(f"malformed CPU list {text!r}", hint="write it like 0,2-3") from None
    allowed = os.sched_getaffinity(0)
    bad = sorted(set(cpus) - allowed)
    if bad or not cpus:
        raise UsageError(f"CPUs {bad} are not available to this process",
                         hint=f"pick from {sorted(allowed)}")
    return cpus
