"""``pfrps-bng -i acc0 -i acc1``: one BNG on two access ports (issue 16), exact counts.

Topology: :class:`pfrps.bng.topology.BngTopology` (``mi-sub-*`` sub0 -- acc0 ``mi-bng-*`` up0 --
inet0 ``mi-inet-*``) plus a second subscribers' namespace (``mi-sub2-*``: sub1 -- acc1,
:meth:`pfrps.bng.topology.BngTopology.add_port`), the fixture of tests/root/bng_ports.py. One
scaled client per port, each with its own subscriber set (MAC seed and user numbers): sessions
come up on both ports, upstream traffic from both reaches the Internet side, downstream traffic
to every session leaves by that session's own port (XDP: the session entry's access ifindex), exact counts everywhere.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections import Counter

import pytest

from pfrps.bng import lab
from tests.helpers import PY
from tests.root.bng_ports import ACC2, SUB2, two_port_topology
from tests.root.bng_ports import client as _client

pytestmark = pytest.mark.root

topo = two_port_topology("mi")


@pytest.mark.parametrize("generic", [False, True], ids=["native", "generic"])
def test_two_access_ports_sessions_and_traffic_exact(topo, tmp_path, generic):
    count, k = 24, 4
    sink = lab.start_sink(topo)
    assert sink.ready
    secrets = lab.write_secrets(tmp_path / "secrets", 2 * count)
    b = lab.start_bng(topo, secrets, "-i", ACC2, *(["--generic"] if generic else []), workers=3)
    clients = []
    try:
        assert b.ready, b.finish()[2]
        traffic = ("--traffic", str(k), "--dst4", lab.DST4)
        clients.append(_client(topo, topo.sub, topo.injector_if, count, 1, 1, *traffic))
        clients.append(_client(topo, topo.sub2, SUB2, count, count + 1, 2, *traffic))
        assert all(c.ready for c in clients)
        shown = lab.show_sessions(topo)
        sessions = shown["sessions"]
        assert len(sessions) == 2 * count and shown["dataplane_entries"] == 2 * count
        assert len({s["ipv4"] for s in sessions}) == 2 * count
        assert Counter(s["up_packets"] for s in sessions) == {k: 2 * count}
        assert lab.send_downstream(topo, [s["ipv4"] for s in sessions], k) == 2 * count * k
        results = []
        for c in clients:
            status, out, err = c.finish()
            assert status == 0, err
            results.append(json.loads(out))
    finally:
        for c in clients:
            if c.proc.poll() is None:
                c.finish(signal.SIGKILL)
    for res in results:
        assert res["up"] == count and res["failed"] == 0, res["failed_by_reason"]
        # every session's downstream frames came back on its own port: none lost, none crossed
        assert Counter(r["rx_packets"] for r in res["records"]) == {k: count}
    macs1 = {r["mac"] for r in results[0]["records"]}
    macs2 = {r["mac"] for r in results[1]["records"]}
    assert not macs1 & macs2 and macs1 | macs2 == {s["mac"] for s in sessions}
    got = json.loads(sink.finish()[1])
    assert got["ipv4"] == 2 * count * k
    after = lab.show_sessions(topo)
    assert after["sessions"] == [] and after["dataplane_entries"] == 0
    status, out, err = b.finish(signal.SIGTERM)
    assert status == 0 and "Traceback" not in err, err
    assert "acc0" in err and ACC2 in err  # the start-up line names both access ports
    last = out.splitlines()[-1]
    dp = dict(re.findall(r"(\w+):(\d+)", last.split("dp ", 1)[1]))
    # upstream: forwarded in XDP, or (the first, before the uplink's neighbour is resolved)
    # decapsulated to the kernel, which forwards it: the sink counted every one above
    assert int(dp["up"]) + int(dp.get("up_no_neigh", 0)) == 2 * count * k, last
    assert int(dp["down"]) == 2 * count * k, last


@pytest.mark.parametrize("ports, needle", [(["acc0", "acc0"], "acc0 is given more than once"),
                                           (["acc0", "mi-nope0"], "mi-nope0"),
                                           (["acc0", "up0"], "both the access and the uplink")])
def test_bad_access_port_lists_are_one_line_exit_2(topo, tmp_path, ports, needle):
    from tests.helpers import assert_bad_input

    secrets = lab.write_secrets(tmp_path / "secrets", 1)
    argv = [PY, "-m", "pfrps.bng", *(a for name in ports for a in ("-i", name)), "--uplink", topo.uplink,
            "-w", "2", "--pool", "100.64.0.0/24", "--secrets", str(secrets)]
    res = topo.run(topo.bng, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert_bad_input(res, "pfrps-bng", needle)
    links = topo.run(topo.bng, ["ip", "-d", "link"], stdout=subprocess.PIPE, text=True).stdout
    assert "prog/xdp" not in links and "xdpgeneric" not in links  # nothing attached, nothing left
