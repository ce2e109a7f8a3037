"""An embedding program for tests/root/test_supervisor_asyncio.py (run as a script).

A :class:`pfrps.Supervisor` with worker mailboxes, driven by ``run()`` (driver ``run``) or by
``await serve()`` on asyncio's loop (``asyncio``) or uvloop's (``uvloop``); ``-inner``/``-outer``
say whether ``start()`` is called from a coroutine or before the loop runs (default: asyncio
inner, uvloop outer). Next to the supervision it serves a management socket (a unix stream
socket, one JSON line in, one JSON line out): from an asyncio server task on the same loop, or
from ``Supervisor.add_reader`` under ``run()``; the async drivers also run a ticker task.

Commands: ``{"op": "status"}`` -> total frames, ticker ticks, worker pids and readiness;
``{"op": "ask", "ids": null|[...], "payload": str}`` -> ``{"replies": {id: str}}`` (``ask()``, or
``request()`` under ``run()``); ``{"op": "tell", "ids": ..., "payload": str}`` -> ``{"sent": [...]}``;
``{"op": "stop"}`` -> ``request_stop()``; ``{"op": "cancel"}`` cancels the task awaiting
``serve()`` (which then prints ``CANCELLED`` and exits 0). Workers answer ``id`` with their id, count ``bump``
and answer ``told`` with that count; ``on_stop`` leaves ``stop-<id>-<pid>`` in OUTDIR.

Prints a JSON snapshot per emit (and a last one after the stop), then ``FAILED <why>`` when a
worker kept dying, ``TICKS n``, ``WAKEUP fd`` (the signal wakeup fd left behind: -1) and
``STATUS rc``; exits with rc. Writes ``READY`` to READY_FD once the workers and the
management socket are up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import uvloop

from pfrps import Supervisor, SupervisorConfig
from pfrps.errors import PfrpsError

ap = argparse.ArgumentParser()
ap.add_argument("ifname")
ap.add_argument("workers", type=int)
ap.add_argument("driver", choices=("run", "asyncio", "asyncio-outer", "uvloop", "uvloop-inner"))
ap.add_argument("outdir", type=Path)
ap.add_argument("ready_fd", type=int)
ap.add_argument("--count", type=int)
ap.add_argument("--duration", type=float, default=120.0)
ap.add_argument("--burst", type=int, default=5)
args = ap.parse_args()
mgmt_path = str(args.outdir / "mgmt.sock")
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")  # "ready again" is INFO


def on_stop(ctx):
    (args.outdir / f"stop-{ctx.worker_id}-{os.getpid()}").write_text("")


def on_message(ctx, payload: bytes):
    if payload == b"id":
        return str(ctx.worker_id).encode()
    if payload == b"bump":
        ctx.storage["told"] = ctx.storage.get("told", 0) + 1
        return b"bumped"
    if payload == b"told":
        return str(ctx.storage.get("told", 0)).encode()
    return b"?"


sup = Supervisor(SupervisorConfig(args.ifname, workers=args.workers, mailboxes=True, restart_burst=args.burst),
                 on_stop=on_stop, on_message=on_message)
ticks = 0


def emit():
    print(json.dumps(sup.snapshot()), flush=True)


def status() -> dict:
    return {"total": sup.total(), "ticks": ticks, "pids": [s.pid for s in sup.slots],
            "ready": [s.ready for s in sup.slots]}


def command(req: dict):
    """The answer to ``req``, or for ``ask`` the (ids, payload) to ask with."""
    op = req["op"]
    if op == "status":
        return status()
    if op == "tell":
        return {"sent": sup.tell(req.get("ids"), req["payload"].encode())}
    if op == "stop":
        sup.request_stop()
        return {"stopping": True}
    if op == "cancel":  # the async drivers: cancel the task awaiting serve()
        serving[0].cancel()
        return {"cancelled": True}
    return None


serving: list = []  # the task awaiting serve()


def replies(got: dict) -> dict:
    return {"replies": {str(w): r.decode() for w, r in got.items()}}


def signal_ready() -> None:
    os.write(args.ready_fd, b"READY\n")
    os.close(args.ready_fd)


def run_blocking() -> int:
    sup.start()
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(mgmt_path)
    lsock.listen(8)

    def on_accept():
        conn, _ = lsock.accept()
        with conn:
            conn.settimeout(10)
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            req = json.loads(data)
            res = command(req)
            if res is None:  # ask: the blocking request() under run()
                res = replies(sup.request(req.get("ids"), req["payload"].encode(), timeout=5.0))
            conn.sendall(json.dumps(res).encode() + b"\n")

    sup.add_reader(lsock.fileno(), on_accept)
    signal_ready()
    try:
        return sup.run(emit, interval=0.2, duration=args.duration, count=args.count)
    finally:
        sup.remove_reader(lsock.fileno())
        lsock.close()


async def amain(inner: bool) -> int:

    if inner:
        sup.start()  # inside the running loop: blocks it while the workers start; nothing else runs yet

    async def ticker():
        global ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            req = json.loads(await reader.readline())
            res = command(req)
            if res is None:
                res = replies(await sup.ask(req.get("ids"), req["payload"].encode(), timeout=5.0))
            writer.write(json.dumps(res).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    tick_task = asyncio.create_task(ticker())
    server = await asyncio.start_unix_server(handle, mgmt_path)
    serving.append(asyncio.current_task())
    signal_ready()
    try:
        return await sup.serve(emit, interval=0.2, duration=args.duration, count=args.count)
    except asyncio.CancelledError:
        print("CANCELLED", flush=True)
        return 0
    finally:
        tick_task.cancel()
        server.close()


def main() -> int:
    loop_kind, _, where = args.driver.partition("-")
    try:
        if loop_kind == "run":
            rc = run_blocking()
        else:
            inner = (where or ("inner" if loop_kind == "asyncio" else "outer")) == "inner"
            if not inner:
                sup.start()
            rc = (asyncio.run if loop_kind == "asyncio" else uvloop.run)(amain(inner))
    except PfrpsError as exc:
        return exc.report("embed")
    finally:
        sup.close()
    if sup.failed:
        print("FAILED", sup.failed, flush=True)
    print("TICKS", ticks, flush=True)
    print("WAKEUP", signal.set_wakeup_fd(-1), flush=True)
    print("STATUS", rc, flush=True)
    return rc


sys.exit(main())
