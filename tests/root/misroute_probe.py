"""Run inside the node namespace: an embedded Supervisor whose handler checks every frame.

Prints one JSON line: per-worker frames and misrouted frames (source MAC hashing to another
worker). Started while traffic already flows, so a frame queued before the filter was attached
would show up as misrouted.
"""

import json
import sys

import numpy as np

from pfrps.hashing import worker_for
from pfrps.config import SupervisorConfig
from pfrps.supervisor import Supervisor

ifname, workers, alg, seconds, steering = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]


def handler(frame, meta, ctx):
    mac = np.frombuffer(frame[6:12], dtype=np.uint8)
    if int(worker_for(mac, ctx.worker_count, alg)[0]) != ctx.worker_id:
        ctx.count("misrouted")


cfg = SupervisorConfig(interface=ifname, workers=workers, hash_alg=alg, steering=steering, app_counters=("misrouted",))
sup = Supervisor(cfg, handler=handler)
try:
    sup.start()
    sup.run(lambda: None, interval=seconds, duration=seconds)
    snap = sup.snapshot()
finally:
    sup.close()
print(json.dumps({"frames": snap["frames"], "misrouted": snap["misrouted"]}))
