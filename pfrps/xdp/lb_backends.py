"""The load balancer's backends: ``IP[@MAC]`` parsing, backend files, and MAC resolution through
the LB's neighbour table (pyroute2; an ARP probe through ``NTF_USE``), for ``pfrps-xdp lb``
(:mod:`pfrps.xdp.lb`)."""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import InterfaceError, UsageError
from ..hashing import format_mac, parse_mac

__all__ = ["Backend", "parse_ipv4", "parse_backend", "read_backend_file", "collect_backends", "interface_mac",
           "interface_ipv4", "check_vip", "resolve_backends"]

log = logging.getLogger("pfrps.xdp")

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


def parse_ipv4(text: str, what: str, hint: str) -> str:
    """``text`` as a dotted IPv4 address.

    Raises:
        UsageError: not one; the message names ``what`` and the hint the fix.
    """
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
    ip = parse_ipv4(ip, "backend", "write --backend IP or IP@MAC, e.g. 10.0.0.2@de:ad:be:ef:00:02")
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


def collect_backends(specs: Sequence[str], backend_file: str | os.PathLike | None = None) -> list[Backend]:
    """The backends of ``--backend`` options (``specs``, each ``IP[@MAC]``) followed by those of
    ``--backend-file`` (:func:`read_backend_file`), in order.

    Raises:
        UsageError: none at all, one given twice, or a malformed entry.
    """
    backends = [parse_backend(b) for b in specs]
    if backend_file:
        backends += read_backend_file(backend_file)
    if not backends:
        raise UsageError("no backend given", hint="give at least one --backend IP[@MAC] (or a --backend-file)")
    seen = set()
    for b in backends:
        if b.ip in seen:
            raise UsageError(f"backend {b.ip} is given twice", hint="list each backend once")
        seen.add(b.ip)
    return backends


def _ipr():
    from pyroute2 import IPRoute  # noqa: PLC0415  (heavy import, only where needed)

    return IPRoute()


def interface_mac(ifname: str) -> str:
    """The MAC of interface ``ifname`` (this namespace), ``aa:bb:..``.

    Raises:
        InterfaceError: no such interface.
    """
    with _ipr() as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            raise InterfaceError(f"interface {ifname!r} not found",
                                 hint="list interfaces with `ip link` and pass one with -i")
        return ipr.get_links(idx[0])[0].get_attr("IFLA_ADDRESS")


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
