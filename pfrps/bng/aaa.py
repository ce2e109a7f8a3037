"""Authentication, authorization and accounting for the BNG's sessions, per worker: the secrets
file first, then RADIUS (RFC 2865), accounting from the XDP counters (RFC 2866, RFC 2869), the
Session-Timeout and Idle-Timeout the server sends, and the changes a CoA-Request makes
(RFC 5176; the listener itself runs in the supervisor, :mod:`pfrps.bng.runner`).

One :class:`WorkerAAA` per worker holds the worker's :class:`pfrps.bng.radius.RadiusClient` (on
the worker's uvloop loop: a session waiting for RADIUS never blocks the others) and its
Acct-Session-Id counter; one :class:`SessionAAA` per subscriber holds what the Access-Accept
said and the session's timers. What must survive a worker restart (accounting id, timeouts,
interim interval) is in the session's durable record in the XDP session table
(:class:`pfrps.bng.dataplane.SessionEntry`), so a restarted worker carries on: no second Start,
Interim-Updates at the same interval, the Stop at the real end.

Acct-Terminate-Cause (RFC 2866 section 5.10) of the Stop: ``User-Request`` (the client's PADT
or LCP Terminate-Request), ``Lost-Carrier`` (keepalive expiry, the client dialled again),
``Idle-Timeout``, ``Session-Timeout``, ``Admin-Reset`` (``pfrps-bng terminate``, a
Disconnect-Request), ``NAS-Reboot`` (the BNG stopping), ``NAS-Request`` (anything else).
"""

from __future__ import annotations

import time
from ipaddress import IPv6Network
from typing import Any, Callable, Optional

from .auth import AuthRequest, AuthResult

__all__ = ["WorkerAAA", "SessionAAA", "AAA_COUNTERS", "AAA_HELP", "cause_of"]

#: Per-worker counters (events) of the AAA layer, added to the BNG's.
AAA_COUNTERS = ("radius_accept", "radius_reject", "radius_timeout", "acct_start", "acct_interim", "acct_stop",
                "acct_dropped", "session_timeouts", "idle_timeouts", "coa_applied", "radius_retransmits",
                "radius_timeouts", "radius_failovers", "acct_requeued", "acct_overflow")
#: The RADIUS client's own counters mirrored into the worker's shared ones (``radius_<name>``
#: unless the name starts with ``acct_``), so the stats line, --json and --metrics show them.
_MIRRORED = ("retransmits", "timeouts", "failovers", "acct_requeued", "acct_overflow")
AAA_HELP = {
    "radius_accept": "Access-Accepts received (sessions; per worker).",
    "radius_reject": "Access-Rejects received (sessions; per worker).",
    "radius_timeout": "Access-Requests no RADIUS server answered after every retry and failover (sessions; per worker).",
    "acct_start": "Accounting Start records queued (records; per worker).",
    "acct_interim": "Accounting Interim-Update records queued (records; per worker).",
    "acct_stop": "Accounting Stop records queued (records; per worker).",
    "acct_dropped": "Accounting records dropped: the queue was full (records; per worker).",
    "session_timeouts": "Sessions ended by their Session-Timeout (sessions; per worker).",
    "idle_timeouts": "Sessions ended by their Idle-Timeout (sessions; per worker).",
    "coa_applied": "CoA-Requests applied to a session (requests; per worker).",
    "radius_retransmits": "RADIUS requests sent again after a timeout (packets; per worker).",
    "radius_timeouts": "RADIUS requests one server did not answer in time, every try (requests; per worker).",
    "radius_failovers": "RADIUS requests moved on to the next server (requests; per worker).",
    "acct_requeued": "Accounting records no server answered, queued to be sent again (records; per worker).",
    "acct_overflow": "Accounting records dropped because the queue was full (records; per worker).",
}

_PPP_REASONS = {"peer terminated": "User-Request", "LCP timeout": "Lost-Carrier",
                "lower layer down": "Lost-Carrier"}


def cause_of(reason: str) -> str:
    """The Acct-Terminate-Cause name for an end reason that has none set explicitly."""
    return _PPP_REASONS.get(reason, "NAS-Request")


class WorkerAAA:
    """A worker's AAA: the secrets file, the RADIUS client, the accounting id counter.

    Args:
        secrets: a :class:`pfrps.bng.secrets.Secrets` or None (RADIUS only).
        server: our name in the secrets files' server column.
        radius: a :class:`pfrps.bng.radius.RadiusConfig` or None (the file only).
        boot_id: this run's id (:func:`pfrps.bng.radius.new_boot_id`, made before the fork).
        worker_id: the worker.
        nas_port: the access interface's name (NAS-Port-Id is ``<if>:<outer VID>:<inner VID>``).
        loop: the worker's event loop.
        count: ``ctx.count``.
    """

    def __init__(self, secrets, server: bytes, radius, boot_id: int, worker_id: int, nas_port: str,
                 loop: Any, count: Callable[..., None]) -> None:
        self.secrets, self.server, self.radius_config = secrets, server, radius
        self.boot_id, self.worker_id, self.nas_port = boot_id, worker_id, nas_port
        self.loop, self.count = loop, count
        self.client = None
        self._mirrored = dict.fromkeys(_MIRRORED, 0)
        # Acct-Session-Id counter (40 bits): seconds since the run began << 20, then a sequence,
        # so a restarted worker never reuses an id its predecessor gave out (up to 2^20 sessions
        # a second and 12 days of run time before the counter wraps).
        since = max(int(time.time()) - (boot_id >> 16), 0)
        self._acct_next = (since & 0xFFFFF) << 20

    async def start(self) -> None:
        """Open the RADIUS client's socket on the worker's loop (nothing without ``--radius``)."""
        if self.radius_config is not None:
            from .radius import RadiusClient  # noqa: PLC0415  (pyrad only when RADIUS is used)

            self.client = RadiusClient(self.radius_config, self.loop)
            await self.client.start()

    async def stop(self, seconds: float = 1.0) -> None:
        """Send what accounting is queued (the shutdown's Stops) for up to ``seconds``, then close."""
        if self.client is not None:
            await self.client.drain(seconds)
            self.sync_counters()
            lost = self.client.close()
            if lost:
                self.count("acct_dropped", lost)
            self.client = None

    def sync_counters(self) -> None:
        """Add what the RADIUS client counted since the last call to the shared counters."""
        if self.client is None:
            return
        for name, seen in self._mirrored.items():
            now = int(self.client.counters.get(name, 0))
            if now > seen:
                self.count(name if name.startswith("acct_") else f"radius_{name}", now - seen)
                self._mirrored[name] = now

    def next_acct_id(self) -> int:
        """A fresh accounting id (the durable record keeps it; :meth:`acct_session_id` names it)."""
        self._acct_next = (self._acct_next + 1) & ((1 << 40) - 1)
        return self._acct_next

    def acct_session_id(self, acct_id: int) -> str:
        """Acct-Session-Id (RFC 2866 5.5) of accounting id ``acct_id``: unique across workers and runs."""
        from .radius import acct_session_id  # noqa: PLC0415

        return acct_session_id(self.worker_id, self.boot_id, acct_id)

    def authenticate(self, req: AuthRequest, line: Any, acct_id: int,
                     done: Callable[[AuthResult], None]) -> Any:
        """The secrets file first (a user it lists is decided there), then RADIUS; ``done`` gets
        an :class:`AuthResult` (a :class:`pfrps.bng.radius.RadiusAuthResult` from RADIUS), at
        once or later. Returns a handle with ``cancel()`` for a RADIUS request, else None."""
        if self.secrets is not None and (self.client is None or self.secrets.lookup(req.user, self.server)):
            done(self.secrets.authenticate(req, self.server))
            return None
        if self.client is None:
            done(AuthResult(False, b"authentication failed"))
            return None

        def answer(res) -> None:
            self.sync_counters()
            if getattr(res, "timed_out", False):
                self.count("radius_timeout")
            else:
                self.count("radius_accept" if res.ok else "radius_reject")
            done(res)
        return self.client.authenticate(req, line, answer, acct_session_id=self.acct_session_id(acct_id))


class SessionAAA:
    """One session's AAA state: what the Access-Accept set, its timers, its accounting.

    Attributes:
        acct_id: the accounting id (Acct-Session-Id via :meth:`WorkerAAA.acct_session_id`).
        session_timeout, idle_timeout, interim: seconds (0: none).
        class_: Class attributes to echo in accounting (RFC 2865 5.25).
        ipv6_prefix: a Framed-IPv6-Prefix /64 from RADIUS (wins over the pool), or None.
        accounting: a Start was sent (so a Stop is due at the end).
    """

    __slots__ = ("acct_id", "session_timeout", "idle_timeout", "interim", "class_", "ipv6_prefix", "accounting",
                 "handle", "_session", "_idle", "_interim", "_idle_seen", "_idle_since")

    def __init__(self, acct_id: int, interim: float = 0) -> None:
        self.acct_id = acct_id
        self.session_timeout = self.idle_timeout = 0
        self.interim = int(interim or 0)
        self.class_: tuple = ()
        self.ipv6_prefix: Optional[IPv6Network] = None
        self.accounting = False
        self.handle = None
        self._session = self._idle = self._interim = None
        self._idle_seen = -1
        self._idle_since = 0.0

    def apply(self, res: AuthResult) -> None:
        """Take Session-Timeout, Idle-Timeout, Acct-Interim-Interval, Class and a /64
        Framed-IPv6-Prefix from an Access-Accept (a file's result has none of them)."""
        self.session_timeout = int(getattr(res, "session_timeout", None) or 0)
        self.idle_timeout = int(getattr(res, "idle_timeout", None) or 0)
        self.interim = int(getattr(res, "interim", None) or self.interim or 0)
        self.class_ = tuple(getattr(res, "class_", ()) or ())
        prefix = getattr(res, "ipv6_prefix", None)
        if prefix is not None and prefix.prefixlen == 64:
            self.ipv6_prefix = prefix

    def cancel(self) -> None:
        """Stop every timer and a RADIUS request in flight."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self._cancel_timers()

    def _cancel_timers(self) -> None:
        for name in ("_session", "_idle", "_interim"):
            t = getattr(self, name)
            if t is not None:
                t.cancel()
                setattr(self, name, None)

    def arm(self, sub: Any, waa: WorkerAAA, elapsed: float = 0.0) -> None:
        """Session-Timeout (what is left of it after ``elapsed`` seconds), Idle-Timeout checks
        and Interim-Updates for ``sub`` (a :class:`pfrps.bng.server.Subscriber`)."""
        loop = sub.ctx.loop
        if loop is None:
            return
        self._cancel_timers()
        if self.session_timeout:
            self._session = loop.call_later(max(self.session_timeout - elapsed, 0.0), self._session_over, sub)
        if self.idle_timeout:
            self._idle_since = time.monotonic()
            self._idle = loop.call_later(min(self.idle_timeout / 2, 30.0), self._idle_check, sub)
        if self.interim and waa.client is not None and self.accounting:
            self._interim = waa.client.start_interim(lambda: self._interim_record(sub, waa), float(self.interim))

    def _interim_record(self, sub: Any, waa: WorkerAAA):
        """The record of the next Interim-Update (counted ``acct_interim``; None once the session ended)."""
        if sub.done:
            return None
        waa.sync_counters()
        sub.ctx.count("acct_interim")
        return self.record(sub, waa)

    def _session_over(self, sub: Any) -> None:
        self._session = None
        sub.ctx.count("session_timeouts")
        sub.end("Session-Timeout", "session timeout")

    def _idle_check(self, sub: Any) -> None:
        self._idle = None
        if sub.done:
            return
        c = sub.counters()
        seen = c.up_packets + c.down_packets
        now = time.monotonic()
        if seen != self._idle_seen:
            self._idle_seen, self._idle_since = seen, now
        elif now - self._idle_since >= self.idle_timeout:
            sub.ctx.count("idle_timeouts")
            sub.end("Idle-Timeout", "idle timeout")
            return
        self._idle = sub.ctx.loop.call_later(min(self.idle_timeout / 2, 30.0), self._idle_check, sub)

    def record(self, sub: Any, waa: WorkerAAA, cause: Optional[str] = None):
        """The session's :class:`pfrps.bng.radius.AcctRecord` now (counters from the data plane)."""
        from .radius import AcctRecord  # noqa: PLC0415

        c = sub.counters()
        elapsed = max(time.clock_gettime_ns(time.CLOCK_BOOTTIME) - sub.start_ns, 0) // 1_000_000_000
        return AcctRecord(waa.acct_session_id(self.acct_id), sub.user, sub.line_info(), int(elapsed),
                          c.up_bytes, c.down_bytes, c.up_packets, c.down_packets,
                          ipv4=sub.ipv4 if 4 in sub.families or cause else None,
                          ipv6_prefix=sub.ipv6, terminate_cause=cause, class_=self.class_,
                          authentic="RADIUS" if sub.radius_auth else "Local")

    def start(self, sub: Any, waa: WorkerAAA) -> None:
        """The NCPs opened: accounting Start, then the timers."""
        if waa.client is not None and not self.accounting:
            self.accounting = True
            self._account(sub, waa, "start", self.record(sub, waa))
        self.arm(sub, waa)

    def stop(self, sub: Any, waa: WorkerAAA, cause: str) -> None:
        """The session ended: timers off, accounting Stop (when a Start went out)."""
        self.cancel()
        if self.accounting and waa.client is not None:
            self.accounting = False
            self._account(sub, waa, "stop", self.record(sub, waa, cause))

    def _account(self, sub: Any, waa: WorkerAAA, kind: str, rec: Any) -> None:
        waa.sync_counters()
        if waa.client.account(kind, rec):
            sub.ctx.count(f"acct_{kind}")
        else:
            sub.ctx.count("acct_dropped")

    def coa(self, sub: Any, waa: WorkerAAA, changes: dict) -> None:
        """A CoA-Request's ``session_timeout`` / ``idle_timeout`` / ``interim`` (seconds): the
        new Session-Timeout counts from the session's start (RFC 2865 5.27), the others from now."""
        for name in ("session_timeout", "idle_timeout", "interim"):
            if name in changes:
                setattr(self, name, int(changes[name]))
        elapsed = max(time.clock_gettime_ns(time.CLOCK_BOOTTIME) - sub.start_ns, 0) / 1e9
        self.arm(sub, waa, elapsed)
