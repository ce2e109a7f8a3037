"""PF_PACKET sockets the way pfrps needs them (see the kernel's packet(7)).

Opening order, so that no frame is ever counted unfiltered (the pyroute2/scapy habit):
``socket(AF_PACKET, SOCK_RAW, 0)`` (protocol 0 receives nothing), attach the steering
program, set options, ``bind()`` to the interface and ethertype, then drain anything queued.
"""

from __future__ import annotations

import errno

import socket
import struct
from dataclasses import dataclass

from .errors import InterfaceError, PfrpsError, PrivilegeError

__all__ = [
    "PacketStats",
    "open_rx_socket",
    "open_tx_socket",
    "read_stats",
    "drain",
    "join_fanout",
    "fanout_group_id",
    "attach_fanout_program",
]

from .kernel import (ETH_P_ALL, FANOUT_ARGS, FANOUT_DEFAULT_MAX_MEMBERS,
                     PACKET_AUXDATA, PACKET_FANOUT, PACKET_FANOUT_DATA, PACKET_FANOUT_EBPF, PACKET_IGNORE_OUTGOING,
                     PACKET_QDISC_BYPASS, PACKET_STATISTICS, SO_ATTACH_BPF, SO_RCVBUFFORCE, SO_SNDBUFFORCE,
                     SOL_PACKET, TPACKET_STATS, TPACKET_STATS_V3)


@dataclass
class PacketStats:
    """``struct tpacket_stats_v3`` as ``getsockopt(PACKET_STATISTICS)`` returns it.

    The kernel resets the counters on every read, so one owner (the supervisor) reads them
    and accumulates. Units: frames.

    Attributes:
        packets: frames the socket's filter accepted since the last read (queued or dropped).
        drops: of those, frames dropped because the receive buffer or ring was full.
        freeze_q_cnt: TPACKET_V3 only: times the ring's queue froze (0 otherwise).
    """

    packets: int = 0
    drops: int = 0
    freeze_q_cnt: int = 0


def _ifindex(ifname: str) -> int:
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise InterfaceError(
            f"interface {ifname!r} not found in this network namespace",
            hint="list interfaces with `ip link` and pass one with -i",
        ) from None


def _socket(proto: int) -> socket.socket:
    try:
        return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    except PermissionError:
        raise PrivilegeError(
            "opening a PF_PACKET socket needs CAP_NET_RAW",
            hint="run as root (sudo) or grant CAP_NET_RAW, CAP_NET_ADMIN and CAP_BPF",
        ) from None


def drain(sock: socket.socket) -> int:
    """Read and discard every frame queued on ``sock`` without blocking; return how many (frames)."""
    n = 0
    while True:
        try:
            sock.recv(65536, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return n
        n += 1


def open_rx_socket(ifname: str, prog_fd: int | None, proto: int = ETH_P_ALL,
                   rcvbuf: int = 0, auxdata: bool = True) -> socket.socket:
    """Open a receive socket on ``ifname`` with no unfiltered window.

    Args:
        ifname: interface name in the current network namespace.
        prog_fd: a SOCKET_FILTER program to attach before bind (``SO_ATTACH_BPF``), or None.
        proto: ethertype to bind to (host order); ``ETH_P_ALL`` for every frame.
        rcvbuf: receive buffer in bytes (``SO_RCVBUFFORCE``, root); 0 keeps the default.
        auxdata: deliver ``struct tpacket_auxdata`` with each frame (``PACKET_AUXDATA``), so
            the receiver can tell the frame's original length from what was captured.

    Returns:
        A bound, non-blocking ``socket.socket`` that ignores outgoing frames.

    Raises:
        InterfaceError: no such interface.
        PrivilegeError: no CAP_NET_RAW (or CAP_NET_ADMIN for a forced buffer size).
        PfrpsError: the kernel refused the filter.
    """
    _ifindex(ifname)  # InterfaceError before any socket exists
    sock = _socket(0)
    try:
        if prog_fd is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, prog_fd)
            except OSError as exc:
                raise PfrpsError(f"cannot attach the steering program: {exc.strerror}",
                                 code=exc.errno or errno.EINVAL) from None
        if rcvbuf:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if auxdata:
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        sock.bind((ifname, proto))
        sock.setblocking(False)
        drain(sock)
    except BaseException:
        sock.close()
        raise
    return sock


def open_tx_socket(ifname: str, sndbuf: int = 0, qdisc_bypass: bool = False) -> socket.socket:
    """Open a transmit-only PF_PACKET socket on ``ifname`` (bound with protocol 0: receives nothing).

    Args:
        ifname: interface name in the current network namespace.
        sndbuf: send buffer in bytes (``SO_SNDBUFFORCE``); 0 keeps the default.
        qdisc_bypass: hand frames straight to the driver (``PACKET_QDISC_BYPASS``).

    Raises:
        InterfaceError, PrivilegeError: as :func:`open_rx_socket`.
    """
    _ifindex(ifname)
    sock = _socket(0)
    try:
        if sndbuf:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, sndbuf)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        if qdisc_bypass:
            sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        sock.bind((ifname, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def read_stats(sock: socket.socket, v3: bool = False) -> PacketStats:
    """Read (and so reset) the socket's ``PACKET_STATISTICS``; see :class:`PacketStats`."""
    if v3:
        p, d, f = TPACKET_STATS_V3.unpack(sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, TPACKET_STATS_V3.size))
        return PacketStats(p, d, f)
    p, d = TPACKET_STATS.unpack(sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, TPACKET_STATS.size))
    return PacketStats(p, d, 0)


def join_fanout(sock: socket.socket, group_id: int, mode: int = PACKET_FANOUT_EBPF, flags: int = 0,
                max_members: int = FANOUT_DEFAULT_MAX_MEMBERS) -> int:
    """Add ``sock`` to fanout group ``group_id`` in ``mode`` (packet(7) PACKET_FANOUT); return the id.

    Args:
        sock: a bound PF_PACKET socket.
        group_id: 16-bit group id; with ``unique`` (``flags`` holding
            PACKET_FANOUT_FLAG_UNIQUEID) it must be 0 and the kernel picks an id no other group
            in this network namespace uses (kernel 4.20+).
        mode: PACKET_FANOUT_EBPF, PACKET_FANOUT_HASH, ...
        flags: PACKET_FANOUT_FLAG_*.
        max_members: the group's size limit. Above the kernel's default of 256 the option
            is given as ``struct fanout_args`` with ``max_num_members`` (kernel 5.11+, up to
            65536); every member must pass the same value.

    Returns:
        The group id, read back with ``getsockopt(PACKET_FANOUT)`` (the low 16 bits).

    Raises:
        OSError: the kernel refused (ENOSPC: group full; EINVAL: mode/flags/size the kernel
        does not know; EALREADY: already in a group).
    """
    if max_members > FANOUT_DEFAULT_MAX_MEMBERS:
        arg = FANOUT_ARGS.pack(group_id & 0xFFFF, (mode | flags) & 0xFFFF, max_members)
    else:
        arg = (group_id & 0xFFFF) | ((mode | flags) << 16)
    sock.setsockopt(SOL_PACKET, PACKET_FANOUT, arg)
    return fanout_group_id(sock)


def fanout_group_id(sock: socket.socket) -> int:
    """The fanout group id of ``sock`` (``getsockopt(PACKET_FANOUT)`` & 0xffff; 0 when in none)."""
    return sock.getsockopt(SOL_PACKET, PACKET_FANOUT) & 0xFFFF


def attach_fanout_program(sock: socket.socket, prog_fd: int) -> None:
    """Give a PACKET_FANOUT_EBPF group its program (``PACKET_FANOUT_DATA``) via member ``sock``."""
    sock.setsockopt(SOL_PACKET, PACKET_FANOUT_DATA, struct.pack("=i", prog_fd))


