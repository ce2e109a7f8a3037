"""The ``--rx ring`` reader: :class:`RingReceiver` walks the blocks of an :class:`RxRing` in a
worker, with the kill-safe read position word (:func:`position`; see :mod:`pfrps.receive`)."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from ..errors import PfrpsError
from ..kernel import (ETH_HLEN, TP_STATUS_KERNEL, TP_STATUS_USER, TP_STATUS_VLAN_TPID_VALID,
                      TP_STATUS_VLAN_VALID, TPACKET3_HDR)
from .meta import FrameMeta

if TYPE_CHECKING:
    from .ring import RxRing

__all__ = ["RingReceiver", "position", "split_position"]

_ETH_HLEN = ETH_HLEN
_HDR3 = TPACKET3_HDR


def position(seq: int, handed_out: int = 0, in_handler: bool = False) -> int:
    """The 64-bit read position word: ``seq << 32 | handed_out << 1 | in_handler``."""
    return seq << 32 | handed_out << 1 | int(in_handler)


def split_position(word: int) -> tuple[int, int, bool]:
    """``(seq, handed_out, in_handler)`` of a read position word."""
    return word >> 32, (word >> 1) & 0x7FFFFFFF, bool(word & 1)


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
