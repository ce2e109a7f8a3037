"""RingReceiver against hand-built TPACKET_V3 blocks in ordinary memory (no root, no kernel).

Each block is laid out the way the kernel's af_packet.c fills it: a 48-byte block descriptor,
then frames chained by tp_next_offset (8-byte aligned, 0 on the last frame), each frame's bytes
at tp_mac = 82 from its header (TPACKET_ALIGN(68 + 16) - 14).
"""

from __future__ import annotations

import mmap
import struct

import pytest

from pfrps.receive import RingReceiver, RxRing, position

PAGE = mmap.PAGESIZE
MACOFF = 82
USER, KERNEL = 1, 0
_BD = struct.Struct("=IIIIII Q")                 # version .. blk_len, seq_num
_H3 = struct.Struct("=IIIIII HH IIHH")           # tpacket3_hdr up to hv1


class _Sock:
    def fileno(self) -> int:
        return -1


def make_ring(block_size: int = 4 * PAGE, blocks: int = 4) -> RxRing:
    ring = RxRing.__new__(RxRing)
    ring.sock = _Sock()
    ring.block_size, ring.blocks, ring.frame_size, ring.retire_ms = block_size, blocks, 128, 10
    ring.size = block_size * blocks
    ring._mm = mmap.mmap(-1, ring.size)
    ring._state_mm = mmap.mmap(-1, PAGE)
    ring.set_position(position(1))  # expected seq_num of block 0
    return ring


def fill_block(ring: RxRing, idx: int, seq: int, frames, wire=None, vlans=None, status: int = USER,
               ts=(1_700_000_000, 250_000_000), tpids=None) -> None:
    base = idx * ring.block_size
    off = 48
    for i, data in enumerate(frames):
        total = (MACOFF + len(data) + 7) & ~7
        nxt = total if i < len(frames) - 1 else 0
        length = wire[i] if wire else len(data)
        tci = vlans[i] if vlans and vlans[i] is not None else 0
        fstatus = (1 << 4) if vlans and vlans[i] is not None else 0
        tpid = tpids[i] if tpids and tpids[i] else (0x8100 if tci else 0)
        fstatus |= (1 << 6) if tpids and tpids[i] else 0  # TP_STATUS_VLAN_TPID_VALID
        _H3.pack_into(ring._mm, base + off, nxt, ts[0], ts[1], len(data), length, fstatus, MACOFF, MACOFF + 14,
                      0, tci, tpid, 0)
        ring._mm[base + off + MACOFF:base + off + MACOFF + len(data)] = data
        off += total
    assert off <= ring.block_size, "test frames overflow the block"
    _BD.pack_into(ring._mm, base, 2, 48, status, len(frames), 48, off, seq)


def block_status(ring: RxRing, idx: int) -> int:
    return int.from_bytes(ring._mm[idx * ring.block_size + 8:idx * ring.block_size + 12], "little")


def frame(i: int, size: int = 148) -> bytes:
    return bytes([i & 0xFF]) * size


@pytest.fixture
def ring():
    r = make_ring()
    yield r
    r.close()


def collect(rcv: RingReceiver, budget: int = 256):
    got = []
    res = rcv.poll(lambda f, m: got.append((bytes(f), m)), ifindex=7, budget=budget)
    return res, got


def test_count_uniform_blocks_and_release(ring):
    fill_block(ring, 0, 1, [frame(i) for i in range(20)])
    fill_block(ring, 1, 2, [frame(i) for i in range(5)])
    rcv = RingReceiver(ring)
    assert rcv.poll(None, 7, budget=1000) == (25, 25 * 148, 0)
    assert block_status(ring, 0) == KERNEL and block_status(ring, 1) == KERNEL
    assert rcv.poll(None, 7) == (0, 0, 0)  # block 2 still belongs to the kernel
    fill_block(ring, 2, 3, [frame(1)])
    assert rcv.poll(None, 7) == (1, 148, 0)
    rcv.close()


def test_count_mixed_sizes_and_truncation(ring):
    sizes = [60, 148, 1000, 64, 148, 148]
    wire = [60, 148, 1500, 64, 148, 9000]  # two frames captured shorter than on the wire
    fill_block(ring, 0, 1, [frame(i, s) for i, s in enumerate(sizes)], wire=wire)
    rcv = RingReceiver(ring)
    assert rcv.poll(None, 7) == (6, sum(wire), 2)
    rcv.close()


def test_count_uniform_with_one_truncated(ring):
    fill_block(ring, 0, 1, [frame(i, 100) for i in range(10)], wire=[100] * 9 + [200])
    rcv = RingReceiver(ring)
    assert rcv.poll(None, 7) == (10, 1100, 1)
    rcv.close()


def test_deliver_frames_meta_and_vlan(ring):
    frames = [frame(i, 60 + i) for i in range(4)]
    fill_block(ring, 0, 1, frames, wire=[60, 61, 62, 500], vlans=[None, 42, None, 7])
    rcv = RingReceiver(ring)
    (n, nbytes, trunc), got = collect(rcv)
    assert (n, nbytes, trunc) == (4, 60 + 61 + 62 + 500, 1)
    assert [g[0] for g in got] == frames
    metas = [g[1] for g in got]
    assert [m.vlan_tci for m in metas] == [None, 42, None, 7]
    assert [m.length for m in metas] == [60, 61, 62, 500]
    assert all(m.ifindex == 7 and m.timestamp == pytest.approx(1_700_000_000.25) for m in metas)
    assert [m.vlan_tpid for m in metas] == [None] * 4  # no TP_STATUS_VLAN_TPID_VALID
    assert block_status(ring, 0) == KERNEL
    rcv.close()


def test_vlan_tpid_of_the_stripped_tag(ring):
    """tp_vlan_tpid (802.1Q 0x8100 or 802.1ad 0x88a8) reaches meta.vlan_tpid when the kernel
    marks it valid, and only for frames whose tag was stripped."""
    frames = [frame(i) for i in range(3)]
    fill_block(ring, 0, 1, frames, vlans=[10, None, 20], tpids=[0x88A8, None, 0x8100])
    rcv = RingReceiver(ring)
    (n, _b, _t), got = collect(rcv)
    assert n == 3
    assert [(g[1].vlan_tci, g[1].vlan_tpid) for g in got] == [(10, 0x88A8), (None, None), (20, 0x8100)]
    rcv.close()


def test_frames_are_views_of_the_ring(ring):
    fill_block(ring, 0, 1, [frame(9)])
    rcv = RingReceiver(ring)
    seen = []

    def on_frame(f, meta):
        assert isinstance(f, memoryview) and f.obj is ring._mm  # zero-copy: a slice of the mapping
        seen.append(f[0])
        f.release()

    rcv.poll(on_frame, 1)
    assert seen == [9]
    rcv.close()


def test_budget_splits_a_block_and_a_new_receiver_resumes(ring):
    frames = [frame(i) for i in range(10)]
    fill_block(ring, 0, 1, frames)
    first = RingReceiver(ring)
    (n, _, _), got = collect(first, budget=4)
    assert n == 4 and block_status(ring, 0) == USER  # block still ours: 6 frames to go
    first.close()
    second = RingReceiver(ring)  # a restarted worker: position comes from shared memory
    (n, _, _), got2 = collect(second, budget=100)
    assert n == 6 and [g[0] for g in got + got2] == frames
    assert block_status(ring, 0) == KERNEL
    # count-only also resumes mid-block
    fill_block(ring, 1, 2, frames)
    (n, _, _), _got = collect(second, budget=3)
    assert second.poll(None, 7) == (7, 7 * 148, 0)
    second.close()


def test_wraps_around_the_ring(ring):
    rcv = RingReceiver(ring)
    for lap in range(3):
        for idx in range(ring.blocks):
            seq = lap * ring.blocks + idx + 1
            fill_block(ring, idx, seq, [frame(seq)] * 3)
            (n, _, _), got = collect(rcv)
            assert n == 3 and got[0][0] == frame(seq)
    rcv.close()


def test_discard_drops_user_blocks_and_the_open_blocks_frames(ring):
    fill_block(ring, 0, 1, [frame(1)] * 5)
    fill_block(ring, 1, 2, [frame(2)] * 5)
    fill_block(ring, 2, 3, [frame(3)] * 2, status=KERNEL)  # the kernel's open block, 2 frames so far
    rcv = RingReceiver(ring)
    assert rcv._discard() == 12
    assert block_status(ring, 0) == KERNEL and block_status(ring, 1) == KERNEL
    # the kernel closes block 2 with 2 more frames: only those are this run's
    fill_block(ring, 2, 3, [frame(3)] * 2 + [frame(4)] * 2)
    (n, _, _), got = collect(rcv)
    assert n == 2 and {g[0] for g in got} == {frame(4)}
    rcv.close()


def test_discard_ignores_a_stale_block(ring):
    fill_block(ring, 0, 1, [frame(1)] * 5)
    rcv = RingReceiver(ring)
    assert rcv._discard() == 5
    # block 1 holds old frames from an earlier lap (seq 0 != expected 2): not the open block
    fill_block(ring, 1, 0, [frame(2)] * 4, status=KERNEL)
    assert rcv._discard() == 0
    fill_block(ring, 1, 2, [frame(5)] * 3)
    assert rcv.poll(None, 7)[0] == 3
    rcv.close()


def test_a_new_receiver_gives_back_a_block_its_predecessor_finished(ring):
    fill_block(ring, 0, 1, [frame(1)] * 3)
    rcv = RingReceiver(ring)
    rcv.poll(None, 7)
    rcv.close()
    # simulate death between advancing the shared position and returning the block
    ring._mm[8:12] = USER.to_bytes(4, "little")
    RingReceiver(ring).close()
    assert block_status(ring, 0) == KERNEL
