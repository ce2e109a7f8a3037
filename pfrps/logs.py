"""Logging for the CLIs and workers: ``<prog>: message`` lines, to stderr or a rotatable file.

A log file is written by the supervisor and by every worker through the descriptor each
inherited. After logrotate moves it away, SIGHUP makes each process open the new file
(the supervisor first; it hands the file to ``--user`` before passing SIGHUP on). A process
that cannot open the new file keeps writing to the one it has and says so once: logging
never raises into a worker's event loop.
"""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import WatchedFileHandler
from typing import Optional

from .errors import UsageError

__all__ = ["setup_logging", "reopen_log_files", "RotatableFileHandler"]


class RotatableFileHandler(WatchedFileHandler):
    """A ``WatchedFileHandler`` whose reopen never raises.

    The standard handler closes its stream before opening the new file, and lets
    ``PermissionError`` from ``os.stat`` or ``open`` escape from ``emit``; in a worker that
    ends the event loop. This one opens the new file first and swaps only on success;
    on ``OSError`` it keeps the old stream and writes one warning line into it.
    """

    def __init__(self, filename: str, prog: str = "pfrps") -> None:
        super().__init__(filename)
        self.prog = prog
        self._warned: Optional[int] = None

    def reopenIfNeeded(self) -> None:  # noqa: N802  (the stdlib's name)
        try:
            try:
                st = os.stat(self.baseFilename)
            except FileNotFoundError:
                st = None
            if st is not None and (st.st_dev, st.st_ino) == (self.dev, self.ino):
                return
            new = self._open()
        except OSError as exc:
            self._cannot_reopen(exc)
            return
        old, self.stream = self.stream, new
        self._warned = None
        self._statstream()
        if old is not None:
            try:
                old.flush()
                old.close()
            except OSError:
                pass

    def _cannot_reopen(self, exc: OSError) -> None:
        if self._warned == exc.errno or self.stream is None:
            return
        self._warned = exc.errno
        try:
            self.stream.write(f"{self.prog}: warning: cannot reopen log file {self.baseFilename}: "
                              f"{exc.strerror}; still writing to the file opened before\n")
            self.stream.flush()
        except OSError:
            pass


class _Formatter(logging.Formatter):
    def __init__(self, prog: str) -> None:
        super().__init__()
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        name = record.name if record.name.startswith("pfrps.w") else self.prog
        lvl = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        msg = f"{name}: {lvl}{record.getMessage()}"
        if record.exc_info and record.levelno >= logging.ERROR:
            msg += "\n" + self.formatException(record.exc_info)
        return msg


def setup_logging(level: str, prog: str = "pfrps", path: Optional[str] = None,
                  owner: Optional[tuple[int, int]] = None) -> None:
    """Log to stderr (or ``path``) as ``<prog>: message`` (workers as ``pfrps.w3: message``).

    A ``path`` gets a :class:`RotatableFileHandler` (reopened after rotation, and on SIGHUP)
    and is chowned to ``owner`` (uid, gid) so workers running as ``--user`` can reopen it.

    Raises:
        UsageError: the log file cannot be opened.
    """
    if path:
        try:
            handler: logging.Handler = RotatableFileHandler(path, prog)
            if owner is not None:
                os.chown(path, *owner)
        except OSError as exc:
            raise UsageError(f"cannot open log file {path!r}: {exc.strerror}",
                             hint="give --log-file a writable path") from None
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(prog))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def reopen_log_files() -> None:
    """Reopen every file log handler whose file was moved away (SIGHUP, after rotation).

    Never raises: a file that cannot be reopened is reported once into the old one.
    """
    for handler in logging.getLogger().handlers:
        if isinstance(handler, WatchedFileHandler):
            handler.acquire()
            try:
                handler.reopenIfNeeded()
            finally:
                handler.release()
