"""Ring set-up: :class:`RxRing` (``PACKET_VERSION`` TPACKET_V3, ``PACKET_RX_RING``, the mapping
and the shared read position page) and :func:`make_rings` (many at once), in the supervisor."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import socket
from typing import Optional

from .. import packet
from ..errors import PfrpsError
from ..kernel import PACKET_RX_RING, PACKET_VERSION, SOL_PACKET, TPACKET_REQ3, TPACKET_V3
from .geometry import DEFAULT_RETIRE_MS, check_architecture, check_geometry
from .reader import RingReceiver, position

__all__ = ["RxRing", "make_rings"]

_REQ3 = TPACKET_REQ3
_libc = ctypes.CDLL(None, use_errno=True)


def _set_rx_ring(fd: int, req: bytes) -> None:
    """``setsockopt(fd, SOL_PACKET, PACKET_RX_RING, req)`` through libc, which releases the GIL
    (``socket.setsockopt`` does not): the kernel waits for an RCU grace period in every ring
    set-up (``packet_set_ring -> synchronize_net``, 10-25 ms), and concurrent callers share it.

    Raises:
        OSError: the kernel refused.
    """
    buf = ctypes.create_string_buffer(req, len(req))
    if _libc.setsockopt(fd, SOL_PACKET, PACKET_RX_RING, buf, len(req)) < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def make_rings(socks: list[socket.socket], block_size: int, blocks: int, frame_size: int,
               retire_ms: int = DEFAULT_RETIRE_MS) -> list["RxRing"]:
    """One :class:`RxRing` per socket, set up concurrently (threads share the kernel's RCU
    grace periods: 50 rings took 0.63 s one after the other). ``rings[i]`` belongs to ``socks[i]``.

    Raises:
        UsageError, PfrpsError: as :class:`RxRing`; rings already made are closed.
    """
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    with ThreadPoolExecutor(max_workers=max(1, min(len(socks), 64)), thread_name_prefix="pfrps-ring") as pool:
        futures = [pool.submit(RxRing, sock, block_size, blocks, frame_size, retire_ms) for sock in socks]
    rings, error = [], None
    for fut in futures:
        exc = fut.exception()
        if exc is None:
            rings.append(fut.result())
        elif error is None:
            error = exc
    if error is not None:
        for ring in rings:
            ring.close()
        raise error
    return rings


class RxRing:
    """A TPACKET_V3 receive ring on a bound ``AF_PACKET`` socket, mapped into this process.

    Create it in the supervisor before forking: the ring lives in the socket and the shared read
    position page (``MAP_SHARED``) is inherited by every worker; the supervisor unmaps the ring
    itself (:meth:`unmap`) and each worker maps its own when it makes a :class:`RingReceiver`.

    Args:
        sock: a bound, non-blocking ``AF_PACKET``/``SOCK_RAW`` socket with no ring yet (its
            steering filter may already be attached). The ring does not own it: close the
            ring (:meth:`close`) before or after the socket, either order is safe.
        block_size: bytes per block (see :func:`check_geometry`), e.g. 1 MiB.
        blocks: number of blocks, e.g. 8; ring memory is ``block_size * blocks`` bytes.
        frame_size: bytes, e.g. 2048 (see :func:`check_geometry`).
        retire_ms: milliseconds after which the kernel hands a partly filled block to user
            space (``tp_retire_blk_tov``): the worst-case delivery delay at low rates.

    Attributes:
        sock, block_size, blocks, frame_size, retire_ms: as given.
        size: ``block_size * blocks``, bytes.

    Raises:
        UsageError: bad geometry (:func:`check_geometry`).
        PfrpsError: the kernel refused ``PACKET_VERSION``/``PACKET_RX_RING`` (``code`` is the
            errno; ENOMEM when the ring is too large) or the ``mmap``.
    """

    def __init__(self, sock: socket.socket, block_size: int, blocks: int, frame_size: int,
                 retire_ms: int = DEFAULT_RETIRE_MS) -> None:
        frame_nr = check_geometry(block_size, blocks, frame_size)
        check_architecture()
        self.sock = sock
        self.block_size = block_size
        self.blocks = blocks
        self.frame_size = frame_size
        self.retire_ms = retire_ms
        self.size = block_size * blocks
        self._mm: Optional[mmap.mmap] = None
        self._state_mm: Optional[mmap.mmap] = None
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        except OSError as exc:
            raise PfrpsError(f"cannot switch the socket to TPACKET_V3: {exc.strerror}", code=exc.errno or errno.EINVAL,
                             hint="use --rx recv on kernels without TPACKET_V3 (before 3.2)") from None
        req = _REQ3.pack(block_size, blocks, frame_size, frame_nr, retire_ms, 0, 0)
        try:
            _set_rx_ring(sock.fileno(), req)
        except OSError as exc:
            hint = ("use fewer or smaller ring blocks" if exc.errno == errno.ENOMEM
                    else "check the ring geometry (block size, blocks, frame size)")
            raise PfrpsError(f"cannot set up a {self.size}-byte receive ring: {exc.strerror}",
                             code=exc.errno or errno.EINVAL, hint=hint) from None
        try:
            self.map()
        except PfrpsError:
            self._unset_ring()
            raise
        self._state_mm = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.set_position(position(1))  # the kernel opens block 0 with seq_num 1

    # -- the shared read position (one 64-bit word; see the module docstring) -----------------
    def read_position(self) -> int:
        """The read position word (``seq << 32 | handed_out << 1 | in_handler``)."""
        return int.from_bytes(self._state_mm[0:8], "little")

    def set_position(self, word: int) -> None:
        """Store the read position word (one aligned 8-byte store)."""
        st = memoryview(self._state_mm).cast("Q")
        st[0] = word
        st.release()

    def take_interrupted(self) -> int:
        """After the worker reading this ring died: 1 if it died inside the handler (that frame
        was handed out but may not have been handled; clears the flag), else 0. Frames."""
        word = self.read_position()
        if not word & 1:
            return 0
        self.set_position(word & ~1)
        return 1

    def map(self) -> None:
        """Map the ring into this process (idempotent).

        The supervisor maps it only to :meth:`discard` and then :meth:`unmap` s it before
        forking: the kernel inserts every ring page at mmap time, so a mapped ring makes each
        fork copy its page tables (about 10 ms per fork with 64 rings of 4 MiB). Each worker
        maps its own ring; the ring itself lives on in the socket, shared by all mappings.

        Raises:
            PfrpsError: the mmap failed.
        """
        if self._mm is not None:
            return
        try:
            self._mm = mmap.mmap(self.sock.fileno(), self.size, flags=mmap.MAP_SHARED,
                                 prot=mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            raise PfrpsError(f"cannot map the {self.size}-byte receive ring: {exc.strerror}",
                             code=exc.errno or errno.ENOMEM, hint="use fewer or smaller ring blocks") from None

    def unmap(self) -> None:
        """Unmap the ring from this process (idempotent); the shared read position stays."""
        if self._mm is not None:
            self._mm.close()
            self._mm = None

    def _unset_ring(self) -> None:
        try:  # a zeroed request tears the ring down again
            self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, _REQ3.pack(0, 0, 0, 0, 0, 0, 0))
        except OSError:
            pass

    def fileno(self) -> int:
        """The socket's file descriptor (readable when a block is ready for user space)."""
        return self.sock.fileno()

    def discard(self) -> int:
        """Drop every frame received so far; return how many (frames).

        Reads away what sits in the socket's ordinary queue (frames that arrived before the
        ring existed), gives every block owned by user space back to the kernel, and marks the
        frames already in the block the kernel is filling to be skipped when that block is
        handed out. The read position moves to the start of the kernel's current block.
        """
        dropped = packet.drain(self.sock)
        rcv = RingReceiver(self)
        try:
            dropped += rcv._discard()
        finally:
            rcv.close()
        return dropped

    def close(self) -> None:
        """Unmap the ring and the shared read position (idempotent). The socket stays open.

        Raises:
            BufferError: a :class:`RingReceiver` of this ring in this process is still open.
        """
        for attr in ("_mm", "_state_mm"):
            mm = getattr(self, attr)
            if mm is not None:
                mm.close()
                setattr(self, attr, None)

    def __enter__(self) -> "RxRing":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
