"""PPPoE discovery (RFC 2516) and LCP echo (RFC 1661) as pure functions: no sockets, no state.

Parsing
    :func:`parse_frame` takes one received Ethernet frame and returns a :class:`Discovery`, a
    :class:`Session` or a :class:`Malformed` carrying a :class:`Reason`. It never raises: every
    read is bounds-checked with :mod:`struct` (scapy's dissector is ~100x slower, so it is
    used only by the tests, to cross-check this parser).

Building
    ``build_*`` return whole Ethernet frames. The frame layout is defined by scapy's layers
    (``Ether / PPPoED / PPPoED_Tags(PPPoETag...)`` and ``Ether / PPPoE / PPP / PPP_LCP_Echo``):
    ``encoder="scapy"`` builds them with scapy. ``encoder="struct"`` packs the same bytes with
    :mod:`struct` in a few microseconds instead of ~350 us; the tests assert that both encoders
    give identical bytes for every reply, so the access concentrator uses ``"struct"`` on its
    hot path by default.

VLAN tags
    Up to two 802.1Q (0x8100) / 802.1ad (0x88a8) tags between the source MAC and the PPPoE
    ethertype are read through (IEEE 802.1Q 9.5; QinQ is S-tag + C-tag); their raw bytes are
    kept in the parsed frame's ``vlan`` so a reply can carry them back (:func:`with_vlan`).

AC-Cookie
    Stateless and verifiable by any worker:
    ``HMAC-SHA256(secret, window || client MAC || Service-Name)`` cut to 16 bytes, where
    ``window`` is a time-window number (8 bytes, big-endian); a cookie of the current or the
    previous window verifies (:func:`make_cookie`, :func:`verify_cookie`).

Session ids
    Unique across workers with no coordination: worker ``w`` of ``N`` owns the ids
    ``w, w+N, w+2N, ...`` below 0x10000, minus the reserved 0x0000 and 0xffff
    (:func:`session_ids`, :class:`SessionIdAllocator`).
"""

from __future__ import annotations

import hmac
import struct
from enum import Enum
from typing import Iterator, NamedTuple, Optional, Sequence, Union

# ethertypes: discovery / session stage (RFC 2516), 802.1Q C-tag / 802.1ad S-tag
from ..kernel import ETH_P_8021AD, ETH_P_8021Q, ETH_P_PPP_DISC, ETH_P_PPP_SES

__all__ = [
    "ETH_P_PPP_DISC", "ETH_P_PPP_SES", "BROADCAST",
    "PADI", "PADO", "PADR", "PADS", "PADT", "CODE_NAMES",
    "TAG_END_OF_LIST", "TAG_SERVICE_NAME", "TAG_AC_NAME", "TAG_HOST_UNIQ", "TAG_AC_COOKIE",
    "TAG_VENDOR_SPECIFIC", "TAG_RELAY_SESSION_ID", "TAG_PPP_MAX_PAYLOAD", "max_payload_of", "TAG_SERVICE_NAME_ERROR", "TAG_AC_SYSTEM_ERROR",
    "TAG_GENERIC_ERROR",
    "ETH_P_8021Q", "ETH_P_8021AD", "VLAN_TPIDS", "MAX_VLAN_TAGS", "MAX_PADI",
    "PPP_LCP", "LCP_ECHO_REQUEST", "LCP_ECHO_REPLY",
    "COOKIE_LEN", "MAX_PAYLOAD", "ENCODERS",
    "Reason", "Malformed", "Discovery", "Session", "Parsed", "parse_frame",
    "make_cookie", "verify_cookie", "cookie_window",
    "with_vlan", "vlan_key",
    "session_ids", "session_id_capacity", "session_id_owner", "SessionIdAllocator",
    "encode_discovery", "encode_session",
    "build_padi", "build_pado", "build_padr", "build_pads", "build_pads_error", "build_padt",
    "build_lcp_echo_request", "build_lcp_echo_reply", "build_ac_echo_request",
]

BROADCAST = b"\xff" * 6
VLAN_TPIDS = (ETH_P_8021Q, ETH_P_8021AD)
#: VLAN tags read through before the PPPoE ethertype (a tag the kernel stripped counts too).
MAX_VLAN_TAGS = 2
#: RFC 2516 5.1: "The PADI packet MUST NOT exceed 1484 octets", the PPPoE header included.
MAX_PADI = 1484

# RFC 2516 section 5: discovery CODE values.
PADI = 0x09  # Active Discovery Initiation (host -> broadcast)
PADO = 0x07  # Offer (AC -> host)
PADR = 0x19  # Request (host -> AC)
PADS = 0x65  # Session-confirmation (AC -> host)
PADT = 0xA7  # Terminate (either way)
CODE_NAMES = {PADI: "PADI", PADO: "PADO", PADR: "PADR", PADS: "PADS", PADT: "PADT"}

# RFC 2516 appendix A: TAG_TYPE values.
TAG_END_OF_LIST = 0x0000
TAG_SERVICE_NAME = 0x0101
TAG_AC_NAME = 0x0102
TAG_HOST_UNIQ = 0x0103
TAG_AC_COOKIE = 0x0104
TAG_VENDOR_SPECIFIC = 0x0105
TAG_RELAY_SESSION_ID = 0x0110
TAG_PPP_MAX_PAYLOAD = 0x0120  # RFC 4638: the largest PPP payload a host asks for (> 1492 on a big MTU)
TAG_SERVICE_NAME_ERROR = 0x0201
TAG_AC_SYSTEM_ERROR = 0x0202
TAG_GENERIC_ERROR = 0x0203

PPP_LCP = 0xC021
LCP_ECHO_REQUEST = 9
LCP_ECHO_REPLY = 10

COOKIE_LEN = 16
#: PPPoE payload limit on a 1500-byte MTU (RFC 2516: 1500 - 6 header bytes).
MAX_PAYLOAD = 1494
ENCODERS = ("struct", "scapy")

_SESSION_ID_RESERVED = (0x0000, 0xFFFF)
_HDR = struct.Struct("!6s6sHBBHH")  # dst, src, ethertype, ver|type, code, session id, length
_PPPOE = struct.Struct("!BBHH")      # ver|type, code, session id, length (RFC 2516 section 4)
_TAG = struct.Struct("!HH")
_LCP = struct.Struct("!HBBH")       # PPP protocol, LCP code, identifier, length
_U32 = struct.Struct("!I")
_DISC_CODES = frozenset(CODE_NAMES)


class Reason(str, Enum):
    """Why a received frame is malformed (the value is the short name used in logs)."""

    TRUNCATED_HEADER = "truncated_header"        # shorter than Ethernet + 6-byte PPPoE header
    NOT_PPPOE = "not_pppoe"                      # ethertype is neither 0x8863 nor 0x8864
    MULTICAST_SOURCE = "multicast_source"        # source MAC has the group bit (incl. broadcast)
    BAD_VERSION_TYPE = "bad_version_type"        # VER or TYPE is not 1
    LENGTH_PAST_END = "length_past_end"          # LENGTH field runs past the end of the frame
    TAG_PAST_END = "tag_past_end"                # a TAG header or value runs past LENGTH
    UNKNOWN_CODE = "unknown_code"                # CODE not PADI/PADO/PADR/PADS/PADT (0 in session stage)
    BAD_SESSION_ID = "bad_session_id"            # non-zero in PADI/PADR, zero in PADT, 0/0xffff in a session
    SERVICE_NAME_COUNT = "service_name_count"    # PADI/PADR without exactly one Service-Name TAG
    TRUNCATED_PPP = "truncated_ppp"              # session payload too short for its PPP/LCP header
    VLAN_DEPTH = "vlan_depth"                    # more than MAX_VLAN_TAGS VLAN tags (stripped one included)
    PADI_TOO_LONG = "padi_too_long"              # PADI over MAX_PADI octets (RFC 2516 5.1)


class Malformed(NamedTuple):
    """A frame that fails a check: ``reason`` and a one-line ``detail``."""

    reason: Reason
    detail: str


class Discovery(NamedTuple):
    """A well-formed discovery-stage frame (ethertype 0x8863).

    ``tags`` holds every TAG in order (unknown ones too) as ``(type, value)``; the others are
    the value of the first TAG of that type, or None when absent. ``vlan`` is the VLAN tags
    that were in the frame, raw (4 bytes each, outer first; b"" when untagged).
    """

    dst: bytes
    src: bytes
    code: int
    session_id: int
    tags: tuple
    service_name: Optional[bytes]
    host_uniq: Optional[bytes]
    ac_cookie: Optional[bytes]
    relay_session_id: Optional[bytes]
    vlan: bytes = b""


class Session(NamedTuple):
    """A well-formed session-stage frame (ethertype 0x8864, CODE 0).

    ``ppp`` is the PPP frame (protocol field onwards, without Ethernet padding). For LCP
    (``protocol == 0xc021``) ``lcp_code``/``lcp_id`` are set, and for Echo-Request/Reply also
    ``lcp_magic`` and ``lcp_data``; otherwise they are -1/-1/None/b"". ``vlan`` as in
    :class:`Discovery`.
    """

    dst: bytes
    src: bytes
    session_id: int
    protocol: int
    ppp: bytes
    lcp_code: int = -1
    lcp_id: int = -1
    lcp_magic: Optional[int] = None
    lcp_data: bytes = b""
    vlan: bytes = b""


Parsed = Union[Discovery, Session, Malformed]


def parse_frame(frame, max_vlan: int = MAX_VLAN_TAGS) -> Parsed:
    """Parse one Ethernet frame (bytes-like) as PPPoE; never raises.

    Up to ``max_vlan`` VLAN tags (0x8100/0x88a8, 4 bytes each) may follow the source MAC; pass
    ``MAX_VLAN_TAGS - 1`` when the kernel already stripped one (``meta.vlan_tci`` set). Bytes
    after the PPPoE LENGTH are Ethernet padding and ignored. TAGs after an End-Of-List TAG are
    ignored (RFC 2516 appendix A). A PADI longer than :data:`MAX_PADI` octets (PPPoE header
    included) is malformed (RFC 2516 5.1).
    """
    data = bytes(frame)
    n = len(data)
    if n < 20:
        return Malformed(Reason.TRUNCATED_HEADER, f"{n} bytes, need 20 (Ethernet + PPPoE header)")
    etype = (data[12] << 8) | data[13]
    base = 14  # the PPPoE header's offset
    if etype == ETH_P_8021Q or etype == ETH_P_8021AD:
        while etype == ETH_P_8021Q or etype == ETH_P_8021AD:
            if (base - 14) // 4 >= max_vlan:
                return Malformed(Reason.VLAN_DEPTH, f"more than {max_vlan} VLAN tags in the frame")
            base += 4
            if n < base + 6:
                return Malformed(Reason.TRUNCATED_HEADER,
                                 f"{n} bytes, need {base + 6} (Ethernet + VLAN tags + PPPoE header)")
            etype = (data[base - 2] << 8) | data[base - 1]
        vlan = data[12:base - 2]
    else:
        vlan = b""
    if etype != ETH_P_PPP_DISC and etype != ETH_P_PPP_SES:
        return Malformed(Reason.NOT_PPPOE, f"ethertype 0x{etype:04x}")
    dst = data[0:6]
    src = data[6:12]
    if src[0] & 1:
        return Malformed(Reason.MULTICAST_SOURCE, f"source {src.hex(':')}")
    vt, code, sid, length = _PPPOE.unpack_from(data, base)
    if vt != 0x11:
        return Malformed(Reason.BAD_VERSION_TYPE, f"ver {vt >> 4} type {vt & 15}")
    start = base + 6
    end = start + length
    if end > n:
        return Malformed(Reason.LENGTH_PAST_END, f"LENGTH {length} but {n - start} payload bytes")
    if etype == ETH_P_PPP_SES:
        return _parse_session(data, dst, src, code, sid, start, end, vlan)
    if code not in _DISC_CODES:
        return Malformed(Reason.UNKNOWN_CODE, f"discovery code 0x{code:02x}")
    if code == PADI or code == PADR:
        if sid != 0:
            return Malformed(Reason.BAD_SESSION_ID, f"{CODE_NAMES[code]} with session id 0x{sid:04x}")
        if code == PADI and 6 + length > MAX_PADI:
            return Malformed(Reason.PADI_TOO_LONG, f"PADI of {6 + length} octets, at most {MAX_PADI}")
    elif code == PADT and sid == 0:
        return Malformed(Reason.BAD_SESSION_ID, "PADT with session id 0")
    tags = []
    service = host_uniq = cookie = relay = None
    services = 0
    off = start
    while off < end:
        if end - off < 4:
            return Malformed(Reason.TAG_PAST_END,
                             f"TAG header at offset {off - start} needs 4 bytes, {end - off} left")
        ttype, tlen = _TAG.unpack_from(data, off)
        off += 4
        if ttype == TAG_END_OF_LIST:
            break
        if off + tlen > end:
            return Malformed(Reason.TAG_PAST_END,
                             f"TAG 0x{ttype:04x} of {tlen} bytes at offset {off - start - 4}, {end - off} left")
        value = data[off:off + tlen]
        off += tlen
        tags.append((ttype, value))
        if ttype == TAG_SERVICE_NAME:
            services += 1
            if service is None:
                service = value
        elif ttype == TAG_HOST_UNIQ:
            if host_uniq is None:
                host_uniq = value
        elif ttype == TAG_AC_COOKIE:
            if cookie is None:
                cookie = value
        elif ttype == TAG_RELAY_SESSION_ID:
            if relay is None:
                relay = value
    if services != 1 and (code == PADI or code == PADR):
        return Malformed(Reason.SERVICE_NAME_COUNT, f"{CODE_NAMES[code]} with {services} Service-Name TAGs")
    return Discovery(dst, src, code, sid, tuple(tags), service, host_uniq, cookie, relay, vlan)


def _parse_session(data: bytes, dst: bytes, src: bytes, code: int, sid: int, start: int, end: int,
                   vlan: bytes) -> Parsed:
    if code != 0:
        return Malformed(Reason.UNKNOWN_CODE, f"session stage code 0x{code:02x}")
    if sid in _SESSION_ID_RESERVED:
        return Malformed(Reason.BAD_SESSION_ID, f"session frame with session id 0x{sid:04x}")
    if end - start < 2:
        return Malformed(Reason.TRUNCATED_PPP, f"{end - start} PPP bytes, need 2")
    ppp = data[start:end]
    proto = (ppp[0] << 8) | ppp[1]
    if proto != PPP_LCP:
        return Session(dst, src, sid, proto, ppp, vlan=vlan)
    if len(ppp) < 6:
        return Malformed(Reason.TRUNCATED_PPP, f"LCP packet of {len(ppp) - 2} bytes, need 4")
    _, lcode, lid, llen = _LCP.unpack_from(ppp)
    if llen < 4 or llen > len(ppp) - 2:
        return Malformed(Reason.TRUNCATED_PPP, f"LCP length {llen}, {len(ppp) - 2} bytes present")
    if lcode == LCP_ECHO_REQUEST or lcode == LCP_ECHO_REPLY:
        if llen < 8:
            return Malformed(Reason.TRUNCATED_PPP, f"LCP echo of length {llen}, need 8")
        (magic,) = _U32.unpack_from(ppp, 6)
        return Session(dst, src, sid, proto, ppp, lcode, lid, magic, ppp[10:2 + llen], vlan)
    return Session(dst, src, sid, proto, ppp, lcode, lid, vlan=vlan)


# -- VLAN tags --------------------------------------------------------------------------------
def with_vlan(frame: bytes, vlan: bytes) -> bytes:
    """``frame`` with the raw VLAN tags ``vlan`` (4 bytes each, outer first) inserted after the
    source MAC (IEEE 802.1Q 9.5); ``frame`` itself when ``vlan`` is empty."""
    return frame[:12] + vlan + frame[12:] if vlan else frame


def vlan_key(vlan: bytes) -> bytes:
    """The VLAN identity of raw tags ``vlan``: each tag's TPID and VID, with the priority (PCP)
    and DEI bits cleared, so frames of one subscriber match whatever priority they carry."""
    if not vlan:
        return b""
    key = bytearray(vlan)
    for i in range(2, len(key), 4):
        key[i] &= 0x0F
    return bytes(key)


# -- AC-Cookie --------------------------------------------------------------------------------
def make_cookie(secret: bytes, client_mac: bytes, service_name: bytes, window: int = 0) -> bytes:
    """``HMAC-SHA256(secret, window || client_mac || service_name)[:16]``: ``window`` is the
    cookie's time-window number (8 bytes big-endian, signed; see :func:`cookie_window`), the MAC always
    6 bytes."""
    return hmac.digest(secret, window.to_bytes(8, "big", signed=True) + client_mac + service_name, "sha256")[:COOKIE_LEN]


def cookie_window(now: float, window_seconds: float) -> int:
    """The window number of time ``now`` (seconds, any clock all workers share) for windows of
    ``window_seconds``: ``floor(now / window_seconds)``."""
    return int(now // window_seconds)


def verify_cookie(secret: bytes, client_mac: bytes, service_name: bytes, cookie: Optional[bytes],
                  window: int = 0) -> bool:
    """True when ``cookie`` is the one :func:`make_cookie` gives for window ``window`` or
    ``window - 1`` (a cookie from the previous window stays good for one window; constant-time
    compare)."""
    if cookie is None or len(cookie) != COOKIE_LEN:
        return False
    ok = hmac.compare_digest(cookie, make_cookie(secret, client_mac, service_name, window))
    return hmac.compare_digest(cookie, make_cookie(secret, client_mac, service_name, window - 1)) or ok


# -- session ids ------------------------------------------------------------------------------
def session_ids(worker_id: int, worker_count: int) -> Iterator[int]:
    """The session ids worker ``worker_id`` of ``worker_count`` may hand out, ascending."""
    if not 0 <= worker_id < worker_count:
        raise ValueError(f"worker id {worker_id} is outside 0..{worker_count - 1}")
    return (s for s in range(worker_id, 0x10000, worker_count) if s not in _SESSION_ID_RESERVED)


def session_id_capacity(worker_id: int, worker_count: int) -> int:
    """How many ids :func:`session_ids` yields (the worker's concurrent-session limit)."""
    r = range(worker_id, 0x10000, worker_count)
    return len(r) - sum(1 for s in _SESSION_ID_RESERVED if s in r)


def session_id_owner(session_id: int, worker_count: int) -> int:
    """The worker that owns ``session_id``."""
    return session_id % worker_count


class SessionIdAllocator:
    """Hands out a worker's session ids round-robin, never one that is in use.

    Round-robin (rather than lowest-free) delays the reuse of a released id, so late frames of
    an ended session are less likely to hit a new one.

    Args:
        worker_id, worker_count: which partition (see :func:`session_ids`).
        start: index in the partition to start from (e.g. random, so that a restarted worker
            does not first reuse the ids its predecessor handed out).
    """

    def __init__(self, worker_id: int, worker_count: int, start: int = 0) -> None:
        self._ids = list(session_ids(worker_id, worker_count))
        self._next = start % len(self._ids) if self._ids else 0
        self._used: set[int] = set()

    @property
    def capacity(self) -> int:
        return len(self._ids)

    def __len__(self) -> int:
        """Ids in use."""
        return len(self._used)

    def allocate(self) -> Optional[int]:
        """A free id, or None when all :attr:`capacity` ids are in use."""
        ids, used = self._ids, self._used
        if len(used) >= len(ids):
            return None
        i = self._next
        while ids[i] in used:
            i = (i + 1) % len(ids)
        used.add(ids[i])
        self._next = (i + 1) % len(ids)
        return ids[i]

    def release(self, session_id: int) -> None:
        """Give ``session_id`` back (no-op when not in use)."""
        self._used.discard(session_id)

    def claim(self, session_id: int) -> bool:
        """Mark ``session_id`` in use (a session restored after a restart): False when it is not
        this worker's or already in use."""
        if session_id in self._used or session_id not in self._id_set():
            return False
        self._used.add(session_id)
        return True

    def _id_set(self) -> set[int]:
        ids = getattr(self, "_ids_set", None)
        if ids is None:
            ids = self._ids_set = set(self._ids)
        return ids


# -- encoders ---------------------------------------------------------------------------------
def _mac_str(mac: bytes) -> str:
    return mac.hex(":")


def encode_discovery(dst: bytes, src: bytes, code: int, session_id: int, tags: Sequence[tuple[int, bytes]],
                     encoder: str = "scapy") -> bytes:
    """One discovery frame: ``Ether(type=0x8863) / PPPoED(code, sessionid) / PPPoED_Tags(tags)``."""
    if encoder == "struct":
        body = b"".join(_TAG.pack(t, len(v)) + v for t, v in tags)
        return _HDR.pack(dst, src, ETH_P_PPP_DISC, 0x11, code, session_id, len(body)) + body
    if encoder != "scapy":
        raise ValueError(f"unknown encoder {encoder!r}; use one of {ENCODERS}")
    from scapy.layers.l2 import Ether  # noqa: PLC0415  (slow import; only where scapy encodes)
    from scapy.layers.ppp import PPPoED, PPPoED_Tags, PPPoETag  # noqa: PLC0415

    pkt = Ether(dst=_mac_str(dst), src=_mac_str(src), type=ETH_P_PPP_DISC) / PPPoED(
        version=1, type=1, code=code, sessionid=session_id)
    if tags:
        pkt = pkt / PPPoED_Tags(tag_list=[PPPoETag(tag_type=t, tag_value=v) for t, v in tags])
    return bytes(pkt)


def encode_session(dst: bytes, src: bytes, session_id: int, ppp: bytes) -> bytes:
    """One session frame around the PPP frame ``ppp`` (protocol field onwards), with struct."""
    return _HDR.pack(dst, src, ETH_P_PPP_SES, 0x11, 0, session_id, len(ppp)) + ppp


def _opt(tag: int, value: Optional[bytes]) -> list[tuple[int, bytes]]:
    return [] if value is None else [(tag, value)]


def build_padi(client: bytes, service_name: bytes = b"", host_uniq: Optional[bytes] = None,
               relay_session_id: Optional[bytes] = None, encoder: str = "scapy") -> bytes:
    """A host's PADI, broadcast (for tests and benchmarks)."""
    tags = [(TAG_SERVICE_NAME, service_name)] + _opt(TAG_HOST_UNIQ, host_uniq) + _opt(TAG_RELAY_SESSION_ID,
                                                                                      relay_session_id)
    return encode_discovery(BROADCAST, client, PADI, 0, tags, encoder)


def build_padr(client: bytes, ac: bytes, service_name: bytes, cookie: Optional[bytes],
               host_uniq: Optional[bytes] = None, relay_session_id: Optional[bytes] = None,
               encoder: str = "scapy") -> bytes:
    """A host's PADR to AC ``ac``, echoing the PADO's AC-Cookie (for tests and benchmarks)."""
    tags = ([(TAG_SERVICE_NAME, service_name)] + _opt(TAG_HOST_UNIQ, host_uniq) + _opt(TAG_AC_COOKIE, cookie)
            + _opt(TAG_RELAY_SESSION_ID, relay_session_id))
    return encode_discovery(ac, client, PADR, 0, tags, encoder)


def _max_payload(value: Optional[int]) -> list[tuple[int, bytes]]:
    return [] if not value else [(TAG_PPP_MAX_PAYLOAD, value.to_bytes(2, "big"))]


def max_payload_of(tags: Sequence[tuple[int, bytes]]) -> Optional[int]:
    """The PPP-Max-Payload a host asked for (RFC 4638: 2 octets), or None (absent or malformed)."""
    for t, v in tags:
        if t == TAG_PPP_MAX_PAYLOAD:
            return int.from_bytes(v, "big") if len(v) == 2 else None
    return None


def build_pado(client: bytes, ac: bytes, ac_name: bytes, service_name: bytes, cookie: bytes,
               host_uniq: Optional[bytes] = None, relay_session_id: Optional[bytes] = None,
               other_services: Sequence[bytes] = (), encoder: str = "scapy",
               max_payload: Optional[int] = None) -> bytes:
    """The AC's PADO (RFC 2516 5.2): AC-Name, the requested Service-Name, the other offered
    Service-Names, AC-Cookie, then Host-Uniq and Relay-Session-Id echoed when the PADI had them,
    and PPP-Max-Payload (RFC 4638, bytes) when the AC grants one."""
    tags = [(TAG_AC_NAME, ac_name), (TAG_SERVICE_NAME, service_name)]
    tags += [(TAG_SERVICE_NAME, s) for s in other_services if s != service_name]
    tags += [(TAG_AC_COOKIE, cookie)] + _opt(TAG_HOST_UNIQ, host_uniq) + _opt(TAG_RELAY_SESSION_ID, relay_session_id)
    return encode_discovery(client, ac, PADO, 0, tags + _max_payload(max_payload), encoder)


def build_pads(client: bytes, ac: bytes, session_id: int, service_name: bytes, host_uniq: Optional[bytes] = None,
               relay_session_id: Optional[bytes] = None, encoder: str = "scapy",
               max_payload: Optional[int] = None) -> bytes:
    """The AC's PADS granting ``session_id`` (RFC 2516 5.4): Service-Name, echoed Host-Uniq and
    Relay-Session-Id, and PPP-Max-Payload (RFC 4638, bytes) when the AC grants one."""
    tags = [(TAG_SERVICE_NAME, service_name)] + _opt(TAG_HOST_UNIQ, host_uniq) + _opt(TAG_RELAY_SESSION_ID,
                                                                                      relay_session_id)
    return encode_discovery(client, ac, PADS, session_id, tags + _max_payload(max_payload), encoder)


def build_pads_error(client: bytes, ac: bytes, service_name: bytes, error_tag: int = TAG_SERVICE_NAME_ERROR,
                     message: bytes = b"", host_uniq: Optional[bytes] = None,
                     relay_session_id: Optional[bytes] = None, encoder: str = "scapy") -> bytes:
    """A PADS refusing the PADR: session id 0 and ``error_tag`` (Service-Name-Error, or
    AC-System-Error when out of session ids) carrying ``message`` (UTF-8, may be empty)."""
    tags = ([(TAG_SERVICE_NAME, service_name), (error_tag, message)] + _opt(TAG_HOST_UNIQ, host_uniq)
            + _opt(TAG_RELAY_SESSION_ID, relay_session_id))
    return encode_discovery(client, ac, PADS, 0, tags, encoder)


def build_padt(dst: bytes, src: bytes, session_id: int, message: Optional[bytes] = None,
               host_uniq: Optional[bytes] = None, relay_session_id: Optional[bytes] = None,
               encoder: str = "scapy") -> bytes:
    """A PADT ending ``session_id`` (RFC 2516 5.5), with an optional Generic-Error ``message``."""
    tags = _opt(TAG_HOST_UNIQ, host_uniq) + _opt(TAG_RELAY_SESSION_ID, relay_session_id) + _opt(
        TAG_GENERIC_ERROR, message)
    return encode_discovery(dst, src, PADT, session_id, tags, encoder)


def _lcp_echo(dst: bytes, src: bytes, session_id: int, code: int, identifier: int, magic: int, data: bytes,
              encoder: str) -> bytes:
    if encoder == "struct":
        ppp = _LCP.pack(PPP_LCP, code, identifier, 8 + len(data)) + _U32.pack(magic) + data
        return encode_session(dst, src, session_id, ppp)
    if encoder != "scapy":
        raise ValueError(f"unknown encoder {encoder!r}; use one of {ENCODERS}")
    from scapy.layers.l2 import Ether  # noqa: PLC0415
    from scapy.layers.ppp import PPP, PPP_LCP_Echo, PPPoE  # noqa: PLC0415

    return bytes(Ether(dst=_mac_str(dst), src=_mac_str(src), type=ETH_P_PPP_SES)
                 / PPPoE(version=1, type=1, code=0, sessionid=session_id) / PPP(proto=PPP_LCP)
                 / PPP_LCP_Echo(code=code, id=identifier, magic_number=magic, data=data))


def build_lcp_echo_request(client: bytes, ac: bytes, session_id: int, identifier: int, magic: int = 0,
                           data: bytes = b"", encoder: str = "scapy") -> bytes:
    """A host's LCP Echo-Request on session ``session_id`` (for tests and benchmarks)."""
    return _lcp_echo(ac, client, session_id, LCP_ECHO_REQUEST, identifier, magic, data, encoder)


def build_lcp_echo_reply(client: bytes, ac: bytes, session_id: int, identifier: int, magic: int = 0,
                         data: bytes = b"", encoder: str = "scapy") -> bytes:
    """The AC's LCP Echo-Reply (RFC 1661 5.8): same Identifier, the AC's Magic-Number (zero when
    none was negotiated, as here), the request's Data copied back."""
    return _lcp_echo(client, ac, session_id, LCP_ECHO_REPLY, identifier, magic, data, encoder)


def build_ac_echo_request(client: bytes, ac: bytes, session_id: int, identifier: int, magic: int = 0,
                          data: bytes = b"", encoder: str = "scapy") -> bytes:
    """The AC's own LCP Echo-Request to ``client`` (RFC 1661 5.8), its keepalive probe: Magic-Number
    0 (LCP is not negotiated here)."""
    return _lcp_echo(client, ac, session_id, LCP_ECHO_REQUEST, identifier, magic, data, encoder)
