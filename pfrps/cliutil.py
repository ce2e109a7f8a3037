"""Helpers shared by the command-line tools (``pfrps``, ``pfrps-ac``, ``pfinject``, the demo):
an argparse parser with one-line errors, argparse converters, the ``--ready-fd`` signal, and
the one place a tool turns an error or an interrupt into its exit status."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Callable, NoReturn, Optional

from .errors import PfrpsError, UsageError
from .logs import setup_logging

__all__ = ["ArgumentParser", "int_range", "positive_seconds", "signal_ready", "wait_ready", "human_bytes",
           "setup_logging", "run_tool"]


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


def positive_seconds(text: str) -> float:
    """An argparse ``type=`` for a duration in seconds: finite and above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, not {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be above 0 and finite")
    return value


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
