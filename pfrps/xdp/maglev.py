"""Maglev consistent hashing (as katran does it) and the load balancer's flow hash, with numpy.

A Maglev lookup table has a prime number M of entries, each naming a backend. Every backend
gets a permutation of 0..M-1 from two hashes of its identity (here its IPv4 address):
``offset = h1 % M`` and ``skip = h2 % (M - 1) + 1``, entry j of the permutation being
``(offset + j * skip) % M``. The backends then take turns claiming their next preferred entry
that is still free until the table is full, so each gets M/N entries (within one) and
removing one backend reassigns about 1/N of the entries: those it held, plus a few of the
others' as the turns shift (0.3350 of the table for 3 -> 2 backends, 0.1021 for 10 -> 9,
tested), the near-minimal disruption Maglev trades for its even balance (Eisenbud et al.,
"Maglev: A Fast and Reliable Software Network Load Balancer", NSDI 2016, section 3.4;
katran's ``MaglevBase::calculateMaglevTable``). A new flow goes to
``table[flow_hash(5-tuple) % M]``; ``bpf/xdp_lb.bpf.c`` holds the table in the array
``lb_ring`` and computes the same :func:`flow_hash` (``lb_flow_hash`` in ``bpf/lb.h``), so
tests predict the backend of every 5-tuple.

Backends are identified by address, not by position, so a backend keeps its permutation
whatever the others are: that is what makes changes move few flows.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Sequence

import numpy as np

from ..errors import UsageError
from ..hashing import jhash_final

__all__ = [
    "DEFAULT_RING_SIZE", "MAX_RING_SIZE", "check_ring_size", "is_prime", "backend_permutation",
    "maglev_table", "flow_hash", "ip_word", "port_word", "lookup", "moved",
]

#: katran's default table size (a prime); bpf/lb.h's LB_RING_SIZE default.
DEFAULT_RING_SIZE = 65537
_U32 = np.uint32
_JHASH_INITVAL = 0xDEADBEEF


def is_prime(n: int) -> bool:
    """True when ``n`` is a prime (trial division; table sizes are below 2**32)."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


#: Largest table accepted (a BPF array of 4-byte entries: 64 MiB).
MAX_RING_SIZE = 1 << 24


def check_ring_size(size: int) -> None:
    """Require a prime table size from 3 to :data:`MAX_RING_SIZE`.

    Raises:
        UsageError: it is not; the message suggests a prime.
    """
    if not isinstance(size, int) or size < 3 or size > MAX_RING_SIZE or not is_prime(size):
        raise UsageError(f"Maglev table size {size!r} is not a prime from 3 to {MAX_RING_SIZE}",
                         hint="use a prime such as 65537 (katran's default), 251 or 1009")


def backend_permutation(backend: str, size: int = DEFAULT_RING_SIZE) -> tuple[int, int]:
    """``(offset, skip)`` of ``backend``'s permutation of a table of ``size`` entries.

    The two hashes are the two halves of BLAKE2b-128 of the backend's address (4 bytes,
    network order): stable across runs and machines, independent of the other backends.

    Raises:
        UsageError: ``backend`` is not an IPv4 address, or ``size`` is not a prime.
    """
    check_ring_size(size)
    try:
        packed = ipaddress.IPv4Address(backend).packed
    except ValueError:
        raise UsageError(f"backend {backend!r} is not an IPv4 address", hint="give it as 10.0.0.2") from None
    digest = hashlib.blake2b(packed, digest_size=16, person=b"pfrps-maglev").digest()
    h1 = int.from_bytes(digest[:8], "little")
    h2 = int.from_bytes(digest[8:], "little")
    return h1 % size, h2 % (size - 1) + 1


def maglev_table(backends: Sequence[str], size: int = DEFAULT_RING_SIZE) -> np.ndarray:
    """The Maglev lookup table: ``(size,)`` int32, entry -> index into ``backends``.

    Args:
        backends: distinct IPv4 addresses (strings); order does not change which address
            an entry names, only the index it is written as.
        size: a prime number of entries, much larger than the number of backends.

    Raises:
        UsageError: no backends, duplicates, more backends than entries, a non-prime size.
    """
    check_ring_size(size)
    n = len(backends)
    if n == 0:
        raise UsageError("no backends for the Maglev table", hint="give at least one --backend")
    if len(set(backends)) != n:
        raise UsageError("a backend is listed twice", hint="give each --backend address once")
    if n > size:
        raise UsageError(f"{n} backends for a table of {size} entries",
                         hint="use a prime table size much larger than the number of backends")
    perms_by_index = [backend_permutation(b, size) for b in backends]  # validates the addresses
    # Fill in a canonical order (sorted by address) so the result is a function of the set.
    order = sorted(range(n), key=lambda i: ipaddress.IPv4Address(backends[i]))
    perms = [perms_by_index[i] for i in order]
    table = [-1] * size
    nxt = [0] * n
    filled = 0
    while True:
        for k in range(n):
            offset, skip = perms[k]
            j = nxt[k]
            c = (offset + j * skip) % size
            while table[c] >= 0:
                j += 1
                c = (offset + j * skip) % size
            table[c] = order[k]
            nxt[k] = j + 1
            filled += 1
            if filled == size:
                return np.asarray(table, dtype=np.int32)


def ip_word(addresses) -> np.ndarray:
    """IPv4 addresses (strings or ints in host order) as the BPF program loads them: the 4
    network-order bytes read as a little-endian ``__u32``. ``(n,)`` uint32."""
    vals = [int(ipaddress.IPv4Address(a)) for a in np.atleast_1d(np.asarray(addresses, dtype=object))]
    be = np.asarray(vals, dtype=">u4")
    return be.view("<u4").astype(_U32)


def port_word(sport, dport) -> np.ndarray:
    """The two ports (host order) as the 4 bytes ``sport, dport`` of the L4 header load as a
    little-endian ``__u32``. ``(n,)`` uint32."""
    s = np.asarray(sport, dtype=">u2").reshape(-1).view("<u2").astype(_U32)
    d = np.asarray(dport, dtype=">u2").reshape(-1).view("<u2").astype(_U32)
    return s | (d << _U32(16))


def flow_hash(saddr, daddr, sport, dport, proto, seed: int = 0) -> np.ndarray:
    """``lb_flow_hash`` of ``bpf/lb.h`` for a batch of flows: ``(n,)`` uint32.

    The kernel's ``jhash_3words(a, b, c, initval)`` (include/linux/jhash.h) with ``a``, ``b``
    the addresses and ``c`` the ports as :func:`ip_word` / :func:`port_word` load them, and
    ``initval = seed + proto``.

    Args:
        saddr, daddr: IPv4 addresses (strings or host-order ints), scalars or sequences.
        sport, dport: ports, host order.
        proto: 6 (TCP) or 17 (UDP), scalar or per flow.
        seed: ``LB_HASH_SEED`` the program was compiled with.
    """
    a = ip_word(saddr)
    b = ip_word(daddr)
    c = port_word(sport, dport)
    n = max(len(a), len(b), len(c))
    a, b, c = (np.broadcast_to(x, (n,)).astype(_U32) for x in (a, b, c))
    with np.errstate(over="ignore"):
        iv = (np.asarray(proto, dtype=np.int64) + seed + _JHASH_INITVAL + (3 << 2)) & 0xFFFFFFFF
        iv = np.broadcast_to(iv.astype(_U32), (n,))
        a = a + iv
        b = b + iv
        c = c + iv
    return jhash_final(a, b, c)


def lookup(table: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """The table entry each flow hash picks (``table[hash % size]``): ``(n,)`` int32."""
    return table[np.asarray(hashes, dtype=np.uint64) % np.uint64(len(table))]


def moved(old: np.ndarray, new: np.ndarray, old_backends: Sequence[str], new_backends: Sequence[str]) -> float:
    """Fraction of table entries whose backend (by address) differs between two tables."""
    a = np.asarray(old_backends, dtype=object)[old]
    b = np.asarray(new_backends, dtype=object)[new]
    return float(np.mean(a != b))
