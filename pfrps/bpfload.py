"""Compile BPF C with bcc once per run, then load one program (and map) per worker.

bcc is Debian's ``python3-bpfcc``; it compiles against the kernel headers under
``/lib/modules/$(uname -r)`` (``tools/setup-host.sh`` provides them, with a shim when Debian
has no exact headers for the running kernel). The C sources live in ``bpf/`` and are found
relative to the package (``importlib.resources.files("pfrps.bpf")``), never the cwd.

Compile once, load N times: clang runs once; each worker's copy of the socket filter is the
same bytecode with the map reference (``BPF_LD_IMM64`` with ``BPF_PSEUDO_MAP_FD``) relocated
to that worker's own ``pfrps_opts`` array, so ids differ without recompiling.

Only bcc's public Python API is used (``BPF(text=, cflags=)``, ``BPF.dump_func``, tables'
``Key``/``Leaf``/``map_fd``, ``BPF.cleanup``): maps are created, filled and programs loaded by
pfrps's own ``bpf(2)`` wrappers (:mod:`pfrps.bpfsys`), never through libbcc's C symbols.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from . import bpfsys
from .errors import BccMissingError, BpfCompileError, BpfLoadError, KernelHeadersError

__all__ = ["bpf_source_dir", "builtin_program", "check_kernel_headers", "import_bcc", "CompiledModule", "SteeringOpts"]

BPF_MAP_TYPE_ARRAY = 2
BPF_PROG_TYPE_SOCKET_FILTER = 1
#: License string every program is loaded with (pfrps's programs are GPL; so must a ``-b``
#: program be when it calls GPL-only helpers).
PROG_LICENSE = "GPL"
_BPF_LD_IMM64 = 0x18
_BPF_PSEUDO_MAP_FD = 1
_INSN = np.dtype([("code", "u1"), ("regs", "u1"), ("off", "<i2"), ("imm", "<i4")])


def bpf_source_dir() -> Path:
    """The directory holding pfrps's BPF C sources (``bpf/`` of the source tree)."""
    return Path(str(resources.files("pfrps.bpf")))


def import_bcc():
    """Import and return Debian's ``bcc`` module.

    Raises:
        BccMissingError: bcc is not importable in this interpreter.
    """
    try:
        import bcc  # noqa: PLC0415  (optional system dependency, imported on demand)
    except Exception as exc:  # ImportError, or OSError when libbcc.so is missing
        raise BccMissingError(
            f"bcc is not importable ({exc.__class__.__name__}: {exc})",
            hint="install Debian's python3-bpfcc and run pfrps from the project's venv (./run setup)",
        ) from None
    return bcc


def check_kernel_headers(release: str | None = None) -> Path:
    """Return the kernel header directory bcc will use for ``release`` (default: running).

    Raises:
        KernelHeadersError: neither ``BCC_KERNEL_SOURCE`` nor
        ``/lib/modules/<release>/{build,source}/include`` exists.
    """
    env = os.environ.get("BCC_KERNEL_SOURCE")
    if env and Path(env, "include").is_dir():
        return Path(env)
    release = release or platform.release()
    base = Path("/lib/modules", release)
    for sub in ("source", "build"):
        if (base / sub / "include").is_dir():
            return base / sub
    raise KernelHeadersError(
        f"no kernel headers for {release} in {base}",
        hint="run ./run setup (installs Debian's headers, plus a documented shim when none match the kernel)",
    )


@contextmanager
def _capture_stderr() -> Iterator[list[str]]:
    """Collect what C++ code (clang, libbcc) writes to fd 2 while the block runs."""
    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


def _first_error(lines: Sequence[str]) -> str:
    for line in lines:
        if "error:" in line:
            return line.strip()
    for line in lines:
        if line.strip():
            return line.strip()
    return "no diagnostic from clang"


@dataclass(frozen=True)
class SteeringOpts:
    """What a steering program reads from its ``pfrps_opts`` map (``struct pfrps_opts``).

    Attributes:
        worker_id: the worker a filter-mode socket belongs to (0 in fanout mode).
        worker_count: N; a frame goes to worker ``hash % N``.
        hash_alg: 0 mac_hash, 1 mac_jhash, 2 jhash_oaat.
        ethertypes: ethertypes to accept (host order); empty means every frame.
    """

    worker_id: int
    worker_count: int
    hash_alg: int
    ethertypes: tuple[int, ...] = ()


class CompiledModule:
    """One BPF C file compiled by bcc; load its functions as often as needed.

    Args:
        source: path of the ``.bpf.c`` file.
        cflags: extra clang flags (``-DKNOB=value``). The file's own directory and
            :func:`bpf_source_dir` are on the include path.

    Raises:
        BpfCompileError: the file is missing, unreadable, or does not compile.
        KernelHeadersError, BccMissingError: see :func:`check_kernel_headers`, :func:`import_bcc`.
    """

    def __init__(self, source: str | os.PathLike, cflags: Sequence[str] = ()) -> None:
        self.source = Path(source).resolve()
        bcc = import_bcc()
        check_kernel_headers()
        try:
            text = self.source.read_text()
        except OSError as exc:
            raise BpfCompileError(
                f"cannot read BPF program {str(source)!r}: {exc.strerror}",
                code=exc.errno or errno.ENOENT,
                hint="give -b the path of an existing .bpf.c file",
            ) from None
        flags = [f"-I{self.source.parent}", f"-I{bpf_source_dir()}", *cflags]
        with _capture_stderr() as diag:
            try:
                self._bpf = bcc.BPF(text=text.encode(), cflags=flags)
            except Exception:
                self._bpf = None
        if self._bpf is None:
            raise BpfCompileError(
                f"{self.source.name} does not compile: {_first_error(diag)}",
                hint="fix the C source (see clang's message) or drop -b to use the built-in program",
            )

    # -- maps ---------------------------------------------------------------------------------
    def table(self, name: str):
        """bcc's Table for map ``name`` (the copy made at compile time)."""
        try:
            return self._bpf[name.encode()]
        except KeyError:
            raise BpfCompileError(
                f"{self.source.name} has no map {name!r}",
                hint=f"declare BPF_ARRAY({name}, struct pfrps_opts, 1) as bpf/rps_filter.bpf.c does",
            ) from None

    def opts_leaf(self, opts: SteeringOpts, map_name: str = "pfrps_opts"):
        """A ctypes ``struct pfrps_opts`` filled from ``opts``, laid out as compiled."""
        table = self.table(map_name)
        leaf = table.Leaf()
        leaf.worker_id = opts.worker_id
        leaf.worker_count = opts.worker_count
        leaf.hash_alg = opts.hash_alg
        cap = len(leaf.ethertypes)
        if len(opts.ethertypes) > cap:
            raise BpfCompileError(
                f"{len(opts.ethertypes)} ethertypes given; the program matches at most {cap}",
                hint=f"give at most {cap} ethertypes, or 'all'",
            )
        leaf.n_ethertypes = len(opts.ethertypes)
        for i, et in enumerate(opts.ethertypes):
            leaf.ethertypes[i] = et
        return leaf

    def create_opts_map(self, opts: SteeringOpts, map_name: str = "pfrps_opts") -> int:
        """Create a fresh one-entry ``pfrps_opts`` array holding ``opts``; return its fd.

        Raises:
            BpfLoadError: the kernel refused the map.
        """
        table = self.table(map_name)
        leaf = self.opts_leaf(opts, map_name)
        fd = bpfsys.map_create(BPF_MAP_TYPE_ARRAY, ctypes.sizeof(table.Key), ctypes.sizeof(leaf), 1,
                               name=map_name[:15])
        try:
            bpfsys.map_update(fd, bytes(table.Key(0)), bytes(leaf))
        except BpfLoadError:
            os.close(fd)
            raise
        return fd

    # -- programs -----------------------------------------------------------------------------
    def has_function(self, func: str) -> bool:
        """True when the compiled file defines ``func``."""
        try:
            self._bpf.dump_func(func.encode())
        except Exception:  # bcc raises a bare Exception("Unknown program ...")
            return False
        return True

    def bytecode(self, func: str) -> np.ndarray:
        """The compiled instructions of ``func`` as a structured array (dtype: code, regs, off, imm)."""
        try:
            raw = self._bpf.dump_func(func.encode())
        except Exception:
            raise BpfCompileError(
                f"{self.source.name} has no function {func!r}",
                hint=f"name the program's entry point {func}",
            ) from None
        return np.frombuffer(raw, dtype=_INSN).copy()

    def load(self, func: str, map_fds: dict[str, int] | None = None,
             prog_type: int = BPF_PROG_TYPE_SOCKET_FILTER) -> int:
        """Load ``func`` and return the program fd (the caller closes it).

        Args:
            func: the entry point's name.
            map_fds: ``{map name: fd}`` of maps to use instead of the compile-time copies;
                this is how each worker gets its own ``pfrps_opts`` from one compilation.
            prog_type: ``BPF_PROG_TYPE_*`` (default SOCKET_FILTER, which fanout uses too).

        The program is loaded under the name ``func`` (first 15 characters; pfrps's own
        entry points start with ``pfrps_``, which the test suite's leak check looks for) and
        the license :data:`PROG_LICENSE`.

        Raises:
            BpfLoadError: the verifier or the kernel refused the program (the message ends with
            the verifier log's last line); EPERM without CAP_BPF.
        """
        insns = self.bytecode(func)
        for name, new_fd in (map_fds or {}).items():
            old_fd = self.table(name).map_fd
            hit = (insns["code"] == _BPF_LD_IMM64) & ((insns["regs"] >> 4) == _BPF_PSEUDO_MAP_FD) \
                & (insns["imm"] == old_fd)
            insns["imm"][hit] = new_fd
        return bpfsys.prog_load(prog_type, insns.tobytes(), license=PROG_LICENSE, name=func[:15])

    def close(self) -> None:
        """Release the compile-time maps and the compiled module (loaded programs stay valid)."""
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    def __enter__(self) -> "CompiledModule":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def builtin_program(name: str) -> Path:
    """Path of a built-in program of ``bpf/`` by file name (``"rps_filter.bpf.c"``)."""
    path = bpf_source_dir() / name
    if not path.is_file():
        raise BpfCompileError(f"built-in BPF program {name} is missing from {path.parent}",
                              hint="reinstall pfrps")
    return path


