"""Interface checks through pyroute2 (rtnetlink), before any socket or BPF program exists."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InterfaceError

__all__ = ["LinkInfo", "check_interface", "rx_dropped"]

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
