"""The 1,000,000-frame fuzz run of pfrps-ac and of a plain pfrps handler (issue 10).

Run as root from the repository::

    .venv/bin/python -m bench.fuzz                            # 1,000,000 direct + 200,000 over sockets
    .venv/bin/python -m bench.fuzz --frames 100000 --socket-frames 20000 --seed 7 --out /tmp/fuzz.json

Frames come from :mod:`pfrps.testing.fuzz_frames` (seeded: the same seed gives the same frames).

1. Direct: ``--frames`` frames handed to the AC's handler in this process as the kernel would
   (``kernel_view``: outer VLAN tag stripped into ``vlan_tci``), 4 workers steered by mac_hash,
   a simulated clock (0.1 ms per frame) driving keepalive sweeps, every reply parsed back; then
   the same frames through the plain handler. On this shared 2-CPU machine a socket path runs
   at a few thousand frames/s per worker, so the bulk of the million goes this way.
2. Sockets: ``--socket-frames`` frames sent on the veth of a fresh two-namespace topology into
   ``pfrps-ac`` (4 workers) and into the plain handler (``python -m pfrps.testing.fuzz_frames
   plain``), paced at ``--rate`` (:func:`pfrps.testing.fuzz_frames.flood`); counted as in
   tests/root/test_fuzz.py.

Reported per run: frames, exceptions (handler raised) and handler_errors, replies that do not
parse, served/ignored/malformed and whether they add up, frames lost without a counter, the
largest session table, and resident memory growth after the warm-up (bytes). Results go to
``bench/results/fuzz.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from pfrps.cliutil import ArgumentParser
from pfrps.testing.fuzz_frames import (AC_MAC, PLAIN_COUNTERS, RATE, expected, fetch_cookies, flood, fuzz_ac_direct,
                                       generate, kernel_view, plain_handler, pool_macs, rss_bytes)

REPO = Path(__file__).resolve().parent.parent

EPILOG = """\
examples:
  .venv/bin/python -m bench.fuzz
  .venv/bin/python -m bench.fuzz --frames 100000 --socket-frames 0      # direct only, no root needed
  .venv/bin/python -m bench.fuzz --seed 7 --rate 5000 --out /tmp/fuzz.json
"""


def direct_plain(seed: int, count: int, workers: int = 4, warmup: int = 10_000) -> dict:
    """``count`` frames through :func:`pfrps.testing.fuzz_frames.plain_handler` with counters in a dict."""
    from pfrps.hashing import worker_for  # noqa: PLC0415

    class Ctx:
        def __init__(self) -> None:
            self.storage: dict = {}
            self.counts = dict.fromkeys(PLAIN_COUNTERS, 0)

        def count(self, name: str, n: int = 1) -> None:
            self.counts[name] += n

    ctxs = [Ctx() for _ in range(workers)]
    res = {"frames": 0, "exceptions": 0}
    gen = generate(seed, count)
    done = 0
    t0 = time.monotonic()
    while done < count:
        views = [kernel_view(kf[1], ()) for _i, kf in zip(range(4096), gen)]
        done += len(views)
        views = [v for v in views if v is not None]
        owners = worker_for(b"".join(v[0][6:12] for v in views), workers).tolist() if views else []
        for (frame, tci), w in zip(views, owners):
            res["frames"] += 1
            try:
                plain_handler(memoryview(frame), SimpleNamespace(vlan_tci=tci), ctxs[w])
            except Exception:  # noqa: BLE001  (the fuzz looks for any exception)
                res["exceptions"] += 1
        if done <= warmup < done + 4096:
            res["rss_after_warmup"] = rss_bytes()
        if done <= count // 2 < done + 4096:
            res["rss_half"] = rss_bytes()
    res["seconds"] = time.monotonic() - t0
    res.setdefault("rss_after_warmup", rss_bytes())
    res.setdefault("rss_half", res["rss_after_warmup"])
    res["rss_end"] = rss_bytes()
    res["counters"] = {n: sum(c.counts[n] for c in ctxs) for n in PLAIN_COUNTERS}
    res["outcomes_add_up"] = sum(res["counters"].values()) == res["frames"]
    res["largest_table"] = max(len(c.storage) for c in ctxs)
    return res


def socket_runs(seed: int, count: int, rate: float) -> dict:
    """The socket slice through pfrps-ac and the plain handler, sent at ``rate`` frames/s;
    figures, not assertions."""
    from pfrps.testing.ac import ACProcess, PPPoEClient, totals  # noqa: PLC0415
    from pfrps.topology import TwoNodeTopology  # noqa: PLC0415

    out = {}
    with TwoNodeTopology.unique(prefix="bench-fuzz") as topo:
        for name in ("pfrps-ac", "plain"):
            if name == "pfrps-ac":
                proc = ACProcess(topo, "--service-name", "internet", "--service-name", "voip", "--cookie-window",
                                 "3600", "--max-sessions", "256", "--echo-interval", "1", "--echo-misses", "2")
            else:
                proc = ACProcess(topo, argv=[sys.executable, "-m", "pfrps.testing.fuzz_frames", "plain", "-i",
                                             topo.node_if, "-w", "4", "--interval", "0.05"])
            cl = PPPoEClient(topo)
            try:
                cookies: dict = {}
                if name == "pfrps-ac":
                    macs = pool_macs(64, seed)
                    cookies = fetch_cookies(cl, macs)
                    frames = [f for _k, f in generate(seed, count, AC_MAC, macs, cookies, socket_safe=True)]
                else:
                    frames = [f for _k, f in generate(seed + 1, count, AC_MAC, socket_safe=True)]
                want, want_malformed, want_rx_dropped = expected(frames)
                t0 = time.monotonic()
                snap, growth = flood(proc, cl, frames, len(cookies), rate=rate)
                seconds = time.monotonic() - t0
                t = totals(snap)
                outcomes = t["served"] + t["ignored"] + t["malformed"]
                out[name] = {
                    "frames_sent": count, "frames_predicted": want, "frames": t["frames"] - len(cookies),
                    "ring_drops": t["drops"], "unreported_losses": want + len(cookies) - t["frames"] - t["drops"],
                    "malformed": t["malformed"], "malformed_predicted": want_malformed,
                    "outcomes_add_up": outcomes == t["frames"], "handler_errors": t["handler_errors"],
                    "restarts": t["restarts"], "if_rx_dropped": snap["if_rx_dropped"],
                    "tagged_frames_stripped": want_rx_dropped, "seconds": seconds,
                    "rss_growth_per_worker": sorted(growth.values()),
                    "counters": {k: v for k, v in t.items() if k not in ("bytes",)},
                }
            finally:
                rc, _final = proc.stop()
                cl.close()
            out[name]["exit_status"] = rc
            out[name]["tracebacks_logged"] = sum("Traceback" in ln for ln in proc.log)
    return out


def main(argv=None) -> int:
    """Run the fuzz bench; print a summary and write the JSON results. Exit 1 when a run found a
    crash, an exception, a bad reply or outcomes that do not add up."""
    ap = ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n")[0], epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000, help="direct frames (default: 1000000)")
    ap.add_argument("--socket-frames", type=int, default=200_000, help="frames over sockets, 0: none (default: 200000)")
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--rate", type=float, default=RATE, help=f"socket send rate, frames/s (default: {RATE:.0f})")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fuzz.json")
    args = ap.parse_args(argv)
    if args.frames < 1 or args.socket_frames < 0 or not 0 < args.rate < float("inf"):
        print("fuzz: error: --frames must be 1 or more, --socket-frames 0 or more, --rate above 0; see "
              "python -m bench.fuzz -h", file=sys.stderr)
        return 2
    if args.socket_frames and os.geteuid() != 0:
        print("fuzz: error: the socket runs need root (BPF, PF_PACKET, network namespaces); run as root or "
              "pass --socket-frames 0", file=sys.stderr)
        return 2
    print(f"fuzz: seed {args.seed}: {args.frames} frames direct, {args.socket_frames} over sockets at "
          f"{args.rate:.0f} frames/s", flush=True)
    res: dict = {"seed": args.seed, "host": platform.node(), "cpus": os.cpu_count(),
                 "load_at_start": os.getloadavg()[0]}
    r = fuzz_ac_direct(args.seed, args.frames, workers=4, frame_seconds=1e-4, echo_interval=5.0, echo_misses=2,
                       max_sessions=256, padt_rate=100.0, padt_burst=50)
    r["rss_growth"] = r["rss_end"] - r["rss_after_warmup"]
    r["rss_growth_second_half"] = r["rss_end"] - r["rss_half"]
    res["direct_ac"] = r
    print(f"fuzz: AC direct: {r['frames']} frames in {r['seconds']:.1f} s ({r['frames'] / r['seconds']:.0f}/s), "
          f"{r['exceptions']} exceptions, {r['bad_replies']} bad replies of {r['replies']}, outcomes add up "
          f"{r['outcomes_add_up']}, largest session table {r['largest_table']}, RSS growth {r['rss_growth']} B "
          f"after the warm-up, {r['rss_growth_second_half']} B in the second half",
          flush=True)
    q = direct_plain(args.seed, args.frames)
    q["rss_growth"] = q["rss_end"] - q["rss_after_warmup"]
    q["rss_growth_second_half"] = q["rss_end"] - q["rss_half"]
    res["direct_plain"] = q
    print(f"fuzz: plain direct: {q['frames']} frames in {q['seconds']:.1f} s, {q['exceptions']} exceptions, outcomes "
          f"add up {q['outcomes_add_up']}, table {q['largest_table']}, RSS growth {q['rss_growth']} B after the "
          f"warm-up, {q['rss_growth_second_half']} B in the second half", flush=True)
    ok = not r["exceptions"] and not r["bad_replies"] and r["outcomes_add_up"] and not q["exceptions"] \
        and q["outcomes_add_up"]
    if args.socket_frames:
        res["sockets"] = socket_runs(args.seed, args.socket_frames, args.rate)
        for name, s in res["sockets"].items():
            print(f"fuzz: {name} sockets: {s['frames']}/{s['frames_predicted']} predicted frames handled, "
                  f"{s['ring_drops']} ring drops, {s['unreported_losses']} unreported losses, malformed "
                  f"{s['malformed']}/{s['malformed_predicted']}, outcomes add up {s['outcomes_add_up']}, "
                  f"{s['handler_errors']} handler errors, {s['restarts']} restarts, exit {s['exit_status']}, "
                  f"RSS growth per worker {s['rss_growth_per_worker']} B, {s['seconds']:.1f} s", flush=True)
            ok = ok and s["outcomes_add_up"] and not s["handler_errors"] and not s["restarts"] \
                and not s["unreported_losses"] and s["exit_status"] == 0 and not s["tracebacks_logged"]
    res["load_at_end"] = os.getloadavg()[0]
    res["ok"] = ok
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1, default=str) + "\n")
    print(f"fuzz: {'PASS' if ok else 'FAIL'}; results in {args.out}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
