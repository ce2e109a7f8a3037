"""pfrps-ac end to end: the AC in the node namespace, a scapy-built PPPoE client in the injector's.

The AC runs as ``python -m pfrps.ac`` (readiness through ``--ready-fd``, counters through
``--json`` lines); the client is an AF_PACKET socket opened inside the injector namespace
(``pyroute2.netns.pushns``/``popns``: the socket keeps its namespace). Frames are built with
:mod:`pfrps.ac.protocol`'s scapy encoder and every reply is dissected with scapy.

"Nothing was sent" is proven without sleeping: frames of one MAC reach one worker in order,
so after the frame under test the client sends a PADI from the same MAC and waits for its
PADO; anything the AC sent for the first frame arrives before it and is caught.
"""

from __future__ import annotations

import pytest
from scapy.layers.l2 import Ether
from scapy.layers.ppp import PPP, PPP_LCP_Echo, PPPoE, PPPoED

from pfrps.ac import protocol as p
from pfrps.hashing import worker_for
from pfrps.testing.ac import AC_MAC, AC_NAME, WORKERS, ACProcess, PPPoEClient, client_mac, is_disc, tag, tags, totals
from pfrps.topology import TwoNodeTopology

pytestmark = pytest.mark.root


@pytest.fixture
def topo():
    with TwoNodeTopology.unique(prefix="ac-e2e") as t:
        yield t


@pytest.mark.parametrize("steering", ["filter", "fanout"])
def test_ac_end_to_end(topo, steering):
    n, k = 48, 10
    macs = [client_mac(i) for i in range(n)]
    owner = {m: int(w) for m, w in zip(macs, worker_for(b"".join(macs), WORKERS))}
    assert set(owner.values()) == set(range(WORKERS))
    # a one-hour cookie window: no window boundary between the PADIs of step 2
    ac = ACProcess(topo, "--service-name", "internet", "--service-name", "voip", "--steering", steering,
                   "--cookie-window", "3600")
    cl = PPPoEClient(topo)
    try:
        # 1. PADI from every client -> PADO with AC-Name, Service-Name, cookie, Host-Uniq, Relay-Session-Id
        relay = {m: (b"relay-%d" % i if i % 2 else None) for i, m in enumerate(macs)}
        cl.send(*(p.build_padi(m, b"internet", b"hu-%d" % i, relay[m]) for i, m in enumerate(macs)))
        pados = {f[:6]: f for f in cl.expect(n, lambda f: is_disc(f, p.PADO))}
        assert set(pados) == set(macs)
        cookies = {}
        for i, m in enumerate(macs):
            pkt = Ether(pados[m])
            assert pkt.src == AC_MAC.hex(":") and pkt[PPPoED].sessionid == 0
            t = tags(pados[m])
            assert t[0] == (p.TAG_AC_NAME, AC_NAME)
            assert t[1] == (p.TAG_SERVICE_NAME, b"internet") and (p.TAG_SERVICE_NAME, b"voip") in t
            cookies[m] = tag(pados[m], p.TAG_AC_COOKIE)
            assert cookies[m] is not None and len(cookies[m]) == 16
            assert tag(pados[m], p.TAG_HOST_UNIQ) == b"hu-%d" % i
            assert tag(pados[m], p.TAG_RELAY_SESSION_ID) == relay[m]
        assert len(set(cookies.values())) == n

        # 2. the cookie is stateless and deterministic: the same PADI gets the same cookie
        cl.send(p.build_padi(macs[0], b"internet", b"again"))
        (again,) = cl.expect(1, lambda f: is_disc(f, p.PADO, macs[0]))
        assert tag(again, p.TAG_AC_COOKIE) == cookies[macs[0]]

        # 3. PADR -> PADS; session ids unique and in the owning worker's partition
        cl.send(*(p.build_padr(m, AC_MAC, b"internet", cookies[m], b"hu-%d" % i, relay[m]) for i, m in enumerate(macs)))
        padss = {f[:6]: f for f in cl.expect(n, lambda f: is_disc(f, p.PADS))}
        sid = {m: Ether(padss[m])[PPPoED].sessionid for m in macs}
        assert len(set(sid.values())) == n and 0 not in sid.values() and 0xFFFF not in sid.values()
        for i, m in enumerate(macs):
            assert sid[m] % WORKERS == owner[m], "session id outside the owning worker's partition"
            assert tag(padss[m], p.TAG_HOST_UNIQ) == b"hu-%d" % i
            assert tag(padss[m], p.TAG_RELAY_SESSION_ID) == relay[m]
            assert tag(padss[m], p.TAG_SERVICE_NAME) == b"internet"

        # 4. a retransmitted PADR (same MAC, same Host-Uniq) gets the same session
        cl.send(p.build_padr(macs[0], AC_MAC, b"internet", cookies[macs[0]], b"hu-0"))
        (dup,) = cl.expect(1, lambda f: is_disc(f, p.PADS, macs[0]))
        assert Ether(dup)[PPPoED].sessionid == sid[macs[0]]

        # 5. a PADR with a bad cookie gets nothing
        x = client_mac(1000)
        cl.send(p.build_padr(x, AC_MAC, b"internet", cookies[macs[0]], b"x"))
        cl.barrier(x)

        # 6. a PADR for an unknown service gets PADS with Service-Name-Error and session id 0
        y = client_mac(1001)
        cl.send(p.build_padr(y, AC_MAC, b"iptv", bytes(16), b"y"))
        (err,) = cl.expect(1, lambda f: is_disc(f, p.PADS, y))
        assert Ether(err)[PPPoED].sessionid == 0
        assert tag(err, p.TAG_SERVICE_NAME_ERROR) is not None and tag(err, p.TAG_HOST_UNIQ) == b"y"

        # 7. a PADI for an unknown service gets no PADO (RFC 2516 5.2)
        cl.send(p.build_padi(y, b"iptv"))
        cl.barrier(y)

        # 8. LCP Echo-Request on every session -> Echo-Reply: same id and data, magic 0
        cl.send(*(p.build_lcp_echo_request(m, AC_MAC, sid[m], i, 0x5EED0000 + i, b"ka-%d" % i)
                  for i, m in enumerate(macs)))
        for f in cl.expect(n, lambda f: f[12:14] == b"\x88\x64" and f[20:22] == b"\xc0\x21" and f[22] == p.LCP_ECHO_REPLY):
            m = f[:6]
            i = macs.index(m)
            pkt = Ether(f)
            e = pkt[PPP_LCP_Echo]
            assert pkt[PPPoE].sessionid == sid[m] and pkt[PPP].proto == p.PPP_LCP
            assert (e.id, e.magic_number, bytes(e.data)) == (i, 0, b"ka-%d" % i)

        # 9. frames on unknown sessions -> PADT with that session id
        cl.send(p.build_lcp_echo_request(macs[1], AC_MAC, sid[macs[2]], 1))  # another client's session id
        (padt,) = cl.expect(1, lambda f: is_disc(f, p.PADT, macs[1]))
        assert Ether(padt)[PPPoED].sessionid == sid[macs[2]]
        cl.send(p.encode_session(AC_MAC, x, 0x0BAD, b"\x00\x21" + bytes(20)))  # IPv4 from a stranger
        (padt,) = cl.expect(1, lambda f: is_disc(f, p.PADT, x))
        assert Ether(padt)[PPPoED].sessionid == 0x0BAD

        # 10. PADT from k clients ends their sessions; the gauge comes down; their ids are dead
        cl.send(*(p.build_padt(AC_MAC, m, sid[m]) for m in macs[:k]))
        ac.wait_for(lambda s: sum(s["sessions"]) == n - k and sum(s["padt_rx"]) == k, f"{n - k} sessions")
        cl.send(p.build_lcp_echo_request(macs[0], AC_MAC, sid[macs[0]], 99))
        (padt,) = cl.expect(1, lambda f: is_disc(f, p.PADT, macs[0]))
        assert Ether(padt)[PPPoED].sessionid == sid[macs[0]]

        # 11. malformed frames are counted, not answered
        good = p.build_padi(x, b"internet")
        cl.send(good[:18], good[:14] + b"\x21" + good[15:], p.build_padi(bytes.fromhex("01005e0000fe"), b""))
        cl.barrier(x)

        # 12. exact counters, all workers
        # padi: n (1) + again (2) + barrier x (5) + unknown service + barrier y (7) + barrier x (11);
        # the multicast-source PADI of 11 counts as malformed. pado: the same less the unknown service.
        # Outcomes: served = PADOs + PADSs (incl. the error) + PADTs received + echoes + PADTs sent;
        # ignored = the unoffered PADI + the bad cookie; they and malformed add up to the frames handled.
        expect = {"padi": n + 5, "pado": n + 4, "padr": n + 3, "pads": n + 1, "pads_error": 1, "bad_cookie": 1,
                  "ignored": 2, "echo": n, "padt_tx": 3, "padt_rx": k, "sessions": n - k, "malformed": 3,
                  "served": 3 * n + k + 9, "handler_errors": 0, "tx_errors": 0, "drops": 0, "restarts": 0}
        snap = ac.wait_for(lambda s: {c: totals(s)[c] for c in expect} == expect, f"exactly {expect}")
        assert totals(snap)["frames"] == expect["served"] + expect["ignored"] + expect["malformed"]
        per_worker = [0] * WORKERS
        for m in macs[k:]:
            per_worker[owner[m]] += 1
        assert snap["sessions"] == per_worker
        cl.assert_no_stray()
    finally:
        rc, final = ac.stop()
        cl_frames = cl.expect(n - k, lambda f: is_disc(f, p.PADT)) if rc == 0 else []
        cl.close()
    # 13. shutdown: every worker sends PADT for each of its sessions and the gauge reaches 0
    assert rc == 0, "\n".join(ac.log)
    assert sorted(Ether(f)[PPPoED].sessionid for f in cl_frames) == sorted(sid[m] for m in macs[k:])
    assert sum(final["sessions"]) == 0 and sum(final["padt_tx"]) == 3 + n - k
    assert sum(final["handler_errors"]) == 0
    assert not [ln for ln in ac.log if "error" in ln or "Traceback" in ln], ac.log


def test_ac_any_service(topo):
    """Without --service-name the AC serves whatever Service-Name is asked (RFC 2516: empty = any);
    one MAC holds a session per service with --sessions-per-mac 2."""
    ac = ACProcess(topo, "--sessions-per-mac", "2")
    cl = PPPoEClient(topo)
    try:
        m = client_mac(7)
        for service in (b"", b"anything-at-all"):
            cl.send(p.build_padi(m, service, b"u"))
            (pado,) = cl.expect(1, lambda f: is_disc(f, p.PADO, m))
            assert [v for t, v in tags(pado) if t == p.TAG_SERVICE_NAME] == [service]
            cl.send(p.build_padr(m, AC_MAC, service, tag(pado, p.TAG_AC_COOKIE), service + b"u"))
            (pads,) = cl.expect(1, lambda f: is_disc(f, p.PADS, m))
            assert Ether(pads)[PPPoED].sessionid != 0
        ac.wait_for(lambda s: sum(s["sessions"]) == 2 and sum(s["pads"]) == 2, "2 sessions")
        cl.assert_no_stray()
    finally:
        rc, final = ac.stop()
        cl.close()
    assert rc == 0 and sum(final["sessions"]) == 0
