"""Benchmark: pfrps-bng against a real RADIUS server (issue 15): set-up rate with RADIUS
authentication and accounting, Interim-Updates of many held sessions, and a worker killed
(once, and three times within a second) while traffic flows, with accounting kept continuous.

Everything runs in :class:`pfrps.bng.topology.BngTopology`'s three namespaces (subscribers
``sub0`` -- ``acc0`` BNG ``up0`` -- ``inet0`` Internet). Debian's FreeRADIUS 3.2
(:class:`pfrps.bng.freeradius.FreeRadius`, ``debug=False``: threaded, quiet) runs in the Internet
namespace at 198.51.100.2 with a users file of 10,000 users (``user{i}`` / ``pass{i}``,
Cleartext-Password: PAP and CHAP both), its ``detail`` module writing every Accounting-Request;
the BNG reaches it over its uplink (NAS-IP-Address 198.51.100.1). The BNG, the client and
FreeRADIUS share the machine's 2 CPUs, nothing pinned. Namespaces, FreeRADIUS and every process
are removed at the end, also on Ctrl-C.

1. **Set-up** (``setup``): a fresh ``pfrps-bng -w 8 --auth pap|chap --radius 198.51.100.2
   --acct-interim A`` per run (an empty local secrets file: every user is RADIUS's), then the
   scaled client ``-n 10000 --rate 0`` (window 1000). Figures: the client's ``setup_rate``,
   ``failed``; CPU seconds (``/proc/PID/stat`` utime + stime) from the client's start to its
   READY of FreeRADIUS, of the BNG (supervisor + workers) and of the client; the machine's busy
   CPU seconds meanwhile (``/proc/stat``); Access-Requests answered and Accounting Starts (the
   BNG's counters). Then the client's teardown and the Stops in the detail log.
2. **Accounting** (``acct``): one PAP set-up run (counted in the set-up rows too) whose sessions
   are held ``hold`` seconds (130 s full) with Interim-Updates every A seconds (60 s full,
   ``--acct-interim``): known traffic right after set-up (the client's ``--traffic K`` upstream,
   ``send_downstream`` K datagrams downstream per session), then silence. From the detail log:
   Interim-Updates per session against the number due (one per A seconds after the session's
   Start, until the teardown began), the gaps between a session's consecutive records
   (Start, Interim..., by Event-Timestamp and by FreeRADIUS's Timestamp): none late by more than
   one interval (gap > 2 A); every session's last Interim-Update and its Stop carry exactly
   the octets and packets ``pfrps-bng show sessions --json`` counted at the end of the hold.
3. **Restart** (``restart``): N sessions on 8 workers (A = 20 s full), a paced UDP stream to
   every subscriber's address from the Internet namespace, the worker with the most sessions
   SIGKILLed (``one-kill``) or SIGKILLed three times in a row, each replacement killed as soon
   as it exists (``burst-of-3``); held ~2 A after the kills. Figures: sessions up at the client
   and listed by the BNG (the same ones, same Acct-Session-Id), datagrams the client received
   against those sent, exactly one Start and one Stop per session in the detail log, an
   Interim-Update after the kill for every session of the killed worker, the gap from the
   kill to the replacement's readiness (the supervisor's "worker N ready again after X s").

``python -m bench.bng_aaa [--quick] [--part setup|acct|restart]...``: run it alone.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Optional, Sequence

from pfrps.bng.topology import INET_V4, BngTopology

from . import common
from .bng import Started, bng_pids, show_sessions
from .common import HarnessError, Row, summary
from pfrps.cliutil import ArgumentParser

NAME = "bng_aaa"
TITLE = "pfrps-bng with FreeRADIUS: set-up rate (PAP, CHAP), Interim-Updates, worker kills with accounting"

SETUP_TARGET = 500.0       # sessions/s, 8 workers, 10,000 sessions, 0 failed
WORKERS = 8
USERS = 10_000
POOL = "100.64.0.0/16"
RADIUS_IP = INET_V4.split("/")[0]          # 198.51.100.2: FreeRADIUS in the inet namespace
NAS_IP = "198.51.100.1"                    # the BNG's uplink
SECRET = "bench-radius-secret"
WINDOW = 1000
PY = common.PY
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- processes ---------------------------------------------------------------------------------------
def start_bng(topo: BngTopology, work: Path, auth: str, interim: float, tag: str,
              extra: Sequence[str] = ()) -> Started:
    empty = work / "no-local-users"
    empty.write_text("# every user is RADIUS's\n")
    argv = [PY, "-m", "pfrps.bng", "-i", topo.access, "--uplink", topo.uplink, "-w", str(WORKERS),
            "--secrets", str(empty), "--auth", auth, "--pool", POOL, "--log-level", "info", "--interval", "3600",
            "--json", "--radius", RADIUS_IP, "--radius-secret-file", str(work / "radius-secret"),
            "--acct-interim", f"{interim:g}", *extra]
    return Started(topo, topo.bng, argv, work / f"{tag}-bng.out", 120, "pfrps-bng")


def start_client(topo: BngTopology, work: Path, count: int, auth: str, tag: str,
                 extra: Sequence[str] = ()) -> Started:
    argv = [PY, "-m", "pfrps.bng.client", "-i", topo.injector_if, "-n", str(count), "--hold", "inf", "--json",
            "--quiet", "--auth", auth, "--window", str(WINDOW), "--rate", "0", *extra]
    return Started(topo, topo.sub, argv, work / f"{tag}-client.out", 180 + count / 20, "pfrps-bng-client")


def client_result(client: Started) -> dict:
    lines = client.json_lines()
    if not lines:
        raise HarnessError(f"the client printed no JSON (exit {client.proc.returncode}): {client.stderr()[-800:]}")
    return lines[-1]


def cpu_s(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return float("nan")


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent not idle (all CPUs, /proc/stat)."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / CLK_TCK


def udp_stats(topo: BngTopology, ns: str) -> dict[str, int]:
    """The namespace's UDP counters (/proc/net/snmp ``Udp:``): InDatagrams, InErrors, RcvbufErrors ..."""
    res = topo.run(ns, ["cat", "/proc/net/snmp"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    rows_ = [ln.split()[1:] for ln in res.stdout.splitlines() if ln.startswith("Udp:")]
    return {k: int(v) for k, v in zip(rows_[0], rows_[1])} if len(rows_) >= 2 else {}


def _udp_delta(a: dict, b: dict) -> dict:
    return {k: b[k] - a.get(k, 0) for k in ("InDatagrams", "InErrors", "RcvbufErrors") if k in b}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _sum(snap: dict, name: str) -> int:
    v = snap.get(name)
    return int(sum(v)) if isinstance(v, list) else int(v or 0)


# -- FreeRADIUS and its detail log ------------------------------------------------------------------------
class Radius:
    """FreeRADIUS (``debug=False``) in the inet namespace with ``USERS`` users; the detail log read
    from byte offsets (each run parses only its own records)."""

    def __init__(self, topo: BngTopology, work: Path, users: int) -> None:
        from pfrps.bng.freeradius import FreeRadius, RadUser, freeradius_version  # noqa: PLC0415

        self.version = freeradius_version()
        rad_users = [RadUser(f"user{i}", f"pass{i}") for i in range(1, users + 1)]
        conf = work / "freeradius"
        if conf.exists():
            import shutil  # noqa: PLC0415

            shutil.rmtree(conf)
        self.srv = FreeRadius(topo.inet, conf, {NAS_IP: SECRET}, rad_users, address=RADIUS_IP,
                              ready_timeout=120, debug=False)
        (work / "radius-secret").write_text(SECRET + "\n")
        t0 = time.monotonic()
        self.srv.start()
        self.start_seconds = time.monotonic() - t0

    @property
    def pid(self) -> int:
        return self.srv.proc.pid if self.srv.proc is not None else 0

    def cpu(self) -> float:
        return cpu_s(self.pid)

    def offset(self) -> int:
        try:
            return self.srv.detail_path.stat().st_size
        except FileNotFoundError:
            return 0

    def raw(self, offset: int) -> bytes:
        try:
            with open(self.srv.detail_path, "rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""

    def records(self, offset: int) -> list[dict]:
        from pfrps.bng.freeradius import parse_detail  # noqa: PLC0415

        return parse_detail(self.raw(offset).decode(errors="replace"))

    def wait_count(self, offset: int, kind: str, count: int, timeout: float) -> int:
        """Wait (bounded) until the log since ``offset`` holds ``count`` records of Acct-Status-Type ``kind``."""
        pat = f"Acct-Status-Type = {kind}\n".encode()
        end = time.monotonic() + timeout
        while True:
            n = self.raw(offset).count(pat)
            if n >= count or time.monotonic() > end:
                return n
            time.sleep(0.5)

    def stop(self) -> None:
        self.srv.stop()


_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                       "Dec"), 1)}


def parse_time(text: Optional[str]) -> Optional[float]:
    """A detail value of a date attribute (``Dec  4 2026 17:05:01 UTC`` or a number), Unix seconds."""
    if not text:
        return None
    text = text.strip().strip('"')
    if text.isdigit():
        return float(text)
    m = re.match(r"([A-Z][a-z]{2})\s+(\d+)\s+(\d{4})\s+(\d+):(\d+):(\d+)\s*(\S*)", text)
    if not m or m.group(1) not in _MONTHS:
        return None
    mon, day, year, hh, mm, ss, tz = m.groups()
    t = calendar.timegm((int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss), 0, 0, 0))
    if tz and tz not in ("UTC", "GMT"):
        # local time: undo the local offset (the bench machine may not run in UTC)
        t = time.mktime((int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss), 0, 0, -1))
    return float(t)


def by_session(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        sid = r.get("Acct-Session-Id", "").strip('"')
        if sid:
            out[sid].append(r)
    return out


def _kind(r: dict) -> str:
    return r.get("Acct-Status-Type", "")


def dedup(records: list[dict]) -> tuple[list[dict], int]:
    """The records without identical retransmissions (a record equal to an earlier one in every
    attribute but FreeRADIUS's arrival time: the same bytes sent again); and how many were removed."""
    seen, out = set(), []
    for r in records:
        key = tuple(sorted((k, v) for k, v in r.items() if k not in ("_time", "Timestamp")))
        if key in seen:
            continue
        seen.add(key)
        out.append(r)
    return out, len(records) - len(out)


def duplicate_starts(records: list[dict], keep: int = 3) -> dict:
    """Sessions with more than one Start record: how many, and the first few records in full."""
    starts: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if _kind(r) == "Start":
            starts[r.get("Acct-Session-Id", "").strip('"')].append(r)
    dup = {k: v for k, v in starts.items() if len(v) > 1}
    identical = sum(dedup(v)[1] for v in dup.values())
    _, all_identical = dedup(records)
    return {"sessions": len(dup), "extra_records": sum(len(v) - 1 for v in dup.values()),
            "extra_identical": identical, "identical_records_all_kinds": all_identical,
            "examples": [v for _, v in list(dup.items())[:keep]]}


def interim_analysis(sess: dict[str, list[dict]], interval: float, t_end: float,
                     t_kill: Optional[float] = None) -> dict:
    """Per session: Interim-Updates counted vs due (one every ``interval`` s after the Start's
    Event-Timestamp, up to ``t_end`` (Unix time) less 2 s of slack), the largest gap between
    consecutive records (Start, Interim...) by Event-Timestamp and by Timestamp, lateness
    = gap - interval."""
    counts, due_short, due_late, gaps_ev, gaps_ts, late = [], [], [], [], [], []
    after_kill_missing = 0
    no_start = 0
    for sid, recs in sess.items():
        start = [r for r in recs if _kind(r) == "Start"]
        inter = [r for r in recs if _kind(r) == "Interim-Update"]
        if not start:
            no_start += 1
            continue
        counts.append(len(inter))
        t0 = parse_time(start[0].get("Event-Timestamp"))
        if t0 is not None:
            due = int(max(t_end - 2.0 - t0, 0) // interval)
            if len(inter) < due:
                due_short.append({"session": sid, "interims": len(inter), "due": due})
            # missing by more than one interval: an Interim-Update due before t_end - interval
            if len(inter) < max(int(max(t_end - t0, 0) // interval) - 1, 0):
                due_late.append(sid)
        for key, gaps in (("Event-Timestamp", gaps_ev), ("Timestamp", gaps_ts)):
            ts = sorted(t for t in (parse_time(r.get(key)) for r in start[:1] + inter) if t is not None)
            if len(ts) >= 2:
                g = max(b - a for a, b in zip(ts, ts[1:]))
                gaps.append(g)
                if key == "Timestamp" and g > 2 * interval:
                    late.append({"session": sid, "max_gap_s": g})
        if t_kill is not None:
            if not any((parse_time(r.get("Timestamp")) or 0) > t_kill for r in inter):
                after_kill_missing += 1
    return {"sessions": len(counts), "no_start": no_start,
            "interims_per_session": dict(sorted(Counter(counts).items())),
            "sessions_short_of_due": len(due_short), "short_examples": due_short[:5],
            "missing_late": len(due_late),
            "max_gap_event_s": max(gaps_ev) if gaps_ev else None,
            "max_gap_timestamp_s": max(gaps_ts) if gaps_ts else None,
            "p50_gap_timestamp_s": common.median(gaps_ts) if gaps_ts else None,
            "late_over_one_interval": len(late), "late_examples": sorted(late, key=lambda x: -x["max_gap_s"])[:5],
            "interval_s": interval,
            **({"no_interim_after_kill": after_kill_missing} if t_kill is not None else {})}


def octet_check(sess: dict[str, list[dict]], shown: list[dict]) -> dict:
    """Every listed session's last Interim-Update and its Stop against the session's counters."""
    fields = (("Acct-Input-Octets", "up_bytes"), ("Acct-Output-Octets", "down_bytes"),
              ("Acct-Input-Packets", "up_packets"), ("Acct-Output-Packets", "down_packets"))
    checked = bad_interim = bad_stop = no_interim = no_stop = 0
    examples = []
    for s in shown:
        recs = sess.get(s.get("acct_session_id") or "", [])
        want = {a: int(s[k]) for a, k in fields}
        inter = [r for r in recs if _kind(r) == "Interim-Update"]
        stop = [r for r in recs if _kind(r) == "Stop"]
        checked += 1
        for name, rs in (("interim", inter), ("stop", stop)):
            if not rs:
                if name == "interim":
                    no_interim += 1
                else:
                    no_stop += 1
                continue
            r = rs[-1]
            got = {a: int(r.get(a, -1)) + (int(r.get(a.replace("Octets", "Gigawords"), 0)) << 32
                                           if a.endswith("Octets") else 0) for a, _ in fields}
            if got != want:
                if name == "interim":
                    bad_interim += 1
                else:
                    bad_stop += 1
                if len(examples) < 5:
                    examples.append({"session": s.get("acct_session_id"), "record": name, "counters": want,
                                     "accounted": got})
    return {"checked": checked, "interim_mismatch": bad_interim, "stop_mismatch": bad_stop,
            "no_interim": no_interim, "no_stop": no_stop, "examples": examples}


# -- 1 + 2. set-up (and the accounting hold) -----------------------------------------------------------------
def setup_run(topo: BngTopology, work: Path, rad: Radius, auth: str, count: int, interim: float, tag: str,
              hold: Optional[float] = None, traffic: int = 5) -> dict:
    """A fresh BNG and one client run of ``count`` subscribers with RADIUS; with ``hold`` the
    accounting run: known traffic, hold, Interim-Updates and octets checked."""
    from pfrps.bng import lab  # noqa: PLC0415

    off0 = rad.offset()
    out: dict = {"auth": auth, "count": count, "interim_s": interim, "tag": tag, "loadavg_before": _load()}
    bng = start_bng(topo, work, auth, interim, tag)
    sink = client = None
    try:
        pids = bng_pids(bng.pid)
        if len(pids) != WORKERS + 1:
            raise HarnessError(f"pfrps-bng -w {WORKERS}: found processes {sorted(pids)}")
        if hold:
            sink = lab.start_sink(topo)
        extra = ["--traffic", str(traffic), "--dst4", RADIUS_IP] if hold else []
        udp0 = {"bng": udp_stats(topo, topo.bng), "inet": udp_stats(topo, topo.inet)}
        c_bng0 = {k: cpu_s(p) for k, p in pids.items()}
        c_rad0, c_mach0 = rad.cpu(), machine_busy_s()
        t0 = time.monotonic()
        client = start_client(topo, work, count, auth, tag, extra)
        wall = time.monotonic() - t0
        c_cli = cpu_s(client.pid)
        c_bng1 = {k: cpu_s(p) for k, p in pids.items()}
        c_rad1, c_mach1 = rad.cpu(), machine_busy_s()
        out["loadavg_setup_end"] = _load()
        out["udp_during_setup"] = {"bng_ns": _udp_delta(udp0["bng"], udp_stats(topo, topo.bng)),
                                   "inet_ns_freeradius": _udp_delta(udp0["inet"], udp_stats(topo, topo.inet))}
        out.update({"client_wall_to_ready_s": round(wall, 3),
                    "bng_cpu_s": round(sum(c_bng1[k] - c_bng0[k] for k in pids), 2),
                    "bng_cpu_by_process": {k: round(c_bng1[k] - c_bng0[k], 2) for k in pids},
                    "radius_cpu_s": round(c_rad1 - c_rad0, 2),
                    "client_cpu_proc_s": round(c_cli, 2),
                    "machine_busy_s": round(c_mach1 - c_mach0, 2),
                    "machine_capacity_s": round(wall * (os.cpu_count() or 1), 2)})
        if hold:
            t_up = time.monotonic()
            shown0 = show_sessions(topo, timeout=180)
            addrs = [s["ipv4"] for s in shown0["sessions"] if s.get("ipv4")]
            out["downstream_sent"] = lab.send_downstream(topo, addrs, traffic, size=200)
            out["downstream_per_session"], out["upstream_per_session"] = traffic, traffic
            h_rad0, h_bng0, h_m0, h_t0 = rad.cpu(), sum(cpu_s(p) for p in pids.values()), machine_busy_s(), time.monotonic()
            time.sleep(max(0.0, hold - (time.monotonic() - t_up)))
            out["held_s"] = round(time.monotonic() - t_up, 1)
            out["hold_cpu"] = {"window_s": round(time.monotonic() - h_t0, 1), "freeradius_s": round(rad.cpu() - h_rad0, 2),
                               "bng_s": round(sum(cpu_s(p) for p in pids.values()) - h_bng0, 2),
                               "machine_busy_s": round(machine_busy_s() - h_m0, 1)}
            shown = show_sessions(topo, timeout=180)
            out["listed_end_of_hold"] = len(shown["sessions"])
            out["loadavg_end_of_hold"] = _load()
        t_end = time.time()
        t_td = time.monotonic()
        client.finish(timeout=600)
        res = client_result(client)
        out["teardown_s"] = round(time.monotonic() - t_td, 2)
        stops = rad.wait_count(off0, "Stop", res["up"], timeout=120)
        out["stop_wait_s"] = round(time.monotonic() - t_td, 2)
    finally:
        if client is not None:
            client.kill()
        out["bng_exit"] = bng.finish(signal.SIGTERM, timeout=300)
        if sink is not None:
            _, sout, _ = sink.finish()
            try:
                out["sink"] = json.loads(sout)
            except ValueError:
                pass
    snaps = bng.json_lines()
    last = snaps[-1] if snaps else {}
    out["bng_counters"] = {k: _sum(last, k) for k in ("radius_accept", "radius_reject", "radius_timeout",
                                                      "radius_retransmits", "radius_timeouts", "acct_start",
                                                      "acct_interim", "acct_stop", "acct_dropped", "acct_requeued",
                                                      "acct_overflow", "auth_fail", "session_setups", "restarts")}
    recs = rad.records(off0)
    kinds = Counter(_kind(r) for r in recs)
    out["detail_records"] = dict(kinds)
    out["detail_stops_seen_in_wait"] = stops
    out["duplicate_starts"] = duplicate_starts(recs)
    out.update({"up": res["up"], "failed": res["failed"], "failed_by_reason": res.get("failed_by_reason", {}),
                "setup_rate": res["setup_rate"], "first_to_last": res["first_to_last"],
                "client_cpu_s": res["cpu_seconds"], "setup_p50_s": res.get("setup_seconds_p50"),
                "setup_p99_s": res.get("setup_seconds_p99"),
                "retransmissions": {k: v for k, v in res.get("stats", {}).items() if k.endswith("_retx") and v},
                "teardown": res.get("teardown"), "client_traffic": res.get("traffic")})
    n = max(res["up"], 1)
    out["us_per_session"] = {"bng": round(out["bng_cpu_s"] * 1e6 / n), "radius": round(out["radius_cpu_s"] * 1e6 / n),
                             "client": round(out["client_cpu_s"] * 1e6 / n)}
    if hold:
        sess = by_session(recs)
        listed = {s["acct_session_id"] for s in shown["sessions"]}
        sess = {k: v for k, v in sess.items() if k in listed}
        out["interims"] = interim_analysis(sess, interim, t_end)
        out["octets"] = octet_check(sess, shown["sessions"])
        per = Counter((_kind(r)) for v in sess.values() for r in v)
        out["starts_stops"] = {"sessions_with_one_start": sum(1 for v in sess.values()
                                                              if sum(_kind(r) == "Start" for r in v) == 1),
                               "sessions_with_one_stop": sum(1 for v in sess.values()
                                                             if sum(_kind(r) == "Stop" for r in v) == 1),
                               "records": dict(per)}
        ups = Counter((s["up_packets"], s["up_bytes"], s["down_packets"], s["down_bytes"]) for s in shown["sessions"])
        out["counters_at_end_of_hold"] = {str(k): v for k, v in ups.most_common(5)}
    out["loadavg_after"] = _load()
    return out


def _log_setup(r: dict) -> None:
    common.log(f"{NAME}: {r['tag']}: {r['auth']} {r['up']:,}/{r['count']:,} up, {r['failed']} failed, "
               f"{r['setup_rate']:,.0f} sessions/s over {r['first_to_last']:.2f} s; CPU s: BNG {r['bng_cpu_s']}, "
               f"FreeRADIUS {r['radius_cpu_s']}, client {r['client_cpu_s']:.2f}, machine {r['machine_busy_s']} of "
               f"{r['machine_capacity_s']}; detail {r['detail_records']}; load {r['loadavg_before']}")
    if "interims" in r:
        common.log(f"{NAME}: {r['tag']}: interims {r['interims']}; octets {r['octets']}")


# -- 3. restarts --------------------------------------------------------------------------------------------
_STREAM = r"""
import socket, sys, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
addrs = [(a, 9) for a in sys.argv[3:]]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
payload = bytes(72)
sent, t0 = 0, time.monotonic()
print("START", time.time(), flush=True)
while time.monotonic() - t0 < seconds:
    for a in addrs:
        s.sendto(payload, a)
        sent += 1
        if sent % 64 == 0:
            time.sleep(max(0.0, t0 + sent / rate - time.monotonic()))
print(sent, flush=True)
"""

_READY_AGAIN = re.compile(r"worker (\d+) ready again after ([0-9.]+) s")


def restart_run(topo: BngTopology, work: Path, rad: Radius, count: int, kills: int, interim: float,
                stream_rate: float, tag: str) -> dict:
    """N sessions, traffic to all, the busiest worker SIGKILLed ``kills`` times in a row; see the module doc."""
    from pfrps.bng import lab  # noqa: PLC0415

    off0 = rad.offset()
    out: dict = {"count": count, "kills": kills, "interim_s": interim, "tag": tag, "loadavg_before": _load(),
                 "stream_rate_pps": stream_rate}
    bng = start_bng(topo, work, "pap", interim, tag, extra=("--echo-interval", "10", "--echo-misses", "3"))
    client = stream = None
    try:
        client = start_client(topo, work, count, "pap", tag)
        before = show_sessions(topo, timeout=180)
        per_worker = Counter(s["worker"] for s in before["sessions"])
        wid, held = per_worker.most_common(1)[0]
        out.update({"worker": wid, "worker_sessions": held, "per_worker": [per_worker.get(w, 0) for w in range(WORKERS)],
                    "listed_before": len(before["sessions"])})
        targets = [s["ipv4"] for s in before["sessions"]]
        # stream long enough to cover the kills and the restore with margin
        seconds = 8.0
        stream = topo.popen(topo.inet, [PY, "-c", _STREAM, f"{stream_rate:g}", f"{seconds:g}", *targets],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)  # traffic is flowing when the worker dies
        pid = lab.worker_pid(bng.pid, wid)
        if not pid:
            raise HarnessError(f"no pfrps-w{wid} under the BNG {bng.pid}")
        t_kill_wall = time.time()
        t_kill = time.monotonic()
        kill_times = []
        for i in range(kills):
            os.kill(pid, signal.SIGKILL)
            kill_times.append(time.monotonic() - t_kill)
            if i < kills - 1:
                pid = lab.wait_restarted(bng.pid, wid, pid, timeout=30)
        pid = lab.wait_restarted(bng.pid, wid, pid, timeout=30)
        out["kill_offsets_s"] = [round(x, 4) for x in kill_times]
        out["kills_within_s"] = round(kill_times[-1], 4)
        # the replacement's readiness (the supervisor's log line), bounded
        deadline = time.monotonic() + 60
        ready = []
        while time.monotonic() < deadline:
            ready = [(int(m.group(1)), float(m.group(2))) for m in _READY_AGAIN.finditer(bng.stderr())]
            if any(w == wid for w, _ in ready) and len([1 for w, _ in ready if w == wid]) >= 1:
                break
            time.sleep(0.05)
        out["t_ready_seen_s"] = round(time.monotonic() - t_kill, 3)
        out["ready_again"] = [x for w, x in ready if w == wid]
        sout, serr = stream.communicate(timeout=120)
        lines = sout.split()
        if not lines or not lines[-1].isdigit():
            raise HarnessError(f"the stream printed {sout!r} {serr[-400:]!r}")
        out["stream_sent"] = int(lines[-1])
        out["stream_seconds"] = seconds
        # hold: Interim-Updates continue after the restart (at least one per session of the worker)
        t_hold = max(0.0, 2 * interim + 3 - (time.monotonic() - t_kill))
        time.sleep(t_hold)
        after = show_sessions(topo, timeout=180)
        t_end = time.time()
        strip = lambda ss: sorted((s["mac"], s["session_id"], s["ipv4"], s["user"], s["acct_session_id"])  # noqa: E731
                                  for s in ss)
        out["listed_after"] = len(after["sessions"])
        out["same_sessions_listed"] = strip(after["sessions"]) == strip(before["sessions"])
        out["workers_missing"] = after.get("workers_missing", [])
        out["dataplane_entries_after"] = after.get("dataplane_entries")
        t_td = time.monotonic()
        client.finish(timeout=600)
        res = client_result(client)
        out["teardown_s"] = round(time.monotonic() - t_td, 2)
        out["detail_stops_seen_in_wait"] = rad.wait_count(off0, "Stop", count, timeout=120)
    finally:
        if stream is not None and stream.poll() is None:
            stream.kill()
            stream.communicate()
        if client is not None:
            client.kill()
        out["bng_exit"] = bng.finish(signal.SIGTERM, timeout=300)
    snaps = bng.json_lines()
    last = snaps[-1] if snaps else {}
    out["bng_counters"] = {k: (last.get(k)[wid] if isinstance(last.get(k), list) else last.get(k))
                           for k in ("restarts", "restored", "dp_stale", "expired", "acct_start", "acct_stop",
                                     "acct_interim", "acct_dropped")}
    out["bng_counters_all_workers"] = {k: _sum(last, k) for k in ("radius_accept", "radius_retransmits",
                                                                  "radius_timeouts", "acct_start", "acct_stop",
                                                                  "acct_dropped", "acct_requeued", "expired")}
    out["ready_again_all_lines"] = [ln for ln in bng.stderr().splitlines() if "ready again" in ln or "restored" in ln][:10]
    recs = res.get("records") or []
    out.update({"up": res["up"], "failed": res["failed"], "failed_by_reason": res.get("failed_by_reason", {}),
                "failures": dict(Counter(str(r.get("failure")) for r in recs)),
                "client_received": sum(int(r.get("rx_packets") or 0) for r in recs),
                "redials": sum(int(r.get("redials") or 0) for r in recs), "setup_rate": res["setup_rate"]})
    out["frames_lost"] = out["stream_sent"] - out["client_received"]
    detail = rad.records(off0)
    sess = by_session(detail)
    mine_ids = {s["acct_session_id"] for s in before["sessions"] if s["worker"] == wid}
    all_ids = {s["acct_session_id"] for s in before["sessions"]}
    sess = {k: v for k, v in sess.items() if k in all_ids}
    starts = Counter(sum(_kind(r) == "Start" for r in v) for v in sess.values())
    stops = Counter(sum(_kind(r) == "Stop" for r in v) for v in sess.values())
    out["accounting"] = {
        "sessions_in_log": len(sess), "starts_per_session": dict(starts), "stops_per_session": dict(stops),
        "one_start_one_stop": sum(1 for k in all_ids if sum(_kind(r) == "Start" for r in sess.get(k, [])) == 1
                                  and sum(_kind(r) == "Stop" for r in sess.get(k, [])) == 1),
        "one_start_one_stop_dedup": sum(1 for k in all_ids if sum(_kind(r) == "Start" for r in dedup(sess.get(k, []))[0]) == 1
                                        and sum(_kind(r) == "Stop" for r in dedup(sess.get(k, []))[0]) == 1),
        "stop_causes": dict(Counter(r.get("Acct-Terminate-Cause") for v in sess.values() for r in v
                                    if _kind(r) == "Stop")),
        "killed_worker": interim_analysis({k: v for k, v in sess.items() if k in mine_ids}, interim, t_end,
                                          t_kill=t_kill_wall + 0.5),
        "others": interim_analysis({k: v for k, v in sess.items() if k not in mine_ids}, interim, t_end)}
    out["accounting"]["duplicate_starts"] = duplicate_starts(detail)
    out["loadavg_after"] = _load()
    return out


def _log_restart(r: dict) -> None:
    a = r["accounting"]
    common.log(f"{NAME}: {r['tag']}: killed pfrps-w{r['worker']} ({r['worker_sessions']} of {r['count']} sessions) "
               f"x{r['kills']} within {r['kills_within_s']} s; ready again after {r['ready_again']} s; up {r['up']}, "
               f"failed {r['failed']}, same sessions {r['same_sessions_listed']}; stream sent {r['stream_sent']:,} "
               f"received {r['client_received']:,} (lost {r['frames_lost']}); 1 Start+1 Stop: "
               f"{a['one_start_one_stop']}/{r['count']}; killed worker's sessions without an interim after the kill: "
               f"{a['killed_worker'].get('no_interim_after_kill')}; counters {r['bng_counters']}; load {r['loadavg_before']}")


# -- the benchmark -------------------------------------------------------------------------------------------
def _topology() -> BngTopology:
    topo = BngTopology(prefix="bench-bng-aaa")
    common._TOPOLOGIES.append(topo)  # noqa: SLF001  (the suite's leftover check)
    return topo.create()


def run(ctx, parts: Sequence[str] = ("setup", "acct", "restart"), restart_counts: Optional[Sequence[int]] = None,
        acct_interim: Optional[float] = None, hold: Optional[float] = None, keep_detail: bool = False,
        count: Optional[int] = None) -> dict:
    from pfrps.topology import netns_exists  # noqa: PLC0415

    quick = ctx.quick
    reps = max(ctx.reps or (1 if quick else 2), 1)
    count = count or (1000 if quick else 10_000)
    interim = acct_interim or (10.0 if quick else 60.0)
    hold = hold or (25.0 if quick else 130.0)
    r_interim = 5.0 if quick else 20.0
    restart_counts = list(restart_counts or ([200] if quick else [1000, 8000]))
    work = Path(ctx.work_dir) / NAME
    work.mkdir(parents=True, exist_ok=True)
    data: dict = {"parts": list(parts), "count": count, "users": USERS, "workers": WORKERS, "reps": reps,
                  "window": WINDOW, "loadavg_start": _load(), "started_utc": time.strftime("%Y-%m-%d %H:%M:%S",
                                                                                          time.gmtime())}
    common.log(f"{NAME}: load average {data['loadavg_start']} (uptime)")
    topo = _topology()
    rad = None
    try:
        rad = Radius(topo, work, USERS)
        data["freeradius"] = {"version": rad.version, "start_s": round(rad.start_seconds, 2), "users": USERS,
                              "debug": False}
        common.log(f"{NAME}: {rad.version} up in {rad.start_seconds:.1f} s with {USERS:,} users")
        if "setup" in parts or "acct" in parts:
            data["setup"] = {"pap": [], "chap": []}
            # the accounting run is PAP's first set-up run; then the rest, interleaved
            plan = []
            if "acct" in parts:
                plan.append(("pap", True))
            if "setup" in parts:
                for rep in range(reps):
                    for auth in (("chap", "pap") if rep % 2 == 0 else ("pap", "chap")):
                        if auth == "pap" and "acct" in parts and rep == 0:
                            continue  # PAP's first run is the accounting run
                        plan.append((auth, False))
            for i, (auth, acct) in enumerate(plan):
                r = setup_run(topo, work, rad, auth, count, interim, tag=f"{'acct' if acct else 'setup'}{i}-{auth}",
                              hold=hold if acct else None)
                r["accounting_run"] = acct
                _log_setup(r)
                data["setup"][auth].append(r)
                if acct:
                    data["acct"] = r
        if "restart" in parts:
            data["restart"] = []
            for n in restart_counts:
                for kills in (1, 3):
                    rate = min(max(4.0 * n, 2000.0), 10_000.0)
                    r = restart_run(topo, work, rad, n, kills, r_interim, rate,
                                    tag=f"restart-{n}-{'one-kill' if kills == 1 else 'burst-of-3'}")
                    _log_restart(r)
                    data["restart"].append(r)
        data["radius_output_tail"] = rad.srv.output()[-2000:]
    finally:
        if rad is not None:
            if keep_detail:
                import shutil  # noqa: PLC0415

                try:
                    shutil.copy(rad.srv.detail_path, work / "detail")
                    shutil.copy(rad.srv.output_path, work / "radiusd.out")
                except OSError:
                    pass
            rad.stop()
        topo.destroy()
        left = [ns for ns in topo.all_namespaces if netns_exists(ns)]
        if left:
            raise HarnessError(f"namespaces left behind: {left}")
    data["loadavg_end"] = _load()
    data["finished_utc"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    common.log(f"{NAME}: load average at the end {data['loadavg_end']}")
    return {"name": NAME, "title": TITLE, "rows": rows(data), "tables": tables(data), "plots": [],
            "data": data, "method": method(data), "notes": notes(data)}


# -- results ------------------------------------------------------------------------------------------------
def rows(data: dict) -> list[Row]:
    out: list[Row] = []
    n = data["count"]
    for auth in ("pap", "chap"):
        runs = (data.get("setup") or {}).get(auth) or []
        if not runs:
            continue
        val = summary([r["setup_rate"] for r in runs])
        ok = val["median"] >= SETUP_TARGET and all(r["failed"] == 0 and r["up"] == n for r in runs)
        med = lambda k: common.median([r[k] for r in runs])  # noqa: E731
        note = (f"failed per run {[r['failed'] for r in runs]}; CPU s over the set-up (medians): FreeRADIUS "
                f"{med('radius_cpu_s'):.2f}, BNG {med('bng_cpu_s'):.2f}, client {med('client_cpu_s'):.2f}, whole "
                f"machine {med('machine_busy_s'):.2f} of {med('machine_capacity_s'):.2f}; load avg "
                f"{[r['loadavg_before'][0] for r in runs]}; duplicate Start records (identical retransmissions "
                f"logged again) per run {[r['duplicate_starts']['extra_records'] for r in runs]}, BNG RADIUS "
                f"retransmissions {[r['bng_counters']['radius_retransmits'] for r in runs]}; UDP RcvbufErrors during "
                f"the set-up, BNG namespace {[r.get('udp_during_setup', {}).get('bng_ns', {}).get('RcvbufErrors') for r in runs]}, "
                f"FreeRADIUS namespace "
                f"{[r.get('udp_during_setup', {}).get('inet_ns_freeradius', {}).get('RcvbufErrors') for r in runs]}")
        out.append(Row(f"target: set-up rate with RADIUS, {auth.upper()}, 8 workers, {n:,} sessions", "sessions/s",
                       val, target=f">= {SETUP_TARGET:,.0f} sessions/s, 0 failed", passed=bool(ok), note=note))
        share = summary([r["radius_cpu_s"] / max(r["radius_cpu_s"] + r["bng_cpu_s"] + r["client_cpu_s"], 1e-9)
                         for r in runs])
        out.append(Row(f"FreeRADIUS's share of the set-up's CPU (FreeRADIUS / (FreeRADIUS + BNG + client)), "
                       f"{auth.upper()}", "share", share, note="per-session CPU (us): " + "; ".join(
                           f"FreeRADIUS {r['us_per_session']['radius']}, BNG {r['us_per_session']['bng']}, "
                           f"client {r['us_per_session']['client']}" for r in runs)))
    a = data.get("acct")
    if a and "interims" in a:
        it, oc = a["interims"], a["octets"]
        missing = it["missing_late"]
        ok = it["late_over_one_interval"] == 0 and missing == 0 and it["sessions"] == a["up"]
        out.append(Row(f"target: Interim-Updates keep up: {a['up']:,} sessions, every {a['interim_s']:g} s, held "
                       f"{a.get('held_s')} s: sessions with an Interim-Update late by more than one interval",
                       "sessions", summary([it["late_over_one_interval"] + missing]),
                       target="0", passed=bool(ok),
                       note=f"Interim-Updates per session {it['interims_per_session']}; largest gap between a "
                            f"session's records {it['max_gap_timestamp_s']} s (FreeRADIUS Timestamp), "
                            f"{it['max_gap_event_s']} s (Event-Timestamp); median {it['p50_gap_timestamp_s']} s; "
                            f"gap over 2 intervals {it['late_over_one_interval']}, an Interim-Update due over one "
                            f"interval before the teardown missing {missing}; short of the exact schedule (2 s slack) "
                            f"{it['sessions_short_of_due']}; FreeRADIUS CPU over the hold {a.get('hold_cpu', {})}"))
        bad = oc["interim_mismatch"] + oc["stop_mismatch"] + oc["no_interim"] + oc["no_stop"]
        out.append(Row(f"target: accounting octets and packets exact (last Interim-Update and Stop vs `show "
                       f"sessions --json` counters), all {oc['checked']:,} sessions", "sessions off",
                       summary([bad]), target="0", passed=bool(bad == 0 and oc["checked"] == a["up"]),
                       note=f"{oc}; counters at the end of the hold (up pkts, up bytes, down pkts, down bytes): "
                            f"{a.get('counters_at_end_of_hold')}; sent {a.get('upstream_per_session')} up x 100 B, "
                            f"{a.get('downstream_per_session')} down x 200 B per session; the client's traffic "
                            f"{a.get('client_traffic')}, the inet sink got {a.get('sink')}"))
    for r in data.get("restart") or []:
        what = "one kill" if r["kills"] == 1 else f"{r['kills']} kills within {r['kills_within_s']:.2f} s"
        first = (r["kills_within_s"] + r["ready_again"][-1]) if r["ready_again"] else float("nan")
        base = f"worker killed ({what}; pfrps-w{r['worker']}: {r['worker_sessions']} of {r['count']:,} sessions)"
        ok_s = (r["up"] == r["count"] and r["failed"] == 0 and r["same_sessions_listed"]
                and r["failures"] == {"None": r["count"]})
        out.append(Row(f"target: {base}: sessions dropped", "sessions",
                       summary([r["count"] - r["up"] + r["failed"] + (0 if r["same_sessions_listed"] else 1)]),
                       target="0", passed=bool(ok_s),
                       note=f"client up {r['up']}, failed {r['failed']}, redials {r['redials']}; listed after "
                            f"{r['listed_after']} (same sessions: {r['same_sessions_listed']}); restarts "
                            f"{r['bng_counters'].get('restarts')}, restored {r['bng_counters'].get('restored')}, "
                            f"dp_stale {r['bng_counters'].get('dp_stale')}, expired {r['bng_counters'].get('expired')}"))
        out.append(Row(f"target: {base}: data-plane datagrams lost", "frames", summary([r["frames_lost"]]),
                       target="0", passed=bool(r["frames_lost"] == 0),
                       note=f"sent {r['stream_sent']:,} at {r['stream_rate_pps']:,.0f}/s to every subscriber over "
                            f"{r['stream_seconds']:g} s, client received {r['client_received']:,}"))
        acc = r["accounting"]
        kw = acc["killed_worker"]
        ok_a = (acc["one_start_one_stop"] == r["count"] and kw.get("no_interim_after_kill") == 0
                and kw["late_over_one_interval"] == 0)
        out.append(Row(f"target: {base}: accounting continuous (one Start + one Stop per session, Interim-Updates "
                       f"after the kill for every session of the killed worker)", "sessions off",
                       summary([r["count"] - acc["one_start_one_stop"] + (kw.get("no_interim_after_kill") or 0)]),
                       target="0", passed=bool(ok_a),
                       note=f"Starts per session {acc['starts_per_session']}, Stops {acc['stops_per_session']}; "
                            f"without identical retransmissions (FreeRADIUS logs an accounting retransmission again: "
                            f"no cleanup_delay for Accounting-Requests) {acc['one_start_one_stop_dedup']} of {r['count']} "
                            f"sessions have one Start + one Stop ({acc['duplicate_starts']['extra_identical']} of "
                            f"{acc['duplicate_starts']['extra_records']} extra Starts identical); BNG retransmissions "
                            f"{r.get('bng_counters_all_workers', {}).get('radius_retransmits')}; killed "
                            f"worker's sessions: Interim-Updates per session {kw['interims_per_session']}, largest gap "
                            f"{kw['max_gap_timestamp_s']} s (interval {r['interim_s']:g} s), without one after the kill "
                            f"{kw.get('no_interim_after_kill')}; Stop causes {acc['stop_causes']}"))
        ds = acc["duplicate_starts"]
        out.append(Row(f"{base}: sessions without exactly one Start + one Stop once identical retransmissions are "
                       "removed", "sessions off", summary([r["count"] - acc["one_start_one_stop_dedup"]]),
                       note=f"duplicate Start records {ds['extra_records']} ({ds['extra_identical']} identical to the "
                            f"first but for FreeRADIUS's arrival Timestamp, 3 s = --radius-timeout later); identical "
                            f"records of any kind {ds['identical_records_all_kinds']}"))
        gap = r["ready_again"][-1] if r["ready_again"] else float("nan")
        out.append(Row(f"{base}: gap, kill to the replacement ready (supervisor's log)", "s", summary([gap]),
                       note=f"from the last kill (the supervisor counts from the last death); from the first kill "
                            f"{first:.3f} s; kills at {r['kill_offsets_s']} s after the first; 'ready again' lines of "
                            f"the worker: {r['ready_again']}; load avg {r['loadavg_before']}"))
    return out


def tables(data: dict) -> list[dict]:
    out = []
    runs = [r for a in ("pap", "chap") for r in (data.get("setup") or {}).get(a, [])]
    if runs:
        out.append({"title": f"Set-up with RADIUS, each run ({data['count']:,} sessions, 8 workers, window "
                             f"{data['window']}; CPU seconds from the client's start to its READY)",
                    "header": ["run", "auth", "sessions/s", "up", "failed", "first PADI to last up, s",
                               "FreeRADIUS CPU s", "BNG CPU s", "client CPU s", "machine busy / capacity, CPU s",
                               "us/session FreeRADIUS / BNG / client", "p50 / p99 set-up, s", "client retx",
                               "Access-Accepts, Starts (BNG)", "BNG RADIUS retransmissions",
                               "duplicate Start records (identical)", "load avg (1/5/15 min) before"],
                    "rows": [[r["tag"], r["auth"].upper(), f"{r['setup_rate']:,.0f}", r["up"], r["failed"],
                              f"{r['first_to_last']:.2f}", f"{r['radius_cpu_s']:.2f}", f"{r['bng_cpu_s']:.2f}",
                              f"{r['client_cpu_s']:.2f}", f"{r['machine_busy_s']:.1f} / {r['machine_capacity_s']:.1f}",
                              f"{r['us_per_session']['radius']} / {r['us_per_session']['bng']} / "
                              f"{r['us_per_session']['client']}",
                              f"{r['setup_p50_s']} / {r['setup_p99_s']}", r["retransmissions"] or "none",
                              f"{r['bng_counters']['radius_accept']}, {r['bng_counters']['acct_start']}",
                              r["bng_counters"]["radius_retransmits"],
                              f"{r['duplicate_starts']['extra_records']} ({r['duplicate_starts']['extra_identical']})",
                              " / ".join(str(x) for x in r["loadavg_before"])] for r in runs]})
    rs = data.get("restart") or []
    if rs:
        out.append({"title": "Worker kills with traffic and accounting",
                    "header": ["run", "sessions (killed worker's)", "kills within, s", "ready again after, s", "up",
                               "failed", "sent", "received", "lost", "1 Start + 1 Stop", "killed worker: interims/session",
                               "largest gap, s", "load avg before"],
                    "rows": [[r["tag"], f"{r['count']} ({r['worker_sessions']})", r["kills_within_s"],
                              ", ".join(f"{x:.3f}" for x in r["ready_again"]), r["up"], r["failed"], r["stream_sent"],
                              r["client_received"], r["frames_lost"],
                              r["accounting"]["one_start_one_stop"],
                              r["accounting"]["killed_worker"]["interims_per_session"],
                              r["accounting"]["killed_worker"]["max_gap_timestamp_s"],
                              " / ".join(str(x) for x in r["loadavg_before"])] for r in rs]})
    return out


def method(data: dict) -> str:
    parts = [f"FreeRADIUS ({(data.get('freeradius') or {}).get('version')}, `debug=False`: `freeradius -f`, threaded; "
             f"modules pap, chap, files, detail; users file of {data['users']:,} users) in the inet namespace at "
             f"{RADIUS_IP}; `pfrps-bng -w {data['workers']} --radius {RADIUS_IP} --radius-secret-file F "
             f"--acct-interim A` (empty local secrets file) in the BNG namespace; the scaled client "
             f"`-n N --rate 0 --window {data['window']}` on sub0; all on the machine's 2 CPUs, not pinned."]
    if data.get("setup"):
        parts.append(f"**Set-up**: a fresh BNG per run, {data['count']:,} sessions; rate = the client's `setup_rate` "
                     "(sessions up / first PADI to last up); CPU = utime+stime (/proc/PID/stat) of FreeRADIUS, the BNG's "
                     "supervisor and workers and the client from the client's start to its READY (every subscriber "
                     "up or failed); machine busy = /proc/stat non-idle time of both CPUs meanwhile (other engineers' "
                     "load included). Runs interleaved; the accounting run is PAP's first set-up run.")
    a = data.get("acct")
    if a:
        parts.append(f"**Accounting**: {a['up']:,} PAP sessions, `--acct-interim {a['interim_s']:g}`, held "
                     f"{a.get('held_s')} s after set-up; the client sent {a.get('upstream_per_session')} upstream "
                     f"datagrams (100-byte IP packets) and the inet side {a.get('downstream_per_session')} downstream "
                     "(200 bytes) per session right after set-up, then nothing; at the end of the hold `show sessions "
                     "--json`, then the client's teardown. From FreeRADIUS's detail log: Interim-Updates per session "
                     "against those due (one per interval after the Start's Event-Timestamp, up to the teardown), gaps "
                     "between consecutive records of a session (late = gap > 2 intervals), last Interim-Update and "
                     "Stop octets/packets (with Gigawords) against the listed counters.")
    rs = data.get("restart")
    if rs:
        parts.append(f"**Kills**: N sessions (PAP, `--acct-interim {rs[0]['interim_s']:g} --echo-interval 10 "
                     "--echo-misses 3`), a paced UDP stream (72-byte payload, port 9) from the inet namespace to "
                     "every subscriber address in turn, the worker with the most sessions (`show sessions`) SIGKILLed 2 s "
                     "into the stream: once, or three times, each replacement killed as soon as its pid exists "
                     "(`lab.wait_restarted`); held until 2 intervals + 3 s after the kill; sessions listed before and "
                     "after compared (MAC, session id, address, user, Acct-Session-Id); received = the client's per-"
                     "subscriber rx_packets summed; gap = the supervisor's 'worker N ready again after X s' (stderr).")
    return " ".join(parts) + (f" Load average (1/5/15 min) at the start {data.get('loadavg_start')}, at the end "
                              f"{data.get('loadavg_end')}; the machine is shared with other engineers' runs.")


def notes(data: dict) -> list[str]:
    out = []
    a = data.get("acct")
    if a and a.get("interim_s", 60) != 60:
        out.append(f"The accounting run used an interval of {a['interim_s']:g} s instead of 60 s.")
    return out


def _plot(path, data) -> None:  # noqa: ARG001  (no plot: the tables say it; --report-only calls this)
    return None


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m bench.bng_aaa", description="pfrps-bng with FreeRADIUS alone "
                                "(bench/results/tmp/bng_aaa-alone.json, or --out)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--part", action="append", choices=("setup", "acct", "restart"))
    p.add_argument("--reps", type=int)
    p.add_argument("--acct-interim", type=float, help="accounting run's interval (default 60, quick 10)")
    p.add_argument("--hold", type=float, help="accounting run's hold, s (default 130, quick 25)")
    p.add_argument("--restart-sessions", type=int, action="append", help="sessions of the kill runs (repeatable)")
    p.add_argument("--out", type=Path)
    p.add_argument("--count", type=int, help="sessions of the set-up and accounting runs (default 10000, quick 1000)")
    p.add_argument("--keep-detail", action="store_true",
                   help="copy FreeRADIUS's detail log and output to bench/results/tmp/bng_aaa/ before removing it")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("python -m bench.bng_aaa: error: must run as root (namespaces, BPF)", file=sys.stderr)
        return 2
    main_pid = os.getpid()

    def on_term(signum, _frame):  # SIGTERM unwinds like Ctrl-C: every finally (FreeRADIUS, namespaces) runs
        if os.getpid() != main_pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    work = common.BENCH_DIR / "results" / "tmp"
    ctx = argparse.Namespace(quick=args.quick, reps=args.reps, work_dir=work, out_dir=work)
    res = run(ctx, parts=tuple(args.part or ("setup", "acct", "restart")), restart_counts=args.restart_sessions,
              acct_interim=args.acct_interim, hold=args.hold, keep_detail=args.keep_detail, count=args.count)
    res["rows"] = [r.to_json() for r in res["rows"]]
    common.write_json(args.out or work / f"{NAME}-alone.json", res)
    for row in res["rows"]:
        print(f"{'PASS' if row['passed'] else 'FAIL' if row['passed'] is not None else 'info'} {row['label']}: "
              f"{row['value']['median']:,.3f} {row['unit']}" + (f" [{row['note']}]" if row["note"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
