"""Benchmark: the XDP L4 load balancer (seed 002) vs the kernel's NAT and vs HAProxy.

Three load balancers do the same job in turn, each alone on the LB namespace:

* ``xdp``: ``pfrps-xdp lb`` in native mode (XDP_TX), and ``xdp-generic``, the same in generic
  mode (informational);
* ``nftables``: the kernel's own NAT (this kernel has nf_tables and NAT, no IPVS): DNAT to
  ``jhash ip saddr . sport mod 2`` over the backends, SNAT to the VIP (full NAT, as the XDP
  LB), forwarding on, ICMP redirects off;
* ``haproxy``: Debian's HAProxy in TCP mode (``balance source``, one thread), a config file of
  the bench's own, in the foreground in the LB namespace (``-db``); TCP only.

Figures, each the median of several runs, the configurations interleaved:

* **UDP frames/s, one-armed LB on a wire** (the target row, :class:`OneArm`): ``wire/w0
  <-veth-> lb/veth6``, nothing else. A live-frame BPF_PROG_TEST_RUN
  (``BPF_F_TEST_XDP_LIVE_FRAMES``) of ``bpf/xdp_l2fwd_gen.bpf.c`` in ``wire`` sends the
  client's 60-byte datagrams (64 source ports) out of w0, so veth6 receives xdp_frames as
  from a NIC's ring; the LB sends each to its backend back out of veth6, and
  ``bpf/xdp_sink.bpf.c`` on w0 drops and counts it. Source, wire and sink are the same for
  both LBs and cheap, so the ratio is the LB's own work: XDP_TX against ``pfrps-xdp pass``
  (an skb for the stack), conntrack, DNAT, forwarding, SNAT and the neighbour output.
* TCP connection setups/s on the same wire (informational): the generator sends SYNs, each
  from a new client (random over 10.1.0.0/16 and ports 1024-65023), and a TCP sink on w0
  counts those the LB sent on to a backend: the LB's per-connection work (XDP: Maglev pick,
  NAT port, two LRU flow entries; nftables: a conntrack entry and its NAT bindings) with
  frames arriving as from a NIC and no TCP endpoints to share the CPUs with.
* UDP frames/s on the seed's bridge testbed (``pfrps-xdp lab lb``'s, :class:`Bed`): the same
  generator in the bridge namespace sends into lb/veth6 through br/veth7; the LB -> bridge ->
  backend crossing (an skb in both) is added to both paths. Receivers: ``xdp_sink`` on the
  backends' veths, or their stacks; and trafgen in the client as the older source.
* **TCP connections**: ``ab -n N -c 64`` (apache2-utils) in the client, one HTTP request per
  connection (no keep-alive), to HAProxy HTTP servers in h2 and h3 (``http-request return``,
  C, one thread each), through each LB and, as the ceiling, straight to h2. Two figures per
  LB: connections/s (wall clock), and the machine's CPU per connection (all CPUs' busy time
  in /proc/stat during the run / connections). Client, servers, bridge and LB share the same
  2 CPUs, so the wall-clock rate of every LB is capped by the endpoints' own TCP work (the
  no-LB ceiling); the **LB's share**, CPU per connection through the LB minus straight to a
  backend in the same repetition, is what the LB itself costs (the extra bridge crossing
  included), and its inverse, connections per CPU-second, the rate one CPU of a dedicated LB
  would carry (informational rows: a difference of two noisy figures). The target rows are
  the wall-clock connections/s the issue names.

Goals (issue 8): XDP >= 2x nftables and >= 5x HAProxy. The machine is shared with other
work: ratios are from one run, per-repetition ratios in the notes.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

from pfrps.xdp.lab import Lab
from pfrps.xdp.lb_lab import VIP, LbLab, backend_roles

from . import common
from .common import HarnessError, Row, summary
from .xdp_sink import Sink
from .xdp_traffic import load_generator, run_generator, settled

NAME = "xdp_lb"
TITLE = "XDP load balancer vs nftables DNAT vs HAProxy"
TCP_PORT = 8080
UDP_PORT = 9000
UDP_FLOWS = 64
#: ab's concurrency (connections open at once)
TCP_CONCURRENCY = 64
#: the SYN source's clients: source ports and addresses (10.1.0.0/16) it draws from
SYN_PORTS = 64000
SYN_CLIENTS = 65000

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

#: the backends' servers for the TCP figures: HAProxy answering every HTTP request itself
#: (``http-request return``), one thread, the backend's name as the 2-byte body
HTTP_SERVER_CFG = """\
global
    maxconn 8000
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 0.0.0.0:{tcp}
    http-request return status 200 content-type text/plain string "{name}"
"""

_AB_RE = {k: re.compile(rf"{k}:\s+([\d.]+)") for k in ("Complete requests", "Failed requests",
                                                       "Requests per second")}


def cpu_busy_ticks() -> int:
    """Busy clock ticks of all CPUs so far (/proc/stat's ``cpu`` line, proc(5): user + nice +
    system + irq + softirq; idle, iowait and steal left out)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:8]]
    return v[0] + v[1] + v[2] + v[5] + v[6]


def _flush_conntrack() -> None:
    """Flush the calling namespace's connection tracking table (netlink, pyroute2)."""
    from pyroute2 import Conntrack  # noqa: PLC0415

    with Conntrack() as ct:
        ct.flush()


def nft_load(lab, ns: str, path: Path, backends: list[str]) -> None:
    """Write :data:`NFT_RULES` for ``backends`` to ``path`` and load it in ``ns`` (``nft -f``).

    Raises:
        HarnessError: nft refused the rules.
    """
    path.write_text(NFT_RULES.format(vip=VIP, tcp=TCP_PORT, udp=UDP_PORT, n=len(backends),
                                     map=", ".join(f"{i} : {b}" for i, b in enumerate(backends)),
                                     backends=", ".join(backends)))
    res = lab.run(ns, ["nft", "-f", str(path)])
    if res.returncode != 0:
        raise HarnessError(f"nft -f failed: {res.stderr.strip()}")


def nft_remove(lab, ns: str) -> None:
    """Delete :func:`nft_load`'s table in ``ns`` and turn forwarding off again."""
    lab.run(ns, ["nft", "delete", "table", "ip", "pfrps_bench_lb"])
    lab.sysctl(ns, "net/ipv4/ip_forward", "0")


def start_haproxy(lab, ns: str, cfg: Path, what: str) -> subprocess.Popen:
    """HAProxy with config ``cfg`` in the foreground (``-db``) in ``ns``, ended with ``lab``;
    returns once it listens on :data:`TCP_PORT` (``what`` names it in the error).

    Raises:
        HarnessError: it exited or did not listen within 20 s.
    """
    proc = lab.popen(ns, ["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                     text=True)
    deadline = time.monotonic() + 20
    while not lab.call(ns, _listening, TCP_PORT):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise HarnessError(f"{what} did not start: "
                               f"{proc.stderr.read()[-300:] if proc.poll() is not None else 'timeout'}")
        select.select([], [], [], 0.05)  # polling a condition (the listening socket) with a deadline
    return proc


def _listening(port: int) -> bool:
    """True when a TCP socket listens on ``port`` in the calling namespace (/proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        next(f)
        return any(ln.split()[3] == "0A" and int(ln.split()[1].split(":")[1], 16) == port for ln in f)


class Bed:
    """The testbed, built once; one load balancer at a time in its LB namespace."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.lab = LbLab(prefix="bench-lb", out=open("/dev/null", "w"))
        self.lab.build(argparse.Namespace(backends=2, generic=False, connections=0))
        self.roles = backend_roles(self.lab.bed)
        self.backends = [self.lab.bed[r][1] for r in self.roles]
        for r in self.roles:
            self.http_server(r)
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
            nft_load(self.lab, self.lb_ns, self.work / "lb.nft", self.backends)
            return []
        cfg = self.work / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(vip=VIP, tcp=TCP_PORT, servers="\n".join(
            f"    server {r} {self.lab.bed[r][1]}:{TCP_PORT}" for r in self.roles)))
        return [start_haproxy(self.lab, self.lb_ns, cfg, "haproxy")]

    def stop(self, kind: str, procs: list[subprocess.Popen]) -> None:
        for p in procs:
            if kind.startswith("xdp"):
                self.lab.stop_xdp(p)
            else:
                common.interrupt_and_wait(p, kind, 20, sig=15)
        if kind == "nftables":
            nft_remove(self.lab, self.lb_ns)
        elif kind == "haproxy":
            self.lab.sysctl(self.lb_ns, "net/ipv4/ip_forward", "0")

    # -- traffic ----------------------------------------------------------------------------
    def delivered(self) -> int:
        return sum(self.lab.rx_packets(self.lab.ns(r), self.lab.bed[r][0]) for r in self.roles)

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

    def http_server(self, role: str) -> subprocess.Popen:
        """HAProxy as ``role``'s server on port 8080 (:data:`HTTP_SERVER_CFG`), in the foreground
        (``-db``) and ended with the lab; returns once it listens.

        Raises:
            HarnessError: it exited or did not listen within 20 s.
        """
        cfg = self.work / f"server-{role}.cfg"
        cfg.write_text(HTTP_SERVER_CFG.format(tcp=TCP_PORT, name=role))
        return start_haproxy(self.lab, self.lab.ns(role), cfg, f"the HTTP server in {role}")

    def tcp_ab(self, requests: int, target: str = VIP) -> dict:
        """``ab -r -n requests -c TCP_CONCURRENCY`` from the client to ``target``:8080: one HTTP
        request per TCP connection (no keep-alive), so requests/s = connections/s; a reset
        connection is counted as failed instead of ending the run (``-r``). Returns
        ``{"cps", "complete", "failed", "cpu_us_per_conn"}``, the last the busy time of all CPUs
        (:func:`cpu_busy_ticks`) per completed connection, in CPU microseconds.

        Raises:
            HarnessError: ab failed or printed no figures.
        """
        b0 = cpu_busy_ticks()
        res = self.lab.run(self.client_ns, ["ab", "-q", "-r", "-n", str(requests), "-c", str(TCP_CONCURRENCY),
                                            f"http://{target}:{TCP_PORT}/"], timeout=requests / 500 + 60)
        b1 = cpu_busy_ticks()
        got = {k: rx.search(res.stdout) for k, rx in _AB_RE.items()}
        if res.returncode != 0 or not all(got.values()):
            raise HarnessError(f"ab failed ({res.returncode}): {(res.stdout + res.stderr)[-300:]}")
        complete = int(got["Complete requests"].group(1))
        busy_us = (b1 - b0) * 1e6 / os.sysconf("SC_CLK_TCK")
        return {"cps": float(got["Requests per second"].group(1)), "complete": complete,
                "failed": int(got["Failed requests"].group(1)),
                "cpu_us_per_conn": busy_us / complete if complete else float("nan")}


class OneArm:
    """The LB alone on a wire: ``wire/w0 <-veth-> lb/veth6``, the VIP on veth6, the backends
    10.0.0.2 and 10.0.0.3 (and the client 10.0.0.1) as permanent neighbours of veth6 behind w0.

    What a one-armed LB box sees on its one NIC: the live-frame generator in ``wire`` sends the
    client's datagrams out of w0 into veth6 (xdp_frames, as from a NIC's receive ring); the LB
    sends each to its backend back out of veth6, where ``bpf/xdp_sink.bpf.c`` on w0 (the wire's
    far side: the switch) drops and counts it. Source, wire and sink are the same in every
    configuration and cost little, so the ratio is the LB's own work per frame: ``xdp`` (the
    LB's XDP_TX) against ``nftables`` (``pfrps-xdp pass`` on veth6, then the stack: conntrack,
    DNAT, forwarding, SNAT, neighbour output, veth transmit). The seed's bridge testbed
    (:class:`Bed`) adds a bridge crossing and the backends' veths to both paths.
    """

    BACKENDS = (("10.0.0.2", "de:ad:be:ef:00:02"), ("10.0.0.3", "de:ad:be:ef:00:03"))
    CLIENT = ("10.0.0.1", "de:ad:be:ef:00:01")
    LB_MAC = "de:ad:be:ef:00:06"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.lab = Lab(prefix="bench-lb-wire")
        self.stack = ExitStack()
        try:
            self.wire, self.lb_ns = self.lab.add_ns("wire"), self.lab.add_ns("lb")
            self.lab.veth(self.wire, "w0", self.lb_ns, "veth6", mac_a=self.CLIENT[1], mac_b=self.LB_MAC)
            self.lab.addr(self.lb_ns, "veth6", f"{VIP}/24")
            for ip, mac in (*self.BACKENDS, self.CLIENT):
                self.lab.neigh(self.lb_ns, "veth6", ip, mac)
            for dev in ("all", "veth6"):
                self.lab.sysctl(self.lb_ns, f"net/ipv4/conf/{dev}/send_redirects", "0")
                self.lab.sysctl(self.lb_ns, f"net/ipv4/conf/{dev}/rp_filter", "0")
            self.frame = live_frame(self.CLIENT[1], self.LB_MAC)
            self.gen_fd = load_generator(self.stack, self.frame, self.lab.link(self.wire, "w0")[0],
                                         flows=UDP_FLOWS, words=6)
            self.sink = Sink(self.stack, udp_dport=UDP_PORT)
            # connection setups: each frame a client's SYN from a new 5-tuple
            self.syn = syn_frame(self.CLIENT[1], self.LB_MAC)
            self.syn_fd = load_generator(self.stack, self.syn, self.lab.link(self.wire, "w0")[0],
                                         flows=SYN_PORTS, saddr_flows=SYN_CLIENTS, words=7, tcp=True)
            self.syn_sink = Sink(self.stack, udp_dport=TCP_PORT, tcp=True)
            # the SYN's clients (10.1.0.0/16) are behind the wire, via the first client address
            self.lab.route(self.lb_ns, "10.1.0.0/16", self.CLIENT[0])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.stack.close()
        self.lab.destroy()

    def setups(self, kind: str, frames: int) -> dict:
        """``frames`` SYNs, each from a new client address and port (:func:`syn_frame`, random
        over 10.1.0.0/16 and ports 1024-65023), through ``kind``: new connections the LB set up
        (flow created, backend chosen, NAT applied, SYN sent on) per second, counted by the TCP
        sink on w0. The LB namespace's connection tracking table is flushed first (pyroute2's
        Conntrack): a run starts with no flows in either LB, and ``frames`` stays under what
        full NAT to one VIP can hold at once (a reply tuple per backend and port, about 2 x
        64,000), which conntrack keeps for 120 s in SYN_SENT while the XDP LB's LRU evicts."""
        self.lab.call(self.lb_ns, _flush_conntrack)
        return self._through(kind, self.syn_sink, self.syn_fd, self.syn, frames)

    def _through(self, kind: str, sink: Sink, gen_fd: int, frame: bytes, frames: int) -> dict:
        """``frames`` of generator ``gen_fd`` (template ``frame``) through ``kind``, counted by
        ``sink`` on w0: frames reached per second of the generator's run and per CPU-second (the
        generator's context, where the whole path runs, plus ksoftirqd's)."""
        proc = self._start(kind)
        try:
            with sink.attached([(self.wire, "w0")]):
                before = settled(sink.dropped)
                sent = run_generator(self.lab, self.wire, gen_fd, frame, frames)
                got = settled(sink.dropped) - before
        finally:
            self._stop(kind, proc)
        cpu = sent["cpu"] + sent["ksoftirqd"]
        return {"sent": frames, "reached": got, "seconds": sent["wall"], "fps": got / sent["wall"],
                "frames_per_cpu_s": got / cpu if cpu else float("nan")}

    def _start(self, kind: str) -> subprocess.Popen:
        if kind == "xdp":
            self.lab.sysctl(self.lb_ns, "net/ipv4/ip_forward", "0")
            return self.lab.start_xdp(self.lb_ns, "lb", "-i", "veth6", "--vip", VIP, "--port", str(UDP_PORT),
                                      "--port", str(TCP_PORT),
                                      *[a for ip, mac in self.BACKENDS for a in ("--backend", f"{ip}@{mac}")])
        self.lab.sysctl(self.lb_ns, "net/ipv4/ip_forward", "1")
        nft_load(self.lab, self.lb_ns, self.work / "onearm.nft", [ip for ip, _ in self.BACKENDS])
        return self.lab.start_xdp(self.lb_ns, "pass", "-i", "veth6")

    def _stop(self, kind: str, proc: subprocess.Popen) -> None:
        self.lab.stop_xdp(proc)
        if kind == "nftables":
            nft_remove(self.lab, self.lb_ns)

    def live(self, kind: str, frames: int) -> dict:
        """``frames`` of the generator through ``kind`` (``xdp`` or ``nftables``); datagrams
        reaching the sink per second of the generator's run, and per CPU-second (the
        generator's context, where the whole path runs, plus ksoftirqd's)."""
        return self._through(kind, self.sink, self.gen_fd, self.frame, frames)


def live_frame(client_mac: str, lb_mac: str) -> bytes:
    """The live-frame source's datagram: 60 bytes (FCS excluded), client -> LB, IPv4 DF/UDP
    10.0.0.1:40000 -> VIP:9000, 18 bytes of 0x41, as the trafgen one, built with scapy (the
    generator varies the source port over ``UDP_FLOWS``)."""
    from scapy.layers.inet import IP, UDP  # noqa: PLC0415
    from scapy.layers.l2 import Ether  # noqa: PLC0415

    return bytes(Ether(dst=lb_mac, src=client_mac) / IP(src="10.0.0.1", dst=VIP, ttl=64, flags="DF")
                 / UDP(sport=40000, dport=UDP_PORT) / (b"\x41" * 18))


def syn_frame(client_mac: str, lb_mac: str) -> bytes:
    """The connection-setup source's frame: a TCP SYN 10.1.0.1:1024 -> VIP:8080 (window 64240,
    no options), padded to 64 bytes for the generator's 7 restored words, built with scapy (the
    generator varies the source port over :data:`SYN_PORTS` and the address's low 16 bits over
    :data:`SYN_CLIENTS`)."""
    from scapy.layers.inet import IP, TCP  # noqa: PLC0415
    from scapy.layers.l2 import Ether  # noqa: PLC0415

    frame = bytes(Ether(dst=lb_mac, src=client_mac) / IP(src="10.1.0.1", dst=VIP, ttl=64, flags="DF")
                  / TCP(sport=1024, dport=TCP_PORT, flags="S", seq=1, window=64240))
    return frame + b"\0" * (64 - len(frame))


def run(ctx) -> dict:
    reps = max(ctx.reps or (1 if ctx.quick else 3), 1)
    frames = 300_000 if ctx.quick else 2_000_000
    live_frames = 300_000 if ctx.quick else 2_000_000
    requests = 20_000 if ctx.quick else 100_000
    work = ctx.work_dir / NAME
    work.mkdir(parents=True, exist_ok=True)
    kinds = ("xdp", "xdp-generic", "nftables", "haproxy")
    udp = {k: [] for k in (*kinds[:3], "no LB")}
    receivers = ("sink", "none")  # on the backends' veths: xdp_sink (headline), their stacks (earlier)
    live = {rx: {k: [] for k in ("xdp", "nftables")} for rx in receivers}
    tcp = {k: [] for k in ("direct", *kinds)}
    wire = {k: [] for k in ("xdp", "nftables")}
    setups = {k: [] for k in ("xdp", "nftables")}
    syn_frames = 50_000 if ctx.quick else 100_000
    arm = OneArm(work)
    try:
        for rep in range(reps):
            for kind in ("xdp", "nftables") if rep % 2 == 0 else ("nftables", "xdp"):
                wire[kind].append(arm.live(kind, live_frames))
                setups[kind].append(arm.setups(kind, syn_frames))
                common.log(f"{NAME}: rep {rep + 1}/{reps} {kind}, one-armed LB on a wire: "
                           f"{setups[kind][-1]['fps']:,.0f} connection setups/s ({setups[kind][-1]['reached']:,}/"
                           f"{setups[kind][-1]['sent']:,} SYNs of new 5-tuples sent on to a backend)")
                common.log(f"{NAME}: rep {rep + 1}/{reps} {kind}, one-armed LB on a wire: "
                           f"{wire[kind][-1]['fps']:,.0f} frames/s ({wire[kind][-1]['reached']:,}/"
                           f"{wire[kind][-1]['sent']:,} reached, {wire[kind][-1]['frames_per_cpu_s']:,.0f} "
                           f"frames/CPU-s)")
    finally:
        arm.close()
    bed = Bed(work)
    try:
        for rep in range(reps):
            udp["no LB"].append(bed.udp_pps(frames, direct=True))
            tcp["direct"].append(bed.tcp_ab(requests, target=bed.backends[0]))
            for kind in kinds:
                procs = bed.start(kind)
                try:
                    if kind in udp:
                        udp[kind].append(bed.udp_pps(frames))
                    if kind in live["sink"]:
                        for receiver in (receivers if rep % 2 == 0 else tuple(reversed(receivers))):
                            live[receiver][kind].append(bed.live(kind, live_frames, receiver))
                    tcp[kind].append(bed.tcp_ab(requests))
                finally:
                    bed.stop(kind, procs)
                common.log(f"{NAME}: rep {rep + 1}/{reps} {kind}: "
                           + "".join(f"UDP live-frame source, receiver {rx}: {live[rx][kind][-1]['fps']:,.0f} frames/s "
                                     f"({live[rx][kind][-1]['reached']:,}/{live[rx][kind][-1]['sent']:,} reached, "
                                     f"{live[rx][kind][-1]['frames_per_cpu_s']:,.0f} frames/CPU-s), "
                                     for rx in receivers if kind in live[rx])
                           + (f"UDP trafgen {udp[kind][-1]:,.0f} frames/s, " if kind in udp else "")
                           + f"TCP {tcp[kind][-1]['cps']:,.0f} connections/s "
                             f"({tcp[kind][-1]['cpu_us_per_conn']:.1f} CPU us each; no LB "
                             f"{tcp['direct'][-1]['cps']:,.0f}/s, {tcp['direct'][-1]['cpu_us_per_conn']:.1f} us)")
    finally:
        bed.close()
    u = {k: summary(v) for k, v in udp.items()}
    t = {k: summary([r["cps"] for r in v]) for k, v in tcp.items()}
    t_cpu = {k: summary([r["cpu_us_per_conn"] for r in v]) for k, v in tcp.items()}
    # the LB's share: CPU per connection through it minus the same connection straight to a backend
    t_lb = {k: summary([r["cpu_us_per_conn"] - d["cpu_us_per_conn"] for r, d in zip(v, tcp["direct"])])
            for k, v in tcp.items() if k != "direct"}
    t_lb_rate = {k: summary([1e6 / max(r["cpu_us_per_conn"] - d["cpu_us_per_conn"], 1e-3)
                             for r, d in zip(v, tcp["direct"])]) for k, v in tcp.items() if k != "direct"}
    failed = {k: sum(r["failed"] for r in v) for k, v in tcp.items()}
    t_lb_paired = {ref: [round(common.ratio(y["cpu_us_per_conn"] - d["cpu_us_per_conn"],
                                           x["cpu_us_per_conn"] - d["cpu_us_per_conn"]), 2)
                         for x, y, d in zip(tcp["xdp"], tcp[ref], tcp["direct"])] for ref in ("nftables", "haproxy")}
    t_paired = {ref: [round(common.ratio(x["cps"], y["cps"]), 2) for x, y in zip(tcp["xdp"], tcp[ref])]
                for ref in ("nftables", "haproxy")}
    shared = "machine shared with other work; sender, LB and servers on the same 2 CPUs"
    lv = {rx: {k: summary([r["fps"] for r in v]) for k, v in live[rx].items()} for rx in receivers}
    lv_cpu = {rx: {k: summary([r["frames_per_cpu_s"] for r in v]) for k, v in live[rx].items()} for rx in receivers}
    lv_paired = {rx: [round(common.ratio(x["fps"], y["fps"]), 2) for x, y in zip(live[rx]["xdp"], live[rx]["nftables"])]
                 for rx in receivers}
    lv_cpu_paired = {rx: [round(common.ratio(x["frames_per_cpu_s"], y["frames_per_cpu_s"]), 2)
                          for x, y in zip(live[rx]["xdp"], live[rx]["nftables"])] for rx in receivers}
    wf = {k: summary([r["fps"] for r in v]) for k, v in wire.items()}
    wc = {k: summary([r["frames_per_cpu_s"] for r in v]) for k, v in wire.items()}
    w_paired = [round(common.ratio(x["fps"], y["fps"]), 2) for x, y in zip(wire["xdp"], wire["nftables"])]
    sf = {k: summary([r["fps"] for r in v]) for k, v in setups.items()}
    s_paired = [round(common.ratio(x["fps"], y["fps"]), 2) for x, y in zip(setups["xdp"], setups["nftables"])]
    s_reached = {k: f"{sum(r['reached'] for r in v):,}/{sum(r['sent'] for r in v):,}" for k, v in setups.items()}
    rows = [
        Row("target: UDP frames/s through the LB, XDP vs nftables DNAT (one-armed LB on a wire: live-frame source "
            "into lb/veth6, xdp_sink on the wire's far end)", "frames/s", wf["xdp"], "nftables", wf["nftables"],
            ">= 2x nftables", common.ratio(wf["xdp"]["median"], wf["nftables"]["median"]) >= 2,
            f"the LB's own work per frame: same source, wire and sink in both; {shared}; "
            f"per-repetition ratios {w_paired}"),
        Row("UDP frames per CPU-second through the LB, XDP vs nftables (one-armed LB on a wire)", "frames/CPU-s",
            wc["xdp"], "nftables", wc["nftables"], "", None,
            "frames reached / (generator's CPU time + ksoftirqd's): the whole path runs in the generator's softirq"),
        Row("UDP frames/s through the LB, XDP vs nftables DNAT (the seed's bridge testbed: live-frame source into "
            "lb/veth6, receiver xdp_sink on the backends)", "frames/s", lv["sink"]["xdp"], "nftables",
            lv["sink"]["nftables"], "", None,
            f"adds the LB -> bridge -> backend crossing (an skb in both) to both paths; backends' veths carry "
            f"bpf/xdp_sink.bpf.c in both; per-repetition ratios {lv_paired['sink']}"),
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
        Row(f"target: TCP connections/s through the LB, XDP vs nftables DNAT (ab -c {TCP_CONCURRENCY}, HAProxy "
            "HTTP servers)", "connections/s", t["xdp"], "nftables", t["nftables"], ">= 2x nftables",
            common.ratio(t["xdp"]["median"], t["nftables"]["median"]) >= 2,
            f"one request per connection; failed requests: xdp {failed['xdp']}, nftables {failed['nftables']}; "
            f"client, servers and LB share the 2 CPUs, so every LB is capped by the endpoints (no LB: "
            f"{t['direct']['median']:,.0f}/s); per-repetition ratios {t_paired['nftables']}"),
        Row("target: TCP connections/s through the LB, XDP vs HAProxy (TCP mode)", "connections/s", t["xdp"],
            "HAProxy", t["haproxy"], ">= 5x HAProxy", common.ratio(t["xdp"]["median"], t["haproxy"]["median"]) >= 5,
            f"failed requests: haproxy {failed['haproxy']}; per-repetition ratios {t_paired['haproxy']}"),
        Row("TCP connection setups/s through the LB, XDP vs nftables DNAT (one-armed LB on a wire: each frame a SYN "
            "from a new client address and port, live-frame source)", "setups/s", sf["xdp"], "nftables", sf["nftables"],
            "", None, f"the LB's per-connection work (XDP: Maglev pick, NAT port, two LRU flow entries; nftables: "
            f"a conntrack entry, DNAT/SNAT bindings) when frames arrive as from a NIC, no TCP endpoints; SYNs sent on "
            f"to a backend: xdp {s_reached['xdp']}, nftables {s_reached['nftables']} (conntrack flushed before each run; "
            f"an XDP SYN whose NAT port search fails passes to the LB's stack); per-repetition ratios {s_paired}"),
        Row("TCP connections per CPU-second of the LB's share, XDP vs nftables DNAT", "connections/CPU-s",
            t_lb_rate["xdp"], "nftables", t_lb_rate["nftables"], "", None,
            f"the LB's share of the machine's CPU per connection = through it - straight to a backend, in the same "
            f"repetition (XDP {t_lb['xdp']['median']:.1f} us, XDP generic {t_lb['xdp-generic']['median']:.1f} us, "
            f"nftables {t_lb['nftables']['median']:.1f} us, HAProxy {t_lb['haproxy']['median']:.1f} us; the extra "
            f"bridge crossing every LB adds included); per-repetition ratios {t_lb_paired['nftables']}"),
        Row("TCP connections per CPU-second of the LB's share, XDP vs HAProxy (TCP mode)", "connections/CPU-s",
            t_lb_rate["xdp"], "HAProxy", t_lb_rate["haproxy"], "", None,
            f"per-repetition ratios {t_lb_paired['haproxy']}"),
        Row("TCP connections per CPU-second of the LB's share, XDP generic vs nftables DNAT", "connections/CPU-s",
            t_lb_rate["xdp-generic"], "nftables", t_lb_rate["nftables"], "", None,
            "on a veth fed skbs by a bridge, native XDP first copies each skb into an XDP buffer, and its XDP_TX "
            "output becomes an skb again at the peer; generic mode runs on the skb"),
        Row("TCP connections/s with no LB (ab straight to h2): the endpoints' ceiling", "connections/s",
            t["direct"], note=f"failed requests: {failed['direct']}"),
        Row("CPU time per TCP connection, whole machine, XDP vs nftables", "CPU us", t_cpu["xdp"], "nftables",
            t_cpu["nftables"], "", None, f"all CPUs' busy time (/proc/stat) per connection; no LB: "
            f"{t_cpu['direct']['median']:.1f} us"),
        Row("CPU time per TCP connection, whole machine, XDP vs HAProxy", "CPU us", t_cpu["xdp"], "HAProxy",
            t_cpu["haproxy"]),
        Row("UDP frames/s through nftables DNAT", "frames/s", u["nftables"]),
        Row("UDP frames/s with no LB (client straight to h2): the path's ceiling", "frames/s", u["no LB"]),
        Row("UDP frames/s through the XDP LB in generic mode", "frames/s", u["xdp-generic"], "nftables",
            u["nftables"]),
        Row("TCP connections/s through the XDP LB in generic mode", "connections/s", t["xdp-generic"], "nftables",
            t["nftables"]),
        Row("TCP connections/s through HAProxy", "connections/s", t["haproxy"]),
    ]
    data = {"udp_wire": wire, "tcp_setups_wire": setups, "syn_frames": syn_frames, "udp_live": live["sink"], "udp_live_stacks": live["none"], "udp": udp, "tcp": tcp,
            "udp_live_frames": live_frames, "frames": frames, "tcp_requests": requests, "reps": reps}
    return {
        "name": NAME, "title": TITLE, "rows": rows, "plots": [], "data": data,
        "method": (f"UDP (target row): the one-armed LB on a wire (wire/w0 <-veth-> lb/veth6, backends and "
                   f"client as permanent neighbours behind w0): a live-frame BPF_PROG_TEST_RUN generator in the wire "
                   f"namespace sends {live_frames:,} of the client's 60-byte datagrams ({UDP_FLOWS} source ports) "
                   f"out of w0 into veth6; the LB (XDP_TX, or pfrps-xdp pass + nftables DNAT/SNAT + forwarding) "
                   f"sends them back out of veth6, bpf/xdp_sink.bpf.c on w0 drops and counts them; rate = "
                   f"datagrams reaching the sink per second of the generator's run, order alternating per "
                   f"repetition. TCP connection setups (same wire): {syn_frames:,} SYNs per run, each from a new "
                   f"client address and port, counted by a TCP sink on w0. The seed 002 testbed (pfrps-xdp lab lb's), 2 backends: a live-frame "
                   f"BPF_PROG_TEST_RUN generator in the bridge namespace redirecting {live_frames:,} of the client's "
                   f"60-byte datagrams ({UDP_FLOWS} source ports) out of br/veth7, so lb/veth6 receives xdp_frames "
                   f"(xdp_pass on lb/veth6 for nftables), rate = datagrams reaching the backends per second of the "
                   f"generator's run; receiver: bpf/xdp_sink.bpf.c native on both backends' veths in both "
                   f"configurations (XDP_DROP of the datagrams to port {UDP_PORT}, counted; everything else "
                   f"passes), and, back to back (order alternating), the earlier receiver: nothing attached, the "
                   f"backends' stacks, rx_packets. UDP (trafgen method): trafgen in the client, {frames:,} 60-byte datagrams "
                   f"from {UDP_FLOWS} source ports, rate = datagrams reaching the backends per second of sending. TCP: "
                   f"ab -n {requests:,} -c {TCP_CONCURRENCY} from the client (one HTTP request per connection) to "
                   f"HAProxy HTTP servers in h2 and h3 (http-request return), through each LB and straight to h2; "
                   f"CPU = all CPUs' busy ticks in /proc/stat during the run. Median of {reps} "
                   f"run(s); {shared}."),
    }


def _plot(path, data) -> None:
    """No plot: the table says it all."""
