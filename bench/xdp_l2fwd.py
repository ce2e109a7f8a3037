"""Benchmark: frames/s from an uplink into a VM port, XDP l2fwd vs the Linux bridge (seed 003).

Topology (fresh namespaces, :class:`pfrps.xdp.lab.Lab`): ``sw/sw0 <-veth-> host/eth0`` (the
uplink) and ``host/tap1 <-veth-> vm/eth0`` (the VM port). The traffic source is the kernel's
own generator, a live-frame BPF_PROG_TEST_RUN (``BPF_F_TEST_XDP_LIVE_FRAMES``, as
xdp-trafficgen uses it) of ``bpf/xdp_l2fwd_gen.bpf.c`` in the switch namespace, pinned to CPU
0, redirecting 64-byte 802.1Q (VLAN 10) UDP frames into sw0: the uplink receives xdp_frames,
as a NIC driver hands frames to XDP (a packet-socket sender would hand the veth skbs with too
little headroom, which veth's XDP path copies first). The whole forwarding path runs in the
generator's softirq on CPU 0. Four modes, measured in the same run, interleaved:

* ``xdp``: ``pfrps-xdp l2fwd -i eth0 --vm ... --fdb MAC,10,tap1`` (native): FDB hit, tag
  popped, redirect through the DEVMAP_HASH with the devmap ACL program on the way;
* ``bridge``: ``br0`` with eth0 and tap1 and a static FDB entry for the VM's MAC (GRO on
  eth0 gives the veth the NAPI a redirect into it needs). This kernel has no bridge VLAN
  filtering and no ``act_vlan``, so the bridge forwards the frame with its tag: it does less
  than xdp_l2fwd, which pops it;
* ``xdp_noacl``: the same without the devmap ACL program (``--fdb ...,noacl``);
* ``generator``: the generator alone, dropping its frames: its own cost, subtracted for the
  forwarding-only CPU figure.

Receivers on the VM's eth0, each forwarding mode measured with both, back to back in the same
namespaces (order alternating per repetition; bench/xdp_sink.py):

* ``sink`` (the headline): ``bpf/xdp_sink.bpf.c`` native (``-DSINK_UDP_DPORT=7000``), the
  SAME program in every mode: it XDP_DROPs the benchmark's UDP datagrams, 802.1Q-tagged or
  untagged alike, and passes everything else; frames reached = its XDP_DROP count. What it
  receives differs by the forwarder: from l2fwd an xdp_frame, tag popped; from the bridge an
  skb that veth runs the program on, the tag kept in the skb's metadata (the host's receive
  path moved it to vlan_tci, veth offloads it on transmit), so the program sees the frame
  untagged there too (measured: a sink built with -DSINK_SKIP_VLAN=0 counted all of them);
  that difference is counted as the forwarder's;
* ``stack`` (the earlier method): xdp_pass on the VM's eth0 behind l2fwd (a native redirect
  into a veth needs a program on its peer), nothing behind the bridge; the VM's stack
  receives every frame; frames reached = the VM's eth0 ``rx_packets``.

frames/s = frames reached / the generator's wall time. CPU time per million frames = the
generator's CPU time (getrusage in its process: the softirq work, receiver included, runs in
its context) plus every ksoftirqd's, per million frames that reached the VM.
Goal: XDP >= 2x the bridge's frames/s.
"""

from __future__ import annotations

from contextlib import ExitStack

from pfrps.xdp.cloud_lab import private_bpffs
from pfrps.xdp.lab import Lab

from . import common
from .common import HarnessError, Row, summary
from .xdp_sink import Sink
from .xdp_traffic import load_generator, paired_ratios, run_generator, settled

NAME = "xdp_l2fwd"
TITLE = "XDP l2fwd vs Linux bridge: uplink -> VM port frames/s and CPU per million frames"
VM_MAC = "52:54:00:00:00:01"
VLAN = 10
GOAL = 2.0
UDP_DPORT = 7000
#: receivers on the VM's eth0: the sink (headline) and the VM's stack (the earlier method)
RECEIVERS = ("sink", "stack")


def test_frame() -> bytes:
    """The frame sent: 64 bytes (FCS excluded), 802.1Q VLAN 10, IPv4/UDP, built with scapy."""
    from scapy.layers.inet import IP, UDP  # noqa: PLC0415
    from scapy.layers.l2 import Dot1Q, Ether  # noqa: PLC0415

    return bytes(Ether(dst=VM_MAC, src="02:00:5e:00:00:01") / Dot1Q(vlan=VLAN)
                 / IP(src="192.0.2.1", dst="10.1.0.1") / UDP(sport=4000, dport=UDP_DPORT) / (b"\0" * 18))


test_frame.__test__ = False


def _bridge(lab: Lab, ns: str) -> None:
    from pyroute2 import IPRoute  # noqa: PLC0415

    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.link("add", ifname="br0", kind="bridge")
        br = ipr.link_lookup(ifname="br0")[0]
        for dev in ("eth0", "tap1"):
            ipr.link("set", index=ipr.link_lookup(ifname=dev)[0], master=br)
        ipr.link("set", index=br, state="up")
        ipr.fdb("add", ifindex=ipr.link_lookup(ifname="tap1")[0], lladdr=VM_MAC, master=br, state=0x80)


def one_run(mode: str, count: int, sink: Sink | None = None, order: tuple[str, ...] = RECEIVERS) -> list[dict]:
    """One measurement of ``mode`` (``generator``, ``xdp``, ``xdp_noacl`` or ``bridge``) in fresh
    namespaces, once per receiver in ``order`` (``sink`` needs ``sink``); one dict per run."""
    with ExitStack() as stack:
        return _one_run(stack, mode, count, sink, order)


def _one_run(stack: ExitStack, mode: str, count: int, sink: Sink | None, order: tuple[str, ...]) -> list[dict]:

    lab = Lab(prefix="bench-l2fwd")
    stack.callback(lab.destroy)
    bpffs = stack.enter_context(private_bpffs("bench-l2fwd-bpffs-"))
    host, sw, vm = lab.add_ns("host"), lab.add_ns("sw"), lab.add_ns("vm")
    lab.veth(host, "eth0", sw, "sw0")
    lab.veth(host, "tap1", vm, "eth0", mac_b=VM_MAC)
    if mode == "generator":
        order = ("none",)  # the generator alone: it drops its frames (GEN_DROP)
    elif mode in ("xdp", "xdp_noacl"):
        lab.start_xdp(host, "l2fwd", "-i", "eth0", "--bpffs", bpffs, "--vm", f"1,tap1,{VM_MAC},vlan={VLAN}",
                      "--fdb", f"{VM_MAC},{VLAN},tap1" + (",noacl" if mode == "xdp_noacl" else ""),
                      "--interval", "3600")
    else:
        _bridge(lab, host)
        # frames redirected into a veth need NAPI on its peer: an XDP program or GRO (veth, >= 5.13)
        res = lab.run(host, ["ethtool", "-K", "eth0", "gro", "on"])
        if res.returncode != 0:
            raise HarnessError(f"ethtool -K eth0 gro on: {res.stderr.strip()}")
    frame = test_frame()
    fd = load_generator(stack, frame, lab.link(sw, "sw0")[0], drop=mode == "generator")
    out = []
    for receiver in order:
        # the earlier receiver: xdp_pass behind l2fwd (its native redirect needs it), nothing behind the bridge
        prog = {"sink": "sink", "stack": "none" if mode == "bridge" else "pass", "none": "none"}[receiver]
        with ExitStack() as rx_stack:
            if prog != "none":
                rx_stack.enter_context(sink.attached([(vm, "eth0")], prog))
            rx = (lambda: lab.rx_packets(vm, "eth0"))
            read = sink.dropped if receiver == "sink" else rx
            before, rx0 = settled(read), rx()
            sent = run_generator(lab, sw, fd, frame, count)
            reached = count if mode == "generator" else settled(read) - before
            rx_delta = rx() - rx0
        soft_s = sent["ksoftirqd"]
        cpu_s = sent["cpu"] + soft_s
        out.append({"mode": mode, "receiver": receiver, "sent": count, "reached": reached, "rx": rx_delta,
                    "seconds": sent["wall"], "fps": reached / sent["wall"] if sent["wall"] else float("nan"),
                    "cpu_s_per_mframes": cpu_s / reached * 1e6 if reached else float("nan"),
                    "generator_cpu_s": sent["cpu"], "ksoftirqd_cpu_s": soft_s})
    return out


def _rows(runs: dict[str, list[dict]], gen_cpu: float, receiver: str) -> list[Row]:
    """The comparison rows of one receiver's runs (``sink``: the headline, with the target)."""
    fps = {m: summary([r["fps"] for r in rs]) for m, rs in runs.items()}
    cpu = {m: summary([r["cpu_s_per_mframes"] for r in rs]) for m, rs in runs.items()}
    per_cpu = {m: summary([1e6 / r["cpu_s_per_mframes"] for r in rs]) for m, rs in runs.items()}
    fwd = {m: summary([r["cpu_s_per_mframes"] - gen_cpu for r in runs[m]]) for m in runs}
    ratio = common.ratio(fps["xdp"]["median"], fps["bridge"]["median"])
    shared = "2 CPUs shared with other engineers' runs"
    paired = paired_ratios(runs, "xdp", "bridge")
    if receiver == "sink":
        tag = "receiver xdp_sink"
        how = ("receiver: xdp_sink native on the VM's eth0 in both (XDP_DROP of the UDP frames, counted; "
               "tag popped by l2fwd, kept as skb vlan_tci metadata by the bridge)")
        head = Row(f"xdp_l2fwd frames/s into the VM port, {tag}", "frames/s", fps["xdp"], "Linux bridge",
                   fps["bridge"], f">= {GOAL:g}x bridge", bool(ratio >= GOAL),
                   f"{how}; generator included in both; {shared}; per-repetition ratios {paired}")
    else:
        tag = "receiver VM stack"
        how = ("receiver: the VM's stack (xdp_pass on its eth0 behind l2fwd, nothing behind the bridge), "
               "rx_packets; the earlier method")
        head = Row(f"xdp_l2fwd frames/s into the VM port, {tag}", "frames/s", fps["xdp"], "Linux bridge",
                   fps["bridge"], "", None, f"{how}; generator included in both; {shared}; per-repetition ratios {paired}")
    return [
        head,
        Row(f"xdp_l2fwd frames per CPU-second, {tag}", "frames/CPU-s", per_cpu["xdp"], "Linux bridge",
            per_cpu["bridge"], "", None,
            "what one CPU carries: frames reached / CPU time used (less exposed to other tenants' load)"),
        Row(f"xdp_l2fwd CPU per million frames, {tag}", "CPU s", cpu["xdp"], "Linux bridge", cpu["bridge"], "", None,
            "generator + forwarding + receiver (generator's context + ksoftirqd), per million frames reached"),
        Row(f"xdp_l2fwd forwarding CPU per million frames, {tag}", "CPU s", fwd["xdp"], "Linux bridge",
            fwd["bridge"], "", None, f"the generator alone ({gen_cpu:.3f} CPU s per million) subtracted"),
        Row(f"xdp_l2fwd without the devmap ACL, frames/s, {tag}", "frames/s", fps["xdp_noacl"], "Linux bridge",
            fps["bridge"], "", None, "fdb add --no-acl: the cost of acl_vm_tx on every frame; per-repetition "
            f"ratios {paired_ratios(runs, 'xdp_noacl', 'bridge')}"),
    ]


def run(ctx) -> dict:
    reps = max(ctx.reps or (1 if ctx.quick else 3), 1)
    count = 1_000_000 if ctx.quick else 5_000_000
    modes = ("generator", "xdp", "xdp_noacl", "bridge")
    runs: dict[str, dict[str, list[dict]]] = {rx: {m: [] for m in modes[1:]} for rx in RECEIVERS}
    gen_runs: list[dict] = []
    with ExitStack() as stack:
        sink = Sink(stack, udp_dport=UDP_DPORT)
        for rep in range(reps):
            order = RECEIVERS if rep % 2 == 0 else tuple(reversed(RECEIVERS))
            for mode in modes if rep % 2 == 0 else tuple(reversed(modes)):
                for r in one_run(mode, count, sink, order):
                    common.log(f"{NAME}: {mode} receiver {r['receiver']} rep {rep + 1}: {r['reached']:,}/"
                               f"{r['sent']:,} frames reached the VM, {r['fps']:,.0f} frames/s, "
                               f"{r['cpu_s_per_mframes']:.3f} CPU s per million frames")
                    (gen_runs if mode == "generator" else runs[r["receiver"]][mode]).append(r)
    gen = summary([r["cpu_s_per_mframes"] for r in gen_runs])["median"]
    rows = [*_rows(runs["sink"], gen, "sink"), *_rows(runs["stack"], gen, "stack"),
            Row("generator alone", "frames/s", summary([r["fps"] for r in gen_runs]),
                note="live-frame BPF_PROG_TEST_RUN, frames dropped")]
    return {"name": NAME, "title": TITLE, "rows": rows, "plots": [],
            "data": {"runs": runs["sink"], "runs_stack": runs["stack"], "runs_generator": gen_runs,
                     "receivers": {"sink": f"bpf/xdp_sink.bpf.c (-DSINK_UDP_DPORT={UDP_DPORT}, one 802.1Q/802.1ad "
                                           "tag skipped) native on vm/eth0 in every mode, reached = its XDP_DROP count",
                                   "stack": "xdp_pass on vm/eth0 behind l2fwd, nothing behind the bridge; the VM's "
                                            "stack; reached = vm/eth0 rx_packets"}},
            "method": (f"{count:,} 64-byte 802.1Q frames per run from a live-frame BPF_PROG_TEST_RUN pinned to CPU "
                       f"{common.SENDER_CPU}, {reps} run(s) per mode, interleaved; each forwarding mode measured with "
                       f"two receivers on the VM's eth0, back to back in the same namespaces (order alternating): "
                       f"headline bpf/xdp_sink.bpf.c native in every mode (XDP_DROP of the UDP datagrams to port "
                       f"{UDP_DPORT}, 802.1Q-tagged or not, counted: frames reached = its XDP_DROP count); earlier method: the VM's stack (xdp_pass behind l2fwd, nothing behind the "
                       f"bridge), frames reached = vm/eth0 rx_packets. frames/s = frames reached per second of the "
                       f"generator's run; the bridge forwards the frames still tagged (no VLAN filtering/act_vlan "
                       f"in this kernel; the tag travels as skb vlan_tci metadata, so the sink sees the frame "
                       f"untagged), l2fwd pops the tag.")}


def _plot(path, data) -> None:
    """No plot: two numbers per forwarder (the table says it all)."""
