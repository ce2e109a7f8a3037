"""Helpers for the XDP/TC tests: a fresh network namespace with veth pairs, and test runs in it.

A BPF_PROG_TEST_RUN of a program that redirects or clones really transmits, to ifindexes of
the caller's namespace; :func:`test_run_in` runs it in a forked child inside the fresh
namespace (:func:`pfrps.xdp.lab.call_in_netns`), never in the host's. Import the fixture into
a test module (``from tests.xdp_helpers import netns_box  # noqa: F401``) or use
:func:`fresh_netns` directly.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import pytest

from pfrps import bpfsys
from pfrps.topology import create_netns, remove_netns, unique_suffix
from pfrps.xdp.lab import call_in_netns


@dataclass
class NetnsBox:
    """A fresh namespace ``name`` holding veth pairs ``pairs`` (both ends up, here).

    Attributes:
        name: the namespace's name.
        pairs: ``((a, b), ...)`` interface names of each veth pair.
        links: ``{ifname: (ifindex, mac)}`` of every interface made.
    """

    name: str
    pairs: Sequence[tuple[str, str]]
    links: dict[str, tuple[int, str]] = field(default_factory=dict)

    def ifindex(self, ifname: str) -> int:
        """The ifindex of ``ifname`` inside the namespace."""
        return self.links[ifname][0]

    def mac(self, ifname: str) -> str:
        """The MAC (``aa:bb:...``) of ``ifname``."""
        return self.links[ifname][1]

    def call(self, fn: Callable[..., Any], *args) -> Any:
        """``fn(*args)`` in a forked child inside the namespace; returns its result."""
        return call_in_netns(self.name, fn, *args)

    def ipr(self):
        """A pyroute2 IPRoute inside the namespace (use as a context manager)."""
        from pyroute2 import IPRoute  # noqa: PLC0415

        return IPRoute(netns=self.name, flags=0)


@contextmanager
def fresh_netns(prefix: str = "xdp-test", pairs: Sequence[tuple[str, str]] = (("veth0", "veth1"),),
                ipv6: bool = False, macs: dict[str, str] | None = None) -> Iterator[NetnsBox]:
    """A uniquely named namespace ``<prefix>-<8 hex>`` with the veth ``pairs``, always removed."""
    name = f"{prefix}-{unique_suffix()}"
    create_netns(name, ipv6=ipv6)
    box = NetnsBox(name, tuple(pairs))
    try:
        with box.ipr() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            for a, b in pairs:
                spec: dict = {"ifname": a, "kind": "veth", "peer": {"ifname": b}}
                if macs and a in macs:
                    spec["address"] = macs[a]
                if macs and b in macs:
                    spec["peer"]["address"] = macs[b]
                ipr.link("add", **spec)
            for a, b in pairs:
                for ifname in (a, b):
                    idx = ipr.link_lookup(ifname=ifname)[0]
                    ipr.link("set", index=idx, state="up")
                    box.links[ifname] = (idx, ipr.get_links(idx)[0].get_attr("IFLA_ADDRESS"))
        yield box
    finally:
        remove_netns(name)


@pytest.fixture
def netns_box() -> Iterator[NetnsBox]:
    """A fresh namespace (``pxt-*``) with one veth pair ``veth0 <-> veth1``, removed afterwards."""
    with fresh_netns() as box:
        yield box


def _run(prog_fd: int, frame: bytes, repeat: int) -> tuple[int, bytes]:
    return bpfsys.prog_test_run_frame(prog_fd, frame, repeat)


def test_run_in(box: NetnsBox, prog_fd: int, frame: bytes, repeat: int = 1) -> tuple[int, bytes]:
    """BPF_PROG_TEST_RUN of ``prog_fd`` on ``frame`` inside ``box``'s namespace:
    ``(retval, output frame)``."""
    return box.call(_run, prog_fd, bytes(frame), repeat)


test_run_in.__test__ = False  # a helper, not a test
