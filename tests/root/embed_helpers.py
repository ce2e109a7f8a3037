"""Helpers of the link-event and watchdog tests (test_link_events.py, test_watchdog.py): an
embedding program that records every frame it handles, and a process wrapper that waits for
output lines instead of sleeping."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from pfrps.cliutil import wait_ready
from tests.helpers import PY

#: argv: ifname workers rx steering outdir ready_fd watchdog mode [poison-mac]
#: mode: plain | busy (1 ms per frame from 02:1x:...) | poison (the frame from the poison MAC never returns) |
#: slow (1 s per frame). Every handled frame's source MAC is appended to outdir/h-<wid>-<pid>
#: (6 bytes, O_APPEND: survives a SIGKILL); on_stop touches outdir/stop-<wid>-<pid>; link events
#: go to stdout as EVENT lines, the snapshot as JSON lines every 0.2 s.
EMBED = r"""
import json, os, sys, time
from pathlib import Path
from pfrps import Supervisor, SupervisorConfig
from pfrps.errors import PfrpsError
from pfrps.logs import setup_logging
from pfrps.stats import dumps

setup_logging("info", prog="embed")

ifname, workers, rx, steering, outdir, ready_fd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], Path(sys.argv[5]), int(sys.argv[6])
watchdog, mode = float(sys.argv[7]), sys.argv[8]
poison = bytes.fromhex(sys.argv[9].replace(":", "")) if len(sys.argv) > 9 else b""

def on_start(ctx):
    ctx.storage["fd"] = os.open(outdir / f"h-{ctx.worker_id}-{os.getpid()}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

def handler(frame, meta, ctx):
    mac = bytes(frame[6:12])
    if mode == "busy" and 0x10 <= mac[1] < 0x20:  # the bursts of test_link_events: 1 ms each
        time.sleep(0.001)
    elif mode == "slow":
        time.sleep(1.0)
    elif mode == "poison" and mac == poison:
        while True:
            pass
    os.write(ctx.storage["fd"], mac)

def on_stop(ctx):
    (outdir / f"stop-{ctx.worker_id}-{os.getpid()}").write_text("")

def on_link(ev):
    print("EVENT", ev.kind, ev.ifname, ev.flaps, flush=True)

cfg = SupervisorConfig(ifname, workers=workers, rx=rx, steering=steering, watchdog=watchdog)
sup = Supervisor(cfg, handler=handler, on_start=on_start, on_stop=on_stop, on_link_event=on_link)
try:
    try:
        sup.start()
        os.write(ready_fd, b"READY\n")
        os.close(ready_fd)
        status = sup.run(lambda: print(dumps(sup.snapshot()), flush=True), interval=0.2)
    except PfrpsError as exc:
        sys.exit(exc.report("embed"))
finally:
    sup.close()
print("STATUS", status, flush=True)
sys.exit(status)
"""


class Watched:
    """A process whose stdout and stderr are read as they come; :meth:`wait_for` waits for a
    condition on them (never a fixed sleep)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.out = ""
        self.err = ""
        self.sel = selectors.DefaultSelector()
        for stream in (proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
            self.sel.register(stream, selectors.EVENT_READ)

    def pump(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            try:
                data = os.read(key.fileobj.fileno(), 1 << 16).decode(errors="replace")
            except BlockingIOError:
                continue
            if not data:
                self.sel.unregister(key.fileobj)
                continue
            if key.fileobj is self.proc.stdout:
                self.out += data
            else:
                self.err += data

    def wait_for(self, cond: Callable[["Watched"], bool], timeout: float, what: str = "") -> float:
        """Seconds until ``cond(self)`` held; fails the test after ``timeout``."""
        t0 = time.monotonic()
        while not cond(self):
            left = t0 + timeout - time.monotonic()
            if left <= 0 or (not self.sel.get_map() and self.proc.poll() is not None):
                raise AssertionError(f"timed out waiting for {what}\nstdout tail: {self.out[-2000:]}\n"
                                     f"stderr: {self.err[-4000:]}")
            self.pump(min(left, 0.05))
        return time.monotonic() - t0

    def last_json(self) -> dict:
        lines = [ln for ln in self.out.splitlines() if ln.startswith("{")]
        return json.loads(lines[-1]) if lines else {}

    def total(self) -> int:
        return int(self.last_json().get("total", 0))

    def finish(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.sel.get_map() and time.monotonic() < deadline:
            self.pump(0.1)
        self.proc.wait(timeout=max(deadline - time.monotonic(), 1))
        self.sel.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sel.close()


def start_embed(topo, outdir: Path, workers: int, rx: str, steering: str, watchdog: float = 10.0,
                mode: str = "plain", poison: str = "") -> tuple[Watched, bool]:
    r, w = os.pipe()
    argv = [PY, "-c", EMBED, topo.node_if, str(workers), rx, steering, str(outdir), str(w), str(watchdog), mode]
    if poison:
        argv.append(poison)
    proc = topo.popen(topo.node, argv, pass_fds=(w,), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(w)
    ready = wait_ready(r, 90)
    return Watched(proc), ready


def handled(outdir: Path) -> dict[int, Counter]:
    """``{worker id: Counter(source MAC bytes)}`` of every frame the handlers finished."""
    out: dict[int, Counter] = {}
    for p in outdir.glob("h-*"):
        wid = int(p.name.split("-")[1])
        data = p.read_bytes()
        out.setdefault(wid, Counter()).update(data[i:i + 6] for i in range(0, len(data) - 5, 6))
    return out


def stopped(outdir: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in outdir.glob("stop-*"))


def link(topo, state: str) -> None:
    subprocess.run(["ip", "-n", topo.node, "link", "set", topo.node_if, state], check=True)


def macs_bytes(macs) -> list[bytes]:
    """``(n, 6)`` uint8 array -> list of 6-byte MACs."""
    return [bytes(m) for m in macs]
