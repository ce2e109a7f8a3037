"""``pfrps-xdp broadcast`` (case05): flood every frame arriving on one port to the other ports.

Seed ``000``: the switch clones each frame at TC (``bpf_clone_redirect``, then
``TC_ACT_SHOT``) in a program on each port's TC ingress: a tcx link (kernel 6.6+, detached
when the process dies), or on older kernels a direct-action ``cls_bpf`` filter on a ``clsact``
qdisc (the seed's ``act_bpf`` is not in this kernel). Only the ``-i`` ports are flooded. ``--xdp``
is the flavour the seed says XDP cannot do: ``bpf_redirect_map`` with ``BPF_F_BROADCAST |
BPF_F_EXCLUDE_INGRESS`` on a DEVMAP of the ports (native redirects into a veth need an XDP
program on the peer: ``pfrps-xdp pass`` there, or ``--generic``).
"""

from __future__ import annotations

import argparse
import re

from ..errors import UsageError
from .attach import BPF_PROG_TYPE_SCHED_CLS
from .counters import TC_VERDICTS
from .lab import Lab, last_json
from .runner import add_common, run_xdp

__all__ = ["register", "MAX_PORTS", "Case05Lab"]

#: ``BCAST_MAX_PORTS``: ports one switch floods.
MAX_PORTS = 16


def register(subparsers) -> None:
    """Add the ``broadcast`` subcommand."""
    p = subparsers.add_parser(
        "broadcast", help="broadcast switch: flood frames between the named ports (TC clone-redirect, or XDP)",
        description="A switch: every frame arriving on one -i port goes out of every other -i port. "
                    "Default: TC (tcx, or clsact + cls_bpf direct-action; bpf_clone_redirect); --xdp: XDP broadcast "
                    "through a DEVMAP (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS).",
        epilog="examples:\n  pfrps-xdp broadcast -i sw-uno -i sw-dos -i sw-gw\n"
               "  pfrps-xdp broadcast -i sw-uno -i sw-dos -i sw-gw --xdp --generic\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-i", "--interface", dest="interfaces", action="append", required=True, metavar="DEV",
                   help="a switch port (give at least two)")
    p.add_argument("--xdp", action="store_true", help="broadcast in XDP instead of TC")
    add_common(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    ports = list(dict.fromkeys(args.interfaces))
    if len(ports) < 2:
        raise UsageError(f"broadcast needs at least two ports, got {len(ports)}",
                         hint="name every switch port with its own -i")
    if len(ports) > MAX_PORTS:
        raise UsageError(f"{len(ports)} ports given; the switch floods at most {MAX_PORTS}",
                         hint=f"name at most {MAX_PORTS} ports")

    def setup(mod, ifindexes: dict[str, int]) -> None:
        table = mod.table("bcast_ports")
        for slot, idx in enumerate(ifindexes.values()):
            table[table.Key(slot)] = table.Leaf(idx)

    cflags = [f"-DBCAST_MAX_PORTS={MAX_PORTS}"]
    if args.xdp:
        return run_xdp(args, "xdp_broadcast.bpf.c", "pfrps_xdp_bcast", ports, setup=setup, cflags=cflags,
                       what=f"broadcast (XDP) across {len(ports)} ports")
    if args.generic:
        raise UsageError("--generic applies to XDP only; the TC switch has no modes",
                         hint="drop --generic, or add --xdp")
    return run_xdp(args, "tc_broadcast.bpf.c", "pfrps_tc_bcast", ports, setup=setup, cflags=cflags,
                   prog_type=BPF_PROG_TYPE_SCHED_CLS, labels=TC_VERDICTS,
                   what=f"broadcast (TC) across {len(ports)} ports")


# -- pfrps-xdp lab case05 -------------------------------------------------------------------------
class Case05Lab(Lab):
    """Seed 000's topology: ``uno`` (10.0.0.2), ``dos`` (10.0.0.3) and ``gateway`` (10.0.0.1, the
    seed's root-side ``gateway`` link), each joined by a veth pair to a port of the ``switch``
    namespace (``sw-uno``, ``sw-dos``, ``sw-gw``; no addresses, no bridge). IPv6 is off, so the
    only frames are arping's: an ARP request from the gateway must reach both uno and dos
    through the switch, and uno's reply come back (flooded to dos as well)."""

    title = "switch: broadcast through a switch namespace, TC clone-redirect or XDP"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--xdp", action="store_true", help="the XDP broadcast instead of TC")
        parser.add_argument("--generic", action="store_true", help="with --xdp: generic (SKB) mode")
        parser.add_argument("--count", type=int, default=3, metavar="N", help="ARP requests (default: 3)")

    HOSTS = (("uno", "10.0.0.2/24", "sw-uno"), ("dos", "10.0.0.3/24", "sw-dos"), ("gateway", "10.0.0.1/24", "sw-gw"))

    def build(self, args) -> None:
        sw = self.add_ns("switch")
        for role, cidr, port in self.HOSTS:
            ns = self.add_ns(role)
            self.veth(sw, port, ns, "veth0")
            self.addr(ns, "veth0", cidr)

    def checks(self, args) -> None:
        n = args.count
        sw, uno, dos, gw = (self.ns(r) for r in ("switch", "uno", "dos", "gateway"))
        arping = ["arping", "-c", str(n), "-w", "5", "-I", "veth0", "10.0.0.2"]
        base = self.run(gw, ["arping", "-c", "1", "-w", "1", "-I", "veth0", "10.0.0.2"])
        self.check("no switch, no reply", _arping_received(base.stdout) == 0,
                   f"{_arping_received(base.stdout)} replies before the switch program is attached")
        gen = ["--generic"] if args.generic else []
        passes = []
        if args.xdp and not args.generic:  # native redirects into a veth need an XDP program on the peer
            passes = [self.start_xdp(ns, "pass", "-i", "veth0") for ns in (uno, dos, gw)]
        ports = [a for _, _, port in self.HOSTS for a in ("-i", port)]
        switch = self.start_xdp(sw, "broadcast", *ports, *(["--xdp"] if args.xdp else []), *gen)
        flavour = ("XDP " + ("generic" if args.generic else "native")) if args.xdp else "TC cls_bpf"
        self.say(f"{flavour} switch in {sw}: pfrps-xdp broadcast {' '.join(ports)}")
        rx0 = {r: self.rx_packets(self.ns(r), "veth0") for r in ("uno", "dos", "gateway")}
        res = self.run(gw, arping, timeout=30)
        got = _arping_received(res.stdout)
        rx = {r: self.rx_packets(self.ns(r), "veth0") - rx0[r] for r in rx0}
        self.check("ARP reply comes back", got == n, f"{n} requests from gateway for 10.0.0.2, {got} replies")
        self.check("request reaches uno", rx["uno"] == n, f"uno received {rx['uno']} frames ({n} requests)")
        self.check("request reaches dos", rx["dos"] == 2 * n,
                   f"dos received {rx['dos']} frames ({n} requests + {n} flooded replies)")
        self.check("gateway gets only the replies", rx["gateway"] == n, f"gateway received {rx['gateway']} frames")
        status, out, _ = self.stop_xdp(switch)
        stats = last_json(out)
        if args.xdp:
            got_stats, want = stats.get("XDP_REDIRECT", {}).get("rx_packets", -1), 2 * n
            self.check("stats map REDIRECT count", got_stats == want, f"XDP_REDIRECT {got_stats}, frames switched {want}")
        else:
            shot = stats.get("TC_ACT_SHOT", {}).get("rx_packets", -1)
            cloned = stats.get("TC_CLONED", {}).get("rx_packets", -1)
            self.check("stats map counts", (shot, cloned) == (2 * n, 4 * n),
                       f"{shot} frames switched (want {2 * n}), {cloned} clones (want {4 * n})")
        for p in passes:
            self.stop_xdp(p)
        left = [port for _, _, port in self.HOSTS if self.call(sw, _port_busy, port)]
        self.check("SIGTERM detached everything", status == 0 and not left,
                   f"exit status {status}, XDP/tcx/clsact still on {left or 'nothing'}")


def _arping_received(stdout: str) -> int:
    m = re.search(r"Received (\d+) response", stdout)
    return int(m.group(1)) if m else 0


def _port_busy(ifname: str) -> bool:
    """True when ``ifname`` still has an XDP program, a tcx program or a clsact qdisc."""
    from pyroute2 import IPRoute  # noqa: PLC0415

    from .. import bpfsys  # noqa: PLC0415
    from .attach import resolve_ifindex, xdp_attached  # noqa: PLC0415

    idx = resolve_ifindex(ifname)
    with IPRoute() as ipr:
        clsact = any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(idx))
    tcx = bpfsys.prog_query(idx, bpfsys.BPF_TCX_INGRESS) or bpfsys.prog_query(idx, bpfsys.BPF_TCX_EGRESS)
    return clsact or bool(tcx) or xdp_attached(idx) is not None
