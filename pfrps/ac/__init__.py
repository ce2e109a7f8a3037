"""A PPPoE discovery access concentrator (RFC 2516) built only on pfrps's public API.

It is the worked example of embedding :class:`pfrps.Supervisor`: a frame handler, per-worker
state in ``ctx.storage``, replies through ``ctx.transmit`` and application counters through
``ctx.count``. Steering by source MAC keeps each subscriber on one worker, so no state is
shared between workers.

Modules:

:mod:`pfrps.ac.protocol`
    Pure functions: parse PPPoE frames (with a typed malformed reason), build PADO/PADS/PADT
    and LCP Echo-Reply, AC-Cookies, session-id partitions.
:mod:`pfrps.ac.server`
    :class:`AccessConcentrator`, the handler and worker hooks.
:mod:`pfrps.ac.cli`
    The ``pfrps-ac`` command (``python -m pfrps.ac``).
"""

from .protocol import Discovery, Malformed, Reason, Session, make_cookie, parse_frame, verify_cookie
from .server import AC_COUNTERS, AccessConcentrator, ACConfig

__all__ = [
    "AC_COUNTERS", "ACConfig", "AccessConcentrator",
    "Discovery", "Session", "Malformed", "Reason", "parse_frame", "make_cookie", "verify_cookie",
]
