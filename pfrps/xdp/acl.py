"""The per-VM ACL of seed 003: rule syntax, map layouts, and the reference decision.

Rule syntax (dsahern/bpf-progs ``xdp_acl_user``, the single-address form of ``acl_simple``)::

    [-][ipv4,|ipv6,]proto=tcp,addr=10.1.0.9,dport=25,sport=1024

``proto`` is required (a name from /etc/protocols such as ``tcp``, ``udp``, ``icmp``,
``ipv6-icmp``, or a number 0-255); ``dport``/``sport`` only with tcp or udp; ``addr`` is the
peer's address (the source of traffic to the VM, the destination of traffic from it; ``0.0.0.0``
or ``::`` = any address of that family) and fixes the family; a leading ``-`` deletes the rule.
The map key is ``{port ifindex, protocol, dport}`` (``struct acl_key`` in ``bpf/cloud.h``), the
value ``struct acl_val`` (address, family, flags, sport).

:func:`decide` is the Python reference of ``bpf/acl.h``'s decision order; the root tests run
both on the same frames.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

from ..errors import UsageError

__all__ = ["AclRule", "Flow", "parse_rule", "format_rule", "decide", "ACL_KEY", "ACL_VAL",
           "AF_INET", "AF_INET6", "ACL_FLAG_ADDR_CHECK"]

AF_INET, AF_INET6 = int(socket.AF_INET), int(socket.AF_INET6) # 2, 10 on Linux (the values the BPF side uses)
IPPROTO_TCP, IPPROTO_UDP = 6, 17
ACL_FLAG_ADDR_CHECK = 1
#: ``struct acl_key`` (bpf/cloud.h): ifindex, port (network order), protocol, pad: 8 bytes.
ACL_KEY = struct.Struct("<I2sBx")
#: ``struct acl_val``: 16-byte address, family, flags, source port (network order): 20 bytes.
ACL_VAL = struct.Struct("<16sBB2s")
_SYNTAX = "[-][ipv4,|ipv6,]proto=tcp,addr=IP,dport=N,sport=N"
_PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp"}


def _bad(rule: str, token: str, why: str) -> UsageError:
    return UsageError(f"malformed ACL rule {rule!r}: {why} in token {token!r}",
                      hint=f"write rules as {_SYNTAX}")


@dataclass(frozen=True)
class AclRule:
    """One ACL rule.

    Attributes:
        protocol: L4 protocol number (6 tcp, 17 udp, 1 icmp, 58 ipv6-icmp, ...).
        dport: destination port, 0 = any (tcp/udp only).
        sport: source port, 0 = any (tcp/udp only).
        family: 0 (any), AF_INET or AF_INET6.
        addr: the peer address (``ipaddress`` object) or None; the unspecified address
            matches any address of its family.
    """

    protocol: int
    dport: int = 0
    sport: int = 0
    family: int = 0
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None

    def key(self, ifindex: int) -> bytes:
        """The ``struct acl_key`` bytes for the VM on port ``ifindex``."""
        return ACL_KEY.pack(ifindex, self.dport.to_bytes(2, "big"), self.protocol)

    def value(self) -> bytes:
        """The ``struct acl_val`` bytes."""
        raw = self.addr.packed.ljust(16, b"\0") if self.addr is not None else bytes(16)
        flags = ACL_FLAG_ADDR_CHECK if self.addr is not None else 0
        return ACL_VAL.pack(raw, self.family, flags, self.sport.to_bytes(2, "big"))

    @classmethod
    def unpack(cls, key: bytes, value: bytes) -> tuple[int, "AclRule"]:
        """``(ifindex, rule)`` from a map entry (the inverse of :meth:`key`/:meth:`value`)."""
        ifindex, dport, proto = ACL_KEY.unpack(key)
        raw, family, flags, sport = ACL_VAL.unpack(value)
        addr = None
        if flags & ACL_FLAG_ADDR_CHECK:
            addr = ipaddress.IPv4Address(raw[:4]) if family == AF_INET else ipaddress.IPv6Address(raw)
        return ifindex, cls(proto, int.from_bytes(dport, "big"), int.from_bytes(sport, "big"), family, addr)


def _port(rule: str, token: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise _bad(rule, token, "a port is a number from 1 to 65535")
    return int(text)


def _proto(rule: str, token: str, text: str) -> int:
    if text.isdigit():
        if int(text) > 255:
            raise _bad(rule, token, "a protocol number is 0 to 255")
        return int(text)
    try:
        return socket.getprotobyname(text)
    except OSError:
        raise _bad(rule, token, f"unknown protocol {text!r} (tcp, udp, icmp, ipv6-icmp or a number)") from None


def parse_rule(text: str) -> tuple[bool, AclRule]:
    """Parse one rule; return ``(delete, rule)`` (``delete`` when it starts with ``-``).

    Raises:
        UsageError: the rule is malformed; the message names the offending token.
    """
    rule_text = text.strip()
    delete = rule_text.startswith("-")
    body = rule_text[1:] if delete else rule_text
    if not body:
        raise UsageError(f"empty ACL rule {text!r}", hint=f"write rules as {_SYNTAX}")
    fields: dict[str, object] = {}
    seen: set[str] = set()
    for token in body.split(","):
        name, eq, val = token.partition("=")
        if token in ("ipv4", "ipv6"):
            name, val = "family", AF_INET if token == "ipv4" else AF_INET6
        elif not eq or name not in ("proto", "addr", "dport", "sport"):
            raise _bad(text, token, "unknown keyword (ipv4, ipv6, proto=, addr=, dport=, sport=)")
        elif name == "proto":
            val = _proto(text, token, val)
        elif name in ("dport", "sport"):
            val = _port(text, token, val)
        else:
            try:
                val = ipaddress.ip_address(val)
            except ValueError:
                raise _bad(text, token, f"{val!r} is not an IPv4 or IPv6 address") from None
        if name in seen:
            raise _bad(text, token, f"{name} given twice")
        seen.add(name)
        if name == "addr":
            fam = AF_INET if val.version == 4 else AF_INET6
            if fields.setdefault("family", fam) != fam:
                raise _bad(text, token, "the address is not of the rule's ipv4/ipv6 family")
        elif name == "family" and fields.setdefault("family", val) != val:
            raise _bad(text, token, "the family does not match the address given before")
        fields[name] = val
    if "proto" not in fields:
        raise UsageError(f"malformed ACL rule {text!r}: no proto= token",
                         hint=f"every rule names its protocol: {_SYNTAX}")
    for name in ("dport", "sport"):
        if name in fields and fields["proto"] not in (IPPROTO_TCP, IPPROTO_UDP):
            raise _bad(text, f"{name}={fields[name]}", "ports need proto=tcp or proto=udp")
    return delete, AclRule(fields["proto"], fields.get("dport", 0), fields.get("sport", 0),
                           fields.get("family", 0), fields.get("addr"))


def format_rule(rule: AclRule) -> str:
    """The rule in its own syntax (``ipv4,proto=tcp,addr=10.0.0.1,dport=25``)."""
    parts = []
    if rule.family and rule.addr is None:
        parts.append("ipv4" if rule.family == AF_INET else "ipv6")
    parts.append(f"proto={_PROTO_NAMES.get(rule.protocol, rule.protocol)}")
    if rule.addr is not None:
        parts.append(f"addr={rule.addr}")
    if rule.dport:
        parts.append(f"dport={rule.dport}")
    if rule.sport:
        parts.append(f"sport={rule.sport}")
    return ",".join(parts)


@dataclass(frozen=True)
class Flow:
    """What the ACL looks at in one frame (``struct flow`` of bpf/flow.h, the fields used).

    Attributes:
        family: AF_INET or AF_INET6 (0 for non-IP).
        protocol: L4 protocol.
        saddr, daddr: ``ipaddress`` objects.
        sport, dport: ports (0 when none).
        fragment: an IPv4 fragment (no ports read).
    """

    family: int
    protocol: int
    saddr: object
    daddr: object
    sport: int = 0
    dport: int = 0
    fragment: bool = False


def _matches(rule: AclRule, flow: Flow, from_vm: bool) -> bool:
    if (rule.family or rule.addr is not None) and flow.family != rule.family:
        return False
    if rule.addr is not None:
        peer = flow.daddr if from_vm else flow.saddr
        if not rule.addr.is_unspecified and rule.addr != peer:
            return False
    return not (rule.sport and rule.sport != flow.sport)


def decide(rules: list[AclRule], flow: Flow, from_vm: bool) -> bool:
    """True when ``rules`` (one VM's, one direction) drop ``flow`` (bpf/acl.h's order).

    The rule for (protocol, destination port) first, then the one for (protocol, any port);
    the first whose given fields all match drops.
    """
    table = {(r.protocol, r.dport): r for r in rules}
    port = flow.dport if flow.protocol in (IPPROTO_TCP, IPPROTO_UDP) and not flow.fragment else 0
    rule = table.get((flow.protocol, port))
    if rule is not None and _matches(rule, flow, from_vm):
        return True
    if not port:
        return False
    rule = table.get((flow.protocol, 0))
    return rule is not None and _matches(rule, flow, from_vm)
