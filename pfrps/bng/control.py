"""Where a running ``pfrps-bng`` takes management requests: an abstract unix socket per access
interface, bound by the server (:class:`pfrps.bng.runner.ControlSocket`) and reached by the
management commands (``pfrps-bng show|terminate``, :mod:`pfrps.bng.cli`). Abstract names belong
to the network namespace, so a command talks to the BNG of its own namespace and nothing is
left on disk.
"""

from __future__ import annotations

__all__ = ["PROG", "CONTROL_PREFIX", "control_address"]

PROG = "pfrps-bng"
#: abstract socket names are ``CONTROL_PREFIX + <access interface>`` (``@pfrps-bng/eth0`` in /proc/net/unix).
CONTROL_PREFIX = "pfrps-bng/"


def control_address(access: str) -> bytes:
    """The abstract unix socket name of the BNG serving ``access`` (leading NUL)."""
    return b"\0" + (CONTROL_PREFIX + access).encode()
