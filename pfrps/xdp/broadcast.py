"""``pfrps-xdp broadcast`` (case05): flood every frame arriving on one port to the other ports.

Seed ``000``: the switch clones each frame at TC (``bpf_clone_redirect``, then
``TC_ACT_SHOT``), on a ``clsact`` qdisc with a direct-action ``cls_bpf`` filter per port
(the seed's ``act_bpf`` is not in this kernel). Only the ``-i`` ports are flooded. ``--xdp``
is the flavour the seed says XDP cannot do: ``bpf_redirect_map`` with ``BPF_F_BROADCAST |
BPF_F_EXCLUDE_INGRESS`` on a DEVMAP of the ports (native redirects into a veth need an XDP
program on the peer: ``pfrps-xdp pass`` there, or ``--generic``).
"""

from __future__ import annotations

import argparse

from ..errors import UsageError
from .attach import BPF_PROG_TYPE_SCHED_CLS
from .counters import TC_VERDICTS
from .runner import run_xdp

__all__ = ["register", "MAX_PORTS"]

#: ``BCAST_MAX_PORTS``: ports one switch floods.
MAX_PORTS = 16


def register(subparsers) -> None:
    """Add the ``broadcast`` subcommand."""
    from .cli import add_common  # noqa: PLC0415

    p = subparsers.add_parser(
        "broadcast", help="case05: flood frames between the named ports (TC clone-redirect, or XDP)",
        description="A switch: every frame arriving on one -i port goes out of every other -i port. "
                    "Default: TC (clsact, cls_bpf direct-action, bpf_clone_redirect); --xdp: XDP broadcast "
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
