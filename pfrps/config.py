"""What to steer and how: :class:`SupervisorConfig`, its validation, and the checks that run
before anything is opened (privileges, CPU lists, kernel support)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .errors import PrivilegeError, UsageError
from .kernel import ETH_P_PPP_DISC, ETH_P_PPP_SES, FANOUT_DEFAULT_MAX_MEMBERS
from .privileges import SUPERVISOR_CAPS, effective_caps, lookup_user

__all__ = ["SupervisorConfig", "MAX_WORKERS", "STEERING_MODES", "RX_MODES", "DEFAULT_ETHERTYPES",
           "RESTART_BURST", "RESTART_WINDOW", "RING_BYTES", "RING_TOTAL_BYTES", "check_privileges",
           "parse_cpus", "kernel_version", "FANOUT_ARGS_KERNEL"]

#: Workers pfrps supports: tested at 1, 3, 8, 64, 257 and 1024 (fanout groups above 256
#: members need Linux 5.11+; filter mode runs N programs per frame).
MAX_WORKERS = 1024
#: Most async handler tasks in flight per worker that ``max_async_tasks`` may allow.
MAX_ASYNC_TASKS = 1 << 20
#: Default ring memory per worker, bytes (``--rx ring``), up to :data:`RING_TOTAL_BYTES` in all.
RING_BYTES = 4 << 20
#: Above 64 workers the default rings share this much memory in all (bytes): 1024 rings of
#: 4 MiB would be 4 GiB; at 1024 workers each gets 256 KiB (4 x 64 KiB).
RING_TOTAL_BYTES = 256 << 20
_SMALL_BLOCK = 64 << 10
_TINY_BLOCK = 16 << 10
_MIN_DEFAULT_BLOCKS = 4
#: Up to this many workers the default ring uses 256 KiB blocks, above it 64 KiB blocks ...
BIG_BLOCK_MAX_WORKERS = 16
#: ... and above this many, 16 KiB blocks: each worker then sees few frames, so most blocks
#: retire on the 10 ms timer holding a frame or two, and the block count (16 at 1024 workers,
#: not 4) is what bounds how long a worker may go unscheduled before its ring freezes.
SMALL_BLOCK_MAX_WORKERS = 256
STEERING_MODES = ("filter", "fanout", "hash")
RX_MODES = ("recv", "ring")
DEFAULT_ETHERTYPES = (ETH_P_PPP_DISC, ETH_P_PPP_SES)
#: A worker that dies more than this many times within RESTART_WINDOW seconds is not restarted
#: again: the supervisor stops, naming the worker and the cause (exit status 1).
RESTART_BURST = 5
RESTART_WINDOW = 10.0
#: First kernel whose PACKET_FANOUT takes ``struct fanout_args`` (``max_num_members``).
FANOUT_ARGS_KERNEL = (5, 11)

_CAP_NET_RAW, _CAP_SYS_ADMIN, _CAP_BPF = 13, 21, 39


def kernel_version(release: Optional[str] = None) -> tuple[int, int]:
    """``(major, minor)`` of ``release`` (default: the running kernel, uname(2))."""
    release = release or platform.release()
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def check_privileges() -> None:
    """Require CAP_NET_RAW (PF_PACKET) and CAP_BPF or CAP_SYS_ADMIN (loading BPF programs).

    Raises:
        PrivilegeError: naming the missing capabilities.
    """
    try:
        eff = effective_caps()
    except OSError:
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
        interface: the primary interface's name (in the current network namespace): the first
            of ``interfaces``, kept for code that knows one interface.
        interfaces: every interface to steer (``-i`` repeated), the primary first; empty (the
            default) means ``(interface,)``. Each gets its own steered sockets (one fanout group
            or filter set per interface, :mod:`pfrps.steering`) and every worker reads one
            socket per interface: the same source MAC lands on the same worker whichever port
            it comes in on. Names must be distinct (:meth:`validate`).
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
            ``None`` picks the default (:meth:`ring_geometry`).
        ring_retire_ms: milliseconds after which the kernel hands a partly filled block to the
            worker (``tp_retire_blk_tov``, default 10): a control-plane application that answers
            each frame (the BNG) wants a few ms, and more blocks, so that a worker that is not
            scheduled for a while still finds free blocks.
        cpus: CPUs to pin workers to (worker i on cpus[i % len]), or None.
        app_counters: names of extra per-worker counters for the handler (``ctx.count``).
        app_gauges: names of per-worker gauges (``ctx.count(name, -1)`` allowed), zeroed when a
            worker is restarted, since its replacement starts with empty ``ctx.storage``.
        user: once sockets and programs are in place, workers run as this user with no
            capabilities and the supervisor keeps only ``supervisor_caps`` (default CAP_SETUID,
            CAP_SETGID and CAP_KILL).
        restart_burst, restart_window: a worker that dies more than ``restart_burst`` times in
            ``restart_window`` seconds (deaths before ready included) stops the supervisor.
        watchdog: seconds a worker with frames waiting may go without progress before its stack
            is logged and it is killed and restarted (:mod:`pfrps.watchdog`); 0 turns it off.
        bpf_objects: BPF programs and maps the supervisor compiles, loads and attaches before
            forking (:class:`pfrps.bpfobjects.BpfObject`); workers find the fds in ``ctx.maps``
            and ``ctx.programs``; all detached and closed at exit.
        mailboxes: give every worker a message path from the supervisor
            (:meth:`pfrps.supervisor.Supervisor.request`; the worker's ``on_message``).
        metrics: ``(host, port)`` (or ``"HOST:PORT"``) to serve Prometheus metrics on
            (``/metrics``, :mod:`pfrps.metrics`; ``--metrics``), or None (the default: no endpoint).
        app_name: prefix of the application's metric names (``pfrps_ac``: ``pfrps_ac_padi_total``).
        app_histograms: ``{name: bucket upper bounds}`` of per-worker histograms the handler
            feeds with ``ctx.observe(name, value)`` (seconds for a latency), kept in shared memory.
        app_help: HELP text of application counters, gauges and histograms, by name (optional).
        max_async_tasks: an async (coroutine) handler's tasks in flight per worker, at most
            (1..:data:`MAX_ASYNC_TASKS`, default 1024); a frame arriving while that many are
            unfinished is not handled and is counted in ``async_refused``.
    """

    interface: str = ""
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
    ring_retire_ms: int = 10
    cpus: Optional[list[int]] = None
    app_counters: tuple[str, ...] = ()
    app_gauges: tuple[str, ...] = ()
    user: Optional[str] = None
    supervisor_caps: tuple[int, ...] = SUPERVISOR_CAPS
    restart_burst: int = RESTART_BURST
    restart_window: float = RESTART_WINDOW
    watchdog: float = 10.0
    bpf_objects: tuple = ()
    mailboxes: bool = False
    metrics: Optional[tuple[str, int] | str] = None
    app_name: str = ""
    app_histograms: dict[str, tuple[float, ...]] = field(default_factory=dict)
    app_help: dict[str, str] = field(default_factory=dict)
    interfaces: tuple[str, ...] = ()
    max_async_tasks: int = 1024

    def __post_init__(self) -> None:
        if isinstance(self.interfaces, str):
            self.interfaces = (self.interfaces,)
        self.interfaces = tuple(self.interfaces) or ((self.interface,) if self.interface else ())
        if not self.interface and self.interfaces:
            self.interface = self.interfaces[0]

    def ring_geometry(self) -> tuple[int, int]:
        """``(block_size, blocks)`` of each ring (one per worker per interface): the options, or
        the default.

        The default is :data:`RING_BYTES` (4 MiB) per worker, and at most
        :data:`RING_TOTAL_BYTES` (256 MiB) for all rings together (N workers x K interfaces;
        one interface above 64 workers: 1 MiB
        each at 256, 256 KiB at 1024). Its block size trades wake-ups against slack: a worker
        wakes once per retired block, and the kernel retires a block when full or 10 ms after
        opening it however empty (re-arming the timer while the block stays empty), so at low
        per-worker rates the block count, not the bytes, bounds how long a worker may stay
        unscheduled before its ring freezes. Up to :data:`BIG_BLOCK_MAX_WORKERS` (16) workers:
        16 x 256 KiB (2.7x fewer wake-ups than 64 KiB blocks at 8 workers, 1.6x the frames per
        CPU-second: bench/PROFILE.md); up to 256 workers: 64 KiB blocks (4 x 1 MiB froze with
        64 workers on 2 CPUs); more: 16 KiB blocks (1024 workers with 4 x 64 KiB dropped frames
        on a loaded 2-CPU machine; frames above 16 KiB - 48 bytes are then truncated, counted).
        """
        bs = self.ring_block_size
        if bs is None:
            bs = (256 << 10 if self.workers <= BIG_BLOCK_MAX_WORKERS else
                  _SMALL_BLOCK if self.workers <= SMALL_BLOCK_MAX_WORKERS else _TINY_BLOCK)
        if self.ring_blocks is not None:
            return bs, self.ring_blocks
        per_worker = min(RING_BYTES, RING_TOTAL_BYTES // max(self.workers * max(len(self.interfaces), 1), 1))
        return bs, max(_MIN_DEFAULT_BLOCKS if bs <= _SMALL_BLOCK else 1, per_worker // bs)

    def validate(self) -> None:
        """Raise :class:`UsageError` for values out of range (before anything is opened)."""
        if not self.interfaces or not all(self.interfaces):
            raise UsageError("no interface given", hint="name the interface to steer with -i IF")
        if self.interface != self.interfaces[0]:
            raise UsageError(f"primary interface {self.interface!r} is not the first of {list(self.interfaces)}",
                             hint="set interfaces=(primary, ...) or interface alone")
        dup = sorted({i for i in self.interfaces if self.interfaces.count(i) > 1})
        if dup:
            raise UsageError(f"interface {dup[0]} is given more than once",
                             hint="name each interface once (-i IF1 -i IF2)")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise UsageError(f"worker count {self.workers} is out of range",
                             hint=f"use -w between 1 and {MAX_WORKERS}")
        if self.steering not in STEERING_MODES:
            raise UsageError(f"unknown steering mode {self.steering!r}", hint=f"use one of {', '.join(STEERING_MODES)}")
        if self.rx not in RX_MODES:
            raise UsageError(f"unknown receive mode {self.rx!r}", hint="use --rx ring or --rx recv")
        if self.steering in ("fanout", "hash") and self.workers > FANOUT_DEFAULT_MAX_MEMBERS \
                and kernel_version() < FANOUT_ARGS_KERNEL:
            raise UsageError(
                f"{self.workers} workers in one fanout group need Linux 5.11+ (struct fanout_args); "
                f"this kernel is {platform.release()} and allows {FANOUT_DEFAULT_MAX_MEMBERS}",
                hint=f"use -w {FANOUT_DEFAULT_MAX_MEMBERS} or fewer, or --steering filter")
        if self.restart_burst < 0 or not self.restart_window > 0:
            raise UsageError(f"restart burst {self.restart_burst} in {self.restart_window} s is not valid",
                             hint="use a burst of 0 or more within a window above 0 seconds")
        if not 0 <= self.watchdog < float("inf"):
            raise UsageError(f"watchdog {self.watchdog} s is not valid",
                             hint="give the watchdog seconds above 0, or 0 to turn it off")
        if isinstance(self.max_async_tasks, bool) or not isinstance(self.max_async_tasks, int) \
                or not 1 <= self.max_async_tasks <= MAX_ASYNC_TASKS:
            raise UsageError(f"max_async_tasks {self.max_async_tasks!r} is out of range",
                             hint=f"allow 1..{MAX_ASYNC_TASKS} async handler tasks in flight per worker (default 1024)")
        if self.user is not None:
            lookup_user(self.user)
        if self.rx == "ring":
            from .receive import check_architecture, check_geometry  # noqa: PLC0415

            if not 1 <= self.ring_retire_ms <= 1000:
                raise UsageError(f"ring retire timeout {self.ring_retire_ms} ms is out of range",
                                 hint="use 1..1000 ms")

            check_geometry(*self.ring_geometry(), self.ring_frame_size)
            check_architecture()
        if self.program is not None and self.steering == "hash":
            raise UsageError("-b has no effect with --steering hash", hint="drop -b or use --steering filter/fanout")


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
