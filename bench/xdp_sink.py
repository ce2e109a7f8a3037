"""The XDP benchmarks' receivers: the same small sink program on the receiving veths.

A forwarding benchmark's figure is the whole path on one CPU: the generator, the router (or
load balancer) under test, and the receiver. A receiver that builds an skb and runs its IP
stack for every frame costs as much as the router, in every configuration alike, and so
dilutes the ratio between routers. :class:`Sink` loads ``bpf/xdp_sink.bpf.c`` once (XDP_DROP
of the benchmark's UDP datagrams, XDP_PASS of everything else, counted per verdict in
``xdp_stats_map``) and attaches that one program, native, to the receiving veths of every
configuration compared: the receiver's cost is then the same small program everywhere, and
only the router's job differs. Delivered frames are the program's XDP_DROP count.

:class:`Sink` also loads ``bpf/xdp_pass.bpf.c`` (the seed's xdp_pass), so a benchmark can
swap to the earlier receiver (the kernel's stack behind xdp_pass, counted by ``rx_packets``)
with the same netlink attach, for the rows measured the earlier way.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Iterator, Sequence

from pfrps.xdp.attach import Attachments
from pfrps.xdp.counters import XDP_ACTIONS, percpu_reader

__all__ = ["Sink"]

_DROP = XDP_ACTIONS.index("XDP_DROP")
_PASS = XDP_ACTIONS.index("XDP_PASS")


class Sink:
    """``bpf/xdp_sink.bpf.c`` (and xdp_pass) loaded in this process; attach with :meth:`attached`.

    Args:
        stack: unloads both programs when it closes (after :meth:`attached` blocks ended).
        udp_dport: the benchmark's destination port (``-DSINK_UDP_DPORT``): those datagrams
            are dropped and counted as delivered, everything else passes to the kernel.
        tcp: count TCP segments to that port instead of UDP datagrams (``-DSINK_PROTO=6``).

    Raises:
        BpfCompileError, BpfLoadError, PrivilegeError: see :class:`pfrps.xdp.attach.Attachments`.
    """

    def __init__(self, stack: ExitStack, udp_dport: int, tcp: bool = False) -> None:
        self.udp_dport = udp_dport
        att = stack.enter_context(Attachments())
        mod = att.program("xdp_sink.bpf.c", [f"-DSINK_UDP_DPORT={int(udp_dport)}", f"-DSINK_PROTO={6 if tcp else 17}"])
        self.fd = att.load(mod, "pfrps_xdp_sink")
        self._read = percpu_reader(mod.table("xdp_stats_map"), len(XDP_ACTIONS))
        self.pass_fd = att.load(att.program("xdp_pass.bpf.c"), "pfrps_xdp_pass")

    def dropped(self) -> int:
        """Frames the sink dropped so far (the benchmark's datagrams delivered), all CPUs and
        all the veths it is attached to."""
        return int(self._read()[_DROP, 0])

    def passed(self) -> int:
        """Frames the sink passed to the kernel so far (ARP, ICMP, anything else)."""
        return int(self._read()[_PASS, 0])

    @contextmanager
    def attached(self, where: Sequence[tuple[str, str]], receiver: str = "sink") -> Iterator[None]:
        """Attach the receiver program (``sink`` or ``pass``), native, to each ``(netns, ifname)``
        for the block; detached on exit (``pfrps.xdp.attach.Attachments``). ``none`` attaches
        nothing.

        Raises:
            ValueError: an unknown ``receiver``.
            XdpBusyError, UsageError: an interface already carries XDP, or the attach failed.
        """
        if receiver not in ("sink", "pass", "none"):
            raise ValueError(f"receiver {receiver!r}: want sink, pass or none")
        with ExitStack() as stack:
            if receiver != "none":
                fd = self.fd if receiver == "sink" else self.pass_fd
                for ns, ifname in where:
                    stack.enter_context(Attachments(netns=ns)).xdp(ifname, fd, generic=False)
            yield
