"""The BNG lab: ``pfrps-bng`` and the scaled client in the three-namespace topology, for the tests,
``bench/bng.py`` and a worked example (``python -m pfrps.bng.lab``).

Every process is started inside a namespace of a :class:`pfrps.bng.topology.BngTopology` and
waited for through ``--ready-fd`` (never a fixed sleep); :meth:`BngTopology.destroy` ends
whatever is still running and removes the namespaces.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Optional, Sequence

from pfrps.cliutil import ArgumentParser, int_range, wait_ready
from pfrps.errors import PfrpsError, TopologyError, UsageError

from .topology import INET_V4, INET_V6, BngTopology

__all__ = ["Proc", "write_secrets", "start_bng", "start_client", "stop", "show_sessions", "send_downstream", "start_sink",
           "worker_pid", "wait_restarted",
           "main"]

PY = sys.executable
DST4 = INET_V4.split("/")[0]
DST6 = INET_V6.split("/")[0]


class Proc:
    """A started process and whether it signalled READY in time."""

    def __init__(self, proc: subprocess.Popen, ready: bool) -> None:
        self.proc, self.ready = proc, ready

    def finish(self, sig: int = signal.SIGINT, timeout: float = 120) -> tuple[int, str, str]:
        """Send ``sig`` (unless it exited already), wait; ``(status, stdout, stderr)``."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


def write_secrets(path: Path, count: int, first: int = 1, user: str = "user{i}", password: str = "pass{i}",
                  fixed: Optional[dict[int, str]] = None) -> Path:
    """A pppd-format secrets file with ``count`` users (``user{i} * pass{i} [address]``)."""
    fixed = fixed or {}
    lines = ["# client\tserver\tsecret\taddresses (pppd(8) format)"]
    for i in range(first, first + count):
        lines.append(f"{user.format(i=i)} * {password.format(i=i)}" + (f" {fixed[i]}" if i in fixed else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


def _start(topo: BngTopology, ns: str, argv: Sequence[str], timeout: float) -> Proc:
    r, w = os.pipe()
    proc = topo.popen(ns, [*argv, "--ready-fd", str(w)], pass_fds=(w,), stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    os.close(w)
    return Proc(proc, wait_ready(r, timeout))


def start_bng(topo: BngTopology, secrets: Path, *args: str, workers: int = 4, pools: Sequence[str] = ("100.64.0.0/16",),
              ipv6_pool: Optional[str] = "2001:db8:100::/40", timeout: float = 90) -> Proc:
    """``pfrps-bng -i acc0 --uplink up0`` in the BNG namespace; waits for READY."""
    argv = [PY, "-m", "pfrps.bng", "-i", topo.access, "--uplink", topo.uplink, "-w", str(workers),
            "--secrets", str(secrets)]
    for p in pools:
        argv += ["--pool", p]
    if ipv6_pool:
        argv += ["--ipv6-pool", ipv6_pool]
    return _start(topo, topo.bng, [*argv, *args], timeout)


def start_client(topo: BngTopology, count: int, *args: str, timeout: float = 300) -> Proc:
    """The scaled client on ``sub0`` holding its sessions until :meth:`Proc.finish` (SIGINT);
    waits until every subscriber is up or failed."""
    return _start(topo, topo.sub, [PY, "-m", "pfrps.bng.client", "-i", topo.injector_if, "-n", str(count),
                                   "--hold", "inf", "--json", "--quiet", *args], timeout)


def show_sessions(topo: BngTopology) -> dict:
    """``pfrps-bng show sessions --json`` in the BNG namespace."""
    res = topo.run(topo.bng, [PY, "-m", "pfrps.bng", "show", "sessions", "--json"], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, text=True, timeout=60)
    if res.returncode != 0:
        raise PfrpsError(f"show sessions failed: {res.stderr.strip()}")
    return json.loads(res.stdout)


_SENDER = r"""
import socket, sys
count, size = int(sys.argv[1]), int(sys.argv[2])
sent = 0
for a in sys.argv[3:]:
    fam = socket.AF_INET6 if ":" in a else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
        payload = bytes(size - (48 if fam == socket.AF_INET6 else 28))
        for _ in range(count):
            s.sendto(payload, (a, 9))
            sent += 1
print(sent)
"""


_SINK = r"""
import json, os, select, signal, socket, sys
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s4.bind(("0.0.0.0", 9))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s6.bind(("::", 9))
for s in (s4, s6):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
    s.setblocking(False)
counts = {"ipv4": 0, "ipv6": 0, "bytes": 0}
stop = []
signal.signal(signal.SIGINT, lambda *a: stop.append(1))
fd = int(sys.argv[1])
os.write(fd, b"READY\n")
os.close(fd)
while not stop:
    try:
        r, _, _ = select.select([s4, s6], [], [], 0.2)
    except InterruptedError:
        continue
    for s in r:
        while True:
            try:
                data = s.recv(65536)
            except BlockingIOError:
                break
            counts["ipv4" if s is s4 else "ipv6"] += 1
            counts["bytes"] += len(data)
print(json.dumps(counts), flush=True)
"""


def start_sink(topo: BngTopology, timeout: float = 30) -> Proc:
    """A discard server (UDP port 9, IPv4 and IPv6) in the inet namespace that counts what
    reaches it (so upstream traffic draws no ICMP port-unreachable back). :meth:`Proc.finish`
    (SIGINT) makes it print ``{"ipv4": N, "ipv6": N, "bytes": N}``."""
    r, w = os.pipe()
    proc = topo.popen(topo.inet, [PY, "-c", _SINK, str(w)], pass_fds=(w,), stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    os.close(w)
    return Proc(proc, wait_ready(r, timeout))


def send_downstream(topo: BngTopology, addresses: Sequence[str], count: int, size: int = 100) -> int:
    """Send ``count`` UDP datagrams (IP packets of ``size`` bytes, port 9) to each address from
    the inet namespace, through the BNG's uplink. Returns the datagrams sent."""
    res = topo.run(topo.inet, [PY, "-c", _SENDER, str(count), str(size), *addresses], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, text=True, timeout=120)
    if res.returncode != 0:
        raise PfrpsError(f"downstream sender failed: {res.stderr.strip()}")
    return int(res.stdout)


def worker_pid(bng_pid: int, worker_id: int) -> int:
    """The pid of worker ``worker_id`` (process name ``pfrps-w<id>``) among the descendants of
    the BNG's supervisor ``bng_pid``; 0 when there is none right now."""
    todo, seen = [bng_pid], set()
    while todo:
        pid = todo.pop()
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                kids = [int(x) for x in (task / "children").read_text().split()]
            except OSError:
                continue
            for kid in kids:
                if kid not in seen:
                    seen.add(kid)
                    todo.append(kid)
    for pid in seen:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == f"pfrps-w{worker_id}":
                return pid
        except OSError:
            pass
    return 0


def wait_restarted(bng_pid: int, worker_id: int, old_pid: int, timeout: float = 30) -> int:
    """Wait until worker ``worker_id`` runs under a pid other than ``old_pid``; its pid.

    Raises:
        PfrpsError: not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = worker_pid(bng_pid, worker_id)
        if new and new != old_pid:
            return new
        time.sleep(0.02)
    raise PfrpsError(f"worker {worker_id} was not restarted within {timeout:g} s")


def stop(proc: Proc, timeout: float = 120) -> tuple[int, str, str]:
    """SIGINT and wait (see :meth:`Proc.finish`)."""
    return proc.finish(signal.SIGINT, timeout)


LAB_RADIUS_SECRET = "lab-radius-secret"

EPILOG = """\
examples:
  python -m pfrps.bng.lab                         # 1000 subscribers, 4 workers, IPv4 + IPv6, traffic both ways
  python -m pfrps.bng.lab -n 200 --auth chap --vlan qinq:0x88a8:10:100-299
  python -m pfrps.bng.lab -n 100 --radius         # FreeRADIUS: auth, accounting, TR-101, a Disconnect-Request
"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the worked example: topology, BNG, N subscribers, traffic both ways, show, teardown."""
    ap = ArgumentParser(prog="pfrps-bng-lab", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="pfrps-bng with the scaled PPPoE client in three namespaces, traffic both "
                                    "ways, per-session counters checked, everything removed at the end.")
    ap.add_argument("-n", "--count", type=int_range(1, 60000, "subscriber count"), default=1000)
    ap.add_argument("-w", "--workers", type=int_range(1, 64, "worker count"), default=4)
    ap.add_argument("--auth", choices=("pap", "chap"), default="pap")
    ap.add_argument("--vlan", default="none", help="the client's --vlan layout (default: none)")
    ap.add_argument("--packets", type=int_range(0, 1000, "packets"), default=10,
                    help="UDP packets each way per session and family (default: 10)")
    ap.add_argument("--generic", action="store_true", help="XDP data plane in generic mode")
    ap.add_argument("--radius", action="store_true",
                    help="authenticate and account with Debian's FreeRADIUS in the inet namespace (198.51.100.2) "
                         "instead of a secrets file; subscribers carry TR-101 line ids; one is disconnected "
                         "with radclient (RFC 5176)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("pfrps-bng-lab: error: must run as root (namespaces, BPF); use sudo", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        topo = BngTopology(prefix="bnglab").create()
    except TopologyError as exc:
        return exc.report("pfrps-bng-lab")
    bng = client = sink = rad = None
    status = 1
    try:
        import tempfile  # noqa: PLC0415

        with tempfile.TemporaryDirectory(prefix="pfrps-bng-lab-") as tmp:
            secrets = write_secrets(Path(tmp) / "secrets", args.count)
            extra = ["--dns", "192.0.2.53", "--dns", "2001:db8::53"] + (["--generic"] if args.generic else [])
            client_extra: list[str] = []
            if args.radius:
                from .freeradius import FreeRadius, RadUser  # noqa: PLC0415

                secrets.write_text("# empty: every subscriber is RADIUS's\n")
                (Path(tmp) / "radius-secret").write_text(LAB_RADIUS_SECRET + "\n")
                users = [RadUser(f"user{i}", f"pass{i}", reply=[("Acct-Interim-Interval", "60")])
                         for i in range(1, args.count + 1)]
                rad = FreeRadius(topo.inet, Path(tmp) / "freeradius", {"198.51.100.1": LAB_RADIUS_SECRET}, users,
                                 address="198.51.100.2", debug=False).start()
                print("lab: inet$ freeradius -f -d freeradius/   # users user1..userN, Acct-Interim-Interval 60",
                      flush=True)
                extra += ["--radius", "198.51.100.2", "--radius-secret-file", str(Path(tmp) / "radius-secret")]
                client_extra = ["--circuit-id", "olt1 pon 1/1/{i}", "--remote-id", "cpe-{i}"]
            print(f"lab: bng$ pfrps-bng -i acc0 --uplink up0 -w {args.workers} --pool 100.64.0.0/16 "
                  f"--ipv6-pool 2001:db8:100::/40 --secrets {secrets.name} {' '.join(extra)}", flush=True)
            sink = start_sink(topo)
            bng = start_bng(topo, secrets, *extra, workers=args.workers)
            if not bng.ready:
                print(bng.finish()[2], file=sys.stderr)
                return 1
            print(f"lab: subscribers$ pfrps-bng-client -i sub0 -n {args.count} --auth {args.auth} --vlan {args.vlan} "
                  f"--ipv6 --dns --hold inf", flush=True)
            t1 = time.monotonic()
            client = start_client(topo, args.count, "--auth", args.auth, "--vlan", args.vlan, "--ipv6", "--dns",
                                  "--traffic", str(args.packets), "--dst4", DST4, "--dst6", DST6, *client_extra)
            print(f"lab: {args.count} subscribers set up in {time.monotonic() - t1:.2f} s", flush=True)
            shown = show_sessions(topo)
            sessions = shown["sessions"]
            targets = [s["ipv4"] for s in sessions if s["ipv4"]]
            sent = send_downstream(topo, targets, args.packets) if args.packets else 0
            print(f"lab: inet$ sent {sent} UDP datagrams to the {len(targets)} subscriber addresses", flush=True)
            table = topo.run(topo.bng, [PY, "-m", "pfrps.bng", "show", "sessions"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True).stdout.splitlines()
            print("lab: bng$ pfrps-bng show sessions")
            print("\n".join(table[:6] + (["..."] if len(table) > 7 else []) + table[-1:]))
            shown = show_sessions(topo)
            ok4 = all(ip_address(s["ipv4"]) in ip_network("100.64.0.0/16") for s in shown["sessions"])
            ups = {s["up_packets"] for s in shown["sessions"]}
            downs = {s["down_packets"] for s in shown["sessions"]}
            print(f"lab: {len(shown['sessions'])} sessions, addresses in the pool: {ok4}, data-plane entries "
                  f"{shown.get('dataplane_entries')}; up packets per session {sorted(ups)}, down {sorted(downs)}")
            if rad is not None:
                from .freeradius import radclient  # noqa: PLC0415

                one = shown["sessions"][0]
                reply = radclient(topo.inet, "198.51.100.1:3799", LAB_RADIUS_SECRET, "disconnect",
                                  [("Acct-Session-Id", one["acct_session_id"])])
                print(f"lab: inet$ radclient 198.51.100.1:3799 disconnect <<< 'Acct-Session-Id = "
                      f"{one['acct_session_id']}'  -> {reply.code}", flush=True)
            cst, cout, cerr = client.finish()
            res = json.loads(cout)
            print(f"lab: client: {res['up']} up, {res['failed']} failed, setup {res['setup_rate']:.0f} sessions/s, "
                  f"teardown {res.get('teardown', {}).get('rate', 0):.0f} sessions/s, exit {cst}")
            sunk = json.loads(sink.finish()[1])
            print(f"lab: inet: the discard server got {sunk['ipv4']} IPv4 and {sunk['ipv6']} IPv6 datagrams "
                  f"(sent upstream: {args.packets} per session and family)")
            bst, bout, berr = bng.finish()
            if rad is not None:
                recs = rad.wait_detail(2 * args.count, timeout=15)
                kinds = {}
                for r in recs:
                    kinds[r.get("Acct-Status-Type", "?")] = kinds.get(r.get("Acct-Status-Type", "?"), 0) + 1
                causes = {}
                for r in recs:
                    if r.get("Acct-Status-Type") == "Stop":
                        c = r.get("Acct-Terminate-Cause", "?")
                        causes[c] = causes.get(c, 0) + 1
                octets = sorted({int(r.get("Acct-Input-Octets", 0)) for r in recs if r.get("Acct-Status-Type") == "Stop"})
                print(f"lab: FreeRADIUS accounting log: {kinds}; Stop causes {causes}; Acct-Input-Octets per "
                      f"session {octets}")
            print(f"lab: pfrps-bng exit {bst}; last line: {bout.strip().splitlines()[-1] if bout.strip() else ''}")
            status = 0 if (cst == 0 and bst == 0 and res["failed"] == 0 and ok4) else 1
    except (PfrpsError, UsageError) as exc:
        status = exc.report("pfrps-bng-lab")
    finally:
        for p in (client, bng, sink):
            if p is not None and p.proc.poll() is None:
                p.finish(signal.SIGKILL, 10)
        if rad is not None:
            rad.stop()
        topo.destroy()
    print(f"lab: removed namespaces {', '.join(topo.all_namespaces)}; {time.monotonic() - t0:.1f} s in all")
    return status


if __name__ == "__main__":
    sys.exit(main())
