"""RADIUS for pfrps-bng: authentication, accounting and dynamic authorization on a worker's loop.

Built on pyrad's packet classes and dictionary (:class:`pyrad.packet.AuthPacket`,
:class:`~pyrad.packet.AcctPacket`, :class:`~pyrad.packet.CoAPacket`,
:class:`pyrad.dictionary.Dictionary`) with this module's own non-blocking UDP transport: an
:class:`asyncio.DatagramProtocol` on the worker's (uvloop) event loop. Nothing here blocks; a
subscriber waiting for RADIUS never holds up the worker's other subscribers.

Client (:class:`RadiusClient`, one per worker)
    One UDP socket. Identifiers are allocated per destination (server address and port) on
    that socket: at most 256 requests are outstanding per destination (RFC 2865 section 3,
    Identifier), more wait for a free identifier. A request is sent, retransmitted unchanged
    (same Identifier and bytes, so the server sees duplicates) every ``timeout`` seconds up to
    ``retries`` times, then the server counts as timed out and is skipped for ``dead_time``
    seconds, and the request fails over to the next server in the configured order with a new
    Identifier. An Access-Request no server answered ends as a failure with
    ``timed_out=True``. An Accounting-Request no server answered goes back into the accounting
    queue and is tried again after ``acct_backoff`` seconds, with a new Identifier and an updated
    Acct-Delay-Time (RFC 2866 section 5.2, RFC 5080 section 2.2.1): records are never lost while
    the bounded queue (``acct_queue_max``) has room; on overflow the oldest queued Interim-Update
    is dropped first (a later record carries the same counters), else the new record; every
    drop counts in ``acct_overflow``.

    Accounting port: a server given as ``HOST:PORT`` takes Access-Requests on PORT and
    Accounting-Requests on PORT + 1 (1812/1813, RFC 2865 and 2866 section 3).

Dynamic authorization (:class:`DynAuthServer`, RFC 5176)
    A UDP listener (default port 3799) for Disconnect-Request and CoA-Request, loop-agnostic:
    it runs on whatever loop calls :meth:`DynAuthServer.start`.

Codec helpers: :func:`parse_tr101` (PPPoE Vendor-Specific tag 0x0105 with the Broadband Forum
line identification, TR-101 / RFC 4679), :func:`acct_session_id`, :func:`request_authenticator`.

Command line: :func:`add_radius_arguments` adds ``--radius``, ``--radius-secret-file``,
``--radius-timeout``, ``--radius-retries``, ``--acct-interim``, ``--nas-identifier`` and
``--coa-port`` to a parser; :func:`radius_config` makes the :class:`RadiusConfig` of them;
:func:`dynauth_clients` the ``clients`` of :class:`DynAuthServer`.

Octets attributes (passwords, CHAP values, TR-101 ids, Class) are set raw by attribute code:
pyrad's ``octets`` encoder would read a value starting with ``0x`` and hex digits as hex text.

Units: times in seconds, octet and packet counts as plain integers, data rates as the access
node sent them (TR-101 tag values are copied into the RFC 4679 attributes unchanged).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import hmac
import inspect
import ipaddress
import logging
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Any, Awaitable, Callable, Mapping, Optional, Union

from pyrad import packet as rpacket
from pyrad import tools as rtools
from pyrad.dictionary import Dictionary

from ..errors import UsageError
from .auth import AuthRequest, AuthResult

__all__ = [
    "AUTH_PORT", "ACCT_PORT", "COA_PORT", "TERMINATE_CAUSES", "ERROR_CAUSES",
    "RadiusConfig", "parse_server", "load_secret", "dictionary", "add_radius_arguments", "radius_config",
    "dynauth_clients",
    "LineInfo", "RadiusAuthResult", "AcctRecord", "RadiusClient", "RequestHandle", "InterimTimer",
    "acct_session_id", "new_boot_id", "parse_tr101", "tr101_line",
    "request_authenticator", "DynAuthServer", "session_matches",
]

log = logging.getLogger("pfrps.bng.radius")

AUTH_PORT = 1812   # RFC 2865 section 3
ACCT_PORT = 1813   # RFC 2866 section 3
COA_PORT = 3799    # RFC 5176 section 3

# RFC 2865 section 4 / RFC 2866 section 4 / RFC 5176 section 2: packet codes
ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT = 1, 2, 3
ACCOUNTING_REQUEST, ACCOUNTING_RESPONSE = 4, 5
ACCESS_CHALLENGE = 11
DISCONNECT_REQUEST, DISCONNECT_ACK, DISCONNECT_NAK = 40, 41, 42
COA_REQUEST, COA_ACK, COA_NAK = 43, 44, 45

# attribute codes read raw (RFC 2865 section 5 and the RFCs named in radius.dictionary)
A_USER_NAME, A_NAS_IP, A_FRAMED_IP, A_REPLY_MESSAGE, A_STATE, A_CLASS = 1, 4, 8, 18, 24, 25
A_SESSION_TIMEOUT, A_IDLE_TIMEOUT, A_CALLING_STATION, A_NAS_IDENTIFIER, A_PROXY_STATE = 27, 28, 31, 32, 33
A_ACCT_SESSION_ID, A_EVENT_TIMESTAMP, A_MESSAGE_AUTH, A_INTERIM = 44, 55, 80, 85
A_NAS_IPV6, A_FRAMED_IPV6_PREFIX, A_ERROR_CAUSE, A_DELEGATED_PREFIX, A_DNS6 = 95, 97, 101, 123, 169
A_SERVICE_TYPE, A_TERMINATION_ACTION = 6, 29
VENDOR_MICROSOFT, MS_PRIMARY_DNS, MS_SECONDARY_DNS = 311, 28, 29

#: RFC 2866 section 5.10 Acct-Terminate-Cause values, by name.
TERMINATE_CAUSES = {
    "User-Request": 1, "Lost-Carrier": 2, "Lost-Service": 3, "Idle-Timeout": 4, "Session-Timeout": 5,
    "Admin-Reset": 6, "Admin-Reboot": 7, "Port-Error": 8, "NAS-Error": 9, "NAS-Request": 10,
    "NAS-Reboot": 11, "Port-Unneeded": 12, "Port-Preempted": 13, "Port-Suspended": 14,
    "Service-Unavailable": 15, "Callback": 16, "User-Error": 17, "Host-Request": 18,
}

#: RFC 5176 section 3.5 Error-Cause values this module sends.
ERROR_CAUSES = {
    "Unsupported-Attribute": 401, "Missing-Attribute": 402, "NAS-Identification-Mismatch": 403,
    "Invalid-Request": 404, "Unsupported-Service": 405, "Session-Context-Not-Found": 503,
}

BBF_VENDOR = 3561                      # Broadband Forum (ex ADSL/DSL Forum), IANA enterprise number
TR101_NAMES = {                        # TR-101 / RFC 4679 sub-option (= vendor attribute) codes
    0x01: "circuit_id", 0x02: "remote_id",
    0x81: "rate_up", 0x82: "rate_down",                     # actual data rate
    0x83: "min_rate_up", 0x84: "min_rate_down", 0x85: "attainable_rate_up", 0x86: "attainable_rate_down",
    0x87: "max_rate_up", 0x88: "max_rate_down", 0x89: "min_rate_up_low_power", 0x8A: "min_rate_down_low_power",
    0x8B: "max_interleaving_delay_up", 0x8C: "actual_interleaving_delay_up",
    0x8D: "max_interleaving_delay_down", 0x8E: "actual_interleaving_delay_down",
    0x90: "access_loop_encapsulation", 0xFE: "iwf_session",
}
_TR101_BYTES = {0x01, 0x02, 0x90, 0xFE}   # the others are 4-octet unsigned integers
_MAX_STRING = 253                         # octets of one attribute value (RFC 2865 section 5)
_U32 = 0xFFFFFFFF


# -- dictionary ------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def dictionary() -> Dictionary:
    """The pyrad dictionary shipped as package data (``pfrps/bng/radius.dictionary``), read
    relative to the package (never the working directory) once per process."""
    with resources.files(__package__).joinpath("radius.dictionary").open("r", encoding="ascii") as f:
        return Dictionary(f)


# -- configuration ---------------------------------------------------------------------------------
def parse_server(text: str) -> tuple[str, int]:
    """Parse a ``--radius`` value: ``HOST[:PORT]`` with HOST an IPv4 address, or an IPv6 address
    (``[ADDR]:PORT`` with a port, bare ``ADDR`` without).

    Returns:
        ``(host, port)``; port 1812 (RFC 2865 section 3) when not given. Accounting goes to
        ``port + 1``.

    Raises:
        UsageError: not an IP address (names are not resolved: that would block a worker), or a
            port outside 1..65534.
    """
    t = text.strip()
    host, port_s = t, ""
    if t.startswith("["):
        end = t.find("]")
        if end < 0 or (t[end + 1:] and not t[end + 1:].startswith(":")):
            raise UsageError(f"--radius {text!r}: unbalanced brackets",
                             hint="write an IPv6 server as [2001:db8::1]:1812")
        host, port_s = t[1:end], t[end + 2:]
        if t[end + 1:] == ":":
            port_s = "?"
    elif t.count(":") == 1:
        host, port_s = t.split(":")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--radius {text!r}: {host!r} is not an IPv4 or IPv6 address",
                         hint="give the server's address (HOST[:PORT], [IPV6]:PORT); names are not resolved") from None
    port = AUTH_PORT
    if port_s:
        if not port_s.isdigit() or not 1 <= int(port_s) <= 65534:
            raise UsageError(f"--radius {text!r}: port {port_s!r} is not a number in 1..65534",
                             hint="the authentication port; accounting uses the next one (1812 -> 1813)")
        port = int(port_s)
    return str(addr), port


def load_secret(path: Union[str, os.PathLike]) -> bytes:
    """Read the RADIUS shared secret (RFC 2865 section 3) from ``path``: the first line, without
    surrounding whitespace, as bytes.

    Raises:
        UsageError: the file cannot be read, or its first line is empty.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(4096)
    except OSError as e:
        raise UsageError(f"--radius-secret-file {os.fspath(path)}: {e.strerror}",
                         code=e.errno or 0, hint="name a readable file holding the shared secret on its first line") from None
    lines = data.splitlines()
    secret = lines[0].strip() if lines else b""
    if not secret:
        raise UsageError(f"--radius-secret-file {os.fspath(path)}: the first line is empty",
                         hint="write the shared secret on the file's first line")
    return secret


def _server_arg(text: str) -> tuple[str, int]:
    """argparse ``type=`` for ``--radius``: :func:`parse_server` with argparse's error."""
    try:
        return parse_server(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(e.one_line()) from None


def add_radius_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the RADIUS options of ``pfrps-bng`` to ``parser`` (an argument group):
    ``--radius HOST[:PORT]`` (repeatable, failover order), ``--radius-secret-file FILE``,
    ``--radius-timeout S`` (3), ``--radius-retries N`` (3), ``--acct-interim S`` (none),
    ``--nas-identifier NAME`` (pfrps-bng), ``--coa-port PORT`` (3799). :func:`radius_config`
    turns the parsed arguments into a :class:`RadiusConfig`."""
    from pfrps.cliutil import int_range, positive_seconds  # noqa: PLC0415

    g = parser.add_argument_group("RADIUS (RFC 2865 authentication, RFC 2866 accounting, RFC 5176 CoA)")
    g.add_argument("--radius", action="append", default=[], type=_server_arg, metavar="HOST[:PORT]",
                   help="RADIUS server (IPv4, or [IPv6]:PORT), repeatable, in failover order; authentication on PORT "
                        "(default 1812), accounting on PORT+1")
    g.add_argument("--radius-secret-file", metavar="FILE", help="file whose first line is the RADIUS shared secret")
    g.add_argument("--radius-timeout", type=positive_seconds, default=3.0, metavar="S",
                   help="seconds before a request is retransmitted (default 3)")
    g.add_argument("--radius-retries", type=int_range(0, 20, "RADIUS retries"), default=3, metavar="N",
                   help="retransmissions to one server before failing over to the next (default 3)")
    g.add_argument("--acct-interim", type=positive_seconds, metavar="S",
                   help="seconds between accounting Interim-Updates when the server sends no Acct-Interim-Interval")
    g.add_argument("--nas-identifier", default="pfrps-bng", metavar="NAME", help="NAS-Identifier (default pfrps-bng)")
    g.add_argument("--coa-port", type=int_range(1, 65535, "CoA port"), default=COA_PORT, metavar="PORT",
                   help="UDP port for Disconnect-Request and CoA-Request (default 3799)")


def radius_config(args: argparse.Namespace, nas_ip: Optional[IPv4Address] = None,
                  nas_ipv6: Optional[IPv6Address] = None) -> Optional["RadiusConfig"]:
    """The :class:`RadiusConfig` of parsed :func:`add_radius_arguments` options; None without
    ``--radius``.

    Raises:
        UsageError: ``--radius`` without ``--radius-secret-file`` or the other way round, an
            unreadable or empty secret file, a bad NAS-Identifier.
    """
    if not args.radius:
        if args.radius_secret_file:
            raise UsageError("--radius-secret-file without --radius", hint="name the RADIUS server with --radius HOST[:PORT]")
        if args.acct_interim is not None:
            raise UsageError("--acct-interim without --radius", hint="accounting needs a RADIUS server (--radius HOST[:PORT])")
        return None
    if not args.radius_secret_file:
        raise UsageError("--radius needs --radius-secret-file", hint="write the shared secret into a file and name it")
    return RadiusConfig(servers=tuple(args.radius), secret=load_secret(args.radius_secret_file),
                        timeout=args.radius_timeout, retries=args.radius_retries, nas_identifier=args.nas_identifier,
                        nas_ip=nas_ip, nas_ipv6=nas_ipv6, acct_interim=args.acct_interim, coa_port=args.coa_port)


def dynauth_clients(config: "RadiusConfig") -> dict[str, bytes]:
    """``{server address: secret}`` for :class:`DynAuthServer`: the configured RADIUS servers are
    the Dynamic Authorization Clients (they send Disconnect and CoA with the same secret)."""
    return {_norm_ip(host): config.secret for host, _port in config.servers}


@dataclass(frozen=True)
class RadiusConfig:
    """RADIUS settings of the BNG (shared by every worker).

    Attributes:
        servers: ``(host, port)`` in failover order (``--radius``, repeatable); the port is the
            authentication port, accounting uses ``port + 1``.
        secret: the shared secret (``--radius-secret-file``), same for every server.
        timeout: seconds between a transmission and its retransmission (``--radius-timeout``).
        retries: retransmissions to one server before failing over (``--radius-retries``); one
            server is tried ``1 + retries`` times.
        nas_identifier: NAS-Identifier (RFC 2865 section 5.32, ``--nas-identifier``).
        nas_ip: NAS-IP-Address (RFC 2865 section 5.4), None to leave it out.
        nas_ipv6: NAS-IPv6-Address (RFC 3162 section 2.1), None to leave it out.
        acct_interim: default Interim-Update interval in seconds (``--acct-interim``), used when
            the Access-Accept has no Acct-Interim-Interval; None: no Interim-Updates.
        coa_port: UDP port of the dynamic authorization listener (``--coa-port``, RFC 5176).
        dead_time: seconds a server that timed out is skipped (tried last) by new requests.
        acct_queue_max: accounting records held at most (queued and in flight).
        acct_window: Accounting-Requests in flight at most.
        acct_backoff: seconds before a record no server answered is tried again.
        require_message_authenticator: drop Access-Accept/-Reject without Message-Authenticator
            (RFC 2869 section 5.14; FreeRADIUS 3.2.1 does not send one by default).
    """

    servers: tuple[tuple[str, int], ...]
    secret: bytes
    timeout: float = 3.0
    retries: int = 3
    nas_identifier: str = "pfrps-bng"
    nas_ip: Optional[IPv4Address] = None
    acct_interim: Optional[float] = None
    coa_port: int = COA_PORT
    nas_ipv6: Optional[IPv6Address] = None
    dead_time: float = 30.0
    acct_queue_max: int = 4096
    acct_window: int = 64
    acct_backoff: float = 5.0
    require_message_authenticator: bool = False

    def __post_init__(self) -> None:
        if not self.servers:
            raise UsageError("no RADIUS server", hint="give --radius HOST[:PORT] at least once")
        if not self.secret:
            raise UsageError("the RADIUS secret is empty", hint="write it on the first line of --radius-secret-file")
        if not self.timeout > 0:
            raise UsageError(f"--radius-timeout {self.timeout}: not above 0", hint="seconds, e.g. 3")
        if self.retries < 0:
            raise UsageError(f"--radius-retries {self.retries}: negative", hint="retransmissions per server, e.g. 3")
        if self.acct_interim is not None and not self.acct_interim > 0:
            raise UsageError(f"--acct-interim {self.acct_interim}: not above 0", hint="seconds between Interim-Updates, e.g. 300")
        if not 1 <= self.coa_port <= 65535:
            raise UsageError(f"--coa-port {self.coa_port}: not in 1..65535", hint="RFC 5176 uses 3799")
        if not self.nas_identifier or len(self.nas_identifier.encode()) > _MAX_STRING:
            raise UsageError(f"--nas-identifier {self.nas_identifier!r}: empty or over {_MAX_STRING} bytes",
                             hint="a short name of this BNG")
        if self.acct_queue_max < 1 or self.acct_window < 1:
            raise UsageError("accounting queue and window need room for one record", hint="use 1 or more")


# -- line identification (TR-101) ------------------------------------------------------------------
@dataclass(frozen=True)
class LineInfo:
    """Where a subscriber is: sent in Access-Request and Accounting-Request.

    Attributes:
        nas_port_id: NAS-Port-Id (RFC 2869 section 5.17), e.g. ``"acc0:100:200"`` (interface
            and VLANs).
        calling_station_id: Calling-Station-Id (RFC 2865 section 5.31), the client MAC, e.g.
            ``"02:00:00:00:00:01"``.
        circuit_id: TR-101 Agent-Circuit-Id from the PPPoE tag 0x0105 (RFC 4679 section 3.1).
        remote_id: TR-101 Agent-Remote-Id (RFC 4679 section 3.2).
        rate_up: Actual-Data-Rate-Upstream as the access node sent it (RFC 4679 3.3).
        rate_down: Actual-Data-Rate-Downstream (RFC 4679 section 3.4).
    """

    nas_port_id: str = ""
    calling_station_id: str = ""
    circuit_id: Optional[bytes] = None
    remote_id: Optional[bytes] = None
    rate_up: Optional[int] = None
    rate_down: Optional[int] = None


def parse_tr101(tag_value: bytes) -> dict[str, Any]:
    """Parse the value of a PPPoE Vendor-Specific tag (RFC 2516 tag 0x0105) carrying TR-101 line
    identification: a 4-octet vendor id 3561 (Broadband Forum), then sub-options
    ``Type (1) | Length (1) | Value`` (TR-101 section 3.9.3, RFC 4679 section 3).

    Never raises.

    Returns:
        ``{}`` when the tag is shorter than 4 octets or another vendor's. Otherwise the
        sub-options by name (:data:`TR101_NAMES`): ``circuit_id``, ``remote_id``,
        ``access_loop_encapsulation``, ``iwf_session`` as bytes; the data rates and
        interleaving delays (``rate_up``, ``rate_down``, ...) as ints (4 octets, big endian);
        unknown sub-options as ``{"unknown": {type: bytes}}``.
        A malformed tail (a sub-option overrunning the tag, a rate not 4 octets long) stops
        parsing and is described under ``"malformed"``; what came before it is kept.
    """
    data = bytes(tag_value)
    if len(data) < 4 or struct.unpack_from("!I", data)[0] != BBF_VENDOR:
        return {}
    out: dict[str, Any] = {}
    off = 4
    while off < len(data):
        if off + 2 > len(data):
            out["malformed"] = f"sub-option header cut at offset {off}"
            break
        typ, ln = data[off], data[off + 1]
        if off + 2 + ln > len(data):
            out["malformed"] = f"sub-option 0x{typ:02x} length {ln} runs past the tag ({len(data) - off - 2} left)"
            break
        value = data[off + 2:off + 2 + ln]
        off += 2 + ln
        name = TR101_NAMES.get(typ)
        if name is None:
            out.setdefault("unknown", {})[typ] = value
        elif typ in _TR101_BYTES:
            out[name] = value
        elif ln != 4:
            out["malformed"] = f"sub-option 0x{typ:02x} ({name}) of {ln} octets, want 4"
            break
        else:
            out[name] = struct.unpack("!I", value)[0]
    return out


def tr101_line(tag_value: Optional[bytes], nas_port_id: str, calling_station_id: str) -> LineInfo:
    """A :class:`LineInfo` from the PPPoE tag 0x0105 value (None when the PADR had none)."""
    t = parse_tr101(tag_value) if tag_value else {}
    return LineInfo(nas_port_id, calling_station_id, t.get("circuit_id"), t.get("remote_id"),
                    t.get("rate_up"), t.get("rate_down"))


# -- Acct-Session-Id ---------------------------------------------------------------------------------
def new_boot_id() -> int:
    """A 48-bit id of this BNG run: seconds since the epoch (32 bits) and 16 random bits, so runs
    differ even within one second. Take it once in the supervisor, before fork."""
    return ((int(time.time()) & _U32) << 16) | int.from_bytes(os.urandom(2), "big")


def acct_session_id(worker_id: int, boot_id: int, counter: int) -> str:
    """Acct-Session-Id (RFC 2866 section 5.5) unique across workers and runs: 26 upper-case hex
    digits ``BBBBBBBBBBBB WWWW CCCCCCCCCC`` (boot id 48 bits, worker 16 bits, per-worker counter
    40 bits), e.g. ``acct_session_id(1, 0x65f0a1b2c3d4, 7) == "65F0A1B2C3D40001" "0000000007"``.

    Raises:
        ValueError: a part is negative or too large for its field.
    """
    if not 0 <= worker_id <= 0xFFFF:
        raise ValueError(f"worker id {worker_id} outside 0..65535")
    if not 0 <= boot_id < 1 << 48:
        raise ValueError(f"boot id {boot_id} outside 48 bits")
    if not 0 <= counter < 1 << 40:
        raise ValueError(f"counter {counter} outside 40 bits")
    return f"{boot_id:012X}{worker_id:04X}{counter:010X}"


# -- results and records -------------------------------------------------------------------------
@dataclass(frozen=True)
class RadiusAuthResult(AuthResult):
    """An Access-Accept/-Reject applied to a session (RFC 2865 section 4.2/4.3); extends
    :class:`pfrps.bng.auth.AuthResult` (``ok``, ``message``, ``ipv4``).

    Attributes:
        message: the Reply-Message(s) (RFC 2865 section 5.18), joined, cut to 255 octets (what
            a PAP Nak / CHAP Failure message field holds).
        ipv4: Framed-IP-Address (section 5.8); None for 255.255.255.254 ("NAS selects") and
            255.255.255.255 ("user selects") or when absent: take one from the pool.
        ipv6_prefix: Framed-IPv6-Prefix (RFC 3162 section 2.3), the WAN prefix for SLAAC.
        delegated_prefix: Delegated-IPv6-Prefix (RFC 4818), for DHCPv6-PD.
        dns4: MS-Primary-/MS-Secondary-DNS-Server (RFC 2548 section 2.3.2/2.3.3).
        dns6: DNS-Server-IPv6-Address (RFC 6911 section 3.1).
        session_timeout: Session-Timeout seconds (RFC 2865 section 5.27).
        idle_timeout: Idle-Timeout seconds (RFC 2865 section 5.28).
        interim: Acct-Interim-Interval seconds (RFC 2869 section 5.16).
        class_: the Class attribute(s) (RFC 2865 section 5.25), to echo in accounting.
        timed_out: no server answered (``ok`` is False then).
        server: ``(host, port)`` that answered.
    """

    ipv6_prefix: Optional[IPv6Network] = None
    delegated_prefix: Optional[IPv6Network] = None
    dns4: tuple[IPv4Address, ...] = ()
    dns6: tuple[IPv6Address, ...] = ()
    session_timeout: Optional[int] = None
    idle_timeout: Optional[int] = None
    interim: Optional[int] = None
    class_: tuple[bytes, ...] = ()
    timed_out: bool = False
    server: Optional[tuple[str, int]] = None


@dataclass(frozen=True)
class AcctRecord:
    """One session's accounting state at a moment (RFC 2866 section 5, RFC 2869 section 5.1).

    Input is what the subscriber sent (the XDP ``up_*`` counters), output what it received
    (``down_*``). Octet counts above 2^32 - 1 are split into Acct-*-Octets and
    Acct-*-Gigawords (RFC 2869 section 5.1/5.2); packet counts are sent modulo 2^32.

    Attributes:
        session_id: Acct-Session-Id (:func:`acct_session_id`).
        user: User-Name.
        line: the subscriber's line.
        session_time: Acct-Session-Time, seconds since the NCPs opened.
        input_octets, output_octets, input_packets, output_packets: counters.
        ipv4: Framed-IP-Address; ipv6_prefix: Framed-IPv6-Prefix; delegated_prefix:
            Delegated-IPv6-Prefix.
        terminate_cause: Acct-Terminate-Cause for Stop, a name of :data:`TERMINATE_CAUSES` or
            its number.
        class_: Class attributes of the Access-Accept, echoed (RFC 2865 section 5.25).
        authentic: Acct-Authentic (RFC 2866 section 5.6): ``"RADIUS"`` or ``"Local"``.
    """

    session_id: str
    user: bytes
    line: LineInfo = field(default_factory=LineInfo)
    session_time: int = 0
    input_octets: int = 0
    output_octets: int = 0
    input_packets: int = 0
    output_packets: int = 0
    ipv4: Optional[IPv4Address] = None
    ipv6_prefix: Optional[IPv6Network] = None
    delegated_prefix: Optional[IPv6Network] = None
    terminate_cause: Union[str, int, None] = None
    class_: tuple[bytes, ...] = ()
    authentic: str = "RADIUS"


# -- authenticators ----------------------------------------------------------------------------------
def request_authenticator(raw: bytes, secret: bytes) -> bytes:
    """The Request Authenticator of an Accounting-Request, Disconnect-Request or CoA-Request:
    ``MD5(Code | Identifier | Length | 16 zero octets | Attributes | secret)`` (RFC 2866
    section 3, RFC 5176 section 2.3). ``raw`` is the packet as sent (octets past Length are
    padding and ignored)."""
    length = struct.unpack_from("!H", raw, 2)[0] if len(raw) >= 4 else len(raw)
    raw = raw[:length]
    return hashlib.md5(raw[:4] + bytes(16) + raw[20:] + secret).digest()


def _raw(pkt: rpacket.Packet, key) -> list[bytes]:
    """Raw values of attribute ``key`` (a code or ``(vendor, code)``), [] when absent."""
    return list(collections.OrderedDict.get(pkt, key, []))


def _u32(values: list[bytes]) -> Optional[int]:
    for v in values:
        if len(v) == 4:
            return struct.unpack("!I", v)[0]
    return None


def _prefix(values: list[bytes]) -> Optional[IPv6Network]:
    for v in values:
        try:
            return IPv6Network(rtools.DecodeIPv6Prefix(v))
        except ValueError:
            continue
    return None


def _norm_ip(host: str) -> str:
    """An address as text, IPv4-mapped IPv6 as plain IPv4, without a scope."""
    a = ipaddress.ip_address(str(host).split("%")[0])
    if a.version == 6 and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return str(a)


def _text(v: bytes) -> str:
    return v.decode("utf-8", "replace")


# -- the client ------------------------------------------------------------------------------------
class RequestHandle:
    """Returned by :meth:`RadiusClient.authenticate`: :meth:`cancel` drops the request (no more
    retransmissions, ``done`` is never called), e.g. when the session ends first."""

    __slots__ = ("_client", "_req")

    def __init__(self, client: "RadiusClient", req: "_Pending") -> None:
        self._client, self._req = client, req

    def cancel(self) -> None:
        """Forget the request (idempotent)."""
        self._client._finish(self._req)
        self._req.done = None

    @property
    def pending(self) -> bool:
        """True until the answer (or the give-up) was delivered or the request cancelled."""
        return self._req.done is not None


class _Pending:
    """One request on its way: an Access-Request, or an Accounting-Request of a queued record."""

    __slots__ = ("kind", "pkt", "raw", "dest", "server", "ident", "sends", "tried", "timer", "done",
                 "created", "seq", "status")

    def __init__(self, kind: str, pkt: rpacket.Packet, done: Any, seq: int, now: float, status: str = "") -> None:
        self.kind = kind              # "auth" or "acct"
        self.pkt = pkt
        self.raw = b""
        self.dest: Optional[tuple] = None   # socket address of the current server
        self.server = -1              # index into RadiusConfig.servers
        self.ident = -1               # Identifier on dest, -1 while none is held
        self.sends = 0                # transmissions to the current server
        self.tried = 0                # servers tried in this round
        self.timer: Optional[asyncio.TimerHandle] = None
        self.done = done              # auth: callback; acct: True while wanted
        self.created = now            # loop time the request was made
        self.seq = seq
        self.status = status          # acct: "start" | "interim" | "stop"


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Any], None], on_error: Callable[[Exception], None]) -> None:
        self.on_datagram, self.on_error = on_datagram, on_error

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.on_error(exc)


#: Receive and send buffer of a worker's RADIUS socket, bytes (the kernel caps it at
#: net.core.rmem_max / wmem_max).
SOCKET_BUFFER = 4 << 20


class RadiusClient:
    """RADIUS client of one worker: Access-Request (RFC 2865), Accounting-Request (RFC 2866)
    with retransmission, failover across servers, and an accounting queue.

    Args:
        config: the settings.
        loop: the worker's event loop (uvloop); every callback runs on it.

    Counters (:attr:`counters`, monotonic unless marked): ``requests`` (Access-Requests asked
    for), ``accepts``, ``rejects``, ``challenges`` (Access-Challenge, treated as reject),
    ``auth_timeouts`` (Access-Requests no server answered), ``retransmits``, ``timeouts`` (a
    server did not answer one request after all retransmissions), ``failovers`` (a request moved
    to the next server), ``acct_requests`` (records queued), ``acct_responses``,
    ``acct_requeued`` (a record no server answered, queued again), ``acct_overflow`` (records
    dropped, queue full), ``acct_queued`` (gauge: records queued or in flight), ``bad_replies``
    (wrong authenticator, unknown or unexpected packet), ``malformed``, ``id_waits`` (a request
    waited for a free Identifier), ``socket_errors``, ``local_errors`` (a request that cannot be
    encoded, e.g. a password over 128 octets: answered as a reject at once).
    """

    def __init__(self, config: RadiusConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        self.dict = dictionary()
        self.counters: dict[str, int] = dict.fromkeys((
            "requests", "accepts", "rejects", "challenges", "auth_timeouts", "retransmits", "timeouts",
            "failovers", "acct_requests", "acct_responses", "acct_requeued", "acct_overflow", "acct_queued",
            "bad_replies", "malformed", "id_waits", "socket_errors", "local_errors"), 0)
        self._transport: Optional[asyncio.DatagramTransport] = None
        self._v6 = any(":" in h for h, _ in config.servers)
        # socket addresses: auth and acct of every server, in order
        self._auth_dest = [self._sockaddr(h, p) for h, p in config.servers]
        self._acct_dest = [self._sockaddr(h, p + 1) for h, p in config.servers]
        # (normalised address, port) of a datagram -> the destination it answers for
        self._by_addr = {(_norm_ip(d[0]), d[1]): d for d in self._auth_dest + self._acct_dest}
        self._dead_until: dict[tuple, float] = {}
        self._next_id: dict[tuple, int] = {}
        self._inflight: dict[tuple, dict[int, _Pending]] = {}    # dest -> ident -> request
        self._id_wait: collections.deque[_Pending] = collections.deque()
        self._acct_queue: collections.deque[_Pending] = collections.deque()   # waiting to be sent
        self._acct_live: dict[int, _Pending] = {}     # seq -> every record queued or in flight
        self._acct_inflight = 0
        self._acct_paused_until = 0.0
        self._acct_timer: Optional[asyncio.TimerHandle] = None
        self._acct_idle: Optional[asyncio.Event] = None
        self._seq = 0
        self._closed = False

    def _sockaddr(self, host: str, port: int) -> tuple:
        if self._v6:
            addr = ipaddress.ip_address(host)
            if addr.version == 4:
                host = f"::ffff:{host}"
            return (str(ipaddress.ip_address(host)), port, 0, 0)
        return (host, port)

    # -- life cycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the UDP socket (IPv4, or dual-stack IPv6 when a server is IPv6) on the loop."""
        fam = socket.AF_INET6 if self._v6 else socket.AF_INET
        sock = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            if self._v6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind(("::", 0))
            else:
                sock.bind(("0.0.0.0", 0))
            # a burst of set-ups answers hundreds of requests at once: the 208 KiB default
            # dropped replies (UDP RcvbufErrors), which came back as duplicate accounting
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            sock.setblocking(False)
            self._transport, _ = await self.loop.create_datagram_endpoint(
                lambda: _Proto(self._on_datagram, self._on_error), sock=sock)
        except BaseException:
            sock.close()
            raise

    def close(self) -> int:
        """Close the socket and stop every timer; pending Access-Requests are dropped without
        calling ``done``. Returns the number of accounting records still queued or in flight
        (lost); :meth:`drain` first to send them."""
        self._closed = True
        lost = self.counters["acct_queued"]
        for table in self._inflight.values():
            for req in list(table.values()):
                if req.timer is not None:
                    req.timer.cancel()
        self._inflight.clear()
        self._id_wait.clear()
        self._acct_queue.clear()
        self._acct_live.clear()
        if self._acct_timer is not None:
            self._acct_timer.cancel()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        return lost

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every accounting record was answered (e.g. the
        Stops of a shutdown). Returns True when the queue is empty."""
        if self.counters["acct_queued"] == 0:
            return True
        self._acct_idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._acct_idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            self._acct_idle = None
        return True

    @property
    def local_address(self) -> Optional[tuple]:
        """The socket's address (host, port), None before :meth:`start`."""
        return self._transport.get_extra_info("sockname") if self._transport else None

    # -- authentication ------------------------------------------------------------------------------
    def authenticate(self, req: AuthRequest, line: LineInfo, done: Callable[[RadiusAuthResult], None],
                     acct_session_id: Optional[str] = None) -> RequestHandle:
        """Send an Access-Request (RFC 2865 section 4.1) for ``req``; never blocks.

        Attributes: User-Name; User-Password (PAP, hidden with the secret, section 5.2) or
        CHAP-Password + CHAP-Challenge (sections 5.3, 5.40); NAS-Identifier, NAS-IP-Address /
        NAS-IPv6-Address; NAS-Port-Type Virtual; NAS-Port-Id; Calling-Station-Id; Service-Type
        Framed-User; Framed-Protocol PPP; the TR-101 vendor attributes of ``line`` (RFC 4679);
        Acct-Session-Id when given; Message-Authenticator (RFC 2869 section 5.14, first).

        Args:
            done: called once, later, on the loop, with the :class:`RadiusAuthResult` (also
                when no server answered: ``ok=False, timed_out=True``), unless cancelled.

        Returns:
            a :class:`RequestHandle` to cancel the request.
        """
        self.counters["requests"] += 1
        pkt = rpacket.AuthPacket(rpacket.AccessRequest, id=0, secret=self.config.secret, dict=self.dict)
        pend = _Pending("auth", pkt, done, self._next_seq(), self.loop.time())
        try:
            pkt.add_message_authenticator()
            pkt["User-Name"] = bytes(req.user)
            if req.method == "pap":
                pkt.authenticator = pkt.CreateAuthenticator()
                pkt[2] = [pkt.PwCrypt(bytes(req.password or b""))]          # User-Password
            else:
                if req.chap_id is None or not req.challenge or not req.response:
                    raise ValueError("CHAP request without identifier, challenge or response")
                pkt[3] = [bytes([req.chap_id]) + bytes(req.response)]        # CHAP-Password
                pkt[60] = [bytes(req.challenge)]                               # CHAP-Challenge
            self._nas_attrs(pkt)
            pkt["Service-Type"] = "Framed-User"
            pkt["Framed-Protocol"] = "PPP"
            self._line_attrs(pkt, line)
            if acct_session_id:
                pkt["Acct-Session-Id"] = acct_session_id
            pkt.RequestPacket()                       # every value encodes
        except (ValueError, TypeError) as e:
            self.counters["local_errors"] += 1
            log.warning("RADIUS: cannot encode the Access-Request of %r: %s", req.user, e)
            self.loop.call_soon(self._deliver, pend, RadiusAuthResult(False))
            return RequestHandle(self, pend)
        self._dispatch(pend)
        return RequestHandle(self, pend)

    def _nas_attrs(self, pkt: rpacket.Packet) -> None:
        pkt["NAS-Identifier"] = self.config.nas_identifier
        if self.config.nas_ip is not None:
            pkt["NAS-IP-Address"] = str(self.config.nas_ip)
        if self.config.nas_ipv6 is not None:
            pkt["NAS-IPv6-Address"] = str(self.config.nas_ipv6)
        pkt["NAS-Port-Type"] = "Virtual"

    @staticmethod
    def _line_attrs(pkt: rpacket.Packet, line: LineInfo) -> None:
        if line.nas_port_id:
            pkt["NAS-Port-Id"] = line.nas_port_id
        if line.calling_station_id:
            pkt["Calling-Station-Id"] = line.calling_station_id
        if line.circuit_id:                          # in a Vendor-Specific: 247 octets at most
            pkt[(BBF_VENDOR, 1)] = [bytes(line.circuit_id[:_MAX_STRING - 6])]    # Agent-Circuit-Id
        if line.remote_id:
            pkt[(BBF_VENDOR, 2)] = [bytes(line.remote_id[:_MAX_STRING - 6])]     # Agent-Remote-Id
        if line.rate_up is not None:
            pkt["Actual-Data-Rate-Upstream"] = min(line.rate_up, _U32)
        if line.rate_down is not None:
            pkt["Actual-Data-Rate-Downstream"] = min(line.rate_down, _U32)

    def _auth_result(self, reply: rpacket.Packet, server: int) -> RadiusAuthResult:
        msg = b"".join(_raw(reply, A_REPLY_MESSAGE))[:255]
        srv = self.config.servers[server]
        if reply.code != ACCESS_ACCEPT:
            self.counters["challenges" if reply.code == ACCESS_CHALLENGE else "rejects"] += 1
            return RadiusAuthResult(False, msg, server=srv)
        self.counters["accepts"] += 1
        ipv4 = None
        for v in _raw(reply, A_FRAMED_IP):
            if len(v) == 4:
                a = IPv4Address(v)
                ipv4 = None if a in (IPv4Address("255.255.255.254"), IPv4Address("255.255.255.255")) else a
                break
        dns4 = tuple(IPv4Address(v) for key in ((VENDOR_MICROSOFT, MS_PRIMARY_DNS), (VENDOR_MICROSOFT, MS_SECONDARY_DNS))
                     for v in _raw(reply, key) if len(v) == 4)
        dns6 = tuple(IPv6Address(v) for v in _raw(reply, A_DNS6) if len(v) == 16)
        return RadiusAuthResult(
            True, msg, ipv4, ipv6_prefix=_prefix(_raw(reply, A_FRAMED_IPV6_PREFIX)),
            delegated_prefix=_prefix(_raw(reply, A_DELEGATED_PREFIX)), dns4=dns4, dns6=dns6,
            session_timeout=_u32(_raw(reply, A_SESSION_TIMEOUT)), idle_timeout=_u32(_raw(reply, A_IDLE_TIMEOUT)),
            interim=_u32(_raw(reply, A_INTERIM)), class_=tuple(_raw(reply, A_CLASS)), server=srv)

    def _deliver(self, req: _Pending, result: RadiusAuthResult) -> None:
        done, req.done = req.done, None
        if done is not None:
            done(result)

    # -- accounting ----------------------------------------------------------------------------------
    def account(self, kind: str, rec: AcctRecord) -> bool:
        """Queue an Accounting-Request (RFC 2866 section 4.1) with Acct-Status-Type ``kind``:
        ``"start"`` (when the NCPs open), ``"interim"`` (Interim-Update, RFC 2869 section
        2.1) or ``"stop"`` (with ``rec.terminate_cause``). Never blocks; retried across the
        servers until one answers (see the module doc).

        Attributes: Acct-Status-Type, Acct-Session-Id, User-Name, NAS-Identifier /
        NAS-IP-Address / NAS-IPv6-Address, NAS-Port-Type, NAS-Port-Id, Calling-Station-Id, the
        TR-101 vendor attributes, Service-Type, Framed-Protocol, Framed-IP-Address,
        Framed-IPv6-Prefix, Delegated-IPv6-Prefix, Class, Acct-Authentic, Event-Timestamp,
        Acct-Delay-Time; for interim and stop also Acct-Session-Time, Acct-Input/Output-Octets,
        -Packets and -Gigawords; for stop Acct-Terminate-Cause.

        Returns:
            True when queued, False when dropped (queue full, counted in ``acct_overflow``).

        Raises:
            ValueError: an unknown ``kind`` or terminate cause, a value that cannot be encoded.
        """
        status = {"start": "Start", "interim": "Interim-Update", "stop": "Stop"}.get(kind)
        if status is None:
            raise ValueError(f"accounting kind {kind!r}; use start, interim or stop")
        pkt = rpacket.AcctPacket(rpacket.AccountingRequest, id=0, secret=self.config.secret, dict=self.dict)
        pkt["Acct-Status-Type"] = status
        pkt["Acct-Session-Id"] = rec.session_id
        pkt["User-Name"] = bytes(rec.user)
        self._nas_attrs(pkt)
        self._line_attrs(pkt, rec.line)
        pkt["Service-Type"] = "Framed-User"
        pkt["Framed-Protocol"] = "PPP"
        if rec.ipv4 is not None:
            pkt["Framed-IP-Address"] = str(rec.ipv4)
        if rec.ipv6_prefix is not None:
            pkt["Framed-IPv6-Prefix"] = rec.ipv6_prefix
        if rec.delegated_prefix is not None:
            pkt["Delegated-IPv6-Prefix"] = rec.delegated_prefix
        if rec.class_:
            pkt[A_CLASS] = [bytes(c) for c in rec.class_]
        pkt["Acct-Authentic"] = rec.authentic
        pkt["Event-Timestamp"] = int(time.time())
        if kind != "start":
            pkt["Acct-Session-Time"] = max(0, int(rec.session_time))
            for direction, octets, packets in (("Input", rec.input_octets, rec.input_packets),
                                               ("Output", rec.output_octets, rec.output_packets)):
                pkt[f"Acct-{direction}-Octets"] = octets & _U32
                pkt[f"Acct-{direction}-Gigawords"] = (octets >> 32) & _U32
                pkt[f"Acct-{direction}-Packets"] = packets & _U32
        if kind == "stop":
            cause = rec.terminate_cause if rec.terminate_cause is not None else "User-Request"
            if isinstance(cause, str):
                if cause not in TERMINATE_CAUSES:
                    raise ValueError(f"Acct-Terminate-Cause {cause!r}; use one of {sorted(TERMINATE_CAUSES)}")
                cause = TERMINATE_CAUSES[cause]
            pkt["Acct-Terminate-Cause"] = int(cause)
        pkt["Acct-Delay-Time"] = 0
        pkt.RequestPacket()                           # every value encodes (raises ValueError)
        item = _Pending("acct", pkt, True, self._next_seq(), self.loop.time(), kind)
        if len(self._acct_live) >= self.config.acct_queue_max:
            self.counters["acct_overflow"] += 1
            victim = next((q for q in self._acct_live.values() if q.status == "interim"), None)
            if victim is None:
                log.warning("RADIUS accounting queue full (%d): dropped a %s record of %s",
                            self.config.acct_queue_max, kind, rec.session_id)
                return False
            self._acct_drop(victim)
        self.counters["acct_requests"] += 1
        self._acct_live[item.seq] = item
        self.counters["acct_queued"] = len(self._acct_live)
        self._acct_queue.append(item)
        self._pump_acct()
        return True

    def _acct_drop(self, item: _Pending) -> None:
        """Forget a queued or in-flight record (the overflow victim)."""
        if item in self._acct_queue:
            self._acct_queue.remove(item)
        elif item.ident >= 0 or item in self._id_wait:
            self._finish(item)
            self._acct_inflight -= 1
        item.done = None
        del self._acct_live[item.seq]
        self.counters["acct_queued"] = len(self._acct_live)

    def start_interim(self, get_record: Callable[[], Optional[AcctRecord]], interval: float) -> "InterimTimer":
        """Send ``account("interim", get_record())`` every ``interval`` seconds (RFC 2869 section
        5.16) until ``get_record`` returns None or the returned :class:`InterimTimer` is
        cancelled (do that when the session stops, before its Stop record).

        Raises:
            ValueError: ``interval`` not above 0.
        """
        return InterimTimer(self, get_record, interval)

    def _pump_acct(self) -> None:
        if self._closed:
            return
        if self.loop.time() < self._acct_paused_until:
            if self._acct_timer is None:
                self._acct_timer = self.loop.call_at(self._acct_paused_until, self._acct_resume)
            return
        while self._acct_queue and self._acct_inflight < self.config.acct_window:
            item = self._acct_queue.popleft()
            self._acct_inflight += 1
            item.tried = 0
            self._dispatch(item)

    def _acct_resume(self) -> None:
        self._acct_timer = None
        self._pump_acct()

    def _acct_done(self, item: _Pending) -> None:
        self._acct_inflight -= 1
        self._acct_live.pop(item.seq, None)
        self.counters["acct_queued"] = len(self._acct_live)
        if not self._acct_live and self._acct_idle is not None:
            self._acct_idle.set()
        self._pump_acct()

    def _acct_requeue(self, item: _Pending) -> None:
        """No server answered ``item``: put it back in sequence order, pause the queue."""
        self.counters["acct_requeued"] += 1
        self._acct_inflight -= 1
        pos = next((i for i, q in enumerate(self._acct_queue) if q.seq > item.seq), len(self._acct_queue))
        self._acct_queue.insert(pos, item)
        self._acct_paused_until = self.loop.time() + self.config.acct_backoff
        self._pump_acct()

    # -- transport -----------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _pick_server(self, req: _Pending) -> int:
        """The first server (in order) not dead; all dead: the first one after the current."""
        n = len(self.config.servers)
        dests = self._auth_dest if req.kind == "auth" else self._acct_dest
        now = self.loop.time()
        if req.server < 0:
            for i in range(n):
                if self._dead_until.get(dests[i], 0.0) <= now:
                    return i
            return 0
        return (req.server + 1) % n

    def _dispatch(self, req: _Pending) -> None:
        """Send ``req`` to its next server with a fresh Identifier."""
        if self._closed:
            return
        req.server = self._pick_server(req)
        req.dest = (self._auth_dest if req.kind == "auth" else self._acct_dest)[req.server]
        req.tried += 1
        req.sends = 0
        ident = self._alloc_id(req.dest, req)
        if ident is None:
            self.counters["id_waits"] += 1
            self._id_wait.append(req)
            return
        self._encode_and_send(req, ident)

    def _alloc_id(self, dest: tuple, req: _Pending) -> Optional[int]:
        table = self._inflight.setdefault(dest, {})
        if len(table) >= 256:
            return None
        ident = self._next_id.get(dest, int.from_bytes(os.urandom(1), "big"))
        while ident in table:
            ident = (ident + 1) & 0xFF
        self._next_id[dest] = (ident + 1) & 0xFF
        table[ident] = req
        return ident

    def _release_id(self, req: _Pending) -> None:
        if req.ident >= 0 and req.dest is not None:
            table = self._inflight.get(req.dest, {})
            if table.get(req.ident) is req:
                del table[req.ident]
            req.ident = -1
            waiting = [w for w in self._id_wait if w.dest == req.dest]
            if waiting:
                w = waiting[0]
                self._id_wait.remove(w)
                ident = self._alloc_id(w.dest, w)
                if ident is not None:
                    self._encode_and_send(w, ident)

    def _encode_and_send(self, req: _Pending, ident: int) -> None:
        req.ident = ident
        req.pkt.id = ident
        if req.kind == "acct":
            # RFC 2866 5.2: seconds the record waited; a new value needs a new Identifier (RFC 5080 2.2.1)
            req.pkt["Acct-Delay-Time"] = int(self.loop.time() - req.created)
        req.raw = req.pkt.RequestPacket()
        self._send(req)

    def _send(self, req: _Pending) -> None:
        req.sends += 1
        if self._transport is None:
            self.counters["socket_errors"] += 1
        else:
            self._transport.sendto(req.raw, req.dest)
        req.timer = self.loop.call_later(self.config.timeout, self._on_timeout, req)

    def _on_timeout(self, req: _Pending) -> None:
        req.timer = None
        if req.done is None:
            return
        if req.sends <= self.config.retries:
            self.counters["retransmits"] += 1
            self._send(req)                            # same Identifier, same bytes
            return
        self.counters["timeouts"] += 1
        self._dead_until[req.dest] = self.loop.time() + self.config.dead_time
        log.info("RADIUS server %s:%s did not answer (%s, %d tries)", req.dest[0], req.dest[1], req.kind, req.sends)
        self._release_id(req)
        if req.tried < len(self.config.servers):
            self.counters["failovers"] += 1
            self._dispatch(req)
            return
        if req.kind == "auth":
            self.counters["auth_timeouts"] += 1
            self._deliver(req, RadiusAuthResult(False, b"", timed_out=True))
        else:
            req.server = -1
            self._acct_requeue(req)

    def _finish(self, req: _Pending) -> None:
        """Stop retransmitting ``req`` and free its Identifier."""
        if req.timer is not None:
            req.timer.cancel()
            req.timer = None
        if req in self._id_wait:
            self._id_wait.remove(req)
        self._release_id(req)

    def _on_error(self, exc: Exception) -> None:
        self.counters["socket_errors"] += 1

    def _on_datagram(self, data: bytes, addr: Any) -> None:
        try:
            dest = self._by_addr.get((_norm_ip(addr[0]), addr[1]))
        except (ValueError, IndexError, TypeError):
            dest = None
        table = self._inflight.get(dest) if dest is not None else None
        if table is None or len(data) < 20:
            self.counters["bad_replies" if len(data) >= 20 else "malformed"] += 1
            return
        req = table.get(data[1])
        if req is None or req.done is None:
            self.counters["bad_replies"] += 1       # late (answered, cancelled) or unknown
            return
        cls = rpacket.AuthPacket if req.kind == "auth" else rpacket.AcctPacket
        try:
            reply = cls(packet=bytes(data), secret=self.config.secret, dict=self.dict)
        except (rpacket.PacketError, ValueError, KeyError, struct.error):
            self.counters["malformed"] += 1
            return
        want = (ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE) if req.kind == "auth" else (ACCOUNTING_RESPONSE,)
        if reply.code not in want or not req.pkt.VerifyReply(
                reply, bytes(data), enforce_ma=self.config.require_message_authenticator):
            self.counters["bad_replies"] += 1
            return
        server = req.server
        self._dead_until.pop(req.dest, None)
        self._finish(req)
        if req.kind == "auth":
            self._deliver(req, self._auth_result(reply, server))
        else:
            self.counters["acct_responses"] += 1
            req.done = None
            self._acct_done(req)


class InterimTimer:
    """The repeating Interim-Update of one session (:meth:`RadiusClient.start_interim`)."""

    __slots__ = ("client", "get_record", "interval", "handle")

    def __init__(self, client: RadiusClient, get_record: Callable[[], Optional[AcctRecord]], interval: float) -> None:
        if not interval > 0:
            raise ValueError(f"interim interval {interval}: not above 0 seconds")
        self.client, self.get_record, self.interval = client, get_record, interval
        self.handle: Optional[asyncio.TimerHandle] = client.loop.call_later(interval, self._tick)

    def _tick(self) -> None:
        rec = self.get_record()
        if rec is None or self.client._closed:
            self.handle = None
            return
        self.client.account("interim", rec)
        self.handle = self.client.loop.call_later(self.interval, self._tick)

    def cancel(self) -> None:
        """Stop the Interim-Updates (idempotent)."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


# -- dynamic authorization (RFC 5176) -----------------------------------------------------------------
def session_matches(keys: Mapping[str, Any], *, acct_session_id: Optional[str] = None, user: Optional[bytes] = None,
                    ipv4: Optional[IPv4Address] = None, calling_station_id: Optional[str] = None) -> bool:
    """True when a session matches every Session Identification attribute in ``keys`` (as
    :class:`DynAuthServer` passes them to ``lookup``; RFC 5176 section 3: all must match).

    ``keys`` holds any of ``acct_session_id`` (str), ``user_name`` (bytes), ``framed_ip``
    (IPv4Address), ``calling_station_id`` (str, compared case-insensitively)."""
    if not keys:
        return False
    if "acct_session_id" in keys and keys["acct_session_id"] != acct_session_id:
        return False
    if "user_name" in keys and keys["user_name"] != user:
        return False
    if "framed_ip" in keys and keys["framed_ip"] != ipv4:
        return False
    if "calling_station_id" in keys and (calling_station_id is None
                                         or keys["calling_station_id"].lower() != calling_station_id.lower()):
        return False
    return True


_IDENT_ATTRS = {A_ACCT_SESSION_ID, A_USER_NAME, A_FRAMED_IP, A_CALLING_STATION}
_NAS_ATTRS = {A_NAS_IP, A_NAS_IDENTIFIER, A_NAS_IPV6}
_ALWAYS_OK = {A_MESSAGE_AUTH, A_PROXY_STATE, A_EVENT_TIMESTAMP, A_STATE, 50}  # + Acct-Multi-Session-Id (ignored)
_COA_CHANGES = {A_SESSION_TIMEOUT: "session_timeout", A_IDLE_TIMEOUT: "idle_timeout", A_INTERIM: "interim"}
_DISCONNECT_OK = _IDENT_ATTRS | _NAS_ATTRS | _ALWAYS_OK | {A_REPLY_MESSAGE, 49}   # 49: Acct-Terminate-Cause
_COA_OK = _IDENT_ATTRS | _NAS_ATTRS | _ALWAYS_OK | set(_COA_CHANGES) | {A_REPLY_MESSAGE}


class DynAuthServer:
    """The RFC 5176 Dynamic Authorization Server of the BNG: answers Disconnect-Request and
    CoA-Request on UDP ``config.coa_port`` (3799).

    Args:
        config: for the port and the NAS identification (NAS-Identifier, NAS-IP-Address,
            NAS-IPv6-Address in a request must match ours, else NAK 403).
        clients: ``{source address: secret}`` of the Dynamic Authorization Clients (RADIUS
            servers) allowed to send; anything else is dropped (``unknown_client``).
        lookup: ``lookup(keys) -> list of sessions`` that match ALL of ``keys``:
            ``acct_session_id`` (str), ``user_name`` (bytes), ``framed_ip`` (IPv4Address),
            ``calling_station_id`` (str); :func:`session_matches` does the comparison.
        on_disconnect: ``on_disconnect(sessions, keys)``: end them (Acct-Terminate-Cause
            Admin-Reset); then Disconnect-ACK is sent.
        on_coa: ``on_coa(sessions, changes)`` with ``changes`` among ``session_timeout``,
            ``idle_timeout``, ``interim`` (seconds, int); then CoA-ACK.

    ``lookup``, ``on_disconnect`` and ``on_coa`` may return an awaitable instead (e.g. when the
    listener runs in the supervisor and asks the owning worker): the answer is sent when it
    completes, on the loop the listener runs on.

    Checks, in order: source known (else drop), code 40 or 43 (else drop), the packet decodes
    (else drop, ``malformed``), Request Authenticator (RFC 5176 section 2.3) and
    Message-Authenticator when present (else drop, ``bad_authenticator``), a retransmission
    (same source, Identifier and authenticator within 30 s) gets the cached answer
    (``duplicates``); then NAK with Error-Cause (RFC 5176 section 3.5): 401 an unsupported
    attribute, 405 a Service-Type (Authorize-Only is not offered), 403 NAS identification
    mismatch, 404 a malformed Framed-IP-Address, 402 no session identification attribute, 503
    no session matches.

    Counters (:attr:`counters`): ``requests``, ``disconnects``, ``coas``, ``acks``, ``naks``,
    ``unknown_client``, ``bad_authenticator``, ``malformed``, ``duplicates``.
    """

    CACHE_SECONDS = 30.0
    CACHE_MAX = 1024

    def __init__(self, config: RadiusConfig, clients: Mapping[Any, bytes],
                 lookup: Callable[[dict], Union[list, Awaitable[list]]],
                 on_disconnect: Callable[[list, dict], Optional[Awaitable[Any]]],
                 on_coa: Callable[[list, dict], Optional[Awaitable[Any]]]) -> None:
        self.config = config
        self.clients = {self._norm(ip): bytes(s) for ip, s in clients.items()}
        self.lookup, self.on_disconnect, self.on_coa = lookup, on_disconnect, on_coa
        self.dict = dictionary()
        self.counters: dict[str, int] = dict.fromkeys((
            "requests", "disconnects", "coas", "acks", "naks", "unknown_client", "bad_authenticator",
            "malformed", "duplicates"), 0)
        self._transport: Optional[asyncio.DatagramTransport] = None
        self._cache: collections.OrderedDict[tuple, tuple[float, Optional[bytes]]] = collections.OrderedDict()
        self._tasks: set[asyncio.Future] = set()

    _norm = staticmethod(_norm_ip)

    async def start(self, host: str = "0.0.0.0", port: Optional[int] = None) -> None:
        """Listen on ``host`` (``"::"``: IPv4 and IPv6) and ``port`` (default ``config.coa_port``)
        on the running loop.

        Raises:
            OSError: the port is taken.
        """
        loop = asyncio.get_running_loop()
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            if fam == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((host, self.config.coa_port if port is None else port))
            sock.setblocking(False)
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _Proto(self._on_datagram, lambda exc: None), sock=sock)
        except BaseException:
            sock.close()
            raise

    @property
    def local_address(self) -> Optional[tuple]:
        """The listening address (host, port), None before :meth:`start`."""
        return self._transport.get_extra_info("sockname") if self._transport else None

    def close(self) -> None:
        """Stop listening; requests still waiting for an awaitable callback are not answered."""
        for t in list(self._tasks):
            t.cancel()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _on_datagram(self, data: bytes, addr: Any) -> None:
        reply = self.handle(bytes(data), addr, self._send_later)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)

    def _send_later(self, reply: bytes, addr: Any) -> None:
        if self._transport is not None:
            self._transport.sendto(reply, addr)

    def handle(self, data: bytes, addr: Any,
               send_later: Optional[Callable[[bytes, Any], None]] = None) -> Optional[bytes]:
        """Process one datagram from ``addr``; the reply to send now, or None (dropped, or
        answered later: when ``lookup``, ``on_disconnect`` or ``on_coa`` returned an awaitable,
        a task on the running loop awaits it and calls ``send_later(reply, addr)``; a
        retransmission meanwhile is dropped and counted in ``duplicates``)."""
        try:
            src = self._norm(addr[0])
        except ValueError:
            src = ""
        secret = self.clients.get(src)
        if secret is None:
            self.counters["unknown_client"] += 1
            log.info("RADIUS dynamic authorization: request from unknown client %s dropped", addr[0])
            return None
        if len(data) < 20 or data[0] not in (DISCONNECT_REQUEST, COA_REQUEST):
            self.counters["malformed"] += 1
            return None
        try:
            pkt = rpacket.CoAPacket(packet=data, secret=secret, dict=self.dict)
        except (rpacket.PacketError, ValueError, KeyError, struct.error):
            self.counters["malformed"] += 1
            return None
        if not hmac.compare_digest(request_authenticator(pkt.raw_packet, secret), pkt.authenticator) or (
                pkt.message_authenticator and not pkt.verify_message_authenticator()):
            self.counters["bad_authenticator"] += 1
            log.info("RADIUS dynamic authorization: bad authenticator from %s dropped", addr[0])
            return None
        now = time.monotonic()
        while self._cache and (next(iter(self._cache.values()))[0] < now or len(self._cache) > self.CACHE_MAX):
            self._cache.popitem(last=False)
        ckey = (src, addr[1], pkt.id, pkt.authenticator)
        if ckey in self._cache:
            self.counters["duplicates"] += 1
            return self._cache[ckey][1]               # None while the first is still in progress
        self.counters["requests"] += 1
        answer = self._process(pkt)
        if isinstance(answer, bytes):
            self._cache[ckey] = (now + self.CACHE_SECONDS, answer)
            return answer
        self._cache[ckey] = (now + self.CACHE_SECONDS, None)
        task = asyncio.ensure_future(answer)
        self._tasks.add(task)

        def finished(t: asyncio.Future) -> None:
            self._tasks.discard(t)
            if t.cancelled():
                self._cache.pop(ckey, None)
                return
            reply = t.result()                        # a callback's exception surfaces here, in the loop's handler
            self._cache[ckey] = (time.monotonic() + self.CACHE_SECONDS, reply)
            if send_later is not None:
                send_later(reply, addr)
        task.add_done_callback(finished)
        return None

    def _process(self, pkt: rpacket.Packet) -> Union[bytes, Awaitable[bytes]]:
        disconnect = pkt.code == DISCONNECT_REQUEST
        self.counters["disconnects" if disconnect else "coas"] += 1
        codes = {k[0] if isinstance(k, tuple) else k for k in collections.OrderedDict.keys(pkt)}
        vendor = any(isinstance(k, tuple) for k in collections.OrderedDict.keys(pkt))
        allowed = _DISCONNECT_OK if disconnect else _COA_OK
        if A_SERVICE_TYPE in codes:                   # Authorize-Only (RFC 5176 3.2): not offered
            return self._answer(pkt, False, ERROR_CAUSES["Unsupported-Service"])
        if vendor or codes - allowed:
            return self._answer(pkt, False, ERROR_CAUSES["Unsupported-Attribute"])
        if not self._nas_matches(pkt):
            return self._answer(pkt, False, ERROR_CAUSES["NAS-Identification-Mismatch"])
        keys = self._keys(pkt)
        if keys is None or not keys:
            return self._answer(pkt, False, ERROR_CAUSES["Missing-Attribute" if keys is not None else "Invalid-Request"])
        found = self.lookup(keys)
        if inspect.isawaitable(found):
            return self._complete(pkt, keys, found)
        return self._apply(pkt, keys, list(found))

    def _apply(self, pkt: rpacket.Packet, keys: dict, sessions: list) -> Union[bytes, Awaitable[bytes]]:
        if not sessions:
            return self._answer(pkt, False, ERROR_CAUSES["Session-Context-Not-Found"])
        if pkt.code == DISCONNECT_REQUEST:
            done = self.on_disconnect(sessions, keys)
        else:
            changes = {}
            for code, name in _COA_CHANGES.items():
                v = _u32(_raw(pkt, code))
                if v is not None:
                    changes[name] = v
            done = self.on_coa(sessions, changes)
        if inspect.isawaitable(done):
            return self._ack_after(pkt, done)
        return self._answer(pkt, True)

    async def _complete(self, pkt: rpacket.Packet, keys: dict, found: Awaitable) -> bytes:
        answer = self._apply(pkt, keys, list(await found))
        return answer if isinstance(answer, bytes) else await answer

    async def _ack_after(self, pkt: rpacket.Packet, done: Awaitable) -> bytes:
        await done
        return self._answer(pkt, True)

    def _nas_matches(self, pkt: rpacket.Packet) -> bool:
        for v in _raw(pkt, A_NAS_IDENTIFIER):
            if _text(v) != self.config.nas_identifier:
                return False
        for v in _raw(pkt, A_NAS_IP):
            if self.config.nas_ip is None or v != self.config.nas_ip.packed:
                return False
        for v in _raw(pkt, A_NAS_IPV6):
            if self.config.nas_ipv6 is None or v != self.config.nas_ipv6.packed:
                return False
        return True

    @staticmethod
    def _keys(pkt: rpacket.Packet) -> Optional[dict]:
        """Session identification attributes; None when one is malformed."""
        keys: dict[str, Any] = {}
        for code, name in ((A_ACCT_SESSION_ID, "acct_session_id"), (A_CALLING_STATION, "calling_station_id")):
            vals = _raw(pkt, code)
            if vals:
                keys[name] = _text(vals[0])
        vals = _raw(pkt, A_USER_NAME)
        if vals:
            keys["user_name"] = vals[0]
        vals = _raw(pkt, A_FRAMED_IP)
        if vals:
            if len(vals[0]) != 4:
                return None
            keys["framed_ip"] = IPv4Address(vals[0])
        return keys

    def _answer(self, pkt: rpacket.Packet, ack: bool, error_cause: Optional[int] = None) -> bytes:
        reply = pkt.CreateReply()
        if pkt.code == DISCONNECT_REQUEST:
            reply.code = DISCONNECT_ACK if ack else DISCONNECT_NAK
        else:
            reply.code = COA_ACK if ack else COA_NAK
        if error_cause is not None:
            reply["Error-Cause"] = error_cause
        if pkt.message_authenticator:
            reply.add_message_authenticator()
        self.counters["acks" if ack else "naks"] += 1
        return reply.ReplyPacket()
