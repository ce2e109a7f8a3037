"""``pfrps-xdp``: the seed documents' XDP and TC programs, one subcommand each, in the foreground.

Each subcommand module (listed in :data:`SUBCOMMANDS`) exposes ``register(subparsers)``, which
adds its subparser(s) with ``set_defaults(func=...)``; ``func(args) -> int`` runs it. Every
module is imported before any ``register`` runs, so a module may add labs to
:data:`pfrps.xdp.lab.LABS` at import time. Bad input is one line on stderr and exit status 2
(:meth:`pfrps.errors.PfrpsError.report`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Optional, Sequence

from ..cli import positive_seconds
from ..errors import PfrpsError, PrivilegeError
from ..logs import setup_logging
from .runner import StopSignals

__all__ = ["main", "build_parser", "add_common", "require_privileges", "SUBCOMMANDS", "PROG"]

PROG = "pfrps-xdp"
#: Subcommand modules, each with ``register(subparsers) -> None``.
SUBCOMMANDS = (
    "pfrps.xdp.l3fwd",
    "pfrps.xdp.broadcast",
    "pfrps.xdp.cloud",
    "pfrps.xdp.lb",
    "pfrps.xdp.lab",
)

EPILOG = """\
examples:
  pfrps-xdp l3fwd --mode fib -i uno -i dos                  # FIB lookup on each device (case04)
  pfrps-xdp l3fwd --mode map -i uno -r dos --src-mac 02:00:00:00:00:01 --dest-mac 02:00:00:00:00:02
  pfrps-xdp l3fwd --mode hardcoded -i dos -r uno --dest-mac 02:00:00:00:00:01
  pfrps-xdp pass -i veth0                                   # xdp_pass, for veth peers
  pfrps-xdp broadcast -i sw-uno -i sw-dos -i sw-gw [--xdp]   # case05, TC (default) or XDP
  pfrps-xdp lab case04 --mode fib                           # the seed's topology, checked with traffic
  pfrps-xdp lb -i veth6 --vip 10.0.0.10 --backend 10.0.0.2 --backend 10.0.0.3   # seed 002, Maglev
  pfrps-xdp l2fwd -i eth0 -i eth1 --config host.conf        # seed 003; then fdb|vm|acl add|del|show
  pfrps-xdp lab lb                                          # seed 002's testbed (also: lab cloud-host, seed 003)
  pfrps-xdp lab case05 --xdp

Every subcommand runs until SIGINT, SIGTERM or --duration, then detaches all it attached.
"""

_CAP_NET_ADMIN, _CAP_SYS_ADMIN, _CAP_BPF = 12, 21, 39


def add_common(parser: argparse.ArgumentParser) -> None:
    """Add the options every attaching subcommand has: ``--generic``, ``--duration SECONDS``,
    ``--interval SECONDS`` (default 2, as the seed's xdp_stats), ``--json``, ``--log-level``."""
    parser.add_argument("--generic", action="store_true",
                        help="attach XDP in generic (SKB) mode (default: native, the driver's own)")
    parser.add_argument("--duration", type=positive_seconds, metavar="SECONDS",
                        help="detach and exit after this long (default: until SIGINT/SIGTERM)")
    parser.add_argument("--interval", type=positive_seconds, default=2.0, metavar="SECONDS",
                        help="seconds between counter lines (default: 2)")
    parser.add_argument("--json", action="store_true", help="print the counters as JSON lines")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="log level (default: info)")


def build_parser() -> argparse.ArgumentParser:
    """The ``pfrps-xdp`` parser with every subcommand of :data:`SUBCOMMANDS` registered."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Attach the seed documents' XDP and TC programs (layer-3 forwarding, broadcast, ...) "
                    "with their counters, or rebuild the seeds' topologies and check them with traffic.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    modules = [importlib.import_module(name) for name in SUBCOMMANDS]
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in modules:
        mod.register(sub)
    return p


def require_privileges() -> None:
    """Require root, or CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN (capabilities(7)).

    Raises:
        PrivilegeError: missing; the message names what and how.
    """
    from ..privileges import effective_caps  # noqa: PLC0415

    caps = effective_caps()
    has = lambda cap: bool(caps >> cap & 1)  # noqa: E731
    missing = [name for name, ok in (("CAP_BPF", has(_CAP_BPF) or has(_CAP_SYS_ADMIN)),
                                     ("CAP_NET_ADMIN", has(_CAP_NET_ADMIN))) if not ok]
    if missing:
        raise PrivilegeError(f"{PROG} needs {' and '.join(missing)} to load and attach BPF programs "
                             f"(running as uid {os.geteuid()})",
                             hint="run it as root (sudo) or grant CAP_BPF and CAP_NET_ADMIN")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``pfrps-xdp``; return the exit status (0 ok, 1 failed checks or runtime failure, 2 bad input)."""
    with StopSignals() as stop:  # from here on SIGINT/SIGTERM end the run cleanly, never half-way
        args = build_parser().parse_args(argv)
        args.stop = stop
        try:
            setup_logging(args.log_level if hasattr(args, "log_level") else "info", prog=PROG)
            require_privileges()
            return args.func(args)
        except PfrpsError as exc:
            return exc.report(PROG)
        finally:
            logging.shutdown()


if __name__ == "__main__":
    sys.exit(main())
