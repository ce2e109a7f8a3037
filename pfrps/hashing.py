"""Source-MAC hash algorithms: the numpy reference of what ``bpf/pfrps_hash.h`` computes.

The three algorithms of the seed's ``bpf_rps.bpf`` (little-endian host), bit for bit:

``mac_hash`` (0)
    Shift the six MAC bytes into a 32-bit value one byte at a time; bytes 2..5 remain.
    52:54:00:84:d7:ff -> 0x0084d7ff.
``mac_jhash`` (1)
    The kernel's ``jhash_2words(a, b, 0)`` (lookup3 final mix, initval 0xdeadbeef + 8), with
    ``a`` = MAC bytes 0..3 and ``b`` = bytes 4..5, each read as a little-endian integer.
    52:54:00:84:d7:ff -> 0x1978000e.
``jhash_oaat`` (2)
    Bob Jenkins' one-at-a-time hash over the six bytes, starting from 0xdeadbeef.
    52:54:00:84:d7:ff -> 0xbdaa1132.

A frame goes to worker ``hash % worker_count``. Every function here is vectorised: it takes
``macs`` as an ``(n, 6)`` uint8 array (or anything :func:`as_mac_array` accepts) and returns an
``(n,)`` uint32 array.
"""

from __future__ import annotations

import re
from typing import Iterable

import numpy as np

from .errors import UsageError

__all__ = [
    "ALGORITHMS",
    "HASH_FUNCTIONS",
    "parse_hash_alg",
    "parse_mac",
    "format_mac",
    "as_mac_array",
    "mac_hash",
    "mac_jhash",
    "jhash_oaat",
    "hash_macs",
    "worker_for",
    "expected_counts",
]

#: Algorithm ids as the BPF programs know them (``enum pfrps_hash_alg`` in bpf/pfrps.h).
ALGORITHMS: dict[str, int] = {"mac_hash": 0, "mac_jhash": 1, "jhash_oaat": 2}
_ALG_NAMES = {v: k for k, v in ALGORITHMS.items()}

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")
_U32 = np.uint32


def parse_hash_alg(value: str | int) -> int:
    """Return the algorithm id for ``value``: ``0``/``1``/``2`` or a name of :data:`ALGORITHMS`.

    Raises:
        UsageError: unknown algorithm.
    """
    text = str(value).strip().lower().replace("-", "_")
    if text.isdigit() and int(text) in _ALG_NAMES:
        return int(text)
    if text in ALGORITHMS:
        return ALGORITHMS[text]
    raise UsageError(
        f"unknown hash algorithm {value!r}",
        hint="use 0/mac_hash, 1/mac_jhash or 2/jhash_oaat",
    )


def alg_name(alg: int) -> str:
    """The name of algorithm id ``alg`` (``0`` -> ``"mac_hash"``)."""
    return _ALG_NAMES[alg]


def parse_mac(text: str) -> bytes:
    """Parse ``aa:bb:cc:dd:ee:ff`` (or ``-`` separated) into 6 bytes.

    Raises:
        UsageError: not six hex octets.
    """
    if not isinstance(text, str) or not _MAC_RE.match(text.strip()):
        raise UsageError(f"malformed MAC address {text!r}", hint="write it as six hex octets, e.g. 52:54:00:84:d7:ff")
    return bytes.fromhex(text.strip().replace(":", "").replace("-", ""))


def format_mac(mac: bytes | Iterable[int]) -> str:
    """Format 6 bytes as ``aa:bb:cc:dd:ee:ff``."""
    return ":".join(f"{b:02x}" for b in bytes(mac))


def as_mac_array(macs) -> np.ndarray:
    """Return ``macs`` as a C-contiguous ``(n, 6)`` uint8 array.

    Accepts an ``(n, 6)`` array, a single 6-byte ``bytes``, or an iterable of ``bytes``/strings.
    """
    if isinstance(macs, np.ndarray):
        arr = np.ascontiguousarray(macs, dtype=np.uint8)
    elif isinstance(macs, (bytes, bytearray)):
        arr = np.frombuffer(bytes(macs), dtype=np.uint8)
    else:
        rows = [parse_mac(m) if isinstance(m, str) else bytes(m) for m in macs]
        arr = np.frombuffer(b"".join(rows), dtype=np.uint8) if rows else np.empty((0, 6), np.uint8)
    arr = arr.reshape(-1, 6)
    return arr


def _rol(x: np.ndarray, k: int) -> np.ndarray:
    return (x << _U32(k)) | (x >> _U32(32 - k))


def jhash_final(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``__jhash_final(a, b, c)`` of the kernel's include/linux/jhash.h (lookup3's final mix),
    vectorised: three ``uint32`` arrays of one shape (wrapping arithmetic); returns ``c``, a new
    ``uint32`` array of that shape. The BPF side is ``pfrps_jhash_final`` in bpf/pfrps_hash.h."""
    a, b, c = a.astype(_U32), b.astype(_U32), c.astype(_U32)
    with np.errstate(over="ignore"):
        c ^= b; c -= _rol(b, 14)  # noqa: E702
        a ^= c; a -= _rol(c, 11)  # noqa: E702
        b ^= a; b -= _rol(a, 25)  # noqa: E702
        c ^= b; c -= _rol(b, 16)  # noqa: E702
        a ^= c; a -= _rol(c, 4)  # noqa: E702
        b ^= a; b -= _rol(a, 14)  # noqa: E702
        c ^= b; c -= _rol(b, 24)  # noqa: E702
    return c


def mac_hash(macs) -> np.ndarray:
    """The seed's ``mac_hash``: ``(n, 6)`` uint8 -> ``(n,)`` uint32 (MAC bytes 2..5, big-endian)."""
    m = as_mac_array(macs).astype(_U32)
    return (m[:, 2] << _U32(24)) | (m[:, 3] << _U32(16)) | (m[:, 4] << _U32(8)) | m[:, 5]


def mac_jhash(macs) -> np.ndarray:
    """The kernel's ``jhash_2words(a, b, 0)`` over the MAC: ``(n, 6)`` uint8 -> ``(n,)`` uint32."""
    m = as_mac_array(macs).astype(_U32)
    a = m[:, 0] | (m[:, 1] << _U32(8)) | (m[:, 2] << _U32(16)) | (m[:, 3] << _U32(24))
    b = m[:, 4] | (m[:, 5] << _U32(8))
    with np.errstate(over="ignore"):
        iv = _U32(0xDEADBEEF + (2 << 2))
        a = a + iv
        b = b + iv
        c = np.full_like(a, iv)
    return jhash_final(a, b, c)


def jhash_oaat(macs) -> np.ndarray:
    """Jenkins one-at-a-time over the six MAC bytes from 0xdeadbeef: ``(n, 6)`` -> ``(n,)`` uint32."""
    m = as_mac_array(macs).astype(_U32)
    h = np.full(m.shape[0], 0xDEADBEEF, dtype=_U32)
    with np.errstate(over="ignore"):
        for i in range(6):
            h += m[:, i]
            h += h << _U32(10)
            h ^= h >> _U32(6)
        h += h << _U32(3)
        h ^= h >> _U32(11)
        h += h << _U32(15)
    return h


HASH_FUNCTIONS = {0: mac_hash, 1: mac_jhash, 2: jhash_oaat}


def hash_macs(macs, alg: int | str = 0) -> np.ndarray:
    """Hash ``macs`` (``(n, 6)`` uint8) with algorithm ``alg``: ``(n,)`` uint32."""
    return HASH_FUNCTIONS[parse_hash_alg(alg)](macs)


def worker_for(macs, worker_count: int, alg: int | str = 0) -> np.ndarray:
    """The worker id (``hash % worker_count``) that each MAC steers to: ``(n,)`` int64."""
    if worker_count < 1:
        raise UsageError(f"worker count {worker_count} is below 1", hint="use at least one worker")
    return (hash_macs(macs, alg) % _U32(worker_count)).astype(np.int64)


def expected_counts(macs, worker_count: int, alg: int | str = 0) -> np.ndarray:
    """Frames per worker when one frame is sent from each MAC: ``(worker_count,)`` int64."""
    return np.bincount(worker_for(macs, worker_count, alg), minlength=worker_count)
