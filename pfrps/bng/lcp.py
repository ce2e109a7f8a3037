"""LCP, server side (RFC 1661 section 6, RFC 2516 section 7), as a :class:`pfrps.bng.ppp.Layer`.

Our Configure-Request: MRU (``mru``), Authentication-Protocol (PAP ``c0 23`` or CHAP-MD5
``c2 23 05``, the first of ``auth`` the peer accepts; absent when ``auth`` is empty) and a
random non-zero Magic-Number.

The peer's Configure-Request:

=============================  ============================================================
MRU (1)                        64 <= MRU <= our ``mru``: Ack; else Nak with our ``mru``
                               (RFC 2516 7: at most 1492 on Ethernet)
Magic-Number (5)               Ack, unless 0 (RFC 1661 6.4: MUST be Nak'd) or equal to ours
                               (possible loopback): Nak with a new random number
ACCM (2), FCS-Alternatives (9),
ACFC (8)                       Reject (RFC 2516 7: MUST NOT be negotiated, MUST reject)
PFC (7), Quality-Protocol (4)  Reject (not used over PPPoE here)
Authentication-Protocol (3)    Reject: we do not authenticate ourselves to the client
anything else                  Reject (RFC 1661 5.4)
wrong Length for its type,
or a repeated option           Reject (each option is allowed once)
=============================  ============================================================

Answers to our request: a Nak of Authentication-Protocol suggesting another protocol we allow
switches to it, else to the next allowed one not tried; with none left, or when the peer
Rejects it, LCP cannot proceed and closes. A Nak of Magic-Number picks a new random number
(RFC 1661 6.4); a Reject drops it (magic 0). A Nak of MRU in 64..``mru`` is taken; a Reject
drops the option.

Codes past 7: Echo-Request is answered in Opened with our Magic-Number (RFC 1661 5.8), an
Echo-Reply is noted (liveness) when its Magic-Number is the peer's, a Discard-Request is
dropped, a Protocol-Reject (RFC 1661 5.7) is handed to ``on_protocol_reject`` (the session
stops that NCP, or LCP itself).
"""

from __future__ import annotations

import os
import struct
from typing import Callable, Optional, Sequence

from .ppp import CONF_ACK, DISCARD_REQ, ECHO_REP, ECHO_REQ, PPP_LCP, PROTO_REJ, Fsm, Packet, encode_packet, reply_for

__all__ = [
    "OPT_MRU", "OPT_ACCM", "OPT_AUTH", "OPT_QUALITY", "OPT_MAGIC", "OPT_PFC", "OPT_ACFC", "OPT_FCS_ALT",
    "AUTH_OPTION", "MIN_MRU", "LCP_COUNTERS",
    "LcpLayer", "build_protocol_reject", "build_echo_request",
]

# RFC 1661 section 6 (and RFC 1570 for 9): LCP Configuration Option types
OPT_MRU, OPT_ACCM, OPT_AUTH, OPT_QUALITY, OPT_MAGIC, OPT_PFC, OPT_ACFC, OPT_FCS_ALT = 1, 2, 3, 4, 5, 7, 8, 9
#: Authentication-Protocol option values (RFC 1334 for PAP, RFC 1994 4 for CHAP with MD5 = 5)
AUTH_OPTION = {"pap": b"\xc0\x23", "chap": b"\xc2\x23\x05"}
#: Smallest MRU we accept from a peer, bytes (RFC 791's 68 minus headroom, as pppd's MINMRU)
MIN_MRU = 64
#: Keys of :attr:`LcpLayer.counters`.
LCP_COUNTERS = ("echo_rx", "echo_tx", "echo_reply_rx", "echo_bad_magic", "discard_rx", "proto_rej_rx",
                "extra_malformed")

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_ALWAYS_REJECT = frozenset((OPT_ACCM, OPT_AUTH, OPT_QUALITY, OPT_PFC, OPT_ACFC, OPT_FCS_ALT))


def build_protocol_reject(protocol: int, info: bytes, identifier: int = 0, mru: int = 1500) -> bytes:
    """An LCP Protocol-Reject (code 8, RFC 1661 5.7) of a frame of ``protocol`` carrying
    ``info``, without the PPP protocol field: ``8 | identifier | Length | protocol (2) | info``,
    ``info`` cut so the packet fits the peer's ``mru`` (bytes)."""
    body = _U16.pack(protocol & 0xFFFF) + bytes(info)
    return encode_packet(PROTO_REJ, identifier & 0xFF, body[:max(2, mru - 4)])


def build_echo_request(identifier: int, magic: int, data: bytes = b"") -> bytes:
    """An LCP Echo-Request (code 9, RFC 1661 5.8): ``9 | identifier | Length | magic (4) | data``,
    without the PPP protocol field; ``magic`` is our negotiated Magic-Number (0 when none)."""
    return encode_packet(ECHO_REQ, identifier & 0xFF, _U32.pack(magic & 0xFFFFFFFF) + data)


def _random_magic(rand: Callable[[int], bytes], avoid: int = 0) -> int:
    while True:
        m = int.from_bytes(rand(4), "big")
        if m and m != avoid:
            return m


class LcpLayer:
    """The LCP :class:`pfrps.bng.ppp.Layer` of one PPPoE session (server side).

    Args:
        mru: the largest MRU we accept from the peer and the MRU we request, bytes.
        auth: authentication methods we allow, in order of preference: ``"pap"``, ``"chap"``
            (CHAP with MD5); empty: no authentication phase.
        rand: ``rand(n) -> n random bytes`` (``os.urandom``; tests pass a seeded one).
        up, down, started, finished: the session's This-Layer-Up/-Down/-Started/-Finished.
        on_protocol_reject: ``f(protocol)`` for a Protocol-Reject received in Opened.
        on_echo_reply: ``f()`` for an Echo-Reply with the peer's Magic-Number.

    Attributes (read by the session):
        magic: our Magic-Number (0 when rejected by the peer).
        peer_magic: the peer's acked Magic-Number (0 when it sent none).
        peer_mru: the peer's acked MRU, bytes (``mru`` when it sent none: over PPPoE the
            RFC 1661 default of 1500 does not fit, RFC 2516 7).
        local_mru: the MRU the peer acked for us (``mru`` when our option was rejected).
        auth_method: the method the peer acked (``"pap"``/``"chap"``) or None.
        failure: why LCP closed itself (e.g. no acceptable authentication protocol) or None.
        counters: ``dict[str, int]`` over :data:`LCP_COUNTERS`.
        fsm: the :class:`Fsm` driving this layer (set by the Fsm).
    """

    protocol = PPP_LCP
    name = "LCP"

    __slots__ = ("mru", "auth", "rand", "magic", "peer_magic", "peer_mru", "local_mru", "auth_method",
                 "failure", "counters", "fsm", "_want_mru", "_send_mru", "_send_magic", "_auth_left",
                 "_auth", "_up", "_down", "_started", "_finished", "_on_proto_rej", "_on_echo_reply")

    def __init__(self, mru: int = 1492, auth: Sequence[str] = ("pap", "chap"),
                 rand: Optional[Callable[[int], bytes]] = None,
                 up: Optional[Callable[[], None]] = None, down: Optional[Callable[[], None]] = None,
                 started: Optional[Callable[[], None]] = None, finished: Optional[Callable[[], None]] = None,
                 on_protocol_reject: Optional[Callable[[int], None]] = None,
                 on_echo_reply: Optional[Callable[[], None]] = None) -> None:
        for m in auth:
            if m not in AUTH_OPTION:
                raise ValueError(f"unknown authentication method {m!r}; use {tuple(AUTH_OPTION)}")
        self.mru = mru
        self.auth = tuple(auth)
        self.rand = rand or os.urandom
        self.magic = _random_magic(self.rand)
        self.peer_magic = 0
        self.peer_mru = mru
        self.local_mru = mru
        self.auth_method: Optional[str] = None
        self.failure: Optional[str] = None
        self.counters = dict.fromkeys(LCP_COUNTERS, 0)
        self.fsm: Optional[Fsm] = None
        self._want_mru = mru
        self._send_mru = True
        self._send_magic = True
        self._auth_left = list(self.auth)          # methods not yet tried, in order
        self._auth: Optional[str] = self._auth_left.pop(0) if self._auth_left else None
        self._up, self._down, self._started, self._finished = up, down, started, finished
        self._on_proto_rej = on_protocol_reject
        self._on_echo_reply = on_echo_reply

    # -- our request ---------------------------------------------------------------------------
    def request_options(self) -> list[tuple[int, bytes]]:
        """MRU, Authentication-Protocol, Magic-Number (each only while not rejected)."""
        opts = []
        if self._send_mru:
            opts.append((OPT_MRU, _U16.pack(self._want_mru)))
        if self._auth is not None:
            opts.append((OPT_AUTH, AUTH_OPTION[self._auth]))
        if self._send_magic:
            opts.append((OPT_MAGIC, _U32.pack(self.magic)))
        return opts

    def on_ack(self, opts: list[tuple[int, bytes]]) -> bool:
        """The peer acked our request (the Fsm checked it echoes it): record what was agreed."""
        self.auth_method = self._auth
        self.local_mru = self._want_mru if self._send_mru else self.mru
        if not self._send_magic:
            self.magic = 0
        return True

    def on_nak(self, opts: list[tuple[int, bytes]]) -> Optional[bool]:
        """Adjust to the peer's suggestions; False when no allowed authentication protocol is
        left (LCP closes). Suggestions for options we did not request are ignored."""
        for otype, value in opts:
            if otype == OPT_MRU and len(value) == 2:
                v = _U16.unpack(value)[0]
                if MIN_MRU <= v <= self.mru:
                    self._want_mru = v
            elif otype == OPT_MAGIC:
                self.magic = _random_magic(self.rand, self.magic)  # RFC 1661 6.4: a different one
            elif otype == OPT_AUTH and self._auth is not None:
                if not self._next_auth(value):
                    self.failure = "no acceptable authentication protocol"
                    return False
        return None

    def _next_auth(self, suggested: bytes) -> bool:
        """Switch to the suggested method when we allow it and have not tried it, else to the
        next one left; False when none is left."""
        for m in self._auth_left:
            if AUTH_OPTION[m] == suggested[:len(AUTH_OPTION[m])] and (m != "chap" or suggested == AUTH_OPTION[m]):
                self._auth_left.remove(m)
                self._auth = m
                return True
        if self._auth_left:
            self._auth = self._auth_left.pop(0)
            return True
        self._auth = None
        return False

    def on_reject(self, opts: list[tuple[int, bytes]]) -> bool:
        """Drop rejected options; False when Authentication-Protocol is rejected (we need it)."""
        for otype, _value in opts:
            if otype == OPT_AUTH:
                self.failure = "peer refused authentication"
                return False
            if otype == OPT_MRU:
                self._send_mru = False
            elif otype == OPT_MAGIC:
                self._send_magic = False
        return True

    # -- the peer's request --------------------------------------------------------------------
    def check_request(self, opts: list[tuple[int, bytes]], reject_naks: bool) -> tuple[int, list[tuple[int, bytes]]]:
        """Ack, Nak or Reject the peer's options (see the module docstring); on Ack, record
        the peer's MRU and Magic-Number."""
        rejects: list[tuple[int, bytes]] = []
        naks: list = []
        seen = 0
        mru = self.mru
        magic = 0
        for opt in opts:
            otype, value = opt
            bit = 1 << otype if otype < 32 else 0
            if seen & bit or otype in _ALWAYS_REJECT:
                rejects.append(opt)
                continue
            seen |= bit
            if otype == OPT_MRU:
                if len(value) != 2:
                    rejects.append(opt)
                    continue
                v = (value[0] << 8) | value[1]
                if MIN_MRU <= v <= self.mru:
                    mru = v
                else:
                    naks.append((opt, (OPT_MRU, _U16.pack(self.mru))))
            elif otype == OPT_MAGIC:
                if len(value) != 4:
                    rejects.append(opt)
                    continue
                v = _U32.unpack(value)[0]
                if v == 0 or v == self.magic:
                    naks.append((opt, (OPT_MAGIC, _U32.pack(_random_magic(self.rand, self.magic)))))
                else:
                    magic = v
            else:
                rejects.append(opt)
        reply = reply_for(rejects, naks, opts, reject_naks)
        if reply[0] == CONF_ACK:
            self.peer_mru = mru
            self.peer_magic = magic
        return reply

    # -- layer events --------------------------------------------------------------------------
    def this_layer_up(self) -> None:
        """This-Layer-Up: tell the session (authentication phase next)."""
        if self._up is not None:
            self._up()

    def this_layer_down(self) -> None:
        """This-Layer-Down: tell the session (NCPs and authentication stop)."""
        if self._down is not None:
            self._down()

    def this_layer_started(self) -> None:
        """This-Layer-Started: nothing to bring up below PPPoE."""
        if self._started is not None:
            self._started()

    def this_layer_finished(self) -> None:
        """This-Layer-Finished: the session ends."""
        if self._finished is not None:
            self._finished()

    def extra_code(self, pkt: Packet) -> bool:
        """Codes 8..11 (RFC 1661 5.7-5.9); False for any other code (Code-Reject)."""
        code = pkt.code
        c = self.counters
        if code == ECHO_REQ or code == ECHO_REP or code == DISCARD_REQ:
            if len(pkt.data) < 4:
                c["extra_malformed"] += 1
                return True  # silently discarded, not a code we do not know
            fsm = self.fsm
            if code == ECHO_REQ:
                c["echo_rx"] += 1
                if fsm is not None:
                    if fsm.state == "Opened":
                        c["echo_tx"] += 1
                    fsm.rxr(pkt)
            elif code == ECHO_REP:
                c["echo_reply_rx"] += 1
                magic = _U32.unpack_from(pkt.data)[0]
                if fsm is not None and fsm.state == "Opened":
                    if magic != self.peer_magic or (magic and magic == self.magic):
                        c["echo_bad_magic"] += 1
                    elif self._on_echo_reply is not None:
                        self._on_echo_reply()
                if fsm is not None:
                    fsm.rxr(pkt)
            else:
                c["discard_rx"] += 1
                if fsm is not None:
                    fsm.rxr(pkt)
            return True
        if code == PROTO_REJ:
            if len(pkt.data) < 2:
                c["extra_malformed"] += 1
                return True
            c["proto_rej_rx"] += 1
            # RFC 1661 5.7: acted on in Opened only (as pppd)
            if self.fsm is not None and self.fsm.state == "Opened" and self._on_proto_rej is not None:
                self._on_proto_rej((pkt.data[0] << 8) | pkt.data[1])
            return True
        return False
