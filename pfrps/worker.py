"""The worker process: one steered PF_PACKET socket, a uvloop event loop, a frame handler.

A worker is forked by :class:`pfrps.supervisor.Supervisor`, which owns the socket (so the
socket, its steering program and anything queued on it survive a worker restart). The worker
reads its socket when it is readable, in batches, counts every frame in its row of the shared
counters, and hands each frame to the handler as a zero-copy view.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional, Union

import setproctitle
import uvloop

from .logs import reopen_log_files
from .packet import AUXDATA_SIZE, PACKET_AUXDATA, SOL_PACKET, TP_STATUS_VLAN_VALID
from .stats import Col, SharedCounters

__all__ = ["FrameMeta", "WorkerContext", "Handler", "RecvReceiver", "run_worker"]

log = logging.getLogger("pfrps.worker")

_SO_TIMESTAMPNS = 35
#: struct tpacket_auxdata: tp_status, tp_len, tp_snaplen, tp_mac, tp_net, tp_vlan_tci, tp_vlan_tpid
_AUX_UNPACK = struct.Struct("=IIIHHHH").unpack_from


@dataclass
class FrameMeta:
    """Receive metadata of one frame.

    Attributes:
        ifindex: the interface it arrived on.
        timestamp: kernel receive time, seconds since the epoch (CLOCK_REALTIME).
        length: the frame's length on the wire, bytes (the view may be shorter only if truncated).
        vlan_tci: the 802.1Q TCI the kernel stripped (VLAN offload), or None.
    """

    ifindex: int
    timestamp: float
    length: int
    vlan_tci: Optional[int] = None


class WorkerContext:
    """What a handler sees of its worker.

    Attributes:
        worker_id: this worker's id, 0..worker_count-1 (stable across restarts).
        worker_count: N.
        ifindex: the interface's index.
        loop: the worker's event loop (uvloop), for timers and tasks.
        storage: worker-local dict; the steering guarantees that one source MAC always lands
            on the same worker, so per-subscriber state can live here with no lock.
        log: a logger named ``pfrps.w<id>``.
    """

    def __init__(self, worker_id: int, worker_count: int, ifindex: int, sock: socket.socket,
                 counters: SharedCounters, loop: asyncio.AbstractEventLoop) -> None:
        self.worker_id = worker_id
        self.worker_count = worker_count
        self.ifindex = ifindex
        self.loop = loop
        self.storage: dict[Any, Any] = {}
        self.log = logging.getLogger(f"pfrps.w{worker_id}")
        self._sock = sock
        self._row = counters.row(worker_id)
        self._counters = counters

    def transmit(self, frame) -> bool:
        """Send one whole Ethernet frame (bytes-like, 14..MTU+14 bytes) out of the interface.

        Returns True when the kernel took it; False (counted as a TX error) when the socket's
        send buffer is full or the kernel refused it.
        """
        try:
            self._sock.send(frame, socket.MSG_DONTWAIT)
        except OSError:
            self._row[Col.TX_ERRORS] += 1
            return False
        self._row[Col.TX_FRAMES] += 1
        return True

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` (may be negative, for gauges) to application counter or gauge ``name``.

        Raises:
            KeyError: the supervisor was not given that name in ``app_counters``/``app_gauges``.
        """
        col = self._counters.column(name)
        if n >= 0:
            self._row[col] += n
        else:
            self._counters.add(self.worker_id, col, n)


#: A frame handler: ``handler(frame: memoryview, meta: FrameMeta, ctx: WorkerContext)``.
#: It may be a coroutine function; it then runs as a task on the worker's loop and gets a
#: ``bytes`` copy of the frame (the receive buffer is reused after the call returns).
Handler = Callable[[memoryview, FrameMeta, WorkerContext], Union[None, Awaitable[None]]]


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
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self.ancsize = socket.CMSG_SPACE(AUXDATA_SIZE) + (socket.CMSG_SPACE(16) if timestamps else 0)

    def fileno(self) -> int:
        return self.sock.fileno()

    def poll(self, on_frame: Optional[Callable[[memoryview, FrameMeta], None]], ifindex: int,
             budget: int = 256) -> tuple[int, int, int]:
        """Read up to ``budget`` queued frames; return ``(frames, bytes, truncated)``."""
        frames = nbytes = truncated = 0
        recv = self.sock.recvmsg_into
        bufs = [self.buf]
        ancsize = self.ancsize
        for _ in range(budget):
            try:
                n, anc, flags, _addr = recv(bufs, ancsize)
            except (BlockingIOError, InterruptedError):
                break
            length = n
            vlan = None
            ts = 0.0
            for level, kind, data in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, length, snaplen, _m, _n, tci, _t = _AUX_UNPACK(data)
                    if snaplen < length:
                        truncated += 1
                    if status & TP_STATUS_VLAN_VALID:
                        vlan = tci
                elif kind == _SO_TIMESTAMPNS:
                    sec, nsec = int.from_bytes(data[:8], "little"), int.from_bytes(data[8:16], "little")
                    ts = sec + nsec * 1e-9
            if flags & socket.MSG_TRUNC and length <= n:
                truncated += 1
            frames += 1
            nbytes += length
            if on_frame is not None:
                on_frame(self.view[:n], FrameMeta(ifindex, ts or time.time(), length, vlan))
        return frames, nbytes, truncated


def _set_process_name(name: str) -> None:
    setproctitle.setproctitle(name)
    try:
        import ctypes  # noqa: PLC0415

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except OSError:
        pass


def run_worker(worker_id: int, worker_count: int, ifindex: int, sock: socket.socket,
               counters: SharedCounters, ready_fd: int, handler: Optional[Handler] = None,
               on_start: Optional[Callable[[WorkerContext], Any]] = None,
               on_stop: Optional[Callable[[WorkerContext], Any]] = None,
               receiver_factory: Optional[Callable[[socket.socket], Any]] = None,
               cpus: Optional[list[int]] = None) -> int:
    """Body of a worker process; returns its exit status.

    Runs the uvloop event loop until SIGTERM or SIGINT, then reads what is still queued,
    calls ``on_stop`` and returns 0. Writes its id (4 bytes) to ``ready_fd`` once the loop is
    running and ``on_start`` has returned: that is the supervisor's readiness signal.
    """
    _set_process_name(f"pfrps-w{worker_id}")
    if cpus:
        os.sched_setaffinity(0, {cpus[worker_id % len(cpus)]})
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the loop's handler is in place
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    ctx = WorkerContext(worker_id, worker_count, ifindex, sock, counters, loop)
    row = counters.row(worker_id)
    is_async = handler is not None and inspect.iscoroutinefunction(handler)
    receiver = receiver_factory(sock) if receiver_factory else RecvReceiver(sock, timestamps=handler is not None)

    def on_frame(frame: memoryview, meta: FrameMeta) -> None:
        try:
            if is_async:
                task = loop.create_task(handler(bytes(frame), meta, ctx))
                task.add_done_callback(on_task_done)
            else:
                handler(frame, meta, ctx)
        except Exception:
            row[Col.HANDLER_ERRORS] += 1
            ctx.log.exception("handler raised; frame dropped, worker continues")

    def on_task_done(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            row[Col.HANDLER_ERRORS] += 1
            ctx.log.error("handler raised: %r", task.exception())

    cb = on_frame if handler is not None else None

    def on_readable() -> int:
        frames, nbytes, truncated = receiver.poll(cb, ifindex)
        if frames:
            row[Col.FRAMES] += frames
            row[Col.BYTES] += nbytes
            if truncated:
                row[Col.TRUNCATED] += truncated
        return frames

    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, reopen_log_files)

    async def main() -> None:
        if on_start is not None:
            res = on_start(ctx)
            if inspect.isawaitable(res):
                await res
        loop.add_reader(receiver.fileno(), on_readable)
        os.write(ready_fd, worker_id.to_bytes(4, "little"))
        await stopping.wait()
        loop.remove_reader(receiver.fileno())
        while on_readable():  # what is already queued belongs to this run
            pass
        if on_stop is not None:
            res = on_stop(ctx)
            if inspect.isawaitable(res):
                await res

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return 0

