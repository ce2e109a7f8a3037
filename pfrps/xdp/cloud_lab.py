"""``pfrps-xdp lab cloud`` (alias ``cloud-host``): seed 003's hypervisor host in namespaces, checked with traffic.

Topology (every namespace ``<prefix>-<role>-<suffix>``)::

    sw: sw0, sw1  <-veth->  host: eth0, eth1 (uplinks, xdp_l2fwd)
                            host: tap1  <-veth->  vm1: eth0 (52:54:00:00:00:01, VLAN 10, 10.1.0.1)
                            host: tap2  <-veth->  vm2: eth0 (52:54:00:00:00:02, VLAN 20, 10.2.0.1)

The switch side sends 802.1Q-tagged frames built with scapy (this kernel has no VLAN devices);
every receiver is a PF_PACKET socket with PACKET_AUXDATA (the kernel strips a tag before a
packet socket: the tag is in the auxdata). The peers of every redirect target run
``pfrps-xdp pass`` (native redirect into a veth needs an XDP program on its peer). Maps are
pinned in a private bpffs mounted for the run. Waits are on conditions, never fixed sleeps:
a count reached, or a fence frame sent last on the same path arrived.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import select
import socket
import struct
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import TopologyError
from ..kernel import ETH_P_ALL, PACKET_AUXDATA, PACKET_OUTGOING, SOL_PACKET, TP_STATUS_VLAN_VALID, TPACKET_AUXDATA
from .cloud_maps import CloudMaps, bond_hash
from .lab import Lab

__all__ = ["CloudHostLab", "PacketPort", "MARK", "lab_frame", "private_bpffs"]

MAC1, MAC2 = "52:54:00:00:00:01", "52:54:00:00:00:02"
GW_MAC = "02:00:5e:00:00:fe"   # the next hop the VMs send to (on the switch side)
SW_MAC = "02:00:5e:00:00:01"   # the switch side's source MAC
VLAN1, VLAN2 = 10, 20
VM1_IP, VM2_IP, FAR_IP, PEER_IP = "10.1.0.1", "10.2.0.1", "10.9.0.1", "192.0.2.7"
#: payload marker of lab frames: MARK, kind (1 byte), seq (u32)
MARK = b"PFRPS-CLOUD-LAB"


def _enter(ns: str):
    from pyroute2 import netns  # noqa: PLC0415

    netns.pushns(ns)
    return netns


class PacketPort:
    """A PF_PACKET socket on ``ns``/``ifname`` (made inside ``ns``, used from here).

    :meth:`send` transmits whole frames; :meth:`collect` returns the lab frames received
    (incoming only) as ``(kind, seq, vlan or None, frame bytes)``; ``vlan`` comes from
    PACKET_AUXDATA (packet(7)) when the kernel stripped a tag.
    """

    def __init__(self, ns: str, ifname: str) -> None:
        netns = _enter(ns)
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.bind((ifname, 0))
        finally:
            netns.popns()
        self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setblocking(False)
        self.name = f"{ns}/{ifname}"
        self.seen: list[tuple[int, int, int | None, bytes]] = []

    def send(self, frames) -> int:
        """Send each frame; return how many."""
        n = 0
        for f in frames:
            self.sock.send(f)
            n += 1
        return n

    def _read(self) -> bool:
        try:
            data, anc, _flags, addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(TPACKET_AUXDATA.size))
        except BlockingIOError:
            return False
        if addr[2] == PACKET_OUTGOING:
            return True
        at = data.find(MARK)
        if at < 0 or len(data) < at + len(MARK) + 5:
            return True
        kind, seq = struct.unpack_from("!BI", data, at + len(MARK))
        vlan = None
        for level, typ, raw in anc:
            if level == SOL_PACKET and typ == PACKET_AUXDATA:
                status, *_rest, tci, _tpid = TPACKET_AUXDATA.unpack_from(raw)
                if status & TP_STATUS_VLAN_VALID:
                    vlan = tci & 0xFFF
        self.seen.append((kind, seq, vlan, data))
        return True

    def collect(self, until, timeout: float = 5.0) -> list[tuple[int, int, int | None, bytes]]:
        """Read until ``until(frames so far)`` is true or ``timeout`` seconds; return (and forget)
        what was read."""
        deadline = time.monotonic() + timeout
        while not until(self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if select.select([self.sock], [], [], left)[0]:
                while self._read():
                    pass
        out, self.seen = self.seen, []
        return out

    def drain(self) -> list[tuple[int, int, int | None, bytes]]:
        """What arrived so far, without waiting."""
        while self._read():
            pass
        out, self.seen = self.seen, []
        return out

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def lab_frame(dst: str, src: str, sip: str, dip: str, sport: int, dport: int, kind: int, seq: int,
              vlan: int = 0) -> bytes:
    """An Ethernet (optionally 802.1Q) IPv4/UDP frame carrying the lab marker (scapy)."""
    from scapy.layers.inet import IP, UDP  # noqa: PLC0415
    from scapy.layers.l2 import Dot1Q, Ether  # noqa: PLC0415

    pkt = Ether(dst=dst, src=src)
    if vlan:
        pkt = pkt / Dot1Q(vlan=vlan)
    pkt = pkt / IP(src=sip, dst=dip) / UDP(sport=sport, dport=dport) / (MARK + struct.pack("!BI", kind, seq))
    return bytes(pkt)


@contextmanager
def private_bpffs(prefix: str = "pfrps-bpffs-") -> Iterator[str]:
    """A bpffs mounted on a fresh directory under /tmp (for pins that must not outlive a run);
    unmounted (MNT_DETACH) and removed afterwards.

    Raises:
        TopologyError: mount(2) refused (not root, or no bpffs in the kernel).
    """
    path = tempfile.mkdtemp(prefix=prefix)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"bpf", path.encode(), b"bpf", 0, None) != 0:
        code = ctypes.get_errno()
        os.rmdir(path)
        raise TopologyError(f"cannot mount a bpffs at {path}: {os.strerror(code)}", code=code,
                            hint="run as root on a kernel with bpffs")
    try:
        yield path
    finally:
        libc.umount2(path.encode(), 2)  # MNT_DETACH
        os.rmdir(path)


# frame kinds
K_TO_VM1, K_DENIED, K_ALLOWED2, K_WRONG_VLAN, K_UNKNOWN_MAC, K_FENCE = 1, 2, 3, 4, 5, 6
K_SPOOF, K_DNS, K_EGRESS, K_AFTER_DEL = 7, 8, 9, 10


class CloudHostLab(Lab):
    """Seed 003's host: l2fwd on two uplinks, two VMs with ACLs, VM egress over the bond hash."""

    title = "cloud host: XDP L2 forwarding to VMs (FDB, devmap ACL, vmegress), checked with tagged traffic"

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--frames", type=int, default=100, help="frames per check (default 100)")
        parser.add_argument("--generic", action="store_true", help="attach in generic (SKB) mode")

    def build(self, args) -> None:
        self._stack = ExitStack()
        self.bpffs = self._stack.enter_context(private_bpffs("pfrps-cloud-bpffs-"))
        self.ports: list[PacketPort] = []
        host, sw = self.add_ns("host"), self.add_ns("sw")
        vm1, vm2 = self.add_ns("vm1"), self.add_ns("vm2")
        self.veth(host, "eth0", sw, "sw0", mac_b=SW_MAC)
        self.veth(host, "eth1", sw, "sw1", mac_b="02:00:5e:00:00:02")
        self.veth(host, "tap1", vm1, "eth0", mac_b=MAC1)
        self.veth(host, "tap2", vm2, "eth0", mac_b=MAC2)
        mode = ["--generic"] if args.generic else []
        self.start_xdp(sw, "pass", "-i", "sw0", "-i", "sw1", *mode)
        self.start_xdp(vm1, "pass", "-i", "eth0", *mode)
        self.start_xdp(vm2, "pass", "-i", "eth0", *mode)
        self.l2fwd = self.start_xdp(
            host, "l2fwd", "-i", "eth0", "-i", "eth1", "--bpffs", self.bpffs, "--name", "lab", *mode,
            "--vm", f"1,tap1,{MAC1},vlan={VLAN1},4={VM1_IP}", "--vm", f"2,tap2,{MAC2},vlan={VLAN2},4={VM2_IP}",
            "--fdb", f"{MAC1},{VLAN1},tap1", "--fdb", f"{MAC2},{VLAN2},tap2",
            "--acl-to-vm", "tap2:proto=udp,dport=25", "--acl-from-vm", "tap1:proto=udp,dport=53")
        self.maps = CloudMaps.open(Path(self.bpffs, "pfrps-xdp", "lab"))

    def _port(self, role: str, ifname: str) -> PacketPort:
        p = PacketPort(self.ns(role), ifname)
        self.ports.append(p)
        return p

    def _delta(self, before: dict[str, int]) -> dict[str, int]:
        now = self.maps.counter_dict()
        return {k: now[k] - before[k] for k in now if now[k] != before[k]}

    def checks(self, args) -> None:
        n = args.frames
        sw0, sw1 = self._port("sw", "sw0"), self._port("sw", "sw1")
        vm1, vm2 = self._port("vm1", "eth0"), self._port("vm2", "eth0")
        host0 = self._port("host", "eth0")
        kinds = lambda got, k: [f for f in got if f[0] == k]  # noqa: E731

        # 1. VM-bound frames arrive untagged, exactly N
        c0 = self.maps.counter_dict()
        sw0.send(lab_frame(MAC1, SW_MAC, PEER_IP, VM1_IP, 4000, 7000, K_TO_VM1, i, VLAN1) for i in range(n))
        got = kinds(vm1.collect(lambda s: len(s) >= n), K_TO_VM1)
        untagged = [f for f in got if f[2] is None and f[3][12:14] == b"\x08\x00"]
        d = self._delta(c0)
        self.check("to-vm untagged", len(got) == n and len(untagged) == n and d.get("l2fwd_redirect") == n
                   and d.get("to_vm_pass") == n,
                   f"{len(got)}/{n} frames tagged VLAN {VLAN1} reached vm1, {len(untagged)} untagged; "
                   f"l2fwd_redirect +{d.get('l2fwd_redirect', 0)}, to_vm_pass +{d.get('to_vm_pass', 0)}")
        if self.interrupted():
            return

        # 2. an ACL-denied port gets 0 and is counted (the fence: an allowed frame sent last)
        c0 = self.maps.counter_dict()
        sw0.send(lab_frame(MAC2, SW_MAC, PEER_IP, VM2_IP, 4000, 25, K_DENIED, i, VLAN2) for i in range(n))
        sw0.send([lab_frame(MAC2, SW_MAC, PEER_IP, VM2_IP, 4000, 7000, K_FENCE, 0, VLAN2)])
        got = vm2.collect(lambda s: any(f[0] == K_FENCE for f in s))
        d = self._delta(c0)
        self.check("to-vm acl drop", not kinds(got, K_DENIED) and kinds(got, K_FENCE)
                   and d.get("to_vm_acl_drop") == n,
                   f"udp/25 to vm2 (rule proto=udp,dport=25): {len(kinds(got, K_DENIED))} of {n} arrived, "
                   f"to_vm_acl_drop +{d.get('to_vm_acl_drop', 0)}; the allowed fence frame "
                   f"{'arrived' if kinds(got, K_FENCE) else 'did not arrive'}")

        # 3. the wrong VLAN or an unknown MAC goes to the host stack, not the VM
        c0 = self.maps.counter_dict()
        sw0.send(lab_frame(MAC1, SW_MAC, PEER_IP, VM1_IP, 4000, 7000, K_WRONG_VLAN, i, VLAN2) for i in range(n))
        sw0.send(lab_frame("52:54:00:00:00:99", SW_MAC, PEER_IP, VM1_IP, 4000, 7000, K_UNKNOWN_MAC, i, VLAN1)
                 for i in range(n))
        sw0.send([lab_frame(MAC1, SW_MAC, PEER_IP, VM1_IP, 4000, 7000, K_FENCE, 1, VLAN1)])
        at_vm = vm1.collect(lambda s: any(f[0] == K_FENCE for f in s))
        at_host = host0.collect(lambda s: len(s) >= 2 * n)
        wrong = kinds(at_host, K_WRONG_VLAN)
        unknown = kinds(at_host, K_UNKNOWN_MAC)
        d = self._delta(c0)
        ok = (len(wrong) == n and len(unknown) == n and all(f[2] == VLAN2 for f in wrong)
              and all(f[2] == VLAN1 for f in unknown) and not kinds(at_vm, K_WRONG_VLAN)
              and not kinds(at_vm, K_UNKNOWN_MAC) and d.get("l2fwd_no_fdb") == 2 * n)
        self.check("slow path", ok,
                   f"host stack got {len(wrong)}/{n} of vm1's MAC on VLAN {VLAN2} and {len(unknown)}/{n} of an "
                   f"unknown MAC (tags kept), vm1 got {len(kinds(at_vm, K_WRONG_VLAN)) + len(kinds(at_vm, K_UNKNOWN_MAC))}; "
                   f"l2fwd_no_fdb +{d.get('l2fwd_no_fdb', 0)}")
        if self.interrupted():
            return

        # 4. spoofed source MACs and a denied flow from a VM are dropped and counted
        fences = self._fences(2)
        c0 = self.maps.counter_dict()
        vm1.send(lab_frame(GW_MAC, "02:66:66:66:66:66", VM1_IP, FAR_IP, 5000, 7000, K_SPOOF, i) for i in range(n))
        vm1.send(lab_frame(GW_MAC, MAC1, VM1_IP, FAR_IP, 5000, 53, K_DNS, i) for i in range(n))
        vm1.send(lab_frame(GW_MAC, MAC1, VM1_IP, FAR_IP, sport, 7000, K_FENCE, leg) for leg, sport in fences)
        legs = [sw0.collect(lambda s: any(f[0] == K_FENCE for f in s)),
                sw1.collect(lambda s: any(f[0] == K_FENCE for f in s))]
        spoofed = sum(len(kinds(g, K_SPOOF)) for g in legs)
        dns = sum(len(kinds(g, K_DNS)) for g in legs)
        d = self._delta(c0)
        self.check("from-vm spoof drop", spoofed == 0 and d.get("from_vm_spoof_drop") == n,
                   f"{spoofed} of {n} frames with a spoofed source MAC left an uplink, "
                   f"from_vm_spoof_drop +{d.get('from_vm_spoof_drop', 0)}")
        self.check("from-vm acl drop", dns == 0 and d.get("from_vm_acl_drop") == n,
                   f"udp/53 from vm1 (rule proto=udp,dport=53): {dns} of {n} left an uplink, "
                   f"from_vm_acl_drop +{d.get('from_vm_acl_drop', 0)}")

        # 5. VM egress leaves on the uplink the bond hash predicts, tagged with the VM's VLAN
        m = max(n, 64)
        sport = lambda i: 10000 + 37 * i  # noqa: E731
        want = [bond_hash(sport(i), 7000, ipaddress.ip_address(VM1_IP), ipaddress.ip_address(FAR_IP), 2)
                for i in range(m)]
        c0 = self.maps.counter_dict()
        vm1.send(lab_frame(GW_MAC, MAC1, VM1_IP, FAR_IP, sport(i), 7000, K_EGRESS, i) for i in range(m))
        total = lambda: len(legs[0]) + len(legs[1])  # noqa: E731
        legs = [[], []]
        deadline = time.monotonic() + 5
        while total() < m and time.monotonic() < deadline:
            for leg, port in enumerate((sw0, sw1)):
                legs[leg] += kinds(port.collect(lambda s: bool(s), timeout=0.05), K_EGRESS)
        on_leg = [{f[1] for f in legs[0]}, {f[1] for f in legs[1]}]
        right = sum(1 for i in range(m) if i in on_leg[want[i]] and i not in on_leg[1 - want[i]])
        tagged = sum(1 for g in legs for f in g if f[2] == VLAN1)
        d = self._delta(c0)
        self.check("egress bond hash", right == m and total() == m and tagged == m
                   and d.get("egress_redirect") == m,
                   f"{m} flows from vm1: eth0 {len(legs[0])} (predicted {want.count(0)}), eth1 {len(legs[1])} "
                   f"(predicted {want.count(1)}), {right} on the predicted uplink, {tagged} tagged VLAN {VLAN1}")
        if self.interrupted():
            return

        # 6. fdb del sends that VM's traffic back to the slow path
        res = self.run(self.ns("host"), [sys.executable, "-m", "pfrps.xdp", "fdb", "del", "--mac", MAC1,
                                         "--vlan", str(VLAN1), "--bpffs", self.bpffs, "--name", "lab"])
        c0 = self.maps.counter_dict()
        sw0.send(lab_frame(MAC1, SW_MAC, PEER_IP, VM1_IP, 4000, 7000, K_AFTER_DEL, i, VLAN1) for i in range(n))
        at_host = kinds(host0.collect(lambda s: len(s) >= n), K_AFTER_DEL)
        at_vm = kinds(vm1.drain(), K_AFTER_DEL)
        d = self._delta(c0)
        self.check("fdb del", res.returncode == 0 and len(at_host) == n and not at_vm and "l2fwd_redirect" not in d,
                   f"`pfrps-xdp fdb del --mac {MAC1} --vlan {VLAN1}` exit {res.returncode}; then the host stack got "
                   f"{len(at_host)}/{n}, vm1 {len(at_vm)}; l2fwd_no_fdb +{d.get('l2fwd_no_fdb', 0)}")

        # 7. on exit everything is detached and unpinned
        status, _out, err = self.stop_xdp(self.l2fwd)
        left = [dev for dev in ("eth0", "eth1", "tap1", "tap2") if self._xdp_on("host", dev)]
        pins = list(Path(self.bpffs).glob("pfrps-xdp/*"))
        self.check("clean exit", status == 0 and not left and not pins,
                   f"l2fwd exit {status}; XDP left on {left or 'no device'}; pins left: {len(pins)}"
                   + (f"; stderr: {err.strip().splitlines()[-1]}" if status and err.strip() else ""))

    def _fences(self, legs: int) -> list[tuple[int, int]]:
        """One (leg, sport) per uplink: a legit frame from vm1 that the bond hash sends there."""
        out: dict[int, int] = {}
        for sport in range(20000, 21000):
            leg = bond_hash(sport, 7000, ipaddress.ip_address(VM1_IP), ipaddress.ip_address(FAR_IP), legs)
            out.setdefault(leg, sport)
            if len(out) == legs:
                break
        return sorted(out.items())

    def _xdp_on(self, role: str, dev: str) -> bool:
        from .attach import xdp_attached  # noqa: PLC0415

        try:
            return xdp_attached(self.link(self.ns(role), dev)[0], self.ns(role)) is not None
        except (IndexError, OSError):
            return False

    def destroy(self) -> None:
        for p in getattr(self, "ports", []):
            p.close()
        if getattr(self, "maps", None) is not None:
            self.maps.close()
            self.maps = None
        super().destroy()
        if getattr(self, "_stack", None) is not None:
            self._stack.close()
            self._stack = None
