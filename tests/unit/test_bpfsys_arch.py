"""``__NR_bpf`` is looked up per architecture, and an unknown one is a one-line usage error."""

from __future__ import annotations

import errno
import platform

import pytest

from pfrps import bpfsys
from pfrps.errors import UsageError


@pytest.mark.parametrize("machine, number", [("x86_64", 321), ("aarch64", 280), ("riscv64", 280),
                                             ("i686", 357), ("armv7l", 386), ("ppc64le", 361), ("s390x", 351)])
def test_known_architectures(machine, number):
    assert bpfsys.nr_bpf(machine) == number


def test_this_host_is_known():
    assert bpfsys.nr_bpf() == bpfsys.NR_BPF[platform.machine()]


def test_unknown_architecture_is_a_usage_error_naming_it():
    with pytest.raises(UsageError) as exc:
        bpfsys.nr_bpf("vax")
    assert exc.value.code == errno.ENOTSUP
    line = exc.value.one_line()
    assert "'vax'" in line and "NR_BPF" in line and "\n" not in line
