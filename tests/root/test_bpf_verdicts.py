"""Steering programs run through BPF_PROG_TEST_RUN: no interface needed (katran/cilium style).

Note: for SOCKET_FILTER programs, BPF_PROG_TEST_RUN pulls the Ethernet header before the run,
so an accepted frame returns len(frame) - 14 here (in af_packet the filter sees the whole frame).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from pfrps import bpfsys
from pfrps.bpfload import CompiledModule, SteeringOpts, builtin_program
from pfrps.hashing import hash_macs, parse_mac

pytestmark = pytest.mark.root

NODE = parse_mac("52:54:00:84:d7:ff")
SRC = parse_mac("02:11:22:33:44:55")  # mac_hash 0x22334455: worker 0x22334455 % 3 == 1


def eth(ethertype: int, src: bytes = SRC, payload: bytes = b"\x11\x09\x00\x00\x00\x00") -> bytes:
    return NODE + src + ethertype.to_bytes(2, "big") + payload


@pytest.fixture(scope="module")
def filters():
    """Three filter-mode programs (workers 0..2 of 3, mac_hash, PPPoE ethertypes)."""
    fds = []
    with CompiledModule(builtin_program("rps_filter.bpf.c")) as mod:
        for wid in range(3):
            mfd = mod.create_opts_map(SteeringOpts(wid, 3, 0, (0x8863, 0x8864)))
            fds.append(mod.load("pfrps_filter", {"pfrps_opts": mfd}))
            os.close(mfd)
    yield fds
    for fd in fds:
        os.close(fd)


def tagged(ethertype: int, *tpids: int, src: bytes = SRC, payload: bytes = b"\x11\x09\x00\x00\x00\x00") -> bytes:
    """An Ethernet frame with VLAN tags ``tpids`` (outer first; VIDs 100, 101, ...) before ``ethertype``."""
    tags = b"".join(t.to_bytes(2, "big") + (100 + i).to_bytes(2, "big") for i, t in enumerate(tpids))
    return NODE + src + tags + ethertype.to_bytes(2, "big") + payload


def verdicts(fds, frame):
    return [bpfsys.prog_test_run(fd, frame)[0] for fd in fds]


CASES = [
    # (description, frame, expected return value of workers 0, 1, 2)
    ("PADI from 02:11:22:33:44:55 -> worker 1, whole frame", eth(0x8863), [0, 6, 0]),
    ("PPPoE session frame, same MAC -> same worker", eth(0x8864, payload=b"\x11\x00\xca\xfe" + bytes(60)), [0, 64, 0]),
    ("IPv4 frame -> nobody (ethertype not wanted)", eth(0x0800, payload=bytes(46)), [0, 0, 0]),
    ("ARP frame -> nobody", eth(0x0806, payload=bytes(28)), [0, 0, 0]),
    ("14-byte PPPoE frame: the test run pulls the header, so skb->len and every verdict is 0",
     eth(0x8863, payload=b""), [0, 0, 0]),
    ("02:00:00:00:00:03 -> worker 0", eth(0x8863, src=parse_mac("02:00:00:00:00:03")), [6, 0, 0]),
    ("02:00:00:00:00:05 -> worker 2", eth(0x8863, src=parse_mac("02:00:00:00:00:05")), [0, 0, 6]),
    # VLAN tags in the frame (BPF_PROG_TEST_RUN does not strip them: skb->protocol is the outer TPID)
    ("802.1Q PADI, same MAC -> worker 1, whole frame", tagged(0x8863, 0x8100), [0, 10, 0]),
    ("QinQ 0x88a8/0x8100 PADI -> worker 1", tagged(0x8863, 0x88A8, 0x8100), [0, 14, 0]),
    ("QinQ 0x8100/0x8100 session frame -> worker 1",
     tagged(0x8864, 0x8100, 0x8100, payload=b"\x11\x00\xca\xfe" + bytes(60)), [0, 72, 0]),
    ("802.1ad S-tag alone, PADI -> worker 1", tagged(0x8863, 0x88A8), [0, 10, 0]),
    ("802.1Q PADI from 02:00:00:00:00:05 -> worker 2", tagged(0x8863, 0x8100, src=parse_mac("02:00:00:00:00:05")),
     [0, 0, 10]),
    ("802.1Q IPv4 -> nobody", tagged(0x0800, 0x8100, payload=bytes(46)), [0, 0, 0]),
    ("QinQ ARP -> nobody", tagged(0x0806, 0x88A8, 0x8100, payload=bytes(28)), [0, 0, 0]),
    ("three tags -> nobody (at most two are looked through)", tagged(0x8863, 0x88A8, 0x8100, 0x8100), [0, 0, 0]),
    ("802.1Q tag with no ethertype after it -> nobody", NODE + SRC + b"\x81\x00\x00\x64", [0, 0, 0]),
    ("QinQ cut inside the inner tag -> nobody", NODE + SRC + b"\x88\xa8\x00\x64\x81\x00\x00", [0, 0, 0]),
    ("tag TPID 0x9100 (not 802.1Q/802.1ad) -> nobody", tagged(0x8863, 0x9100), [0, 0, 0]),
]


@pytest.mark.parametrize("desc,frame,want", CASES, ids=[c[0] for c in CASES])
def test_filter_verdicts(filters, desc, frame, want):
    assert verdicts(filters, frame) == want


def test_filter_hash_matches_numpy_for_each_algorithm():
    """200 random MACs x 3 algorithms x 5 workers: exactly one worker accepts, the predicted one."""
    macs = np.random.default_rng(99).integers(0, 256, (200, 6), dtype=np.uint8)
    macs[:, 0] &= 0xFE
    n = 5
    with CompiledModule(builtin_program("rps_filter.bpf.c")) as mod:
        for alg in (0, 1, 2):
            fds = []
            for wid in range(n):
                mfd = mod.create_opts_map(SteeringOpts(wid, n, alg, ()))
                fds.append(mod.load("pfrps_filter", {"pfrps_opts": mfd}))
                os.close(mfd)
            try:
                want = hash_macs(macs, alg) % n
                for mac, w in zip(macs, want):
                    got = verdicts(fds, eth(0x8863, src=mac.tobytes()))
                    assert [i for i, v in enumerate(got) if v] == [int(w)]
            finally:
                for fd in fds:
                    os.close(fd)


def test_fanout_program_returns_full_hash():
    """With worker_count 0xffffffff the fanout program returns the hash itself: C == numpy."""
    macs = np.random.default_rng(2516).integers(0, 256, (300, 6), dtype=np.uint8)
    with CompiledModule(builtin_program("rps_fanout.bpf.c")) as mod:
        for alg in (0, 1, 2):
            mfd = mod.create_opts_map(SteeringOpts(0, 0xFFFFFFFF, alg, ()))
            fd = mod.load("pfrps_fanout", {"pfrps_opts": mfd})
            os.close(mfd)
            try:
                got = [bpfsys.prog_test_run(fd, eth(0x8863, src=m.tobytes()))[0] for m in macs]
            finally:
                os.close(fd)
            want = (hash_macs(macs, alg) % np.uint32(0xFFFFFFFF)).tolist()
            assert got == want, f"algorithm {alg}"


def test_fanout_index_is_the_same_whatever_the_tags():
    """A subscriber's frames reach one worker untagged, 802.1Q, QinQ (either TPID) or 3-tagged: the
    fanout program hashes the source MAC at offset 6 only, as pfrps.hashing does."""
    macs = np.random.default_rng(8021).integers(0, 256, (100, 6), dtype=np.uint8)
    n = 7
    with CompiledModule(builtin_program("rps_fanout.bpf.c")) as mod:
        mfd = mod.create_opts_map(SteeringOpts(0, n, 0, (0x8863, 0x8864)))
        fd = mod.load("pfrps_fanout", {"pfrps_opts": mfd})
        os.close(mfd)
        try:
            for mac, want in zip(macs, hash_macs(macs, 0) % n):
                src = mac.tobytes()
                frames = [eth(0x8863, src=src), tagged(0x8863, 0x8100, src=src),
                          tagged(0x8864, 0x88A8, 0x8100, src=src), tagged(0x8863, 0x8100, 0x8100, src=src),
                          tagged(0x8863, 0x88A8, 0x8100, 0x8100, src=src)]
                assert [bpfsys.prog_test_run(fd, f)[0] for f in frames] == [int(want)] * len(frames)
        finally:
            os.close(fd)


def test_compiled_once_loaded_many():
    """64 per-worker programs from one compilation: distinct program ids, one template map."""
    with CompiledModule(builtin_program("rps_filter.bpf.c")) as mod:
        fds = []
        for wid in range(64):
            mfd = mod.create_opts_map(SteeringOpts(wid, 64, 0, ()))
            fds.append(mod.load("pfrps_filter", {"pfrps_opts": mfd}))
            os.close(mfd)
    try:
        assert len({bpfsys.prog_id(fd) for fd in fds}) == 64
        accepted = [i for i, fd in enumerate(fds) if bpfsys.prog_test_run(fd, eth(0x8863))[0]]
        assert accepted == [0x22334455 % 64]
    finally:
        for fd in fds:
            os.close(fd)
