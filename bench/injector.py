"""Benchmark 3: injector frames/s, pfinject vs trafgen, same frame, same veth.

Both send the seed's 148-byte PPPoE discovery frame (ethertype 0x8863, ver/type 0x11, code 0,
session 0xcafe, length 128, 128 x 0xff) with a random source MAC 02:xx:xx:xx:xx:xx per frame
(trafgen: ``0x02, drnd(5)``) into the injector's end of the veth; nothing listens on the node's
end (the kernel drops the frames there, in the sender's softirq, as for any host).

Both run as one process pinned to CPU 0 (trafgen ``-P 1``); each reports its own send-loop
time (start-up excluded), from which frames/s is taken. trafgen on every CPU (``-P 2``) is shown
for information. Reference: trafgen ``-P 1``, measured in the same run, interleaved.
"""

from __future__ import annotations

from . import common
from .common import Row, summary

NAME = "inject"
TITLE = "Injector frames/s: pfinject vs trafgen"


def params(quick: bool) -> dict:
    if quick:
        return {"frames": 300_000, "reps": 1}
    return {"frames": 1_000_000, "reps": 5}


def pfinject_variants(caps: dict) -> dict[str, list[str]]:
    """pfinject command-line variants to measure; the first one (its defaults) is the headline."""
    tx = caps.get("pfinject_tx", {})
    if not tx.get("tx_ring"):
        return {"pfinject (defaults)": []}
    out = {"pfinject (defaults: --tx ring)": [], "pfinject --tx send": ["--tx", "send"]}
    if tx.get("qdisc_bypass"):
        out["pfinject --tx send --qdisc-bypass"] = ["--tx", "send", "--qdisc-bypass"]
        out["pfinject --tx ring --qdisc-bypass"] = ["--tx", "ring", "--qdisc-bypass"]
    return out


def run(ctx) -> dict:
    p = params(ctx.quick)
    reps = ctx.reps or p["reps"]
    frames = p["frames"]
    variants = pfinject_variants(ctx.caps)
    results: dict[str, list[float]] = {k: [] for k in variants}
    results["trafgen -P 1"] = []
    multi = f"-P {ctx.cpus}"
    if ctx.caps.get("pfinject_tx", {}).get("procs") and ctx.cpus > 1:
        results[f"pfinject --tx ring --procs {ctx.cpus} (all CPUs)"] = []
        variants[f"pfinject --tx ring --procs {ctx.cpus} (all CPUs)"] = ["--tx", "ring", "--procs", str(ctx.cpus)]
    results[f"trafgen {multi} (all CPUs)"] = []
    walls: dict[str, list[float]] = {k: [] for k in results}
    cfg = common.trafgen_cfg_path(ctx.work_dir)
    with common.topology() as topo:
        common.run_trafgen(topo, cfg, 20_000)
        common.run_pfinject(topo, 5000)
        for rep in range(reps):
            for key in results:
                if key.startswith("trafgen"):
                    many = "all CPUs" in key
                    res = common.run_trafgen(topo, cfg, frames, cpus=ctx.cpus if many else 1)
                else:
                    many = "--procs" in key
                    res = common.run_pfinject(topo, frames, seed=rep + 1, extra=variants[key],
                                              cpu=None if many else common.SENDER_CPU)
                results[key].append(res.rate)
                walls[key].append(res.frames / res.wall)
                common.log(f"{NAME}: rep {rep + 1}/{reps}: {key:34s} {res.rate:,.0f} frames/s "
                           f"(wall, with start-up: {res.frames / res.wall:,.0f})")
    ref = summary(results["trafgen -P 1"])
    rows = [Row(k, "frames/s", summary(v), "trafgen -P 1", ref) for k, v in results.items()]
    best = list(variants)[0]
    best_sum = summary(results[best])
    rows.append(Row(f"target: {best}", "frames/s", best_sum, "trafgen -P 1", ref, ">= 1.0x",
                    best_sum["median"] / ref["median"] >= 1.0))
    table = [[k, f"{common.median(walls[k]):,.0f}", f"{common.median(results[k]):,.0f}"] for k in results]
    data = {"frames": frames, "reps": reps, "rates": results, "wall_rates": walls, "variants": variants}
    plot = ctx.out_dir / f"{NAME}.png"
    _plot(plot, data)
    return {
        "name": NAME, "title": TITLE, "rows": rows, "plots": [plot.name], "data": data,
        "method": (f"{frames:,} frames per run, sender pinned to CPU 0 (trafgen -P 1 binds itself there), "
                   f"nothing listening on the node; frames/s from each tool's own send-loop timing; median of "
                   f"{reps} interleaved runs. Reference: trafgen -P 1."),
        "tables": [{"title": "Including process start-up (frames / wall time from launch to exit)",
                    "header": ["sender", "frames/s incl. start-up", "frames/s send loop"], "rows": table}],
    }


def _plot(path, data) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    keys = list(data["rates"])
    med = [common.median(data["rates"][k]) for k in keys]
    lo = [m - min(data["rates"][k]) for m, k in zip(med, keys)]
    hi = [max(data["rates"][k]) - m for m, k in zip(med, keys)]
    colors = ["tab:grey" if k.startswith("trafgen") else "tab:blue" for k in keys]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh(range(len(keys)), med, xerr=[lo, hi], color=colors, capsize=3)
    ax.set_yticks(range(len(keys)), keys)
    ax.invert_yaxis()
    ax.set_xlabel("frames/s (148-byte frames into a veth)")
    ax.set_title("Injector frames/s")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
