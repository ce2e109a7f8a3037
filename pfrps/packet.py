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
    "ETH_P_ALL",
    "ETH_P_PPP_DISC",
    "ETH_P_PPP_SES",
    "SOL_PACKET",
    "PacketStats",
    "open_rx_socket",
    "open_tx_socket",
    "read_stats",
    "drain",
    "join_fanout",
    "attach_fanout_program",
    "AUXDATA_SIZE",
    "parse_auxdata",
]

ETH_P_ALL = 0x0003
ETH_P_PPP_DISC = 0x8863  # RFC 2516 discovery stage
ETH_P_PPP_SES = 0x8864   # RFC 2516 session stage

SOL_PACKET = 263
SO_ATTACH_BPF = 50
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
PACKET_AUXDATA = 8
PACKET_STATISTICS = 6
PACKET_FANOUT = 18
PACKET_FANOUT_DATA = 22
PACKET_IGNORE_OUTGOING = 23
PACKET_QDISC_BYPASS = 20
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_EBPF = 7
PACKET_FANOUT_FLAG_DEFRAG = 0x8000

#: struct tpacket_auxdata: tp_status, tp_len, tp_snaplen, tp_mac, tp_net, tp_vlan_tci, tp_vlan_tpid
_AUXDATA = struct.Struct("=IIIHHHH")
AUXDATA_SIZE = _AUXDATA.size
TP_STATUS_VLAN_VALID = 1 << 4


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
        p, d, f = struct.unpack("=III", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12))
        return PacketStats(p, d, f)
    p, d = struct.unpack("=II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    return PacketStats(p, d, 0)


def join_fanout(sock: socket.socket, group_id: int, mode: int = PACKET_FANOUT_EBPF, flags: int = 0) -> None:
    """Add ``sock`` to fanout group ``group_id`` (16 bits) in ``mode`` (packet(7) PACKET_FANOUT)."""
    sock.setsockopt(SOL_PACKET, PACKET_FANOUT, (group_id & 0xFFFF) | ((mode | flags) << 16))


def attach_fanout_program(sock: socket.socket, prog_fd: int) -> None:
    """Give a PACKET_FANOUT_EBPF group its program (``PACKET_FANOUT_DATA``) via member ``sock``."""
    sock.setsockopt(SOL_PACKET, PACKET_FANOUT_DATA, struct.pack("=i", prog_fd))


def parse_auxdata(data: bytes) -> tuple[int, int, int, int | None]:
    """Decode ``struct tpacket_auxdata``: ``(tp_status, tp_len, tp_snaplen, vlan_tci or None)``."""
    status, length, snaplen, _mac, _net, tci, _tpid = _AUXDATA.unpack_from(data)
    return status, length, snaplen, (tci if status & TP_STATUS_VLAN_VALID else None)


