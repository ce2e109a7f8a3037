"""pfrps-xdp's parser and registries, and the lab's /proc/net/snmp reader (no privileges needed)."""

from __future__ import annotations

import pytest

from pfrps.xdp import cli, lab
from pfrps.xdp.lab import _proc_net_counter


def parse(*argv: str):
    return cli.build_parser().parse_args(list(argv))


def test_common_options_and_defaults():
    a = parse("l3fwd", "--mode", "fib", "-i", "uno", "-i", "dos")
    assert a.interfaces == ["uno", "dos"] and a.mode == "fib"
    assert (a.generic, a.duration, a.interval, a.json, a.log_level) == (False, None, 2.0, False, "info")
    b = parse("pass", "-i", "veth0", "--generic", "--duration", "1.5", "--interval", "0.5", "--json")
    assert (b.generic, b.duration, b.interval, b.json) == (True, 1.5, 0.5, True)
    assert callable(a.func) and callable(b.func) and a.func is not b.func


def test_map_pairs_keep_their_order():
    a = parse("l3fwd", "--mode", "map", "-i", "uno", "-r", "dos", "--src-mac", "02:00:00:00:00:01",
              "--dest-mac", "02:00:00:00:00:02", "--src-mac", "02:00:00:00:00:03", "--dest-mac", "02:00:00:00:00:04")
    assert a.src_mac == ["02:00:00:00:00:01", "02:00:00:00:00:03"]
    assert a.dest_mac == ["02:00:00:00:00:02", "02:00:00:00:00:04"]


@pytest.mark.parametrize("argv", [["l3fwd", "-i", "uno"], ["l3fwd", "--mode", "bogus", "-i", "x"], ["pass"],
                                  ["pass", "-i", "x", "--interval", "0"], ["broadcast"], ["lab", "nope"]])
def test_argparse_rejects(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2


def test_labs_registered_with_their_options():
    labs = cli.lab_classes()
    assert list(labs) == ["router", "switch", "lb", "cloud"]
    assert all(issubclass(cls, lab.Lab) for _, cls in labs.values())
    a = parse("lab", "router", "--mode", "map", "--generic", "--count", "3")
    assert (a.lab, a.mode, a.generic, a.count, a.prefix) == ("router", "map", True, 3, "pfrps")
    b = parse("lab", "switch", "--xdp")
    assert (b.xdp, b.generic, b.count) == (True, False, 3)


def test_subcommand_modules_all_register():
    names = {m.rsplit(".", 1)[1] for m in cli.SUBCOMMANDS}
    assert {"l3fwd", "broadcast", "cloud", "lb"} <= names


@pytest.mark.parametrize("alias,name", [("case04", "router"), ("case05", "switch"), ("cloud-host", "cloud")])
def test_seed_case_names_are_aliases_of_the_labs(alias, name):
    """The seed documents' case names still run their lab, which ``args.lab`` names."""
    old, new = parse("lab", alias), parse("lab", name)
    assert old.lab == new.lab == name
    assert old.func.__defaults__ == new.func.__defaults__  # the same Lab class


def test_help_names_what_each_program_does(capsys):
    with pytest.raises(SystemExit):
        parse("--help")
    out = capsys.readouterr().out
    for word in ("router", "broadcast switch", "load balancer", "cloud host"):
        assert word in out, word
    with pytest.raises(SystemExit):
        parse("lab", "--help")
    out = capsys.readouterr().out
    assert "router (case04)" in out and "switch (case05)" in out and "cloud (cloud-host)" in out


def test_proc_net_counters(tmp_path):
    snmp = tmp_path / "snmp"
    snmp.write_text("Ip: Forwarding DefaultTTL InReceives ForwDatagrams\nIp: 1 64 1000 42\n"
                    "Icmp: InMsgs\nIcmp: 3\n")
    assert _proc_net_counter(str(snmp), "Ip", "ForwDatagrams") == 42
    snmp6 = tmp_path / "snmp6"
    snmp6.write_text("Ip6InReceives                   \t10\nIp6OutForwDatagrams             \t7\n")
    assert _proc_net_counter(str(snmp6), "", "Ip6OutForwDatagrams") == 7


def test_last_json_takes_the_final_line():
    assert lab.last_json('x\n{"a": 1}\nnoise\n{"a": 2}\n') == {"a": 2}
    assert lab.last_json("no json") == {}
