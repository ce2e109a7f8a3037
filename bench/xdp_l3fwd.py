"""Benchmark: case04 XDP forwarding (seed 001) vs the router namespace's kernel forwarding.

Topology: ``pfrps-xdp lab case04``'s (:class:`pfrps.xdp.l3fwd.Case04Lab`): ``uno`` and ``dos``
joined through a ``router`` namespace, static neighbours. The traffic source is a live-frame
BPF_PROG_TEST_RUN (``BPF_F_TEST_XDP_LIVE_FRAMES``) of ``bpf/xdp_l2fwd_gen.bpf.c`` in ``uno``,
pinned to one CPU, redirecting 60-byte UDP datagrams (64 source ports) to 10.0.1.2 out of
``uno/veth0``: the router's ``uno`` receives them as xdp_frames in its NAPI, as from a NIC's
ring (this replaced trafgen, whose packet-socket skbs veth's native XDP copied into an XDP
buffer first, on the sender's CPU: 1.11x there). Every configuration runs on the same
topology, the same generator and frames, interleaved per repetition, and is measured with two
receivers on ``dos/veth0``, back to back (bench/xdp_sink.py):

* ``sink`` (the headline): ``bpf/xdp_sink.bpf.c`` native, the same program in every
  configuration, XDP_DROPs the benchmark's UDP datagrams (port 9) and passes everything else;
  the figure is its XDP_DROP count per second of the generator's run. The receiver then costs
  one small program per frame instead of an skb and dos's IP stack, the same everywhere, so
  the ratio is less diluted by work every configuration shares;
* ``pass`` (the earlier method): xdp_pass on ``dos/veth0`` and dos's stack, the figure its
  ``rx_packets`` per second.

The routers compared:

* ``kernel``: the router's own IPv4 forwarding (the reference), ``pfrps-xdp pass`` on the
  router's ``uno``: the same receive path as ``fib`` (xdp_frame, XDP program, then an skb for
  the stack), which is the fair reference: without a program there veth drops redirected
  frames, and GRO instead would give the kernel a different receive path;
* ``fib``: ``pfrps-xdp l3fwd --mode fib`` native, forwarding on (the kernel forwards nothing:
  neighbours are resolved); ``fib-generic``: the same in generic mode (GRO on the router's
  ``uno`` for that run: the NAPI a redirect into a veth needs when no native program is there);
* ``map``: ``--mode map`` native (one MAC pair), the price of the FIB lookup by comparison.

Either receiver is on ``dos/veth0`` in every configuration (native redirects into a veth
need a program there; the kernel path is measured with the same one, so the receive side is
the same program; what it receives differs by the router's job: an skb from the kernel's
forwarding, an xdp_frame from an XDP redirect). Goal
(issue 7): fib native >= 2x kernel forwarding. The machine's 2 CPUs run the generator, both
softirq paths and any other work: ratios are from one run.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack

from pfrps.xdp.l3fwd import Case04Lab
from pfrps.xdp.lab import forwarded_datagrams

from . import common
from .common import HarnessError, Row, summary
from .xdp_sink import Sink
from .xdp_traffic import interleaved, load_generator, paired_ratios, run_generator, settled
from pfrps.cliutil import ArgumentParser

NAME = "xdp_l3fwd"
TITLE = "XDP layer-3 forwarding (case04) vs kernel forwarding"
GOAL = 2.0
CONFIGS = ("kernel", "fib", "fib-generic", "map")
#: receivers on dos/veth0 (bench/xdp_sink.py): the sink (headline) and xdp_pass + stack (earlier)
RECEIVERS = ("sink", "pass")

SOURCE_PORTS = 64


def test_frame(lab: Case04Lab) -> bytes:
    """The frame sent: 60 bytes (FCS excluded), uno -> router's uno, IPv4/UDP 10.0.0.2:40000 ->
    10.0.1.2:9, TTL 64, 18 bytes of 0x41, built with scapy (the generator varies the source port)."""
    from scapy.layers.inet import IP, UDP  # noqa: PLC0415
    from scapy.layers.l2 import Ether  # noqa: PLC0415

    return bytes(Ether(dst=lab.macs["rt-uno"], src=lab.macs["uno"]) / IP(src="10.0.0.2", dst="10.0.1.2", ttl=64)
                 / UDP(sport=40000, dport=9) / (b"\x41" * 18))


test_frame.__test__ = False


def live_rate(lab, sender_ns: str, rt_ns: str, receiver: tuple[str, str], fd: int, frame: bytes,
              count: int, sink: Sink | None = None) -> dict:
    """Send ``count`` frames with live-frame generator ``fd`` in ``sender_ns``; frames/s reaching
    ``receiver`` (ns, ifname) per second of the generator's run, frames per CPU-second (the
    generator's CPU time, where the softirq work runs, plus ksoftirqd's), and the datagrams
    ``rt_ns``'s kernel forwarded meanwhile (ForwDatagrams). Frames reaching it: ``sink``'s
    XDP_DROP count when the receiver carries the sink (``rx_packets`` is kept as ``rx``),
    else ``rx_packets``."""
    rx = (lambda: lab.rx_packets(*receiver))
    read = sink.dropped if sink else rx
    before, rx0 = settled(read), rx()
    fwd0 = lab.call(rt_ns, forwarded_datagrams)[0]
    sent = run_generator(lab, sender_ns, fd, frame, count)
    got = settled(read) - before
    secs, cpu = sent["wall"], sent["cpu"] + sent["ksoftirqd"]
    return {"sent": count, "reached": got, "rx": rx() - rx0, "seconds": secs,
            "fps": got / secs if secs else float("nan"),
            "cpu_s": cpu, "frames_per_cpu_s": got / cpu if cpu else float("nan"),
            "kernel_forwarded": lab.call(rt_ns, forwarded_datagrams)[0] - fwd0}


def _gro(lab: Case04Lab, on: bool) -> None:
    res = lab.run(lab.ns("router"), ["ethtool", "-K", "uno", "gro", "on" if on else "off"])
    if res.returncode != 0:
        raise HarnessError(f"ethtool -K uno gro: {res.stderr.strip()}")


def _attach(lab: Case04Lab, config: str) -> list:
    rt = lab.ns("router")
    if config == "kernel":
        return [lab.start_xdp(rt, "pass", "-i", "uno")]
    if config == "map":
        return [lab.start_xdp(rt, "l3fwd", "--mode", "map", "-i", "uno", "-r", "dos", "--src-mac", lab.macs["uno"],
                              "--dest-mac", lab.macs["dos"])]
    gen = ["--generic"] if config == "fib-generic" else []
    if gen:
        _gro(lab, True)
    return [lab.start_xdp(rt, "l3fwd", "--mode", "fib", "-i", "uno", "-i", "dos", *gen)]


def _detach(lab: Case04Lab, config: str, procs: list) -> None:
    """Undo :func:`_attach`: stop its pfrps-xdp processes (and GRO, for fib-generic)."""
    for p in procs:
        lab.stop_xdp(p)
    if config == "fib-generic":
        _gro(lab, False)


def _rows(runs: dict[str, list[dict]], receiver: str) -> list[Row]:
    """The comparison rows for one receiver's runs (``sink``: the headline, with the target)."""
    fps = {c: summary([r["fps"] for r in rs]) for c, rs in runs.items()}
    per_cpu = {c: summary([r["frames_per_cpu_s"] for r in rs]) for c, rs in runs.items()}
    ratio = common.ratio(fps["fib"]["median"], fps["kernel"]["median"])
    shared = "machine shared with other engineers' runs"
    paired = paired_ratios(runs, "fib", "kernel")
    if receiver == "sink":
        how = "receiver dos/veth0: xdp_sink (XDP_DROP of the UDP frames, counted)"
        rows = [Row("target: fib mode (native) vs the router's kernel forwarding, receiver xdp_sink", "frames/s",
                    fps["fib"], "kernel forwarding", fps["kernel"], f">= {GOAL:g}x kernel forwarding",
                    bool(ratio >= GOAL), f"{how}; {shared}; per-repetition ratios {paired}")]
    else:
        how = "receiver dos/veth0: xdp_pass and dos's IP stack (rx_packets), the earlier method"
        rows = [Row("fib mode (native) vs kernel forwarding, receiver xdp_pass + stack", "frames/s", fps["fib"],
                    "kernel forwarding", fps["kernel"], "", None, f"{how}; {shared}; per-repetition ratios {paired}")]
    tag = f"receiver {'xdp_sink' if receiver == 'sink' else 'xdp_pass + stack'}"
    return rows + [
        Row(f"fib mode (native) vs kernel forwarding, frames per CPU-second, {tag}", "frames/CPU-s", per_cpu["fib"],
            "kernel forwarding", per_cpu["kernel"], "", None,
            "frames reached / (generator's CPU time + ksoftirqd's): the whole path's cost, less exposed to "
            f"preemption by other load; per-repetition ratios {paired_ratios(runs, 'fib', 'kernel', 'frames_per_cpu_s')}"),
        Row(f"fib mode, generic XDP, {tag}", "frames/s", fps["fib-generic"], "kernel forwarding", fps["kernel"], "",
            None, f"per-repetition ratios {paired_ratios(runs, 'fib-generic', 'kernel')}"),
        Row(f"map mode (native) vs fib mode: the price of the FIB lookup, {tag}", "frames/s", fps["map"],
            "fib mode", fps["fib"], "", None, f"per-repetition ratios {paired_ratios(runs, 'map', 'fib')}"),
        Row(f"kernel forwarding (reference), {tag}", "frames/s", fps["kernel"], note=(
            "router ForwDatagrams per run: " + ", ".join(f"{c} {[r['kernel_forwarded'] for r in runs[c]]}"
                                                         for c in CONFIGS))),
    ]


def run(ctx) -> dict:
    reps = max(ctx.reps or (1 if ctx.quick else 5), 1)
    count = 300_000 if ctx.quick else 2_000_000
    runs: dict[str, dict[str, list[dict]]] = {rx: {c: [] for c in CONFIGS} for rx in RECEIVERS}
    lab = Case04Lab(prefix="bench-l3fwd", out=open("/dev/null", "w"))
    try:
        with ExitStack() as stack:
            lab.build(argparse.Namespace(mode="fib"))
            frame = test_frame(lab)
            fd = load_generator(stack, frame, lab.link(lab.ns("uno"), "veth0")[0], flows=SOURCE_PORTS, words=6)
            sink = Sink(stack, udp_dport=9)
            rt, dos = lab.ns("router"), (lab.ns("dos"), "veth0")
            for rep, config in interleaved(CONFIGS, reps):
                procs = _attach(lab, config)
                try:
                    for receiver in (RECEIVERS if rep % 2 == 0 else tuple(reversed(RECEIVERS))):
                        with sink.attached([dos], receiver):
                            r = live_rate(lab, lab.ns("uno"), rt, dos, fd, frame, count,
                                          sink if receiver == "sink" else None)
                        common.log(f"{NAME}: rep {rep + 1}/{reps} {config:11s} receiver {receiver}: "
                                   f"{r['reached']:,}/{r['sent']:,} frames reached dos, {r['fps']:,.0f} frames/s, "
                                   f"{r['frames_per_cpu_s']:,.0f} frames/CPU-s, router kernel forwarded "
                                   f"{r['kernel_forwarded']:,}")
                        runs[receiver][config].append(r)
                finally:
                    _detach(lab, config, procs)
    finally:
        lab.destroy()
    rows = _rows(runs["sink"], "sink") + _rows(runs["pass"], "pass")
    shared = "machine shared with other engineers' runs"
    return {"name": NAME, "title": TITLE, "rows": rows, "plots": [],
            "data": {"runs": runs["sink"], "runs_xdp_pass": runs["pass"], "count": count,
                     "source": "live-frame BPF_PROG_TEST_RUN (xdp_l2fwd_gen)",
                     "receivers": {"sink": "bpf/xdp_sink.bpf.c on dos/veth0, reached = its XDP_DROP count",
                                   "pass": "bpf/xdp_pass.bpf.c on dos/veth0, reached = rx_packets"}},
            "method": (f"case04 topology; traffic source: a live-frame BPF_PROG_TEST_RUN generator "
                       f"(bpf/xdp_l2fwd_gen.bpf.c) in uno pinned to CPU {common.SENDER_CPU}, redirecting {count:,} "
                       f"60-byte UDP frames ({SOURCE_PORTS} source ports) per run to 10.0.1.2 out of uno/veth0, so the "
                       f"router receives xdp_frames; receiver (headline): bpf/xdp_sink.bpf.c native on dos/veth0 in "
                       f"every configuration (XDP_DROP of the UDP frames to port 9, everything else passes), frames/s "
                       f"= its XDP_DROP count per second of the generator's run; second receiver (the earlier method): "
                       f"xdp_pass on dos/veth0 and dos's IP stack, frames/s = dos/veth0 rx_packets per second; each "
                       f"configuration measured with both receivers back to back (order alternating), {reps} run(s) "
                       f"per configuration, interleaved; xdp_pass on router/uno for the kernel reference, GRO on "
                       f"router/uno for fib-generic; {shared}.")}


def _plot(path, data) -> None:
    """No plot: one figure per configuration (the table says it all)."""


def main(argv=None, module: str = __name__) -> int:
    """``python -m bench.xdp_l3fwd [--quick]`` (or ``module``'s benchmark): run it alone, print its rows."""
    import importlib  # noqa: PLC0415

    mod = importlib.import_module(module)
    p = ArgumentParser(prog=f"python -m {mod.__spec__.name if mod.__spec__ else module}")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    ctx = argparse.Namespace(quick=args.quick, reps=None, work_dir=common.BENCH_DIR / "results" / "tmp")
    for row in mod.run(ctx)["rows"]:
        r = row.ratio
        print(f"{row.label}: {row.value['median']:,.0f} {row.unit}" + (f", {r:.2f}x {row.ref_label}" if r == r else "")
              + (f" (target {row.target}: {'PASS' if row.passed else 'FAIL'})" if row.passed is not None else "")
              + (f" [{row.note}]" if row.note else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
