"""pfrps.links' pyroute2 calls work from inside a running asyncio/uvloop loop
(:func:`pfrps.links.outside_running_loop`), as Supervisor.serve() and embedding programs need."""

import asyncio
import threading

import pytest
import uvloop

from pfrps.errors import InterfaceError
from pfrps.links import check_interface, outside_running_loop


@pytest.mark.parametrize("policy", ["asyncio", "uvloop"])
def test_check_interface_inside_a_running_loop(policy):
    def check_interface_lo():
        try:
            return check_interface("lo").ifindex
        except InterfaceError as exc:  # lo is not Ethernet-like: the lookup itself worked
            return exc

    async def main():
        return check_interface_lo()

    runner = uvloop.run if policy == "uvloop" else asyncio.run
    got = runner(main())
    plain = check_interface_lo()
    assert type(got) is type(plain)
    assert str(got) == str(plain)


def test_runs_directly_without_a_loop_and_in_a_thread_with_one():
    seen = []

    @outside_running_loop
    def where(x):
        seen.append(threading.current_thread() is threading.main_thread())
        return x * 2

    assert where(21) == 42

    async def main():
        return where(4)

    assert asyncio.run(main()) == 8
    assert seen == [True, False]


def test_errors_reach_the_caller():
    @outside_running_loop
    def boom():
        raise InterfaceError("no such interface", hint="x")

    async def main():
        boom()

    with pytest.raises(InterfaceError, match="no such interface"):
        asyncio.run(main())
