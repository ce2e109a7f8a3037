"""``pfrps-xdp l3fwd`` (case04: layer-3 forwarding three ways) and ``pfrps-xdp pass``.

Seed ``001``: ``hardcoded`` rewrites ``h_dest`` and redirects to one ifindex (the seed compiled
both in; here ``-r`` and ``--dest-mac`` become ``-D`` knobs), ``map`` reads the source MAC ->
destination MAC pairs and the egress device from maps filled here (the seed's ``prog_user
-d/-r/--src-mac/--dest-mac``), ``fib`` asks the kernel's FIB (``bpf_fib_lookup``) and
redirects through a DEVMAP holding the ``-i`` devices (the seed's ``prog_user -d DEV``).
``pass`` loads the seed's ``xdp_pass`` dummy, which veth peers need for native redirects to
arrive. Each prints the seed's ``xdp_stats`` lines every ``--interval``.
"""

from __future__ import annotations

import argparse
import ctypes

from ..errors import UsageError
from ..hashing import parse_mac
from .runner import run_xdp

__all__ = ["register", "MODES", "SOURCES"]

MODES = ("hardcoded", "map", "fib")
#: mode -> (bpf/ source, entry point)
SOURCES = {
    "hardcoded": ("xdp_l3fwd_hardcoded.bpf.c", "pfrps_fwd_hard"),
    "map": ("xdp_l3fwd_map.bpf.c", "pfrps_fwd_map"),
    "fib": ("xdp_l3fwd_fib.bpf.c", "pfrps_fwd_fib"),
    "pass": ("xdp_pass.bpf.c", "pfrps_xdp_pass"),
}
#: tx_port's size in fib mode (``L3FWD_DEVMAP_SIZE``): egress ifindexes must be below it.
FIB_DEVMAP_SIZE = 256


def register(subparsers) -> None:
    """Add the ``l3fwd`` and ``pass`` subcommands."""
    from .cli import add_common  # noqa: PLC0415

    p = subparsers.add_parser(
        "l3fwd", help="case04: XDP layer-3 forwarding (hardcoded, map or FIB lookup)",
        description="Forward frames arriving on -i with XDP: hardcoded (rewrite h_dest, redirect to -r), "
                    "map (source MAC -> destination MAC pairs, egress -r) or fib (bpf_fib_lookup, TTL/hop limit "
                    "decremented, egress among the -i devices). Prints the seed's xdp_stats lines.",
        epilog="examples:\n"
               "  pfrps-xdp l3fwd --mode fib -i uno -i dos\n"
               "  pfrps-xdp l3fwd --mode map -i uno -r dos --src-mac 02:00:00:00:00:01 --dest-mac 02:00:00:00:00:02\n"
               "  pfrps-xdp l3fwd --mode hardcoded -i dos -r uno --dest-mac 02:00:00:00:00:01 --generic\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=MODES, required=True, help="how the egress is chosen")
    p.add_argument("-i", "--interface", dest="interfaces", action="append", required=True, metavar="DEV",
                   help="attach to DEV (repeatable; hardcoded and map mode take one)")
    p.add_argument("-r", "--redirect-dev", metavar="OUT_DEV", help="egress device (hardcoded and map mode)")
    p.add_argument("--src-mac", action="append", default=[], metavar="MAC",
                   help="map mode: a source MAC to forward (repeatable, paired with --dest-mac in order)")
    p.add_argument("--dest-mac", action="append", default=[], metavar="MAC",
                   help="destination MAC to write (hardcoded: one; map: one per --src-mac)")
    add_common(p)
    p.set_defaults(func=_run_l3fwd)

    q = subparsers.add_parser(
        "pass", help="xdp_pass on veth peers (native redirects into a veth need one)",
        description="Attach the seed's xdp_pass (XDP_PASS, counted) to each -i device.",
        epilog="examples:\n  pfrps-xdp pass -i veth0\n  pfrps-xdp pass -i veth0 -i veth1 --generic --json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("-i", "--interface", dest="interfaces", action="append", required=True, metavar="DEV",
                   help="attach to DEV (repeatable)")
    add_common(q)
    q.set_defaults(func=_run_pass)


def _run_pass(args) -> int:
    source, func = SOURCES["pass"]
    return run_xdp(args, source, func, args.interfaces, what="xdp_pass")


def _one(values: list[str], what: str) -> str:
    if len(values) != 1:
        raise UsageError(f"{what} takes exactly one device here, got {len(values)}",
                         hint="run one pfrps-xdp per ingress device in hardcoded and map mode")
    return values[0]


def _run_l3fwd(args) -> int:
    from .attach import resolve_ifindex  # noqa: PLC0415

    mode = args.mode
    source, func = SOURCES[mode]
    if mode == "fib":
        if args.redirect_dev or args.src_mac or args.dest_mac:
            raise UsageError("--mode fib takes only -i devices (the FIB picks the egress and the MACs)",
                             hint="drop -r/--src-mac/--dest-mac, or use --mode map")
        return run_xdp(args, source, func, args.interfaces, setup=_fib_setup, what="l3fwd fib",
                       cflags=[f"-DL3FWD_DEVMAP_SIZE={FIB_DEVMAP_SIZE}"])
    ingress = _one(args.interfaces, "-i")
    if not args.redirect_dev:
        raise UsageError(f"--mode {mode} needs -r OUT_DEV, the device to forward to",
                         hint=f"add -r OUT_DEV, e.g. pfrps-xdp l3fwd --mode {mode} -i {ingress} -r OTHER_DEV ...")
    if mode == "hardcoded":
        if args.src_mac or len(args.dest_mac) != 1:
            raise UsageError("--mode hardcoded takes exactly one --dest-mac and no --src-mac",
                             hint="give --dest-mac MAC (the receiver's MAC behind -r)")
        dst = parse_mac(args.dest_mac[0])
        out_idx = resolve_ifindex(args.redirect_dev)
        return run_xdp(args, source, func, [ingress], what=f"l3fwd hardcoded -> {args.redirect_dev}",
                       cflags=[f"-DL3FWD_IFINDEX={out_idx}", f"-DL3FWD_DST_MAC=0x{dst.hex()}ULL"])
    if not args.src_mac or len(args.src_mac) != len(args.dest_mac):
        raise UsageError(f"--mode map needs --src-mac/--dest-mac pairs; got {len(args.src_mac)} --src-mac "
                         f"and {len(args.dest_mac)} --dest-mac",
                         hint="give one --dest-mac per --src-mac, in the same order")
    pairs = [(parse_mac(s), parse_mac(d)) for s, d in zip(args.src_mac, args.dest_mac)]
    out_idx = resolve_ifindex(args.redirect_dev)

    def setup(mod, _ifindexes) -> None:
        params = mod.table("redirect_params")
        for src, dst in pairs:
            key, leaf = params.Key(), params.Leaf()
            ctypes.memmove(ctypes.addressof(key), src, 6)
            ctypes.memmove(ctypes.addressof(leaf), dst, 6)
            params[key] = leaf
        tx = mod.table("tx_port")
        tx[tx.Key(0)] = tx.Leaf(out_idx)

    return run_xdp(args, source, func, [ingress], setup=setup,
                   what=f"l3fwd map -> {args.redirect_dev} ({len(pairs)} MAC pair{'s' * (len(pairs) != 1)})")


def _fib_setup(mod, ifindexes: dict[str, int]) -> None:
    """tx_port[i] = i for every -i device: the egress devices the FIB may pick (DEVMAP entries
    resolve in this process's namespace, the devices' own)."""
    tx = mod.table("tx_port")
    for name, idx in ifindexes.items():
        if idx >= FIB_DEVMAP_SIZE:
            raise UsageError(f"{name} has ifindex {idx}, above the DEVMAP's {FIB_DEVMAP_SIZE} entries",
                             hint="use devices with smaller ifindexes (bcc has no DEVMAP_HASH)")
        tx[tx.Key(idx)] = tx.Leaf(idx)
