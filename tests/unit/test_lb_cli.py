"""pfrps-xdp lb's command line without privileges: the parser, backend lists, help text."""

from __future__ import annotations

import argparse

import pytest

from pfrps.errors import UsageError
from pfrps.xdp import lb_backends, lb_service
from pfrps.xdp.cli import build_parser, lab_classes


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["lb", *argv])


def test_lb_and_its_lab_are_registered():
    args = parse("-i", "veth6", "--vip", "10.0.0.10", "--backend", "10.0.0.2", "--backend", "10.0.0.3@de:ad:be:ef:00:03")
    assert args.func is lb_service.run_lb
    assert args.backend == ["10.0.0.2", "10.0.0.3@de:ad:be:ef:00:03"]
    assert args.ring_size == 65537 and args.port == [] and args.generic is False
    assert lab_classes()["lb"][1].__name__ == "LbLab"


def test_backends_from_options_and_file(tmp_path):
    pool = tmp_path / "pool"
    pool.write_text("10.0.0.4\n")
    args = parse("-i", "veth6", "--vip", "10.0.0.10", "--backend", "10.0.0.2", "--backend-file", str(pool))
    assert lb_backends.collect_backends(args.backend, args.backend_file) == [lb_backends.Backend("10.0.0.2"),
                                                                             lb_backends.Backend("10.0.0.4")]


@pytest.mark.parametrize("argv,needle", [
    ((), "no backend given"),
    (("--backend", "10.0.0.2", "--backend", "10.0.0.2@02:00:00:00:00:02"), "given twice"),
    (("--backend", "10.0.0.2/24"), "not an IPv4 address"),
])
def test_backend_list_errors_name_the_fix(argv, needle):
    with pytest.raises(UsageError, match=needle) as exc:
        args = parse("-i", "veth6", "--vip", "10.0.0.10", *argv)
        lb_backends.collect_backends(args.backend, args.backend_file)
    assert exc.value.exit_status == 2 and exc.value.hint


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["lb", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "pfrps-xdp lab lb" in out and "--backend-file" in out
