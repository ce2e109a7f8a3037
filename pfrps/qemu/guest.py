"""What runs inside each QEMU guest (``pfrps/qemu/files/guest-run <name>``, started by the image's unit).

``python -m pfrps.qemu.guest node|injector /mnt/results/run.json``; its output goes to the
results folder line by line (the host shows it live) and the node also writes ``node.json``.

node:
  1. ``pfrps -i enp1s0 -w W -a A -c N`` (from the checkout); when its workers are ready
     (``--ready-fd``), hand-shake with the injector (below); pfrps exits at ``total:N``.
  2. native-XDP check: ``bpf/qemu_xdp_count.bpf.c`` compiled by bcc (exact 6.1 headers in the
     guest), attached to enp1s0 with ``XDP_FLAGS_DRV_MODE`` through pyroute2; the attach mode the
     kernel reports (IFLA_XDP_ATTACHED) must be native (XDP_ATTACHED_DRV); pfrps again, another
     N frames; the XDP PPPoE counter and pfrps's total must both be exactly N.
injector: for each phase, wait for the node's go frame, acknowledge it, run
  ``pfinject -i eno1 -d 52:54:00:84:d7:ff -p N`` (``--seed S`` then ``S+1`` when given).

Hand-shake: frames of ethertype 0x88B5 (IEEE 802 local experimental), payload ``pfrps-go:<k>`` from
the node, repeated every 0.5 s until ``pfrps-ack:<k>`` comes back (the link drops frames while
the peer's QEMU has not bound its socket yet, so a single go frame could be lost); after
pfinject, ``pfrps-done:<k>``, after which pfrps has 10 s to reach N or is stopped. pfrps only
takes PPPoE ethertypes and the XDP check counts PPPoE separately, so they do not disturb counts.
"""

from __future__ import annotations

import errno
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["main", "parse_seed_line", "SYNC_ETHERTYPE", "XDP_FLAGS_DRV_MODE", "XDP_ATTACHED_DRV"]

SYNC_ETHERTYPE = 0x88B5
XDP_FLAGS_DRV_MODE = 1 << 2    # include/uapi/linux/if_link.h
XDP_ATTACHED_DRV = 1           # IFLA_XDP_ATTACHED: native (driver) mode
BROADCAST = b"\xff" * 6
LINE_RE = re.compile(r"^((?:#\d+:\d+ )+)\(total:(\d+) std_dev:([\d.]+)\)")


def parse_seed_line(line: str) -> Optional[tuple[list[int], int]]:
    """``#0:0250 #1:0248 ... (total:2000 std_dev:3.1)`` -> ``([250, 248, ...], 2000)``; None
    for any other line. Trailing drop counters (``drops #3:12 ...``) are ignored."""
    m = LINE_RE.match(line.strip())
    if not m:
        return None
    counts = [int(p.split(":")[1]) for p in m.group(1).split()]
    return counts, int(m.group(2))


def say(text: str) -> None:
    print(text, flush=True)


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def link_up(ifname: str, txqlen: Optional[int] = None) -> tuple[int, str]:
    """Disable IPv6 on ``ifname`` (no DAD/RS chatter on the link), set it and lo up: ``(ifindex, mac)``.
    With ``txqlen``, the root qdisc becomes a pfifo holding that many frames (tc-pfifo(8))."""
    from pyroute2 import IPRoute
    try:
        Path(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6").write_text("1\n")
    except OSError:
        pass
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
            raise SystemExit(f"{ifname} not found in the guest (links: {', '.join(names)})")
        ipr.link("set", index=idx[0], state="up", **({"txqlen": txqlen} if txqlen else {}))
        if txqlen:
            ipr.tc("replace", "pfifo", idx[0], 0x10000, limit=txqlen)
        lo = ipr.link_lookup(ifname="lo")
        if lo:
            ipr.link("set", index=lo[0], state="up")
        mac = ipr.get_links(idx[0])[0].get_attr("IFLA_ADDRESS")
    return idx[0], mac


def _sync_socket(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(SYNC_ETHERTYPE))
    s.bind((ifname, SYNC_ETHERTYPE))
    return s


def _sync_frame(src_mac: str, text: str) -> bytes:
    from scapy.layers.l2 import Ether
    return bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=src_mac, type=SYNC_ETHERTYPE) / text.encode())


def _recv_text(s: socket.socket, timeout: float) -> Optional[str]:
    r, _, _ = select.select([s], [], [], timeout)
    if not r:
        return None
    data, addr = s.recvfrom(2048)
    if addr[2] == socket.PACKET_OUTGOING:
        return ""
    return data[14:].split(b"\0", 1)[0].decode(errors="replace")


def go_and_wait_ack(ifname: str, mac: str, phase: int, timeout: float) -> None:
    """Node side: send ``pfrps-go:<phase>`` every 0.5 s until ``pfrps-ack:<phase>`` arrives."""
    s = _sync_socket(ifname)
    frame = _sync_frame(mac, f"pfrps-go:{phase}")
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            s.send(frame)
            stop = time.monotonic() + 0.5
            while (left := stop - time.monotonic()) > 0:
                if _recv_text(s, left) == f"pfrps-ack:{phase}":
                    return
        raise SystemExit(f"no acknowledgement from the injector for phase {phase} within {timeout:.0f} s")
    finally:
        s.close()


def wait_go_and_ack(ifname: str, mac: str, phase: int, timeout: float) -> None:
    """Injector side: wait for ``pfrps-go:<phase>``, answer ``pfrps-ack:<phase>``."""
    s = _sync_socket(ifname)
    end = time.monotonic() + timeout
    try:
        while (left := end - time.monotonic()) > 0:
            if _recv_text(s, left) == f"pfrps-go:{phase}":
                ack = _sync_frame(mac, f"pfrps-ack:{phase}")
                s.send(ack)
                return
        raise SystemExit(f"no go frame from the node for phase {phase} within {timeout:.0f} s")
    finally:
        s.close()


def guest_ring_args(workers: int, budget: int = 256 << 20, block: int = 64 << 10) -> list[str]:
    """pfrps ring options for a guest: 64 KiB blocks, as many as ``budget`` bytes allow up to 256
    per worker (16 MiB, at least 16). The kernel retires a block 10 ms after opening it however
    few frames it holds, so a ring of B blocks lasts B x 10 ms while its worker is not scheduled;
    a TCG vCPU on a busy host is descheduled longer than the default 16 blocks (160 ms) allow
    (2 rings froze and dropped 23 frames here)."""
    blocks = max(16, min(256, budget // (workers * block)))
    return ["--ring-blocks", str(blocks), "--ring-block-size", str(block)]


def run_pfrps(cfg: dict, ifname: str, mac: str, phase: int) -> tuple[int, Optional[tuple[list[int], int]]]:
    """Run pfrps until ``total:N``, streaming its lines; ``(status, last seed line parsed)``.

    When the injector's ``pfrps-done:<phase>`` frame arrives and pfrps has not reached N within
    ``cfg["grace"]`` seconds (default 10) after it, pfrps is stopped (SIGINT): frames were lost."""
    r, w = os.pipe()
    argv = [sys.executable, "-m", "pfrps", "-i", ifname, "-w", str(cfg["workers"]), "-a", str(cfg["hash_alg"]),
            *(["--steering", cfg["steering"]] if cfg.get("steering") else []),
            *guest_ring_args(cfg["workers"]),
            "-c", str(cfg["frames"]), "--duration", str(cfg.get("pfrps_duration", 600)), "--ready-fd", str(w)]
    say("node$ pfrps " + " ".join(argv[3:-2]))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, pass_fds=(w,),
                            bufsize=1)
    os.close(w)
    last = None
    ready = False
    sync = _sync_socket(ifname)
    stop_at = None
    try:
        fds = {proc.stdout.fileno(): "out", r: "ready"}
        while fds:
            wait = 600 if stop_at is None else None if stop_at == float("inf") else max(0.0, stop_at - time.monotonic())
            readable, _, _ = select.select(list(fds), [], [], wait)
            if stop_at is not None and time.monotonic() >= stop_at and proc.poll() is None:
                say(f"node: the injector is done but pfrps has not reached total:{cfg['frames']} "
                    f"{cfg.get('grace', 10)} s later; stopping it")
                proc.send_signal(signal.SIGINT)
                stop_at = float("inf")
            if not readable and stop_at is None:
                break
            for fd in readable:
                if fds[fd] == "sync":
                    if _recv_text(sync, 0) == f"pfrps-done:{phase}" and stop_at is None:
                        stop_at = time.monotonic() + cfg.get("grace", 10)
                    continue
                if fds[fd] == "ready":
                    data = os.read(r, 64)
                    del fds[r]
                    if data.startswith(b"READY"):
                        ready = True
                        go_and_wait_ack(ifname, mac, phase, cfg.get("sync_timeout", 300))
                        fds[sync.fileno()] = "sync"
                    continue
                line = proc.stdout.readline()
                if not line:
                    fds.clear()  # pfrps closed its output: it is exiting
                    break
                say(line.rstrip("\n"))
                parsed = parse_seed_line(line)
                if parsed:
                    last = parsed
    finally:
        os.close(r)
        sync.close()
        status = proc.wait()
    if not ready:
        say(f"node: pfrps exited with status {status} before its workers were ready")
    return status, last


class XdpCounter:
    """``bpf/qemu_xdp_count.bpf.c`` on ``ifindex`` in native mode, attached through a BPF link
    (``BPF_LINK_CREATE``: detached by the kernel when this process ends, however), or through
    pyroute2 (netlink) on a kernel without XDP links."""

    def __init__(self, ifindex: int) -> None:
        from bcc import BPF
        from pfrps.bpfload import bpf_source_dir
        self.ifindex = ifindex
        self.bpf = BPF(src_file=str(bpf_source_dir() / "qemu_xdp_count.bpf.c"))
        self.fn = self.bpf.load_func("xdp_count", BPF.XDP)
        self.attached = False
        self.link_fd = -1

    def attach(self) -> str:
        """Attach in driver mode; return the mode the kernel reports (``native``, ``generic``, ...)."""
        from pyroute2 import IPRoute

        from pfrps import bpfsys
        from pfrps.errors import PfrpsError
        try:
            self.link_fd = bpfsys.link_create(self.fn.fd, self.ifindex, bpfsys.BPF_XDP, XDP_FLAGS_DRV_MODE)
            self.attached = True
        except PfrpsError as exc:
            if exc.code not in (errno.EINVAL, 524, errno.ENOSYS):  # 524: ENOTSUPP, no XDP links
                raise
            say(f"node: no BPF links for XDP on this kernel ({exc.msg}); attaching through netlink")
        with IPRoute() as ipr:
            if not self.attached:
                ipr.link("set", index=self.ifindex,
                         xdp={"attrs": [("IFLA_XDP_FD", self.fn.fd), ("IFLA_XDP_FLAGS", XDP_FLAGS_DRV_MODE)]})
                self.attached = True
            xdp = ipr.get_links(self.ifindex)[0].get_attr("IFLA_XDP")
        mode = xdp.get_attr("IFLA_XDP_ATTACHED") if xdp is not None else None
        return {"xdp": "native", "xdpgeneric": "generic", "xdpoffload": "offload", 1: "native",
                2: "generic", 3: "offload"}.get(mode, str(mode))

    def counts(self) -> tuple[int, int]:
        """``(PPPoE discovery frames, other frames)`` summed over CPUs."""
        table = self.bpf["xdp_frames"]
        vals = [sum(table[table.Key(i)]) for i in (0, 1)]
        return vals[0], vals[1]

    def detach(self) -> None:
        from pyroute2 import IPRoute
        if self.link_fd >= 0:
            os.close(self.link_fd)  # closing the link detaches
            self.link_fd = -1
            self.attached = False
        if self.attached:
            with IPRoute() as ipr:
                ipr.link("set", index=self.ifindex, xdp={"attrs": [("IFLA_XDP_FD", -1),
                                                                   ("IFLA_XDP_FLAGS", XDP_FLAGS_DRV_MODE)]})
            self.attached = False
        self.bpf.cleanup()


def _kernel_xdp_warnings() -> list[str]:
    """Lines of the kernel log about XDP (virtio_net's queue warning), read from /dev/kmsg."""
    out = []
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return out
    try:
        while True:
            try:
                rec = os.read(fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except OSError:
                continue
            msg = rec.split(";", 1)[-1].split("\n", 1)[0].strip()  # drop the SUBSYSTEM=/DEVICE= lines
            if "XDP" in msg and "PF_XDP" not in msg:
                out.append(msg)
    finally:
        os.close(fd)
    return out


def node(cfg: dict, results: Path) -> int:
    ifname = cfg["node_if"]
    ifindex, mac = link_up(ifname)
    say(f"node: booted in {_uptime():.1f} s (guest uptime); {ifname} up, ifindex {ifindex}, {mac}, "
        f"kernel {os.uname().release}, {os.cpu_count()} vCPUs")
    report: dict = {"mac": mac, "ifindex": ifindex}
    t0 = time.monotonic()
    status, last = run_pfrps(cfg, ifname, mac, 1)
    report["run"] = {"status": status, "frames": last[0] if last else None, "total": last[1] if last else None,
                     "seconds": round(time.monotonic() - t0, 2)}
    ok = status == 0 and last is not None and last[1] == cfg["frames"]
    say(f"node: pfrps exited with status {status} ({time.monotonic() - t0:.1f} s)")
    if cfg.get("xdp", True):
        t1 = time.monotonic()
        xdp = XdpCounter(ifindex)
        try:
            say(f"node: compiled bpf/qemu_xdp_count.bpf.c in {time.monotonic() - t1:.1f} s")
            mode = xdp.attach()
            warnings = _kernel_xdp_warnings()
            say(f"node: XDP attached to {ifname} in {mode} mode (IFLA_XDP_ATTACHED)")
            for w in warnings:
                say(f"node: kernel: {w}")
            status2, last2 = run_pfrps(cfg, ifname, mac, 2)
            pppoe, other = xdp.counts()
        finally:
            xdp.detach()
        total2 = last2[1] if last2 else None
        xdp_ok = mode == "native" and status2 == 0 and pppoe == cfg["frames"] and total2 == cfg["frames"]
        report["xdp"] = {"mode": mode, "xdp_frames": pppoe, "xdp_other_frames": other, "pfrps_status": status2,
                         "pfrps_total": total2, "frames": last2[0] if last2 else None, "kernel": warnings}
        say(f"xdp: {'OK' if xdp_ok else 'FAILED'}: {mode} mode on {ifname}; XDP counted {pppoe} PPPoE frames "
            f"(+{other} others), pfrps total:{total2}, sent {cfg['frames']}")
        ok = ok and xdp_ok
    (results / "node.json.tmp").write_text(json.dumps(report) + "\n")
    os.rename(results / "node.json.tmp", results / "node.json")
    return 0 if ok else 1


def qdisc_drops(ifindex: int) -> int:
    """Frames the root qdisc of ``ifindex`` dropped (TCA_STATS2 queue drops, as ``tc -s qdisc`` shows)."""
    from pyroute2 import IPRoute
    total = 0
    with IPRoute() as ipr:
        for q in ipr.get_qdiscs(index=ifindex):
            if q["parent"] != 0xFFFFFFFF:
                continue
            stats = q.get_attr("TCA_STATS2")
            queue = stats.get_attr("TCA_STATS_QUEUE") if stats is not None else None
            total += queue["drops"] if queue is not None else 0
    return total


def injector(cfg: dict, results: Path) -> int:
    ifname = cfg["injector_if"]
    # The whole burst fits in the qdisc: when the node's QEMU pushes back (a slow TCG guest), the
    # frames wait there instead of being dropped (pfifo_fast with txqlen 1000 lost 1% here).
    ifindex, mac = link_up(ifname, txqlen=max(1000, cfg["frames"] + 1000))
    say(f"injector: booted in {_uptime():.1f} s (guest uptime); {ifname} up, ifindex {ifindex}, {mac}")
    phases = 2 if cfg.get("xdp", True) else 1
    for phase in range(1, phases + 1):
        wait_go_and_ack(ifname, mac, phase, cfg.get("sync_timeout", 300))
        argv = [sys.executable, "-m", "pfrps.inject", "-i", ifname, "-d", cfg["node_mac"], "-p", str(cfg["frames"])]
        if cfg.get("rate"):
            argv += ["--rate", str(cfg["rate"])]
        if cfg.get("seed") is not None:
            argv += ["--seed", str(cfg["seed"] + phase - 1)]
        say("injector$ pfinject " + " ".join(argv[3:]))
        sys.stdout.flush()
        rc = subprocess.run(argv, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            say(f"injector: pfinject exited with status {rc}")
            return rc
        drops = qdisc_drops(ifindex)
        if drops:
            say(f"injector: the qdisc of {ifname} dropped {drops} frames so far")
        send_done(ifname, mac, phase)
    return 0


def send_done(ifname: str, mac: str, phase: int, copies: int = 5) -> None:
    """Injector side: ``pfrps-done:<phase>``, ``copies`` times 0.2 s apart (a full tap ring may drop one)."""
    s = _sync_socket(ifname)
    frame = _sync_frame(mac, f"pfrps-done:{phase}")
    try:
        for i in range(copies):
            s.send(frame)
            if i + 1 < copies:
                time.sleep(0.2)  # pacing between copies, not a wait for readiness
    finally:
        s.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``guest.py NAME RUN_JSON``: run the guest's part; exit status 0 when its checks passed."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("node", "injector"):
        print("usage: python -m pfrps.qemu.guest node|injector /mnt/results/run.json", file=sys.stderr)
        return 2
    path = Path(args[1])
    cfg = json.loads(path.read_text())
    return (node if args[0] == "node" else injector)(cfg, path.parent)


if __name__ == "__main__":
    sys.exit(main())
