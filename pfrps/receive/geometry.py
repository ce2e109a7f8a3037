"""TPACKET_V3 ring geometry, checked the way the kernel will before any memory is asked for
(``packet_set_ring`` in net/packet/af_packet.c), and the architecture the ring reader needs."""

from __future__ import annotations

import errno
import mmap
import platform
from typing import Optional

from ..errors import UsageError
from ..kernel import ETH_HLEN, TPACKET3_HDRLEN, TPACKET_ALIGNMENT

__all__ = ["MIN_FRAME_SIZE", "DEFAULT_RETIRE_MS", "TSO_ARCHITECTURES", "check_geometry", "check_architecture"]

_ETH_HLEN = ETH_HLEN
#: Smallest ``frame_size`` accepted: a V3 header, room for an Ethernet header, aligned to 16.
MIN_FRAME_SIZE = (TPACKET3_HDRLEN + _ETH_HLEN + TPACKET_ALIGNMENT - 1) & ~(TPACKET_ALIGNMENT - 1)  # 96
#: Milliseconds after which the kernel hands a partly filled block to user space.
DEFAULT_RETIRE_MS = 10
_MAX_BLOCK_SIZE = 1 << 30   # the kernel wants tp_block_size to fit a positive int; 1 GiB is plenty
_U32_MAX = (1 << 32) - 1
#: Architectures whose memory model the ring's lock-free read state relies on.
TSO_ARCHITECTURES = ("x86_64",)


def check_geometry(block_size: int, blocks: int, frame_size: int, page_size: int = mmap.PAGESIZE) -> int:
    """Check a TPACKET_V3 ring geometry the way the kernel will (before any memory is asked for).

    Args:
        block_size: bytes per block; a positive multiple of ``page_size`` and of ``frame_size``,
            at most 1 GiB. The largest frame the ring can hold is ``block_size - 48`` bytes
            including its 68-byte header; longer frames are truncated (counted as truncated).
        blocks: number of blocks, 1 or more.
        frame_size: bytes; a multiple of 16 (TPACKET_ALIGNMENT), at least :data:`MIN_FRAME_SIZE`
            (96). V3 packs frames of any size into a block; the kernel still wants
            ``frame_nr = block_size // frame_size * blocks``.
        page_size: the system page size, bytes.

    Returns:
        ``frame_nr``, the frame count to give the kernel.

    Raises:
        UsageError: the first rule broken, with a one-line hint.
    """
    for name, value in (("block size", block_size), ("block count", blocks), ("frame size", frame_size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise UsageError(f"ring {name} {value!r} is not an integer", hint="give ring sizes as whole numbers")
    if blocks < 1:
        raise UsageError(f"ring block count {blocks} is below 1", hint="use at least 1 block (the default is 4 MiB / block size)")
    if block_size <= 0 or block_size % page_size:
        raise UsageError(f"ring block size {block_size} is not a positive multiple of the page size ({page_size} bytes)",
                         hint="use a power of two such as 262144 (256 KiB) or 65536 (64 KiB), the defaults")
    if block_size > _MAX_BLOCK_SIZE:
        raise UsageError(f"ring block size {block_size} is above {_MAX_BLOCK_SIZE} bytes (1 GiB)",
                         hint="use more, smaller blocks (e.g. 1 MiB each)")
    if frame_size % TPACKET_ALIGNMENT:
        raise UsageError(f"ring frame size {frame_size} is not a multiple of {TPACKET_ALIGNMENT} (TPACKET_ALIGNMENT)",
                         hint="use a power of two such as 2048")
    if frame_size < MIN_FRAME_SIZE:
        raise UsageError(f"ring frame size {frame_size} is below {MIN_FRAME_SIZE} bytes "
                         f"(a {TPACKET3_HDRLEN}-byte TPACKET_V3 header plus an Ethernet header)",
                         hint="use a power of two such as 2048")
    if frame_size > block_size:
        raise UsageError(f"ring frame size {frame_size} is larger than the block size {block_size}",
                         hint="use a frame size that divides the block size, such as 2048")
    if block_size % frame_size:
        raise UsageError(f"ring block size {block_size} is not a multiple of the frame size {frame_size}",
                         hint="use power-of-two sizes, e.g. block 1048576 and frame 2048")
    frame_nr = block_size // frame_size * blocks
    if frame_nr > _U32_MAX:
        raise UsageError(f"ring of {blocks} blocks of {block_size // frame_size} frames has more than 2^32-1 frames",
                         hint="use fewer blocks or a larger frame size")
    return frame_nr


def check_architecture(machine: Optional[str] = None) -> None:
    """Require an architecture where the ring's read state is safe (see the module docstring).

    Raises:
        UsageError: ``machine`` (default: this host's) is not x86-64.
    """
    machine = machine or platform.machine()
    if machine not in TSO_ARCHITECTURES:
        raise UsageError(f"the TPACKET_V3 ring reader assumes x86-64 memory ordering (TSO); this is {machine}",
                         code=errno.ENOTSUP, hint="use --rx recv on this architecture")
