"""``pfrps-xdp``: XDP and TC programs (router, broadcast switch, load balancer, cloud host), one
subcommand each, in the foreground, and ``pfrps-xdp lab NAME``: their topologies checked with traffic.

Each subcommand module (listed in :data:`SUBCOMMANDS`) exposes ``register(subparsers)``, which
adds its subparser(s) with ``set_defaults(func=...)``; ``func(args) -> int`` runs it. The labs
come from one list, :data:`LABS` (name, aliases: the seed case names, and the ``Lab`` class),
handed to :func:`pfrps.xdp.lab.register`. Bad input is one line on stderr and exit status 2
(:class:`pfrps.cliutil.ArgumentParser`, :meth:`pfrps.errors.PfrpsError.report`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Optional, Sequence

from ..cliutil import ArgumentParser
from ..errors import PfrpsError, PrivilegeError
from ..logs import setup_logging
from . import lab
from .runner import StopSignals

__all__ = ["main", "build_parser", "lab_classes", "require_privileges", "SUBCOMMANDS", "LABS", "PROG"]

PROG = "pfrps-xdp"
#: Subcommand modules, each with ``register(subparsers) -> None``.
SUBCOMMANDS = (
    "pfrps.xdp.l3fwd",
    "pfrps.xdp.broadcast",
    "pfrps.xdp.cloud",
    "pfrps.xdp.lb",
)
#: ``pfrps-xdp lab NAME``: ``(name, aliases, "module:Class")``, the one list of labs. The aliases
#: are the seed documents' case names.
LABS = (
    ("router", ("case04",), "pfrps.xdp.l3fwd:Case04Lab"),
    ("switch", ("case05",), "pfrps.xdp.broadcast:Case05Lab"),
    ("lb", (), "pfrps.xdp.lb_lab:LbLab"),
    ("cloud", ("cloud-host",), "pfrps.xdp.cloud_lab:CloudHostLab"),
)

EPILOG = """\
examples:
  pfrps-xdp l3fwd --mode fib -i uno -i dos                  # router: FIB lookup on each device
  pfrps-xdp l3fwd --mode map -i uno -r dos --src-mac 02:00:00:00:00:01 --dest-mac 02:00:00:00:00:02
  pfrps-xdp l3fwd --mode hardcoded -i dos -r uno --dest-mac 02:00:00:00:00:01
  pfrps-xdp pass -i veth0                                   # xdp_pass, for veth peers
  pfrps-xdp broadcast -i sw-uno -i sw-dos -i sw-gw [--xdp]   # broadcast switch, TC (default) or XDP
  pfrps-xdp lb -i veth6 --vip 10.0.0.10 --backend 10.0.0.2 --backend 10.0.0.3   # load balancer, Maglev
  pfrps-xdp l2fwd -i eth0 -i eth1 --config host.conf        # cloud host; then fdb|vm|acl add|del|show
  pfrps-xdp lab router --mode fib                           # a topology in namespaces, checked with traffic
  pfrps-xdp lab switch --xdp
  pfrps-xdp lab lb
  pfrps-xdp lab cloud

Every subcommand runs until SIGINT, SIGTERM or --duration, then detaches all it attached.
"""

_CAP_NET_ADMIN, _CAP_SYS_ADMIN, _CAP_BPF = 12, 21, 39


def build_parser() -> argparse.ArgumentParser:
    """The ``pfrps-xdp`` parser with every subcommand of :data:`SUBCOMMANDS` and ``lab`` with
    every lab of :data:`LABS` registered."""
    p = ArgumentParser(
        prog=PROG,
        description="Attach XDP and TC programs (a router, a broadcast switch, a load balancer, a cloud "
                    "host's L2 forwarding) with their counters, or build their topologies in namespaces "
                    "and check them with traffic.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    modules = [importlib.import_module(name) for name in SUBCOMMANDS]
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in modules:
        mod.register(sub)
    lab.register(sub, lab_classes())
    return p


def lab_classes() -> dict[str, tuple[tuple[str, ...], type]]:
    """:data:`LABS` imported: ``{name: (aliases, Lab subclass)}``, in the list's order."""
    out = {}
    for name, aliases, where in LABS:
        module, _, cls = where.partition(":")
        out[name] = (aliases, getattr(importlib.import_module(module), cls))
    return out


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
