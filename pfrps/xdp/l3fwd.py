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
import re
import subprocess

from ..errors import UsageError
from ..hashing import parse_mac
from .lab import Lab, forwarded_datagrams, last_json, read_until
from .runner import add_common, run_xdp

__all__ = ["register", "MODES", "SOURCES", "Case04Lab"]

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
    p = subparsers.add_parser(
        "l3fwd", help="router: XDP layer-3 forwarding (hardcoded, map or FIB lookup)",
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


# -- pfrps-xdp lab case04 -------------------------------------------------------------------------
class Case04Lab(Lab):
    """Seed 001's topology: ``uno`` and ``dos``, each joined by a veth pair to a ``router``
    namespace (the seed's root namespace, never this one)::

        uno: veth0 10.0.0.2/24 fd00::2/64 <-> router: uno 10.0.0.1 fd00::1 | dos 10.0.1.1 fd00:1::1
                                               <-> dos: veth0 10.0.1.2/24 fd00:1::2/64

    hardcoded and map mode run one pfrps-xdp per direction with kernel forwarding off in the
    router (a reply can only have crossed by XDP) and IPv6 off (nothing but the pings to
    redirect, so counts are exact); fib mode runs one on both router devices with
    forwarding on, IPv4 and IPv6, and checks the router's kernel forwarded nothing
    (ForwDatagrams), the replies arrive with TTL / hop limit 63 and the router's MAC as source.
    Neighbours are static (resolved before counting: an unresolved one makes bpf_fib_lookup
    return NO_NEIGH and the kernel forward instead). Inner ends carry xdp_pass, as in the seed.
    """

    title = "router: layer-3 forwarding through a router namespace, hardcoded / map / fib"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--mode", choices=MODES, default="fib", help="forwarding mode (default: fib)")
        parser.add_argument("--generic", action="store_true", help="attach XDP in generic (SKB) mode")
        parser.add_argument("--count", type=int, default=5, metavar="N", help="echo requests per check (default: 5)")

    #: per family: (host, host address, router address on the router's device named after the host)
    SUBNETS = {4: (("uno", "10.0.0.2/24", "10.0.0.1/24"), ("dos", "10.0.1.2/24", "10.0.1.1/24")),
               6: (("uno", "fd00::2/64", "fd00::1/64"), ("dos", "fd00:1::2/64", "fd00:1::1/64"))}

    def build(self, args) -> None:
        v6 = args.mode == "fib"
        hosts = {r: self.add_ns(r, ipv6=v6) for r in ("uno", "dos")}
        rt = self.add_ns("router", ipv6=v6)
        for host, ns in hosts.items():
            self.veth(rt, host, ns, "veth0")
        self.macs = {**{h: self.link(ns, "veth0")[1] for h, ns in hosts.items()},
                     **{f"rt-{h}": self.link(rt, h)[1] for h in hosts}}
        for family in (4, 6) if v6 else (4,):
            for host, host_cidr, rt_cidr in self.SUBNETS[family]:
                host_ip, rt_ip = host_cidr.split("/")[0], rt_cidr.split("/")[0]
                self.addr(hosts[host], "veth0", host_cidr)
                self.addr(rt, host, rt_cidr)
                self.route(hosts[host], "default", rt_ip)
                self.neigh(hosts[host], "veth0", rt_ip, self.macs[f"rt-{host}"])
                self.neigh(rt, host, host_ip, self.macs[host])
        fwd = "1" if args.mode == "fib" else "0"
        self.sysctl(rt, "net/ipv4/conf/all/forwarding", fwd)
        if v6:
            self.sysctl(rt, "net/ipv6/conf/all/forwarding", fwd)

    def checks(self, args) -> None:
        n, mode = args.count, args.mode
        uno, dos, rt = self.ns("uno"), self.ns("dos"), self.ns("router")
        gen = ["--generic"] if args.generic else []
        flavour = "generic" if args.generic else "native"
        passes = [self.start_xdp(ns, "pass", "-i", "veth0", *gen) for ns in (uno, dos)]
        if mode == "fib":
            fwd = [self.start_xdp(rt, "l3fwd", "--mode", "fib", "-i", "uno", "-i", "dos", *gen)]
        elif mode == "map":
            fwd = [self.start_xdp(rt, "l3fwd", "--mode", "map", "-i", "uno", "-r", "dos", "--src-mac",
                                  self.macs["uno"], "--dest-mac", self.macs["dos"], *gen),
                   self.start_xdp(rt, "l3fwd", "--mode", "map", "-i", "dos", "-r", "uno", "--src-mac",
                                  self.macs["dos"], "--dest-mac", self.macs["uno"], *gen)]
        else:
            fwd = [self.start_xdp(rt, "l3fwd", "--mode", "hardcoded", "-i", "uno", "-r", "dos",
                                  "--dest-mac", self.macs["dos"], *gen),
                   self.start_xdp(rt, "l3fwd", "--mode", "hardcoded", "-i", "dos", "-r", "uno",
                                  "--dest-mac", self.macs["uno"], *gen)]
        self.say(f"{mode} mode, {flavour} XDP: pfrps-xdp l3fwd in {rt}, xdp_pass on both veth0")
        fwd0 = self.call(rt, forwarded_datagrams)
        tcpdump = None
        if mode == "fib":
            tcpdump = self.popen(uno, ["tcpdump", "-l", "-e", "-n", "-Q", "in", "-i", "veth0", "-c", str(n),
                                       "icmp and icmp[icmptype] == icmp-echoreply"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            read_until(tcpdump.stderr, "listening on", 10)  # tcpdump's first line: capturing
        families = [("IPv4", ["ping", "-n", "-c", str(n), "-i", "0.2", "-W", "2", "10.0.1.2"])]
        if mode == "fib":
            families.append(("IPv6", ["ping", "-6", "-n", "-c", str(n), "-i", "0.2", "-W", "2", "fd00:1::2"]))
        for fam, argv in families:
            if self.interrupted():
                return
            res = self.run(uno, argv, timeout=30)
            got = _ping_received(res.stdout)
            self.check(f"{fam} echo uno -> dos", got == n, f"{n} requests, {got} replies")
            if mode == "fib":
                ttls = [int(t) for t in re.findall(r"ttl=(\d+)", res.stdout)]
                self.check(f"{fam} {'TTL' if fam == 'IPv4' else 'hop limit'} 63", len(ttls) == n and set(ttls) == {63},
                           f"replies with {sorted(set(ttls))} (64 at dos, one XDP hop)")
        if tcpdump is not None:
            try:
                out, _ = tcpdump.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                tcpdump.kill()
                out, _ = tcpdump.communicate()
            srcs = re.findall(r"^\S+ (\S+) > \S+,", out, re.M)
            self.check("source MAC is the router's", len(srcs) == n and set(srcs) == {self.macs["rt-uno"]},
                       f"{len(srcs)} echo replies at uno from {sorted(set(srcs))} (router uno = {self.macs['rt-uno']})")
        fwd1 = self.call(rt, forwarded_datagrams)
        self.check("router kernel forwarded nothing", fwd1 == fwd0,
                   f"ForwDatagrams {fwd0[0]} -> {fwd1[0]}, Ip6OutForwDatagrams {fwd0[1]} -> {fwd1[1]}"
                   + (" (forwarding on)" if mode == "fib" else " (forwarding off)"))
        results = [self.stop_xdp(p) for p in fwd]
        redirects = [last_json(out).get("XDP_REDIRECT", {}).get("rx_packets", -1) for _, out, _ in results]
        want = [4 * n] if mode == "fib" else [n, n]
        self.check("stats map REDIRECT count", redirects == want,
                   f"XDP_REDIRECT {redirects}, frames sent that way {want}")
        for p in passes:
            self.stop_xdp(p)
        codes = [r[0] for r in results]
        left = [(ns, dev) for ns, dev in ((rt, "uno"), (rt, "dos"), (uno, "veth0"), (dos, "veth0"))
                if self.call(ns, _xdp_on, dev)]
        self.check("SIGTERM detached everything", codes == [0] * len(codes) and not left,
                   f"exit status {codes}, XDP still on {left or 'nothing'}")


def _xdp_on(ifname: str) -> bool:
    from .attach import resolve_ifindex, xdp_attached  # noqa: PLC0415

    return xdp_attached(resolve_ifindex(ifname)) is not None


def _ping_received(stdout: str) -> int:
    m = re.search(r"(\d+) received", stdout)
    return int(m.group(1)) if m else 0
