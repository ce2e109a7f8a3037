"""Maglev table and flow hash reference (pfrps.xdp.maglev): balance, minimal disruption, the
kernel's jhash_3words, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pfrps.errors import UsageError
from pfrps.xdp import maglev
from pfrps.xdp.lb_backends import Backend, parse_backend, read_backend_file


def addrs(n: int) -> list[str]:
    return [f"10.{i // 250}.{i % 250}.2" for i in range(n)]


def jhash_3words_scalar(a: int, b: int, c: int, initval: int) -> int:
    """include/linux/jhash.h, transcribed with Python ints (the independent reference)."""
    m = 0xFFFFFFFF

    def rol(x, k):
        return ((x << k) | (x >> (32 - k))) & m
    iv = (initval + 0xDEADBEEF + (3 << 2)) & m
    a, b, c = (a + iv) & m, (b + iv) & m, (c + iv) & m
    c ^= b; c = (c - rol(b, 14)) & m  # noqa: E702
    a ^= c; a = (a - rol(c, 11)) & m  # noqa: E702
    b ^= a; b = (b - rol(a, 25)) & m  # noqa: E702
    c ^= b; c = (c - rol(b, 16)) & m  # noqa: E702
    a ^= c; a = (a - rol(c, 4)) & m  # noqa: E702
    b ^= a; b = (b - rol(a, 14)) & m  # noqa: E702
    c ^= b; c = (c - rol(b, 24)) & m  # noqa: E702
    return c


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64])
def test_every_backend_gets_its_share_within_one_entry(n):
    table = maglev.maglev_table(addrs(n), 65537)
    counts = np.bincount(table, minlength=n)
    assert table.shape == (65537,) and table.min() == 0
    assert counts.sum() == 65537
    assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("n", [3, 4, 10])
def test_removing_one_backend_moves_about_one_in_n(n):
    """Every entry of the removed backend moves (1/N of the table), and only a few others: Maglev's
    disruption is near-minimal, not minimal (the paper, section 3.4)."""
    old_b = addrs(n)
    new_b = old_b[:1] + old_b[2:]
    old = maglev.maglev_table(old_b, 65537)
    new = maglev.maglev_table(new_b, 65537)
    old_addr = np.asarray(old_b, dtype=object)[old]
    new_addr = np.asarray(new_b, dtype=object)[new]
    moved = old_addr != new_addr
    assert moved[old_addr == old_b[1]].all()
    frac = maglev.moved(old, new, old_b, new_b)
    assert frac == moved.mean()
    assert 1 / n <= frac < 1 / n + 0.01


def test_adding_a_backend_moves_about_one_in_n_plus_one():
    old_b, new_b = addrs(4), addrs(5)
    frac = maglev.moved(maglev.maglev_table(old_b, 65537), maglev.maglev_table(new_b, 65537), old_b, new_b)
    assert 0.18 < frac < 0.23  # 1/5 ideally; Maglev trades a little disruption for balance


def test_table_depends_on_the_set_not_the_order():
    b = addrs(5)
    t1 = np.asarray(b, dtype=object)[maglev.maglev_table(b, 1009)]
    t2 = np.asarray(b[::-1], dtype=object)[maglev.maglev_table(b[::-1], 1009)]
    assert (t1 == t2).all()


def test_permutation_is_fixed_by_the_address():
    assert maglev.backend_permutation("10.0.0.2", 65537) == maglev.backend_permutation("10.0.0.2", 65537)
    off, skip = maglev.backend_permutation("10.0.0.2", 251)
    assert 0 <= off < 251 and 1 <= skip < 251


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 65535), st.integers(0, 65535),
       st.sampled_from([6, 17]), st.integers(0, 2**32 - 1))
def test_flow_hash_is_jhash_3words_of_the_loaded_words(saddr, daddr, sport, dport, proto, seed):
    a = int.from_bytes(saddr.to_bytes(4, "big"), "little")
    b = int.from_bytes(daddr.to_bytes(4, "big"), "little")
    c = int.from_bytes(sport.to_bytes(2, "big") + dport.to_bytes(2, "big"), "little")
    want = jhash_3words_scalar(a, b, c, (seed + proto) & 0xFFFFFFFF)
    got = maglev.flow_hash(saddr, daddr, sport, dport, proto, seed)
    assert got.dtype == np.uint32 and int(got[0]) == want


def test_flow_hash_vectorised_equals_one_at_a_time():
    sports = np.arange(40000, 40040)
    many = maglev.flow_hash("10.0.0.1", "10.0.0.10", sports, 8080, 6)
    one = [int(maglev.flow_hash("10.0.0.1", "10.0.0.10", int(p), 8080, 6)[0]) for p in sports]
    assert many.tolist() == one
    assert len(set(one)) == 40


@pytest.mark.parametrize("bad", [0, 1, 4, 65536, 100, 16777259])
def test_non_prime_table_size_is_refused(bad):
    with pytest.raises(UsageError, match="not a prime from 3 to"):
        maglev.maglev_table(addrs(2), bad)


def test_bad_backend_sets_are_refused():
    with pytest.raises(UsageError, match="no backends"):
        maglev.maglev_table([], 251)
    with pytest.raises(UsageError, match="twice"):
        maglev.maglev_table(["10.0.0.2", "10.0.0.2"], 251)
    with pytest.raises(UsageError, match="not an IPv4"):
        maglev.maglev_table(["10.0.0.2", "h3"], 251)


def test_parse_backend_and_file(tmp_path):
    assert parse_backend("10.0.0.2") == Backend("10.0.0.2", None)
    assert parse_backend("10.0.0.3@DE:AD:BE:EF:00:03") == Backend("10.0.0.3", "de:ad:be:ef:00:03")
    with pytest.raises(UsageError, match="not an IPv4 address"):
        parse_backend("10.0.0.300")
    with pytest.raises(UsageError, match="malformed MAC"):
        parse_backend("10.0.0.3@de:ad")
    f = tmp_path / "backends"
    f.write_text("# pool\n10.0.0.2\n\n10.0.0.3@de:ad:be:ef:00:03  # h3\n")
    assert read_backend_file(f) == [Backend("10.0.0.2"), Backend("10.0.0.3", "de:ad:be:ef:00:03")]
    f.write_text("10.0.0.2\nbogus\n")
    with pytest.raises(UsageError, match=r"backends:2: backend 'bogus'"):
        read_backend_file(f)
