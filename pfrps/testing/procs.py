"""The worker processes of a running pfrps supervisor (``pfrps``, ``pfrps-ac``, an embedding
program), found the way ``ps`` would: its children (proc(5) ``/proc/PID/task/TID/children``,
over every thread) whose name (``comm``) is ``pfrps-w<id>``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["children", "worker_pids"]


def children(pid: int) -> list[int]:
    """The direct children of process ``pid`` (every thread's), [] when it is gone."""
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out.extend(int(x) for x in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def worker_pids(supervisor_pid: int) -> dict[int, int]:
    """``{worker id: pid}`` of the live workers of supervisor ``supervisor_pid``: its children
    named ``pfrps-w<id>``; a worker killed but not yet reaped (state Z or X in ``/proc/PID/stat``)
    is left out."""
    out = {}
    for pid in children(supervisor_pid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ...": comm may hold spaces and parentheses, the last ")" ends it
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 1:].split()
        if comm.startswith("pfrps-w") and comm[7:].isdigit() and rest[0] not in ("Z", "X"):
            out[int(comm[7:])] = pid
    return out
