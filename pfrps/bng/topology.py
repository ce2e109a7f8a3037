"""The BNG's three-namespace test topology (tests, ``bench/bng.py``, ``python -m pfrps.bng.lab``)::

    subscribers netns            bng netns                                   inet netns
    +----------------+  veth  +--------------------------------------+ veth +------------------------+
    | sub0           |<------>| acc0 (access)     up0 (uplink)       |<---->| inet0 198.51.100.2/24  |
    | (clients,      |        | 52:54:00:b0:00:01 198.51.100.1/24    |      |   2001:db8:ffff::2/64  |
    |  PPPoE)        |        |                   2001:db8:ffff::1/64|      | routes to the pools    |
    +----------------+        +--------------------------------------+      |   via the BNG          |
                                                                            +------------------------+

Built with pyroute2 on :class:`pfrps.topology.TwoNodeTopology` (subscribers = its injector,
bng = its node), which ends every process started in the namespaces and removes them.
IPv6 is on in the bng and inet namespaces (without duplicate address detection) and off on
the subscribers' side (the clients speak IPv6 inside PPP only).

Native XDP redirect into a veth needs the receiving end's peer to run NAPI: the veth ends
facing the BNG (``sub0``, ``inet0``) get GRO turned on (ethtool features, through pyroute2),
which is what enables it without an XDP program on them (Linux 5.13+).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Sequence

from pfrps.topology import TwoNodeTopology, create_netns, unique_suffix

__all__ = ["BngTopology", "UPLINK_V4", "INET_V4", "UPLINK_V6", "INET_V6", "ACCESS_MAC"]

UPLINK_V4 = "198.51.100.1/24"
INET_V4 = "198.51.100.2/24"
UPLINK_V6 = "2001:db8:ffff::1/64"
INET_V6 = "2001:db8:ffff::2/64"
ACCESS_MAC = "52:54:00:b0:00:01"


class BngTopology(TwoNodeTopology):
    """Subscribers, BNG and Internet namespaces (see the module docstring).

    Args:
        prefix: namespace names are ``<prefix>-sub-<random>``, ``-bng-``, ``-inet-``.
        pools: networks the inet side routes back through the BNG (IPv4 and IPv6).
    """

    def __init__(self, prefix: str = "bng", pools: Sequence[str] = ("100.64.0.0/10", "2001:db8:100::/40")) -> None:
        sfx = unique_suffix()
        super().__init__(injector=f"{prefix}-sub-{sfx}", node=f"{prefix}-bng-{sfx}", injector_if="sub0",
                         node_if="acc0", node_mac=ACCESS_MAC)
        self.inet = f"{prefix}-inet-{sfx}"
        self.access, self.uplink, self.inet_if = "acc0", "up0", "inet0"
        self.pools = [ipaddress.ip_network(p) for p in pools]

    @property
    def sub(self) -> str:
        """The subscribers' namespace."""
        return self.injector

    @property
    def bng(self) -> str:
        """The BNG's namespace."""
        return self.node

    @property
    def all_namespaces(self) -> tuple[str, str, str]:
        """``(subscribers, bng, inet)`` namespace names (``namespaces`` is the first two)."""
        return self.injector, self.node, self.inet

    def create(self) -> "BngTopology":
        """Create the three namespaces, both veth pairs, addresses and routes.

        Raises:
            TopologyError: a namespace name is taken, or the kernel refused a step.
        """
        from pyroute2 import IPRoute  # noqa: PLC0415

        super().create()
        with self._undo_on_error("the BNG topology", "run as root on a kernel with veth, IPv6 and network namespaces"):
            create_netns(self.inet, ipv6=True)
            self._created.append(self.inet)
            for ns in (self.node,):
                from pfrps.topology import _write_sysctl  # noqa: PLC0415

                for knob in ("all", "default", self.uplink):
                    _write_sysctl(ns, f"net/ipv6/conf/{knob}/disable_ipv6", "0")
                    _write_sysctl(ns, f"net/ipv6/conf/{knob}/accept_dad", "0")
            with IPRoute(netns=self.node, flags=0) as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")  # management, metrics
                ipr.link("add", ifname=self.uplink, kind="veth",
                         peer={"ifname": self.inet_if, "net_ns_fd": self.inet})
                up = ipr.link_lookup(ifname=self.uplink)[0]
                ipr.link("set", index=up, state="up")
                _add_addresses(ipr, up, (UPLINK_V4, UPLINK_V6))
            with IPRoute(netns=self.inet, flags=0) as ipr:
                idx = ipr.link_lookup(ifname=self.inet_if)[0]
                ipr.link("set", index=idx, state="up")
                _add_addresses(ipr, idx, (INET_V4, INET_V6))
                for net in self.pools:
                    gw = ipaddress.ip_interface(UPLINK_V4 if net.version == 4 else UPLINK_V6).ip
                    ipr.route("add", dst=str(net), gateway=str(gw),
                              family=socket.AF_INET if net.version == 4 else socket.AF_INET6)
            for ns, ifname in ((self.injector, self.injector_if), (self.inet, self.inet_if)):
                _enable_gro(ns, ifname)
        return self

    def add_port(self, injector: str, injector_if: str, node_if: str, node_mac: str) -> str:
        """Another access port (:meth:`pfrps.topology.TwoNodeTopology.add_port`: a subscribers'
        namespace ``injector`` whose ``injector_if`` faces the BNG's ``node_if``/``node_mac``), with
        GRO on ``injector_if`` as on ``sub0`` (native XDP redirect into the veth needs NAPI there).

        Returns:
            The new subscribers' interface's MAC.

        Raises:
            TopologyError: the name is taken, or the link could not be made.
        """
        mac = super().add_port(injector, injector_if, node_if, node_mac)
        _enable_gro(injector, injector_if)
        return mac


def _add_addresses(ipr, index: int, addrs: Sequence[str]) -> None:
    """Put each ``"ADDRESS/PREFIXLEN"`` of ``addrs`` (IPv4 or IPv6) on link ``index`` through the
    pyroute2 ``IPRoute`` ``ipr`` (already in the link's namespace)."""
    for a in addrs:
        i = ipaddress.ip_interface(a)
        ipr.addr("add", index=index, address=str(i.ip), prefixlen=i.network.prefixlen,
                 family=socket.AF_INET if i.version == 4 else socket.AF_INET6)


def _enable_gro(ns: str, ifname: str) -> None:
    """Turn GRO on for ``ifname`` in ``ns`` (a veth: its NAPI then takes XDP redirects)."""
    from pyroute2 import netns  # noqa: PLC0415
    from pyroute2.ethtool import Ethtool  # noqa: PLC0415

    netns.pushns(ns)
    try:
        with Ethtool() as eth:
            feats = eth.get_features(ifname)
            feats.features["rx-gro"].enable = True if "rx-gro" in feats.features else None
            eth.set_features(ifname, feats)
    finally:
        netns.popns()
