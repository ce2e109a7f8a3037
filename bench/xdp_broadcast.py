"""Benchmark: case05 broadcast (seed 000): TC clone-redirect vs XDP broadcast vs a Linux bridge.

Topology: ``pfrps-xdp lab case05``'s (:class:`pfrps.xdp.broadcast.Case05Lab`): ``gateway``,
``uno`` and ``dos`` each joined to a port of the ``switch`` namespace. trafgen in ``gateway``,
pinned to one CPU, sends 60-byte broadcast frames (ethertype 0x88b5, local experimental) as
fast as it can; the figure is the frames each of ``uno/veth0`` and ``dos/veth0`` received
(``rx_packets``) per second of sending. The switch is, in turn:

* ``tc``: ``pfrps-xdp broadcast`` (clsact, cls_bpf direct-action, bpf_clone_redirect per port);
* ``xdp``: ``pfrps-xdp broadcast --xdp`` native (DEVMAP, BPF_F_BROADCAST |
  BPF_F_EXCLUDE_INGRESS), with ``pfrps-xdp pass`` on the three hosts' ends (native redirects
  into a veth need it; it stays on for every switch, so the receive side is the same);
  ``xdp-generic``: the same in generic mode;
* ``bridge``: a Linux bridge in the switch namespace with the three ports enslaved (no STP,
  the reference).

No target: the issue asks for the three figures. The machine's 2 CPUs run the sender, the
switch and the receivers, and other engineers' work: ratios are from one run.
"""

from __future__ import annotations

import argparse

from pfrps.xdp.broadcast import Case05Lab

from . import common
from .common import Row, summary
from .xdp_traffic import delivered_rate, interleaved, settled_rx

NAME = "xdp_broadcast"
TITLE = "Broadcast (case05): TC clone-redirect vs XDP broadcast vs Linux bridge"
CONFIGS = ("tc", "xdp", "xdp-generic", "bridge")
PORTS = ("sw-uno", "sw-dos", "sw-gw")

TRAFGEN_BCAST = """\
{{
  eth(da=ff:ff:ff:ff:ff:ff, sa={sa}, type=0x88b5),
  fill(0x42, 46)
}}
"""


def _bridge(lab: Case05Lab, up: bool) -> None:
    """Create (``up``) or delete the bridge ``br0`` over the switch ports, with pyroute2."""
    with lab._ipr(lab.ns("switch")) as ipr:
        if up:
            ipr.link("add", ifname="br0", kind="bridge", br_stp_state=0, br_forward_delay=0)
            br = ipr.link_lookup(ifname="br0")[0]
            for port in PORTS:
                ipr.link("set", index=ipr.link_lookup(ifname=port)[0], master=br)
            ipr.link("set", index=br, state="up")
        else:
            ipr.link("del", index=ipr.link_lookup(ifname="br0")[0])


def _switch(lab: Case05Lab, config: str) -> list:
    ports = [a for p in PORTS for a in ("-i", p)]
    if config == "bridge":
        _bridge(lab, True)
        return []
    extra = {"tc": [], "xdp": ["--xdp"], "xdp-generic": ["--xdp", "--generic"]}[config]
    return [lab.start_xdp(lab.ns("switch"), "broadcast", *ports, *extra)]


def run(ctx) -> dict:
    reps = max(ctx.reps or (1 if ctx.quick else 5), 1)
    count = 200_000 if ctx.quick else 500_000
    runs: dict[str, list[dict]] = {c: [] for c in CONFIGS}
    lab = Case05Lab(prefix="bench-switch", out=open("/dev/null", "w"))
    try:
        lab.build(argparse.Namespace())
        gw = lab.ns("gateway")
        cfg = ctx.work_dir / "xdp_broadcast.trafgen"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(TRAFGEN_BCAST.format(sa=lab.link(gw, "veth0")[1]))
        peers = [lab.start_xdp(lab.ns(r), "pass", "-i", "veth0") for r in ("uno", "dos", "gateway")]
        for rep, config in interleaved(CONFIGS, reps):
            procs = _switch(lab, config)
            try:
                dos0 = settled_rx(lab, lab.ns("dos"), "veth0")
                r = delivered_rate(lab, (gw, "veth0"), (lab.ns("uno"), "veth0"), cfg, count)
                r["reached_dos"] = settled_rx(lab, lab.ns("dos"), "veth0") - dos0
                r["fps_dos"] = r["reached_dos"] / r["seconds"] if r["seconds"] else float("nan")
            finally:
                for p in procs:
                    lab.stop_xdp(p)
                if config == "bridge":
                    _bridge(lab, False)
            common.log(f"{NAME}: rep {rep + 1}/{reps} {config:11s}: uno {r['reached']:,}, dos {r['reached_dos']:,} "
                       f"of {count:,} frames; {r['fps']:,.0f} / {r['fps_dos']:,.0f} frames/s per port")
            runs[config].append(r)
        for p in peers:
            lab.stop_xdp(p)
    finally:
        lab.destroy()
    for rs in runs.values():
        for r in rs:
            r["fps_port"] = (r["fps"] + r["fps_dos"]) / 2
    per_port = {c: summary([r["fps_port"] for r in rs]) for c, rs in runs.items()}
    shared = "machine shared with other engineers' runs"

    def paired(a: str, b: str) -> str:
        return f"per-repetition ratios {[round(common.ratio(x['fps_port'], y['fps_port']), 2) for x, y in zip(runs[a], runs[b])]}"
    rows = [
        Row("TC clone-redirect (cls_bpf da): frames/s delivered per port", "frames/s", per_port["tc"], "Linux bridge",
            per_port["bridge"], "", None, f"{shared}; {paired('tc', 'bridge')}"),
        Row("XDP broadcast (native, DEVMAP BPF_F_BROADCAST): frames/s per port", "frames/s", per_port["xdp"],
            "TC clone-redirect", per_port["tc"], "", None, paired("xdp", "tc")),
        Row("XDP broadcast (generic): frames/s per port", "frames/s", per_port["xdp-generic"], "TC clone-redirect",
            per_port["tc"], "", None, paired("xdp-generic", "tc")),
        Row("Linux bridge (reference): frames/s per port", "frames/s", per_port["bridge"]),
    ]
    return {"name": NAME, "title": TITLE, "rows": rows, "plots": [], "data": {"runs": runs, "count": count},
            "method": (f"case05 topology; trafgen in gateway pinned to CPU {common.SENDER_CPU}, {count:,} 60-byte "
                       f"broadcast frames per run; frames/s per port = mean of uno/veth0 and dos/veth0 rx_packets per "
                       f"second of sending; {reps} run(s) per switch, interleaved; xdp_pass on the hosts' ends "
                       f"throughout; {shared}.")}


def _plot(path, data) -> None:
    """No plot: one figure per switch (the table says it all)."""


def main(argv=None) -> int:
    """``python -m bench.xdp_broadcast [--quick]``: run this benchmark alone and print its rows."""
    from .xdp_l3fwd import main as l3fwd_main  # noqa: PLC0415  (same printing)

    return l3fwd_main(argv, module=__name__)


if __name__ == "__main__":
    raise SystemExit(main())
