"""Shared machinery of the benchmark suite: processes in namespaces, parsing, statistics.

Every process a benchmark starts runs inside a :class:`pfrps.topology.TwoNodeTopology` made
with ``TwoNodeTopology.unique(prefix="bench")`` and is started through its ``popen``, so
``destroy()`` (always reached through ``with``) ends it and removes both namespaces.

CPU placement (2-core reference machine): the sender (pfinject, trafgen) runs on CPU 0 and
every receiver (pfrps supervisor and workers, netsniff-ng) on CPU 1, through ``taskset``.
The veth delivers a frame in the sender's softirq on CPU 0, so CPU 0 pays for transmission
plus the kernel's receive work (filters, fanout, queueing, wake-ups) and CPU 1 pays for
user-space receiving only.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from pfrps.cliutil import wait_ready
from pfrps.topology import TwoNodeTopology

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
PY = sys.executable
NODE_MAC = "52:54:00:84:d7:ff"
INJ_IF = "eno1"
NODE_IF = "enp1s0"
SENDER_CPU = "0"
RECEIVER_CPU = "1"
FRAME_LEN = 148

#: The seed's 148-byte PPPoE discovery frame for trafgen: dst, 02 + 5 random bytes, 0x8863,
#: ver/type 0x11, code 0, session 0xcafe, length 128, 128 x 0xff.
TRAFGEN_CFG = """\
{
  0x52, 0x54, 0x00, 0x84, 0xd7, 0xff,
  0x02, drnd(5),
  c16(0x8863),
  0x11, 0x00, c16(0xcafe), c16(128),
  fill(0xff, 128)
}
"""



def interrupt_and_wait(proc: subprocess.Popen, name: str, timeout: float, sig: int = signal.SIGINT) -> None:
    """Send ``sig`` to ``proc`` (if still running) and wait ``timeout`` s; kill it and raise if it hangs."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise HarnessError(f"{name} did not stop within {timeout:.0f} s of SIGINT") from None

class HarnessError(RuntimeError):
    """The benchmark machinery itself failed (not a slow result)."""


# -- statistics -------------------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    vals = sorted(v for v in values if v is not None and not math.isnan(v))
    if not vals:
        return float("nan")
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def summary(values: Sequence[float]) -> dict:
    """``{"median", "min", "max", "values"}`` of a list of repetitions."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "values": []}
    return {"median": median(vals), "min": min(vals), "max": max(vals), "values": vals}


def ratio(a: float, b: float) -> float:
    if b is None or a is None or not b or math.isnan(a) or math.isnan(b):
        return float("nan")
    return a / b


@dataclass
class Row:
    """One line of a benchmark's results table.

    ``value`` and ``ref`` are :func:`summary` dicts (``ref`` may be None); ``target`` is a
    human-readable target (``">= 0.8x fanout N=1"``), ``passed`` True/False, or None when the
    row is informational.
    """

    label: str
    unit: str
    value: dict
    ref_label: str = ""
    ref: Optional[dict] = None
    target: str = ""
    passed: Optional[bool] = None
    note: str = ""

    @property
    def ratio(self) -> float:
        return ratio(self.value["median"], self.ref["median"]) if self.ref else float("nan")

    def to_json(self) -> dict:
        return {"label": self.label, "unit": self.unit, "value": self.value, "ref_label": self.ref_label,
                "ref": self.ref, "ratio": self.ratio, "target": self.target, "passed": self.passed,
                "note": self.note}


# -- capabilities -----------------------------------------------------------------------------
def _help(module: str) -> str:
    try:
        return subprocess.run([PY, "-m", module, "--help"], capture_output=True, text=True, timeout=60,
                              cwd=REPO).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def pfrps_has_ring() -> bool:
    """True when ``pfrps --rx ring`` is offered *and* implemented (pfrps.receive has the ring)."""
    if "ring" not in _help("pfrps"):
        return False
    try:
        import importlib  # noqa: PLC0415

        mod = importlib.import_module("pfrps.receive")
        return hasattr(mod, "RxRing") and hasattr(mod, "RingReceiver")
    except Exception:  # noqa: BLE001
        return False


def pfinject_tx_modes() -> dict:
    """What ``pfinject --help`` offers: ``{"tx_ring": bool, "qdisc_bypass": bool, "burst": bool}``."""
    text = _help("pfinject")
    return {"tx_ring": "--tx" in text and "ring" in text, "qdisc_bypass": "--qdisc-bypass" in text,
            "burst": "--burst" in text, "procs": "--procs" in text}


def machine_info() -> dict:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=REPO, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "pfrps"],
                               capture_output=True, text=True, cwd=REPO, timeout=10).stdout.strip()
        if dirty:
            commit += "+dirty"
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    try:
        nsng = subprocess.run(["netsniff-ng", "-v"], capture_output=True, text=True,
                              timeout=10).stdout.splitlines()[0].split(",")[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        nsng = "not installed"
    mem = ""
    try:
        kb = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                      if ln.startswith("MemTotal:")))
        mem = f"{kb / 1048576:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": cpu_model, "memory": mem,
            "python": platform.python_version(), "commit": commit, "netsniff_ng": nsng,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


# -- processes --------------------------------------------------------------------------------
def pinned(cpu: Optional[str], argv: Sequence[str]) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if cpu is not None else list(argv)


class LineReader:
    """Collect a pipe's lines with their arrival time (``time.monotonic()``) on a thread."""

    def __init__(self, stream) -> None:
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._eof = False
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream) -> None:
        try:
            for raw in iter(stream.readline, b""):
                now = time.monotonic()
                with self._cond:
                    self.lines.append((now, raw.decode(errors="replace").rstrip("\r\n")))
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def wait_for(self, pred: Callable[[str], bool], timeout: float) -> Optional[tuple[float, str]]:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for item in self.lines[seen:]:
                    if pred(item[1]):
                        return item
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    return None
                self._cond.wait(left)

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


class PfrpsProc:
    """A ``pfrps`` run in the node namespace, ready when it said READY on ``--ready-fd``.

    Attributes:
        launch_seconds: Popen to READY, seconds (the start-up benchmark's figure).
        out, err: :class:`LineReader` of stdout (JSON lines) and stderr.
    """

    def __init__(self, topo: TwoNodeTopology, args: Sequence[str], cpu: Optional[str] = RECEIVER_CPU,
                 ready_timeout: float = 60.0) -> None:
        r, w = os.pipe()
        try:
            argv = pinned(cpu, [PY, "-m", "pfrps", "-i", NODE_IF, "--json", "--log-level", "warning",
                                "--ready-fd", str(w), *args])
            t0 = time.perf_counter()
            self.stop_seconds = float("nan")  # set by stop()
            self.proc = topo.popen(topo.node, argv, pass_fds=(w,), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, cwd=REPO)
            os.close(w)
            w = -1
            self.out = LineReader(self.proc.stdout)
            self.err = LineReader(self.proc.stderr)
            ready = wait_ready(r, ready_timeout)  # closes r
            r = -1
            if not ready:
                if time.perf_counter() - t0 >= ready_timeout:
                    raise HarnessError(f"pfrps {' '.join(args)} not ready after {ready_timeout:.0f} s")
                self.proc.wait(timeout=10)  # it closed the pipe (end of file): it exited
                self.err.join()
                raise HarnessError(f"pfrps {' '.join(args)} exited ({self.proc.returncode}) before READY: "
                                   f"{self.err.text()[-800:]}")
            self.launch_seconds = time.perf_counter() - t0
            self.ready_at = time.monotonic()
        except BaseException:
            if w >= 0:
                os.close(w)
            if getattr(self, "proc", None) is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            raise
        finally:
            if r >= 0:
                os.close(r)

    def snapshots(self) -> list[tuple[float, dict]]:
        """Every JSON line so far as ``(arrival time, dict)``."""
        out = []
        for t, line in list(self.out.lines):
            if line.startswith("{"):
                try:
                    out.append((t, json.loads(line)))
                except ValueError:
                    continue
        return out

    def total_at(self, when: float) -> float:
        """Frames received by ``when`` (monotonic), interpolated between the JSON lines around it."""
        snaps = self.snapshots()
        before = [(t, s["total"]) for t, s in snaps if t <= when]
        after = [(t, s["total"]) for t, s in snaps if t > when]
        if not before and not after:
            return float("nan")
        t0, v0 = before[-1] if before else (self.ready_at, 0)
        if not after:
            return float(v0)
        t1, v1 = after[0]
        return v0 + (v1 - v0) * (when - t0) / (t1 - t0) if t1 > t0 else float(v1)

    def wait_total(self, pred: Callable[[dict], bool], timeout: float) -> Optional[dict]:
        """Wait for a JSON line satisfying ``pred``; return it (None on timeout or exit)."""
        hit = self.out.wait_for(lambda line: line.startswith("{") and pred(json.loads(line)), timeout)
        return json.loads(hit[1]) if hit else None

    def stop(self, timeout: float = 30.0, sig: int = signal.SIGINT) -> dict:
        """Send ``sig`` (SIGINT), wait, and return pfrps's final JSON line (counters after its
        workers stopped). Sets ``stop_seconds``: from the signal to the process's exit."""
        t0 = time.monotonic()
        interrupt_and_wait(self.proc, "pfrps", timeout, sig)
        self.stop_seconds = time.monotonic() - t0
        self.out.join()
        self.err.join()
        snaps = self.snapshots()
        if not snaps:
            raise HarnessError(f"pfrps printed no JSON (exit {self.proc.returncode}): {self.err.text()[-800:]}")
        return snaps[-1][1]


_PFINJECT_RE = re.compile(r"sent (\d+) frames \((\d+) bytes\) in ([\d.]+) s: (\d+) frames/s")


@dataclass
class SendResult:
    frames: int
    seconds: float
    rate: float
    wall: float
    text: str = ""
    extra: dict = field(default_factory=dict)


def run_pfinject(topo: TwoNodeTopology, count: int, seed: int = 1, extra: Sequence[str] = (),
                 cpu: Optional[str] = SENDER_CPU, timeout: float = 300.0) -> SendResult:
    """Run ``pfinject`` in the injector namespace; its own send-loop rate (frames/s)."""
    argv = pinned(cpu, [PY, "-m", "pfrps.inject", "-i", INJ_IF, "-d", NODE_MAC, "-p", str(count), "--seed", str(seed),
                        "--log-level", "warning", *extra])
    t0 = time.monotonic()
    res = topo.run(topo.injector, argv, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   cwd=REPO)
    wall = time.monotonic() - t0
    out = res.stdout.decode(errors="replace")
    m = _PFINJECT_RE.search(out)
    if res.returncode != 0 or not m:
        raise HarnessError(f"pfinject {' '.join(extra)} failed ({res.returncode}): "
                           f"{out[-400:]} {res.stderr.decode(errors='replace')[-800:]}")
    frames, _nbytes, secs, _rate = m.groups()
    return SendResult(int(frames), float(secs), int(frames) / float(secs), wall, out)


TRAFGEN_CPU_RE = re.compile(r"(\d+) sec, (\d+) usec on CPU(\d+) \((\d+) packets\)")


def trafgen_cfg_path(workdir: Path) -> Path:
    path = workdir / "pppoe_148.trafgen"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TRAFGEN_CFG)
    return path


def run_trafgen(topo: TwoNodeTopology, cfg: Path, count: int, cpus: int = 1, cpu: Optional[str] = SENDER_CPU,
                timeout: float = 300.0, extra: Sequence[str] = ()) -> SendResult:
    """Run trafgen (``-P cpus``) in the injector namespace; frames/s from its per-CPU report."""
    argv = ["trafgen", "-o", INJ_IF, "-i", str(cfg), "-n", str(count), "-P", str(cpus), *extra]
    if cpus == 1:
        argv = pinned(cpu, argv)
    t0 = time.monotonic()
    res = topo.run(topo.injector, argv, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.monotonic() - t0
    out = res.stdout.decode(errors="replace")
    per_cpu = TRAFGEN_CPU_RE.findall(out)
    if res.returncode != 0 or not per_cpu:
        raise HarnessError(f"trafgen failed ({res.returncode}): {out[-400:]} {res.stderr.decode(errors='replace')[-400:]}")
    frames = sum(int(p[3]) for p in per_cpu)
    secs = max(int(p[0]) + int(p[1]) / 1e6 for p in per_cpu)
    return SendResult(frames, secs, frames / secs if secs else float("nan"), wall, out,
                      {"per_cpu": [(int(p[2]), int(p[3]), int(p[0]) + int(p[1]) / 1e6) for p in per_cpu]})


_NSNG_RE = {
    "incoming": re.compile(r"(\d+)\s+packets incoming \((\d+) unread on exit\)"),
    "passed": re.compile(r"(\d+)\s+packets passed filter"),
    "dropped": re.compile(r"(\d+)\s+packets failed filter"),
}


class NetsniffProc:
    """netsniff-ng capturing on the node's interface into /dev/null (the C reference receiver).

    Ready when it prints ``Running!``. :meth:`stop` sends SIGINT and parses the exit summary:
    ``seen`` (frames its user space read out of the TPACKET_V3 ring; netsniff-ng calls them
    "incoming"), ``unread`` (still in the ring at exit) and ``dropped`` (tp_drops).
    """

    def __init__(self, topo: TwoNodeTopology, ring_size: str = "64MiB", cpu: str = RECEIVER_CPU,
                 ready_timeout: float = 60.0) -> None:
        argv = ["netsniff-ng", "--in", NODE_IF, "--out", "/dev/null", "--silent", "--notouch-irq",
                "--bind-cpu", cpu, "--ring-size", ring_size, "-f", "ether proto 0x8863 or ether proto 0x8864"]
        t0 = time.perf_counter()
        self.proc = topo.popen(topo.node, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = LineReader(self.proc.stdout)
        self.err = LineReader(self.proc.stderr)
        if self.out.wait_for(lambda line: "Running!" in line, ready_timeout) is None:
            self.proc.kill()
            self.proc.wait()
            raise HarnessError(f"netsniff-ng did not start: {self.out.text()[-400:]} {self.err.text()[-400:]}")
        self.launch_seconds = time.perf_counter() - t0

    def stop(self, timeout: float = 30.0) -> dict:
        interrupt_and_wait(self.proc, "netsniff-ng", timeout)
        self.out.join()
        self.err.join()
        text = self.out.text()
        m_in = _NSNG_RE["incoming"].search(text)
        m_drop = _NSNG_RE["dropped"].search(text)
        m_pass = _NSNG_RE["passed"].search(text)
        if not (m_in and m_drop and m_pass):
            raise HarnessError(f"cannot parse netsniff-ng's summary: {text[-600:]}")
        return {"seen": int(m_in.group(1)), "unread": int(m_in.group(2)), "passed": int(m_pass.group(1)),
                "dropped": int(m_drop.group(1))}


def netsniff_run(topo: TwoNodeTopology, cfg: Path, frames: int) -> tuple[Any, dict, int]:
    """netsniff-ng on the node while trafgen sends ``frames`` frames of ``cfg``:
    ``(trafgen's result, netsniff-ng's summary (:meth:`NetsniffProc.stop`), CPU ns the node's
    processes used meanwhile)``."""
    from pfrps.topology import netns_pids  # noqa: PLC0415

    ns = NetsniffProc(topo)
    try:
        pids = netns_pids(topo.node)
        c0 = cpu_ns(pids)
        sent = run_trafgen(topo, cfg, frames)
        c1 = cpu_ns(pids)
    finally:
        st = ns.stop()
    return sent, st, c1 - c0


_TOPOLOGIES: list[TwoNodeTopology] = []


def _task_files(pids: Sequence[int], name: str):
    """The text of /proc/PID/task/TID/<name> for every thread of ``pids`` still alive."""
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/{name}") as f:
                    yield f.read()
            except OSError:
                continue


def cpu_ns(pids: Sequence[int]) -> int:
    """CPU time (user + system, ns) used so far by every thread of ``pids`` (/proc/PID/task/*/schedstat)."""
    return sum(int(text.split()[0]) for text in _task_files(pids, "schedstat") if text.split())


def context_switches(pids: Sequence[int]) -> int:
    """Voluntary + involuntary context switches so far of every thread of ``pids`` (wake-ups)."""
    return sum(int(line.split()[1]) for text in _task_files(pids, "status") for line in text.splitlines()
               if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))


def topology() -> TwoNodeTopology:
    """A fresh two-namespace topology (use it with ``with``: destroy() always runs)."""
    topo = TwoNodeTopology.unique(prefix="bench")
    _TOPOLOGIES.append(topo)
    return topo


def leftover_namespaces() -> list[str]:
    """Namespaces of this run's topologies that still exist (should be none)."""
    from pfrps.topology import netns_exists  # noqa: PLC0415

    return [ns for t in _TOPOLOGIES for ns in t.namespaces if netns_exists(ns)]


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")


def _json_default(o):
    if hasattr(o, "to_json"):
        return o.to_json()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, float) and math.isnan(o):
        return None
    raise TypeError(type(o).__name__)
