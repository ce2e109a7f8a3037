"""TPACKET_V3 ring geometry checks (no root: nothing reaches the kernel)."""

from __future__ import annotations

import mmap

import pytest

from pfrps.errors import UsageError
from pfrps.receive import RxRing, check_geometry

PAGE = mmap.PAGESIZE


@pytest.mark.parametrize("block_size, blocks, frame_size, frame_nr", [
    (1 << 20, 8, 2048, 8 * 512),          # the supervisor's default
    (PAGE, 1, PAGE, 1),                   # one page, one frame
    (PAGE, 3, 128, 3 * PAGE // 128),
    (4 * PAGE, 2, 256, 2 * 4 * PAGE // 256),
])
def test_good_geometry_gives_frame_nr(block_size, blocks, frame_size, frame_nr):
    assert check_geometry(block_size, blocks, frame_size) == frame_nr


@pytest.mark.parametrize("block_size, blocks, frame_size, words", [
    (1 << 20, 0, 2048, "block count 0"),
    (1 << 20, -1, 2048, "block count -1"),
    (PAGE + 1, 8, 256, "page size"),
    (0, 8, 2048, "page size"),
    (-PAGE, 8, 2048, "page size"),
    (2 << 30, 1, 2048, "1 GiB"),
    (1 << 20, 8, 2004, "multiple of 16"),
    (1 << 20, 8, 80, "below 96"),
    (PAGE, 8, 2 * PAGE, "larger than the block size"),
    (3 * PAGE, 8, 2 * PAGE, "not a multiple of the frame size"),
    (1 << 20, 8, 2048.0, "not an integer"),
    (True, 8, 2048, "not an integer"),
])
def test_bad_geometry_is_a_usage_error_with_a_hint(block_size, blocks, frame_size, words):
    with pytest.raises(UsageError) as info:
        check_geometry(block_size, blocks, frame_size)
    err = info.value
    assert words in err.msg
    assert err.hint, "every geometry error names a fix"
    assert "\n" not in err.one_line()
    assert err.exit_status == 2


def test_too_many_frames():
    with pytest.raises(UsageError, match="2\\^32-1 frames"):
        check_geometry(PAGE, 1 << 30, 128)


def test_rxring_checks_before_touching_the_socket():
    class NoSocket:
        def __getattr__(self, name):  # any use of the socket would fail the test
            raise AssertionError(f"socket used: {name}")

    with pytest.raises(UsageError, match="frame size"):
        RxRing(NoSocket(), 1 << 20, 8, 1000)


@pytest.mark.parametrize("workers, block_size, blocks, want", [
    (1, None, None, (256 << 10, 16)),
    (16, None, None, (256 << 10, 16)),
    (17, None, None, (64 << 10, 64)),
    (64, None, None, (64 << 10, 64)),
    (256, None, None, (64 << 10, 16)),     # 256 MiB for all rings
    (257, None, None, (16 << 10, 63)),     # 16 KiB blocks above 256 workers
    (1024, None, None, (16 << 10, 16)),
    (8, 1 << 20, None, (1 << 20, 4)),       # a block size alone keeps 4 MiB per worker
    (8, 8 << 20, None, (8 << 20, 1)),       # at least one block
    (64, None, 8, (64 << 10, 8)),           # a block count alone keeps the default block size
    (8, 4096, 3, (4096, 3)),
])
def test_default_ring_geometry_depends_on_worker_count(workers, block_size, blocks, want):
    from pfrps.config import SupervisorConfig

    cfg = SupervisorConfig("eth0", workers=workers, ring_block_size=block_size, ring_blocks=blocks)
    assert cfg.ring_geometry() == want
    cfg.validate()
