"""The load balancer's program and maps: ``bpf/xdp_lb.bpf.c`` compiled and loaded (not attached),
its configuration, backend slots, the Maglev table written entry by entry, per-backend counters."""

from __future__ import annotations

import ctypes
import ipaddress
import os
from typing import Sequence

import numpy as np

from .. import bpfsys
from ..bpfload import CompiledModule, builtin_program
from ..errors import UsageError
from ..hashing import format_mac, parse_mac
from . import maglev
from .counters import CounterTable, percpu_reader
from .lb_backends import Backend, parse_ipv4

__all__ = ["LoadBalancer", "LB_COUNTER_FIELDS", "MAX_BACKENDS", "ENTRY"]

BPF_PROG_TYPE_XDP = 6
#: bpf/xdp_lb.bpf.c's entry point.
ENTRY = "pfrps_xdp_lb"
#: bpf/lb.h LB_MAX_BACKENDS (backend slots, never reused within one run).
MAX_BACKENDS = 256
#: Fields of ``struct lb_counter`` (bpf/lb.h), all ``__u64``: frames and bytes per direction.
LB_COUNTER_FIELDS = ("to_backend_packets", "to_backend_bytes", "to_client_packets", "to_client_bytes")


class LoadBalancer:
    """The compiled and loaded ``xdp_lb`` program with its maps, not attached.

    Args:
        vip: the virtual IP (an address of the LB's interface).
        lb_mac: the LB interface's MAC (rewritten frames leave from it).
        ports: TCP/UDP ports of the VIP to balance (host order); empty: every port.
        ring_size: Maglev table size M, a prime (``LB_RING_SIZE``).
        max_flows: entries of each flow table (``LB_MAX_FLOWS``).
        seed: the flow hash's ``LB_HASH_SEED``.

    Raises:
        UsageError: bad ports or ring size; BpfCompileError/BpfLoadError from the kernel.
    """

    def __init__(self, vip: str, lb_mac: str, ports: Sequence[int] = (), ring_size: int = maglev.DEFAULT_RING_SIZE,
                 max_flows: int = 65536, seed: int = 0) -> None:
        maglev.check_ring_size(ring_size)
        for p in ports:
            if not 1 <= p <= 65535:
                raise UsageError(f"port {p} is out of range", hint="give --port between 1 and 65535")
        if max_flows < 1:
            raise UsageError(f"--max-flows {max_flows} is below 1", hint="give at least 1 (default 65536)")
        self.vip = parse_ipv4(vip, "VIP", "give --vip as an IPv4 address such as 10.0.0.10")
        self.lb_mac = format_mac(parse_mac(lb_mac))
        self.ports = tuple(sorted(set(ports)))
        self.ring_size = ring_size
        self.seed = seed
        self.backends: list[Backend] = []
        self.table: np.ndarray | None = None
        self._slots: dict[str, int] = {}
        self._ring = np.full(ring_size, -1, dtype=np.int64)
        self.mod = CompiledModule(builtin_program("xdp_lb.bpf.c"), [
            f"-DLB_RING_SIZE={ring_size}", f"-DLB_MAX_BACKENDS={MAX_BACKENDS}", f"-DLB_MAX_FLOWS={max_flows}",
            f"-DLB_HASH_SEED={seed}"])
        try:
            self.prog_fd = self.mod.load(ENTRY, prog_type=BPF_PROG_TYPE_XDP)
            for p in self.ports:
                self._put("lb_ports", ctypes.c_uint16(p), ctypes.c_uint8(1))
            self._write_cfg(0)
        except BaseException:
            self.mod.close()
            raise

    # -- maps -------------------------------------------------------------------------------------
    def _put(self, name: str, key, value) -> None:
        bpfsys.map_update(self.mod.table(name).map_fd, bytes(key), bytes(value))

    def _write_cfg(self, n_backends: int) -> None:
        leaf = self.mod.table("lb_cfg").Leaf()
        leaf.vip = int.from_bytes(ipaddress.IPv4Address(self.vip).packed, "little")
        leaf.all_ports = 0 if self.ports else 1
        leaf.n_backends = n_backends
        for i, b in enumerate(parse_mac(self.lb_mac)):
            leaf.mac[i] = b
        self._put("lb_cfg", ctypes.c_uint32(0), leaf)

    def slot_of(self, ip: str) -> int:
        """The counter/backend slot of backend ``ip`` (assigned on first use, kept for the run).

        Raises:
            UsageError: more than :data:`MAX_BACKENDS` distinct backends in one run.
        """
        if ip not in self._slots:
            if len(self._slots) >= MAX_BACKENDS:
                raise UsageError(f"more than {MAX_BACKENDS} distinct backends in one run",
                                 hint=f"restart pfrps-xdp lb, or keep to {MAX_BACKENDS} backends")
            self._slots[ip] = len(self._slots)
        return self._slots[ip]

    def set_backends(self, backends: Sequence[Backend]) -> float:
        """Make ``backends`` (MACs resolved) the set new flows are spread over.

        Writes the backends' slots, then only the Maglev entries that changed, then the
        backend count; established flows keep their backend (the flow tables hold its
        address and MAC). Returns the fraction of table entries that moved (1.0 the first time).

        Raises:
            UsageError: no backends, duplicates, a MAC missing, too many backends.
        """
        if not backends:
            raise UsageError("no backend given", hint="give at least one --backend IP[@MAC]")
        if any(b.mac is None for b in backends):
            raise UsageError("a backend has no MAC", hint="resolve it first (resolve_backends) or give IP@MAC")
        ips = [b.ip for b in backends]
        table = maglev.maglev_table(ips, self.ring_size)
        slots = np.asarray([self.slot_of(ip) for ip in ips], dtype=np.int64)
        be_table = self.mod.table("lb_backends")
        ip_table = self.mod.table("lb_backend_ips")
        for b, slot in zip(backends, slots):
            leaf = be_table.Leaf()
            leaf.ip = int.from_bytes(ipaddress.IPv4Address(b.ip).packed, "little")
            for i, x in enumerate(parse_mac(b.mac)):
                leaf.mac[i] = x
            self._put("lb_backends", ctypes.c_uint32(int(slot)), leaf)
            bpfsys.map_update(ip_table.map_fd, bytes(ip_table.Key(leaf.ip)), bytes(ctypes.c_uint32(int(slot))))
        new_ring = slots[table]
        changed = np.flatnonzero(new_ring != self._ring)
        fd = self.mod.table("lb_ring").map_fd
        for idx in changed.tolist():
            bpfsys.map_update(fd, int(idx).to_bytes(4, "little"), int(new_ring[idx]).to_bytes(4, "little"))
        for old in self.backends:
            if old.ip not in ips:
                bpfsys.map_delete(ip_table.map_fd, ipaddress.IPv4Address(old.ip).packed)
        moved = len(changed) / self.ring_size
        self._ring = new_ring
        self.backends = list(backends)
        self.table = table
        self._write_cfg(len(backends))
        return moved

    # -- counters ---------------------------------------------------------------------------------
    def backend_counters(self) -> CounterTable:
        """Per-backend counters of every slot used so far: rows labelled by address, columns
        :data:`LB_COUNTER_FIELDS` (frames, bytes)."""
        labels = list(self._slots)
        read_all = percpu_reader(self.mod.table("lb_stats"), len(labels) or 1, len(LB_COUNTER_FIELDS))
        return CounterTable(lambda: read_all()[:len(labels)], labels, LB_COUNTER_FIELDS)

    def close(self) -> None:
        """Close the program fd and the maps (detach first)."""
        if self.prog_fd is not None:
            os.close(self.prog_fd)
            self.prog_fd = None
        self.mod.close()

    def __enter__(self) -> "LoadBalancer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
