"""The TPACKET_V3 receive ring; it now lives in :mod:`pfrps.receive` beside the recv path.

This module keeps the old import path (``from pfrps.ring import RxRing, RingReceiver,
check_geometry``) working.
"""

from __future__ import annotations

from .receive import (DEFAULT_RETIRE_MS, MIN_FRAME_SIZE, TPACKET3_HDRLEN, TPACKET_V3,  # noqa: F401
                      RingReceiver, RxRing, check_architecture, check_geometry)

__all__ = ["RxRing", "RingReceiver", "check_geometry", "check_architecture", "TPACKET_V3",
           "TPACKET3_HDRLEN", "MIN_FRAME_SIZE", "DEFAULT_RETIRE_MS"]
