"""``pfrps-xdp lb``: the seed 002 L4 load balancer, full NAT with XDP_TX, Maglev backends.

::

    pfrps-xdp lb -i veth6 --vip 10.0.0.10 --backend 10.0.0.2 --backend 10.0.0.3 [--backend IP[@MAC] ...]

A client's packet to the VIP goes to the backend that the Maglev table picks for its 5-tuple,
from the VIP (so the backend answers the LB), and the backend's reply goes back to the client
from the VIP: ``bpf/xdp_lb.bpf.c``. The flow tables (LRU hashes, both directions) keep a
connection on its backend when the backend set changes; ``--backend-file FILE`` is re-read on
SIGHUP, which rewrites the Maglev table (only about 1/N of new flows move) and leaves
established flows alone. Backend MACs are given (``IP@MAC``) or resolved through the LB's
neighbour table (pyroute2, with an ARP probe through ``NTF_USE``). ICMP, ARP and every other
packet pass to the LB's own stack. Counter lines: the seed's ``xdp_stats`` per action, then
per backend frames and bytes in each direction.

This module is the command line; the jobs live beside it: :mod:`.lb_backends` (``IP[@MAC]``
parsing, backend files, neighbour resolution), :mod:`.lb_maps` (the program and its maps,
:class:`~pfrps.xdp.lb_maps.LoadBalancer`), :mod:`.lb_service` (one run: attach, counters, SIGHUP),
:mod:`.lb_lab` (``pfrps-xdp lab lb``); :func:`pfrps.ethtool.tx_checksum_off` for the senders.
"""

from __future__ import annotations

import argparse

from . import maglev
from .lb_service import run_lb
from .runner import add_common

__all__ = ["register", "EXAMPLES"]

EXAMPLES = """\
examples:
  pfrps-xdp lb -i veth6 --vip 10.0.0.10 --backend 10.0.0.2 --backend 10.0.0.3
  pfrps-xdp lb -i veth6 --vip 10.0.0.10 --backend 10.0.0.2@de:ad:be:ef:00:02 --port 8080 --json
  pfrps-xdp lb -i veth6 --vip 10.0.0.10 --backend-file pool.txt   # kill -HUP <pid> re-reads it
  pfrps-xdp lab lb                                                 # its testbed in namespaces, checked

The VIP must be an address of the interface (the LB's own stack answers ARP and ping for it).
Native XDP_TX out of a veth needs an XDP program on its peer: pfrps-xdp pass -i <peer>.
"""


def register(subparsers) -> None:
    """Add the ``lb`` subcommand."""
    p = subparsers.add_parser(
        "lb", help="load balancer: XDP L4 load balancing (full NAT, XDP_TX, Maglev backends)",
        description="Balance TCP/UDP flows to a VIP across backends with XDP: full NAT on the LB's one "
                    "interface (client -> VIP becomes VIP -> backend, replies go back from the VIP), "
                    "backends chosen by Maglev consistent hashing of the 5-tuple, flows kept in LRU tables. "
                    "Prints the seed's xdp_stats lines and per-backend counters.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-i", "--interface", required=True, metavar="DEV", help="the LB's interface (carries the VIP)")
    p.add_argument("--vip", required=True, metavar="IP", help="the virtual IP: an IPv4 address of DEV")
    p.add_argument("--backend", action="append", default=[], metavar="IP[@MAC]",
                   help="a backend (repeatable); without @MAC its MAC comes from DEV's neighbour table")
    p.add_argument("--backend-file", metavar="FILE",
                   help="backends, one IP[@MAC] per line, added to --backend; re-read on SIGHUP")
    p.add_argument("--port", action="append", type=int, default=[], metavar="PORT",
                   help="a TCP/UDP port of the VIP to balance (repeatable; default: every port)")
    p.add_argument("--ring-size", type=int, default=maglev.DEFAULT_RING_SIZE, metavar="M",
                   help=f"Maglev table size, a prime (default {maglev.DEFAULT_RING_SIZE}, as katran)")
    p.add_argument("--max-flows", type=int, default=65536, metavar="N",
                   help="entries of each flow table (LRU; default 65536)")
    p.add_argument("--resolve-timeout", type=float, default=3.0, metavar="SECONDS",
                   help="how long to wait for a backend's ARP reply (default 3)")
    add_common(p)
    p.set_defaults(func=run_lb)
