"""pfrps-ac under load: PPPoE handshakes per second, and a worker killed mid-run.

Run as root from the repository::

    .venv/bin/python -m bench.ac_bench                       # 10,000 subscribers, 8 workers
    .venv/bin/python -m bench.ac_bench --subscribers 2000 --encoder scapy --out /tmp/ac-scapy.json

What it does, in a fresh two-namespace topology (pfrps.topology):

1. ``python -m pfrps.ac -w 8`` in the node namespace, ready through ``--ready-fd``.
2. Phase 1: N subscribers (distinct random MACs) each do PADI -> PADO -> PADR -> PADS. The
   client keeps at most ``--window`` handshakes in flight and, like a real host (RFC 2516
   5.1-5.4), resends a PADI/PADR after a timeout, doubling it each time; after
   ``--max-tries`` PADRs it falls back to PADI once. Reported: handshakes/s, latency, retransmits,
   failures, and the per-worker session split (AC gauge and client view, and the split
   ``pfrps.hashing.worker_for`` predicts).
3. Phase 2: N more subscribers; when ``--kill-at`` of them are done, worker ``--kill-worker``
   (process ``pfrps-w<id>``, a child of the pfrps-ac process) gets SIGKILL. The supervisor
   restarts it on the same socket and logs ``worker N ready again after X s``. Reported: the
   supervisor's restart time, the time from the kill to that log line, the gap the killed
   worker's subscribers saw between replies, handshakes that needed a retransmit or failed,
   and PADOs sent by the dead process whose cookie its replacement honoured.
4. Phase 3: one LCP Echo-Request per session. Sessions the killed process held are gone, so
   they get PADT; every other session gets an Echo-Reply.

The client is one raw AF_PACKET socket in the injector namespace: frames come from templates
(built once with scapy) patched with numpy, and replies are drained in batches. Results go to
``bench/results/ac.json`` and a short table is printed.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import select
import signal
import socket
import sys
import time
from pathlib import Path

import numpy as np

from pfrps.ac import protocol as p
from pfrps.hashing import worker_for
from pfrps.inject.macs import random_macs
from pfrps.kernel import SO_TIMESTAMPNS
from pfrps.testing.ac import ACProcess, open_packet_socket
from pfrps.topology import TwoNodeTopology
from pfrps.cliutil import ArgumentParser

REPO = Path(__file__).resolve().parent.parent
SERVICE = b"internet"
HU_MARK = b"\xaa" * 8      # Host-Uniq placeholder in the templates: the subscriber's index, big-endian
COOKIE_MARK = b"\xcc" * 16  # AC-Cookie placeholder in the PADR template

# subscriber states
PENDING, WAIT_PADO, WAIT_PADS, DONE, FAILED = range(5)


def start_ac(topo: TwoNodeTopology, workers: int, encoder: str, steering: str) -> ACProcess:
    """pfrps-ac in the node namespace (:class:`pfrps.testing.ac.ACProcess`), ready; JSON snapshots
    and time-stamped log lines collected."""
    # phase 3 counts a PADT for every session the killed worker lost, and bench clients
    # do not answer keepalives: no PADT rate limit, no keepalive expiry here
    return ACProcess(topo, "--service-name", SERVICE.decode(), "--encoder", encoder, "--steering", steering,
                     "--padt-rate", "1e9", "--padt-burst", "1000000", "--echo-interval", "0",
                     workers=workers, ac_name=b"bench-ac", interval=0.5, ready_timeout=120)


class Client:
    """Many PPPoE hosts on one raw socket in the injector namespace."""

    def __init__(self, topo: TwoNodeTopology, ac_mac: bytes) -> None:
        # reply times from the kernel (SO_TIMESTAMPNS), not from our drain
        self.sock = open_packet_socket(topo.injector, topo.injector_if, timestamps=True, rcvbuf=64 << 20,
                                       sndbuf=16 << 20)
        self.ac_mac = ac_mac
        self.buf = bytearray(2048)
        self.view = memoryview(self.buf)
        self.padi_tmpl = np.frombuffer(p.build_padi(b"\x02" + bytes(5), SERVICE, HU_MARK, encoder="scapy"), np.uint8)
        self.padr_tmpl = np.frombuffer(p.build_padr(b"\x02" + bytes(5), ac_mac, SERVICE, COOKIE_MARK, HU_MARK,
                                                    encoder="scapy"), np.uint8)
        self.padi_hu = bytes(self.padi_tmpl).index(HU_MARK)
        self.padr_hu = bytes(self.padr_tmpl).index(HU_MARK)
        self.padr_cookie = bytes(self.padr_tmpl).index(COOKIE_MARK)
        self.sent = 0

    def _send_rows(self, rows: np.ndarray) -> None:
        send = self.sock.send
        for row in rows:
            while True:
                try:
                    send(row)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.ENOBUFS, errno.EAGAIN):
                        raise
                    time.sleep(0.0002)
        self.sent += len(rows)

    def send_padi(self, idx: np.ndarray, macs: np.ndarray) -> None:
        rows = np.empty((len(idx), self.padi_tmpl.size), np.uint8)
        rows[:] = self.padi_tmpl
        rows[:, 6:12] = macs[idx]
        rows[:, self.padi_hu:self.padi_hu + 8] = idx.astype(">u8").view(np.uint8).reshape(-1, 8)
        self._send_rows(rows)

    def send_padr(self, idx: np.ndarray, macs: np.ndarray, cookies: np.ndarray) -> None:
        rows = np.empty((len(idx), self.padr_tmpl.size), np.uint8)
        rows[:] = self.padr_tmpl
        rows[:, 6:12] = macs[idx]
        rows[:, self.padr_hu:self.padr_hu + 8] = idx.astype(">u8").view(np.uint8).reshape(-1, 8)
        rows[:, self.padr_cookie:self.padr_cookie + 16] = cookies[idx]
        self._send_rows(rows)

    def drain(self, limit: int = 8192) -> list[tuple[float, bytes]]:
        """Up to ``limit`` queued frames from the AC, without blocking, with their kernel receive
        time (CLOCK_REALTIME seconds; on a veth pair that is when the AC sent them)."""
        out = []
        recvmsg_into, view, ac, bufs = self.sock.recvmsg_into, self.view, self.ac_mac, [self.buf]
        anc = socket.CMSG_SPACE(16)
        for _ in range(limit):
            try:
                n, cmsgs, _flags, _addr = recvmsg_into(bufs, anc, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            if view[6:12] != ac:
                continue
            ts = time.time()
            for level, kind, data in cmsgs:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    ts = int.from_bytes(data[:8], "little") + int.from_bytes(data[8:16], "little") * 1e-9
            out.append((ts, bytes(view[:n])))
        return out

    def wait(self, timeout: float) -> None:
        if timeout > 0:
            select.select([self.sock], [], [], timeout)

    def close(self) -> None:
        self.sock.close()


class Handshakes:
    """N subscribers' PADI/PADO/PADR/PADS state machines, as numpy arrays."""

    def __init__(self, macs: np.ndarray, workers: int, timeout: float, max_tries: int) -> None:
        n = len(macs)
        self.macs = macs
        self.n = n
        self.worker = worker_for(macs, workers).astype(np.int64)
        self.state = np.full(n, PENDING, np.int8)
        self.tries = np.zeros(n, np.int32)        # sends in the current stage
        self.retx_padi = np.zeros(n, np.int32)
        self.retx_padr = np.zeros(n, np.int32)
        self.fallbacks = np.zeros(n, np.int32)    # PADR gave up, back to PADI
        self.deadline = np.full(n, np.inf)        # time.monotonic()
        # CLOCK_REALTIME seconds: sends from time.time(), replies from the kernel's receive stamp
        self.t_start = np.full(n, np.nan)
        self.t_pado = np.full(n, np.nan)          # first PADO
        self.t_done = np.full(n, np.nan)
        self.cookie = np.zeros((n, 16), np.uint8)
        self.sid = np.zeros(n, np.int64)
        self.timeout = timeout
        self.max_tries = max_tries
        self.t_reply: list[tuple[float, int]] = []  # (time, worker) of every reply, for gap analysis
        self.dup_replies = 0
        self.errors: dict[str, int] = {}


def run_handshakes(cl: Client, hs: Handshakes, window: int, deadline_s: float, on_progress=None) -> float:
    """Drive every subscriber to DONE or FAILED; returns the elapsed seconds."""
    t0 = time.monotonic()
    next_new = 0
    batch = 256
    while True:
        now = time.monotonic()
        done = int(np.count_nonzero(hs.state >= DONE))
        if done == hs.n or now - t0 > deadline_s:
            break
        if on_progress is not None:
            on_progress(done, now)
        # new handshakes, up to the window
        inflight = int(np.count_nonzero((hs.state == WAIT_PADO) | (hs.state == WAIT_PADS)))
        room = min(window - inflight, hs.n - next_new, batch)
        if room > 0:
            idx = np.arange(next_new, next_new + room)
            next_new += room
            hs.state[idx] = WAIT_PADO
            hs.tries[idx] = 1
            hs.t_start[idx] = time.time()
            hs.deadline[idx] = now + hs.timeout
            cl.send_padi(idx, hs.macs)
        # timeouts: resend with a doubled wait (RFC 2516 5.1/5.3)
        late = np.flatnonzero(hs.deadline < now)
        if late.size:
            give_up = late[hs.tries[late] >= hs.max_tries]
            wait_pads = give_up[(hs.state[give_up] == WAIT_PADS) & (hs.fallbacks[give_up] == 0)]
            fail = np.setdiff1d(give_up, wait_pads)
            hs.state[fail] = FAILED
            hs.deadline[fail] = np.inf
            if wait_pads.size:  # PADR retries exhausted: start over with a PADI, once
                hs.fallbacks[wait_pads] += 1
                hs.state[wait_pads] = WAIT_PADO
                hs.tries[wait_pads] = 0
            retry = np.setdiff1d(late, fail)
            hs.tries[retry] += 1
            hs.deadline[retry] = now + hs.timeout * 2.0 ** (hs.tries[retry] - 1)
            r_padi = retry[hs.state[retry] == WAIT_PADO]
            r_padr = retry[hs.state[retry] == WAIT_PADS]
            hs.retx_padi[r_padi] += 1
            hs.retx_padr[r_padr] += 1
            if r_padi.size:
                cl.send_padi(r_padi, hs.macs)
            if r_padr.size:
                cl.send_padr(r_padr, hs.macs, hs.cookie)
        # replies
        nxt = float(np.min(hs.deadline)) if hs.n else now + 0.01
        cl.wait(0 if room > 0 else min(max(nxt - time.monotonic(), 0.0), 0.005))
        frames = cl.drain()
        if frames:
            handle_replies(cl, hs, frames, time.monotonic())
    return time.monotonic() - t0


def handle_replies(cl: Client, hs: Handshakes, frames: list[tuple[float, bytes]], now: float) -> None:
    """``now``: time.monotonic() for deadlines; each frame carries its kernel receive time."""
    padr_idx = []
    for ts, f in frames:
        m = p.parse_frame(f)
        if type(m) is not p.Discovery or m.host_uniq is None or len(m.host_uniq) != 8:
            hs.errors["unexpected"] = hs.errors.get("unexpected", 0) + 1
            continue
        i = int.from_bytes(m.host_uniq, "big")
        if not 0 <= i < hs.n or m.dst != hs.macs[i].tobytes():
            hs.errors["stranger"] = hs.errors.get("stranger", 0) + 1
            continue
        hs.t_reply.append((ts, int(hs.worker[i])))
        st = hs.state[i]
        if m.code == p.PADO:
            if st != WAIT_PADO:
                hs.dup_replies += 1
                continue
            if m.ac_cookie is None or len(m.ac_cookie) != 16:
                hs.errors["pado_without_cookie"] = hs.errors.get("pado_without_cookie", 0) + 1
                continue
            hs.cookie[i] = np.frombuffer(m.ac_cookie, np.uint8)
            if np.isnan(hs.t_pado[i]):
                hs.t_pado[i] = ts
            hs.state[i] = WAIT_PADS
            hs.tries[i] = 1
            hs.deadline[i] = now + hs.timeout
            padr_idx.append(i)
        elif m.code == p.PADS:
            if m.session_id == 0:
                hs.errors["pads_error"] = hs.errors.get("pads_error", 0) + 1
                continue
            if st != WAIT_PADS:
                hs.dup_replies += 1
                continue
            hs.sid[i] = m.session_id
            hs.state[i] = DONE
            hs.t_done[i] = ts
            hs.deadline[i] = np.inf
        else:
            hs.errors[p.CODE_NAMES.get(m.code, "other")] = hs.errors.get(p.CODE_NAMES.get(m.code, "other"), 0) + 1
    if padr_idx:
        cl.send_padr(np.asarray(padr_idx), hs.macs, hs.cookie)


def summarize(hs: Handshakes, seconds: float, workers: int) -> dict:
    done = hs.state == DONE
    lat = (hs.t_done - hs.t_start)[done] * 1e3
    retx = (hs.retx_padi + hs.retx_padr + hs.fallbacks) > 0
    t_first, t_last = np.nanmin(hs.t_start), np.nanmax(hs.t_done) if done.any() else np.nan
    sids = hs.sid[done]
    return {
        "subscribers": hs.n,
        "completed": int(done.sum()),
        "failed": int((hs.state == FAILED).sum()),
        "unfinished": int((hs.state < DONE).sum()),
        "seconds": round(float(t_last - t_first), 4),
        "handshakes_per_s": round(float(done.sum() / (t_last - t_first)), 1),
        "latency_ms": {q: round(float(np.percentile(lat, v)), 2) for q, v in
                       (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))} if lat.size else {},
        "needed_retransmit": int(retx.sum()),
        "padi_retransmits": int(hs.retx_padi.sum()),
        "padr_retransmits": int(hs.retx_padr.sum()),
        "padr_fallbacks_to_padi": int(hs.fallbacks.sum()),
        "duplicate_replies": hs.dup_replies,
        "client_errors": hs.errors,
        "session_ids_unique": bool(len(np.unique(sids)) == sids.size),
        "session_ids_in_owner_partition": bool(np.all(sids % workers == hs.worker[done])),
        "sessions_per_worker_client": np.bincount(hs.worker[done], minlength=workers).tolist(),
        "sessions_per_worker_predicted": np.bincount(hs.worker, minlength=workers).tolist(),
    }


def echo_check(cl: Client, macs: np.ndarray, sids: np.ndarray, timeout: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """One LCP Echo-Request per session; returns (echo_replied, padt_received) boolean arrays."""
    n = len(macs)
    tmpl = np.frombuffer(p.build_lcp_echo_request(b"\x02" + bytes(5), cl.ac_mac, 0x1234, 1, 0, HU_MARK,
                                                  encoder="scapy"), np.uint8)
    data_off = bytes(tmpl).index(HU_MARK)
    rows = np.empty((n, tmpl.size), np.uint8)
    rows[:] = tmpl
    rows[:, 6:12] = macs
    rows[:, 16:18] = sids.astype(">u2").view(np.uint8).reshape(-1, 2)
    rows[:, data_off:data_off + 8] = np.arange(n).astype(">u8").view(np.uint8).reshape(-1, 8)
    key = {(macs[i].tobytes(), int(sids[i])): i for i in range(n)}
    echoed = np.zeros(n, bool)
    padt = np.zeros(n, bool)
    for lo in range(0, n, 512):
        cl._send_rows(rows[lo:lo + 512])
        for _, f in cl.drain():
            _classify(f, key, echoed, padt)
    deadline = time.monotonic() + timeout
    while (echoed | padt).sum() < n and time.monotonic() < deadline:
        cl.wait(0.01)
        for _, f in cl.drain():
            _classify(f, key, echoed, padt)
    return echoed, padt


def _classify(f: bytes, key: dict, echoed: np.ndarray, padt: np.ndarray) -> None:
    m = p.parse_frame(f)
    if type(m) is p.Session and m.lcp_code == p.LCP_ECHO_REPLY:
        i = key.get((m.dst, m.session_id))
        if i is not None:
            echoed[i] = True
    elif type(m) is p.Discovery and m.code == p.PADT:
        i = key.get((m.dst, m.session_id))
        if i is not None:
            padt[i] = True


def settle(ac: ACProcess, cl: Client) -> int:
    """Wait until the AC has handled every PADI/PADR the client sent, then discard the replies
    still queued (answers to retransmissions): the next phase starts clean. Returns how many."""
    ac.wait_for(lambda s: sum(s["padi"]) + sum(s["padr"]) >= cl.sent, timeout=15, required=False)
    ac.wait_for(lambda s: True, required=False)  # one more interval: the last replies are out
    late = 0
    while True:
        got = cl.drain()
        if not got:
            return late
        late += len(got)


def unique_macs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    macs = random_macs(n, rng=rng)
    while True:
        _, first = np.unique(macs, axis=0, return_index=True)
        if first.size == n:
            return macs
        dup = np.setdiff1d(np.arange(n), first)
        macs[dup] = random_macs(dup.size, rng=rng)


def run(args) -> dict:
    w = args.workers
    macs = unique_macs(2 * args.subscribers, args.seed)
    result: dict = {
        "bench": "ac", "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "config": {"workers": w, "subscribers": args.subscribers, "window": args.window, "timeout_s": args.timeout,
                   "max_tries": args.max_tries, "encoder": args.encoder, "steering": args.steering,
                   "kill_worker": args.kill_worker, "kill_at": args.kill_at, "seed": args.seed},
    }
    with TwoNodeTopology.unique(prefix="bench-ac") as topo:
        ac_mac = bytes.fromhex(topo.node_mac.replace(":", ""))
        ac = start_ac(topo, w, args.encoder, args.steering)
        cl = Client(topo, ac_mac)
        try:
            result["ac_ready_s"] = round(ac.ready_seconds, 3)
            # -- phase 1 ------------------------------------------------------------------------
            hs1 = Handshakes(macs[:args.subscribers], w, args.timeout, args.max_tries)
            secs = run_handshakes(cl, hs1, args.window, args.deadline)
            ph1 = summarize(hs1, secs, w)
            want = ph1["completed"]
            snap = ac.wait_for(lambda s: sum(s["sessions"]) >= want, required=False)
            ph1["sessions_per_worker_ac"] = snap["sessions"]
            ph1["ac_drops"] = sum(snap["drops"])
            ph1["late_replies_discarded"] = settle(ac, cl)
            result["phase1"] = ph1
            # -- phase 2: kill a worker under load ----------------------------------------------
            hs2 = Handshakes(macs[args.subscribers:], w, args.timeout, args.max_tries)
            kill: dict = {}
            kill_when = int(args.kill_at * hs2.n)

            def on_progress(done: int, now: float) -> None:
                if not kill and done >= kill_when:
                    pid = ac.worker_pids()[args.kill_worker]
                    kill.update(pid=pid, t=time.monotonic(), rt=time.time(), done_before=done)
                    os.kill(pid, signal.SIGKILL)

            secs = run_handshakes(cl, hs2, args.window, args.deadline, on_progress)
            ph2 = summarize(hs2, secs, w)
            k = args.kill_worker
            ph2["killed_worker"] = k
            if kill:
                tk, tk_rt = kill["t"], kill["rt"]
                ph2["killed_pid"] = kill["pid"]
                ph2["killed_after_handshakes"] = kill["done_before"]
                ready = ac.wait_log(rf"worker {k} ready again after ([\d.]+) s", tk, 30)
                if ready:
                    ph2["restart_s_supervisor"] = float(ready[1].group(1))
                    ph2["restart_s_observed"] = round(ready[0] - tk, 4)
                ph2["new_pid"] = ac.worker_pids().get(k)
                replies_k = sorted(t for t, wk in hs2.t_reply if wk == k)
                after = [t for t in replies_k if t >= tk_rt]
                before = [t for t in replies_k if t < tk_rt]
                ph2["killed_worker_reply_gap_s"] = round(after[0] - before[-1], 4) if after and before else None
                ph2["first_reply_after_kill_s"] = round(after[0] - tk_rt, 4) if after else None
                on_k = hs2.worker == k
                straddled = on_k & (hs2.t_start < tk_rt) & ~(hs2.t_done < tk_rt)
                ph2["killed_worker_in_flight_at_kill"] = int(straddled.sum())
                retx = (hs2.retx_padi + hs2.retx_padr + hs2.fallbacks) > 0
                ph2["needed_retransmit_killed_worker"] = int((retx & on_k).sum())
                ph2["needed_retransmit_other_workers"] = int((retx & ~on_k).sum())
                ph2["failed_killed_worker"] = int(((hs2.state == FAILED) & on_k).sum())
                ph2["cookies_from_dead_process_honoured"] = int((on_k & (hs2.t_pado < tk_rt) & (hs2.t_done >= tk_rt)).sum())
            snap = ac.wait_for(lambda s: True, required=False)
            ph2["restarts"] = snap["restarts"]
            ph2["ac_drops"] = sum(snap["drops"])
            ph2["late_replies_discarded"] = settle(ac, cl)
            result["phase2"] = ph2
            # -- phase 3: which sessions survived? ----------------------------------------------
            d1, d2 = hs1.state == DONE, hs2.state == DONE
            all_macs = np.concatenate([hs1.macs[d1], hs2.macs[d2]])
            all_sids = np.concatenate([hs1.sid[d1], hs2.sid[d2]])
            all_w = np.concatenate([hs1.worker[d1], hs2.worker[d2]])
            t_done = np.concatenate([hs1.t_done[d1], hs2.t_done[d2]])
            echoed, padt = echo_check(cl, all_macs, all_sids)
            lost_expected = (all_w == k) & (t_done < kill.get("rt", -np.inf))
            snap = ac.wait_for(lambda s: True, required=False)
            result["phase3"] = {
                "sessions": int(all_sids.size),
                "echo_replies": int(echoed.sum()),
                "padt": int(padt.sum()),
                "no_answer": int((~echoed & ~padt).sum()),
                "padt_exactly_the_killed_process_sessions": bool(np.array_equal(padt, lost_expected)),
                "sessions_per_worker_ac": snap["sessions"],
                "sessions_per_worker_alive_client": np.bincount(all_w[echoed], minlength=w).tolist(),
            }
            # Sessions the AC holds that no client uses: a retransmitted PADR still queued when the
            # worker died is answered by its replacement with a new session the client ignores.
            result["phase3"]["orphan_sessions_ac"] = int(sum(snap["sessions"]) - echoed.sum())
        finally:
            rc, final = ac.stop()
            cl.close()
        result["ac_exit_status"] = rc
        result["final_counters"] = {key: final.get(key) for key in (
            "padi", "pado", "padr", "pads", "pads_error", "bad_cookie", "malformed", "ignored", "padt_rx", "padt_tx",
            "echo", "sessions", "drops", "restarts", "handler_errors", "tx_errors")}
        result["ac_log"] = [line for line in ac.log if "worker" in line or "error" in line][:20]
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def print_table(r: dict) -> None:
    p1, p2, p3 = r["phase1"], r["phase2"], r["phase3"]
    w = r["config"]["workers"]
    rows = [
        ("", "phase 1", f"phase 2 (kill w{p2['killed_worker']})"),
        ("subscribers", p1["subscribers"], p2["subscribers"]),
        ("completed", p1["completed"], p2["completed"]),
        ("failed", p1["failed"], p2["failed"]),
        ("needed retransmit", p1["needed_retransmit"], p2["needed_retransmit"]),
        ("handshakes/s", p1["handshakes_per_s"], p2["handshakes_per_s"]),
        ("latency p50/p99/max ms", "/".join(str(p1["latency_ms"].get(q)) for q in ("p50", "p99", "max")),
         "/".join(str(p2["latency_ms"].get(q)) for q in ("p50", "p99", "max"))),
    ]
    width = max(len(str(a)) for a, _, _ in rows)
    print(f"pfrps-ac bench: {w} workers, {r['cpus']} CPUs, encoder {r['config']['encoder']}, "
          f"steering {r['config']['steering']}, window {r['config']['window']}")
    for a, b, c in rows:
        print(f"  {str(a):<{width}}  {str(b):>12}  {str(c):>22}")
    print(f"  sessions per worker (AC gauge, phase 1): {p1['sessions_per_worker_ac']}")
    print(f"  restart of worker {p2['killed_worker']}: supervisor {p2.get('restart_s_supervisor')} s, "
          f"kill->log {p2.get('restart_s_observed')} s, kill->first reply to its subscribers "
          f"{p2.get('first_reply_after_kill_s')} s (gap between replies {p2.get('killed_worker_reply_gap_s')} s); in flight at the kill {p2.get('killed_worker_in_flight_at_kill')}, "
          f"retransmitted {p2.get('needed_retransmit_killed_worker')} (others {p2.get('needed_retransmit_other_workers')}), "
          f"failed {p2['failed']}; dead process's cookies honoured {p2.get('cookies_from_dead_process_honoured')}")
    print(f"  after the kill: {p3['echo_replies']} sessions answer LCP echo, {p3['padt']} get PADT "
          f"(exactly the killed process's: {p3['padt_exactly_the_killed_process_sessions']}), "
          f"{p3['no_answer']} no answer; AC gauge {p3['sessions_per_worker_ac']}")


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python -m bench.ac_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=10_000, help="subscribers per phase (default: 10000)")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--window", type=int, default=2000, help="handshakes in flight at most (default: 2000)")
    ap.add_argument("--timeout", type=float, default=1.0, help="first PADI/PADR timeout, s; doubles (default: 1)")
    ap.add_argument("--max-tries", type=int, default=5, help="sends per stage before giving up (default: 5)")
    ap.add_argument("--deadline", type=float, default=120.0, help="give a phase up after this long, s")
    ap.add_argument("--kill-worker", type=int, default=3)
    ap.add_argument("--kill-at", type=float, default=0.3, help="fraction of phase 2 done at the kill (default: 0.3)")
    ap.add_argument("--encoder", choices=p.ENCODERS, default="struct")
    ap.add_argument("--steering", choices=("filter", "fanout"), default="filter")
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ac.json")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("ac_bench: error: needs root (BPF, PF_PACKET, network namespaces)", file=sys.stderr)
        return 2
    if not 0 <= args.kill_worker < args.workers:
        print(f"ac_bench: error: --kill-worker must be in 0..{args.workers - 1}", file=sys.stderr)
        return 2
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"  results: {args.out}")
    ok = (result["phase1"]["completed"] == args.subscribers and result["phase2"]["completed"] == args.subscribers
          and result["ac_exit_status"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
