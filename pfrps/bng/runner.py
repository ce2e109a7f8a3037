"""Serving ``pfrps-bng``: checks, routing, the data plane, the supervisor, the control socket.

Order of a run (each step undone at exit, newest first, also after an error half-way):

1. arguments and files checked before anything changes (pools, secrets, interfaces, uplink
   address): bad input is one line, exit status 2, nothing left;
2. the management socket (abstract unix ``pfrps-bng/<ACCESS>``: a second BNG on the same
   access interface is refused here);
3. routing (:class:`Routing`): a route for each pool and for the IPv6 pool through the access
   interface, so the kernel's FIB (``bpf_fib_lookup`` included) knows where subscribers are,
   IPv4/IPv6 forwarding on and proxy ARP on the uplink (so a next hop on the uplink's subnet
   that ARPs for a subscriber address gets the uplink's MAC); the old sysctl values are put back;
4. the supervisor: steered packet sockets for PPPoE (0x8863, 0x8864), the XDP data plane loaded
   and attached before the fork (``SupervisorConfig.bpf_objects``), N workers;
5. per-interval lines until SIGINT/SIGTERM/--duration, then every session is ended (LCP
   Terminate-Request and PADT) by its worker's ``on_stop``.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import socket
from pathlib import Path
from typing import Optional

from pfrps.cliutil import signal_ready
from pfrps.errors import PfrpsError, UsageError
from pfrps.hashing import parse_hash_alg, parse_mac
from pfrps.links import check_interface
from pfrps.config import SupervisorConfig
from pfrps.supervisor import Supervisor

from ..ac.protocol import ETH_P_PPP_DISC, ETH_P_PPP_SES
from ..ac.server import ACConfig, parse_service_names
from .control import PROG, control_address
from .pools import check_pools
from .secrets import Secrets
from .server import BNG, BNG_COUNTERS, BNG_GAUGES, BNG_HELP, BNG_HISTOGRAMS, BNGConfig
from .session import PPPConfig

__all__ = ["serve", "Routing", "uplink_ipv4", "format_line"]

log = logging.getLogger("pfrps")


def uplink_ipv4(ifname: str) -> Optional[ipaddress.IPv4Interface]:
    """The first IPv4 address of ``ifname`` (with its prefix), or None."""
    from pyroute2 import IPRoute  # noqa: PLC0415

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            return None
        for a in ipr.get_addr(family=socket.AF_INET, index=idx[0]):
            return ipaddress.IPv4Interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
    return None


#: The routing protocol number pfrps-bng's routes carry (rtnetlink(7) rtm_protocol; numbers
#: above RTPROT_STATIC are free for routing daemons): ``ip route show proto 245`` lists them, and
#: a BNG that starts after one was killed takes them over instead of refusing.
RTPROT_PFRPS_BNG = 245


class Routing:
    """Routes for the pools through the access interface and the forwarding sysctls, all
    undone by :meth:`close` (routes removed, sysctls restored). pyroute2, no ``ip`` subprocess."""

    def __init__(self, access: str, uplink: str) -> None:
        self.access, self.uplink = access, uplink
        self._routes: list[tuple[int, str]] = []
        self._sysctls: list[tuple[Path, str]] = []

    def _sysctl(self, path: str, value: str) -> None:
        p = Path("/proc/sys") / path
        try:
            old = p.read_text().strip()
        except OSError:
            return  # e.g. IPv6 disabled in this namespace: nothing to do
        if old != value:
            p.write_text(value)
            self._sysctls.append((p, old))

    def open(self, pools4, pool6, access_ifindex: int) -> "Routing":
        """Add the routes and set the sysctls.

        Raises:
            UsageError: a route for a pool exists already (another BNG, or by hand).
        """
        from pyroute2 import IPRoute  # noqa: PLC0415
        from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

        self._sysctl("net/ipv4/ip_forward", "1")
        self._sysctl(f"net/ipv4/conf/{self.uplink}/proxy_arp", "1")
        if pool6 is not None:
            self._sysctl("net/ipv6/conf/all/forwarding", "1")
        with IPRoute() as ipr:
            for net in [*pools4, *([pool6] if pool6 is not None else [])]:
                fam = socket.AF_INET if net.version == 4 else socket.AF_INET6
                mine = [r for r in ipr.route("dump", family=fam)
                        if r["proto"] == RTPROT_PFRPS_BNG and r["dst_len"] == net.prefixlen
                        and r.get_attr("RTA_DST") == str(net.network_address)]
                for r in mine:  # a pfrps-bng that was killed left it: take it over
                    try:
                        ipr.route("del", dst=str(net), family=fam, oif=r.get_attr("RTA_OIF"),
                                  proto=RTPROT_PFRPS_BNG)
                    except NetlinkError as exc:
                        log.warning("cannot remove the old route for %s: %s", net, os.strerror(exc.code))
                try:
                    ipr.route("add", dst=str(net), oif=access_ifindex, family=fam, proto=RTPROT_PFRPS_BNG)
                except NetlinkError as exc:
                    if exc.code == errno.EEXIST:
                        raise UsageError(f"a route for {net} exists already in this namespace",
                                         code=errno.EEXIST,
                                         hint="remove it, or pick a pool nothing else routes") from None
                    raise UsageError(f"cannot add the route for {net} via {self.access}: {os.strerror(exc.code)}",
                                     code=exc.code) from None
                self._routes.append((fam, str(net)))
        return self

    def describe(self) -> str:
        """The routes and sysctls this run changed, one line."""
        routes = ", ".join(f"{dst} dev {self.access}" for _, dst in self._routes)
        ctl = ", ".join(f"{str(p)[len('/proc/sys/'):].replace('/', '.')}={p.read_text().strip()}"
                        for p, _ in self._sysctls)
        return f"routes {routes or 'none'}; sysctls {ctl or 'unchanged'}"

    def close(self) -> None:
        """Remove the routes and restore the sysctls (idempotent; missing ones ignored)."""
        from pyroute2 import IPRoute  # noqa: PLC0415
        from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

        if self._routes:
            with IPRoute() as ipr:
                while self._routes:
                    fam, dst = self._routes.pop()
                    try:
                        ipr.route("del", dst=dst, family=fam)
                    except NetlinkError:
                        pass
        while self._sysctls:
            p, old = self._sysctls.pop()
            try:
                p.write_text(old)
            except OSError:
                pass


class ControlSocket:
    """The management socket (abstract unix stream ``pfrps-bng/<ACCESS>``), served from the
    supervisor's loop: one JSON request per connection, answered from the workers' mailboxes."""

    def __init__(self, access: str) -> None:
        self.dataplane = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.bind(control_address(access))
        except OSError as exc:
            self.sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"a pfrps-bng serves {access} already in this network namespace",
                                 code=errno.EADDRINUSE, hint="stop it first, or serve another interface") from None
            raise
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.sup: Optional[Supervisor] = None

    def on_accept(self) -> None:
        """Answer one management connection (bounded: 1 s to read the request)."""
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        with conn:
            conn.settimeout(1.0)
            try:
                data = b""
                while not data.endswith(b"\n") and len(data) < 4096:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(self.answer(data))
            except OSError as exc:
                log.warning("management connection: %s", exc.strerror or exc)

    def answer(self, data: bytes) -> bytes:
        """The reply to one request (JSON bytes)."""
        try:
            req = json.loads(data)
            op = req["op"]
        except (ValueError, KeyError, TypeError):
            return b'{"error": "malformed request"}'
        if op not in ("list", "terminate"):
            return json.dumps({"error": f"unknown op {op!r}"}).encode()
        workers = range(self.sup.config.workers)
        if op == "list":
            return self._list(workers)
        replies = self.sup.request(workers, json.dumps(req).encode(), timeout=3.0)
        missing = [w for w in workers if w not in replies]
        total = 0
        for w in replies:
            try:
                total += int(json.loads(replies[w]).get("terminated", 0))
            except ValueError:
                pass
        return json.dumps({"terminated": total, "workers_missing": missing}).encode()

    def _list(self, workers) -> bytes:
        """Every worker's sessions, a page per mailbox round trip (``LIST_PAGE`` each)."""
        sessions: list = []
        missing = []
        offsets = {w: 0 for w in workers}
        while offsets:
            for w in list(offsets):
                rep = self.sup.request([w], json.dumps({"op": "list", "offset": offsets[w]}).encode(), timeout=3.0)
                try:
                    page = json.loads(rep[w]) if w in rep else None
                except ValueError:
                    page = None
                if page is None:
                    missing.append(w)
                    del offsets[w]
                    continue
                sessions.extend(page["sessions"])
                offsets[w] += len(page["sessions"])
                if not page["sessions"] or offsets[w] >= page["total"]:
                    del offsets[w]
        entries = sum(1 for _ in self.dataplane.entries()) if self.dataplane is not None else None
        return json.dumps({"sessions": sessions, "workers_missing": sorted(missing),
                           "dataplane_entries": entries}).encode()

    def close(self) -> None:
        """Close the socket (its abstract name goes with it)."""
        self.sock.close()


class DynAuthListener:
    """RFC 5176 Dynamic Authorization (Disconnect-Request, CoA-Request) served from the
    supervisor's loop: :class:`pfrps.bng.radius.DynAuthServer` checks the request, and the
    workers' mailboxes find and change the sessions (each worker owns its own). Bound before
    the workers start, so a port in use is bad input."""

    def __init__(self, radius) -> None:
        from .radius import DynAuthServer, dynauth_clients  # noqa: PLC0415

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.bind(("0.0.0.0", radius.coa_port))
        except OSError as exc:
            self.sock.close()
            raise UsageError(f"cannot listen for Disconnect/CoA on UDP port {radius.coa_port}: {exc.strerror}",
                             code=exc.errno or errno.EADDRINUSE, hint="pick another --coa-port") from None
        self.sock.setblocking(False)
        self.server = DynAuthServer(radius, dynauth_clients(radius), self.lookup, self.disconnect, self.coa)
        self.sup: Optional[Supervisor] = None

    def on_readable(self) -> None:
        """One request in, its answer out (or nothing: dropped and counted)."""
        try:
            data, addr = self.sock.recvfrom(4096)
        except BlockingIOError:
            return
        reply = self.server.handle(data, addr)
        if reply is not None:
            self.sock.sendto(reply, addr)

    def _ask(self, workers, req: dict) -> dict[int, dict]:
        out = {}
        for w, raw in self.sup.request(list(workers), json.dumps(req).encode(), timeout=2.0).items():
            try:
                out[w] = json.loads(raw)
            except ValueError:
                pass
        return out

    def lookup(self, keys: dict) -> list[tuple[int, str, int]]:
        """``(worker, MAC hex, session id)`` of every session matching all ``keys``."""
        plain = {k: (v.decode("latin-1") if isinstance(v, bytes) else str(v)) for k, v in keys.items()}
        found = self._ask(range(self.sup.config.workers), {"op": "find", "keys": plain})
        return [(w, mac, sid) for w, rep in sorted(found.items()) for mac, sid in rep.get("sessions", [])]

    def _by_worker(self, sessions) -> dict[int, list]:
        by: dict[int, list] = {}
        for w, mac, sid in sessions:
            by.setdefault(w, []).append([mac, sid])
        return by

    def disconnect(self, sessions, keys) -> None:
        """End them: Terminate-Request, entry removed, Stop with Admin-Reset."""
        for w, ss in self._by_worker(sessions).items():
            self._ask([w], {"op": "terminate", "sessions": ss, "cause": "Admin-Reset"})

    def coa(self, sessions, changes: dict) -> None:
        """New Session-Timeout / Idle-Timeout / interim interval for them."""
        for w, ss in self._by_worker(sessions).items():
            self._ask([w], {"op": "coa", "sessions": ss, "changes": changes})

    def close(self) -> None:
        """Stop listening."""
        self.sock.close()


def format_line(snap: dict, prev: Optional[dict], dp: Optional[dict]) -> str:
    """The per-interval line: per worker ``#w:up/new`` (sessions with an NCP open / set up in
    the last interval), the totals, then data-plane frames each way and any error counters."""
    n = len(snap["sessions_up"])
    new = [snap["session_setups"][w] - (prev["session_setups"][w] if prev else 0) for w in range(n)]
    parts = ["sessions up/new"] + [f"#{w}:{snap['sessions_up'][w]}/{new[w]}" for w in range(n)]
    parts.append(f"total:{sum(snap['sessions_up'])}/{sum(new)}")
    if dp is not None:
        parts.append(f"dp up:{dp.get('up_forwarded', 0)} down:{dp.get('down_forwarded', 0)}")
        extra = {k: v for k, v in dp.items() if v and k not in ("up_forwarded", "down_forwarded")}
        if extra:
            parts.append("dp " + " ".join(f"{k}:{v}" for k, v in sorted(extra.items())))
    for name in ("auth_fail", "no_address", "dp_errors", "expired", "malformed", "drops", "restarts",
                 "handler_errors", "tx_errors"):
        vals = snap.get(name) or []
        if any(vals):
            parts.append(f"{name}:{sum(vals)}")
    return " ".join(parts)


def serve(args) -> int:
    """Run the BNG for parsed ``args`` (see :func:`pfrps.bng.cli.build_parser`); exit status."""
    sup: Optional[Supervisor] = None
    routing: Optional[Routing] = None
    ctrl: Optional[ControlSocket] = None
    dae: Optional[DynAuthListener] = None
    try:
        hash_alg = parse_hash_alg(args.hash_alg)
        check_pools(list(args.pools), args.workers, args.ipv6_pool)
        if not args.secrets and not args.radius:
            raise UsageError("no way to authenticate subscribers",
                             hint="give --secrets FILE (pppd format), --radius HOST[:PORT], or both")
        secrets = Secrets.load([Path(f) for f in args.secrets]) if args.secrets else None
        # -i repeated: several access ports; the first names the BNG (control socket, routes)
        accesses = list(args.access) if isinstance(args.access, (list, tuple)) else [args.access]
        args.access = accesses[0]
        dup = next((a for a in accesses if accesses.count(a) > 1), None)
        if dup is not None:
            raise UsageError(f"access interface {dup} is given more than once",
                             hint="name each access interface once (-i IF1 -i IF2)")
        if args.uplink in accesses:
            raise UsageError(f"{args.uplink} is given as both the access and the uplink interface",
                             hint="give the subscribers' interface to -i and the Internet side to --uplink")
        port_macs: dict[int, bytes] = {}
        access_names: dict[int, str] = {}
        mtu = 0  # the smallest access MTU: every port must carry what LCP and PPP-Max-Payload grant
        for name in accesses:
            lk = check_interface(name)
            access_names[lk.ifindex] = name
            mtu = min(mtu, lk.mtu or 1500) if mtu else (lk.mtu or 1500)
            try:
                port_macs[lk.ifindex] = parse_mac(lk.mac)
            except UsageError:
                raise UsageError(f"interface {name!r} has no Ethernet address",
                                 hint="serve an Ethernet interface") from None
        link = check_interface(args.access)
        up = check_interface(args.uplink)
        addr4 = uplink_ipv4(args.uplink)
        if addr4 is None:
            raise UsageError(f"the uplink {args.uplink} has no IPv4 address",
                             hint=f"add one first (ip addr add 198.51.100.1/24 dev {args.uplink}); it is the "
                                  "BNG's address in IPCP and the next hop for the pools")
        try:
            mac = parse_mac(link.mac)
        except UsageError:
            raise UsageError(f"interface {args.access!r} has no Ethernet address", hint="serve an Ethernet interface") \
                from None
        from .radius import new_boot_id, radius_config  # noqa: PLC0415

        radius = radius_config(args, nas_ip=addr4.ip)
        services = parse_service_names(args.services)
        dns4 = tuple(a for a in args.dns if a.version == 4)
        dns6 = tuple(a for a in args.dns if a.version == 6)
        ppp = PPPConfig(auth=tuple(args.auth), mru=args.mru, ac_name=args.ac_name.encode(),
                        local_ipv4=addr4.ip, dns4=dns4[:2], dns6=dns6, ipv6=args.ipv6_pool is not None)
        ac = ACConfig(mac=mac, ac_name=args.ac_name.encode(), services=services, secret=os.urandom(32),
                      max_frame=14 + mtu, echo_interval=args.echo_interval,
                      echo_misses=args.echo_misses,
                      # RFC 4638: an access MTU above 1500 lets hosts that ask have PPP MRUs above 1492
                      max_payload=(mtu - 8) if mtu > 1500 else 0,
                      port_macs=port_macs if len(accesses) > 1 else {})
        bng = BNG(BNGConfig(ac=ac, ppp=ppp, pools4=tuple(args.pools), pool6=args.ipv6_pool, secrets=secrets,
                            radius=radius, boot_id=new_boot_id(), access=args.access,
                            access_names=access_names), args.workers)
        from .dataplane import DataPlane  # noqa: PLC0415

        dataplane = DataPlane(tuple(accesses), args.uplink, generic=args.generic)
        config = SupervisorConfig(
            interfaces=tuple(accesses), workers=args.workers, hash_alg=hash_alg,
            ethertypes=(ETH_P_PPP_DISC, ETH_P_PPP_SES), app_counters=BNG_COUNTERS, app_gauges=BNG_GAUGES,
            # control frames, each answered: hand them over within 2 ms, and 256 small blocks so a
            # worker that is not scheduled for a while (2 CPUs, client beside) still finds room
            ring_block_size=16 << 10, ring_blocks=256, ring_retire_ms=2,
            mailboxes=True, bpf_objects=dataplane.bpf_objects(), app_name="pfrps_bng",
            app_histograms=dict(BNG_HISTOGRAMS), metrics=args.metrics, app_help=dict(BNG_HELP))
        config.validate()
        ctrl = ControlSocket(args.access)
        dae = DynAuthListener(radius) if radius is not None else None
        routing = Routing(args.access, args.uplink).open(args.pools, args.ipv6_pool, link.ifindex)
        sup = Supervisor(config, handler=bng.handle, on_start=bng.on_start, on_stop=bng.on_stop,
                         on_message=bng.on_message)
        ctrl.sup = sup
        if dae is not None:
            dae.sup = sup
        seconds = sup.start()
        dataplane.bind(sup.bpf.maps)
        ctrl.dataplane = dataplane
        sup.add_reader(ctrl.sock.fileno(), ctrl.on_accept)
        if dae is not None:
            sup.add_reader(dae.sock.fileno(), dae.on_readable)
            log.info("RADIUS: servers %s, NAS-Identifier %s, NAS-IP-Address %s; Disconnect/CoA on UDP port %d",
                     ", ".join(f"{h}:{p}" for h, p in radius.servers), radius.nas_identifier, radius.nas_ip,
                     radius.coa_port)
        log.info("%s", sup.describe())
        log.info("BNG %r on %s (%s), uplink %s (%s, ifindex %d); pools %s%s; auth %s; %d workers ready in %.3f s; "
                 "XDP data plane %s; Hit Ctrl-C to end.", args.ac_name, args.access, link.mac, args.uplink, addr4,
                 up.ifindex, ", ".join(map(str, args.pools)),
                 f", IPv6 /64s from {args.ipv6_pool}" if args.ipv6_pool else "", ",".join(args.auth),
                 args.workers, seconds, "generic" if args.generic else "native")
        log.info("routing: %s", routing.describe())
        if getattr(sup, "metrics_endpoint", None):
            log.info("Prometheus metrics on %s", sup.metrics_endpoint.url)
        signal_ready(args.ready_fd)
        prev: dict = {}

        def emit() -> None:
            snap = sup.snapshot()
            dp = dataplane.stats()
            if args.json:
                from pfrps.stats import dumps  # noqa: PLC0415

                print(dumps({**snap, "dataplane": dp}), flush=True)
            else:
                print(format_line(snap, prev or None, dp), flush=True)
            prev.clear()
            prev.update(snap)

        return sup.run(emit, interval=args.interval, duration=args.duration)
    except PfrpsError as exc:
        return exc.report(PROG)
    except KeyboardInterrupt:
        return 0
    finally:
        if sup is not None:
            sup.close()
        if routing is not None:
            routing.close()
        if ctrl is not None:
            ctrl.close()
        if dae is not None:
            dae.close()
