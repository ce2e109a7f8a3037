"""A worker killed at any store of the ring's read state never redelivers a frame and loses
none that the ``interrupted`` counter does not report (issue 10, failure 5).

SIGKILL stops a process between two instructions; the only instructions of the reader that
change shared state are its stores to the position word and to a block's ``block_status``.
The test "kills" the reader at every one of those stores in turn (the store is not made, and
nothing runs afterwards), lets the supervisor collect the ``in_handler`` flag
(:meth:`RxRing.take_interrupted`), starts a new reader on the same ring and reads on. Across
all kill points: zero duplicates, and every missing frame is accounted for as interrupted.
"""

from __future__ import annotations

import pytest

from pfrps.receive import RingReceiver
from tests.unit.test_ring_parse import block_status, fill_block, make_ring

USER, KERNEL = 1, 0


class Killed(BaseException):
    """The simulated SIGKILL (BaseException: nothing in the reader may catch it)."""


class _Stores:
    """Counts stores through the wrapped views; the ``kill_at``-th one raises Killed instead."""

    def __init__(self, kill_at: int) -> None:
        self.n = 0
        self.kill_at = kill_at

    def hit(self) -> None:
        self.n += 1
        if self.n == self.kill_at:
            raise Killed


class _View:
    def __init__(self, view, stores: _Stores) -> None:
        self._v = view
        self._s = stores

    def __getitem__(self, i):
        return self._v[i]

    def __setitem__(self, i, value) -> None:
        self._s.hit()
        self._v[i] = value

    def __len__(self) -> int:
        return len(self._v)

    def release(self) -> None:
        self._v.release()


def _frames_of(block: int, n: int) -> list[bytes]:
    return [bytes([block, i]) * 30 for i in range(n)]


def _run(kill_at: int, per_block=(5, 7, 3, 6, 4, 5)) -> tuple[list[bytes], int, list[bytes], int]:
    """Read len(per_block) blocks with a kill at store ``kill_at``; return (delivered,
    interrupted, every frame, stores seen)."""
    ring = make_ring(blocks=4)
    delivered: list[bytes] = []
    interrupted = 0
    everything: list[bytes] = []
    stores = _Stores(kill_at)
    rcv = RingReceiver(ring)
    rcv._st = _View(rcv._st, stores)
    rcv._u32 = _View(rcv._u32, stores)
    try:
        for b, n in enumerate(per_block):
            idx = b % ring.blocks
            # the kernel refills a block only once the reader gave it back
            for _ in range(3):
                if block_status(ring, idx) == KERNEL:
                    break
                assert rcv is not None
                try:
                    rcv.poll(lambda f, m: delivered.append(bytes(f)), 1, budget=4)
                except Killed:
                    rcv.close()
                    interrupted += ring.take_interrupted()
                    rcv = RingReceiver(ring)  # the restarted worker; no more kills
            assert block_status(ring, idx) == KERNEL, "a block was never given back"
            frames = _frames_of(b, n)
            everything += frames
            fill_block(ring, idx, b + 1, frames)
            for _ in range(4):
                try:
                    rcv.poll(lambda f, m: delivered.append(bytes(f)), 1, budget=4)
                except Killed:
                    rcv.close()
                    interrupted += ring.take_interrupted()
                    rcv = RingReceiver(ring)
        seen = stores.n
    finally:
        rcv.close()
        ring.close()
    return delivered, interrupted, everything, seen


def test_without_a_kill_every_frame_once():
    delivered, interrupted, everything, _ = _run(kill_at=0)
    assert delivered == everything and interrupted == 0


def test_a_kill_at_any_store_neither_duplicates_nor_silently_loses():
    _d, _i, _e, total = _run(kill_at=0)
    assert total > 60  # two stores per frame plus two per block: every one of them is a kill point
    for k in range(1, total + 1):
        delivered, interrupted, everything, _ = _run(kill_at=k)
        assert len(delivered) == len(set(delivered)), f"kill at store {k}: a frame was delivered twice"
        missing = set(everything) - set(delivered)
        assert len(missing) <= interrupted <= 1, f"kill at store {k}: {len(missing)} lost, {interrupted} reported"
        assert delivered == [f for f in everything if f not in missing], f"kill at store {k}: order changed"


@pytest.mark.parametrize("stale_seq", [1, 2])
def test_a_user_block_with_a_stale_seq_num_is_never_read(stale_seq):
    """One block: after block seq 3 was read but not given back, it must not be read again."""
    ring = make_ring(blocks=1)
    try:
        from pfrps.receive import position  # noqa: PLC0415

        ring.set_position(position(3))
        fill_block(ring, 0, stale_seq, _frames_of(9, 4))  # user-owned, but an older lap
        rcv = RingReceiver(ring)
        got = []
        assert rcv.poll(lambda f, m: got.append(bytes(f)), 1)[0] == 0 and got == []
        assert block_status(ring, 0) == KERNEL  # given back instead
        rcv.close()
    finally:
        ring.close()
