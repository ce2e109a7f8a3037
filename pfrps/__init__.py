"""pfrps: receive packet steering for PF_PACKET sockets.

An eBPF program hashes each frame's Ethernet source MAC, so every subscriber always lands on
the same worker process; each worker runs a uvloop event loop and hands frames to your
handler. The public API, for programs that embed pfrps::

    from pfrps import Supervisor, SupervisorConfig

    def handler(frame, meta, ctx):          # frame: memoryview, meta: FrameMeta, ctx: WorkerContext
        ctx.count("seen")
        ctx.storage[bytes(frame[6:12])] = meta.timestamp   # per-subscriber state, no lock

    sup = Supervisor(SupervisorConfig("enp1s0", workers=8, app_counters=("seen",)), handler=handler)
    try:
        sup.start()                          # seconds until every worker is ready
        sup.run(lambda: print(sup.snapshot()["seen"]), interval=1.0, duration=10)
    finally:
        sup.close()

Names exported here:

* :class:`Supervisor` (:mod:`pfrps.supervisor`), :class:`SupervisorConfig` (:mod:`pfrps.config`);
* :class:`FrameMeta`, :class:`WorkerContext`, :data:`Handler` (:mod:`pfrps.worker`);
* the errors of :mod:`pfrps.errors` (:class:`PfrpsError` and its subclasses);
* :class:`LinkEvent` and :class:`InterfaceGoneError` (:mod:`pfrps.linkwatch`: the
  ``on_link_event`` hook's argument, and what :meth:`Supervisor.run` raises when the
  interface is removed).

The hashing predictors (which worker a MAC lands on, bit for bit as the BPF programs compute
it: :func:`pfrps.hashing.worker_for`, ``expected_counts``, ...) are tools for tests and
planning, not part of the handler API: import them from :mod:`pfrps.hashing`.

Importing :mod:`pfrps` is cheap: each name is imported on first use, and bcc (needed only to
compile the steering program) is imported by :meth:`Supervisor.start`, never at import time.
:mod:`pfrps.ac` is a worked example: a PPPoE access concentrator built on this API alone.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Supervisor": "supervisor",
    "SupervisorConfig": "config",
    "MAX_WORKERS": "config",
    "STEERING_MODES": "config",
    "FrameMeta": "worker",
    "WorkerContext": "worker",
    "Handler": "worker",
    "PfrpsError": "errors",
    "UsageError": "errors",
    "InterfaceError": "errors",
    "PrivilegeError": "errors",
    "BccMissingError": "errors",
    "KernelHeadersError": "errors",
    "BpfCompileError": "errors",
    "BpfLoadError": "errors",
    "TopologyError": "errors",
    "WorkerError": "errors",
    "InterfaceGoneError": "linkwatch",
    "LinkEvent": "linkwatch",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            value = version("pfrps")
        except PackageNotFoundError:
            value = "0+unknown"
    elif name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names resolve lazily
    from .errors import (BccMissingError, BpfCompileError, BpfLoadError, InterfaceError, KernelHeadersError,
                         PfrpsError, PrivilegeError, TopologyError, UsageError, WorkerError)
    from .config import MAX_WORKERS, STEERING_MODES, SupervisorConfig
    from .supervisor import Supervisor
    from .worker import FrameMeta, Handler, WorkerContext
