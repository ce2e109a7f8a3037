"""``pfrps-xdp lb``: the seed 002 L4 load balancer, full NAT with XDP_TX, Maglev backends.

::

    pfrps-xdp lb -i veth6 --vip 10.0.0.10 --backend 10.0.0.2 --backend 10.0.0.3 [--backend IP[@MAC] ...]

A client's packet to the VIP goes to the backend that the Maglev table picks for its 5-tuple,
from the VIP (so the backend answers the LB), and the backend's reply goes back to the client
from the VIP: ``bpf/xdp_lb.bpf.c``. The flow tables (LRU hashes, both directions) keep a
connection on its backend when the backend set changes; ``--backend-file FILE`` is re-read on
SIGHUP, which rewrites the Maglev table (only about 1/N of new flows move) and leaves
established flows alone. Backend MACs are given (``IP@MAC``) or resolved through the LB's
neighbour table (pyroute2, with an ARP probe through ``NTF_USE``). ICMP, ARP and every other
packet pass to the LB's own stack. Counter lines: the seed's ``xdp_stats`` per action, then
per backend frames and bytes in each direction.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import ipaddress
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import bpfsys
from ..bpfload import CompiledModule, builtin_program
from ..errors import InterfaceError, PfrpsError, UsageError
from ..hashing import format_mac, parse_mac
from . import maglev
from .counters import CounterTable, format_lines, percpu_reader

__all__ = ["Backend", "parse_backend", "read_backend_file", "check_vip", "resolve_backends",
           "tx_checksum_off", "LoadBalancer", "register", "LB_COUNTER_FIELDS", "MAX_BACKENDS", "ENTRY"]

log = logging.getLogger("pfrps.xdp")

BPF_PROG_TYPE_XDP = 6
#: bpf/xdp_lb.bpf.c's entry point.
ENTRY = "pfrps_xdp_lb"
#: bpf/lb.h LB_MAX_BACKENDS (backend slots, never reused within one run).
MAX_BACKENDS = 256
#: Fields of ``struct lb_counter`` (bpf/lb.h), all ``__u64``: frames and bytes per direction.
LB_COUNTER_FIELDS = ("to_backend_packets", "to_backend_bytes", "to_client_packets", "to_client_bytes")
#: neighbour states with a usable link-layer address (rtnetlink(7), ``NUD_*``).
_NUD_USABLE = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80  # REACHABLE STALE DELAY PROBE NOARP PERMANENT
_NUD_FAILED = 0x20
_NTF_USE = 0x01


@dataclass(frozen=True)
class Backend:
    """A backend server: ``ip`` (IPv4, dotted) and ``mac`` (``aa:bb:..``, or None to resolve)."""

    ip: str
    mac: str | None = None

    def __str__(self) -> str:
        return f"{self.ip}@{self.mac}" if self.mac else self.ip


def _ipv4(text: str, what: str, hint: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        raise UsageError(f"{what} {text!r} is not an IPv4 address", hint=hint) from None


def parse_backend(text: str) -> Backend:
    """Parse ``IP`` or ``IP@MAC`` (``10.0.0.2@de:ad:be:ef:00:02``).

    Raises:
        UsageError: not an IPv4 address, or a malformed MAC.
    """
    ip, _, mac = text.strip().partition("@")
    ip = _ipv4(ip, "backend", "write --backend IP or IP@MAC, e.g. 10.0.0.2@de:ad:be:ef:00:02")
    if mac:
        try:
            mac = format_mac(parse_mac(mac))
        except UsageError:
            raise UsageError(f"backend {text!r}: malformed MAC {mac!r}",
                             hint="write --backend IP@MAC with six hex octets, e.g. 10.0.0.2@de:ad:be:ef:00:02") from None
    return Backend(ip, mac or None)


def read_backend_file(path: str | os.PathLike) -> list[Backend]:
    """Backends from a file: one ``IP[@MAC]`` per line; ``#`` starts a comment.

    Raises:
        UsageError: unreadable file, or a bad line (its number is named).
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read backend file {str(path)!r}: {exc.strerror}", code=exc.errno or errno.ENOENT,
                         hint="give --backend-file a readable file with one IP[@MAC] per line") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            out.append(parse_backend(line))
        except UsageError as exc:
            raise UsageError(f"{path}:{n}: {exc.msg}", hint=exc.hint) from None
    return out


def _ipr():
    from pyroute2 import IPRoute  # noqa: PLC0415  (heavy import, only where needed)

    return IPRoute()


def _link(ifname: str):
    with _ipr() as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            raise InterfaceError(f"interface {ifname!r} not found",
                                 hint="list interfaces with `ip link` and pass one with -i")
        return ipr.get_links(idx[0])[0]


def interface_ipv4(ifindex: int) -> list[str]:
    """The IPv4 addresses of interface ``ifindex`` (this namespace), dotted."""
    with _ipr() as ipr:
        return [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=2, index=ifindex)]


def check_vip(ifname: str, ifindex: int, vip: str) -> None:
    """Require ``vip`` to be an address of ``ifname`` (the LB answers ARP and ICMP for it).

    Raises:
        UsageError: it is not; the message lists the interface's addresses and the fix.
    """
    have = interface_ipv4(ifindex)
    if vip not in have:
        raise UsageError(
            f"VIP {vip} is not an address of {ifname} (it has {', '.join(have) or 'no IPv4 address'})",
            hint=f"add it (`ip addr add {vip}/24 dev {ifname}`) or pass one of its addresses with --vip")


def _neighbour_mac(ipr, ifindex: int, ip: str) -> tuple[str | None, int]:
    """``(lladdr, state)`` of ``ip``'s neighbour entry on ``ifindex``, or ``(None, 0)``."""
    for n in ipr.get_neighbours(family=2, ifindex=ifindex, dst=ip):
        mac = n.get_attr("NDA_LLADDR")
        state = n["state"]
        if mac and state & _NUD_USABLE:
            return mac, state
        return None, state
    return None, 0


def resolve_backends(ifname: str, ifindex: int, backends: Sequence[Backend], timeout: float = 3.0) -> list[Backend]:
    """Fill in each backend's MAC from the LB's neighbour table (pyroute2).

    A backend without an entry is probed: ``RTM_NEWNEIGH`` with ``NTF_USE`` makes the kernel
    resolve it (ARP, rtnetlink(7)), and the table is read again until every address resolved
    or ``timeout`` seconds passed (the kernel's own ARP retries: 3 probes, 1 s apart).

    Raises:
        UsageError: a backend is not on ``ifname``'s link, or no ARP reply came; the message
        names the address and the fix (give ``IP@MAC``).
    """
    from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

    todo = [b for b in backends if not b.mac]
    found: dict[str, str] = {}
    if todo:
        with _ipr() as ipr:
            for b in todo:
                try:
                    routes = ipr.route("get", dst=b.ip)
                except NetlinkError:  # ENETUNREACH: no route at all
                    routes = []
                oif = routes[0].get_attr("RTA_OIF") if routes else None
                if oif != ifindex or routes[0].get_attr("RTA_GATEWAY"):
                    raise UsageError(f"backend {b.ip} is not on {ifname}'s link",
                                     hint=f"give a backend of {ifname}'s subnet, or its MAC as {b.ip}@MAC")
                mac, _ = _neighbour_mac(ipr, ifindex, b.ip)
                if mac:
                    found[b.ip] = mac
                    continue
                try:
                    ipr.neigh("replace", dst=b.ip, ifindex=ifindex, flags=_NTF_USE, state=0)
                except NetlinkError as exc:
                    log.debug("NTF_USE probe of %s: %s", b.ip, exc)
            deadline = time.monotonic() + timeout
            pending = [b for b in todo if b.ip not in found]
            while pending:
                for b in list(pending):
                    mac, state = _neighbour_mac(ipr, ifindex, b.ip)
                    if mac:
                        found[b.ip] = mac
                        pending.remove(b)
                    elif state & _NUD_FAILED:  # the kernel's own probes ran out: no answer
                        pending.remove(b)
                if not pending or time.monotonic() >= deadline:
                    break
                time.sleep(0.02)  # polling a condition (the neighbour state), with a deadline
        for b in todo:
            if b.ip not in found:
                raise UsageError(f"cannot resolve the MAC of backend {b.ip} on {ifname}: no ARP reply within "
                                 f"{timeout:g} s",
                                 code=errno.EHOSTUNREACH,
                                 hint=f"check that the backend is up, or give its MAC as --backend {b.ip}@MAC")
    return [Backend(b.ip, b.mac or format_mac(parse_mac(found[b.ip]))) for b in backends]


class LoadBalancer:
    """The compiled and loaded ``xdp_lb`` program with its maps, not attached.

    Args:
        vip: the virtual IP (an address of the LB's interface).
        lb_mac: the LB interface's MAC (rewritten frames leave from it).
        ports: TCP/UDP ports of the VIP to balance (host order); empty: every port.
        ring_size: Maglev table size M, a prime (``LB_RING_SIZE``).
        max_flows: entries of each flow table (``LB_MAX_FLOWS``).
        seed: the flow hash's ``LB_HASH_SEED``.

    Raises:
        UsageError: bad ports or ring size; BpfCompileError/BpfLoadError from the kernel.
    """

    def __init__(self, vip: str, lb_mac: str, ports: Sequence[int] = (), ring_size: int = maglev.DEFAULT_RING_SIZE,
                 max_flows: int = 65536, seed: int = 0) -> None:
        maglev.check_ring_size(ring_size)
        for p in ports:
            if not 1 <= p <= 65535:
                raise UsageError(f"port {p} is out of range", hint="give --port between 1 and 65535")
        if max_flows < 1:
            raise UsageError(f"--max-flows {max_flows} is below 1", hint="give at least 1 (default 65536)")
        self.vip = _ipv4(vip, "VIP", "give --vip as an IPv4 address such as 10.0.0.10")
        self.lb_mac = format_mac(parse_mac(lb_mac))
        self.ports = tuple(sorted(set(ports)))
        self.ring_size = ring_size
        self.seed = seed
        self.backends: list[Backend] = []
        self.table: np.ndarray | None = None
        self._slots: dict[str, int] = {}
        self._ring = np.full(ring_size, -1, dtype=np.int64)
        self.mod = CompiledModule(builtin_program("xdp_lb.bpf.c"), [
            f"-DLB_RING_SIZE={ring_size}", f"-DLB_MAX_BACKENDS={MAX_BACKENDS}", f"-DLB_MAX_FLOWS={max_flows}",
            f"-DLB_HASH_SEED={seed}"])
        try:
            self.prog_fd = self.mod.load(ENTRY, prog_type=BPF_PROG_TYPE_XDP)
            for p in self.ports:
                self._put("lb_ports", ctypes.c_uint16(p), ctypes.c_uint8(1))
            self._write_cfg(0)
        except BaseException:
            self.mod.close()
            raise

    # -- maps -------------------------------------------------------------------------------------
    def _put(self, name: str, key, value) -> None:
        bpfsys.map_update(self.mod.table(name).map_fd, bytes(key), bytes(value))

    def _write_cfg(self, n_backends: int) -> None:
        leaf = self.mod.table("lb_cfg").Leaf()
        leaf.vip = int.from_bytes(ipaddress.IPv4Address(self.vip).packed, "little")
        leaf.all_ports = 0 if self.ports else 1
        leaf.n_backends = n_backends
        for i, b in enumerate(parse_mac(self.lb_mac)):
            leaf.mac[i] = b
        self._put("lb_cfg", ctypes.c_uint32(0), leaf)

    def slot_of(self, ip: str) -> int:
        """The counter/backend slot of backend ``ip`` (assigned on first use, kept for the run).

        Raises:
            UsageError: more than :data:`MAX_BACKENDS` distinct backends in one run.
        """
        if ip not in self._slots:
            if len(self._slots) >= MAX_BACKENDS:
                raise UsageError(f"more than {MAX_BACKENDS} distinct backends in one run",
                                 hint=f"restart pfrps-xdp lb, or keep to {MAX_BACKENDS} backends")
            self._slots[ip] = len(self._slots)
        return self._slots[ip]

    def set_backends(self, backends: Sequence[Backend]) -> float:
        """Make ``backends`` (MACs resolved) the set new flows are spread over.

        Writes the backends' slots, then only the Maglev entries that changed, then the
        backend count; established flows keep their backend (the flow tables hold its
        address and MAC). Returns the fraction of table entries that moved (1.0 the first time).

        Raises:
            UsageError: no backends, duplicates, a MAC missing, too many backends.
        """
        if not backends:
            raise UsageError("no backend given", hint="give at least one --backend IP[@MAC]")
        if any(b.mac is None for b in backends):
            raise UsageError("a backend has no MAC", hint="resolve it first (resolve_backends) or give IP@MAC")
        ips = [b.ip for b in backends]
        table = maglev.maglev_table(ips, self.ring_size)
        slots = np.asarray([self.slot_of(ip) for ip in ips], dtype=np.int64)
        be_table = self.mod.table("lb_backends")
        ip_table = self.mod.table("lb_backend_ips")
        for b, slot in zip(backends, slots):
            leaf = be_table.Leaf()
            leaf.ip = int.from_bytes(ipaddress.IPv4Address(b.ip).packed, "little")
            for i, x in enumerate(parse_mac(b.mac)):
                leaf.mac[i] = x
            self._put("lb_backends", ctypes.c_uint32(int(slot)), leaf)
            bpfsys.map_update(ip_table.map_fd, bytes(ip_table.Key(leaf.ip)), bytes(ctypes.c_uint32(int(slot))))
        new_ring = slots[table]
        changed = np.flatnonzero(new_ring != self._ring)
        fd = self.mod.table("lb_ring").map_fd
        for idx in changed.tolist():
            bpfsys.map_update(fd, int(idx).to_bytes(4, "little"), int(new_ring[idx]).to_bytes(4, "little"))
        for old in self.backends:
            if old.ip not in ips:
                bpfsys.map_delete(ip_table.map_fd, ipaddress.IPv4Address(old.ip).packed)
        moved = len(changed) / self.ring_size
        self._ring = new_ring
        self.backends = list(backends)
        self.table = table
        self._write_cfg(len(backends))
        return moved

    def predict(self, saddr, sport, dport, proto: int = 6) -> list[str]:
        """The backend address each new flow ``saddr:sport -> VIP:dport`` goes to (Maglev)."""
        hashes = maglev.flow_hash(saddr, self.vip, sport, dport, proto, self.seed)
        return [self.backends[i].ip for i in maglev.lookup(self.table, hashes)]

    # -- counters ---------------------------------------------------------------------------------
    def backend_counters(self) -> CounterTable:
        """Per-backend counters of every slot used so far: rows labelled by address, columns
        :data:`LB_COUNTER_FIELDS` (frames, bytes)."""
        labels = list(self._slots)
        read_all = percpu_reader(self.mod.table("lb_stats"), len(labels) or 1, len(LB_COUNTER_FIELDS))
        return CounterTable(lambda: read_all()[:len(labels)], labels, LB_COUNTER_FIELDS)

    def close(self) -> None:
        """Close the program fd and the maps (detach first)."""
        if self.prog_fd is not None:
            os.close(self.prog_fd)
            self.prog_fd = None
        self.mod.close()

    def __enter__(self) -> "LoadBalancer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def tx_checksum_off(ifname: str) -> list[str]:
    """Turn every ``tx-checksum-*`` feature of ``ifname`` (this namespace) off, as ``ethtool -K
    DEV tx off`` does (SIOCETHTOOL through pyroute2's Ethtool). Returns the features turned off.

    Why: a veth sender with TX checksum offload hands on CHECKSUM_PARTIAL packets whose TCP/UDP
    checksum holds only the pseudo-header sum; a native XDP program that rewrites and XDP_TX-es
    them loses that state, so the receiver would see (and drop) a wrong checksum.
    """
    from pyroute2.ethtool import Ethtool  # noqa: PLC0415

    eth = Ethtool()
    try:
        feats = eth.get_features(ifname)
        off = [name for name, f in feats.features.items() if name.startswith("tx-checksum") and f.enable]
        for name in off:
            feats.features[name].enable = False
        if off:
            eth.set_features(ifname, feats)
    finally:
        eth.close()
    return off


# -- the command ------------------------------------------------------------------------------------
EXAMPLES = """\
examples:
  pfrps-xdp lb -i veth6 --vip 10.0.0.10 --backend 10.0.0.2 --backend 10.0.0.3
  pfrps-xdp lb -i veth6 --vip 10.0.0.10 --backend 10.0.0.2@de:ad:be:ef:00:02 --port 8080 --json
  pfrps-xdp lb -i veth6 --vip 10.0.0.10 --backend-file pool.txt   # kill -HUP <pid> re-reads it
  pfrps-xdp lab lb                                                 # the seed's testbed, checked

The VIP must be an address of the interface (the LB's own stack answers ARP and ping for it).
Native XDP_TX out of a veth needs an XDP program on its peer: pfrps-xdp pass -i <peer>.
"""


def register(subparsers) -> None:
    """Add the ``lb`` subcommand."""
    from .cli import add_common  # noqa: PLC0415

    p = subparsers.add_parser(
        "lb", help="seed 002: XDP L4 load balancer (full NAT, XDP_TX, Maglev backends)",
        description="Balance TCP/UDP flows to a VIP across backends with XDP: full NAT on the LB's one "
                    "interface (client -> VIP becomes VIP -> backend, replies go back from the VIP), "
                    "backends chosen by Maglev consistent hashing of the 5-tuple, flows kept in LRU tables. "
                    "Prints the seed's xdp_stats lines and per-backend counters.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-i", "--interface", required=True, metavar="DEV", help="the LB's interface (carries the VIP)")
    p.add_argument("--vip", required=True, metavar="IP", help="the virtual IP: an IPv4 address of DEV")
    p.add_argument("--backend", action="append", default=[], metavar="IP[@MAC]",
                   help="a backend (repeatable); without @MAC its MAC comes from DEV's neighbour table")
    p.add_argument("--backend-file", metavar="FILE",
                   help="backends, one IP[@MAC] per line, added to --backend; re-read on SIGHUP")
    p.add_argument("--port", action="append", type=int, default=[], metavar="PORT",
                   help="a TCP/UDP port of the VIP to balance (repeatable; default: every port)")
    p.add_argument("--ring-size", type=int, default=maglev.DEFAULT_RING_SIZE, metavar="M",
                   help=f"Maglev table size, a prime (default {maglev.DEFAULT_RING_SIZE}, as katran)")
    p.add_argument("--max-flows", type=int, default=65536, metavar="N",
                   help="entries of each flow table (LRU; default 65536)")
    p.add_argument("--resolve-timeout", type=float, default=3.0, metavar="SECONDS",
                   help="how long to wait for a backend's ARP reply (default 3)")
    add_common(p)
    p.set_defaults(func=_run_lb)


def _backends_from(args) -> list[Backend]:
    backends = [parse_backend(b) for b in args.backend]
    if args.backend_file:
        backends += read_backend_file(args.backend_file)
    if not backends:
        raise UsageError("no backend given", hint="give at least one --backend IP[@MAC] (or a --backend-file)")
    seen = set()
    for b in backends:
        if b.ip in seen:
            raise UsageError(f"backend {b.ip} is given twice", hint="list each backend once")
        seen.add(b.ip)
    return backends


class _Service:
    """One ``pfrps-xdp lb`` run: the program, its backend set, SIGHUP reloads, counter samples."""

    def __init__(self, args, lb: LoadBalancer, ifname: str, ifindex: int) -> None:
        self.args = args
        self.lb = lb
        self.ifname = ifname
        self.ifindex = ifindex
        self.backend_table = lb.backend_counters()
        self.backend_table.start()
        self._reloading = False

    def apply(self, backends: Sequence[Backend]) -> float:
        moved = self.lb.set_backends(backends)
        table = self.lb.backend_counters()
        table.start()
        self.backend_table = table
        return moved

    def on_sighup(self, _signum, _frame) -> None:
        """Re-read the backends (``--backend`` plus ``--backend-file``); keep the old set on error."""
        if self._reloading:
            return
        self._reloading = True
        try:
            backends = resolve_backends(self.ifname, self.ifindex, _backends_from(self.args),
                                        self.args.resolve_timeout)
            moved = self.apply(backends)
            log.info("SIGHUP: %d backends (%s); %.1f%% of the Maglev table moved, established flows kept",
                     len(backends), ", ".join(b.ip for b in backends), moved * 100)
        except PfrpsError as exc:
            log.error("SIGHUP: backends unchanged: %s", exc.one_line())
        finally:
            self._reloading = False

    def sample(self, action_sampler):
        def sample(elapsed: float):
            actions = action_sampler(elapsed)
            rates = self.backend_table.rates()
            labels = self.backend_table.labels
            if self.args.json:
                per = {}
                for i, ip in enumerate(labels):
                    per[ip] = {f: int(rates.total[i, j]) for j, f in enumerate(LB_COUNTER_FIELDS)}
                    per[ip].update({f"{f}_per_s": round(float(rates.per_second[i, j]), 3)
                                    for j, f in enumerate(LB_COUNTER_FIELDS)})
                    per[ip]["in_maglev_table"] = ip in {b.ip for b in self.lb.backends}
                return {**actions, "backends": per}
            lines = list(actions)
            for cols, arrow in (((0, 2), "->"), ((2, 4), "<-")):
                sub = type(rates)(rates.period, rates.total[:, cols[0]:cols[1]], rates.delta[:, cols[0]:cols[1]],
                                  rates.per_second[:, cols[0]:cols[1]])
                lines += format_lines([f"{arrow} {ip}" for ip in labels], sub)
            return lines
        return sample


def _run_lb(args) -> int:
    """``pfrps-xdp lb``: check, resolve, load, attach, run in the foreground, detach."""
    # SIGHUP's default action would kill the run with XDP attached: hold it from the start.
    early_hup: list[int] = []
    old = signal.signal(signal.SIGHUP, lambda signum, _frame: early_hup.append(signum))
    try:
        return _serve_lb(args, early_hup)
    finally:
        signal.signal(signal.SIGHUP, old)


def _serve_lb(args, early_hup: list[int]) -> int:
    from .attach import Attachments, resolve_ifindex  # noqa: PLC0415
    from .counters import sampler  # noqa: PLC0415
    from .runner import run_foreground, stats_table  # noqa: PLC0415

    ifname = args.interface
    ifindex = resolve_ifindex(ifname)
    vip = _ipv4(args.vip, "VIP", "give --vip as an IPv4 address such as 10.0.0.10")
    backends = _backends_from(args)
    check_vip(ifname, ifindex, vip)
    if args.resolve_timeout <= 0:
        raise UsageError(f"--resolve-timeout {args.resolve_timeout:g} is not positive", hint="give seconds, e.g. 3")
    backends = resolve_backends(ifname, ifindex, backends, args.resolve_timeout)
    lb_mac = _link(ifname).get_attr("IFLA_ADDRESS")
    att = Attachments()
    try:
        lb = LoadBalancer(vip, lb_mac, ports=args.port, ring_size=args.ring_size, max_flows=args.max_flows)
        att.callback(lb.close, "the load balancer's program and maps")
        svc = _Service(args, lb, ifname, ifindex)
        svc.apply(backends)
        att.xdp(ifname, lb.prog_fd, args.generic)
        actions = sampler(stats_table(lb.mod), args.json)
    except BaseException:
        att.close()
        raise
    signal.signal(signal.SIGHUP, svc.on_sighup)
    att.callback(lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN), "SIGHUP handler")  # first undone
    if early_hup:
        svc.on_sighup(signal.SIGHUP, None)
    ports = ",".join(map(str, lb.ports)) or "every port"
    startup = (f"lb on {ifname} (ifindex {ifindex}), {'generic' if args.generic else 'native'} XDP: VIP {vip} "
               f"({ports}) -> {', '.join(str(b) for b in backends)}; Maglev table {args.ring_size}; "
               f"counters every {args.interval:g} s")
    return run_foreground(att, svc.sample(actions), interval=args.interval, duration=args.duration,
                          json=args.json, startup=startup, stop=args.stop)


from . import lb_lab  # noqa: E402,F401  (registers ``pfrps-xdp lab lb``)
