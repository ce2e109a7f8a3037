"""Counters of the XDP and TC programs: the seed's ``xdp_stats``, and a reusable rate helper.

Every pfrps-xdp program counts its verdicts in ``xdp_stats_map`` (``bpf/xdp_stats.h``): a
PERCPU_ARRAY keyed by XDP action whose values are the seed's ``struct datarec { __u64
rx_packets; __u64 rx_bytes; }``. User space reads every CPU's copy and sums them with numpy
(:func:`percpu_reader`), keeps timestamped :class:`Snapshot` s, and turns two of them into
:class:`Rates` (frames/s, Mbit/s over the period), printed as the seed's lines
(:func:`format_lines`) or as a JSON dict (:func:`rates_json`). Other counter tables (the load
balancer's per-backend counters) reuse :class:`CounterTable` with their own labels.

Source: case04 ``xdp_stats`` (seed ``001``), which prints, per action::

    XDP_REDIRECT          10 pkts (         5 pps)           0 Kbytes (     0 Mbits/s) period:2.000183
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "XDP_ACTIONS", "TC_VERDICTS", "DATAREC_FIELDS", "Snapshot", "Rates", "CounterTable",
    "percpu_reader", "format_lines", "rates_json", "sampler",
]

#: ``enum xdp_action`` (uapi/linux/bpf.h), the keys of ``xdp_stats_map``.
XDP_ACTIONS = ("XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT")
#: The same five slots as the TC programs use them (``TC_ACT_OK`` 0, ``TC_ACT_SHOT`` 2; pfrps's
#: broadcast program counts its clones under slot 4, like XDP_REDIRECT).
TC_VERDICTS = ("TC_ACT_OK", "TC_ACT_RECLASSIFY", "TC_ACT_SHOT", "TC_ACT_PIPE", "TC_CLONED")
#: Fields of ``struct datarec`` (bpf/xdp_stats.h), in order, all ``__u64``.
DATAREC_FIELDS = ("rx_packets", "rx_bytes")


@dataclass(frozen=True)
class Snapshot:
    """Counters at one moment.

    Attributes:
        time: ``time.monotonic()`` seconds when read.
        values: ``(keys, fields)`` uint64 array, summed over CPUs (frames, bytes, ...).
    """

    time: float
    values: np.ndarray


@dataclass(frozen=True)
class Rates:
    """What changed between two snapshots of one table.

    Attributes:
        period: seconds between them (the seed's ``period``).
        total: ``(keys, fields)`` cumulative values of the later snapshot.
        delta: ``(keys, fields)`` increase over the period.
        per_second: ``(keys, fields)`` float64, ``delta / period`` (frames/s, bytes/s).
    """

    period: float
    total: np.ndarray
    delta: np.ndarray
    per_second: np.ndarray

    @classmethod
    def between(cls, prev: Snapshot, cur: Snapshot) -> "Rates":
        """Rates from ``prev`` to ``cur`` (a zero period gives rates of 0, not a division error)."""
        period = max(cur.time - prev.time, 0.0)
        delta = cur.values.astype(np.int64) - prev.values.astype(np.int64)
        per_second = delta / period if period > 0 else np.zeros(delta.shape)
        return cls(period, cur.values.copy(), delta, per_second)


def percpu_reader(table, nkeys: int, nfields: int = len(DATAREC_FIELDS)) -> Callable[[], np.ndarray]:
    """A reader of a bcc PERCPU_ARRAY whose values are ``nfields`` ``__u64`` (``struct datarec``).

    Args:
        table: bcc's ``PerCpuArray`` (``BPF(...)["xdp_stats_map"]``).
        nkeys: keys 0..nkeys-1 to read.
        nfields: ``__u64`` fields per value.

    Returns:
        A function returning a ``(nkeys, nfields)`` uint64 array: every possible CPU's copy
        summed (numpy, no Python loop over CPUs).
    """
    def read() -> np.ndarray:
        out = np.zeros((nkeys, nfields), dtype=np.uint64)
        for k in range(nkeys):
            raw = bytes(table.getvalue(table.Key(k)))
            out[k] = np.frombuffer(raw, dtype=np.uint64).reshape(-1, nfields).sum(axis=0)
        return out
    return read


class CounterTable:
    """A counter table with labelled rows: snapshots and rates between consecutive reads.

    Args:
        read: returns the current ``(len(labels), len(fields))`` array (e.g. :func:`percpu_reader`).
        labels: one name per row (``XDP_ACTIONS``, backend addresses, ...).
        fields: one name per column (``DATAREC_FIELDS``).
        clock: seconds, monotonic (tests pass a fake).
    """

    def __init__(self, read: Callable[[], np.ndarray], labels: Sequence[str],
                 fields: Sequence[str] = DATAREC_FIELDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.read = read
        self.labels = tuple(labels)
        self.fields = tuple(fields)
        self.clock = clock
        self._prev: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        """Read the table now."""
        values = np.asarray(self.read(), dtype=np.uint64).reshape(len(self.labels), len(self.fields))
        return Snapshot(self.clock(), values)

    def start(self) -> Snapshot:
        """Take the reference snapshot the first :meth:`rates` is measured from."""
        self._prev = self.snapshot()
        return self._prev

    def rates(self) -> Rates:
        """Rates since the previous call (or :meth:`start`); the new snapshot becomes the reference."""
        cur = self.snapshot()
        prev = self._prev if self._prev is not None else Snapshot(cur.time, np.zeros_like(cur.values))
        self._prev = cur
        return Rates.between(prev, cur)

    def totals(self) -> dict[str, dict[str, int]]:
        """``{label: {field: cumulative value}}`` read now."""
        snap = self.snapshot()
        return {lab: {f: int(v) for f, v in zip(self.fields, row)} for lab, row in zip(self.labels, snap.values)}


def format_lines(labels: Sequence[str], rates: Rates) -> list[str]:
    """The seed's ``xdp_stats`` lines, one per label: cumulative packets, pps over the period,
    cumulative Kbytes (1000 bytes), Mbit/s over the period, and the period in seconds.

    ``rates`` must have the ``(rx_packets, rx_bytes)`` columns of ``struct datarec``.
    """
    lines = []
    for i, label in enumerate(labels):
        pkts, nbytes = (int(v) for v in rates.total[i, :2])
        pps, bps = (float(v) for v in rates.per_second[i, :2])
        lines.append(f"{label:<12} {pkts:>11,} pkts ({pps:>10,.0f} pps) {nbytes // 1000:>11,} Kbytes "
                     f"({bps * 8 / 1e6:>6,.0f} Mbits/s) period:{rates.period:f}")
    return lines


def rates_json(labels: Sequence[str], rates: Rates, fields: Sequence[str] = DATAREC_FIELDS) -> dict:
    """The same as :func:`format_lines`, as a dict: ``{"period": s, label: {field: total,
    field + "_per_s": rate}}`` (frames, bytes; frames/s, bytes/s)."""
    out: dict = {"period": round(rates.period, 6)}
    for i, label in enumerate(labels):
        row = {}
        for j, f in enumerate(fields):
            row[f] = int(rates.total[i, j])
            row[f"{f}_per_s"] = round(float(rates.per_second[i, j]), 3)
        out[label] = row
    return out


def sampler(table: CounterTable, json: bool, extra: Callable[[], dict] | None = None) -> Callable[[float], list[str] | dict]:
    """A ``sample(elapsed)`` for :func:`pfrps.xdp.runner.run_foreground`: the rates since the
    previous sample, as the seed's lines, or (``json``) as :func:`rates_json`'s dict merged
    with ``extra()`` (more counters). Takes the reference snapshot now."""
    table.start()

    def sample(_elapsed: float) -> list[str] | dict:
        rates = table.rates()
        if json:
            return {**rates_json(table.labels, rates, table.fields), **(extra() if extra else {})}
        return format_lines(table.labels, rates)
    return sample
