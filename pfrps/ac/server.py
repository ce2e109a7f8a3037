"""The access concentrator: a frame handler for :class:`pfrps.supervisor.Supervisor` workers.

Steering sends every frame of one client MAC to one worker, so a worker keeps its
subscribers' sessions in ``ctx.storage`` with no lock, and needs no other worker to answer:

* the AC-Cookie is an HMAC under a secret made before the workers fork, so the worker that
  checks a PADR need not be the process that sent the PADO (it matters after a restart);
* session ids come from the worker's own slice of the 16-bit space (``sid % N == worker``).

Per frame (RFC 2516 section 5, RFC 1661 section 5.8):

=============================  ===============================================================
PADI (broadcast or to us)      PADO, unless a Service-Name is asked that is not offered
PADR (to us)                   unknown Service-Name: PADS with Service-Name-Error, session id 0;
                               AC-Cookie missing or wrong: nothing (``bad_cookie``);
                               else PADS with a session id; the same client MAC and Host-Uniq
                               again get the same session (a retransmitted PADR is idempotent)
PADT (to us)                   ends the session
session frame, unknown session PADT to the sender with that session id
LCP Echo-Request, known        Echo-Reply: same Identifier and Data, our Magic-Number (0: LCP is
session                        not negotiated here, and RFC 1661 says to send 0 then)
anything else                  counted ``ignored`` (or ``malformed``) and dropped
=============================  ===============================================================

When a worker stops (SIGTERM) it sends PADT for each of its sessions. A worker that is
killed loses its sessions; its replacement answers their next session frame with PADT, which
makes the clients start over (RFC 2516's recovery path).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence


from . import protocol as p

__all__ = ["AC_COUNTERS", "AC_GAUGES", "ACConfig", "AccessConcentrator", "ACSession", "WorkerState"]

#: Per-worker application counters (frames unless noted); give them to SupervisorConfig(app_counters=...).
AC_COUNTERS = (
    "padi",        # PADI received
    "pado",        # PADO sent
    "padr",        # PADR received
    "pads",        # PADS sent that grant a session (a retransmitted PADR counts again)
    "pads_error",  # PADS sent with Service-Name-Error or AC-System-Error
    "padt_rx",     # PADT received (addressed to us)
    "padt_tx",     # PADT sent (unknown session, or at shutdown)
    "malformed",   # frames protocol.parse_frame rejected
    "echo",        # LCP Echo-Replies sent
    "bad_cookie",  # PADR with a missing or wrong AC-Cookie (dropped)
    "ignored",     # well-formed frames not answered (not for us, unoffered service in PADI, ...)
)

#: Per-worker gauges; give them to SupervisorConfig(app_gauges=...). The supervisor zeroes a
#: restarted worker's gauges, since its replacement starts with an empty session table.
AC_GAUGES = ("sessions",)  # sessions open on this worker


@dataclass(frozen=True)
class ACConfig:
    """What the AC answers with.

    Attributes:
        mac: the AC's MAC (the interface's), 6 bytes: replies come from it, and unicast
            frames to another MAC are ignored.
        ac_name: the AC-Name TAG value.
        services: offered Service-Names; empty means any (a PADI/PADR may ask for anything).
        secret: the AC-Cookie HMAC key; make it once, before the workers fork.
        encoder: ``"struct"`` (fast) or ``"scapy"``; see :mod:`pfrps.ac.protocol`.
        max_frame: largest frame to send, bytes (14 + the interface MTU).
    """

    mac: bytes
    ac_name: bytes
    services: tuple[bytes, ...] = ()
    secret: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    encoder: str = "struct"
    max_frame: int = 1514

    def __post_init__(self) -> None:
        if len(self.mac) != 6 or self.mac[0] & 1:
            raise ValueError("the AC's MAC must be 6 bytes, unicast")
        if len(self.secret) < 16:
            raise ValueError("the cookie secret must be at least 16 bytes")
        if self.encoder not in p.ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}")

    def offers(self, service_name: bytes) -> bool:
        """True when a host asking for ``service_name`` can be served (empty asks for any)."""
        return not self.services or not service_name or service_name in self.services


@dataclass(slots=True)
class ACSession:
    """One session: the client's MAC, its session id and what its PADR carried."""

    mac: bytes
    session_id: int
    host_uniq: Optional[bytes]
    service_name: bytes
    relay_session_id: Optional[bytes]
    magic: int = 0


class WorkerState:
    """A worker's sessions (``ctx.storage["ac"]``), keyed by (client MAC, session id)."""

    def __init__(self, worker_id: int, worker_count: int, start: int = 0) -> None:
        self.ids = p.SessionIdAllocator(worker_id, worker_count, start)
        self.sessions: dict[tuple[bytes, int], ACSession] = {}
        self.by_uniq: dict[tuple[bytes, Optional[bytes]], int] = {}

    def open(self, mac: bytes, host_uniq: Optional[bytes], service: bytes,
             relay: Optional[bytes]) -> tuple[Optional[ACSession], bool]:
        """The session for (mac, host_uniq): ``(session, created)``; ``(None, False)`` when out of ids."""
        sid = self.by_uniq.get((mac, host_uniq))
        if sid is not None:
            return self.sessions[(mac, sid)], False
        sid = self.ids.allocate()
        if sid is None:
            return None, False
        sess = ACSession(mac, sid, host_uniq, service, relay)
        self.sessions[(mac, sid)] = sess
        self.by_uniq[(mac, host_uniq)] = sid
        return sess, True

    def close(self, mac: bytes, session_id: int) -> Optional[ACSession]:
        """Remove and return the session, or None when there is none."""
        sess = self.sessions.pop((mac, session_id), None)
        if sess is not None:
            self.by_uniq.pop((mac, sess.host_uniq), None)
            self.ids.release(session_id)
        return sess


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
    """

    def __init__(self, config: ACConfig, workers: int) -> None:
        self.config = config
        self.workers = workers
        self._others = config.services   # listed in every PADO after the requested one
        self._ac_name = config.ac_name
        self._enc = config.encoder

    # -- worker hooks -------------------------------------------------------------------------
    def on_start(self, ctx: Any) -> None:
        """Worker start (and restart): a fresh session table. After a restart the sessions of the
        dead process are gone; their clients get PADT on their next session frame."""
        state = WorkerState(ctx.worker_id, ctx.worker_count, start=random.randrange(1 << 16))
        ctx.storage["ac"] = state

    def on_stop(self, ctx: Any) -> None:
        """Worker stop: PADT every session (RFC 2516 5.5: the AC ends them)."""
        state: WorkerState = ctx.storage.get("ac")
        if state is None:
            return
        mac, enc = self.config.mac, self._enc
        for sess in list(state.sessions.values()):
            state.close(sess.mac, sess.session_id)
            frame = p.build_padt(sess.mac, mac, sess.session_id, b"AC shutting down",
                                 relay_session_id=sess.relay_session_id, encoder=enc)
            if ctx.transmit(frame):
                ctx.count("padt_tx")
            ctx.count("sessions", -1)

    # -- the handler --------------------------------------------------------------------------
    def handle(self, frame, meta: Any, ctx: Any) -> None:
        """The Supervisor handler: answer one frame."""
        if meta.vlan_tci is not None:  # the kernel stripped a VLAN tag; an untagged reply would go astray
            ctx.count("ignored")
            return
        msg = p.parse_frame(frame)
        kind = type(msg)
        if kind is p.Discovery:
            code = msg.code
            if code == p.PADI:
                self._padi(msg, ctx)
            elif code == p.PADR:
                self._padr(msg, ctx)
            elif code == p.PADT:
                self._padt(msg, ctx)
            else:  # PADO/PADS from another AC on the segment
                ctx.count("ignored")
        elif kind is p.Session:
            self._session(msg, ctx)
        else:
            ctx.count("malformed")
            if ctx.log.isEnabledFor(10):
                ctx.log.debug("malformed frame: %s (%s)", msg.reason.value, msg.detail)

    def _send(self, ctx: Any, frame: bytes, counter: str) -> None:
        if len(frame) > self.config.max_frame:
            ctx.count("ignored")  # echoed TAGs would not fit the MTU
        elif ctx.transmit(frame):
            ctx.count(counter)

    def _padi(self, m: p.Discovery, ctx: Any) -> None:
        ctx.count("padi")
        cfg = self.config
        if (m.dst != p.BROADCAST and m.dst != cfg.mac) or not cfg.offers(m.service_name):
            ctx.count("ignored")  # RFC 2516 5.2: an AC that cannot serve the PADI MUST NOT send a PADO
            return
        cookie = p.make_cookie(cfg.secret, m.src, m.service_name)
        self._send(ctx, p.build_pado(m.src, cfg.mac, self._ac_name, m.service_name, cookie, m.host_uniq,
                                     m.relay_session_id, self._others, self._enc), "pado")

    def _padr(self, m: p.Discovery, ctx: Any) -> None:
        ctx.count("padr")
        cfg = self.config
        if m.dst != cfg.mac:
            ctx.count("ignored")
            return
        if not cfg.offers(m.service_name):
            self._send(ctx, p.build_pads_error(m.src, cfg.mac, m.service_name, p.TAG_SERVICE_NAME_ERROR,
                                               b"service not offered", m.host_uniq, m.relay_session_id,
                                               self._enc), "pads_error")
            return
        if not p.verify_cookie(cfg.secret, m.src, m.service_name, m.ac_cookie):
            ctx.count("bad_cookie")
            return
        state: WorkerState = ctx.storage["ac"]
        sess, created = state.open(m.src, m.host_uniq, m.service_name, m.relay_session_id)
        if sess is None:
            self._send(ctx, p.build_pads_error(m.src, cfg.mac, m.service_name, p.TAG_AC_SYSTEM_ERROR,
                                               b"no free session id", m.host_uniq, m.relay_session_id,
                                               self._enc), "pads_error")
            return
        if created:
            ctx.count("sessions", 1)
        self._send(ctx, p.build_pads(m.src, cfg.mac, sess.session_id, m.service_name, m.host_uniq,
                                     m.relay_session_id, self._enc), "pads")

    def _padt(self, m: p.Discovery, ctx: Any) -> None:
        if m.dst != self.config.mac:
            ctx.count("ignored")
            return
        ctx.count("padt_rx")
        state: WorkerState = ctx.storage["ac"]
        if state.close(m.src, m.session_id) is not None:
            ctx.count("sessions", -1)

    def _session(self, m: p.Session, ctx: Any) -> None:
        cfg = self.config
        if m.dst != cfg.mac:
            ctx.count("ignored")
            return
        state: WorkerState = ctx.storage["ac"]
        sess = state.sessions.get((m.src, m.session_id))
        if sess is None:
            self._send(ctx, p.build_padt(m.src, cfg.mac, m.session_id, b"session unknown", encoder=self._enc),
                       "padt_tx")
        elif m.lcp_code == p.LCP_ECHO_REQUEST:
            self._send(ctx, p.build_lcp_echo_reply(m.src, cfg.mac, m.session_id, m.lcp_id, sess.magic,
                                                   m.lcp_data, self._enc), "echo")
        else:
            ctx.count("ignored")

    def close(self) -> None:
        """Nothing to release (kept for API stability)."""


def parse_service_names(names: Sequence[str]) -> tuple[bytes, ...]:
    """``--service-name`` values as UTF-8 bytes, in order, without duplicates."""
    return tuple(dict.fromkeys(n.encode() for n in names))
