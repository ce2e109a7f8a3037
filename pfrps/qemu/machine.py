"""QEMU command lines for the seed's two guests, and the accelerator choice.

The topology of seed 004, one Ethernet segment::

    injector (eno1, SMBIOS type 41 onboard device 1) <-- link --> node (enp1s0, 52:54:00:84:d7:ff)

* node: q35, its virtio-net NIC behind a PCIe root port (bus 1, slot 0), which udev names
  ``enp1s0``; the injector's NIC on the root complex with an SMBIOS type 41 entry
  (``-smbios type=41,designation=eno1,instance=1,pcidev=...``), which udev names ``eno1``.
* link ``dgram`` (default): ``-netdev dgram`` over two unix datagram sockets, one per guest;
  single queue, back-pressure, nothing lost. Link ``tap``: a tap per guest on a bridge in a
  private network namespace, multi-queue (``queues=`` on the tap, ``mq=on,vectors=`` on the
  device), so native XDP gets its own TX queues (the kernel wants 2 x vCPUs queue pairs).
* NICs have the guest offloads off (``guest_tso4/6, guest_ecn, guest_ufo``): virtio-net
  refuses native XDP while the host may hand it GRO'd frames (seed 003; drivers/net/virtio_net.c).
* direct kernel boot, one raw image for both guests with ``snapshot=on``, the checkout over 9p
  read-only (tag ``src``), the run's results folder over 9p (tag ``results``), serial console
  to a file (or the terminal for ``--shell``), ``-no-reboot`` so the guest's poweroff ends QEMU.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from .image import script_path

__all__ = ["GuestSpec", "NODE_MAC", "guest_argv", "kernel_cmdline", "choose_accel", "cpu_flags",
           "kvm_usable", "probe_kvm", "LINKS"]

NODE_MAC = "52:54:00:84:d7:ff"
#: ``pfrps.script=`` of ./run qemu: ``pfrps/qemu/files/guest-run``, relative to the shared checkout.
GUEST_SCRIPT = script_path("guest-run")
LINKS = ("dgram", "tap")
#: Modules udev would load for q35's emulated chipset and ``-cpu max`` (which shows vmx): none is
#: used, and under TCG loading kvm_intel alone took 26 s of a boot here.
SKIP_MODULES = ("kvm", "kvm_intel", "kvm_amd", "iTCO_wdt", "iTCO_vendor_support", "lpc_ich", "i2c_i801",
                "i2c_smbus", "pcspkr", "joydev", "evdev", "serio_raw", "intel_rapl_msr", "intel_rapl_common")
NIC_OFFLOADS_OFF = "guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off"


@dataclass
class GuestSpec:
    """One guest: ``name`` (``node`` or ``injector``, also its host name), its NIC ``mac``,
    ``ifname`` (the name the seed gives it), vCPUs ``smp``, ``memory`` in MiB, and the run's
    files: ``serial`` (console log; None = the terminal), ``sock``/``peer_sock`` (dgram link) or
    ``tap`` + ``queues`` (tap link)."""

    name: str
    mac: str
    ifname: str
    smp: int = 2
    memory: int = 1024
    serial: Optional[Path] = None
    sock: Optional[Path] = None
    peer_sock: Optional[Path] = None
    tap: Optional[str] = None
    queues: int = 1
    shell: bool = False
    extra_append: Sequence[str] = field(default_factory=tuple)


def kernel_cmdline(spec: GuestSpec) -> str:
    """The guest kernel's command line: root on the virtio disk, serial console (kernel and
    systemd messages in full: a guest that hangs shows where), the guest's
    host name, ``pfrps.script=pfrps/qemu/files/guest-run`` for the image's unit, and the serial getty masked
    unless ``spec.shell`` (then ``pfrps.shell=1``: a root shell on the console)."""
    parts = ["root=/dev/vda", "rw", "console=ttyS0,115200", "panic=-1",
             f"systemd.hostname={spec.name}", f"pfrps.script={GUEST_SCRIPT}", "net.ifnames=1"]
    parts.append("modprobe.blacklist=" + ",".join(SKIP_MODULES))
    if spec.shell:
        parts.append("pfrps.shell=1")
    else:
        parts += ["systemd.mask=serial-getty@ttyS0.service", "systemd.mask=getty.target"]
    parts.extend(spec.extra_append)
    return " ".join(parts)


def _nic(spec: GuestSpec, bus: str) -> str:
    dev = f"virtio-net-pci,id=nic0,netdev=net0,mac={spec.mac},bus={bus},{NIC_OFFLOADS_OFF}"
    if spec.queues > 1:
        dev += f",mq=on,vectors={2 * spec.queues + 2}"
    if bus != "pcie.0":
        dev += ",addr=0x0"
    return dev


def guest_argv(spec: GuestSpec, kernel: Path, initrd: Path, root_image: Path, checkout: Path,
               results: Path, accel: str = "tcg", qemu: str = "qemu-system-x86_64") -> list[str]:
    """The full ``qemu-system-x86_64`` command line of one guest.

    ``accel`` is ``tcg`` (``-cpu max``, multi-threaded TCG) or ``kvm`` (``-cpu host``).
    The node's NIC is on a PCIe root port (-> ``enp1s0``); any other guest's NIC is on the root
    complex with an SMBIOS type 41 entry naming it ``spec.ifname`` (-> ``eno1``).
    """
    accel_opt = "kvm" if accel == "kvm" else "tcg,thread=multi"
    argv = [qemu, "-name", f"{spec.name},process=pfrps-qemu-{spec.name}",
            "-machine", "q35", "-accel", accel_opt, "-cpu", "host" if accel == "kvm" else "max",
            "-smp", str(spec.smp), "-m", str(spec.memory),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", str(kernel), "-initrd", str(initrd), "-append", kernel_cmdline(spec),
            "-drive", f"file={root_image},format=raw,if=none,id=disk0,snapshot=on",
            "-device", "virtio-blk-pci,drive=disk0,bus=pcie.0",
            "-virtfs", f"local,path={checkout},mount_tag=src,security_model=none,readonly=on,id=src",
            "-virtfs", f"local,path={results},mount_tag=results,security_model=none,id=results"]
    if spec.serial is None:
        argv += ["-serial", "mon:stdio"]
    else:
        argv += ["-serial", f"file:{spec.serial}"]
    if spec.tap:
        tap = f"tap,id=net0,ifname={spec.tap},script=no,downscript=no,vhost=off"
        if spec.queues > 1:
            tap += f",queues={spec.queues}"
        argv += ["-netdev", tap]
    else:
        argv += ["-netdev", f"dgram,id=net0,local.type=unix,local.path={spec.sock},"
                            f"remote.type=unix,remote.path={spec.peer_sock}"]
    if spec.ifname.startswith("enp"):
        argv += ["-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1", "-device", _nic(spec, "rp1")]
    else:
        instance = int("".join(c for c in spec.ifname if c.isdigit()) or "1")
        argv += ["-device", _nic(spec, "pcie.0"),
                 "-smbios", f"type=41,designation={spec.ifname},kind=ethernet,instance={instance},pcidev=nic0"]
    return argv


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The ``flags`` of the first CPU in ``/proc/cpuinfo`` (or the text given)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def kvm_usable(dev: str = "/dev/kvm") -> bool:
    """True when ``dev`` opens read-write (it may still be a software hypervisor: probe it)."""
    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def probe_kvm(kernel: Path, timeout: float = 60.0, qemu: str = "qemu-system-x86_64") -> bool:
    """Boot the guest kernel under KVM with no root file system and ``panic=-1``: True when it
    got as far as looking for its root (``VFS:`` or ``Kernel panic`` on the console) and QEMU
    exited by itself within ``timeout`` s. A software hypervisor such as kvm_pvm fails here
    with an emulation error, where /dev/kvm alone looks usable."""
    argv = [qemu, "-machine", "q35", "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults",
            "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
            "-kernel", str(kernel), "-append", "console=ttyS0 panic=-1 root=/dev/nonexistent"]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "VFS:" in out.stdout or "Kernel panic" in out.stdout


def choose_accel(flags: set[str], kvm_ok: bool, probe: Callable[[], bool], want: str = "auto") -> tuple[str, str]:
    """``(accel, reason)``: ``kvm`` only when ``want`` allows it, the CPU has ``vmx`` or ``svm``,
    /dev/kvm opens (``kvm_ok``) and ``probe()`` (a boot under a timeout) succeeds; else ``tcg``.
    ``want`` ``tcg`` forces TCG; ``kvm`` still needs the probe to pass."""
    if want == "tcg":
        return "tcg", "TCG: asked for (--accel tcg)"
    if not flags & {"vmx", "svm"}:
        return "tcg", "TCG: the CPU has no vmx/svm flag (no hardware virtualisation)"
    if not kvm_ok:
        return "tcg", "TCG: /dev/kvm does not open"
    if not probe():
        return "tcg", "TCG: a KVM probe boot of the guest kernel failed"
    return "kvm", "KVM: vmx/svm present and a probe boot succeeded"
