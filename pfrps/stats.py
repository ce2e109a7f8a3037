"""Per-worker counters in shared memory, and the per-second stats line.

Counters are a ``(workers, columns)`` uint64 numpy array over an anonymous ``MAP_SHARED``
mmap made before the workers fork: each worker writes only its own row, the supervisor reads
every row, so no lock and no pipe is involved. Columns are :class:`Col` first, then any
application counters (``app_counters``) and gauges (``app_gauges``) an embedding program names.
A gauge (for example open sessions) goes up and down, is read as signed, and is zeroed by the
supervisor when it restarts that worker (the new worker starts with empty local state).
Histograms an application declares (``app_histograms``: name -> bucket bounds) live in a
sibling mapping, :class:`SharedHistograms` (``SharedCounters.histograms``): per worker, the
count of each bucket and the sum of the observed values (``ctx.observe``); like counters they
survive a worker restart.
"""

from __future__ import annotations

import bisect
import json
import math
import mmap
from enum import IntEnum
from typing import Mapping, Sequence

import numpy as np

__all__ = ["Col", "SharedCounters", "SharedHistograms", "format_line", "snapshot", "U64_MASK"]

#: Counters are uint64 words; a negative add (a gauge going down) wraps modulo 2**64.
U64_MASK = (1 << 64) - 1


class Col(IntEnum):
    """Built-in counter columns (units: frames unless named otherwise)."""

    FRAMES = 0          # frames the worker received
    BYTES = 1           # bytes of those frames, at their original length
    TRUNCATED = 2       # frames delivered shorter than they were on the wire
    KERNEL_DROPS = 3    # PACKET_STATISTICS tp_drops, accumulated by the supervisor
    FREEZES = 4         # TPACKET_V3 tp_freeze_q_cnt, accumulated by the supervisor
    RESTARTS = 5        # times the supervisor restarted this worker
    HANDLER_ERRORS = 6  # exceptions raised by the frame handler
    TX_FRAMES = 7       # frames the worker transmitted
    TX_ERRORS = 8       # transmit calls that failed
    KERNEL_PACKETS = 9  # PACKET_STATISTICS tp_packets (accepted by the filter)
    INTERRUPTED = 10    # frames whose handler call a worker death cut short (<= 1 per death; recv mode: heartbeat)
    SOCKET_ERRORS = 11  # errors the socket reported and the worker cleared (ENETDOWN: the link went down)
    HEARTBEAT = 12      # progress: +2 per socket read; recv mode +1 into, +1 out of the handler; see pfrps.watchdog
    RESYNC_SKIPPED = 13  # ring blocks the reader skipped because the kernel was ahead of its read position
    ASYNC_REFUSED = 14  # frames an async handler did not get: max_async_tasks tasks were already in flight


BUILTIN_COLUMNS = len(Col)


class SharedCounters:
    """A ``(workers, columns)`` uint64 array shared by the supervisor and its forked workers.

    Args:
        workers: number of rows (one per worker).
        app_counters: names of extra columns, after the :class:`Col` ones.
        app_gauges: names of gauge columns, after those.
        app_histograms: ``{name: bucket upper bounds}`` of per-worker histograms (see
            :class:`SharedHistograms`).

    Attributes:
        array: the ``(workers, columns)`` numpy view of the shared mapping.
        histograms: the :class:`SharedHistograms` (empty when none were declared).
    """

    def __init__(self, workers: int, app_counters: Sequence[str] = (), app_gauges: Sequence[str] = (),
                 app_histograms: Mapping[str, Sequence[float]] | None = None) -> None:
        self.app_counters = tuple(app_counters)
        self.app_gauges = tuple(app_gauges)
        self.columns = BUILTIN_COLUMNS + len(self.app_counters) + len(self.app_gauges)
        self.workers = workers
        size = max(workers * self.columns * 8, mmap.PAGESIZE)
        self._mm = mmap.mmap(-1, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.array = np.ndarray((workers, self.columns), dtype=np.uint64, buffer=self._mm)
        self._index = {name: BUILTIN_COLUMNS + i for i, name in enumerate(self.app_counters + self.app_gauges)}
        self._words = memoryview(self._mm).cast("Q")
        self.histograms = SharedHistograms(workers, app_histograms or {})

    def column(self, name: str | Col) -> int:
        """Column index of a :class:`Col` or of an application counter name.

        Raises:
            KeyError: unknown application counter.
        """
        if isinstance(name, Col):
            return int(name)
        return self._index[name]

    def add(self, worker_id: int, column: int, n: int) -> None:
        """Add ``n`` (negative allowed: uint64 wrap-around, read back signed for gauges): one
        aligned 8-byte store through a ``Q`` memoryview (no numpy scalar, no ``np.errstate``)."""
        w, i = self._words, worker_id * self.columns + column
        w[i] = (w[i] + n) & U64_MASK

    def word_index(self, worker_id: int, name: str | Col) -> int:
        """Index in :meth:`words` of worker ``worker_id``'s column ``name`` (resolve once, then
        write ``words[i]`` per event: the fast path of ``ctx.count`` and ``ctx.counter``).

        Raises:
            KeyError: unknown application counter.
        """
        return worker_id * self.columns + self.column(name)

    def reset_gauges(self, worker_id: int) -> None:
        """Zero worker ``worker_id``'s gauges (before a restarted worker starts afresh)."""
        for name in self.app_gauges:
            self.array[worker_id, self._index[name]] = 0

    def row(self, worker_id: int) -> np.ndarray:
        """Worker ``worker_id``'s row (a view: writes go to shared memory)."""
        return self.array[worker_id]

    def words(self) -> memoryview:
        """The whole array as a flat ``memoryview`` of uint64 (``Q``), index ``worker * columns +
        column``: one aligned 8-byte store per write, cheaper than a numpy scalar update (the
        worker's per-frame heartbeat, :mod:`pfrps.watchdog`)."""
        return memoryview(self._mm).cast("Q")

    def close(self) -> None:
        """Unmap (after every worker has exited)."""
        self.histograms.close()
        self.array = None  # type: ignore[assignment]
        self._words.release()
        try:
            self._mm.close()
        except BufferError:
            pass


def format_line(frames: np.ndarray, drops: np.ndarray | None = None, freezes: np.ndarray | None = None,
                truncated: np.ndarray | None = None, if_rx_dropped: int = 0,
                interrupted: np.ndarray | None = None, link: str | None = None, link_flaps: int = 0,
                resync_skipped: np.ndarray | None = None) -> str:
    """The seed's stats line, cumulative per worker, population standard deviation.

    ``#0:3165 #1:3155 ... (total:25000 std_dev:31.784430)``; then, only when non-zero,
    `` drops #2:5 (total:5)`` (kernel drops, PACKET_STATISTICS), `` freezes ...`` (TPACKET_V3
    ring freezes), `` truncated ...``, `` interrupted ...`` (frames whose handler a worker's
    death cut short), `` resync_skipped ...`` (ring blocks a reader skipped because the kernel
    was ahead of its read position) and `` if_rx_dropped:N`` (frames the interface dropped
    before any packet socket saw them, :func:`pfrps.links.rx_dropped`, since start), so that
    no lost or cut frame goes unreported. When the link is not up, or went down since start,
    `` link:down link_flaps:1`` (``link`` is the state, ``link_flaps`` the down transitions,
    :mod:`pfrps.linkwatch`).

    Args:
        frames: ``(N,)`` frames per worker.
        drops, freezes, truncated, interrupted, resync_skipped: ``(N,)`` per worker, or None.
        if_rx_dropped: frames, whole interface.
    """
    frames = np.asarray(frames, dtype=np.uint64)
    parts = [" ".join(f"#{i}:{int(c):04d}" for i, c in enumerate(frames))]
    std = float(np.std(frames.astype(np.float64))) if frames.size else 0.0
    parts.append(f"(total:{int(frames.sum())} std_dev:{std:.6f})")
    for name, arr in (("drops", drops), ("freezes", freezes), ("truncated", truncated),
                      ("interrupted", interrupted), ("resync_skipped", resync_skipped)):
        if arr is not None and np.any(arr):
            nz = " ".join(f"#{i}:{int(v)}" for i, v in enumerate(arr) if v)
            parts.append(f"{name} {nz} (total:{int(np.sum(arr))})")
    if if_rx_dropped:
        parts.append(f"if_rx_dropped:{int(if_rx_dropped)}")
    if link is not None and (link != "up" or link_flaps):
        parts.append(f"link:{link} link_flaps:{int(link_flaps)}")
    return " ".join(parts)


def snapshot(counters: SharedCounters, elapsed: float, if_rx_dropped: int = 0) -> dict:
    """A JSON-ready dict of every counter: the ``--json`` line.

    Keys: ``time`` (seconds since start), ``total`` (frames), ``std_dev``, ``if_rx_dropped``
    (frames the interface dropped before any packet socket, since start), and per-worker lists
    ``frames``, ``bytes``, ``truncated``, ``drops``, ``freezes``, ``restarts``,
    ``handler_errors``, ``tx_frames``, ``tx_errors``, ``interrupted`` (frames handed to a
    handler whose worker died before it returned), ``socket_errors`` (socket errors each
    worker cleared: one per link-down it saw), ``resync_skipped`` (ring blocks the reader
    skipped, the kernel being ahead of its read position: their frames were never handed out,
    and how many there were is unknowable once the kernel refilled the blocks; every block the
    kernel hands over holds at least one), ``async_refused`` (frames an async handler was not
    given because ``max_async_tasks`` of its tasks were in flight), plus one list per
    application counter and gauge (gauges signed).
    """
    arr = counters.array.copy()
    frames = arr[:, Col.FRAMES]
    out = {
        "time": round(elapsed, 3),
        "total": int(frames.sum()),
        "std_dev": round(float(np.std(frames.astype(np.float64))), 6),
        "if_rx_dropped": int(if_rx_dropped),
    }
    for col in Col:
        if col is Col.KERNEL_PACKETS or col is Col.HEARTBEAT:
            continue
        key = {"KERNEL_DROPS": "drops"}.get(col.name, col.name.lower())
        out[key] = arr[:, col].tolist()
    for name in counters.app_counters:
        out[name] = arr[:, counters.column(name)].tolist()
    for name in counters.app_gauges:
        out[name] = arr[:, counters.column(name)].view(np.int64).tolist()
    hist = counters.histograms
    for name in hist.names:
        out[f"{name}_count"] = hist.buckets_of(name).sum(axis=1).tolist()
        out[f"{name}_sum"] = [round(v, 6) for v in hist.sum_of(name).tolist()]
    return out


class SharedHistograms:
    """Per-worker histograms in shared memory, beside :class:`SharedCounters` (its ``histograms``).

    Each worker adds to its own row only (``observe``, from ``ctx.observe``), the supervisor
    reads every row (the metrics endpoint, :mod:`pfrps.metrics`), so no lock is involved, and
    a restarted worker goes on counting where its predecessor stopped.

    Args:
        workers: number of rows (one per worker).
        bounds: ``{name: upper bounds}``, each a non-empty, strictly increasing sequence of
            finite numbers (seconds for a latency); a value ``v`` falls in the first bucket whose
            bound is ``>= v``, or in the last one (``+Inf``) above every bound.

    Attributes:
        names: the histogram names, in declaration order.
        bounds: ``{name: tuple of bounds}``.
        counts: ``(workers, buckets)`` uint64: per histogram ``len(bounds) + 1`` bucket counts,
            not cumulative, the last for values above every bound.
        sums: ``(workers, len(names))`` float64: the sum of the values each worker observed.
    """

    def __init__(self, workers: int, bounds: Mapping[str, Sequence[float]]) -> None:
        self.names = tuple(bounds)
        self.bounds: dict[str, tuple[float, ...]] = {}
        self._slot: dict[str, tuple[int, int, tuple[float, ...]]] = {}
        start = 0
        for i, (name, raw) in enumerate(bounds.items()):
            bs = tuple(float(b) for b in raw)
            if not bs or not all(math.isfinite(b) for b in bs) or any(a >= b for a, b in zip(bs, bs[1:])):
                raise ValueError(f"histogram {name!r}: bucket bounds must be finite and strictly increasing "
                                 f"(at least one), not {list(raw)!r}")
            self.bounds[name] = bs
            self._slot[name] = (i, start, bs)
            start += len(bs) + 1
        self.workers = workers
        self.buckets = start
        size = max(workers * (self.buckets + len(self.names)) * 8, mmap.PAGESIZE)
        self._mm = mmap.mmap(-1, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.counts = np.ndarray((workers, self.buckets), dtype=np.uint64, buffer=self._mm)
        self.sums = np.ndarray((workers, len(self.names)), dtype=np.float64, buffer=self._mm,
                               offset=workers * self.buckets * 8)
        # The same memory as flat typed memoryviews: one 8-byte store per write in observe().
        self._cw = memoryview(self._mm).cast("Q")
        self._sw = memoryview(self._mm)[workers * self.buckets * 8:].cast("B").cast("d")

    def observe(self, worker_id: int, name: str, value: float) -> None:
        """Count ``value`` in worker ``worker_id``'s histogram ``name``.

        Raises:
            KeyError: no histogram of that name was declared.
            ValueError: ``value`` is NaN.
        """
        i, start, bs = self._slot[name]
        if value != value:
            raise ValueError(f"histogram {name!r}: cannot observe NaN")
        self._cw[worker_id * self.buckets + start + bisect.bisect_left(bs, value)] += 1
        self._sw[worker_id * len(self.names) + i] += value

    def buckets_of(self, name: str) -> np.ndarray:
        """``(workers, len(bounds) + 1)`` bucket counts of ``name`` (a view, not cumulative)."""
        _, start, bs = self._slot[name]
        return self.counts[:, start:start + len(bs) + 1]

    def sum_of(self, name: str) -> np.ndarray:
        """``(workers,)`` sums of the values observed in ``name`` (a view)."""
        return self.sums[:, self._slot[name][0]]

    def close(self) -> None:
        """Unmap (after every worker has exited)."""
        self.counts = self.sums = None  # type: ignore[assignment]
        self._cw.release()
        self._sw.release()
        try:
            self._mm.close()
        except BufferError:
            pass


def dumps(obj: dict) -> str:
    """One compact JSON line."""
    return json.dumps(obj, separators=(",", ":"))
