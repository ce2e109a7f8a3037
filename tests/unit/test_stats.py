"""The stats line (the seed's format plus loss counters) and the --json snapshot (pfrps.stats)."""

from __future__ import annotations

import numpy as np

from pfrps.ac.cli import format_line as ac_format_line
from pfrps.stats import Col, SharedCounters, format_line, snapshot

# The seed's last lines (004, bpf_pfpacket_rps output), verbatim.
SEED_LINES = {
    (232, 237, 262, 246, 230, 233, 236, 246):
        "#0:0232 #1:0237 #2:0262 #3:0246 #4:0230 #5:0233 #6:0236 #7:0246 (total:1922 std_dev:9.959292)",
    (3165, 3155, 3061, 3157, 3123, 3109, 3116, 3114):
        "#0:3165 #1:3155 #2:3061 #3:3157 #4:3123 #5:3109 #6:3116 #7:3114 (total:25000 std_dev:31.784430)",
}


def test_seed_lines():
    for counts, line in SEED_LINES.items():
        assert format_line(np.array(counts)) == line


def test_loss_counters_appear_only_when_non_zero():
    frames = np.array([10, 20, 30])
    zero = np.zeros(3, dtype=np.uint64)
    base = "#0:0010 #1:0020 #2:0030 (total:60 std_dev:8.164966)"
    assert format_line(frames, zero, zero, zero, 0) == base
    assert format_line(frames, np.array([0, 5, 0]), np.array([1, 0, 0]), np.array([0, 0, 2]), 37) == (
        base + " drops #1:5 (total:5) freezes #0:1 (total:1) truncated #2:2 (total:2) if_rx_dropped:37")
    assert format_line(frames, interrupted=np.array([1, 0, 2])) == base + " interrupted #0:1 #2:2 (total:3)"


def test_snapshot_keys_and_values():
    c = SharedCounters(2, app_counters=("padi",), app_gauges=("sessions",))
    try:
        c.array[0, Col.FRAMES] = 7
        c.array[1, Col.FRAMES] = 3
        c.array[1, Col.KERNEL_DROPS] = 4
        c.array[0, c.column("sessions")] = np.uint64(2**64 - 1)  # a gauge at -1
        snap = snapshot(c, 1.23456, if_rx_dropped=9)
    finally:
        c.close()
    assert snap["time"] == 1.235
    assert snap["total"] == 10 and snap["std_dev"] == 2.0
    assert snap["frames"] == [7, 3] and snap["drops"] == [0, 4]
    assert snap["if_rx_dropped"] == 9
    assert snap["padi"] == [0, 0] and snap["sessions"] == [-1, 0]
    assert "kernel_packets" not in snap


def test_ac_line_reports_interface_drops():
    snap = {"padi": [1], "pado": [1], "padr": [0], "pads": [0], "sessions": [0], "if_rx_dropped": 12}
    assert ac_format_line(snap) == "padi/pado/padr/pads/sessions #0:1/1/0/0/0 total:1/1/0/0/0 if_rx_dropped:12"
    assert ac_format_line(dict(snap, if_rx_dropped=0)).endswith("total:1/1/0/0/0")
