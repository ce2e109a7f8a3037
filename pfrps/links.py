"""Interface checks through pyroute2 (rtnetlink), before any socket or BPF program exists."""

from __future__ import annotations

import asyncio
import functools
import threading
from dataclasses import dataclass
from typing import Callable, TypeVar

from .errors import InterfaceError

__all__ = ["LinkInfo", "check_interface", "link_stats", "rx_packets", "rx_dropped", "outside_running_loop"]

_F = TypeVar("_F", bound=Callable)


def outside_running_loop(fn: _F) -> _F:
    """Decorate a function that uses pyroute2's synchronous API so it also works when called
    from a coroutine or callback of a running asyncio/uvloop loop (``Supervisor.serve``, an
    application's control plane).

    pyroute2 0.9's synchronous ``IPRoute`` runs an event loop of its own to completion, which
    asyncio refuses in a thread whose loop is already running ("This event loop is already
    running"). With no running loop the call is made directly; with one, it is made in a
    short-lived thread (no running loop there) and the caller's thread waits for it, so the
    call blocks the loop exactly as long as it did in a plain program (one netlink round trip,
    well under a millisecond). Exceptions are re-raised in the caller.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return fn(*args, **kwargs)
        box: dict = {}

        def call() -> None:
            try:
                box["result"] = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001  (re-raised in the caller's thread)
                box["error"] = exc

        thread = threading.Thread(target=call, name=f"pfrps-netlink-{fn.__name__}", daemon=True)
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["result"]

    return wrapper  # type: ignore[return-value]

IFF_UP = 0x1
ARPHRD_ETHER = 1


@dataclass(frozen=True)
class LinkInfo:
    """What pfrps needs of an interface: ``ifname``, ``ifindex``, ``mac`` ("aa:..."),
    ``operstate`` ("UP", "LOWERLAYERDOWN", ...) and ``mtu`` (bytes)."""

    ifname: str
    ifindex: int
    mac: str
    operstate: str
    mtu: int


@outside_running_loop
def check_interface(ifname: str, netns: str | None = None) -> LinkInfo:
    """Look ``ifname`` up and require it to exist, be Ethernet-like and administratively up.

    Args:
        ifname: interface name.
        netns: a named network namespace to look in (default: the current one).

    Raises:
        InterfaceError: missing, not Ethernet, or down; the message names the fix.
    """
    from pyroute2 import IPRoute  # noqa: PLC0415  (heavy import, only where needed)

    if not ifname or len(ifname) > 15 or "/" in ifname or any(c.isspace() for c in ifname):
        raise InterfaceError(f"invalid interface name {ifname!r}", hint="pass an interface name from `ip link` with -i")
    kwargs = {"netns": netns, "flags": 0} if netns else {}
    with IPRoute(**kwargs) as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            raise InterfaceError(
                f"interface {ifname!r} not found",
                hint="list interfaces with `ip link` and pass one with -i",
            )
        link = ipr.get_links(idx[0])[0]
    if link["ifi_type"] != ARPHRD_ETHER:
        raise InterfaceError(
            f"interface {ifname!r} is not an Ethernet link (ARPHRD type {link['ifi_type']})",
            hint="steering hashes Ethernet source addresses; pick an Ethernet interface",
        )
    if not link["flags"] & IFF_UP:
        raise InterfaceError(f"interface {ifname!r} is down", hint=f"bring it up with `ip link set {ifname} up`")
    return LinkInfo(
        ifname=ifname,
        ifindex=link["index"],
        mac=link.get_attr("IFLA_ADDRESS") or "",
        operstate=link.get_attr("IFLA_OPERSTATE") or "UNKNOWN",
        mtu=link.get_attr("IFLA_MTU") or 0,
    )


@outside_running_loop
def link_stats(ifname: str, netns: str | None = None) -> dict[str, int]:
    """The interface counters of ``ifname`` (in the named namespace ``netns``, default the current
    one): ``IFLA_STATS64`` (``IFLA_STATS`` where the kernel has no 64-bit ones), what ``ip -s
    link`` shows: ``rx_packets``, ``tx_packets``, ``rx_bytes``, ``rx_dropped``, ... (frames /
    bytes since the link was made).

    Raises:
        InterfaceError: no interface ``ifname`` there.
    """
    from pyroute2 import IPRoute  # noqa: PLC0415

    kwargs = {"netns": netns, "flags": 0} if netns else {}
    with IPRoute(**kwargs) as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            where = f" in network namespace {netns!r}" if netns else ""
            raise InterfaceError(f"interface {ifname!r} not found{where}", hint="list interfaces with `ip link`")
        link = ipr.get_links(idx[0])[0]
    st = link.get_attr("IFLA_STATS64") or link.get_attr("IFLA_STATS") or {}
    return {k: int(v) for k, v in dict(st).items()}


def rx_packets(ifname: str, netns: str | None = None) -> int:
    """Frames ``ifname`` (in ``netns``, default the current namespace) received: ``rx_packets``
    of :func:`link_stats`.

    Raises:
        InterfaceError: no interface ``ifname`` there.
    """
    return link_stats(ifname, netns).get("rx_packets", 0)


@outside_running_loop
def rx_dropped(ifindex: int) -> int:
    """Frames interface ``ifindex`` dropped on receive: ``rx_dropped + rx_missed_errors``.

    From ``IFLA_STATS64`` (what ``ip -s link`` shows), in the current network namespace.
    These frames never reached a packet socket, so PACKET_STATISTICS cannot count them:
    ``rx_dropped`` counts backlog overflows (``net.core.netdev_max_backlog``) and frames that
    no protocol handler took, ``rx_missed_errors`` frames the NIC's own ring had no room for.
    Returns 0 when the interface is gone.
    """
    from pyroute2 import IPRoute  # noqa: PLC0415
    from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

    try:
        with IPRoute() as ipr:
            link = ipr.get_links(ifindex)[0]
    except NetlinkError:
        return 0
    st = link.get_attr("IFLA_STATS64") or link.get_attr("IFLA_STATS") or {}
    return int(st.get("rx_dropped", 0)) + int(st.get("rx_missed_errors", 0))
