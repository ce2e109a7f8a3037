"""Send frames through a TPACKET_V2 ``PACKET_TX_RING`` (packet(7), packet_mmap.rst): one
``send()`` per burst of frames instead of one per frame.

The ring is ``frame_nr`` slots of ``frame_size`` bytes, mapped ``MAP_SHARED`` and viewed as a
``(frame_nr, frame_size)`` uint8 numpy array. Every slot starts with ``struct tpacket2_hdr``::

    offset 0  u32 tp_status   (AVAILABLE 0 -> SEND_REQUEST 1 by us -> SENDING 2 -> AVAILABLE 0,
                               or WRONG_FORMAT 4 when the kernel refuses the frame)
    offset 4  u32 tp_len      (bytes of frame to send)
    offset 8  u32 tp_snaplen, 12 u16 tp_mac, 14 u16 tp_net, 16 u32 tp_sec, 20 u32 tp_nsec, ...

and the frame itself at offset 32 (``TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)``). The
template is written into every slot once; a burst then only patches the six source-MAC bytes
of its slots and sets their ``tp_status`` to ``TP_STATUS_SEND_REQUEST`` (two strided numpy
writes), and one ``send()`` hands the whole burst to the kernel, which sends every
``SEND_REQUEST`` slot from its position on. A slot is reused once the kernel has set it back
to ``TP_STATUS_AVAILABLE`` (the frame's buffer was freed).

Only the first ``hard_header_len`` bytes of a frame (14 on Ethernet: both MACs and the
ethertype) are copied into the kernel's socket buffer; the rest stays referenced from the
ring's page, possibly after the slot is AVAILABLE again (a receiver may still hold a clone).
That is why a ring carries one template, written once: the bytes after the Ethernet header
never change, and the per-frame source MAC lives in the copied part, so every frame arrives
exactly as ``fill_frames(template, macs)`` would build it.
"""

from __future__ import annotations

import errno
import mmap
import os
import pickle
import signal
import socket
import struct
import time
from typing import Optional, Sequence

import numpy as np

from ..errors import PfrpsError, UsageError
from ..kernel import PACKET_TX_RING, PACKET_VERSION, SOL_PACKET, TPACKET_V2
from ..packet import open_tx_socket

from .frames import SRC_OFF
from .sender import SendResult, sleep_until

__all__ = ["TxRing", "send_parallel", "DEFAULT_RING_FRAMES", "DEFAULT_BURST", "TP_STATUS_AVAILABLE", "TP_STATUS_SEND_REQUEST",
           "TP_STATUS_SENDING", "TP_STATUS_WRONG_FORMAT"]

TP_STATUS_AVAILABLE = 0
TP_STATUS_SEND_REQUEST = 1 << 0
TP_STATUS_SENDING = 1 << 1
TP_STATUS_WRONG_FORMAT = 1 << 2
#: Where the frame starts in a TX slot: TPACKET2_HDRLEN (52) - sizeof(struct sockaddr_ll) (20).
DATA_OFF = 32
DEFAULT_RING_FRAMES = 4096
DEFAULT_BURST = 1024
_REQ = struct.Struct("=4I")  # struct tpacket_req: block_size, block_nr, frame_size, frame_nr
#: Frames per burst when pacing: about one burst per this many seconds.
_PACE_SLOT = 0.001
_DRAIN_TIMEOUT = 10.0


def _pow2_at_least(n: int) -> int:
    return 1 << max(n - 1, 1).bit_length()


class TxRing:
    """A PF_PACKET socket on ``ifname`` with a TPACKET_V2 transmit ring holding ``template``.

    Args:
        ifname: interface to send on (current network namespace).
        template: the frame (bytes, 14..65535 bytes); each slot holds a copy.
        ring_frames: slots in the ring (rounded up to whole pages of slots); more slots let
            more frames be in flight while the receiver catches up.
        qdisc_bypass: ``PACKET_QDISC_BYPASS``: hand frames straight to the driver.
        sndbuf: send buffer (``SO_SNDBUFFORCE``), bytes; 0 sizes it for the ring (1 KiB per
            slot, which covers the in-flight buffers of a full ring).

    Attributes:
        frame_size: bytes per slot (a power of two holding the 32-byte header and the frame).
        frame_nr: slots in the ring.

    Raises:
        pfrps.errors.InterfaceError, pfrps.errors.PrivilegeError: as :func:`pfrps.packet.open_tx_socket`.
        UsageError: an empty or oversized template, or ``ring_frames`` below 1.
        PfrpsError: the kernel refused the ring (``code`` is the errno).
    """

    def __init__(self, ifname: str, template: bytes, ring_frames: int = DEFAULT_RING_FRAMES,
                 qdisc_bypass: bool = False, sndbuf: int = 0) -> None:
        if not 14 <= len(template) <= 65535:
            raise UsageError(f"frame of {len(template)} bytes cannot be sent", hint="use 14..65535-byte frames")
        if ring_frames < 1:
            raise UsageError(f"ring of {ring_frames} frames is too small", hint="use --ring-frames 1 or more")
        self.ifname = ifname
        self.template = bytes(template)
        self.frame_size = _pow2_at_least(DATA_OFF + len(template))
        block_size = max(self.frame_size, mmap.PAGESIZE)
        per_block = block_size // self.frame_size
        blocks = -(-ring_frames // per_block)
        self.frame_nr = blocks * per_block
        size = block_size * blocks
        self.sock = open_tx_socket(ifname, sndbuf=sndbuf or max(self.frame_nr * 1024, 1 << 20),
                                   qdisc_bypass=qdisc_bypass)
        self._mm: Optional[mmap.mmap] = None
        try:
            try:
                self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
                self.sock.setsockopt(SOL_PACKET, PACKET_TX_RING, _REQ.pack(block_size, blocks, self.frame_size,
                                                                           self.frame_nr))
                self._mm = mmap.mmap(self.sock.fileno(), size, flags=mmap.MAP_SHARED,
                                     prot=mmap.PROT_READ | mmap.PROT_WRITE)
            except OSError as exc:
                raise PfrpsError(f"cannot set up a {size}-byte transmit ring on {ifname}: {exc.strerror}",
                                 code=exc.errno or errno.EINVAL,
                                 hint="use a smaller --ring-frames, or --tx send") from None
            self.slots = np.frombuffer(self._mm, dtype=np.uint8).reshape(self.frame_nr, self.frame_size)
            words = np.frombuffer(self._mm, dtype=np.uint32).reshape(self.frame_nr, self.frame_size // 4)
            self.status = words[:, 0]
            self.slots[:, DATA_OFF:DATA_OFF + len(template)] = np.frombuffer(self.template, dtype=np.uint8)
            words[:, 1] = len(template)  # tp_len
            self.src = self.slots[:, DATA_OFF + SRC_OFF:DATA_OFF + SRC_OFF + 6]
        except BaseException:
            self.close()
            raise
        self._head = 0

    # -- the ring ----------------------------------------------------------------------------
    def _flush(self) -> None:
        """Ask the kernel to send every SEND_REQUEST slot (non-blocking)."""
        try:
            self.sock.send(b"", socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            pass  # send buffer full: the slots stay SEND_REQUEST until the next flush
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                self._check_format()
                raise PfrpsError(f"sending on {self.ifname} failed: {exc.strerror}",
                                 code=exc.errno or errno.EIO, hint="is the interface up?") from None

    def _check_format(self) -> None:
        bad = np.flatnonzero(self.status & TP_STATUS_WRONG_FORMAT)
        if bad.size:
            raise PfrpsError(f"the kernel refused the frame in transmit slot {int(bad[0])} (TP_STATUS_WRONG_FORMAT)",
                             code=errno.EINVAL, hint=f"frames must be 14..{self.frame_size - DATA_OFF} bytes "
                                                     f"and fit the interface's MTU")

    def _wait_free(self, sl: slice, deadline: float) -> int:
        """Wait until slots ``sl`` are AVAILABLE; return how many waits it took."""
        waits = 0
        status = self.status
        while status[sl].any():
            self._flush()
            if not status[sl].any():
                break
            self._check_format()
            if time.perf_counter() > deadline:
                raise PfrpsError(f"transmit ring on {self.ifname} stalled: slots not given back in "
                                 f"{_DRAIN_TIMEOUT:.0f} s", code=errno.ETIMEDOUT, hint="is the interface up?")
            waits += 1
            time.sleep(50e-6)
        return waits

    def drain(self, timeout: float = _DRAIN_TIMEOUT) -> int:
        """Flush and wait until every slot is AVAILABLE again (every frame left); return the waits.

        Raises:
            PfrpsError: a frame was refused (WRONG_FORMAT) or the ring did not empty in ``timeout`` s.
        """
        return self._wait_free(slice(None), time.perf_counter() + timeout)

    # -- sending -----------------------------------------------------------------------------
    def send_macs(self, macs: np.ndarray, rate: float = 0.0, burst: int = DEFAULT_BURST) -> SendResult:
        """Send one template frame per row of ``macs`` (``(n, 6)`` uint8 source MACs), in order.

        Args:
            rate: frames/s to hold (0: as fast as the kernel takes them). Bursts are then cut
                to about a millisecond of frames and each burst waits for its time slot
                (``perf_counter`` deadlines from the start), so the measured rate holds over
                the run.
            burst: most frames per ``send()`` (1..ring slots).

        Returns:
            :class:`pfrps.inject.sender.SendResult`; ``seconds`` runs from the first burst to the
            last frame handed back by the kernel; ``retries`` counts waits for a free slot.
        """
        macs = np.ascontiguousarray(macs, dtype=np.uint8).reshape(-1, 6)
        total = macs.shape[0]
        nr = self.frame_nr
        burst = max(1, min(int(burst), nr))
        if rate:
            burst = max(1, min(burst, int(rate * _PACE_SLOT)))
        status = self.status
        src = self.src
        flush = self._flush
        sleep = time.sleep
        clock = time.perf_counter
        head = self._head
        pos = retries = 0
        t0 = clock()
        while pos < total:
            k = min(burst, total - pos, nr - head)
            end = head + k
            sl = slice(head, end)
            if status[sl].any():
                retries += self._wait_free(sl, clock() + _DRAIN_TIMEOUT)
            src[sl] = macs[pos:pos + k]
            status[sl] = TP_STATUS_SEND_REQUEST
            flush()
            pos += k
            head = end if end < nr else 0
            if rate and pos < total:
                ahead = t0 + pos / rate - clock()
                if ahead > 0:
                    sleep(ahead)
        self._head = head
        retries += self.drain()
        if rate:  # the last burst's time slot ends at t0 + total / rate
            sleep_until(t0 + total / rate)
        seconds = clock() - t0
        return SendResult(total, total * len(self.template), seconds, retries)

    def close(self) -> None:
        """Unmap the ring and close the socket (idempotent)."""
        self.slots = self.status = self.src = None  # type: ignore[assignment]
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:
                pass
            self._mm = None
        if self.sock is not None:
            self.sock.close()

    def __enter__(self) -> "TxRing":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def send_parallel(ifname: str, template: bytes, macs: np.ndarray, procs: int = 1, rate: float = 0.0,
                  burst: int = DEFAULT_BURST, ring_frames: int = DEFAULT_RING_FRAMES, qdisc_bypass: bool = False,
                  cpus: Optional[Sequence[int]] = None, on_ready=None) -> SendResult:
    """Send one frame per MAC row from ``procs`` processes, each with its own :class:`TxRing`.

    Process i sends the i-th contiguous share of ``macs`` (so the set of frames is the same
    for any ``procs``; only the interleaving on the wire changes) at ``rate / procs`` frames/s.
    With ``procs`` > 1 the processes are forked, pinned to ``cpus`` (default: the CPUs this
    process may use) in turn, and started together once every ring exists.

    Args:
        on_ready: called (no arguments) once every ring is set up, just before sending.

    Returns:
        A :class:`pfrps.inject.sender.SendResult` over all processes; ``seconds`` runs from the
        first process's start to the last one's end.

    Raises:
        PfrpsError and subclasses: a ring could not be set up or a process failed (the first
            error, as the process raised it).
    """
    macs = np.ascontiguousarray(macs, dtype=np.uint8).reshape(-1, 6)
    procs = max(1, min(int(procs), max(macs.shape[0], 1)))
    if procs == 1:
        with TxRing(ifname, template, ring_frames=ring_frames, qdisc_bypass=qdisc_bypass) as ring:
            if on_ready is not None:
                on_ready()
            return ring.send_macs(macs, rate=rate, burst=burst)
    cpus = list(cpus) if cpus else sorted(os.sched_getaffinity(0))
    bounds = np.linspace(0, macs.shape[0], procs + 1).astype(np.int64)
    go_r, go_w = os.pipe()
    children: list[tuple[int, int]] = []
    done = False
    try:
        for i in range(procs):
            res_r, res_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: set up, wait for the start byte, send, report
                status = 1
                try:
                    os.close(go_w)
                    os.close(res_r)
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    os.sched_setaffinity(0, {cpus[i % len(cpus)]})
                    with TxRing(ifname, template, ring_frames=ring_frames, qdisc_bypass=qdisc_bypass) as ring:
                        os.write(res_w, b"R")
                        os.read(go_r, 1)
                        t0 = time.perf_counter()
                        res = ring.send_macs(macs[bounds[i]:bounds[i + 1]], rate=rate / procs, burst=burst)
                        out = ("ok", t0, t0 + res.seconds, res.frames, res.bytes, res.retries)
                    status = 0
                except BaseException as exc:  # noqa: BLE001  (reported to the parent, never re-raised here)
                    if isinstance(exc, PfrpsError):
                        out = ("error", type(exc), exc.msg, exc.code, exc.hint)
                    else:
                        out = ("error", PfrpsError, f"sender process {i} failed: {exc!r}", errno.EIO, "")
                try:
                    os.write(res_w, pickle.dumps(out))
                finally:
                    os._exit(status)
            os.close(res_w)
            children.append((pid, res_r))
        os.close(go_r)
        go_r = -1
        for i, (_pid, fd) in enumerate(children):
            first = os.read(fd, 1)
            if first != b"R":  # the child failed before its ring existed
                _raise_child(i, first + _read_all(fd))
        if on_ready is not None:
            on_ready()
        os.write(go_w, b"G" * procs)
        outs = []
        for i, (_pid, fd) in enumerate(children):
            data = _read_all(fd)
            out = pickle.loads(data) if data else None
            if out is None or out[0] != "ok":
                _raise_child(i, data)
            outs.append(out)
        done = True
        start = min(o[1] for o in outs)
        end = max(o[2] for o in outs)
        return SendResult(sum(o[3] for o in outs), sum(o[4] for o in outs), end - start, sum(o[5] for o in outs))
    finally:
        for fd in (go_r, go_w):
            if fd >= 0:
                os.close(fd)
        for pid, fd in children:
            os.close(fd)
            try:
                if not done and os.waitpid(pid, os.WNOHANG)[0] == 0:
                    os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _raise_child(i: int, data: bytes) -> None:
    """Raise the error a sender process reported (``data``: its pickled report, or b"" if it died)."""
    out = pickle.loads(data) if data else None
    if out is None or out[0] != "error":
        raise PfrpsError(f"sender process {i} died without a report", code=errno.EIO)
    _tag, cls, msg, code, hint = out
    raise cls(msg, code=code, hint=hint)


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        data = os.read(fd, 1 << 16)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
