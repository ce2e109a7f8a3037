"""What every receiver hands a handler: :class:`FrameMeta`, the :class:`Receiver` protocol, and
the release of a frame's view once the handler returned (see :mod:`pfrps.receive`)."""

from __future__ import annotations

import errno
from typing import Callable, Optional, Protocol, runtime_checkable

__all__ = ["FrameMeta", "OnFrame", "Receiver", "release_view", "LINK_ERRNOS"]

#: Socket errors a packet socket reports when its interface goes down (ENETDOWN, set by the
#: kernel's packet_notifier on NETDEV_DOWN and NETDEV_UNREGISTER) or is gone: not a reason to
#: stop reading (the socket is hooked in again on NETDEV_UP).
LINK_ERRNOS = frozenset({errno.ENETDOWN, errno.ENODEV, errno.ENXIO})


class FrameMeta:
    """Receive metadata of one frame (``__slots__``: one is built per frame, so it is kept cheap).

    ``FrameMeta(ifindex, timestamp, length, vlan_tci=None, vlan_tpid=None)`` as before; the
    ring reader passes the kernel's ``tp_sec`` as ``timestamp`` and ``tp_nsec`` as ``nsec``, so
    the float :attr:`timestamp` is computed only if a handler reads it. Each frame gets a new
    FrameMeta (never a reused one): a handler, or an async handler's task, may keep it.

    Attributes:
        ifindex: the interface it arrived on.
        timestamp: kernel receive time, seconds since the epoch (CLOCK_REALTIME), a float
            (computed on first read from whole seconds plus ``nsec`` when those were given).
        length: the frame's length on the wire, bytes (the view may be shorter only if truncated).
        vlan_tci: the 802.1Q TCI the kernel stripped (VLAN offload), or None.
        vlan_tpid: the stripped tag's TPID (0x8100 for 802.1Q, 0x88a8 for an 802.1ad S-tag)
            when the kernel reports it (``TP_STATUS_VLAN_TPID_VALID``), else None.
    """

    __slots__ = ("ifindex", "_ts", "length", "vlan_tci", "vlan_tpid", "_nsec")

    def __init__(self, ifindex: int, timestamp: float, length: int, vlan_tci: Optional[int] = None,
                 vlan_tpid: Optional[int] = None, nsec: Optional[int] = None) -> None:
        self.ifindex = ifindex
        self._ts = timestamp
        self.length = length
        self.vlan_tci = vlan_tci
        self.vlan_tpid = vlan_tpid
        self._nsec = nsec

    @property
    def timestamp(self) -> float:
        """Kernel receive time, seconds since the epoch (float)."""
        nsec = self._nsec
        if nsec is None:
            return self._ts
        ts = self._ts = self._ts + nsec * 1e-9
        self._nsec = None
        return ts

    @timestamp.setter
    def timestamp(self, value: float) -> None:
        self._ts, self._nsec = value, None

    def _key(self) -> tuple:
        return self.ifindex, self.timestamp, self.length, self.vlan_tci, self.vlan_tpid

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FrameMeta):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        return (f"FrameMeta(ifindex={self.ifindex!r}, timestamp={self.timestamp!r}, length={self.length!r}, "
                f"vlan_tci={self.vlan_tci!r}, vlan_tpid={self.vlan_tpid!r})")


#: What a receiver hands every frame to: ``on_frame(frame, meta)``, ``frame`` a ``memoryview``
#: valid only during the call (released when it returns), ``meta`` a :class:`FrameMeta`.
OnFrame = Callable[[memoryview, FrameMeta], None]


@runtime_checkable
class Receiver(Protocol):
    """What a worker reads frames from (:class:`RecvReceiver`, :class:`RingReceiver`, or a
    wrapper such as :class:`pfrps.linkwatch.RxGuard`)."""

    def fileno(self) -> int:
        """A file descriptor that is readable when :meth:`poll` has frames to read."""
        ...  # pragma: no cover

    def poll(self, on_frame: Optional[OnFrame], ifindex: int, budget: int = 256) -> tuple[int, int, int]:
        """Read up to about ``budget`` frames without blocking, handing each to ``on_frame``
        (None: only count them); return ``(frames, bytes, truncated)``: frames read, the sum of
        their wire lengths (bytes), and how many were captured shorter than on the wire."""
        ...  # pragma: no cover

    def close(self) -> None:
        """Drop what the receiver holds (views, fds of its own); the socket stays its owner's."""
        ...  # pragma: no cover


def release_view(view: memoryview) -> None:
    """Release a frame's view once the handler returned: a handler that kept it then gets
    ``ValueError`` on use instead of silently reading bytes the kernel has since rewritten. A
    view the handler exported a buffer of (``np.frombuffer(frame)`` still alive) cannot be
    released and is left as is; slices the handler took (``frame[6:12]``) stay readable."""
    try:
        view.release()
    except BufferError:
        pass
