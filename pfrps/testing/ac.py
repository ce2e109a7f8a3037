"""``pfrps-ac`` in a lab namespace, and a PPPoE host side talking to it over an AF_PACKET socket.

Shared by the root tests (``tests/root/test_ac*.py``, ``test_fuzz.py``, ``test_metrics.py``,
``test_vlan_ac.py``) and the benchmarks (``bench/ac_bench.py``, ``bench/fuzz.py``). The lab is a
:class:`pfrps.topology.TwoNodeTopology`: the AC runs in its ``node`` namespace, the hosts in its
``injector`` namespace.

* :class:`ACProcess`: ``python -m pfrps.ac ... --json --ready-fd FD`` (or any program taking
  ``--ready-fd``, e.g. the plain handler of :mod:`pfrps.testing.fuzz_frames`), started and
  waited for (READY on the pipe, :func:`pfrps.cliutil.wait_ready`), its ``--json`` snapshots and
  stderr lines collected by two reader threads;
* :func:`open_packet_socket`: an AF_PACKET socket bound inside a named namespace (it keeps the
  namespace after ``popns``);
* :class:`PPPoEClient`: many PPPoE hosts on one such socket: send, expect replies from the AC,
  catch anything unasked for, undo the kernel's VLAN stripping on receive;
* frame helpers: :func:`client_mac`, :func:`ethertype`, :func:`is_disc`, :func:`tags`,
  :func:`tag`, :func:`totals`.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Callable, Optional

from ..ac import protocol as p
from ..cliutil import wait_ready
from ..errors import LabError
from ..kernel import (ETH_P_ALL, ETH_P_PPP_DISC, ETH_P_PPP_SES, PACKET_AUXDATA, PACKET_IGNORE_OUTGOING, SO_RCVBUFFORCE,
                      SO_SNDBUFFORCE, SO_TIMESTAMPNS, SOL_PACKET, TP_STATUS_VLAN_TPID_VALID, TP_STATUS_VLAN_VALID,
                      TPACKET_AUXDATA)
from .procs import worker_pids

__all__ = ["AC_MAC", "AC_NAME", "WORKERS", "TIMEOUT", "ACProcess", "open_packet_socket", "PPPoEClient", "client_mac",
           "ethertype", "is_disc", "tags", "tag", "totals"]

#: The AC's MAC: the ``node`` end of :class:`pfrps.topology.TwoNodeTopology` (52:54:00:84:d7:ff).
AC_MAC = bytes.fromhex("52540084d7ff")
#: The AC-Name :class:`ACProcess` gives pfrps-ac by default.
AC_NAME = b"pfrps-lab-ac"
#: Workers :class:`ACProcess` starts by default.
WORKERS = 4
#: Seconds a wait gives up after by default (a reply, a counter value).
TIMEOUT = 10.0

_TAGGED = (p.ETH_P_8021Q.to_bytes(2, "big"), p.ETH_P_8021AD.to_bytes(2, "big"))


def client_mac(i: int) -> bytes:
    """The ``i``-th host's MAC, ``02:00:ac:00:HI:LO`` (locally administered, unicast; ``i`` < 65536)."""
    return bytes([0x02, 0x00, 0xAC, 0x00, i >> 8, i & 0xFF])


def ethertype(f: bytes) -> int:
    """The ethertype of frame ``f`` after any 802.1Q / 802.1ad tags."""
    off = 12
    while f[off:off + 2] in _TAGGED:
        off += 4
    return int.from_bytes(f[off:off + 2], "big")


def is_disc(f: bytes, code: int, dst: Optional[bytes] = None) -> bool:
    """True when ``f`` is an untagged PPPoE discovery frame with CODE ``code`` (``p.PADO``, ...),
    sent to ``dst`` when given."""
    return (len(f) > 15 and int.from_bytes(f[12:14], "big") == ETH_P_PPP_DISC and f[15] == code
            and (dst is None or f[:6] == dst))


def tags(f: bytes) -> list[tuple[int, bytes]]:
    """The discovery TAGs of ``f`` as scapy dissects them: ``[(tag_type, value), ...]``; [] for none."""
    from scapy.layers.l2 import Ether  # noqa: PLC0415  (heavy import, only where needed)
    from scapy.layers.ppp import PPPoED_Tags  # noqa: PLC0415

    pkt = Ether(f)
    return [(t.tag_type, bytes(t.tag_value)) for t in pkt[PPPoED_Tags].tag_list] if PPPoED_Tags in pkt else []


def tag(f: bytes, t: int) -> Optional[bytes]:
    """The value of the first TAG of type ``t`` in ``f`` (``p.TAG_AC_COOKIE``, ...), or None."""
    return next((v for k, v in tags(f) if k == t), None)


def totals(snap: dict) -> dict:
    """A ``--json`` snapshot's per-worker counters summed: ``{"padi": [3, 1], ...}`` -> ``{"padi": 4, ...}``."""
    return {k: sum(v) for k, v in snap.items() if isinstance(v, list)}


class ACProcess:
    """``python -m pfrps.ac`` in ``topo``'s node namespace, ready (READY on ``--ready-fd``), with
    its ``--json`` snapshots and its log collected.

    Args:
        topo: the lab (:class:`pfrps.topology.TwoNodeTopology`); the AC listens on ``topo.node_if``.
        *args: more pfrps-ac options (``"--service-name", "internet"``, ...).
        argv: run this program instead of pfrps-ac (``--ready-fd FD`` is appended), e.g. the plain
            handler of :mod:`pfrps.testing.fuzz_frames`; it must print ``--json`` snapshots.
        workers, ac_name, interval: pfrps-ac's ``-w``, ``--ac-name`` and ``--interval`` (seconds).
        ready_timeout: seconds to wait for READY.

    Attributes:
        proc: the :class:`subprocess.Popen`.
        snapshots: every ``--json`` line, parsed (per-worker counter lists, ``time``, ...).
        log, log_times: its stderr lines and when each arrived (``time.monotonic()``).
        ready_seconds: Popen to READY, seconds.

    Raises:
        LabError: it exited or did not get ready within ``ready_timeout`` (its log in the message).
    """

    def __init__(self, topo, *args: str, argv: Optional[list[str]] = None, workers: int = WORKERS,
                 ac_name: bytes = AC_NAME, interval: float = 0.05, ready_timeout: float = 60.0) -> None:
        r, w = os.pipe()
        if argv is None:
            argv = [sys.executable, "-m", "pfrps.ac", "-i", topo.node_if, "-w", str(workers), "--ac-name",
                    ac_name.decode(), "--json", "--interval", str(interval), *args]
        self.argv = [*argv, "--ready-fd", str(w)]
        try:
            self.proc = topo.popen(topo.node, self.argv, pass_fds=(w,), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        self.snapshots: list[dict] = []
        self.log: list[str] = []
        self.log_times: list[float] = []
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True)]
        for t in self._threads:
            t.start()
        t0 = time.monotonic()
        ready = wait_ready(r, ready_timeout)  # closes r
        self.ready_seconds = time.monotonic() - t0
        if not ready:
            self.proc.kill()
            self.proc.wait()
            for t in self._threads:
                t.join(5)
            raise LabError(f"{' '.join(argv[1:3])} did not get ready within {ready_timeout:g} s "
                           f"(exit {self.proc.returncode}):\n" + "\n".join(self.log))

    def _read(self, stream, is_json: bool) -> None:
        for line in stream:
            with self._cond:
                if is_json:
                    self.snapshots.append(json.loads(line))
                else:
                    self.log.append(line.rstrip("\n"))
                    self.log_times.append(time.monotonic())
                self._cond.notify_all()

    def wait_for(self, pred: Callable[[dict], bool], what: str = "the condition", timeout: float = TIMEOUT,
                 required: bool = True) -> dict:
        """The first snapshot from now on for which ``pred`` holds.

        With ``required=False``, the last snapshot once ``timeout`` seconds passed (or the
        process exited) instead of an error (``{}`` when there is none).

        Raises:
            LabError: ``required`` and no such snapshot within ``timeout`` s, or the process exited.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = len(self.snapshots)
            while True:
                if len(self.snapshots) > seen:
                    seen = len(self.snapshots)
                    if pred(self.snapshots[-1]):
                        return self.snapshots[-1]
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    last = self.snapshots[-1] if self.snapshots else None
                    if not required:
                        return last or {}
                    raise LabError(f"counters never showed {what}; last snapshot {last}")
                self._cond.wait(left)

    def wait_log(self, pattern: str, after: float, timeout: float) -> Optional[tuple[float, re.Match]]:
        """The first log line that arrived at or after ``after`` (``time.monotonic()``) and matches
        ``pattern``: ``(arrival time, match)``; None after ``timeout`` seconds."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, line in zip(self.log_times, self.log):
                    m = rx.search(line) if t >= after else None
                    if m:
                        return t, m
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def worker_pids(self) -> dict[int, int]:
        """Worker id -> pid of the live workers (:func:`pfrps.testing.procs.worker_pids`)."""
        return worker_pids(self.proc.pid)

    def stop(self, timeout: float = 30.0) -> tuple[int, dict]:
        """SIGTERM and wait up to ``timeout`` s: its exit status and final snapshot (``{}`` if none)."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        return rc, (self.snapshots[-1] if self.snapshots else {})


def open_packet_socket(netns: str, ifname: str, *, auxdata: bool = False, timestamps: bool = False,
                       rcvbuf: int = 0, sndbuf: int = 0) -> socket.socket:
    """An AF_PACKET raw socket (every ethertype, its own frames not looped back) bound to
    ``ifname`` in the named network namespace ``netns``; the caller's namespace is unchanged.

    Args:
        auxdata: PACKET_AUXDATA on (the VLAN tag the kernel stripped comes as a control message).
        timestamps: SO_TIMESTAMPNS on (receive times from the kernel).
        rcvbuf, sndbuf: SO_RCVBUFFORCE / SO_SNDBUFFORCE in bytes (0: the default).

    Raises:
        OSError: the interface is not there, or not root.
    """
    from pyroute2 import netns as pyroute2_netns  # noqa: PLC0415

    pyroute2_netns.pushns(netns)
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            if auxdata:
                s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            if timestamps:
                s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            if rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            if sndbuf:
                s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, sndbuf)
            s.bind((ifname, ETH_P_ALL))
        except BaseException:
            s.close()
            raise
    finally:
        pyroute2_netns.popns()
    return s


class PPPoEClient:
    """PPPoE hosts on one AF_PACKET socket on ``topo``'s injector interface, talking to the AC
    at ``ac_mac``.

    Attributes:
        sock: the socket (:func:`open_packet_socket`, PACKET_AUXDATA on).
        stray: frames from the AC that no :meth:`expect` asked for.
    """

    def __init__(self, topo, ac_mac: bytes = AC_MAC) -> None:
        self.sock = open_packet_socket(topo.injector, topo.injector_if, auxdata=True)
        self.ac_mac = ac_mac
        self.stray: list[bytes] = []

    def send(self, *frames: bytes) -> None:
        """Send ``frames`` in order."""
        for f in frames:
            self.sock.send(f)

    def expect(self, n: int, match: Callable[[bytes], bool], timeout: float = TIMEOUT) -> list[bytes]:
        """The next ``n`` PPPoE frames from the AC that ``match``; other PPPoE frames from the AC go
        to :attr:`stray`, the rest is ignored.

        Raises:
            LabError: fewer than ``n`` within ``timeout`` seconds.
        """
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise LabError(f"got {len(got)} of {n} expected frames; stray: {self.stray_summary()}")
            f = self.recv()
            if f[6:12] != self.ac_mac or ethertype(f) not in (ETH_P_PPP_DISC, ETH_P_PPP_SES):
                continue
            (got if match(f) else self.stray).append(f)
        return got

    def recv(self) -> bytes:
        """One frame as it was on the wire: the VLAN tag the kernel stripped on receive
        (``tpacket_auxdata``) put back in front of any tag still in the frame."""
        f, anc, _flags, _addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(TPACKET_AUXDATA.size))
        for level, kind, data in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, _len, _snap, _mac, _net, tci, tpid = TPACKET_AUXDATA.unpack_from(data)
                if status & TP_STATUS_VLAN_VALID:
                    tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else p.ETH_P_8021Q
                    f = p.with_vlan(f, struct.pack("!HH", tpid, tci))
        return f

    def barrier(self, mac: bytes) -> None:
        """Prove every frame ``mac`` sent so far was handled: frames of one MAC reach one worker in
        order, so its answer to this PADI comes last; nothing may be stray.

        Raises:
            LabError: no PADO, or stray frames.
        """
        self.send(p.build_padi(mac, b"internet", b"barrier"))
        self.expect(1, lambda f: is_disc(f, p.PADO, mac) and tag(f, p.TAG_HOST_UNIQ) == b"barrier")
        self.assert_no_stray()

    def stray_summary(self) -> list[str]:
        """:attr:`stray` as scapy summaries."""
        from scapy.layers.l2 import Ether  # noqa: PLC0415

        return [Ether(f).summary() for f in self.stray]

    def assert_no_stray(self) -> None:
        """Raises:
            LabError: the AC sent frames no :meth:`expect` asked for."""
        if self.stray:
            raise LabError(f"unexpected frames from the AC: {self.stray_summary()}")

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
