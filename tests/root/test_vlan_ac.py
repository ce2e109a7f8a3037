"""802.1Q and QinQ PPPoE through pfrps-ac end to end (issue 10, failure 7), namespaces vlan-ac-*.

This kernel has no VLAN devices, so the client builds tagged frames itself (the tags in the
frame, as a switch port would send them) and the veths carry them. On receive the kernel
strips the outer tag into the skb's vlan_tci: the AC gets it as ``meta.vlan_tci`` (and any inner
tag in the frame), the steering program must find the PPPoE ethertype behind it, and every
reply must carry the tags back. The client reads the tag its own kernel stripped from
``tpacket_auxdata`` (PPPoEClient.recv). Fails on an AC that ignores tagged frames, or steering that
reads the ethertype after one tag only (QinQ delivered nothing).
"""

from __future__ import annotations

import struct

import pytest
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPPoED

from pfrps.ac import protocol as p
from pfrps.hashing import worker_for
from pfrps.topology import TwoNodeTopology
from pfrps.testing.ac import AC_MAC, WORKERS, ACProcess, PPPoEClient, client_mac, ethertype, tag, totals

pytestmark = pytest.mark.root

C_TAG = struct.pack("!HH", 0x8100, 0x2064)  # 802.1Q, PCP 1, VID 100
S_TAG = struct.pack("!HH", 0x88A8, 0x000A)  # 802.1ad, VID 10
C_OUTER = struct.pack("!HH", 0x8100, 0x0007)  # 802.1Q as the outer tag of 0x8100/0x8100, VID 7
C_TAG7 = struct.pack("!HH", 0x8100, 0xE0C8)  # 802.1Q, PCP 7, VID 200
#: untagged, 802.1Q, QinQ 0x88a8/0x8100, 802.1Q with another VID and priority, an 802.1ad S-tag
#: alone (its TPID reaches the handler as meta.vlan_tpid, so --outer-tpid auto puts back 0x88a8).
TAG_SETS = (b"", C_TAG, S_TAG + C_TAG, C_TAG7, S_TAG)


@pytest.fixture(scope="module")
def topo():
    with TwoNodeTopology.unique(prefix="vlan-ac") as t:
        yield t


def tags_of(f: bytes) -> bytes:
    off = 12
    while f[off:off + 2] in (b"\x81\x00", b"\x88\xa8"):
        off += 4
    return f[12:off]


def untag(f: bytes) -> bytes:
    return f[:12] + f[12 + len(tags_of(f)):]


def is_reply(f: bytes, dst: bytes, code: int) -> bool:
    u = untag(f)
    return u[:6] == dst and u[12:14] == b"\x88\x63" and u[15] == code


def serve_tagged(cl: PPPoEClient, mac: bytes, tags: bytes) -> int:
    """A whole discovery, an echo and a frame on an unknown session, all carrying ``tags``; every
    reply must carry the same tags. Returns the session id."""
    cl.send(p.with_vlan(p.build_padi(mac, b"internet", b"hu-v"), tags))
    (pado,) = cl.expect(1, lambda f: is_reply(f, mac, p.PADO))
    assert tags_of(pado) == tags
    cookie = tag(untag(pado), p.TAG_AC_COOKIE)
    cl.send(p.with_vlan(p.build_padr(mac, AC_MAC, b"internet", cookie, b"hu-v"), tags))
    (pads,) = cl.expect(1, lambda f: is_reply(f, mac, p.PADS))
    assert tags_of(pads) == tags and tag(untag(pads), p.TAG_HOST_UNIQ) == b"hu-v"
    sid = Ether(untag(pads))[PPPoED].sessionid
    assert sid != 0
    cl.send(p.with_vlan(p.build_lcp_echo_request(mac, AC_MAC, sid, 9, 0, b"vlan"), tags))
    (rep,) = cl.expect(1, lambda f: untag(f)[:6] == mac and ethertype(f) == p.ETH_P_PPP_SES)
    assert tags_of(rep) == tags
    m = p.parse_frame(rep)
    assert (m.session_id, m.lcp_code, m.lcp_id, m.lcp_data) == (sid, p.LCP_ECHO_REPLY, 9, b"vlan")
    cl.send(p.with_vlan(p.encode_session(AC_MAC, mac, sid ^ 0x4000, b"\x00\x21" + bytes(20)), tags))
    (padt,) = cl.expect(1, lambda f: is_reply(f, mac, p.PADT))
    assert tags_of(padt) == tags and Ether(untag(padt))[PPPoED].sessionid == sid ^ 0x4000
    return sid


def test_scapy_agrees_on_the_tagged_frames():
    """The frames this test sends are what scapy's Dot1AD/Dot1Q layers build."""
    base = p.build_padi(client_mac(1), b"internet", b"hu-v")
    want = Ether(dst="ff:ff:ff:ff:ff:ff", src=client_mac(1).hex(":"), type=0x88A8) / Dot1AD(vlan=10, type=0x8100) / \
        Dot1Q(prio=1, vlan=100, type=0x8863) / Ether(base).payload
    assert p.with_vlan(base, S_TAG + C_TAG) == bytes(want)


@pytest.mark.parametrize("steering", ["fanout", "filter"])
def test_8021q_and_qinq_served_with_tags_echoed_on_the_owning_worker(topo, steering):
    n = 16
    macs = [client_mac(200 + i) for i in range(n)]
    owner = [int(w) for w in worker_for(b"".join(macs), WORKERS)]
    assert set(owner) == set(range(WORKERS))
    ac = ACProcess(topo, "--steering", steering)
    cl = PPPoEClient(topo)
    try:
        for i, m in enumerate(macs):
            tags = TAG_SETS[i % len(TAG_SETS)]
            sid = serve_tagged(cl, m, tags)
            assert sid % WORKERS == owner[i], "steering put a tagged subscriber on another worker"
        tagged = 4 * sum(1 for i in range(n) if TAG_SETS[i % len(TAG_SETS)])
        snap = ac.wait_for(lambda s: totals(s)["sessions"] == n and totals(s)["tagged"] == tagged,
                           f"{n} sessions, {tagged} tagged frames")
        per_worker = [owner.count(w) for w in range(WORKERS)]
        assert snap["sessions"] == per_worker and totals(snap)["malformed"] == 0
        cl.assert_no_stray()
    finally:
        rc, final = ac.stop()
        bye = cl.expect(n, lambda f: is_reply(f, untag(f)[:6], p.PADT)) if rc == 0 else []
        cl.close()
    assert rc == 0 and sum(final["handler_errors"]) == 0
    # shutdown PADTs go out on each session's VLANs too
    assert sorted((untag(f)[:6], tags_of(f)) for f in bye) == sorted(
        (m, TAG_SETS[i % len(TAG_SETS)]) for i, m in enumerate(macs))


@pytest.mark.parametrize("outer", [(), ("--outer-tpid", "0x8100")], ids=["auto", "forced"])
def test_qinq_8100_8100(topo, outer):
    """0x8100/0x8100 QinQ: the stripped outer tag's TPID reaches the handler (meta.vlan_tpid from
    tp_vlan_tpid), so auto puts 0x8100 back, as does --outer-tpid 0x8100."""
    ac = ACProcess(topo, *outer)
    cl = PPPoEClient(topo)
    try:
        serve_tagged(cl, client_mac(300), C_OUTER + C_TAG)
        serve_tagged(cl, client_mac(301), C_TAG)
        ac.wait_for(lambda s: totals(s)["sessions"] == 2 and totals(s)["tagged"] == 8, "2 tagged sessions")
    finally:
        rc, _final = ac.stop()
        cl.close()
    assert rc == 0


def test_three_tags_are_not_delivered(topo):
    """Steering looks through two tags at most: a third hides the ethertype, so the frame never
    reaches a worker (frames counter unchanged), while a two-tag one does."""
    ac = ACProcess(topo)
    cl = PPPoEClient(topo)
    try:
        m = client_mac(400)
        cl.send(p.with_vlan(p.build_padi(m, b"internet", b"x"), S_TAG + C_TAG + C_TAG))
        cl.send(p.with_vlan(p.build_padi(m, b"internet", b"y"), S_TAG + C_TAG))
        (pado,) = cl.expect(1, lambda f: is_reply(f, m, p.PADO))
        assert tag(untag(pado), p.TAG_HOST_UNIQ) == b"y"
        snap = ac.wait_for(lambda s: totals(s)["pado"] == 1, "one PADO")
        assert totals(snap)["frames"] == 1 and totals(snap)["malformed"] == 0
    finally:
        rc, _final = ac.stop()
        cl.close()
    assert rc == 0
