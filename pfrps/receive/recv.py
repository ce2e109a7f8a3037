"""The ``--rx recv`` path: one ``recvmsg_into`` per frame (packet(7): PACKET_AUXDATA for the
wire length and the stripped VLAN tag, SO_TIMESTAMPNS for the receive time)."""

from __future__ import annotations

import socket
import time
from typing import Callable, Optional

from ..kernel import (AUXDATA_SIZE, PACKET_AUXDATA, SO_TIMESTAMPNS, SOL_PACKET, TP_STATUS_VLAN_TPID_VALID,
                      TP_STATUS_VLAN_VALID, TPACKET_AUXDATA)
from .meta import LINK_ERRNOS, FrameMeta, release_view

__all__ = ["RecvReceiver"]


class RecvReceiver:
    """Receive with one ``recvmsg_into`` per frame (``--rx recv``).

    Args:
        sock: the steered socket (non-blocking, PACKET_AUXDATA on).
        snaplen: receive buffer size, bytes (frames longer than this are counted truncated).
        timestamps: ask the kernel for receive timestamps (SO_TIMESTAMPNS).
    """

    def __init__(self, sock: socket.socket, snaplen: int = 65536, timestamps: bool = False) -> None:
        self.sock = sock
        self.buf = bytearray(snaplen)
        self.view = memoryview(self.buf)
        self.timestamps = timestamps
        if timestamps:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.ancsize = socket.CMSG_SPACE(AUXDATA_SIZE) + (socket.CMSG_SPACE(16) if timestamps else 0)
        #: Socket errors ``recvmsg`` reported (ENETDOWN when the link went down); reading one
        #: clears it, and the socket receives again once the link is up (packet(7)).
        self.socket_errors = 0
        #: Always 0 (no ring to fall behind); :class:`RingReceiver` has the real one.
        self.resync_skipped = 0

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return self.sock.fileno()

    def poll(self, on_frame: Optional[Callable[[memoryview, FrameMeta], None]], ifindex: int,
             budget: int = 256) -> tuple[int, int, int]:
        """Read up to ``budget`` queued frames; return ``(frames, bytes, truncated)``."""
        frames = nbytes = truncated = 0
        recv = self.sock.recvmsg_into
        bufs = [self.buf]
        ancsize = self.ancsize
        unpack_aux = TPACKET_AUXDATA.unpack_from
        for _ in range(budget):
            try:
                n, anc, flags, _addr = recv(bufs, ancsize)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # the link went down: recvmsg reported (and cleared) the socket error
                if exc.errno not in LINK_ERRNOS:
                    raise
                self.socket_errors += 1
                break
            length = n
            vlan = tpid = None
            ts = 0.0
            for level, kind, data in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, length, snaplen, _m, _n, tci, tp = unpack_aux(data)
                    if snaplen < length:
                        truncated += 1
                    if status & TP_STATUS_VLAN_VALID:
                        vlan = tci
                        if status & TP_STATUS_VLAN_TPID_VALID:
                            tpid = tp
                elif kind == SO_TIMESTAMPNS:
                    sec, nsec = int.from_bytes(data[:8], "little"), int.from_bytes(data[8:16], "little")
                    ts = sec + nsec * 1e-9
            if flags & socket.MSG_TRUNC and length <= n:
                truncated += 1
            frames += 1
            nbytes += length
            if on_frame is not None:
                view = self.view[:n]
                on_frame(view, FrameMeta(ifindex, ts or time.time(), length, vlan, tpid))
                release_view(view)
        return frames, nbytes, truncated

    def close(self) -> None:
        """Nothing to drop: the buffer is this object's, the socket the supervisor's."""
