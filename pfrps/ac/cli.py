"""``pfrps-ac``: a PPPoE discovery access concentrator (RFC 2516) on pfrps's steered workers."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

from pfrps.cliutil import ArgumentParser, add_metrics_option, int_range, positive_seconds, setup_logging, signal_ready
from pfrps.errors import PfrpsError, UsageError
from pfrps.hashing import parse_hash_alg, parse_mac
from pfrps.links import check_interface
from pfrps.config import MAX_WORKERS, SupervisorConfig
from pfrps.supervisor import Supervisor

from .protocol import ENCODERS, ETH_P_PPP_DISC, ETH_P_PPP_SES
from .server import AC_COUNTERS, AC_GAUGES, AC_METRICS_HELP, AccessConcentrator, ACConfig, parse_service_names

__all__ = ["main", "build_parser", "format_line"]

PROG = "pfrps-ac"
#: Longest AC-Name / Service-Name accepted, bytes (UTF-8), so that a PADO always fits.
MAX_NAME = 255
MAX_SERVICES = 16

EPILOG = """\
examples:
  pfrps-ac -i enp1s0 -w 8 --ac-name bras1 --service-name internet
  pfrps-ac -i enp1s0 -w 8 --ac-name bras1 --service-name internet --service-name voip
  pfrps-ac -i enp1s0 -w 4 --ac-name bras1                 # no --service-name: any service
  pfrps-ac -i enp1s0 -w 8 --ac-name bras1 --steering filter --json --user nobody
  pfrps-ac -i enp1s0 -w 2 --ac-name lab --duration 60     # stop after a minute
  pfrps-ac -i enp1s0 -w 8 --ac-name bras1 --max-sessions 4000 --echo-interval 10 --echo-misses 3
  pfrps-ac -i enp1s0 -w 8 --ac-name bras1 --padt-rate 20 --padt-burst 40 --cookie-window 30
  pfrps-ac -i enp1s0 -w 8 --ac-name bras1 --metrics 127.0.0.1:9465   # pfrps_ac_padi_total, pfrps_ac_sessions ...

Every subscriber MAC is steered to one worker, which keeps its sessions; session ids are
unique across workers (worker w of N hands out w, w+N, w+2N, ...). 802.1Q and QinQ
(0x88a8/0x8100 or 0x8100/0x8100) PPPoE is served with the tags echoed in every reply.
State is bounded: --max-sessions per worker, --sessions-per-mac, keepalive expiry
(--echo-interval, --echo-misses), cookies good for one to two --cookie-window, and PADTs for
unknown sessions at most --padt-rate per second per worker.
"""


def _number(what: str, unit: str, allow_zero: bool = False):
    """An argparse ``type=`` for a finite number in ``unit`` above 0 (or from 0 with ``allow_zero``)
    (positive_seconds, with the option's name in the message and zero allowed where it means off)."""
    def conv(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be {unit}, not {text!r}") from None
        if not (0 <= value if allow_zero else 0 < value) or not value < float("inf"):
            bound = "0 or above" if allow_zero else "above 0"
            raise argparse.ArgumentTypeError(f"{what} {text} must be {bound} and finite ({unit})")
        return value
    return conv


_TPIDS = {"auto": None, "0x8100": 0x8100, "8100": 0x8100, "0x88a8": 0x88A8, "88a8": 0x88A8}


def _name(what: str):
    def conv(text: str) -> str:
        raw = text.encode("utf-8", "surrogateescape")
        if not raw:
            hint = "; omit --service-name to accept any service" if what == "service name" else ""
            raise argparse.ArgumentTypeError(f"{what} must not be empty{hint}")
        if len(raw) > MAX_NAME:
            raise argparse.ArgumentTypeError(f"{what} is {len(raw)} bytes, at most {MAX_NAME}")
        return text
    return conv


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog=PROG,
        description="Answer PPPoE discovery (PADI/PADR/PADT) and LCP echo on an interface, with "
                    "subscribers spread across worker processes by source-MAC hash.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-i", "--interface", dest="interfaces", action="append", required=True, metavar="IF",
                   help="interface to serve; repeat for several access ports (-i eth1 -i eth2): the same workers "
                        "serve all, each reply leaves by the port its request came in on, from that port's MAC")
    p.add_argument("-w", "--worker-count", dest="workers", type=int_range(1, MAX_WORKERS, "worker count"),
                   default=os.cpu_count() or 1, metavar="N",
                   help=f"worker processes, 1..{MAX_WORKERS} (default: CPUs, {os.cpu_count()})")
    p.add_argument("--ac-name", required=True, type=_name("AC name"), metavar="NAME",
                   help="the AC-Name TAG of every PADO")
    p.add_argument("--service-name", dest="services", action="append", default=[], type=_name("service name"),
                   metavar="S", help="a Service-Name to offer; repeat for more (default: accept any service)")
    p.add_argument("-a", "--hash-alg", dest="hash_alg", default="0", metavar="ALG",
                   help="0/mac_hash, 1/mac_jhash, 2/jhash_oaat (default: 0)")
    p.add_argument("--steering", choices=("filter", "fanout"), default="fanout",
                   help="fanout: one PACKET_FANOUT_EBPF program per frame; filter: a socket filter per worker "
                        "(default: fanout)")
    p.add_argument("--user", metavar="NAME",
                   help="after sockets and BPF programs are in place, run workers as NAME with no capabilities")
    p.add_argument("--encoder", choices=ENCODERS, default="struct",
                   help="how replies are encoded: struct (fast; byte-identical to scapy, the tests check it) "
                        "or scapy's layers (~350 us per reply) (default: struct)")
    p.add_argument("--max-sessions", type=int_range(0, 65534, "max sessions"), default=0, metavar="N",
                   help="sessions per worker; beyond it a PADR gets PADS with AC-System-Error (default: 0, the "
                        "worker's whole session-id partition, 65534/N)")
    p.add_argument("--sessions-per-mac", type=int_range(1, 65534, "sessions per MAC"), default=1, metavar="K",
                   help="sessions one client MAC (per VLAN) may hold; a new Host-Uniq beyond it replaces the "
                        "oldest (default: 1)")
    p.add_argument("--echo-interval", type=_number("echo interval", "seconds", allow_zero=True), default=30.0, metavar="SECONDS",
                   help="LCP Echo-Request to each session silent this long, every this long; 0: no keepalive "
                        "and no expiry (default: 30)")
    p.add_argument("--echo-misses", type=int_range(1, 255, "echo misses"), default=3, metavar="N",
                   help="unanswered Echo-Requests after which a session expires with PADT (default: 3)")
    p.add_argument("--cookie-window", type=_number("cookie window", "seconds"), default=60.0, metavar="SECONDS",
                   help="AC-Cookie time window; a cookie is accepted in its window and the next (default: 60)")
    p.add_argument("--padt-rate", type=_number("PADT rate", "frames/s"), default=100.0, metavar="FPS",
                   help="PADTs per second per worker answering frames on unknown sessions (token bucket; "
                        "default: 100)")
    p.add_argument("--padt-burst", type=int_range(1, 1 << 20, "PADT burst"), default=100, metavar="N",
                   help="depth of that token bucket, frames (default: 100)")
    p.add_argument("--outer-tpid", choices=("auto", "0x8100", "0x88a8"), default="auto",
                   help="TPID to put back for the outer VLAN tag the kernel strips, where the receive path "
                        "reports none; auto: the kernel's tp_vlan_tpid, else 0x88a8 when an inner tag "
                        "follows and 0x8100 when not (default: auto)")
    p.add_argument("--duration", type=positive_seconds, metavar="SECONDS", help="stop after this long")
    p.add_argument("--interval", type=positive_seconds, default=1.0, metavar="SECONDS",
                   help="seconds between stats lines (default: 1)")
    p.add_argument("--json", action="store_true", help="print the supervisor's counter snapshot as JSON lines")
    p.add_argument("--ready-fd", type=int_range(0, 1 << 20, "ready fd"), metavar="FD",
                   help="write 'READY\\n' to this fd when every worker is ready, then close it")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="log level on stderr (default: info)")
    add_metrics_option(p)
    return p


def format_line(snap: dict) -> str:
    """The per-interval line: ``padi/pado/padr/pads/sessions #0:a/b/c/d/e ... total:...``, then any
    non-zero error counters, per worker, and the interface's receive drops (frames)."""
    cols = ("padi", "pado", "padr", "pads", "sessions")
    n = len(snap["padi"])
    parts = ["padi/pado/padr/pads/sessions"]
    parts += [f"#{w}:" + "/".join(str(snap[c][w]) for c in cols) for w in range(n)]
    parts.append("total:" + "/".join(str(sum(snap[c])) for c in cols))
    for name in ("pads_error", "bad_cookie", "malformed", "padt_rx", "padt_tx", "echo", "echo_tx", "expired",
                 "replaced", "padt_ratelimited", "tagged", "drops", "restarts", "handler_errors", "tx_errors"):
        vals = snap.get(name) or []
        if any(vals):
            parts.append(f"{name} " + " ".join(f"#{w}:{v}" for w, v in enumerate(vals) if v) + f" (total:{sum(vals)})")
    if snap.get("if_rx_dropped"):
        parts.append(f"if_rx_dropped:{snap['if_rx_dropped']}")
    if snap.get("link", "up") != "up" or snap.get("link_flaps"):  # pfrps.linkwatch, as pfrps's line
        parts.append(f"link:{snap['link']} link_flaps:{snap.get('link_flaps', 0)}")
    return " ".join(parts)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``pfrps-ac``; return the exit status (0 ok, 1 runtime failure, 2 bad input)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, PROG)
    log = logging.getLogger("pfrps")
    sup: Optional[Supervisor] = None
    try:
        services = parse_service_names(args.services)
        if len(services) > MAX_SERVICES:
            raise UsageError(f"{len(services)} service names given", hint=f"offer at most {MAX_SERVICES}")
        hash_alg = parse_hash_alg(args.hash_alg)  # argument errors before looking at the system
        if len(set(args.interfaces)) != len(args.interfaces):
            dup = next(i for i in args.interfaces if args.interfaces.count(i) > 1)
            raise UsageError(f"interface {dup} is given more than once", hint="name each interface once (-i IF1 -i IF2)")
        port_macs: dict[int, bytes] = {}
        links = []
        for name in args.interfaces:
            link = check_interface(name)
            try:
                port_mac = parse_mac(link.mac)
            except UsageError:
                raise UsageError(f"interface {name!r} has no Ethernet address",
                                 hint="serve an Ethernet interface") from None
            if port_mac[0] & 1:
                raise UsageError(f"interface {name!r} has a multicast address {link.mac}",
                                 hint="give the interface a unicast MAC")
            port_macs[link.ifindex] = port_mac
            links.append(link)
        link = links[0]
        mac = port_macs[link.ifindex]
        config = SupervisorConfig(
            interfaces=tuple(args.interfaces),
            workers=args.workers,
            hash_alg=hash_alg,
            ethertypes=(ETH_P_PPP_DISC, ETH_P_PPP_SES),
            steering=args.steering,
            user=args.user,
            app_counters=AC_COUNTERS,
            app_gauges=AC_GAUGES,
            metrics=args.metrics,
            app_name="pfrps_ac",
            app_help=AC_METRICS_HELP,
        )
        config.validate()
        # The cookie secret is made here, once, before the workers fork: every worker (and any
        # restarted one) verifies cookies that any other sent.
        ac = AccessConcentrator(ACConfig(mac=mac, ac_name=args.ac_name.encode("utf-8", "surrogateescape"),
                                         services=services, secret=os.urandom(32), encoder=args.encoder,
                                         max_frame=14 + min(lk.mtu or 1500 for lk in links),
                                         max_sessions=args.max_sessions,
                                         sessions_per_mac=args.sessions_per_mac, echo_interval=args.echo_interval,
                                         echo_misses=args.echo_misses, cookie_window=args.cookie_window,
                                         padt_rate=args.padt_rate, padt_burst=args.padt_burst,
                                         outer_tpid=_TPIDS[args.outer_tpid],
                                         port_macs=port_macs if len(port_macs) > 1 else {}), args.workers)
        sup = Supervisor(config, handler=ac.handle, on_start=ac.on_start, on_stop=ac.on_stop)
        seconds = sup.start()
        offered = ", ".join(s.decode("utf-8", "replace") for s in services) if services else "any service"
        log.info("%s", sup.describe())
        log.info("AC %r (%s) serving %s with %s replies; %d workers ready in %.3f s; Hit Ctrl-C to end.",
                 args.ac_name, link.mac, offered, args.encoder, args.workers, seconds)
        keepalive = (f"keepalive every {args.echo_interval:g} s, expiry after {args.echo_misses} misses"
                     if args.echo_interval else "no keepalive")
        log.info("AC bounds: %s sessions per worker, %d per MAC; %s; cookie window %g s; PADT to unknown "
                 "sessions at most %g/s (burst %d) per worker", args.max_sessions or "65534/N", args.sessions_per_mac,
                 keepalive, args.cookie_window, args.padt_rate, args.padt_burst)
        if sup.metrics_endpoint is not None:
            log.info("Prometheus metrics on %s", sup.metrics_endpoint.url)
        signal_ready(args.ready_fd)

        def emit() -> None:
            snap = sup.snapshot()
            if args.json:
                from pfrps.stats import dumps  # noqa: PLC0415

                print(dumps(snap), flush=True)
            else:
                print(format_line(snap), flush=True)

        return sup.run(emit, interval=args.interval, duration=args.duration)
    except PfrpsError as exc:
        return exc.report(PROG)
    except KeyboardInterrupt:
        return 0
    finally:
        if sup is not None:
            sup.close()


if __name__ == "__main__":
    sys.exit(main())
