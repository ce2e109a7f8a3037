"""Micro-benchmark of the per-frame handler path, no root and no kernel: a hand-built
TPACKET_V3 ring (4 blocks of 256 KiB, the 148-byte seed frame, 1,129 frames a block) read by
:class:`pfrps.receive.RingReceiver` over and over, each round handing the blocks back as
"user-owned" with the next sequence numbers, the way the kernel would.

Figures (ns of thread CPU time per frame, best of ``reps`` repetitions of ``rounds`` ring passes):

- ``count_only``: ``poll(None)``, the counting path (no handler);
- ``deliver_noop``: ``poll(on_frame)`` with an ``on_frame`` that does nothing;
- ``worker_noop``: the worker's dispatch (its exception guard, the ``ctx`` argument) around a
  no-op handler; ``worker_parse_count``: around the Ethernet + PPPoE parse-and-count handler
  of :mod:`bench.handler` (handler (b));
- ``ctx_count``, ``ctx_gauge_dec``, ``ctx_counter``, ``ctx_observe``: one call each, ns.

Run ``python -m bench.handler_micro [--json]``; with ``PYTHONPATH`` pointing at an older
checkout it measures that one (the figures "before" in bench/RESULTS.md), which is why it
only uses calls every version has and probes for the newer ones.
"""

from __future__ import annotations

import asyncio
import json
import mmap
import struct
import sys
import time
from pfrps.cliutil import ArgumentParser

FRAME = bytes.fromhex("525400 84d7ff 020000000001 8863 1100cafe0080") + b"\xff" * 128
MACOFF = 82
BLOCK = 256 << 10
BLOCKS = 4
_BD = struct.Struct("=IIIIII Q")
_H3 = struct.Struct("=IIIIII HH IIHH")
USER, KERNEL = 1, 0


class _Sock:
    def fileno(self) -> int:
        return -1


def _fake_ring():
    from pfrps.receive import RxRing, position  # noqa: PLC0415

    ring = RxRing.__new__(RxRing)
    ring.sock = _Sock()
    ring.block_size, ring.blocks, ring.frame_size, ring.retire_ms = BLOCK, BLOCKS, 2048, 10
    ring.size = BLOCK * BLOCKS
    ring._mm = mmap.mmap(-1, ring.size)
    ring._state_mm = mmap.mmap(-1, mmap.PAGESIZE)
    ring.set_position(position(1))
    total = (MACOFF + len(FRAME) + 7) & ~7
    per_block = (BLOCK - 48) // total
    for b in range(BLOCKS):
        base = b * BLOCK
        off = 48
        for i in range(per_block):
            nxt = total if i < per_block - 1 else 0
            _H3.pack_into(ring._mm, base + off, nxt, 1_700_000_000, 250_000_000, len(FRAME), len(FRAME), 0,
                          MACOFF, MACOFF + 14, 0, 0, 0, 0)
            ring._mm[base + off + MACOFF:base + off + MACOFF + len(FRAME)] = FRAME
            off += total
        _BD.pack_into(ring._mm, base, 2, 48, KERNEL, per_block, 48, off, b + 1)
    return ring, per_block


def _hand_over(ring, rnd: int) -> None:
    """Give every block to "user space" with the sequence numbers of round ``rnd``."""
    for b in range(BLOCKS):
        base = b * BLOCK
        struct.pack_into("=I", ring._mm, base + 8, USER)
        struct.pack_into("=Q", ring._mm, base + 24, rnd * BLOCKS + b + 1)


def _time_poll(rcv, ring, on_frame, rounds: int, reps: int, per_round: int, state: list) -> float:
    best = float("inf")
    for _ in range(reps):
        t = 0
        for _ in range(rounds):
            _hand_over(ring, state[0])
            state[0] += 1
            t0 = time.thread_time_ns()
            got = 0
            while got < per_round:
                n = rcv.poll(on_frame, 7, 1 << 20)[0]
                if not n:
                    raise RuntimeError("the fake ring ran dry")
                got += n
            t += time.thread_time_ns() - t0
        best = min(best, t / (rounds * per_round))
    return best


def _time_call(fn, n: int, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.thread_time_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.thread_time_ns() - t0) / n)
    base = float("inf")
    noop = (lambda: None)
    for _ in range(reps):
        t0 = time.thread_time_ns()
        for _ in range(n):
            noop()
        base = min(base, (time.thread_time_ns() - t0) / n)
    return best - base


def _context(counters):
    """A WorkerContext for worker 0 of ``counters``, whatever its constructor looks like."""
    import socket  # noqa: PLC0415

    from pfrps import worker  # noqa: PLC0415

    loop = asyncio.new_event_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    for args in ((0, 1, 7, sock, counters, loop), ):
        try:
            return worker.WorkerContext(*args)
        except TypeError:
            continue
    ctx = worker.WorkerContext.__new__(worker.WorkerContext)
    ctx.worker_id, ctx.worker_count, ctx.ifindex, ctx.loop = 0, 1, 7, loop
    ctx._row, ctx._counters, ctx._sock, ctx.storage = counters.row(0), counters, sock, {}
    return ctx


def _dispatch(handler, ctx, row):
    """The worker's per-frame callable: the new one when this checkout has it, else a copy of
    the old closure (is_async test, try/except, handler(frame, meta, ctx))."""
    from pfrps import worker  # noqa: PLC0415

    make = getattr(worker, "frame_dispatcher", None)
    if make is not None:
        return make(handler, ctx, row)
    from pfrps.stats import Col  # noqa: PLC0415

    is_async = False

    def on_frame(frame, meta):
        try:
            if is_async:
                pass
            else:
                handler(frame, meta, ctx)
        except Exception:  # noqa: BLE001
            row[Col.HANDLER_ERRORS] += 1
    return on_frame


def run(rounds: int = 20, reps: int = 5) -> dict:
    from pfrps.receive import RingReceiver  # noqa: PLC0415
    from pfrps.stats import SharedCounters  # noqa: PLC0415

    from .handler_funcs import COUNTERS, handler_noop, handler_parse_count  # noqa: PLC0415

    ring, per_block = _fake_ring()
    per_round = per_block * BLOCKS
    rcv = RingReceiver(ring)
    state = [0]
    counters = SharedCounters(1, COUNTERS + ("hits",), ("open",), {"lat": (0.001, 0.01, 0.1)}
                              ) if "app_histograms" in SharedCounters.__init__.__code__.co_varnames else \
        SharedCounters(1, COUNTERS + ("hits",), ("open",))
    ctx = _context(counters)
    row = counters.row(0)
    out = {"frames_per_round": per_round}
    out["count_only"] = _time_poll(rcv, ring, None, rounds, reps, per_round, state)
    out["deliver_noop"] = _time_poll(rcv, ring, lambda f, m: None, rounds, reps, per_round, state)
    out["worker_noop"] = _time_poll(rcv, ring, _dispatch(handler_noop, ctx, row), rounds, reps, per_round, state)
    out["worker_parse_count"] = _time_poll(rcv, ring, _dispatch(handler_parse_count, ctx, row), rounds, reps,
                                           per_round, state)
    n = 200_000
    out["ctx_count"] = _time_call(lambda: ctx.count("hits"), n, reps)
    out["ctx_gauge_dec"] = _time_call(lambda: ctx.count("open", -1), n, reps)
    if hasattr(ctx, "counter"):
        inc = ctx.counter("hits")
        out["ctx_counter"] = _time_call(inc, n, reps)
    if hasattr(ctx, "observe") and getattr(counters, "histograms", None) is not None:
        out["ctx_observe"] = _time_call(lambda: ctx.observe("lat", 0.005), n, reps)
    rcv.close()
    ring.close()
    return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in out.items()}


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m bench.handler_micro",
                                description="ns per frame of the handler path on a hand-built ring (no root)")
    p.add_argument("--rounds", type=int, default=20, help="ring passes per repetition (default 20)")
    p.add_argument("--reps", type=int, default=5, help="repetitions; the best is kept (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.reps < 1:
        print("python -m bench.handler_micro: error: --rounds and --reps must be at least 1", file=sys.stderr)
        return 2
    res = run(args.rounds, args.reps)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:22s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
