"""The three hashes against the seed's vectors, an independent scalar implementation, and N."""

import numpy as np
import pytest

from pfrps.errors import UsageError
from pfrps.hashing import (ALGORITHMS, as_mac_array, expected_counts, hash_macs, jhash_oaat, mac_hash, mac_jhash,
                           parse_hash_alg, parse_mac, worker_for)

M32 = 0xFFFFFFFF

# (mac, mac_hash, mac_jhash, jhash_oaat): the first two rows are the vectors.
VECTORS = [
    ("52:54:00:84:d7:ff", 0x0084D7FF, 0x1978000E, 0xBDAA1132),
    ("02:11:22:33:44:55", 0x22334455, 0x0EC6FD8F, 0x65A0E0C7),
]


def _rol(x, k):
    return ((x << k) | (x >> (32 - k))) & M32


def ref_mac_hash(m: bytes) -> int:
    h = 0
    for b in m:
        h = ((h << 8) | b) & M32
    return h


def ref_mac_jhash(m: bytes) -> int:
    a = int.from_bytes(m[0:4], "little")
    b = int.from_bytes(m[4:6], "little")
    c = (0xDEADBEEF + 8) & M32
    a, b = (a + c) & M32, (b + c) & M32
    c ^= b; c = (c - _rol(b, 14)) & M32  # noqa: E702
    a ^= c; a = (a - _rol(c, 11)) & M32  # noqa: E702
    b ^= a; b = (b - _rol(a, 25)) & M32  # noqa: E702
    c ^= b; c = (c - _rol(b, 16)) & M32  # noqa: E702
    a ^= c; a = (a - _rol(c, 4)) & M32  # noqa: E702
    b ^= a; b = (b - _rol(a, 14)) & M32  # noqa: E702
    c ^= b; c = (c - _rol(b, 24)) & M32  # noqa: E702
    return c


def ref_oaat(m: bytes) -> int:
    h = 0xDEADBEEF
    for b in m:
        h = (h + b) & M32
        h = (h + (h << 10)) & M32
        h ^= h >> 6
    h = (h + (h << 3)) & M32
    h ^= h >> 11
    return (h + (h << 15)) & M32


@pytest.mark.parametrize("mac,h0,h1,h2", VECTORS)
def test_seed_vectors(mac, h0, h1, h2):
    m = parse_mac(mac)
    assert int(mac_hash(m)[0]) == h0
    assert int(mac_jhash(m)[0]) == h1
    assert int(jhash_oaat(m)[0]) == h2


@pytest.mark.parametrize("mac", ["00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "01:02:03:04:05:06", "fe:dc:ba:98:76:54"])
def test_edge_macs_match_scalar_reference(mac):
    m = parse_mac(mac)
    assert int(mac_hash(m)[0]) == ref_mac_hash(m)
    assert int(mac_jhash(m)[0]) == ref_mac_jhash(m)
    assert int(jhash_oaat(m)[0]) == ref_oaat(m)


def test_vectorised_equals_scalar_on_random_macs():
    macs = np.random.default_rng(2516).integers(0, 256, (2000, 6), dtype=np.uint8)
    for fn, ref in ((mac_hash, ref_mac_hash), (mac_jhash, ref_mac_jhash), (jhash_oaat, ref_oaat)):
        got = fn(macs)
        assert got.dtype == np.uint32 and got.shape == (2000,)
        assert got.tolist() == [ref(bytes(row)) for row in macs]


def test_mac_hash_keeps_bytes_2_to_5():
    assert int(mac_hash(parse_mac("aa:bb:01:02:03:04"))[0]) == 0x01020304


@pytest.mark.parametrize("n", [1, 2, 4, 8, 64, 256])
def test_modulo_equals_seed_mask_for_powers_of_two(n):
    macs = np.random.default_rng(n).integers(0, 256, (500, 6), dtype=np.uint8)
    for alg in ALGORITHMS.values():
        assert np.array_equal(worker_for(macs, n, alg), hash_macs(macs, alg) & np.uint32(n - 1))


def test_expected_counts_sum_and_shape():
    macs = np.random.default_rng(7).integers(0, 256, (1234, 6), dtype=np.uint8)
    counts = expected_counts(macs, 3, "jhash_oaat")
    assert counts.shape == (3,) and counts.sum() == 1234


@pytest.mark.parametrize("text,alg", [("0", 0), ("1", 1), ("2", 2), ("mac_hash", 0), ("mac-jhash", 1),
                                      ("JHASH_OAAT", 2)])
def test_parse_hash_alg(text, alg):
    assert parse_hash_alg(text) == alg


@pytest.mark.parametrize("text", ["3", "-1", "crc32", "", "0x1"])
def test_parse_hash_alg_rejects(text):
    with pytest.raises(UsageError, match="unknown hash algorithm"):
        parse_hash_alg(text)


@pytest.mark.parametrize("text", ["52:54:00:84:d7", "52:54:00:84:d7:ff:00", "52:54:00:84:d7:fg", "5254.0084.d7ff",
                                  "52:54-00:84:d7:ff", ""])
def test_parse_mac_rejects(text):
    with pytest.raises(UsageError, match="malformed MAC"):
        parse_mac(text)


def test_as_mac_array_forms():
    a = as_mac_array(["52:54:00:84:d7:ff", bytes(6)])
    assert a.shape == (2, 6) and a.dtype == np.uint8 and a[0, 5] == 0xFF


def test_worker_for_rejects_zero_workers():
    with pytest.raises(UsageError):
        worker_for(bytes(6), 0)
