"""Benchmark: pfrps-bng (issue 14): session set-up rate against worker count, many sessions
held with keepalive (memory, teardown), and the XDP data plane against the kernel's forwarding.

Everything runs in :class:`pfrps.bng.topology.BngTopology`'s three namespaces (subscribers
``sub0`` -- ``acc0`` BNG ``up0`` -- ``inet0`` Internet), removed at the end, also on Ctrl-C.
Ratios and rates come from one run; configurations are interleaved within each repetition
(every other round reversed) and each figure is the median of the repetitions.

1. **Set-up** (``setup``): a fresh ``pfrps-bng`` per run (-w N, PAP, IPv4 only, secrets from a
   local pppd-format file of exactly as many lines as subscribers, ``--pool 100.64.0.0/16``),
   then the scaled client (``python -m pfrps.bng.client -n 10000 --rate 0 --window W``) on the
   same machine, nothing pinned. Figures: the client's ``setup_rate`` (sessions up / seconds
   from the first PADI to the last session up), ``failed``; CPU seconds of the BNG's
   supervisor and workers over the set-up (``/proc/PID/stat`` utime + stime, from the client's
   start to its READY: every subscriber up or failed) and the client's own (its JSON). Rows:
   N = 1, 2, 4, 8, and at N = 8 CHAP and IPv4+IPv6 (IPCP + IPv6CP + RS/RA).
2. **Held sessions** (``hold``): 10,000 sessions on 8 workers with ``--echo-interval 4``,
   held 24 s (six keepalive sweeps; a session silent for 4 s gets an LCP Echo-Request, the
   client answers, so each session is probed every other sweep: about 3 each); at the end
   of the hold: sessions the BNG lists (``pfrps-bng show sessions
   --json``) and its data-plane entries, VmRSS (and PSS) of the supervisor and of each
   ``pfrps-w*`` process before set-up and at the end of the hold; then the client terminates
   them all (its ``teardown.rate``). Stretch (full run only): 60,000 sessions (a /14 pool,
   60,000 secrets lines), the same way.
3. **Data plane** (``dataplane``): 1,000 real sessions (the client holding them) and a
   live-frame generator (``bpf/bng_gen.bpf.c``, BPF_PROG_TEST_RUN with
   BPF_F_TEST_XDP_LIVE_FRAMES, pinned to CPU 0) sending one frame per session in turn, so the
   BNG's veths receive xdp_frames as from a NIC. Upstream: PPPoE session frames (68 bytes: a
   46-byte IPv4/UDP packet to the Internet side) out of ``sub0``; downstream: the 60-byte
   IPv4/UDP packets to the subscribers' addresses out of ``inet0``. Receivers, the same program
   in every configuration: ``bpf/xdp_sink.bpf.c`` on ``inet0`` (upstream) and
   ``bpf/bng_gen.bpf.c``'s ``bng_sink`` on ``sub0`` (downstream: it counts the UDP datagram
   plain or inside PPPoE, so one program serves both routers; LCP passes to the client).
   Configurations: ``bng`` (pfrps-bng native XDP), ``bng-generic`` (``--generic``; GRO on
   acc0/up0 meanwhile: the NAPI a redirect into a veth needs without a native program) and
   ``kernel``: no BNG (its XDP gone), the same frames without PPPoE (Ethernet + the same IP
   packet), ``ip_forward`` on, the pool routed to acc0, static neighbours, xdp_pass on acc0
   and up0 (the same xdp_frame receive path, then an skb for the stack, as in
   bench/xdp_l3fwd.py). Frames/s = frames the receiver counted / the generator's wall time.
   After every BNG run the per-session counters (``show sessions --json``) must equal the
   generator's per-session counts (its ``gen_sent`` map) exactly, up and down.

``python -m bench.bng [--quick] [--part setup|hold|dataplane] [--window W]``: run it alone.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import time
from contextlib import ExitStack
from ipaddress import IPv4Address
from pathlib import Path
from typing import Optional, Sequence

from pfrps import bpfsys
from pfrps.bng.client import eth_header, ipv4_udp, build_session
from pfrps.bng.topology import INET_V4, BngTopology
from pfrps.testing.procs import worker_pids

from . import common
from .common import HarnessError, Row, summary
from pfrps.cliutil import ArgumentParser

NAME = "bng"
TITLE = "pfrps-bng: session set-up, held sessions, XDP data plane vs kernel forwarding"

SETUP_TARGET = 1000.0      # sessions/s at 8 workers, 10,000 sessions, 0 failed
DP_GOAL = 2.0              # x kernel forwarding, upstream and downstream
#: the client's --window: subscribers in set-up at once (its default). A sweep at 8 workers,
#: 10,000 sessions (250, 500, 1000, 2000, 4000; see bench/README.md): the BNG's CPU per session
#: falls from ~470 us at 250 to ~330 us at 1000 (more frames per worker wake-up) and stays
#: there above; no retransmission at any of them; the set-up latency grows with the window.
WINDOW = 1000
POOL = "100.64.0.0/16"
POOL_60K = "100.64.0.0/14"
IPV6_POOL = "2001:db8:100::/40"
INET_IP = INET_V4.split("/")[0]
IP_SIZE = 46               # IPv4/UDP packet: 60-byte plain frames, 68-byte PPPoE frames
GEN_WORDS = 7              # the generator rewrites the first 56 bytes (every header) per frame
UDP_PORT = 9
PY = common.PY
CLK_TCK = os.sysconf("SC_CLK_TCK")
SETUP_CONFIGS = ("pap w=1", "pap w=2", "pap w=4", "pap w=8", "chap w=8", "pap+ipv6 w=8")
DP_CONFIGS = ("kernel", "bng", "bng-generic")


# -- processes in the topology -------------------------------------------------------------------
class Started:
    """A process started in a namespace with ``--ready-fd``, output to files."""

    def __init__(self, topo: BngTopology, ns: str, argv: Sequence[str], out: Path, timeout: float,
                 what: str) -> None:
        from pfrps.cliutil import wait_ready  # noqa: PLC0415

        self.what, self.out_path, self.err_path = what, out, out.with_suffix(".err")
        r, w = os.pipe()
        with open(self.out_path, "w") as fo, open(self.err_path, "w") as fe:
            self.proc = topo.popen(ns, [*argv, "--ready-fd", str(w)], pass_fds=(w,), stdout=fo, stderr=fe,
                                   cwd=common.REPO)
        os.close(w)
        self.t_start = time.monotonic()
        self.ready = wait_ready(r, timeout)
        self.t_ready = time.monotonic()
        if not self.ready:
            self.finish(signal.SIGKILL, 10)
            raise HarnessError(f"{what} not ready after {self.t_ready - self.t_start:.0f} s "
                               f"(exit {self.proc.returncode}): {self.err_path.read_text()[-1200:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def finish(self, sig: int = signal.SIGINT, timeout: float = 180) -> int:
        """Send ``sig`` (unless it exited), wait; its exit status (killed after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise HarnessError(f"{self.what} did not stop within {timeout:.0f} s of signal {sig}") from None

    def kill(self) -> None:
        """SIGKILL it (unless it exited) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def json_lines(self) -> list[dict]:
        out = []
        for line in self.out_path.read_text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def stderr(self) -> str:
        """What it wrote to stderr so far ("" when unreadable)."""
        try:
            return self.err_path.read_text(errors="replace")
        except OSError:
            return ""


def write_secrets(path: Path, count: int) -> Path:
    """``user{i} * pass{i}`` for i = 1 .. count (pppd format; the client's default patterns)."""
    with open(path, "w") as f:
        f.write("# client\tserver\tsecret\taddresses\n")
        f.writelines(f"user{i} * pass{i}\n" for i in range(1, count + 1))
    return path


def start_bng(topo: BngTopology, work: Path, secrets: Path, workers: int, *, auth: str = "pap",
              pools: Sequence[str] = (POOL,), ipv6: bool = False, extra: Sequence[str] = (),
              tag: str = "bng") -> Started:
    argv = [PY, "-m", "pfrps.bng", "-i", topo.access, "--uplink", topo.uplink, "-w", str(workers),
            "--secrets", str(secrets), "--auth", auth, "--log-level", "warning", "--interval", "3600", "--json"]
    for p in pools:
        argv += ["--pool", p]
    if ipv6:
        argv += ["--ipv6-pool", IPV6_POOL]
    return Started(topo, topo.bng, [*argv, *extra], work / f"{tag}.out", 120, "pfrps-bng")


def start_client(topo: BngTopology, work: Path, count: int, *, auth: str = "pap", ipv6: bool = False,
                 window: int = WINDOW, tag: str = "client") -> Started:
    argv = [PY, "-m", "pfrps.bng.client", "-i", topo.injector_if, "-n", str(count), "--hold", "inf", "--json",
            "--quiet", "--auth", auth, "--window", str(window), "--rate", "0", *(["--ipv6"] if ipv6 else [])]
    return Started(topo, topo.sub, argv, work / f"{tag}.out", 120 + count / 50, "pfrps-bng-client")


def client_result(client: Started) -> dict:
    """The client's final JSON (after SIGINT: its teardown), without the per-subscriber records."""
    lines = client.json_lines()
    if not lines:
        raise HarnessError(f"the client printed no JSON (exit {client.proc.returncode}): "
                           f"{client.err_path.read_text()[-800:]}")
    res = lines[-1]
    res.pop("records", None)
    return res


def show_sessions(topo: BngTopology, timeout: float = 120) -> dict:
    """``pfrps-bng show sessions --json`` in the BNG namespace, parsed.

    Raises:
        HarnessError: it failed.
    """
    res = topo.run(topo.bng, [PY, "-m", "pfrps.bng", "show", "sessions", "--json"], timeout=timeout,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=common.REPO)
    if res.returncode != 0:
        raise HarnessError(f"pfrps-bng show sessions failed ({res.returncode}): {res.stderr.strip()[-600:]}")
    return json.loads(res.stdout)


def bng_pids(sup: int) -> dict[str, int]:
    """``{"supervisor": pid, "pfrps-w0": pid, ...}``: the supervisor and its live worker children
    (:func:`pfrps.testing.procs.worker_pids`)."""
    return {"supervisor": sup, **{f"pfrps-w{w}": pid for w, pid in sorted(worker_pids(sup).items())}}


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """utime + stime (``/proc/PID/stat`` fields 14 and 15) of each process, seconds."""
    out = {}
    for name, pid in pids.items():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            out[name] = float("nan")
    return out


def memory(pids: dict[str, int]) -> dict[str, dict[str, float]]:
    """``{name: {"rss_mib": VmRSS, "pss_mib": Pss}}`` of each process."""
    out = {}
    for name, pid in pids.items():
        rec = {"rss_mib": float("nan"), "pss_mib": float("nan")}
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rec["rss_mib"] = int(line.split()[1]) / 1024
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    rec["pss_mib"] = int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            pass
        out[name] = rec
    return out


def _sum_counter(snap: dict, name: str) -> int:
    v = snap.get(name)
    return int(sum(v)) if isinstance(v, list) else int(v or 0)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


# -- 1. set-up rate ------------------------------------------------------------------------------
def parse_config(config: str) -> tuple[str, bool, int]:
    """``"chap w=8"`` -> ``("chap", False, 8)``; ``"pap+ipv6 w=8"`` -> ``("pap", True, 8)``."""
    what, w = config.split(" w=")
    return what.split("+")[0], "+ipv6" in what, int(w)


def setup_run(topo: BngTopology, work: Path, secrets: Path, config: str, count: int, window: int) -> dict:
    """One fresh BNG and one client run of ``count`` subscribers; the figures of :mod:`bench.bng`."""
    auth, ipv6, workers = parse_config(config)
    bng = start_bng(topo, work, secrets, workers, auth=auth, ipv6=ipv6)
    try:
        pids = bng_pids(bng.pid)
        if len(pids) != workers + 1:
            raise HarnessError(f"pfrps-bng -w {workers}: found processes {sorted(pids)}")
        load = _load()
        cpu0 = cpu_seconds(pids)
        client = start_client(topo, work, count, auth=auth, ipv6=ipv6, window=window)
        cpu1 = cpu_seconds(pids)
        client_proc_cpu = cpu_seconds({"client": client.pid})["client"]
        client.finish()
        res = client_result(client)
    finally:
        status = bng.finish()
    cpu = {k: round(cpu1[k] - cpu0[k], 3) for k in pids}
    bng_cpu = sum(cpu.values())
    return {"config": config, "count": count, "window": window, "up": res["up"], "failed": res["failed"],
            "failed_by_reason": res.get("failed_by_reason", {}), "setup_rate": res["setup_rate"],
            "first_to_last": res["first_to_last"], "client_cpu_s": res["cpu_seconds"],
            "client_wall_to_ready_s": round(client.t_ready - client.t_start, 3),
            "bng_cpu_s": round(bng_cpu, 3), "bng_cpu_by_process": cpu,
            "bng_cpu_us_per_session": round(bng_cpu * 1e6 / max(res["up"], 1), 1),
            "sessions_per_bng_cpu_s": round(res["up"] / bng_cpu, 1) if bng_cpu > 0 else float("nan"),
            "client_cpu_proc_s": client_proc_cpu,
            "client_cpu_us_per_session": res.get("cpu_us_per_session"),
            "setup_p50_s": res.get("setup_seconds_p50"), "setup_p99_s": res.get("setup_seconds_p99"),
            "retransmissions": {k: v for k, v in res.get("stats", {}).items() if k.endswith("_retx") and v},
            "teardown": res.get("teardown"), "bng_exit": status, "loadavg": load}


def run_setup(topo: BngTopology, work: Path, count: int, configs: Sequence[str], reps: int,
              window: int) -> dict[str, list[dict]]:
    from .xdp_traffic import interleaved  # noqa: PLC0415

    secrets = write_secrets(work / "secrets-setup", count)
    runs: dict[str, list[dict]] = {c: [] for c in configs}
    for rep, config in interleaved(tuple(configs), reps):
        r = setup_run(topo, work, secrets, config, count, window)
        runs[config].append(r)
        common.log(f"{NAME}: setup rep {rep + 1}/{reps} {config:13s}: {r['up']:,} up, {r['failed']} failed, "
                   f"{r['setup_rate']:,.0f} sessions/s over {r['first_to_last']:.2f} s; BNG CPU {r['bng_cpu_s']:.2f} s "
                   f"({r['bng_cpu_us_per_session']:.0f} us/session), client CPU {r['client_cpu_s']:.2f} s; "
                   f"retx {r['retransmissions']}; load {r['loadavg']}")
    return runs


# -- 2. held sessions ----------------------------------------------------------------------------
def hold_run(topo: BngTopology, work: Path, count: int, hold: float, echo: float, workers: int = 8,
             pool: str = POOL, window: int = WINDOW, tag: str = "hold") -> dict:
    """``count`` sessions held ``hold`` s with keepalive every ``echo`` s: memory, survivors, teardown."""
    secrets = write_secrets(work / f"secrets-{tag}", count)
    bng = start_bng(topo, work, secrets, workers, pools=(pool,), extra=("--echo-interval", f"{echo:g}"), tag=tag)
    out: dict = {"count": count, "workers": workers, "hold_s": hold, "echo_interval_s": echo, "pool": pool,
                 "window": window, "loadavg": _load()}
    try:
        pids = bng_pids(bng.pid)
        out["mem_before"] = memory(pids)
        client = start_client(topo, work, count, window=window, tag=f"{tag}-client")
        t_up = time.monotonic()
        out["setup_s"] = round(t_up - client.t_start, 2)
        time.sleep(max(0.0, hold - (time.monotonic() - t_up)))
        out["held_s"] = round(time.monotonic() - t_up, 2)
        out["mem_held"] = memory(pids)
        out["client_alive"] = client.proc.poll() is None
        t0 = time.monotonic()
        shown = show_sessions(topo)
        out["show_seconds"] = round(time.monotonic() - t0, 2)
        out["listed"] = len(shown["sessions"])
        out["workers_missing"] = shown.get("workers_missing", [])
        out["dataplane_entries"] = shown.get("dataplane_entries")
        per_worker: dict[int, int] = {}
        for s in shown["sessions"]:
            per_worker[s["worker"]] = per_worker.get(s["worker"], 0) + 1
        out["listed_per_worker"] = [per_worker.get(w, 0) for w in range(workers)]
        client.finish(timeout=300)
        res = client_result(client)
        out.update({"up": res["up"], "failed": res["failed"], "setup_rate": res["setup_rate"],
                    "teardown": res.get("teardown"), "client_echo_replies": res.get("stats", {}).get("echo_replies"),
                    "client_interrupted": res.get("interrupted")})
        time.sleep(0.5)
        out["listed_after_teardown"] = len(show_sessions(topo)["sessions"])
    finally:
        out["bng_exit"] = bng.finish(timeout=300)
    snaps = bng.json_lines()
    if snaps:
        last = snaps[-1]
        out["bng_counters"] = {k: _sum_counter(last, k) for k in ("echo_tx", "echo", "expired", "padt_tx",
                                                                   "session_setups", "sessions_ended", "drops",
                                                                   "dp_errors", "no_address", "auth_fail")}
    out["loadavg_end"] = _load()
    return out


# -- 3. data plane -------------------------------------------------------------------------------
class Generator:
    """``bpf/bng_gen.bpf.c``'s ``bng_gen`` for ``sessions`` templates, redirecting to ``ifindex``."""

    def __init__(self, stack: ExitStack, ifindex: int, sessions: int) -> None:
        from pfrps.bng.dataplane import possible_cpus  # noqa: PLC0415
        from pfrps.bpfload import bpf_source_dir, import_bcc  # noqa: PLC0415

        bcc = import_bcc()
        self.sessions = sessions
        self.bpf = bcc.BPF(src_file=str(bpf_source_dir() / "bng_gen.bpf.c").encode(),
                           cflags=[f"-DGEN_IFINDEX={ifindex}", f"-DGEN_WORDS={GEN_WORDS}",
                                   f"-DGEN_SESSIONS={sessions}"])
        stack.callback(self.bpf.cleanup)
        self.fd = bpfsys.register_loaded(self.bpf.load_func(b"bng_gen", bcc.BPF.XDP).fd)
        self._tmpl = self.bpf.get_table("gen_tmpl").map_fd
        self._sent = self.bpf.get_table("gen_sent").map_fd
        self._ncpu = possible_cpus()
        self.frame = b""

    def set_frames(self, frames: Sequence[bytes]) -> None:
        """One frame per session (all of one length): their first 8 * GEN_WORDS bytes become the
        templates; the first frame is the one the test run starts from."""
        if len(frames) != self.sessions or len({len(f) for f in frames}) != 1 or len(frames[0]) < 8 * GEN_WORDS:
            raise HarnessError(f"generator: want {self.sessions} frames of one length >= {8 * GEN_WORDS} bytes")
        for i, f in enumerate(frames):
            bpfsys.map_update(self._tmpl, bytes(ctypes.c_uint32(i)), f[:8 * GEN_WORDS])
        self.frame = bytes(frames[0])

    def sent(self) -> list[int]:
        """Frames sent so far per session (the program's gen_sent, summed over CPUs)."""
        out = []
        for i in range(self.sessions):
            raw = bpfsys.map_lookup(self._sent, bytes(ctypes.c_uint32(i)), 8 * self._ncpu)
            out.append(sum(int.from_bytes(raw[j:j + 8], "little") for j in range(0, len(raw), 8)) if raw else 0)
        return out


class PppoeSink:
    """``bpf/bng_gen.bpf.c``'s ``bng_sink``: XDP_DROP (counted) of UDP to port 9, plain or in PPPoE."""

    def __init__(self, stack: ExitStack) -> None:
        from pfrps.bng.dataplane import possible_cpus  # noqa: PLC0415
        from pfrps.bpfload import bpf_source_dir, import_bcc  # noqa: PLC0415

        bcc = import_bcc()
        self.bpf = bcc.BPF(src_file=str(bpf_source_dir() / "bng_gen.bpf.c").encode(),
                           cflags=[f"-DSINK_UDP_DPORT={UDP_PORT}", "-DGEN_SESSIONS=1"])
        stack.callback(self.bpf.cleanup)
        self.fd = bpfsys.register_loaded(self.bpf.load_func(b"bng_sink", bcc.BPF.XDP).fd)
        self._stats = self.bpf.get_table("sink_stats").map_fd
        self._ncpu = possible_cpus()

    def dropped(self) -> int:
        raw = bpfsys.map_lookup(self._stats, bytes(ctypes.c_uint32(0)), 8 * self._ncpu)
        return sum(int.from_bytes(raw[j:j + 8], "little") for j in range(0, len(raw), 8)) if raw else 0


def _ifinfo(ns: str, ifname: str) -> tuple[int, str]:
    from pyroute2 import IPRoute  # noqa: PLC0415

    with IPRoute(netns=ns, flags=0) as ipr:
        link = ipr.get_links(ipr.link_lookup(ifname=ifname)[0])[0]
    return int(link["index"]), link.get_attr("IFLA_ADDRESS")


def _neigh(ns: str, ifname: str, pairs: Sequence[tuple[str, str]]) -> None:
    """Permanent neighbours ``(ip, mac)`` on ``ns/ifname``."""
    from pyroute2 import IPRoute  # noqa: PLC0415

    with IPRoute(netns=ns, flags=0) as ipr:
        idx = ipr.link_lookup(ifname=ifname)[0]
        for ip, mac in pairs:
            ipr.neigh("replace", dst=ip, lladdr=mac, ifindex=idx, state=0x80)  # NUD_PERMANENT


def _route(ns: str, op: str, dst: str, ifname: str) -> None:
    from pyroute2 import IPRoute  # noqa: PLC0415

    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.route(op, dst=dst, oif=ipr.link_lookup(ifname=ifname)[0])


def _sysctl_rw(path: str, value: Optional[str]) -> str:
    p = Path("/proc/sys", path)
    old = p.read_text().strip()
    if value is not None:
        p.write_text(value)
    return old


def _ethtool_gro(topo: BngTopology, ifname: str, on: bool) -> None:
    res = topo.run(topo.bng, ["ethtool", "-K", ifname, "gro", "on" if on else "off"], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise HarnessError(f"ethtool -K {ifname} gro: {res.stderr.strip()}")


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def frames_for(subs: Sequence[dict], acc_mac: str, up_mac: str, inet_mac: str, pppoe: bool) -> tuple[list, list]:
    """Upstream and downstream frames, one per session (``{"mac", "session_id", "ipv4"}``):
    upstream from the subscriber's MAC to acc0, its address -> the inet side's, in PPPoE
    (``pppoe``) or plain; downstream inet0 -> up0, the inet side's address -> the subscriber's."""
    up, down = [], []
    dst = IPv4Address(INET_IP).packed
    for i, s in enumerate(subs):
        ip = IPv4Address(s["ipv4"]).packed
        sport = 10000 + i
        pkt = ipv4_udp(ip, dst, IP_SIZE, sport, UDP_PORT)
        if pppoe:
            up.append(build_session(_mac(acc_mac), _mac(s["mac"]), s["session_id"], 0x0021, pkt))
        else:
            up.append(eth_header(_mac(acc_mac), _mac(s["mac"]), b"", 0x0800) + pkt)
        down.append(eth_header(_mac(up_mac), _mac(inet_mac), b"", 0x0800) + ipv4_udp(dst, ip, IP_SIZE, sport, UDP_PORT))
    return up, down


def measure(ns: str, gen: Generator, read, count: int) -> dict:
    """Send ``count`` frames with ``gen`` from ``ns`` (CPU 0); frames ``read()`` counted meanwhile."""
    from pfrps.xdp.lab import call_in_netns  # noqa: PLC0415

    from .xdp_traffic import generate, ksoftirqd_pids, settled  # noqa: PLC0415

    soft = ksoftirqd_pids()
    before, sent0, soft0 = settled(read), gen.sent(), common.cpu_ns(soft)
    r = call_in_netns(ns, generate, gen.fd, gen.frame, count, timeout=600)
    got = settled(read) - before
    soft_s = (common.cpu_ns(soft) - soft0) / 1e9
    sent = [b - a for a, b in zip(sent0, gen.sent())]
    cpu = r["cpu"] + soft_s
    return {"sent": sum(sent), "sent_per_session": sent, "reached": got, "seconds": r["wall"],
            "fps": got / r["wall"] if r["wall"] else float("nan"), "cpu_s": cpu,
            "frames_per_cpu_s": got / cpu if cpu else float("nan")}


class DataPlaneBench:
    """The data-plane section's fixtures on one topology (see the module docstring)."""

    def __init__(self, stack: ExitStack, topo: BngTopology, work: Path, sessions: int, count: int) -> None:
        from pfrps.xdp.attach import Attachments  # noqa: PLC0415

        from .xdp_sink import Sink  # noqa: PLC0415

        self.stack, self.topo, self.work, self.sessions, self.count = stack, topo, work, sessions, count
        self.secrets = write_secrets(work / "secrets-dp", sessions)
        self.sub_idx, _ = _ifinfo(topo.sub, topo.injector_if)
        self.inet_idx, self.inet_mac = _ifinfo(topo.inet, topo.inet_if)
        _, self.up_mac = _ifinfo(topo.bng, topo.uplink)
        _, self.acc_mac = _ifinfo(topo.bng, topo.access)
        self.gen_up = Generator(stack, self.sub_idx, sessions)
        self.gen_down = Generator(stack, self.inet_idx, sessions)
        self.sink = Sink(stack, udp_dport=UDP_PORT)        # xdp_sink on inet0, and xdp_pass
        self.psink = PppoeSink(stack)                       # bng_sink on sub0
        stack.enter_context(Attachments(netns=topo.inet)).xdp(topo.inet_if, self.sink.fd, generic=False)
        stack.enter_context(Attachments(netns=topo.sub)).xdp(topo.injector_if, self.psink.fd, generic=False)
        _neigh(topo.bng, topo.uplink, [(INET_IP, self.inet_mac)])
        self.kernel_subs: Optional[list[dict]] = None

    def _run_both(self, up_frames, down_frames, order: int) -> dict:
        self.gen_up.set_frames(up_frames)
        self.gen_down.set_frames(down_frames)
        out = {}
        dirs = ("up", "down") if order % 2 == 0 else ("down", "up")
        for d in dirs:
            if d == "up":
                out["up"] = measure(self.topo.sub, self.gen_up, self.sink.dropped, self.count)
            else:
                out["down"] = measure(self.topo.inet, self.gen_down, self.psink.dropped, self.count)
        return out

    def run_bng(self, generic: bool, order: int) -> dict:
        topo = self.topo
        extra = ("--generic",) if generic else ()
        if generic:
            for ifname in (topo.access, topo.uplink):
                _ethtool_gro(topo, ifname, True)
        try:
            bng = start_bng(topo, self.work, self.secrets, 2, extra=extra, tag="dp-bng")
            try:
                client = start_client(topo, self.work, self.sessions, tag="dp-client")
                try:
                    subs = show_sessions(topo)["sessions"]
                    if len(subs) != self.sessions:
                        raise HarnessError(f"data plane: {len(subs)} sessions listed, {self.sessions} wanted")
                    subs.sort(key=lambda s: (s["mac"], s["session_id"]))
                    if self.kernel_subs is None:
                        self.kernel_subs = [{"mac": s["mac"], "session_id": s["session_id"], "ipv4": s["ipv4"]}
                                            for s in subs]
                    up, down = frames_for(subs, self.acc_mac, self.up_mac, self.inet_mac, pppoe=True)
                    res = self._run_both(up, down, order)
                    after = {(s["mac"], s["session_id"]): s for s in show_sessions(topo)["sessions"]}
                    bad = []
                    for i, s in enumerate(subs):
                        a = after.get((s["mac"], s["session_id"]))
                        want = (res["up"]["sent_per_session"][i], res["down"]["sent_per_session"][i])
                        got = (a["up_packets"], a["down_packets"]) if a else None
                        if got != want:
                            bad.append({"mac": s["mac"], "session_id": s["session_id"], "sent": want, "counted": got})
                    res["counter_mismatches"] = len(bad)
                    res["counter_mismatch_examples"] = bad[:5]
                    res["counters_checked"] = len(subs)
                finally:
                    client.finish()
            finally:
                res_exit = bng.finish()
            last = bng.json_lines()
            if last:
                res["bng_dataplane_stats"] = {k: v for k, v in (last[-1].get("dataplane") or {}).items() if v}
            res["bng_exit"] = res_exit
        finally:
            if generic:
                for ifname in (topo.access, topo.uplink):
                    _ethtool_gro(topo, ifname, False)
        return res

    def run_kernel(self, order: int) -> dict:
        from pfrps.xdp.attach import Attachments  # noqa: PLC0415
        from pfrps.xdp.lab import call_in_netns  # noqa: PLC0415

        topo = self.topo
        subs = self.kernel_subs
        if subs is None:
            raise HarnessError("data plane: the kernel reference needs a BNG run first (its sessions' addresses)")
        _neigh(topo.bng, topo.access, [(s["ipv4"], s["mac"]) for s in subs])
        old = call_in_netns(topo.bng, _sysctl_rw, "net/ipv4/ip_forward", "1")
        _route(topo.bng, "add", POOL, topo.access)
        try:
            with ExitStack() as st:
                att = st.enter_context(Attachments(netns=topo.bng))
                att.xdp(topo.access, self.sink.pass_fd, generic=False)
                att.xdp(topo.uplink, self.sink.pass_fd, generic=False)
                up, down = frames_for(subs, self.acc_mac, self.up_mac, self.inet_mac, pppoe=False)
                fwd0 = call_in_netns(topo.bng, _forwarded)
                res = self._run_both(up, down, order)
                res["kernel_forwarded"] = call_in_netns(topo.bng, _forwarded) - fwd0
        finally:
            _route(topo.bng, "del", POOL, topo.access)
            call_in_netns(topo.bng, _sysctl_rw, "net/ipv4/ip_forward", old)
        return res


def _forwarded() -> int:
    """ForwDatagrams of this namespace (/proc/net/snmp)."""
    lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines() if ln.startswith("Ip:")]
    return int(lines[1][lines[0].index("ForwDatagrams")])


def run_dataplane(stack: ExitStack, topo: BngTopology, work: Path, sessions: int, count: int,
                  reps: int) -> dict[str, list[dict]]:
    from .xdp_traffic import interleaved  # noqa: PLC0415

    dp = DataPlaneBench(stack, topo, work, sessions, count)
    runs: dict[str, list[dict]] = {c: [] for c in DP_CONFIGS}
    # the first BNG run also gives the kernel reference its subscribers' MACs and addresses
    configs = ("bng", "kernel", "bng-generic")
    for rep, config in interleaved(configs, reps):
        load = _load()
        r = dp.run_kernel(rep) if config == "kernel" else dp.run_bng(config == "bng-generic", rep)
        r["loadavg"] = load
        for d in ("up", "down"):
            r[d].pop("sent_per_session", None)
        runs[config].append(r)
        extra = "" if config == "kernel" else (f"; counters: {r['counters_checked'] - r['counter_mismatches']}/"
                                                f"{r['counters_checked']} sessions exact")
        common.log(f"{NAME}: dataplane rep {rep + 1}/{reps} {config:11s}: up {r['up']['reached']:,}/"
                   f"{r['up']['sent']:,} {r['up']['fps']:,.0f} frames/s, down {r['down']['reached']:,}/"
                   f"{r['down']['sent']:,} {r['down']['fps']:,.0f} frames/s{extra}; load {load}")
    return runs


# -- the benchmark -------------------------------------------------------------------------------
def _topology() -> BngTopology:
    topo = BngTopology(prefix="bench-bng")
    common._TOPOLOGIES.append(topo)  # noqa: SLF001  (the suite's leftover check)
    return topo.create()


def run(ctx, parts: Sequence[str] = ("setup", "hold", "dataplane"), window: int = WINDOW) -> dict:
    from pfrps.topology import netns_exists  # noqa: PLC0415

    quick = ctx.quick
    reps_setup = max(ctx.reps or (1 if quick else 5), 1)
    reps_dp = max(ctx.reps or (1 if quick else 7), 1)
    count = 1000 if quick else 10_000
    setup_configs = ("pap w=1", "pap w=8", "chap w=8", "pap+ipv6 w=8") if quick else SETUP_CONFIGS
    hold_s, echo_s = (6.0, 2.0) if quick else (24.0, 4.0)
    dp_sessions, dp_count = (100, 200_000) if quick else (1000, 4_000_000)
    work = Path(ctx.work_dir) / "bng"
    work.mkdir(parents=True, exist_ok=True)
    data: dict = {"parts": list(parts), "window": window, "count": count, "loadavg_start": _load()}
    topo = _topology()
    errors: dict[str, str] = {}

    def part(name: str, fn) -> None:
        """Run one part; a harness error there is recorded (a FAIL row) and the next part runs."""
        if name not in parts:
            return
        try:
            fn()
        except Exception as exc:  # noqa: BLE001  (HarnessError, or a netlink/OS error on the way)
            errors[name] = f"{type(exc).__name__}: {exc}"
            common.log(f"{NAME}: HARNESS ERROR in part {name}: {errors[name]}")

    def setup() -> None:
        data["setup"] = run_setup(topo, work, count, setup_configs, reps_setup, window)

    def hold() -> None:
        data["hold"] = hold_run(topo, work, count, hold_s, echo_s, window=window)
        h = data["hold"]
        common.log(f"{NAME}: hold {h['count']:,}: listed {h['listed']:,} after {h['held_s']} s, teardown "
                   f"{(h.get('teardown') or {}).get('rate')} sessions/s, BNG counters {h.get('bng_counters', {})}")
        if not quick:
            try:
                data["hold_60k"] = hold_run(topo, work, 60_000, hold_s, echo_s, pool=POOL_60K, window=window,
                                            tag="hold60k")
                h = data["hold_60k"]
                common.log(f"{NAME}: hold 60,000: listed {h['listed']:,}, setup {h.get('setup_rate')}/s, "
                           f"teardown {(h.get('teardown') or {}).get('rate')}/s")
            except HarnessError as exc:  # a stretch goal: report what happened
                data["hold_60k"] = {"error": str(exc)}
                common.log(f"{NAME}: 60,000 sessions: {exc}")

    try:
        with ExitStack() as stack:
            def dataplane() -> None:
                data["dp_sessions"], data["dp_count"] = dp_sessions, dp_count
                data["dataplane"] = run_dataplane(stack, topo, work, dp_sessions, dp_count, reps_dp)

            part("setup", setup)
            part("hold", hold)
            part("dataplane", dataplane)
    finally:
        topo.destroy()
        left = [ns for ns in topo.all_namespaces if netns_exists(ns)]
        if left:
            raise HarnessError(f"namespaces left behind: {left}")
    data["loadavg_end"] = _load()
    plot = Path(ctx.out_dir) / f"{NAME}.png" if getattr(ctx, "out_dir", None) else None
    plots = []
    if plot is not None:
        try:
            _plot(plot, data)
            plots.append(plot.name)
        except Exception as exc:  # noqa: BLE001
            common.log(f"{NAME}: no plot: {exc!r}")
    data["errors"] = errors
    out_rows = rows(data) + [Row(f"HARNESS ERROR in part {name}", "", summary([]), target="runs to the end",
                                 passed=False, note=err[-400:]) for name, err in errors.items()]
    return {"name": NAME, "title": TITLE, "rows": out_rows, "tables": tables(data), "plots": plots,
            "data": data, "method": method(data, reps_setup, reps_dp), "notes": notes(data)}


# -- results -------------------------------------------------------------------------------------
def _s(runs: list[dict], key: str) -> dict:
    return summary([r[key] for r in runs])


def rows(data: dict) -> list[Row]:
    out: list[Row] = []
    st = data.get("setup") or {}
    if st:
        n = data["count"]
        base = st.get("pap w=1")
        ref = _s(base, "setup_rate") if base else None
        for config, runs in st.items():
            if not runs:
                continue
            failed = [r["failed"] for r in runs]
            val = _s(runs, "setup_rate")
            note = (f"failed per run {failed}; BNG CPU {common.median([r['bng_cpu_us_per_session'] for r in runs]):.0f} "
                    f"us/session, client CPU {common.median([r['client_cpu_us_per_session'] or 0 for r in runs]):.0f} "
                    f"us/session (medians); window {runs[0]['window']}")
            if config == "pap w=8":
                ok = val["median"] >= SETUP_TARGET and all(f == 0 for f in failed) and all(r["up"] == n for r in runs)
                out.append(Row(f"target: set-up rate, 8 workers, PAP, IPv4, {n:,} sessions", "sessions/s", val,
                               "1 worker" if ref else "", ref, f">= {SETUP_TARGET:,.0f} sessions/s, 0 failed", ok, note))
                out.append(Row("set-up capacity, 8 workers, PAP, IPv4: sessions per CPU-second of the BNG's processes",
                               "sessions/CPU-s", _s(runs, "sessions_per_bng_cpu_s"), "1 worker" if base else "",
                               _s(base, "sessions_per_bng_cpu_s") if base else None, "", None,
                               "sessions up / (utime + stime of the supervisor and the workers during set-up): the "
                               "rate the BNG could sustain on one CPU, less exposed to the other load on the machine"))
            elif config.startswith("pap w="):
                w = int(config.split("=")[1])
                out.append(Row(f"set-up rate, {w} worker{'s' if w > 1 else ''}, PAP, IPv4", "sessions/s", val,
                               "1 worker" if ref and config != "pap w=1" else "",
                               ref if config != "pap w=1" else None, "", None, note))
            else:
                p8 = st.get("pap w=8")
                what = "CHAP, IPv4" if config.startswith("chap") else "PAP, IPv4 + IPv6 (IPCP, IPv6CP, RS/RA)"
                out.append(Row(f"set-up rate, 8 workers, {what}", "sessions/s", val, "PAP IPv4, 8 workers",
                               _s(p8, "setup_rate") if p8 else None, "", None, note))
    h = data.get("hold")
    if h:
        n = h["count"]
        survived = h.get("listed", 0)
        torn = (h.get("teardown") or {}).get("terminated")
        ok = survived == n and h.get("dataplane_entries") == n and torn == n and h.get("failed") == 0 \
            and not (h.get("bng_counters") or {}).get("expired")
        bc = h.get("bng_counters") or {}
        out.append(Row(f"target: {n:,} sessions held {h['held_s']:.0f} s with keepalive every {h['echo_interval_s']:g} s: "
                       f"sessions up at the end", "sessions", summary([survived]), target=f"= {n:,}", passed=ok,
                       note=f"BNG listed {survived:,}, data-plane entries {h.get('dataplane_entries')}, client tore "
                            f"down {torn}; LCP Echo-Requests sent {bc.get('echo_tx')} "
                            f"({(bc.get('echo_tx') or 0) / max(n, 1):.1f} per session), expired {bc.get('expired')}"))
        out += _mem_rows(h)
        td = h.get("teardown") or {}
        out.append(Row(f"teardown rate, {n:,} sessions (client: Terminate-Request, Ack, PADT)", "sessions/s",
                       summary([td.get("rate")]), note=f"{td.get('terminated')} in {td.get('seconds')} s, "
                       f"{td.get('no_terminate_ack')} without Terminate-Ack; window {h['window']}"))
    h6 = data.get("hold_60k")
    if h6:
        if "error" in h6:
            out.append(Row("stretch: 60,000 sessions held", "sessions", summary([]), note=h6["error"][:300]))
        else:
            n = h6["count"]
            td = h6.get("teardown") or {}
            bc = h6.get("bng_counters") or {}
            out.append(Row(f"stretch: {n:,} sessions held {h6['held_s']:.0f} s with keepalive: sessions up at the end",
                           "sessions", summary([h6.get("listed", 0)]),
                           note=f"data-plane entries {h6.get('dataplane_entries')}, failed {h6.get('failed')}, set-up "
                                f"{h6.get('setup_rate')} sessions/s, teardown {td.get('rate')} sessions/s "
                                f"({td.get('terminated')} terminated); echo_tx {bc.get('echo_tx')}, expired "
                                f"{bc.get('expired')}; workers missing from the list {h6.get('workers_missing')}"))
            out += _mem_rows(h6, prefix="stretch: ")
    dpr = data.get("dataplane") or {}
    if dpr and all(dpr.get(c) for c in DP_CONFIGS):
        for d, what in (("up", "upstream (PPPoE decap + FIB + redirect)"), ("down", "downstream (PPPoE encap + redirect)")):
            fps = {c: summary([r[d]["fps"] for r in dpr[c]]) for c in DP_CONFIGS}
            cpu = {c: summary([r[d]["frames_per_cpu_s"] for r in dpr[c]]) for c in DP_CONFIGS}
            paired = [round(common.ratio(a[d]["fps"], b[d]["fps"]), 2) for a, b in zip(dpr["bng"], dpr["kernel"])]
            ratio = common.ratio(fps["bng"]["median"], fps["kernel"]["median"])
            lost = {c: sum(r[d]["sent"] - r[d]["reached"] for r in dpr[c]) for c in DP_CONFIGS}
            out.append(Row(f"target: {what}, native XDP, vs kernel forwarding", "frames/s", fps["bng"],
                           "kernel forwarding", fps["kernel"], f">= {DP_GOAL:g}x kernel forwarding",
                           bool(ratio >= DP_GOAL), f"per-repetition ratios {paired}; frames not reaching the "
                                                   f"receiver: {lost}"))
            out.append(Row(f"{what}, native, frames per CPU-second", "frames/CPU-s", cpu["bng"], "kernel forwarding",
                           cpu["kernel"], "", None, "frames reached / (generator's CPU time + ksoftirqd's)"))
            gen_pairs = list(zip(dpr["bng-generic"], dpr["kernel"]))
            out.append(Row(f"{what}, generic XDP", "frames/s", fps["bng-generic"], "kernel forwarding", fps["kernel"],
                           "", None, "pfrps-bng --generic; GRO on acc0 and up0 meanwhile; per-repetition ratios "
                           f"{[round(common.ratio(a[d]['fps'], b[d]['fps']), 2) for a, b in gen_pairs]}"))
            out.append(Row(f"kernel forwarding (reference), {'upstream' if d == 'up' else 'downstream'}", "frames/s",
                           fps["kernel"], note="the same IP packets without PPPoE; ForwDatagrams (up + down) per run "
                           f"{[r['kernel_forwarded'] for r in dpr['kernel']]}"))
        mism = [r["counter_mismatches"] for c in ("bng", "bng-generic") for r in dpr[c]]
        checked = sum(r["counters_checked"] for c in ("bng", "bng-generic") for r in dpr[c])
        ex = [e for c in ("bng", "bng-generic") for r in dpr[c] for e in r.get("counter_mismatch_examples", [])][:3]
        out.append(Row("target: per-session counters (show sessions --json) equal the frames the generator sent "
                       "per session, up and down, every BNG run", "sessions off", summary(mism), target="0 in every run",
                       passed=bool(mism) and all(m == 0 for m in mism),
                       note=f"{checked:,} session checks in {len(mism)} runs" + (f"; e.g. {ex}" if ex else "")))
    return out


def _mem_rows(h: dict, prefix: str = "") -> list[Row]:
    held, before = h.get("mem_held") or {}, h.get("mem_before") or {}
    workers = [k for k in held if k.startswith("pfrps-w")]
    if not workers:
        return []
    n = h["count"]
    rss = [held[k]["rss_mib"] for k in workers]
    grow = sum(held[k]["rss_mib"] - before.get(k, {}).get("rss_mib", float("nan")) for k in workers)
    sup = held.get("supervisor", {})
    pss = ", ".join(f"{held[k]['pss_mib']:.1f}" for k in workers)
    return [Row(f"{prefix}VmRSS per worker at {n:,} sessions ({len(workers)} workers)", "MiB", summary(rss),
                note=f"supervisor {sup.get('rss_mib', float('nan')):.1f} MiB; workers grew "
                     f"{grow:.1f} MiB in all from set-up to the end of the hold = {grow * 1048576 / max(n, 1):,.0f} bytes "
                     f"per session; PSS per worker {pss} MiB "
                     f"(VmRSS counts the pages shared with the supervisor in every worker)")]


def tables(data: dict) -> list[dict]:
    out = []
    st = data.get("setup") or {}
    if st:
        rows_ = []
        for config, runs in st.items():
            if not runs:
                continue
            med = lambda k: common.median([r[k] for r in runs])  # noqa: E731
            share = common.median([max(v for k, v in r["bng_cpu_by_process"].items() if k != "supervisor")
                                   / max(r["bng_cpu_s"], 1e-9) for r in runs])
            rows_.append([config, f"{med('setup_rate'):,.0f}", f"{min(r['setup_rate'] for r in runs):,.0f}–"
                          f"{max(r['setup_rate'] for r in runs):,.0f}", f"{med('first_to_last'):.2f}",
                          sum(r["failed"] for r in runs), f"{med('bng_cpu_s'):.2f}", f"{med('bng_cpu_us_per_session'):.0f}",
                          f"{med('sessions_per_bng_cpu_s'):,.0f}",
                          f"{share:.2f}", f"{med('client_cpu_s'):.2f} ({med('client_cpu_proc_s'):.2f})",
                          f"{med('setup_p50_s'):.3f} / {med('setup_p99_s'):.3f}",
                          "; ".join(str(r["retransmissions"]) for r in runs if r["retransmissions"]) or "none",
                          f"{min(r['loadavg'] for r in runs):.1f}–{max(r['loadavg'] for r in runs):.1f}"])
        out.append({"title": f"Set-up of {data['count']:,} sessions against worker count (medians of the runs; "
                             f"window {data['window']})",
                    "header": ["configuration", "sessions/s", "min–max", "first PADI to last up, s", "failed (all runs)",
                               "BNG CPU s", "BNG CPU us/session", "sessions per BNG CPU-s", "busiest worker's CPU share",
                               "client CPU s (incl. start-up)",
                               "set-up latency p50 / p99, s", "client retransmissions", "load avg"],
                    "rows": rows_})
    for key in ("hold", "hold_60k"):
        h = data.get(key)
        if not h or "mem_held" not in h:
            continue
        rows_ = []
        for name, m in h["mem_held"].items():
            b = h["mem_before"].get(name, {})
            listed = h.get("listed_per_worker") or []
            w = int(name[7:]) if name.startswith("pfrps-w") else -1
            rows_.append([name, f"{b.get('rss_mib', float('nan')):.1f}", f"{m['rss_mib']:.1f}",
                          f"{b.get('pss_mib', float('nan')):.1f}", f"{m['pss_mib']:.1f}",
                          listed[w] if 0 <= w < len(listed) else ""])
        out.append({"title": f"Memory with {h['count']:,} sessions held (MiB; PSS shares each page among the "
                             "processes mapping it)",
                    "header": ["process", "VmRSS before set-up", "VmRSS at the end of the hold", "PSS before set-up",
                               "PSS at the end", "sessions listed"], "rows": rows_})
    return out


def method(data: dict, reps_setup: int, reps_dp: int) -> str:
    parts = []
    if "setup" in data:
        parts.append(f"**Set-up**: a fresh `pfrps-bng -w N --auth pap|chap --pool {POOL}` (local secrets file of "
                     f"{data['count']:,} lines; `--ipv6-pool {IPV6_POOL}` for IPv4+IPv6) per run, then `python -m "
                     f"pfrps.bng.client -n {data['count']} --rate 0 --window {data['window']}` on sub0, both on the "
                     "machine's 2 CPUs, not pinned; rate = the client's `setup_rate` (sessions up / first PADI to "
                     "last up); BNG CPU = utime+stime of the supervisor and its pfrps-w* workers (/proc/PID/stat) from "
                     f"the client's start to its READY; {reps_setup} run(s) per configuration, interleaved.")
    if "hold" in data:
        h = data["hold"]
        parts.append(f"**Held sessions**: `pfrps-bng -w 8 --echo-interval {h['echo_interval_s']:g}`, "
                     f"{h['count']:,} sessions held {h['hold_s']:g} s by the client (which answers the LCP "
                     "Echo-Requests), then `show sessions --json`, VmRSS/PSS of every process, and the client's "
                     "teardown of all (Terminate-Request/Ack, PADT)"
                     + (f"; stretch: 60,000 sessions, `--pool {POOL_60K}`, 60,000 secrets lines." if "hold_60k" in data
                        else "."))
    if "dataplane" in data:
        parts.append(f"**Data plane**: {data.get('dp_sessions', 0):,} sessions set up by the client (-w 2 BNG, IPv4); "
                     f"the live-frame generator bpf/bng_gen.bpf.c (BPF_F_TEST_XDP_LIVE_FRAMES, CPU 0) sends "
                     f"{data.get('dp_count', 0):,} frames per run, one per session in turn: upstream 68-byte PPPoE "
                     f"frames ({IP_SIZE}-byte IPv4/UDP) out of sub0, downstream 60-byte IPv4/UDP frames out of inet0; "
                     "receivers: bpf/xdp_sink.bpf.c on inet0, bng_sink (bpf/bng_gen.bpf.c: the same UDP check, plain "
                     "or inside PPPoE) on sub0; kernel reference = no BNG, the same IP packets without PPPoE, "
                     "ip_forward on, the pool routed to acc0, permanent neighbours, xdp_pass on acc0 and up0; "
                     f"frames/s = receiver count / generator wall time; {reps_dp} run(s) per configuration, "
                     "interleaved; a fresh BNG and client per BNG run, whose per-session counters are compared "
                     "with the generator's per-session counts.")
    return " ".join(parts) + f" Load average (1 min) at the start {data.get('loadavg_start')}, at the end " \
                             f"{data.get('loadavg_end')}; the machine is shared with other engineers' runs."


def notes(data: dict) -> list[str]:
    """The load average (1 min) during each part."""
    out = []
    loads = []
    st = data.get("setup") or {}
    if st:
        ls = [r["loadavg"] for runs in st.values() for r in runs]
        loads.append(f"set-up runs {min(ls):.1f}–{max(ls):.1f}")
    for key, what in (("hold", "held sessions"), ("hold_60k", "60,000 sessions")):
        h = data.get(key) or {}
        if "loadavg" in h:
            loads.append(f"{what} {h['loadavg']:.1f} → {h.get('loadavg_end', float('nan')):.1f}")
    dpr = data.get("dataplane") or {}
    ls = [r["loadavg"] for runs in dpr.values() for r in runs]
    if ls:
        loads.append(f"data-plane runs {min(ls):.1f}–{max(ls):.1f}")
    if loads:
        out.append("Load average (1 min) when each run started: " + "; ".join(loads) + " (the benchmark's own "
                   "processes count in it: up to 8 workers and the client during set-up; the load before the "
                   "benchmark started is in the Runs line above). The machine has 2 CPUs; any other load shows "
                   "directly in the set-up rates (the capacity row and the frames per CPU-second rows are less "
                   "exposed to it).")
    return out


def _plot(path, data) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    st, dpr = data.get("setup") or {}, data.get("dataplane") or {}
    panels = [p for p in ("setup", "dataplane") if (st if p == "setup" else dpr)]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2))
    axes = [axes] if len(panels) == 1 else list(axes)
    for ax, p in zip(axes, panels):
        if p == "setup":
            ws = sorted(int(c.split("=")[1]) for c in st if c.startswith("pap w="))
            med = [common.median([r["setup_rate"] for r in st[f"pap w={w}"]]) for w in ws]
            lo = [m - min(r["setup_rate"] for r in st[f"pap w={w}"]) for m, w in zip(med, ws)]
            hi = [max(r["setup_rate"] for r in st[f"pap w={w}"]) - m for m, w in zip(med, ws)]
            ax.errorbar(ws, med, yerr=[lo, hi], marker="o", capsize=4, label="PAP, IPv4")
            cap = [common.median([r["sessions_per_bng_cpu_s"] for r in st[f"pap w={w}"]]) for w in ws]
            ax.plot(ws, cap, ls="--", color="grey", marker=".", label="PAP, IPv4: sessions per BNG CPU-second")
            for c, mk in (("chap w=8", "s"), ("pap+ipv6 w=8", "^")):
                if st.get(c):
                    ax.plot([8], [common.median([r["setup_rate"] for r in st[c]])], mk,
                            label=c.replace(" w=8", ", 8 workers").replace("pap+ipv6", "PAP, IPv4+IPv6")
                            .replace("chap", "CHAP, IPv4"))
            ax.axhline(SETUP_TARGET, color="red", ls="--", lw=0.8, label="target (8 workers)")
            ax.set_ylim(bottom=0)
            ax.set_xscale("log", base=2)
            ax.set_xticks(ws, [str(w) for w in ws])
            ax.set_xlabel("workers")
            ax.set_ylabel("sessions/s")
            ax.set_title(f"Set-up of {data['count']:,} sessions, 2 CPUs")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
        else:
            x = range(2)
            width = 0.27
            for j, c in enumerate(DP_CONFIGS):
                vals = [common.median([r[d]["fps"] for r in dpr[c]]) / 1e6 for d in ("up", "down")]
                ax.bar([i + (j - 1) * width for i in x], vals, width, label=c)
            ax.set_xticks(list(x), ["upstream (decap)", "downstream (encap)"])
            ax.set_ylabel("million frames/s (one CPU)")
            ax.set_title("XDP data plane vs kernel forwarding")
            ax.legend(fontsize=8)
            ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m bench.bng", description="pfrps-bng benchmark alone (results printed; "
                                "bench/results/tmp/bng-alone.json)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--part", action="append", choices=("setup", "hold", "dataplane"))
    p.add_argument("--window", type=int, default=WINDOW)
    p.add_argument("--reps", type=int)
    args = p.parse_args(argv)
    work = common.BENCH_DIR / "results" / "tmp"
    ctx = argparse.Namespace(quick=args.quick, reps=args.reps, work_dir=work, out_dir=work)
    res = run(ctx, parts=tuple(args.part or ("setup", "hold", "dataplane")), window=args.window)
    res["rows"] = [r.to_json() for r in res["rows"]]
    common.write_json(work / "bng-alone.json", res)
    for row in res["rows"]:
        r = row["ratio"]
        print(f"{row['label']}: {row['value']['median']:,.1f} {row['unit']}"
              + (f", {r:.2f}x {row['ref_label']}" if r is not None and r == r else "")
              + (f" (target {row['target']}: {'PASS' if row['passed'] else 'FAIL'})" if row["passed"] is not None else "")
              + (f" [{row['note']}]" if row["note"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
