"""The two receive paths, side by side: a TPACKET_V3 ring (``--rx ring``, :class:`RxRing` and
:class:`RingReceiver`: frames read from shared memory, no syscall per frame) and one
``recvmsg`` per frame (``--rx recv``, :class:`RecvReceiver`), plus the :class:`FrameMeta`
both hand to the handler. A receiver has ``fileno()`` (wait for readability) and
``poll(on_frame, ifindex, budget) -> (frames, bytes, truncated)``.

Sources: packet(7) (``PACKET_VERSION``, ``PACKET_RX_RING``, ``PACKET_STATISTICS``) and the
kernel's ``Documentation/networking/packet_mmap.rst`` (TPACKET_V3 section), with the layouts of
``include/uapi/linux/if_packet.h``.

The ring is ``blocks`` blocks of ``block_size`` bytes, mapped ``MAP_SHARED`` into the process
(``block_size * blocks`` bytes of kernel memory per socket). The kernel fills one block at a
time with frames; it hands a block to user space (``block_status & TP_STATUS_USER``) when the
block is full or ``retire_ms`` milliseconds after it was opened, and takes it back when user
space writes ``TP_STATUS_KERNEL`` to ``block_status``. Blocks are handed out and must be given
back in ring order. Each block starts with ``struct tpacket_block_desc``::

    offset  0  u32 version            offset 16  u32 offset_to_first_pkt
    offset  4  u32 offset_to_priv     offset 20  u32 blk_len
    offset  8  u32 block_status       offset 24  u64 seq_num (1, 2, 3, ... in fill order)
    offset 12  u32 num_pkts           offset 32  ts_first_pkt, offset 40 ts_last_pkt

and every frame in it with ``struct tpacket3_hdr`` (48 bytes), chained by ``tp_next_offset``
(0 on the block's last frame)::

    offset  0  u32 tp_next_offset     offset 20  u32 tp_status (TP_STATUS_VLAN_VALID, ...)
    offset  4  u32 tp_sec             offset 24  u16 tp_mac (frame start, from this header)
    offset  8  u32 tp_nsec            offset 26  u16 tp_net
    offset 12  u32 tp_snaplen         offset 28  u32 hv1.tp_rxhash
    offset 16  u32 tp_len (wire)      offset 32  u32 hv1.tp_vlan_tci, offset 36 u16 tp_vlan_tpid

:class:`RxRing` sets the ring up in the supervisor (which maps it only to discard what
arrived before the run, then unmaps it: the workers fork with no ring mapped, and each maps
its own); each worker reads its socket's ring through a :class:`RingReceiver`.

Read state a kill cannot tear. The read position is ONE 64-bit word in a small ``MAP_SHARED``
page of the :class:`RxRing`, shared by the supervisor and every incarnation of the worker::

    position = seq << 32 | frames_handed_out << 1 | in_handler

``seq`` is the ``seq_num`` of the block being read (the kernel numbers blocks 1, 2, 3, ... in
ring order, so the block index is ``(seq - 1) % blocks``), ``frames_handed_out`` how many of
its frames were given to the handler (the next frame's offset is found by walking
``tp_next_offset`` from the first), and ``in_handler`` is set while a frame is in the handler.
Every change of position is one aligned 8-byte store, so a worker SIGKILLed at any
instruction leaves either the old or the new position, never a mix: a frame is handed out
at most once; a worker killed inside the handler leaves ``in_handler`` set and the
supervisor counts that frame as ``interrupted`` (at most one per death). A block whose frames
were all handed out has its position moved to ``seq + 1`` *before* it is given back to the
kernel; if the worker dies in between, its successor gives back the user-owned block whose
``seq_num`` is one behind (a stale block: never delivered twice). A user-owned block whose
``seq_num`` is not the expected one is never read.

Architecture assumption (checked: :func:`check_architecture`): x86-64, where aligned 8-byte
stores are single-copy atomic and the memory model is TSO (stores are seen in program order,
loads are not reordered with older loads): the kernel's ``smp_wmb`` before it sets
``TP_STATUS_USER`` makes the block's frames visible before the status, and our read of the
frames happens before our store of ``TP_STATUS_KERNEL``, with no explicit fence on our side.
Other architectures would need acquire/release ordering that Python cannot express; use
``--rx recv`` there.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import socket
import time
from typing import Callable, Optional, Protocol, runtime_checkable

import numpy as np

from . import packet
from .errors import PfrpsError, UsageError
from .kernel import (AUXDATA_SIZE, ETH_HLEN, PACKET_AUXDATA, PACKET_RX_RING,  # noqa: F401
                     PACKET_VERSION, SO_TIMESTAMPNS, SOL_PACKET, TP_STATUS_KERNEL, TP_STATUS_USER,
                     TP_STATUS_VLAN_TPID_VALID, TP_STATUS_VLAN_VALID, TPACKET3_HDR, TPACKET3_HDRLEN, TPACKET_ALIGNMENT,
                     TPACKET_AUXDATA, TPACKET_REQ3, TPACKET_V3)

__all__ = [
    "Receiver",
    "OnFrame",
    "RxRing",
    "RingReceiver",
    "check_geometry",
    "TPACKET_V3",
    "TPACKET3_HDRLEN",
    "MIN_FRAME_SIZE",
    "DEFAULT_RETIRE_MS",
    "FrameMeta",
    "RecvReceiver",
    "check_architecture",
    "make_rings",
    "position",
    "split_position",
    "LINK_ERRNOS",
]

_ETH_HLEN = ETH_HLEN
#: Smallest ``frame_size`` accepted: a V3 header, room for an Ethernet header, aligned to 16.
MIN_FRAME_SIZE = (TPACKET3_HDRLEN + _ETH_HLEN + TPACKET_ALIGNMENT - 1) & ~(TPACKET_ALIGNMENT - 1)  # 96
#: Milliseconds after which the kernel hands a partly filled block to user space.
DEFAULT_RETIRE_MS = 10
_MAX_BLOCK_SIZE = 1 << 30   # the kernel wants tp_block_size to fit a positive int; 1 GiB is plenty
_U32_MAX = (1 << 32) - 1
_REQ3 = TPACKET_REQ3
_HDR3 = TPACKET3_HDR
#: Socket errors a packet socket reports when its interface goes down (ENETDOWN, set by the
#: kernel's packet_notifier on NETDEV_DOWN and NETDEV_UNREGISTER) or is gone: not a reason to
#: stop reading (the socket is hooked in again on NETDEV_UP).
LINK_ERRNOS = frozenset({errno.ENETDOWN, errno.ENODEV, errno.ENXIO})
#: Architectures whose memory model the ring's lock-free read state relies on.
TSO_ARCHITECTURES = ("x86_64",)


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


def check_architecture(machine: Optional[str] = None) -> None:
    """Require an architecture where the ring's read state is safe (see the module docstring).

    Raises:
        UsageError: ``machine`` (default: this host's) is not x86-64.
    """
    machine = machine or platform.machine()
    if machine not in TSO_ARCHITECTURES:
        raise UsageError(f"the TPACKET_V3 ring reader assumes x86-64 memory ordering (TSO); this is {machine}",
                         code=errno.ENOTSUP, hint="use --rx recv on this architecture")


def position(seq: int, handed_out: int = 0, in_handler: bool = False) -> int:
    """The 64-bit read position word: ``seq << 32 | handed_out << 1 | in_handler``."""
    return seq << 32 | handed_out << 1 | int(in_handler)


def split_position(word: int) -> tuple[int, int, bool]:
    """``(seq, handed_out, in_handler)`` of a read position word."""
    return word >> 32, (word >> 1) & 0x7FFFFFFF, bool(word & 1)


class FrameMeta:
    """Receive metadata of one frame (``__slots__``: one is built per frame, so it is kept cheap).

    ``FrameMeta(ifindex, timestamp, length, vlan_tci=None, vlan_tpid=None)`` as before; the
    ring reader passes the kernel's ``tp_sec`` as ``timestamp`` and ``tp_nsec`` as ``nsec``, so
    the float :attr:`timestamp` is computed only if a handler reads it. Each frame gets a new
    FrameMeta (never a reused one): a handler, or an async handler's task, may keep it.

    Attributes:
        ifindex: the interface it arrived on.
        timestamp: kernel receive time, seconds since the epoch (CLOCK_REALTIME), a float
            (computed on first read from whole seconds plus ``nsec`` when those were given).
        length: the frame's length on the wire, bytes (the view may be shorter only if truncated).
        vlan_tci: the 802.1Q TCI the kernel stripped (VLAN offload), or None.
        vlan_tpid: the stripped tag's TPID (0x8100 for 802.1Q, 0x88a8 for an 802.1ad S-tag)
            when the kernel reports it (``TP_STATUS_VLAN_TPID_VALID``), else None.
    """

    __slots__ = ("ifindex", "_ts", "length", "vlan_tci", "vlan_tpid", "_nsec")

    def __init__(self, ifindex: int, timestamp: float, length: int, vlan_tci: Optional[int] = None,
                 vlan_tpid: Optional[int] = None, nsec: Optional[int] = None) -> None:
        self.ifindex = ifindex
        self._ts = timestamp
        self.length = length
        self.vlan_tci = vlan_tci
        self.vlan_tpid = vlan_tpid
        self._nsec = nsec

    @property
    def timestamp(self) -> float:
        """Kernel receive time, seconds since the epoch (float)."""
        nsec = self._nsec
        if nsec is None:
            return self._ts
        ts = self._ts = self._ts + nsec * 1e-9
        self._nsec = None
        return ts

    @timestamp.setter
    def timestamp(self, value: float) -> None:
        self._ts, self._nsec = value, None

    def _key(self) -> tuple:
        return self.ifindex, self.timestamp, self.length, self.vlan_tci, self.vlan_tpid

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FrameMeta):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        return (f"FrameMeta(ifindex={self.ifindex!r}, timestamp={self.timestamp!r}, length={self.length!r}, "
                f"vlan_tci={self.vlan_tci!r}, vlan_tpid={self.vlan_tpid!r})")


#: What a receiver hands every frame to: ``on_frame(frame, meta)``, ``frame`` a ``memoryview``
#: valid only during the call (released when it returns), ``meta`` a :class:`FrameMeta`.
OnFrame = Callable[[memoryview, FrameMeta], None]


@runtime_checkable
class Receiver(Protocol):
    """What a worker reads frames from (:class:`RecvReceiver`, :class:`RingReceiver`, or a
    wrapper such as :class:`pfrps.linkwatch.RxGuard`)."""

    def fileno(self) -> int:
        """A file descriptor that is readable when :meth:`poll` has frames to read."""
        ...  # pragma: no cover

    def poll(self, on_frame: Optional[OnFrame], ifindex: int, budget: int = 256) -> tuple[int, int, int]:
        """Read up to about ``budget`` frames without blocking, handing each to ``on_frame``
        (None: only count them); return ``(frames, bytes, truncated)``: frames read, the sum of
        their wire lengths (bytes), and how many were captured shorter than on the wire."""
        ...  # pragma: no cover

    def close(self) -> None:
        """Drop what the receiver holds (views, fds of its own); the socket stays its owner's."""
        ...  # pragma: no cover


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
                _release(view)
        return frames, nbytes, truncated

    def close(self) -> None:
        """Nothing to drop: the buffer is this object's, the socket the supervisor's."""


def _release(view: memoryview) -> None:
    """Release a frame's view once the handler returned: a handler that kept it then gets
    ``ValueError`` on use instead of silently reading bytes the kernel has since rewritten. A
    view the handler exported a buffer of (``np.frombuffer(frame)`` still alive) cannot be
    released and is left as is; slices the handler took (``frame[6:12]``) stay readable."""
    try:
        view.release()
    except BufferError:
        pass


def check_geometry(block_size: int, blocks: int, frame_size: int, page_size: int = mmap.PAGESIZE) -> int:
    """Check a TPACKET_V3 ring geometry the way the kernel will (before any memory is asked for).

    Args:
        block_size: bytes per block; a positive multiple of ``page_size`` and of ``frame_size``,
            at most 1 GiB. The largest frame the ring can hold is ``block_size - 48`` bytes
            including its 68-byte header; longer frames are truncated (counted as truncated).
        blocks: number of blocks, 1 or more.
        frame_size: bytes; a multiple of 16 (TPACKET_ALIGNMENT), at least :data:`MIN_FRAME_SIZE`
            (96). V3 packs frames of any size into a block; the kernel still wants
            ``frame_nr = block_size // frame_size * blocks``.
        page_size: the system page size, bytes.

    Returns:
        ``frame_nr``, the frame count to give the kernel.

    Raises:
        UsageError: the first rule broken, with a one-line hint.
    """
    for name, value in (("block size", block_size), ("block count", blocks), ("frame size", frame_size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise UsageError(f"ring {name} {value!r} is not an integer", hint="give ring sizes as whole numbers")
    if blocks < 1:
        raise UsageError(f"ring block count {blocks} is below 1", hint="use at least 1 block (the default is 4 MiB / block size)")
    if block_size <= 0 or block_size % page_size:
        raise UsageError(f"ring block size {block_size} is not a positive multiple of the page size ({page_size} bytes)",
                         hint="use a power of two such as 262144 (256 KiB) or 65536 (64 KiB), the defaults")
    if block_size > _MAX_BLOCK_SIZE:
        raise UsageError(f"ring block size {block_size} is above {_MAX_BLOCK_SIZE} bytes (1 GiB)",
                         hint="use more, smaller blocks (e.g. 1 MiB each)")
    if frame_size % TPACKET_ALIGNMENT:
        raise UsageError(f"ring frame size {frame_size} is not a multiple of {TPACKET_ALIGNMENT} (TPACKET_ALIGNMENT)",
                         hint="use a power of two such as 2048")
    if frame_size < MIN_FRAME_SIZE:
        raise UsageError(f"ring frame size {frame_size} is below {MIN_FRAME_SIZE} bytes "
                         f"(a {TPACKET3_HDRLEN}-byte TPACKET_V3 header plus an Ethernet header)",
                         hint="use a power of two such as 2048")
    if frame_size > block_size:
        raise UsageError(f"ring frame size {frame_size} is larger than the block size {block_size}",
                         hint="use a frame size that divides the block size, such as 2048")
    if block_size % frame_size:
        raise UsageError(f"ring block size {block_size} is not a multiple of the frame size {frame_size}",
                         hint="use power-of-two sizes, e.g. block 1048576 and frame 2048")
    frame_nr = block_size // frame_size * blocks
    if frame_nr > _U32_MAX:
        raise UsageError(f"ring of {blocks} blocks of {block_size // frame_size} frames has more than 2^32-1 frames",
                         hint="use fewer blocks or a larger frame size")
    return frame_nr


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


class RingReceiver:
    """Read one :class:`RxRing` (``--rx ring``), in the worker process.

    Frames are handed out as zero-copy ``memoryview`` slices of the ring: a view is valid
    only until the handler returns (its block then goes back to the kernel and is refilled),
    and is released then, so a handler that kept it gets ``ValueError`` rather than recycled
    bytes (slices it took of it, ``frame[6:12]``, are not released: copy them to keep them).

    Attributes:
        resync_skipped: ring blocks skipped since last zeroed because the kernel was ahead of
            the read position (see :meth:`_begin`); the worker collects it after every poll.

    Args:
        ring: the ring; mapped into this process here if it is not (:meth:`RxRing.map`).

    Raises:
        PfrpsError: the ring was closed, or the mmap failed.
    """

    def __init__(self, ring: RxRing) -> None:
        if ring._state_mm is not None:
            ring.map()
        if ring._mm is None or ring._state_mm is None:
            raise PfrpsError("the receive ring is closed", code=errno.EBADF)
        self.ring = ring
        self._fd = ring.sock.fileno()
        self._bs = ring.block_size
        self._nblocks = ring.blocks
        self._mm = ring._mm
        self._mv = memoryview(ring._mm)
        self._u32 = self._mv.cast("I")
        self._a32 = np.frombuffer(ring._mm, dtype=np.uint32)
        self._st = memoryview(ring._state_mm).cast("Q")
        self._cache = (-1, 0)  # (position word, offset of its next frame) of a part-read block
        #: Ring blocks skipped because the kernel was ahead of the read position, not yet
        #: collected (the worker adds it to ``Col.RESYNC_SKIPPED`` and zeroes it after each poll).
        self.resync_skipped = 0
        self._recover()

    def fileno(self) -> int:
        """The socket's file descriptor, to wait on for readability."""
        return self._fd

    # -- ring position -----------------------------------------------------------------------
    def _seq(self, h: int) -> int:
        u = self._u32
        return u[h + 6] | (u[h + 7] << 32)

    def _recover(self) -> None:
        """Give back a block a dead predecessor finished but did not return to the kernel: the
        user-owned block one behind the position, with ``seq_num == seq - 1``."""
        seq, handed, _busy = split_position(self._st[0])
        if self._nblocks < 2 or handed or seq < 2:
            return  # one block: _begin() gives a stale block back itself
        h = (seq - 2) % self._nblocks * self._bs >> 2
        if self._u32[h + 2] & TP_STATUS_USER and self._seq(h) == seq - 1:
            self._u32[h + 2] = TP_STATUS_KERNEL

    def _walk(self, base: int, off: int, frames: int) -> int:
        """Offset (in its block) of frame ``frames``, walking ``tp_next_offset`` from ``off``."""
        u = self._u32
        for _ in range(frames):
            nxt = u[(base + off) >> 2]
            if not nxt:
                break
            off += nxt
        return off

    def _begin(self):
        """``(seq, base, num_pkts, handed_out, off)`` of the block to read, or None when the
        kernel owns it (or it was stale and went back to the kernel)."""
        word = self._st[0]
        seq = word >> 32
        handed = (word >> 1) & 0x7FFFFFFF
        base = (seq - 1) % self._nblocks * self._bs
        h = base >> 2
        u = self._u32
        if not u[h + 2] & TP_STATUS_USER:
            return None
        bseq = self._seq(h)
        if bseq != seq:
            if bseq < seq:  # already read by a predecessor that died before giving it back
                u[h + 2] = TP_STATUS_KERNEL
                return None
            # The kernel is ahead of the position (it cannot be without our release): resync.
            # Blocks seq .. bseq-1 (the part of seq not handed out included) are never read;
            # their frame counts are gone with them: count the blocks (resync_skipped).
            self.resync_skipped += bseq - seq
            self._st[0] = word = position(bseq)
            seq, handed = bseq, 0
        num = u[h + 3]
        if handed == 0:
            off = u[h + 4]
        elif self._cache[0] == word & ~1:
            off = self._cache[1]
        else:
            off = self._walk(base, u[h + 4], handed)
        return seq, base, num, handed, off

    def _release(self, seq: int, base: int) -> None:
        """Move the shared position to the next block, then give block ``seq`` to the kernel."""
        self._st[0] = (seq + 1) << 32
        self._u32[(base >> 2) + 2] = TP_STATUS_KERNEL

    def _discard(self) -> int:
        dropped = 0
        for _ in range(self._nblocks):
            b = self._begin()
            if b is None:
                break
            seq, base, num, handed, _off = b
            dropped += max(num - handed, 0)
            self._release(seq, base)
        seq = self._st[0] >> 32
        self._st[0] = position(seq)
        h = (seq - 1) % self._nblocks * self._bs >> 2
        if not self._u32[h + 2] & TP_STATUS_USER and self._seq(h) == seq:
            n = self._u32[h + 3]  # frames the kernel put in its open block so far: skip them
            if n:
                self._st[0] = position(seq, n)
                dropped += n
        return dropped

    # -- reading -----------------------------------------------------------------------------
    def poll(self, on_frame: Optional[Callable[[memoryview, FrameMeta], None]], ifindex: int,
             budget: int = 256) -> tuple[int, int, int]:
        """Read what the kernel has handed over, without blocking.

        Args:
            on_frame: called as ``on_frame(frame, meta)`` for every frame, in arrival order:
                ``frame`` is a ``memoryview`` of the frame's captured bytes in the ring (from the
                Ethernet header, ``tp_snaplen`` bytes), valid only during the call; ``meta`` a
                :class:`pfrps.worker.FrameMeta` (kernel receive time ``tp_sec + tp_nsec * 1e-9``
                seconds, wire length ``tp_len`` bytes, VLAN TCI when ``TP_STATUS_VLAN_VALID``).
                None only counts frames: whole blocks are summed with numpy.
            ifindex: the interface index to put in ``meta``.
            budget: frames to hand to ``on_frame`` before returning; when counting only, whole
                blocks are consumed until at least ``budget`` frames were counted.

        Returns:
            ``(frames, bytes, truncated)``: frames read, the sum of their wire lengths
            (``tp_len``, bytes), and how many were captured shorter than on the wire
            (``tp_snaplen < tp_len``).
        """
        if on_frame is None:
            return self._count(budget)
        return self._deliver(on_frame, ifindex, budget)

    def _count(self, budget: int) -> tuple[int, int, int]:
        frames = nbytes = truncated = 0
        while frames < budget:
            b = self._begin()
            if b is None:
                break
            seq, base, num, pkt, off = b
            if num > pkt:
                f, nb, tr = self._sum(base + off, num - pkt)
                frames += f
                nbytes += nb
                truncated += tr
            self._release(seq, base)
        return frames, nbytes, truncated

    def _sum(self, pos: int, n: int) -> tuple[int, int, int]:
        """Frames, bytes, truncated of the ``n`` chained frames starting at ring offset ``pos``."""
        u = self._u32
        i = pos >> 2
        if n == 1:
            length = u[i + 4]
            return 1, length, int(u[i + 3] < length)
        stride = u[i]
        if stride and not stride & 3 and (n - 1) * stride < self._bs:
            # Same-size frames (the usual case) sit at a fixed stride: check that, then read
            # tp_next_offset, tp_snaplen and tp_len as strided views (no index arrays, no copies).
            a = self._a32
            k = stride >> 2
            end = i + (n - 1) * k + 1
            nxt = a[i:end:k]
            if nxt[-1] == 0 and (nxt[:-1] == stride).all():
                lens = a[i + 4:end + 4:k]
                snaps = a[i + 3:end + 3:k]
                return n, int(lens.sum()), int(np.count_nonzero(snaps < lens))
        nbytes = truncated = 0
        for _ in range(n):
            length = u[i + 4]
            nbytes += length
            if u[i + 3] < length:
                truncated += 1
            i += u[i] >> 2
        return n, nbytes, truncated

    def _deliver(self, on_frame: Callable[[memoryview, FrameMeta], None], ifindex: int,
                 budget: int) -> tuple[int, int, int]:
        # Per frame: one header unpack, one FrameMeta (timestamp left as tp_sec/tp_nsec), one
        # view, the two position stores, the call, the view's release (bench/handler_micro.py).
        st = self._st
        mv = self._mv
        u = self._u32
        unpack = _HDR3.unpack_from
        meta_of = FrameMeta
        new = object.__new__
        frames = nbytes = truncated = 0
        while frames < budget:
            b = self._begin()
            if b is None:
                break
            seq, base, num, pkt, off = b
            word = seq << 32 | pkt << 1  # the position word, handed_out in bits 1..31
            last = min(num, pkt + budget - frames)
            frames += last - pkt
            for _ in range(last - pkt):
                p = base + off
                nxt, sec, nsec, snap, length, status, mac = unpack(mv, p)
                off += nxt
                word += 2
                # One store moves the position past this frame and marks it in the handler: a
                # frame is handed out at most once, whatever instruction a kill hits.
                st[0] = word + 1
                nbytes += length
                if snap < length:
                    truncated += 1
                start = p + mac
                meta = new(meta_of)  # FrameMeta(ifindex, sec, length, tci, tpid, nsec), without the call
                meta.ifindex = ifindex
                meta._ts = sec
                meta._nsec = nsec
                meta.length = length
                if status & TP_STATUS_VLAN_VALID:
                    meta.vlan_tci = u[(p >> 2) + 8]
                    meta.vlan_tpid = u[(p >> 2) + 9] & 0xFFFF if status & TP_STATUS_VLAN_TPID_VALID else None
                else:
                    meta.vlan_tci = meta.vlan_tpid = None
                view = mv[start:start + snap]
                on_frame(view, meta)
                st[0] = word
                try:
                    view.release()
                except BufferError:  # the handler holds a buffer of it (np.frombuffer): leave it
                    pass
            if last < num:
                self._cache = (word, off)
                break
            self._release(seq, base)
        return frames, nbytes, truncated

    def close(self) -> None:
        """Drop this receiver's views of the ring (so :meth:`RxRing.close` can unmap it)."""
        self._a32 = None  # type: ignore[assignment]
        for name in ("_u32", "_st", "_mv"):
            view = getattr(self, name, None)
            if view is not None:
                view.release()
                setattr(self, name, None)
