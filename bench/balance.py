"""Benchmark 5: hash balance of the three steering hashes (pure numpy, no namespaces).

For each algorithm (``mac_hash``, ``mac_jhash``, ``jhash_oaat``; the numpy references of the BPF
code in :mod:`pfrps.hashing`), each MAC set and N = 8 and 6, one frame per MAC is assigned to
worker ``hash % N`` (:func:`pfrps.hashing.expected_counts`), and the per-worker counts are
summarised by

* the population standard deviation (the seed's ``std_dev``),
* the chi-square goodness-of-fit p-value against a uniform split (N-1 degrees of freedom;
  the survival function is computed here with a regularized incomplete gamma function, no
  scipy), and
* max/mean load (1.00 is perfect; N means everything on one worker).

MAC sets (25,000 MACs, the seed's workload): ``random`` (pfinject's default, 02 + 5 random
bytes), ``sequential`` (a random base + i), ``stride-8`` (a random 8-aligned base + 8 i:
CPE-style blocks), ``single-vendor`` (one OUI, 52:54:00, random low 3 bytes). Sets with a random
part are drawn with several seeds; the figure is the median.

Reference, computed in the same run: a truly uniform random assignment of the same number of
frames (``rng.integers(0, N)``), whose std dev is about sqrt(M/N (1 - 1/N)).
"""

from __future__ import annotations

import math

import numpy as np

from pfrps.inject.macs import random_macs, sequential_macs, stride_macs
from pfrps.hashing import ALGORITHMS, expected_counts, format_mac

from . import common
from .common import Row, summary

NAME = "balance"
TITLE = "Hash balance over MAC sets"
MACS = 25_000
NS = (8, 6)
SETS = ("random", "sequential", "stride-8", "single-vendor")
ALPHA = 0.001


# -- chi-square survival function -------------------------------------------------------------
def gammaincc(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) (Numerical Recipes' gser/gcf)."""
    if x < 0 or a <= 0:
        raise ValueError("gammaincc needs a > 0, x >= 0")
    if x == 0:
        return 1.0
    lg = math.lgamma(a)
    if x < a + 1:  # series for P(a, x)
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - lg))
    # continued fraction for Q(a, x), modified Lentz
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - lg) * h


def chi2_sf(stat: float, dof: int) -> float:
    """P(X >= stat) for X ~ chi-square with ``dof`` degrees of freedom."""
    return gammaincc(dof / 2.0, stat / 2.0)


def load_stats(counts: np.ndarray) -> dict:
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.size
    mean = counts.mean()
    chi2 = float(((counts - mean) ** 2).sum() / mean) if mean > 0 else float("nan")
    return {"std": float(counts.std()), "chi2": chi2, "p": chi2_sf(chi2, n - 1) if n > 1 else 1.0,
            "max_mean": float(counts.max() / mean) if mean > 0 else float("nan")}


# -- MAC sets ---------------------------------------------------------------------------------
def mac_sets(seed: int, count: int = MACS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = random_macs(1, rng=rng)[0]
    base8 = base.copy()
    base8[5] &= 0xF8
    vendor = np.empty((count, 6), dtype=np.uint8)
    vendor[:, :3] = (0x52, 0x54, 0x00)
    vendor[:, 3:] = rng.integers(0, 256, size=(count, 3), dtype=np.uint8)
    return {
        "random": random_macs(count, rng=rng),
        "sequential": sequential_macs(count, format_mac(base), 1),
        "stride-8": stride_macs(count, format_mac(base8), 8),
        "single-vendor": vendor,
    }


def run(ctx) -> dict:
    reps = max(ctx.reps or (3 if ctx.quick else 7), 1)
    algs = list(ALGORITHMS)
    stats = {n: {alg: {s: [] for s in SETS} for alg in algs} for n in NS}
    ref = {n: [] for n in NS}
    for rep in range(reps):
        sets = mac_sets(seed=1000 + rep)
        rng = np.random.default_rng(2000 + rep)
        for n in NS:
            ref[n].append(load_stats(np.bincount(rng.integers(0, n, size=MACS), minlength=n)))
            for alg in algs:
                for sname, macs in sets.items():
                    stats[n][alg][sname].append(load_stats(expected_counts(macs, n, alg)))
    rows: list[Row] = []
    table = []
    for n in NS:
        ref_std = summary([r["std"] for r in ref[n]])
        rows.append(Row(f"uniform random assignment, N={n} (reference)", "std dev", ref_std,
                        note=f"p {common.median([r['p'] for r in ref[n]]):.3f}, max/mean "
                             f"{common.median([r['max_mean'] for r in ref[n]]):.3f}"))
        for alg in algs:
            for sname in SETS:
                st = stats[n][alg][sname]
                p = common.median([s["p"] for s in st])
                mm = common.median([s["max_mean"] for s in st])
                verdict = "uniform" if p >= ALPHA else "SKEWED"
                rows.append(Row(f"{alg}, {sname}, N={n}", "std dev", summary([s["std"] for s in st]),
                                "uniform random", ref_std, note=f"p {p:.3g}, max/mean {mm:.3f}: {verdict}"))
                table.append([alg, sname, n, f"{common.median([s['std'] for s in st]):.1f}",
                              f"{common.median([s['chi2'] for s in st]):.1f}", f"{p:.3g}", f"{mm:.3f}",
                              verdict])
    data = {"macs": MACS, "reps": reps, "ns": list(NS), "sets": list(SETS), "algs": algs,
            "stats": {str(n): v for n, v in stats.items()}, "reference": {str(n): v for n, v in ref.items()}}
    plot = ctx.out_dir / f"{NAME}.png"
    _plot(plot, data)
    return {
        "name": NAME, "title": TITLE, "rows": rows, "plots": [plot.name], "data": data,
        "method": (f"{MACS:,} MACs per set, one frame each, worker = hash % N; median over {reps} draws. "
                   f"No targets were set for balance: 'uniform' means chi-square p >= {ALPHA} "
                   f"(consistent with a uniform split), 'SKEWED' means p < {ALPHA}. Reference: a uniform random "
                   f"assignment of {MACS:,} frames."),
        "tables": [{"title": "Chi-square and max/mean load (medians)",
                    "header": ["algorithm", "MAC set", "N", "std dev", "chi-square", "p-value", "max/mean",
                               f"verdict (p >= {ALPHA})"],
                    "rows": table}],
    }


def _plot(path, data) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, len(data["ns"]), figsize=(11, 4), sharey=True)
    width = 0.8 / len(data["algs"])
    for ax, n in zip(axes, data["ns"]):
        st = data["stats"][str(n)]
        for i, alg in enumerate(data["algs"]):
            vals = [common.median([s["max_mean"] for s in st[alg][sname]]) for sname in data["sets"]]
            ax.bar([j + (i - 1) * width for j in range(len(data["sets"]))], vals, width=width, label=alg)
        ref = common.median([r["max_mean"] for r in data["reference"][str(n)]])
        ax.axhline(ref, color="grey", ls="--", label="uniform random")
        ax.set_xticks(range(len(data["sets"])), data["sets"])
        ax.set_yscale("log")
        ax.set_yticks([1, 1.5, 2, 4, 8], ["1", "1.5", "2", "4", "8"])
        ax.minorticks_off()
        ax.set_title(f"N = {n}: busiest worker / mean")
        ax.grid(axis="y", alpha=0.3, which="both")
    axes[0].set_ylabel("max/mean load (log; 1 = perfect, N = one worker)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
