"""Wake-ups and CPU per wake-up of ring receivers vs netsniff-ng (the table in bench/PROFILE.md, section 2).

``python -m bench.profile_wakeups [--frames N]``: trafgen (CPU 0) offers N frames to each
receiver (CPU 1) in a private two-node topology, and the script prints, per receiver, the
offered frames/s, the receiver's CPU share, its wake-ups/s (voluntary + involuntary context
switches of every thread, from /proc/PID/task/*/status), frames and CPU time per wake-up, and
frames per CPU-second. A profiling aid, not part of ``./run bench``'s targets.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional, Sequence

from pfrps.topology import TwoNodeTopology, netns_pids

from . import common
from pfrps.cliutil import ArgumentParser

RECEIVERS = [
    ("ring N=1 (64 x 64 KiB)", ["-w", "1", "--ring-block-size", "65536", "--ring-blocks", "64"]),
    ("ring N=8 (64 x 64 KiB)", ["-w", "8", "--ring-block-size", "65536", "--ring-blocks", "64"]),
    ("ring N=8 (default)", ["-w", "8"]),
    ("netsniff-ng", None),
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = ArgumentParser(prog="python -m bench.profile_wakeups", description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2_000_000, help="frames trafgen offers per receiver")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pfrps-wakeups-") as tmp, TwoNodeTopology.unique(prefix="bench-wakeups") as topo:
        cfg = common.trafgen_cfg_path(Path(tmp))
        for label, pf_args in RECEIVERS:
            if pf_args is None:
                proc = common.NetsniffProc(topo)
            else:
                proc = common.PfrpsProc(topo, [*pf_args, "--steering", "fanout", "--rx", "ring", "--interval", "0.1"])
            try:
                pids = netns_pids(topo.node)
                c0, w0 = common.cpu_ns(pids), common.context_switches(pids)
                sent = common.run_trafgen(topo, cfg, args.frames)
                c1, w1 = common.cpu_ns(pids), common.context_switches(pids)
            finally:
                proc.stop()
            cpu = (c1 - c0) / 1e9
            wakeups = max(w1 - w0, 1)
            print(f"{label:24s} offered {sent.rate:9,.0f} frames/s  cpu {cpu / sent.seconds:5.1%}  "
                  f"wake-ups/s {wakeups / sent.seconds:7,.0f}  frames/wake-up {sent.frames / wakeups:6.0f}  "
                  f"cpu/wake-up {cpu / wakeups * 1e6:5.0f} us  frames/CPU-s {sent.frames / cpu:,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
