"""The BNG worker: PPPoE discovery (:mod:`pfrps.ac`), PPP sessions (:mod:`pfrps.bng.session`),
address pools, the secrets file and the XDP session table, as one pfrps frame handler.

Steering sends every frame of one client MAC to one worker, so a worker owns its subscribers
outright: their PPPoE sessions (ids ``w, w+N, ...``), their PPP state, their addresses (its own
slice of every pool, :mod:`pfrps.bng.pools`) and their entries in the kernel's session table
(only the owning worker writes a MAC's entries; the maps were created by the supervisor before
the fork, so a restarted worker writes the same table). No lock anywhere.

Per session (RFC 2516, RFC 1661 and the NCP RFCs)::

    PADI -> PADO, PADR -> PADS                         (pfrps.ac, unchanged)
    PADS: LCP Up + Open -> Configure-Request           (pfrps.bng.session.PPPSession.start)
    LCP Opened -> PAP / CHAP (secrets file) -> IPCP (+ IPv6CP and a Router Advertisement)
    IPCP Opened -> the data-plane entry (IPv4) ; IPv6CP Opened -> the entry gets the /64
    LCP Terminate, PADT, keepalive expiry, auth failure, worker stop -> entry removed, PADT

Frames on a session that the data plane did not forward (control protocols, link-local IPv6,
unknown destinations) reach the worker's packet socket and go to the session's PPP engine.

Management messages (:meth:`BNG.on_message`, from the supervisor's control socket) are JSON:
``{"op": "list"}`` returns the worker's sessions; ``{"op": "terminate", "user"|"mac"|"ip": ...}``
ends the matching ones (LCP Terminate-Request, data-plane entry removed at once, PADT when LCP
has finished) and returns how many.
"""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Any, Callable, Optional

from pfrps.ac import protocol as p
from pfrps.errors import PfrpsError
from pfrps.ac.server import AC_COUNTERS, AC_GAUGES, AC_METRICS_HELP, AccessConcentrator, ACConfig, ACSession, WorkerState

from .aaa import AAA_COUNTERS, AAA_HELP, SessionAAA, WorkerAAA, cause_of
from .auth import AuthRequest, AuthResult
from .pools import Pool4, Pool6
from .secrets import Secrets
from .session import PPPConfig, PPPSession

__all__ = ["BNG_COUNTERS", "BNG_GAUGES", "BNG_HELP", "BNG_HISTOGRAMS", "BNGConfig", "BNG", "Subscriber", "vlan_ids"]

#: Per-worker counters of the BNG, after the AC's (frames or events, as named).
BNG_COUNTERS = AC_COUNTERS + (
    "ppp_rx",          # session frames of a known session handed to its PPP engine
    "auth_ok",         # PAP/CHAP authentications that succeeded
    "auth_fail",       # ... that failed (Nak / Failure sent, then LCP Terminate and PADT)
    "session_setups",  # sessions that reached the network phase with an NCP opened (IPCP or IPv6CP)
    "sessions_ended",  # sessions removed (any cause) after PADS
    "dp_add",          # data-plane entries written (an NCP opened)
    "dp_remove",       # data-plane entries removed
    "dp_errors",       # data-plane map writes the kernel refused (table full ...)
    "no_address",      # sessions closed because the worker's pool slice was exhausted
    "dp_stale",        # entries of a killed predecessor that could not be restored (removed)
    "restored",        # sessions rebuilt from the session table after the worker restarted
) + AAA_COUNTERS
#: Per-worker gauges: PPPoE sessions (the AC's) and sessions with an NCP open.
BNG_GAUGES = AC_GAUGES + ("sessions_up",)
#: The Broadband Forum's vendor id (3561) that starts a TR-101 Vendor-Specific TAG (0x0105).
TR101_VENDOR = (3561).to_bytes(4, "big")
#: Sessions per ``list`` reply (each about 450 bytes of JSON: well inside a mailbox message).
LIST_PAGE = 100
#: HELP text for the Prometheus endpoint (``pfrps_bng_<name>_total`` / ``pfrps_bng_<name>``).
BNG_HELP = {
    **AC_METRICS_HELP,
    "ppp_rx": "Session frames of known sessions handed to their PPP engine (frames; per worker).",
    "auth_ok": "PAP/CHAP authentications that succeeded (sessions; per worker).",
    "auth_fail": "PAP/CHAP authentications that failed: Nak/Failure, then LCP Terminate and PADT (sessions; per worker).",
    "session_setups": "Sessions that reached the network phase with IPCP or IPv6CP opened (sessions; per worker).",
    "sessions_ended": "PPPoE sessions removed after PADS, any cause (sessions; per worker).",
    "dp_add": "XDP session-table entries written when an NCP opened (entries; per worker).",
    "dp_remove": "XDP session-table entries removed (entries; per worker).",
    "dp_errors": "XDP session-table writes the kernel refused, e.g. table full (writes; per worker).",
    "no_address": "Sessions closed because the worker's pool slice had no address left (sessions; per worker).",
    "dp_stale": "Entries of a killed worker process its replacement could not restore, removed (entries; per worker).",
    "restored": "Sessions rebuilt from the XDP session table after the worker restarted (sessions; per worker).",
    "sessions_up": "Sessions with IPCP or IPv6CP open (sessions; per worker, zeroed when the worker restarts).",
    "session_setup_seconds": "PADS to the first NCP opened (seconds; per worker).",
    **AAA_HELP,
}
#: Histograms (seconds): PADS to the first NCP opened.
BNG_HISTOGRAMS = {"session_setup_seconds": (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)}


def vlan_ids(vlan: bytes) -> tuple[int, int, int, int]:
    """``(outer TPID, outer VID, inner TPID, inner VID)`` of raw tags ``vlan`` (0s when absent)."""
    out = [0, 0, 0, 0]
    for i in range(min(len(vlan) // 4, 2)):
        out[2 * i] = int.from_bytes(vlan[4 * i:4 * i + 2], "big")
        out[2 * i + 1] = int.from_bytes(vlan[4 * i + 2:4 * i + 4], "big") & 0x0FFF
    return out[0], out[1], out[2], out[3]


@dataclass(frozen=True)
class BNGConfig:
    """What the BNG serves.

    Attributes:
        ac: discovery settings (:class:`pfrps.ac.server.ACConfig`: AC MAC, AC-Name, services,
            keepalive ``echo_interval``/``echo_misses``).
        ppp: PPP settings (:class:`pfrps.bng.session.PPPConfig`: auth methods, MRU, timers, DNS,
            our IPCP address).
        pools4: IPv4 pools (``--pool``), split across workers.
        pool6: the IPv6 prefix of the per-subscriber /64s (``--ipv6-pool``), or None (no IPv6CP).
        secrets: the pap-/chap-secrets entries.
        dataplane: write the XDP session table (False only for handler tests without maps).
        server_name: our name in the secrets files' server column (default: the AC-Name).
        radius: a :class:`pfrps.bng.radius.RadiusConfig` (``--radius``), or None: the secrets
            file decides alone. With both, a user the file lists is decided by the file.
        boot_id: this run's id (:func:`pfrps.bng.radius.new_boot_id`), for Acct-Session-Id.
        access: the (first) access interface's name (NAS-Port-Id).
        access_names: ``{ifindex: name}`` of every access port (``-i`` repeated): a session's
            NAS-Port-Id names the port its PADR came in on.
    """

    ac: ACConfig
    ppp: PPPConfig
    pools4: tuple[IPv4Network, ...]
    secrets: Optional[Secrets]
    pool6: Optional[IPv6Network] = None
    dataplane: bool = True
    server_name: Optional[bytes] = None
    radius: Any = None
    boot_id: int = 0
    access: str = ""
    access_names: dict = field(default_factory=dict)


class Subscriber:
    """One PPPoE session's PPP side: the :class:`pfrps.bng.session.SessionHooks` of its
    :class:`PPPSession`, its addresses and its data-plane entry."""

    __slots__ = ("bng", "ctx", "wst", "acs", "ppp", "ipv4", "ipv6", "families", "closing", "done",
                 "started", "up_since", "user", "key", "entry", "method", "start_ns", "aaa", "end_cause",
                 "final", "radius_auth", "line_tag")

    def __init__(self, bng: "BNG", ctx: Any, wst: "WorkerBNG", acs: ACSession) -> None:
        self.bng, self.ctx, self.wst, self.acs = bng, ctx, wst, acs
        self.ipv4: Optional[IPv4Address] = None
        self.ipv6: Optional[IPv6Network] = None
        self.families: set[int] = set()
        self.closing = False      # the PPPoE session is being removed (PADT in or out)
        self.done = False         # hooks.finished ran
        self.started = time.time()
        self.up_since: Optional[float] = None
        self.user = b""
        self.method = ""
        self.start_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        self.key = None
        self.entry = None
        self.end_cause = ""       # the Acct-Terminate-Cause when this side ends it
        self.final = None         # the data-plane counters read just before the entry went
        self.radius_auth = False
        self.line_tag: Optional[bytes] = None  # the PADR's TR-101 Vendor-Specific TAG (0x0105)
        self.aaa = SessionAAA(wst.aaa.next_acct_id(), (bng.cfg.radius.acct_interim or 0) if bng.cfg.radius else 0)
        cfg = bng.cfg.ppp if bng.cfg.pool6 is not None else bng.ppp_v4only
        if acs.max_payload > cfg.mru:  # RFC 4638: PADS granted a larger PPP payload
            cfg = replace(cfg, mru=acs.max_payload)
        self.ppp = PPPSession(cfg, self, ctx.loop.call_later)

    # -- SessionHooks ------------------------------------------------------------------------
    def send(self, protocol: int, payload: bytes) -> None:
        """Send one PPP frame (``protocol``, then ``payload``) on this session, with its VLAN tags."""
        acs = self.acs
        frame = p.encode_session(acs.mac, self.bng._mac(self.ctx, acs.ifindex), acs.session_id,
                                 protocol.to_bytes(2, "big") + payload)
        frame = p.with_vlan(frame, acs.vlan) if acs.vlan else frame
        # several access ports: out of the session's own port (timers included)
        self.ctx.transmit(frame) if acs.ifindex is None else self.ctx.transmit(frame, acs.ifindex)

    def authenticate(self, req: AuthRequest, done: Callable[[AuthResult], None]) -> None:
        """The secrets file, then RADIUS (:meth:`pfrps.bng.aaa.WorkerAAA.authenticate`); the
        answer may come later (the worker's other subscribers are served meanwhile)."""
        def finish(res: AuthResult) -> None:
            self.aaa.handle = None
            if self.done:
                return
            self.ctx.count("auth_ok" if res.ok else "auth_fail")
            if res.ok:
                self.user, self.method = req.user, req.method
                self.radius_auth = hasattr(res, "timed_out")
                self.aaa.apply(res)
                dns4, dns6 = getattr(res, "dns4", None) or (), getattr(res, "dns6", None) or ()
                if dns4 or dns6:  # the server's DNS servers win over --dns
                    self.ppp.set_dns(dns4, dns6)
            done(res)
        self.aaa.handle = self.wst.aaa.authenticate(req, self.line_info(), self.aaa.acct_id, finish)

    def line_info(self):
        """RADIUS line identification: NAS-Port-Id ``<access>:<outer VID>:<inner VID>``, the
        client MAC as Calling-Station-Id, and the TR-101 TAG's circuit/remote ids and rates."""
        from .radius import tr101_line  # noqa: PLC0415

        _, ovid, _, ivid = vlan_ids(self.acs.vlan)
        cfg = self.bng.cfg
        port = cfg.access_names.get(self.acs.ifindex, cfg.access)
        return tr101_line(self.line_tag, f"{port}:{ovid}:{ivid}", self.acs.mac.hex("-").upper())

    def assign_ipv4(self, fixed: Optional[IPv4Address]) -> Optional[IPv4Address]:
        """An address from the worker's pool slice (``fixed``: the secrets file's address)."""
        if self.ipv4 is None:
            self.ipv4 = self.wst.pool4.allocate(fixed)
            if self.ipv4 is None:
                self.ctx.count("no_address")
        return self.ipv4

    def assign_ipv6(self) -> Optional[IPv6Network]:
        """RADIUS's Framed-IPv6-Prefix /64, else a /64 from the worker's slice of the IPv6 pool."""
        if self.ipv6 is None:
            if self.aaa.ipv6_prefix is not None:
                self.ipv6 = self.aaa.ipv6_prefix
            elif self.wst.pool6 is not None:
                self.ipv6 = self.wst.pool6.allocate()
        return self.ipv6

    def up(self, family: int) -> None:
        """An NCP opened: write the data-plane entry (IPv4 address / IPv6 prefix)."""
        first = not self.families
        self.families.add(family)
        self.acs.magic = self.ppp.local_magic or 0
        self._write_entry()
        if first:
            self.ctx.count("sessions_up", 1)
            if self.up_since is None:  # once per session (an NCP renegotiated later is no new set-up)
                self.up_since = time.time()
                self.ctx.count("session_setups")
                observe = getattr(self.ctx, "observe", None)
                if observe is not None:
                    observe("session_setup_seconds", self.up_since - self.started)
            self.aaa.start(self, self.wst.aaa)

    def down(self, family: int) -> None:
        """An NCP went down: that family leaves the data plane (the entry goes with the last)."""
        if family not in self.families:
            return
        self.families.discard(family)
        if self.families:
            self._write_entry()
        else:
            self._remove_entry()
            self.ctx.count("sessions_up", -1)

    def finished(self, reason: str) -> None:
        """The PPP session is over: entry removed, accounting Stop, PADT (unless the PPPoE
        session is already going), addresses released."""
        if self.done:
            return
        self.done = True
        for fam in tuple(self.families):
            self.down(fam)
        self.aaa.stop(self, self.wst.aaa, self.end_cause or self.acs.end_cause or cause_of(reason))
        if not self.closing:
            acs = self.acs
            self.bng.send_padt(self.ctx, acs, reason.encode()[:64])
            self.wst.ac.close(acs.mac, acs.session_id)  # -> BNG._closed

    def end(self, cause: str, reason: str) -> None:
        """End the session from this side (admin, timeouts, shutdown): LCP Terminate-Request, the
        data-plane entry gone at once, the Stop with ``cause`` (an Acct-Terminate-Cause name)."""
        if self.done:
            return
        self.end_cause = self.end_cause or cause
        self.ppp.terminate(reason)
        for fam in tuple(self.families):
            self.down(fam)

    def counters(self):
        """The session's data-plane counters (:class:`pfrps.bng.dataplane.SessionCounters`):
        live, or as read just before its entry was removed."""
        dp = self.wst.dataplane
        if dp is not None and self.entry is not None:
            return dp.counters(self.entry.key)
        if self.final is not None:
            return self.final
        from .dataplane import SessionCounters  # noqa: PLC0415

        return SessionCounters()

    # -- the data plane ----------------------------------------------------------------------
    def _write_entry(self) -> None:
        dp = self.wst.dataplane
        if dp is None:
            return
        from .dataplane import AUTH_CHAP, AUTH_PAP, SessionEntry, SessionKey  # noqa: PLC0415

        acs = self.acs
        otpid, ovid, itpid, ivid = vlan_ids(acs.vlan)
        self.key = SessionKey(acs.mac, acs.session_id, ovid, ivid)
        ppp = self.ppp
        entry = SessionEntry(
            key=self.key, ac_mac=self.bng._mac(self.ctx, acs.ifindex), outer_tpid=otpid, inner_tpid=itpid,
            ipv4=self.ipv4 if 4 in self.families else None,
            ipv6_prefix=self.ipv6 if 6 in self.families else None,
            mru=ppp.mru or self.bng.cfg.ppp.mru, start_ns=self.start_ns, local_magic=ppp.local_magic,
            peer_magic=ppp.peer_magic, user=self.user[:63], peer_ifid=ppp.peer_ifid or bytes(8),
            worker=self.ctx.worker_id, auth=AUTH_CHAP if self.method == "chap" else AUTH_PAP,
            local_ifid=ppp.local_ifid or bytes(8), relay_session_id=acs.relay_session_id or b"",
            acct_id=self.aaa.acct_id, session_timeout=self.aaa.session_timeout, idle_timeout=self.aaa.idle_timeout,
            acct_interim=self.aaa.interim, access_ifindex=acs.ifindex or 0)
        try:
            dp.add(entry)
        except (OSError, PfrpsError) as exc:  # a full table must not kill the worker
            self.ctx.count("dp_errors")
            self.ctx.log.warning("data-plane entry for %s not written: %s", acs.mac.hex(":"), exc)
            return
        if self.entry is None:
            self.ctx.count("dp_add")
        self.entry = entry

    def _remove_entry(self) -> None:
        dp = self.wst.dataplane
        if dp is None or self.entry is None:
            return
        self.final = dp.counters(self.entry.key)  # for the accounting Stop
        dp.remove(self.entry.key)
        self.entry = None
        self.ctx.count("dp_remove")

    def describe(self) -> dict:
        """The session as ``pfrps-bng show sessions`` prints it (counters from the data plane;
        ``interface``: the name of the access port it lives on, None when unknown)."""
        acs = self.acs
        otpid, ovid, itpid, ivid = vlan_ids(acs.vlan)
        cfg = self.bng.cfg
        out = {
            "mac": acs.mac.hex(":"), "session_id": acs.session_id, "worker": self.ctx.worker_id,
            # the access port the session lives on (its PADR's; -i repeated), else the only one
            "interface": cfg.access_names.get(acs.ifindex, cfg.access) or None,
            "vlan": [v for v in (ovid, ivid) if v] if acs.vlan else [],
            "vlan_tpids": [f"0x{t:04x}" for t in (otpid, itpid) if t],
            "user": self.user.decode(errors="replace"),
            "ipv4": str(self.ipv4) if self.ipv4 is not None and 4 in self.families else None,
            "ipv6_prefix": str(self.ipv6) if self.ipv6 is not None and 6 in self.families else None,
            "peer_ifid": self.ppp.peer_ifid.hex() if self.ppp.peer_ifid and 6 in self.families else None,
            "phase": getattr(self.ppp, "phase", ""),
            "acct_session_id": self.wst.aaa.acct_session_id(self.aaa.acct_id),
            "session_timeout": self.aaa.session_timeout, "idle_timeout": self.aaa.idle_timeout,
            "circuit_id": None, "remote_id": None,
            "uptime": round(time.time() - (self.up_since or self.started), 3),
            "up_packets": 0, "up_bytes": 0, "down_packets": 0, "down_bytes": 0,
        }
        if self.line_tag:
            line = self.line_info()
            out.update(circuit_id=_text(line.circuit_id), remote_id=_text(line.remote_id))
        if self.entry is not None:
            c = self.counters()
            out.update(up_packets=c.up_packets, up_bytes=c.up_bytes, down_packets=c.down_packets,
                       down_bytes=c.down_bytes)
        return out


class WorkerBNG:
    """A worker's BNG state (``ctx.storage["bng"]``): subscribers by (MAC, session id), its pool
    slices and its handle on the data plane."""

    def __init__(self, bng: "BNG", ctx: Any, ac: WorkerState) -> None:
        cfg = bng.cfg
        self.ac = ac
        self.subs: dict[tuple[bytes, int], Subscriber] = {}
        self.pool4 = Pool4(list(cfg.pools4), ctx.worker_id, ctx.worker_count,
                           reserved=tuple(cfg.secrets.fixed_ipv4))  # never hand out a fixed address
        self.pool6 = Pool6(cfg.pool6, ctx.worker_id, ctx.worker_count) if cfg.pool6 is not None else None
        self.aaa = WorkerAAA(cfg.secrets, cfg.server_name or cfg.ac.ac_name, cfg.radius, cfg.boot_id, ctx.worker_id,
                             cfg.access, ctx.loop, ctx.count)
        self.dataplane = None
        if cfg.dataplane and ctx.maps:
            from .dataplane import DataPlane  # noqa: PLC0415

            self.dataplane = DataPlane.from_fds(ctx.maps)


class BNG(AccessConcentrator):
    """A PPPoE BNG as a :class:`~pfrps.supervisor.Supervisor` handler: the AC's discovery, then
    PPP per session, addresses from per-worker pool slices, the XDP session table.

    Make it before :meth:`Supervisor.start` and pass :meth:`handle`, :meth:`on_start`,
    :meth:`on_stop` and :meth:`on_message`, with :data:`BNG_COUNTERS`, :data:`BNG_GAUGES`,
    ``mailboxes=True`` and the data plane's ``bpf_objects`` in the :class:`SupervisorConfig`
    (see :mod:`pfrps.bng.cli`).
    """

    def __init__(self, config: BNGConfig, workers: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config.ac, workers, clock)
        #: The BNG's settings (``self.config`` stays the AC's :class:`ACConfig`).
        self.cfg = config
        self.ppp_v4only = replace(config.ppp, ipv6=False)

    # -- worker hooks -------------------------------------------------------------------------
    def on_start(self, ctx: Any):
        """Worker start: the AC's session table and keepalive, the pools, the data plane's fds,
        the RADIUS client (then it is a coroutine the worker awaits), and the sessions of a
        previous process of this worker restored from the session table."""
        super().on_start(ctx)
        ac: WorkerState = ctx.storage["ac"]
        wst = WorkerBNG(self, ctx, ac)
        ctx.storage["bng"] = wst
        ac.on_close = lambda acs: self._closed(ctx, wst, acs)
        if self.cfg.radius is not None:
            return self._start_aaa(ctx, wst, ac)
        if wst.dataplane is not None:
            self._restore(ctx, wst, ac)
        return None

    async def _start_aaa(self, ctx: Any, wst: "WorkerBNG", ac: WorkerState) -> None:
        await wst.aaa.start()
        if wst.dataplane is not None:
            self._restore(ctx, wst, ac)

    def _restore(self, ctx: Any, wst: "WorkerBNG", ac: WorkerState) -> None:
        """After a restart: rebuild every session the previous process of this worker had open
        from its durable record in the session table (the entry the data plane kept forwarding
        with all along): the PPPoE session, the PPP automata Opened with the negotiated magic
        numbers, MRU and interface ids, the addresses taken from the pools again. No frame is
        sent; the clients never notice. Sessions that were still negotiating have no record:
        their next frame gets PADT (RFC 2516's recovery) and they dial again."""
        from .dataplane import AUTH_CHAP, AUTH_PAP  # noqa: PLC0415

        now = self.clock()
        boot_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        restored = dropped = 0
        for e in list(wst.dataplane.entries()):
            if e.worker != ctx.worker_id:
                continue
            k = e.key
            vlan = b"".join(t.to_bytes(2, "big") + v.to_bytes(2, "big")
                            for t, v in ((e.outer_tpid, k.outer_vid), (e.inner_tpid, k.inner_vid)) if t)
            ok = ac.ids.claim(k.session_id) and (e.ipv4 is None or wst.pool4.allocate(e.ipv4) == e.ipv4) and (
                e.ipv6_prefix is None or wst.pool6 is None or wst.pool6.claim(e.ipv6_prefix))
            if not ok:  # not ours after all (ids or addresses taken): it cannot be served
                wst.dataplane.remove(k)
                dropped += 1
                continue
            acs = ACSession(k.mac, k.session_id, None, b"", e.relay_session_id or None, magic=e.local_magic,
                            vlan=vlan, last_rx=now, ifindex=e.access_ifindex or None)
            ac.sessions[(k.mac, k.session_id)] = acs
            ac.by_mac.setdefault((k.mac, p.vlan_key(vlan)), []).append(k.session_id)
            sub = Subscriber(self, ctx, wst, acs)
            sub.user = bytes(e.user)
            sub.method = "chap" if e.auth == AUTH_CHAP else "pap" if e.auth == AUTH_PAP else ""
            sub.ipv4, sub.ipv6 = e.ipv4, e.ipv6_prefix
            sub.families = {f for f, a in ((4, e.ipv4), (6, e.ipv6_prefix)) if a is not None}
            sub.start_ns, sub.key, sub.entry = e.start_ns, k, e
            sub.up_since = time.time() - max(boot_ns - e.start_ns, 0) / 1e9
            sub.ppp.restore(user=sub.user, auth_method=sub.method or None, local_magic=e.local_magic,
                            peer_magic=e.peer_magic, peer_mru=e.mru, ipv4=e.ipv4, ipv6_prefix=e.ipv6_prefix,
                            local_ifid=e.local_ifid, peer_ifid=e.peer_ifid)
            # accounting carries on: the same Acct-Session-Id, no second Start, the same timers
            aaa = sub.aaa
            aaa.acct_id, aaa.session_timeout, aaa.idle_timeout = e.acct_id, e.session_timeout, e.idle_timeout
            aaa.interim, aaa.accounting = e.acct_interim, wst.aaa.client is not None
            aaa.arm(sub, wst.aaa, max(boot_ns - e.start_ns, 0) / 1e9)
            wst.subs[(k.mac, k.session_id)] = sub
            restored += 1
        if restored:
            ctx.count("sessions", restored)
            ctx.count("sessions_up", restored)
            ctx.count("restored", restored)
            ctx.log.info("restored %d sessions of this worker's previous process from the session table", restored)
        if dropped:
            ctx.count("dp_stale", dropped)

    def on_stop(self, ctx: Any):
        """Worker stop (SIGTERM): LCP Terminate-Request on every session, entries removed, then
        the AC's PADT for each (RFC 2516 5.5, RFC 1661 5.5), accounting Stops (NAS-Reboot) sent
        before the worker exits (a coroutine the worker awaits, with RADIUS)."""
        wst: Optional[WorkerBNG] = ctx.storage.get("bng")
        if wst is not None:
            for sub in list(wst.subs.values()):
                sub.end("NAS-Reboot", "BNG shutting down")
        super().on_stop(ctx)
        if wst is not None and wst.aaa.client is not None:
            return wst.aaa.stop(1.0)
        return None

    def _closed(self, ctx: Any, wst: WorkerBNG, acs: ACSession) -> None:
        """The AC removed a PPPoE session (PADT, expiry, replacement, stop, PPP finished)."""
        sub = wst.subs.pop((acs.mac, acs.session_id), None)
        if sub is None:
            return
        sub.closing = True
        if not sub.done:
            sub.ppp.lower_down()
            sub.finished("lower layer down")
        if sub.ipv4 is not None:
            wst.pool4.release(sub.ipv4)
        if sub.ipv6 is not None and wst.pool6 is not None:
            wst.pool6.release(sub.ipv6)
        ctx.count("sessions_ended")

    def send_padt(self, ctx: Any, acs: ACSession, message: bytes) -> None:
        """PADT for ``acs`` from the AC MAC, with its VLAN tags and Relay-Session-Id."""
        frame = p.build_padt(acs.mac, self._mac(ctx, acs.ifindex), acs.session_id, message,
                             relay_session_id=acs.relay_session_id, encoder=self._enc)
        self._transmit(ctx, p.with_vlan(frame, acs.vlan), "padt_tx", acs.ifindex)

    # -- frames -------------------------------------------------------------------------------
    def _padr(self, m: p.Discovery, vlan: bytes, ctx: Any) -> None:
        """The AC's PADR handling; a PADS that opened a new session starts its LCP."""
        super()._padr(m, vlan, ctx)
        ac: WorkerState = ctx.storage["ac"]
        sid = ac.by_uniq.get((m.src, p.vlan_key(vlan), m.host_uniq))
        if sid is None:
            return  # PADS with an error, or no PADS at all (bad cookie ...)
        wst: WorkerBNG = ctx.storage["bng"]
        if (m.src, sid) in wst.subs:
            return  # a retransmitted PADR: the session and its LCP exist already
        sub = Subscriber(self, ctx, wst, ac.sessions[(m.src, sid)])
        sub.line_tag = next((v for t, v in m.tags if t == p.TAG_VENDOR_SPECIFIC and v[:4] == TR101_VENDOR), None)
        wst.subs[(m.src, sid)] = sub
        sub.ppp.start()

    def _may_probe(self, ctx: Any, acs: ACSession) -> bool:
        """RFC 1661 5.8: Echo-Requests MUST only be sent in the LCP Opened state, so a session
        still negotiating or closing (waiting for its Terminate-Ack) gets no keepalive probe;
        its own restart timer (Max-Configure, Max-Terminate) ends it if the peer is gone."""
        sub = ctx.storage["bng"].subs.get((acs.mac, acs.session_id))
        return sub is None or sub.ppp.lcp.state == "Opened"

    def _session(self, m: p.Session, vlan: bytes, ctx: Any) -> None:
        if m.dst != self._mac(ctx):
            ctx.count("ignored")
            return
        ac: WorkerState = ctx.storage["ac"]
        acs = ac.sessions.get((m.src, m.session_id))
        if acs is not None and p.vlan_key(acs.vlan) != p.vlan_key(vlan):
            acs = None
        if acs is not None and acs.ifindex is not None and acs.ifindex != getattr(ctx, "rx_ifindex", None):
            acs = None  # that session id on another access port is not that session
        sub = ctx.storage["bng"].subs.get((m.src, m.session_id)) if acs is not None else None
        if sub is None:
            super()._session(m, vlan, ctx)  # unknown session: rate-limited PADT
            return
        acs.last_rx = self.clock()
        acs.misses = 0
        ctx.count("served")
        ctx.count("ppp_rx")
        sub.ppp.receive(m.protocol, m.ppp[2:])

    # -- management ---------------------------------------------------------------------------
    def on_message(self, ctx: Any, payload: bytes) -> bytes:
        """A management request from the supervisor (JSON, see the module docstring)."""
        try:
            req = json.loads(payload)
            op = req["op"]
        except (ValueError, KeyError, TypeError):
            return json.dumps({"error": "malformed request"}).encode()
        wst: Optional[WorkerBNG] = ctx.storage.get("bng")
        subs = list(wst.subs.values()) if wst is not None else []
        if op == "list":  # a page of at most LIST_PAGE sessions (a mailbox message is bounded)
            try:
                offset = max(int(req.get("offset", 0)), 0)
            except (TypeError, ValueError):
                offset = 0
            page = subs[offset:offset + LIST_PAGE]
            return json.dumps({"sessions": [s.describe() for s in page], "total": len(subs)}).encode()
        if op == "terminate":
            hits = [s for s in subs if _matches(s, req)]
            for s in hits:
                s.end(str(req.get("cause", "Admin-Reset")), "administratively terminated")
            return json.dumps({"terminated": len(hits)}).encode()
        if op == "find":  # RFC 5176 Session Identification attributes, every one must match
            hits = [s for s in subs if s.families and _identified(s, req.get("keys", {}))]
            return json.dumps({"sessions": [[s.acs.mac.hex(), s.acs.session_id] for s in hits]}).encode()
        if op == "coa":
            wanted = {(bytes.fromhex(m), int(sid)) for m, sid in req.get("sessions", [])}
            hits = [s for s in subs if (s.acs.mac, s.acs.session_id) in wanted]
            for s in hits:
                s.aaa.coa(s, wst.aaa, req.get("changes", {}))
                s._write_entry()  # the durable record keeps the new timeouts
                ctx.count("coa_applied")
            return json.dumps({"changed": len(hits)}).encode()
        return json.dumps({"error": f"unknown op {op!r}"}).encode()


def _text(v) -> Optional[str]:
    if v is None:
        return None
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v)


def _identified(sub: Subscriber, keys: dict) -> bool:
    """RFC 5176 section 3: a session matches when every Session Identification attribute does."""
    if not keys:
        return False
    if "acct_session_id" in keys and keys["acct_session_id"] != sub.wst.aaa.acct_session_id(sub.aaa.acct_id):
        return False
    if "user_name" in keys and keys["user_name"].encode("latin-1") != sub.user:
        return False
    if "framed_ip" in keys and (sub.ipv4 is None or str(sub.ipv4) != keys["framed_ip"]):
        return False
    if "calling_station_id" in keys and keys["calling_station_id"].lower().replace(":", "-") != \
            sub.acs.mac.hex("-"):
        return False
    return True


def _matches(sub: Subscriber, req: dict) -> bool:
    if "sessions" in req:
        return [sub.acs.mac.hex(), sub.acs.session_id] in req["sessions"]
    if "user" in req:
        return sub.user == str(req["user"]).encode()
    if "mac" in req:
        return sub.acs.mac.hex(":") == str(req["mac"]).lower()
    if "ip" in req:
        try:
            addr = ipaddress.ip_address(req["ip"])
        except ValueError:
            return False
        if addr.version == 4:
            return sub.ipv4 == addr
        return sub.ipv6 is not None and addr in sub.ipv6
    return False
