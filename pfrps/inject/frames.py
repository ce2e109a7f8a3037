"""The injected frame: built once with scapy, then copied and patched with numpy in batches."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..kernel import ETH_P_8021AD, ETH_P_PPP_DISC

__all__ = ["FRAME_LEN", "PAYLOAD_LEN", "SESSION_ID", "build_template", "fill_frames"]

PAYLOAD_LEN = 128
SESSION_ID = 0xCAFE
FRAME_LEN = 14 + 6 + PAYLOAD_LEN  # 148 bytes
SRC_OFF = 6


def build_template(dst: str, src: str = "02:00:00:00:00:00", code: int = 0x00,
                   session_id: int = SESSION_ID, payload_len: int = PAYLOAD_LEN,
                   vlans: Sequence[tuple[int, int]] = ()) -> bytes:
    """The seed's PPPoE discovery frame (RFC 2516 section 4 header), ``14 + 4 * len(vlans) + 6 +
    payload_len`` bytes.

    Ethertype 0x8863, ver 1, type 1, ``code`` (0x00 by default, as the seed sends), session id
    0xcafe, length ``payload_len``, payload of 0xff bytes; behind the VLAN tags ``vlans``, outer
    first, each ``(TPID, VID)`` (0x88a8 an IEEE 802.1ad S-tag, 0x8100 an 802.1Q C-tag). The
    source MAC stays at offset 6 whatever the tags.
    """
    from scapy.layers.l2 import Dot1AD, Dot1Q, Ether  # noqa: PLC0415  (scapy import is slow)
    from scapy.layers.ppp import PPPoED  # noqa: PLC0415
    from scapy.packet import Raw  # noqa: PLC0415

    types = [t for t, _ in vlans] + [ETH_P_PPP_DISC]
    pkt = Ether(dst=dst, src=src, type=types[0])
    for (tpid, vid), nxt in zip(vlans, types[1:]):
        pkt = pkt / (Dot1AD if tpid == ETH_P_8021AD else Dot1Q)(vlan=vid, type=nxt)
    pkt = pkt / PPPoED(version=1, type=1, code=code, sessionid=session_id, len=payload_len) / Raw(
        b"\xff" * payload_len)
    return bytes(pkt)


def fill_frames(template: bytes, src_macs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Copies of ``template`` with source MACs ``src_macs``: ``(n, len(template))`` uint8.

    Args:
        template: the frame to copy.
        src_macs: ``(n, 6)`` uint8 source addresses.
        out: a ``(>= n, len(template))`` uint8 array to fill in place (rows 0..n-1), or None.
    """
    n = src_macs.shape[0]
    tmpl = np.frombuffer(template, dtype=np.uint8)
    if out is None:
        out = np.empty((n, tmpl.size), dtype=np.uint8)
    out[:n] = tmpl
    out[:n, SRC_OFF:SRC_OFF + 6] = src_macs
    return out[:n]
