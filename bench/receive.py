"""Benchmark 2: receive throughput and kernel drops, ``--rx ring`` vs ``--rx recv``, vs netsniff-ng.

Two measurements per receiver, each on a freshly started receiver (empty buffers):

*Saturation.* trafgen (C, TX ring, one process on CPU 0) offers the seed's 148-byte frame with
random source MACs as fast as it can; the receiver has CPU 1 to itself. Recorded over the
sending interval:

- **received frames/s**: frames the receiver's *user space* had read when the sender
  finished, divided by the sender's own send time. Frames still queued at that moment are not
  counted, so a receiver that cannot keep up scores its own throughput and one that can scores
  the offered rate. Counted the same way for all three: pfrps prints its counters every 0.1 s
  and the harness interpolates them at the instant trafgen exits; netsniff-ng is interrupted at
  that instant and reports the frames it had read ("packets incoming", TPACKET_V3).
- **receive capacity, frames per receiver CPU-second**: the same frames divided by the CPU
  time every process of the receiver used meanwhile (all threads of the pfrps supervisor and
  its workers, or of netsniff-ng; ``/proc/PID/task/*/schedstat``). The offered load is bounded
  by what one CPU can send, and receivers that keep up all score the offered rate above, so
  this is the figure that tells receivers apart: the rate each could sustain on one CPU.
  The throughput targets are checked on both figures.
- kernel drops (PACKET_STATISTICS tp_drops, all sockets).

*Seed workload.* pfinject sends the seed's 25,000 frames (``pfinject -p 25000``, its defaults)
as fast as it can; recorded: kernel drops.

pfrps uses ``--steering fanout`` here (one steering program per frame whatever N), so the
sender's cost differs between receivers only by how frames are queued, not by N filters.
netsniff-ng gets one TPACKET_V3 ring of 64 MiB (pfrps's default is 4 MiB per worker: 16 x 256 KiB
blocks up to 16 workers) and a PPPoE ethertype filter, like pfrps.
"""

from __future__ import annotations

import time

from pfrps.topology import netns_pids

from . import common
from .common import Row, summary

NAME = "receive"
TITLE = "Receive throughput and kernel drops"
SEED_FRAMES = 25_000


def params(quick: bool) -> dict:
    if quick:
        return {"ns": [1, 8], "frames": 500_000, "reps": 1}
    return {"ns": [1, 2, 8], "frames": 2_000_000, "reps": 3}


def _pfrps_args(rx: str, n: int) -> list[str]:
    return ["-w", str(n), "--steering", "fanout", "--rx", rx, "--interval", "0.1"]


def _saturate_pfrps(topo, cfg, rx, n, frames) -> dict:
    pf = common.PfrpsProc(topo, _pfrps_args(rx, n))
    try:
        pids = netns_pids(topo.node)
        c0 = common.cpu_ns(pids)
        sent = common.run_trafgen(topo, cfg, frames)
        t_end = time.monotonic()
        c1 = common.cpu_ns(pids)
        got = pf.total_at(t_end)
    finally:
        final = pf.stop()
    return _sat_result(sent, got, c1 - c0, sum(final["drops"]), final_total=final["total"],
                       freezes=sum(final.get("freezes", [])), frames=final["frames"])


def _saturate_nsng(topo, cfg, frames) -> dict:
    sent, st, used_ns = common.netsniff_run(topo, cfg, frames)
    return _sat_result(sent, st["seen"], used_ns, st["dropped"], unread=st["unread"])


def _sat_result(sent, got, cpu, drops, **extra) -> dict:
    cpu_s = cpu / 1e9
    return {"offered": sent.rate, "sent": sent.frames, "seconds": sent.seconds, "received": got,
            "rate": got / sent.seconds, "cpu_seconds": cpu_s, "cpu_util": cpu_s / sent.seconds,
            "capacity": got / cpu_s if cpu_s > 0 else float("nan"), "drops": drops, **extra}


def _seed_pfrps(topo, rx, n) -> dict:
    pf = common.PfrpsProc(topo, _pfrps_args(rx, n))
    try:
        sent = common.run_pfinject(topo, SEED_FRAMES, seed=7)
        pf.wait_total(lambda s: s["total"] + sum(s["drops"]) >= SEED_FRAMES, timeout=5.0)
    finally:
        final = pf.stop()
    return {"sent": sent.frames, "send_rate": sent.rate, "received": final["total"], "drops": sum(final["drops"])}


def _seed_nsng(topo) -> dict:
    ns = common.NetsniffProc(topo)
    try:
        sent = common.run_pfinject(topo, SEED_FRAMES, seed=7)
        time.sleep(0.5)  # let it read the ring out; it reports what it read at SIGINT
    finally:
        st = ns.stop()
    return {"sent": sent.frames, "send_rate": sent.rate, "received": st["seen"], "drops": st["dropped"]}


def run(ctx) -> dict:
    p = params(ctx.quick)
    reps = ctx.reps or p["reps"]
    ns, frames = p["ns"], p["frames"]
    rx_modes = ["recv"] + (["ring"] if ctx.caps["pfrps_ring"] else [])
    configs = [(rx, n) for rx in rx_modes for n in ns]
    sat: dict[str, list[dict]] = {f"{rx} N={n}": [] for rx, n in configs}
    seed: dict[str, list[dict]] = {f"{rx} N={n}": [] for rx, n in configs}
    sat["netsniff-ng"], seed["netsniff-ng"] = [], []
    cfg = common.trafgen_cfg_path(ctx.work_dir)
    with common.topology() as topo:
        common.run_trafgen(topo, cfg, 20_000)  # warm-up
        for rep in range(reps):
            for key in sat:
                if key == "netsniff-ng":
                    s = _saturate_nsng(topo, cfg, frames)
                    d = _seed_nsng(topo)
                else:
                    rx, n = key.split()[0], int(key.split("=")[1])
                    s = _saturate_pfrps(topo, cfg, rx, n, frames)
                    d = _seed_pfrps(topo, rx, n)
                sat[key].append(s)
                seed[key].append(d)
                common.log(f"{NAME}: rep {rep + 1}/{reps}: {key:12s}: offered {s['offered']:,.0f}/s, received "
                           f"{s['rate']:,.0f}/s using {100 * s['cpu_util']:.0f}% of a CPU = {s['capacity']:,.0f} "
                           f"frames/CPU-s, drops {s['drops']:,}; seed workload drops {d['drops']}")

    def cap(key):
        return summary([s["capacity"] for s in sat[key]])

    def rate(key):
        return summary([s["rate"] for s in sat[key]])

    ref_cap, ref_rate = cap("netsniff-ng"), rate("netsniff-ng")
    rows: list[Row] = []
    for key in sat:
        rows.append(Row(f"{key}: receive capacity", "frames/CPU-s", cap(key), "netsniff-ng", ref_cap))
    for key in sat:
        rows.append(Row(f"{key}: received at saturation", "frames/s", rate(key), "netsniff-ng", ref_rate,
                        note=f"offered {common.median([s['offered'] for s in sat[key]]):,.0f}/s, receiver CPU "
                             f"{100 * common.median([s['cpu_util'] for s in sat[key]]):.0f}%"))
    ring8, recv8 = f"ring N={ns[-1]}", f"recv N={ns[-1]}"
    if ring8 in sat:
        r1 = cap(ring8)["median"] / cap(recv8)["median"]
        r2 = cap(ring8)["median"] / ref_cap["median"]
        rows.append(Row(f"target: ring N={ns[-1]} vs recv N={ns[-1]} (capacity)", "frames/CPU-s", cap(ring8), recv8,
                        cap(recv8), ">= 3.0x", r1 >= 3.0))
        rows.append(Row(f"target: ring N={ns[-1]} vs netsniff-ng (capacity)", "frames/CPU-s", cap(ring8),
                        "netsniff-ng", ref_cap, ">= 1.0x", r2 >= 1.0))
        r3 = rate(ring8)["median"] / rate(recv8)["median"]
        r4 = rate(ring8)["median"] / ref_rate["median"]
        rows.append(Row(f"target: ring N={ns[-1]} vs recv N={ns[-1]} (received frames/s at saturation)", "frames/s",
                        rate(ring8), recv8, rate(recv8), ">= 3.0x", r3 >= 3.0,
                        note="bounded by the offered load when the receiver keeps up"))
        rows.append(Row(f"target: ring N={ns[-1]} vs netsniff-ng (received frames/s at saturation)", "frames/s",
                        rate(ring8), "netsniff-ng", ref_rate, ">= 1.0x", r4 >= 1.0,
                        note="both keep up: the ratio is that of the offered loads the sender reached"))
        drops = summary([d["drops"] for d in seed[ring8]])
        rows.append(Row(f"target: ring N={ns[-1]} kernel drops, seed workload ({SEED_FRAMES:,} frames)", "frames",
                        drops, "netsniff-ng", summary([d["drops"] for d in seed["netsniff-ng"]]), "== 0",
                        drops["max"] == 0))
    else:
        na = summary([])
        for label, tgt in ((f"ring N={ns[-1]} vs recv N={ns[-1]}", ">= 3.0x"),
                           (f"ring N={ns[-1]} vs netsniff-ng", ">= 1.0x"),
                           (f"ring N={ns[-1]} kernel drops, seed workload", "== 0")):
            rows.append(Row(f"target: {label}", "", na, "", None, tgt, False,
                            note="pfrps --rx ring is not available in this tree"))
    table = []
    for key in sat:
        s_list, d_list = sat[key], seed[key]
        dr = common.median([s["drops"] / max(1, s["sent"]) for s in s_list])
        table.append([key, f"{common.median([s['offered'] for s in s_list]):,.0f}",
                      f"{common.median([s['rate'] for s in s_list]):,.0f}",
                      f"{100 * common.median([s['cpu_util'] for s in s_list]):.0f}%",
                      f"{common.median([s['capacity'] for s in s_list]):,.0f}",
                      f"{100 * dr:.1f}%", f"{common.median([d['received'] for d in d_list]):,.0f}",
                      f"{common.median([d['drops'] for d in d_list]):,.0f}",
                      f"{max(d['drops'] for d in d_list):,.0f}"])
    data = {"ns": ns, "frames": frames, "reps": reps, "seed_frames": SEED_FRAMES, "saturation": sat, "seed": seed}
    plot = ctx.out_dir / f"{NAME}.png"
    _plot(plot, data)
    return {
        "name": NAME, "title": TITLE, "rows": rows, "plots": [plot.name], "data": data,
        "method": (f"Saturation: trafgen -P 1 (CPU 0) offers {frames:,} frames to a fresh receiver on CPU 1. "
                   f"Received frames/s = frames read by the receiver's user space when trafgen finished / trafgen's "
                   f"send time. Receive capacity = those frames / CPU time used meanwhile by all of the receiver's "
                   f"processes (the rate it could sustain on one CPU; the offered load is bounded by one sending CPU, "
                   f"so receivers that keep up all score the offered rate in the first figure). Targets are checked "
                   f"on both. Seed workload: pfinject -p {SEED_FRAMES} into a "
                   f"fresh receiver; kernel drops from PACKET_STATISTICS. pfrps runs --steering fanout; netsniff-ng "
                   f"a 64 MiB ring (pfrps: its default 4 MiB per worker). Median of {reps} runs. Reference: netsniff-ng in the same run."),
        "tables": [{"title": "Saturation and seed-workload detail (medians)",
                    "header": ["receiver", "offered frames/s", "received frames/s", "receiver CPU",
                               "frames/CPU-s", "kernel drops (saturation)", f"received of {SEED_FRAMES:,} (seed)",
                               "kernel drops (seed)", "kernel drops (seed, worst run)"],
                    "rows": table}],
    }


def _plot(path, data) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    keys = list(data["saturation"])
    sat = data["saturation"]
    colors = ["tab:orange" if k.startswith("recv") else "tab:blue" if k.startswith("ring") else "tab:grey"
              for k in keys]
    x = list(range(len(keys)))
    fig, (ax0, ax, ax2) = plt.subplots(1, 3, figsize=(15, 4.4))

    def bars(axis, field, title, ylabel):
        med = [common.median([s[field] for s in sat[k]]) for k in keys]
        lo = [m - min(s[field] for s in sat[k]) for m, k in zip(med, keys)]
        hi = [max(s[field] for s in sat[k]) - m for m, k in zip(med, keys)]
        axis.bar(x, med, yerr=[lo, hi], color=colors, capsize=3)
        axis.set_xticks(x, keys, rotation=25)
        axis.set_ylabel(ylabel)
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)

    bars(ax0, "capacity", "Receive capacity (frames per receiver CPU-second)", "frames / CPU-second (log)")
    ax0.set_yscale("log")
    bars(ax, "rate", "Received frames/s under saturation", "frames/s")
    off = [common.median([s["offered"] for s in sat[k]]) for k in keys]
    ax.scatter(x, off, marker="_", s=400, color="black", zorder=3, label="offered by trafgen")
    ax.legend(fontsize=8)
    drop_pct = [100 * common.median([s["drops"] / max(1, s["sent"]) for s in sat[k]]) for k in keys]
    seed_drops = [common.median([d["drops"] for d in data["seed"][k]]) for k in keys]
    ax2.bar([i - 0.2 for i in x], drop_pct, width=0.4, color=colors)
    ax2.set_ylabel("kernel drops, % of offered (saturation, plain)")
    ax3 = ax2.twinx()
    ax3.bar([i + 0.2 for i in x], seed_drops, width=0.4, color=colors, hatch="//", alpha=0.6)
    ax3.set_ylabel(f"kernel drops, frames (seed workload {data['seed_frames']:,}, hatched)")
    ax2.set_ylim(0, max(1.0, max(drop_pct) * 1.1))
    ax3.set_ylim(0, max(1.0, max(seed_drops) * 1.1))
    ax2.set_xticks(x, keys, rotation=25)
    ax2.set_title("Kernel drops")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
