"""pfrps-ac's command line: one-line errors with exit status 2, and the stats line."""

from __future__ import annotations

import pytest

from pfrps.ac.cli import build_parser, format_line, main


@pytest.mark.parametrize("argv,needle", [
    ([], "the following arguments are required"),
    (["-i", "eth0"], "--ac-name"),
    (["-i", "eth0", "--ac-name", ""], "AC name must not be empty"),
    (["-i", "eth0", "--ac-name", "a", "--service-name", ""], "omit --service-name to accept any service"),
    (["-i", "eth0", "--ac-name", "x" * 256], "at most 255"),
    (["-i", "eth0", "--ac-name", "a", "-w", "0"], "worker count 0 is out of range"),
    (["-i", "eth0", "--ac-name", "a", "--steering", "hash"], "invalid choice"),
    (["-i", "eth0", "--ac-name", "a", "--duration", "-1"], "must be above 0"),
    (["-i", "eth0", "--ac-name", "a", "--ready-fd", "x"], "ready fd must be an integer"),
    (["-i", "eth0", "--ac-name", "a", "--max-sessions", "70000"], "max sessions 70000 is out of range 0..65534"),
    (["-i", "eth0", "--ac-name", "a", "--sessions-per-mac", "0"], "sessions per MAC 0 is out of range"),
    (["-i", "eth0", "--ac-name", "a", "--echo-interval", "-1"], "echo interval -1 must be 0 or above"),
    (["-i", "eth0", "--ac-name", "a", "--echo-interval", "inf"], "must be 0 or above and finite"),
    (["-i", "eth0", "--ac-name", "a", "--echo-misses", "0"], "echo misses 0 is out of range 1..255"),
    (["-i", "eth0", "--ac-name", "a", "--cookie-window", "0"], "cookie window 0 must be above 0"),
    (["-i", "eth0", "--ac-name", "a", "--padt-rate", "0"], "PADT rate 0 must be above 0"),
    (["-i", "eth0", "--ac-name", "a", "--padt-rate", "fast"], "PADT rate must be frames/s"),
    (["-i", "eth0", "--ac-name", "a", "--padt-burst", "0"], "PADT burst 0 is out of range"),
    (["-i", "eth0", "--ac-name", "a", "--outer-tpid", "0x9100"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, argv, needle):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pfrps-ac: error: ") and needle in err, err


def test_missing_interface_is_a_usage_error(capsys):
    assert main(["-i", "nosuch0", "--ac-name", "a"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interface 'nosuch0' not found" in err


def test_bad_hash_alg_is_a_usage_error(capsys):
    assert main(["-i", "lo", "--ac-name", "a", "-a", "md5"]) == 2
    assert "unknown hash algorithm" in capsys.readouterr().err


def test_help_has_examples():
    text = build_parser().format_help()
    assert "examples:" in text and "pfrps-ac -i enp1s0" in text


def test_format_line():
    snap = {"padi": [3, 1], "pado": [3, 1], "padr": [2, 1], "pads": [2, 1], "sessions": [2, 0],
            "bad_cookie": [0, 1], "malformed": [0, 0], "drops": [0, 0], "restarts": [1, 0]}
    assert format_line(snap) == ("padi/pado/padr/pads/sessions #0:3/3/2/2/2 #1:1/1/1/1/0 total:4/4/3/3/2 "
                                 "bad_cookie #1:1 (total:1) restarts #0:1 (total:1)")


def test_bounds_have_sane_defaults():
    args = build_parser().parse_args(["-i", "eth0", "--ac-name", "a"])
    assert (args.max_sessions, args.sessions_per_mac, args.echo_interval, args.echo_misses, args.cookie_window,
            args.padt_rate, args.padt_burst, args.outer_tpid) == (0, 1, 30.0, 3, 60.0, 100.0, 100, "auto")
