"""Thin ``bpf(2)`` syscall wrappers for what bcc's Python module does not expose.

Only two commands are needed: ``BPF_PROG_TEST_RUN`` (run a loaded program on a frame with no
interface, as katran and cilium test their programs) and ``BPF_OBJ_GET_INFO_BY_FD`` (a
program's id, for leak checks). Layouts follow ``union bpf_attr`` in ``uapi/linux/bpf.h``.
"""

from __future__ import annotations

import ctypes
import errno
import os

from .errors import BpfLoadError

__all__ = ["prog_test_run", "prog_id"]

_NR_BPF = 321  # x86_64
_BPF_PROG_TEST_RUN = 10
_BPF_OBJ_GET_INFO_BY_FD = 15

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _TestRunAttr(ctypes.Structure):
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
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32), ("info", ctypes.c_uint64)]


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    ret = _libc.syscall(_NR_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        code = ctypes.get_errno()
        raise BpfLoadError(f"bpf({cmd}) failed: {os.strerror(code)}", code=code)
    return ret


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
    """The kernel's id of the program behind ``prog_fd`` (as ``bpftool prog show`` lists it)."""
    info = (ctypes.c_uint8 * 256)()
    attr = _InfoAttr(bpf_fd=prog_fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    try:
        _bpf(_BPF_OBJ_GET_INFO_BY_FD, attr)
    except BpfLoadError as exc:
        if exc.code == errno.EBADF:
            raise BpfLoadError(f"fd {prog_fd} is not a BPF program", code=errno.EBADF) from None
        raise
    # struct bpf_prog_info: __u32 type; __u32 id; ...
    return int.from_bytes(bytes(info[4:8]), "little")
