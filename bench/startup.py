"""Benchmark 4: start-up time, launch to every worker ready.

The figure is the time from ``Popen`` of ``pfrps ... --ready-fd FD`` to ``READY`` on FD (pfrps
writes it once every worker's event loop runs). It includes the interpreter's start-up, the
imports, the bcc/clang compile of the steering program, loading N programs (``filter``) or
one (``fanout``), opening N sockets and forking N workers. pfrps's own log line ("N workers
ready in S s", measured inside ``Supervisor.start``) splits it into "before start()" and
"start()". Not pinned: pfrps has both CPUs, as a user would run it. Measured with ``--rx recv``
(rows without a suffix) and with the default ``--rx ring`` (which also allocates a 4 MiB ring
per worker: 16 x 256 KiB up to 16 workers, 64 x 64 KiB above).

Reference, measured in the same run: the interpreter start-up plus ``import pfrps.cli``
(``python -c 'import pfrps.cli'``), the floor any Python command line pays.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from pfrps.cliutil import wait_ready

from . import common
from .common import Row, summary

NAME = "startup"
TITLE = "Start-up: launch to all workers ready"
TARGETS = {8: 1.5, 64: 3.0}
#: Issue 4: "SIGTERM drains and stops within 2 s"; issue 10: also Ctrl-C (SIGINT to the
#: process group) at 64 workers, every worker's on_stop run, no restart.
STOP_TARGET = 2.0
CTRL_C_WORKERS = 64
_READY_RE = re.compile(r"(\d+) workers ready in ([\d.]+) s")


def _key(rx: str, mode: str, n: int) -> str:
    return f"{mode} N={n}" + (" --rx ring" if rx == "ring" else "")


def params(quick: bool) -> dict:
    return {"reps": 1 if quick else 5}


def run(ctx) -> dict:
    reps = ctx.reps or params(ctx.quick)["reps"]
    rxs = ["recv", "ring"] if ctx.caps["pfrps_ring"] else ["recv"]
    configs = [(rx, mode, n) for rx in rxs for n in TARGETS for mode in ("filter", "fanout")]
    launch = {_key(*c): [] for c in configs}
    inner = {_key(*c): [] for c in configs}
    stop = {_key(*c): [] for c in configs}
    floor: list[float] = []
    with common.topology() as topo:
        common.PfrpsProc(topo, ["-w", "1"], cpu=None).stop()  # warm-up: page cache, bcc
        for rep in range(reps):
            t0 = time.perf_counter()
            res = topo.run(topo.node, [common.PY, "-c", "import pfrps.cli"], cwd=common.REPO)
            floor.append(time.perf_counter() - t0)
            if res.returncode:
                raise common.HarnessError("python -c 'import pfrps.cli' failed")
            for rx, mode, n in configs:
                key = _key(rx, mode, n)
                pf = common.PfrpsProc(topo, ["-w", str(n), "--steering", mode, "--rx", rx, "--log-level", "info"],
                                      cpu=None)
                secs = pf.launch_seconds
                pf.stop(sig=signal.SIGTERM)
                stop[key].append(pf.stop_seconds)
                m = _READY_RE.search(pf.err.text())
                launch[key].append(secs)
                inner[key].append(float(m.group(2)) if m else float("nan"))
                common.log(f"{NAME}: rep {rep + 1}/{reps}: {key:12s} {secs:.3f} s to READY "
                           f"(Supervisor.start {inner[key][-1]:.3f} s), SIGTERM to exit {stop[key][-1]:.3f} s")
        ctrl_c = ctrl_c_shutdown(topo, CTRL_C_WORKERS, reps)
    ref = summary(floor)
    rows = [Row("python -c 'import pfrps.cli' (reference)", "s", ref)]
    for rx, mode, n in configs:
        key = _key(rx, mode, n)
        s = summary(launch[key])
        rows.append(Row(f"target: {key}", "s", s, "import floor", ref, f"< {TARGETS[n]:.1f} s",
                        s["median"] < TARGETS[n]))
    for rx, mode, n in configs:
        key = _key(rx, mode, n)
        s = summary(stop[key])
        rows.append(Row(f"target: shutdown {key} (SIGTERM to exit)", "s", s, "", None,
                        f"< {STOP_TARGET:.1f} s", s["max"] < STOP_TARGET))
    cs = summary(ctrl_c["seconds"])
    rows.append(Row(f"target: Ctrl-C (SIGINT to the process group) fanout N={CTRL_C_WORKERS} --rx ring, to exit", "s",
                    cs, "", None, f"< {STOP_TARGET:.1f} s, no restart or kill logged",
                    cs["max"] < STOP_TARGET and ctrl_c["restarts_logged"] == 0 and ctrl_c["kills_logged"] == 0))
    table = []
    for rx, mode, n in configs:
        key = _key(rx, mode, n)
        tot, st = common.median(launch[key]), common.median(inner[key])
        table.append([key, f"{tot:.3f}", f"{tot - st:.3f}", f"{st:.3f}", f"{1000 * st / n:.1f}"])
    data = {"reps": reps, "launch": launch, "supervisor_start": inner, "floor": floor, "stop": stop, "ctrl_c": ctrl_c}
    plot = ctx.out_dir / f"{NAME}.png"
    _plot(plot, data)
    return {
        "name": NAME, "title": TITLE, "rows": rows, "plots": [plot.name], "data": data,
        "method": (f"Popen of pfrps to READY on --ready-fd, median of {reps} runs (configurations interleaved, "
                   f"not pinned), with `--rx recv` (rows without a suffix) and with the default `--rx ring`. Reference: python -c 'import pfrps.cli' in the same run. "
                   f"Shutdown: SIGTERM to process exit (workers drained and stopped, sockets, rings and programs released); "
                   f"its target holds for the slowest run, not the median."),
        "tables": [{"title": "Where the time goes (medians, seconds)",
                    "header": ["config", "launch to READY", "before Supervisor.start (interpreter, imports, "
                               "argument parsing)", "Supervisor.start (compile, load, sockets, fork, ready)",
                               "start() / N, ms"],
                    "rows": table}],
    }


def ctrl_c_shutdown(topo, workers: int, reps: int, cwd=common.REPO) -> dict:
    """What Ctrl-C in a terminal does, ``reps`` times: pfrps as a process group leader (its own
    session), SIGINT to the whole group once every worker is ready; seconds from the signal to
    pfrps's exit, and the count of "restarting" and "killing it" lines it logged (both must be 0)."""
    seconds, restarts, kills, statuses = [], 0, 0, []
    for _ in range(reps):
        r, w = os.pipe()
        proc = topo.popen(topo.node, [common.PY, "-m", "pfrps", "-i", common.NODE_IF, "-w", str(workers),
                                      "--ready-fd", str(w)], pass_fds=(w,), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=cwd)
        os.close(w)
        if not wait_ready(r, 120):
            proc.kill()
            raise common.HarnessError(f"pfrps -w {workers} not ready: {proc.communicate()[1][-400:]}")
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        seconds.append(time.monotonic() - t0)
        restarts += err.count("restarting")
        kills += err.count("killing it")
        statuses.append(proc.returncode)
        common.log(f"{NAME}: Ctrl-C to the group of {workers} workers: exit {proc.returncode} after "
                   f"{seconds[-1]:.3f} s")
    return {"seconds": seconds, "restarts_logged": restarts, "kills_logged": kills, "exit": statuses}


def _plot(path, data) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    keys = list(data["launch"])
    tot = [common.median(data["launch"][k]) for k in keys]
    inner = [common.median(data["supervisor_start"][k]) for k in keys]
    pre = [t - i for t, i in zip(tot, inner)]
    fig, ax = plt.subplots(figsize=(10, 4))
    x = range(len(keys))
    ax.bar(x, pre, color="tab:grey", label="interpreter + imports + CLI")
    ax.bar(x, inner, bottom=pre, color="tab:blue", label="Supervisor.start()")
    for i, k in enumerate(keys):
        n = int(k.split("=")[1].split()[0])
        ax.hlines(TARGETS[n], i - 0.4, i + 0.4, colors="red", linestyles="--")
    ax.axhline(common.median(data["floor"]), color="black", lw=0.8, ls=":", label="python + import pfrps.cli")
    ax.set_xticks(list(x), keys, rotation=15)
    ax.set_ylabel("seconds to READY")
    ax.set_title("Start-up (red dashes: targets)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    # python -m bench.startup [N [REPS [TREE...]]]: only the Ctrl-C shutdown figure, for this
    # tree and for each other checkout TREE (e.g. a `git worktree` of an older commit), interleaved.
    import json  # noqa: PLC0415

    _n = int(sys.argv[1]) if len(sys.argv) > 1 else CTRL_C_WORKERS
    _reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    _trees = [common.REPO, *sys.argv[3:]]
    _res: dict = {str(t): {"seconds": [], "restarts_logged": 0, "kills_logged": 0, "exit": []} for t in _trees}
    with common.topology() as _topo:
        for _ in range(_reps):
            for _t in _trees:
                _one = ctrl_c_shutdown(_topo, _n, 1, cwd=_t)
                _acc = _res[str(_t)]
                _acc["seconds"] += _one["seconds"]
                _acc["exit"] += _one["exit"]
                _acc["restarts_logged"] += _one["restarts_logged"]
                _acc["kills_logged"] += _one["kills_logged"]
    print(json.dumps(_res))
