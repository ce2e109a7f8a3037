"""Attach XDP and TC programs through BPF links (netlink as the fallback), and undo every
attachment on close.

:class:`Attachments` records what it attached (XDP programs, tcx programs or cls_bpf filters,
clsact qdiscs it created, pins, any other undo step) and undoes it in reverse order on
:meth:`Attachments.close`, which is idempotent and runs from ``with`` blocks, signal handling
(:mod:`pfrps.xdp.runner`) and error paths alike.

Attachments die with their owner: XDP programs are attached through a BPF link
(``BPF_LINK_CREATE``, ``BPF_XDP``, kernel 5.9+) and TC programs through a tcx link
(``BPF_TCX_INGRESS``/``BPF_TCX_EGRESS``, kernel 6.6+). The kernel detaches a link's program when
the last fd to the link is closed, so a process killed by anything (SIGKILL, the OOM killer, a
crash) leaves nothing attached, and the same command can start again at once. Only on an older
kernel (``BPF_LINK_CREATE`` refused with EINVAL/ENOTSUPP) does it fall back to netlink
(``IFLA_XDP``; clsact + cls_bpf), logging once that a killed process would leave those behind
(``ip link set dev DEV xdp off`` / ``tc qdisc del dev DEV clsact`` then). A forked child inherits
the link fds; code that forks while holding attachments and wants them to end with this process
closes :meth:`Attachments.link_fds` in the child. Whatever must outlive the process on purpose
(the pinned maps of ``pfrps-xdp l2fwd``'s management commands) is pinned explicitly
(:meth:`Attachments.pin`) and unpinned on close.

Sources: rtnetlink(7) ``IFLA_XDP`` (``IFLA_XDP_FD``, ``IFLA_XDP_FLAGS``, ``XDP_FLAGS_*`` in
uapi/linux/if_link.h), tc-bpf(8) (``clsact``, direct-action ``cls_bpf``), bpf(2) ``BPF_OBJ_PIN``.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Callable, Sequence

from ..errors import InterfaceError, PfrpsError, PrivilegeError, UsageError

__all__ = ["resolve_ifindex", "xdp_attached", "Attachments", "XdpBusyError", "XDP_FLAGS_UPDATE_IF_NOEXIST",
           "XDP_FLAGS_SKB_MODE", "XDP_FLAGS_DRV_MODE", "TC_H_INGRESS", "TC_H_EGRESS", "BPF_FS",
           "BPF_PROG_TYPE_XDP", "BPF_PROG_TYPE_SCHED_CLS"]

log = logging.getLogger("pfrps.xdp")
#: Errnos with which an older kernel refuses a link type (EINVAL: unknown attach type; ENOTSUPP,
#: 524, the kernel-internal "not supported"; ENOSYS: no bpf(2)): attach through netlink instead.
_NO_LINK_ERRNOS = (errno.EINVAL, 524, errno.ENOSYS)
_fallback_said: set[str] = set()

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_REPLACE = 1 << 4
#: clsact's ingress and egress hooks as cls_bpf parents (tc-bpf(8): ``ffff:fff2`` / ``ffff:fff3``).
TC_H_INGRESS = 0xFFFFFFF2
TC_H_EGRESS = 0xFFFFFFF3
BPF_FS = Path("/sys/fs/bpf")
#: ``enum bpf_prog_type`` (uapi/linux/bpf.h).
BPF_PROG_TYPE_SCHED_CLS = 3
BPF_PROG_TYPE_XDP = 6
_XDP_MODES = {1: "native", 2: "generic", 3: "offload", 4: "multi"}


class XdpBusyError(UsageError):
    """The interface already carries an XDP program (which is never replaced silently)."""

    def __init__(self, msg: str | None = None, code: int = errno.EBUSY, hint: str = "") -> None:
        super().__init__(msg, code, hint)


def _ipr(netns: str | None):
    from pyroute2 import IPRoute  # noqa: PLC0415  (heavy import, only where needed)

    return IPRoute(netns=netns, flags=0) if netns else IPRoute()


def _netlink_error(exc: Exception) -> int:
    return getattr(exc, "code", 0) or errno.EIO


def resolve_ifindex(name: str, netns: str | None = None) -> int:
    """The ifindex of interface ``name`` in the namespace this process runs in (or ``netns``).

    Raises:
        InterfaceError: not a valid name, or no such interface; the message says how to list them.
    """
    if not name or len(name) > 15 or "/" in name or any(c.isspace() for c in name):
        raise InterfaceError(f"invalid interface name {name!r}", hint="pass an interface name from `ip link` with -i")
    with _ipr(netns) as ipr:
        idx = ipr.link_lookup(ifname=name)
    if not idx:
        where = f"network namespace {netns}" if netns else "this network namespace"
        raise InterfaceError(f"interface {name!r} not found in {where}",
                             hint="list interfaces with `ip link` (run pfrps-xdp in the interface's namespace)")
    return int(idx[0])


def xdp_attached(ifindex: int, netns: str | None = None) -> tuple[int, str] | None:
    """``(program id, mode)`` of the XDP program on ``ifindex`` (mode ``native``/``generic``/...),
    or None when it carries none (``IFLA_XDP_ATTACHED`` / ``IFLA_XDP_PROG_ID``)."""
    with _ipr(netns) as ipr:
        link = ipr.get_links(ifindex)[0]
    xdp = link.get_attr("IFLA_XDP")
    if not xdp:
        return None
    mode = xdp.get_attr("IFLA_XDP_ATTACHED")
    if not mode:
        return None
    if isinstance(mode, str):
        mode = {"xdp": 1, "xdpgeneric": 2, "xdpoffload": 3, "xdpmulti": 4}.get(mode, 0)
    prog_id = xdp.get_attr("IFLA_XDP_PROG_ID") or xdp.get_attr("IFLA_XDP_SKB_PROG_ID") \
        or xdp.get_attr("IFLA_XDP_DRV_PROG_ID") or 0
    return int(prog_id), _XDP_MODES.get(int(mode), str(mode))


class Attachments:
    """Everything one run attached; :meth:`close` detaches it all, in reverse order.

    Args:
        netns: a named network namespace to attach in (default: the one this process runs in);
            attached through netlink there (a BPF link attaches in the caller's own namespace).

    Use as a context manager. Each ``xdp``/``tc``/``pin`` call registers its own undo step
    before returning, so a failure half-way leaves nothing behind once closed.
    """

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self._fds: list[int] = []
        self._links: list[int] = []
        #: How each hook was attached: ``{"XDP": "bpf_link" | "netlink", "TC": "tcx" | "netlink"}``.
        self.via: dict[str, str] = {}
        self.closed = False

    def link_fds(self) -> list[int]:
        """The BPF link fds held now (a forked child that must not keep the attachments alive
        closes these)."""
        return list(self._links)

    def _link(self, prog_fd: int, ifindex: int, attach_type: int, flags: int, ifname: str, hook: str):
        """Attach through a BPF link; returns its fd, or None when this kernel has no such link
        (then the caller attaches through netlink). Errors of the attachment itself raise."""
        from .. import bpfsys  # noqa: PLC0415

        if self.netns:  # a link attaches in the caller's namespace; netlink can reach another one
            self.via[hook] = "netlink"
            return None
        try:
            fd = bpfsys.link_create(prog_fd, ifindex, attach_type, flags)
        except PfrpsError as exc:
            code = exc.code
            if code in _NO_LINK_ERRNOS:
                self.via[hook] = "netlink"
                if hook not in _fallback_said:
                    _fallback_said.add(hook)
                    log.warning("this kernel cannot attach %s through a BPF link (%s): attaching through netlink, "
                                "so a pfrps-xdp killed by SIGKILL would leave its programs attached",
                                hook, os.strerror(code) if code != 524 else "ENOTSUPP")
                return None
            if code in (errno.EBUSY, errno.EEXIST) and hook == "XDP":
                busy = xdp_attached(ifindex, self.netns)
                if busy:
                    self._raise_busy(ifname, *busy)
            if code == errno.EOPNOTSUPP and hook == "XDP" and flags & XDP_FLAGS_DRV_MODE:
                raise UsageError(f"{ifname}'s driver has no native XDP",
                                 code=code, hint="add --generic to attach in generic (SKB) mode") from None
            if code == errno.EPERM:
                raise PrivilegeError(f"cannot attach {hook} to {ifname}: operation not permitted",
                                     hint="run as root or with CAP_NET_ADMIN and CAP_BPF") from None
            raise UsageError(f"cannot attach {hook} to {ifname}: {os.strerror(code)}", code=code,
                             hint="check the interface (MTU within the XDP limit, up) or try --generic"
                             if hook == "XDP" else "check that the kernel has tcx (6.6+)") from None
        self.via[hook] = "tcx" if hook.startswith("TC") else "bpf_link"
        self._links.append(fd)
        return fd

    def _close_link(self, fd: int) -> None:
        if fd in self._links:
            self._links.remove(fd)
            os.close(fd)

    # -- XDP --------------------------------------------------------------------------------------
    def xdp(self, ifname: str, prog_fd: int, generic: bool) -> int:
        """Attach XDP program ``prog_fd`` to ``ifname``, native (driver) or generic (SKB) mode.

        Returns:
            the ifindex.

        Raises:
            InterfaceError: no such interface.
            XdpBusyError: the interface already carries an XDP program (its id and name are named).
            UsageError: native mode on a driver without native XDP (the message names ``--generic``).
            PrivilegeError: EPERM (no CAP_NET_ADMIN).
        """
        from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

        ifindex = resolve_ifindex(ifname, self.netns)
        busy = xdp_attached(ifindex, self.netns)
        if busy:
            self._raise_busy(ifname, *busy)
        mode_flag = XDP_FLAGS_SKB_MODE if generic else XDP_FLAGS_DRV_MODE
        from .. import bpfsys  # noqa: PLC0415

        link = self._link(prog_fd, ifindex, bpfsys.BPF_XDP, mode_flag, ifname, "XDP")
        if link is not None:
            self._undo.append((f"XDP on {ifname}", lambda: self._close_link(link)))
            log.debug("attached XDP to %s (ifindex %d, %s) through BPF link fd %d", ifname, ifindex,
                      "generic" if generic else "native", link)
            return ifindex
        fd = os.dup(prog_fd)  # kept open until detached: XDP_FLAGS_REPLACE needs the expected fd
        self._fds.append(fd)
        try:
            with _ipr(self.netns) as ipr:
                ipr.link("set", index=ifindex, IFLA_XDP={"attrs": [
                    ("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", XDP_FLAGS_UPDATE_IF_NOEXIST | mode_flag)]})
        except NetlinkError as exc:
            code = _netlink_error(exc)
            if code == errno.EBUSY or code == errno.EEXIST:
                busy = xdp_attached(ifindex, self.netns)
                if busy:
                    self._raise_busy(ifname, *busy)
            if code == errno.EOPNOTSUPP and not generic:
                raise UsageError(f"{ifname}'s driver has no native XDP",
                                 code=code, hint="add --generic to attach in generic (SKB) mode") from None
            if code == errno.EPERM:
                raise PrivilegeError(f"cannot attach XDP to {ifname}: operation not permitted",
                                     hint="run as root or with CAP_NET_ADMIN and CAP_BPF") from None
            raise UsageError(f"cannot attach XDP to {ifname}: {os.strerror(code)}", code=code,
                             hint="check the interface (MTU within the XDP limit, up) or try --generic") from None
        self._undo.append((f"XDP on {ifname}", lambda: self._xdp_detach(ifname, ifindex, fd, mode_flag)))
        log.debug("attached XDP fd %d to %s (ifindex %d, %s)", fd, ifname, ifindex,
                  "generic" if generic else "native")
        return ifindex

    @staticmethod
    def _raise_busy(ifname: str, prog_id: int, mode: str) -> None:
        from .. import bpfsys  # noqa: PLC0415

        name = bpfsys.prog_name_by_id(prog_id)  # "" when it cannot be read
        what = f"{prog_id} ({name})" if name else f"{prog_id}"
        raise XdpBusyError(f"{ifname} already carries XDP program {what} in {mode} mode",
                           hint=f"detach it first (`ip link set dev {ifname} xdp off`; "
                                f"`xdpgeneric off` for generic mode), pfrps-xdp never replaces one")

    def _xdp_detach(self, ifname: str, ifindex: int, fd: int, mode_flag: int) -> None:
        from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

        # Same mode flag as the attach: without XDP_FLAGS_SKB_MODE a generic program stays
        # attached and netlink reports success. XDP_FLAGS_REPLACE with our fd as the expected
        # one: never detach a program somebody else attached since.
        try:
            with _ipr(self.netns) as ipr:
                ipr.link("set", index=ifindex, IFLA_XDP={"attrs": [
                    ("IFLA_XDP_FD", -1), ("IFLA_XDP_EXPECTED_FD", fd),
                    ("IFLA_XDP_FLAGS", mode_flag | XDP_FLAGS_REPLACE)]})
        except NetlinkError as exc:
            if _netlink_error(exc) != errno.ENODEV:  # the interface (its namespace) is gone
                log.warning("cannot detach XDP from %s: %s", ifname, os.strerror(_netlink_error(exc)))

    # -- TC ---------------------------------------------------------------------------------------
    def tc(self, ifname: str, prog_fd: int, direction: str = "ingress", name: str = "pfrps_tc") -> None:
        """Attach SCHED_CLS program ``prog_fd`` as a direct-action cls_bpf filter on ``ifname``'s
        clsact ``direction`` hook (``ingress``/``egress``), creating the clsact qdisc if missing.

        On close the filter goes, and the qdisc too when this call created it.

        Raises:
            InterfaceError: no such interface.
            UsageError: bad direction, or the kernel refused (message names the errno).
        """
        from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

        if direction not in ("ingress", "egress"):
            raise UsageError(f"bad TC direction {direction!r}", hint="use ingress or egress")
        parent = TC_H_INGRESS if direction == "ingress" else TC_H_EGRESS
        ifindex = resolve_ifindex(ifname, self.netns)
        from .. import bpfsys  # noqa: PLC0415

        link = self._link(prog_fd, ifindex, bpfsys.BPF_TCX_INGRESS if direction == "ingress" else bpfsys.BPF_TCX_EGRESS,
                          0, ifname, f"TC {direction}")
        if link is not None:
            self._undo.append((f"tcx {direction} on {ifname}", lambda: self._close_link(link)))
            return
        try:
            with _ipr(self.netns) as ipr:
                if not any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(ifindex)):
                    ipr.tc("add", "clsact", ifindex)
                    self._undo.append((f"clsact on {ifname}", lambda: self._tc_del_qdisc(ifname, ifindex)))
                used = {(f["info"] >> 16) & 0xFFFF for f in ipr.get_filters(ifindex, parent=parent)}
                prio = next(p for p in range(1, 0xFFFF) if p not in used)
                ipr.tc("add-filter", "bpf", ifindex, ":1", fd=prog_fd, name=name, parent=parent,
                       classid=1, direct_action=True, prio=prio)
        except NetlinkError as exc:
            code = _netlink_error(exc)
            if code == errno.EPERM:
                raise PrivilegeError(f"cannot attach a TC program to {ifname}: operation not permitted",
                                     hint="run as root or with CAP_NET_ADMIN and CAP_BPF") from None
            raise UsageError(f"cannot attach a TC program to {ifname} {direction}: {os.strerror(code)}",
                             code=code, hint="check that the kernel has clsact and cls_bpf") from None
        self._undo.append((f"cls_bpf on {ifname}",
                           lambda: self._tc_del_filter(ifname, ifindex, parent, prio)))

    def _tc_del_filter(self, ifname: str, ifindex: int, parent: int, prio: int) -> None:
        from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

        try:
            with _ipr(self.netns) as ipr:
                ipr.tc("del-filter", "bpf", ifindex, ":1", parent=parent, prio=prio)
        except NetlinkError as exc:
            if _netlink_error(exc) not in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
                log.warning("cannot remove the TC filter from %s: %s", ifname, os.strerror(_netlink_error(exc)))

    def _tc_del_qdisc(self, ifname: str, ifindex: int) -> None:
        from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

        try:
            with _ipr(self.netns) as ipr:
                ipr.tc("del", "clsact", ifindex)
        except NetlinkError as exc:
            if _netlink_error(exc) not in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
                log.warning("cannot remove the clsact qdisc from %s: %s", ifname, os.strerror(_netlink_error(exc)))

    # -- pins and the rest ------------------------------------------------------------------------
    def pin(self, fd: int, path: str) -> None:
        """Pin map or program ``fd`` at ``path`` (under /sys/fs/bpf); unlinked on close.

        Raises:
            UsageError: the path exists or is not in a bpffs.
        """
        from .. import bpfsys  # noqa: PLC0415

        try:
            bpfsys.obj_pin(fd, path)
        except PfrpsError as exc:
            raise UsageError(f"cannot pin at {path}: {os.strerror(exc.code) if exc.code else exc.msg}",
                             code=exc.code or errno.EINVAL,
                             hint="pick a path under /sys/fs/bpf that does not exist yet") from None
        self._undo.append((f"pin {path}", lambda: Path(path).unlink(missing_ok=True)))

    def pin_dir(self, path: str) -> Path:
        """Create directory ``path`` (under /sys/fs/bpf) for pins; removed on close (with its pins).

        Raises:
            UsageError: it exists already, or cannot be made.
        """
        p = Path(path)
        try:
            p.mkdir(mode=0o700)
        except OSError as exc:
            raise UsageError(f"cannot create pin directory {path}: {exc.strerror}", code=exc.errno or errno.EINVAL,
                             hint="pick a new directory under /sys/fs/bpf") from None

        def remove() -> None:
            for child in p.iterdir():
                child.unlink(missing_ok=True)
            p.rmdir()
        self._undo.append((f"pin directory {path}", remove))
        return p

    # -- programs ---------------------------------------------------------------------------------
    def program(self, source: str, cflags: Sequence[str] = ()):
        """Compile ``bpf/<source>`` with bcc (``-D`` knobs in ``cflags``); released on close.

        Returns:
            a :class:`pfrps.bpfload.CompiledModule` (``.table(name)`` for its maps).

        Raises:
            BpfCompileError, KernelHeadersError, BccMissingError: see :mod:`pfrps.bpfload`.
        """
        from ..bpfload import CompiledModule, builtin_program  # noqa: PLC0415

        mod = CompiledModule(builtin_program(source), cflags)
        self._undo.append((f"compiled {source}", mod.close))
        return mod

    def load(self, mod, func: str, prog_type: int = BPF_PROG_TYPE_XDP) -> int:
        """Load entry point ``func`` of ``mod`` as ``prog_type`` (XDP or SCHED_CLS); the fd is
        closed on close, after everything attached later has been detached.

        Raises:
            PrivilegeError: EPERM (no CAP_BPF).
            BpfLoadError: the verifier refused it.
        """
        try:
            fd = mod.load(func, prog_type=prog_type)
        except PfrpsError as exc:
            if exc.code == errno.EPERM:
                raise PrivilegeError(f"cannot load BPF program {func}: operation not permitted",
                                     hint="run as root or with CAP_BPF and CAP_NET_ADMIN") from None
            raise
        self._undo.append((f"program {func}", lambda: os.close(fd)))
        return fd

    def callback(self, fn: Callable[[], None], what: str = "callback") -> None:
        """Run ``fn()`` on close (in reverse order with the rest)."""
        self._undo.append((what, fn))

    def describe(self) -> list[str]:
        """What is attached now, oldest first (``XDP on uno``, ``cls_bpf on sw1``, ...)."""
        return [what for what, _ in self._undo]

    def close(self) -> None:
        """Undo everything, newest first. Idempotent; an undo step that fails is logged, and the
        rest still run."""
        from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

        while self._undo:
            what, fn = self._undo.pop()
            try:
                fn()
            except (PfrpsError, OSError, NetlinkError) as exc:  # every other undo step must still run
                log.warning("cannot undo %s: %s", what, exc)
        while self._fds:
            os.close(self._fds.pop())
        while self._links:
            os.close(self._links.pop())
        self.closed = True

    def __enter__(self) -> "Attachments":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
