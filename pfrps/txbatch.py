"""Send many frames with one ``sendmmsg(2)`` call: the batched transmit path of a worker
(``ctx.transmit_many``, :meth:`pfrps.worker.WorkerContext.transmit_many`).

:class:`SendBatch` owns one preallocated buffer of ``capacity`` slots of ``slot`` bytes and the
``struct mmsghdr``/``struct iovec`` arrays pointing at them (set up once): a call copies each
frame into its slot, sets the ``iov_len`` words and makes one ``sendmmsg`` call (libc's public
symbol, through ctypes, which releases the GIL) per ``capacity`` frames, on a bound
``AF_PACKET``/``SOCK_RAW`` socket (so no address is given: the socket's interface is used).
Layouts from ``<sys/socket.h>`` on x86-64 Linux: ``struct iovec`` 16 bytes, ``struct msghdr``
56 bytes, ``struct mmsghdr`` 64 bytes (msghdr, then ``unsigned msg_len`` and padding).
"""

from __future__ import annotations

import ctypes
import errno
import socket
from typing import Iterable

__all__ = ["SendBatch", "DEFAULT_CAPACITY", "DEFAULT_SLOT"]

#: Frames per sendmmsg call.
DEFAULT_CAPACITY = 256
#: Bytes per frame slot: a 1500-byte MTU frame with two VLAN tags fits (1522); longer frames
#: are sent alone with ``send``.
DEFAULT_SLOT = 2048
_MSG_DONTWAIT = socket.MSG_DONTWAIT
_RETRY = frozenset({errno.EINTR})
_FULL = frozenset({errno.EAGAIN, errno.ENOBUFS})

_libc = ctypes.CDLL(None, use_errno=True)
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
_sendmmsg.restype = ctypes.c_int


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


assert ctypes.sizeof(_Mmsghdr) == 64 and ctypes.sizeof(_Iovec) == 16


class SendBatch:
    """A reusable ``sendmmsg`` batch (one per worker; not thread-safe).

    Args:
        capacity: frames per ``sendmmsg`` call (1..1024: the kernel's UIO_MAXIOV caps vlen).
        slot: bytes per frame slot; longer frames go out one ``send`` each.

    Raises:
        ValueError: capacity or slot out of range.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, slot: int = DEFAULT_SLOT) -> None:
        if not 1 <= capacity <= 1024 or not 14 <= slot <= 65536:
            raise ValueError(f"send batch of {capacity} slots of {slot} bytes is out of range "
                             f"(1..1024 slots of 14..65536 bytes)")
        self.capacity = capacity
        self.slot = slot
        self._buf = ctypes.create_string_buffer(capacity * slot)
        self._view = memoryview(self._buf).cast("B")
        self._iov = (_Iovec * capacity)()
        self._msgs = (_Mmsghdr * capacity)()
        base = ctypes.addressof(self._buf)
        for k in range(capacity):
            self._iov[k].iov_base = base + k * slot
            m = self._msgs[k].msg_hdr
            m.msg_iov = ctypes.addressof(self._iov[k])
            m.msg_iovlen = 1
        # iov_len of slot k is word 2k + 1 of the iovec array
        self._lens = memoryview(self._iov).cast("B").cast("Q")
        self._msgs_addr = ctypes.addressof(self._msgs)

    def send(self, sock: socket.socket, frames: Iterable) -> tuple[int, int]:
        """Send ``frames`` (bytes-like, whole Ethernet frames) in order on ``sock`` without
        blocking; return ``(sent, failed)``, frames. A frame the kernel refuses as such (too
        short or too long: EINVAL, EMSGSIZE) counts as failed and the ones after it are still
        tried; once the send buffer is full (EAGAIN, ENOBUFS) the rest of the batch fails."""
        sent = failed = 0
        k = 0
        view, lens, slot = self._view, self._lens, self.slot
        for frame in frames:
            n = len(frame)
            if n > slot:
                if k:
                    s, f = self._flush(sock, k)
                    sent, failed, k = sent + s, failed + f, 0
                try:
                    sock.send(frame, _MSG_DONTWAIT)
                    sent += 1
                except OSError:
                    failed += 1
                continue
            off = k * slot
            view[off:off + n] = frame
            lens[2 * k + 1] = n
            k += 1
            if k == self.capacity:
                s, f = self._flush(sock, k)
                sent, failed, k = sent + s, failed + f, 0
        if k:
            s, f = self._flush(sock, k)
            sent, failed = sent + s, failed + f
        return sent, failed

    def _flush(self, sock: socket.socket, k: int) -> tuple[int, int]:
        fd = sock.fileno()
        done = failed = 0
        while done + failed < k:
            r = _sendmmsg(fd, self._msgs_addr + 64 * (done + failed), k - done - failed, _MSG_DONTWAIT)
            if r > 0:
                done += r
                continue
            err = ctypes.get_errno()
            if err in _RETRY:
                continue
            if err in _FULL:  # the send buffer is full: the rest would be refused as well
                failed = k - done
                break
            failed += 1  # the next frame was refused (EINVAL, EMSGSIZE, ...): skip it, try the rest
        return done, failed

    def close(self) -> None:
        """Drop the views of the buffers."""
        for v in (self._lens, self._view):
            v.release()
