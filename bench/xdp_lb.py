"""Benchmark: the XDP L4 load balancer (seed 002) vs the kernel's NAT and vs HAProxy.

Topology: the seed's testbed of ``pfrps-xdp lab lb`` (:class:`pfrps.xdp.lb_lab.LbLab`: client,
h2, h3 and lb namespaces on a bridge namespace, TX checksum offload off on the senders), the
VIP 10.0.0.10 on ``lb/veth6``. The same traffic goes through three load balancers in turn,
each alone on the LB namespace:

* ``xdp``: ``pfrps-xdp lb`` in native mode (XDP_TX; ``xdp_pass`` on the bridge-side peer),
  and ``xdp-generic``, the same in generic mode (informational: on veth, native mode copies
  each frame into an XDP buffer and back into an skb, generic mode runs on the skb itself).
* ``nftables``: the kernel's own NAT doing the same job (this kernel has nf_tables and NAT, no
  IPVS): DNAT to ``jhash ip saddr . sport mod 2`` over the backends, SNAT to the VIP (full NAT,
  as the XDP LB), forwarding on, ICMP redirects off.
* ``haproxy``: Debian's HAProxy in TCP mode (``balance source``), a config file of the bench's
  own, run in the foreground in the LB namespace (``-db``) and ended with the namespace; TCP only.

Figures, each the median of several runs:

* UDP packets/s, live-frame source (the target row): a live-frame BPF_PROG_TEST_RUN
  (``BPF_F_TEST_XDP_LIVE_FRAMES``) of ``bpf/xdp_l2fwd_gen.bpf.c`` in the bridge namespace,
  pinned to one CPU, redirects the client's 60-byte UDP datagrams (client MAC and address, 64
  source ports) out of ``br/veth7``, so ``lb/veth6`` receives xdp_frames, as from a NIC's ring
  (the client -> LB bridge crossing is skipped; the LB -> backend leg still crosses the
  bridge). ``xdp``: the LB native on veth6, ``xdp_pass`` on veth7 (its XDP_TX needs it);
  ``nftables``: ``pfrps-xdp pass`` on veth6, the natural reference (the same receive path:
  xdp_frame, XDP program, an skb for the stack, which NATs and forwards), nothing on veth7.
  The rate is the datagrams that reached h2 and h3 per second of the generator's run. The
  receivers, back to back in each configuration (bench/xdp_sink.py): ``sink`` (the target
  row), ``bpf/xdp_sink.bpf.c`` native on both backends' veths in both configurations,
  XDP_DROP of the datagrams to port 9000 (everything else passes), counted by the program;
  ``none`` (the earlier method), nothing attached, the backends' stacks, ``rx_packets``.
* UDP packets/s, trafgen (kept as the second method): trafgen in the client sends 60-byte
  UDP datagrams from 64 source ports to VIP:9000 as fast as it can (one CPU); the rate is the datagrams that reached h2 and h3
  (their interfaces' ``rx_packets``) per second of sending.
* TCP connections/s: ``python -m pfrps.xdp.lb_traffic churn`` in the client (concurrency 32,
  uvloop): connect, one request and reply, close, for a few seconds, against servers in h2
  and h3 (uvloop).

Goals (issue 8): XDP >= 2x nftables and >= 5x HAProxy. All of it runs on the same 2 CPUs
(sender, LB, bridge, servers), so the figures measure the whole path, and the machine is
shared with other work: ratios are from one run.
"""

from __future__ import annotations

import argparse
import json
import select
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from pfrps.xdp.lb_lab import VIP, LbLab, backend_roles

from . import common
from .common import HarnessError, Row, summary
from .xdp_l2fwd import load_generator, run_generator
from .xdp_l3fwd import settled
from .xdp_sink import Sink

NAME = "xdp_lb"
TITLE = "XDP load balancer vs nftables DNAT vs HAProxy"
TCP_PORT = 8080
UDP_PORT = 9000
UDP_FLOWS = 64

TRAFGEN_UDP = """\
{{
  eth(da={lb_mac}, sa={client_mac}, type=0x0800),
  ipv4(saddr=10.0.0.1, daddr={vip}, ttl=64, df),
  udp(sport=dinc(40000, {last_port}), dport={port}),
  fill(0x41, 18)
}}
"""

NFT_RULES = """\
table ip pfrps_bench_lb {{
  chain pre {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {vip} tcp dport {tcp} dnat to jhash ip saddr . tcp sport mod {n} map {{ {map} }}
    ip daddr {vip} udp dport {udp} dnat to jhash ip saddr . udp sport mod {n} map {{ {map} }}
  }}
  chain post {{
    type nat hook postrouting priority srcnat; policy accept;
    ip daddr {{ {backends} }} oifname "veth6" snat to {vip}
  }}
}}
"""

HAPROXY_CFG = """\
global
    maxconn 8000
    nbthread 1
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind {vip}:{tcp}
    default_backend be
backend be
    balance source
{servers}
"""


def _rx_packets(ifname: str) -> int:
    """rx_packets of ``ifname`` in the calling namespace (IFLA_STATS64)."""
    from pyroute2 import IPRoute  # noqa: PLC0415

    with IPRoute() as ipr:
        link = ipr.get_links(ipr.link_lookup(ifname=ifname)[0])[0]
    st = link.get_attr("IFLA_STATS64") or link.get_attr("IFLA_STATS") or {}
    return int(st.get("rx_packets", 0))


def _listening(port: int) -> bool:
    """True when a TCP socket listens on ``port`` in the calling namespace (/proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        next(f)
        return any(ln.split()[3] == "0A" and int(ln.split()[1].split(":")[1], 16) == port for ln in f)


class Bed:
    """The testbed, built once; one load balancer at a time in its LB namespace."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.lab = LbLab(prefix="pxblb", out=open("/dev/null", "w"))
        self.lab.build(argparse.Namespace(backends=2, generic=False, connections=0))
        self.roles = backend_roles(self.lab.bed)
        self.backends = [self.lab.bed[r][1] for r in self.roles]
        for r in self.roles:
            self.lab.server(r)
        for role in ("client", "lb"):  # tens of thousands of short connections per run
            self.lab.sysctl(self.lab.ns(role), "net/ipv4/tcp_tw_reuse", "1")
            self.lab.sysctl(self.lab.ns(role), "net/ipv4/ip_local_port_range", "10000 60999")
        self.lb_ns = self.lab.ns("lb")
        self.client_ns = self.lab.ns("client")
        _, self.lb_mac = self.lab.link(self.lb_ns, "veth6")
        _, self.client_mac = self.lab.link(self.client_ns, "veth0")
        self.trafgen_cfg = work / "lb_udp.trafgen"
        self.trafgen_cfg.write_text(TRAFGEN_UDP.format(lb_mac=self.lb_mac, client_mac=self.client_mac, vip=VIP,
                                                       last_port=40000 + UDP_FLOWS - 1, port=UDP_PORT))
        # The same datagrams straight to h2, no LB: the path's own ceiling (sender, bridge, veth).
        _, h2_mac = self.lab.link(self.lab.ns("h2"), self.lab.bed["h2"][0])
        self.direct_cfg = work / "direct_udp.trafgen"
        self.direct_cfg.write_text(TRAFGEN_UDP.format(lb_mac=h2_mac, client_mac=self.client_mac,
                                                      vip=self.lab.bed["h2"][1], last_port=40000 + UDP_FLOWS - 1,
                                                      port=UDP_PORT))
        # The live-frame source: the client's datagrams sent out of br/veth7 into lb/veth6.
        self.frame = live_frame(self.client_mac, self.lb_mac)
        self.gen_stack = ExitStack()
        try:
            self.gen_fd = load_generator(self.gen_stack, self.frame, self.lab.link(self.lab.ns("br"), "veth7")[0],
                                         flows=UDP_FLOWS, words=6)
            self.sink = Sink(self.gen_stack, udp_dport=UDP_PORT)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.gen_stack.close()
        self.lab.destroy()
        self.lab.out.close()

    # -- the three load balancers -----------------------------------------------------------
    def start(self, kind: str) -> list[subprocess.Popen]:
        if kind in ("xdp", "xdp-generic"):
            gen = ["--generic"] if kind == "xdp-generic" else []
            return [self.lab.start_xdp(self.lab.ns("br"), "pass", "-i", "veth7", *gen),
                    self.lab.start_xdp(self.lb_ns, "lb", "-i", "veth6", "--vip", VIP, "--port", str(TCP_PORT),
                                       "--port", str(UDP_PORT), *gen, *[a for b in self.backends
                                                                       for a in ("--backend", b)])]
        self.lab.sysctl(self.lb_ns, "net/ipv4/ip_forward", "1")
        for dev in ("all", "veth6"):
            self.lab.sysctl(self.lb_ns, f"net/ipv4/conf/{dev}/send_redirects", "0")
        if kind == "nftables":
            rules = self.work / "lb.nft"
            rules.write_text(NFT_RULES.format(
                vip=VIP, tcp=TCP_PORT, udp=UDP_PORT, n=len(self.backends),
                map=", ".join(f"{i} : {b}" for i, b in enumerate(self.backends)), backends=", ".join(self.backends)))
            res = self.lab.run(self.lb_ns, ["nft", "-f", str(rules)])
            if res.returncode != 0:
                raise HarnessError(f"nft -f failed: {res.stderr.strip()}")
            return []
        cfg = self.work / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(vip=VIP, tcp=TCP_PORT, servers="\n".join(
            f"    server {r} {self.lab.bed[r][1]}:{TCP_PORT}" for r in self.roles)))
        proc = self.lab.popen(self.lb_ns, ["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not self.lab.call(self.lb_ns, _listening, TCP_PORT):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise HarnessError(f"haproxy did not start: {proc.stderr.read()[-300:] if proc.poll() is not None else 'timeout'}")
            select.select([], [], [], 0.05)  # polling a condition (the listening socket) with a deadline
        return [proc]

    def stop(self, kind: str, procs: list[subprocess.Popen]) -> None:
        for p in procs:
            if kind.startswith("xdp"):
                self.lab.stop_xdp(p)
            else:
                common.interrupt_and_wait(p, kind, 20, sig=15)
        if kind == "nftables":
            self.lab.run(self.lb_ns, ["nft", "delete", "table", "ip", "pfrps_bench_lb"])
        if not kind.startswith("xdp"):
            self.lab.sysctl(self.lb_ns, "net/ipv4/ip_forward", "0")

    # -- traffic ----------------------------------------------------------------------------
    def delivered(self) -> int:
        return sum(self.lab.call(self.lab.ns(r), _rx_packets, self.lab.bed[r][0]) for r in self.roles)

    def udp_pps(self, frames: int, direct: bool = False) -> float:
        before = self.delivered()
        cfg = self.direct_cfg if direct else self.trafgen_cfg
        argv = common.pinned(common.SENDER_CPU, ["trafgen", "-o", "veth0", "-i", str(cfg),
                                                 "-n", str(frames), "-P", "1"])
        t0 = time.monotonic()
        res = self.lab.run(self.client_ns, argv, timeout=300)
        secs = time.monotonic() - t0
        if res.returncode != 0:
            raise HarnessError(f"trafgen failed ({res.returncode}): {res.stdout[-300:]} {res.stderr[-300:]}")
        got = self.delivered() - before
        return got / secs

    def backend_veths(self) -> list[tuple[str, str]]:
        """``(netns, ifname)`` of each backend's interface (where the receivers sit)."""
        return [(self.lab.ns(r), self.lab.bed[r][0]) for r in self.roles]

    def live_pps(self, frames: int, receiver: str = "sink") -> dict:
        """``frames`` from the live-frame generator out of br/veth7 into the LB (run in br);
        datagrams/s reaching the backends per second of the generator's run, and per CPU-second
        (the generator's CPU time, where the softirq work runs, plus ksoftirqd's). ``receiver``
        on the backends' veths: ``sink`` (bpf/xdp_sink.bpf.c, its XDP_DROP count is what
        reached them; ``rx_packets`` kept as ``rx``) or ``none`` (their stacks, ``rx_packets``)."""
        read = self.sink.dropped if receiver == "sink" else self.delivered
        with self.sink.attached(self.backend_veths(), receiver):
            before, rx0 = settled(read), self.delivered()
            sent = run_generator(self.lab, self.lab.ns("br"), self.gen_fd, self.frame, frames)
            got = settled(read) - before
            rx = self.delivered() - rx0
        cpu = sent["cpu"] + sent["ksoftirqd"]
        return {"sent": frames, "reached": got, "rx": rx, "seconds": sent["wall"], "fps": got / sent["wall"],
                "frames_per_cpu_s": got / cpu if cpu else float("nan"), "receiver": receiver}

    def live(self, kind: str, frames: int, receiver: str = "sink") -> dict:
        """:meth:`live_pps` with ``kind`` (``xdp`` or ``nftables``) started: for nftables with
        ``pfrps-xdp pass`` on lb/veth6 for the run (a redirect into a veth needs a program on
        its peer; the LB has its own)."""
        if kind != "nftables":
            return self.live_pps(frames, receiver)
        proc = self.lab.start_xdp(self.lb_ns, "pass", "-i", "veth6")
        try:
            return self.live_pps(frames, receiver)
        finally:
            self.lab.stop_xdp(proc)

    def tcp_cps(self, seconds: float) -> tuple[float, int]:
        res = self.lab.run(self.client_ns, [sys.executable, "-m", "pfrps.xdp.lb_traffic", "churn", "--vip", VIP,
                                            "--port", str(TCP_PORT), "--seconds", str(seconds), "--concurrency",
                                            "32"], timeout=seconds + 60)
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        if res.returncode != 0 or not lines:
            raise HarnessError(f"churn failed ({res.returncode}): {res.stderr[-300:]}")
        r = json.loads(lines[-1])
        return r["connections"] / r["seconds"], r["errors"]


def live_frame(client_mac: str, lb_mac: str) -> bytes:
    """The live-frame source's datagram: 60 bytes (FCS excluded), client -> LB, IPv4 DF/UDP
    10.0.0.1:40000 -> VIP:9000, 18 bytes of 0x41, as the trafgen one, built with scapy (the
    generator varies the source port over ``UDP_FLOWS``)."""
    from scapy.layers.inet import IP, UDP  # noqa: PLC0415
    from scapy.layers.l2 import Ether  # noqa: PLC0415

    return bytes(Ether(dst=lb_mac, src=client_mac) / IP(src="10.0.0.1", dst=VIP, ttl=64, flags="DF")
                 / UDP(sport=40000, dport=UDP_PORT) / (b"\x41" * 18))


def run(ctx) -> dict:
    reps = max(ctx.reps or (1 if ctx.quick else 3), 1)
    frames = 300_000 if ctx.quick else 2_000_000
    live_frames = 300_000 if ctx.quick else 2_000_000
    seconds = 2.0 if ctx.quick else 5.0
    work = ctx.work_dir / NAME
    work.mkdir(parents=True, exist_ok=True)
    kinds = ("xdp", "xdp-generic", "nftables", "haproxy")
    udp = {k: [] for k in (*kinds[:3], "no LB")}
    receivers = ("sink", "none")  # on the backends' veths: xdp_sink (headline), their stacks (earlier)
    live = {rx: {k: [] for k in ("xdp", "nftables")} for rx in receivers}
    tcp = {k: [] for k in kinds}
    errors = {k: 0 for k in kinds}
    bed = Bed(work)
    try:
        for rep in range(reps):
            udp["no LB"].append(bed.udp_pps(frames, direct=True))
            for kind in kinds:
                procs = bed.start(kind)
                try:
                    if kind in udp:
                        udp[kind].append(bed.udp_pps(frames))
                    if kind in live["sink"]:
                        for receiver in (receivers if rep % 2 == 0 else tuple(reversed(receivers))):
                            live[receiver][kind].append(bed.live(kind, live_frames, receiver))
                    cps, errs = bed.tcp_cps(seconds)
                    tcp[kind].append(cps)
                    errors[kind] += errs
                finally:
                    bed.stop(kind, procs)
                common.log(f"{NAME}: rep {rep + 1}/{reps} {kind}: "
                           + "".join(f"UDP live-frame source, receiver {rx}: {live[rx][kind][-1]['fps']:,.0f} frames/s "
                                     f"({live[rx][kind][-1]['reached']:,}/{live[rx][kind][-1]['sent']:,} reached, "
                                     f"{live[rx][kind][-1]['frames_per_cpu_s']:,.0f} frames/CPU-s), "
                                     for rx in receivers if kind in live[rx])
                           + (f"UDP trafgen {udp[kind][-1]:,.0f} frames/s, " if kind in udp else "")
                           + f"TCP {tcp[kind][-1]:,.0f} connections/s")
    finally:
        bed.close()
    u = {k: summary(v) for k, v in udp.items()}
    t = {k: summary(v) for k, v in tcp.items()}
    shared = "machine shared with other work; sender, LB and servers on the same 2 CPUs"
    lv = {rx: {k: summary([r["fps"] for r in v]) for k, v in live[rx].items()} for rx in receivers}
    lv_cpu = {rx: {k: summary([r["frames_per_cpu_s"] for r in v]) for k, v in live[rx].items()} for rx in receivers}
    lv_paired = {rx: [round(common.ratio(x["fps"], y["fps"]), 2) for x, y in zip(live[rx]["xdp"], live[rx]["nftables"])]
                 for rx in receivers}
    lv_cpu_paired = {rx: [round(common.ratio(x["frames_per_cpu_s"], y["frames_per_cpu_s"]), 2)
                          for x, y in zip(live[rx]["xdp"], live[rx]["nftables"])] for rx in receivers}
    rows = [
        Row("target: UDP frames/s through the LB, XDP vs nftables DNAT (live-frame source into lb/veth6, receiver "
            "xdp_sink on the backends)", "frames/s", lv["sink"]["xdp"], "nftables", lv["sink"]["nftables"],
            ">= 2x nftables", common.ratio(lv["sink"]["xdp"]["median"], lv["sink"]["nftables"]["median"]) >= 2,
            f"backends' veths carry bpf/xdp_sink.bpf.c in both (XDP_DROP of the UDP datagrams, counted); {shared}; "
            f"per-repetition ratios {lv_paired['sink']}"),
        Row("UDP frames per CPU-second through the LB, XDP vs nftables (live-frame source, receiver xdp_sink)",
            "frames/CPU-s", lv_cpu["sink"]["xdp"], "nftables", lv_cpu["sink"]["nftables"], "", None,
            "frames reached / (generator's CPU time + ksoftirqd's): the whole path's cost, less exposed to preemption "
            f"by other load; per-repetition ratios {lv_cpu_paired['sink']}"),
        Row("UDP frames/s through the LB, XDP vs nftables DNAT (live-frame source, receivers: the backends' stacks)",
            "frames/s", lv["none"]["xdp"], "nftables", lv["none"]["nftables"], "", None,
            f"the earlier method: nothing on the backends' veths, rx_packets; per-repetition ratios {lv_paired['none']}"),
        Row("UDP frames per CPU-second through the LB, XDP vs nftables (live-frame source, receivers: the backends' "
            "stacks)", "frames/CPU-s", lv_cpu["none"]["xdp"], "nftables", lv_cpu["none"]["nftables"], "", None,
            f"per-repetition ratios {lv_cpu_paired['none']}"),
        Row("UDP frames/s through the LB, XDP vs nftables DNAT (trafgen in the client)", "frames/s", u["xdp"],
            "nftables", u["nftables"], "", None, "the earlier source: packet-socket skbs, copied by veth's XDP"),
        Row("target: TCP connections/s through the LB, XDP vs nftables DNAT", "connections/s", t["xdp"], "nftables",
            t["nftables"], ">= 2x nftables", common.ratio(t["xdp"]["median"], t["nftables"]["median"]) >= 2,
            f"client errors: xdp {errors['xdp']}, nftables {errors['nftables']}"),
        Row("target: TCP connections/s through the LB, XDP vs HAProxy (TCP mode)", "connections/s", t["xdp"],
            "HAProxy", t["haproxy"], ">= 5x HAProxy", common.ratio(t["xdp"]["median"], t["haproxy"]["median"]) >= 5,
            f"client errors: haproxy {errors['haproxy']}"),
        Row("UDP frames/s through nftables DNAT", "frames/s", u["nftables"]),
        Row("UDP frames/s with no LB (client straight to h2): the path's ceiling", "frames/s", u["no LB"]),
        Row("UDP frames/s through the XDP LB in generic mode", "frames/s", u["xdp-generic"], "nftables",
            u["nftables"]),
        Row("TCP connections/s through the XDP LB in generic mode", "connections/s", t["xdp-generic"], "nftables",
            t["nftables"]),
        Row("TCP connections/s through HAProxy", "connections/s", t["haproxy"]),
    ]
    data = {"udp_live": live["sink"], "udp_live_stacks": live["none"], "udp": udp, "tcp": tcp, "udp_live_frames": live_frames, "errors": errors, "frames": frames, "seconds": seconds, "reps": reps}
    return {
        "name": NAME, "title": TITLE, "rows": rows, "plots": [], "data": data,
        "method": (f"The seed 002 testbed (pfrps-xdp lab lb's), 2 backends. UDP (target row): a live-frame "
                   f"BPF_PROG_TEST_RUN generator in the bridge namespace redirecting {live_frames:,} of the client's "
                   f"60-byte datagrams ({UDP_FLOWS} source ports) out of br/veth7, so lb/veth6 receives xdp_frames "
                   f"(xdp_pass on lb/veth6 for nftables), rate = datagrams reaching the backends per second of the "
                   f"generator's run; receiver: bpf/xdp_sink.bpf.c native on both backends' veths in both "
                   f"configurations (XDP_DROP of the datagrams to port {UDP_PORT}, counted; everything else "
                   f"passes), and, back to back (order alternating), the earlier receiver: nothing attached, the "
                   f"backends' stacks, rx_packets. UDP (trafgen method): trafgen in the client, {frames:,} 60-byte datagrams "
                   f"from {UDP_FLOWS} source ports, rate = datagrams reaching the backends per second of sending. TCP: "
                   f"{seconds:g} s of short connections (concurrency 32, one request/reply each). Median of {reps} "
                   f"run(s); {shared}."),
    }


def _plot(path, data) -> None:
    """No plot: the table says it all."""
