"""Link events: an interface going down, coming back, or being removed, while workers run.

What the kernel does (net/packet/af_packet.c, ``packet_notifier``): when the interface of a
bound packet socket goes down (``NETDEV_DOWN``) it unhooks the socket (a fanout member leaves
its group's array), sets ``sk_err = ENETDOWN`` and wakes the socket up (``POLLERR``); on
``NETDEV_UP`` it hooks the socket in again (and back into its fanout group), keeping its
filter, ring and queue. The error stays until somebody reads it: ``recvmsg`` returns it once
(``sock_error``), ``getsockopt(SO_ERROR)`` returns and clears it. On ``NETDEV_UNREGISTER`` (the
interface removed) the socket is unhooked for good.

Two halves, both used:

* **Workers** (every receive path, every steering mode): :class:`RxGuard` wraps the receiver.
  The event loop waits on a private epoll fd holding the socket, never on the socket itself:
  libuv stops a poll handle for good when it sees ``POLLERR`` (``uv__poll_io`` calls back with
  ``UV_EBADF``), which is what silenced every worker after a flap. A wake-up that reads no
  frame clears the socket's error with ``SO_ERROR`` and counts it (``socket_errors``), and
  ``recvmsg`` errors are counted by :class:`pfrps.receive.RecvReceiver`. The worker keeps its
  socket, ring, fanout membership and id; the frames that arrive once the link is up again are
  read as usual. Nothing is logged per worker (N lines per flap would say nothing more).
* **The supervisor**: :class:`LinkWatch` subscribes to rtnetlink's link group
  (``RTMGRP_LINK``) and follows each watched interface's state (up = ``IFF_UP`` and
  ``IFF_RUNNING``): it logs one line per transition (``n0: link down`` / ``n0: link up;
  receiving again``), counts ``link_flaps`` (down transitions), shows both in the stats line
  and JSON, calls the application's ``on_link_event(LinkEvent)`` hook, and on ``RTM_DELLINK``
  (the interface removed, or moved to another namespace) raises :class:`InterfaceGoneError`, so
  the supervisor stops every worker (``on_stop`` runs) and the tool exits 1 with one line
  (``pfrps: error: interface n0 (ifindex 2) was removed``); a service manager restarts it.

Netlink is the supervisor's because only it can tell "up again" (a socket reports only the
down) and "removed" from "down", and because one watcher serves any number of interfaces and
workers; the workers' half is what keeps the receive path alive, whoever watches.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from .errors import PfrpsError
from .links import outside_running_loop
from .receive import LINK_ERRNOS

__all__ = ["LinkEvent", "LinkWatch", "InterfaceGoneError", "RxGuard", "link_is_up"]

log = logging.getLogger("pfrps")

IFF_UP = 0x1
IFF_RUNNING = 0x40
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTMGRP_LINK = 1
NLMSG_ERROR = 2
NLMSG_OVERRUN = 4
IFLA_IFNAME = 3
_NLMSGHDR = struct.Struct("=IHHII")      # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")    # family, type, index, flags, change
_RTATTR = struct.Struct("=HH")
#: Seconds the supervisor waits after a "link down" for the removal that may follow it.
REMOVAL_WAIT = 0.1


def link_is_up(flags: int) -> bool:
    """True when ``ifi_flags`` say the link can carry frames: administratively up and running
    (carrier; what ``ip link`` shows as ``state UP``)."""
    return bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)


@dataclass(frozen=True)
class LinkEvent:
    """One transition of a watched interface.

    Attributes:
        ifname, ifindex: the interface.
        kind: ``"down"``, ``"up"`` or ``"removed"``.
        flaps: down transitions of this interface since start (this one included).
        at: ``time.monotonic()`` when the supervisor read it.
    """

    ifname: str
    ifindex: int
    kind: str
    flaps: int
    at: float


class InterfaceGoneError(PfrpsError):
    """A watched interface was removed (or moved to another network namespace) while pfrps ran.

    Raised by :meth:`pfrps.supervisor.Supervisor.run` after every worker was stopped (each
    ``on_stop`` ran) and the final stats were emitted, and by :meth:`Supervisor.start` during
    start-up; exit status 1 in the tools. ``event`` is the :class:`LinkEvent`."""

    def __init__(self, event: LinkEvent) -> None:
        super().__init__(f"interface {event.ifname} (ifindex {event.ifindex}) was removed", code=errno.ENODEV)
        self.event = event


@dataclass
class _Link:
    ifname: str
    ifindex: int
    up: bool
    flaps: int = 0
    removed: bool = False


class LinkWatch:
    """Follow the state of some interfaces of this network namespace through rtnetlink.

    Args:
        links: ``(ifname, ifindex)`` of each interface to watch.
        on_event: called with every :class:`LinkEvent` (after the line is logged); may be None.

    Subscribes first, then reads each interface's current flags (pyroute2), so no transition
    is missed. :meth:`read` is called when :meth:`fileno` is readable.
    """

    def __init__(self, links: Iterable[tuple[str, int]], on_event: Optional[Callable[[LinkEvent], None]] = None) -> None:
        self.on_event = on_event
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.sock.bind((0, RTMGRP_LINK))
            self.links = {idx: _Link(name, idx, True) for name, idx in links}
            self._resync(log_changes=False)
            for link in self.links.values():
                if link.removed:  # between the interface check and the subscription
                    raise InterfaceGoneError(LinkEvent(link.ifname, link.ifindex, "removed", 0, time.monotonic()))
        except BaseException:
            self.sock.close()
            raise

    def fileno(self) -> int:
        """The netlink socket's fd (readable when link messages wait)."""
        return self.sock.fileno()

    def state(self, ifindex: Optional[int] = None) -> str:
        """``"up"``, ``"down"`` or ``"removed"`` of ``ifindex`` (default: the first watched)."""
        link = self.links[ifindex] if ifindex is not None else next(iter(self.links.values()))
        return "removed" if link.removed else ("up" if link.up else "down")

    def flaps(self, ifindex: Optional[int] = None) -> int:
        """Down transitions of ``ifindex`` (default: the first watched) since start."""
        link = self.links[ifindex] if ifindex is not None else next(iter(self.links.values()))
        return link.flaps

    def as_json(self) -> dict:
        """``{"link": state, "link_flaps": n}`` of the first interface, and ``"links"``:
        ``{ifname: {"state": ..., "flaps": ...}}`` of every watched one."""
        return {"link": self.state(), "link_flaps": self.flaps(),
                "links": {lk.ifname: {"state": self.state(i), "flaps": lk.flaps} for i, lk in self.links.items()}}

    def read(self) -> list[LinkEvent]:
        """Read every queued link message; log and return the transitions of watched interfaces.

        Raises:
            InterfaceGoneError: a watched interface was removed (after the other events were handled).
        """
        events = self._drain()
        if any(ev.kind == "down" for ev in events) and not any(ev.kind == "removed" for ev in events):
            # `ip link del` sends the down, then the removal: wait a moment for the second, so a
            # removal is one line, not "link down" and then the error
            if select.select([self.sock], [], [], REMOVAL_WAIT)[0]:
                events += self._drain()
        gone = None
        removed = {ev.ifindex for ev in events if ev.kind == "removed"}
        for ev in events:
            if ev.kind != "removed" and ev.ifindex in removed:
                continue  # the "down" that comes with a removal: one line says it all
            if ev.kind == "removed":
                gone = gone or ev
            elif ev.kind == "down":
                log.info("%s: link down", ev.ifname)
            else:
                log.info("%s: link up; receiving again", ev.ifname)
            if self.on_event is not None:
                self.on_event(ev)
        if gone is not None:
            raise InterfaceGoneError(gone)
        return events

    def _drain(self) -> list[LinkEvent]:
        events: list[LinkEvent] = []
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # messages were lost: ask for the state instead
                    events += self._resync(log_changes=True)
                    continue
                raise
            events += self._parse(data)
        return events

    def _parse(self, data: bytes) -> list[LinkEvent]:
        events = []
        off = 0
        while off + _NLMSGHDR.size <= len(data):
            length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, off)
            if length < _NLMSGHDR.size:
                break
            body = off + _NLMSGHDR.size
            if mtype in (RTM_NEWLINK, RTM_DELLINK) and body + _IFINFOMSG.size <= off + length:
                _fam, _type, index, flags, _change = _IFINFOMSG.unpack_from(data, body)
                ev = self._update(index, flags, mtype == RTM_DELLINK)
                if ev is not None:
                    events.append(ev)
            off += (length + 3) & ~3
        return events

    def _update(self, ifindex: int, flags: int, deleted: bool) -> Optional[LinkEvent]:
        link = self.links.get(ifindex)
        if link is None or link.removed:
            return None
        now = time.monotonic()
        if deleted:
            link.removed, link.up = True, False
            return LinkEvent(link.ifname, ifindex, "removed", link.flaps, now)
        up = link_is_up(flags)
        if up == link.up:
            return None
        link.up = up
        if not up:
            link.flaps += 1
        return LinkEvent(link.ifname, ifindex, "up" if up else "down", link.flaps, now)

    @outside_running_loop  # pyroute2's synchronous API, also under Supervisor.serve()
    def _resync(self, log_changes: bool) -> list[LinkEvent]:
        from pyroute2 import IPRoute  # noqa: PLC0415
        from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

        events = []
        with IPRoute() as ipr:
            for idx, link in self.links.items():
                try:
                    flags = ipr.get_links(idx)[0]["flags"]
                except NetlinkError:  # gone
                    ev = self._update(idx, 0, True)
                else:
                    ev = self._update(idx, flags, False)
                if ev is not None and log_changes:
                    events.append(ev)
        return events

    def close(self) -> None:
        """Close the netlink socket (idempotent)."""
        self.sock.close()


class RxGuard:
    """A worker's receiver, made to survive link events (see the module docstring).

    Wraps a receiver (``fileno()``, ``poll(on_frame, ifindex, budget)``): :meth:`fileno` is a
    private epoll fd holding the socket (level-triggered, so it is readable exactly while the
    socket is readable or has an error, and it never reports ``POLLERR`` itself); :meth:`poll`
    reads as the receiver does, and when a wake-up read nothing it clears the socket's error
    (``SO_ERROR``). Every cleared or reported error adds 1 to ``row[socket_errors_col]``; every
    call adds 2 to the worker's heartbeat word (:mod:`pfrps.watchdog`), when given.
    """

    def __init__(self, receiver, sock: socket.socket, row=None, socket_errors_col: int = 0,
                 beat: Optional[Callable[[], None]] = None) -> None:
        self.receiver = receiver
        self.sock = sock
        self._row = row
        self._col = socket_errors_col
        self._beat = beat
        self._seen = getattr(receiver, "socket_errors", 0)
        self.errors = 0
        self._ep = select.epoll()
        self._ep.register(receiver.fileno(), select.EPOLLIN)

    def fileno(self) -> int:
        """The epoll fd to wait on."""
        return self._ep.fileno()

    def poll(self, on_frame, ifindex: int, budget: int = 256) -> tuple[int, int, int]:
        """As the receiver's ``poll``; clears and counts a socket error when nothing was read."""
        res = self.receiver.poll(on_frame, ifindex, budget)
        if self._beat is not None:
            self._beat()
        n = getattr(self.receiver, "socket_errors", 0)
        if n != self._seen:
            self._count(n - self._seen)
            self._seen = n
        elif not res[0]:
            try:
                err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            except OSError:
                err = 0
            if err:
                if err not in LINK_ERRNOS:
                    logging.getLogger("pfrps.worker").warning("socket error %s cleared", os.strerror(err))
                self._count(1)
        return res

    def _count(self, n: int) -> None:
        self.errors += n
        if self._row is not None:
            self._row[self._col] += n

    def close(self) -> None:
        """Close the epoll fd (the socket stays the supervisor's)."""
        self._ep.close()
