"""PAP (RFC 1334) and CHAP with MD5 (RFC 1994): packet codec and the request/result types.

Pure functions on bytes: no sockets, no state, no secrets lookup (that is
:mod:`pfrps.bng.secrets`). Every ``info`` below is one PAP or CHAP packet *without* the PPP
protocol field (0xc023 PAP, 0xc223 CHAP), i.e. ``Code (1) | Identifier (1) | Length (2) | Data``.
Octets past ``Length`` are data-link padding and ignored (RFC 1334 2.2, RFC 1994 4).

Parsing
    ``parse_*`` never raise: a malformed packet gives a ``str`` saying why (wrong code, a
    Length field under 4 or past the end, an inner length running past Length). The server
    side silently discards those (RFC 1334 2.2.1, RFC 1994 4.1: "silently discarded").

Building
    ``build_*`` return the packet bytes and raise :class:`ValueError` for arguments that cannot
    be encoded (identifier outside 0..255, a field over its one-octet length, an empty
    challenge or value). Every packet shape is cross-checked against scapy
    (``scapy.layers.ppp.PPP_PAP_Request``, ``PPP_PAP_Response``, ``PPP_CHAP``,
    ``PPP_CHAP_ChallengeResponse``) in ``tests/unit/test_bng_auth.py``.

PAP (RFC 1334 section 2.2)::

    Authenticate-Request 1: Peer-ID Length (1) | Peer-ID | Passwd-Length (1) | Password
    Authenticate-Ack 2 / Authenticate-Nak 3: Msg-Length (1) | Message

CHAP (RFC 1994 section 4)::

    Challenge 1 / Response 2: Value-Size (1) | Value | Name (the rest, up to Length)
    Success 3 / Failure 4: Message (the rest, up to Length)

With MD5 (LCP Authentication-Protocol 0xc223, algorithm 5), the Response Value is
``MD5(Identifier || secret || Challenge Value)``, 16 octets (RFC 1994 section 4.1, RFC 1321):
:func:`chap_md5`.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import NamedTuple, Optional, Union

__all__ = [
    "PPP_PAP", "PPP_CHAP", "CHAP_MD5", "METHODS",
    "PAP_REQUEST", "PAP_ACK", "PAP_NAK",
    "CHAP_CHALLENGE", "CHAP_RESPONSE", "CHAP_SUCCESS", "CHAP_FAILURE",
    "MD5_LEN", "MAX_FIELD",
    "AuthRequest", "AuthResult",
    "PapRequest", "PapReply", "ChapChallenge", "ChapResponse", "ChapResult",
    "parse_pap", "build_pap_reply", "build_pap_request", "parse_pap_reply",
    "build_chap_challenge", "parse_chap_challenge", "build_chap_response", "parse_chap_response",
    "build_chap_result", "parse_chap_result", "chap_md5",
]

PPP_PAP = 0xC023   # PPP protocol number of PAP (RFC 1334 section 2.2)
PPP_CHAP = 0xC223  # PPP protocol number of CHAP (RFC 1994 section 4)
CHAP_MD5 = 5       # CHAP Algorithm: MD5 (RFC 1994 section 3, LCP Authentication-Protocol data c2 23 05)
METHODS = ("pap", "chap")

# RFC 1334 section 2.2: PAP codes
PAP_REQUEST, PAP_ACK, PAP_NAK = 1, 2, 3
# RFC 1994 section 4: CHAP codes
CHAP_CHALLENGE, CHAP_RESPONSE, CHAP_SUCCESS, CHAP_FAILURE = 1, 2, 3, 4

MD5_LEN = 16       # octets of an MD5 CHAP Response Value
MAX_FIELD = 255    # octets a one-octet length field can count (Peer-ID, Password, Message, Value)

_HDR = struct.Struct("!BBH")  # Code, Identifier, Length
_MAX_LEN = 0xFFFF


@dataclass(frozen=True)
class AuthRequest:
    """What a peer sent to authenticate, as handed to :meth:`pfrps.bng.secrets.Secrets.authenticate`
    (or a RADIUS client).

    Attributes:
        method: ``"pap"`` or ``"chap"`` (CHAP with MD5); anything else raises :class:`ValueError`.
        user: PAP Peer-ID or CHAP Response Name, raw bytes.
        password: PAP only: the Password, raw bytes (left out of ``repr``).
        chap_id: CHAP only: the Identifier of our Challenge (0..255), the one the Response echoed.
        challenge: CHAP only: the Challenge Value we sent.
        response: CHAP only: the peer's Response Value (16 octets for MD5; left out of ``repr``).
    """

    method: str
    user: bytes
    password: Optional[bytes] = field(default=None, repr=False)
    chap_id: Optional[int] = None
    challenge: Optional[bytes] = None
    response: Optional[bytes] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown authentication method {self.method!r}; use one of {METHODS}")


@dataclass(frozen=True)
class AuthResult:
    """The answer to an :class:`AuthRequest`.

    Attributes:
        ok: authenticated.
        message: the text for the PAP Ack/Nak Message or the CHAP Success/Failure Message; a
            failure never says whether the user exists.
        ipv4: a fixed IPv4 address for this user (from the secrets file's address list or
            RADIUS Framed-IP-Address), None to take one from the pool.
    """

    ok: bool
    message: bytes = b""
    ipv4: Optional[IPv4Address] = None


class PapRequest(NamedTuple):
    """A PAP Authenticate-Request (RFC 1334 2.2.1)."""

    identifier: int
    peer_id: bytes
    password: bytes


class PapReply(NamedTuple):
    """A PAP Authenticate-Ack (``ok``) or Authenticate-Nak (RFC 1334 2.2.2)."""

    ok: bool
    identifier: int
    message: bytes


class ChapChallenge(NamedTuple):
    """A CHAP Challenge (RFC 1994 4.1): the challenge ``value`` and the authenticator's ``name``."""

    identifier: int
    value: bytes
    name: bytes


class ChapResponse(NamedTuple):
    """A CHAP Response (RFC 1994 4.1): the hash ``value`` and the peer's ``name`` (its user name)."""

    identifier: int
    value: bytes
    name: bytes


class ChapResult(NamedTuple):
    """A CHAP Success (``ok``) or Failure (RFC 1994 4.2)."""

    ok: bool
    identifier: int
    message: bytes


# -- helpers ---------------------------------------------------------------------------------------
def _header(info: bytes, codes: tuple[int, ...], what: str) -> Union[tuple[int, int, bytes], str]:
    """``(code, identifier, data)`` of a PAP/CHAP packet, or why it is malformed."""
    n = len(info)
    if n < 4:
        return f"{n} bytes, need 4 for the {what} header"
    code, ident, length = _HDR.unpack_from(info)
    if code not in codes:
        return f"{what} code {code}, want {' or '.join(map(str, codes))}"
    if length < 4:
        return f"Length {length} is under the 4-byte header"
    if length > n:
        return f"Length {length} runs past the {n} bytes received"
    return code, ident, bytes(info[4:length])


def _check_id(identifier: int) -> None:
    if not 0 <= identifier <= 255:
        raise ValueError(f"identifier {identifier} is outside 0..255")


def _check_field(name: str, value: bytes, minimum: int = 0) -> None:
    if not minimum <= len(value) <= MAX_FIELD:
        raise ValueError(f"{name} of {len(value)} bytes; a one-octet length field takes {minimum}..{MAX_FIELD}")


def _packet(code: int, identifier: int, data: bytes) -> bytes:
    _check_id(identifier)
    if 4 + len(data) > _MAX_LEN:
        raise ValueError(f"packet of {4 + len(data)} bytes does not fit the 16-bit Length")
    return _HDR.pack(code, identifier, 4 + len(data)) + data


# -- PAP -------------------------------------------------------------------------------------------
def parse_pap(info: bytes) -> Union[PapRequest, str]:
    """Parse a PAP Authenticate-Request (RFC 1334 2.2.1); never raises.

    Args:
        info: the PAP packet (after the PPP protocol field), bytes-like.

    Returns:
        a :class:`PapRequest`, or a ``str`` saying why it is malformed: Code not 1, Length
        under 4 or past the end, Peer-ID Length or Passwd-Length running past Length. Octets
        between the Password and Length are tolerated (pppd does too).
    """
    h = _header(bytes(info), (PAP_REQUEST,), "PAP")
    if isinstance(h, str):
        return h
    _code, ident, data = h
    if not data:
        return "no Peer-ID Length octet"
    ulen = data[0]
    if 1 + ulen + 1 > len(data):
        return f"Peer-ID Length {ulen} leaves no room for Passwd-Length in {len(data)} data bytes"
    user = data[1:1 + ulen]
    plen = data[1 + ulen]
    off = 2 + ulen
    if off + plen > len(data):
        return f"Passwd-Length {plen} runs past Length ({len(data) - off} bytes left)"
    return PapRequest(ident, user, data[off:off + plen])


def build_pap_request(identifier: int, user: bytes, password: bytes) -> bytes:
    """A PAP Authenticate-Request (client side, RFC 1334 2.2.1).

    Raises:
        ValueError: identifier outside 0..255, user or password over 255 bytes.
    """
    _check_field("Peer-ID", user)
    _check_field("Password", password)
    return _packet(PAP_REQUEST, identifier, bytes([len(user)]) + user + bytes([len(password)]) + password)


def build_pap_reply(ok: bool, identifier: int, message: bytes) -> bytes:
    """A PAP Authenticate-Ack (``ok``, code 2) or Authenticate-Nak (code 3), RFC 1334 2.2.2.

    Args:
        ok: Ack when true, Nak otherwise.
        identifier: the Identifier of the Authenticate-Request being answered (0..255).
        message: the Message (0..255 bytes: Msg-Length is one octet).

    Returns:
        ``Code | Identifier | Length | Msg-Length | Message``, without the PPP protocol field.

    Raises:
        ValueError: identifier outside 0..255 or message over 255 bytes.
    """
    _check_field("Message", message)
    return _packet(PAP_ACK if ok else PAP_NAK, identifier, bytes([len(message)]) + message)


def parse_pap_reply(info: bytes) -> Union[PapReply, str]:
    """Parse a PAP Authenticate-Ack/-Nak (client side); never raises; ``str`` = why malformed."""
    h = _header(bytes(info), (PAP_ACK, PAP_NAK), "PAP")
    if isinstance(h, str):
        return h
    code, ident, data = h
    if not data:
        return "no Msg-Length octet"
    if 1 + data[0] > len(data):
        return f"Msg-Length {data[0]} runs past Length ({len(data) - 1} bytes left)"
    return PapReply(code == PAP_ACK, ident, data[1:1 + data[0]])


# -- CHAP ------------------------------------------------------------------------------------------
def _value_name(code: int, identifier: int, value: bytes, name: bytes) -> bytes:
    _check_field("Value", value, 1)
    return _packet(code, identifier, bytes([len(value)]) + value + name)


def _parse_value_name(info: bytes, code: int) -> Union[tuple[int, bytes, bytes], str]:
    h = _header(bytes(info), (code,), "CHAP")
    if isinstance(h, str):
        return h
    _code, ident, data = h
    if not data:
        return "no Value-Size octet"
    size = data[0]
    if size == 0:
        return "Value-Size 0 (the Value is one or more octets)"
    if 1 + size > len(data):
        return f"Value-Size {size} runs past Length ({len(data) - 1} bytes left)"
    return ident, data[1:1 + size], data[1 + size:]


def build_chap_challenge(identifier: int, challenge: bytes, name: bytes) -> bytes:
    """A CHAP Challenge (code 1, RFC 1994 4.1): ``Value-Size | challenge | name``.

    Args:
        identifier: changes with every new challenge (0..255).
        challenge: the challenge value, 1..255 bytes (use 16 random bytes, RFC 1994 2.3).
        name: the authenticator's name (``PPPConfig.ac_name``).

    Raises:
        ValueError: identifier outside 0..255, challenge empty or over 255 bytes, packet over 65535.
    """
    return _value_name(CHAP_CHALLENGE, identifier, challenge, name)


def parse_chap_challenge(info: bytes) -> Union[ChapChallenge, str]:
    """Parse a CHAP Challenge (client side); never raises; ``str`` = why malformed."""
    r = _parse_value_name(info, CHAP_CHALLENGE)
    return r if isinstance(r, str) else ChapChallenge(*r)


def build_chap_response(identifier: int, value: bytes, name: bytes) -> bytes:
    """A CHAP Response (code 2, RFC 1994 4.1), client side: ``value`` is :func:`chap_md5`'s digest.

    Raises:
        ValueError: identifier outside 0..255, value empty or over 255 bytes.
    """
    return _value_name(CHAP_RESPONSE, identifier, value, name)


def parse_chap_response(info: bytes) -> Union[ChapResponse, str]:
    """Parse a CHAP Response (RFC 1994 4.1); never raises.

    Returns:
        a :class:`ChapResponse` (``value`` of any size 1..255: checking it is 16 octets is the
        authenticator's job; a wrong size simply fails), or a ``str`` saying why it is
        malformed: Code not 2, Length under 4 or past the end, Value-Size 0 or past Length.
    """
    r = _parse_value_name(info, CHAP_RESPONSE)
    return r if isinstance(r, str) else ChapResponse(*r)


def build_chap_result(ok: bool, identifier: int, message: bytes) -> bytes:
    """A CHAP Success (``ok``, code 3) or Failure (code 4), RFC 1994 4.2: the Message is the rest
    of the packet (no length octet).

    Args:
        identifier: the Identifier of the Response being answered.

    Raises:
        ValueError: identifier outside 0..255, packet over 65535 bytes.
    """
    return _packet(CHAP_SUCCESS if ok else CHAP_FAILURE, identifier, bytes(message))


def parse_chap_result(info: bytes) -> Union[ChapResult, str]:
    """Parse a CHAP Success/Failure (client side); never raises; ``str`` = why malformed."""
    h = _header(bytes(info), (CHAP_SUCCESS, CHAP_FAILURE), "CHAP")
    if isinstance(h, str):
        return h
    code, ident, data = h
    return ChapResult(code == CHAP_SUCCESS, ident, data)


def chap_md5(identifier: int, secret: bytes, challenge: bytes) -> bytes:
    """The CHAP-MD5 Response Value: ``MD5(Identifier || secret || challenge)``, 16 bytes
    (RFC 1994 section 4.1 and 2.2, RFC 1321).

    Raises:
        ValueError: identifier outside 0..255.
    """
    _check_id(identifier)
    return hashlib.md5(bytes([identifier]) + secret + challenge).digest()
