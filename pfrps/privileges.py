"""Dropping privileges once sockets and BPF programs are in place (``--user``).

Workers become the named user with no capabilities (``setuid`` away from root clears them;
``PR_SET_NO_NEW_PRIVS`` keeps them from coming back through exec). Their already-open
PF_PACKET socket keeps working: capabilities are checked when a socket is created and a
program attached, not per frame. The supervisor keeps only what supervising needs:
CAP_SETUID and CAP_SETGID (so a restarted worker can drop to the user) and CAP_KILL (to signal
workers that no longer share its uid), plus CAP_CHOWN when it hands a reopened log file
to the workers' user (``--log-file``). See capabilities(7).
"""

from __future__ import annotations

import ctypes
import errno
import os
import pwd
import stat
from pathlib import Path
from typing import Optional

from .errors import PrivilegeError, UsageError
from .kernel import PR_SET_NO_NEW_PRIVS

__all__ = ["CAP_CHOWN", "lookup_user", "unreachable_dir", "drop_to_user", "keep_only_caps", "effective_caps", "SUPERVISOR_CAPS"]

CAP_CHOWN, CAP_KILL, CAP_SETGID, CAP_SETUID = 0, 5, 6, 7
SUPERVISOR_CAPS = (CAP_KILL, CAP_SETGID, CAP_SETUID)
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def lookup_user(name: str) -> tuple[int, int]:
    """``(uid, gid)`` of user ``name`` (or of a numeric uid).

    Raises:
        UsageError: no such user.
    """
    try:
        pw = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, ValueError):
        raise UsageError(f"unknown user {name!r}", hint="name an existing account with --user (e.g. nobody)") from None
    return pw.pw_uid, pw.pw_gid


def unreachable_dir(path: str, uid: int, gid: int) -> Optional[str]:
    """The first directory on the way to ``path`` that ``uid``/``gid`` may not search, or None.

    Checks the search (x) bit of every ancestor directory for the owner, group or others
    class that applies to ``uid``/``gid`` (no supplementary groups: a dropped worker has
    none; ACLs are not consulted). Used before ``--user`` workers are told to reopen
    ``--log-file`` by path. See path_resolution(7).
    """
    directory = Path(os.path.abspath(path)).parent
    for d in [*reversed(directory.parents), directory]:
        try:
            st = os.stat(d)
        except OSError:
            return str(d)
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return str(d)
    return None


def effective_caps() -> int:
    """This process's effective capability mask (``CapEff`` of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def drop_to_user(uid: int, gid: int) -> None:
    """Become ``uid``/``gid`` with no supplementary groups and no capabilities, for good.

    Raises:
        PrivilegeError: the switch failed, or capabilities remain afterwards.
    """
    try:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot switch to uid {uid}: {exc.strerror}", code=exc.errno or errno.EPERM) from None
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if uid != 0 and effective_caps() != 0:
        raise PrivilegeError(f"capabilities remain after switching to uid {uid}")


def keep_only_caps(caps=SUPERVISOR_CAPS) -> None:
    """Reduce this process's effective and permitted capabilities to ``caps`` (capset(2)).

    Raises:
        PrivilegeError: capset failed.
    """
    mask = 0
    for cap in caps:
        mask |= 1 << cap
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = mask & 0xFFFFFFFF
    data[1].effective = data[1].permitted = mask >> 32
    if _libc.capset(ctypes.byref(hdr), data) != 0:
        code = ctypes.get_errno()
        raise PrivilegeError(f"cannot drop supervisor capabilities: {os.strerror(code)}", code=code)
