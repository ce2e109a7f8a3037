"""Source-MAC sets for injected traffic, as ``(n, 6)`` uint8 numpy arrays.

``random`` (default): first byte 0x02 (locally administered, unicast), five random bytes.
``sequential``: base, base+1, base+2, ... (the low 40 bits count up).
``stride``: base, base+k, base+2k, ... (CPE-style blocks: one MAC in k per subscriber).
``file``: one MAC per line from a file (``#`` comments and blank lines skipped), cycled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import UsageError
from ..hashing import as_mac_array, parse_mac

__all__ = ["random_macs", "sequential_macs", "stride_macs", "file_macs", "mac_set", "MAC_SETS"]

MAC_SETS = ("random", "sequential", "stride", "file")


def random_macs(count: int, seed: Optional[int] = None, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """``count`` random locally administered unicast MACs (first byte 0x02): ``(count, 6)`` uint8.

    The same ``seed`` gives the same sequence, whatever the batch sizes used to draw it.
    """
    rng = rng if rng is not None else np.random.default_rng(seed)
    macs = np.empty((count, 6), dtype=np.uint8)
    macs[:, 0] = 0x02
    macs[:, 1:] = rng.integers(0, 256, size=(count, 5), dtype=np.uint8)
    return macs


def _from_ints(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.uint64)
    shifts = np.arange(40, -8, -8, dtype=np.uint64)
    return ((values[:, None] >> shifts) & np.uint64(0xFF)).astype(np.uint8)


def sequential_macs(count: int, base: str = "02:00:00:00:00:01", stride: int = 1) -> np.ndarray:
    """``base + i * stride`` for i in 0..count-1, wrapping in the low 40 bits: ``(count, 6)`` uint8.

    Raises:
        UsageError: malformed ``base``, a multicast ``base``, or ``stride`` < 1.
    """
    b = parse_mac(base)
    if b[0] & 1:
        raise UsageError(f"base MAC {base} is multicast", hint="use a unicast base such as 02:00:00:00:00:01")
    if stride < 1:
        raise UsageError(f"stride {stride} is below 1", hint="use --stride 1 or more")
    first = int.from_bytes(b, "big")
    low = (first & ((1 << 40) - 1)) + np.arange(count, dtype=np.uint64) * np.uint64(stride)
    low &= np.uint64((1 << 40) - 1)
    return _from_ints(low | np.uint64(first & ~((1 << 40) - 1)))


def stride_macs(count: int, base: str = "02:00:00:00:00:00", stride: int = 8) -> np.ndarray:
    """CPE-style blocks: ``base + i * stride`` (default stride 8): ``(count, 6)`` uint8."""
    return sequential_macs(count, base, stride)


def file_macs(path: str | Path, count: Optional[int] = None) -> np.ndarray:
    """MACs read from ``path`` (one per line), cycled or cut to ``count``: ``(count, 6)`` uint8.

    Raises:
        UsageError: unreadable file, a malformed line (named by number), or no MAC in it.
    """
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read MAC file {str(path)!r}: {exc.strerror}",
                         hint="give --mac-file a readable file with one MAC per line") from None
    rows = []
    for no, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            rows.append(parse_mac(text))
        except UsageError:
            raise UsageError(f"{path}:{no}: malformed MAC address {text!r}",
                             hint="write one MAC per line as aa:bb:cc:dd:ee:ff") from None
    if not rows:
        raise UsageError(f"MAC file {str(path)!r} holds no MAC address", hint="put one MAC per line in it")
    macs = as_mac_array(rows)
    if count is not None:
        macs = np.resize(macs, (count, 6))
    return macs


def mac_set(kind: str, count: int, seed: Optional[int] = None, base: Optional[str] = None, stride: int = 8,
            path: Optional[str] = None) -> np.ndarray:
    """Dispatch to one of :data:`MAC_SETS`; ``(count, 6)`` uint8."""
    if kind == "random":
        return random_macs(count, seed)
    if kind == "sequential":
        return sequential_macs(count, base or "02:00:00:00:00:01", 1)
    if kind == "stride":
        return stride_macs(count, base or "02:00:00:00:00:00", stride)
    if kind == "file":
        if not path:
            raise UsageError("--macs file needs --mac-file PATH", hint="name the file of MACs with --mac-file")
        return file_macs(path, count)
    raise UsageError(f"unknown MAC set {kind!r}", hint=f"use one of {', '.join(MAC_SETS)}")
