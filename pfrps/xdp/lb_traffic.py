"""Traffic for the load balancer's lab, tests and benchmark: a named TCP server, a client that
holds N connections with chosen source ports, and a short-connection churner.

Run inside a namespace (``python -m pfrps.xdp.lb_traffic ...``):

``serve --port 8080 --name h2``
    Answers every line ``X`` on a connection with ``<name> X``; prints ``READY`` once
    listening (the caller waits for that line, no sleeping). Ends on SIGTERM.
``hold --vip 10.0.0.10 --port 8080 --sport 40000 --count 40``
    Opens ``count`` connections from source ports ``sport, sport+1, ...`` and exchanges one
    request/reply on each, printing one JSON line ``{"round": 1, "served": {sport: name}, ...}``.
    Each further line on stdin (``again``) runs another round on the same connections (they
    stay open); EOF closes them. A connection that fails is reported as ``null``.
``churn --vip 10.0.0.10 --port 8080 --seconds 5 --concurrency 32``
    Short connections (connect, one request/reply, close) for ``seconds``; prints
    ``{"connections": n, "errors": e, "seconds": s}`` (connections/s = n / s).
``blast --vip 10.0.0.10 --port 9000 --seconds 5 --flows 64``
    UDP datagrams from ``flows`` source ports as fast as one process sends them, for the
    UDP benchmark's sender when trafgen is not wanted; prints ``{"sent": n, "seconds": s}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
import time

from ..cliutil import ArgumentParser

__all__ = ["main"]


def _serve(port: int, name: str) -> int:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(f"{name} ".encode() + line)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def run() -> None:
        server = await asyncio.start_server(handle, "0.0.0.0", port, reuse_address=True, backlog=4096)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, stop.set)
        print("READY", flush=True)
        async with server:
            await stop.wait()

    try:
        import uvloop  # noqa: PLC0415

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())
    return 0


def _exchange(sock: socket.socket | None, text: str) -> str | None:
    if sock is None:
        return None
    try:
        sock.sendall(text.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                return None
            buf += chunk
        reply = buf.decode().strip()
        name, _, echoed = reply.partition(" ")
        return name if echoed == text else None
    except OSError:
        return None


def _hold(vip: str, port: int, sport: int, count: int, timeout: float) -> int:
    socks: dict[int, socket.socket | None] = {}
    for p in range(sport, sport + count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.settimeout(timeout)
        try:
            s.bind(("0.0.0.0", p))
            s.connect((vip, port))
            socks[p] = s
        except OSError:
            s.close()
            socks[p] = None
    rnd = 0
    while True:
        rnd += 1
        served = {str(p): _exchange(s, f"round {rnd} from {p}") for p, s in socks.items()}
        print(json.dumps({"round": rnd, "served": served}), flush=True)
        if not sys.stdin.readline():
            break
    for s in socks.values():
        if s is not None:
            s.close()
    return 0


def _churn(vip: str, port: int, seconds: float, concurrency: int) -> int:
    done = errors = 0

    async def one_worker(end: float) -> None:
        nonlocal done, errors
        while time.monotonic() < end:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(vip, port), 3)
                writer.write(b"hello\n")
                line = await asyncio.wait_for(reader.readline(), 3)
                writer.close()
                if line.endswith(b"hello\n"):
                    done += 1
                else:
                    errors += 1
            except (OSError, asyncio.TimeoutError):
                errors += 1

    async def run() -> float:
        t0 = time.monotonic()
        await asyncio.gather(*(one_worker(t0 + seconds) for _ in range(concurrency)))
        return time.monotonic() - t0

    try:
        import uvloop  # noqa: PLC0415

        took = uvloop.run(run())
    except ImportError:
        took = asyncio.run(run())
    print(json.dumps({"connections": done, "errors": errors, "seconds": round(took, 3)}), flush=True)
    return 0


def _blast(vip: str, port: int, seconds: float, flows: int) -> int:
    socks = []
    for _ in range(flows):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((vip, port))
        socks.append(s)
    payload = b"x" * 18
    sent = 0
    t0 = time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        for s in socks:
            for _ in range(16):
                try:
                    s.send(payload)
                    sent += 1
                except OSError:
                    pass
    print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - t0, 3)}), flush=True)
    return 0


def main(argv=None) -> int:
    """Entry point of ``python -m pfrps.xdp.lb_traffic``; returns the exit status."""
    p = ArgumentParser(prog="python -m pfrps.xdp.lb_traffic", description=__doc__.split("\n\n")[0],
                       epilog="examples:\n  python -m pfrps.xdp.lb_traffic serve --port 8080 --name h2\n"
                              "  python -m pfrps.xdp.lb_traffic hold --vip 10.0.0.10 --port 8080 "
                              "--sport 40000 --count 40 < /dev/null\n",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--name", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--vip", required=True)
    h.add_argument("--port", type=int, default=8080)
    h.add_argument("--sport", type=int, default=40000)
    h.add_argument("--count", type=int, default=40)
    h.add_argument("--timeout", type=float, default=5.0)
    c = sub.add_parser("churn")
    c.add_argument("--vip", required=True)
    c.add_argument("--port", type=int, default=8080)
    c.add_argument("--seconds", type=float, default=5.0)
    c.add_argument("--concurrency", type=int, default=32)
    b = sub.add_parser("blast")
    b.add_argument("--vip", required=True)
    b.add_argument("--port", type=int, default=9000)
    b.add_argument("--seconds", type=float, default=5.0)
    b.add_argument("--flows", type=int, default=64)
    a = p.parse_args(argv)
    if a.cmd == "serve":
        return _serve(a.port, a.name)
    if a.cmd == "hold":
        return _hold(a.vip, a.port, a.sport, a.count, a.timeout)
    if a.cmd == "churn":
        return _churn(a.vip, a.port, a.seconds, a.concurrency)
    return _blast(a.vip, a.port, a.seconds, a.flows)


if __name__ == "__main__":
    sys.exit(main())
