"""Fuzzing pfrps-ac's handler directly (no sockets): 20,000 seeded random and mutated frames.

The 1,000,000-frame run is ``bench/fuzz.py``; the socket runs are ``tests/root/test_fuzz.py``.
"""

from __future__ import annotations

import pytest

from pfrps.ac import protocol as p
from pfrps.testing.fuzz_frames import KINDS, fuzz_ac_direct, generate, kernel_view

C = bytes.fromhex("020000000001")
PADI = p.build_padi(C, b"internet", encoder="struct")
S_TAG, C_TAG = b"\x88\xa8\x00\x0a", b"\x81\x00\x00\x64"


def test_the_generator_is_seeded_and_makes_every_kind():
    a = list(generate(7, 3000))
    assert a == list(generate(7, 3000)) and a != list(generate(8, 3000))
    assert {k for k, _ in a} == set(KINDS)
    safe = [f for _, f in generate(7, 3000, socket_safe=True)]
    assert min(map(len, safe)) >= 14 and max(map(len, safe)) <= 1514


# (description, frame sent, ethertypes, expected kernel view: None or (frame seen, vlan_tci))
VIEW_CASES = [
    ("untagged PADI: as sent", PADI, None, (PADI, None)),
    ("802.1Q PADI: tag stripped into vlan_tci", p.with_vlan(PADI, C_TAG), None, (PADI, 0x0064)),
    ("QinQ PADI: S-tag stripped, C-tag stays", p.with_vlan(PADI, S_TAG + C_TAG), None,
     (p.with_vlan(PADI, C_TAG), 0x000A)),
    ("three tags: the steering program stops after two", p.with_vlan(PADI, S_TAG + C_TAG + C_TAG), None, None),
    ("a tagged frame of 19 bytes: freed by skb_vlan_untag", (PADI[:12] + C_TAG + b"\x88\x63\x11")[:19], None, None),
    ("a tagged frame of 20 bytes: delivered, stripped", PADI[:12] + C_TAG + PADI[12:16], None, (PADI[:16], 0x0064)),
    ("IPv4: not a wanted ethertype", PADI[:12] + b"\x08\x00" + PADI[14:], None, None),
    ("IPv4 with every ethertype wanted", PADI[:12] + b"\x08\x00" + PADI[14:], (), (PADI[:12] + b"\x08\x00" + PADI[14:], None)),
    ("13 bytes: nothing", PADI[:13], (), None),
    ("ethertype 0x0100 is a length, never matched", PADI[:12] + b"\x01\x00" + PADI[14:], (0x0100,), None),
]


@pytest.mark.parametrize("desc,frame,ethertypes,want", VIEW_CASES, ids=[c[0] for c in VIEW_CASES])
def test_kernel_view(desc, frame, ethertypes, want):
    args = () if ethertypes is None else (ethertypes,)
    assert kernel_view(frame, *args) == want, desc


def test_20000_fuzzed_frames_through_the_ac_handler():
    """Zero exceptions, every reply well formed, served + ignored + malformed == frames, the session
    table within its limit, and every session gone after on_stop."""
    r = fuzz_ac_direct(2516, 20_000, workers=2, frame_seconds=1e-3, echo_interval=2.0, echo_misses=2,
                       max_sessions=50, padt_rate=50.0, padt_burst=20)
    assert r["exceptions"] == 0, r["tracebacks"]
    assert r["bad_replies"] == 0 and r["replies"] > 1000
    assert r["outcomes_add_up"] and r["frames"] > 19_000
    c = r["counters"]
    for name in ("pads", "pads_error", "padt_tx", "malformed", "tagged", "echo", "echo_tx", "expired", "replaced",
                 "padt_ratelimited", "bad_cookie"):
        assert c[name] > 0, f"the fuzz never reached {name}: {c}"
    assert r["largest_table"] <= 50 and r["state"]["sessions"] == r["state"]["ids_in_use"] == c["sessions"] <= 100
    assert r["state"]["by_uniq"] == r["state"]["sessions"] and r["sessions_after_stop"] == 0
