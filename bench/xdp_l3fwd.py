"""Benchmark: case04 XDP forwarding (seed 001) vs the router namespace's kernel forwarding.

Topology: ``pfrps-xdp lab case04``'s (:class:`pfrps.xdp.l3fwd.Case04Lab`): ``uno`` and ``dos``
joined through a ``router`` namespace, static neighbours. trafgen in ``uno``, pinned to one
CPU, sends 60-byte UDP datagrams (64 source ports) to 10.0.1.2 as fast as it can; the figure
is the frames ``dos/veth0`` received (``rx_packets``) per second of sending. Every
configuration runs on the same topology and the same sender, interleaved per repetition:

* ``kernel``: the router's own IPv4 forwarding, no XDP on the router (the reference);
* ``fib``: ``pfrps-xdp l3fwd --mode fib`` native, forwarding on (the kernel forwards nothing:
  neighbours are resolved); ``fib-generic``: the same in generic mode;
* ``map``: ``--mode map`` native (one MAC pair), the price of the FIB lookup by comparison.

``dos/veth0`` carries ``pfrps-xdp pass`` in every configuration (native redirects into a veth
need it; the kernel path is measured with it too, so the receive side is the same). Goal
(issue 7): fib native >= 2x kernel forwarding. The machine's 2 CPUs run the sender, both
softirq paths and other engineers' work: ratios are from one run.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from pfrps.xdp.l3fwd import Case04Lab

from . import common
from .common import HarnessError, Row, summary

NAME = "xdp_l3fwd"
TITLE = "XDP layer-3 forwarding (case04) vs kernel forwarding"
GOAL = 2.0
CONFIGS = ("kernel", "fib", "fib-generic", "map")

TRAFGEN_UDP = """\
{{
  eth(da={da}, sa={sa}, type=0x0800),
  ipv4(saddr={src}, daddr={dst}, ttl=64),
  udp(sport=dinc(40000, 40063), dport=9),
  fill(0x41, 18)
}}
"""
_TRAFGEN_CPU_RE = re.compile(r"(\d+) sec, (\d+) usec on CPU(\d+) \((\d+) packets\)")


def send(lab, ns: str, ifname: str, cfg: Path, count: int) -> float:
    """trafgen ``count`` frames of ``cfg`` out of ``ns/ifname``, pinned to the sender CPU; its
    sending time in seconds (from its per-CPU report).

    Raises:
        HarnessError: trafgen failed or printed no report.
    """
    argv = common.pinned(common.SENDER_CPU, ["trafgen", "-o", ifname, "-i", str(cfg), "-n", str(count), "-P", "1"])
    res = lab.run(ns, argv, timeout=300)
    per_cpu = _TRAFGEN_CPU_RE.findall(res.stdout)
    if res.returncode != 0 or not per_cpu:
        raise HarnessError(f"trafgen failed ({res.returncode}): {res.stdout[-300:]} {res.stderr[-300:]}")
    return max(int(p[0]) + int(p[1]) / 1e6 for p in per_cpu)


def settled_rx(lab, ns: str, ifname: str, timeout: float = 5.0) -> int:
    """rx_packets of ``ns/ifname`` once two reads 50 ms apart agree (frames still in a backlog
    are counted; a condition, not a fixed wait)."""
    last = lab.rx_packets(ns, ifname)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        cur = lab.rx_packets(ns, ifname)
        if cur == last:
            return cur
        last = cur
    return last


def delivered_rate(lab, sender: tuple[str, str], receiver: tuple[str, str], cfg: Path, count: int) -> dict:
    """Send ``count`` frames from ``sender`` (ns, ifname); frames/s reaching ``receiver``."""
    before = settled_rx(lab, *receiver)
    secs = send(lab, *sender, cfg, count)
    got = settled_rx(lab, *receiver) - before
    return {"sent": count, "reached": got, "seconds": secs, "fps": got / secs if secs else float("nan")}


def interleaved(configs, reps: int):
    """``(rep, config)`` for ``reps`` rounds over ``configs``, every other round reversed, so
    each configuration runs as often early and late in a round (a drifting load hits all alike)."""
    for rep in range(reps):
        for config in (configs if rep % 2 == 0 else tuple(reversed(configs))):
            yield rep, config


def paired_ratios(runs: dict[str, list[dict]], a: str, b: str) -> list[float]:
    """``a``'s frames/s over ``b``'s, per repetition (the two ran back to back, under the same load)."""
    return [round(common.ratio(x["fps"], y["fps"]), 2) for x, y in zip(runs[a], runs[b])]


def _attach(lab: Case04Lab, config: str) -> list:
    rt = lab.ns("router")
    if config == "kernel":
        return []
    if config == "map":
        return [lab.start_xdp(rt, "l3fwd", "--mode", "map", "-i", "uno", "-r", "dos", "--src-mac", lab.macs["uno"],
                              "--dest-mac", lab.macs["dos"])]
    gen = ["--generic"] if config == "fib-generic" else []
    return [lab.start_xdp(rt, "l3fwd", "--mode", "fib", "-i", "uno", "-i", "dos", *gen)]


def run(ctx) -> dict:
    reps = max(ctx.reps or (1 if ctx.quick else 5), 1)
    count = 200_000 if ctx.quick else 500_000
    runs: dict[str, list[dict]] = {c: [] for c in CONFIGS}
    lab = Case04Lab(prefix="bn7", out=open("/dev/null", "w"))
    try:
        lab.build(argparse.Namespace(mode="fib"))
        cfg = ctx.work_dir / "xdp_l3fwd_udp.trafgen"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(TRAFGEN_UDP.format(da=lab.macs["rt-uno"], sa=lab.macs["uno"], src="10.0.0.2", dst="10.0.1.2"))
        peer = lab.start_xdp(lab.ns("dos"), "pass", "-i", "veth0")
        for rep, config in interleaved(CONFIGS, reps):
            procs = _attach(lab, config)
            try:
                r = delivered_rate(lab, (lab.ns("uno"), "veth0"), (lab.ns("dos"), "veth0"), cfg, count)
            finally:
                for p in procs:
                    lab.stop_xdp(p)
            common.log(f"{NAME}: rep {rep + 1}/{reps} {config:11s}: {r['reached']:,}/{r['sent']:,} frames "
                       f"reached dos, {r['fps']:,.0f} frames/s")
            runs[config].append(r)
        lab.stop_xdp(peer)
    finally:
        lab.destroy()
    fps = {c: summary([r["fps"] for r in rs]) for c, rs in runs.items()}
    ratio = common.ratio(fps["fib"]["median"], fps["kernel"]["median"])
    shared = "machine shared with other engineers' runs"
    paired = paired_ratios(runs, "fib", "kernel")
    rows = [
        Row("target: fib mode (native) vs the router's kernel forwarding", "frames/s", fps["fib"],
            "kernel forwarding", fps["kernel"], f">= {GOAL:g}x kernel forwarding", bool(ratio >= GOAL),
            f"{shared}; per-repetition ratios {paired}"),
        Row("fib mode, generic XDP", "frames/s", fps["fib-generic"], "kernel forwarding", fps["kernel"], "", None,
            f"per-repetition ratios {paired_ratios(runs, 'fib-generic', 'kernel')}"),
        Row("map mode (native) vs fib mode: the price of the FIB lookup", "frames/s", fps["map"], "fib mode",
            fps["fib"], "", None, f"per-repetition ratios {paired_ratios(runs, 'map', 'fib')}"),
        Row("kernel forwarding (reference)", "frames/s", fps["kernel"]),
    ]
    return {"name": NAME, "title": TITLE, "rows": rows, "plots": [], "data": {"runs": runs, "count": count},
            "method": (f"case04 topology; trafgen in uno pinned to CPU {common.SENDER_CPU}, {count:,} 60-byte UDP "
                       f"frames per run to 10.0.1.2; frames/s = dos/veth0 rx_packets per second of sending; "
                       f"{reps} run(s) per configuration, interleaved; xdp_pass on dos/veth0 throughout; {shared}.")}


def _plot(path, data) -> None:
    """No plot: one figure per configuration (the table says it all)."""


def main(argv=None, module: str = __name__) -> int:
    """``python -m bench.xdp_l3fwd [--quick]`` (or ``module``'s benchmark): run it alone, print its rows."""
    import importlib  # noqa: PLC0415

    p = argparse.ArgumentParser(prog=f"python -m {module}")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    ctx = argparse.Namespace(quick=args.quick, reps=None, work_dir=common.BENCH_DIR / "results" / "tmp")
    for row in importlib.import_module(module).run(ctx)["rows"]:
        r = row.ratio
        print(f"{row.label}: {row.value['median']:,.0f} {row.unit}" + (f", {r:.2f}x {row.ref_label}" if r == r else "")
              + (f" (target {row.target}: {'PASS' if row.passed else 'FAIL'})" if row.passed is not None else "")
              + (f" [{row.note}]" if row.note else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
