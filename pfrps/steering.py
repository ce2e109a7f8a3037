"""Steering: the sockets and BPF programs of each mode, set up before any worker exists.

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

Several interfaces (``SupervisorConfig.interfaces``): :func:`open_steered_all` opens one
:class:`SteeredSockets` per interface (a fanout group, or a filter set, per interface) from
programs compiled and loaded once: worker i's socket on every interface carries the same
steering (same filter, or the same fanout program in each group), so a source MAC lands on
the same worker whichever port it comes in on.

The fanout group id comes from the kernel (``PACKET_FANOUT_FLAG_UNIQUEID``, 4.20+), so it never
clashes with another program's group in the namespace; groups above 256 members pass
``struct fanout_args`` with ``max_num_members`` (5.11+).
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Optional

from . import packet
from .bpfload import CompiledModule, SteeringOpts, builtin_program
from .config import FANOUT_ARGS_KERNEL, SupervisorConfig, kernel_version
from .errors import PfrpsError
from .kernel import (ETH_P_ALL, FANOUT_DEFAULT_MAX_MEMBERS, PACKET_FANOUT_EBPF, PACKET_FANOUT_FLAG_UNIQUEID,
                     PACKET_FANOUT_HASH)

__all__ = ["SteeredSockets", "open_steered", "open_steered_all"]


@dataclass
class SteeredSockets:
    """One steered, bound, drained PF_PACKET socket per worker, and its ring in ring mode.

    Attributes:
        socks: ``socks[i]`` is worker i's socket.
        rings: ``rings[i]`` is worker i's :class:`pfrps.receive.RxRing` (unmapped), or empty
            in recv mode.
        group_id: the fanout group id (fanout/hash modes), or None.
        interface: the interface these sockets are bound to.
    """

    socks: list[socket.socket] = field(default_factory=list)
    rings: list[Any] = field(default_factory=list)
    group_id: Optional[int] = None
    interface: str = ""

    def close(self) -> None:
        """Release the rings and close the sockets, concurrently (idempotent)."""
        for ring in self.rings:
            ring.close()
        self.rings.clear()
        _close_all(self.socks)
        self.socks.clear()


def open_steered(cfg: SupervisorConfig, interface: Optional[str] = None) -> SteeredSockets:
    """Compile the steering program once and open ``cfg.workers`` steered sockets on
    ``interface`` (default: the primary, ``cfg.interface``).

    Raises:
        BpfCompileError, BpfLoadError: the program does not compile or load.
        PfrpsError: the kernel refused a socket option (fanout group, ring).
    """
    return open_steered_all(cfg, (interface or cfg.interface,))[0]


def open_steered_all(cfg: SupervisorConfig, interfaces: Optional[tuple[str, ...]] = None) -> list[SteeredSockets]:
    """Open ``cfg.workers`` steered sockets on each of ``interfaces`` (default
    ``cfg.interfaces``), programs compiled and loaded once for all of them.

    Returns:
        One :class:`SteeredSockets` per interface, in order; ``[k].socks[i]`` is worker i's
        socket on interface k (``cfg.workers x len(interfaces)`` sockets, and as many rings in
        ring mode). Each fanout group gets its own kernel-chosen id (UNIQUEID).

    Raises:
        BpfCompileError, BpfLoadError: the program does not compile or load.
        PfrpsError: the kernel refused a socket option (fanout group, ring); every socket
            opened so far is closed.
    """
    outs = [SteeredSockets(interface=name) for name in (interfaces or cfg.interfaces or (cfg.interface,))]
    try:
        if cfg.steering == "filter":
            _open_filter(cfg, outs)
        else:
            _open_fanout(cfg, outs)
        for out in outs:
            for i, sock in enumerate(out.socks):
                if out.rings:
                    out.rings[i].discard()
                    out.rings[i].unmap()  # workers map their own ring; a mapped ring makes every fork slower
                else:
                    packet.drain(sock)
                packet.read_stats(sock, bool(out.rings))  # those frames are not this run's
    except BaseException:
        for out in outs:
            out.close()
        raise
    return outs


def _proto(cfg: SupervisorConfig) -> int:
    return cfg.ethertypes[0] if len(cfg.ethertypes) == 1 else ETH_P_ALL


def _add_socket(cfg: SupervisorConfig, out: SteeredSockets, prog: Optional[int]) -> socket.socket:
    sock = packet.open_rx_socket(out.interface or cfg.interface, prog, _proto(cfg),
                                 cfg.rcvbuf if cfg.rx == "recv" else 0)
    out.socks.append(sock)
    return sock


def _add_rings(cfg: SupervisorConfig, out: SteeredSockets) -> None:
    """Give every socket its ring, concurrently; before any socket joins a fanout group (a ring
    set up later would unhook the socket and move it within the group)."""
    if cfg.rx == "ring":
        from .receive import make_rings  # noqa: PLC0415

        out.rings = make_rings(out.socks, *cfg.ring_geometry(), cfg.ring_frame_size, cfg.ring_retire_ms)


def _load_filter(mod: CompiledModule, opts: SteeringOpts) -> int:
    mfd = mod.create_opts_map(opts)
    try:
        return mod.load("pfrps_filter", {"pfrps_opts": mfd})
    finally:
        os.close(mfd)


def _open_filter(cfg: SupervisorConfig, outs: list[SteeredSockets]) -> None:
    """One filter program per worker id, attached to that worker's socket on every interface."""
    n = cfg.workers
    with CompiledModule(cfg.program or builtin_program("rps_filter.bpf.c")) as mod:
        for i in range(n):
            prog = _load_filter(mod, SteeringOpts(i, n, cfg.hash_alg, cfg.ethertypes))
            try:
                for out in outs:
                    _add_socket(cfg, out, prog)
            finally:
                os.close(prog)
    for out in outs:
        _add_rings(cfg, out)


def _open_fanout(cfg: SupervisorConfig, outs: list[SteeredSockets]) -> None:
    """fanout / hash: one group per interface; members filter ethertypes only (worker_count 1 =
    accept all). rps_fanout.bpf.c includes rps_filter.bpf.c: one compilation gives both programs."""
    n = cfg.workers
    member_prog = fanout_prog = None
    want_member = len(cfg.ethertypes) > 1
    try:
        if cfg.steering == "fanout":
            with CompiledModule(cfg.program or builtin_program("rps_fanout.bpf.c")) as mod:
                mfd = mod.create_opts_map(SteeringOpts(0, n, cfg.hash_alg, cfg.ethertypes))
                try:
                    fanout_prog = mod.load("pfrps_fanout", {"pfrps_opts": mfd})
                finally:
                    os.close(mfd)
                if want_member and mod.has_function("pfrps_filter"):
                    member_prog = _load_filter(mod, SteeringOpts(0, 1, cfg.hash_alg, cfg.ethertypes))
        if want_member and member_prog is None:
            with CompiledModule(builtin_program("rps_filter.bpf.c")) as mod:
                member_prog = _load_filter(mod, SteeringOpts(0, 1, cfg.hash_alg, cfg.ethertypes))
        mode = PACKET_FANOUT_EBPF if fanout_prog is not None else PACKET_FANOUT_HASH
        max_members = max(n, FANOUT_DEFAULT_MAX_MEMBERS)
        for out in outs:
            for _ in range(n):
                _add_socket(cfg, out, member_prog)
            _add_rings(cfg, out)
            for i, sock in enumerate(out.socks):
                out.group_id = _join(sock, 0 if i == 0 else out.group_id, mode,
                                     PACKET_FANOUT_FLAG_UNIQUEID if i == 0 else 0, max_members, i)
                if i == 0 and fanout_prog is not None:
                    packet.attach_fanout_program(sock, fanout_prog)
    finally:
        for fd in (member_prog, fanout_prog):
            if fd is not None:
                os.close(fd)


def _join(sock: socket.socket, group: int, mode: int, flags: int, max_members: int, member: int) -> int:
    try:
        return packet.join_fanout(sock, group, mode, flags, max_members)
    except OSError as exc:
        code = exc.errno or errno.EINVAL
        if max_members > FANOUT_DEFAULT_MAX_MEMBERS and kernel_version() < FANOUT_ARGS_KERNEL:
            hint = f"use -w {FANOUT_DEFAULT_MAX_MEMBERS} or fewer (groups above 256 need Linux 5.11+), or --steering filter"
        elif code == errno.EINVAL and flags & PACKET_FANOUT_FLAG_UNIQUEID:
            hint = "this kernel cannot pick a fanout group id (PACKET_FANOUT_FLAG_UNIQUEID, Linux 4.20+); use --steering filter"
        elif code == errno.EINVAL and mode == PACKET_FANOUT_EBPF:
            hint = "use --steering filter on kernels without PACKET_FANOUT_EBPF (before 4.3)"
        else:
            hint = "check that no other program holds this fanout group; or use --steering filter"
        raise PfrpsError(f"cannot add socket {member} to a fanout group of {max_members}: {exc.strerror}",
                         code=code, hint=hint) from None


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
