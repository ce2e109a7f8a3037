"""Address pools split between workers with no coordination: IPv4 addresses and IPv6 prefixes.

Ownership (``DESIGN.md``, "Ownership")
    The usable addresses of all IPv4 pools, in the order the pools were given, are numbered
    0, 1, 2, ... (the *global index*). Worker ``w`` of ``N`` owns the addresses whose global
    index ``% N == w``: the slices are disjoint and together cover every usable address, so no
    worker ever asks another. The same rule splits an IPv6 pool into its ``/64`` (or
    ``/length``) prefixes.

Usable IPv4 addresses
    Every address of the network except the network and broadcast addresses when the prefix is
    shorter than /31; all of a /31 (RFC 3021) or /32. A /24 has 254 usable addresses; over 8
    workers each owns 31 or 32 of them (worker 0 the 32 with indices 0, 8, ..., 248).

Cost
    Nothing proportional to the pool is built: a worker keeps a cursor over its slice (its
    ``k``-th address is the one of global index ``w + k*N``, found by bisecting the pools'
    first indices), a FIFO of released addresses and the set of addresses in use. ``allocate``
    and ``release`` are O(1) amortised (O(log pools) for the bisection).

Validation for the command line: :func:`parse_pool` and :func:`check_pools` raise
:class:`~pfrps.errors.UsageError` with a hint.
"""

from __future__ import annotations

import bisect
from collections import deque
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_network
from typing import Iterable, Optional, Sequence, Union

from pfrps.errors import UsageError

__all__ = ["IPV6_PREFIX_LENGTH", "usable_count", "Pool4", "Pool6", "parse_pool", "check_pools"]

#: Length of the prefix each IPv6 subscriber gets (SLAAC needs a /64, RFC 4862 / RFC 7421).
IPV6_PREFIX_LENGTH = 64

Network = Union[IPv4Network, IPv6Network]


def usable_count(net: IPv4Network) -> int:
    """Usable addresses of ``net``: all of a /31 or /32, else all but network and broadcast."""
    return net.num_addresses if net.prefixlen >= 31 else net.num_addresses - 2


def _check_worker(worker_id: int, worker_count: int) -> None:
    if worker_count < 1:
        raise ValueError(f"worker count {worker_count} is under 1")
    if not 0 <= worker_id < worker_count:
        raise ValueError(f"worker id {worker_id} is outside 0..{worker_count - 1}")


def _overlap(networks: Sequence[Network]) -> Optional[tuple[Network, Network]]:
    """The first two networks that overlap (same family), or None."""
    for fam in (4, 6):
        nets = sorted((n for n in networks if n.version == fam), key=lambda n: (int(n.network_address), n.prefixlen))
        for a, b in zip(nets, nets[1:]):
            if int(b.network_address) <= int(a.broadcast_address):
                return a, b
    return None


class _Slice:
    """The cursor + free FIFO + in-use set shared by Pool4 and Pool6: items are ints (global indices)."""

    def __init__(self, total: int, worker_id: int, worker_count: int) -> None:
        self.total = total                  # items in all pools
        self.w = worker_id
        self.n = worker_count
        self.owned = (total - worker_id + worker_count - 1) // worker_count if total > worker_id else 0
        self.cursor = 0                     # the next never-handed-out k (global index w + k*N)
        self.free: deque[int] = deque()     # released global indices, oldest first (may hold stale ones)
        self.free_set: set[int] = set()     # the true free set (behind the cursor, not in use)
        self.used: set[int] = set()         # global indices in use

    def owns(self, i: int) -> bool:
        return 0 <= i < self.total and i % self.n == self.w

    def take(self, skip: frozenset[int] = frozenset()) -> Optional[int]:
        """Never-used items first (a released address goes to someone else as late as
        possible: stale ARP/conntrack state, log attribution), then released ones, oldest first."""
        while self.cursor < self.owned:
            i = self.w + self.cursor * self.n
            self.cursor += 1
            if i not in self.used and i not in skip:
                self.used.add(i)
                return i
        while self.free:
            i = self.free.popleft()
            if i in self.free_set:
                self.free_set.discard(i)
                self.used.add(i)
                return i
        return None

    def claim(self, i: int) -> bool:
        """Mark global index ``i`` (owned) in use: False when it already is."""
        if i in self.used:
            return False
        self.used.add(i)
        if i in self.free_set:
            self.free_set.discard(i)
            if len(self.free) > 2 * len(self.free_set) + 64:  # drop stale FIFO entries
                self.free = deque(x for x in self.free if x in self.free_set)
        return True

    def give_back(self, i: int) -> bool:
        """Return owned global index ``i``: False when it was not in use."""
        if i not in self.used:
            return False
        self.used.discard(i)
        if (i - self.w) // self.n < self.cursor:  # behind the cursor: only the FIFO finds it again
            self.free.append(i)
            self.free_set.add(i)
        return True


class Pool4:
    """Worker ``worker_id``'s slice of the IPv4 pools (see the module docstring).

    Args:
        networks: the pools, in order (their order fixes the global index); may be empty (then
            only fixed addresses are handed out).
        worker_id: this worker, ``0 <= worker_id < worker_count``.
        worker_count: the number of workers.
        reserved: addresses never handed out dynamically by any worker: pass the fixed
            addresses of the secrets file, so that a worker cannot give one of them to a
            dynamic session while another worker's subscriber holds it as fixed.

    Raises:
        ValueError: worker id outside ``0..worker_count-1``, worker count under 1, or two
            networks overlap (:func:`check_pools` says so as a UsageError first).
    """

    def __init__(self, networks: Sequence[IPv4Network], worker_id: int, worker_count: int,
                 reserved: Iterable[IPv4Address] = ()) -> None:
        _check_worker(worker_id, worker_count)
        self.networks = tuple(networks)
        both = _overlap(self.networks)
        if both:
            raise ValueError(f"pools {both[0]} and {both[1]} overlap")
        self.worker_id = worker_id
        self.worker_count = worker_count
        self._starts: list[int] = []   # global index of each network's first usable address
        self._firsts: list[int] = []   # int of each network's first usable address
        self._sorted: list[tuple[int, int, int]] = []  # (first int, last int, first global index), by address
        total = 0
        for net in self.networks:
            first = int(net.network_address) + (0 if net.prefixlen >= 31 else 1)
            count = usable_count(net)
            self._starts.append(total)
            self._firsts.append(first)
            self._sorted.append((first, first + count - 1, total))
            total += count
        self._sorted.sort()
        self._sorted_firsts = [s[0] for s in self._sorted]
        self._slice = _Slice(total, worker_id, worker_count)
        self._outside: set[int] = set()   # fixed addresses in use outside this worker's slice
        skip = set()
        for a in reserved:
            i = self.index(a)
            if i is not None and self._slice.owns(i):
                skip.add(i)
        self._reserved = frozenset(skip)

    # -- address <-> global index --------------------------------------------------------------
    @property
    def size(self) -> int:
        """Usable addresses in all the pools (every worker's slices together)."""
        return self._slice.total

    def index(self, addr: IPv4Address) -> Optional[int]:
        """The global index of ``addr``, or None when it is not a usable address of a pool."""
        a = int(addr)
        j = bisect.bisect_right(self._sorted_firsts, a) - 1
        if j < 0:
            return None
        first, last, start = self._sorted[j]
        return start + a - first if a <= last else None

    def address(self, i: int) -> IPv4Address:
        """The address of global index ``i`` (``0 <= i < size``), else IndexError."""
        if not 0 <= i < self._slice.total:
            raise IndexError(f"global index {i} is outside 0..{self._slice.total - 1}")
        j = bisect.bisect_right(self._starts, i) - 1
        return IPv4Address(self._firsts[j] + i - self._starts[j])

    def owns(self, addr: IPv4Address) -> bool:
        """``addr`` is a pool address in this worker's slice."""
        i = self.index(addr)
        return i is not None and self._slice.owns(i)

    # -- allocation ------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        """Addresses this worker can hand out dynamically: its slice minus reserved addresses."""
        return self._slice.owned - len(self._reserved)

    @property
    def in_use(self) -> int:
        """Addresses this worker has handed out and not released (fixed ones included)."""
        return len(self._slice.used) + len(self._outside)

    def allocate(self, fixed: Optional[IPv4Address] = None) -> Optional[IPv4Address]:
        """An address for a new session, or None.

        Args:
            fixed: the subscriber's fixed address (``AuthResult.ipv4``). It is given out as-is,
                inside or outside the pools, unless a session of this worker already holds it
                (then None). A fixed address in *another* worker's slice is not checked
                against that worker's sessions: pass the fixed addresses as ``reserved`` so
                no worker hands them out dynamically.

        Returns:
            ``fixed``, or the next free address of this worker's slice (never-used addresses
            first, then released ones oldest first), or None when the slice is exhausted.
        """
        if fixed is not None:
            i = self.index(fixed)
            if i is not None and self._slice.owns(i):
                return fixed if self._slice.claim(i) else None
            a = int(fixed)
            if a in self._outside:
                return None
            self._outside.add(a)
            return fixed
        i = self._slice.take(self._reserved)
        return None if i is None else self.address(i)

    def release(self, addr: IPv4Address) -> bool:
        """Give ``addr`` back; False when this pool had not handed it out (nothing changes)."""
        i = self.index(addr)
        if i is not None and self._slice.owns(i):
            if i in self._reserved:  # a reserved address held as fixed: never back to the FIFO
                if i not in self._slice.used:
                    return False
                self._slice.used.discard(i)
                return True
            return self._slice.give_back(i)
        a = int(addr)
        if a in self._outside:
            self._outside.discard(a)
            return True
        return False

    def __contains__(self, addr: IPv4Address) -> bool:
        """``addr`` is in use through this pool."""
        i = self.index(addr)
        if i is not None and self._slice.owns(i):
            return i in self._slice.used
        return int(addr) in self._outside

    def __repr__(self) -> str:
        nets = ",".join(map(str, self.networks))
        return (f"Pool4({nets} worker {self.worker_id}/{self.worker_count}: "
                f"{self.in_use} in use of {self.capacity})")


class Pool6:
    """Worker ``worker_id``'s slice of the ``/length`` prefixes of an IPv6 pool.

    Prefix ``i`` (``0 <= i < 2**(length - prefix.prefixlen)``) is ``prefix.network_address +
    i * 2**(128 - length)``; worker ``w`` owns those with ``i % N == w``.

    Args:
        prefix: the pool, e.g. ``2001:db8:100::/40``.
        length: the length handed to each subscriber, ``prefix.prefixlen..64`` (64 for SLAAC).

    Raises:
        ValueError: worker id/count out of range, or ``length`` outside ``prefix.prefixlen..64``.
    """

    def __init__(self, prefix: IPv6Network, worker_id: int, worker_count: int,
                 length: int = IPV6_PREFIX_LENGTH) -> None:
        _check_worker(worker_id, worker_count)
        if not prefix.prefixlen <= length <= IPV6_PREFIX_LENGTH:
            raise ValueError(f"prefix length {length} is outside {prefix.prefixlen}..{IPV6_PREFIX_LENGTH} for {prefix}")
        self.prefix = prefix
        self.length = length
        self.worker_id = worker_id
        self.worker_count = worker_count
        self._step = 1 << (128 - length)
        self._base = int(prefix.network_address)
        self._slice = _Slice(1 << (length - prefix.prefixlen), worker_id, worker_count)

    @property
    def size(self) -> int:
        """``/length`` prefixes in the pool (all workers)."""
        return self._slice.total

    @property
    def capacity(self) -> int:
        """Prefixes this worker can hand out."""
        return self._slice.owned

    @property
    def in_use(self) -> int:
        return len(self._slice.used)

    def index(self, net: IPv6Network) -> Optional[int]:
        """The index of ``net`` in the pool, or None when it is not one of its ``/length`` prefixes."""
        if net.prefixlen != self.length or not net.subnet_of(self.prefix):
            return None
        return (int(net.network_address) - self._base) // self._step

    def subnet(self, i: int) -> IPv6Network:
        """Prefix number ``i``, else IndexError."""
        if not 0 <= i < self._slice.total:
            raise IndexError(f"prefix index {i} is outside 0..{self._slice.total - 1}")
        return IPv6Network((self._base + i * self._step, self.length))

    def owns(self, net: IPv6Network) -> bool:
        i = self.index(net)
        return i is not None and self._slice.owns(i)

    def allocate(self) -> Optional[IPv6Network]:
        """The next free prefix of this worker's slice (never-used first, then released ones
        oldest first), or None when exhausted."""
        i = self._slice.take()
        return None if i is None else self.subnet(i)

    def claim(self, net: IPv6Network) -> bool:
        """Mark ``net`` in use (a session restored after a worker restart): False when it is
        not this worker's or already in use."""
        i = self.index(net)
        return i is not None and self._slice.owns(i) and self._slice.claim(i)

    def release(self, net: IPv6Network) -> bool:
        """Give ``net`` back; False when this pool had not handed it out."""
        i = self.index(net)
        return i is not None and self._slice.owns(i) and self._slice.give_back(i)

    def __contains__(self, net: IPv6Network) -> bool:
        i = self.index(net)
        return i is not None and i in self._slice.used

    def __repr__(self) -> str:
        return (f"Pool6({self.prefix}/{self.length}s worker {self.worker_id}/{self.worker_count}: "
                f"{self.in_use} in use of {self.capacity})")


# -- command-line validation ------------------------------------------------------------------------
def parse_pool(text: str) -> Network:
    """Parse ``--pool`` / ``--ipv6-pool`` text: ``10.0.0.0/16``, ``2001:db8::/48``.

    Raises:
        UsageError: not a network, host bits set (the hint names the network meant), or no
            prefix length given.
    """
    t = text.strip()
    if "/" not in t:
        raise UsageError(f"pool {text!r} has no prefix length", hint="write it as a network, like 10.0.0.0/16")
    try:
        return ip_network(t, strict=True)
    except ValueError as e:
        try:
            loose = ip_network(t, strict=False)
        except ValueError:
            raise UsageError(f"pool {text!r} is not an IP network ({e})",
                             hint="write it as address/length, like 10.0.0.0/16 or 2001:db8::/48") from None
        raise UsageError(f"pool {text!r} has host bits set", hint=f"did you mean {loose}?") from None


def check_pools(networks: Sequence[Network], workers: int, ipv6_pool: Optional[IPv6Network] = None) -> None:
    """Check the pools of a ``pfrps-bng`` run before the workers start.

    Args:
        networks: the ``--pool`` networks (IPv6 ones are checked as IPv6 pools too).
        workers: the worker count.
        ipv6_pool: the ``--ipv6-pool`` prefix, or None.

    Raises:
        UsageError: two pools overlap (naming both); a pool has fewer usable addresses (IPv4)
            or /64s (IPv6) than there are workers (naming it and the count), so that some
            worker would own none of it; an IPv6 pool is longer than /64.
    """
    networks = [*networks, *([ipv6_pool] if ipv6_pool is not None else [])]
    for net in networks:
        if net.version == 6 and net.prefixlen > IPV6_PREFIX_LENGTH:
            raise UsageError(f"IPv6 pool {net} is longer than /{IPV6_PREFIX_LENGTH}",
                             hint=f"each subscriber gets a /{IPV6_PREFIX_LENGTH}: give a /{IPV6_PREFIX_LENGTH} "
                                  "or shorter prefix, like /48")
    both = _overlap(networks)
    if both:
        raise UsageError(f"pools {both[0]} and {both[1]} overlap", hint="give each address to one pool only")
    for net in networks:
        if net.version == 4:
            n, what = usable_count(net), "usable addresses"
        else:
            n, what = 1 << (IPV6_PREFIX_LENGTH - net.prefixlen), f"/{IPV6_PREFIX_LENGTH} prefixes"
        if n < workers:
            raise UsageError(f"pool {net} has {n} {what}, fewer than the {workers} workers",
                             hint="give a larger pool or fewer workers (-w)")
