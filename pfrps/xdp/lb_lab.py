"""``pfrps-xdp lab lb``: the seed 002 testbed (``testbed-setup.sh ebpf``) in namespaces, checked.

::

    client (veth0 10.0.0.1) ---+
    h2     (veth2 10.0.0.2) ---+--- br0 (its own namespace: veth1, veth3, veth5, veth7)
    h3     (veth4 10.0.0.3) ---+
    lb     (veth6 10.0.0.10) --+    pfrps-xdp lb -i veth6 --vip 10.0.0.10 --backend 10.0.0.2 --backend 10.0.0.3

The seed's root-namespace ``veth0`` is a client namespace here; MACs are the seed's
``de:ad:be:ef:00:<n>`` for ``veth<n>``; ``lo`` is up everywhere (the seed's own fix). TCP
servers on port 8080 in h2 and h3 name themselves in each reply; the client makes 40
connections to 10.0.0.10:8080 from source ports 40000-40039, one request and reply each.
Checks: ping to the VIP (ICMP passes to the LB's stack), XDP attached natively, every
connection served, the split across h2/h3 equal to what the Maglev table predicts for those
5-tuples, the per-backend counters adding up to the XDP_TX count, and no TCP checksum errors
(``Tcp: InCsumErrors``) on the client and the backends. Native mode needs ``xdp_pass`` on
``veth7`` (XDP_TX out of veth6 arrives there) and TX checksum offload off on the senders.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
from collections import Counter

from . import maglev
from ..ethtool import tx_checksum_off
from .lab import Lab

__all__ = ["LbLab", "TESTBED", "snmp_counters"]

VIP = "10.0.0.10"
PORT = 8080
#: role -> (its veth, its address, the bridge-side peer) as in the seed's testbed-setup.sh.
TESTBED = {
    "client": ("veth0", "10.0.0.1", "veth1"),
    "h2": ("veth2", "10.0.0.2", "veth3"),
    "h3": ("veth4", "10.0.0.3", "veth5"),
    "lb": ("veth6", VIP, "veth7"),
}


def testbed(backends: int = 2) -> dict[str, tuple[str, str, str]]:
    """:data:`TESTBED` with ``backends`` servers: h2, h3 as the seed, then h4 (veth8, 10.0.0.4),
    h5 (veth10, 10.0.0.5), ... beyond it."""
    bed = dict(TESTBED)
    for k in range(4, backends + 2):
        n = 2 * k
        bed[f"h{k}"] = (f"veth{n}", f"10.0.0.{k}", f"veth{n + 1}")
    return bed


def backend_roles(bed: dict) -> list[str]:
    """The server roles of a testbed (h2, h3, ...), in order."""
    return sorted((r for r in bed if r.startswith("h")), key=lambda r: int(r[1:]))


def seed_mac(ifname: str) -> str:
    """The seed's MAC of ``veth<n>``: ``de:ad:be:ef:00:<n>``."""
    return f"de:ad:be:ef:00:{int(ifname[4:]):02x}"


def snmp_counters() -> dict[str, dict[str, int]]:
    """``/proc/net/snmp`` of the calling thread's namespace: ``{"Tcp": {"InCsumErrors": 0, ...}, ...}``."""
    out: dict[str, dict[str, int]] = {}
    with open("/proc/net/snmp") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        proto, _, keys = names.partition(":")
        out[proto] = dict(zip(keys.split(), (int(v) for v in values.split(":", 1)[1].split())))
    return out


def _wait_line(proc: subprocess.Popen, want: str, timeout: float) -> bool:
    """True once ``proc`` printed a stdout line equal to ``want`` (within ``timeout`` seconds)."""
    while select.select([proc.stdout], [], [], timeout)[0]:
        line = proc.stdout.readline()
        if not line:
            return False
        if line.strip() == want:
            return True
    return False


def predict_roles(bed: dict, roles, sports, port: int = PORT) -> list[str]:
    """The server role Maglev picks for each TCP connection client:sport -> VIP:port, with
    ``roles`` as the backend set (pfrps-xdp lb's default table size and hash seed)."""
    ips = [bed[r][1] for r in roles]
    table = maglev.maglev_table(ips, maglev.DEFAULT_RING_SIZE)
    hashes = maglev.flow_hash(bed["client"][1], VIP, sports, port, 6)
    return [roles[i] for i in maglev.lookup(table, hashes)]


class LbLab(Lab):
    """The seed's L4 load balancer testbed with the XDP LB on ``lb/veth6``."""

    title = "load balancer: XDP L4 load balancer on a bridge with a client, backends h2, h3 and the LB 10.0.0.10"

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--generic", action="store_true",
                            help="generic XDP (default native; generic never verifies a checksum)")
        parser.add_argument("--connections", type=int, default=40, metavar="N",
                            help="TCP connections from the client (default 40)")
        parser.add_argument("--backends", type=int, default=2, metavar="N",
                            help="backend servers h2, h3, ... (default 2, as the seed)")

    def build(self, args) -> None:
        """The bridge namespace with br0, then client, h2, h3 (h4, ...) and lb on it, addressed."""
        if not 1 <= args.backends <= 20:
            from ..errors import UsageError  # noqa: PLC0415

            raise UsageError(f"--backends {args.backends} is out of range", hint="give 1 to 20")
        self.bed = testbed(args.backends)
        br = self.add_ns("br")
        with self._ipr(br) as ipr:
            ipr.link("add", ifname="br0", kind="bridge")
        self._ipr_set(br, "br0", state="up")
        for role, (ifname, ip, peer) in self.bed.items():
            ns = self.add_ns(role)
            self.veth(ns, ifname, br, peer, mac_a=seed_mac(ifname), mac_b=seed_mac(peer))
            with self._ipr(br) as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname=peer)[0],
                         master=ipr.link_lookup(ifname="br0")[0])
            self.addr(ns, ifname, f"{ip}/24")
            if role != "lb":
                self.call(ns, tx_checksum_off, ifname)  # the senders through the LB

    def server(self, role: str) -> subprocess.Popen:
        """Start the named TCP server of ``role`` on port 8080; return once it listens."""
        proc = self.popen(self.ns(role), [sys.executable, "-m", "pfrps.xdp.lb_traffic", "serve", "--port",
                                          str(PORT), "--name", role], stdout=subprocess.PIPE, text=True)
        if not _wait_line(proc, "READY", 30):
            raise RuntimeError(f"the TCP server in {role} did not start")
        return proc

    def checks(self, args) -> None:
        """Servers, xdp_pass on veth7, pfrps-xdp lb on veth6, then ping, 40 connections, the checks."""
        from .attach import resolve_ifindex, xdp_attached  # noqa: PLC0415

        gen = ["--generic"] if args.generic else []
        roles = backend_roles(self.bed)
        for role in roles:
            self.server(role)
        self.start_xdp(self.ns("br"), "pass", "-i", "veth7", *gen)
        lb = self.start_xdp(self.ns("lb"), "lb", "-i", "veth6", "--vip", VIP, "--port", str(PORT),
                            "--interval", "1", *gen, *[a for r in roles for a in ("--backend", self.bed[r][1])])
        mode = self.call(self.ns("lb"), lambda: xdp_attached(resolve_ifindex("veth6")))
        want_mode = "generic" if args.generic else "native"
        self.check("xdp-mode", mode is not None and mode[1] == want_mode,
                   f"pfrps_xdp_lb on lb/veth6 in {mode[1] if mode else 'no'} mode (want {want_mode})")

        ping = self.run(self.ns("client"), ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", VIP], timeout=30)
        got = ping.stdout.count("bytes from")
        self.check("ping-vip", got == 3, f"{got}/3 echo replies from {VIP} (ICMP passes to the LB's stack)")

        n = args.connections
        sports = list(range(40000, 40000 + n))
        hold = self.run(self.ns("client"), [sys.executable, "-m", "pfrps.xdp.lb_traffic", "hold", "--vip", VIP,
                                            "--port", str(PORT), "--sport", str(sports[0]), "--count", str(n)],
                        timeout=120)
        rounds = [json.loads(ln) for ln in hold.stdout.splitlines() if ln.startswith("{")]
        served = rounds[0]["served"] if rounds else {}
        ok = [p for p in sports if served.get(str(p))]
        self.check("connections", len(ok) == n,
                   f"{len(ok)}/{n} connections client -> {VIP}:{PORT} exchanged a request and a reply")

        by_ip = {self.bed[r][1]: r for r in roles}
        predicted = predict_roles(self.bed, roles, sports)
        actual = [served.get(str(p)) for p in sports]
        split = Counter(a for a in actual if a)
        want = Counter(predicted)
        self.check("maglev-split", actual == predicted,
                   ", ".join(f"{r} {split[r]}" for r in roles) + "; Maglev predicts "
                   + ", ".join(f"{r} {want[r]}" for r in roles)
                   + f"; {sum(a == b for a, b in zip(actual, predicted))}/{n} connections on the predicted backend")
        self.check("every-backend-serves", all(split[r] > 0 for r in roles),
                   ", ".join(f"{r} served {split[r]}" for r in roles))

        status, out, err = self.stop_xdp(lb)
        last = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
        final = last[-1] if last else {}
        backends = final.get("backends", {})
        tx = final.get("XDP_TX", {}).get("rx_packets", -1)
        per = {by_ip.get(ip, ip): (c["to_backend_packets"], c["to_client_packets"]) for ip, c in backends.items()}
        total = sum(a + b for a, b in per.values())
        self.check("backend-counters", status == 0 and total == tx and all(a > 0 and b > 0 for a, b in per.values())
                   and len(per) == len(roles),
                   ", ".join(f"{r}: {a} frames to, {b} from" for r, (a, b) in sorted(per.items()))
                   + f"; sum {total} = XDP_TX {tx}; exit {status}")

        errors = {role: self.call(self.ns(role), snmp_counters)["Tcp"]["InCsumErrors"]
                  for role in ("client", *roles)}
        self.check("tcp-checksums", all(v == 0 for v in errors.values()),
                   "Tcp InCsumErrors " + ", ".join(f"{r} {v}" for r, v in errors.items()))
