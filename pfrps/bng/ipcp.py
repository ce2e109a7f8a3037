"""IPCP (RFC 1332, RFC 1877) and IPv6CP (RFC 5072), server side, as :class:`pfrps.bng.ppp.Layer` s.

IPCP
    Our Configure-Request: IP-Address (3) = our address (``local``). The peer's:

    ==================================  =======================================================
    IP-Address (3)                      the address assigned to it: Ack; anything else
                                        (0.0.0.0 included: "assign me one"): Nak with it
    (no IP-Address at all)              Nak suggesting the assigned address (RFC 1332 3.3
                                        lets a Nak carry it; pppd does the same)
    Primary DNS (129), Secondary (131)  when ``dns4`` has that server: Ack if equal, else Nak
                                        with it (RFC 1877 1.1/1.3); when not: Reject
    IP-Compression-Protocol (2, VJ),
    IP-Addresses (1, deprecated),
    NBNS (130, 132), anything else      Reject
    wrong Length, repeated option       Reject
    ==================================  =======================================================

    When the peer Naks our IP-Address we keep ours: we are the router and our address is
    configured, not negotiable (the peer's Max-Failure eventually turns its Nak into a Reject,
    and a rejected IP-Address is simply left out). Only when we have no address (``local`` is
    0.0.0.0) do we take the one suggested (RFC 1332 3.3).

IPv6CP
    Our Configure-Request: Interface-Identifier (1) = a random non-zero 64-bit id. The peer's
    Interface-Identifier: zero or equal to ours -> Nak with a fresh random non-zero one that
    differs from ours (RFC 5072 4.1); else Ack. IPv6-Compression-Protocol (2) and anything
    else: Reject. A Nak of ours: take the suggestion when it is non-zero and differs from the
    peer's, else pick a new random one; a Reject: leave it out.
"""

from __future__ import annotations

import os
from ipaddress import IPv4Address
from typing import Callable, Optional, Sequence

from .ppp import CONF_ACK, PPP_IPCP, PPP_IPV6CP, Packet, reply_for

__all__ = [
    "IPCP_ADDRESSES", "IPCP_COMPRESSION", "IPCP_ADDRESS", "IPCP_DNS1", "IPCP_NBNS1", "IPCP_DNS2", "IPCP_NBNS2",
    "IPV6CP_IFID", "IPV6CP_COMPRESSION",
    "IpcpLayer", "Ipv6cpLayer",
]

# RFC 1332 section 3 and RFC 1877 section 1: IPCP Configuration Option types
IPCP_ADDRESSES, IPCP_COMPRESSION, IPCP_ADDRESS = 1, 2, 3
IPCP_DNS1, IPCP_NBNS1, IPCP_DNS2, IPCP_NBNS2 = 129, 130, 131, 132
# RFC 5072 section 4: IPv6CP Configuration Option types
IPV6CP_IFID, IPV6CP_COMPRESSION = 1, 2

_ZERO4 = bytes(4)
_ZERO8 = bytes(8)
_Callback = Optional[Callable[[], None]]


class _Callbacks:
    """This-Layer-Up/-Down/-Started/-Finished forwarded to the session's callables."""

    __slots__ = ()

    def this_layer_up(self) -> None:
        """This-Layer-Up: the NCP opened."""
        if self._up is not None:  # type: ignore[attr-defined]
            self._up()  # type: ignore[attr-defined]

    def this_layer_down(self) -> None:
        """This-Layer-Down: the NCP left Opened."""
        if self._down is not None:  # type: ignore[attr-defined]
            self._down()  # type: ignore[attr-defined]

    def this_layer_started(self) -> None:
        """This-Layer-Started: nothing to do."""

    def this_layer_finished(self) -> None:
        """This-Layer-Finished: the NCP gave up or was closed."""
        if self._finished is not None:  # type: ignore[attr-defined]
            self._finished()  # type: ignore[attr-defined]

    def extra_code(self, pkt: Packet) -> bool:
        """NCPs have no codes past 7 (RFC 1332 2, RFC 5072 2): Code-Reject."""
        return False


class IpcpLayer(_Callbacks):
    """The IPCP :class:`pfrps.bng.ppp.Layer` of one session (RFC 1332, RFC 1877).

    Args:
        local: our IP-Address (the session's router address).
        dns4: DNS servers to hand out: ``dns4[0]`` as Primary, ``dns4[1]`` as Secondary.
        up, down, finished: the session's callables for This-Layer-Up/-Down/-Finished.

    Attributes:
        peer_address: the IPv4Address assigned to the peer; set it before the Fsm's Up.
        local_address: our address as acked (or taken from a Nak when we had none).
    """

    protocol = PPP_IPCP
    name = "IPCP"

    __slots__ = ("local_address", "dns4", "peer_address", "_local", "_peer", "_dns", "_send_addr", "_up", "_down",
                 "_finished")

    def __init__(self, local: IPv4Address, dns4: Sequence[IPv4Address] = (), up: _Callback = None,
                 down: _Callback = None, finished: _Callback = None) -> None:
        self.local_address = IPv4Address(local)
        self.dns4 = tuple(dns4)
        self.peer_address: Optional[IPv4Address] = None
        self._local = self.local_address.packed
        self._peer = _ZERO4
        self._dns = tuple(d.packed for d in self.dns4[:2])
        self._send_addr = True
        self._up, self._down, self._finished = up, down, finished

    def set_dns(self, dns4: Sequence[IPv4Address]) -> None:
        """Offer these Primary/Secondary DNS servers (RFC 1877) instead (RADIUS's, per session)."""
        self.dns4 = tuple(dns4)
        self._dns = tuple(IPv4Address(d).packed for d in self.dns4[:2])

    def assign(self, address: IPv4Address) -> None:
        """Set the peer's address (what its IP-Address must be for an Ack)."""
        self.peer_address = address
        self._peer = address.packed

    def request_options(self) -> list[tuple[int, bytes]]:
        """IP-Address = our address (unless the peer rejected it)."""
        return [(IPCP_ADDRESS, self._local)] if self._send_addr else []

    def on_ack(self, opts: list[tuple[int, bytes]]) -> bool:
        """Nothing to record: our address is fixed."""
        return True

    def on_nak(self, opts: list[tuple[int, bytes]]) -> Optional[bool]:
        """Keep our address, unless we have none (0.0.0.0): then take the suggested one."""
        for otype, value in opts:
            if otype == IPCP_ADDRESS and len(value) == 4 and self._local == _ZERO4 and value != _ZERO4:
                self._local = value
                self.local_address = IPv4Address(value)
        return None

    def on_reject(self, opts: list[tuple[int, bytes]]) -> bool:
        """A rejected IP-Address is left out; nothing else is indispensable."""
        for otype, _value in opts:
            if otype == IPCP_ADDRESS:
                self._send_addr = False
        return True

    def check_request(self, opts: list[tuple[int, bytes]], reject_naks: bool) -> tuple[int, list[tuple[int, bytes]]]:
        """Ack, Nak or Reject the peer's options (see the module docstring)."""
        rejects: list[tuple[int, bytes]] = []
        naks: list = []
        seen: set[int] = set()
        peer = self._peer
        for opt in opts:
            otype, value = opt
            if otype in seen:
                rejects.append(opt)
                continue
            seen.add(otype)
            if otype == IPCP_ADDRESS:
                if len(value) != 4:
                    rejects.append(opt)
                elif value != peer:
                    naks.append((opt, (IPCP_ADDRESS, peer)))
            elif otype == IPCP_DNS1 or otype == IPCP_DNS2:
                i = 0 if otype == IPCP_DNS1 else 1
                if len(value) != 4 or i >= len(self._dns):
                    rejects.append(opt)
                elif value != self._dns[i]:
                    naks.append((opt, (otype, self._dns[i])))
            else:
                rejects.append(opt)
        if IPCP_ADDRESS not in seen and peer != _ZERO4:
            naks.insert(0, (None, (IPCP_ADDRESS, peer)))
        return reply_for(rejects, naks, opts, reject_naks)


def _random_ifid(rand: Callable[[int], bytes], *avoid: bytes) -> bytes:
    while True:
        v = bytes(rand(8))
        if v != _ZERO8 and v not in avoid:
            return v


class Ipv6cpLayer(_Callbacks):
    """The IPv6CP :class:`pfrps.bng.ppp.Layer` of one session (RFC 5072).

    Args:
        rand: ``rand(n) -> n random bytes``.
        up, down, finished: the session's callables for This-Layer-Up/-Down/-Finished.

    Attributes:
        ifid: our Interface-Identifier, 8 bytes (our link-local address is fe80::ifid).
        peer_ifid: the peer's acked Interface-Identifier, 8 bytes, or None.
    """

    protocol = PPP_IPV6CP
    name = "IPv6CP"

    __slots__ = ("rand", "ifid", "peer_ifid", "_send_ifid", "_up", "_down", "_finished")

    def __init__(self, rand: Optional[Callable[[int], bytes]] = None, up: _Callback = None, down: _Callback = None,
                 finished: _Callback = None) -> None:
        self.rand = rand or os.urandom
        self.ifid = _random_ifid(self.rand)
        self.peer_ifid: Optional[bytes] = None
        self._send_ifid = True
        self._up, self._down, self._finished = up, down, finished

    def request_options(self) -> list[tuple[int, bytes]]:
        """Interface-Identifier = ours (unless rejected)."""
        return [(IPV6CP_IFID, self.ifid)] if self._send_ifid else []

    def on_ack(self, opts: list[tuple[int, bytes]]) -> bool:
        """Nothing to record."""
        return True

    def on_nak(self, opts: list[tuple[int, bytes]]) -> Optional[bool]:
        """Take a usable suggestion (non-zero, not the peer's), else pick a new random one."""
        for otype, value in opts:
            if otype == IPV6CP_IFID:
                if len(value) == 8 and value != _ZERO8 and value != self.peer_ifid and value != self.ifid:
                    self.ifid = value
                else:
                    self.ifid = _random_ifid(self.rand, self.ifid, self.peer_ifid or _ZERO8)
        return None

    def on_reject(self, opts: list[tuple[int, bytes]]) -> bool:
        """A rejected Interface-Identifier is left out (we keep ours for fe80::ifid)."""
        for otype, _value in opts:
            if otype == IPV6CP_IFID:
                self._send_ifid = False
        return True

    def check_request(self, opts: list[tuple[int, bytes]], reject_naks: bool) -> tuple[int, list[tuple[int, bytes]]]:
        """Ack, Nak or Reject the peer's options (see the module docstring)."""
        rejects: list[tuple[int, bytes]] = []
        naks: list = []
        seen: set[int] = set()
        ifid = None
        for opt in opts:
            otype, value = opt
            if otype in seen or otype != IPV6CP_IFID or len(value) != 8:
                rejects.append(opt)
                continue
            seen.add(otype)
            if value == _ZERO8 or value == self.ifid:
                naks.append((opt, (IPV6CP_IFID, _random_ifid(self.rand, self.ifid, value))))
            else:
                ifid = value
        reply = reply_for(rejects, naks, opts, reject_naks)
        if reply[0] == CONF_ACK and ifid is not None:
            self.peer_ifid = ifid
        return reply
