"""pfinject --vlan/--qinq: the tagged template, and one-line errors for bad VLAN ids."""

from __future__ import annotations

import pytest

from pfrps.inject.cli import main
from pfrps.inject.frames import FRAME_LEN, build_template


def test_tagged_templates_are_the_seed_frame_behind_the_tags():
    plain = build_template("52:54:00:84:d7:ff")
    q = build_template("52:54:00:84:d7:ff", vlans=[(0x8100, 100)])
    qinq = build_template("52:54:00:84:d7:ff", vlans=[(0x88A8, 10), (0x8100, 100)])
    assert len(plain) == FRAME_LEN and len(q) == FRAME_LEN + 4 and len(qinq) == FRAME_LEN + 8
    assert q == plain[:12] + bytes.fromhex("81000064") + plain[12:]
    assert qinq == plain[:12] + bytes.fromhex("88a8000a 81000064".replace(" ", "")) + plain[12:]


@pytest.mark.parametrize("argv,needle", [
    (["--vlan", "0"], "VLAN id 0 is out of range 1..4094"),
    (["--vlan", "4095"], "out of range 1..4094"),
    (["--vlan", "x"], "VLAN id must be an integer"),
    (["--qinq", "10"], "--qinq takes S-VID:C-VID"),
    (["--qinq", "10:5000"], "VLAN id 5000 is out of range"),
    (["--vlan", "5", "--qinq", "1:2"], "not allowed with argument --vlan"),
])
def test_bad_vlan_arguments_exit_2_with_one_line(capsys, argv, needle):
    with pytest.raises(SystemExit) as exc:
        main(["-i", "lo", "-d", "52:54:00:84:d7:ff", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
