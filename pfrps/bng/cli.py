"""``pfrps-bng``: a PPPoE BNG on pfrps workers, with an XDP session data plane.

Three commands (one program)::

    pfrps-bng -i ACCESS --uplink UPLINK -w N --pool CIDR ... --secrets FILE   # serve
    pfrps-bng show sessions [--json] [-i ACCESS]                              # list sessions
    pfrps-bng terminate --user U | --mac M | --ip A [-i ACCESS]               # end sessions

The running BNG serves management requests on an abstract unix socket named
``pfrps-bng/<ACCESS>`` (abstract names belong to the network namespace, so the management
commands talk to the BNG of their own namespace, and nothing is left on disk).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import os
import socket
import sys
from typing import Optional, Sequence

from pfrps.cliutil import (ArgumentParser, add_metrics_option, int_range, positive_seconds, seconds_or_off,
                           setup_logging)
from pfrps.errors import PfrpsError, UsageError
from pfrps.hashing import parse_mac
from pfrps.config import MAX_WORKERS

from .control import CONTROL_PREFIX, PROG, control_address

__all__ = ["main", "build_parser"]

EPILOG = """\
examples:
  pfrps-bng -i acc0 --uplink up0 -w 8 --pool 100.64.0.0/16 --secrets /etc/ppp/pap-secrets
  pfrps-bng -i acc0 --uplink up0 -w 8 --pool 100.64.0.0/16 --pool 100.65.0.0/16 \\
            --ipv6-pool 2001:db8:100::/40 --dns 192.0.2.53 --dns 2001:db8::53 \\
            --auth chap --secrets /etc/ppp/chap-secrets --ac-name bng1 --service-name internet
  pfrps-bng -i acc0 --uplink up0 -w 4 --pool 100.64.0.0/24 --secrets s.txt --generic --json
  pfrps-bng -i acc0 --uplink up0 -w 8 --pool 100.64.0.0/16 --radius 192.0.2.10 --radius 192.0.2.11:1812 \
            --radius-secret-file /etc/pfrps/radius-secret --acct-interim 300 --nas-identifier bng1
  pfrps-bng show sessions
  pfrps-bng show sessions --json
  pfrps-bng terminate --user alice
  pfrps-bng terminate --ip 100.64.0.7

Every subscriber MAC is steered to one worker, which keeps its PPPoE and PPP sessions, its
own slice of each pool, and writes its own entries of the XDP session table. Session frames
of IPv4/IPv6 are decapsulated and routed in XDP (bpf_fib_lookup) on the access interface;
packets to a subscriber's address are encapsulated in XDP on the uplink. Control traffic
(LCP, PAP, CHAP, IPCP, IPv6CP, router solicitations) reaches the workers.
"""


def _pool4(text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--pool {text!r} is not an IPv4 network ({exc})") from None


def _pool6(text: str) -> ipaddress.IPv6Network:
    try:
        net = ipaddress.IPv6Network(text, strict=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--ipv6-pool {text!r} is not an IPv6 prefix ({exc})") from None
    if net.prefixlen > 64:
        raise argparse.ArgumentTypeError(f"--ipv6-pool {text} is longer than /64; each subscriber gets a /64")
    return net


def _addr(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dns {text!r} is not an IPv4 or IPv6 address") from None


def _auth(text: str) -> tuple[str, ...]:
    methods = tuple(dict.fromkeys(m.strip().lower() for m in text.split(",") if m.strip()))
    if not methods or any(m not in ("pap", "chap") for m in methods):
        raise argparse.ArgumentTypeError(f"--auth {text!r}: use pap, chap, pap,chap or chap,pap")
    return methods


def build_parser() -> ArgumentParser:
    """The parser of the serving command (``pfrps-bng -i ... --uplink ...``)."""
    p = ArgumentParser(prog=PROG, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="A PPPoE BNG: discovery, LCP, PAP/CHAP, IPCP, IPv6CP on steered worker "
                                   "processes, and an XDP data plane. Also: pfrps-bng show sessions, "
                                   "pfrps-bng terminate.")
    p.add_argument("-i", "--interface", dest="access", action="append", required=True, metavar="ACCESS",
                   help="the access interface (subscribers' side); repeat for several access ports: the first "
                        "names the BNG (management socket, routes), every one gets the XDP access program")
    p.add_argument("--uplink", required=True, metavar="UPLINK", help="the uplink interface (needs an IPv4 address)")
    p.add_argument("-w", "--worker-count", dest="workers", type=int_range(1, MAX_WORKERS, "worker count"),
                   default=os.cpu_count() or 1, metavar="N", help=f"worker processes (default: CPUs, {os.cpu_count()})")
    p.add_argument("--pool", dest="pools", action="append", type=_pool4, required=True, metavar="CIDR",
                   help="IPv4 pool; repeat for more; each worker owns a disjoint slice")
    p.add_argument("--ipv6-pool", type=_pool6, metavar="PREFIX/LEN",
                   help="prefix of the subscribers' /64s (IPv6CP and a Router Advertisement); none: no IPv6CP")
    p.add_argument("--dns", action="append", type=_addr, default=[], metavar="ADDR",
                   help="DNS server: IPv4 ones go in IPCP (RFC 1877), IPv6 ones in the RA's RDNSS (RFC 8106)")
    p.add_argument("--auth", type=_auth, default=("pap", "chap"), metavar="pap|chap|pap,chap",
                   help="authentication protocols in order of preference (default: pap,chap)")
    p.add_argument("--secrets", action="append", default=[], metavar="FILE",
                   help="pppd-format pap-secrets/chap-secrets file (client server secret [addresses]); repeatable; "
                        "with --radius too, a user listed here is decided here (the file first)")
    p.add_argument("--ac-name", default="pfrps-bng", metavar="NAME", help="AC-Name and CHAP name (default: pfrps-bng)")
    p.add_argument("--service-name", dest="services", action="append", default=[], metavar="S",
                   help="a Service-Name to offer; repeat for more (default: any)")
    p.add_argument("--mru", type=int_range(64, 1492, "MRU"), default=1492, metavar="N",
                   help="the MRU we ask for and the largest we accept, bytes (default: 1492)")
    p.add_argument("--echo-interval", type=seconds_or_off, default=30.0, metavar="S",
                   help="LCP Echo-Request to each session silent this long; 0: none (default: 30)")
    p.add_argument("--echo-misses", type=int_range(1, 255, "echo misses"), default=3, metavar="N",
                   help="unanswered Echo-Requests after which a session ends with PADT (default: 3)")
    p.add_argument("-a", "--hash-alg", dest="hash_alg", default="0", metavar="ALG",
                   help="0/mac_hash, 1/mac_jhash, 2/jhash_oaat (default: 0)")
    p.add_argument("--generic", action="store_true", help="attach the XDP data plane in generic (SKB) mode")
    p.add_argument("--json", action="store_true", help="print counter snapshots as JSON lines")
    p.add_argument("--ready-fd", type=int_range(0, 1 << 20, "ready fd"), metavar="FD",
                   help="write 'READY\\n' to this fd when every worker is ready, then close it")
    p.add_argument("--duration", type=positive_seconds, metavar="S", help="stop after this long")
    p.add_argument("--interval", type=positive_seconds, default=1.0, metavar="S", help="seconds between stats lines")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_metrics_option(p)
    from .radius import add_radius_arguments  # noqa: PLC0415

    add_radius_arguments(p)
    return p


def build_mgmt_parser(cmd: str) -> ArgumentParser:
    """The parser of ``pfrps-bng show sessions`` / ``pfrps-bng terminate``."""
    p = ArgumentParser(prog=f"{PROG} {cmd}")
    p.add_argument("-i", "--interface", dest="access", metavar="ACCESS",
                   help="the BNG serving this access interface (default: the only one in this namespace)")
    if cmd == "show":
        p.add_argument("what", choices=("sessions",))
        p.add_argument("--json", action="store_true", help="one JSON document")
    else:
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--user", help="every session of this user name")
        g.add_argument("--mac", help="every session of this client MAC")
        g.add_argument("--ip", help="the session holding this IPv4 address or IPv6 address/prefix")
    return p


def running_instances() -> list[str]:
    """Access interfaces of the BNGs running in this network namespace (/proc/net/unix)."""
    found = []
    try:
        with open("/proc/net/unix") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 8 else ""
                if path.startswith("@" + CONTROL_PREFIX):
                    found.append(path[1 + len(CONTROL_PREFIX):])
    except OSError:
        pass
    return sorted(set(found))


def _ask(access: Optional[str], request: dict, timeout: float = 10.0) -> dict:
    if access is None:
        running = running_instances()
        if not running:
            raise UsageError("no pfrps-bng is running in this network namespace",
                             code=errno.ENOENT, hint="start one, or run this in the BNG's namespace")
        if len(running) > 1:
            raise UsageError(f"{len(running)} pfrps-bng instances run here ({', '.join(running)})",
                             hint="pick one with -i ACCESS")
        access = running[0]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(control_address(access))
        s.sendall(json.dumps(request).encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            chunks.append(b)
    except ConnectionRefusedError:
        raise UsageError(f"no pfrps-bng serves {access} in this network namespace", code=errno.ENOENT,
                         hint="check -i, or run this in the BNG's namespace") from None
    except OSError as exc:
        raise PfrpsError(f"cannot talk to the pfrps-bng serving {access}: {exc.strerror or exc}",
                         code=exc.errno or errno.EIO) from None
    finally:
        s.close()
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        raise PfrpsError("the BNG's answer is not JSON", code=errno.EPROTO) from None


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def format_sessions(sessions: list[dict]) -> str:
    """``pfrps-bng show sessions`` as a table, one line per session, and a total line."""
    head = f"{'MAC':17} {'VLAN':9} {'SID':>5} {'USER':16} {'IPV4':15} {'IPV6 PREFIX':24} {'UPTIME':>8} " \
           f"{'UP PKTS':>9} {'UP BYTES':>9} {'DN PKTS':>9} {'DN BYTES':>9}"
    lines = [head]
    for s in sessions:
        vlan = ".".join(str(v) for v in s.get("vlan") or []) or "-"
        lines.append(f"{s['mac']:17} {vlan:9} {s['session_id']:>5} {s['user'][:16]:16} {s['ipv4'] or '-':15} "
                     f"{s['ipv6_prefix'] or '-':24} {s['uptime']:>7.0f}s {s['up_packets']:>9} "
                     f"{_fmt_bytes(s['up_bytes']):>9} {s['down_packets']:>9} {_fmt_bytes(s['down_bytes']):>9}")
    lines.append(f"{len(sessions)} sessions")
    return "\n".join(lines)


def mgmt_main(argv: Sequence[str]) -> int:
    """``pfrps-bng show sessions`` / ``pfrps-bng terminate``: exit 0, 1 (nothing matched) or 2."""
    cmd = argv[0]
    args = build_mgmt_parser(cmd).parse_args(argv[1:])
    try:
        if cmd == "show":
            res = _ask(args.access, {"op": "list"})
            sessions = sorted(res.get("sessions", []), key=lambda s: (s["worker"], s["session_id"]))
            if args.json:
                print(json.dumps({"sessions": sessions, "workers_missing": res.get("workers_missing", []),
                                  "dataplane_entries": res.get("dataplane_entries")}))
            else:
                print(format_sessions(sessions))
            if res.get("workers_missing"):
                print(f"{PROG}: warning: workers {res['workers_missing']} did not answer", file=sys.stderr)
            return 0
        if args.mac is not None:
            try:
                key = {"mac": parse_mac(args.mac).hex(":")}
            except UsageError:
                raise UsageError(f"--mac {args.mac!r} is not a MAC address", hint="write it like 02:00:00:00:00:01") \
                    from None
        elif args.ip is not None:
            try:
                key = {"ip": str(ipaddress.ip_address(args.ip.split("/")[0]))}
            except ValueError:
                raise UsageError(f"--ip {args.ip!r} is not an IP address", hint="give an IPv4 or IPv6 address") \
                    from None
        else:
            key = {"user": args.user}
        res = _ask(args.access, {"op": "terminate", **key})
        n = int(res.get("terminated", 0))
        what = " ".join(f"{k} {v}" for k, v in key.items())
        print(f"{PROG}: terminated {n} session{'s' if n != 1 else ''} ({what})")
        return 0 if n else 1
    except PfrpsError as exc:
        return exc.report(PROG)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``pfrps-bng`` (or its management commands); return the exit status (0, 1, 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("show", "terminate"):
        return mgmt_main(argv)
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, PROG)
    from .runner import serve  # noqa: PLC0415

    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
