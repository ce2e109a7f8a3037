"""``python -m bench [--quick] [--only NAME]...``: run the suite, write results, print PASS/FAIL."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pfrps.cliutil import ArgumentParser

from . import (balance, bng, bng_aaa, common, handler, injector, metrics, receive, report, startup, steering,
               xdp_broadcast, xdp_l2fwd, xdp_l3fwd, xdp_lb)

BENCHMARKS = {m.NAME: m for m in (steering, receive, handler, injector, startup, balance, metrics, xdp_lb, xdp_l2fwd,
                                   xdp_l3fwd, xdp_broadcast, bng, bng_aaa)}
#: run order: cheap and namespace-free first
RUN_ORDER = ("balance", "metrics", "startup", "inject", "steering", "receive", "handler", "xdp_lb", "xdp_l2fwd",
             "xdp_l3fwd", "xdp_broadcast", "bng", "bng_aaa")


@dataclass
class Context:
    quick: bool
    reps: Optional[int]
    out_dir: Path
    work_dir: Path
    caps: dict
    cpus: int


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m bench", description=(
        "Run the pfrps benchmark suite in private network namespaces; write bench/results/*.json, "
        "PNG plots and bench/RESULTS.md, and print PASS/FAIL per target."))
    p.add_argument("--quick", action="store_true",
                   help="smoke run (~3 min): fewer worker counts, smaller bursts, one run per figure; "
                        "writes to bench/results/tmp/quick/ and leaves bench/RESULTS.md alone")
    p.add_argument("--only", action="append", choices=list(BENCHMARKS), metavar="NAME",
                   help=f"run only this benchmark (repeatable): {', '.join(RUN_ORDER)}")
    p.add_argument("--reps", type=int, metavar="R", help="runs per figure (default: 3-7 full, 1 quick)")
    p.add_argument("--out", type=Path, metavar="DIR", help="results directory (default: bench/results)")
    p.add_argument("--report-only", action="store_true", help="only regenerate RESULTS.md from the JSON files")
    return p


_MAIN_PID = os.getpid()


def _on_term(signum, _frame):
    if os.getpid() != _MAIN_PID:  # a forked helper (pyroute2's netns code forks): just die
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.reps is not None and args.reps < 1:
        print("python -m bench: error: --reps must be at least 1", file=sys.stderr)
        return 2
    out_dir = args.out or (common.BENCH_DIR / "results" / "tmp" / "quick" if args.quick
                           else common.BENCH_DIR / "results")
    out_dir = out_dir.resolve()
    md_path = out_dir / "RESULTS.md" if (args.quick or args.out) else common.BENCH_DIR / "RESULTS.md"
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        for res in report.load_results(out_dir):  # redraw the plots from the saved data
            try:
                BENCHMARKS[res["name"]]._plot(out_dir / f"{res['name']}.png", res["data"])
            except Exception as exc:  # noqa: BLE001
                common.log(f"{res['name']}: cannot redraw the plot: {exc!r}")
        report.render(report.load_results(out_dir), md_path, out_dir)
        print(f"bench: wrote {md_path}")
        return 0
    if os.geteuid() != 0:
        print("python -m bench: error: must run as root (network namespaces, BPF); use sudo ./run bench",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_term)
    names = [n for n in RUN_ORDER if not args.only or n in args.only]
    caps = {"pfrps_ring": common.pfrps_has_ring(), "pfinject_tx": common.pfinject_tx_modes()}
    machine = common.machine_info()
    common.log(f"machine: Linux {machine['kernel']}, {machine['cpus']} CPUs ({machine['cpu_model']}); "
               f"pfrps --rx ring {'available' if caps['pfrps_ring'] else 'NOT available'}; "
               f"pfinject --tx ring {'available' if caps['pfinject_tx']['tx_ring'] else 'NOT available'}")
    ctx = Context(args.quick, args.reps, out_dir, common.BENCH_DIR / "results" / "tmp", caps, os.cpu_count() or 1)
    broken: list[str] = []
    verdicts: list[tuple[str, dict]] = []
    t_suite = time.monotonic()
    try:
        for name in names:
            mod = BENCHMARKS[name]
            common.log(f"--- {name}: {mod.TITLE}")
            t0 = time.monotonic()
            load0 = os.getloadavg()[0]
            try:
                res = mod.run(ctx)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001  (a broken harness step: report, go on)
                traceback.print_exc()
                common.log(f"{name}: HARNESS ERROR: {exc}")
                broken.append(name)
                continue
            res.update({"machine": machine, "quick": args.quick, "seconds": time.monotonic() - t0,
                        "finished": time.strftime("%Y-%m-%d %H:%M"), "caps": caps,
                        "loadavg": [round(load0, 2), round(os.getloadavg()[0], 2)]})
            res["rows"] = [r.to_json() for r in res["rows"]]
            common.write_json(out_dir / f"{name}.json", res)
            for row in res["rows"]:
                if row["passed"] is not None:
                    verdicts.append((name, row))
                    _print_verdict(name, row)
            common.log(f"{name}: done in {time.monotonic() - t0:.0f} s")
    except KeyboardInterrupt:
        common.log("interrupted; namespaces and processes were cleaned up")
        return 130
    finally:
        leftovers = common.leftover_namespaces()
        if leftovers:
            common.log(f"WARNING: namespaces left behind: {leftovers}")
            broken.append("cleanup")
    report.render(report.load_results(out_dir), md_path, out_dir)
    print(f"\nbench: {len(names)} benchmark(s) in {time.monotonic() - t_suite:.0f} s; results in {out_dir}, "
          f"table in {md_path}")
    for name, row in verdicts:
        _print_verdict(name, row)
    failed = [r for _, r in verdicts if not r["passed"]]
    print(f"bench: {len(verdicts) - len(failed)} of {len(verdicts)} targets PASS"
          + (f", {len(failed)} FAIL" if failed else ""))
    if broken:
        print(f"bench: harness errors in: {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0


def _print_verdict(name: str, row: dict) -> None:
    ratio = row.get("ratio")
    rtxt = f", {ratio:.2f}x {row['ref_label']}" if ratio is not None and ratio == ratio else ""
    unit = row["unit"]
    print(f"{'PASS' if row['passed'] else 'FAIL'} {name}: {row['label'].removeprefix('target: ')}: "
          f"{report.fmt(row['value']['median'], unit)} {unit}{rtxt} (target {row['target']})"
          + (f" [{row['note']}]" if row.get("note") else ""), flush=True)
