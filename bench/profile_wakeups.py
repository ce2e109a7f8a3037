"""Wake-ups and CPU per wake-up of the receive bench's receivers (for bench/PROFILE.md)."""
import sys, time, os
sys.path.insert(0, ".")
from pathlib import Path
from bench import common
from pfrps.topology import TwoNodeTopology, netns_pids

def ctx(pids):
    tot = 0
    for pid in pids:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                for ln in open(f"/proc/{pid}/task/{t}/status"):
                    if ln.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        tot += int(ln.split()[1])
            except OSError:
                pass
    return tot

cfg = common.trafgen_cfg_path(Path("/tmp/wk"))
frames = 2_000_000
with TwoNodeTopology.unique(prefix="pfw") as topo:
    for label, args in [("ring N=1", ["-w", "1"]), ("ring N=8", ["-w", "8"]),
                        ("ring N=8 16x256KiB", ["-w", "8", "--ring-block-size", "262144", "--ring-blocks", "16"]),
                        ("netsniff-ng", None)]:
        if args is None:
            proc = common.NetsniffProc(topo)
        else:
            proc = common.PfrpsProc(topo, [*args, "--steering", "fanout", "--rx", "ring", "--interval", "0.1"])
        try:
            pids = netns_pids(topo.node)
            c0, w0 = common.cpu_ns(pids), ctx(pids)
            sent = common.run_trafgen(topo, cfg, frames)
            c1, w1 = common.cpu_ns(pids), ctx(pids)
        finally:
            proc.stop()
        cpu = (c1 - c0) / 1e9
        wk = w1 - w0
        print(f"{label:20s} offered {sent.rate:9,.0f}/s  cpu {cpu/sent.seconds:5.1%}  wakeups/s {wk/sent.seconds:7,.0f}  "
              f"frames/wakeup {sent.frames/max(wk,1):6.0f}  cpu/wakeup {cpu/max(wk,1)*1e6:5.0f} us  frames/CPU-s {sent.frames/cpu:,.0f}")
