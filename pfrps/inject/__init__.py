"""pfinject: a PPPoE traffic injector for pfrps (the seed's ``inject``, in Python).

Frames follow the seed's layout (RFC 2516 discovery header): 148 bytes, ethertype 0x8863,
ver/type 0x11, code 0x00, session id 0xcafe, length 128, 128 payload bytes of 0xff, and a
locally administered unicast source MAC (first byte 0x02) that changes per frame.

Public API: :func:`pfrps.inject.frames.build_template`, :func:`pfrps.inject.frames.fill_frames`,
the MAC sets of :mod:`pfrps.inject.macs`, :class:`pfrps.inject.txring.TxRing` (PACKET_TX_RING, the
default) and :class:`pfrps.inject.sender.Injector` (one ``send()`` per frame, ``--tx send``).
"""

from .frames import FRAME_LEN, build_template, fill_frames
from .macs import random_macs

__all__ = ["FRAME_LEN", "build_template", "fill_frames", "random_macs"]
