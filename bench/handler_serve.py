"""The receiver side of :mod:`bench.handler`, one process tree per measurement, started in the
node namespace by the harness: ``python -m bench.handler_serve --kind KIND --handler H -w N -i IF``.

Kinds (the same handler functions, from :mod:`bench.handler`, in every one):

- ``pfrps``: a :class:`pfrps.supervisor.Supervisor` (fanout steering, TPACKET_V3 rings) with N
  workers calling the handler;
- ``queue``: what a Python user would otherwise write: one ``AF_PACKET`` socket read by a
  dispatcher process (``recv_into``), each frame put on one of N ``multiprocessing.Queue`` s
  chosen by its source MAC, N ``multiprocessing.Process`` consumers calling the handler;
- ``scapy``: scapy's ``AsyncSniffer(prn=...)`` calling the handler with ``bytes(packet)``;
- ``tx``: not a receiver: sends ``--frames`` copies of a 60-byte frame out of IF, once with one
  ``send`` per frame and once with :meth:`pfrps.worker.WorkerContext.transmit_many`'s
  ``sendmmsg`` batches, and prints the rates (JSON).

Protocol on stdout: ``READY pid,pid,...`` (the processes that call the handler, plus the
dispatcher; their CPU time is the "worker CPU"), then ``T <monotonic> <frames handled>`` every
``--interval`` s, and ``END <frames handled> [<kernel drops>]`` after SIGINT (drops:
PACKET_STATISTICS of pfrps's sockets or the dispatcher's; scapy reports none).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import signal
import socket
import struct
import sys
import threading
import time
from pfrps.cliutil import ArgumentParser

ETH_P_PPP_DISC = 0x8863
SOL_PACKET, PACKET_STATISTICS = 263, 6  # packet(7): struct tpacket_stats {tp_packets, tp_drops}


class BaselineContext:
    """The little of :class:`pfrps.worker.WorkerContext` the handlers use, for the baselines:
    ``count`` into a dict, ``transmit`` with one ``send``, ``storage``, ``loop`` (never run)."""

    def __init__(self, worker_id: int, worker_count: int, ifname: str) -> None:
        self.worker_id, self.worker_count = worker_id, worker_count
        self.storage: dict = {}
        self.counts: dict = {}
        self.log = logging.getLogger(f"baseline.w{worker_id}")
        self.loop = asyncio.new_event_loop()
        self.rx_ifindex = None
        self.ifindex = socket.if_nametoindex(ifname)
        self.ifindexes = (self.ifindex,)
        self._tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._tx.bind((ifname, 0))

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def transmit(self, frame, ifindex=None) -> bool:
        try:
            self._tx.send(frame, socket.MSG_DONTWAIT)
            return True
        except OSError:
            return False


def _handler(kind: str, workers: int, ifname: str):
    """``(handler, on_start, on_stop, app_counters, app_gauges)`` for handler ``kind``."""
    from . import handler_funcs as h  # noqa: PLC0415

    if kind == "noop":
        return h.handler_noop, None, None, (), ()
    if kind == "parse":
        return h.handler_parse_count, None, None, h.COUNTERS, ()
    from pfrps.ac.server import AC_COUNTERS, AC_GAUGES, AccessConcentrator, ACConfig  # noqa: PLC0415

    from .common import NODE_MAC  # noqa: PLC0415  (sysfs shows the host's links, not the namespace's)

    mac = bytes.fromhex(NODE_MAC.replace(":", ""))
    ac = AccessConcentrator(ACConfig(mac=mac, ac_name=b"bench", secret=b"k" * 32, echo_interval=0), workers)
    return ac.handle, ac.on_start, ac.on_stop, AC_COUNTERS, AC_GAUGES


_stop = threading.Event()


def _on_sigint(_signum, _frame) -> None:
    _stop.set()


def _ticker(total, interval: float) -> None:
    while not _stop.wait(interval):
        print(f"T {time.monotonic():.6f} {total()}", flush=True)


def serve_pfrps(args) -> None:
    from pfrps.config import SupervisorConfig  # noqa: PLC0415
    from pfrps.supervisor import Supervisor  # noqa: PLC0415

    handler, on_start, on_stop, counters, gauges = _handler(args.handler, args.workers, args.interface)
    cfg = SupervisorConfig(interface=args.interface, workers=args.workers, steering="fanout", rx="ring",
                           app_counters=counters, app_gauges=gauges, watchdog=0)
    sup = Supervisor(cfg, handler=handler, on_start=on_start, on_stop=on_stop)
    sup.start()
    try:
        print("READY " + ",".join(str(s.pid) for s in sup.slots), flush=True)
        sup.run(lambda: print(f"T {time.monotonic():.6f} {sup.total()}", flush=True), interval=args.interval)
        snap = sup.snapshot()
        print(f"END {sup.total()} {sum(snap['drops'])}", flush=True)
    finally:
        sup.close()


def _consumer(i: int, n: int, q, handled, handler_kind: str, ifname: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from pfrps.receive import FrameMeta  # noqa: PLC0415

    handler, on_start, on_stop, _c, _g = _handler(handler_kind, n, ifname)
    ctx = BaselineContext(i, n, ifname)
    if on_start is not None:
        on_start(ctx)
    ifindex = ctx.ifindex
    get = q.get
    k = 0
    while True:
        frame = get()
        if frame is None:
            break
        handler(frame, FrameMeta(ifindex, time.time(), len(frame)), ctx)
        k += 1
        if not k & 63:
            handled[i] = k
    handled[i] = k


def serve_queue(args) -> None:
    n = args.workers
    ctx = mp.get_context("fork")
    queues = [ctx.Queue() for _ in range(n)]
    handled = ctx.Array("Q", n, lock=False)
    procs = [ctx.Process(target=_consumer, args=(i, n, queues[i], handled, args.handler, args.interface), daemon=True)
             for i in range(n)]
    for p in procs:
        p.start()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_PPP_DISC))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((args.interface, ETH_P_PPP_DISC))
    sock.settimeout(args.interval)
    buf = bytearray(65536)
    view = memoryview(buf)
    puts = [q.put for q in queues]
    print("READY " + ",".join(str(x) for x in [os.getpid()] + [p.pid for p in procs]), flush=True)
    next_t = time.monotonic() + args.interval
    recv_into = sock.recv_into
    from_bytes = int.from_bytes
    while not _stop.is_set():
        try:
            k = recv_into(buf)
            frame = bytes(view[:k])
            puts[from_bytes(frame[6:12], "big") % n](frame)
        except socket.timeout:
            pass
        now = time.monotonic()
        if now >= next_t:
            print(f"T {now:.6f} {sum(handled)}", flush=True)
            next_t = now + args.interval
    _packets, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    for q in queues:
        q.put(None)
    for p in procs:
        p.join(10)
    print(f"END {sum(handled)} {drops}", flush=True)


def serve_scapy(args) -> None:
    from scapy.all import AsyncSniffer, conf  # noqa: PLC0415

    from pfrps.receive import FrameMeta  # noqa: PLC0415

    conf.verb = 0
    handler, on_start, _on_stop, _c, _g = _handler(args.handler, 1, args.interface)
    ctx = BaselineContext(0, 1, args.interface)
    if on_start is not None:
        on_start(ctx)
    ifindex = ctx.ifindex
    done = [0]

    def prn(pkt) -> None:
        frame = bytes(pkt)
        handler(frame, FrameMeta(ifindex, float(pkt.time), len(frame)), ctx)
        done[0] += 1

    started = threading.Event()
    sniffer = AsyncSniffer(iface=args.interface, prn=prn, store=False, started_callback=started.set)
    sniffer.start()
    if not started.wait(30):
        raise RuntimeError("scapy's sniffer did not start")
    print(f"READY {os.getpid()}", flush=True)
    _ticker(lambda: done[0], args.interval)
    sniffer.stop()
    print(f"END {done[0]}", flush=True)


def serve_tx(args) -> None:
    """Per-frame ``send`` vs ``SendBatch`` (sendmmsg), CPU time and wall time of each."""
    import json  # noqa: PLC0415

    from pfrps.txbatch import SendBatch  # noqa: PLC0415

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sock.bind((args.interface, 0))
    frame = bytes.fromhex("ffffffffffff 020000000001 8863 1109 0000 0004 01010000") + bytes(32)
    frames = [frame] * 1024
    out = {}
    batch = SendBatch()
    for name in ("send", "sendmmsg"):
        sent = failed = 0
        t0, c0 = time.monotonic(), time.process_time()
        for _ in range(args.frames // 1024):
            if name == "send":
                for f in frames:
                    try:
                        sock.send(f, socket.MSG_DONTWAIT)
                        sent += 1
                    except OSError:
                        failed += 1
            else:
                s, fl = batch.send(sock, frames)
                sent += s
                failed += fl
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        out[name] = {"sent": sent, "failed": failed, "seconds": wall, "cpu_seconds": cpu,
                     "rate": sent / wall, "per_cpu_second": sent / cpu if cpu else float("nan")}
    print(json.dumps(out), flush=True)


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m bench.handler_serve", description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=("pfrps", "queue", "scapy", "tx"), required=True)
    p.add_argument("--handler", choices=("noop", "parse", "ac"), default="noop")
    p.add_argument("-w", "--workers", type=int, default=1)
    p.add_argument("-i", "--interface", required=True)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--frames", type=int, default=200_000, help="tx: frames per method")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.kind != "pfrps":
        signal.signal(signal.SIGINT, _on_sigint)
        signal.signal(signal.SIGTERM, _on_sigint)
    {"pfrps": serve_pfrps, "queue": serve_queue, "scapy": serve_scapy, "tx": serve_tx}[args.kind](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
