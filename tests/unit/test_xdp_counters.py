"""pfrps.xdp.counters: per-CPU sums, rates between snapshots, the seed's xdp_stats lines, JSON."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from pfrps.xdp.counters import (DATAREC_FIELDS, XDP_ACTIONS, CounterTable, Rates, Snapshot, format_lines,
                                percpu_reader, rates_json, sampler)


class _Datarec(ctypes.Structure):
    _fields_ = [("rx_packets", ctypes.c_uint64), ("rx_bytes", ctypes.c_uint64)]


class FakePercpu:
    """What bcc's PerCpuArray offers the reader: Key and getvalue(key) -> ctypes array per CPU."""

    Key = ctypes.c_int

    def __init__(self, values: np.ndarray) -> None:  # (keys, cpus, 2)
        self.values = values

    def getvalue(self, key):
        row = self.values[key.value]
        arr = (_Datarec * row.shape[0])()
        for cpu, (p, b) in enumerate(row):
            arr[cpu].rx_packets, arr[cpu].rx_bytes = int(p), int(b)
        return arr


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_percpu_reader_sums_every_cpu():
    vals = np.zeros((5, 3, 2), dtype=np.uint64)
    vals[2] = [[1, 100], [2, 200], [3, 300]]      # XDP_PASS on three CPUs
    vals[4] = [[10, 1000], [0, 0], [5, 500]]      # XDP_REDIRECT
    got = percpu_reader(FakePercpu(vals), 5)()
    assert got.dtype == np.uint64 and got.shape == (5, 2)
    assert got[2].tolist() == [6, 600]
    assert got[4].tolist() == [15, 1500]
    assert got[[0, 1, 3]].sum() == 0


def test_rates_between_snapshots():
    prev = Snapshot(10.0, np.array([[0, 0], [100, 15000]], dtype=np.uint64))
    cur = Snapshot(12.0, np.array([[4, 400], [300, 45000]], dtype=np.uint64))
    r = Rates.between(prev, cur)
    assert r.period == 2.0
    assert r.delta.tolist() == [[4, 400], [200, 30000]]
    assert r.per_second.tolist() == [[2.0, 200.0], [100.0, 15000.0]]
    assert r.total.tolist() == cur.values.tolist()


def test_zero_period_gives_zero_rates():
    s = Snapshot(5.0, np.array([[7, 70]], dtype=np.uint64))
    assert Rates.between(s, s).per_second.tolist() == [[0.0, 0.0]]


def test_counter_table_rates_follow_consecutive_reads():
    clock = FakeClock()
    state = {"v": np.zeros((5, 2), dtype=np.uint64)}
    table = CounterTable(lambda: state["v"], XDP_ACTIONS, clock=clock)
    table.start()
    clock.t += 2.0
    state["v"] = state["v"].copy()
    state["v"][4] = [1000, 1_500_000]
    r1 = table.rates()
    assert r1.period == 2.0 and r1.per_second[4].tolist() == [500.0, 750000.0]
    clock.t += 1.0
    r2 = table.rates()  # nothing new: rate 0, totals kept
    assert r2.per_second[4].tolist() == [0.0, 0.0] and r2.total[4].tolist() == [1000, 1_500_000]
    assert table.totals()["XDP_REDIRECT"] == {"rx_packets": 1000, "rx_bytes": 1_500_000}


def test_format_lines_are_the_seeds():
    total = np.zeros((5, 2), dtype=np.uint64)
    total[2] = [69, 12_345]
    total[4] = [1_234_567, 1_851_850_500]
    r = Rates(2.000254, total, total.astype(np.int64), total / 2.000254)
    lines = format_lines(XDP_ACTIONS, r)
    assert len(lines) == 5
    assert lines[0] == ("XDP_ABORTED            0 pkts (         0 pps)           0 Kbytes "
                        "(     0 Mbits/s) period:2.000254")
    assert lines[2] == ("XDP_PASS              69 pkts (        34 pps)          12 Kbytes "
                        "(     0 Mbits/s) period:2.000254")
    # 1,851,850,500 bytes in 2.000254 s = 7406.5 Mbit/s; 1,234,567 frames -> 617,205 pps
    assert lines[4] == ("XDP_REDIRECT   1,234,567 pkts (   617,205 pps)   1,851,850 Kbytes "
                        "( 7,406 Mbits/s) period:2.000254")


def test_rates_json_has_totals_and_rates():
    total = np.array([[0, 0], [0, 0], [10, 1000], [0, 0], [4, 600]], dtype=np.uint64)
    r = Rates(2.0, total, total.astype(np.int64), total / 2.0)
    d = rates_json(XDP_ACTIONS, r)
    assert d["period"] == 2.0
    assert d["XDP_PASS"] == {"rx_packets": 10, "rx_packets_per_s": 5.0, "rx_bytes": 1000, "rx_bytes_per_s": 500.0}
    assert d["XDP_REDIRECT"]["rx_packets"] == 4
    assert set(d) == {"period", *XDP_ACTIONS}


@pytest.mark.parametrize("json", [False, True])
def test_sampler_text_or_json(json):
    clock = FakeClock()
    state = {"v": np.zeros((2, 2), dtype=np.uint64)}
    table = CounterTable(lambda: state["v"], ("A", "B"), DATAREC_FIELDS, clock=clock)
    sample = sampler(table, json, extra=lambda: {"extra": 1})
    clock.t += 1.0
    state["v"] = np.array([[3, 300], [0, 0]], dtype=np.uint64)
    out = sample(1.0)
    if json:
        assert out["A"]["rx_packets"] == 3 and out["extra"] == 1
    else:
        assert len(out) == 2 and out[0].startswith("A                      3 pkts (         3 pps)")
