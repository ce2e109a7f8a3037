"""``pfrps-xdp l2fwd`` and its management commands: XDP on a cloud host (seed 003).

``l2fwd -i eth0 -i eth1`` attaches ``xdp_l2fwd`` to each uplink, makes the maps of
:mod:`pfrps.xdp.cloud_maps`, pins them (and the two ACL programs) in a per-instance directory
``<bpffs>/pfrps-xdp/<name>`` (name: ``cloud-<network namespace inode>``, so the commands below
find the instance of their own namespace), prints the counters until SIGINT/SIGTERM or
``--duration``, then detaches everything and removes the pins. While it runs:

* ``fdb add|del|show`` (``--mac``, ``--vlan``, ``--dev``; ``--no-acl``): FDB entries; ``add``
  also puts the device in the port map, with the devmap ACL program ``acl_vm_tx`` unless
  ``--no-acl`` (the seed's ``xdp_l2fwd`` tool does the same);
* ``vm add|del|show`` (``--id``, ``--dev``, ``--mac``, ``--vlan``, ``-4``, ``-6``): vm_info,
  and the VM port's receive-side program (``xdp_vmegress``, or ``acl_vm_rx`` with
  ``--vm-rx acl``) attached to ``--dev`` through a BPF link pinned in the instance's directory
  (``link_vm_<ifindex>``: the command that attaches it exits at once, the attachment must stay);
  ``vm del`` and the instance's exit remove the pin, which detaches it;
* ``acl add|del|show --dev DEV --to-vm|--from-vm RULE`` (:mod:`pfrps.xdp.acl` syntax).

The same entries can be given at start (``--fdb``, ``--vm``, ``--acl-to-vm``, ``--acl-from-vm``)
or as a ``--config`` file of management command lines. Device ifindexes are resolved, and the
port map written, in the caller's network namespace: run the commands where the devices are.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import os
import shlex
from pathlib import Path

from .. import bpfsys
from ..errors import InterfaceError, PfrpsError, UsageError
from .acl import format_rule, parse_rule
from .attach import BPF_FS, XDP_FLAGS_DRV_MODE, XDP_FLAGS_REPLACE, XDP_FLAGS_SKB_MODE, \
    XDP_FLAGS_UPDATE_IF_NOEXIST, Attachments, resolve_ifindex, xdp_attached
from .cloud_maps import COUNTERS, MAX_UPLINKS, CloudMaps, CloudPrograms, VmInfo, format_mac, parse_mac
from .runner import add_common

__all__ = ["register", "Instance", "instance_dir", "open_instance", "BPFFS_MAGIC"]

log = logging.getLogger("pfrps.xdp")

#: statfs(2) f_type of a bpffs (BPF_FS_MAGIC, uapi/linux/magic.h).
BPFFS_MAGIC = 0xCAFE4A11
_PROG_PINS = ("prog_acl_vm_tx", "prog_vm_rx")

EXAMPLES = """\
examples:
  pfrps-xdp l2fwd -i eth0 -i eth1                        # empty FDB: everything to the stack
  pfrps-xdp l2fwd -i eth0 -i eth1 --vm 1,tap1,52:54:00:00:00:01,vlan=10,4=10.1.0.1 \\
            --fdb 52:54:00:00:00:01,10,tap1 --acl-to-vm tap1:proto=tcp,dport=25
  pfrps-xdp l2fwd -i eth0 -i eth1 --config host.conf     # lines: fdb add ... / vm add ... / acl add ...
  pfrps-xdp vm add --id 1 --dev tap1 --mac 52:54:00:00:00:01 --vlan 10 -4 10.1.0.1
  pfrps-xdp fdb add --mac 52:54:00:00:00:01 --vlan 10 --dev tap1
  pfrps-xdp acl add --dev tap1 --to-vm proto=tcp,dport=25       # no SMTP to the VM
  pfrps-xdp acl add --dev tap1 --from-vm ipv4,proto=udp,addr=10.9.9.9,dport=53
  pfrps-xdp fdb show; pfrps-xdp vm show; pfrps-xdp acl show --to-vm
  pfrps-xdp fdb del --mac 52:54:00:00:00:01 --vlan 10   # that VM's traffic back to the slow path
"""


# -- the instance's directory -----------------------------------------------------------------
def _netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def instance_dir(bpffs: str | os.PathLike | None, name: str | None) -> Path:
    """``<bpffs>/pfrps-xdp/<name>``; name defaults to ``cloud-<this network namespace's inode>``.

    Raises:
        UsageError: ``bpffs`` is not a mounted bpffs, or the name is not a plain file name.
    """
    root = Path(bpffs) if bpffs else BPF_FS
    try:
        is_bpffs = _fs_type(root) == BPFFS_MAGIC
    except OSError:
        is_bpffs = False
    if not is_bpffs:
        raise UsageError(f"{root} is not a mounted bpffs (no place to pin the instance's maps)",
                         code=errno.ENOENT,
                         hint=f"mount one: `mount -t bpf bpf {root}`, or give --bpffs DIR of a mounted bpffs")
    name = name or f"cloud-{_netns_inode()}"
    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"bad instance name {name!r}", hint="give --name a plain name such as host1")
    return root / "pfrps-xdp" / name


def _fs_type(path: Path) -> int:
    import ctypes  # noqa: PLC0415

    class _Statfs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 120)]

    libc = ctypes.CDLL(None, use_errno=True)
    buf = _Statfs()
    if libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(path))
    return buf.f_type & 0xFFFFFFFF


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def _remove_dir(d: Path) -> None:
    for child in d.iterdir():
        child.unlink(missing_ok=True)
    d.rmdir()


# -- XDP on VM ports (outlives the command that attaches it: a BPF link pinned in the instance's
# directory, so it is detached when the pin goes: by `vm del`, the instance's exit, or the next
# instance's start after a SIGKILL, which removes the dead instance's pins; netlink on old kernels)
def _link_pin(pin_dir: Path | None, ifindex: int) -> Path | None:
    return pin_dir / f"link_vm_{ifindex}" if pin_dir is not None else None


def _xdp_link(ifindex: int, attrs: list) -> None:
    from pyroute2 import IPRoute  # noqa: PLC0415

    with IPRoute() as ipr:
        ipr.link("set", index=ifindex, IFLA_XDP={"attrs": attrs})


def _mode_flag(generic: bool) -> int:
    return XDP_FLAGS_SKB_MODE if generic else XDP_FLAGS_DRV_MODE


class Instance:
    """Operations on one instance's maps, shared by the running ``l2fwd`` and the management
    commands (which open the pins with :func:`open_instance`).

    Args:
        maps: the instance's maps.
        acl_tx_fd: the devmap ACL program (``acl_vm_tx``), for port map values.
        vm_rx_fd: the VM ports' receive-side program (``xdp_vmegress`` or ``acl_vm_rx``).
        generic: attach VM port programs in generic (SKB) mode.

    Every method raises :class:`~pfrps.errors.UsageError` (exit 2) for bad input: a device
    that does not exist, a MAC or VLAN out of range, a missing entry on ``del``.
    """

    def __init__(self, maps: CloudMaps, acl_tx_fd: int, vm_rx_fd: int, generic: bool,
                 pin_dir: Path | None = None) -> None:
        self.maps = maps
        self.acl_tx_fd = acl_tx_fd
        self.vm_rx_fd = vm_rx_fd
        self.generic = generic
        #: The instance's directory: VM port links are pinned there (None: attach through netlink).
        self.pin_dir = pin_dir

    @staticmethod
    def _vlan(vlan: int) -> int:
        if not 1 <= vlan <= 4094:
            raise UsageError(f"VLAN {vlan} out of range", hint="give a VLAN id from 1 to 4094")
        return vlan

    @staticmethod
    def _dev(dev: str, what: str) -> int:
        try:
            return resolve_ifindex(dev)
        except InterfaceError as exc:
            raise InterfaceError(f"{what}: {exc.msg}", code=exc.code,
                                 hint="create the device first (a tap or veth in this namespace), "
                                      "or name one `ip link` lists") from None

    # -- FDB --------------------------------------------------------------------------------------
    def fdb_add(self, mac: str, vlan: int, dev: str, acl: bool = True) -> str:
        """FDB {mac, vlan} -> dev; dev joins the port map (with ``acl_vm_tx`` unless not ``acl``)."""
        raw, vlan = parse_mac(mac), self._vlan(vlan)
        ifindex = self._dev(dev, "fdb add")
        self.maps.port_add(ifindex, self.acl_tx_fd if acl else -1)
        self.maps.fdb_add(raw, vlan, ifindex)
        return f"fdb add {format_mac(raw)} vlan {vlan} -> {dev} (ifindex {ifindex}){'' if acl else ', no ACL'}"

    def fdb_del(self, mac: str, vlan: int) -> str:
        """Remove FDB {mac, vlan}; its port leaves the port map when no entry points there."""
        raw, vlan = parse_mac(mac), self._vlan(vlan)
        ifindex = self.maps.fdb_del(raw, vlan)
        if ifindex is None:
            raise UsageError(f"no FDB entry for {format_mac(raw)} vlan {vlan}", code=errno.ENOENT,
                             hint="list the entries with `pfrps-xdp fdb show`")
        if all(port != ifindex for _m, _v, port in self.maps.fdb()):
            self.maps.port_del(ifindex)
        return f"fdb del {format_mac(raw)} vlan {vlan}"

    def fdb_show(self) -> list[str]:
        """One line per FDB entry: MAC, VLAN, device, ifindex, devmap program id."""
        names, ports = _ifnames(), self.maps.ports()
        return [f"{format_mac(mac)} vlan {vlan} dev {names.get(i, '?')} ifindex {i} "
                f"acl_prog {ports.get(i, 0) or 'none'}{'' if i in ports else ' (not in the port map)'}"
                for mac, vlan, i in self.maps.fdb()]

    # -- VMs --------------------------------------------------------------------------------------
    def vm_add(self, vmid: int, dev: str, mac: str, vlan: int = 0, v4: str | None = None,
               v6: str | None = None) -> str:
        """vm_info for the VM on ``dev``, and the receive-side program on ``dev``."""
        try:
            vm = VmInfo(vmid, parse_mac(mac), self._vlan(vlan) if vlan else 0,
                        ipaddress.IPv4Address(v4) if v4 else None, ipaddress.IPv6Address(v6) if v6 else None)
        except ValueError as exc:
            raise UsageError(f"vm add: {exc}", hint="give -4 an IPv4 and -6 an IPv6 address") from None
        if not 0 <= vmid < 2 ** 32:
            raise UsageError(f"VM id {vmid} out of range", hint="give --id a number from 0 to 4294967295")
        ifindex = self._dev(dev, "vm add")
        self.maps.vm_add(ifindex, vm)
        try:
            self._attach_rx(dev, ifindex)
        except PfrpsError:
            self.maps.vm_del(ifindex)
            raise
        return f"vm add {vmid} on {dev} (ifindex {ifindex}) mac {format_mac(vm.mac)}" + \
            (f" vlan {vm.vlan}" if vm.vlan else "")

    def _attach_rx(self, dev: str, ifindex: int) -> None:
        from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

        ours = bpfsys.prog_id(self.vm_rx_fd)
        busy = xdp_attached(ifindex)
        if busy and busy[0] == ours:
            return
        if busy:
            raise UsageError(f"{dev} already carries XDP program {busy[0]} in {busy[1]} mode",
                             code=errno.EBUSY, hint=f"detach it first (`ip link set dev {dev} xdp off`)")
        pin = _link_pin(self.pin_dir, ifindex)
        if pin is not None:
            try:
                link = bpfsys.link_create(self.vm_rx_fd, ifindex, bpfsys.BPF_XDP, _mode_flag(self.generic))
            except PfrpsError as exc:
                if exc.code not in (errno.EINVAL, 524, errno.ENOSYS):  # 524: ENOTSUPP (no XDP links)
                    raise UsageError(f"cannot attach the VM port program to {dev}: {os.strerror(exc.code)}",
                                     code=exc.code, hint="try the instance with --generic") from None
            else:
                try:
                    pin.unlink(missing_ok=True)
                    bpfsys.obj_pin(link, pin)
                finally:
                    os.close(link)  # the pin holds the link now
                return
        try:
            _xdp_link(ifindex, [("IFLA_XDP_FD", self.vm_rx_fd),
                                ("IFLA_XDP_FLAGS", XDP_FLAGS_UPDATE_IF_NOEXIST | _mode_flag(self.generic))])
        except NetlinkError as exc:
            raise UsageError(f"cannot attach the VM port program to {dev}: {os.strerror(exc.code)}",
                             code=exc.code, hint="try the instance with --generic") from None

    def _detach_rx(self, ifindex: int) -> None:
        from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

        pin = _link_pin(self.pin_dir, ifindex)
        if pin is not None and pin.exists():
            pin.unlink()  # the last reference to the link: the kernel detaches the program
            return
        try:
            _xdp_link(ifindex, [("IFLA_XDP_FD", -1), ("IFLA_XDP_EXPECTED_FD", self.vm_rx_fd),
                                ("IFLA_XDP_FLAGS", _mode_flag(self.generic) | XDP_FLAGS_REPLACE)])
        except NetlinkError as exc:
            if exc.code not in (errno.ENODEV, errno.EEXIST):  # gone, or not ours any more
                log.warning("cannot detach XDP from ifindex %d: %s", ifindex, os.strerror(exc.code))

    def vm_del(self, dev: str) -> str:
        """Forget the VM on ``dev`` (and its ACL rules); detach its receive-side program."""
        ifindex = self._dev(dev, "vm del")
        if not self.maps.vm_del(ifindex):
            raise UsageError(f"no VM on {dev}", code=errno.ENOENT, hint="list them with `pfrps-xdp vm show`")
        for to_vm in (True, False):
            for i, rule in self.maps.acls(to_vm):
                if i == ifindex:
                    self.maps.acl_del(to_vm, i, rule)
        self._detach_rx(ifindex)
        return f"vm del on {dev}"

    def vm_show(self) -> list[str]:
        """One line per VM: id, device, MAC, VLAN, addresses."""
        names = _ifnames()
        return [f"vm {vm.vmid} dev {names.get(i, '?')} ifindex {i} mac {format_mac(vm.mac)} vlan {vm.vlan or 'none'}"
                f" ipv4 {vm.v4 or 'none'} ipv6 {vm.v6 or 'none'}" for i, vm in sorted(self.maps.vms().items())]

    def detach_vm_ports(self) -> None:
        """Detach the receive-side program from every VM port (on exit)."""
        for ifindex in self.maps.vms():
            self._detach_rx(ifindex)

    # -- ACLs -------------------------------------------------------------------------------------
    def acl(self, dev: str, to_vm: bool, rule_text: str, delete: bool = False) -> str:
        """Add (or, with ``delete`` or a leading ``-``, delete) one rule for the VM on ``dev``."""
        minus, rule = parse_rule(rule_text)
        ifindex = self._dev(dev, "acl")
        where = "to-vm" if to_vm else "from-vm"
        if delete or minus:
            if not self.maps.acl_del(to_vm, ifindex, rule):
                raise UsageError(f"no {where} ACL rule {format_rule(rule)} on {dev}", code=errno.ENOENT,
                                 hint="list the rules with `pfrps-xdp acl show`")
            return f"acl del {where} {dev} {format_rule(rule)}"
        self.maps.acl_add(to_vm, ifindex, rule)
        return f"acl add {where} {dev} {format_rule(rule)}"

    def acl_show(self, dev: str | None, directions) -> list[str]:
        """One line per rule: direction, device, rule."""
        names = _ifnames()
        only = self._dev(dev, "acl show") if dev else None
        return [f"{'to-vm' if to_vm else 'from-vm'} dev {names.get(i, '?')} {format_rule(rule)}"
                for to_vm in directions for i, rule in self.maps.acls(to_vm) if only in (None, i)]


def _ifnames() -> dict[int, str]:
    from pyroute2 import IPRoute  # noqa: PLC0415

    with IPRoute() as ipr:
        return {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def open_instance(args) -> tuple[Instance, list[int]]:
    """The running instance of this namespace (or ``--name``), from its pins; and the fds to close.

    Raises:
        UsageError: no instance runs (no directory, or its process is gone).
    """
    d = instance_dir(args.bpffs, args.name)
    start = "start one with `pfrps-xdp l2fwd -i eth0 -i eth1` in this network namespace"
    if not d.is_dir():
        raise UsageError(f"no running pfrps-xdp l2fwd instance ({d} does not exist)", code=errno.ENOENT,
                         hint=f"{start} (or give the --name/--bpffs it was started with)")
    try:
        maps = CloudMaps.open(d)
    except PfrpsError:
        raise UsageError(f"{d} is not a complete pfrps-xdp l2fwd instance", code=errno.ENOENT,
                         hint=f"remove it (`rm -r {d}`) and {start}") from None
    pid, generic, _vmegress, _uplinks = maps.meta()
    if not _pid_alive(pid):
        maps.close()
        raise UsageError(f"the pfrps-xdp l2fwd instance of {d} (pid {pid}) is not running", code=errno.ESRCH,
                         hint=f"remove its pins (`rm -r {d}`) and {start}")
    fds = [bpfsys.obj_get(d / p) for p in _PROG_PINS]
    return Instance(maps, fds[0], fds[1], generic, pin_dir=d), fds


# -- parsing of entries given at start ------------------------------------------------------------
class _RaisingParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are UsageErrors (for --config lines)."""

    def error(self, message: str):
        raise UsageError(message, hint="write config lines as the management commands: "
                                       "fdb add --mac M --vlan V --dev D / vm add ... / acl add ...")


def _add_entry_args(noun: str, action: str, p: argparse.ArgumentParser) -> None:
    if noun == "fdb":
        if action in ("add", "del"):
            p.add_argument("--mac", required=True, help="destination MAC of the VM")
            p.add_argument("--vlan", type=int, required=True, help="VLAN id of the uplink's 802.1Q tag (1-4094)")
        if action == "add":
            p.add_argument("--dev", required=True, help="the VM's port (tap or veth)")
            p.add_argument("--no-acl", action="store_true",
                           help="no devmap ACL program on this port (default: acl_vm_tx runs on redirect)")
    elif noun == "vm":
        if action in ("add", "del"):
            p.add_argument("--dev", required=True, help="the VM's port (tap or veth)")
        if action == "add":
            p.add_argument("--id", type=int, required=True, dest="vmid", help="the VM's id")
            p.add_argument("--mac", required=True, help="the VM's MAC (checked both ways)")
            p.add_argument("--vlan", type=int, default=0, help="802.1Q VLAN pushed on its egress (default none)")
            p.add_argument("-4", dest="v4", metavar="IPV4", help="its IPv4 address")
            p.add_argument("-6", dest="v6", metavar="IPV6", help="its IPv6 address")
    else:
        p.add_argument("--dev", required=action != "show", help="the VM's port")
        d = p.add_mutually_exclusive_group(required=action != "show")
        d.add_argument("--to-vm", action="store_true", help="traffic to the VM (the devmap program)")
        d.add_argument("--from-vm", action="store_true", help="traffic from the VM (its port's receive side)")
        if action != "show":
            p.add_argument("rule", help="[-][ipv4,|ipv6,]proto=tcp,addr=IP,dport=N,sport=N")


def _apply(inst: Instance, noun: str, action: str, a) -> list[str]:
    if noun == "fdb":
        if action == "add":
            return [inst.fdb_add(a.mac, a.vlan, a.dev, acl=not a.no_acl)]
        if action == "del":
            return [inst.fdb_del(a.mac, a.vlan)]
        return inst.fdb_show()
    if noun == "vm":
        if action == "add":
            return [inst.vm_add(a.vmid, a.dev, a.mac, a.vlan, a.v4, a.v6)]
        if action == "del":
            return [inst.vm_del(a.dev)]
        return inst.vm_show()
    if action == "show":
        dirs = (True,) if a.to_vm else (False,) if a.from_vm else (True, False)
        return inst.acl_show(a.dev, dirs)
    return [inst.acl(a.dev, a.to_vm, a.rule, delete=action == "del")]


def _config_entries(path: str) -> list[tuple[str, str, argparse.Namespace]]:
    """Parse a --config file: one management command per line (``#`` comments)."""
    p = _RaisingParser(prog="config", add_help=False)
    sub = p.add_subparsers(dest="noun", required=True)
    for noun in ("fdb", "vm", "acl"):
        acts = sub.add_parser(noun, add_help=False).add_subparsers(dest="action", required=True)
        _add_entry_args(noun, "add", acts.add_parser("add", add_help=False))
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read --config {path}: {exc.strerror}", code=exc.errno or errno.ENOENT,
                         hint="give the path of an existing file") from None
    out = []
    for n, line in enumerate(lines, 1):
        words = shlex.split(line, comments=True)
        if not words:
            continue
        try:
            a = p.parse_args(words)
            if a.noun == "acl":
                parse_rule(a.rule)
        except UsageError as exc:
            raise UsageError(f"{path}:{n}: {exc.msg}", hint=exc.hint) from None
        out.append((a.noun, a.action, a))
    return out


def _start_entries(args) -> list[tuple[str, str, argparse.Namespace]]:
    """--vm, --fdb, --acl-* and --config as (noun, action, namespace), VMs first, all checked now."""
    out = []
    for spec in args.vm:
        parts = spec.split(",")
        if len(parts) < 3 or not parts[0].isdigit():
            raise UsageError(f"bad --vm {spec!r}", hint="write --vm ID,DEV,MAC[,vlan=N][,4=IPV4][,6=IPV6]")
        extra = dict(p.partition("=")[::2] for p in parts[3:])
        if set(extra) - {"vlan", "4", "6"} or (extra.get("vlan") and not extra["vlan"].isdigit()):
            raise UsageError(f"bad --vm {spec!r}", hint="write --vm ID,DEV,MAC[,vlan=N][,4=IPV4][,6=IPV6]")
        parse_mac(parts[2])
        out.append(("vm", "add", argparse.Namespace(vmid=int(parts[0]), dev=parts[1], mac=parts[2],
                                                    vlan=int(extra.get("vlan") or 0), v4=extra.get("4"),
                                                    v6=extra.get("6"))))
    for spec in args.fdb:
        parts = spec.split(",")
        if len(parts) not in (3, 4) or not parts[1].isdigit() or parts[3:] not in ([], ["noacl"]):
            raise UsageError(f"bad --fdb {spec!r}", hint="write --fdb MAC,VLAN,DEV[,noacl]")
        parse_mac(parts[0])
        out.append(("fdb", "add", argparse.Namespace(mac=parts[0], vlan=int(parts[1]), dev=parts[2],
                                                     no_acl=parts[3:] == ["noacl"])))
    for to_vm, specs in ((True, args.acl_to_vm), (False, args.acl_from_vm)):
        for spec in specs:
            dev, colon, rule = spec.partition(":")
            if not colon or not dev:
                raise UsageError(f"bad ACL option {spec!r}", hint="write --acl-to-vm DEV:RULE (or --acl-from-vm)")
            parse_rule(rule)
            out.append(("acl", "add", argparse.Namespace(dev=dev, to_vm=to_vm, from_vm=not to_vm, rule=rule)))
    if args.config:
        out.extend(_config_entries(args.config))
    order = {"vm": 0, "fdb": 1, "acl": 2}
    return sorted(out, key=lambda e: order[e[0]])


# -- the subcommands --------------------------------------------------------------------------------
def _instance_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="instance name (default: cloud-<inode of this network namespace>)")
    p.add_argument("--bpffs", metavar="DIR", help=f"the bpffs to pin in (default {BPF_FS})")


def _sample(maps: CloudMaps, json: bool):
    state = {"prev": maps.counters(), "t": None}
    import time  # noqa: PLC0415

    state["t"] = time.monotonic()

    def sample(_elapsed: float):
        now, cur = time.monotonic(), maps.counters()
        period = max(now - state["t"], 1e-9)
        rate = (cur - state["prev"]) / period
        state.update(prev=cur, t=now)
        if json:
            return {"period": round(period, 6),
                    **{n: {"frames": int(v), "frames_per_s": round(float(r), 3)} for n, v, r in zip(COUNTERS, cur, rate)}}
        return [" ".join(f"{n}:{int(v)}" for n, v in zip(COUNTERS, cur) if v) or "no frames yet",
                f"  frames/s over {period:.3f} s: " +
                (" ".join(f"{n}:{r:.0f}" for n, r in zip(COUNTERS, rate) if r) or "0")]
    return sample


def cmd_l2fwd(args) -> int:
    """``pfrps-xdp l2fwd``: attach, pin, apply the start entries, run in the foreground."""
    from .runner import run_foreground  # noqa: PLC0415

    if not 1 <= len(args.uplinks) <= MAX_UPLINKS or len(set(args.uplinks)) != len(args.uplinks):
        raise UsageError(f"{len(args.uplinks)} uplinks given", hint=f"give 1 to {MAX_UPLINKS} distinct -i DEV")
    uplinks = [resolve_ifindex(dev) for dev in args.uplinks]
    entries = _start_entries(args)
    d = instance_dir(args.bpffs, args.name)
    if d.is_dir():
        try:
            with CloudMaps.open(d) as old:
                pid = old.meta()[0]
        except PfrpsError:
            pid = 0
        if _pid_alive(pid) and pid != os.getpid():
            raise UsageError(f"an instance runs already with {d} (pid {pid})", code=errno.EEXIST,
                             hint="stop it first, or give this one another --name")
        log.warning("removing the stale pins of a dead instance: %s", d)
        _remove_dir(d)
    vmegress = args.vm_rx == "vmegress"
    att = Attachments()
    try:
        maps = CloudMaps.create()
        att.callback(maps.close, "close the maps")
        progs = CloudPrograms(maps, ("xdp_l2fwd", "acl_vm_tx", "xdp_vmegress" if vmegress else "acl_vm_rx"),
                              uplinks=len(uplinks))
        att.callback(progs.close, "unload the programs")
        rx_fd = progs.fds["xdp_vmegress" if vmegress else "acl_vm_rx"]
        parent = d.parent
        if not parent.is_dir():
            parent.mkdir(mode=0o700, exist_ok=True)
            att.callback(lambda: _rmdir_if_empty(parent), f"remove {parent} if empty")
        att.pin_dir(str(d))
        for name in CloudMaps.names():
            att.pin(maps.fds[name], str(d / name))
        att.pin(progs.fds["acl_vm_tx"], str(d / _PROG_PINS[0]))
        att.pin(rx_fd, str(d / _PROG_PINS[1]))
        maps.set_meta(os.getpid(), args.generic, vmegress, len(uplinks))
        maps.set_uplinks(uplinks)
        inst = Instance(maps, progs.fds["acl_vm_tx"], rx_fd, args.generic, pin_dir=d)
        for dev in args.uplinks:
            att.xdp(dev, progs.fds["xdp_l2fwd"], args.generic)
        att.callback(inst.detach_vm_ports, "detach the VM ports")
        for noun, action, a in entries:
            for line in _apply(inst, noun, action, a):
                log.debug("%s", line)  # the startup line is the first line printed (readiness)
    except BaseException:
        att.close()
        raise
    startup = (f"l2fwd on {', '.join(args.uplinks)} ({'generic' if args.generic else 'native'}), "
               f"VM ports run {'xdp_vmegress' if vmegress else 'acl_vm_rx'}; maps pinned in {d}; "
               f"{len(entries)} entries applied")
    return run_foreground(att, _sample(maps, args.json), interval=args.interval, duration=args.duration,
                          json=args.json, startup=startup, stop=getattr(args, "stop", None))


def _rmdir_if_empty(d: Path) -> None:
    try:
        d.rmdir()
    except OSError:
        pass  # another instance's directory is still in it


def cmd_manage(args) -> int:
    """``pfrps-xdp fdb|vm|acl add|del|show`` against the running instance."""
    inst, fds = open_instance(args)
    try:
        for line in _apply(inst, args.command, args.action, args):
            print(line)
    finally:
        inst.maps.close()
        for fd in fds:
            os.close(fd)
    return 0


def register(subparsers) -> None:
    """Add ``l2fwd``, ``fdb``, ``vm`` and ``acl`` to the ``pfrps-xdp`` parser."""
    p = subparsers.add_parser(
        "l2fwd", help="cloud host: XDP L2 forwarding with an FDB, per-VM ACLs and VM egress",
        description="xdp_l2fwd on each uplink: 802.1Q frames for a known {MAC, VLAN} lose their tag and go to "
                    "the VM's port through a DEVMAP_HASH whose devmap program is the VM's ACL; the rest goes "
                    "to the stack. VM ports get xdp_vmegress (ACL, VLAN push, bond hash over the uplinks) or "
                    "acl_vm_rx. Maps are pinned for the fdb/vm/acl commands.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-i", "--uplink", dest="uplinks", action="append", required=True, metavar="DEV",
                   help="an uplink (repeat: eth0, eth1; the bond hash picks among them in order)")
    p.add_argument("--vm-rx", choices=("vmegress", "acl"), default="vmegress",
                   help="program on VM ports: xdp_vmegress (default) or acl_vm_rx (ACL only, then the stack)")
    p.add_argument("--vm", action="append", default=[], metavar="ID,DEV,MAC[,vlan=N][,4=IP][,6=IP]",
                   help="a VM at start (as `vm add`)")
    p.add_argument("--fdb", action="append", default=[], metavar="MAC,VLAN,DEV[,noacl]",
                   help="an FDB entry at start (as `fdb add`)")
    p.add_argument("--acl-to-vm", action="append", default=[], metavar="DEV:RULE", help="a to-VM ACL rule at start")
    p.add_argument("--acl-from-vm", action="append", default=[], metavar="DEV:RULE",
                   help="a from-VM ACL rule at start")
    p.add_argument("--config", metavar="FILE", help="management command lines applied at start")
    _instance_opts(p)
    add_common(p)
    p.set_defaults(func=cmd_l2fwd)
    for noun, what in (("fdb", "FDB entries {MAC, VLAN} -> VM port"), ("vm", "VMs (vm_info) on their ports"),
                       ("acl", "per-VM ACL rules")):
        np_ = subparsers.add_parser(noun, help=f"{what} of the running l2fwd instance",
                                    description=f"Change or list the {what} of the running `pfrps-xdp l2fwd` "
                                                "(its pinned maps) in this network namespace.",
                                    epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
        acts = np_.add_subparsers(dest="action", required=True, metavar="ACTION")
        for action in ("add", "del", "show"):
            ap = acts.add_parser(action, help=f"{action} {noun}", epilog=EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
            _add_entry_args(noun, action, ap)
            _instance_opts(ap)
            ap.set_defaults(func=cmd_manage)
