"""Helpers shared by the command-line tools (``pfrps``, ``pfrps-ac``, ``pfinject``, the demo):
an argparse parser with one-line errors, argparse converters, the ``--ready-fd`` signal, and
the one place a tool turns an error or an interrupt into its exit status."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
from typing import Callable, NoReturn, Optional

from .errors import PfrpsError, UsageError
from .logs import setup_logging

__all__ = ["ArgumentParser", "int_range", "positive_seconds", "seconds_or_off", "signal_ready", "wait_ready",
           "human_bytes", "setup_logging", "run_tool", "metrics_address", "add_metrics_option"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error and exit status 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} -h\n")


def int_range(lo: int, hi: int, what: str) -> Callable[[str], int]:
    """An argparse ``type=`` that takes an integer (0x.. allowed) in ``lo..hi``, naming ``what``."""
    def conv(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, not {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{what} {value} is out of range {lo}..{hi}")
        return value
    return conv


def _seconds(text: str) -> float:
    """``text`` as a float number of seconds; argparse.ArgumentTypeError when it is not a number."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, not {text!r}") from None


def positive_seconds(text: str) -> float:
    """An argparse ``type=`` for a duration in seconds: finite and above 0."""
    value = _seconds(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be above 0 and finite")
    return value


def seconds_or_off(text: str) -> float:
    """An argparse ``type=`` for a timer in seconds where 0 turns it off (``pfrps --watchdog``,
    ``pfrps-bng --echo-interval``): finite and 0 or above."""
    value = _seconds(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be 0 (off) or above, and finite")
    return value


_HOSTNAME = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?\Z")


def metrics_address(text: str) -> tuple[str, int]:
    """An argparse ``type=`` for ``--metrics``: ``HOST:PORT`` -> ``(host, port)``.

    HOST is an IPv4 address, an IPv6 address in brackets (``[::1]:9464``), or a host name;
    ``0.0.0.0`` / ``[::]`` listen on every address. PORT is 1..65535. The address is only
    checked for form here; binding it (in use, not local) is checked when the tool starts.
    """
    text = text.strip()
    example = "e.g. 127.0.0.1:9464, [::1]:9464 or 0.0.0.0:9464"
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise argparse.ArgumentTypeError(f"metrics address {text!r} is not [IPv6]:PORT ({example})")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{host!r} in metrics address {text!r} is not an IPv6 address") from None
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            what = "names only a port" if text.isdigit() else "has no port"
            raise argparse.ArgumentTypeError(f"metrics address {text!r} {what}: give HOST:PORT ({example})")
        if not host:
            raise argparse.ArgumentTypeError(f"metrics address {text!r} names no host: give the address to listen "
                                             f"on ({example}; 0.0.0.0 for every address)")
        if ":" in host:
            raise argparse.ArgumentTypeError(f"write the IPv6 address of {text!r} in brackets, e.g. [::1]:9464")
        if all(c.isdigit() or c == "." for c in host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{host!r} in metrics address {text!r} is not an IPv4 "
                                                 "address") from None
        elif not _HOSTNAME.match(host):
            raise argparse.ArgumentTypeError(f"{host!r} in metrics address {text!r} is not a host name or address")
    if not (port.isascii() and port.isdigit()):
        raise argparse.ArgumentTypeError(f"port {port!r} of metrics address {text!r} is not a number")
    number = int(port)
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port {number} of metrics address {text!r} is out of range 1..65535")
    return host, number


def add_metrics_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--metrics ADDR:PORT`` (``args.metrics``: ``(host, port)`` or None) to a tool's parser;
    give ``args.metrics`` to ``SupervisorConfig(metrics=...)``."""
    parser.add_argument("--metrics", type=metrics_address, default=None, metavar="ADDR:PORT",
                        help="serve Prometheus metrics (every counter, per worker) on http://ADDR:PORT/metrics, "
                             "e.g. 127.0.0.1:9464; [::1]:9464 for IPv6, 0.0.0.0:PORT for every address "
                             "(default: off)")


def signal_ready(fd: Optional[int]) -> None:
    """Write ``READY\\n`` to ``fd`` (``--ready-fd``) and close it; nothing when ``fd`` is None.

    Raises:
        UsageError: ``fd`` is not open for writing.
    """
    if fd is None:
        return
    try:
        os.write(fd, b"READY\n")
        os.close(fd)
    except OSError as exc:
        raise UsageError(f"cannot write to --ready-fd {fd}: {exc.strerror}",
                         hint="pass an fd that is open for writing") from None


def wait_ready(fd: int, timeout: float) -> bool:
    """The other end of :func:`signal_ready`: wait up to ``timeout`` seconds for ``READY`` on
    the read end ``fd`` of a ``--ready-fd`` pipe, then close ``fd``. True when it came; False
    on timeout or when the writer exited first (end of file)."""
    import selectors  # noqa: PLC0415

    sel = selectors.DefaultSelector()
    try:
        sel.register(fd, selectors.EVENT_READ)
        return bool(sel.select(timeout)) and os.read(fd, 16).startswith(b"READY")
    finally:
        sel.close()
        os.close(fd)


def human_bytes(n: float) -> str:
    """``4194304`` -> ``4.0 MiB`` (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def run_tool(prog: str, body: Callable[[], int], interrupted_status: int = 0) -> int:
    """Run a tool's ``body()`` and return its exit status: a :class:`PfrpsError` becomes its
    one-line report and exit status (2 for bad input, 1 otherwise); a KeyboardInterrupt (Ctrl-C
    before the tool's own signal handling is in place, e.g. during start-up) becomes
    ``interrupted_status`` with one line saying so."""
    try:
        return body()
    except PfrpsError as exc:
        return exc.report(prog)
    except KeyboardInterrupt:
        logging.getLogger(prog).info("interrupted during start-up; nothing left running")
        return interrupted_status
