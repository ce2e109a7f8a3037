"""Run inside the node namespace: an embedded Supervisor on several interfaces whose handler
checks every frame and answers it out of the port it came in on.

argv: ``IF,IF2 workers alg steering rx frames``. Prints ``READY`` once every worker is ready,
then, after ``frames`` frames (or 30 s), one JSON line: the snapshot's ``frames`` and
``interfaces``, ``misrouted`` (frames whose source MAC hashes to another worker), ``port<k>``
(frames whose ``meta.ifindex`` is port k's, per worker), ``badport`` (a ``meta.ifindex`` that is
no port of the worker) and the ifindexes. Each frame is answered with one frame (source and
destination swapped, ethertype 0x88b5) through ``ctx.transmit`` with no port named.
"""

import json
import sys

import numpy as np

from pfrps.config import SupervisorConfig
from pfrps.hashing import worker_for
from pfrps.supervisor import Supervisor

ifnames = tuple(sys.argv[1].split(","))
workers, alg, steering, rx, frames = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
PORTS = tuple(f"port{k}" for k in range(len(ifnames)))


def handler(frame, meta, ctx):
    mac = np.frombuffer(frame[6:12], dtype=np.uint8)
    if int(worker_for(mac, ctx.worker_count, alg)[0]) != ctx.worker_id:
        ctx.count("misrouted")
    if meta.ifindex not in ctx.ifindexes:
        ctx.count("badport")
        return
    ctx.count(PORTS[ctx.ifindexes.index(meta.ifindex)])
    ctx.transmit(bytes(frame[6:12]) + bytes(frame[0:6]) + b"\x88\xb5" + bytes(46))


cfg = SupervisorConfig(interfaces=ifnames, workers=workers, hash_alg=alg, steering=steering, rx=rx,
                       app_counters=("misrouted", "badport", *PORTS))
sup = Supervisor(cfg, handler=handler)
try:
    sup.start()
    print("READY", flush=True)
    sup.run(lambda: None, interval=0.2, duration=30, count=frames)
    snap = sup.snapshot()
    line = sup.line()
finally:
    sup.close()
print(json.dumps({"ifindexes": sup.ifindexes, "line": line,
                  **{k: snap[k] for k in ("frames", "interfaces", "misrouted", "badport", "tx_frames", *PORTS)}}))
