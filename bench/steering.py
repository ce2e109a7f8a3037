"""Benchmark 1: steering cost vs worker count, for ``filter``, ``fanout`` and the kernel's ``hash``.

The veth hands each frame to the packet taps in the *sender's* softirq, so every socket
filter (``filter``: N programs per frame), the fanout program (``fanout``: one per frame), the
kernel's flow hash (``hash``), the queueing and the wake-up of the worker are paid on the
sender's CPU. pfinject's achieved frames/s while N workers receive is therefore a measure of
what steering costs per frame. pfinject (CPU 0, its default TX path) sends a fixed, seeded
burst of random-MAC PPPoE discovery frames; pfrps (CPU 1) receives.

Two receive paths: ``--rx ring`` (TPACKET_V3: the kernel wakes a worker once per block, so the
sender pays for steering and copying only) isolates the steering cost; ``--rx recv`` (the
default: one wake-up per frame whenever the worker is idle) adds the cost of waking a worker
on the other CPU for each frame, which on this VM is an inter-processor interrupt.

Also recorded: the share of frames each worker got (from pfrps's final JSON line). The
kernel's PACKET_FANOUT_HASH uses the flow dissector's hash, which has no flow keys in a PPPoE
discovery frame, so every frame hashes alike and lands on one worker.

Reference, measured in the same run: pfinject into the veth with nothing listening.
"""

from __future__ import annotations

from . import common
from .common import Row, summary

NAME = "steering"
TITLE = "Steering cost vs worker count"
MODES = ("filter", "fanout", "hash")


def params(quick: bool, ring: bool, tx_send: bool) -> dict:
    """Variants: name -> (pfrps --rx, extra pfinject arguments, worker counts)."""
    full = [1, 2, 4, 8, 16, 32, 64]
    few = [1, 8, 64] if not quick else [1, 64]
    var: dict[str, tuple[str, list[str], list[int]]] = {}
    if ring:
        var["ring"] = ("ring", [], [1, 8, 64] if quick else full)
    var["recv"] = ("recv", [], few if ring else ([1, 8, 64] if quick else full))
    if tx_send:
        var["recv, pfinject --tx send"] = ("recv", ["--tx", "send"], few)
    return {"variants": var, "frames": 50_000 if quick else 200_000, "reps": 1 if quick else 5}


def _key(var: str, mode: str) -> str:
    return f"{var}/{mode}"


def _label(var: str) -> str:
    rx, _, tx = var.partition(", ")
    return f"--rx {rx}" + (f" ({tx})" if tx else "")


def run(ctx) -> dict:
    tx_send = bool(ctx.caps.get("pfinject_tx", {}).get("tx_ring"))
    p = params(ctx.quick, ctx.caps["pfrps_ring"], tx_send)
    reps = ctx.reps or p["reps"]
    frames = p["frames"]
    variants = p["variants"]
    keys = [_key(v, m) for v in variants for m in MODES]
    ns_of = {k: variants[k.split("/")[0]][2] for k in keys}
    rates = {k: {n: [] for n in ns_of[k]} for k in keys}
    shares = {k: {n: [] for n in ns_of[k]} for k in keys}
    drops = {k: {n: [] for n in ns_of[k]} for k in keys}
    lost = {k: {n: [] for n in ns_of[k]} for k in keys}
    senders = {" ".join(v[1]) for v in variants.values()}
    baseline: dict[str, list[float]] = {tx: [] for tx in senders}
    with common.topology() as topo:
        common.run_pfinject(topo, 5000)  # warm-up (page cache, scapy import)
        for rep in range(reps):
            for tx in senders:
                baseline[tx].append(common.run_pfinject(topo, frames, seed=rep + 1, extra=tx.split()).rate)
                common.log(f"{NAME}: rep {rep + 1}/{reps}: no receiver, pfinject {tx or '(defaults)'}: "
                           f"{baseline[tx][-1]:,.0f} frames/s")
            for var, (rx, tx, ns) in variants.items():
                for mode in MODES:
                    k = _key(var, mode)
                    for n in ns:
                        pf = common.PfrpsProc(topo, ["-w", str(n), "--steering", mode, "--rx", rx,
                                                     "--interval", "1"])
                        try:
                            sent = common.run_pfinject(topo, frames, seed=rep + 1, extra=tx)
                        finally:
                            final = pf.stop()  # the workers drain their sockets before the final line
                        rates[k][n].append(sent.rate)
                        shares[k][n].append(final["frames"])
                        drops[k][n].append(sum(final["drops"]))
                        lost[k][n].append(frames - final["total"] - sum(final["drops"]))
                        common.log(f"{NAME}: rep {rep + 1}/{reps}: {_label(var)} {mode:6s} N={n:2d}: "
                                   f"{sent.rate:,.0f} frames/s, max share "
                                   f"{max(final['frames']) / max(1, final['total']):.3f}, drops {sum(final['drops'])}")
    rows: list[Row] = [Row(f"no receiver (pfinject {tx or 'defaults'} into the veth)", "frames/s", summary(b))
                       for tx, b in baseline.items()]
    for k in keys:
        ns = ns_of[k]
        ref = summary(rates[k][ns[0]])
        var, mode = k.split("/")
        for n in ns:
            rows.append(Row(f"{_label(var)} --steering {mode} N={n}", "frames/s", summary(rates[k][n]),
                            f"same, N={ns[0]}", ref))
    for var, (_rx, _tx, ns) in variants.items():
        lo, hi = ns[0], ns[-1]
        fan1, fan64 = summary(rates[_key(var, "fanout")][lo]), summary(rates[_key(var, "fanout")][hi])
        r = fan64["median"] / fan1["median"]
        fil1, fil64 = summary(rates[_key(var, "filter")][lo]), summary(rates[_key(var, "filter")][hi])
        rf = fil64["median"] / fil1["median"]
        note = ""
        if var == "recv" and tx_send:
            note = ("pfinject's default TX ring sends zero-copy skbs that the veth copies into a fresh page per "
                    "frame (skb_copy_ubufs); queued on recv sockets, those pages stay cold: see bench/PROFILE.md")
        rows.append(Row(f"target: {_label(var)}: fanout N={hi} vs N={lo}", "frames/s", fan64, f"fanout N={lo}",
                        fan1, ">= 0.80x", r >= 0.8, note=note))
        rows.append(Row(f"target: {_label(var)}: filter N={hi} vs N={lo}, decline measured", "frames/s", fil64,
                        f"filter N={lo}", fil1, "measured and shown", True,
                        note=f"filter {100 * (rf - 1):+.0f}% from N={lo} to N={hi}; fanout {100 * (r - 1):+.0f}%"))
    hash_max = [max(s) / max(1, sum(s)) for k in keys if k.endswith("/hash") for n in ns_of[k] if n > 1
                for s in shares[k][n]]
    rows.append(Row("target: hash puts all PPPoE discovery frames on one worker (every N>1 run)", "max share",
                    summary(hash_max), "", None, "== 1.00", min(hash_max, default=0) >= 0.999))
    share_table = []
    for k in keys:
        var, mode = k.split("/")
        for n in ns_of[k]:
            mx = [max(s) / max(1, sum(s)) for s in shares[k][n]]
            mn = [min(s) / max(1, sum(s)) for s in shares[k][n]]
            busy = [sum(1 for v in s if v) for s in shares[k][n]]
            share_table.append([_label(var), mode, n, f"{1 / n:.4f}", f"{common.median(mx):.4f}",
                                f"{common.median(mn):.4f}", f"{common.median(busy):.0f}/{n}",
                                f"{common.median(drops[k][n]):,.0f}", f"{common.median(lost[k][n]):,.0f}"])
    data = {"variants": variants, "frames": frames, "reps": reps, "baseline": baseline, "rates": rates,
            "shares": shares, "drops": drops, "lost": lost}
    plot = ctx.out_dir / f"{NAME}.png"
    _plot(plot, data)
    return {
        "name": NAME, "title": TITLE, "rows": rows, "plots": [plot.name], "data": data,
        "method": (f"pfinject (CPU 0) sends {frames:,} seeded random-MAC frames as fast as it can while pfrps "
                   f"(CPU 1) receives with N workers; figure = pfinject's own frames/s, median of {reps} runs "
                   f"(variants, modes and N interleaved within each run). `--rx ring` isolates the steering cost; "
                   f"`--rx recv` adds queueing an skb per frame on the worker's socket. pfinject uses its defaults "
                   f"(TX ring) unless the row says `--tx send`. Reference: the same burst with nothing listening. "
                   f"Ratios are against the smallest N of the same variant and mode."),
        "tables": [{"title": "Share of frames per worker (median over runs)",
                    "header": ["variant", "mode", "N", "ideal 1/N", "max share", "min share", "workers with frames",
                               "kernel drops", "unaccounted"],
                    "rows": share_table}],
    }


def _plot(path, data) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    variants = {k: tuple(v) for k, v in data["variants"].items()}
    all_ns = sorted({n for v in variants.values() for n in v[2]})
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    colors = {"filter": "tab:red", "fanout": "tab:blue", "hash": "tab:green"}
    styles = ["-", ":", "--"]
    for (var, (_rx, _tx, ns)), style in zip(variants.items(), styles):
        for mode, marker in zip(MODES, "osD"):
            k = _key(var, mode)
            runs = {int(n): v for n, v in data["rates"][k].items()}  # JSON made the keys strings
            shares = {int(n): v for n, v in data["shares"][k].items()}
            med = [common.median(runs[n]) for n in ns]
            lo = [m - min(runs[n]) for m, n in zip(med, ns)]
            hi = [max(runs[n]) - m for m, n in zip(med, ns)]
            ax.errorbar(ns, med, yerr=[lo, hi], marker=marker, ls=style, color=colors[mode], capsize=3,
                        label=f"{_label(var)} --steering {mode}")
            sh = [common.median([max(s) / max(1, sum(s)) for s in shares[n]]) for n in ns]
            ax2.plot(ns, sh, marker=marker, ls=style, color=colors[mode], label=f"{_label(var)} {mode}")
    for (tx, b), style in zip(data["baseline"].items(), ["--", "-."]):
        ax.axhline(common.median(b), color="grey", ls=style, label=f"no receiver (pfinject {tx or 'defaults'})")
    for axis in (ax, ax2):
        axis.set_xscale("log", base=2)
        axis.set_xticks(all_ns, [str(n) for n in all_ns])
        axis.set_xlabel("workers N")
    ax.set_ylabel("pfinject frames/s (sender CPU pays for steering)")
    ax.set_ylim(bottom=0)
    ax.set_title("Sender frames/s while N workers receive")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    ax2.plot(all_ns, [1 / n for n in all_ns], color="grey", ls="--", label="ideal 1/N")
    ax2.set_yscale("log")
    ax2.set_ylabel("largest worker's share of frames")
    ax2.set_title("Balance: busiest worker's share")
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
