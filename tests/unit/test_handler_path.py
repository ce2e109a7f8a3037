"""The per-frame handler path without a kernel: FrameMeta, the frame view released after the
handler, the fast counters (``ctx.count``/``ctx.counter``), the worker's dispatch (sync and
async, with the async bound), the ring reader's resync count, and ``SendBatch`` over a
socketpair."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

from pfrps.receive import FrameMeta, Receiver, RecvReceiver, RingReceiver
from pfrps.stats import Col, SharedCounters, snapshot
from pfrps.txbatch import SendBatch
from pfrps.worker import WorkerContext, frame_dispatcher
from tests.unit.test_ring_parse import block_status, fill_block, frame, make_ring

KERNEL = 0


@pytest.fixture
def ring():
    r = make_ring()
    yield r
    r.close()


@pytest.fixture
def counters():
    c = SharedCounters(3, ("padi", "hits"), ("sessions",))
    yield c
    c.close()


def ctx_of(counters, worker_id=1, loop=None, sock=None):
    return WorkerContext(worker_id, counters.workers, 1, sock, counters, loop)


# -- FrameMeta --------------------------------------------------------------------------------
def test_framemeta_has_slots_and_the_old_constructor():
    m = FrameMeta(3, 1.5, 148, 42, 0x8100)
    assert (m.ifindex, m.timestamp, m.length, m.vlan_tci, m.vlan_tpid) == (3, 1.5, 148, 42, 0x8100)
    assert not hasattr(m, "__dict__")
    with pytest.raises(AttributeError):
        m.other = 1
    assert m == FrameMeta(3, 1.5, 148, 42, 0x8100) and m != FrameMeta(3, 1.5, 149, 42, 0x8100)
    assert FrameMeta(1, 2.0, 60).vlan_tci is None and FrameMeta(1, 2.0, 60).vlan_tpid is None
    assert "timestamp=1.5" in repr(m)


def test_framemeta_timestamp_is_computed_once_from_sec_and_nsec():
    m = FrameMeta(7, 1_700_000_000, 60, None, None, 250_000_000)
    assert m._nsec == 250_000_000  # not computed yet
    assert m.timestamp == pytest.approx(1_700_000_000.25)
    assert m._nsec is None and m.timestamp == pytest.approx(1_700_000_000.25)
    m.timestamp = 5.0
    assert m.timestamp == 5.0


def test_ring_meta_is_a_new_object_per_frame(ring):
    fill_block(ring, 0, 1, [frame(i) for i in range(3)], vlans=[None, 9, None])
    rcv = RingReceiver(ring)
    metas = []
    rcv.poll(lambda f, m: metas.append(m), 7)
    assert len({id(m) for m in metas}) == 3
    assert [m.vlan_tci for m in metas] == [None, 9, None]
    assert all(m.timestamp == pytest.approx(1_700_000_000.25) for m in metas)
    rcv.close()


# -- the frame view is released when the handler returns --------------------------------------
def test_ring_view_kept_by_a_handler_raises_after_it_returned(ring):
    fill_block(ring, 0, 1, [frame(1), frame(2)])
    rcv = RingReceiver(ring)
    kept, copies = [], []

    def handler(view, meta):
        copies.append(bytes(view[:4]))  # usable during the call
        kept.append(view)
    assert rcv.poll(handler, 7) == (2, 296, 0)
    assert copies == [b"\x01" * 4, b"\x02" * 4]
    for view in kept:
        with pytest.raises(ValueError):
            bytes(view)
    assert block_status(ring, 0) == KERNEL
    rcv.close()


def test_ring_view_with_a_live_export_is_left_alone(ring):
    """A handler holding a numpy array over the frame: the view cannot be released; reading
    goes on (documented), nothing raises inside the reader."""
    fill_block(ring, 0, 1, [frame(5), frame(6)])
    rcv = RingReceiver(ring)
    arrays = []
    assert rcv.poll(lambda v, m: arrays.append(np.frombuffer(v, dtype=np.uint8)), 7)[0] == 2
    assert [int(a[0]) for a in arrays] == [5, 6]
    del arrays
    rcv.close()


def test_recv_view_kept_by_a_handler_raises_after_it_returned():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        b.setblocking(False)
        rcv = RecvReceiver.__new__(RecvReceiver)  # a datagram socketpair stands in for the packet socket
        rcv.sock, rcv.buf = b, bytearray(2048)
        rcv.view, rcv.timestamps, rcv.ancsize, rcv.socket_errors = memoryview(rcv.buf), False, 64, 0
        a.send(b"x" * 60)
        kept = []
        assert rcv.poll(lambda v, m: kept.append(v), 4) == (1, 60, 0)
        with pytest.raises(ValueError):
            bytes(kept[0])


def test_receivers_satisfy_the_protocol(ring):
    rcv = RingReceiver(ring)
    assert isinstance(rcv, Receiver)
    rcv.close()
    assert isinstance(RecvReceiver.__new__(RecvReceiver), Receiver)


# -- fast counters ----------------------------------------------------------------------------
def test_count_and_counter_write_the_workers_row(counters):
    ctx = ctx_of(counters, worker_id=1)
    ctx.count("padi")
    ctx.count("padi", 4)
    ctx.count("sessions", 2)
    ctx.count("sessions", -5)  # a gauge below zero reads back signed
    add = ctx.counter("hits")
    add()
    add(9)
    dec = ctx.counter("sessions")
    dec(-1)
    arr = counters.array
    assert arr[1, counters.column("padi")] == 5 and arr[1, counters.column("hits")] == 10
    assert arr[1].view(np.int64)[counters.column("sessions")] == -4
    assert arr[0].sum() == 0 and arr[2].sum() == 0  # other workers' rows untouched
    snap = snapshot(counters, 1.0)
    assert snap["padi"] == [0, 5, 0] and snap["hits"] == [0, 10, 0] and snap["sessions"] == [0, -4, 0]


def test_count_of_an_unknown_name_raises_keyerror(counters):
    ctx = ctx_of(counters)
    with pytest.raises(KeyError):
        ctx.count("nope")
    with pytest.raises(KeyError):
        ctx.counter("nope")
    ctx.count("padi")  # still works after a miss
    assert counters.array[1, counters.column("padi")] == 1


def test_shared_counters_add_wraps_like_before(counters):
    col = counters.column("sessions")
    counters.add(2, col, -1)
    counters.add(2, col, 3)
    assert counters.array[2, col] == 2
    counters.add(2, col, -3)
    assert counters.array[2, col] == (1 << 64) - 1


def test_observe_goes_through_the_typed_views():
    c = SharedCounters(2, app_histograms={"lat": (0.01, 0.1), "size": (100.0,)})
    try:
        ctx = ctx_of(c, worker_id=1)
        for v in (0.005, 0.05, 0.5, 0.05):
            ctx.observe("lat", v)
        ctx.observe("size", 150.0)
        h = c.histograms
        assert h.buckets_of("lat").tolist() == [[0, 0, 0], [1, 2, 1]]
        assert h.sum_of("lat").tolist() == pytest.approx([0.0, 0.605])
        assert h.buckets_of("size").tolist() == [[0, 0], [0, 1]] and h.sum_of("size").tolist() == [0.0, 150.0]
        with pytest.raises(ValueError):
            ctx.observe("lat", float("nan"))
    finally:
        c.close()


# -- the worker's dispatch --------------------------------------------------------------------
def test_sync_dispatch_counts_handler_errors(counters):
    ctx = ctx_of(counters, worker_id=0)
    seen = []

    def handler(view, meta, c):
        seen.append(bytes(view))
        if view[0] == 2:
            raise RuntimeError("boom")
    on_frame = frame_dispatcher(handler, ctx, counters.row(0))
    for i in range(4):
        on_frame(memoryview(bytes([i]) * 3), FrameMeta(1, 0.0, 3))
    assert len(seen) == 4 and counters.array[0, Col.HANDLER_ERRORS] == 1


def test_async_dispatch_refuses_beyond_the_bound_and_counts_it(counters):
    loop = asyncio.new_event_loop()
    try:
        ctx = ctx_of(counters, worker_id=2, loop=loop)
        gate = asyncio.Event()
        got = []

        async def handler(frame, meta, c):
            await gate.wait()
            got.append(frame)
            if frame == b"\x01":
                raise ValueError("late boom")
        on_frame = frame_dispatcher(handler, ctx, counters.row(2), max_async_tasks=3)
        for i in range(7):
            on_frame(memoryview(bytes([i])), FrameMeta(1, 0.0, 1))
        assert on_frame.in_flight() == 3
        assert counters.array[2, Col.ASYNC_REFUSED] == 4
        loop.call_soon(gate.set)
        loop.run_until_complete(asyncio.sleep(0))
        while on_frame.in_flight():
            loop.run_until_complete(asyncio.sleep(0))
        assert got == [b"\x00", b"\x01", b"\x02"]  # bytes copies, in order
        assert counters.array[2, Col.HANDLER_ERRORS] == 1
        on_frame(memoryview(b"\x09"), FrameMeta(1, 0.0, 1))  # room again
        assert on_frame.in_flight() == 1 and counters.array[2, Col.ASYNC_REFUSED] == 4
        loop.run_until_complete(asyncio.sleep(0))
        assert snapshot(counters, 1.0)["async_refused"] == [0, 0, 4]
    finally:
        loop.close()


def test_config_validates_max_async_tasks():
    from pfrps.config import SupervisorConfig
    from pfrps.errors import UsageError

    assert SupervisorConfig("lo", 1).max_async_tasks == 1024
    for bad in (0, -1, 1.5, True, (1 << 20) + 1):
        with pytest.raises(UsageError, match="max_async_tasks"):
            SupervisorConfig("lo", 1, rx="recv", max_async_tasks=bad).validate()


# -- resync -----------------------------------------------------------------------------------
def test_resync_skips_are_counted_in_blocks(ring):
    """The kernel is ahead of the read position (its block at the position has seq_num 5
    where 1 was expected): blocks 1..4 are skipped, counted, and reading goes on from 5."""
    fill_block(ring, 0, 5, [frame(i) for i in range(3)])
    rcv = RingReceiver(ring)
    assert rcv.resync_skipped == 0
    got = []
    assert rcv.poll(lambda v, m: got.append(bytes(v)), 7) == (3, 444, 0)
    assert rcv.resync_skipped == 4 and len(got) == 3
    fill_block(ring, 1, 6, [frame(9)])
    assert rcv.poll(None, 7) == (1, 148, 0) and rcv.resync_skipped == 4  # in order again: no more
    rcv.close()


def test_resync_column_in_the_line_and_snapshot(counters):
    from pfrps.stats import format_line

    counters.array[1, Col.RESYNC_SKIPPED] = 4
    frames = counters.array[:, Col.FRAMES]
    line = format_line(frames, resync_skipped=counters.array[:, Col.RESYNC_SKIPPED])
    assert line.endswith(" resync_skipped #1:4 (total:4)")
    assert "resync" not in format_line(frames, resync_skipped=np.zeros(3, dtype=np.uint64))
    assert snapshot(counters, 0.0)["resync_skipped"] == [0, 4, 0]


# -- sendmmsg ---------------------------------------------------------------------------------
def test_send_batch_sends_every_frame_in_order():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        batch = SendBatch(capacity=4, slot=64)
        frames = [bytes([i]) * (14 + i) for i in range(10)] + [b"L" * 100]  # the last one is above the slot
        assert batch.send(a, frames) == (11, 0)
        b.setblocking(False)
        assert [b.recv(256) for _ in range(11)] == frames
        with pytest.raises(BlockingIOError):
            b.recv(256)
        batch.close()


def test_transmit_many_counts_sent_and_failed(counters):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        ctx = ctx_of(counters, worker_id=0, sock=a)
        assert ctx.transmit_many([b"x" * 60] * 5) == 5
        assert counters.array[0, Col.TX_FRAMES] == 5 and counters.array[0, Col.TX_ERRORS] == 0
        b.close()  # the peer is gone: every send fails
        assert ctx.transmit_many([b"y" * 60] * 3) == 0
        assert counters.array[0, Col.TX_FRAMES] == 5 and counters.array[0, Col.TX_ERRORS] == 3
