"""The suite's closing leak check (tests/conftest.py ``nothing_left_behind``) counts only the
namespaces this session created: another program's namespace on the machine must not fail it.

A namespace made outside pfrps (pyroute2 directly, as any other tool would) while the suite runs
is not in ``$PFRPS_NETNS_REGISTRY``, so :func:`tests.conftest.suite_netns` does not list it; one
made through :func:`pfrps.topology.create_netns` is listed until it is removed.
"""

from __future__ import annotations

import pytest

from pfrps.topology import create_netns, remove_netns, unique_suffix
from tests.conftest import netns_names, suite_netns

pytestmark = pytest.mark.root


def test_foreign_namespace_is_not_counted_the_suites_own_is():
    from pyroute2 import netns

    foreign = f"leak-check-foreign-{unique_suffix()}"
    ours = f"leak-check-suite-{unique_suffix()}"
    netns.create(foreign)  # another program's namespace: not registered
    try:
        create_netns(ours)
        try:
            assert {foreign, ours} <= netns_names()
            assert foreign not in suite_netns()
            assert ours in suite_netns()
        finally:
            remove_netns(ours)
        assert ours not in suite_netns()
    finally:
        netns.remove(foreign)
    assert foreign not in netns_names()
