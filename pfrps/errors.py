"""Typed errors for pfrps.

Every error carries an errno-style ``code`` and a ``msg``, the way pyroute2's
``NetlinkError`` does (``msg = msg or os.strerror(code)``), plus a ``hint`` that names the fix.
:class:`UsageError` and its subclasses are *bad input*: the command-line tools print them as
one line ``<prog>: error: <msg>; <hint>`` and exit with status 2 (see :func:`pfrps.cli.main`).
"""

from __future__ import annotations

import errno
import os
import sys

__all__ = [
    "PfrpsError",
    "UsageError",
    "InterfaceError",
    "PrivilegeError",
    "BccMissingError",
    "KernelHeadersError",
    "BpfCompileError",
    "BpfLoadError",
    "TopologyError",
    "WorkerError",
    "LabError",
]


class PfrpsError(Exception):
    """Base class of every error pfrps raises.

    Attributes:
        code: an errno value (0 when none applies).
        msg: what went wrong, one line; ``os.strerror(code)`` when not given.
        hint: how to fix it, one line, or ``""``.
    """

    exit_status = 1

    def __init__(self, msg: str | None = None, code: int = 0, hint: str = "") -> None:
        self.code = code
        self.msg = msg or (os.strerror(code) if code else self.__class__.__name__)
        self.hint = hint
        super().__init__(self.msg)

    def report(self, prog: str) -> int:
        """Print ``<prog>: error: <message>; <fix>`` as one line on stderr; return :attr:`exit_status`."""
        print(f"{prog}: error: {self.one_line()}", file=sys.stderr)
        return self.exit_status

    def one_line(self) -> str:
        """The message and the fix on one line, as the command-line tools print it."""
        text = f"{self.msg}; {self.hint}" if self.hint else self.msg
        return " ".join(text.split())


class UsageError(PfrpsError):
    """Bad input from the user (arguments, files, environment): exit status 2."""

    exit_status = 2

    def __init__(self, msg: str | None = None, code: int = errno.EINVAL, hint: str = "") -> None:
        super().__init__(msg, code, hint)


class InterfaceError(UsageError):
    """The interface is missing, down, or not an Ethernet-like link."""

    def __init__(self, msg: str | None = None, code: int = errno.ENODEV, hint: str = "") -> None:
        super().__init__(msg, code, hint)


class PrivilegeError(UsageError):
    """The process lacks root or a capability (CAP_NET_RAW, CAP_BPF, CAP_NET_ADMIN)."""

    def __init__(self, msg: str | None = None, code: int = errno.EPERM, hint: str = "") -> None:
        super().__init__(msg, code, hint)


class BccMissingError(UsageError):
    """The ``bcc`` module (Debian's python3-bpfcc) cannot be imported."""

    def __init__(self, msg: str | None = None, code: int = errno.ENOENT, hint: str = "") -> None:
        super().__init__(msg, code, hint)


class KernelHeadersError(UsageError):
    """No kernel headers that bcc can compile against."""

    def __init__(self, msg: str | None = None, code: int = errno.ENOENT, hint: str = "") -> None:
        super().__init__(msg, code, hint)


class BpfCompileError(UsageError):
    """A BPF C file is missing or does not compile (``-b/--ebpf-rps``)."""


class BpfLoadError(PfrpsError):
    """The kernel refused a BPF program or map (verifier, limits)."""


class TopologyError(UsageError):
    """A network namespace or link of a test topology cannot be made (name taken, ...)."""

    def __init__(self, msg: str | None = None, code: int = errno.EEXIST, hint: str = "") -> None:
        super().__init__(msg, code, hint)


class WorkerError(PfrpsError):
    """A worker process failed to start or died in a way the supervisor cannot recover."""


class LabError(PfrpsError):
    """A program started in a test or benchmark lab (:mod:`pfrps.testing`) did not do what was
    waited for: not ready in time, exited, or its counters never showed the value asked for."""

    def __init__(self, msg: str | None = None, code: int = errno.ETIMEDOUT, hint: str = "") -> None:
        super().__init__(msg, code, hint)
