"""The two-access-port BNG lab that test_bng_multi_interface and test_bng_ports_timers share.

:func:`two_port_topology` makes the module-scoped ``topo`` fixture: a
:class:`pfrps.bng.topology.BngTopology` (``<prefix>-sub-*`` sub0 -- acc0 ``<prefix>-bng-*`` up0 --
inet0 ``<prefix>-inet-*``) plus a second subscribers' namespace ``topo.sub2``
(``<prefix>-sub2-*``: :data:`SUB2` -- :data:`ACC2`, :meth:`BngTopology.add_port`);
:func:`client` starts a scaled ``pfrps.bng.client`` on one port.
"""

from __future__ import annotations

import pytest

from pfrps.bng import lab
from pfrps.bng.topology import BngTopology
from pfrps.topology import unique_suffix
from tests.helpers import PY

#: The BNG's second access port, the subscribers' interface facing it, and the port's MAC.
ACC2, SUB2, ACC2_MAC = "acc1", "sub1", "52:54:00:b0:00:02"


def two_port_topology(prefix: str):
    """A module-scoped pytest fixture (assign it to ``topo``) yielding a created two-port
    :class:`BngTopology` whose namespaces are named ``<prefix>-...-<random>`` (a prefix per test
    file keeps their names apart); every namespace is removed when the module's tests end."""

    @pytest.fixture(scope="module")
    def topo():
        t = BngTopology(prefix=prefix).create()
        try:
            t.sub2 = f"{prefix}-sub2-{unique_suffix()}"
            t.add_port(t.sub2, SUB2, ACC2, ACC2_MAC)
            yield t
        finally:
            t.destroy()

    return topo


def client(topo, ns: str, ifname: str, count: int, first: int, seed: int, *args: str) -> lab.Proc:
    """``pfrps.bng.client`` in ``ns`` on ``ifname``: ``count`` subscribers from user number
    ``first``, MACs from ``seed``, sessions held until stopped, JSON output; ``args`` appended."""
    return lab._start(topo, ns, [PY, "-m", "pfrps.bng.client", "-i", ifname, "-n", str(count), "--first", str(first),
                                 "--seed", str(seed), "--hold", "inf", "--json", "--quiet", *args], 300)
