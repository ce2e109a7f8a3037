"""One PPPoE session's PPP, server side: LCP -> authentication -> IPCP / IPv6CP (RFC 1661 3.2).

:class:`PPPSession` is pure: frames go out through ``hooks.send``, time through ``call_later``
(an asyncio loop's, or a test's fake clock), randomness through ``rand``. The server
(:mod:`pfrps.bng.server`) feeds it every PPP frame of the session the data plane passed up.

Phases (RFC 1661 3.2; :attr:`PPPSession.phase`)::

    "dead"          before start() and after hooks.finished
    "establish"     LCP negotiating (Link Establishment)
    "authenticate"  LCP Opened, PAP (RFC 1334) or CHAP-MD5 (RFC 1994) running
    "network"       authenticated: IPCP (and IPv6CP when cfg.ipv6) negotiating or open
    "terminate"     LCP closing (Terminate-Request sent)

Per received frame:

============================  ===================================================================
LCP                           the LCP automaton; a Terminate-Request while LCP is Opened is
                              acked, everything goes down and hooks.finished("peer terminated")
PAP / CHAP                    authentication phase: see below; before it: silently discarded
                              (RFC 1661 3.4); after success: a retransmitted request is
                              answered again with the same Ack / Success
IPCP, IPv6CP                  network phase: their automaton; before it: silently discarded;
                              IPv6CP when we do not run it (cfg.ipv6 False, no /64): Protocol-Reject
IPv6 (0x0057)                 IPv6CP Opened: a Router Solicitation (nd.parse_rs) gets a Router
                              Advertisement (at most one per 3 s, RFC 4861 MIN_DELAY_BETWEEN_RAS);
                              anything else: counted ``data_dropped``
IPv4 (0x0021)                 counted ``data_dropped`` (the data plane forwards what it can)
anything else                 network phase, LCP Opened: LCP Protocol-Reject (RFC 1661 5.7);
                              otherwise silently discarded
============================  ===================================================================

Authentication: PAP waits up to ``cfg.auth_timeout`` s for an Authenticate-Request; CHAP sends
a Challenge (16 random bytes, Name ``cfg.ac_name``) and retransmits it every ``cfg.restart`` s,
``cfg.max_configure`` transmissions in all. ``hooks.authenticate(req, done)`` may answer at once
or later (RADIUS): a retransmitted request is ignored while an answer is pending, and an answer
arriving after the session moved on is ignored. Failure: PAP Authenticate-Nak / CHAP Failure
(carrying ``result.message``), LCP Close (Terminate-Request), then hooks.finished("auth failed").

Network phase: the IPv4 address comes from ``hooks.assign_ipv4(result.ipv4)`` and the /64 from
``hooks.assign_ipv6()``, once per session (kept across an LCP renegotiation); the server frees
them when hooks.finished runs (read :attr:`PPPSession.ipv4` / ``ipv6_prefix``). No IPv4 address:
the session ends ("no ipv4 address"); no /64: IPv6CP is not run. IPCP Opened -> hooks.up(4);
IPv6CP Opened -> hooks.up(6) and three unsolicited Router Advertisements
(RFC 4861 10 MAX_INITIAL_RTR_ADVERTISEMENTS) :data:`RA_INITIAL_INTERVAL` s apart. When every
NCP has given up (e.g. IPCP timed out and IPv6CP was Protocol-Rejected), the session ends
("no network protocols", as pppd).

hooks.finished is called exactly once; afterwards every method is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Any, Callable, Optional, Protocol, Sequence

from . import auth
from .auth import AuthRequest, AuthResult
from .ipcp import IpcpLayer, Ipv6cpLayer
from .lcp import AUTH_OPTION, LcpLayer, build_echo_request, build_protocol_reject
from .ppp import (FSM_COUNTERS, PPP_CHAP, PPP_IPCP, PPP_IPV4, PPP_IPV6, PPP_IPV6CP, PPP_LCP, PPP_PAP, TERM_REQ,
                  Fsm)

__all__ = ["PPPConfig", "SessionHooks", "PPPSession", "PHASES", "SESSION_COUNTERS",
           "RA_INITIAL_COUNT", "RA_INITIAL_INTERVAL", "RA_MIN_DELAY", "ALL_NODES", "CHALLENGE_LEN"]

PHASES = ("dead", "establish", "authenticate", "network", "terminate")
#: Unsolicited RAs after IPv6CP opens (RFC 4861 10: MAX_INITIAL_RTR_ADVERTISEMENTS).
RA_INITIAL_COUNT = 3
#: Seconds between them (at most MAX_INITIAL_RTR_ADVERT_INTERVAL, 16 s).
RA_INITIAL_INTERVAL = 4.0
#: Seconds between two RAs (RFC 4861 10: MIN_DELAY_BETWEEN_RAS); a Solicitation within it is not answered.
RA_MIN_DELAY = 3.0
ALL_NODES = IPv6Address("ff02::1")
#: Octets of a CHAP Challenge value (RFC 1994 2.3 wants it unpredictable; 16 as pppd).
CHALLENGE_LEN = 16

#: Keys of :attr:`PPPSession.counters` (frames unless noted).
SESSION_COUNTERS = (
    "discarded",        # frames of a protocol not allowed in the current phase (RFC 1661 3.x)
    "proto_rej_tx",     # LCP Protocol-Rejects sent
    "data_dropped",     # IPv4/IPv6 data frames that reached the session (not RS)
    "rs_rx",            # Router Solicitations received
    "rs_ratelimited",   # of them not answered (an RA went out less than RA_MIN_DELAY s before)
    "ra_tx",            # Router Advertisements sent
    "auth_malformed",   # PAP/CHAP packets discarded as malformed
    "auth_ignored",     # PAP/CHAP requests ignored (an answer pending, wrong phase, wrong CHAP id)
    "auth_repeat",      # retransmitted requests answered again after success
    "challenge_tx",     # CHAP Challenges sent (retransmissions included)
    "after_finish",     # frames received after hooks.finished
)


@dataclass(frozen=True)
class PPPConfig:
    """PPP settings of every session (one per BNG).

    Attributes:
        auth: allowed methods in order of preference (``"pap"``, ``"chap"`` = CHAP-MD5);
            empty: no authentication phase.
        mru: the largest MRU we accept and the MRU we request, bytes (RFC 2516 7: <= 1492
            on a 1500-byte Ethernet).
        ac_name: CHAP Name of our Challenges.
        restart: Restart timer, seconds (RFC 1661 4.6); also the CHAP Challenge retransmission.
        max_configure, max_failure, max_terminate: RFC 1661 4.6 counters (max_configure also
            bounds CHAP Challenge transmissions).
        auth_timeout: seconds the authentication phase may last (request + answer).
        local_ipv4: our IPCP IP-Address (keyword-only, required).
        dns4: IPv4 DNS servers (IPCP Primary/Secondary, RFC 1877).
        dns6: IPv6 DNS servers (RA RDNSS, RFC 8106).
        ipv6: run IPv6CP (when an IPv6 pool exists).
    """

    auth: tuple[str, ...] = ("pap", "chap")
    mru: int = 1492
    ac_name: bytes = b"pfrps-bng"
    restart: float = 3.0
    max_configure: int = 10
    max_failure: int = 5
    max_terminate: int = 2
    auth_timeout: float = 30.0
    local_ipv4: IPv4Address = field(kw_only=True)
    dns4: tuple[IPv4Address, ...] = ()
    dns6: tuple[IPv6Address, ...] = ()
    ipv6: bool = True

    def __post_init__(self) -> None:
        for m in self.auth:
            if m not in AUTH_OPTION:
                raise ValueError(f"unknown authentication method {m!r}; use {tuple(AUTH_OPTION)}")
        if len(set(self.auth)) != len(self.auth):
            raise ValueError(f"authentication method listed twice in {self.auth}")
        if not 64 <= self.mru <= 65535:
            raise ValueError(f"mru {self.mru} is outside 64..65535")
        if not (self.restart > 0 and self.auth_timeout > 0):
            raise ValueError("restart and auth_timeout must be positive seconds")
        if min(self.max_configure, self.max_failure, self.max_terminate) < 1:
            raise ValueError("max_configure, max_failure and max_terminate must be >= 1")
        if not isinstance(self.local_ipv4, IPv4Address):
            object.__setattr__(self, "local_ipv4", IPv4Address(self.local_ipv4))


class SessionHooks(Protocol):
    """What a :class:`PPPSession` needs from the server (implemented by ``server.Subscriber``)."""

    def send(self, protocol: int, payload: bytes) -> None:
        """Send one PPP frame (``protocol``, then ``payload``) on this PPPoE session."""

    def authenticate(self, req: AuthRequest, done: Callable[[AuthResult], None]) -> None:
        """Check ``req``; call ``done(result)`` now or later (RADIUS)."""

    def assign_ipv4(self, fixed: Optional[IPv4Address]) -> Optional[IPv4Address]:
        """The peer's IPv4 address (``fixed``: the one authentication gave), None when none is free."""

    def assign_ipv6(self) -> Optional[IPv6Network]:
        """A /64 for the peer, None when none is free."""

    def up(self, family: int) -> None:
        """4: IPCP opened (the address is final); 6: IPv6CP opened."""

    def down(self, family: int) -> None:
        """That family's NCP left Opened."""

    def finished(self, reason: str) -> None:
        """The session is over (called once): PADT when needed, free everything."""


_DOWN_STATES = frozenset(("Initial", "Starting", "Closed", "Stopped"))


class PPPSession:
    """The PPP side of one PPPoE session, server side (see the module docstring).

    Args:
        cfg: a :class:`PPPConfig`.
        hooks: the server's :class:`SessionHooks`.
        call_later: ``call_later(seconds, callback)`` returning a handle with ``.cancel()``.
        rand: ``rand(n) -> n random bytes`` (Magic-Number, Interface-Identifier, CHAP challenge).

    Attributes (read-only):
        phase: one of :data:`PHASES`.
        user: the authenticated user name (bytes) or None.
        ipv4: the peer's IPv4Address once assigned, else None.
        ipv6_prefix: the peer's /64 once assigned, else None.
        peer_ifid: the peer's IPv6CP Interface-Identifier (8 bytes) or None.
        local_magic, peer_magic: LCP Magic-Numbers (0: none).
        mru: the peer's MRU, bytes (what frames to the peer must fit).
        counters: ``dict[str, int]`` over :data:`SESSION_COUNTERS`; :meth:`all_counters` adds
            the automata's and LCP's.
        echo_replies: Echo-Replies received with the peer's Magic-Number (liveness).
        lcp, ipcp, ipv6cp: the :class:`pfrps.bng.ppp.Fsm` s (ipv6cp None until the network phase
            runs it).
    """

    def __init__(self, cfg: PPPConfig, hooks: SessionHooks, call_later: Callable[[float, Callable[[], None]], Any],
                 rand: Callable[[int], bytes] = os.urandom) -> None:
        self.cfg = cfg
        self.hooks = hooks
        self._call_later = call_later
        self._rand = rand
        self.phase = "dead"
        self.user: Optional[bytes] = None
        self.ipv4: Optional[IPv4Address] = None
        self.ipv6_prefix: Optional[IPv6Network] = None
        self.counters = dict.fromkeys(SESSION_COUNTERS, 0)
        self.echo_replies = 0
        #: IPv6 DNS servers of the RA's RDNSS option (``cfg.dns6``, or RADIUS's: :meth:`set_dns`)
        self.dns6: tuple[IPv6Address, ...] = tuple(cfg.dns6)
        self._reason: Optional[str] = None
        self._finished = False
        self._up4 = self._up6 = False
        self.lcp_layer = LcpLayer(cfg.mru, cfg.auth, rand, up=self._lcp_up, down=self._lcp_down,
                                  finished=self._lcp_finished, on_protocol_reject=self._protocol_rejected,
                                  on_echo_reply=self.note_echo_reply)
        self.lcp = self._fsm(self.lcp_layer)
        self.ipcp_layer = IpcpLayer(cfg.local_ipv4, cfg.dns4, up=self._ipcp_up, down=self._ipcp_down,
                                    finished=self._ncp_finished)
        self.ipcp = self._fsm(self.ipcp_layer)
        self.ipv6cp_layer: Optional[Ipv6cpLayer] = None
        self.ipv6cp: Optional[Fsm] = None
        # authentication
        self._auth_timer: Any = None
        self._chap_timer: Any = None
        self._auth_token = 0          # bumped whenever an answer in flight becomes stale
        self._auth_pending = False
        self._auth_ok = False
        self._auth_msg = b""
        self._pap_ident: Optional[int] = None  # the latest PAP request's Identifier
        self._chap_id = rand(1)[0]
        self._challenge = b""
        self._challenge_pkt = b""
        self._challenge_tx = 0
        # router advertisements
        self._ra_timer: Any = None
        self._ra_left = 0
        self._ra_holdoff: Any = None
        self._src_ll: Optional[IPv6Address] = None

    def _fsm(self, layer: Any) -> Fsm:
        c = self.cfg
        f = Fsm(layer, self.hooks.send, self._call_later, c.restart, c.max_configure, c.max_failure, c.max_terminate)
        f.mru = c.mru  # until LCP has the peer's: a Code-Reject must fit the PPPoE payload (RFC 2516 7)
        return f

    # -- read-only state -----------------------------------------------------------------------
    @property
    def local_magic(self) -> int:
        """Our LCP Magic-Number (0 when the peer rejected it)."""
        return self.lcp_layer.magic

    @property
    def peer_magic(self) -> int:
        """The peer's LCP Magic-Number (0 when it sent none)."""
        return self.lcp_layer.peer_magic

    @property
    def mru(self) -> int:
        """The peer's MRU, bytes (cfg.mru when it sent none)."""
        return self.lcp_layer.peer_mru

    @property
    def peer_ifid(self) -> Optional[bytes]:
        """The peer's IPv6CP Interface-Identifier, 8 bytes, or None."""
        return self.ipv6cp_layer.peer_ifid if self.ipv6cp_layer is not None else None

    @property
    def local_ifid(self) -> Optional[bytes]:
        """Our IPv6CP Interface-Identifier, 8 bytes (link-local fe80::ifid), or None."""
        return self.ipv6cp_layer.ifid if self.ipv6cp_layer is not None else None

    @property
    def ended(self) -> bool:
        """hooks.finished has run."""
        return self._finished

    def all_counters(self) -> dict[str, int]:
        """This session's counters, its automata's (summed over LCP/IPCP/IPv6CP) and LCP's
        echo counters, one flat dict (names do not collide)."""
        out = dict(self.counters)
        out.update(self.lcp_layer.counters)
        for name in FSM_COUNTERS:
            out[name] = 0
        for f in (self.lcp, self.ipcp, self.ipv6cp):
            if f is not None:
                for k, v in f.counters.items():
                    out[k] += v
        return out

    # -- the server's calls --------------------------------------------------------------------
    def start(self) -> None:
        """After PADS: LCP Open + Up (first Configure-Request)."""
        if self._finished or self.phase != "dead":
            return
        self.phase = "establish"
        self.lcp.open()
        self.lcp.up()

    def set_dns(self, dns4: Sequence[IPv4Address] = (), dns6: Sequence[IPv6Address] = ()) -> None:
        """Per-session DNS servers (an Access-Accept's): IPCP offers ``dns4`` (RFC 1877) and the
        RA carries ``dns6`` (RFC 8106) instead of the configured ones; empty keeps those."""
        if dns4:
            self.ipcp_layer.set_dns(dns4)
        if dns6:
            self.dns6 = tuple(dns6)

    def restore(self, *, user: bytes, auth_method: Optional[str], local_magic: int, peer_magic: int,
                peer_mru: int, ipv4: Optional[IPv4Address], ipv6_prefix: Optional[IPv6Network] = None,
                local_ifid: Optional[bytes] = None, peer_ifid: Optional[bytes] = None) -> None:
        """Resume a session that another process of this worker negotiated (its durable record,
        read back after a restart): LCP, authentication and the NCPs that were open are Opened
        again with the negotiated values, without a packet and without ``hooks.up`` (the
        data-plane entry is still there). The peer never notices: RFC 1661's automata only
        move on events, and every timer of a negotiated session is stopped anyway.

        Raises:
            ValueError: the session was started already, or nothing was open (no address).
        """
        if self.phase != "dead" or self._finished:
            raise ValueError("restore() is for a fresh session")
        if ipv4 is None and ipv6_prefix is None:
            raise ValueError("a restored session needs an IPv4 address or an IPv6 prefix")
        lcp = self.lcp_layer
        lcp.magic, lcp.peer_magic = local_magic, peer_magic
        lcp.peer_mru = peer_mru or self.cfg.mru
        lcp.auth_method = auth_method
        self.lcp.state = "Opened"
        for f in (self.lcp, self.ipcp):
            f.mru = lcp.peer_mru
        self.user = user
        self._auth_ok = True
        self.phase = "network"
        if ipv4 is not None:
            self.ipv4 = ipv4
            self.ipcp_layer.assign(ipv4)
            self.ipcp.state = "Opened"
            self._up4 = True
        else:
            self.ipcp.state = "Stopped"  # IPv4 was rejected or not served: stays down
        if ipv6_prefix is not None and self.cfg.ipv6:
            self.ipv6_prefix = ipv6_prefix
            layer = Ipv6cpLayer(self._rand, up=self._ipv6cp_up, down=self._ipv6cp_down, finished=self._ncp_finished)
            if local_ifid:
                layer.ifid = bytes(local_ifid)
            layer.peer_ifid = bytes(peer_ifid) if peer_ifid else None
            self.ipv6cp_layer, self.ipv6cp = layer, self._fsm(layer)
            self.ipv6cp.mru = lcp.peer_mru
            self.ipv6cp.state = "Opened"
            self._up6 = True
            self._src_ll = IPv6Address(b"\xfe\x80" + bytes(6) + layer.ifid)

    def receive(self, protocol: int, info: bytes) -> None:
        """One PPP frame of this session: its protocol and information field (see the module
        docstring for what happens to each). Never raises on bad input."""
        if self._finished:
            self.counters["after_finish"] += 1
            return
        if protocol == PPP_LCP:
            lcp = self.lcp
            if lcp.state == "Opened" and len(info) >= 4 and info[0] == TERM_REQ:
                lcp.receive(info)
                if lcp.state == "Stopping":  # RTR in Opened: tld, zrc, sta (acked); we are done
                    self._set_reason("peer terminated")
                    self._finish()
                return
            lcp.receive(info)
            return
        phase = self.phase
        if protocol == PPP_IPCP:
            if phase == "network":
                self.ipcp.receive(info)
            else:
                self.counters["discarded"] += 1
        elif protocol == PPP_IPV6CP:
            if phase != "network":
                self.counters["discarded"] += 1
            elif self.ipv6cp is not None:
                self.ipv6cp.receive(info)
            else:
                self._send_protocol_reject(protocol, info)
        elif protocol == PPP_PAP or protocol == PPP_CHAP:
            if phase != "authenticate" and not (phase == "network" and self._auth_ok):
                self.counters["discarded"] += 1
            elif self.lcp_layer.auth_method != ("pap" if protocol == PPP_PAP else "chap"):
                self.counters["auth_ignored"] += 1
            elif protocol == PPP_PAP:
                self._pap(info)
            else:
                self._chap(info)
        elif protocol == PPP_IPV6:
            if not self._up6:
                self.counters["discarded"] += 1
                return
            from . import nd  # noqa: PLC0415  (written in parallel; only needed once IPv6CP is up)

            if nd.parse_rs(info):
                self.counters["rs_rx"] += 1
                if self._ra_holdoff is None:
                    self._send_ra()
                else:
                    self.counters["rs_ratelimited"] += 1
            else:
                self.counters["data_dropped"] += 1
        elif protocol == PPP_IPV4:
            if self._up4:
                self.counters["data_dropped"] += 1
            else:
                self.counters["discarded"] += 1
        elif phase == "network" and self.lcp.state == "Opened":
            self._send_protocol_reject(protocol, info)
        else:
            self.counters["discarded"] += 1

    def terminate(self, reason: str) -> None:
        """Administrative end: LCP Close (Terminate-Request, up to max_terminate of them), then
        hooks.finished(reason) once the peer acks or the retries run out; at once when LCP is
        not negotiating."""
        if self._finished:
            return
        self._set_reason(reason)
        self.lcp.close(reason.encode("utf-8", "replace")[:64])
        if not self._finished and self.lcp.state in _DOWN_STATES:
            self._finish()

    def lower_down(self, reason: str = "lower layer down") -> None:
        """The PPPoE session is gone (PADT received, keepalive expired): every automaton Down,
        hooks.down for the open families, hooks.finished(reason); no frame is sent."""
        if self._finished:
            return
        self._set_reason(reason)
        self._finish()

    def echo_request(self, identifier: int) -> bytes:
        """An LCP Echo-Request (RFC 1661 5.8) with our Magic-Number, without the PPP protocol
        field, for the server's keepalive (send it with protocol 0xc021)."""
        return build_echo_request(identifier, self.lcp_layer.magic if self.lcp.state == "Opened" else 0)

    def note_echo_reply(self) -> None:
        """An Echo-Reply arrived (liveness): counts :attr:`echo_replies`."""
        self.echo_replies += 1

    # -- ending --------------------------------------------------------------------------------
    def _set_reason(self, reason: str) -> None:
        if self._reason is None:
            self._reason = reason

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._stop_auth()
        self._stop_ra()
        if self._ra_holdoff is not None:
            self._ra_holdoff.cancel()
            self._ra_holdoff = None
        for f in (self.ipv6cp, self.ipcp, self.lcp):
            if f is not None:
                f.down()
                f.stop_timer()
        self.phase = "dead"
        self.hooks.finished(self._reason or "terminated")

    # -- LCP callbacks -------------------------------------------------------------------------
    def _lcp_up(self) -> None:
        mru = self.lcp_layer.peer_mru
        for f in (self.lcp, self.ipcp, self.ipv6cp):
            if f is not None:
                f.mru = mru
        method = self.lcp_layer.auth_method
        if method is None:
            self._network(None)
            return
        self.phase = "authenticate"
        self._auth_token += 1
        self._auth_pending = False
        self._auth_ok = False
        self._auth_timer = self._call_later(self.cfg.auth_timeout, self._auth_timeout)
        if method == "chap":
            self._chap_id = (self._chap_id + 1) & 0xFF
            self._challenge = bytes(self._rand(CHALLENGE_LEN))
            self._challenge_pkt = auth.build_chap_challenge(self._chap_id, self._challenge, self.cfg.ac_name[:200])
            self._challenge_tx = 0
            self._send_challenge()

    def _lcp_down(self) -> None:
        self._stop_auth()
        self._auth_ok = False
        self._stop_ra()
        for f in (self.ipv6cp, self.ipcp):
            if f is not None and f.state != "Initial":
                f.down()
        if not self._finished:
            self.phase = "terminate" if self.lcp.state in ("Closing", "Stopping") else "establish"

    def _lcp_finished(self) -> None:
        if self._finished:
            return
        reasons = {"TO-": "LCP timeout", "RXJ-": "LCP rejected by peer"}
        self._set_reason(self.lcp_layer.failure or reasons.get(self.lcp.last_event, "LCP closed"))
        self._finish()

    def _protocol_rejected(self, protocol: int) -> None:
        """The peer Protocol-Rejected ``protocol`` (LCP Opened)."""
        if protocol == PPP_IPCP or protocol == PPP_IPV4:
            self.ipcp.protocol_reject()
        elif protocol == PPP_IPV6CP or protocol == PPP_IPV6:
            if self.ipv6cp is not None:
                self.ipv6cp.protocol_reject()
        elif protocol == PPP_LCP:
            self._set_reason("LCP rejected by peer")
            self.lcp.protocol_reject()
        elif (protocol == PPP_PAP or protocol == PPP_CHAP) and self.phase == "authenticate":
            self._auth_fail("peer rejected authentication")

    def _send_protocol_reject(self, protocol: int, info: bytes) -> None:
        self.counters["proto_rej_tx"] += 1
        self.hooks.send(PPP_LCP, build_protocol_reject(protocol, info, self.lcp.next_id(), self.lcp_layer.peer_mru))

    # -- authentication ------------------------------------------------------------------------
    def _stop_auth(self) -> None:
        self._auth_token += 1
        self._auth_pending = False
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        if self._chap_timer is not None:
            self._chap_timer.cancel()
            self._chap_timer = None

    def _auth_timeout(self) -> None:
        self._auth_timer = None
        if self.phase == "authenticate" and not self._finished:
            self._auth_fail("auth timeout")

    def _auth_fail(self, reason: str, packet: Optional[tuple[int, bytes]] = None) -> None:
        self._stop_auth()
        if packet is not None:
            self.hooks.send(*packet)
        self._set_reason(reason)
        self.phase = "terminate"
        self.lcp.close(reason.encode())
        if not self._finished and self.lcp.state in _DOWN_STATES:
            self._finish()

    def _send_challenge(self) -> None:
        self._challenge_tx += 1
        self.counters["challenge_tx"] += 1
        self.hooks.send(PPP_CHAP, self._challenge_pkt)
        self._chap_timer = self._call_later(self.cfg.restart, self._challenge_timeout)

    def _challenge_timeout(self) -> None:
        self._chap_timer = None
        if self.phase != "authenticate" or self._auth_pending or self._finished:
            return
        if self._challenge_tx < self.cfg.max_configure:
            self._send_challenge()
        else:
            self._auth_fail("auth timeout")

    def _pap(self, info: bytes) -> None:
        req = auth.parse_pap(info)
        if type(req) is str:
            self.counters["auth_malformed"] += 1
            return
        if self._auth_ok:
            self.counters["auth_repeat"] += 1
            self.hooks.send(PPP_PAP, auth.build_pap_reply(True, req.identifier, self._auth_msg))
            return
        if self._auth_pending:
            # a retransmission while the answer is pending (RADIUS): the answer will carry the
            # latest request's Identifier (RFC 1334 2.2.2: the Ack copies the request's)
            self._pap_ident = req.identifier
            self.counters["auth_ignored"] += 1
            return
        self._auth_pending = True
        token = self._auth_token
        ident, user = req.identifier, req.peer_id
        self._pap_ident = ident
        self.hooks.authenticate(AuthRequest("pap", user, password=req.password),
                                lambda res: self._auth_done(token, PPP_PAP, ident, user, res))

    def _chap(self, info: bytes) -> None:
        resp = auth.parse_chap_response(info)
        if type(resp) is str:
            self.counters["auth_malformed"] += 1
            return
        if resp.identifier != self._chap_id:
            self.counters["auth_ignored"] += 1
            return
        if self._auth_ok:
            self.counters["auth_repeat"] += 1
            self.hooks.send(PPP_CHAP, auth.build_chap_result(True, resp.identifier, self._auth_msg))
            return
        if self._auth_pending:
            self.counters["auth_ignored"] += 1
            return
        self._auth_pending = True
        if self._chap_timer is not None:
            self._chap_timer.cancel()
            self._chap_timer = None
        token = self._auth_token
        ident, user = resp.identifier, resp.name
        self.hooks.authenticate(AuthRequest("chap", user, chap_id=ident, challenge=self._challenge,
                                            response=resp.value),
                                lambda res: self._auth_done(token, PPP_CHAP, ident, user, res))

    def _auth_done(self, token: int, protocol: int, ident: int, user: bytes, result: AuthResult) -> None:
        if token != self._auth_token or self._finished or self.phase != "authenticate":
            return  # a late answer: the session moved on
        self._auth_pending = False
        if protocol == PPP_PAP:
            ident = self._pap_ident if self._pap_ident is not None else ident
            msg = bytes(result.message[:255])
            pkt = auth.build_pap_reply(bool(result.ok), ident, msg if result.ok else msg or b"authentication failed")
        else:
            msg = bytes(result.message[:max(0, self.lcp_layer.peer_mru - 4)])
            pkt = auth.build_chap_result(bool(result.ok), ident, msg if result.ok else msg or b"authentication failed")
        if not result.ok:
            self._auth_fail("auth failed", (protocol, pkt))
            return
        self._stop_auth()
        self._auth_ok = True
        self._auth_msg = msg
        self.user = user
        self.hooks.send(protocol, pkt)
        self._network(result.ipv4)

    # -- network phase -------------------------------------------------------------------------
    def _network(self, fixed: Optional[IPv4Address]) -> None:
        self.phase = "network"
        hooks = self.hooks
        if self.ipv4 is None:
            addr = hooks.assign_ipv4(fixed)
            if self._finished or self.phase != "network":
                return
            if addr is None:
                self.terminate("no ipv4 address")
                return
            self.ipv4 = addr
        self.ipcp_layer.assign(self.ipv4)
        cfg = self.cfg
        if cfg.ipv6 and self.ipv6cp is None:
            if self.ipv6_prefix is None:
                self.ipv6_prefix = hooks.assign_ipv6()
                if self._finished or self.phase != "network":
                    return
            if self.ipv6_prefix is not None:
                self.ipv6cp_layer = Ipv6cpLayer(self._rand, up=self._ipv6cp_up, down=self._ipv6cp_down,
                                                finished=self._ncp_finished)
                self.ipv6cp = self._fsm(self.ipv6cp_layer)
                self.ipv6cp.mru = self.lcp_layer.peer_mru
        self.ipcp.open()
        self.ipcp.up()
        if self.ipv6cp is not None and self.phase == "network":
            self.ipv6cp.open()
            self.ipv6cp.up()

    def _ncp_finished(self) -> None:
        if self._finished or self.phase != "network":
            return
        for f in (self.ipcp, self.ipv6cp):
            if f is not None and f.state not in _DOWN_STATES:
                return
        self.terminate("no network protocols")

    def _ipcp_up(self) -> None:
        self._up4 = True
        self.hooks.up(4)

    def _ipcp_down(self) -> None:
        if self._up4:
            self._up4 = False
            self.hooks.down(4)

    def _ipv6cp_up(self) -> None:
        self._up6 = True
        self._src_ll = IPv6Address(b"\xfe\x80" + bytes(6) + self.ipv6cp_layer.ifid)
        self.hooks.up(6)
        if self._up6 and not self._finished:
            self._ra_left = RA_INITIAL_COUNT
            self._ra_tick()

    def _ipv6cp_down(self) -> None:
        self._stop_ra()
        if self._up6:
            self._up6 = False
            self.hooks.down(6)

    # -- router advertisements (RFC 4861 6.2.4, over PPP: RFC 5072 5) -----------------------------
    def _stop_ra(self) -> None:
        self._ra_left = 0
        if self._ra_timer is not None:
            self._ra_timer.cancel()
            self._ra_timer = None

    def _ra_tick(self) -> None:
        self._ra_timer = None
        if not self._up6 or self._finished or self._ra_left <= 0:
            return
        self._ra_left -= 1
        self._send_ra()
        if self._ra_left > 0:
            self._ra_timer = self._call_later(RA_INITIAL_INTERVAL, self._ra_tick)

    def _send_ra(self) -> None:
        from . import nd  # noqa: PLC0415

        mtu = self.lcp_layer.local_mru  # what the peer may send us; the RA's MTU option needs >= 1280
        ra = nd.build_ra(self._src_ll, ALL_NODES, self.ipv6_prefix, self.dns6, mtu if 1280 <= mtu else None)
        self.counters["ra_tx"] += 1
        self.hooks.send(PPP_IPV6, ra)
        if self._ra_holdoff is not None:
            self._ra_holdoff.cancel()
        self._ra_holdoff = self._call_later(RA_MIN_DELAY, self._ra_holdoff_over)

    def _ra_holdoff_over(self) -> None:
        self._ra_holdoff = None
