"""Argument errors: one line naming the problem and the fix, exit status 2, no traceback."""

import pytest

from pfrps.cli import parse_ethertypes
from pfrps.errors import UsageError
from tests.helpers import assert_bad_input, run_cli

PFRPS_BAD = [
    (["-w", "8"], "required: -i"),
    (["-i", "lo", "-w", "0"], "worker count 0 is out of range 1..1024"),
    (["-i", "lo", "-w", "1025"], "worker count 1025 is out of range"),
    (["-i", "lo", "-w", "eight"], "worker count must be an integer"),
    (["-i", "lo", "-a", "crc32"], "unknown hash algorithm"),
    (["-i", "lo", "-a", "7"], "unknown hash algorithm"),
    (["-i", "lo", "-e", "0x0100"], "bad ethertype"),
    (["-i", "lo", "-e", "pppox"], "bad ethertype"),
    (["-i", "lo", "--steering", "rr"], "invalid choice"),
    (["-i", "lo", "--duration", "0"], "must be above 0"),
    (["-i", "lo", "--cpus", "0-x"], "malformed CPU list"),
    (["-i", "lo", "--cpus", "99"], "not available"),
    (["-i", "lo", "-b", "/nonexistent/rps.bpf.c"], "not found"),
    (["-i", "lo", "--ring-block-size", "5000"], "page size"),
    (["-i", "lo", "--ring-frame-size", "100"], "16"),
]


@pytest.mark.parametrize("args,needle", PFRPS_BAD, ids=[" ".join(a) for a, _ in PFRPS_BAD])
def test_pfrps_bad_arguments(args, needle):
    line = assert_bad_input(run_cli("pfrps", args), "pfrps", needle)
    assert ";" in line  # the fix follows the problem


PFINJECT_BAD = [
    (["-i", "lo", "-d", "52:54:00:84:d7"], "malformed MAC address"),
    (["-i", "lo", "-d", "zz:54:00:84:d7:ff"], "malformed MAC address"),
    (["-i", "lo", "-d", "52:54:00:84:d7:ff", "-p", "0"], "frame count 0 is out of range"),
    (["-i", "lo", "-d", "52:54:00:84:d7:ff", "--rate", "-5"], "rate -5 is negative"),
    (["-i", "lo", "-d", "52:54:00:84:d7:ff", "--macs", "file"], "needs --mac-file"),
    (["-i", "lo", "-d", "52:54:00:84:d7:ff", "--macs", "file", "--mac-file", "/nonexistent"], "cannot read MAC file"),
    (["-d", "52:54:00:84:d7:ff"], "required: -i"),
]


@pytest.mark.parametrize("args,needle", PFINJECT_BAD, ids=[" ".join(a) for a, _ in PFINJECT_BAD])
def test_pfinject_bad_arguments(args, needle):
    assert_bad_input(run_cli("pfrps.inject", args), "pfinject", needle)


@pytest.mark.parametrize("text,want", [("pppoe", (0x8863, 0x8864)), ("all", ()), ("0x8863", (0x8863,)),
                                       ("0x8863,0x8863,ipv4", (0x8863, 0x0800)), ("34916", (0x8864,))])
def test_parse_ethertypes(text, want):
    assert parse_ethertypes(text) == want


def test_parse_ethertypes_rejects_too_small():
    with pytest.raises(UsageError, match="bad ethertype '0x05ff'"):
        parse_ethertypes("0x05ff")


def test_help_has_examples():
    res = run_cli("pfrps", ["-h"])
    assert res.returncode == 0 and "examples:" in res.stdout and "--ebpf-rps" in res.stdout
