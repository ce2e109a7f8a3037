"""The injected frame: built once with scapy, then copied and patched with numpy in batches."""

from __future__ import annotations

import numpy as np

__all__ = ["FRAME_LEN", "PAYLOAD_LEN", "SESSION_ID", "build_template", "fill_frames"]

PAYLOAD_LEN = 128
SESSION_ID = 0xCAFE
FRAME_LEN = 14 + 6 + PAYLOAD_LEN  # 148 bytes
SRC_OFF = 6


def build_template(dst: str, src: str = "02:00:00:00:00:00", code: int = 0x00,
                   session_id: int = SESSION_ID, payload_len: int = PAYLOAD_LEN) -> bytes:
    """The seed's PPPoE discovery frame (RFC 2516 section 4 header), ``14 + 6 + payload_len`` bytes.

    Ethertype 0x8863, ver 1, type 1, ``code`` (0x00 by default, as the seed sends), session id
    0xcafe, length ``payload_len``, payload of 0xff bytes.
    """
    from scapy.layers.l2 import Ether  # noqa: PLC0415  (scapy import is slow; only when building)
    from scapy.layers.ppp import PPPoED  # noqa: PLC0415
    from scapy.packet import Raw  # noqa: PLC0415

    pkt = Ether(dst=dst, src=src, type=0x8863) / PPPoED(
        version=1, type=1, code=code, sessionid=session_id, len=payload_len) / Raw(b"\xff" * payload_len)
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
