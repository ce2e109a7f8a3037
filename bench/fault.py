"""Fault injection: ring workers SIGKILLed at random points under load (issue 10, failure 5).

What runs and what is checked is :mod:`pfrps.testing.fault` (:func:`~pfrps.testing.fault.fault_run`).
The suite runs a short run (tests/root/test_fault_injection.py); ``python -m bench.fault`` runs the
long one and writes ``bench/results/fault.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pfrps.cliutil import ArgumentParser
from pfrps.testing.fault import fault_run
from pfrps.topology import TwoNodeTopology

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    """``python -m bench.fault``: the long run; prints the figures and writes bench/results/fault.json."""
    p = ArgumentParser(prog="python -m bench.fault", description=__doc__.splitlines()[0],
                                epilog="examples:\n  python -m bench.fault\n  python -m bench.fault --frames 200000 --kill-gap 0.01\n",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=1_000_000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--rate", type=int, default=50000, help="frames/s")
    p.add_argument("--kill-gap", type=float, default=0.02, help="mean seconds between kills")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fault.json")
    args = p.parse_args(argv)
    print(f"bench.fault: {args.frames} frames at {args.rate} frames/s to {args.workers} ring workers, "
          f"a SIGKILL every {args.kill_gap} s on average", flush=True)
    with TwoNodeTopology.unique(prefix="bench-fault") as topo:
        res = fault_run(topo, args.frames, args.workers, args.rate, args.kill_gap, args.seed, settle=60)
    res.pop("stderr_tail", None)
    res["machine"] = "2 CPUs, shared with other engineers' runs"
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res), flush=True)
    return 0 if res["duplicates"] == 0 and res["unexplained"] == 0 and res["foreign"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
