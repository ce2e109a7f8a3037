"""Pure parts of the supervision policy: restart backoff, kernel version checks, the ring's
position word, fanout arguments, configuration limits."""

from __future__ import annotations

import pytest

from pfrps.config import MAX_WORKERS, SupervisorConfig, kernel_version
from pfrps.errors import UsageError
from pfrps.kernel import FANOUT_ARGS
from pfrps.receive import check_architecture, position, split_position
from pfrps.supervisor import restart_delay


def test_restart_backoff_doubles_to_a_cap():
    assert [restart_delay(k) for k in range(1, 8)] == [0.0, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0]


@pytest.mark.parametrize("release,want", [("6.18.0-cloud", (6, 18)), ("5.10.0-28-amd64", (5, 10)),
                                          ("5.11", (5, 11)), ("4.19.0+", (4, 19)), ("weird", (0, 0))])
def test_kernel_version(release, want):
    assert kernel_version(release) == want


def test_position_word_round_trips():
    for seq, handed, busy in [(1, 0, False), (7, 123, True), ((1 << 32) - 1, (1 << 31) - 1, True)]:
        assert split_position(position(seq, handed, busy)) == (seq, handed, busy)
    assert position(2) == 2 << 32


def test_fanout_args_layout():
    """struct fanout_args (if_packet.h): u16 id, u16 type_flags, u32 max_num_members; its first
    4 bytes are the int form of PACKET_FANOUT on a little-endian host."""
    raw = FANOUT_ARGS.pack(0x1234, 7 | 0x2000, 1024)
    assert len(raw) == 8
    assert int.from_bytes(raw[:4], "little") == 0x1234 | (7 | 0x2000) << 16
    assert int.from_bytes(raw[4:], "little") == 1024


def test_worker_limit_and_restart_settings_are_validated():
    with pytest.raises(UsageError) as exc:
        SupervisorConfig("x", workers=MAX_WORKERS + 1).validate()
    assert exc.value.one_line() == f"worker count {MAX_WORKERS + 1} is out of range; use -w between 1 and {MAX_WORKERS}"
    with pytest.raises(UsageError, match="restart burst"):
        SupervisorConfig("x", workers=2, restart_window=0).validate()


def test_the_ring_refuses_a_non_tso_architecture():
    check_architecture("x86_64")
    with pytest.raises(UsageError) as exc:
        check_architecture("aarch64")
    assert "aarch64" in exc.value.msg and exc.value.hint == "use --rx recv on this architecture"


def test_more_than_256_fanout_workers_on_an_old_kernel_is_bad_input(monkeypatch):
    import pfrps.config as config  # noqa: PLC0415

    monkeypatch.setattr(config, "kernel_version", lambda release=None: (5, 10))
    with pytest.raises(UsageError) as exc:
        SupervisorConfig("x", workers=257, rx="recv").validate()
    assert "need Linux 5.11+" in exc.value.msg
    assert exc.value.hint == "use -w 256 or fewer, or --steering filter"
    SupervisorConfig("x", workers=256, rx="recv").validate()                      # the old limit holds
    SupervisorConfig("x", workers=257, rx="recv", steering="filter").validate()   # filter mode has none
