"""Traffic helpers the XDP and BNG benchmarks share: the live-frame generator
(``bpf/xdp_l2fwd_gen.bpf.c`` run by BPF_PROG_TEST_RUN with ``BPF_F_TEST_XDP_LIVE_FRAMES``),
trafgen from a lab namespace, counters read once they settle, and the interleaving of
configurations over repetitions.

Used by bench/xdp_l2fwd.py, xdp_l3fwd.py, xdp_lb.py, xdp_broadcast.py and bng.py (one module, so
none of them imports another benchmark).
"""

from __future__ import annotations

import glob
import os
import resource
import time
from contextlib import ExitStack
from pathlib import Path

from pfrps import bpfsys
from pfrps.xdp.lab import Lab

from . import common
from .common import HarnessError


def ksoftirqd_pids() -> list[int]:
    """The pids of every ``ksoftirqd/N`` thread (proc(5) ``comm``)."""
    out = []
    for path in glob.glob("/proc/[0-9]*/comm"):
        try:
            with open(path) as f:
                if f.read().startswith("ksoftirqd/"):
                    out.append(int(path.split("/")[2]))
        except OSError:
            continue
    return out


def load_generator(stack: ExitStack, frame: bytes, ifindex: int, *, drop: bool = False, flows: int = 1,
                   words: int = 3, saddr_flows: int = 1, tcp: bool = False) -> int:
    """Compile and load ``bpf/xdp_l2fwd_gen.bpf.c`` for ``frame`` (its first ``8 * words`` bytes,
    1 to 8 words, restored on every run), redirecting to ``ifindex`` (or dropping, ``drop``),
    ``flows`` source ports and ``saddr_flows`` values of the IPv4 source address's low 16 bits
    (> 1: ``frame`` must be Ethernet + IPv4 + UDP, or TCP with ``tcp``); the program's fd.
    ``stack`` unloads it. Run it with :func:`generate` inside the namespace of ``ifindex``.

    Raises:
        HarnessError: ``frame`` is shorter than ``8 * words`` bytes.
    """
    from pfrps.bpfload import bpf_source_dir, import_bcc  # noqa: PLC0415

    if len(frame) < 8 * words:
        raise HarnessError(f"generator frame of {len(frame)} bytes is shorter than {words} words")
    bcc = import_bcc()
    gen = bcc.BPF(src_file=str(bpf_source_dir() / "xdp_l2fwd_gen.bpf.c").encode(),
                  cflags=[f"-DGEN_IFINDEX={ifindex}", f"-DGEN_WORDS={words}", f"-DGEN_FLOWS={flows}",
                          *(f"-DGEN_W{i}={int.from_bytes(frame[8 * i:8 * i + 8], 'little'):#x}ULL"
                            for i in range(words)),
                          f"-DGEN_DROP={int(drop)}", f"-DGEN_SADDR_FLOWS={saddr_flows}",
                          f"-DGEN_TCP={int(tcp)}"])
    stack.callback(gen.cleanup)
    return bpfsys.register_loaded(gen.load_func(b"xdp_l2fwd_gen", bcc.BPF.XDP).fd)


def generate(fd: int, frame: bytes, count: int) -> dict:
    """In the generator's namespace (call it there, e.g. with ``Lab.call``), on the sender CPU:
    send ``count`` frames of ``frame`` with generator ``fd``; ``{"wall": s, "cpu": s}`` seconds."""
    os.sched_setaffinity(0, {int(common.SENDER_CPU)})
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    bpfsys.prog_test_run_live(fd, frame, count)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return {"wall": wall, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)}


def run_generator(lab: Lab, ns: str, fd: int, frame: bytes, count: int) -> dict:
    """:func:`generate` in ``ns`` (a namespace of ``lab``); ``{"wall", "cpu", "ksoftirqd"}``
    seconds: its wall time, its CPU time (the softirq work done in its context) and every
    ksoftirqd's CPU time meanwhile (the softirq work deferred)."""
    soft = ksoftirqd_pids()
    soft0 = common.cpu_ns(soft)
    sent = lab.call(ns, generate, fd, frame, count)
    return {**sent, "ksoftirqd": (common.cpu_ns(soft) - soft0) / 1e9}


def settled(read, timeout: float = 5.0) -> int:
    """``read()`` (a frame counter) once two reads 50 ms apart agree (frames still in a backlog
    are counted; a condition, not a fixed wait)."""
    last = read()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        cur = read()
        if cur == last:
            return cur
        last = cur
    return last


def settled_rx(lab, ns: str, ifname: str, timeout: float = 5.0) -> int:
    """rx_packets of ``ns/ifname`` once two reads 50 ms apart agree (:func:`settled`)."""
    return settled(lambda: lab.rx_packets(ns, ifname), timeout)


def send(lab, ns: str, ifname: str, cfg: Path, count: int) -> float:
    """trafgen ``count`` frames of ``cfg`` out of ``ns/ifname``, pinned to the sender CPU; its
    sending time in seconds (from its per-CPU report). (bench/xdp_broadcast.py's source.)

    Raises:
        HarnessError: trafgen failed or printed no report.
    """
    argv = common.pinned(common.SENDER_CPU, ["trafgen", "-o", ifname, "-i", str(cfg), "-n", str(count), "-P", "1"])
    res = lab.run(ns, argv, timeout=300)
    per_cpu = common.TRAFGEN_CPU_RE.findall(res.stdout)
    if res.returncode != 0 or not per_cpu:
        raise HarnessError(f"trafgen failed ({res.returncode}): {res.stdout[-300:]} {res.stderr[-300:]}")
    return max(int(p[0]) + int(p[1]) / 1e6 for p in per_cpu)


def delivered_rate(lab, sender: tuple[str, str], receiver: tuple[str, str], cfg: Path, count: int) -> dict:
    """trafgen ``count`` frames from ``sender`` (ns, ifname); frames/s reaching ``receiver``."""
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


def paired_ratios(runs: dict[str, list[dict]], a: str, b: str, key: str = "fps") -> list[float]:
    """``a``'s frames/s (or figure ``key``) over ``b``'s, per repetition (the two ran back to
    back, under the same load)."""
    return [round(common.ratio(x[key], y[key]), 2) for x, y in zip(runs[a], runs[b])]
