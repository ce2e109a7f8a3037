"""pfrps.xdp.attach.Attachments inside a fresh namespace: XDP in both modes (BPF links) detached,
TC programs on tcx links (no clsact made; one that was there is kept), the netlink path (a named
namespace: XDP in the same mode, clsact created and removed), pins and pin directories removed,
close idempotent and in reverse order, a failure half-way undone by close."""

from __future__ import annotations

import ctypes
import os
import tempfile
from pathlib import Path

import pytest

from pfrps.bpfload import CompiledModule, builtin_program
from pfrps.errors import InterfaceError
from pfrps.xdp.attach import BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_XDP, Attachments, XdpBusyError
from tests.xdp_helpers import fresh_netns

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def progs():
    with CompiledModule(builtin_program("xdp_pass.bpf.c")) as xmod, \
            CompiledModule(builtin_program("tc_broadcast.bpf.c")) as tmod:
        fds = (xmod.load("pfrps_xdp_pass", prog_type=BPF_PROG_TYPE_XDP),
               tmod.load("pfrps_tc_bcast", prog_type=BPF_PROG_TYPE_SCHED_CLS))
        yield fds
        for fd in fds:
            os.close(fd)


def _probe():
    from pyroute2 import IPRoute

    from pfrps import bpfsys
    from pfrps.xdp.attach import xdp_attached

    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME"): (xdp_attached(link["index"]),
                                                sorted(q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(link["index"])),
                                                len({f["info"] >> 16 for f in ipr.get_filters(link["index"], parent=0xFFFFFFF2)}),
                                                len(bpfsys.prog_query(link["index"], bpfsys.BPF_TCX_INGRESS)))
                for link in ipr.get_links()}


def private_bpffs(mountpoint: str) -> None:
    """In this (forked) process only: a mount namespace of its own with a bpffs at ``mountpoint``
    (unshare(2) CLONE_NEWNS, mount(2)); it vanishes with the process, the host's mounts untouched."""
    libc = ctypes.CDLL(None, use_errno=True)
    clone_newns, ms_rec, ms_private = 0x00020000, 0x4000, 1 << 18
    if libc.unshare(clone_newns) or libc.mount(None, b"/", None, ms_rec | ms_private, None) \
            or libc.mount(b"bpf", mountpoint.encode(), b"bpf", 0, None):
        raise OSError(ctypes.get_errno(), "cannot set up a private bpffs")


def scenario(xdp_fd: int, tc_fd: int, bpffs: str) -> dict:
    """Runs in the child inside the namespace; returns what it saw at each step."""
    private_bpffs(bpffs)
    pin_root = f"{bpffs}/xdp-cli-attach"
    seen = {"pin_root": pin_root}
    att = Attachments()
    att.xdp("veth0", xdp_fd, generic=False)
    att.xdp("veth1", xdp_fd, generic=True)
    att.tc("peer0", tc_fd, "ingress", "pfrps_tc_bcast")
    att.tc("peer1", tc_fd, "ingress", "pfrps_tc_bcast")  # tcx takes a program once per hook
    pdir = att.pin_dir(pin_root)
    att.pin(xdp_fd, str(pdir / "prog"))
    order = []
    att.callback(lambda: order.append("callback"), "callback")
    seen["attached"] = _probe()
    seen["pinned"] = sorted(p.name for p in pdir.iterdir())
    try:
        att.xdp("veth0", xdp_fd, generic=True)
    except XdpBusyError as exc:
        seen["busy"] = exc.one_line()
    try:
        att.xdp("nope0", xdp_fd, generic=False)
    except InterfaceError as exc:
        seen["missing"] = exc.one_line()
    seen["describe"] = att.describe()
    seen["via"] = dict(att.via)
    att.close()
    att.close()  # idempotent
    seen["order"] = order
    seen["closed"] = _probe()
    seen["pin_dir_left"] = Path(pin_root).exists()
    return seen


def test_attach_and_undo_everything(progs):
    bpffs = tempfile.mkdtemp(prefix="xdp-cli-attach-bpffs-")
    try:
        with fresh_netns("xdp-cli-attach", pairs=(("veth0", "peer0"), ("veth1", "peer1"))) as box:
            seen = box.call(scenario, *progs, bpffs)
    finally:
        os.rmdir(bpffs)
    pin_root = seen["pin_root"]
    att = seen["attached"]
    prog_id = att["veth0"][0][0]
    assert att["veth0"][0] == (prog_id, "native")
    assert att["veth1"][0] == (prog_id, "generic")
    assert seen["via"] == {"XDP": "bpf_link", "TC ingress": "tcx"}
    assert all("clsact" not in att[p][1] and att[p][2] == 0 and att[p][3] == 1 for p in ("peer0", "peer1"))
    assert seen["pinned"] == ["prog"]
    assert seen["busy"].startswith(f"veth0 already carries XDP program {prog_id} (pfrps_xdp_pass) in native mode")
    assert "interface 'nope0' not found" in seen["missing"]
    assert seen["describe"] == ["XDP on veth0", "XDP on veth1", "tcx ingress on peer0", "tcx ingress on peer1",
                                f"pin directory {pin_root}", f"pin {pin_root}/prog", "callback"]
    assert seen["order"] == ["callback"]
    assert all(x is None and "clsact" not in q and n == 0 and t == 0
               for x, q, n, t in seen["closed"].values()), seen["closed"]
    assert not seen["pin_dir_left"]


def _keep_clsact(tc_fd: int) -> tuple:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        ipr.tc("add", "clsact", ipr.link_lookup(ifname="veth0")[0])
    with Attachments() as att:
        att.tc("veth0", tc_fd, "egress", "pfrps_tc_bcast")
        during = _probe()["veth0"]
    return during, _probe()["veth0"]


def test_clsact_that_was_there_stays(progs):
    with fresh_netns("xdp-cli-attach") as box:
        during, after = box.call(_keep_clsact, progs[1])
    assert "clsact" in during[1] and "clsact" in after[1]


def test_attachments_in_a_named_namespace(progs):
    """Attachments(netns=NAME) works on that namespace's interfaces from outside it."""
    from pfrps.xdp.attach import resolve_ifindex, xdp_attached

    with fresh_netns("xdp-cli-attach") as box:
        with Attachments(netns=box.name) as att:
            idx = att.xdp("veth0", progs[0], generic=True)
            assert idx == box.ifindex("veth0") == resolve_ifindex("veth0", box.name)
            assert xdp_attached(idx, box.name)[1] == "generic"
            att.tc("veth1", progs[1])
            assert _clsact_in(box) == {"veth1"}
        assert xdp_attached(idx, box.name) is None
        assert _clsact_in(box) == set()
        with pytest.raises(InterfaceError, match=f"not found in network namespace {box.name}"):
            resolve_ifindex("nope0", box.name)


def _clsact_in(box) -> set[str]:
    with box.ipr() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()
                if any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(link["index"]))}
