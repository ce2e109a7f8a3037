"""The access concentrator: a frame handler for :class:`pfrps.supervisor.Supervisor` workers.

Steering sends every frame of one client MAC to one worker, so a worker keeps its
subscribers' sessions in ``ctx.storage`` with no lock, and needs no other worker to answer:

* the AC-Cookie is an HMAC under a secret made before the workers fork, and the current
  time window (any worker, or a restarted one, verifies it; a cookie stays good for one to
  two windows, see :func:`pfrps.ac.protocol.verify_cookie`);
* session ids come from the worker's own slice of the 16-bit space (``sid % N == worker``).

Per frame (RFC 2516 section 5, RFC 1661 section 5.8):

=============================  ===============================================================
PADI (broadcast or to us)      PADO, unless a Service-Name is asked that is not offered
PADR (to us)                   unknown Service-Name: PADS with Service-Name-Error, session id 0;
                               AC-Cookie missing, wrong or expired: nothing (``bad_cookie``);
                               worker at its session limit: PADS with AC-System-Error;
                               else PADS with a session id; the same client MAC and Host-Uniq
                               again get the same session (a retransmitted PADR is idempotent);
                               a new Host-Uniq from a MAC that has ``sessions_per_mac`` sessions
                               replaces its oldest (``replaced``: the client started over)
PADT (to us)                   ends the session
session frame, unknown session PADT to the sender with that session id, at most ``padt_rate``
                               per second per worker (token bucket; ``padt_ratelimited``)
LCP Echo-Request, known        Echo-Reply: same Identifier and Data, our Magic-Number (0: LCP is
session                        not negotiated here, and RFC 1661 says to send 0 then)
anything else                  counted ``ignored`` (or ``malformed``) and dropped
=============================  ===============================================================

Every handled frame counts exactly one of ``served``, ``ignored`` or ``malformed``, so those
three add up to the frames the worker was given.

Keepalive: every ``echo_interval`` seconds a worker timer (``ctx.loop``) sends an LCP
Echo-Request on each session silent for an interval; after ``echo_misses`` unanswered ones the
session expires: PADT, id freed (``expired``). Any frame on the session answers.

VLANs: 802.1Q and QinQ frames are served like untagged ones and every reply carries the
request's tags back: the outer tag the kernel stripped (``meta.vlan_tci``; its TPID from
``meta.vlan_tpid`` when the framework gives it, else 0x88a8 when another tag follows and
0x8100 when not) and any tag still in the frame. A session belongs to its MAC and VLANs.

When a worker stops (SIGTERM) it sends PADT for each of its sessions. A worker that is
killed loses its sessions; its replacement answers their next session frame with PADT, which
makes the clients start over (RFC 2516's recovery path).
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence


from . import protocol as p

__all__ = ["AC_COUNTERS", "AC_GAUGES", "AC_METRICS_HELP", "ACConfig", "AccessConcentrator", "ACSession", "WorkerState"]

#: Per-worker application counters (frames unless noted); give them to SupervisorConfig(app_counters=...).
AC_COUNTERS = (
    "padi",        # PADI received
    "pado",        # PADO sent
    "padr",        # PADR received
    "pads",        # PADS sent that grant a session (a retransmitted PADR counts again)
    "pads_error",  # PADS sent with Service-Name-Error or AC-System-Error
    "padt_rx",     # PADT received (addressed to us)
    "padt_tx",     # PADT sent (unknown session, expiry, or at shutdown)
    "malformed",   # frames protocol.parse_frame rejected (outcome)
    "echo",        # LCP Echo-Replies sent
    "bad_cookie",  # PADR with a missing, wrong or expired AC-Cookie (dropped; also counted ignored)
    "ignored",     # well-formed frames not answered (not for us, unoffered service in PADI, ...) (outcome)
    "served",      # frames answered or acted on (outcome: served + ignored + malformed = frames handled)
    "tagged",      # frames that carried one or two VLAN tags
    "echo_tx",     # LCP Echo-Requests the AC sent (keepalive)
    "expired",     # sessions ended after echo_misses unanswered Echo-Requests
    "replaced",    # sessions replaced by a new Host-Uniq from the same MAC
    "padt_ratelimited",  # PADTs for unknown sessions not sent: token bucket empty (also counted ignored)
)

#: Per-worker gauges; give them to SupervisorConfig(app_gauges=...). The supervisor zeroes a
#: restarted worker's gauges, since its replacement starts with an empty session table.
AC_GAUGES = ("sessions",)  # sessions open on this worker

#: HELP text of the counters and gauges on the Prometheus endpoint (``--metrics``), by name.
AC_METRICS_HELP = {
    "padi": "PADI frames received (frames; per worker).",
    "pado": "PADO frames sent (frames; per worker).",
    "padr": "PADR frames received (frames; per worker).",
    "pads": "PADS frames sent that grant a session; a retransmitted PADR counts again (frames; per worker).",
    "pads_error": "PADS frames sent with Service-Name-Error or AC-System-Error (frames; per worker).",
    "padt_rx": "PADT frames received for this AC (frames; per worker).",
    "padt_tx": "PADT frames sent: unknown session, keepalive expiry or shutdown (frames; per worker).",
    "malformed": "Frames the AC could not parse (frames; per worker).",
    "echo": "LCP Echo-Replies sent (frames; per worker).",
    "bad_cookie": "PADRs with a missing, wrong or expired AC-Cookie, dropped (frames; per worker).",
    "ignored": "Well-formed frames not answered: not for this AC, unoffered service ... (frames; per worker).",
    "served": "Frames answered or acted on (frames; per worker).",
    "tagged": "Frames that carried one or two VLAN tags (frames; per worker).",
    "echo_tx": "LCP Echo-Requests sent as keepalive (frames; per worker).",
    "expired": "Sessions ended after unanswered keepalive Echo-Requests (sessions; per worker).",
    "replaced": "Sessions replaced by a new Host-Uniq from the same MAC (sessions; per worker).",
    "padt_ratelimited": "PADTs for unknown sessions not sent, rate limit reached (frames; per worker).",
    "sessions": "PPPoE sessions open (sessions; per worker, zeroed when the worker restarts).",
}


@dataclass(frozen=True)
class ACConfig:
    """What the AC answers with, and the bounds of its state.

    Attributes:
        mac: the AC's MAC (the interface's), 6 bytes: replies come from it, and unicast
            frames to another MAC are ignored.
        ac_name: the AC-Name TAG value.
        services: offered Service-Names; empty means any (a PADI/PADR may ask for anything).
        secret: the AC-Cookie HMAC key; make it once, before the workers fork.
        encoder: ``"struct"`` (fast) or ``"scapy"``; see :mod:`pfrps.ac.protocol`.
        max_frame: largest untagged frame to send, bytes (14 + the interface MTU); a tagged
            reply may be 4 bytes longer (one tag: what af_packet allows above the MTU).
        max_sessions: sessions per worker, at most its session-id partition; 0 means the
            whole partition (``65536 / N`` ids). Beyond it a PADR gets PADS with AC-System-Error.
        sessions_per_mac: sessions one client MAC (on one VLAN) may hold; a PADR with a new
            Host-Uniq beyond it replaces that MAC's oldest session.
        echo_interval: seconds between keepalive sweeps (LCP Echo-Request to each session
            silent for that long); 0 turns keepalive and expiry off.
        echo_misses: unanswered Echo-Requests after which a session expires (PADT), >= 1.
        cookie_window: seconds of one AC-Cookie window (a cookie is good for one to two).
        padt_rate: PADTs per second a worker may send for frames on unknown sessions
            (token bucket refill rate, frames/s).
        padt_burst: that bucket's depth, frames.
        max_payload: RFC 4638: the largest PPP payload granted to a host whose PADI/PADR asks
            for more than 1492 (bytes; the PADO/PADS then carry PPP-Max-Payload), bounded by
            ``max_frame``; 0 (the default): the tag is not answered, the MRU stays 1492.
        outer_tpid: TPID for the tag the kernel stripped when the framework does not say
            (``meta.vlan_tpid``); None: 0x88a8 when another tag follows, else 0x8100.
    """

    mac: bytes
    ac_name: bytes
    services: tuple[bytes, ...] = ()
    secret: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    encoder: str = "struct"
    max_frame: int = 1514
    max_sessions: int = 0
    sessions_per_mac: int = 1
    echo_interval: float = 30.0
    echo_misses: int = 3
    cookie_window: float = 60.0
    padt_rate: float = 100.0
    padt_burst: int = 100
    outer_tpid: Optional[int] = None
    max_payload: int = 0
    #: Several ports (``-i`` repeated): ``{ifindex: that port's MAC}``; replies to a frame come
    #: from the MAC of the port it came in on (and leave by that port), and a host must address
    #: the AC by that MAC. Empty: ``mac`` everywhere.
    port_macs: dict[int, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.mac) != 6 or self.mac[0] & 1:
            raise ValueError("the AC's MAC must be 6 bytes, unicast")
        if len(self.secret) < 16:
            raise ValueError("the cookie secret must be at least 16 bytes")
        if self.encoder not in p.ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}")
        if self.max_sessions < 0 or self.sessions_per_mac < 1 or self.echo_misses < 1 or self.padt_burst < 1:
            raise ValueError("max_sessions must be >= 0, sessions_per_mac, echo_misses and padt_burst >= 1")
        for name in ("echo_interval", "cookie_window", "padt_rate"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (value == 0 and name != "echo_interval"):
                raise ValueError(f"{name} must be a finite number of seconds above 0, not {value!r}")
        if self.outer_tpid is not None and self.outer_tpid not in p.VLAN_TPIDS:
            raise ValueError(f"outer_tpid must be one of {[hex(t) for t in p.VLAN_TPIDS]}")

    def offers(self, service_name: bytes) -> bool:
        """True when a host asking for ``service_name`` can be served (empty asks for any)."""
        return not self.services or not service_name or service_name in self.services


@dataclass(slots=True)
class ACSession:
    """One session: the client's MAC, its session id and what its PADR carried.

    ``vlan`` is the raw VLAN tags its PADR came with (replies and probes carry them);
    ``end_cause`` why it ended, set just before it is closed (an RFC 2866 Acct-Terminate-Cause
    name: ``User-Request`` for PADT, ``Lost-Carrier`` for keepalive expiry or replacement,
    ``NAS-Reboot`` at shutdown; "" when the application closed it);
    ``max_payload`` the PPP-Max-Payload granted in PADS (RFC 4638, bytes; 0: none, the PPP
    MRU stays at most 1492);
    ``last_rx`` the clock time of its last frame (seconds); ``misses`` the Echo-Requests sent
    since then.
    """

    mac: bytes
    session_id: int
    host_uniq: Optional[bytes]
    service_name: bytes
    relay_session_id: Optional[bytes]
    magic: int = 0
    vlan: bytes = b""
    last_rx: float = 0.0
    misses: int = 0
    echo_id: int = 0
    #: The port (ifindex) its PADR came in on, with several ports (probes and PADT go out of it), or None.
    ifindex: Optional[int] = None
    max_payload: int = 0
    end_cause: str = ""


class WorkerState:
    """A worker's sessions (``ctx.storage["ac"]``), keyed by (client MAC, session id).

    Bounded: at most ``limit`` sessions (and the id partition), at most ``per_mac`` per
    (MAC, VLAN); ids of closed sessions go back to the allocator.
    """

    def __init__(self, worker_id: int, worker_count: int, start: int = 0, limit: int = 0,
                 per_mac: int = 1) -> None:
        self.ids = p.SessionIdAllocator(worker_id, worker_count, start)
        self.limit = min(limit, self.ids.capacity) if limit else self.ids.capacity
        self.per_mac = per_mac
        self.sessions: dict[tuple[bytes, int], ACSession] = {}
        self.by_uniq: dict[tuple[bytes, bytes, Optional[bytes]], int] = {}
        self.by_mac: dict[tuple[bytes, bytes], list[int]] = {}
        self.padt_tokens = 0.0
        self.padt_time: Optional[float] = None  # None: the bucket starts full
        self.timer: Any = None
        #: Called with each session :meth:`close` removes, whatever the cause (PADT, expiry,
        #: replacement, shutdown): an application on top of the AC (the BNG) frees its own
        #: per-session state there.
        self.on_close: Optional[Callable[[ACSession], None]] = None

    def open(self, mac: bytes, host_uniq: Optional[bytes], service: bytes, relay: Optional[bytes],
             vlan: bytes = b"", now: float = 0.0) -> tuple[Optional[ACSession], bool, list[ACSession]]:
        """The session for (mac, VLAN, host_uniq): ``(session, created, replaced sessions)``;
        session None when the worker is at its limit."""
        vkey = p.vlan_key(vlan)
        sid = self.by_uniq.get((mac, vkey, host_uniq))
        if sid is not None:
            sess = self.sessions[(mac, sid)]
            sess.last_rx, sess.misses = now, 0
            return sess, False, []
        replaced = []
        mine = self.by_mac.get((mac, vkey))
        while mine and len(mine) >= self.per_mac:
            self.sessions[(mac, mine[0])].end_cause = "Lost-Carrier"  # the client started over
            replaced.append(self.close(mac, mine[0]))
        if len(self.sessions) >= self.limit:
            return None, False, replaced
        sid = self.ids.allocate()
        if sid is None:
            return None, False, replaced
        sess = ACSession(mac, sid, host_uniq, service, relay, vlan=vlan, last_rx=now)
        self.sessions[(mac, sid)] = sess
        self.by_uniq[(mac, vkey, host_uniq)] = sid
        self.by_mac.setdefault((mac, vkey), []).append(sid)
        return sess, True, replaced

    def close(self, mac: bytes, session_id: int) -> Optional[ACSession]:
        """Remove and return the session, or None when there is none."""
        sess = self.sessions.pop((mac, session_id), None)
        if sess is not None:
            vkey = p.vlan_key(sess.vlan)
            self.by_uniq.pop((mac, vkey, sess.host_uniq), None)
            mine = self.by_mac.get((mac, vkey))
            if mine is not None:
                mine.remove(session_id)
                if not mine:
                    del self.by_mac[(mac, vkey)]
            self.ids.release(session_id)
            if self.on_close is not None:
                self.on_close(sess)
        return sess

    def take_padt_token(self, now: float, rate: float, burst: int) -> bool:
        """Token bucket (``rate`` tokens/s, ``burst`` deep, starts full): True when a PADT may go."""
        if self.padt_time is None:
            self.padt_tokens, self.padt_time = float(burst), now
        tokens = min(float(burst), self.padt_tokens + (now - self.padt_time) * rate)
        self.padt_time = now
        if tokens >= 1.0:
            self.padt_tokens = tokens - 1.0
            return True
        self.padt_tokens = tokens
        return False


class AccessConcentrator:
    """A PPPoE discovery AC as a :class:`~pfrps.supervisor.Supervisor` handler.

    Make it *before* :meth:`Supervisor.start` (the workers fork from this process and inherit
    the cookie secret), then pass :meth:`handle`, :meth:`on_start` and :meth:`on_stop` to the
    supervisor, with :data:`AC_COUNTERS` as ``app_counters`` and :data:`AC_GAUGES` as
    ``app_gauges``::

        ac = AccessConcentrator(ACConfig(mac, b"my-ac", (b"internet",)), workers=8)
        sup = Supervisor(SupervisorConfig("enp1s0", 8, app_counters=AC_COUNTERS, app_gauges=AC_GAUGES),
                         handler=ac.handle, on_start=ac.on_start, on_stop=ac.on_stop)

    Args:
        config: an :class:`ACConfig`.
        workers: the supervisor's worker count.
        clock: seconds on a clock every worker shares (cookie windows, keepalive, token
            bucket); ``time.monotonic`` (CLOCK_MONOTONIC is system-wide). Tests pass their own.
    """

    def __init__(self, config: ACConfig, workers: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.workers = workers
        self.clock = clock
        self._others = config.services   # listed in every PADO after the requested one
        self._ac_name = config.ac_name
        self._enc = config.encoder

    # -- worker hooks -------------------------------------------------------------------------
    def on_start(self, ctx: Any) -> None:
        """Worker start (and restart): a fresh session table, and the keepalive timer on
        ``ctx.loop`` (when there is a loop and ``echo_interval`` > 0). After a restart the
        sessions of the dead process are gone; their clients get PADT on their next session frame."""
        cfg = self.config
        state = WorkerState(ctx.worker_id, ctx.worker_count, start=random.randrange(1 << 16),
                            limit=cfg.max_sessions, per_mac=cfg.sessions_per_mac)
        ctx.storage["ac"] = state
        if ctx.loop is not None and cfg.echo_interval > 0:
            state.timer = ctx.loop.call_later(cfg.echo_interval, self._tick, ctx)

    def _tick(self, ctx: Any) -> None:
        state: WorkerState = ctx.storage["ac"]
        try:
            self.sweep(ctx)
        finally:
            state.timer = ctx.loop.call_later(self.config.echo_interval, self._tick, ctx)

    def sweep(self, ctx: Any, now: Optional[float] = None) -> None:
        """One keepalive pass (RFC 1661 5.8 Echo-Request as a liveness probe): each session
        silent for ``echo_interval`` gets an Echo-Request, or, after ``echo_misses`` of them,
        a PADT and is closed (``expired``). A session ends between ``echo_misses + 1`` and
        ``echo_misses + 2`` intervals after its last frame."""
        cfg = self.config
        state: WorkerState = ctx.storage["ac"]
        now = self.clock() if now is None else now
        for sess in list(state.sessions.values()):
            if now - sess.last_rx < cfg.echo_interval:
                continue
            if sess.misses >= cfg.echo_misses:
                sess.end_cause = "Lost-Carrier"
                state.close(sess.mac, sess.session_id)
                ctx.count("expired")
                ctx.count("sessions", -1)
                self._transmit(ctx, p.with_vlan(p.build_padt(sess.mac, self._mac(ctx, sess.ifindex), sess.session_id,
                                                             b"keepalive timeout",
                                                             relay_session_id=sess.relay_session_id,
                                                             encoder=self._enc), sess.vlan), "padt_tx", sess.ifindex)
            elif self._may_probe(ctx, sess):
                sess.misses += 1
                sess.echo_id = (sess.echo_id + 1) & 0xFF
                self._transmit(ctx, p.with_vlan(p.build_ac_echo_request(sess.mac, self._mac(ctx, sess.ifindex),
                                                                        sess.session_id, sess.echo_id, sess.magic,
                                                                        encoder=self._enc),
                                                sess.vlan), "echo_tx", sess.ifindex)

    def _may_probe(self, ctx: Any, sess: "ACSession") -> bool:
        """Whether the keepalive may send ``sess`` an Echo-Request now (True here; a subclass
        running PPP says whether LCP is Opened, RFC 1661 5.8). A session not probed is not
        counted a miss either."""
        return True

    def on_stop(self, ctx: Any) -> None:
        """Worker stop: cancel the keepalive timer, PADT every session (RFC 2516 5.5: the AC ends them)."""
        state: WorkerState = ctx.storage.get("ac")
        if state is None:
            return
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        enc = self._enc
        for sess in list(state.sessions.values()):
            sess.end_cause = sess.end_cause or "NAS-Reboot"
            state.close(sess.mac, sess.session_id)
            frame = p.build_padt(sess.mac, self._mac(ctx, sess.ifindex), sess.session_id, b"AC shutting down",
                                 relay_session_id=sess.relay_session_id, encoder=enc)
            self._transmit(ctx, p.with_vlan(frame, sess.vlan), "padt_tx", sess.ifindex)
            ctx.count("sessions", -1)

    # -- the handler --------------------------------------------------------------------------
    def handle(self, frame, meta: Any, ctx: Any) -> None:
        """The Supervisor handler: answer one frame (``meta.vlan_tci``: a tag the kernel stripped)."""
        tci = meta.vlan_tci
        if tci is None:
            msg = p.parse_frame(frame)
        else:
            msg = p.parse_frame(frame, p.MAX_VLAN_TAGS - 1)
        kind = type(msg)
        if kind is p.Malformed:
            ctx.count("malformed")
            if ctx.log.isEnabledFor(10):
                ctx.log.debug("malformed frame: %s (%s)", msg.reason.value, msg.detail)
            return
        vlan = msg.vlan
        if tci is not None:
            tpid = getattr(meta, "vlan_tpid", None) or self.config.outer_tpid or (
                p.ETH_P_8021AD if vlan else p.ETH_P_8021Q)
            vlan = tpid.to_bytes(2, "big") + (tci & 0xFFFF).to_bytes(2, "big") + vlan
        if vlan:
            ctx.count("tagged")
        if kind is p.Discovery:
            code = msg.code
            if code == p.PADI:
                self._padi(msg, vlan, ctx)
            elif code == p.PADR:
                self._padr(msg, vlan, ctx)
            elif code == p.PADT:
                self._padt(msg, vlan, ctx)
            else:  # PADO/PADS from another AC on the segment
                ctx.count("ignored")
        else:
            self._session(msg, vlan, ctx)

    def _transmit(self, ctx: Any, frame: bytes, counter: str, ifindex: Optional[int] = None) -> None:
        if ctx.transmit(frame) if ifindex is None else ctx.transmit(frame, ifindex):
            ctx.count(counter)

    def _mac(self, ctx: Any, ifindex: Optional[int] = None) -> bytes:
        """The AC's MAC on port ``ifindex`` (default: the port of the frame being handled,
        ``ctx.rx_ifindex``): ``config.port_macs``, else ``config.mac``."""
        macs = self.config.port_macs
        if not macs:
            return self.config.mac
        return macs.get(ifindex if ifindex is not None else getattr(ctx, "rx_ifindex", None), self.config.mac)

    def _send(self, ctx: Any, frame: bytes, vlan: bytes, counter: str) -> None:
        """Reply to the frame being handled (with its VLAN tags) and count its outcome."""
        if len(frame) > self.config.max_frame:
            ctx.count("ignored")  # echoed TAGs would not fit the MTU
            return
        ctx.count("served")
        self._transmit(ctx, p.with_vlan(frame, vlan), counter)

    def _padi(self, m: p.Discovery, vlan: bytes, ctx: Any) -> None:
        ctx.count("padi")
        cfg = self.config
        mac = self._mac(ctx)
        if (m.dst != p.BROADCAST and m.dst != mac) or not cfg.offers(m.service_name):
            ctx.count("ignored")  # RFC 2516 5.2: an AC that cannot serve the PADI MUST NOT send a PADO
            return
        window = p.cookie_window(self.clock(), cfg.cookie_window)
        cookie = p.make_cookie(cfg.secret, m.src, m.service_name, window)
        self._send(ctx, p.build_pado(m.src, mac, self._ac_name, m.service_name, cookie, m.host_uniq,
                                     m.relay_session_id, self._others, self._enc, self._max_payload(m, vlan)),
                   vlan, "pado")

    def _padr(self, m: p.Discovery, vlan: bytes, ctx: Any) -> None:
        ctx.count("padr")
        cfg = self.config
        mac = self._mac(ctx)
        if m.dst != mac:
            ctx.count("ignored")
            return
        if not cfg.offers(m.service_name):
            self._send(ctx, p.build_pads_error(m.src, mac, m.service_name, p.TAG_SERVICE_NAME_ERROR,
                                               b"service not offered", m.host_uniq, m.relay_session_id,
                                               self._enc), vlan, "pads_error")
            return
        now = self.clock()
        if not p.verify_cookie(cfg.secret, m.src, m.service_name, m.ac_cookie, p.cookie_window(now, cfg.cookie_window)):
            ctx.count("bad_cookie")
            ctx.count("ignored")
            return
        state: WorkerState = ctx.storage["ac"]
        sess, created, replaced = state.open(m.src, m.host_uniq, m.service_name, m.relay_session_id, vlan, now)
        if replaced:
            ctx.count("replaced", len(replaced))
            ctx.count("sessions", -len(replaced))
        if sess is None:
            self._send(ctx, p.build_pads_error(m.src, mac, m.service_name, p.TAG_AC_SYSTEM_ERROR,
                                               b"session limit reached (%d on this worker)" % state.limit,
                                               m.host_uniq, m.relay_session_id, self._enc), vlan, "pads_error")
            return
        if created:
            ctx.count("sessions", 1)
        sess.max_payload = self._max_payload(m, vlan) or 0
        if cfg.port_macs:
            sess.ifindex = getattr(ctx, "rx_ifindex", None)
        self._send(ctx, p.build_pads(m.src, mac, sess.session_id, m.service_name, m.host_uniq,
                                     m.relay_session_id, self._enc, sess.max_payload or None), vlan, "pads")

    def _max_payload(self, m: p.Discovery, vlan: bytes) -> Optional[int]:
        """RFC 4638: the PPP-Max-Payload to grant a host that asked for one above 1492, at most
        what the interface carries (``max_frame`` - 14 - 8 - the tags), or None (no tag sent)."""
        asked = p.max_payload_of(m.tags)
        if not asked or asked <= 1492 or not self.config.max_payload:
            return None
        fits = self.config.max_frame - 22 - len(vlan)
        granted = min(asked, self.config.max_payload, fits)
        return granted if granted > 1492 else None

    def _padt(self, m: p.Discovery, vlan: bytes, ctx: Any) -> None:
        if m.dst != self._mac(ctx):
            ctx.count("ignored")
            return
        ctx.count("padt_rx")
        ctx.count("served")
        state: WorkerState = ctx.storage["ac"]
        sess = state.sessions.get((m.src, m.session_id))
        if sess is not None and p.vlan_key(sess.vlan) == p.vlan_key(vlan):  # not from another VLAN
            sess.end_cause = "User-Request"
            state.close(m.src, m.session_id)
            ctx.count("sessions", -1)

    def _session(self, m: p.Session, vlan: bytes, ctx: Any) -> None:
        cfg = self.config
        mac = self._mac(ctx)
        if m.dst != mac:
            ctx.count("ignored")
            return
        state: WorkerState = ctx.storage["ac"]
        sess = state.sessions.get((m.src, m.session_id))
        if sess is not None and p.vlan_key(sess.vlan) != p.vlan_key(vlan):
            sess = None  # that session id on another VLAN is not that session
        if sess is not None and sess.ifindex is not None and sess.ifindex != getattr(ctx, "rx_ifindex", None):
            sess = None  # nor on another port
        if sess is None:
            if state.take_padt_token(self.clock(), cfg.padt_rate, cfg.padt_burst):
                self._send(ctx, p.build_padt(m.src, mac, m.session_id, b"session unknown", encoder=self._enc),
                           vlan, "padt_tx")
            else:
                ctx.count("padt_ratelimited")
                ctx.count("ignored")
            return
        sess.last_rx = self.clock()
        sess.misses = 0
        if m.lcp_code == p.LCP_ECHO_REQUEST:
            self._send(ctx, p.build_lcp_echo_reply(m.src, mac, m.session_id, m.lcp_id, sess.magic,
                                                   m.lcp_data, self._enc), vlan, "echo")
        elif m.lcp_code == p.LCP_ECHO_REPLY:
            ctx.count("served")  # the answer to a keepalive probe
        else:
            ctx.count("ignored")


def parse_service_names(names: Sequence[str]) -> tuple[bytes, ...]:
    """``--service-name`` values as UTF-8 bytes, in order, without duplicates."""
    return tuple(dict.fromkeys(n.encode() for n in names))
