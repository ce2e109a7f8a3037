"""The cloud-host datapath's maps (seed 003), their layouts, and the bond hash reference.

Every map is made here with ``bpf(BPF_MAP_CREATE)`` and handed to the BPF C as a ``-D`` fd
knob (``bpf/cloud.h`` describes each one), so one set of maps serves ``xdp_l2fwd``, the
devmap ACL ``acl_vm_tx``, ``acl_vm_rx`` and ``xdp_vmegress``, and the management commands
reach the same maps through their pins (:meth:`CloudMaps.open`). Layouts are packed with
``struct`` and match the ``_Static_assert`` sizes of ``bpf/cloud.h``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import bpfsys
from ..errors import PfrpsError, UsageError
from .acl import AclRule

__all__ = ["CloudMaps", "CloudPrograms", "PROGRAMS", "VmInfo", "COUNTERS", "FDB_KEY", "VM_INFO", "DEVMAP_VAL", "bond_hash",
           "parse_mac", "format_mac", "possible_cpus"]

BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY = 1, 2, 6
BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH = 14, 25

#: ``struct fdb_key``: destination MAC, VLAN id (host order): 8 bytes.
FDB_KEY = struct.Struct("<6sH")
#: ``struct bpf_devmap_val``: ifindex, devmap program fd (written) or id (read); -1/0 = none.
DEVMAP_VAL = struct.Struct("<Ii")
#: ``struct vm_info``: vmid, MAC, 802.1Q TCI (network order), IPv4, IPv6: 32 bytes.
VM_INFO = struct.Struct("<I6s2s4s16s")
_U32 = struct.Struct("<I")
#: the instance's record: pid, generic (0/1), VM-port program (0 acl_vm_rx, 1 vmegress), uplinks.
_META = struct.Struct("<IIII")

#: ``enum cloud_counter`` of bpf/cloud.h, in order.
COUNTERS = (
    "l2fwd_redirect", "l2fwd_untagged", "l2fwd_no_fdb", "malformed",
    "to_vm_pass", "to_vm_mac_drop", "to_vm_acl_drop",
    "from_vm_spoof_drop", "from_vm_acl_drop", "from_vm_pass",
    "egress_redirect", "egress_bcast",
)

#: name -> (map type, key bytes, value bytes, max entries, -D knob of bpf/cloud.h)
_SPECS = {
    "fdb": (BPF_MAP_TYPE_HASH, FDB_KEY.size, 4, 4096, "CLOUD_FDB_FD"),
    "ports": (BPF_MAP_TYPE_DEVMAP_HASH, 4, DEVMAP_VAL.size, 512, "CLOUD_PORTS_FD"),
    "vm_info": (BPF_MAP_TYPE_HASH, 4, VM_INFO.size, 512, "CLOUD_VM_FD"),
    "acl_to_vm": (BPF_MAP_TYPE_HASH, 8, 20, 4096, "CLOUD_ACL_TO_FD"),
    "acl_from_vm": (BPF_MAP_TYPE_HASH, 8, 20, 4096, "CLOUD_ACL_FROM_FD"),
    "uplinks": (BPF_MAP_TYPE_DEVMAP, 4, 4, 8, "CLOUD_UPLINKS_FD"),
    "stats": (BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, len(COUNTERS), "CLOUD_STATS_FD"),
    "meta": (BPF_MAP_TYPE_ARRAY, 4, _META.size, 1, ""),
}
MAX_UPLINKS = 8


def possible_cpus() -> int:
    """CPUs a PERCPU map has a slot for (``/sys/devices/system/cpu/possible``, e.g. ``0-1``)."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def parse_mac(text: str) -> bytes:
    """Six bytes from ``aa:bb:cc:dd:ee:ff``.

    Raises:
        UsageError: not a MAC address.
    """
    parts = text.split(":")
    try:
        raw = bytes(int(p, 16) for p in parts)
    except ValueError:
        raw = b""
    if len(parts) != 6 or len(raw) != 6 or any(len(p) not in (1, 2) for p in parts):
        raise UsageError(f"{text!r} is not a MAC address", hint="write MACs as 52:54:00:12:34:56")
    return raw


def format_mac(raw: bytes) -> str:
    """``aa:bb:cc:dd:ee:ff`` from six bytes."""
    return ":".join(f"{b:02x}" for b in raw)


def bond_hash(sport: int, dport: int, saddr, daddr, legs: int) -> int:
    """The uplink (0..legs-1) ``xdp_vmegress`` picks: the bonding driver's layer3+4 hash.

    Args:
        sport, dport: ports (TCP/UDP), or for ICMP the (type << 8 | code) and echo id
            (the four bytes of ``struct flow_icmp`` as two big-endian halves).
        saddr, daddr: ``ipaddress`` objects (IPv4 or IPv6), or None for non-IP.
        legs: number of uplinks.

    The four port bytes as a little-endian u32, xor both addresses (IPv6: the xor of each
    address's four words), then ``h ^= h >> 16; h ^= h >> 8; h >>= 1``; leg = h % legs
    (drivers/net/bonding/bond_main.c ``bond_xmit_hash`` as seed 003 replicates it).
    """
    h = int.from_bytes(sport.to_bytes(2, "big") + dport.to_bytes(2, "big"), "little")
    for addr in (saddr, daddr):
        if addr is None:
            continue
        raw = addr.packed
        for i in range(0, len(raw), 4):
            h ^= int.from_bytes(raw[i:i + 4], "little")
    h ^= h >> 16
    h ^= h >> 8
    return (h >> 1) % legs


@dataclass(frozen=True)
class VmInfo:
    """``struct vm_info``: what the host knows of the VM on one port.

    Attributes:
        vmid: the VM's id (any u32).
        mac: its MAC (6 bytes).
        vlan: VLAN id pushed on its egress, 0 = none (1-4094).
        v4, v6: its addresses (``ipaddress`` objects) or None.
    """

    vmid: int
    mac: bytes
    vlan: int = 0
    v4: ipaddress.IPv4Address | None = None
    v6: ipaddress.IPv6Address | None = None

    def pack(self) -> bytes:
        """The 32 bytes of ``struct vm_info``."""
        return VM_INFO.pack(self.vmid, self.mac, (self.vlan & 0xFFF).to_bytes(2, "big"),
                            self.v4.packed if self.v4 else bytes(4), self.v6.packed if self.v6 else bytes(16))

    @classmethod
    def unpack(cls, raw: bytes) -> "VmInfo":
        """The inverse of :meth:`pack`."""
        vmid, mac, tci, v4, v6 = VM_INFO.unpack(raw)
        return cls(vmid, mac, int.from_bytes(tci, "big") & 0xFFF,
                   ipaddress.IPv4Address(v4) if any(v4) else None, ipaddress.IPv6Address(v6) if any(v6) else None)


class CloudMaps:
    """The maps of one cloud-host instance, by name (``fdb``, ``ports``, ``vm_info``,
    ``acl_to_vm``, ``acl_from_vm``, ``uplinks``, ``stats``, ``meta``).

    Make them with :meth:`create` (the running instance) or :meth:`open` (pins, for the
    management commands); :meth:`close` closes the fds. Entry methods raise
    :class:`~pfrps.errors.BpfLoadError` when the kernel refuses a write.
    """

    def __init__(self, fds: dict[str, int]) -> None:
        self.fds = fds
        self._ncpu = possible_cpus()

    @classmethod
    def create(cls) -> "CloudMaps":
        """Fresh, empty maps.

        Raises:
            BpfLoadError: the kernel refused one (EPERM without CAP_BPF).
        """
        fds: dict[str, int] = {}
        try:
            for name, (mtype, ksz, vsz, n, _knob) in _SPECS.items():
                fds[name] = bpfsys.map_create(mtype, ksz, vsz, n, name=f"cloud_{name}"[:15])
        except PfrpsError:
            for fd in fds.values():
                os.close(fd)
            raise
        return cls(fds)

    @classmethod
    def open(cls, directory: Path) -> "CloudMaps":
        """The maps pinned in an instance's ``directory``.

        Raises:
            BpfLoadError: a pin is missing (ENOENT) or cannot be opened.
        """
        fds: dict[str, int] = {}
        try:
            for name in _SPECS:
                fds[name] = bpfsys.obj_get(directory / name)
        except PfrpsError:
            for fd in fds.values():
                os.close(fd)
            raise
        return cls(fds)

    @staticmethod
    def names() -> tuple[str, ...]:
        """Map names, which are also the pin file names."""
        return tuple(_SPECS)

    def cflags(self) -> list[str]:
        """``-D`` knobs that point the BPF C at these maps (fds of this process)."""
        return [f"-D{knob}={self.fds[name]}" for name, (*_, knob) in _SPECS.items() if knob]

    def close(self) -> None:
        """Close every fd (the maps live on while pinned or used by a program)."""
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}

    def __enter__(self) -> "CloudMaps":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the instance record --------------------------------------------------------------------
    def set_meta(self, pid: int, generic: bool, vmegress: bool, uplinks: int) -> None:
        """Record the running instance (pid, mode, VM-port program, uplink count)."""
        bpfsys.map_update(self.fds["meta"], _U32.pack(0), _META.pack(pid, int(generic), int(vmegress), uplinks))

    def meta(self) -> tuple[int, bool, bool, int]:
        """``(pid, generic, vmegress, uplinks)`` of :meth:`set_meta`."""
        pid, generic, vmegress, uplinks = _META.unpack(bpfsys.map_lookup(self.fds["meta"], _U32.pack(0), _META.size))
        return pid, bool(generic), bool(vmegress), uplinks

    # -- FDB and ports --------------------------------------------------------------------------
    def fdb_add(self, mac: bytes, vlan: int, ifindex: int) -> None:
        """FDB entry {mac, vlan} -> port ``ifindex`` (replaces an existing one)."""
        bpfsys.map_update(self.fds["fdb"], FDB_KEY.pack(mac, vlan), _U32.pack(ifindex))

    def fdb_del(self, mac: bytes, vlan: int) -> int | None:
        """Remove {mac, vlan}; the port it pointed to, or None when there was no such entry."""
        key = FDB_KEY.pack(mac, vlan)
        raw = bpfsys.map_lookup(self.fds["fdb"], key, 4)
        if raw is None:
            return None
        bpfsys.map_delete(self.fds["fdb"], key)
        return _U32.unpack(raw)[0]

    def fdb(self) -> list[tuple[bytes, int, int]]:
        """``[(mac, vlan, ifindex)]``, sorted."""
        out = []
        for key in bpfsys.map_keys(self.fds["fdb"], FDB_KEY.size):
            raw = bpfsys.map_lookup(self.fds["fdb"], key, 4)
            if raw is not None:
                out.append((*FDB_KEY.unpack(key), _U32.unpack(raw)[0]))
        return sorted(out)

    def port_add(self, ifindex: int, acl_prog_fd: int = -1) -> None:
        """Port ``ifindex`` in the port map, with the devmap ACL program ``acl_prog_fd`` (or none).

        Must run in the port's network namespace (the kernel resolves the ifindex there).
        """
        bpfsys.map_update(self.fds["ports"], _U32.pack(ifindex), DEVMAP_VAL.pack(ifindex, acl_prog_fd))

    def port_del(self, ifindex: int) -> bool:
        """Remove port ``ifindex``; False when absent."""
        return bpfsys.map_delete(self.fds["ports"], _U32.pack(ifindex))

    def ports(self) -> dict[int, int]:
        """``{ifindex: devmap program id (0 = none)}``."""
        out = {}
        for key in bpfsys.map_keys(self.fds["ports"], 4):
            raw = bpfsys.map_lookup(self.fds["ports"], key, DEVMAP_VAL.size)
            if raw is not None:
                out[_U32.unpack(key)[0]] = max(DEVMAP_VAL.unpack(raw)[1], 0)
        return out

    def set_uplinks(self, ifindexes: list[int]) -> None:
        """Uplinks 0..n-1 of the bond hash (DEVMAP values; written in their namespace)."""
        for i, ifindex in enumerate(ifindexes):
            bpfsys.map_update(self.fds["uplinks"], _U32.pack(i), _U32.pack(ifindex))

    # -- VMs ------------------------------------------------------------------------------------
    def vm_add(self, ifindex: int, vm: VmInfo) -> None:
        """vm_info of the VM on port ``ifindex``."""
        bpfsys.map_update(self.fds["vm_info"], _U32.pack(ifindex), vm.pack())

    def vm_del(self, ifindex: int) -> bool:
        """Forget the VM on port ``ifindex``; False when there was none."""
        return bpfsys.map_delete(self.fds["vm_info"], _U32.pack(ifindex))

    def vms(self) -> dict[int, VmInfo]:
        """``{port ifindex: VmInfo}``."""
        out = {}
        for key in bpfsys.map_keys(self.fds["vm_info"], 4):
            raw = bpfsys.map_lookup(self.fds["vm_info"], key, VM_INFO.size)
            if raw is not None:
                out[_U32.unpack(key)[0]] = VmInfo.unpack(raw)
        return out

    # -- ACLs -----------------------------------------------------------------------------------
    @staticmethod
    def _acl_map(to_vm: bool) -> str:
        return "acl_to_vm" if to_vm else "acl_from_vm"

    def acl_add(self, to_vm: bool, ifindex: int, rule: AclRule) -> None:
        """Add ``rule`` for the VM on port ``ifindex``.

        Raises:
            UsageError: a rule with the same protocol and dport exists (delete it first).
        """
        try:
            bpfsys.map_update(self.fds[self._acl_map(to_vm)], rule.key(ifindex), rule.value(), bpfsys.BPF_NOEXIST)
        except PfrpsError as exc:
            if exc.code == errno.EEXIST:
                raise UsageError("an ACL rule for that protocol and dport exists already",
                                 code=errno.EEXIST, hint="delete it first (acl del, or a rule starting with -)") from None
            raise

    def acl_del(self, to_vm: bool, ifindex: int, rule: AclRule) -> bool:
        """Delete the rule with ``rule``'s protocol and dport; False when absent."""
        return bpfsys.map_delete(self.fds[self._acl_map(to_vm)], rule.key(ifindex))

    def acls(self, to_vm: bool) -> list[tuple[int, AclRule]]:
        """``[(port ifindex, rule)]`` of one direction."""
        fd = self.fds[self._acl_map(to_vm)]
        out = []
        for key in bpfsys.map_keys(fd, 8):
            raw = bpfsys.map_lookup(fd, key, 20)
            if raw is not None:
                out.append(AclRule.unpack(key, raw))
        return sorted(out, key=lambda e: (e[0], e[1].protocol, e[1].dport))

    # -- counters -------------------------------------------------------------------------------
    def counters(self) -> np.ndarray:
        """``(len(COUNTERS),)`` uint64 frames, summed over CPUs."""
        fd = self.fds["stats"]
        out = np.zeros(len(COUNTERS), dtype=np.uint64)
        for i in range(len(COUNTERS)):
            raw = bpfsys.map_lookup(fd, _U32.pack(i), 8 * self._ncpu)
            if raw is not None:
                out[i] = np.frombuffer(raw, dtype="<u8").sum()
        return out

    def counter_dict(self) -> dict[str, int]:
        """``{counter name: frames}``."""
        return dict(zip(COUNTERS, (int(v) for v in self.counters())))


#: program -> (source in bpf/, extra -D flags, devmap program?)
PROGRAMS = {
    "xdp_l2fwd": ("xdp_l2fwd.bpf.c", (), False),
    "acl_vm_tx": ("acl_vm.bpf.c", (), True),
    "acl_vm_rx": ("acl_vm.bpf.c", ("-DACL_FROM_VM=1",), False),
    "xdp_vmegress": ("xdp_vmegress.bpf.c", (), False),
}


class CloudPrograms:
    """The cloud-host programs compiled by bcc against one :class:`CloudMaps`.

    Args:
        maps: the maps the programs use (their fds become ``-D`` knobs).
        names: which of :data:`PROGRAMS` to build (default all).
        uplinks: the bond hash's number of uplinks (``CLOUD_N_UPLINKS``).

    Attributes:
        fds: ``{name: program fd}``, valid until :meth:`close`.

    Each program comes from its own bcc object: ``load_func`` caches by function name, and
    the devmap program needs ``BPF_XDP_DEVMAP`` as its expected attach type.

    Raises:
        BpfCompileError, BpfLoadError: a source does not compile, or the verifier refused.
    """

    def __init__(self, maps: CloudMaps, names=tuple(PROGRAMS), uplinks: int = 2) -> None:
        from ..bpfload import bpf_source_dir, check_kernel_headers, import_bcc  # noqa: PLC0415
        from ..errors import BpfCompileError, BpfLoadError  # noqa: PLC0415

        bcc = import_bcc()
        check_kernel_headers()
        src = bpf_source_dir()
        self._objs = []
        self.fds: dict[str, int] = {}
        try:
            for name in names:
                path, extra, devmap = PROGRAMS[name]
                flags = [f"-I{src}", *maps.cflags(), f"-DCLOUD_N_UPLINKS={max(uplinks, 1)}", *extra]
                try:
                    obj = bcc.BPF(src_file=str(src / path).encode(), cflags=flags)
                except Exception as exc:  # bcc raises plain Exception on a compile error
                    raise BpfCompileError(f"{path} does not compile: {exc}", hint="reinstall pfrps") from None
                self._objs.append(obj)
                attach = bcc.BPFAttachType.XDP_DEVMAP if devmap else -1
                try:
                    fn = obj.load_func(name.encode(), bcc.BPF.XDP, attach_type=attach)
                except Exception as exc:  # bcc raises plain Exception when the verifier refuses
                    raise BpfLoadError(f"the kernel refused {name}: {str(exc).splitlines()[0]}",
                                       code=errno.EINVAL) from None
                self.fds[name] = bpfsys.register_loaded(fn.fd)  # seen by the test suite's leak check
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Unload (close) every program of this object."""
        for obj in self._objs:
            obj.cleanup()
        self._objs = []
        self.fds = {}
