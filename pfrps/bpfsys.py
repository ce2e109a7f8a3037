"""Thin ``bpf(2)`` syscall wrappers: maps, pins, program loading and test runs.

pfrps compiles BPF C with bcc's public API and does the rest itself through these wrappers:
create maps (``BPF_MAP_CREATE``), read and write them (``BPF_MAP_*_ELEM``,
``BPF_MAP_GET_NEXT_KEY``), pin them (``BPF_OBJ_PIN``/``BPF_OBJ_GET``), load relocated
bytecode (``BPF_PROG_LOAD``, with the verifier log on failure), run a loaded program on a frame
with no interface (``BPF_PROG_TEST_RUN``, as katran and cilium test their programs) and read a
program's id (``BPF_OBJ_GET_INFO_BY_FD``, for leak checks). Every ``_*Attr`` structure below is
the prefix of ``union bpf_attr`` that its command uses, field for field as in
``include/uapi/linux/bpf.h``; the kernel zero-checks the rest (``CHECK_ATTR``), so the size
passed is the structure's own. Source: bpf(2), ``uapi/linux/bpf.h``. The syscall number
``__NR_bpf`` differs per architecture (:data:`NR_BPF`); on another one the first call raises
:class:`~pfrps.errors.UsageError`.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
from typing import Iterator, Optional

from .errors import BpfLoadError, UsageError

__all__ = [
    "prog_test_run", "prog_id", "prog_name", "map_create", "map_update", "map_lookup",
    "map_delete", "map_keys", "obj_pin", "obj_get", "prog_load", "PROG_NAME_PREFIX",
    "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "prog_name_by_id", "prog_test_run_frame",
    "link_create", "prog_query", "BPF_XDP", "BPF_TCX_INGRESS", "BPF_TCX_EGRESS", "NR_BPF", "nr_bpf",
]

#: ``__NR_bpf`` per ``platform.machine()``: arch/x86/entry/syscalls/syscall_64.tbl (x86_64) and
#: syscall_32.tbl (i386), include/uapi/asm-generic/unistd.h (aarch64, riscv64, loongarch64),
#: arch/arm/tools/syscall.tbl, arch/powerpc/kernel/syscalls/syscall.tbl,
#: arch/s390/kernel/syscalls/syscall.tbl.
NR_BPF = {
    "x86_64": 321, "i386": 357, "i686": 357,
    "aarch64": 280, "arm64": 280, "riscv64": 280, "loongarch64": 280,
    "armv7l": 386, "armv6l": 386,
    "ppc64le": 361, "ppc64": 361,
    "s390x": 351,
}
_BPF_MAP_CREATE = 0
_BPF_MAP_LOOKUP_ELEM = 1
_BPF_MAP_UPDATE_ELEM = 2
_BPF_MAP_DELETE_ELEM = 3
_BPF_MAP_GET_NEXT_KEY = 4
_BPF_PROG_LOAD = 5
_BPF_OBJ_PIN = 6
_BPF_OBJ_GET = 7
_BPF_PROG_TEST_RUN = 10
_BPF_OBJ_GET_INFO_BY_FD = 15
_BPF_PROG_GET_FD_BY_ID = 13

#: ``flags`` of :func:`map_update` (uapi/linux/bpf.h).
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
_BPF_OBJ_NAME_LEN = 16
#: Programs pfrps loads are named with this prefix (``bpftool prog show`` lists it), so a leak
#: check can tell them from other tools' programs.
PROG_NAME_PREFIX = "pfrps_"
#: When this environment variable names a file, every program :func:`prog_load` loads has its
#: id appended to it (one decimal per line, O_APPEND): the registry the test suite's leak
#: check reads, across every process the suite starts.
REGISTRY_ENV = "PFRPS_BPF_REGISTRY"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _TestRunAttr(ctypes.Structure):
    """``union bpf_attr`` for BPF_PROG_TEST_RUN (``struct { ... } test``)."""

    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("data_in", ctypes.c_uint64),
        ("data_out", ctypes.c_uint64),
        ("repeat", ctypes.c_uint32),
        ("duration", ctypes.c_uint32),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_uint64),
        ("ctx_out", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class _InfoAttr(ctypes.Structure):
    """``union bpf_attr`` for BPF_OBJ_GET_INFO_BY_FD (``struct { ... } info``)."""

    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32), ("info", ctypes.c_uint64)]


class _MapCreateAttr(ctypes.Structure):
    """``union bpf_attr`` for BPF_MAP_CREATE, up to ``map_name`` (kernel 4.15+)."""

    _fields_ = [
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("numa_node", ctypes.c_uint32),
        ("map_name", ctypes.c_char * _BPF_OBJ_NAME_LEN),
    ]


class _MapElemAttr(ctypes.Structure):
    """``union bpf_attr`` for BPF_MAP_{LOOKUP,UPDATE,DELETE}_ELEM and GET_NEXT_KEY
    (``value`` is ``next_key`` for the latter)."""

    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class _ObjAttr(ctypes.Structure):
    """``union bpf_attr`` for BPF_OBJ_PIN / BPF_OBJ_GET."""

    _fields_ = [("pathname", ctypes.c_uint64), ("bpf_fd", ctypes.c_uint32), ("file_flags", ctypes.c_uint32)]


class _ProgLoadAttr(ctypes.Structure):
    """``union bpf_attr`` for BPF_PROG_LOAD, up to ``expected_attach_type`` (kernel 4.17+)."""

    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * _BPF_OBJ_NAME_LEN),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
    ]


@functools.lru_cache(maxsize=None)
def nr_bpf(machine: Optional[str] = None) -> int:
    """``__NR_bpf`` on ``machine`` (default: this host's, ``platform.machine()``), from :data:`NR_BPF`.

    Raises:
        UsageError: an architecture pfrps does not know the number for.
    """
    machine = machine or platform.machine()
    try:
        return NR_BPF[machine]
    except KeyError:
        raise UsageError(f"the bpf(2) syscall number of architecture {machine!r} is not known to pfrps",
                         code=errno.ENOTSUP, hint=f"add it to pfrps.bpfsys.NR_BPF (known: {', '.join(NR_BPF)})") from None


def _bpf(cmd: int, attr: ctypes.Structure, what: str = "") -> int:
    ret = _libc.syscall(nr_bpf(), cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        code = ctypes.get_errno()
        raise BpfLoadError(f"bpf({what or cmd}) failed: {os.strerror(code)}", code=code,
                           hint="run as root or with CAP_BPF" if code == errno.EPERM else "")
    return ret


def _obj_name(name: str) -> bytes:
    """A kernel object name: at most 15 bytes of ``[A-Za-z0-9_.]`` (the kernel's ``bpf_obj_name_cpy``)."""
    raw = name.encode()
    if len(raw) >= _BPF_OBJ_NAME_LEN or any(not (chr(c).isalnum() or chr(c) in "_.") for c in raw):
        raise BpfLoadError(f"BPF object name {name!r} is not 0-15 characters of [A-Za-z0-9_.]",
                           code=errno.EINVAL, hint="use a shorter name of letters, digits, '_' and '.'")
    return raw


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int,
               flags: int = 0, name: str = "") -> int:
    """Create a map with BPF_MAP_CREATE and return its fd (the caller closes it).

    Args:
        map_type: ``BPF_MAP_TYPE_*`` (2 = ARRAY, 1 = HASH, 14 = DEVMAP, ...).
        key_size, value_size: bytes.
        max_entries: entries.
        flags: ``map_flags`` (``BPF_F_*``).
        name: the map's name as bpftool shows it, 0-15 characters of ``[A-Za-z0-9_.]``.

    Raises:
        BpfLoadError: the kernel refused (EINVAL for sizes the type does not allow, EPERM
        without CAP_BPF, ENOMEM over the memlock/memcg limit).
    """
    attr = _MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                          max_entries=max_entries, map_flags=flags, map_name=_obj_name(name))
    return _bpf(_BPF_MAP_CREATE, attr, f"BPF_MAP_CREATE {name or map_type}")


def _elem(fd: int, key: bytes | None, value, flags: int = 0) -> tuple[_MapElemAttr, object]:
    kbuf = ctypes.create_string_buffer(bytes(key), len(key)) if key is not None else None
    attr = _MapElemAttr(map_fd=fd, key=ctypes.addressof(kbuf) if kbuf is not None else 0,
                        value=ctypes.addressof(value) if value is not None else 0, flags=flags)
    return attr, kbuf


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    """Write ``value`` at ``key`` (BPF_MAP_UPDATE_ELEM).

    Args:
        fd: a map fd; key, value: exactly the map's key_size and value_size bytes.
        flags: BPF_ANY, BPF_NOEXIST (create only) or BPF_EXIST (update only).

    Raises:
        BpfLoadError: E2BIG (array index out of range or the map full), EEXIST/ENOENT
        against the flags, EINVAL for a wrong size the kernel can detect.
    """
    vbuf = ctypes.create_string_buffer(bytes(value), len(value))
    attr, _keep = _elem(fd, key, vbuf, flags)
    _bpf(_BPF_MAP_UPDATE_ELEM, attr, "BPF_MAP_UPDATE_ELEM")


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value at ``key`` (BPF_MAP_LOOKUP_ELEM), ``value_size`` bytes, or None when absent.

    Raises:
        BpfLoadError: for any error other than ENOENT.
    """
    vbuf = ctypes.create_string_buffer(value_size)
    attr, _keep = _elem(fd, key, vbuf)
    try:
        _bpf(_BPF_MAP_LOOKUP_ELEM, attr, "BPF_MAP_LOOKUP_ELEM")
    except BpfLoadError as exc:
        if exc.code == errno.ENOENT:
            return None
        raise
    return vbuf.raw


def map_delete(fd: int, key: bytes) -> bool:
    """Delete ``key`` (BPF_MAP_DELETE_ELEM); True when it was there, False on ENOENT.

    Raises:
        BpfLoadError: EINVAL for array maps (their entries cannot be deleted), others.
    """
    attr, _keep = _elem(fd, key, None)
    try:
        _bpf(_BPF_MAP_DELETE_ELEM, attr, "BPF_MAP_DELETE_ELEM")
    except BpfLoadError as exc:
        if exc.code == errno.ENOENT:
            return False
        raise
    return True


def map_keys(fd: int, key_size: int) -> Iterator[bytes]:
    """Every key of the map, ``key_size`` bytes each, by BPF_MAP_GET_NEXT_KEY from no key.

    A hash map changed during the walk may restart it (bpf(2)); an array yields 0..max-1.

    Raises:
        BpfLoadError: for errors other than the ENOENT that ends the walk.
    """
    nxt = ctypes.create_string_buffer(key_size)
    attr, _keep = _elem(fd, None, nxt)
    while True:
        try:
            _bpf(_BPF_MAP_GET_NEXT_KEY, attr, "BPF_MAP_GET_NEXT_KEY")
        except BpfLoadError as exc:
            if exc.code == errno.ENOENT:
                return
            raise
        key = nxt.raw
        yield key
        attr, _keep = _elem(fd, key, nxt)


def obj_pin(fd: int, path: str | os.PathLike) -> None:
    """Pin the map or program ``fd`` at ``path`` in a bpffs (BPF_OBJ_PIN); unlink to unpin.

    Raises:
        BpfLoadError: EEXIST (path taken), EPERM (not a bpffs, or no CAP_BPF), ENOENT.
    """
    raw = ctypes.create_string_buffer(os.fsencode(path))
    _bpf(_BPF_OBJ_PIN, _ObjAttr(pathname=ctypes.addressof(raw), bpf_fd=fd), f"BPF_OBJ_PIN {path}")


def obj_get(path: str | os.PathLike) -> int:
    """Open the object pinned at ``path`` (BPF_OBJ_GET); return a new fd.

    Raises:
        BpfLoadError: ENOENT (nothing pinned there), EPERM.
    """
    raw = ctypes.create_string_buffer(os.fsencode(path))
    return _bpf(_BPF_OBJ_GET, _ObjAttr(pathname=ctypes.addressof(raw)), f"BPF_OBJ_GET {path}")


def prog_load(prog_type: int, insns: bytes, license: str = "GPL", name: str = "",
              log_level: int = 0, expected_attach_type: int = 0, log_size: int = 1 << 20) -> int:
    """Load bytecode with BPF_PROG_LOAD and return the program fd (the caller closes it).

    Args:
        prog_type: ``BPF_PROG_TYPE_*`` (1 = SOCKET_FILTER, 3 = SCHED_CLS, 6 = XDP).
        insns: ``struct bpf_insn`` array, 8 bytes per instruction, map references already
            relocated to map fds (``BPF_PSEUDO_MAP_FD``).
        license: the license string (GPL-only helpers need a GPL-compatible one).
        name: the program name (0-15 characters of ``[A-Za-z0-9_.]``); pfrps's own
            programs start with :data:`PROG_NAME_PREFIX`.
        log_level: 0 = no verifier log unless the load fails, 1-2 = always log.
        expected_attach_type: ``BPF_*`` attach type for the types that need it (XDP devmap
            programs, cgroup programs); 0 otherwise.
        log_size: bytes of verifier log kept on failure.

    Raises:
        BpfLoadError: the verifier or the kernel refused; the message ends with the last
        line of the verifier log (the load is repeated with ``log_level=1`` to get one when
        the first try had none).
    """
    if len(insns) % 8 or not insns:
        raise BpfLoadError(f"{len(insns)} bytes of bytecode is not a whole number of 8-byte instructions",
                           code=errno.EINVAL, hint="pass the program's struct bpf_insn array")
    ibuf = ctypes.create_string_buffer(bytes(insns), len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    pname = _obj_name(name)

    def attempt(level: int, log) -> int:
        attr = _ProgLoadAttr(
            prog_type=prog_type, insn_cnt=len(insns) // 8, insns=ctypes.addressof(ibuf),
            license=ctypes.addressof(lic), log_level=level,
            log_size=ctypes.sizeof(log) if log is not None else 0,
            log_buf=ctypes.addressof(log) if log is not None else 0,
            prog_name=pname, expected_attach_type=expected_attach_type,
        )
        return _bpf(_BPF_PROG_LOAD, attr, f"BPF_PROG_LOAD {name or prog_type}")

    log = ctypes.create_string_buffer(log_size) if log_level else None
    try:
        return register_loaded(attempt(log_level, log))
    except BpfLoadError as exc:
        code = exc.code
    if log is None:
        log = ctypes.create_string_buffer(log_size)
        try:
            return register_loaded(attempt(1, log))  # the kernel may accept it now; then keep the fd
        except BpfLoadError:
            pass
    lines = [ln for ln in log.value.decode(errors="replace").splitlines() if ln.strip()]
    detail = f": {lines[-1]}" if lines else ""
    raise BpfLoadError(
        f"the kernel refused BPF program {name or '(unnamed)'} ({os.strerror(code)}){detail}",
        code=code,
        hint="run as root or with CAP_BPF and CAP_NET_ADMIN" if code == errno.EPERM else "",
    )


def register_loaded(prog_fd: int) -> int:
    """Record the program's id in the file named by ``$PFRPS_BPF_REGISTRY`` (if set) and return
    ``prog_fd``. :func:`prog_load` calls it; code that loads programs another way (bcc's
    ``load_func``) calls it too, so the test suite's leak check sees every program pfrps loaded.

    Raises:
        BpfLoadError: EBADF when ``prog_fd`` is not a BPF object.
    """
    path = os.environ.get(REGISTRY_ENV)
    if path:
        line = f"{prog_id(prog_fd)}\n".encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    return prog_fd


def prog_test_run(prog_fd: int, frame: bytes, repeat: int = 1) -> tuple[int, int]:
    """Run a loaded program once (or ``repeat`` times) on ``frame`` with BPF_PROG_TEST_RUN.

    Args:
        prog_fd: a loaded SOCKET_FILTER, SCHED_CLS or XDP program.
        frame: the whole Ethernet frame, bytes.
        repeat: runs; the duration is averaged over them.

    Returns:
        ``(retval, duration)``: the program's return value (for a socket filter, the bytes it
        keeps, 0 = drop) and the mean run time in nanoseconds.

    Raises:
        BpfLoadError: the kernel refused (EINVAL for a frame shorter than 14 bytes, EPERM
        without CAP_BPF/CAP_SYS_ADMIN).
    """
    buf = ctypes.create_string_buffer(bytes(frame), len(frame))
    out = ctypes.create_string_buffer(max(len(frame), 64) + 256)
    attr = _TestRunAttr(
        prog_fd=prog_fd,
        data_size_in=len(frame),
        data_in=ctypes.addressof(buf),
        data_size_out=ctypes.sizeof(out),
        data_out=ctypes.addressof(out),
        repeat=repeat,
    )
    _bpf(_BPF_PROG_TEST_RUN, attr)
    return attr.retval, attr.duration


def prog_id(prog_fd: int) -> int:
    """The kernel's id of the program behind ``prog_fd`` (as ``bpftool prog show`` lists it).

    Raises:
        BpfLoadError: EBADF when ``prog_fd`` is not a BPF object.
    """
    # struct bpf_prog_info: __u32 type; __u32 id; __u8 tag[8]; ...
    return int.from_bytes(_prog_info(prog_fd)[4:8], "little")


def prog_name(prog_fd: int) -> str:
    """The program's name as loaded (``bpf_prog_info.name``, at byte 64 of the struct).

    Raises:
        BpfLoadError: EBADF when ``prog_fd`` is not a BPF object.
    """
    # type, id, tag[8], jited_prog_len, xlated_prog_len, jited_prog_insns (u64),
    # xlated_prog_insns (u64), load_time (u64), created_by_uid, nr_map_ids, map_ids (u64),
    # name[16] -> offsets 0,4,8,16,20,24,32,40,48,52,56,64.
    return _prog_info(prog_fd)[64:64 + _BPF_OBJ_NAME_LEN].split(b"\0", 1)[0].decode(errors="replace")



def _prog_info(prog_fd: int) -> bytes:
    """``struct bpf_prog_info`` of ``prog_fd`` (the first 256 bytes), BPF_OBJ_GET_INFO_BY_FD."""
    info = (ctypes.c_uint8 * 256)()
    attr = _InfoAttr(bpf_fd=prog_fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    try:
        _bpf(_BPF_OBJ_GET_INFO_BY_FD, attr, "BPF_OBJ_GET_INFO_BY_FD")
    except BpfLoadError as exc:
        if exc.code == errno.EBADF:
            raise BpfLoadError(f"fd {prog_fd} is not a BPF program", code=errno.EBADF) from None
        raise
    return bytes(info)


class _GetFdByIdAttr(ctypes.Structure):
    """``union bpf_attr`` for BPF_PROG_GET_FD_BY_ID (``prog_id``, ``next_id``, ``open_flags``)."""

    _fields_ = [("id", ctypes.c_uint32), ("next_id", ctypes.c_uint32), ("open_flags", ctypes.c_uint32)]


def prog_name_by_id(prog_id_: int) -> str:
    """The name of loaded program ``prog_id_`` (as ``bpftool prog show id N`` shows it), or
    ``""`` when it is gone or cannot be opened (BPF_PROG_GET_FD_BY_ID needs CAP_SYS_ADMIN)."""
    try:
        fd = _bpf(_BPF_PROG_GET_FD_BY_ID, _GetFdByIdAttr(id=prog_id_), "BPF_PROG_GET_FD_BY_ID")
    except BpfLoadError:
        return ""
    try:
        return prog_name(fd)
    except BpfLoadError:
        return ""
    finally:
        os.close(fd)


def _xdp_md(frame_len: int, ingress_ifindex: int):
    """``struct xdp_md`` for a test run's ``ctx_in`` (data 0, data_end = the frame's length,
    no metadata, ``ingress_ifindex`` of the caller's namespace, rx queue 0)."""
    return (ctypes.c_uint32 * 6)(0, frame_len, 0, ingress_ifindex, 0, 0)


def prog_test_run_frame(prog_fd: int, frame: bytes, repeat: int = 1,
                        ingress_ifindex: int = 0) -> tuple[int, bytes]:
    """Like :func:`prog_test_run`, returning ``(retval, frame as the program left it)``.

    For XDP and SCHED_CLS programs the output is the whole (rewritten) frame, ``data_out``
    cut to ``data_size_out`` bytes. A program that redirects or clones really transmits, to
    ifindexes of the caller's network namespace: run it only inside a fresh namespace.

    Args:
        ingress_ifindex: XDP programs only: the frame arrives on this interface of the
            caller's namespace (``xdp_md.ingress_ifindex``, passed as ``ctx_in``); 0 = the
            kernel's default, the namespace's loopback.

    Raises:
        BpfLoadError: as :func:`prog_test_run`; ENODEV when ``ingress_ifindex`` is no
        interface of the namespace.
    """
    buf = ctypes.create_string_buffer(bytes(frame), len(frame))
    out = ctypes.create_string_buffer(max(len(frame), 64) + 256)
    attr = _TestRunAttr(prog_fd=prog_fd, data_size_in=len(frame), data_in=ctypes.addressof(buf),
                        data_size_out=ctypes.sizeof(out), data_out=ctypes.addressof(out), repeat=repeat)
    if ingress_ifindex:
        ctx = _xdp_md(len(frame), ingress_ifindex)
        attr.ctx_size_in, attr.ctx_in = ctypes.sizeof(ctx), ctypes.addressof(ctx)
    _bpf(_BPF_PROG_TEST_RUN, attr, "BPF_PROG_TEST_RUN")
    return attr.retval, out.raw[:attr.data_size_out]


#: ``BPF_PROG_TEST_RUN`` flag (uapi/linux/bpf.h, kernel >= 5.18): XDP verdicts act for real.
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1


def prog_test_run_live(prog_fd: int, frame: bytes, repeat: int, batch_size: int = 0,
                       ingress_ifindex: int = 0) -> int:
    """Run XDP program ``prog_fd`` ``repeat`` times on ``frame`` in live-frame mode
    (``BPF_F_TEST_XDP_LIVE_FRAMES``): its XDP_TX and XDP_REDIRECT really transmit, the kernel's
    own traffic generator (as xdp-trafficgen uses it). Redirect targets are ifindexes of the
    caller's network namespace: call it only inside a namespace of your own.

    Args:
        repeat: frames to run (and, for a redirecting program, to send).
        batch_size: frames per batch between flushes (0: the kernel's default, 64).
        ingress_ifindex: the frames arrive on this interface of the caller's namespace (as
            :func:`prog_test_run_frame`; XDP_TX then goes out of it); 0 = the loopback.

    Returns:
        the mean run time per frame, nanoseconds.

    Raises:
        BpfLoadError: EINVAL (not an XDP program, or a kernel before 5.18), EPERM.
    """
    buf = ctypes.create_string_buffer(bytes(frame), len(frame))
    attr = _TestRunAttr(prog_fd=prog_fd, data_size_in=len(frame), data_in=ctypes.addressof(buf),
                        repeat=repeat, flags=BPF_F_TEST_XDP_LIVE_FRAMES, batch_size=batch_size)
    if ingress_ifindex:
        ctx = _xdp_md(len(frame), ingress_ifindex)
        attr.ctx_size_in, attr.ctx_in = ctypes.sizeof(ctx), ctypes.addressof(ctx)
    _bpf(_BPF_PROG_TEST_RUN, attr, "BPF_PROG_TEST_RUN (live frames)")
    return attr.duration


# -- BPF links (BPF_LINK_CREATE, kernel 5.7+; XDP links 5.9+, tcx links 6.6+) ---------------------
_BPF_PROG_QUERY = 16
_BPF_LINK_CREATE = 28
#: ``enum bpf_attach_type`` values of the hooks pfrps attaches through links (uapi/linux/bpf.h).
BPF_XDP = 37
BPF_TCX_INGRESS = 46
BPF_TCX_EGRESS = 47


class _LinkCreateAttr(ctypes.Structure):
    """``union bpf_attr`` for BPF_LINK_CREATE, up to ``flags`` (the XDP and tcx fields after it
    are left zero: no relative program, no expected revision)."""

    _fields_ = [("prog_fd", ctypes.c_uint32), ("target_ifindex", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class _QueryAttr(ctypes.Structure):
    """``union bpf_attr`` for BPF_PROG_QUERY (``struct { ... } query``, with the mprog fields)."""

    _fields_ = [("target_ifindex", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("query_flags", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("prog_ids", ctypes.c_uint64), ("prog_cnt", ctypes.c_uint32), ("_pad", ctypes.c_uint32),
                ("prog_attach_flags", ctypes.c_uint64), ("link_ids", ctypes.c_uint64),
                ("link_attach_flags", ctypes.c_uint64), ("revision", ctypes.c_uint64)]


def link_create(prog_fd: int, target_ifindex: int, attach_type: int, flags: int = 0) -> int:
    """Attach ``prog_fd`` to interface ``target_ifindex`` through a BPF link (BPF_LINK_CREATE)
    and return the link's fd. The attachment lives exactly as long as the link: closing the last
    fd to it (also when the process holding it dies, however) detaches the program, unless the
    link was pinned (:func:`obj_pin`).

    Args:
        prog_fd: a loaded XDP or SCHED_CLS program.
        target_ifindex: the interface (in the caller's network namespace).
        attach_type: :data:`BPF_XDP` (kernel 5.9+), :data:`BPF_TCX_INGRESS` or
            :data:`BPF_TCX_EGRESS` (tcx, kernel 6.6+).
        flags: for XDP, ``XDP_FLAGS_SKB_MODE`` (generic) or ``XDP_FLAGS_DRV_MODE`` (native); 0 for tcx.

    Raises:
        BpfLoadError: EINVAL on a kernel without this link type, EBUSY when the interface
        carries an XDP program already (attached by netlink or by another link), EOPNOTSUPP
        for native XDP on a driver without it, EPERM.
    """
    attr = _LinkCreateAttr(prog_fd=prog_fd, target_ifindex=target_ifindex, attach_type=attach_type, flags=flags)
    return _bpf(_BPF_LINK_CREATE, attr, f"BPF_LINK_CREATE type {attach_type} ifindex {target_ifindex}")


def prog_query(target_ifindex: int, attach_type: int, max_progs: int = 64) -> list[int]:
    """Ids of the programs attached to ``target_ifindex`` at ``attach_type`` (BPF_PROG_QUERY;
    for tcx hooks, in run order). An empty list when none, or the kernel has no such hook.

    Raises:
        BpfLoadError: EPERM, ENODEV (no such interface).
    """
    ids = (ctypes.c_uint32 * max_progs)()
    attr = _QueryAttr(target_ifindex=target_ifindex, attach_type=attach_type,
                      prog_ids=ctypes.addressof(ids), prog_cnt=max_progs)
    try:
        _bpf(_BPF_PROG_QUERY, attr, "BPF_PROG_QUERY")
    except BpfLoadError as exc:
        if exc.code == errno.EINVAL:
            return []
        raise
    return list(ids[:min(attr.prog_cnt, max_progs)])
