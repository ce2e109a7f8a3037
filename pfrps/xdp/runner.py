"""Run an attached program in the foreground, like ``xdp-bench`` and bcc's tools.

:func:`run_foreground` prints a startup line, then the counters every ``--interval`` seconds
until SIGINT, SIGTERM or ``--duration``, then detaches everything (:class:`Attachments`) and
returns 0. :class:`StopSignals` turns SIGINT/SIGTERM into an event instead of an exception:
installed by ``pfrps-xdp`` before anything is attached, so a signal that arrives while a
program compiles or attaches is kept and ends the run as soon as it starts, and a second
signal while detaching is ignored (it cannot interrupt the clean-up half-way). Programs are
attached through BPF links, which the kernel detaches when the process dies however it dies
(:mod:`pfrps.xdp.attach`); on a kernel without them (netlink attachment, which outlives its
process) this clean exit is what keeps nothing behind.
"""

from __future__ import annotations

import argparse
import json as jsonlib
import logging
import signal
import sys
import threading
import time
from typing import Callable, Sequence

from ..cliutil import positive_seconds
from .attach import Attachments

__all__ = ["StopSignals", "add_common", "run_foreground", "run_xdp", "stats_table"]

log = logging.getLogger("pfrps.xdp")


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


class StopSignals:
    """SIGINT and SIGTERM set :attr:`event` (and are then ignored) while installed.

    Use as a context manager (restores the previous handlers); :meth:`wait` sleeps until the
    event or a timeout. Only the main thread can install signal handlers (signal(2)).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    def _handler(self, signum, _frame) -> None:
        self.signum = signum
        self.event.set()

    def install(self) -> "StopSignals":
        """Install the handlers (main thread only)."""
        for s in self.SIGNALS:
            self._old[s] = signal.signal(s, self._handler)
        return self

    def ignore(self) -> None:
        """Ignore further SIGINT/SIGTERM (while cleaning up)."""
        for s in self.SIGNALS:
            signal.signal(s, signal.SIG_IGN)

    def restore(self) -> None:
        """Put the previous handlers back."""
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()

    def wait(self, timeout: float | None) -> bool:
        """Sleep up to ``timeout`` seconds (None: forever); True when a stop signal came."""
        return self.event.wait(timeout)

    @property
    def stopped(self) -> bool:
        """True once SIGINT or SIGTERM arrived."""
        return self.event.is_set()

    def __enter__(self) -> "StopSignals":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()


def run_foreground(att: Attachments, sample: Callable[[float], list[str] | dict], *, interval: float,
                   duration: float | None, json: bool, prog: str = "pfrps-xdp", startup: str = "",
                   stop: StopSignals | None = None, out=None) -> int:
    """Print ``startup``, then ``sample(elapsed)`` every ``interval`` seconds until a stop signal
    or ``duration`` seconds, print a last sample, detach everything in ``att`` and return 0.

    Args:
        att: what to detach at the end (always closed, also on errors).
        sample: called with the seconds since the start; returns text lines, or a dict
            printed as one JSON line (with ``elapsed`` added) when ``json`` is set.
        interval: seconds between samples (frames/s are measured over this period).
        duration: seconds to run, or None for until SIGINT/SIGTERM.
        json: print dicts as JSON lines.
        prog: the program name for the startup and closing lines (on stderr).
        startup: the startup line's text (``Hit Ctrl-C to end.`` is appended).
        stop: the run's :class:`StopSignals` (installed here when None).
        out: stream for the samples (default stdout).

    Returns:
        0.
    """
    out = out or sys.stdout
    own = stop is None
    stop = stop or StopSignals().install()
    t0 = time.monotonic()
    try:
        print(f"{prog}: {startup}{'; ' if startup else ''}Hit Ctrl-C to end.", file=sys.stderr, flush=True)
        end = t0 + duration if duration else None
        while True:
            wait = interval if end is None else min(interval, end - time.monotonic())
            if wait <= 0 or stop.wait(wait) or (end is not None and time.monotonic() >= end):
                break
            _emit(sample(time.monotonic() - t0), json, time.monotonic() - t0, out)
        _emit(sample(time.monotonic() - t0), json, time.monotonic() - t0, out)
    finally:
        stop.ignore()  # a second Ctrl-C must not cut the detach short
        att.close()
        if own:
            stop.restore()
    why = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}.get(stop.signum, "--duration")
    print(f"{prog}: {why}: detached everything after {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    return 0


def _emit(result: list[str] | dict, json: bool, elapsed: float, out) -> None:
    if isinstance(result, dict):
        if json:
            print(jsonlib.dumps({"elapsed": round(elapsed, 3), **result}), file=out, flush=True)
        else:
            print(jsonlib.dumps(result), file=out, flush=True)
    else:
        for line in result:
            print(line, file=out)
        out.flush()


def stats_table(mod, labels=None):
    """A :class:`pfrps.xdp.counters.CounterTable` over ``mod``'s ``xdp_stats_map`` (bpf/xdp_stats.h),
    rows labelled by XDP action (or ``labels``)."""
    from .counters import XDP_ACTIONS, CounterTable, percpu_reader  # noqa: PLC0415

    labels = tuple(labels or XDP_ACTIONS)
    return CounterTable(percpu_reader(mod.table("xdp_stats_map"), len(labels)), labels)


def run_xdp(args, source: str, func: str, ifnames: Sequence[str], *, cflags: Sequence[str] = (),
            what: str = "", setup: Callable[[object, dict[str, int]], None] | None = None,
            prog_type: int | None = None, labels=None) -> int:
    """The common body of an XDP subcommand: compile ``bpf/<source>``, load ``func``, call
    ``setup(mod, {ifname: ifindex})`` (fill maps) and attach to every interface of ``ifnames``
    (native, or generic with ``--generic``; TC ingress for ``prog_type`` SCHED_CLS), then
    :func:`run_foreground` with the seed's xdp_stats lines. Everything is undone on exit.

    Args:
        args: the parsed options of :func:`pfrps.xdp.cli.add_common` (plus ``args.stop``).
        source, func: the BPF C file in bpf/ and its entry point.
        ifnames: interfaces to attach to, in this namespace.
        cflags: ``-D`` knobs.
        what: the startup line's description (``l3fwd fib``).

    Returns:
        0 (errors raise :class:`pfrps.errors.PfrpsError`).
    """
    from .attach import BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_XDP, resolve_ifindex  # noqa: PLC0415
    from .counters import sampler  # noqa: PLC0415

    prog_type = BPF_PROG_TYPE_XDP if prog_type is None else prog_type
    ifindexes = {name: resolve_ifindex(name) for name in ifnames}  # bad names fail before compiling
    att = Attachments()
    ready = False
    try:
        mod = att.program(source, cflags)
        fd = att.load(mod, func, prog_type)
        if setup is not None:
            setup(mod, ifindexes)
        for name in ifnames:
            if prog_type == BPF_PROG_TYPE_SCHED_CLS:
                att.tc(name, fd, "ingress", func)
            else:
                att.xdp(name, fd, args.generic)
        table = stats_table(mod, labels)
        ready = True
    finally:
        if not ready:  # whatever failed half-way, nothing stays attached
            att.close()
    where = ", ".join(f"{n} (ifindex {i})" for n, i in ifindexes.items())
    mode = "TC ingress (cls_bpf direct-action)" if prog_type == BPF_PROG_TYPE_SCHED_CLS \
        else ("generic" if args.generic else "native") + " XDP"
    return run_foreground(att, sampler(table, args.json), interval=args.interval, duration=args.duration,
                          json=args.json, startup=f"{what or func} on {where}, {mode}; counters every "
                          f"{args.interval:g} s", stop=args.stop)
