"""BPF programs and maps an application declares, loaded and attached by the supervisor before
it forks the workers.

An application whose workers share kernel state (the BNG's XDP session table) declares it in
:attr:`pfrps.config.SupervisorConfig.bpf_objects` as :class:`BpfObject` values. The supervisor,
before the first fork (:meth:`pfrps.supervisor.Supervisor.start`):

1. compiles each object's C file once with bcc (``-D`` knobs from ``cflags``; built-in sources
   are found in ``bpf/`` relative to the package, see :func:`pfrps.bpfload.builtin_program`);
2. reuses maps named in ``shared_maps`` from an object declared earlier (the second program is
   relocated onto the first one's map fds, :meth:`pfrps.bpfload.CompiledModule.load`), so two
   programs in two files read and write one table;
3. calls ``setup(maps)`` (fill configuration maps before any frame can reach a program);
4. attaches each :class:`BpfAttach` (XDP native or generic, or a clsact hook) through
   :class:`pfrps.xdp.attach.Attachments`.

Every worker (and every restarted worker: the fds are the supervisor's, inherited at each fork)
finds the maps' fds in ``ctx.maps`` (name -> fd) and the programs' in ``ctx.programs``. At
:meth:`Supervisor.close` everything is detached and closed, newest first; a failure half-way
through start-up leaves nothing behind either.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .errors import UsageError

__all__ = ["BpfAttach", "BpfObject", "LoadedBpf", "BPF_HOOKS"]

log = logging.getLogger("pfrps.bpf")

#: Where a program can be attached: XDP on an interface, or a clsact direction (cls_bpf, direct action).
BPF_HOOKS = ("xdp", "tc-ingress", "tc-egress")


@dataclass(frozen=True)
class BpfAttach:
    """Attach entry point ``func`` to ``interface`` at ``hook`` (one of :data:`BPF_HOOKS`);
    ``generic`` selects XDP's generic (SKB) mode instead of native (driver) mode."""

    func: str
    interface: str
    hook: str = "xdp"
    generic: bool = False


@dataclass(frozen=True)
class BpfObject:
    """One BPF C file the supervisor loads before forking the workers.

    Attributes:
        source: a file name in pfrps's ``bpf/`` directory (``"bng_access.bpf.c"``) or a path.
        cflags: clang flags, typically ``-DKNOB=value`` compile-time knobs.
        maps: names of the maps whose fds workers get in ``ctx.maps`` (the same fds in every
            worker and every restarted worker).
        shared_maps: names of maps to take from an object declared earlier in
            ``SupervisorConfig.bpf_objects`` instead of this file's own copy.
        programs: entry points to load without attaching (fds in ``ctx.programs``), e.g. for
            BPF_PROG_TEST_RUN.
        attach: where to attach which entry point (loaded once per function).
        setup: called with ``{map name: fd}`` of every map loaded so far, after loading and
            before attaching (fill configuration maps here).
    """

    source: str
    cflags: tuple[str, ...] = ()
    maps: tuple[str, ...] = ()
    shared_maps: tuple[str, ...] = ()
    programs: tuple[str, ...] = ()
    attach: tuple[BpfAttach, ...] = ()
    setup: Optional[Callable[[dict[str, int]], None]] = field(default=None, compare=False)

    def validate(self) -> None:
        """Raise :class:`UsageError` for a hook that does not exist."""
        for a in self.attach:
            if a.hook not in BPF_HOOKS:
                raise UsageError(f"unknown BPF hook {a.hook!r} for {a.func}", hint=f"use one of {', '.join(BPF_HOOKS)}")


class LoadedBpf:
    """The loaded :class:`BpfObject` values of one supervisor: map and program fds, attachments.

    Raises (from :meth:`open`):
        BpfCompileError, KernelHeadersError, BccMissingError: see :mod:`pfrps.bpfload`.
        BpfLoadError, PrivilegeError: the kernel refused a program.
        UsageError: an interface is missing, already carries an XDP program, or has no native XDP.
    """

    def __init__(self) -> None:
        self.maps: dict[str, int] = {}
        self.programs: dict[str, int] = {}
        self._att = None

    @classmethod
    def open(cls, objects: tuple[BpfObject, ...]) -> "LoadedBpf":
        """Compile, load, set up and attach ``objects`` in order; on any error undo it all."""
        from .bpfload import builtin_program  # noqa: PLC0415  (bcc only when objects are declared)
        from .xdp.attach import BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_XDP, Attachments  # noqa: PLC0415

        self = cls()
        self._att = att = Attachments()
        try:
            for obj in objects:
                obj.validate()
                src = Path(obj.source)
                if not src.is_absolute() and not src.exists():
                    src = builtin_program(obj.source)
                mod = att.program(str(src), obj.cflags)
                shared = {}
                for name in obj.shared_maps:
                    if name not in self.maps:
                        raise UsageError(f"{src.name} shares map {name!r}, which no earlier BPF object declared",
                                         hint="declare the object that owns the map first and list the map in its maps")
                    shared[name] = self.maps[name]
                for name in obj.maps:
                    if name not in shared:
                        self.maps[name] = mod.table(name).map_fd
                funcs = {a.func: a.hook for a in obj.attach}
                funcs.update({f: "xdp" for f in obj.programs if f not in funcs})
                for func, hook in funcs.items():
                    ptype = BPF_PROG_TYPE_XDP if hook == "xdp" else BPF_PROG_TYPE_SCHED_CLS
                    fd = mod.load(func, map_fds=shared, prog_type=ptype)
                    att.callback(lambda fd=fd: os.close(fd), f"program {func}")
                    self.programs[func] = fd
                if obj.setup is not None:
                    obj.setup(dict(self.maps))
                for a in obj.attach:
                    if a.hook == "xdp":
                        att.xdp(a.interface, self.programs[a.func], a.generic)
                    else:
                        att.tc(a.interface, self.programs[a.func], a.hook.split("-", 1)[1], name=a.func)
                    log.info("attached %s to %s (%s%s)", a.func, a.interface, a.hook,
                             ", generic" if a.hook == "xdp" and a.generic else "")
        except BaseException:
            self.close()
            raise
        return self

    def link_fds(self) -> list[int]:
        """The BPF link fds of the attachments (a forked worker closes its copies: only the
        supervisor keeps the programs attached, and they go when it dies, whatever kills it)."""
        return self._att.link_fds() if self._att is not None else []

    def describe(self) -> list[str]:
        """What is loaded and attached now (oldest first)."""
        return self._att.describe() if self._att is not None else []

    def close(self) -> None:
        """Detach and close everything (idempotent). Map fds stay valid until the module that
        created them is released here, so call it only after every worker has stopped."""
        if self._att is not None:
            self._att.close()
            self._att = None
        self.maps.clear()
        self.programs.clear()
