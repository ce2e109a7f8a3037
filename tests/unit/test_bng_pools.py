"""pfrps.bng.pools: per-worker disjoint slices of IPv4 pools and IPv6 /64 pools, CLI validation."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Network, IPv6Network

import pytest

from pfrps.bng.pools import Pool4, Pool6, check_pools, parse_pool, usable_count
from pfrps.errors import UsageError

A, N4, N6 = IPv4Address, IPv4Network, IPv6Network


def drain(pool):
    out = []
    while (a := pool.allocate()) is not None:
        out.append(a)
    return out


# (description, pools, workers, usable in all, capacity of each worker)
SLICE_CASES = [
    ("/24 over 8 workers", ["10.0.0.0/24"], 8, 254, [32, 32, 32, 32, 32, 32, 31, 31]),
    ("/24 over 1 worker", ["10.0.0.0/24"], 1, 254, [254]),
    ("/24 over 3 workers", ["10.0.0.0/24"], 3, 254, [85, 85, 84]),
    ("/30: network and broadcast excluded", ["10.0.0.0/30"], 2, 2, [1, 1]),
    ("/31: both addresses (RFC 3021)", ["10.0.0.0/31"], 2, 2, [1, 1]),
    ("/32: one address", ["10.0.0.7/32"], 1, 1, [1]),
    ("two pools, indices run on", ["10.0.0.0/29", "10.1.0.0/30"], 4, 8, [2, 2, 2, 2]),
    ("/16 over 6 workers", ["10.8.0.0/16"], 6, 65534, [10923, 10923, 10922, 10922, 10922, 10922]),
]


@pytest.mark.parametrize("desc,nets,workers,usable,caps", SLICE_CASES, ids=[c[0] for c in SLICE_CASES])
def test_slices_are_disjoint_and_cover_the_usable_addresses(desc, nets, workers, usable, caps):
    nets = [N4(n) for n in nets]
    pools = [Pool4(nets, w, workers) for w in range(workers)]
    assert [p.capacity for p in pools] == caps and sum(caps) == usable
    assert all(p.size == usable for p in pools)
    slices = [drain(p) for p in pools]
    assert [len(s) for s in slices] == caps
    every = [a for s in slices for a in s]
    want = [a for n in nets for a in (n.hosts() if n.prefixlen < 31 else n)]
    assert sorted(every) == sorted(want), "covering, no duplicates"
    for w, (p, s) in enumerate(zip(pools, slices)):
        assert p.in_use == len(s) and all(p.owns(a) for a in s)
        assert [p.index(a) for a in s] == list(range(w, usable, workers)), "global index % N == w, in order"


def test_slash24_over_8_workers_worker_0_gets_exactly_these():
    p = Pool4([N4("10.0.0.0/24")], 0, 8)
    got = drain(p)
    assert len(got) == 32 and got[:3] == [A("10.0.0.1"), A("10.0.0.9"), A("10.0.0.17")] and got[-1] == A("10.0.0.249")
    assert A("10.0.0.0") not in got and A("10.0.0.255") not in got


def test_released_addresses_come_back_oldest_first_after_the_fresh_ones():
    p = Pool4([N4("10.0.0.0/29")], 0, 1)  # 6 usable
    a = [p.allocate() for _ in range(3)]
    assert p.release(a[1]) and p.release(a[0])
    assert not p.release(a[0]), "double release"
    assert [p.allocate() for _ in range(4)] == [A("10.0.0.4"), A("10.0.0.5"), A("10.0.0.6"), a[1]]
    assert p.allocate() == a[0] and p.allocate() is None
    assert p.in_use == 6 and p.capacity == 6


# (description, fixed address, held before?, expected)
FIXED_CASES = [
    ("outside the pools: as-is", "192.0.2.7", False, "192.0.2.7"),
    ("outside the pools, held by another session of this worker", "192.0.2.7", True, None),
    ("inside this worker's slice", "10.0.0.3", False, "10.0.0.3"),
    ("inside this worker's slice, held", "10.0.0.3", True, None),
    ("inside another worker's slice: not checkable here, as-is", "10.0.0.2", False, "10.0.0.2"),
    ("a pool's network address is not a pool address: as-is", "10.0.0.0", False, "10.0.0.0"),
]


@pytest.mark.parametrize("desc,fixed,held,want", FIXED_CASES, ids=[c[0] for c in FIXED_CASES])
def test_fixed_addresses(desc, fixed, held, want):
    p = Pool4([N4("10.0.0.0/24")], 0, 2)  # worker 0 owns 10.0.0.1, .3, .5 ...
    if held:
        assert p.allocate(A(fixed)) == A(fixed)
    got = p.allocate(A(fixed))
    assert got == (A(want) if want else None), desc


def test_a_fixed_address_ahead_of_the_cursor_is_skipped_then_handed_out_after_release():
    p = Pool4([N4("10.0.0.0/29")], 0, 1)
    assert p.allocate(A("10.0.0.2")) == A("10.0.0.2")
    assert p.allocate() == A("10.0.0.1") and p.allocate() == A("10.0.0.3"), "skips the fixed one"
    assert A("10.0.0.2") in p and p.release(A("10.0.0.2")) and A("10.0.0.2") not in p
    assert drain(p) == [A("10.0.0.4"), A("10.0.0.5"), A("10.0.0.6"), A("10.0.0.2")]


def test_a_fixed_address_that_is_free_behind_the_cursor_leaves_the_fifo():
    p = Pool4([N4("10.0.0.0/29")], 0, 1)
    a1 = p.allocate()
    p.release(a1)
    assert p.allocate(a1) == a1
    assert a1 not in drain(p), "not handed out twice"


def test_reserved_addresses_are_never_dynamic():
    p = Pool4([N4("10.0.0.0/29")], 0, 1, reserved=[A("10.0.0.2"), A("10.0.0.4"), A("192.0.2.1")])
    assert p.capacity == 4
    assert drain(p) == [A("10.0.0.1"), A("10.0.0.3"), A("10.0.0.5"), A("10.0.0.6")]
    assert p.allocate(A("10.0.0.2")) == A("10.0.0.2") and p.allocate(A("10.0.0.2")) is None
    assert p.release(A("10.0.0.2")) and not p.release(A("10.0.0.2"))
    assert p.allocate() is None, "a released reserved address does not become dynamic"


def test_release_of_foreign_addresses_is_refused():
    p = Pool4([N4("10.0.0.0/24")], 1, 2)
    assert not p.release(A("10.0.0.1"))  # worker 0's
    assert not p.release(A("192.0.2.1"))  # never handed out
    assert p.in_use == 0


def test_random_churn_keeps_the_invariants():
    rng = random.Random(4)
    nets = [N4("10.0.0.0/26"), N4("10.9.0.0/30")]
    p = Pool4(nets, 1, 3)
    held: set = set()
    for _ in range(5000):
        x = rng.random()
        if x < 0.45:
            a = p.allocate()
            if a is not None:
                assert a not in held and p.owns(a)
                held.add(a)
            else:
                assert len(held & {a for a in held if p.owns(a)}) == p.capacity
        elif x < 0.55:
            f = A(int(A("10.0.0.0")) + rng.randrange(70))
            got = p.allocate(f)
            assert (got is None) == (f in held)
            if got:
                held.add(f)
        elif held:
            a = rng.choice(sorted(held))
            assert p.release(a)
            held.discard(a)
        assert p.in_use == len(held)
        assert len(p._slice.free) <= 2 * len(p._slice.free_set) + 64 + 1


def test_nothing_is_built_per_address_at_start():
    p = Pool4([N4("10.0.0.0/8")], 3, 4)
    assert p.capacity == (2 ** 24 - 2) // 4 and len(p._slice.free) == 0 and not p._slice.used
    assert p.allocate() == A("10.0.0.4")
    assert p.address(2 ** 24 - 3) == A("10.255.255.254")


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="worker id 2"):
        Pool4([N4("10.0.0.0/24")], 2, 2)
    with pytest.raises(ValueError, match="worker count 0"):
        Pool4([], 0, 0)
    with pytest.raises(ValueError, match="overlap"):
        Pool4([N4("10.0.0.0/24"), N4("10.0.0.128/25")], 0, 1)
    with pytest.raises(ValueError, match="prefix length 72"):
        Pool6(N6("2001:db8::/48"), 0, 1, length=72)


def test_an_empty_pool4_hands_out_fixed_addresses_only():
    p = Pool4([], 0, 2)
    assert p.capacity == 0 and p.allocate() is None and p.allocate(A("192.0.2.1")) == A("192.0.2.1")


# -- IPv6 -----------------------------------------------------------------------------------------
# (description, prefix, length, workers, capacities)
POOL6_CASES = [
    ("/62 over 2 workers", "2001:db8::/62", 64, 2, [2, 2]),
    ("/64 over 1 worker", "2001:db8::/64", 64, 1, [1]),
    ("/60 over 3 workers", "2001:db8::/60", 64, 3, [6, 5, 5]),
    ("/56s of a /52 over 4", "2001:db8::/52", 56, 4, [4, 4, 4, 4]),
]


@pytest.mark.parametrize("desc,prefix,length,workers,caps", POOL6_CASES, ids=[c[0] for c in POOL6_CASES])
def test_pool6_slices(desc, prefix, length, workers, caps):
    pools = [Pool6(N6(prefix), w, workers, length) for w in range(workers)]
    assert [p.capacity for p in pools] == caps
    slices = [drain(p) for p in pools]
    every = sorted(n for s in slices for n in s)
    assert every == sorted(N6(prefix).subnets(new_prefix=length))
    for w, s in enumerate(slices):
        assert [pools[w].index(n) for n in s] == list(range(w, sum(caps), workers))


def test_pool6_allocate_release():
    p = Pool6(N6("2001:db8:100::/40"), 2, 4)
    assert p.size == 2 ** 24 and p.capacity == 2 ** 22
    a, b = p.allocate(), p.allocate()
    assert a == N6("2001:db8:100:2::/64") and b == N6("2001:db8:100:6::/64")
    assert p.owns(a) and not p.owns(N6("2001:db8:100:1::/64")) and a in p
    assert p.release(a) and not p.release(a) and not p.release(N6("2001:db8:100:3::/64"))
    assert not p.release(N6("2001:db8:100:2::/65")) and not p.release(N6("2001:db9::/64"))
    assert p.in_use == 1
    p2 = Pool6(N6("2001:db8::/63"), 0, 1)
    x, y = p2.allocate(), p2.allocate()
    assert x is not None and y is not None and x != y
    assert p2.allocate() is None and p2.release(x) and p2.allocate() == x


# -- command-line validation ----------------------------------------------------------------------
PARSE_OK = [("10.0.0.0/16", N4("10.0.0.0/16")), (" 2001:db8::/48 ", N6("2001:db8::/48")),
            ("10.0.0.7/32", N4("10.0.0.7/32"))]


@pytest.mark.parametrize("text,want", PARSE_OK)
def test_parse_pool(text, want):
    assert parse_pool(text) == want


PARSE_BAD = [
    ("10.0.0.1/24", "has host bits set", "did you mean 10.0.0.0/24?"),
    ("10.0.0.0", "has no prefix length", "like 10.0.0.0/16"),
    ("10.0.0.0/33", "is not an IP network", "address/length"),
    ("bogus/8", "is not an IP network", "address/length"),
    ("2001:db8::1/48", "has host bits set", "did you mean 2001:db8::/48?"),
]


@pytest.mark.parametrize("text,msg,hint", PARSE_BAD)
def test_parse_pool_errors(text, msg, hint):
    with pytest.raises(UsageError) as ei:
        parse_pool(text)
    assert msg in ei.value.msg and hint in ei.value.hint


CHECK_BAD = [
    ("overlap", ["10.0.0.0/16", "10.0.128.0/24"], 2, "pools 10.0.0.0/16 and 10.0.128.0/24 overlap"),
    ("overlap, given in reverse", ["10.0.128.0/24", "192.168.0.0/24", "10.0.0.0/16"], 2,
     "pools 10.0.0.0/16 and 10.0.128.0/24 overlap"),
    ("the same pool twice", ["10.0.0.0/24", "10.0.0.0/24"], 1, "overlap"),
    ("IPv6 overlap", ["2001:db8::/48", "2001:db8:0:1::/64"], 1, "pools 2001:db8::/48 and 2001:db8:0:1::/64 overlap"),
    ("smaller than the workers", ["10.0.0.0/24", "10.1.0.0/30"], 4,
     "pool 10.1.0.0/30 has 2 usable addresses, fewer than the 4 workers"),
    ("IPv6 /63 over 4 workers", ["2001:db8::/63"], 4,
     "pool 2001:db8::/63 has 2 /64 prefixes, fewer than the 4 workers"),
    ("IPv6 longer than /64", ["2001:db8::/80"], 1, "IPv6 pool 2001:db8::/80 is longer than /64"),
]


@pytest.mark.parametrize("desc,nets,workers,msg", CHECK_BAD, ids=[c[0] for c in CHECK_BAD])
def test_check_pools_errors(desc, nets, workers, msg):
    with pytest.raises(UsageError) as ei:
        check_pools([parse_pool(n) for n in nets], workers)
    assert msg in ei.value.msg and ei.value.hint and ei.value.exit_status == 2


def test_check_pools_ok():
    check_pools([N4("10.0.0.0/24"), N4("10.1.0.0/24"), N6("2001:db8::/48"), N4("10.0.1.0/31")], 2)
    check_pools([N4("10.0.0.0/30"), N6("2001:db8::/64")], 1)
    check_pools([], 8)
    assert usable_count(N4("10.0.0.0/24")) == 254 and usable_count(N4("1.2.3.4/32")) == 1


def test_check_pools_takes_the_ipv6_pool_as_a_third_argument():
    check_pools([N4("10.0.0.0/24")], 4, N6("2001:db8::/48"))
    check_pools([N4("10.0.0.0/24")], 4, None)
    with pytest.raises(UsageError, match="IPv6 pool 2001:db8::/96 is longer than /64"):
        check_pools([N4("10.0.0.0/24")], 4, N6("2001:db8::/96"))
    with pytest.raises(UsageError, match="pool 2001:db8::/63 has 2 /64 prefixes, fewer than the 4 workers"):
        check_pools([N4("10.0.0.0/24")], 4, N6("2001:db8::/63"))
