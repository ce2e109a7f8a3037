"""The header shared by C and Python agrees with the Python side."""

import re

from pfrps.bpfload import bpf_source_dir
from pfrps.hashing import ALGORITHMS


def test_hash_enum_matches_python():
    text = (bpf_source_dir() / "pfrps.h").read_text()
    enum = {name.lower(): int(val) for name, val in re.findall(r"PFRPS_HASH_(\w+)\s*=\s*(\d+)", text)}
    assert enum == {"mac": 0, "mac_jhash": 1, "jhash_oaat": 2}
    assert sorted(ALGORITHMS.values()) == sorted(enum.values())


def test_sources_found_relative_to_package():
    d = bpf_source_dir()
    for name in ("pfrps.h", "pfrps_parse.h", "pfrps_hash.h", "pfrps_steer.h", "rps_filter.bpf.c", "rps_fanout.bpf.c"):
        assert (d / name).is_file(), name
